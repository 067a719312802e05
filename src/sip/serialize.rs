//! Writing SIP messages into a reused `Vec<u8>`: a builder that emits the start line, headers
//! with canonical names, Content-Length and the body, refusing values that would inject lines.

use super::headers::HeaderName;
use super::uri::encode_user;
use std::fmt;

/// Why a message could not be built. Our own caller's fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildError {
    /// A method, URI, header name or value contained CR, LF, NUL or (where not allowed) spaces.
    InvalidText,
    /// A status code outside 100–699.
    BadStatus,
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BuildError::InvalidText => "SIP text would break the message framing",
            BuildError::BadStatus => "SIP status code outside 100-699",
        })
    }
}

impl std::error::Error for BuildError {}

/// Entry point for building requests.
#[derive(Debug)]
pub struct Request;

/// Entry point for building responses.
#[derive(Debug)]
pub struct Response;

impl Request {
    /// Starts `METHOD uri SIP/2.0` in a fresh buffer (1 KiB: a MESSAGE with a 200-byte body is
    /// ≈600 bytes, so one allocation).
    pub fn builder(method: &str, uri: &str) -> Builder {
        Self::builder_in(Vec::with_capacity(1024), method, uri)
    }

    /// Starts a request in `buf` (cleared; its capacity is reused).
    pub fn builder_in(buf: Vec<u8>, method: &str, uri: &str) -> Builder {
        let mut b = Builder::new(buf);
        let ok = !method.is_empty()
            && method.bytes().all(super::headers::is_token_byte)
            && clean(uri, false);
        b.fail_unless(ok, BuildError::InvalidText);
        b.buf.extend_from_slice(method.as_bytes());
        b.buf.push(b' ');
        b.buf.extend_from_slice(uri.as_bytes());
        b.buf.extend_from_slice(b" SIP/2.0\r\n");
        b
    }
}

impl Response {
    /// Starts `SIP/2.0 code reason` in a fresh buffer.
    pub fn builder(code: u16, reason: &str) -> Builder {
        Self::builder_in(Vec::with_capacity(512), code, reason)
    }

    /// Starts a response in `buf` (cleared; its capacity is reused).
    pub fn builder_in(buf: Vec<u8>, code: u16, reason: &str) -> Builder {
        let mut b = Builder::new(buf);
        b.fail_unless((100..=699).contains(&code), BuildError::BadStatus);
        b.fail_unless(clean(reason, true), BuildError::InvalidText);
        b.buf.extend_from_slice(b"SIP/2.0 ");
        push_decimal(&mut b.buf, code.into());
        b.buf.push(b' ');
        b.buf.extend_from_slice(reason.as_bytes());
        b.buf.extend_from_slice(b"\r\n");
        b
    }
}

/// No CR, LF, NUL; no whitespace unless `spaces`; non-empty unless `spaces`.
pub(crate) fn clean(s: &str, spaces: bool) -> bool {
    (spaces || !s.is_empty())
        && s.bytes()
            .all(|b| !matches!(b, b'\r' | b'\n' | 0) && (spaces || (b != b' ' && b != b'\t')))
}

/// Writes one message. Errors are remembered and returned by [`Builder::finish`], so the
/// chain stays readable.
#[derive(Debug)]
pub struct Builder {
    buf: Vec<u8>,
    error: Option<BuildError>,
}

impl Builder {
    fn new(mut buf: Vec<u8>) -> Self {
        buf.clear();
        Builder { buf, error: None }
    }

    fn fail_unless(&mut self, ok: bool, e: BuildError) {
        if !ok && self.error.is_none() {
            self.error = Some(e);
        }
    }

    /// Adds a known header by its canonical name. Content-Length is written by
    /// [`body`](Self::body)/[`finish`](Self::finish); adding it here is refused.
    pub fn header(mut self, name: HeaderName, value: &str) -> Self {
        match name.as_str() {
            Some(n) if name != HeaderName::ContentLength => self.raw(n, value),
            _ => {
                self.fail_unless(false, BuildError::InvalidText);
                self
            }
        }
    }

    /// Adds a header by name (extension headers).
    pub fn header_named(mut self, name: &str, value: &str) -> Self {
        let ok = !name.is_empty()
            && name.bytes().all(super::headers::is_token_byte)
            && HeaderName::from_bytes(name.as_bytes()) != HeaderName::ContentLength;
        self.fail_unless(ok, BuildError::InvalidText);
        self.raw(name, value)
    }

