//! JID ⇄ SIP URI (RFC 7247 §5 XMPP→SIP, §6 SIP→XMPP).
//!
//! | JID part    | SIP URI part                                   |
//! |-------------|------------------------------------------------|
//! | localpart   | userpart, percent-encoded (RFC 3261 `user`)    |
//! | domainpart  | host (ASCII / A-label only; lowercased)        |
//! | resource    | `;gr=` GRUU parameter, percent-encoded         |
//! | (none)      | `tel:` URIs and `user=phone`: no mapping       |
//!
//! Case: XMPP localparts are case-mapped (RFC 7622 §3.3, PRECIS UsernameCaseMapped) while SIP
//! userparts are case-sensitive (RFC 3261 §19.1.4). We choose the XMPP rule in both directions:
//! the localpart/userpart is lowercased (Unicode `to_lowercase`, an approximation of PRECIS case
//! mapping). So `sip:Alice@x` and `sip:alice@x` reach the same JID; a SIP domain that really had
//! two users differing only in case would collapse them (Lync treats SIP URIs case-insensitively,
//! so this does not happen with the legacy side). Resources are case-sensitive in XMPP and are
//! kept as-is. Domains are lowercased (DNS names are case-insensitive).
//!
//! Verification: ⚠ RFC 7247 §5/§6 text could not be read in the stored corpora; the mapping
//! above follows protocol-facts §2 and the brief. The character classes are RFC 3261 §25.1
//! (`user`, `paramchar`) and RFC 7622 §3.3.1 (localpart exclusions, via `Jid::parse`).
//! IDN: a JID domain with U-labels becomes its A-label form in the SIP URI (SIP hosts are
//! ASCII, RFC 3261 §25.1); a SIP host with A-labels (`xn--`) becomes U-labels in the JID (the
//! form RFC 7622 §3.2 compares). Both by UTS #46 processing (the `idna` crate). ⚠ Which
//! direction RFC 7247 asks for could not be checked; this is what comparison needs.

use super::MapError;
use crate::xmpp::jid::{Jid, JidError};

/// Longest SIP URI accepted for mapping (three 1023-byte JID parts, percent-encoded, fit).
const MAX_URI: usize = 8192;

/// Maps a JID to a SIP URI: `sip:` + encoded localpart + `@` + domain [+ `;gr=` + resource].
pub fn jid_to_sip_uri(jid: &str) -> Result<String, MapError> {
    sip_uri_of(&Jid::parse(jid).map_err(jid_error)?)
}

/// [`jid_to_sip_uri`] of a JID already parsed (and so checked).
pub fn sip_uri_of(j: &Jid<'_>) -> Result<String, MapError> {
    let len = j.local.map_or(0, |l| l.len() + 1) + j.domain.len() + j.resource.map_or(0, str::len);
    let mut out = String::with_capacity(len + 16);
    write_sip_uri_of(j, &mut out)?;
    Ok(out)
}

/// [`sip_uri_of`], appended to `out` (which is left as it was on error).
pub fn write_sip_uri_of(j: &Jid<'_>, out: &mut String) -> Result<(), MapError> {
    let mark = out.len();
    let written = push_sip_uri(j, out);
    if written.is_err() {
        out.truncate(mark);
    }
    written
}

fn push_sip_uri(j: &Jid<'_>, out: &mut String) -> Result<(), MapError> {
    out.push_str("sip:");
    if let Some(local) = j.local {
        if local.is_ascii() {
            // The common case, without the allocation of a Unicode lowercasing.
            encode_lower_ascii(local, is_user_char, out);
        } else {
            encode(&local.to_lowercase(), is_user_char, out);
        }
        out.push('@');
    }
    if j.domain.is_ascii() {
        push_lower_ascii(j.domain, out);
    } else {
        let a_labels = idna::domain_to_ascii(j.domain).map_err(|_| MapError::UnicodeDomain)?;
        out.push_str(&a_labels);
    }
    if let Some(res) = j.resource {
        out.push_str(";gr=");
        encode(res, is_param_char, out);
    }
    Ok(())
}

