//! A simulated internal SIP pool (Lync-like) on loopback, for `stanza-router demo` and the load
//! generator: it accepts the router's next-hop connections and answers what arrives there
//! (see [`AnswerPlan`]), and it plays internal users that send MESSAGE and SUBSCRIBE to the
//! router's SIP listener.
//!
//! Plain std threads and blocking sockets (not glommio) so it runs beside the router in one
//! process as well as in a separate binary. Every loop is bounded: sockets have read timeouts so
//! threads notice [`SipPool::stop`], and client calls end at their deadlines. The answering logic
//! is the sans-IO [`Uas`](super::sip_uas) core; this file only moves bytes.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::sip::framer::{Framed, SipFramer};
use crate::sip::headers::HeaderName;
use crate::sip::message::SipMessage;
use crate::sip::parse::Limits;
use crate::sip::serialize::Request;
use crate::sip::transaction::{random_hex, BranchGen};

use super::sip_uas::{split_host_port, Book, Output, Uas};
pub use super::sip_uas::{AnswerPlan, NotifyReport, PoolStats, SubscribeCounts};

/// How often blocked threads look at the stop flag (read timeout, accept poll).
const POLL: Duration = Duration::from_millis(20);
/// A write that cannot complete in this time fails the connection (the peer stopped reading).
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// Connecting to the router.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long [`SipPool::stop`] waits for its threads before leaving them detached.
const STOP_GRACE: Duration = Duration::from_secs(2);
/// Read buffer per connection.
const READ_CHUNK: usize = 16 * 1024;

/// How the pool is set up.
#[derive(Debug)]
pub struct PoolConfig {
    /// Already bound; the router's `[sip] next_hop` points here.
    pub listener: TcpListener,
    /// Our internal SIP domain (`corp.test`): the host of our users' URIs.
    pub domain: String,
    /// How MESSAGE and SUBSCRIBE are answered.
    pub answers: AnswerPlan,
    /// Keep the first `samples` requests received (raw text) for the report.
    pub samples: usize,
    /// Caps on received messages; a message over them is malformed.
    pub limits: Limits,
    /// Most connections served at once (one thread each); more are closed on accept.
    pub max_connections: usize,
}

impl PoolConfig {
    /// A config with the default answer plan, 16 samples, 64 KiB bodies, 256 connections.
    pub fn new(listener: TcpListener, domain: &str) -> PoolConfig {
        PoolConfig {
            listener,
            domain: domain.to_string(),
            answers: AnswerPlan::default(),
            samples: 16,
            limits: Limits {
                max_body_bytes: 64 * 1024,
                ..Limits::default()
            },
            max_connections: 256,
        }
    }
}

/// What [`SipPool::send_messages`] sends.
#[derive(Debug, Clone)]
pub struct SendPlan {
    /// Sender user: `From: <sip:{from_user}@{domain}>`.
    pub from_user: String,
    /// Request-URI and To (e.g. `sip:alice@partner.test`).
    pub to_uri: String,
    /// Number of MESSAGEs.
    pub count: u64,
    /// Most MESSAGEs outstanding (sent, no final response yet) at once; at least 1.
    pub window: usize,
    /// `text/plain` body; `{n}` is replaced by the message's 1-based number.
    pub body: String,
    /// A MESSAGE without a final response this long after sending is counted missing (and
    /// leaves the window).
    pub response_timeout: Duration,
    /// The whole run ends by then; what is outstanding is counted missing, what is unsent is
    /// counted not sent.
    pub deadline: Duration,
}

impl SendPlan {
    /// `count` MESSAGEs, window 16, 5 s response timeout, 60 s overall.
    pub fn new(from_user: &str, to_uri: &str, count: u64) -> SendPlan {
        SendPlan {
            from_user: from_user.to_string(),
            to_uri: to_uri.to_string(),
            count,
            window: 16,
            body: "simulated message {n}".to_string(),
            response_timeout: Duration::from_secs(5),
            deadline: Duration::from_secs(60),
        }
    }
}

/// Outcome of [`SipPool::send_messages`]. Invariants: `sent + not_sent == count` and
/// `sent == answered() + missing`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SendReport {
    /// MESSAGEs written to the connection.
    pub sent: u64,
    /// MESSAGEs never sent (deadline, or the connection failed first).
    pub not_sent: u64,
    /// Final responses, by status.
    pub by_status: BTreeMap<u16, u64>,
    /// Sent MESSAGEs without a final response within `response_timeout`, at the deadline, or
    /// when the connection ended.
    pub missing: u64,
    /// Final responses that came after their MESSAGE was counted missing (not in `by_status`).
    pub late: u64,
    /// Responses matching no MESSAGE we sent (or a second final response).
    pub stray: u64,
    /// Send-to-final-response latency of each answered MESSAGE, in microseconds, in arrival order.
    pub latencies_us: Vec<u64>,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Why the run ended early, if it did (connection closed or failed).
    pub ended_by: Option<String>,
}

