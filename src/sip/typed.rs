//! Typed views of the header values a gateway reads. Each parser takes the raw value bytes
//! (folding CRLFs included: CR and LF count as whitespace here, which is exactly what a fold is)
//! and borrows from them; nothing is copied unless a display name needs unescaping.

use super::headers::is_token_byte;
use super::uri::SipUri;
use std::borrow::Cow;
use std::fmt;

/// Why a header value did not parse. The peer that sent it is at fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ValueError {
    /// The value does not match the header's grammar.
    Syntax,
    /// A number is outside the range the header allows.
    OutOfRange,
    /// A value is not UTF-8.
    NotUtf8,
    /// A required header is absent.
    Missing,
}

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ValueError::Syntax => "header value does not match its grammar",
            ValueError::OutOfRange => "number out of range",
            ValueError::NotUtf8 => "header value is not UTF-8",
            ValueError::Missing => "required header missing",
        })
    }
}

impl std::error::Error for ValueError {}

pub(crate) fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

pub(crate) fn trim(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if !is_ws(*first) {
            break;
        }
        s = rest;
    }
    while let [rest @ .., last] = s {
        if !is_ws(*last) {
            break;
        }
        s = rest;
    }
    s
}

fn skip_ws(s: &[u8], mut i: usize) -> usize {
    while i < s.len() && is_ws(s[i]) {
        i += 1;
    }
    i
}

fn utf8(s: &[u8]) -> Result<&str, ValueError> {
    std::str::from_utf8(s).map_err(|_| ValueError::NotUtf8)
}

/// Index just past the closing quote of a quoted string starting at `s[start] == b'"'`.
fn end_of_quoted(s: &[u8], start: usize) -> Result<usize, ValueError> {
    let mut i = start + 1;
    while i < s.len() {
        match s[i] {
            b'\\' => i += 2,
            b'"' => return Ok(i + 1),
            _ => i += 1,
        }
    }
    Err(ValueError::Syntax)
}

/// Splits a list header value at top-level commas (not inside `"..."` or `<...>`), skipping
/// empty elements. A quote left open runs to the end, where the element parser rejects it.
pub fn split_list(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = value;
    std::iter::from_fn(move || loop {
        if rest.is_empty() {
            return None;
        }
        let (mut in_q, mut in_a, mut i) = (false, false, 0);
        while i < rest.len() {
            match rest[i] {
                b'\\' if in_q => i += 1,
                b'"' if !in_a => in_q = !in_q,
                b'<' if !in_q => in_a = true,
                b'>' if !in_q => in_a = false,
                b',' if !in_q && !in_a => break,
                _ => {}
            }
            i += 1;
        }
        let i = i.min(rest.len());
        let item = trim(&rest[..i]);
        rest = rest.get(i + 1..).unwrap_or(&[]);
        if !item.is_empty() {
            return Some(item);
        }
    })
}

/// `;name[=value]` parameters, validated once; values keep their quotes stripped but escapes
/// unprocessed. Names compare case-insensitively.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Params<'a> {
    raw: &'a [u8],
}

impl fmt::Debug for Params<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<'a> Params<'a> {
    /// Validates `raw` (which starts at the first `;`, or is empty) as a parameter list.
    pub fn parse(raw: &'a [u8]) -> Result<Self, ValueError> {
        let p = Params { raw: trim(raw) };
        let mut i = 0;
        while i < p.raw.len() {
            i = p.next_param(i)?.2;
        }
        Ok(p)
    }