/// Maps a `sip:`/`sips:` URI to a JID: decoded lowercased userpart, lowercased host, `gr` → resource.
///
/// Refused: other schemes and `user=phone` ([`MapError::NoMapping`]), passwords in the URI,
/// malformed escapes, non-UTF-8 escapes, and any character RFC 7622 forbids in the part.
/// The port, other URI parameters and headers are dropped (a JID has no place for them).
pub fn sip_uri_to_jid(uri: &str) -> Result<String, MapError> {
    if uri.len() > MAX_URI {
        return Err(MapError::BadSipUri("URI too long"));
    }
    let rest = strip_scheme(uri)?;
    // '@' cannot appear unescaped in params or headers (RFC 3261 `paramchar`, `hnv-unreserved`),
    // so the first '@' ends the userinfo.
    let (user, hostpart) = match rest.find('@') {
        Some(i) => (Some(&rest[..i]), &rest[i + 1..]),
        None => (None, rest),
    };
    if hostpart.contains('@') {
        return Err(MapError::BadSipUri("more than one '@'"));
    }
    let (host, params) = split_host(hostpart)?;
    let mut resource = None;
    for p in params.split(';').filter(|p| !p.is_empty()) {
        let (name, value) = match p.find('=') {
            Some(i) => (&p[..i], Some(&p[i + 1..])),
            None => (p, None),
        };
        if name.eq_ignore_ascii_case("user")
            && value.is_some_and(|v| v.eq_ignore_ascii_case("phone"))
        {
            return Err(MapError::NoMapping("user=phone URI is a telephone number"));
        }
        if name.eq_ignore_ascii_case("gr") {
            // A bare `;gr` (temporary GRUU without value) names no resource.
            if let Some(v) = value.filter(|v| !v.is_empty()) {
                resource = Some(decode(v)?);
            }
        }
    }
    let mut jid = String::with_capacity(rest.len());
    if let Some(user) = user {
        if user.is_empty() {
            return Err(MapError::BadSipUri("empty userpart"));
        }
        if user.contains(':') {
            return Err(MapError::BadSipUri("password in URI"));
        }
        jid.push_str(&decode(user)?.to_lowercase());
        jid.push('@');
    }
    let domain_start = jid.len();
    if has_a_label(host) {
        let (u_labels, checked) = idna::domain_to_unicode(host);
        checked.map_err(|_| MapError::UnicodeDomain)?;
        jid.push_str(&u_labels);
    } else {
        push_lower_ascii(host, &mut jid);
    }
    let domain_len = jid.len() - domain_start;
    if let Some(r) = resource {
        jid.push('/');
        jid.push_str(&r);
    }
    // The decoded parts must be a valid JID (RFC 7622 §3.3.1 localpart exclusions etc.). A
    // decoded '/' or '@' in the userpart would split differently: check the parts we built.
    let parsed = Jid::parse(&jid).map_err(jid_error)?;
    let local_ok = match user {
        Some(_) => parsed.local.is_some() && parsed.domain.len() == domain_len,
        None => parsed.local.is_none(),
    };
    if !local_ok {
        return Err(MapError::BadJid(
            "userpart decodes to a character not allowed in a localpart",
        ));
    }
    Ok(jid)
}

/// Whether some label of `host` is an A-label (`xn--`, any case).
fn has_a_label(host: &str) -> bool {
    host.split('.')
        .any(|l| l.len() > 4 && l.as_bytes()[..4].eq_ignore_ascii_case(b"xn--"))
}

fn strip_scheme(uri: &str) -> Result<&str, MapError> {
    let colon = uri.find(':').ok_or(MapError::BadSipUri("no scheme"))?;
    let scheme = &uri[..colon];
    if scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips") {
        Ok(&uri[colon + 1..])
    } else if scheme.eq_ignore_ascii_case("tel") {
        Err(MapError::NoMapping("tel: URI is a telephone number"))
    } else {
        Err(MapError::NoMapping("URI scheme is not sip: or sips:"))
    }
}

/// Splits `host[:port][;params][?headers]` into host and the params string (without headers).
fn split_host(s: &str) -> Result<(&str, &str), MapError> {
    let without_headers = s.split('?').next().unwrap_or(s);
    let (hostport, params) = match without_headers.find(';') {
        Some(i) => (&without_headers[..i], &without_headers[i + 1..]),
        None => (without_headers, ""),
    };
    let host = if hostport.starts_with('[') {
        let end = hostport
            .find(']')
            .ok_or(MapError::BadSipUri("unterminated IPv6 reference"))?;
        &hostport[..=end]
    } else {
        hostport.split(':').next().unwrap_or(hostport)
    };
    if host.is_empty() {
        return Err(MapError::BadSipUri("empty host"));
    }
    let valid = host.starts_with('[')
        || host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if !valid {
        return Err(MapError::BadSipUri("host is not a hostname or IP literal"));
    }
    Ok((host, params))
}