impl SendReport {
    /// MESSAGEs with a final response counted in `by_status`.
    pub fn answered(&self) -> u64 {
        self.by_status.values().sum()
    }
}

/// Outcome of [`SipPool::subscribe`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubscribeReport {
    /// The subscription dialog's Call-ID.
    pub call_id: String,
    /// Final status of the SUBSCRIBE, `None` if none came in time.
    pub status: Option<u16>,
    /// `Expires` of a 2xx.
    pub expires: Option<u32>,
    /// To-tag of a 2xx.
    pub to_tag: Option<String>,
    /// NOTIFYs received for the dialog (each answered 200), in arrival order.
    pub notifies: Vec<NotifyReport>,
    /// Why the wait ended early, if the connection closed or failed.
    pub ended_by: Option<String>,
}

/// State shared by the pool's threads.
#[derive(Debug)]
struct Shared {
    book: Mutex<Book>,
    stop: AtomicBool,
    /// Clones of live sockets, shut down on stop so blocked threads return at once.
    sockets: Mutex<HashMap<u64, TcpStream>>,
    next_socket: AtomicU64,
    /// Subscribers waiting for NOTIFYs that arrive on the router's next-hop connections.
    waiters: Mutex<HashMap<String, Sender<NotifyReport>>>,
    plan: AnswerPlan,
    limits: Limits,
    /// `host:port` of the listener, for Via and Contact.
    local: String,
    domain: String,
}

/// Locks, recovering from a panicked holder (the data stays usable counters).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn register(&self, s: &TcpStream) -> Option<u64> {
        let id = self.next_socket.fetch_add(1, Ordering::Relaxed);
        let clone = s.try_clone().ok()?;
        lock(&self.sockets).insert(id, clone);
        Some(id)
    }

    fn unregister(&self, id: Option<u64>) {
        if let Some(id) = id {
            lock(&self.sockets).remove(&id);
        }
    }

    fn forward(&self, notifies: Vec<NotifyReport>) {
        if notifies.is_empty() {
            return;
        }
        let waiters = lock(&self.waiters);
        for n in notifies {
            if let Some(tx) = waiters.get(&n.call_id) {
                let _ = tx.send(n);
            }
        }
    }
}

/// A running simulated pool. Dropping it without [`stop`](Self::stop) stops it too.
#[derive(Debug)]
pub struct SipPool {
    shared: Arc<Shared>,
    addr: SocketAddr,
    acceptor: Option<JoinHandle<Vec<JoinHandle<()>>>>,
}

impl SipPool {
    /// Starts the acceptor thread; each accepted connection gets its own thread.
    pub fn start(cfg: PoolConfig) -> io::Result<SipPool> {
        let addr = cfg.listener.local_addr()?;
        cfg.listener.set_nonblocking(true)?;
        let host = if addr.ip().is_unspecified() {
            "127.0.0.1".to_string()
        } else if addr.is_ipv6() {
            format!("[{}]", addr.ip())
        } else {
            addr.ip().to_string()
        };
        let shared = Arc::new(Shared {
            book: Mutex::new(Book {
                samples_cap: cfg.samples,
                ..Book::default()
            }),
            stop: AtomicBool::new(false),
            sockets: Mutex::new(HashMap::new()),
            next_socket: AtomicU64::new(0),
            waiters: Mutex::new(HashMap::new()),
            plan: cfg.answers,
            limits: cfg.limits,
            local: format!("{host}:{}", addr.port()),
            domain: cfg.domain,
        });
        let sh = shared.clone();
        let max = cfg.max_connections.max(1);
        let listener = cfg.listener;
        let acceptor = thread::Builder::new()
            .name("sim-sip-accept".into())
            .spawn(move || accept_loop(listener, sh, max))?;
        Ok(SipPool {
            shared,
            addr,
            acceptor: Some(acceptor),
        })
    }

