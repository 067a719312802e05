//! Header names: the ones a gateway reads by type, their RFC 3261 §7.3.3 (and extension)
//! compact forms, and whether a header is a comma-separated list.

/// A SIP header name. Known names are matched case-insensitively, compact forms included;
/// anything else is [`HeaderName::Other`] and compared by its bytes, case-insensitively.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HeaderName {
    /// `Accept`
    Accept,
    /// `Accept-Contact` (compact `a`)
    AcceptContact,
    /// `Allow`
    Allow,
    /// `Allow-Events` (compact `u`)
    AllowEvents,
    /// `Authorization`
    Authorization,
    /// `Call-ID` (compact `i`)
    CallId,
    /// `Contact` (compact `m`)
    Contact,
    /// `Content-Encoding` (compact `e`)
    ContentEncoding,
    /// `Content-Language`
    ContentLanguage,
    /// `Content-Length` (compact `l`)
    ContentLength,
    /// `Content-Type` (compact `c`)
    ContentType,
    /// `CSeq`
    CSeq,
    /// `Date`
    Date,
    /// `Event` (compact `o`)
    Event,
    /// `Expires`
    Expires,
    /// `From` (compact `f`)
    From,
    /// `Identity` (compact `y`)
    Identity,
    /// `Max-Forwards`
    MaxForwards,
    /// `Min-Expires`
    MinExpires,
    /// `Proxy-Authenticate`
    ProxyAuthenticate,
    /// `Proxy-Authorization`
    ProxyAuthorization,
    /// `Proxy-Require`
    ProxyRequire,
    /// `Record-Route`
    RecordRoute,
    /// `Refer-To` (compact `r`)
    ReferTo,
    /// `Referred-By` (compact `b`)
    ReferredBy,
    /// `Reject-Contact` (compact `j`)
    RejectContact,
    /// `Request-Disposition` (compact `d`)
    RequestDisposition,
    /// `Require`
    Require,
    /// `Retry-After`
    RetryAfter,
    /// `Route`
    Route,
    /// `Session-Expires` (compact `x`)
    SessionExpires,
    /// `Subject` (compact `s`)
    Subject,
    /// `Subscription-State`
    SubscriptionState,
    /// `Supported` (compact `k`)
    Supported,
    /// `To` (compact `t`)
    To,
    /// `Unsupported`
    Unsupported,
    /// `User-Agent`
    UserAgent,
    /// `Via` (compact `v`)
    Via,
    /// `WWW-Authenticate`
    WwwAuthenticate,
    /// Any other header; the name bytes are in the message.
    Other,
}

/// (canonical name, compact form, comma-separated list?) per known header.
const TABLE: &[(HeaderName, &str, Option<u8>, bool)] = &[
    (HeaderName::Accept, "Accept", None, true),
    (
        HeaderName::AcceptContact,
        "Accept-Contact",
        Some(b'a'),
        true,
    ),
    (HeaderName::Allow, "Allow", None, true),
    (HeaderName::AllowEvents, "Allow-Events", Some(b'u'), true),
    (HeaderName::Authorization, "Authorization", None, false),
    (HeaderName::CallId, "Call-ID", Some(b'i'), false),
    (HeaderName::Contact, "Contact", Some(b'm'), true),
    (
        HeaderName::ContentEncoding,
        "Content-Encoding",
        Some(b'e'),
        true,
    ),
    (HeaderName::ContentLanguage, "Content-Language", None, true),
    (
        HeaderName::ContentLength,
        "Content-Length",
        Some(b'l'),
        false,
    ),
    (HeaderName::ContentType, "Content-Type", Some(b'c'), false),
    (HeaderName::CSeq, "CSeq", None, false),
    (HeaderName::Date, "Date", None, false),
    (HeaderName::Event, "Event", Some(b'o'), false),
    (HeaderName::Expires, "Expires", None, false),
    (HeaderName::From, "From", Some(b'f'), false),
    (HeaderName::Identity, "Identity", Some(b'y'), false),
    (HeaderName::MaxForwards, "Max-Forwards", None, false),
    (HeaderName::MinExpires, "Min-Expires", None, false),
    (
        HeaderName::ProxyAuthenticate,
        "Proxy-Authenticate",
        None,
        false,
    ),
    (
        HeaderName::ProxyAuthorization,
        "Proxy-Authorization",
        None,
        false,
    ),
    (HeaderName::ProxyRequire, "Proxy-Require", None, true),
    (HeaderName::RecordRoute, "Record-Route", None, true),
    (HeaderName::ReferTo, "Refer-To", Some(b'r'), false),
    (HeaderName::ReferredBy, "Referred-By", Some(b'b'), false),
    (
        HeaderName::RejectContact,
        "Reject-Contact",
        Some(b'j'),
        true,
    ),
    (
        HeaderName::RequestDisposition,
        "Request-Disposition",
        Some(b'd'),
        true,
    ),
    (HeaderName::Require, "Require", None, true),
    (HeaderName::RetryAfter, "Retry-After", None, false),
    (HeaderName::Route, "Route", None, true),
    (
        HeaderName::SessionExpires,
        "Session-Expires",
        Some(b'x'),
        false,
    ),
    (HeaderName::Subject, "Subject", Some(b's'), false),
    (
        HeaderName::SubscriptionState,
        "Subscription-State",
        None,
        false,
    ),
    (HeaderName::Supported, "Supported", Some(b'k'), true),
    (HeaderName::To, "To", Some(b't'), false),
    (HeaderName::Unsupported, "Unsupported", None, true),
    (HeaderName::UserAgent, "User-Agent", None, false),
    (HeaderName::Via, "Via", Some(b'v'), true),
    (HeaderName::WwwAuthenticate, "WWW-Authenticate", None, false),
];