    /// Parses the parameter at `i` (at or before its `;`); returns (name, value, next index).
    #[allow(clippy::type_complexity)]
    fn next_param(&self, i: usize) -> Result<(&'a str, Option<&'a str>, usize), ValueError> {
        let s = self.raw;
        let mut i = skip_ws(s, i);
        if s.get(i) != Some(&b';') {
            return Err(ValueError::Syntax);
        }
        i = skip_ws(s, i + 1);
        let n0 = i;
        while i < s.len() && (is_token_byte(s[i]) || matches!(s[i], b'[' | b']' | b':')) {
            i += 1;
        }
        if i == n0 {
            return Err(ValueError::Syntax);
        }
        let name = utf8(&s[n0..i])?;
        i = skip_ws(s, i);
        let mut value = None;
        if s.get(i) == Some(&b'=') {
            i = skip_ws(s, i + 1);
            if s.get(i) == Some(&b'"') {
                let end = end_of_quoted(s, i)?;
                value = Some(utf8(&s[i + 1..end - 1])?);
                i = end;
            } else {
                let v0 = i;
                while i < s.len() && !is_ws(s[i]) && s[i] != b';' && s[i] != b',' {
                    i += 1;
                }
                if i == v0 {
                    return Err(ValueError::Syntax);
                }
                value = Some(utf8(&s[v0..i])?);
            }
            i = skip_ws(s, i);
        }
        if i < s.len() && s[i] != b';' {
            return Err(ValueError::Syntax);
        }
        Ok((name, value, i))
    }

    /// Iterates `(name, value)` pairs in order.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, Option<&'a str>)> + '_ {
        let mut i = 0;
        std::iter::from_fn(move || {
            if i >= self.raw.len() {
                return None;
            }
            let (n, v, next) = self.next_param(i).ok()?;
            i = next;
            Some((n, v))
        })
    }

    /// `Some(value)` if the parameter is present (`Some(None)` for a flag like `;lr`).
    pub fn get(&self, name: &str) -> Option<Option<&'a str>> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// The raw text, starting at the first `;` (empty if there are none).
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }
}

/// `name-addr` or `addr-spec` with header parameters: From, To, Contact, Route, Record-Route,
/// Refer-To, Referred-By.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr<'a> {
    /// Display name, quotes removed and quoted-pairs unescaped.
    pub display_name: Option<Cow<'a, str>>,
    /// The URI text as written (between `<>` if they were used).
    pub uri: &'a str,
    /// Header parameters after the address.
    pub params: Params<'a>,
}

impl<'a> NameAddr<'a> {
    /// Parses one `name-addr`/`addr-spec` (one element of a list).
    pub fn parse(value: &'a [u8]) -> Result<Self, ValueError> {
        let s = trim(value);
        let mut display_name = None;
        let uri_start;
        if s.first() == Some(&b'"') {
            let end = end_of_quoted(s, 0)?;
            display_name = Some(unquote(utf8(&s[1..end - 1])?));
            let i = skip_ws(s, end);
            if s.get(i) != Some(&b'<') {
                return Err(ValueError::Syntax);
            }
            uri_start = i;
        } else if let Some(lt) = s.iter().position(|&b| b == b'<') {
            let name = trim(&s[..lt]);
            // An unquoted display name is tokens separated by LWS (RFC 4475 §3.1.2.15 baddn).
            if !name.iter().all(|&b| is_token_byte(b) || is_ws(b)) {
                return Err(ValueError::Syntax);
            }
            if !name.is_empty() {
                display_name = Some(Cow::Borrowed(utf8(name)?));
            }
            uri_start = lt;
        } else {
            // addr-spec: the URI ends at the first `;` and may not hold `,` `?` or whitespace.
            let end = s.iter().position(|&b| b == b';').unwrap_or(s.len());
            let uri = trim(&s[..end]);
            if uri.is_empty() || uri.iter().any(|&b| is_ws(b) || b == b'?' || b == b',') {
                return Err(ValueError::Syntax);
            }
            check_scheme(uri)?;
            return Ok(NameAddr {
                display_name: None,
                uri: utf8(uri)?,
                params: Params::parse(&s[end..])?,
            });
        }
        let rest = &s[uri_start + 1..];
        let gt = rest
            .iter()
            .position(|&b| b == b'>')
            .ok_or(ValueError::Syntax)?;
        let uri = &rest[..gt];
        // RFC 4475 §3.1.2.14 badaspec: no whitespace inside the brackets.
        if uri.is_empty() || uri.iter().any(|&b| is_ws(b)) {
            return Err(ValueError::Syntax);
        }
        check_scheme(uri)?;
        Ok(NameAddr {
            display_name,
            uri: utf8(uri)?,
            params: Params::parse(&rest[gt + 1..])?,
        })
    }

