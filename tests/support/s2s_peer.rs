//! A scripted S2S peer for scenario tests: blocking sockets, real TLS (rustls), and the crate's
//! framer to split what the router sends into elements. A test reads as a dialogue:
//! `peer.send(header)`, `peer.expect("stream:features")`, `peer.starttls_client(...)`, ...

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::{ClientConnection, ServerConnection, StreamOwned};
use stanza_router::xml::{Event, Framer, FramerLimits};

/// How long any single expectation may wait.
pub const STEP: Duration = Duration::from_secs(15);

enum Io {
    Plain(TcpStream),
    TlsClient(Box<StreamOwned<ClientConnection, TcpStream>>),
    TlsServer(Box<StreamOwned<ServerConnection, TcpStream>>),
    Gone,
}

/// One element received, as text (or a stream header / close marker).
#[derive(Debug, Clone)]
pub enum Got {
    /// `<stream:stream …>` with its `id`.
    Header {
        id: Option<String>,
        from: Option<String>,
        to: Option<String>,
    },
    /// A complete top-level element, as the router wrote it.
    Element(String),
    /// `</stream:stream>`.
    Close,
    /// TCP closed.
    Eof,
}

/// One side of a scripted S2S connection.
pub struct PeerConn {
    io: Io,
    framer: Framer,
    /// Everything received, for failure messages.
    pub transcript: String,
}

fn limits() -> FramerLimits {
    FramerLimits {
        max_stanza_bytes: 1 << 20,
        max_depth: 64,
        max_elements: 10_000,
        ..FramerLimits::default()
    }
}

impl PeerConn {
    /// Connects to the router.
    pub fn connect(addr: SocketAddr) -> PeerConn {
        let tcp = TcpStream::connect_timeout(&addr, STEP).expect("connect to router");
        Self::from_tcp(tcp)
    }

    /// Wraps an accepted connection.
    pub fn from_tcp(tcp: TcpStream) -> PeerConn {
        tcp.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        tcp.set_nodelay(true).unwrap();
        PeerConn {
            io: Io::Plain(tcp),
            framer: Framer::new(limits()),
            transcript: String::new(),
        }
    }

    /// Writes raw text.
    pub fn send(&mut self, text: &str) {
        let r = match &mut self.io {
            Io::Plain(s) => s.write_all(text.as_bytes()).and_then(|_| s.flush()),
            Io::TlsClient(s) => s.write_all(text.as_bytes()).and_then(|_| s.flush()),
            Io::TlsServer(s) => s.write_all(text.as_bytes()).and_then(|_| s.flush()),
            Io::Gone => Ok(()),
        };
        r.expect("write to router");
    }

    fn read_some(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match &mut self.io {
            Io::Plain(s) => s.read(buf),
            Io::TlsClient(s) => s.read(buf),
            Io::TlsServer(s) => s.read(buf),
            Io::Gone => Ok(0),
        }
    }

