//! SIP and SIPS URIs (RFC 3261 §19.1): parse as borrowed views, print back, percent-decode the
//! user part (RFC 7247 maps it to a JID localpart), percent-encode when building.

use super::typed::Params;
use std::borrow::Cow;
use std::fmt;

/// Why a URI did not parse. The peer that sent it is at fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum UriError {
    /// Not `sip:` or `sips:` (e.g. `tel:`, which RFC 7247 does not map).
    UnsupportedScheme,
    /// Syntax error.
    Syntax,
    /// A `%` escape is not two hex digits.
    BadEscape,
    /// The port is not a number below 65536.
    BadPort,
}

impl fmt::Display for UriError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UriError::UnsupportedScheme => "URI scheme is not sip or sips",
            UriError::Syntax => "malformed SIP URI",
            UriError::BadEscape => "malformed percent escape in URI",
            UriError::BadPort => "malformed port in URI",
        })
    }
}

impl std::error::Error for UriError {}

/// A `sip:` or `sips:` URI, borrowed from the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SipUri<'a> {
    /// `true` for `sips:`.
    pub secure: bool,
    /// User part as written (still percent-escaped; may contain `;` — RFC 4475 semiuri).
    pub user: Option<&'a str>,
    /// Password as written.
    pub password: Option<&'a str>,
    /// Host: a name, an IPv4 literal, or an IPv6 reference with brackets.
    pub host: &'a str,
    /// Port.
    pub port: Option<u16>,
    /// URI parameters (`;transport=tcp;lr`).
    pub params: Params<'a>,
    /// Header part after `?`, as written (not allowed in a Request-URI).
    pub headers: Option<&'a str>,
}

fn is_user_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-_.!~*'()%&=+$,;?/".contains(&b)
}

fn is_password_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-_.!~*'()%&=+$,".contains(&b)
}

fn check_escapes(s: &[u8]) -> Result<(), UriError> {
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' {
            let ok = s.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && s.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
            if !ok {
                return Err(UriError::BadEscape);
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    Ok(())
}

impl<'a> SipUri<'a> {
    /// Parses a SIP/SIPS URI. The scheme is case-insensitive; whitespace anywhere is an error
    /// (RFC 4475 §3.1.2.8 lwsruri).
    pub fn parse(s: &'a str) -> Result<Self, UriError> {
        let b = s.as_bytes();
        let colon = b.iter().position(|&c| c == b':').ok_or(UriError::Syntax)?;
        let secure = match &b[..colon] {
            x if x.eq_ignore_ascii_case(b"sip") => false,
            x if x.eq_ignore_ascii_case(b"sips") => true,
            _ => return Err(UriError::UnsupportedScheme),
        };
        let rest = &s[colon + 1..];
        if rest
            .bytes()
            .any(|c| c <= b' ' || c == 0x7f || c == b'<' || c == b'>' || c == b'"')
        {
            return Err(UriError::Syntax);
        }
        let (mut user, mut password, hostpart) = match rest.find('@') {
            Some(at) => {
                let (ui, hp) = (&rest[..at], &rest[at + 1..]);
                match ui.find(':') {
                    Some(c) => (Some(&ui[..c]), Some(&ui[c + 1..]), hp),
                    None => (Some(ui), None, hp),
                }
            }
            None => (None, None, rest),
        };
        if let Some(u) = user {
            if u.is_empty() || !u.bytes().all(is_user_byte) {
                return Err(UriError::Syntax);
            }
            check_escapes(u.as_bytes())?;
        }
        if let Some(p) = password {
            if !p.bytes().all(is_password_byte) {
                return Err(UriError::Syntax);
            }
            check_escapes(p.as_bytes())?;
        }
        if user == Some("") {
            user = None;
            password = None;
        }
        let (hostport, headers) = match hostpart.find('?') {
            Some(q) => (&hostpart[..q], Some(&hostpart[q + 1..])),
            None => (hostpart, None),
        };
        let (hostport, params) = match hostport.find(';') {
            Some(sc) => (&hostport[..sc], &hostport[sc..]),
            None => (hostport, ""),
        };
        let (host, port) = if hostport.starts_with('[') {
            let end = hostport.find(']').ok_or(UriError::Syntax)?;
            let inner = &hostport[1..end];
            if inner.is_empty()
                || !inner
                    .bytes()
                    .all(|c| c.is_ascii_hexdigit() || c == b':' || c == b'.')
            {
                return Err(UriError::Syntax);
            }
            (&hostport[..=end], &hostport[end + 1..])
        } else {
            let end = hostport.find(':').unwrap_or(hostport.len());
            let h = &hostport[..end];
            if h.is_empty()
                || !h
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.')
            {
                return Err(UriError::Syntax);
            }
            (h, &hostport[end..])
        };
        let port = match port.strip_prefix(':') {
            None if port.is_empty() => None,
            None => return Err(UriError::Syntax),
            Some(p) => {
                Some(super::typed::parse_num::<u16>(p.as_bytes()).map_err(|_| UriError::BadPort)?)
            }
        };
        let params = Params::parse(params.as_bytes()).map_err(|_| UriError::Syntax)?;
        if params.iter().any(|(n, v)| {
            check_escapes(n.as_bytes()).is_err()
                || v.is_some_and(|v| check_escapes(v.as_bytes()).is_err())
        }) {
            return Err(UriError::BadEscape);
        }
        if let Some(h) = headers {
            check_escapes(h.as_bytes())?;
        }
        Ok(SipUri {
            secure,
            user,
            password,
            host,
            port,
            params,
            headers,
        })
    }

    /// The user part with `%XX` escapes decoded. Decoded bytes that are not UTF-8 are an error
    /// (they could not become a JID localpart anyway).
    pub fn user_decoded(&self) -> Result<Option<Cow<'a, str>>, UriError> {
        self.user.map(percent_decode).transpose()
    }

    /// A URI parameter (`transport`, `lr`, `gr`…).
    pub fn param(&self, name: &str) -> Option<Option<&'a str>> {
        self.params.get(name)
    }
}

