//! Stream framing for SIP over TCP/TLS (RFC 3261 §18.3): fed bytes as they arrive, yields whole
//! messages delimited by Content-Length (mandatory on streams), and RFC 5626 §4.4.1 CRLF
//! keepalives. Bounded: the buffer never holds more than one message's caps plus one read.

use super::message::SipMessage;
use super::parse::{find_head_end, parse_head, Head, Limits, ParseError};
use crate::xmpp::error::Side;
use bytes::{Buf, BytesMut};
use std::fmt;

/// What the framer produced.
// The message variant is large (inline header index); boxing would allocate per message.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Framed {
    /// A complete message (structurally parsed; call [`SipMessage::validate`] before acting).
    Message(SipMessage),
    /// A double-CRLF keepalive ping: answer with a single CRLF pong.
    Ping,
    /// A single CRLF: the pong to our ping. (A ping split exactly between its two CRLFs shows
    /// up as `Pong` then `Ping`; answering the `Ping` is harmless either way.)
    Pong,
}

/// The stream cannot continue: framing is lost. The SIP peer is at fault; close the connection
/// (after a 400 if a request line was readable — not attempted here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FramerError {
    /// The peer sent something unframeable.
    Parse(ParseError),
    /// The caller fed more than the caps allow without draining with [`SipFramer::poll`].
    Overfull,
    /// An earlier error poisoned the stream.
    Poisoned,
}

impl FramerError {
    /// Who failed: the internal SIP peer for everything it sent, us for `Overfull`.
    pub fn side(&self) -> Side {
        match self {
            FramerError::Overfull => Side::Ours,
            _ => Side::InternalSip,
        }
    }
}

impl fmt::Display for FramerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FramerError::Parse(e) => write!(f, "SIP peer broke stream framing: {e}"),
            FramerError::Overfull => f.write_str("SIP framer fed without draining"),
            FramerError::Poisoned => f.write_str("SIP stream already failed"),
        }
    }
}

impl std::error::Error for FramerError {}

/// Sans-IO SIP stream framer. Feed with [`feed`](Self::feed), then call
/// [`poll`](Self::poll) until it returns `None`.
#[derive(Debug)]
pub struct SipFramer {
    limits: Limits,
    buf: BytesMut,
    /// Bytes already searched for the end of the header section.
    scanned: usize,
    head: Option<Head>,
    /// A lone CRLF at the end of data was reported as `Pong` and is still buffered.
    pong_reported: bool,
    poisoned: bool,
}

impl SipFramer {
    /// A framer with the given caps.
    pub fn new(limits: Limits) -> Self {
        SipFramer {
            limits,
            buf: BytesMut::with_capacity(4096),
            scanned: 0,
            head: None,
            pong_reported: false,
            poisoned: false,
        }
    }

    /// Appends received bytes.
    pub fn feed(&mut self, data: &[u8]) -> Result<(), FramerError> {
        if self.poisoned {
            return Err(FramerError::Poisoned);
        }
        let cap = self.limits.max_header_bytes + self.limits.max_body_bytes;
        if self.buf.len() > cap {
            self.poisoned = true;
            return Err(FramerError::Overfull);
        }
        self.buf.extend_from_slice(data);
        Ok(())
    }

    /// Bytes buffered and not yet returned.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next complete item, `None` if more bytes are needed, or an error that ends the stream.
    pub fn poll(&mut self) -> Option<Result<Framed, FramerError>> {
        if self.poisoned {
            return Some(Err(FramerError::Poisoned));
        }
        match self.step() {
            Ok(x) => x.map(Ok),
            Err(e) => {
                self.poisoned = true;
                Some(Err(FramerError::Parse(e)))
            }
        }
    }

