//! Throw-away certificate authority for the demo, the loadgen and tests.
//!
//! Issues leaf certificates for XMPP domains carrying both a DNS-ID and an XmppAddr identifier
//! (RFC 6120 §13.7.1.4, OID 1.3.6.1.5.5.7.8.5), which is what servers check for S2S identity.
//! Never used for production certificates: keys live in memory and are written only where asked.

use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType,
};

/// OID of the XmppAddr `otherName` (id-on-xmppAddr).
pub const OID_XMPP_ADDR: [u64; 9] = [1, 3, 6, 1, 5, 5, 7, 8, 5];

/// OID of the SRVName `otherName` (id-on-dnsSRV, RFC 4985).
pub const OID_SRV_NAME: [u64; 9] = [1, 3, 6, 1, 5, 5, 7, 8, 7];
/// OID of the subjectAltName extension.
const OID_SUBJECT_ALT_NAME: [u64; 4] = [2, 5, 29, 17];

/// A calendar date `(year, month, day)`, UTC midnight.
pub type Ymd = (i32, u8, u8);

/// What [`ThrowawayCa::issue_custom`] puts in a leaf (tests of identity checking).
#[derive(Clone, Debug, Default)]
pub struct LeafSpec {
    /// `dNSName` entries, written as given (so `*.example.com` is possible).
    pub dns_ids: Vec<String>,
    /// XmppAddr `otherName` entries (UTF8String).
    pub xmpp_addrs: Vec<String>,
    /// SRV-ID `otherName` entries (IA5String), e.g. `_xmpp-server.example.com`.
    pub srv_ids: Vec<String>,
    /// Subject common name; `None` gives an empty subject.
    pub common_name: Option<String>,
    /// `(not_before, not_after)` as `(year, month, day)`; `None` keeps rcgen's wide default.
    pub validity: Option<(Ymd, Ymd)>,
    /// EKU serverAuth only (default: serverAuth and clientAuth).
    pub server_auth_only: bool,
}

/// Gives a certificate a validity period that every peer can handle. rcgen's default ends in
/// year 4096, and ejabberd 23.01 (p1_pkix) then crashes arming its expiry-notice timer
/// (`erlang:start_timer` badarg: the delay exceeds the timer range) and serves no TLS at all.
fn set_validity(params: &mut CertificateParams) {
    params.not_before = rcgen::date_time_ymd(2000, 1, 1);
    params.not_after = rcgen::date_time_ymd(2099, 12, 31);
}

/// A certificate and its private key, both PEM.
#[derive(Clone, Debug)]
pub struct IssuedCert {
    /// PEM certificate (leaf only; the CA certificate is [`ThrowawayCa::cert_pem`]).
    pub cert_pem: String,
    /// PEM PKCS#8 private key.
    pub key_pem: String,
}