/// Decodes `%XX` escapes; borrows when there are none.
pub fn percent_decode(s: &str) -> Result<Cow<'_, str>, UriError> {
    if !s.contains('%') {
        return Ok(Cow::Borrowed(s));
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = |c: Option<&u8>| c.and_then(|c| (*c as char).to_digit(16));
            let (h, l) = (hex(b.get(i + 1)), hex(b.get(i + 2)));
            match (h, l) {
                (Some(h), Some(l)) => out.push((h * 16 + l) as u8),
                _ => return Err(UriError::BadEscape),
            }
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out)
        .map(Cow::Owned)
        .map_err(|_| UriError::BadEscape)
}

/// Appends `user` percent-encoded for the user part of a SIP URI: unreserved and
/// user-unreserved characters stay, everything else (including `@ : ; ? %` and non-ASCII) is
/// escaped. `;` and `?` are escaped although RFC 3261 allows them, so the result never reads
/// as URI parameters to a lax parser.
pub fn encode_user(user: &str, out: &mut Vec<u8>) {
    for &b in user.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-_.!~*'()&=+$,/".contains(&b) {
            out.push(b);
        } else {
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        }
    }
}

impl fmt::Display for SipUri<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.secure { "sips:" } else { "sip:" })?;
        if let Some(u) = self.user {
            f.write_str(u)?;
            if let Some(p) = self.password {
                write!(f, ":{p}")?;
            }
            f.write_str("@")?;
        }
        f.write_str(self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        // Params were validated as UTF-8 text when parsed.
        f.write_str(std::str::from_utf8(self.params.raw()).unwrap_or(""))?;
        if let Some(h) = self.headers {
            write!(f, "?{h}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_full_sips_uri_and_prints_it_back() {
        let s = "sips:alice:pw@[2001:db8::1]:5061;transport=tcp;lr?subject=hi";
        let u = SipUri::parse(s).unwrap();
        assert!(u.secure);
        assert_eq!(
            (u.user, u.password, u.host, u.port),
            (Some("alice"), Some("pw"), "[2001:db8::1]", Some(5061))
        );
        assert_eq!(u.param("transport"), Some(Some("tcp")));
        assert_eq!(u.param("LR"), Some(None));
        assert_eq!(u.headers, Some("subject=hi"));
        assert_eq!(u.to_string(), s);
    }

    #[test]
    fn decodes_escaped_user_part() {
        let u = SipUri::parse("sip:sips%3Auser%40example.com@example.net").unwrap();
        assert_eq!(
            u.user_decoded().unwrap().as_deref(),
            Some("sips:user@example.com")
        );
        let u = SipUri::parse("sip:null-%00-null@example.com").unwrap();
        assert_eq!(u.user_decoded().unwrap().as_deref(), Some("null-\0-null"));
        assert_eq!(SipUri::parse("sip:a%4@b").unwrap_err(), UriError::BadEscape);
    }

    #[test]
    fn user_part_may_hold_semicolons() {
        let u = SipUri::parse("sip:user;par=u%40example.net@example.com").unwrap();
        assert_eq!(u.user, Some("user;par=u%40example.net"));
        assert_eq!(u.host, "example.com");
    }

    #[test]
    fn rejects_bad_uris() {
        assert_eq!(
            SipUri::parse("tel:+15551234").unwrap_err(),
            UriError::UnsupportedScheme
        );
        assert!(SipUri::parse("sip:user@example.com; lr").is_err());
        assert!(SipUri::parse("sip:@").is_err());
        assert_eq!(SipUri::parse("sip:h:99999").unwrap_err(), UriError::BadPort);
    }

    #[test]
    fn encode_user_round_trips_through_decode() {
        let mut out = Vec::new();
        encode_user("jürgen@x;y?z%", &mut out);
        let enc = String::from_utf8(out).unwrap();
        assert_eq!(enc, "j%C3%BCrgen%40x%3By%3Fz%25");
        assert_eq!(percent_decode(&enc).unwrap(), "jürgen@x;y?z%");
    }
}