    fn step(&mut self) -> Result<Option<Framed>, ParseError> {
        loop {
            if self.head.is_none() {
                if let Some(k) = self.keepalive()? {
                    match k {
                        Some(f) => return Ok(Some(f)),
                        None => continue,
                    }
                }
                if self.buf.first() == Some(&b'\r') {
                    // "\r" or "\r\n" or "\r\n\r" at the end of data: wait for the next byte.
                    return Ok(None);
                }
                match find_head_end(&self.buf, self.scanned) {
                    None => {
                        self.scanned = self.buf.len();
                        if self.buf.len() > self.limits.max_header_bytes {
                            return Err(ParseError::HeaderSectionTooLarge {
                                limit: self.limits.max_header_bytes,
                            });
                        }
                        return Ok(None);
                    }
                    Some(end) => {
                        let head = parse_head(&self.buf, end, &self.limits)?;
                        if head.content_length.is_none() {
                            return Err(ParseError::MissingContentLength);
                        }
                        self.head = Some(head);
                    }
                }
            }
            let (head_len, cl) = match &self.head {
                Some(h) => (h.head_len, h.content_length.unwrap_or(0)),
                None => return Ok(None),
            };
            let total = head_len + cl;
            if self.buf.len() < total {
                // Make room for the whole body now rather than growing step by step.
                self.buf.reserve(total - self.buf.len());
                return Ok(None);
            }
            let Some(head) = self.head.take() else {
                return Ok(None);
            };
            let bytes = self.buf.split_to(total).freeze();
            self.scanned = 0;
            return Ok(Some(Framed::Message(SipMessage::from_parts(
                bytes,
                head.start,
                head.headers,
                head_len..total,
            ))));
        }
    }

    /// At a message boundary: `Some(Some(item))` for a keepalive, `Some(None)` if silently
    /// consumed (loop again), `None` if the buffer does not start with a complete CRLF decision.
    #[allow(clippy::option_option)]
    fn keepalive(&mut self) -> Result<Option<Option<Framed>>, ParseError> {
        let b = &self.buf[..];
        if b.first() != Some(&b'\r') {
            return Ok(None);
        }
        match b.get(1) {
            None => return Ok(None),
            Some(b'\n') => {}
            Some(_) => return Err(ParseError::BadLineEnding),
        }
        if b.len() >= 4 && &b[..4] == b"\r\n\r\n" {
            self.buf.advance(4);
            self.scanned = 0;
            self.pong_reported = false;
            return Ok(Some(Some(Framed::Ping)));
        }
        match b.get(2) {
            Some(b'\r') => Ok(None),
            Some(_) => {
                self.buf.advance(2);
                self.scanned = 0;
                let already = std::mem::replace(&mut self.pong_reported, false);
                Ok(Some(if already { None } else { Some(Framed::Pong) }))
            }
            None if !self.pong_reported => {
                self.pong_reported = true;
                Ok(Some(Some(Framed::Pong)))
            }
            None => Ok(None),
        }
    }
}