fn jid_error(e: JidError) -> MapError {
    MapError::BadJid(match e {
        JidError::Empty => "empty JID or part",
        JidError::TooLong => "part longer than 1023 bytes",
        JidError::BadCharacter => "character not allowed in the part",
    })
}

fn push_lower_ascii(s: &str, out: &mut String) {
    if s.bytes().any(|b| b.is_ascii_uppercase()) {
        out.push_str(&s.to_ascii_lowercase());
    } else {
        out.push_str(s);
    }
}

/// Bytes left unescaped in a userpart: `unreserved` and `user-unreserved` minus `; ? /`, which
/// the grammar allows but which confuse parsers that split on them; escaping is always allowed.
fn is_user_char(b: u8) -> bool {
    USER_CHAR[usize::from(b)]
}

/// RFC 3261 `paramchar` (param-unreserved / unreserved).
fn is_param_char(b: u8) -> bool {
    PARAM_CHAR[usize::from(b)]
}

/// Byte classes as tables (RFC 3261 `unreserved` is alphanum and `-_.!~*'()`): they run on
/// every byte of both addresses of every message.
const USER_CHAR: [bool; 256] = byte_class(b"-_.!~*'()&=+$,");
const PARAM_CHAR: [bool; 256] = byte_class(b"-_.!~*'()[]/:&+$");

/// ASCII letters and digits plus `extra`.
const fn byte_class(extra: &[u8]) -> [bool; 256] {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = (i as u8).is_ascii_alphanumeric();
        i += 1;
    }
    let mut j = 0;
    while j < extra.len() {
        t[extra[j] as usize] = true;
        j += 1;
    }
    t
}

fn encode(s: &str, keep: fn(u8) -> bool, out: &mut String) {
    // Runs of kept bytes are copied whole. They are ASCII, so a non-empty run starts and ends
    // on char boundaries (bytes of a multi-byte char are all escaped).
    let b = s.as_bytes();
    let mut run = 0;
    for (i, &c) in b.iter().enumerate() {
        if !keep(c) {
            if run < i {
                out.push_str(&s[run..i]);
            }
            push_escape(c, out);
            run = i + 1;
        }
    }
    out.push_str(&s[run..]);
}

/// [`encode`] of the ASCII lowercase of `s` (ASCII).
fn encode_lower_ascii(s: &str, keep: fn(u8) -> bool, out: &mut String) {
    // The common case (nothing to lowercase or escape) in one append.
    if s.bytes().all(|c| keep(c) && !c.is_ascii_uppercase()) {
        out.push_str(s);
        return;
    }
    for &c in s.as_bytes() {
        let c = c.to_ascii_lowercase();
        if keep(c) {
            out.push(char::from(c));
        } else {
            push_escape(c, out);
        }
    }
}

fn push_escape(c: u8, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push('%');
    out.push(char::from(HEX[usize::from(c >> 4)]));
    out.push(char::from(HEX[usize::from(c & 0xF)]));
}

