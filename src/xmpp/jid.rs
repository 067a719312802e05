//! JIDs as the edge needs them: split into parts, domain comparison, bare JID.
//!
//! Full RFC 7622 PRECIS preparation is not done here; the edge only needs the domain part (compared
//! ASCII-case-insensitively) and a bounded syntax check, so malformed addresses are refused, not
//! "fixed".

/// A borrowed JID split into its parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Jid<'a> {
    /// The localpart (before `@`), if any.
    pub local: Option<&'a str>,
    /// The domainpart.
    pub domain: &'a str,
    /// The resourcepart (after the first `/`), if any.
    pub resource: Option<&'a str>,
}

/// Why a JID was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JidError {
    /// Empty JID or empty part.
    Empty,
    /// A part is longer than 1023 bytes (RFC 7622 §3.1).
    TooLong,
    /// A character not allowed in that part.
    BadCharacter,
}

const MAX_PART: usize = 1023;

impl<'a> Jid<'a> {
    /// Splits and checks `s`.
    pub fn parse(s: &'a str) -> Result<Jid<'a>, JidError> {
        // memchr instead of str::find: this runs twice per stanza (from and to).
        let Jid {
            local,
            domain,
            resource,
        } = Jid::split_checked(s);
        check_domain(domain)?;
        if let Some(l) = local {
            if l.is_empty() {
                return Err(JidError::Empty);
            }
            if l.len() > MAX_PART {
                return Err(JidError::TooLong);
            }
            // RFC 7622 §3.3.1: these are disallowed in localparts.
            let bad = |c: char| {
                matches!(c, '"' | '&' | '\'' | '/' | ':' | '<' | '>' | '@')
                    || c.is_whitespace()
                    || c.is_control()
            };
            if any_char(l, &LOCAL_BAD, bad) {
                return Err(JidError::BadCharacter);
            }
        }
        if let Some(r) = resource {
            if r.is_empty() {
                return Err(JidError::Empty);
            }
            if r.len() > MAX_PART {
                return Err(JidError::TooLong);
            }
            if any_char(r, &RESOURCE_BAD, char::is_control) {
                return Err(JidError::BadCharacter);
            }
        }
        Ok(Jid {
            local,
            domain,
            resource,
        })
    }

    /// Splits a JID that [`Jid::parse`] has already checked, without checking it again: the
    /// addresses of a stanza that passed its inbound stream (which parses both). The gateway
    /// calls this per message; the checks were ≈ 8% of its instructions there. On unchecked
    /// input the parts are whatever the separators give, so callers still escape what they
    /// write.
    pub fn split_checked(s: &'a str) -> Jid<'a> {
        let (head, resource) = match memchr::memchr(b'/', s.as_bytes()) {
            Some(i) => (&s[..i], Some(&s[i + 1..])),
            None => (s, None),
        };
        let (local, domain) = match memchr::memchr(b'@', head.as_bytes()) {
            Some(i) => (Some(&head[..i]), &head[i + 1..]),
            None => (None, head),
        };
        Jid {
            local,
            domain,
            resource,
        }
    }

    /// The bare JID (`local@domain` or `domain`) as a slice of the original string.
    pub fn bare_len(&self) -> usize {
        self.local.map_or(0, |l| l.len() + 1) + self.domain.len()
    }
}

/// Checks a domainpart: non-empty, ≤ 1023 bytes, DNS-like labels, no trailing dot.
pub fn check_domain(d: &str) -> Result<(), JidError> {
    if d.is_empty() {
        return Err(JidError::Empty);
    }
    if d.len() > MAX_PART {
        return Err(JidError::TooLong);
    }
    // An IPv6 literal domain is allowed in brackets.
    if d.starts_with('[') && d.ends_with(']') {
        return Ok(());
    }
    let b = d.as_bytes();
    if d.is_ascii() {
        // One pass for the common case: refused bytes, empty labels (`..`, leading or
        // trailing dot).
        let mut prev = b'.';
        for &c in b {
            if DOMAIN_BAD[usize::from(c)] || (c == b'.' && prev == b'.') {
                return Err(JidError::BadCharacter);
            }
            prev = c;
        }
        return if prev == b'.' {
            Err(JidError::BadCharacter)
        } else {
            Ok(())
        };
    }
    let bad = |c: char| {
        c.is_whitespace()
            || c.is_control()
            || matches!(c, '@' | '/' | '"' | '&' | '\'' | '<' | '>' | ':' | '\\')
    };
    // Labels are non-empty: no leading/trailing dot, no "..".
    if b[0] == b'.' || b[b.len() - 1] == b'.' || memchr::memmem::find(b, b"..").is_some() {
        return Err(JidError::BadCharacter);
    }
    if any_char(d, &DOMAIN_BAD, bad) {
        return Err(JidError::BadCharacter);
    }
    Ok(())
}

/// Whether any character of `s` is refused. ASCII text (the common case: this runs on every
/// stanza's addresses) is checked byte by byte against `ascii_bad`; other text char by char.
fn any_char(s: &str, ascii_bad: &[bool; 128], bad: impl Fn(char) -> bool) -> bool {
    if s.is_ascii() {
        s.bytes().any(|b| ascii_bad[b as usize])
    } else {
        s.chars().any(bad)
    }
}

/// ASCII bytes refused in a part: controls, space, DEL and `extra`.
const fn ascii_table(extra: &[u8]) -> [bool; 128] {
    let mut t = [false; 128];
    let mut i = 0;
    while i < 128 {
        t[i] = i <= 0x20 || i == 0x7f;
        i += 1;
    }
    let mut j = 0;
    while j < extra.len() {
        t[extra[j] as usize] = true;
        j += 1;
    }
    t
}

/// RFC 7622 §3.3.1 localpart exclusions (plus whitespace and controls).
static LOCAL_BAD: [bool; 128] = ascii_table(b"\"&'/:<>@");
/// Domain labels: no address or markup punctuation.
static DOMAIN_BAD: [bool; 128] = ascii_table(b"@/\"&'<>:\\");
/// Resources may contain spaces and punctuation, not controls.
static RESOURCE_BAD: [bool; 128] = {
    let mut t = ascii_table(b"");
    t[0x20] = false;
    t
};

/// The bare part (`local@domain` or `domain`) of a JID string, and whether it has a localpart,
/// without validation: for routing decisions on input the stream already checked.
pub fn bare_of(jid: &str) -> (&str, bool) {
    let head = match memchr::memchr(b'/', jid.as_bytes()) {
        Some(i) => &jid[..i],
        None => jid,
    };
    (head, memchr::memchr(b'@', head.as_bytes()).is_some())
}

/// The domainpart of a JID string, without full validation (for routing decisions on checked input).
pub fn domain_of(jid: &str) -> &str {
    let head = bare_of(jid).0;
    match memchr::memchr(b'@', head.as_bytes()) {
        Some(i) => &head[i + 1..],
        None => head,
    }
}

/// ASCII-case-insensitive domain comparison (domains are stored lowercase in config).
pub fn same_domain(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_full_jid() {
        let j = Jid::parse("alice@a.test/phone").unwrap();
        assert_eq!(
            (j.local, j.domain, j.resource),
            (Some("alice"), "a.test", Some("phone"))
        );
        assert_eq!(j.bare_len(), "alice@a.test".len());
    }

    #[test]
    fn resource_may_contain_at_and_slash() {
        let j = Jid::parse("a.test/x@y/z").unwrap();
        assert_eq!(
            (j.local, j.domain, j.resource),
            (None, "a.test", Some("x@y/z"))
        );
    }

    #[test]
    fn refuses_malformed_jids() {
        for bad in [
            "",
            "@a.test",
            "a@",
            "a.test/",
            "a b@c.test",
            "a<b@c.test",
            "a..test",
            "x@a.test.",
        ] {
            assert!(Jid::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Jid::parse(&"a".repeat(1024)), Err(JidError::TooLong));
    }

    #[test]
    fn ascii_fast_path_agrees_with_the_char_rules() {
        for b in 0u8..128 {
            let c = b as char;
            let local = format!("a{c}b@x.test");
            let domain = format!("x{c}y.test");
            let resource = format!("x.test/a{c}b");
            let local_bad = matches!(c, '"' | '&' | '\'' | '/' | ':' | '<' | '>' | '@')
                || c.is_whitespace()
                || c.is_control();
            // '/' and '@' split the JID differently, so only the verdict of the whole parse is compared.
            if c != '/' && c != '@' {
                assert_eq!(
                    Jid::parse(&local).is_err(),
                    local_bad,
                    "localpart byte {b:#x}"
                );
                let domain_bad = c.is_whitespace()
                    || c.is_control()
                    || matches!(c, '"' | '&' | '\'' | '<' | '>' | ':' | '\\');
                assert_eq!(
                    check_domain(&domain).is_err(),
                    domain_bad,
                    "domain byte {b:#x}"
                );
            }
            assert_eq!(
                Jid::parse(&resource).is_err(),
                c.is_control(),
                "resource byte {b:#x}"
            );
        }
    }

    #[test]
    fn bare_of_splits_off_the_resource_only() {
        assert_eq!(bare_of("bob@corp.test/a@b/c"), ("bob@corp.test", true));
        assert_eq!(bare_of("corp.test/x@y"), ("corp.test", false));
        assert_eq!(bare_of("corp.test"), ("corp.test", false));
    }

    #[test]
    fn domain_of_ignores_resource_at_signs() {
        assert_eq!(domain_of("bob@corp.test/a@b"), "corp.test");
        assert_eq!(domain_of("corp.test"), "corp.test");
    }
}