    /// The `tag` parameter.
    pub fn tag(&self) -> Option<&'a str> {
        self.params.get("tag").flatten()
    }

    /// The URI as a SIP/SIPS URI.
    pub fn sip_uri(&self) -> Result<SipUri<'a>, super::uri::UriError> {
        SipUri::parse(self.uri)
    }
}

/// `scheme ":"` with RFC 3986 scheme characters.
fn check_scheme(uri: &[u8]) -> Result<(), ValueError> {
    let colon = uri
        .iter()
        .position(|&b| b == b':')
        .ok_or(ValueError::Syntax)?;
    let scheme = &uri[..colon];
    let ok = scheme.first().is_some_and(u8::is_ascii_alphabetic)
        && scheme
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    if ok && colon + 1 < uri.len() {
        Ok(())
    } else {
        Err(ValueError::Syntax)
    }
}

/// Removes quoted-pair escapes; borrows when there are none.
fn unquote(s: &str) -> Cow<'_, str> {
    if !s.contains('\\') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// One `Via` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via<'a> {
    /// Transport (`UDP`, `TCP`, `TLS`, `SCTP`, `WS`, or an extension), as written.
    pub transport: &'a str,
    /// `sent-by` host (IPv6 references keep their brackets).
    pub host: &'a str,
    /// `sent-by` port.
    pub port: Option<u16>,
    /// Via parameters.
    pub params: Params<'a>,
}

impl<'a> Via<'a> {
    /// Parses one Via element (`SIP / 2.0 / UDP host:port;params`, LWS allowed around `/`).
    pub fn parse(value: &'a [u8]) -> Result<Self, ValueError> {
        let s = trim(value);
        let mut i = 0;
        let mut parts: [&[u8]; 3] = [&[]; 3];
        for (k, part) in parts.iter_mut().enumerate() {
            i = skip_ws(s, i);
            let p0 = i;
            while i < s.len() && is_token_byte(s[i]) {
                i += 1;
            }
            if i == p0 {
                return Err(ValueError::Syntax);
            }
            *part = &s[p0..i];
            i = skip_ws(s, i);
            if k < 2 {
                if s.get(i) != Some(&b'/') {
                    return Err(ValueError::Syntax);
                }
                i += 1;
            }
        }
        if !parts[0].eq_ignore_ascii_case(b"SIP") || parts[1] != b"2.0" {
            return Err(ValueError::Syntax);
        }
        let h0 = i;
        if s.get(i) == Some(&b'[') {
            i += s[i..]
                .iter()
                .position(|&b| b == b']')
                .ok_or(ValueError::Syntax)?
                + 1;
        } else {
            while i < s.len() && (s[i].is_ascii_alphanumeric() || matches!(s[i], b'-' | b'.')) {
                i += 1;
            }
        }
        if i == h0 {
            return Err(ValueError::Syntax);
        }
        let host = utf8(&s[h0..i])?;
        let mut j = skip_ws(s, i);
        let mut port = None;
        if s.get(j) == Some(&b':') {
            j = skip_ws(s, j + 1);
            let p0 = j;
            while j < s.len() && s[j].is_ascii_digit() {
                j += 1;
            }
            port = Some(parse_num::<u16>(&s[p0..j])?);
        }
        Ok(Via {
            transport: utf8(parts[2])?,
            host,
            port,
            params: Params::parse(&s[j..])?,
        })
    }