/// Compact forms by letter (`a` at 0); [`HeaderName::Other`] where a letter is none.
const COMPACT: [HeaderName; 26] = {
    let mut t = [HeaderName::Other; 26];
    let mut i = 0;
    while i < TABLE.len() {
        if let Some(c) = TABLE[i].2 {
            t[(c - b'a') as usize] = TABLE[i].0;
        }
        i += 1;
    }
    t
};

impl HeaderName {
    /// Classifies a header name as it appears on the wire (any case, compact forms too).
    pub fn from_bytes(name: &[u8]) -> HeaderName {
        // Runs for every header line of every message: a jump on (length, first letter) leaves
        // one or two candidates, instead of a walk over the table. A test checks it against
        // TABLE.
        let Some(&first) = name.first() else {
            return HeaderName::Other;
        };
        let first = first.to_ascii_lowercase();
        if name.len() == 1 {
            return match first {
                b'a'..=b'z' => COMPACT[usize::from(first - b'a')],
                _ => HeaderName::Other,
            };
        }
        let candidates: &[HeaderName] = match (name.len(), first) {
            (3, b'v') => &[HeaderName::Via],
            (4, b'f') => &[HeaderName::From],
            (2, b't') => &[HeaderName::To],
            (7, b'c') => &[HeaderName::CallId, HeaderName::Contact],
            (4, b'c') => &[HeaderName::CSeq],
            (14, b'c') => &[HeaderName::ContentLength],
            (12, b'c') => &[HeaderName::ContentType],
            (12, b'm') => &[HeaderName::MaxForwards],
            (7, b'e') => &[HeaderName::Expires],
            (5, b'e') => &[HeaderName::Event],
            (18, b's') => &[HeaderName::SubscriptionState],
            (6, b'a') => &[HeaderName::Accept],
            (14, b'a') => &[HeaderName::AcceptContact],
            (5, b'a') => &[HeaderName::Allow],
            (12, b'a') => &[HeaderName::AllowEvents],
            (13, b'a') => &[HeaderName::Authorization],
            (16, b'c') => &[HeaderName::ContentEncoding, HeaderName::ContentLanguage],
            (4, b'd') => &[HeaderName::Date],
            (8, b'i') => &[HeaderName::Identity],
            (11, b'm') => &[HeaderName::MinExpires],
            (18, b'p') => &[HeaderName::ProxyAuthenticate],
            (19, b'p') => &[HeaderName::ProxyAuthorization],
            (13, b'p') => &[HeaderName::ProxyRequire],
            (12, b'r') => &[HeaderName::RecordRoute],
            (8, b'r') => &[HeaderName::ReferTo],
            (11, b'r') => &[HeaderName::ReferredBy, HeaderName::RetryAfter],
            (14, b'r') => &[HeaderName::RejectContact],
            (19, b'r') => &[HeaderName::RequestDisposition],
            (7, b'r') => &[HeaderName::Require],
            (5, b'r') => &[HeaderName::Route],
            (15, b's') => &[HeaderName::SessionExpires],
            (7, b's') => &[HeaderName::Subject],
            (9, b's') => &[HeaderName::Supported],
            (11, b'u') => &[HeaderName::Unsupported],
            (10, b'u') => &[HeaderName::UserAgent],
            (16, b'w') => &[HeaderName::WwwAuthenticate],
            _ => return HeaderName::Other,
        };
        // Canonical case first (what peers send, and what we write): a plain compare, where
        // the case-folding one cost ≈ 110 instructions per header.
        for &h in candidates {
            if h.as_str().is_some_and(|known| known.as_bytes() == name) {
                return h;
            }
        }
        for &h in candidates {
            if h.as_str()
                .is_some_and(|known| known.as_bytes().eq_ignore_ascii_case(name))
            {
                return h;
            }
        }
        HeaderName::Other
    }