    /// The listener's address (the router's next hop).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> PoolStats {
        lock(&self.shared.book).stats.clone()
    }

    /// The first requests received, as text (lossy UTF-8).
    pub fn samples(&self) -> Vec<String> {
        lock(&self.shared.book).samples.clone()
    }

    /// Closes the listener and every connection, and joins the threads (waiting at most a
    /// couple of seconds; a thread still running then is left detached).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for s in lock(&self.shared.sockets).values() {
            let _ = s.shutdown(Shutdown::Both);
        }
        let deadline = Instant::now() + STOP_GRACE;
        let Some(acceptor) = self.acceptor.take() else {
            return;
        };
        if !wait_finished(&acceptor, deadline) {
            return;
        }
        if let Ok(conns) = acceptor.join() {
            for c in conns {
                if wait_finished(&c, deadline) {
                    let _ = c.join();
                }
            }
        }
    }

    /// Source side: connects to the router's SIP listener and sends `plan.count` MESSAGEs
    /// (`From: <sip:{from_user}@{domain}>;tag`, To and Request-URI `plan.to_uri`, a fresh
    /// Call-ID each), at most `plan.window` outstanding, and collects every final response with
    /// its latency. Requests the router sends on this connection are answered like on the
    /// next-hop connections. Only a failed connect is an error; a connection lost mid-run ends
    /// the run with the remainder counted (see [`SendReport::ended_by`]).
    pub fn send_messages(&self, router: SocketAddr, plan: SendPlan) -> io::Result<SendReport> {
        let started = Instant::now();
        let deadline = started + plan.deadline;
        let mut conn = Client::connect(self.shared.clone(), router)?;
        let window = plan.window.max(1);
        let from_uri = format!("sip:{}@{}", plan.from_user, self.shared.domain);
        let run_id = random_hex(6).unwrap_or_else(|_| "run".into());
        let mut branches = BranchGen::with_prefix(&run_id);
        // Call-ID -> send time.
        let mut pending: HashMap<String, Instant> = HashMap::new();
        // Counted missing by timeout; a late answer is recognized, not stray.
        let mut expired: std::collections::HashSet<String> = std::collections::HashSet::new();
        let mut report = SendReport::default();
        let mut n = 0u64;
        while Instant::now() < deadline && (n < plan.count || !pending.is_empty()) {
            while n < plan.count && pending.len() < window && report.ended_by.is_none() {
                n += 1;
                let call_id = format!("{run_id}.{n}@{}", self.shared.domain);
                let body = plan.body.replace("{n}", &n.to_string());
                let branch = branches.next_branch();
                let (host, port) = split_host_port(&conn.local);
                let req = Request::builder("MESSAGE", &plan.to_uri)
                    .via("TCP", host, port, &branch, true)
                    .max_forwards(70)
                    .from(None, &from_uri, Some(&format!("m{n}")))
                    .to(None, &plan.to_uri, None)
                    .call_id(&call_id)
                    .cseq(1, "MESSAGE")
                    .body("text/plain; charset=UTF-8", body.as_bytes())
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
                let at = Instant::now();
                if let Err(e) = conn.stream.write_all(&req) {
                    report.ended_by = Some(format!("write failed: {e}"));
                    n -= 1;
                    break;
                }
                report.sent += 1;
                pending.insert(call_id, at);
            }
            if report.ended_by.is_some() {
                break;
            }
            let now = Instant::now();
            pending.retain(|id, at| {
                let keep = now.duration_since(*at) < plan.response_timeout;
                if !keep {
                    report.missing += 1;
                    expired.insert(id.clone());
                }
                keep
            });
            let got = conn.read_some(|m| {
                let (Ok(id), Some(status), Ok(cseq)) = (m.call_id(), m.status(), m.cseq()) else {
                    return false;
                };
                if cseq.method != "MESSAGE" {
                    return false;
                }
                if status < 200 {
                    return pending.contains_key(id);
                }
                if let Some(at) = pending.remove(id) {
                    *report.by_status.entry(status).or_default() += 1;
                    report
                        .latencies_us
                        .push(at.elapsed().as_micros().min(u64::MAX as u128) as u64);
                } else if expired.remove(id) {
                    report.late += 1;
                } else {
                    report.stray += 1;
                }
                true
            });
            if let Err(e) = got {
                report.ended_by = Some(e);
                break;
            }
        }
        report.missing += pending.len() as u64;
        report.not_sent = plan.count - n;
        report.elapsed = started.elapsed();
        Ok(report)
    }

    /// Sends SUBSCRIBE (`Event: presence`, `Accept: application/pidf+xml`, `Expires`) from
    /// internal user `from_user` to `to_uri` over a new connection to the router, with this
    /// pool's listener as Contact. Answers (200) and reports the NOTIFYs of the dialog, whether
    /// they come back on that connection or on a next-hop connection (matched by Call-ID).
    /// Returns after `wait`, or earlier: on a non-2xx final response, on a `terminated` NOTIFY,
    /// or once a 2xx and a NOTIFY with a readable PIDF status are both in.
    pub fn subscribe(
        &self,
        router: SocketAddr,
        from_user: &str,
        to_uri: &str,
        expires: u32,
        wait: Duration,
    ) -> io::Result<SubscribeReport> {
        let deadline = Instant::now() + wait;
        let (tx, rx): (Sender<NotifyReport>, Receiver<NotifyReport>) = mpsc::channel();
        let tag = random_hex(6).unwrap_or_else(|_| "sub".into());
        let call_id = format!("sub.{tag}@{}", self.shared.domain);
        lock(&self.shared.waiters).insert(call_id.clone(), tx);
        let result = self.subscribe_on(
            router, from_user, to_uri, expires, deadline, &call_id, &tag, &rx,
        );
        lock(&self.shared.waiters).remove(&call_id);
        result
    }

    #[allow(clippy::too_many_arguments)]
    fn subscribe_on(
        &self,
        router: SocketAddr,
        from_user: &str,
        to_uri: &str,
        expires: u32,
        deadline: Instant,
        call_id: &str,
        tag: &str,
        rx: &Receiver<NotifyReport>,
    ) -> io::Result<SubscribeReport> {
        let mut conn = Client::connect(self.shared.clone(), router)?;
        let from_uri = format!("sip:{from_user}@{}", self.shared.domain);
        let contact = format!("sip:{from_user}@{};transport=tcp", self.shared.local);
        let branch = BranchGen::with_prefix(tag).next_branch();
        let (host, port) = split_host_port(&conn.local);
        let req = Request::builder("SUBSCRIBE", to_uri)
            .via("TCP", host, port, &branch, true)
            .max_forwards(70)
            .from(None, &from_uri, Some(tag))
            .to(None, to_uri, None)
            .call_id(call_id)
            .cseq(1, "SUBSCRIBE")
            .contact(&contact)
            .header(HeaderName::Event, "presence")
            .header(HeaderName::Accept, "application/pidf+xml")
            .expires(expires)
            .finish()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let mut report = SubscribeReport {
            call_id: call_id.to_string(),
            ..SubscribeReport::default()
        };
        conn.stream.write_all(&req)?;
        loop {
            let terminated = report
                .notifies
                .iter()
                .any(|n| n.state.eq_ignore_ascii_case("terminated"));
            let presence_in = report.notifies.iter().any(|n| n.basic.is_some());
            let done = match report.status {
                Some(s) if s >= 300 => true,
                Some(_) => terminated || presence_in,
                None => terminated,
            };
            if done || Instant::now() >= deadline {
                break;
            }
            let got = conn.read_some(|m| {
                let (Ok(id), Some(status), Ok(cseq)) = (m.call_id(), m.status(), m.cseq()) else {
                    return false;
                };
                if id != call_id || cseq.method != "SUBSCRIBE" {
                    return false;
                }
                if status >= 200 && report.status.is_none() {
                    report.status = Some(status);
                    if status < 300 {
                        report.expires = m.expires().ok();
                        report.to_tag = m.to().ok().and_then(|t| t.tag().map(str::to_owned));
                    }
                }
                true
            });
            // NOTIFYs of the dialog, from this connection or a next-hop one.
            while let Ok(n) = rx.try_recv() {
                report.notifies.push(n);
            }
            if let Err(e) = got {
                report.ended_by = Some(e);
                break;
            }
        }
        report.notifies.extend(rx.try_iter());
        Ok(report)
    }
}

