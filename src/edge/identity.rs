//! Which XMPP domains a certificate names (RFC 6120 §13.7.1.4, RFC 9525 §6, XEP-0368).
//!
//! Only the subjectAltName is read: XmppAddr (`otherName` 1.3.6.1.5.5.7.8.5, UTF8String), SRV-ID
//! (`otherName` 1.3.6.1.5.5.7.8.7, IA5String `_service.domain`) and DNS-ID (`dNSName`). The subject
//! common name is never an identity (RFC 9525 §6.3). webpki only checks `dNSName`s, so the
//! `otherName`s are parsed here with x509-parser plus a strict two-level DER reader.
//!
//! Pure functions, no I/O; nothing here panics on any certificate bytes.

use x509_parser::extensions::GeneralName;

/// OID of the XmppAddr `otherName` (id-on-xmppAddr), dotted.
pub const OID_XMPP_ADDR: &str = "1.3.6.1.5.5.7.8.5";
/// OID of the SRVName `otherName` (id-on-dnsSRV, RFC 4985), dotted.
pub const OID_SRV_NAME: &str = "1.3.6.1.5.5.7.8.7";
/// SRV service names (without the leading `_`) that identify an XMPP server-to-server service:
/// `xmpp-server` (RFC 6120) and `xmpps-server` (direct TLS, XEP-0368).
pub const S2S_SRV_SERVICES: [&str; 2] = ["xmpp-server", "xmpps-server"];

/// DER tags read from an `otherName` value.
const TAG_EXPLICIT_0: u8 = 0xA0;
const TAG_UTF8_STRING: u8 = 0x0C;
const TAG_IA5_STRING: u8 = 0x16;

/// One identifier presented in a certificate's subjectAltName.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PresentedId {
    /// XmppAddr: a JID (for a server, a bare domain), as written in the certificate.
    XmppAddr(String),
    /// SRV-ID `_service.domain`, split: `service` without the `_`.
    SrvId {
        /// Service name without the leading underscore, e.g. `xmpp-server`.
        service: String,
        /// The domain the service is offered for.
        domain: String,
    },
    /// DNS-ID, possibly with a `*` wildcard label.
    DnsId(String),
}

/// Why a certificate's identities could not be read. Any of these means "no identity": the
/// caller must not treat the certificate as naming any domain.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdentityError {
    /// The certificate is not parseable X.509 DER (detail from x509-parser).
    Certificate(String),
    /// The subjectAltName extension is malformed or duplicated.
    SubjectAltName(String),
    /// An XmppAddr `otherName` is not a `[0] EXPLICIT UTF8String` with non-empty content.
    MalformedXmppAddr,
    /// An SRV-ID `otherName` is not a `[0] EXPLICIT IA5String` of the form `_service.domain`.
    MalformedSrvId,
    /// A `dNSName` is empty or not ASCII (x509-parser accepts UTF-8 there; RFC 5280 does not).
    MalformedDnsId,
}

impl std::fmt::Display for IdentityError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IdentityError::Certificate(d) => write!(f, "certificate is not valid X.509: {d}"),
            IdentityError::SubjectAltName(d) => write!(f, "bad subjectAltName extension: {d}"),
            IdentityError::MalformedXmppAddr => f.write_str("malformed XmppAddr otherName"),
            IdentityError::MalformedSrvId => f.write_str("malformed SRVName otherName"),
            IdentityError::MalformedDnsId => f.write_str("malformed dNSName"),
        }
    }
}

impl std::error::Error for IdentityError {}