    fn entry(self) -> Option<&'static (HeaderName, &'static str, Option<u8>, bool)> {
        // TABLE is in declaration order (a test checks), so the discriminant is the index.
        TABLE.get(self as usize).filter(|e| e.0 == self)
    }

    /// The canonical long name (`"Call-ID"`), or `None` for [`HeaderName::Other`].
    pub fn as_str(self) -> Option<&'static str> {
        self.entry().map(|e| e.1)
    }

    /// The compact form (`'i'` for Call-ID), if the header has one.
    pub fn compact(self) -> Option<char> {
        self.entry().and_then(|e| e.2).map(char::from)
    }

    /// Whether the header's grammar is a comma-separated list (`Via`, `Contact`, `Route`…), so
    /// that one header line may carry several values. Unknown headers are never split: we do
    /// not know their grammar (RFC 4475 §3.1.1.1 `UnknownHeaderWithUnusualValue`).
    pub fn is_list(self) -> bool {
        self.entry().is_some_and(|e| e.3)
    }
}

/// True for RFC 3261 `token` characters (header names, methods, parameter names).
pub(crate) fn is_token_byte(b: u8) -> bool {
    TOKEN[usize::from(b)]
}

/// [`is_token_byte`] as a table: it runs on every byte of every header name.
const TOKEN: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
            );
        b += 1;
    }
    t
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_in_declaration_order() {
        for (i, e) in TABLE.iter().enumerate() {
            assert_eq!(e.0 as usize, i, "{:?}", e.0);
            assert_eq!(e.0.as_str(), Some(e.1));
        }
        assert_eq!(HeaderName::Other as usize, TABLE.len());
        assert_eq!(HeaderName::Other.as_str(), None);
    }

    #[test]
    fn every_long_name_classifies_in_any_case() {
        for e in TABLE {
            let lower = e.1.to_ascii_lowercase();
            let upper = e.1.to_ascii_uppercase();
            for name in [e.1, &lower, &upper] {
                assert_eq!(HeaderName::from_bytes(name.as_bytes()), e.0, "{name}");
            }
            // One byte off is another header.
            let mut off = lower.into_bytes();
            off[1] ^= 1;
            assert_ne!(HeaderName::from_bytes(&off), e.0);
        }
        assert_eq!(HeaderName::from_bytes(b""), HeaderName::Other);
    }

    #[test]
    fn compact_forms_map_to_long_names() {
        let pairs = [
            ("i", HeaderName::CallId),
            ("m", HeaderName::Contact),
            ("e", HeaderName::ContentEncoding),
            ("l", HeaderName::ContentLength),
            ("c", HeaderName::ContentType),
            ("f", HeaderName::From),
            ("s", HeaderName::Subject),
            ("k", HeaderName::Supported),
            ("t", HeaderName::To),
            ("v", HeaderName::Via),
            ("o", HeaderName::Event),
            ("u", HeaderName::AllowEvents),
            ("r", HeaderName::ReferTo),
            ("b", HeaderName::ReferredBy),
            ("x", HeaderName::SessionExpires),
            ("y", HeaderName::Identity),
            ("a", HeaderName::AcceptContact),
            ("j", HeaderName::RejectContact),
            ("d", HeaderName::RequestDisposition),
        ];
        for (short, long) in pairs {
            assert_eq!(HeaderName::from_bytes(short.as_bytes()), long, "{short}");
            assert_eq!(
                HeaderName::from_bytes(short.to_uppercase().as_bytes()),
                long
            );
            assert_eq!(long.compact(), short.chars().next());
        }
    }

    #[test]
    fn long_names_match_case_insensitively() {
        assert_eq!(
            HeaderName::from_bytes(b"MaX-fOrWaRdS"),
            HeaderName::MaxForwards
        );
        assert_eq!(HeaderName::from_bytes(b"call-id"), HeaderName::CallId);
        assert_eq!(HeaderName::from_bytes(b"X-Custom"), HeaderName::Other);
        assert_eq!(HeaderName::from_bytes(b"q"), HeaderName::Other);
    }
}