    fn raw(mut self, name: &str, value: &str) -> Self {
        self.fail_unless(clean(value, true), BuildError::InvalidText);
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.extend_from_slice(b": ");
        self.buf.extend_from_slice(value.as_bytes());
        self.buf.extend_from_slice(b"\r\n");
        self
    }

    /// `Via: SIP/2.0/{transport} {host}[:{port}];branch={branch}[;rport]`.
    pub fn via(
        mut self,
        transport: &str,
        host: &str,
        port: Option<u16>,
        branch: &str,
        rport: bool,
    ) -> Self {
        self.fail_unless(
            clean(transport, false) && clean(host, false) && clean(branch, false),
            BuildError::InvalidText,
        );
        self.buf.extend_from_slice(b"Via: SIP/2.0/");
        self.buf.extend_from_slice(transport.as_bytes());
        self.buf.push(b' ');
        self.buf.extend_from_slice(host.as_bytes());
        if let Some(p) = port {
            self.buf.push(b':');
            push_decimal(&mut self.buf, p.into());
        }
        self.buf.extend_from_slice(b";branch=");
        self.buf.extend_from_slice(branch.as_bytes());
        if rport {
            self.buf.extend_from_slice(b";rport");
        }
        self.buf.extend_from_slice(b"\r\n");
        self
    }

    fn name_addr(
        mut self,
        name: &str,
        display: Option<&str>,
        uri: &str,
        tag: Option<&str>,
    ) -> Self {
        self.fail_unless(
            clean(uri, false) && tag.is_none_or(|t| clean(t, false)),
            BuildError::InvalidText,
        );
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.extend_from_slice(b": ");
        if let Some(d) = display {
            self.fail_unless(clean(d, true), BuildError::InvalidText);
            // Always quote: the display name comes from an XMPP nickname and may hold anything.
            self.buf.push(b'"');
            for &b in d.as_bytes() {
                if b == b'"' || b == b'\\' {
                    self.buf.push(b'\\');
                }
                self.buf.push(b);
            }
            self.buf.extend_from_slice(b"\" ");
        }
        self.buf.push(b'<');
        self.buf.extend_from_slice(uri.as_bytes());
        self.buf.push(b'>');
        if let Some(t) = tag {
            self.buf.extend_from_slice(b";tag=");
            self.buf.extend_from_slice(t.as_bytes());
        }
        self.buf.extend_from_slice(b"\r\n");
        self
    }

    /// `From: "display" <uri>;tag=…`.
    pub fn from(self, display: Option<&str>, uri: &str, tag: Option<&str>) -> Self {
        self.name_addr("From", display, uri, tag)
    }

    /// `To: "display" <uri>[;tag=…]`.
    pub fn to(self, display: Option<&str>, uri: &str, tag: Option<&str>) -> Self {
        self.name_addr("To", display, uri, tag)
    }

    /// `Contact: <uri>`.
    pub fn contact(self, uri: &str) -> Self {
        self.name_addr("Contact", None, uri, None)
    }

    /// `Call-ID`.
    pub fn call_id(mut self, id: &str) -> Self {
        self.fail_unless(clean(id, false), BuildError::InvalidText);
        self.raw("Call-ID", id)
    }

    /// `CSeq: n METHOD`.
    pub fn cseq(mut self, seq: u32, method: &str) -> Self {
        self.fail_unless(clean(method, false), BuildError::InvalidText);
        self.buf.extend_from_slice(b"CSeq: ");
        push_decimal(&mut self.buf, seq.into());
        self.buf.push(b' ');
        self.buf.extend_from_slice(method.as_bytes());
        self.buf.extend_from_slice(b"\r\n");
        self
    }

    /// `Max-Forwards`.
    pub fn max_forwards(mut self, n: u8) -> Self {
        self.buf.extend_from_slice(b"Max-Forwards: ");
        push_decimal(&mut self.buf, n.into());
        self.buf.extend_from_slice(b"\r\n");
        self
    }

    /// `Expires`.
    pub fn expires(mut self, secs: u32) -> Self {
        self.buf.extend_from_slice(b"Expires: ");
        push_decimal(&mut self.buf, secs.into());
        self.buf.extend_from_slice(b"\r\n");
        self
    }

    /// Writes Content-Type, Content-Length and the body, and returns the message.
    pub fn body(mut self, content_type: &str, body: &[u8]) -> Result<Vec<u8>, BuildError> {
        self = self.raw("Content-Type", content_type);
        self.buf.extend_from_slice(b"Content-Length: ");
        push_decimal(&mut self.buf, body.len() as u64);
        self.buf.extend_from_slice(b"\r\n\r\n");
        self.buf.extend_from_slice(body);
        self.done()
    }

