//! SIP flows scripted by a test, over plain TCP with the router's own framer: the pool side of
//! the router's next-hop connections (one per shard), or an internal user agent connecting to
//! the router's `[sip] listen`. Every wait has a deadline; CRLF keepalive pings are answered.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use stanza_router::sip::transaction::response_to;
use stanza_router::sip::{Framed, HeaderName, Limits, SipFramer, SipMessage};

/// How long one scripted wait may take.
pub const WAIT: Duration = Duration::from_secs(30);

/// One scripted SIP connection.
pub struct SipFlow {
    tcp: TcpStream,
    framer: SipFramer,
}

impl SipFlow {
    fn new(tcp: TcpStream) -> SipFlow {
        tcp.set_read_timeout(Some(Duration::from_millis(50)))
            .expect("read timeout");
        SipFlow {
            tcp,
            framer: SipFramer::new(Limits::default()),
        }
    }

    /// Accepts one flow per shard from the router (each shard opens its own to the next hop).
    pub fn accept_all(l: &TcpListener, shards: usize) -> Vec<SipFlow> {
        (0..shards)
            .map(|_| SipFlow::new(l.accept().expect("router connects to the pool").0))
            .collect()
    }

    /// Connects to the router's SIP listener.
    pub fn connect(to: SocketAddr) -> SipFlow {
        SipFlow::new(TcpStream::connect_timeout(&to, WAIT).expect("router SIP listener"))
    }

    /// Our local address (Via / Contact).
    pub fn local_addr(&self) -> SocketAddr {
        self.tcp.local_addr().expect("local address")
    }

    /// Writes raw bytes.
    pub fn send(&mut self, b: &[u8]) {
        self.tcp.write_all(b).expect("write to the router");
    }

    /// The next message, or `None` when `until` passes or the router closes the flow.
    pub fn next(&mut self, until: Instant) -> Option<SipMessage> {
        let mut buf = [0u8; 8192];
        loop {
            while let Some(f) = self.framer.poll() {
                match f.expect("router sends valid SIP") {
                    Framed::Message(m) => return Some(m),
                    Framed::Ping => self.send(b"\r\n"),
                    Framed::Pong => {}
                }
            }
            if Instant::now() >= until {
                return None;
            }
            match self.tcp.read(&mut buf) {
                Ok(0) => return None,
                Ok(n) => self.framer.feed(&buf[..n]).expect("framing"),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => panic!("SIP flow: {e}"),
            }
        }
    }

    /// The next message, which must be a response with `code`.
    pub fn expect_response(&mut self, code: u16) -> SipMessage {
        let m = self.next(Instant::now() + WAIT).expect("a response");
        assert_eq!(m.status(), Some(code), "{}", text(&m));
        m
    }

    /// The next message, which must be a `method` request.
    pub fn expect_request(&mut self, method: &str) -> SipMessage {
        let m = self
            .next(Instant::now() + WAIT)
            .unwrap_or_else(|| panic!("no {method}"));
        assert_eq!(m.method(), Some(method), "{}", text(&m));
        m.validate().expect("valid request");
        m
    }

    /// The next message on any of `flows`, which must be a `method` request.
    pub fn expect_request_any(flows: &mut [SipFlow], method: &str) -> (usize, SipMessage) {
        let until = Instant::now() + WAIT;
        while Instant::now() < until {
            for (i, f) in flows.iter_mut().enumerate() {
                if let Some(m) = f.next(Instant::now() + Duration::from_millis(20)) {
                    assert_eq!(m.method(), Some(method), "{}", text(&m));
                    m.validate().expect("valid request");
                    return (i, m);
                }
            }
        }
        panic!("no {method} on any flow");
    }

    /// Answers `req` with `code` (no To tag added).
    pub fn answer(&mut self, req: &SipMessage, code: u16) {
        let b = response_to(req, code, "OK", None)
            .unwrap()
            .finish()
            .unwrap();
        self.send(&b);
    }

    /// Answers a SUBSCRIBE 200 with our To tag, a Contact and the Expires granted.
    pub fn accept_subscribe(&mut self, req: &SipMessage, tag: &str, contact: &str, expires: u32) {
        let b = response_to(req, 200, "OK", Some(tag))
            .unwrap()
            .contact(contact)
            .expires(expires)
            .finish()
            .unwrap();
        self.send(&b);
    }
}

/// A header's value as text ("" when absent).
pub fn header(m: &SipMessage, name: HeaderName) -> String {
    m.header(name)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .unwrap_or_default()
}

/// The whole message as text, for assertion messages.
pub fn text(m: &SipMessage) -> String {
    String::from_utf8_lossy(&m.bytes()).into_owned()
}

/// A PIDF document for `entity`: `open`, with an RPID activity when given and one note.
pub fn pidf(entity: &str, activity: Option<&str>, note_lang: &str, note: &str) -> String {
    let person = activity.map_or(String::new(), |a| {
        format!("<dm:person id='p1'><rpid:activities><rpid:{a}/></rpid:activities></dm:person>")
    });
    format!(
        "<?xml version='1.0' encoding='UTF-8'?>\
         <presence xmlns='urn:ietf:params:xml:ns:pidf' \
         xmlns:dm='urn:ietf:params:xml:ns:pidf:data-model' \
         xmlns:rpid='urn:ietf:params:xml:ns:pidf:rpid' entity='{entity}'>\
         <tuple id='t1'><status><basic>open</basic></status>\
         <note xml:lang='{note_lang}'>{note}</note></tuple>{person}</presence>"
    )
}