    /// The `branch` parameter.
    pub fn branch(&self) -> Option<&'a str> {
        self.params.get("branch").flatten()
    }

    /// Whether the branch carries the RFC 3261 magic cookie `z9hG4bK`.
    pub fn has_rfc3261_branch(&self) -> bool {
        self.branch().is_some_and(|b| b.starts_with("z9hG4bK"))
    }

    /// The `received` parameter.
    pub fn received(&self) -> Option<&'a str> {
        self.params.get("received").flatten()
    }

    /// `rport`: `None` if absent, `Some(None)` if present without value (a request for it).
    pub fn rport(&self) -> Result<Option<Option<u16>>, ValueError> {
        match self.params.get("rport") {
            None => Ok(None),
            Some(None) => Ok(Some(None)),
            Some(Some(v)) => Ok(Some(Some(parse_num(v.as_bytes())?))),
        }
    }
}

/// A decimal number of type `T`: digits only (leading zeros allowed, RFC 4475 §3.1.1.1),
/// no sign; too large is [`ValueError::OutOfRange`].
pub fn parse_num<T: TryFrom<u64>>(s: &[u8]) -> Result<T, ValueError> {
    let s = trim(s);
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return Err(ValueError::Syntax);
    }
    let mut n: u64 = 0;
    for &d in s {
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(d - b'0')))
            .ok_or(ValueError::OutOfRange)?;
    }
    T::try_from(n).map_err(|_| ValueError::OutOfRange)
}

/// `CSeq: number method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CSeq<'a> {
    /// Sequence number (RFC 3261 §8.1.1.5: below 2³¹).
    pub seq: u32,
    /// Method, case-sensitive.
    pub method: &'a str,
}

impl<'a> CSeq<'a> {
    /// Parses a CSeq value.
    pub fn parse(value: &'a [u8]) -> Result<Self, ValueError> {
        let s = trim(value);
        let split = s.iter().position(|&b| is_ws(b)).ok_or(ValueError::Syntax)?;
        let seq: u32 = parse_num(&s[..split])?;
        if seq >= 1 << 31 {
            return Err(ValueError::OutOfRange);
        }
        let method = trim(&s[split..]);
        if method.is_empty() || !method.iter().all(|&b| is_token_byte(b)) {
            return Err(ValueError::Syntax);
        }
        Ok(CSeq {
            seq,
            method: utf8(method)?,
        })
    }
}

/// `type/subtype;params` (Content-Type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaType<'a> {
    /// Top-level type, e.g. `text`.
    pub mtype: &'a str,
    /// Subtype, e.g. `plain`.
    pub subtype: &'a str,
    /// Parameters (`charset`, `boundary`…).
    pub params: Params<'a>,
}

impl<'a> MediaType<'a> {
    /// Parses a media type.
    pub fn parse(value: &'a [u8]) -> Result<Self, ValueError> {
        let s = trim(value);
        let end = s.iter().position(|&b| b == b';').unwrap_or(s.len());
        let ts = &s[..end];
        let slash = ts
            .iter()
            .position(|&b| b == b'/')
            .ok_or(ValueError::Syntax)?;
        let (t, st) = (trim(&ts[..slash]), trim(&ts[slash + 1..]));
        let tok = |x: &[u8]| !x.is_empty() && x.iter().all(|&b| is_token_byte(b));
        if !tok(t) || !tok(st) {
            return Err(ValueError::Syntax);
        }
        Ok(MediaType {
            mtype: utf8(t)?,
            subtype: utf8(st)?,
            params: Params::parse(&s[end..])?,
        })
    }

    /// Case-insensitive `type/subtype` comparison.
    pub fn is(&self, mtype: &str, subtype: &str) -> bool {
        self.mtype.eq_ignore_ascii_case(mtype) && self.subtype.eq_ignore_ascii_case(subtype)
    }
}

/// A token followed by parameters: Event (`presence;id=1`), Subscription-State, Content-Disposition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenParams<'a> {
    /// The leading token.
    pub token: &'a str,
    /// Its parameters.
    pub params: Params<'a>,
}

impl<'a> TokenParams<'a> {
    /// Parses `token *(;param)`.
    pub fn parse(value: &'a [u8]) -> Result<Self, ValueError> {
        let s = trim(value);
        let mut i = 0;
        while i < s.len() && is_token_byte(s[i]) {
            i += 1;
        }
        if i == 0 {
            return Err(ValueError::Syntax);
        }
        Ok(TokenParams {
            token: utf8(&s[..i])?,
            params: Params::parse(&s[i..])?,
        })
    }
}

