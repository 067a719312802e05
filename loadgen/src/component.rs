//! The XEP-0114 component sink: the loadgen connects to Prosody or ejabberd as an external
//! component (`jabber:component:accept`) and completes each message delivered to `user@DOMAIN`
//! from the `seq=` in it.
//!
//! This is the closest equivalent, on those servers, of the router's SIP delivery: a server-side
//! sink with no roster, offline storage, carbons or client session in the path. Blocking std
//! socket, the project's XML framer.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use stanza_router::xml::{Event, Framer, FramerLimits, StanzaKind};

use crate::correlator::{seq_from_body_bytes, Correlator, Recorder};
use crate::s2s::{S2sError, READ_POLL, WRITE_STALL};

/// The component namespace of the accept method.
pub const NS_COMPONENT: &str = "jabber:component:accept";

/// `<handshake/>` content: lower-case hex SHA-1 of the stream id the server sent followed by the
/// shared secret (XEP-0114 §3).
pub fn handshake_digest(stream_id: &str, secret: &str) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(stream_id.as_bytes());
    ctx.update(secret.as_bytes());
    let d = ctx.finish();
    let mut s = String::with_capacity(40);
    for b in d.as_ref() {
        s.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        s.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    s
}

/// The stream header a component sends.
pub fn component_header(domain: &str) -> String {
    format!(
        "<?xml version='1.0'?><stream:stream xmlns='{NS_COMPONENT}' \
         xmlns:stream='http://etherx.jabber.org/streams' to='{domain}'>"
    )
}

/// An authenticated component stream.
pub struct Component {
    tcp: TcpStream,
    framer: Framer,
}

/// What the component saw.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ComponentCounts {
    /// Messages with a loadgen `seq=`.
    pub messages: u64,
    /// Other stanzas (ignored).
    pub other: u64,
    /// Whether the server closed the stream or failed before we stopped.
    pub closed_early: bool,
}

/// Connects to `addr` as component `domain` and authenticates with `secret`.
pub fn connect(
    addr: SocketAddr,
    domain: &str,
    secret: &str,
    deadline: Instant,
) -> Result<Component, S2sError> {
    let timeout = deadline.saturating_duration_since(Instant::now());
    let mut tcp = TcpStream::connect_timeout(&addr, timeout.max(Duration::from_millis(1)))
        .map_err(|e| S2sError::Connect(addr, e))?;
    tcp.set_nodelay(true)?;
    tcp.set_read_timeout(Some(READ_POLL))?;
    tcp.set_write_timeout(Some(WRITE_STALL))?;
    let mut framer = Framer::new(FramerLimits::post_auth());
    tcp.write_all(component_header(domain).as_bytes())?;
    let mut buf = vec![0u8; 16384];
    let id = match next(
        &mut tcp,
        &mut framer,
        &mut buf,
        deadline,
        "the stream header",
    )? {
        Event::StreamOpen(h) => h.id.ok_or_else(|| {
            S2sError::Protocol("the server's component stream header has no id".into())
        })?,
        Event::Stanza(s) => return Err(stanza_error("a stream header", s.as_bytes())),
        Event::StreamClose => return Err(S2sError::Closed),
    };
    let digest = handshake_digest(&id, secret);
    tcp.write_all(format!("<handshake>{digest}</handshake>").as_bytes())?;
    match next(&mut tcp, &mut framer, &mut buf, deadline, "<handshake/>")? {
        Event::Stanza(s)
            if s.kind() == StanzaKind::Other && s.as_bytes().starts_with(b"<handshake") =>
        {
            Ok(Component { tcp, framer })
        }
        Event::Stanza(s) => Err(stanza_error("<handshake/>", s.as_bytes())),
        Event::StreamOpen(_) => Err(S2sError::Protocol("a second stream header".into())),
        Event::StreamClose => Err(S2sError::Closed),
    }
}

fn stanza_error(what: &str, bytes: &[u8]) -> S2sError {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into_owned();
    S2sError::Protocol(format!("expected {what}, got {text}"))
}

