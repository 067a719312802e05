//! A parsed SIP message as a view into one `Bytes` buffer: the start line and each header's
//! name/value are ranges, values are parsed only when a typed accessor asks.

use super::headers::HeaderName;
use super::parse::{find_head_end, parse_head, Limits, ParseError};
use super::typed::{
    split_list, CSeq, MediaType, NameAddr, RetryAfter, SubscriptionState, TokenParams, ValueError,
    Via,
};
use super::uri::SipUri;
use bytes::Bytes;
use std::ops::Range;

/// Header index, on the heap: a message moves through the framer, channels and futures many
/// times, and with the index inline each move copied ≈ 280 bytes. One allocation per message
/// costs less (`benches/ab.sh`: 3.39 → 3.11 router CPU-µs per message).
pub(crate) type Headers = Vec<HeaderEntry>;

/// Where one header line sits in the buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HeaderEntry {
    pub name: HeaderName,
    pub name_range: Range<u32>,
    /// Value with leading/trailing whitespace trimmed; may span folded lines (CRLF + WS inside).
    pub value: Range<u32>,
}

/// Request-Line or Status-Line, as ranges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StartLine {
    Request { method: Range<u32>, uri: Range<u32> },
    Response { code: u16, reason: Range<u32> },
}

/// One header line as seen through [`SipMessage::headers`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderRef<'m> {
    /// Classified name.
    pub name: HeaderName,
    /// Name as written (e.g. `v`, `MaX-fOrWaRdS`).
    pub raw_name: &'m [u8],
    /// Value as written, trimmed; folded lines keep their CRLF + whitespace.
    pub value: &'m [u8],
}

/// A SIP request or response, borrowed from a shared buffer.
#[derive(Debug, Clone)]
pub struct SipMessage {
    buf: Bytes,
    start: StartLine,
    headers: Headers,
    body: Range<usize>,
}

fn utf8(s: &[u8]) -> Option<&str> {
    std::str::from_utf8(s).ok()
}

impl SipMessage {
    /// Parses one complete message (a datagram, or a buffer known to hold one message) with
    /// default [`Limits`]. Without Content-Length the body is the rest of the buffer; with it,
    /// bytes past the body are ignored (RFC 3261 §18.3, RFC 4475 §3.1.1.8 dblreq) and a body
    /// shorter than declared is an error.
    pub fn parse(buf: Bytes) -> Result<SipMessage, ParseError> {
        Self::parse_with(buf, &Limits::default())
    }

    /// [`SipMessage::parse`] with explicit limits.
    pub fn parse_with(buf: Bytes, limits: &Limits) -> Result<SipMessage, ParseError> {
        let head_end = match find_head_end(&buf, 0) {
            Some(e) => e,
            None if buf.len() > limits.max_header_bytes => {
                return Err(ParseError::HeaderSectionTooLarge {
                    limit: limits.max_header_bytes,
                })
            }
            None => return Err(ParseError::Incomplete),
        };
        let head = parse_head(&buf, head_end, limits)?;
        let body_end = match head.content_length {
            Some(n) => head_end
                .checked_add(n)
                .filter(|&e| e <= buf.len())
                .ok_or(ParseError::BodyTruncated)?,
            None => buf.len(),
        };
        if body_end - head_end > limits.max_body_bytes {
            return Err(ParseError::BodyTooLarge {
                declared: body_end - head_end,
                limit: limits.max_body_bytes,
            });
        }
        Ok(SipMessage {
            buf,
            start: head.start,
            headers: head.headers,
            body: head_end..body_end,
        })
    }

    /// Builds from a framed buffer and its already-parsed head.
    pub(crate) fn from_parts(
        buf: Bytes,
        start: StartLine,
        headers: Headers,
        body: Range<usize>,
    ) -> Self {
        SipMessage {
            buf,
            start,
            headers,
            body,
        }
    }

    fn slice(&self, r: &Range<u32>) -> &[u8] {
        &self.buf[r.start as usize..r.end as usize]
    }

    /// The whole message as received (start line through body), sharing the buffer.
    pub fn bytes(&self) -> Bytes {
        self.buf.slice(..self.body.end)
    }