/// An in-memory certificate authority with an ECDSA P-256 key.
pub struct ThrowawayCa {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl ThrowawayCa {
    /// Creates a new CA named `name`.
    pub fn new(name: &str) -> Result<Self, rcgen::Error> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        params.distinguished_name = dn;
        set_validity(&mut params);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key)?;
        Ok(ThrowawayCa { cert, key })
    }

    /// Creates an intermediate CA named `name`, signed by this CA (tests of chain building: a
    /// leaf it issues validates only if the intermediate's [`Self::cert_pem`] is sent along).
    pub fn intermediate(&self, name: &str) -> Result<Self, rcgen::Error> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.signed_by(&key, &self.cert, &self.key)?;
        Ok(ThrowawayCa { cert, key })
    }

    /// The CA certificate, PEM, to be used as a trust root.
    pub fn cert_pem(&self) -> String {
        self.cert.pem()
    }

    /// Issues a server/client certificate for the XMPP `domains` (DNS-ID and XmppAddr for each).
    pub fn issue(&self, domains: &[&str]) -> Result<IssuedCert, rcgen::Error> {
        self.issue_with(domains, true)
    }

    /// Issues a certificate for `domains`, with or without XmppAddr identifiers (tests of the
    /// DNS-ID-only path).
    pub fn issue_with(
        &self,
        domains: &[&str],
        xmpp_addr: bool,
    ) -> Result<IssuedCert, rcgen::Error> {
        let key = KeyPair::generate()?;
        let names: Vec<String> = domains.iter().map(|d| d.to_string()).collect();
        let mut params = CertificateParams::new(names)?;
        if xmpp_addr {
            for d in domains {
                params
                    .subject_alt_names
                    .push(SanType::OtherName((OID_XMPP_ADDR.to_vec(), (*d).into())));
            }
        }
        let mut dn = DistinguishedName::new();
        // The CN is deliberately not the domain: RFC 9525 says to ignore it.
        dn.push(DnType::CommonName, "stanza-router test leaf");
        params.distinguished_name = dn;
        set_validity(&mut params);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params.signed_by(&key, &self.cert, &self.key)?;
        Ok(IssuedCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Issues a leaf as described by `spec`. The subjectAltName is DER-encoded here because rcgen
    /// only writes UTF8String `otherName`s and SRV-ID needs an IA5String.
    pub fn issue_custom(&self, spec: &LeafSpec) -> Result<IssuedCert, rcgen::Error> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        let mut dn = DistinguishedName::new();
        if let Some(cn) = &spec.common_name {
            dn.push(DnType::CommonName, cn.as_str());
        }
        params.distinguished_name = dn;
        if let Some(((y0, m0, d0), (y1, m1, d1))) = spec.validity {
            params.not_before = rcgen::date_time_ymd(y0, m0, d0);
            params.not_after = rcgen::date_time_ymd(y1, m1, d1);
        }
        let mut names = Vec::new();
        for d in &spec.dns_ids {
            names.extend(der_tlv(0x82, d.as_bytes()));
        }
        for a in &spec.xmpp_addrs {
            names.extend(other_name(&OID_XMPP_ADDR, 0x0C, a));
        }
        for s in &spec.srv_ids {
            names.extend(other_name(&OID_SRV_NAME, 0x16, s));
        }
        if !names.is_empty() {
            let mut ext =
                CustomExtension::from_oid_content(&OID_SUBJECT_ALT_NAME, der_tlv(0x30, &names));
            // RFC 5280 §4.2.1.6: critical when the subject is empty.
            ext.set_criticality(spec.common_name.is_none());
            params.custom_extensions.push(ext);
        }
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        if !spec.server_auth_only {
            params
                .extended_key_usages
                .push(ExtendedKeyUsagePurpose::ClientAuth);
        }
        let cert = params.signed_by(&key, &self.cert, &self.key)?;
        Ok(IssuedCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Issues a self-signed certificate for `domains` (no CA): what a partner with an untrusted
    /// certificate presents.
    pub fn self_signed(domains: &[&str]) -> Result<IssuedCert, rcgen::Error> {
        let key = KeyPair::generate()?;
        let names: Vec<String> = domains.iter().map(|d| d.to_string()).collect();
        let mut params = CertificateParams::new(names)?;
        set_validity(&mut params);
        let cert = params.self_signed(&key)?;
        Ok(IssuedCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// DER `otherName` GeneralName: `[0] IMPLICIT SEQUENCE { OID, [0] EXPLICIT string }`.
fn other_name(oid: &[u64], string_tag: u8, value: &str) -> Vec<u8> {
    let mut body = der_tlv(0x06, &der_oid_content(oid));
    body.extend(der_tlv(0xA0, &der_tlv(string_tag, value.as_bytes())));
    der_tlv(0xA0, &body)
}

/// Content octets of an OBJECT IDENTIFIER (the arcs are constants with at least two entries).
fn der_oid_content(arcs: &[u64]) -> Vec<u8> {
    let mut out = Vec::new();
    let (first, second) = (
        arcs.first().copied().unwrap_or(0),
        arcs.get(1).copied().unwrap_or(0),
    );
    for arc in std::iter::once(first * 40 + second).chain(arcs.iter().skip(2).copied()) {
        let mut groups = vec![(arc & 0x7F) as u8];
        let mut rest = arc >> 7;
        while rest > 0 {
            groups.push((rest & 0x7F) as u8 | 0x80);
            rest >>= 7;
        }
        out.extend(groups.iter().rev());
    }
    out
}

/// One DER TLV with a single-byte tag and a definite length.
fn der_tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_certificate_carries_xmpp_addr_and_dns_id() {
        let ca = ThrowawayCa::new("test CA").unwrap();
        let leaf = ca.issue(&["a.test"]).unwrap();
        let der = rustls_pki_types::pem::PemObject::from_pem_slice(leaf.cert_pem.as_bytes())
            .map(|c: rustls_pki_types::CertificateDer<'static>| c)
            .unwrap();
        let (_, x509) = x509_parser::parse_x509_certificate(&der).unwrap();
        let san = x509.subject_alternative_name().unwrap().unwrap();
        let mut dns = false;
        let mut xmpp = false;
        for name in &san.value.general_names {
            match name {
                x509_parser::extensions::GeneralName::DNSName(n) => dns |= *n == "a.test",
                x509_parser::extensions::GeneralName::OtherName(oid, _) => {
                    xmpp |= oid.to_id_string() == "1.3.6.1.5.5.7.8.5"
                }
                _ => {}
            }
        }
        assert!(dns && xmpp);
    }
}