    /// The next thing received, waiting at most [`STEP`].
    pub fn next(&mut self) -> Got {
        let deadline = Instant::now() + STEP;
        let mut buf = [0u8; 8192];
        loop {
            match self.framer.next_event() {
                Ok(Some(Event::StreamOpen(h))) => {
                    return Got::Header {
                        id: h.id,
                        from: h.from,
                        to: h.to,
                    }
                }
                Ok(Some(Event::Stanza(s))) => {
                    return Got::Element(String::from_utf8_lossy(s.as_bytes()).into_owned())
                }
                Ok(Some(Event::StreamClose)) => return Got::Close,
                Ok(None) => {}
                Err(e) => panic!(
                    "router sent malformed XML: {e}; transcript: {}",
                    self.transcript
                ),
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting; transcript: {}",
                self.transcript
            );
            match self.read_some(&mut buf) {
                Ok(0) => return Got::Eof,
                Ok(n) => {
                    self.transcript
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                    self.framer.feed(&buf[..n]);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Got::Eof,
                Err(e) => panic!("read: {e}; transcript: {}", self.transcript),
            }
        }
    }

    /// The next thing received within `wait`, or `None` when nothing complete arrived by then
    /// (what was partly received is kept for the next call).
    pub fn next_within(&mut self, wait: Duration) -> Option<Got> {
        let deadline = Instant::now() + wait;
        let mut buf = [0u8; 8192];
        loop {
            match self.framer.next_event() {
                Ok(Some(Event::StreamOpen(h))) => {
                    return Some(Got::Header {
                        id: h.id,
                        from: h.from,
                        to: h.to,
                    })
                }
                Ok(Some(Event::Stanza(s))) => {
                    return Some(Got::Element(
                        String::from_utf8_lossy(s.as_bytes()).into_owned(),
                    ))
                }
                Ok(Some(Event::StreamClose)) => return Some(Got::Close),
                Ok(None) => {}
                Err(e) => panic!(
                    "router sent malformed XML: {e}; transcript: {}",
                    self.transcript
                ),
            }
            if Instant::now() >= deadline {
                return None;
            }
            // Reads time out after 200 ms (set at connect), so the deadline is kept to within that.
            match self.read_some(&mut buf) {
                Ok(0) => return Some(Got::Eof),
                Ok(n) => {
                    self.transcript
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                    self.framer.feed(&buf[..n]);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Some(Got::Eof),
                Err(e) => panic!("read: {e}; transcript: {}", self.transcript),
            }
        }
    }

    /// Expects a stream header; returns its id.
    pub fn expect_header(&mut self) -> Option<String> {
        match self.next() {
            Got::Header { id, .. } => id,
            other => panic!(
                "expected a stream header, got {other:?}; transcript: {}",
                self.transcript
            ),
        }
    }

    /// Expects an element containing `needle`; returns its text.
    pub fn expect(&mut self, needle: &str) -> String {
        match self.next() {
            Got::Element(e) if e.contains(needle) => e,
            other => panic!(
                "expected element with {needle:?}, got {other:?}; transcript: {}",
                self.transcript
            ),
        }
    }

    /// Expects a stream error with `condition`, then the close.
    pub fn expect_stream_error(&mut self, condition: &str) {
        loop {
            match self.next() {
                Got::Header { .. } => continue,
                Got::Element(e)
                    if e.contains("stream:error")
                        || e.contains(":error") && e.contains("xmpp-streams") =>
                {
                    assert!(
                        e.contains(&format!("<{condition} ")),
                        "expected {condition}, got {e}"
                    );
                    return;
                }
                other => panic!(
                    "expected stream error {condition}, got {other:?}; transcript: {}",
                    self.transcript
                ),
            }
        }
    }

    /// Waits until the router closes the TCP connection (after `</stream:stream>`).
    pub fn expect_closed(&mut self) {
        loop {
            match self.next() {
                Got::Close => continue,
                Got::Eof => return,
                other => panic!("expected close, got {other:?}"),
            }
        }
    }

    /// Stream restart (after SASL success): the parser starts afresh.
    pub fn restart(&mut self) {
        self.framer.reset();
    }

    /// Runs the TLS client handshake (after `<proceed/>`), presenting `config`'s certificate.
    pub fn starttls_client(&mut self, config: Arc<rustls::ClientConfig>, server_name: &str) {
        let Io::Plain(tcp) = std::mem::replace(&mut self.io, Io::Gone) else {
            panic!("TLS already active")
        };
        let name = rustls_pki_types::ServerName::try_from(server_name.to_string()).unwrap();
        let conn = ClientConnection::new(config, name).unwrap();
        let mut s = StreamOwned::new(conn, tcp);
        while s.conn.is_handshaking() {
            s.conn
                .complete_io(&mut s.sock)
                .expect("TLS handshake with router");
        }
        self.io = Io::TlsClient(Box::new(s));
        self.framer = Framer::new(limits());
    }

    /// Runs the TLS server handshake (after we sent `<proceed/>`).
    pub fn starttls_server(&mut self, config: Arc<rustls::ServerConfig>) {
        let Io::Plain(tcp) = std::mem::replace(&mut self.io, Io::Gone) else {
            panic!("TLS already active")
        };
        let conn = ServerConnection::new(config).unwrap();
        let mut s = StreamOwned::new(conn, tcp);
        while s.conn.is_handshaking() {
            s.conn
                .complete_io(&mut s.sock)
                .expect("TLS handshake from router");
        }
        self.io = Io::TlsServer(Box::new(s));
        self.framer = Framer::new(limits());
    }

    /// The router's client certificate chain, on a connection where we are the TLS server.
    pub fn client_chain_len(&self) -> usize {
        match &self.io {
            Io::TlsServer(s) => s.conn.peer_certificates().map_or(0, |c| c.len()),
            _ => 0,
        }
    }
}

/// The initiating stream header from `from` to `to`.
pub fn header(from: &str, to: &str) -> String {
    format!(
        "<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' \
         xmlns:db='jabber:server:dialback' from='{from}' to='{to}' version='1.0'>"
    )
}

/// The responding stream header.
pub fn response_header(from: &str, to: &str, id: &str) -> String {
    format!(
        "<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' \
         xmlns:db='jabber:server:dialback' from='{from}' to='{to}' id='{id}' version='1.0'>"
    )
}

/// A listener playing the partner's server, for the router's outbound connections.
pub struct PeerListener {
    listener: TcpListener,
}

impl PeerListener {
    /// Binds `addr` (a 127.0.0.x with port 0 or a fixed port).
    pub fn bind(addr: SocketAddr) -> PeerListener {
        PeerListener {
            listener: TcpListener::bind(addr).expect("bind peer listener"),
        }
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap()
    }

    /// Accepts the router's next connection, waiting at most [`STEP`].
    pub fn accept(&self) -> PeerConn {
        self.listener.set_nonblocking(true).unwrap();
        let deadline = Instant::now() + STEP;
        loop {
            match self.listener.accept() {
                Ok((tcp, _)) => {
                    tcp.set_nonblocking(false).unwrap();
                    return PeerConn::from_tcp(tcp);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    assert!(
                        Instant::now() < deadline,
                        "router did not connect to {}",
                        self.addr()
                    );
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => panic!("accept: {e}"),
            }
        }
    }
}