    /// Whether this is a request.
    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }

    /// Request method (case-sensitive, RFC 3261 §7.1), or `None` for a response.
    pub fn method(&self) -> Option<&str> {
        match &self.start {
            StartLine::Request { method, .. } => utf8(self.slice(method)),
            StartLine::Response { .. } => None,
        }
    }

    /// Request-URI text, or `None` for a response.
    pub fn request_uri(&self) -> Option<&str> {
        match &self.start {
            StartLine::Request { uri, .. } => utf8(self.slice(uri)),
            StartLine::Response { .. } => None,
        }
    }

    /// Status code (100–699), or `None` for a request.
    pub fn status(&self) -> Option<u16> {
        match self.start {
            StartLine::Response { code, .. } => Some(code),
            StartLine::Request { .. } => None,
        }
    }

    /// Reason phrase (may be empty; raw bytes since it may hold any UTF-8 or, wrongly, not).
    pub fn reason(&self) -> Option<&[u8]> {
        match &self.start {
            StartLine::Response { reason, .. } => Some(self.slice(reason)),
            StartLine::Request { .. } => None,
        }
    }

    /// The body (a cheap clone of a slice of the buffer).
    pub fn body(&self) -> Bytes {
        self.buf.slice(self.body.clone())
    }

    /// All header lines in order.
    pub fn headers(&self) -> impl Iterator<Item = HeaderRef<'_>> {
        self.headers.iter().map(|h| HeaderRef {
            name: h.name,
            raw_name: self.slice(&h.name_range),
            value: self.slice(&h.value),
        })
    }

    /// Number of header lines.
    pub fn header_count(&self) -> usize {
        self.headers.len()
    }

    /// Value of the first header line called `name`.
    pub fn header(&self, name: HeaderName) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|h| h.name == name)
            .map(|h| self.slice(&h.value))
    }

    /// Value of the first header whose name (not a known one) equals `name`, case-insensitively.
    pub fn other_header(&self, name: &str) -> Option<&[u8]> {
        self.headers()
            .find(|h| {
                h.name == HeaderName::Other && h.raw_name.eq_ignore_ascii_case(name.as_bytes())
            })
            .map(|h| h.value)
    }

    /// Every value of header `name`: all lines, and for list headers each comma-separated
    /// element of each line (respecting quotes and `<...>`).
    pub fn header_values(&self, name: HeaderName) -> impl Iterator<Item = &[u8]> {
        let list = name.is_list();
        self.headers
            .iter()
            .filter(move |h| h.name == name)
            .flat_map(move |h| {
                let v = self.slice(&h.value);
                let (a, b) = if list {
                    (Some(split_list(v)), None)
                } else {
                    (None, Some(std::iter::once(v)))
                };
                a.into_iter().flatten().chain(b.into_iter().flatten())
            })
    }

    fn single(&self, name: HeaderName) -> Result<&[u8], ValueError> {
        self.header(name).ok_or(ValueError::Missing)
    }

    /// All Via values, top first.
    pub fn vias(&self) -> impl Iterator<Item = Result<Via<'_>, ValueError>> {
        self.header_values(HeaderName::Via).map(Via::parse)
    }

    /// The top Via.
    pub fn top_via(&self) -> Result<Via<'_>, ValueError> {
        self.vias().next().unwrap_or(Err(ValueError::Missing))
    }

    /// The `branch` parameter of the top Via, found without parsing the whole Via: what a client
    /// transaction matches a response by (RFC 3261 §17.1.3), on every response. A malformed Via
    /// yields whatever follows `branch=`, which then matches no transaction of ours.
    pub fn top_via_branch(&self) -> Option<&str> {
        let first_line = self.headers.iter().find(|h| h.name == HeaderName::Via)?;
        let v = self.slice(&first_line.value);
        // The top value ends at the first comma outside quotes and `<>`. Via values rarely
        // hold either, so a comma or the end found first settles it without the list split.
        let top = match memchr::memchr3(b',', b'"', b'<', v) {
            None => v,
            Some(i) if v[i] == b',' && !v[..i].trim_ascii().is_empty() => &v[..i],
            Some(_) => split_list(v).next()?,
        };
        let params = &top[memchr::memchr(b';', top)? + 1..];
        params.split(|&b| b == b';').find_map(|p| {
            let p = p.trim_ascii();
            let eq = p.iter().position(|&b| b == b'=')?;
            let (name, value) = (p[..eq].trim_ascii(), p[eq + 1..].trim_ascii());
            (name.eq_ignore_ascii_case(b"branch") && !value.is_empty())
                .then(|| utf8(value))
                .flatten()
        })
    }

    /// From.
    pub fn from(&self) -> Result<NameAddr<'_>, ValueError> {
        NameAddr::parse(self.single(HeaderName::From)?)
    }

    /// To.
    pub fn to(&self) -> Result<NameAddr<'_>, ValueError> {
        NameAddr::parse(self.single(HeaderName::To)?)
    }

    /// Call-ID (RFC 7572 maps it to the XMPP thread).
    pub fn call_id(&self) -> Result<&str, ValueError> {
        let v = self.single(HeaderName::CallId)?;
        if v.is_empty() || v.iter().any(|&b| b <= b' ') {
            return Err(ValueError::Syntax);
        }
        utf8(v).ok_or(ValueError::NotUtf8)
    }

    /// CSeq.
    pub fn cseq(&self) -> Result<CSeq<'_>, ValueError> {
        CSeq::parse(self.single(HeaderName::CSeq)?)
    }

    /// Max-Forwards (0–255).
    pub fn max_forwards(&self) -> Result<u8, ValueError> {
        super::typed::parse_num(self.single(HeaderName::MaxForwards)?)
    }

    /// Content-Type.
    pub fn content_type(&self) -> Result<MediaType<'_>, ValueError> {
        MediaType::parse(self.single(HeaderName::ContentType)?)
    }

    /// Content-Length.
    pub fn content_length(&self) -> Result<usize, ValueError> {
        super::typed::parse_num(self.single(HeaderName::ContentLength)?)
    }

    /// Expires, in seconds. Values above 2³²−1 are [`ValueError::OutOfRange`]; the caller
    /// decides whether to fall back to a default (RFC 4475 §3.1.2.4).
    pub fn expires(&self) -> Result<u32, ValueError> {
        super::typed::parse_num(self.single(HeaderName::Expires)?)
    }

    /// Event (package and parameters such as `id`).
    pub fn event(&self) -> Result<TokenParams<'_>, ValueError> {
        TokenParams::parse(self.single(HeaderName::Event)?)
    }

    /// Subscription-State.
    pub fn subscription_state(&self) -> Result<SubscriptionState<'_>, ValueError> {
        SubscriptionState::parse(self.single(HeaderName::SubscriptionState)?)
    }

    /// Contact values. The REGISTER-only wildcard `*` comes back as [`ValueError::Syntax`]
    /// (a gateway never registers; [`SipMessage::validate`] lets it through).
    pub fn contacts(&self) -> impl Iterator<Item = Result<NameAddr<'_>, ValueError>> {
        self.header_values(HeaderName::Contact).map(NameAddr::parse)
    }

    /// Retry-After.
    pub fn retry_after(&self) -> Result<RetryAfter, ValueError> {
        RetryAfter::parse(self.single(HeaderName::RetryAfter)?)
    }

    /// Content-Language values (language tags).
    pub fn content_languages(&self) -> impl Iterator<Item = &str> {
        self.header_values(HeaderName::ContentLanguage)
            .filter_map(utf8)
    }

    /// Subject, with folding whitespace left as written.
    pub fn subject(&self) -> Result<&str, ValueError> {
        utf8(self.single(HeaderName::Subject)?).ok_or(ValueError::NotUtf8)
    }

    /// Route values, in order.
    pub fn routes(&self) -> impl Iterator<Item = Result<NameAddr<'_>, ValueError>> {
        self.header_values(HeaderName::Route).map(NameAddr::parse)
    }

    /// Record-Route values, in order.
    pub fn record_routes(&self) -> impl Iterator<Item = Result<NameAddr<'_>, ValueError>> {
        self.header_values(HeaderName::RecordRoute)
            .map(NameAddr::parse)
    }

    /// Checks what a transaction layer and gateway rely on (RFC 3261 §8.1.1): Via, From, To,
    /// Call-ID, CSeq (and Max-Forwards in requests) present, single-valued where they must be,
    /// and parseable; CSeq method equal to the request method; a SIP Request-URI without
    /// headers; Contact values well-formed. A request failing this gets a 400.
    pub fn validate(&self) -> Result<(), ParseError> {
        let inv = |name| move |error| ParseError::InvalidHeader { name, error };
        for name in [
            HeaderName::From,
            HeaderName::To,
            HeaderName::CallId,
            HeaderName::CSeq,
            HeaderName::MaxForwards,
        ] {
            if self.headers.iter().filter(|h| h.name == name).count() > 1 {
                return Err(ParseError::DuplicateHeader(name));
            }
        }
        let missing = |name, e| {
            if e == ValueError::Missing {
                ParseError::MissingHeader(name)
            } else {
                inv(name)(e)
            }
        };
        let mut any_via = false;
        for v in self.vias() {
            v.map_err(inv(HeaderName::Via))?;
            any_via = true;
        }
        if !any_via {
            return Err(ParseError::MissingHeader(HeaderName::Via));
        }
        self.from().map_err(|e| missing(HeaderName::From, e))?;
        self.to().map_err(|e| missing(HeaderName::To, e))?;
        self.call_id().map_err(|e| missing(HeaderName::CallId, e))?;
        let cseq = self.cseq().map_err(|e| missing(HeaderName::CSeq, e))?;
        for c in self.contacts() {
            // `Contact: *` is legal in REGISTER only; accept it as-is here.
            if let Err(e) = c {
                if self.header(HeaderName::Contact).map(super::typed::trim) != Some(b"*") {
                    return Err(inv(HeaderName::Contact)(e));
                }
            }
        }
        if let Some(method) = self.method() {
            if cseq.method != method {
                return Err(ParseError::CSeqMethodMismatch);
            }
            match self.max_forwards() {
                Ok(_) => {}
                Err(e) => return Err(missing(HeaderName::MaxForwards, e)),
            }
            let uri = self.request_uri().ok_or(ParseError::BadRequestUri)?;
            let scheme = uri.split(':').next().unwrap_or("");
            if scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips") {
                let u = SipUri::parse(uri).map_err(|_| ParseError::BadRequestUri)?;
                if u.headers.is_some() {
                    return Err(ParseError::BadRequestUri);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MESSAGE: &str = "MESSAGE sip:romeo@a.example SIP/2.0\r\n\
        Via: SIP/2.0/TLS gw.b.example:5061;branch=z9hG4bK776asdhds;rport, SIP/2.0/TCP p.b.example;received=192.0.2.1;branch=z9hG4bKa\r\n\
        Max-Forwards: 70\r\n\
        f: \"Juliet\" <sip:juliet@b.example>;tag=49583\r\n\
        t: <sip:romeo@a.example>\r\n\
        i: a84b4c76e66710@gw.b.example\r\n\
        CSeq: 1 MESSAGE\r\n\
        c: text/plain; charset=UTF-8\r\n\
        Content-Language: en, fr\r\n\
        Subject: Hi\r\n\
        Route: <sip:p1.example;lr>,<sip:p2.example;lr>\r\n\
        Route: <sip:p3.example;lr>\r\n\
        l: 5\r\n\
        \r\n\
        Hello";

    #[test]
    fn top_via_branch_is_the_top_vias_and_agrees_with_the_typed_via() {
        let m = SipMessage::parse(Bytes::from_static(MESSAGE.as_bytes())).unwrap();
        assert_eq!(m.top_via_branch(), Some("z9hG4bK776asdhds"));
        assert_eq!(m.top_via_branch(), m.top_via().unwrap().branch());
        let spaced = "SIP/2.0 200 OK\r\nv: SIP/2.0/TCP h ; rport ; BRANCH = z9hG4bKx\r\n\
            Via: SIP/2.0/TCP other;branch=z9hG4bKother\r\nCSeq: 1 MESSAGE\r\nl: 0\r\n\r\n";
        let r = SipMessage::parse(Bytes::from_static(spaced.as_bytes())).unwrap();
        assert_eq!(r.top_via_branch(), Some("z9hG4bKx"));
        let none = "SIP/2.0 200 OK\r\nVia: SIP/2.0/TCP h;rport;branch=\r\nl: 0\r\n\r\n";
        let r = SipMessage::parse(Bytes::from_static(none.as_bytes())).unwrap();
        assert_eq!(r.top_via_branch(), None);
    }

    #[test]
    fn reads_typed_fields_of_a_message_request() {
        let m = SipMessage::parse(Bytes::from_static(MESSAGE.as_bytes())).unwrap();
        m.validate().unwrap();
        assert_eq!(m.method(), Some("MESSAGE"));
        assert_eq!(m.request_uri(), Some("sip:romeo@a.example"));
        let vias: Vec<_> = m.vias().map(Result::unwrap).collect();
        assert_eq!(vias.len(), 2);
        assert_eq!(vias[0].branch(), Some("z9hG4bK776asdhds"));
        assert_eq!((vias[0].host, vias[0].port), ("gw.b.example", Some(5061)));
        assert_eq!(vias[1].received(), Some("192.0.2.1"));
        let from = m.from().unwrap();
        assert_eq!(
            (from.display_name.as_deref(), from.tag()),
            (Some("Juliet"), Some("49583"))
        );
        assert_eq!(m.to().unwrap().tag(), None);
        assert_eq!(m.call_id(), Ok("a84b4c76e66710@gw.b.example"));
        assert_eq!(
            m.cseq().unwrap(),
            CSeq {
                seq: 1,
                method: "MESSAGE"
            }
        );
        assert_eq!(m.max_forwards(), Ok(70));
        assert!(m.content_type().unwrap().is("text", "plain"));
        assert_eq!(m.content_languages().collect::<Vec<_>>(), ["en", "fr"]);
        assert_eq!(m.subject(), Ok("Hi"));
        let routes: Vec<_> = m.routes().map(|r| r.unwrap().uri).collect();
        assert_eq!(
            routes,
            [
                "sip:p1.example;lr",
                "sip:p2.example;lr",
                "sip:p3.example;lr"
            ]
        );
        assert_eq!(&m.body()[..], b"Hello");
    }

    #[test]
    fn response_exposes_status_and_retry_after() {
        let s = "SIP/2.0 503 Service Unavailable\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\n\
            From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 4 MESSAGE\r\n\
            Retry-After: 30\r\nContent-Length: 0\r\n\r\n";
        let m = SipMessage::parse(Bytes::from_static(s.as_bytes())).unwrap();
        m.validate().unwrap();
        assert_eq!(m.status(), Some(503));
        assert_eq!(m.reason(), Some(&b"Service Unavailable"[..]));
        assert_eq!(m.retry_after().unwrap().seconds, 30);
    }

    #[test]
    fn validate_rejects_cseq_method_mismatch_and_missing_headers() {
        let s =
            "OPTIONS sip:u@h SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nMax-Forwards: 70\r\n\
            From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: x\r\nCSeq: 4 INVITE\r\nl: 0\r\n\r\n";
        let m = SipMessage::parse(Bytes::from_static(s.as_bytes())).unwrap();
        assert_eq!(m.validate(), Err(ParseError::CSeqMethodMismatch));
        let s = "OPTIONS sip:u@h SIP/2.0\r\nl: 0\r\n\r\n";
        let m = SipMessage::parse(Bytes::from_static(s.as_bytes())).unwrap();
        assert_eq!(
            m.validate(),
            Err(ParseError::MissingHeader(HeaderName::Via))
        );
    }

    #[test]
    fn body_shorter_than_content_length_is_rejected() {
        let s = "OPTIONS sip:u@h SIP/2.0\r\nContent-Length: 10\r\n\r\nabc";
        assert_eq!(
            SipMessage::parse(Bytes::from_static(s.as_bytes())).unwrap_err(),
            ParseError::BodyTruncated
        );
    }
}