    /// Ends a message without a body (`Content-Length: 0`).
    pub fn finish(mut self) -> Result<Vec<u8>, BuildError> {
        self.buf.extend_from_slice(b"Content-Length: 0\r\n\r\n");
        self.done()
    }

    fn done(self) -> Result<Vec<u8>, BuildError> {
        match self.error {
            Some(e) => Err(e),
            None => Ok(self.buf),
        }
    }
}

/// Appends `n` in decimal. By hand: `write!` through `core::fmt` was 6.5% of the gateway's
/// per-message instructions (`examples/gateway_instructions.rs`).
fn push_decimal(out: &mut Vec<u8>, n: u64) {
    let mut digits = [0u8; 20];
    out.extend_from_slice(decimal(n, &mut digits));
}

/// `n` in decimal, written at the end of `digits`.
pub(crate) fn decimal(mut n: u64, digits: &mut [u8; 20]) -> &[u8] {
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &digits[i..]
}

/// Builds `sip:`/`sips:` URI text with a percent-encoded user part (RFC 7247 §5 mapping of a
/// JID localpart). `host` must already be an A-label or IP literal.
pub fn sip_uri(secure: bool, user: Option<&str>, host: &str, port: Option<u16>, out: &mut Vec<u8>) {
    out.extend_from_slice(if secure { b"sips:" } else { b"sip:" });
    if let Some(u) = user {
        encode_user(u, out);
        out.push(b'@');
    }
    out.extend_from_slice(host.as_bytes());
    if let Some(p) = port {
        out.push(b':');
        push_decimal(out, p.into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_written_like_display() {
        let mut d = [0u8; 20];
        for n in [0u64, 7, 10, 99, 100, 65_535, u64::MAX] {
            assert_eq!(decimal(n, &mut d), n.to_string().as_bytes());
        }
    }
    use crate::sip::SipMessage;
    use bytes::Bytes;

    #[test]
    fn built_message_parses_back_with_same_fields() {
        let out = Request::builder("MESSAGE", "sip:romeo@a.example")
            .via("TLS", "gw.b.example", Some(5061), "z9hG4bKabc", true)
            .max_forwards(70)
            .from(Some("Juliet \"J\" C"), "sip:juliet@b.example", Some("t1"))
            .to(None, "sip:romeo@a.example", None)
            .call_id("c1@gw")
            .cseq(7, "MESSAGE")
            .header(HeaderName::ContentLanguage, "en")
            .body("text/plain; charset=UTF-8", "hé".as_bytes())
            .unwrap();
        let m = SipMessage::parse(Bytes::from(out)).unwrap();
        m.validate().unwrap();
        assert_eq!(
            m.from().unwrap().display_name.as_deref(),
            Some("Juliet \"J\" C")
        );
        assert_eq!(m.top_via().unwrap().rport(), Ok(Some(None)));
        assert_eq!(m.cseq().unwrap().seq, 7);
        assert_eq!(&m.body()[..], "hé".as_bytes());
    }

    #[test]
    fn reuses_the_buffer() {
        let first = Response::builder(200, "OK").finish().unwrap();
        let cap = first.capacity();
        let second = Response::builder_in(first, 404, "Not Found")
            .finish()
            .unwrap();
        assert_eq!(second.capacity(), cap);
        assert!(second.starts_with(b"SIP/2.0 404 Not Found\r\n"));
    }

    #[test]
    fn refuses_header_injection() {
        let r = Request::builder("MESSAGE", "sip:a@b")
            .header(HeaderName::Subject, "x\r\nVia: evil")
            .finish();
        assert_eq!(r, Err(BuildError::InvalidText));
        assert_eq!(
            Request::builder("MESSAGE", "sip:a@b c").finish(),
            Err(BuildError::InvalidText)
        );
        assert_eq!(
            Response::builder(1000, "x").finish(),
            Err(BuildError::BadStatus)
        );
        assert_eq!(
            Request::builder("M", "sip:a@b")
                .header(HeaderName::ContentLength, "5")
                .finish(),
            Err(BuildError::InvalidText)
        );
    }

    #[test]
    fn sip_uri_escapes_user() {
        let mut out = Vec::new();
        sip_uri(true, Some("a b@c"), "example.com", Some(5061), &mut out);
        assert_eq!(out, b"sips:a%20b%40c@example.com:5061");
    }
}
