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
        let (head, resource) = match s.find('/') {
            Some(i) => (&s[..i], Some(&s[i + 1..])),
            None => (s, None),
        };
        let (local, domain) = match head.find('@') {
            Some(i) => (Some(&head[..i]), &head[i + 1..]),
            None => (None, head),
        };
        check_domain(domain)?;
        if let Some(l) = local {
            if l.is_empty() {
                return Err(JidError::Empty);
            }
            if l.len() > MAX_PART {
                return Err(JidError::TooLong);
            }
            // RFC 7622 §3.3.1: these are disallowed in localparts.
            if l.chars().any(|c| {
                matches!(c, '"' | '&' | '\'' | '/' | ':' | '<' | '>' | '@')
                    || c.is_whitespace()
                    || c.is_control()
            }) {
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
            if r.chars().any(|c| c.is_control()) {
                return Err(JidError::BadCharacter);
            }
        }
        Ok(Jid {
            local,
            domain,
            resource,
        })
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
    let ok = d.split('.').all(|label| {
        !label.is_empty()
            && label.chars().all(|c| {
                !(c.is_whitespace()
                    || c.is_control()
                    || matches!(c, '@' | '/' | '"' | '&' | '\'' | '<' | '>' | ':' | '\\'))
            })
    });
    // An IPv6 literal domain is allowed in brackets.
    if ok || (d.starts_with('[') && d.ends_with(']')) {
        Ok(())
    } else {
        Err(JidError::BadCharacter)
    }
}

/// The domainpart of a JID string, without full validation (for routing decisions on checked input).
pub fn domain_of(jid: &str) -> &str {
    let head = jid.split('/').next().unwrap_or(jid);
    match head.rfind('@') {
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
    fn domain_of_ignores_resource_at_signs() {
        assert_eq!(domain_of("bob@corp.test/a@b"), "corp.test");
        assert_eq!(domain_of("corp.test"), "corp.test");
    }
}