/// `Subscription-State: active;expires=600` (RFC 6665 §8.2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscriptionState<'a> {
    /// `active`, `pending`, `terminated` or an extension.
    pub state: &'a str,
    /// `expires` parameter.
    pub expires: Option<u32>,
    /// `reason` parameter (`deactivated`, `timeout`, `rejected`, `noresource`…).
    pub reason: Option<&'a str>,
    /// `retry-after` parameter.
    pub retry_after: Option<u32>,
    /// All parameters.
    pub params: Params<'a>,
}

impl<'a> SubscriptionState<'a> {
    /// Parses a Subscription-State value.
    pub fn parse(value: &'a [u8]) -> Result<Self, ValueError> {
        let tp = TokenParams::parse(value)?;
        let num = |n: &str| -> Result<Option<u32>, ValueError> {
            match tp.params.get(n) {
                None => Ok(None),
                Some(None) => Err(ValueError::Syntax),
                Some(Some(v)) => parse_num(v.as_bytes()).map(Some),
            }
        };
        Ok(SubscriptionState {
            state: tp.token,
            expires: num("expires")?,
            reason: tp.params.get("reason").flatten(),
            retry_after: num("retry-after")?,
            params: tp.params,
        })
    }

    /// Whether the state is `active` (case-insensitive).
    pub fn is_active(&self) -> bool {
        self.state.eq_ignore_ascii_case("active")
    }

    /// Whether the state is `terminated` (case-insensitive).
    pub fn is_terminated(&self) -> bool {
        self.state.eq_ignore_ascii_case("terminated")
    }
}

/// `Retry-After: 120 (comment);duration=60`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter {
    /// Seconds to wait.
    pub seconds: u32,
    /// `duration` parameter, if any.
    pub duration: Option<u32>,
}