impl Default for SipFramer {
    fn default() -> Self {
        Self::new(Limits::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const A: &str = "MESSAGE sip:r@a.example SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nl: 5\r\n\r\nHello";
    const B: &str =
        "SIP/2.0 200 OK\r\nv: SIP/2.0/TCP h;branch=z9hG4bK1\r\nContent-Length: 0\r\n\r\n";
    const C: &str = "NOTIFY sip:r@a.example SIP/2.0\r\nSubject: folded\r\n  more\r\nContent-Length: 3\r\n\r\n\r\n\r";

    fn drain(f: &mut SipFramer) -> Vec<Result<Framed, FramerError>> {
        std::iter::from_fn(|| f.poll()).collect()
    }

    #[test]
    fn yields_messages_and_keepalives_in_order() {
        let mut f = SipFramer::default();
        f.feed(format!("\r\n\r\n{A}{B}\r\n{C}").as_bytes()).unwrap();
        let out = drain(&mut f);
        assert!(matches!(out[0], Ok(Framed::Ping)));
        assert!(matches!(&out[1], Ok(Framed::Message(m)) if m.bytes() == A.as_bytes()));
        assert!(matches!(&out[2], Ok(Framed::Message(m)) if m.status() == Some(200)));
        assert!(matches!(out[3], Ok(Framed::Pong)));
        assert!(matches!(&out[4], Ok(Framed::Message(m)) if &m.body()[..] == b"\r\n\r"));
        assert_eq!(out.len(), 5);
        assert_eq!(f.buffered(), 0);
    }

    #[test]
    fn lone_crlf_at_end_of_data_is_reported_once_as_pong() {
        let mut f = SipFramer::default();
        f.feed(b"\r\n").unwrap();
        assert!(matches!(f.poll(), Some(Ok(Framed::Pong))));
        assert!(f.poll().is_none());
        f.feed(B.as_bytes()).unwrap();
        assert!(matches!(f.poll(), Some(Ok(Framed::Message(_)))));
        assert!(f.poll().is_none());
    }

    #[test]
    fn missing_content_length_is_a_peer_error() {
        let mut f = SipFramer::default();
        f.feed(b"OPTIONS sip:u@h SIP/2.0\r\nTo: x\r\n\r\n").unwrap();
        let e = f.poll().unwrap().unwrap_err();
        assert_eq!(e, FramerError::Parse(ParseError::MissingContentLength));
        assert_eq!(e.side(), Side::InternalSip);
        assert_eq!(f.poll().unwrap().unwrap_err(), FramerError::Poisoned);
    }

    #[test]
    fn unterminated_header_section_over_the_cap_fails() {
        let mut f = SipFramer::new(Limits {
            max_header_bytes: 1024,
            ..Limits::default()
        });
        f.feed(b"OPTIONS sip:u@h SIP/2.0\r\n").unwrap();
        for _ in 0..100 {
            if f.feed(b"X-Filler: aaaaaaaaaaaaaaaa\r\n").is_err() {
                break;
            }
            if let Some(r) = f.poll() {
                assert_eq!(
                    r.unwrap_err(),
                    FramerError::Parse(ParseError::HeaderSectionTooLarge { limit: 1024 })
                );
                return;
            }
        }
        panic!("cap not enforced");
    }

    #[test]
    fn oversized_body_is_refused_before_it_arrives() {
        let mut f = SipFramer::new(Limits {
            max_body_bytes: 100,
            ..Limits::default()
        });
        f.feed(b"MESSAGE sip:u@h SIP/2.0\r\nContent-Length: 101\r\n\r\n")
            .unwrap();
        assert_eq!(
            f.poll().unwrap().unwrap_err(),
            FramerError::Parse(ParseError::BodyTooLarge {
                declared: 101,
                limit: 100
            })
        );
    }

    fn messages(out: Vec<Result<Framed, FramerError>>) -> Vec<Vec<u8>> {
        out.into_iter()
            .filter_map(|r| match r.unwrap() {
                Framed::Message(m) => Some(m.bytes().to_vec()),
                _ => None,
            })
            .collect()
    }

    proptest! {
        #[test]
        fn every_split_yields_identical_messages(cuts in proptest::collection::vec(0usize..400, 0..12)) {
            let stream = format!("{A}\r\n\r\n{B}{C}{A}\r\n{B}");
            let bytes = stream.as_bytes();
            let mut whole = SipFramer::default();
            whole.feed(bytes).unwrap();
            let expected = messages(drain(&mut whole));
            prop_assert_eq!(expected.len(), 5);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (bytes.len() + 1)).collect();
            cuts.sort_unstable();
            let mut f = SipFramer::default();
            let mut got = Vec::new();
            let mut prev = 0;
            for c in cuts.into_iter().chain(std::iter::once(bytes.len())) {
                f.feed(&bytes[prev..c]).unwrap();
                got.extend(drain(&mut f));
                prev = c;
            }
            prop_assert_eq!(messages(got), expected);
        }
    }

    #[test]
    fn byte_at_a_time_yields_identical_messages() {
        let stream = format!("{A}\r\n\r\n{B}{C}{A}\r\n{B}");
        let mut f = SipFramer::default();
        let mut got = Vec::new();
        for b in stream.as_bytes() {
            f.feed(std::slice::from_ref(b)).unwrap();
            got.extend(drain(&mut f));
        }
        assert_eq!(messages(got).len(), 5);
    }
}