fn decode(s: &str) -> Result<String, MapError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hi = b.get(i + 1).and_then(|&c| hex_val(c));
            let lo = b.get(i + 2).and_then(|&c| hex_val(c));
            match (hi, lo) {
                (Some(h), Some(l)) => out.push(h << 4 | l),
                _ => return Err(MapError::BadSipUri("malformed %-escape")),
            }
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| MapError::BadSipUri("%-escapes are not UTF-8"))
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One row per case of the JID → SIP table.
    #[test]
    fn jid_to_sip_table() {
        let rows: &[(&str, &str)] = &[
            ("juliet@example.com", "sip:juliet@example.com"),
            ("Juliet@Example.COM", "sip:juliet@example.com"),
            ("example.com", "sip:example.com"),
            (
                "juliet@example.com/balcony",
                "sip:juliet@example.com;gr=balcony",
            ),
            (
                "juliet@example.com/a b;c",
                "sip:juliet@example.com;gr=a%20b%3Bc",
            ),
            ("o%b#c@example.com", "sip:o%25b%23c@example.com"),
            ("a;b?c@example.com", "sip:a%3Bb%3Fc@example.com"),
            ("a+b=c$d,e@example.com", "sip:a+b=c$d,e@example.com"),
            ("rom\u{e9}o@example.com", "sip:rom%C3%A9o@example.com"),
            ("\u{c9}lise@example.com", "sip:%C3%A9lise@example.com"),
            ("u@[2001:db8::1]", "sip:u@[2001:db8::1]"),
        ];
        for (jid, want) in rows {
            assert_eq!(jid_to_sip_uri(jid).as_deref(), Ok(*want), "{jid}");
        }
    }

    #[test]
    fn idn_domains_map_to_a_labels_and_back_to_u_labels() {
        assert_eq!(
            jid_to_sip_uri("a@B\u{fc}cher.example").as_deref(),
            Ok("sip:a@xn--bcher-kva.example")
        );
        assert_eq!(
            sip_uri_to_jid("sip:a@XN--BCHER-KVA.example;gr=r1").as_deref(),
            Ok("a@b\u{fc}cher.example/r1")
        );
        assert_eq!(
            sip_uri_to_jid("sip:a@xn--zz.example"),
            Err(MapError::UnicodeDomain),
            "an A-label that does not decode"
        );
    }

    #[test]
    fn refuses_malformed_jid() {
        assert!(matches!(jid_to_sip_uri("a@"), Err(MapError::BadJid(_))));
        assert!(matches!(
            jid_to_sip_uri("a b@example.com"),
            Err(MapError::BadJid(_))
        ));
    }

    /// One row per case of the SIP → JID table.
    #[test]
    fn sip_to_jid_table() {
        let rows: &[(&str, &str)] = &[
            ("sip:romeo@example.net", "romeo@example.net"),
            ("sips:romeo@example.net", "romeo@example.net"),
            ("SIP:Romeo@Example.NET", "romeo@example.net"),
            ("sip:example.net", "example.net"),
            (
                "sip:romeo@example.net:5061;transport=tls",
                "romeo@example.net",
            ),
            (
                "sip:romeo@example.net;gr=urn:uuid:f81d4fae",
                "romeo@example.net/urn:uuid:f81d4fae",
            ),
            ("sip:romeo@example.net;gr=a%20b", "romeo@example.net/a b"),
            ("sip:romeo@example.net;gr", "romeo@example.net"),
            ("sip:romeo@example.net?Subject=hi", "romeo@example.net"),
            ("sip:rom%C3%A9o@example.net", "rom\u{e9}o@example.net"),
            ("sip:o%25b@example.net", "o%b@example.net"),
            ("sip:u@[2001:db8::1]:5060", "u@[2001:db8::1]"),
        ];
        for (uri, want) in rows {
            assert_eq!(sip_uri_to_jid(uri).as_deref(), Ok(*want), "{uri}");
        }
    }

    #[test]
    fn tel_and_user_phone_have_no_mapping() {
        for uri in [
            "tel:+1-201-555-0123",
            "sip:+12015550123@example.net;user=phone",
            "sip:+1@example.net;USER=Phone",
            "mailto:a@example.net",
        ] {
            assert!(
                matches!(sip_uri_to_jid(uri), Err(MapError::NoMapping(_))),
                "{uri}"
            );
        }
    }

    #[test]
    fn refuses_localpart_characters_forbidden_by_rfc7622() {
        for uri in [
            "sip:a%40b@example.net",
            "sip:a%2Fb@example.net",
            "sip:a%22b@example.net",
            "sip:a%26b@example.net",
            "sip:a%27b@example.net",
            "sip:a%3Cb@example.net",
            "sip:a%20b@example.net",
            "sip:a%00b@example.net",
        ] {
            assert!(sip_uri_to_jid(uri).is_err(), "{uri}");
        }
    }

    #[test]
    fn refuses_malformed_sip_uris() {
        for uri in [
            "sip:",
            "sip:@example.net",
            "sip:a:secret@example.net",
            "sip:a@b@example.net",
            "sip:a%4@example.net",
            "sip:a%ff@example.net",
            "sip:a@exa mple.net",
            "sip:a@[::1",
            "romeo@example.net",
        ] {
            assert!(sip_uri_to_jid(uri).is_err(), "{uri}");
        }
    }

    #[test]
    fn round_trips_jid_through_sip() {
        for jid in [
            "juliet@example.com",
            "juliet@example.com/balcony",
            "o%b#c@example.com",
            "rom\u{e9}o@example.com/x y",
        ] {
            let uri = jid_to_sip_uri(jid).unwrap();
            assert_eq!(sip_uri_to_jid(&uri).as_deref(), Ok(jid), "{uri}");
        }
    }
}
