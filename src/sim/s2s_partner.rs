//! The partner side of an S2S stream, blocking, on std sockets and rustls: the stream a
//! federated partner opens to the router (STARTTLS or direct TLS, SASL EXTERNAL or dialback,
//! restart) and the router's outbound stream it accepts as the receiving server (or, for
//! dialback, answers as the partner's authoritative server). Shared by `stanza-router demo`'s embedded
//! partner and the load generator.
//!
//! Any domain pair; after the dialogue an [`Established`] stream's [`Duplex`] can be shared by a
//! writer thread and a reader thread. The TLS session sits behind a mutex held only to encrypt or
//! decrypt; socket I/O happens outside it, so a blocked write never stalls the reader and the
//! reader never holds the lock while waiting.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::xml::{Event, Framer, FramerLimits, HeaderAttr, Stanza, StanzaKind, NS_SASL, NS_TLS};
use crate::xmpp::dialback::DialbackSecret;
use rustls::{ClientConfig, ClientConnection, Connection, ServerConfig, ServerConnection};

/// Socket read timeout: how often a blocked reader checks its deadline or stop flag.
pub const READ_POLL: Duration = Duration::from_millis(100);

/// A write blocked this long (the peer stopped reading) fails, so every run ends by itself.
pub const WRITE_STALL: Duration = Duration::from_secs(30);

/// Why a dialogue or an I/O step failed, naming the side that failed.
#[derive(Debug)]
pub enum S2sError {
    /// TCP connect failed.
    Connect(SocketAddr, io::Error),
    /// Socket I/O failed.
    Io(io::Error),
    /// rustls refused (handshake or record layer).
    Tls(rustls::Error),
    /// The peer's XML was not well-formed or broke a cap.
    Framing(String),
    /// The peer said something else than the dialogue expects.
    Protocol(String),
    /// The peer closed the stream or the connection.
    Closed,
    /// The deadline passed.
    Timeout(&'static str),
}

impl fmt::Display for S2sError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            S2sError::Connect(a, e) => write!(f, "connect to {a}: {e}"),
            S2sError::Io(e) => write!(f, "socket: {e}"),
            S2sError::Tls(e) => write!(f, "TLS: {e}"),
            S2sError::Framing(e) => write!(f, "peer XML: {e}"),
            S2sError::Protocol(e) => write!(f, "peer: {e}"),
            S2sError::Closed => f.write_str("peer closed the stream"),
            S2sError::Timeout(what) => write!(f, "timed out waiting for {what}"),
        }
    }
}

impl std::error::Error for S2sError {}

impl From<io::Error> for S2sError {
    fn from(e: io::Error) -> Self {
        S2sError::Io(e)
    }
}

impl From<rustls::Error> for S2sError {
    fn from(e: rustls::Error) -> Self {
        S2sError::Tls(e)
    }
}