/// Lists the XMPP-relevant identifiers in the subjectAltName of the DER certificate `cert_der`.
///
/// Other name types (URI, IP, e-mail, unknown `otherName`s) are skipped. A certificate without
/// subjectAltName yields an empty list: the CN is deliberately not consulted.
pub fn presented_ids(cert_der: &[u8]) -> Result<Vec<PresentedId>, IdentityError> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|e| IdentityError::Certificate(e.to_string()))?;
    let san = match cert.subject_alternative_name() {
        Ok(Some(san)) => san,
        Ok(None) => return Ok(Vec::new()),
        Err(e) => return Err(IdentityError::SubjectAltName(e.to_string())),
    };
    let mut ids = Vec::new();
    for name in &san.value.general_names {
        match name {
            GeneralName::DNSName(n) => {
                if n.is_empty() || !n.is_ascii() {
                    return Err(IdentityError::MalformedDnsId);
                }
                ids.push(PresentedId::DnsId((*n).to_owned()));
            }
            GeneralName::OtherName(oid, value) => {
                let oid = oid.to_id_string();
                if oid == OID_XMPP_ADDR {
                    let s = other_name_string(value, TAG_UTF8_STRING)
                        .filter(|s| !s.is_empty())
                        .ok_or(IdentityError::MalformedXmppAddr)?;
                    ids.push(PresentedId::XmppAddr(s.to_owned()));
                } else if oid == OID_SRV_NAME {
                    let s = other_name_string(value, TAG_IA5_STRING)
                        .filter(|s| s.is_ascii())
                        .ok_or(IdentityError::MalformedSrvId)?;
                    ids.push(split_srv_id(s).ok_or(IdentityError::MalformedSrvId)?);
                }
            }
            _ => {}
        }
    }
    Ok(ids)
}

/// True if one of `ids` names the XMPP server domain `domain` (the reference identifier).
///
/// Comparison is ASCII case-insensitive and ignores one trailing dot. Rules:
/// - XmppAddr must be a bare domain (no `@`, no `/`) equal to `domain`; no wildcards.
/// - SRV-ID must be for `_xmpp-server` or `_xmpps-server` and its domain equal to `domain`.
/// - DNS-ID equal to `domain`, or `*.rest` where `*` is the complete left-most label, matching
///   exactly one non-empty label, and `rest` has at least two labels (no `*.com`).
///
/// `domain` must already be in the form certificates carry (A-labels for IDNs): no IDNA mapping
/// is done here. An empty or syntactically odd `domain` (empty label, `*`, `@`, `/`) never matches.
pub fn matches_domain(ids: &[PresentedId], domain: &str) -> bool {
    let Some(reference) = reference_domain(domain) else {
        return false;
    };
    ids.iter().any(|id| match id {
        PresentedId::XmppAddr(addr) => {
            !addr.contains(['@', '/', '*']) && eq_domain(addr, reference)
        }
        PresentedId::SrvId { service, domain } => {
            S2S_SRV_SERVICES
                .iter()
                .any(|s| s.eq_ignore_ascii_case(service))
                && !domain.contains('*')
                && eq_domain(domain, reference)
        }
        PresentedId::DnsId(name) => dns_id_matches(name, reference),
    })
}

/// Validates and trims the reference identifier; `None` means "matches nothing".
fn reference_domain(domain: &str) -> Option<&str> {
    let d = strip_root_dot(domain);
    let well_formed = !d.is_empty()
        && !d.contains(['@', '/', '*'])
        && !d.chars().any(char::is_whitespace)
        && d.split('.').all(|label| !label.is_empty());
    well_formed.then_some(d)
}

fn strip_root_dot(s: &str) -> &str {
    s.strip_suffix('.').unwrap_or(s)
}

fn eq_domain(presented: &str, reference: &str) -> bool {
    strip_root_dot(presented).eq_ignore_ascii_case(reference)
}

fn dns_id_matches(presented: &str, reference: &str) -> bool {
    let presented = strip_root_dot(presented);
    let Some(suffix) = presented.strip_prefix("*.") else {
        // A `*` anywhere but as the whole left-most label is not a wildcard we honour.
        return !presented.contains('*') && presented.eq_ignore_ascii_case(reference);
    };
    // `*.com`-style wildcards and nested/partial wildcards never match.
    if suffix.contains('*') || !suffix.contains('.') || suffix.split('.').any(str::is_empty) {
        return false;
    }
    match reference.split_once('.') {
        Some((first, rest)) => !first.is_empty() && rest.eq_ignore_ascii_case(suffix),
        None => false,
    }
}