impl Drop for SipPool {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Polls `h` until it finished or `deadline` passed.
fn wait_finished<T>(h: &JoinHandle<T>, deadline: Instant) -> bool {
    while !h.is_finished() {
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(5));
    }
    true
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>, max: usize) -> Vec<JoinHandle<()>> {
    let mut conns: Vec<JoinHandle<()>> = Vec::new();
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                conns.retain(|h| !h.is_finished());
                if conns.len() >= max {
                    lock(&shared.book).stats.connections_refused += 1;
                    continue; // dropping the stream closes it
                }
                lock(&shared.book).stats.connections_accepted += 1;
                let sh = shared.clone();
                let spawned = thread::Builder::new()
                    .name("sim-sip-conn".into())
                    .spawn(move || serve(stream, sh));
                if let Ok(h) = spawned {
                    conns.push(h);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => thread::sleep(POLL),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // ECONNABORTED, EMFILE…: back off and keep serving.
            Err(_) => thread::sleep(POLL),
        }
    }
    conns
}

/// Serves one connection the router opened to the pool.
fn serve(stream: TcpStream, shared: Arc<Shared>) {
    let Ok(mut conn) = Conn::new(stream, shared.clone(), true) else {
        return;
    };
    while !shared.stop.load(Ordering::SeqCst) {
        if conn.pump(|_| false).is_err() {
            break;
        }
    }
    let _ = conn.stream.shutdown(Shutdown::Both);
}