fn poisoned() -> S2sError {
    S2sError::Protocol("a thread sharing the connection panicked".into())
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// One TCP connection, clear text or TLS, shared by a writer and a reader.
///
/// Lock order: `write` then `tls`. Every socket write happens under `write`, together with the
/// encryption of what it carries, so records reach the socket in the order they were sealed.
pub struct Duplex {
    tcp: TcpStream,
    write: Mutex<()>,
    tls: Mutex<Option<Connection>>,
}

impl Duplex {
    fn new(tcp: TcpStream) -> io::Result<Duplex> {
        tcp.set_nodelay(true)?;
        tcp.set_read_timeout(Some(READ_POLL))?;
        tcp.set_write_timeout(Some(WRITE_STALL))?;
        Ok(Duplex {
            tcp,
            write: Mutex::new(()),
            tls: Mutex::new(None),
        })
    }

    /// Sends `data` (encrypted when TLS is up). `scratch` holds the records between the
    /// encryption (under the lock) and the socket write (outside it); it is left empty.
    pub fn send(&self, data: &[u8], scratch: &mut Vec<u8>) -> Result<(), S2sError> {
        scratch.clear();
        let _w = self.write.lock().map_err(|_| poisoned())?;
        {
            let mut guard = self.tls.lock().map_err(|_| poisoned())?;
            match guard.as_mut() {
                None => {
                    drop(guard);
                    return Ok((&self.tcp).write_all(data)?);
                }
                Some(conn) => {
                    // rustls buffers a bounded amount of records: seal in chunks, moving the
                    // records out after each.
                    let mut rest = data;
                    loop {
                        let n = conn.writer().write(rest)?;
                        rest = &rest[n..];
                        let mut moved = false;
                        while conn.wants_write() {
                            conn.write_tls(scratch)?;
                            moved = true;
                        }
                        if rest.is_empty() {
                            break;
                        }
                        if n == 0 && !moved {
                            return Err(S2sError::Io(io::ErrorKind::WriteZero.into()));
                        }
                    }
                }
            }
        }
        (&self.tcp).write_all(scratch)?;
        scratch.clear();
        Ok(())
    }

    /// Reads what arrives within [`READ_POLL`] into `framer`; `Ok(false)` on end of stream.
    /// `buf` is the socket read buffer.
    pub fn pump(&self, framer: &mut Framer, buf: &mut [u8]) -> Result<bool, S2sError> {
        let read = |tcp: &TcpStream, b: &mut [u8]| Ok(((&*tcp).read(b)?, Instant::now()));
        Ok(self.pump_with(framer, buf, read)?.is_some())
    }

    /// [`Self::pump`] with the socket read done by `read`, which returns the byte count and
    /// when those bytes arrived (the load generator's read asks the kernel, so an answer ends
    /// when it reached the socket rather than when a busy thread read it). Returns that
    /// instant, the current one when nothing new was read, `None` at the end of the stream.
    pub fn pump_with(
        &self,
        framer: &mut Framer,
        buf: &mut [u8],
        mut read: impl FnMut(&TcpStream, &mut [u8]) -> io::Result<(usize, Instant)>,
    ) -> Result<Option<Instant>, S2sError> {
        // Plain text rustls already holds (read along with the handshake's last flight) first:
        // the peer may be waiting for our answer to it.
        if self.drain_plaintext(framer, buf)? {
            return Ok(Some(Instant::now()));
        }
        let (n, at) = match read(&self.tcp, buf) {
            Ok((0, _)) => return Ok(None),
            Ok(r) => r,
            Err(e) if is_timeout(&e) => return Ok(Some(Instant::now())),
            Err(e) => return Err(e.into()),
        };
        let mut guard = self.tls.lock().map_err(|_| poisoned())?;
        let Some(conn) = guard.as_mut() else {
            framer.feed(&buf[..n]);
            return Ok(Some(at));
        };
        let mut records = &buf[..n];
        let mut plain = [0u8; 16384];
        let mut wants_write = false;
        while !records.is_empty() {
            conn.read_tls(&mut records)?;
            let state = conn.process_new_packets()?;
            let mut avail = state.plaintext_bytes_to_read();
            while avail > 0 {
                let got = conn.reader().read(&mut plain)?;
                if got == 0 {
                    break;
                }
                framer.feed(&plain[..got]);
                avail = avail.saturating_sub(got);
            }
            if state.peer_has_closed() {
                return Ok(None);
            }
            wants_write |= conn.wants_write();
        }
        drop(guard);
        if wants_write {
            // Key updates, alerts: rare; sealed and written in order with the writer's records.
            self.send(&[], &mut Vec::new())?;
        }
        Ok(Some(at))
    }

    /// Moves decrypted bytes buffered in the TLS session into `framer`; whether there were any.
    fn drain_plaintext(&self, framer: &mut Framer, buf: &mut [u8]) -> Result<bool, S2sError> {
        let mut guard = self.tls.lock().map_err(|_| poisoned())?;
        let Some(conn) = guard.as_mut() else {
            return Ok(false);
        };
        let mut any = false;
        loop {
            match conn.reader().read(buf) {
                Ok(0) => return Ok(any),
                Ok(n) => {
                    framer.feed(&buf[..n]);
                    any = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(any),
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn start_tls(&self, mut conn: Connection, deadline: Instant) -> Result<(), S2sError> {
        while conn.is_handshaking() {
            if Instant::now() > deadline {
                return Err(S2sError::Timeout("the TLS handshake"));
            }
            match conn.complete_io(&mut &self.tcp) {
                Ok(_) => {}
                Err(e) if is_timeout(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
        *self.tls.lock().map_err(|_| poisoned())? = Some(conn);
        Ok(())
    }

    /// Closes both directions of the socket (ends a reader blocked on it).
    pub fn shutdown(&self) {
        let _ = self.tcp.shutdown(std::net::Shutdown::Both);
    }
}

impl std::os::fd::AsRawFd for Duplex {
    /// The socket (to poll it or set options on it; reads and writes go through [`Duplex::pump`]
    /// and [`Duplex::send`]).
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.tcp.as_raw_fd()
    }
}

/// The stream open tag a partner writes (`id` on the receiving side only).
pub fn stream_header(from: &str, to: &str, id: Option<&str>) -> String {
    stream_header_with(from, to, id, Dialect::default())
}

/// How a partner's stream headers present it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dialect {
    /// Declare `xmlns:db='jabber:server:dialback'` (a server that supports dialback; the router
    /// may then offer or use it besides SASL EXTERNAL).
    pub dialback_ns: bool,
}

/// [`stream_header`] in `dialect`.
pub fn stream_header_with(from: &str, to: &str, id: Option<&str>, dialect: Dialect) -> String {
    let id = id.map(|i| format!(" id='{i}'")).unwrap_or_default();
    let db = if dialect.dialback_ns {
        " xmlns:db='jabber:server:dialback'"
    } else {
        ""
    };
    format!(
        "<?xml version='1.0'?><stream:stream xmlns='jabber:server' \
         xmlns:stream='http://etherx.jabber.org/streams'{db} from='{from}' to='{to}'{id} version='1.0'>"
    )
}

/// An authenticated stream: the shared connection and the framer of its incoming side.
pub struct Established {
    /// The connection (give clones to the writer and the reader).
    pub duplex: Arc<Duplex>,
    /// The framer, positioned after the peer's last stream header and features.
    pub framer: Framer,
}

/// What [`Established::next`] read.
#[derive(Debug)]
pub enum Got {
    /// A stream header (a restart).
    Header,
    /// A top-level element.
    Element(Stanza),
}

impl Established {
    /// Sends `s` on the stream (one thread at a time with [`Established::next`]; threads that
    /// share the stream use the [`Duplex`] directly). `scratch` as in [`Duplex::send`].
    pub fn send(&self, s: &str, scratch: &mut Vec<u8>) -> Result<(), S2sError> {
        self.duplex.send(s.as_bytes(), scratch)
    }

    /// The next header or element from the peer, reading into `buf`; [`S2sError::Closed`] at
    /// the end of the stream, [`S2sError::Timeout`] after `deadline`.
    pub fn next(&mut self, buf: &mut [u8], deadline: Instant) -> Result<Got, S2sError> {
        next_event(&self.duplex, &mut self.framer, buf, deadline, "the peer")
    }
}

fn next_event(
    duplex: &Duplex,
    framer: &mut Framer,
    buf: &mut [u8],
    deadline: Instant,
    what: &'static str,
) -> Result<Got, S2sError> {
    loop {
        match framer.next_event() {
            Ok(Some(Event::StreamOpen(_))) => return Ok(Got::Header),
            Ok(Some(Event::Stanza(s))) => return Ok(Got::Element(s)),
            Ok(Some(Event::StreamClose)) => return Err(S2sError::Closed),
            Ok(None) => {}
            Err(e) => return Err(S2sError::Framing(e.to_string())),
        }
        if Instant::now() > deadline {
            return Err(S2sError::Timeout(what));
        }
        if !duplex.pump(framer, buf)? {
            return Err(S2sError::Closed);
        }
    }
}

/// Stream dialogue in progress (one thread).
struct Dialogue {
    duplex: Arc<Duplex>,
    framer: Framer,
    buf: Vec<u8>,
    scratch: Vec<u8>,
    deadline: Instant,
}

impl Dialogue {
    /// Connects to `addr` within the deadline.
    fn dial(addr: SocketAddr, deadline: Instant) -> Result<Dialogue, S2sError> {
        let timeout = deadline.saturating_duration_since(Instant::now());
        let tcp = TcpStream::connect_timeout(&addr, timeout.max(Duration::from_millis(1)))
            .map_err(|e| S2sError::Connect(addr, e))?;
        Dialogue::new(tcp, deadline)
    }

    /// Starts TLS as the client towards `remote` (its certificate must name it).
    fn client_tls(&mut self, tls: Arc<ClientConfig>, remote: &str) -> Result<(), S2sError> {
        let name = rustls_pki_types::ServerName::try_from(remote.to_string())
            .map_err(|_| S2sError::Protocol(format!("{remote} is not a DNS name")))?;
        self.duplex.start_tls(
            Connection::Client(ClientConnection::new(tls, name)?),
            self.deadline,
        )
    }

    /// Over TLS: opens the stream with `header`, authenticates with SASL EXTERNAL, restarts
    /// the stream and reads the final features.
    fn sasl_external(&mut self, header: &str) -> Result<(), S2sError> {
        self.send(header)?;
        self.expect_header()?;
        self.expect_features_with("EXTERNAL", "features offering SASL EXTERNAL")?;
        self.send(&format!(
            "<auth xmlns='{NS_SASL}' mechanism='EXTERNAL'>=</auth>"
        ))?;
        self.expect(StanzaKind::SaslSuccess, "SASL <success/>")?;
        self.framer.reset();
        self.send(header)?;
        self.expect_header()?;
        self.expect(StanzaKind::Features, "post-authentication features")?;
        Ok(())
    }

    /// As the receiving server: answers the stream with `first` and required STARTTLS, does
    /// the TLS handshake, answers the restarted stream with `second` and offers SASL EXTERNAL.
    fn serve_starttls(
        &mut self,
        tls: Arc<ServerConfig>,
        first: &str,
        second: &str,
    ) -> Result<(), S2sError> {
        self.expect_header()?;
        self.send(first)?;
        self.send(&format!(
            "<stream:features><starttls xmlns='{NS_TLS}'><required/></starttls></stream:features>"
        ))?;
        self.expect(StanzaKind::StartTls, "<starttls/>")?;
        self.send(&format!("<proceed xmlns='{NS_TLS}'/>"))?;
        self.framer.reset();
        self.duplex.start_tls(
            Connection::Server(ServerConnection::new(tls)?),
            self.deadline,
        )?;
        self.expect_header()?;
        self.send(second)?;
        self.send(&format!(
            "<stream:features><mechanisms xmlns='{NS_SASL}'><mechanism>EXTERNAL</mechanism></mechanisms></stream:features>"
        ))
    }

    fn new(tcp: TcpStream, deadline: Instant) -> Result<Dialogue, S2sError> {
        Ok(Dialogue {
            duplex: Arc::new(Duplex::new(tcp)?),
            framer: Framer::new(FramerLimits::post_auth()),
            buf: vec![0; 16384],
            scratch: Vec::new(),
            deadline,
        })
    }

    fn send(&mut self, s: &str) -> Result<(), S2sError> {
        self.duplex.send(s.as_bytes(), &mut self.scratch)
    }

    fn next(&mut self, what: &'static str) -> Result<Got, S2sError> {
        next_event(
            &self.duplex,
            &mut self.framer,
            &mut self.buf,
            self.deadline,
            what,
        )
    }

    fn expect_header(&mut self) -> Result<(), S2sError> {
        match self.next("a stream header")? {
            Got::Header => Ok(()),
            Got::Element(e) => Err(unexpected("a stream header", &e)),
        }
    }

    /// Expects a stream header and returns its id (dialback keys are bound to it).
    fn expect_header_id(&mut self) -> Result<String, S2sError> {
        loop {
            match self.framer.next_event() {
                Ok(Some(Event::StreamOpen(h))) => {
                    return h.id.ok_or_else(|| {
                        S2sError::Protocol("the peer's stream header has no id".into())
                    })
                }
                Ok(Some(Event::Stanza(e))) => return Err(unexpected("a stream header", &e)),
                Ok(Some(Event::StreamClose)) => return Err(S2sError::Closed),
                Ok(None) => {}
                Err(e) => return Err(S2sError::Framing(e.to_string())),
            }
            if Instant::now() > self.deadline {
                return Err(S2sError::Timeout("a stream header"));
            }
            if !self.duplex.pump(&mut self.framer, &mut self.buf)? {
                return Err(S2sError::Closed);
            }
        }
    }

    /// Expects an element of `kind`; `mechanism`: features must offer SASL EXTERNAL.
    fn expect(&mut self, kind: StanzaKind, what: &'static str) -> Result<Stanza, S2sError> {
        match self.next(what)? {
            Got::Element(e) if e.kind() == kind => Ok(e),
            Got::Element(e) => Err(unexpected(what, &e)),
            Got::Header => Err(S2sError::Protocol(format!("expected {what}, got a header"))),
        }
    }

    fn expect_features_with(&mut self, needle: &str, what: &'static str) -> Result<(), S2sError> {
        let f = self.expect(StanzaKind::Features, what)?;
        if memfind(f.as_bytes(), needle.as_bytes()) {
            Ok(())
        } else {
            Err(unexpected(what, &f))
        }
    }

    fn done(self) -> Established {
        Established {
            duplex: self.duplex,
            framer: self.framer,
        }
    }
}

fn memfind(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn unexpected(what: &str, e: &Stanza) -> S2sError {
    let text = String::from_utf8_lossy(&e.as_bytes()[..e.len().min(200)]).into_owned();
    S2sError::Protocol(format!("expected {what}, got {text}"))
}

/// Opens `local` → `remote` at `addr`: STARTTLS, SASL EXTERNAL with the client certificate in
/// `tls`, stream restart, final features.
pub fn connect(
    addr: SocketAddr,
    local: &str,
    remote: &str,
    tls: Arc<ClientConfig>,
    deadline: Instant,
) -> Result<Established, S2sError> {
    connect_with(addr, local, remote, tls, deadline, Dialect::default())
}

/// [`connect`], the headers in `dialect`.
pub fn connect_with(
    addr: SocketAddr,
    local: &str,
    remote: &str,
    tls: Arc<ClientConfig>,
    deadline: Instant,
    dialect: Dialect,
) -> Result<Established, S2sError> {
    let mut d = Dialogue::dial(addr, deadline)?;
    let header = stream_header_with(local, remote, None, dialect);
    d.send(&header)?;
    d.expect_header()?;
    d.expect_features_with("starttls", "features offering STARTTLS")?;
    d.send(&format!("<starttls xmlns='{NS_TLS}'/>"))?;
    d.expect(StanzaKind::TlsProceed, "<proceed/>")?;
    d.framer.reset();
    d.client_tls(tls, remote)?;
    d.sasl_external(&header)?;
    Ok(d.done())
}

/// Opens `local` → `remote` at `addr` over direct TLS (XEP-0368: TLS from the first byte, the
/// client config in `tls` offering ALPN `xmpp-server`), then SASL EXTERNAL, stream restart,
/// final features.
pub fn connect_direct(
    addr: SocketAddr,
    local: &str,
    remote: &str,
    tls: Arc<ClientConfig>,
    deadline: Instant,
) -> Result<Established, S2sError> {
    let mut d = Dialogue::dial(addr, deadline)?;
    d.client_tls(tls, remote)?;
    let header = stream_header(local, remote, None);
    d.sasl_external(&header)?;
    Ok(d.done())
}

/// Opens `local` → `remote` at `addr` authenticated by server dialback (XEP-0220) over
/// STARTTLS: the key is `secret`'s for (remote, local, the stream id of the TLS stream), and the
/// router checks it with `local`'s authoritative server — which must answer with the same
/// secret (see [`accept_answering`]). Succeeds on `<db:result type='valid'/>`.
pub fn connect_dialback(
    addr: SocketAddr,
    local: &str,
    remote: &str,
    tls: Arc<ClientConfig>,
    secret: &DialbackSecret,
    deadline: Instant,
) -> Result<Established, S2sError> {
    let mut d = Dialogue::dial(addr, deadline)?;
    let header = stream_header_with(local, remote, None, Dialect { dialback_ns: true });
    d.send(&header)?;
    d.expect_header()?;
    d.expect_features_with("starttls", "features offering STARTTLS")?;
    d.send(&format!("<starttls xmlns='{NS_TLS}'/>"))?;
    d.expect(StanzaKind::TlsProceed, "<proceed/>")?;
    d.framer.reset();
    d.client_tls(tls, remote)?;
    d.send(&header)?;
    let id = d.expect_header_id()?;
    d.expect(StanzaKind::Features, "features after TLS")?;
    let key = secret.key(remote, local, &id);
    d.send(&format!(
        "<db:result from='{local}' to='{remote}'>{key}</db:result>"
    ))?;
    let r = d.expect(StanzaKind::DialbackResult, "<db:result/>")?;
    match r.attr_raw(HeaderAttr::Type) {
        Some("valid") => Ok(d.done()),
        other => Err(S2sError::Protocol(format!(
            "the router answered dialback for {local} with type {other:?}"
        ))),
    }
}

/// What [`accept_answering`] ended with.
pub enum Accepted {
    /// An authenticated stream (SASL EXTERNAL), ready for stanzas.
    Stream(Box<Established>),
    /// A verify-only stream: the router asked `db:verify` questions, answered with the secret,
    /// then closed.
    Verified {
        /// Keys found valid.
        valid: u64,
        /// Keys found invalid.
        invalid: u64,
    },
}

/// The text content of a simple element (`<db:verify …>KEY</db:verify>`).
fn element_text(e: &Stanza) -> &str {
    let b = e.as_bytes();
    let start = b.iter().position(|c| *c == b'>').map_or(b.len(), |p| p + 1);
    let end = b
        .iter()
        .rposition(|c| *c == b'<')
        .filter(|e| *e >= start)
        .unwrap_or(start);
    std::str::from_utf8(&b[start..end]).unwrap_or("")
}

/// [`accept_with`], also acting as `local`'s authoritative server for dialback: when the
/// router's stream asks `<db:verify/>` instead of authenticating (a verify-only stream, XEP-0220
/// §2.3), each key is checked against `secret` for (its `from`, `local`, its `id`) and answered
/// `valid` or `invalid` until the router closes the stream.
#[allow(clippy::too_many_arguments)]
pub fn accept_answering(
    tcp: TcpStream,
    local: &str,
    remote: &str,
    tls: Arc<ServerConfig>,
    stream_id: &str,
    deadline: Instant,
    dialect: Dialect,
    secret: Option<&DialbackSecret>,
) -> Result<Accepted, S2sError> {
    let header =
        |n: u32| stream_header_with(local, remote, Some(&format!("{stream_id}-{n}")), dialect);
    let mut d = Dialogue::new(tcp, deadline)?;
    d.serve_starttls(tls, &header(1), &header(2))?;
    let (mut valid, mut invalid) = (0, 0);
    loop {
        let what = "SASL <auth/> or <db:verify/>";
        let e = match d.next(what) {
            Ok(Got::Element(e)) => e,
            Ok(Got::Header) => {
                return Err(S2sError::Protocol(format!("expected {what}, got a header")))
            }
            // The router closes a verify-only stream once its questions are answered.
            Err(S2sError::Closed) if valid + invalid > 0 => {
                let _ = d.send("</stream:stream>");
                return Ok(Accepted::Verified { valid, invalid });
            }
            Err(e) => return Err(e),
        };
        match (e.kind(), secret) {
            (StanzaKind::SaslAuth, _) if valid + invalid == 0 => break,
            (StanzaKind::DialbackVerify, Some(secret)) => {
                let from = e.attr_raw(HeaderAttr::From).unwrap_or("");
                let id = e.attr_raw(HeaderAttr::Id).unwrap_or("");
                let ok = secret.verify(from, local, id, element_text(&e));
                if ok {
                    valid += 1;
                } else {
                    invalid += 1;
                }
                let ty = if ok { "valid" } else { "invalid" };
                d.send(&format!(
                    "<db:verify from='{local}' to='{from}' id='{id}' type='{ty}'/>"
                ))?;
            }
            _ => return Err(unexpected(what, &e)),
        }
    }
    d.send(&format!("<success xmlns='{NS_SASL}'/>"))?;
    d.framer.reset();
    d.expect_header()?;
    d.send(&header(3))?;
    d.send("<stream:features/>")?;
    Ok(Accepted::Stream(Box::new(d.done())))
}

/// Answers the stream a router opened to `local` on `tcp` (we are the receiving server):
/// offers STARTTLS (required), then SASL EXTERNAL, accepts any authentication attempt (the
/// loadgen trusts its own router) and sends empty features after the restart.
pub fn accept(
    tcp: TcpStream,
    local: &str,
    remote: &str,
    tls: Arc<ServerConfig>,
    stream_id: &str,
    deadline: Instant,
) -> Result<Established, S2sError> {
    accept_with(
        tcp,
        local,
        remote,
        tls,
        stream_id,
        deadline,
        Dialect::default(),
    )
}

/// [`accept`], the headers in `dialect`.
pub fn accept_with(
    tcp: TcpStream,
    local: &str,
    remote: &str,
    tls: Arc<ServerConfig>,
    stream_id: &str,
    deadline: Instant,
    dialect: Dialect,
) -> Result<Established, S2sError> {
    let header =
        |n: u32| stream_header_with(local, remote, Some(&format!("{stream_id}-{n}")), dialect);
    let mut d = Dialogue::new(tcp, deadline)?;
    d.serve_starttls(tls, &header(1), &header(2))?;
    d.expect(StanzaKind::SaslAuth, "SASL <auth/>")?;
    d.send(&format!("<success xmlns='{NS_SASL}'/>"))?;
    d.framer.reset();
    d.expect_header()?;
    d.send(&header(3))?;
    d.send("<stream:features/>")?;
    Ok(d.done())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A TLS pair over loopback: (client side, server side).
    fn tls_pair() -> (Duplex, Duplex) {
        use crate::edge::tls::{client_config, identity_from_pem, server_config, Alpn};
        let ca = crate::pki::ThrowawayCa::new("test").unwrap();
        let leaf = ca.issue(&["a.test"]).unwrap();
        let id = identity_from_pem(&leaf.cert_pem, &leaf.key_pem).unwrap();
        let (client, server) = (
            client_config(&id, Alpn::None).unwrap(),
            server_config(&id, &[], Alpn::None).unwrap(),
        );
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let srv = std::thread::spawn(move || {
            let d = Duplex::new(l.accept().unwrap().0).unwrap();
            let conn = ServerConnection::new(server).unwrap();
            d.start_tls(Connection::Server(conn), deadline).unwrap();
            d
        });
        let c = Duplex::new(TcpStream::connect(addr).unwrap()).unwrap();
        let name = rustls_pki_types::ServerName::try_from("a.test").unwrap();
        let conn = ClientConnection::new(client, name).unwrap();
        c.start_tls(Connection::Client(conn), deadline).unwrap();
        (c, srv.join().unwrap())
    }

    /// A scripted router asks two `db:verify` questions on a verify-only stream: the key made
    /// with the secret is valid, another is not, and the stream ends when the router closes.
    #[test]
    fn authoritative_answers_check_keys_against_the_secret() {
        use crate::edge::tls::{client_config, identity_from_pem, server_config, Alpn};
        let ca = crate::pki::ThrowawayCa::new("test").unwrap();
        let leaf = ca.issue(&["corp.test", "p.test"]).unwrap();
        let id = identity_from_pem(&leaf.cert_pem, &leaf.key_pem).unwrap();
        let client = client_config(&id, Alpn::None).unwrap();
        let server = server_config(&id, &[], Alpn::None).unwrap();
        let secret = DialbackSecret::new(b"loadgen");
        let good = secret.key("corp.test", "p.test", "s1");
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let srv = std::thread::spawn(move || {
            let tcp = l.accept().unwrap().0;
            let dialect = Dialect { dialback_ns: true };
            match accept_answering(
                tcp,
                "p.test",
                "corp.test",
                server,
                "sid",
                deadline,
                dialect,
                Some(&secret),
            ) {
                Ok(Accepted::Verified { valid, invalid }) => (valid, invalid),
                Ok(Accepted::Stream(_)) => panic!("authenticated instead of verifying"),
                Err(e) => panic!("{e}"),
            }
        });
        let mut d = Dialogue::new(TcpStream::connect(addr).unwrap(), deadline).unwrap();
        let header = stream_header_with("corp.test", "p.test", None, Dialect { dialback_ns: true });
        d.send(&header).unwrap();
        d.expect_header().unwrap();
        d.expect_features_with("starttls", "STARTTLS").unwrap();
        d.send(&format!("<starttls xmlns='{NS_TLS}'/>")).unwrap();
        d.expect(StanzaKind::TlsProceed, "proceed").unwrap();
        d.framer.reset();
        let name = rustls_pki_types::ServerName::try_from("p.test").unwrap();
        let conn = ClientConnection::new(client, name).unwrap();
        d.duplex
            .start_tls(Connection::Client(conn), deadline)
            .unwrap();
        d.send(&header).unwrap();
        d.expect_header().unwrap();
        d.expect(StanzaKind::Features, "features").unwrap();
        d.send(&format!(
            "<db:verify from='corp.test' to='p.test' id='s1'>{good}</db:verify>\
             <db:verify from='corp.test' to='p.test' id='s2'>{good}</db:verify>"
        ))
        .unwrap();
        for (sid, ty) in [("s1", "valid"), ("s2", "invalid")] {
            let v = d.expect(StanzaKind::DialbackVerify, "db:verify").unwrap();
            assert_eq!(v.attr_raw(HeaderAttr::Id), Some(sid));
            assert_eq!(v.attr_raw(HeaderAttr::Type), Some(ty));
            assert_eq!(v.attr_raw(HeaderAttr::From), Some("p.test"));
        }
        d.send("</stream:stream>").unwrap();
        assert_eq!(srv.join().unwrap(), (1, 1));
    }

    #[test]
    fn sends_larger_than_the_tls_buffer_arrive_whole() {
        let (client, server) = tls_pair();
        let stanza =
            b"<message id='x'><body>0123456789012345678901234567890123456789</body></message>";
        let count = 20_000;
        let mut batch = stream_header("a.test", "b.test", None).into_bytes();
        for _ in 0..count {
            batch.extend_from_slice(stanza);
        }
        assert!(batch.len() > 1 << 20);
        let sender = std::thread::spawn(move || {
            client.send(&batch, &mut Vec::new()).unwrap();
            client
        });
        let mut framer = Framer::new(FramerLimits::post_auth());
        let mut buf = vec![0; 16384];
        let mut got = 0;
        let deadline = Instant::now() + Duration::from_secs(30);
        while got < count && Instant::now() < deadline {
            assert!(server.pump(&mut framer, &mut buf).unwrap());
            while let Ok(Some(ev)) = framer.next_event() {
                if matches!(ev, Event::Stanza(_)) {
                    got += 1;
                }
            }
        }
        assert_eq!(got, count);
        drop(sender.join().unwrap());
    }

    /// `pump_with` hands back the arrival instant its read reported for the records it
    /// decrypted, and `None` once the peer closed.
    #[test]
    fn pump_with_reports_when_the_read_says_the_bytes_arrived() {
        let (client, server) = tls_pair();
        let stanza = b"<message id='x'><body>hi</body></message>";
        let mut batch = stream_header("a.test", "b.test", None).into_bytes();
        batch.extend_from_slice(stanza);
        client.send(&batch, &mut Vec::new()).unwrap();
        let arrived = Instant::now() - Duration::from_millis(40);
        let mut framer = Framer::new(FramerLimits::post_auth());
        let mut buf = vec![0; 16384];
        let stamped = |t: &TcpStream, b: &mut [u8]| Ok(((&*t).read(b)?, arrived));
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut stanzas = 0;
        while stanzas == 0 && Instant::now() < deadline {
            let at = server.pump_with(&mut framer, &mut buf, stamped).unwrap();
            let at = at.expect("the stream is open");
            while let Ok(Some(ev)) = framer.next_event() {
                if matches!(ev, Event::Stanza(_)) {
                    stanzas += 1;
                    assert_eq!(at, arrived, "the stanza carries its read's instant");
                }
            }
        }
        assert_eq!(stanzas, 1);
        client.shutdown();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match server.pump_with(&mut framer, &mut buf, stamped) {
                Ok(None) => break,
                Ok(Some(_)) => assert!(Instant::now() < deadline, "no end of stream"),
                Err(e) => panic!("{e}"),
            }
        }
    }

    #[test]
    fn stream_header_names_both_sides() {
        let h = stream_header("p0.partner.test", "corp.test", Some("x"));
        assert!(h.contains("from='p0.partner.test'"));
        assert!(h.contains("to='corp.test'"));
        assert!(h.contains("id='x'"));
        assert!(!stream_header("a", "b", None).contains(" id="));
        assert!(!h.contains("xmlns:db"));
        let db = stream_header_with("a", "b", None, Dialect { dialback_ns: true });
        assert!(
            db.contains(" xmlns:db='jabber:server:dialback' from='a'"),
            "{db}"
        );
    }
}