impl RetryAfter {
    /// Parses a Retry-After value (the comment is skipped, not nested-parsed).
    pub fn parse(value: &[u8]) -> Result<Self, ValueError> {
        let s = trim(value);
        let mut i = 0;
        while i < s.len() && s[i].is_ascii_digit() {
            i += 1;
        }
        let seconds = parse_num(&s[..i])?;
        let mut rest = trim(&s[i..]);
        if rest.first() == Some(&b'(') {
            // Comments may nest; count depth iteratively rather than recurse.
            let mut depth = 0usize;
            let mut end = None;
            let mut k = 0;
            while k < rest.len() {
                match rest[k] {
                    b'\\' => k += 1,
                    b'(' => depth += 1,
                    b')' => {
                        depth -= 1;
                        if depth == 0 {
                            end = Some(k);
                            break;
                        }
                    }
                    _ => {}
                }
                k += 1;
            }
            rest = &rest[end.ok_or(ValueError::Syntax)? + 1..];
        }
        let params = Params::parse(rest)?;
        let duration = match params.get("duration") {
            None => None,
            Some(Some(v)) => Some(parse_num(v.as_bytes())?),
            Some(None) => return Err(ValueError::Syntax),
        };
        Ok(RetryAfter { seconds, duration })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_lists_outside_quotes_and_brackets() {
        let v = br#""a, b" <sip:x@y;a=1,2>;q=0.5 , <sip:z@w>,,sip:q@r"#;
        let parts: Vec<_> = split_list(v).collect();
        assert_eq!(
            parts,
            vec![
                &br#""a, b" <sip:x@y;a=1,2>;q=0.5"#[..],
                b"<sip:z@w>",
                b"sip:q@r"
            ]
        );
    }

    #[test]
    fn via_with_folding_and_spaces_parses() {
        let v = Via::parse(b"SIP  /   2.0\r\n /UDP\r\n    192.0.2.2;branch=390skdjuw").unwrap();
        assert_eq!(v.transport, "UDP");
        assert_eq!(v.host, "192.0.2.2");
        assert_eq!(v.branch(), Some("390skdjuw"));
        assert!(!v.has_rfc3261_branch());
        let v = Via::parse(
            b"SIP/2.0/TCP [2001:db8::1]:5061;received=192.0.2.9;rport=4000;branch=z9hG4bKx",
        )
        .unwrap();
        assert_eq!(v.host, "[2001:db8::1]");
        assert_eq!(v.port, Some(5061));
        assert_eq!(v.received(), Some("192.0.2.9"));
        assert_eq!(v.rport(), Ok(Some(Some(4000))));
        let v = Via::parse(b"SIP/2.0/UDP h;rport").unwrap();
        assert_eq!(v.rport(), Ok(Some(None)));
    }

    #[test]
    fn via_rejects_empty_params() {
        assert!(Via::parse(b"SIP/2.0/UDP 192.0.2.15;;").is_err());
    }

    #[test]
    fn name_addr_unescapes_display_name_and_reads_tag() {
        let n =
            NameAddr::parse(br#""J Rosenberg \\\"" <sip:jdrosen@example.com>  ;  tag = 98asjd8"#)
                .unwrap();
        assert_eq!(n.display_name.as_deref(), Some(r#"J Rosenberg \""#));
        assert_eq!(n.uri, "sip:jdrosen@example.com");
        assert_eq!(n.tag(), Some("98asjd8"));
        let n = NameAddr::parse(b"caller<sip:caller@example.com>;tag=323").unwrap();
        assert_eq!(n.display_name.as_deref(), Some("caller"));
        let n = NameAddr::parse(b"sip:a@b;tag=x").unwrap();
        assert_eq!((n.uri, n.tag()), ("sip:a@b", Some("x")));
    }

    #[test]
    fn name_addr_rejects_torture_forms() {
        assert!(NameAddr::parse(b"\"Watson <sip:t@example.org>").is_err());
        assert!(NameAddr::parse(b"\"Watson\" < sip:t@example.org >").is_err());
        assert!(NameAddr::parse(b"Watson, Thomas <sip:t@example.org>").is_err());
        assert!(NameAddr::parse(b"sip:user@example.com?Route=%3Csip:x%3E").is_err());
    }

    #[test]
    fn cseq_and_numbers_enforce_ranges() {
        assert_eq!(
            CSeq::parse(b"0009\r\n INVITE"),
            Ok(CSeq {
                seq: 9,
                method: "INVITE"
            })
        );
        assert_eq!(
            CSeq::parse(b"36893488147419103232 INVITE").unwrap_err(),
            ValueError::OutOfRange
        );
        assert_eq!(
            CSeq::parse(b"2147483648 INVITE").unwrap_err(),
            ValueError::OutOfRange
        );
        assert_eq!(parse_num::<u32>(b"-999").unwrap_err(), ValueError::Syntax);
        assert_eq!(parse_num::<u8>(b"0068"), Ok(68));
    }

    #[test]
    fn subscription_state_and_retry_after_parse() {
        let s = SubscriptionState::parse(b"terminated;reason=timeout;retry-after=30").unwrap();
        assert!(s.is_terminated());
        assert_eq!(
            (s.reason, s.retry_after, s.expires),
            (Some("timeout"), Some(30), None)
        );
        let s = SubscriptionState::parse(b"active ; expires=600").unwrap();
        assert!(s.is_active());
        assert_eq!(s.expires, Some(600));
        let r = RetryAfter::parse(b"18000 (in (a) meeting);duration=3600").unwrap();
        assert_eq!(
            r,
            RetryAfter {
                seconds: 18000,
                duration: Some(3600)
            }
        );
    }

    #[test]
    fn media_type_reads_params() {
        let m = MediaType::parse(b"text/plain; charset=UTF-8").unwrap();
        assert!(m.is("TEXT", "Plain"));
        assert_eq!(m.params.get("charset"), Some(Some("UTF-8")));
        let m = MediaType::parse(b"multipart/mixed;boundary=\"a;b\"").unwrap();
        assert_eq!(m.params.get("boundary"), Some(Some("a;b")));
    }
}