/// One connection, either side: a framer, the answering core, and the socket.
struct Conn {
    stream: TcpStream,
    shared: Arc<Shared>,
    id: Option<u64>,
    framer: SipFramer,
    /// The bytes the framer holds, so an unframeable request can still get its 400.
    unframed: Vec<u8>,
    uas: Uas,
    buf: Vec<u8>,
}

impl Conn {
    fn new(stream: TcpStream, shared: Arc<Shared>, next_hop: bool) -> io::Result<Conn> {
        // Accepted sockets may inherit the listener's non-blocking mode on some platforms.
        stream.set_nonblocking(false)?;
        stream.set_read_timeout(Some(POLL))?;
        stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
        let _ = stream.set_nodelay(true);
        let id = shared.register(&stream);
        Ok(Conn {
            framer: SipFramer::new(shared.limits),
            unframed: Vec::new(),
            uas: Uas::new(shared.plan.clone(), shared.local.clone(), next_hop),
            buf: vec![0; READ_CHUNK],
            stream,
            id,
            shared,
        })
    }

    /// One read (waiting at most [`POLL`]) and everything it completes. `claim` sees each
    /// response first and returns `true` if it consumed it; the rest goes to the core.
    /// NOTIFYs received go to the subscribers waiting on their Call-ID. Returns why the
    /// connection is over, if it is.
    fn pump(&mut self, mut claim: impl FnMut(&SipMessage) -> bool) -> Result<(), String> {
        let n = match self.stream.read(&mut self.buf) {
            Ok(0) => return Err("connection closed by peer".into()),
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                return Ok(())
            }
            Err(e) => return Err(format!("read failed: {e}")),
        };
        let mut out = Output::default();
        let data = &self.buf[..n];
        self.unframed.extend_from_slice(data);
        {
            let mut book = lock(&self.shared.book);
            if let Err(e) = self.framer.feed(data) {
                self.uas.on_unframeable(
                    &self.unframed,
                    Some(e),
                    &self.shared.limits,
                    &mut book,
                    &mut out,
                );
            }
            while !out.close {
                match self.framer.poll() {
                    None => break,
                    Some(Ok(Framed::Message(m))) if !m.is_request() && claim(&m) => {}
                    Some(Ok(item)) => self.uas.on_framed(item, &mut book, &mut out),
                    Some(Err(e)) => self.uas.on_unframeable(
                        &self.unframed,
                        Some(e),
                        &self.shared.limits,
                        &mut book,
                        &mut out,
                    ),
                }
            }
        }
        let keep = self.framer.buffered().min(self.unframed.len());
        self.unframed.drain(..self.unframed.len() - keep);
        // Before answering: once the sender sees our 200, the subscriber must already have it.
        self.shared.forward(std::mem::take(&mut out.notifies));
        for b in &out.send {
            self.stream
                .write_all(b)
                .map_err(|e| format!("write failed: {e}"))?;
        }
        if out.close {
            let _ = self.stream.shutdown(Shutdown::Both);
            return Err("closed after malformed input".into());
        }
        Ok(())
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.shared.unregister(self.id);
    }
}

/// A connection the pool opened to the router (source side).
struct Client {
    conn: Conn,
    /// `host:port` of our end, for Via.
    local: String,
}

impl Client {
    fn connect(shared: Arc<Shared>, router: SocketAddr) -> io::Result<Client> {
        if shared.stop.load(Ordering::SeqCst) {
            return Err(io::Error::other("pool stopped"));
        }
        let stream = TcpStream::connect_timeout(&router, CONNECT_TIMEOUT)?;
        let local = stream.local_addr()?.to_string();
        Ok(Client {
            conn: Conn::new(stream, shared, false)?,
            local,
        })
    }

    /// One read; responses go to `claim` first. Errors end the run.
    fn read_some(&mut self, claim: impl FnMut(&SipMessage) -> bool) -> Result<(), String> {
        if self.conn.shared.stop.load(Ordering::SeqCst) {
            return Err("pool stopped".into());
        }
        self.conn.pump(claim)
    }
}

impl std::ops::Deref for Client {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        &self.conn
    }
}

impl std::ops::DerefMut for Client {
    fn deref_mut(&mut self) -> &mut Conn {
        &mut self.conn
    }
}