fn next(
    tcp: &mut TcpStream,
    framer: &mut Framer,
    buf: &mut [u8],
    deadline: Instant,
    what: &'static str,
) -> Result<Event, S2sError> {
    loop {
        match framer.next_event() {
            Ok(Some(e)) => return Ok(e),
            Ok(None) => {}
            Err(e) => return Err(S2sError::Framing(e.to_string())),
        }
        if Instant::now() > deadline {
            return Err(S2sError::Timeout(what));
        }
        match tcp.read(buf) {
            Ok(0) => return Err(S2sError::Closed),
            Ok(n) => framer.feed(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

impl Component {
    /// Reads deliveries until `stop` (or the server closes): completes each in `corr`.
    pub fn serve(mut self, corr: &Correlator, stop: &AtomicBool) -> (Recorder, ComponentCounts) {
        let mut rec = Recorder::new();
        let mut counts = ComponentCounts::default();
        let mut buf = vec![0u8; 256 * 1024];
        let mut at = Instant::now();
        // Without timestamps a delivery ends when this thread reads it (see `rx_stamp`).
        let _ = crate::rx_stamp::enable(&self.tcp);
        'outer: loop {
            loop {
                match self.framer.next_event() {
                    Ok(Some(Event::Stanza(s))) => {
                        let b = s.as_bytes();
                        match b
                            .starts_with(b"<message")
                            .then(|| seq_from_body_bytes(b))
                            .flatten()
                        {
                            Some(seq) => {
                                counts.messages += 1;
                                corr.delivered(seq, at, &mut rec);
                            }
                            None => counts.other += 1,
                        }
                    }
                    Ok(Some(Event::StreamOpen(_))) => {}
                    Ok(Some(Event::StreamClose)) | Err(_) => {
                        counts.closed_early = !stop.load(Ordering::Acquire);
                        break 'outer;
                    }
                    Ok(None) => break,
                }
            }
            if stop.load(Ordering::Acquire) {
                let _ = self.tcp.write_all(b"</stream:stream>");
                break;
            }
            match crate::rx_stamp::read(&self.tcp, &mut buf) {
                Ok(r) if r.n == 0 => {
                    counts.closed_early = !stop.load(Ordering::Acquire);
                    break;
                }
                Ok(r) => {
                    at = r.at;
                    self.framer.feed(&buf[..r.n]);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    counts.closed_early = !stop.load(Ordering::Acquire);
                    break;
                }
            }
        }
        let _ = self.tcp.shutdown(std::net::Shutdown::Both);
        (rec, counts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn handshake_digest_is_hex_sha1_of_id_then_secret() {
        // Reference value: python3 hashlib.sha1(b"3BF96D32" + b"Ilovemypigs").hexdigest().
        assert_eq!(
            handshake_digest("3BF96D32", "Ilovemypigs"),
            "2424e333f9ced80256cbbc8d1e7d2287124e8609"
        );
        // SHA-1 of the empty string (FIPS 180 test vector).
        assert_eq!(
            handshake_digest("", ""),
            "da39a3ee5e6b4b0d3255bfef95601890afd80709"
        );
    }

    /// A scripted server: checks the header and the digest, accepts, sends two messages.
    #[test]
    fn connects_authenticates_and_completes_deliveries() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut got = Vec::new();
            let mut b = [0u8; 4096];
            while !got.ends_with(b"to='sink.test'>") {
                let n = s.read(&mut b).unwrap();
                assert!(n > 0);
                got.extend_from_slice(&b[..n]);
            }
            s.write_all(
                b"<stream:stream xmlns='jabber:component:accept' \
                  xmlns:stream='http://etherx.jabber.org/streams' id='abc' from='sink.test'>",
            )
            .unwrap();
            let want = format!("<handshake>{}</handshake>", handshake_digest("abc", "pw"));
            got.clear();
            while got.len() < want.len() {
                let n = s.read(&mut b).unwrap();
                assert!(n > 0);
                got.extend_from_slice(&b[..n]);
            }
            assert_eq!(got, want.as_bytes());
            s.write_all(b"<handshake/>").unwrap();
            s.write_all(
                b"<message from='a@p.test/r' to='user1@sink.test' id='lg-1'><body>seq=1 x</body></message>\
                  <iq type='get' id='q'/>\
                  <message from='a@p.test/r' to='user2@sink.test' id='lg-2'><body>seq=2 x</body></message>\
                  </stream:stream>",
            )
            .unwrap();
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        let c = connect(addr, "sink.test", "pw", deadline).unwrap();
        let corr = Correlator::new(Instant::now(), 16, 1);
        for seq in [1, 2] {
            assert!(corr.register(seq, 0, 0, 0, true, crate::correlator::Kind::Message));
        }
        let stop = AtomicBool::new(false);
        let (rec, counts) = c.serve(&corr, &stop);
        server.join().unwrap();
        assert_eq!(rec.delivered, 2);
        assert_eq!(counts.messages, 2);
        assert_eq!(counts.other, 1);
        assert_eq!(corr.pending(), 0);
    }

    #[test]
    fn wrong_secret_is_reported() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            s.write_all(
                b"<stream:stream xmlns='jabber:component:accept' \
                  xmlns:stream='http://etherx.jabber.org/streams' id='abc' from='sink.test'>\
                  <stream:error><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>",
            )
            .unwrap();
            // Hold the connection until the client has read the error and closed.
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut b = [0u8; 1024];
            while matches!(s.read(&mut b), Ok(n) if n > 0) {}
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        let e = connect(addr, "sink.test", "bad", deadline).err().unwrap();
        assert!(e.to_string().contains("not-authorized"), "{e}");
        server.join().unwrap();
    }
}