/// Splits `_service.domain`; both parts non-empty.
fn split_srv_id(s: &str) -> Option<PresentedId> {
    let (service, domain) = s.strip_prefix('_')?.split_once('.')?;
    if service.is_empty() || domain.is_empty() {
        return None;
    }
    Some(PresentedId::SrvId {
        service: service.to_owned(),
        domain: domain.to_owned(),
    })
}

/// Reads an `otherName` value (`[0] EXPLICIT` around one string of tag `inner_tag`), exactly,
/// with no trailing bytes at either level. Returns the string if it is UTF-8.
fn other_name_string(value: &[u8], inner_tag: u8) -> Option<&str> {
    let (tag, explicit, rest) = der_tlv(value)?;
    if tag != TAG_EXPLICIT_0 || !rest.is_empty() {
        return None;
    }
    let (tag, content, rest) = der_tlv(explicit)?;
    if tag != inner_tag || !rest.is_empty() {
        return None;
    }
    std::str::from_utf8(content).ok()
}

/// One DER TLV with a single-byte tag: `(tag, content, rest)`. Definite lengths only, minimal
/// long form up to 4 length bytes.
fn der_tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, input) = input.split_first()?;
    if tag & 0x1F == 0x1F {
        return None; // multi-byte tags are not used by the types we read
    }
    let (&first, mut input) = input.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7F);
        if n == 0 || n > 4 || input.len() < n {
            return None;
        }
        let mut len = 0usize;
        for &b in &input[..n] {
            len = (len << 8) | usize::from(b);
        }
        // DER: long form only when needed, no leading zero byte.
        if len < 0x80 || input[0] == 0 {
            return None;
        }
        input = &input[n..];
        len
    };
    if input.len() < len {
        return None;
    }
    let (content, rest) = input.split_at(len);
    Some((tag, content, rest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::{LeafSpec, ThrowawayCa};
    use rustls_pki_types::{pem::PemObject, CertificateDer};

    fn der(pem: &str) -> CertificateDer<'static> {
        CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
    }

    fn dns(s: &str) -> Vec<PresentedId> {
        vec![PresentedId::DnsId(s.into())]
    }

    #[test]
    fn reads_xmpp_addr_and_dns_id_from_issued_cert() {
        let ca = ThrowawayCa::new("ca").unwrap();
        let leaf = ca.issue(&["a.test"]).unwrap();
        let ids = presented_ids(&der(&leaf.cert_pem)).unwrap();
        assert!(ids.contains(&PresentedId::DnsId("a.test".into())));
        assert!(ids.contains(&PresentedId::XmppAddr("a.test".into())));
    }

    #[test]
    fn reads_srv_id_as_ia5_other_name() {
        let ca = ThrowawayCa::new("ca").unwrap();
        let spec = LeafSpec {
            srv_ids: vec!["_xmpp-server.a.test".into(), "_xmpps-server.b.test".into()],
            ..LeafSpec::default()
        };
        let leaf = ca.issue_custom(&spec).unwrap();
        let ids = presented_ids(&der(&leaf.cert_pem)).unwrap();
        assert_eq!(
            ids,
            vec![
                PresentedId::SrvId {
                    service: "xmpp-server".into(),
                    domain: "a.test".into()
                },
                PresentedId::SrvId {
                    service: "xmpps-server".into(),
                    domain: "b.test".into()
                },
            ]
        );
        assert!(matches_domain(&ids, "a.test"));
        assert!(matches_domain(&ids, "B.Test"));
        assert!(!matches_domain(&ids, "c.test"));
    }

    #[test]
    fn ignores_common_name() {
        let ca = ThrowawayCa::new("ca").unwrap();
        let spec = LeafSpec {
            common_name: Some("a.test".into()),
            ..LeafSpec::default()
        };
        let leaf = ca.issue_custom(&spec).unwrap();
        let ids = presented_ids(&der(&leaf.cert_pem)).unwrap();
        assert!(ids.is_empty());
        assert!(!matches_domain(&ids, "a.test"));
    }

    #[test]
    fn rejects_garbage_certificate_bytes() {
        assert!(matches!(
            presented_ids(b"\x30\x03\x02\x01"),
            Err(IdentityError::Certificate(_))
        ));
        assert!(presented_ids(&[]).is_err());
    }

    #[test]
    fn xmpp_addr_must_be_bare_domain() {
        let ids = vec![PresentedId::XmppAddr("user@a.test".into())];
        assert!(!matches_domain(&ids, "a.test"));
        assert!(!matches_domain(&ids, "user@a.test"));
        let ids = vec![PresentedId::XmppAddr("a.test/res".into())];
        assert!(!matches_domain(&ids, "a.test"));
        let ids = vec![PresentedId::XmppAddr("A.TEST".into())];
        assert!(matches_domain(&ids, "a.test"));
        let ids = vec![PresentedId::XmppAddr("*.test".into())];
        assert!(!matches_domain(&ids, "a.test"));
    }

    #[test]
    fn srv_id_for_other_services_does_not_match() {
        let ids = vec![PresentedId::SrvId {
            service: "xmpp-client".into(),
            domain: "a.test".into(),
        }];
        assert!(!matches_domain(&ids, "a.test"));
    }

    #[test]
    fn wildcard_dns_id_matches_exactly_one_left_most_label() {
        let ids = dns("*.example.com");
        assert!(matches_domain(&ids, "xmpp.example.com"));
        assert!(matches_domain(&ids, "XMPP.Example.COM"));
        assert!(!matches_domain(&ids, "example.com"));
        assert!(!matches_domain(&ids, "a.b.example.com"));
        assert!(!matches_domain(&ids, ".example.com"));
        assert!(!matches_domain(&ids, "xmppexample.com"));
    }

    #[test]
    fn rejects_partial_nested_and_public_suffix_wildcards() {
        assert!(!matches_domain(&dns("x*.example.com"), "xa.example.com"));
        assert!(!matches_domain(&dns("a.*.example.com"), "a.b.example.com"));
        assert!(!matches_domain(&dns("*.*.example.com"), "a.b.example.com"));
        assert!(!matches_domain(&dns("*.com"), "example.com"));
        assert!(!matches_domain(&dns("*"), "example"));
    }

    #[test]
    fn dns_id_compares_case_insensitively_and_ignores_root_dot() {
        assert!(matches_domain(&dns("A.Test."), "a.test"));
        assert!(matches_domain(&dns("a.test"), "a.test."));
        assert!(!matches_domain(&dns("a.test"), "b.test"));
        assert!(!matches_domain(&dns("a.test"), "a.test.evil"));
    }

    #[test]
    fn malformed_reference_matches_nothing() {
        let ids = vec![
            PresentedId::DnsId("*.a.test".into()),
            PresentedId::XmppAddr("a.test".into()),
        ];
        for bad in [
            "",
            ".",
            "..a.test",
            "x..a.test",
            "*.a.test",
            "a test",
            "@a.test",
        ] {
            assert!(!matches_domain(&ids, bad), "{bad:?}");
        }
    }

    #[test]
    fn other_name_reader_is_strict() {
        // [0] { UTF8String "a" }
        assert_eq!(
            other_name_string(&[0xA0, 3, 0x0C, 1, b'a'], TAG_UTF8_STRING),
            Some("a")
        );
        // wrong inner tag
        assert_eq!(
            other_name_string(&[0xA0, 3, 0x16, 1, b'a'], TAG_UTF8_STRING),
            None
        );
        // trailing byte inside and outside
        assert_eq!(
            other_name_string(&[0xA0, 4, 0x0C, 1, b'a', 0], TAG_UTF8_STRING),
            None
        );
        assert_eq!(
            other_name_string(&[0xA0, 3, 0x0C, 1, b'a', 0], TAG_UTF8_STRING),
            None
        );
        // truncated, indefinite length, non-minimal length
        assert_eq!(
            other_name_string(&[0xA0, 5, 0x0C, 1], TAG_UTF8_STRING),
            None
        );
        assert_eq!(other_name_string(&[0xA0, 0x80], TAG_UTF8_STRING), None);
        assert_eq!(
            other_name_string(&[0xA0, 0x81, 3, 0x0C, 1, b'a'], TAG_UTF8_STRING),
            None
        );
        assert_eq!(other_name_string(&[], TAG_UTF8_STRING), None);
    }
}
