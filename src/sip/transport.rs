//! Thin glommio transport for SIP over TCP/TLS (RFC 3261 §18): moves framed messages, nothing
//! about transactions.
//!
//! * [`SipConnection`]: the one outbound flow per shard to the internal next hop. Every
//!   (re)connection locates the next hop afresh (RFC 3263 for a name, see
//!   [`NextHop::resolve`]) and connects to the first reachable target in order; the target whose
//!   flow just went down is tried last, so a dead or unhealthy pool member fails over to the
//!   next one. Reconnects with jittered exponential backoff after a round where no target
//!   answered, keeps the flow alive with RFC 5626 §4.4.1 CRLF pings (a missing pong declares
//!   the flow dead), and reports [`Incoming::Up`] / [`Incoming::Message`] / [`Incoming::Down`].
//! * [`SipListener`]: accepts flows from the internal side, answers their CRLF pings, delivers
//!   messages with a [`ConnId`] and writes answers back on the same connection.
//!
//! Messages are delivered as framed (structurally parsed); the caller runs
//! [`SipMessage::validate`] before acting on them. The transport sends no SIP request of its
//! own: the OPTIONS health probe is the owner's (it has the transactions), which ends a flow
//! that fails it with [`SipHandle::reset_flow`].

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_lite::future;
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::net::{TcpListener, TcpStream};
use tracing::{debug, info, warn};

use super::framer::{Framed, FramerError, SipFramer};
use super::message::SipMessage;
use super::next_hop::{HopTarget, HopTransport, NextHop};
use super::parse::Limits;
use crate::edge::dns::SplitMix64;
use crate::edge::pump::{self, Wake};
use crate::edge::upgrade;

/// RFC 5626 §4.4.1 ping and pong.
const PING: &[u8] = b"\r\n\r\n";
const PONG: &[u8] = b"\r\n";

/// Read buffer per flow.
const READ_CHUNK: usize = 16 * 1024;

/// How long a flow waits for a peer that takes none of our bytes before closing it. A peer
/// that stops reading would otherwise hold our writes for ever, and with them whatever waits
/// for room in its queue (on a listener, every other connection's events). Kamailio's
/// `tcp_send_timeout` defaults to 10 s, OpenSIPS's to 100 ms; 5 s is long for a peer that is
/// alive (its window opens every round trip) and short next to SIP's 32 s transaction timers.
pub const WRITE_STALL: Duration = Duration::from_secs(5);

/// Why a flow ended. Each variant names who ended it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FlowEnd {
    /// The SIP peer closed the connection.
    PeerClosed,
    /// The socket failed (reset, broken pipe, ...): the peer or the network.
    Io(io::ErrorKind),
    /// The SIP peer broke stream framing or a cap; the connection was closed.
    Framing(FramerError),
    /// The SIP peer did not answer our CRLF ping within the pong timeout (RFC 5626 §4.4.1).
    KeepaliveTimeout,
    /// The SIP peer failed the owner's health probe (OPTIONS unanswered or answered 503) and
    /// the owner ended the flow ([`SipHandle::reset_flow`]).
    ProbeFailed,
    /// The SIP peer took none of our bytes for this long while we had some to write (it stopped
    /// reading, or its host is gone without a reset). The connection was closed so that what
    /// waits behind it (other connections' events, senders) moves again.
    WriteStall(Duration),
    /// We closed it (handle dropped, connection closed by the caller).
    LocalClose,
}

impl fmt::Display for FlowEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlowEnd::PeerClosed => f.write_str("SIP peer closed the connection"),
            FlowEnd::Io(k) => write!(f, "SIP connection failed: {k}"),
            FlowEnd::Framing(e) => write!(f, "{e}"),
            FlowEnd::KeepaliveTimeout => f.write_str("SIP peer did not answer the CRLF keepalive"),
            FlowEnd::ProbeFailed => f.write_str("SIP peer failed the OPTIONS health probe"),
            FlowEnd::WriteStall(d) => write!(f, "SIP peer took none of our bytes for {d:?}"),
            FlowEnd::LocalClose => f.write_str("closed locally"),
        }
    }
}

/// Why a send failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendError {
    /// The next hop: no flow came up within the configured wait, or the flow carrying the
    /// message went down before it could be queued. Answer the request with 503.
    Down,
    /// Us: the transport was shut down (its receiver or task is gone).
    Closed,
    /// The caller: no such listener connection (it closed, or never existed).
    UnknownConnection,
    /// The peer: it left [`ListenerConfig::send_queue`] messages of its listener connection
    /// unread; the connection was closed rather than make the sender wait for it.
    PeerNotReading,
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SendError::Down => "SIP next hop unreachable",
            SendError::Closed => "SIP transport shut down",
            SendError::UnknownConnection => "SIP connection gone",
            SendError::PeerNotReading => "SIP peer not reading its connection; closed",
        })
    }
}

impl std::error::Error for SendError {}

/// An event of the outbound flow.
// The message variant is large (inline header index); boxing would allocate per message.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Incoming {
    /// A message from the next hop (call [`SipMessage::validate`] before acting).
    Message(SipMessage),
    /// A flow is up to this address; sends are accepted.
    Up(SocketAddr),
    /// The flow that was up is gone. Messages accepted by [`SipHandle::send`] before this
    /// event may not have been written: fail what is pending (503). Only sent after an `Up`.
    Down(FlowEnd),
}

/// Settings of a [`SipConnection`].
#[derive(Debug, Clone)]
pub struct ConnectionConfig {
    /// Where to connect.
    pub next_hop: NextHop,
    /// TLS client settings; required when the next hop is TLS.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// DNS servers for a next hop given by name.
    pub dns_servers: Vec<SocketAddr>,
    /// Per DNS query.
    pub dns_timeout: Duration,
    /// TCP connect plus TLS handshake, per target.
    pub connect_timeout: Duration,
    /// First reconnection delay (jittered down to half of it).
    pub backoff_initial: Duration,
    /// Largest reconnection delay; a flow that lived this long resets the backoff.
    pub backoff_max: Duration,
    /// Interval between CRLF pings.
    pub keepalive_interval: Duration,
    /// How long to wait for the pong before declaring the flow dead.
    pub pong_timeout: Duration,
    /// How long [`SipHandle::send`] waits for a flow to come up.
    pub send_wait: Duration,
    /// Messages queued for writing before senders wait.
    pub send_queue: usize,
    /// Events queued for the caller before reading stops.
    pub incoming_queue: usize,
    /// Framer caps for what the next hop sends.
    pub limits: Limits,
    /// A flow whose next hop takes none of our bytes for this long is ended
    /// ([`FlowEnd::WriteStall`]) and dialled again.
    pub write_stall: Duration,
}

impl ConnectionConfig {
    /// Defaults: 100 ms doubling to 5 s backoff, 30 s pings, 10 s pong timeout, 5 s connect
    /// timeout, 2 s send wait, queues of 256, [`WRITE_STALL`].
    pub fn new(next_hop: NextHop) -> Self {
        ConnectionConfig {
            next_hop,
            tls: None,
            dns_servers: Vec::new(),
            dns_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(5),
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            keepalive_interval: Duration::from_secs(30),
            pong_timeout: Duration::from_secs(10),
            send_wait: Duration::from_secs(2),
            send_queue: 256,
            incoming_queue: 256,
            limits: Limits::default(),
            write_stall: WRITE_STALL,
        }
    }
}

/// One queued write, tagged with the flow it was accepted for.
struct Outgoing {
    epoch: u64,
    bytes: Bytes,
    /// End that flow (after writing what was queued before this).
    reset: bool,
}

/// State shared between handles and the driver (one shard, no locks).
#[derive(Default)]
struct Shared {
    up: Cell<bool>,
    /// Incremented when a flow comes up; queued writes of an older flow are dropped.
    epoch: Cell<u64>,
    /// Handles gone or driver ended.
    closed: Cell<bool>,
    generation: Cell<u64>,
    waiters: RefCell<Vec<Waker>>,
}

impl Shared {
    fn notify(&self) {
        self.generation.set(self.generation.get().wrapping_add(1));
        for w in self.waiters.borrow_mut().drain(..) {
            w.wake();
        }
    }

    /// Completes at the next [`notify`](Self::notify).
    fn changed(&self) -> Changed<'_> {
        Changed {
            shared: self,
            seen: self.generation.get(),
        }
    }
}

struct Changed<'a> {
    shared: &'a Shared,
    seen: u64,
}

impl Future for Changed<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.shared.generation.get() != self.seen {
            return Poll::Ready(());
        }
        let mut w = self.shared.waiters.borrow_mut();
        if !w.iter().any(|x| x.will_wake(cx.waker())) {
            w.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

struct HandleInner {
    tx: LocalSender<Outgoing>,
    shared: Rc<Shared>,
    send_wait: Duration,
}

impl Drop for HandleInner {
    fn drop(&mut self) {
        self.shared.closed.set(true);
        self.shared.notify();
    }
}

/// Sends to the next hop. Cheap to clone; the connection stops when the last clone is dropped.
#[derive(Clone)]
pub struct SipHandle {
    inner: Rc<HandleInner>,
}

impl SipHandle {
    /// Queues a serialized message for the current flow. Waits up to the configured
    /// `send_wait` for a flow to come up ([`SendError::Down`] after that), then waits for room
    /// in the write queue as long as that flow lives (backpressure). `Ok` means accepted for
    /// the current flow; an [`Incoming::Down`] after it means it may not have been written.
    pub async fn send(&self, bytes: impl Into<Bytes>) -> Result<(), SendError> {
        let bytes = bytes.into();
        let shared = &self.inner.shared;
        // Read the clock only when the flow is down (this runs once per request).
        let mut deadline = None;
        loop {
            if shared.closed.get() {
                return Err(SendError::Closed);
            }
            if shared.up.get() {
                break;
            }
            let now = Instant::now();
            let deadline = *deadline.get_or_insert(now + self.inner.send_wait);
            if now >= deadline {
                return Err(SendError::Down);
            }
            future::or(shared.changed(), glommio::timer::sleep(deadline - now)).await;
        }
        let epoch = shared.epoch.get();
        let item = Outgoing {
            epoch,
            bytes,
            reset: false,
        };
        // The common case, a write queue with room, without the flow watch below.
        if !self.inner.tx.is_full() {
            return self.inner.tx.try_send(item).map_err(|_| SendError::Closed);
        }
        let queued = async { Some(self.inner.tx.send(item).await.is_ok()) };
        let flow_lost = async {
            loop {
                shared.changed().await;
                if !shared.up.get() || shared.epoch.get() != epoch || shared.closed.get() {
                    return None;
                }
            }
        };
        match future::or(queued, flow_lost).await {
            Some(true) => Ok(()),
            Some(false) => Err(SendError::Closed),
            None if shared.closed.get() => Err(SendError::Closed),
            None => Err(SendError::Down),
        }
    }

    /// [`send`](Self::send) when it would not wait: a flow is up and its write queue has room.
    /// Otherwise the bytes come back, for `send`. Called first on the per-message path, where
    /// the `send` future (built, then moved into its caller's state) cost ≈ 5% of the router's
    /// CPU at saturation though it almost never waits.
    pub fn try_send(&self, bytes: Bytes) -> Result<(), Bytes> {
        let shared = &self.inner.shared;
        if shared.closed.get() || !shared.up.get() || self.inner.tx.is_full() {
            return Err(bytes);
        }
        let item = Outgoing {
            epoch: shared.epoch.get(),
            bytes,
            reset: false,
        };
        self.inner.tx.try_send(item).map_err(|e| match e {
            glommio::GlommioError::WouldBlock(glommio::ResourceType::Channel(item))
            | glommio::GlommioError::Closed(glommio::ResourceType::Channel(item)) => item.bytes,
            // A channel's `try_send` fails with the item only; were it otherwise, `send` of
            // nothing fails on the closed queue and the caller fails the transaction.
            _ => Bytes::new(),
        })
    }

    /// Whether a flow is up now.
    pub fn is_up(&self) -> bool {
        self.inner.shared.up.get()
    }

    /// The flow that is up now, as a number that changes with every new flow; `None` when
    /// no flow is up. Pass it to [`reset_flow`](Self::reset_flow).
    pub fn flow_epoch(&self) -> Option<u64> {
        let shared = &self.inner.shared;
        shared.up.get().then(|| shared.epoch.get())
    }

    /// Ends flow `epoch` (if it is still the current one) as [`FlowEnd::ProbeFailed`]: the
    /// connection then reconnects, trying that flow's target last. What was queued before is
    /// written first. A newer flow is left alone.
    pub async fn reset_flow(&self, epoch: u64) {
        if self.flow_epoch() != Some(epoch) {
            return;
        }
        let item = Outgoing {
            epoch,
            bytes: Bytes::new(),
            reset: true,
        };
        let _ = self.inner.tx.send(item).await;
    }
}

/// The outbound flow to the internal next hop (one per shard).
pub struct SipConnection;

impl SipConnection {
    /// Starts the connection task on the current glommio executor. Returns the sending handle
    /// and the receiver of [`Incoming`] events. The task ends when every handle or the
    /// receiver is dropped.
    pub fn spawn(config: ConnectionConfig) -> (SipHandle, LocalReceiver<Incoming>) {
        let (tx, rx) = local_channel::new_bounded(config.send_queue.max(1));
        let (in_tx, in_rx) = local_channel::new_bounded(config.incoming_queue.max(1));
        let shared = Rc::new(Shared::default());
        let handle = SipHandle {
            inner: Rc::new(HandleInner {
                tx,
                shared: Rc::clone(&shared),
                send_wait: config.send_wait,
            }),
        };
        glommio::spawn_local(run_connection(config, rx, in_tx, shared)).detach();
        (handle, in_rx)
    }
}

/// A connected stream.
enum Stream {
    Tcp(TcpStream),
    Tls(Box<futures_rustls::client::TlsStream<TcpStream>>),
}

async fn run_connection(
    cfg: ConnectionConfig,
    rx: LocalReceiver<Outgoing>,
    events: LocalSender<Incoming>,
    shared: Rc<Shared>,
) {
    let mut rng = SplitMix64::new(seed());
    let mut backoff = cfg.backoff_initial;
    // The target of the last flow that went down: tried last next time (failover).
    let mut demote: Option<SocketAddr> = None;
    while !shared.closed.get() {
        match connect(&cfg, demote).await {
            Ok((stream, peer)) => {
                let started = Instant::now();
                shared.epoch.set(shared.epoch.get().wrapping_add(1));
                shared.up.set(true);
                shared.notify();
                info!(%peer, "SIP next hop flow up");
                if events.send(Incoming::Up(peer)).await.is_err() {
                    break;
                }
                let sink = Sink::Connection(&events);
                let keepalive = Some((cfg.keepalive_interval, cfg.pong_timeout));
                let epoch = shared.epoch.get();
                let end = match stream {
                    Stream::Tcp(s) => {
                        flow(s, cfg.limits, keepalive, cfg.write_stall, &rx, epoch, sink).await
                    }
                    Stream::Tls(s) => {
                        flow(*s, cfg.limits, keepalive, cfg.write_stall, &rx, epoch, sink).await
                    }
                };
                shared.up.set(false);
                shared.notify();
                let end = match end {
                    Ok(e) => e,
                    // The caller dropped the event receiver: nobody listens any more.
                    Err(ReceiverGone) => break,
                };
                warn!(%peer, reason = %end, "SIP next hop flow down");
                demote = Some(peer);
                if events.send(Incoming::Down(end)).await.is_err() {
                    break;
                }
                if started.elapsed() >= cfg.backoff_max {
                    backoff = cfg.backoff_initial;
                }
            }
            Err(e) => debug!(error = %e, "SIP next hop unreachable"),
        }
        if shared.closed.get() {
            break;
        }
        let wait = jitter(backoff, &mut rng);
        backoff = (backoff * 2).min(cfg.backoff_max);
        future::or(glommio::timer::sleep(wait), async {
            while !shared.closed.get() {
                shared.changed().await;
            }
        })
        .await;
    }
    shared.up.set(false);
    shared.closed.set(true);
    shared.notify();
}

/// Uniform in `[d/2, d]`, so that shards and gateways do not reconnect in lockstep.
fn jitter(d: Duration, rng: &mut SplitMix64) -> Duration {
    let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(ms / 2 + rng.up_to(ms - ms / 2))
}

fn seed() -> u64 {
    let mut b = [0u8; 8];
    // Jitter only: a failure leaves a fixed (time-derived) seed, which is harmless.
    if getrandom::getrandom(&mut b).is_err() {
        return Instant::now().elapsed().as_nanos() as u64 ^ 0x5eed;
    }
    u64::from_le_bytes(b)
}

/// Why no flow could be opened this round.
#[derive(Debug)]
enum ConnectError {
    /// DNS for the next hop's name failed.
    Resolve(crate::edge::dns::ResolveError),
    /// Every target refused, timed out or failed TLS; the last failure.
    Targets(String),
    /// Our configuration: TLS next hop without client settings, or no usable TLS name.
    Config(&'static str),
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectError::Resolve(e) => write!(f, "resolving next hop: {e}"),
            ConnectError::Targets(e) => write!(f, "{e}"),
            ConnectError::Config(e) => f.write_str(e),
        }
    }
}

/// Moves `demote` (the target whose flow just ended) to the end of `targets`, keeping the rest
/// in order.
fn demote_target(targets: &mut Vec<HopTarget>, demote: Option<SocketAddr>) {
    let Some(d) = demote else { return };
    let (mut keep, last): (Vec<_>, Vec<_>) = targets.drain(..).partition(|t| t.addr != d);
    keep.extend(last);
    *targets = keep;
}

async fn connect(
    cfg: &ConnectionConfig,
    demote: Option<SocketAddr>,
) -> Result<(Stream, SocketAddr), ConnectError> {
    let mut targets = cfg
        .next_hop
        .resolve(&cfg.dns_servers, cfg.dns_timeout)
        .await
        .map_err(ConnectError::Resolve)?;
    demote_target(&mut targets, demote);
    // Checked before any socket: our configuration's fault, not the targets'.
    if cfg.tls.is_none() && targets.iter().all(|t| t.transport == HopTransport::Tls) {
        return Err(ConnectError::Config("TLS next hop without TLS settings"));
    }
    let mut last = String::from("no address for the next hop");
    for target in targets {
        let addr = target.addr;
        let tls = match target.transport {
            HopTransport::Tcp => None,
            HopTransport::Tls => match &cfg.tls {
                Some(c) => Some((Arc::clone(c), target.server_name.clone())),
                None => {
                    last = format!("{addr}: TLS target without TLS settings");
                    continue;
                }
            },
        };
        let attempt = async {
            let tcp = TcpStream::connect_timeout(addr, cfg.connect_timeout)
                .await
                .map_err(|e| format!("connect {addr}: {e}"))?;
            let _ = tcp.set_nodelay(true);
            match &tls {
                None => Ok(Stream::Tcp(tcp)),
                Some((c, name)) => {
                    let (s, _chain) = upgrade::connect(Arc::clone(c), name.clone(), tcp)
                        .await
                        .map_err(|e| format!("TLS with {addr}: {e}"))?;
                    Ok(Stream::Tls(Box::new(s)))
                }
            }
        };
        let timed = future::or(attempt, async {
            glommio::timer::sleep(cfg.connect_timeout).await;
            Err(format!("connect {addr}: timed out"))
        });
        match timed.await {
            Ok(s) => return Ok((s, addr)),
            Err(e) => {
                debug!(%addr, error = %e, "SIP target failed");
                last = e;
            }
        }
    }
    Err(ConnectError::Targets(last))
}

/// The event receiver was dropped.
struct ReceiverGone;

/// Where a flow delivers messages.
#[derive(Clone, Copy)]
enum Sink<'a> {
    Connection(&'a LocalSender<Incoming>),
    /// The listener's queue, this connection's id, and whether the connection was closed for
    /// leaving our messages unread ([`SendError::PeerNotReading`]).
    Listener(&'a ListenerEvents, ConnId, &'a Cell<bool>),
}

/// The queue every connection of a listener hands its messages to, shared in turn: a
/// connection that finds it full (or others already waiting) takes a ticket and waits for its
/// turn, then hands over what it read (one read's messages) while the others wait. glommio's
/// own waiters do not keep order (a sender arriving when a slot frees takes it before the
/// waiter woken for it, which goes back to the end of the line): under load one connection kept
/// the queue and the others waited for seconds. A turn per read rather than per message keeps
/// the task switches per message as before.
struct ListenerEvents {
    tx: LocalSender<(ConnId, ListenerEvent)>,
    /// Tickets in line, front first, with the waker of each once it has waited.
    line: RefCell<VecDeque<(u64, Option<Waker>)>>,
    next_ticket: Cell<u64>,
}

/// A ticket in the line of a [`ListenerEvents`]; leaving (sent, or the flow dropped) lets the
/// next one go.
struct InLine<'a> {
    q: &'a ListenerEvents,
    ticket: u64,
}

impl Drop for InLine<'_> {
    fn drop(&mut self) {
        let next = {
            let mut line = self.q.line.borrow_mut();
            let was_front = line.front().is_some_and(|f| f.0 == self.ticket);
            line.retain(|e| e.0 != self.ticket);
            if was_front {
                line.front_mut().and_then(|f| f.1.take())
            } else {
                None
            }
        };
        if let Some(w) = next {
            w.wake();
        }
    }
}

impl ListenerEvents {
    fn new(tx: LocalSender<(ConnId, ListenerEvent)>) -> ListenerEvents {
        ListenerEvents {
            tx,
            line: RefCell::new(VecDeque::new()),
            next_ticket: Cell::new(0),
        }
    }

    /// Whether a message now would have to wait.
    fn is_full(&self) -> bool {
        !self.line.borrow().is_empty() || self.tx.is_full()
    }

    /// Waits for this caller's turn at the front of the line: from then until the returned
    /// ticket is dropped, it is the only sender waiting for room.
    async fn wait_turn(&self) -> InLine<'_> {
        let ticket = self.next_ticket.get();
        self.next_ticket.set(ticket + 1);
        self.line.borrow_mut().push_back((ticket, None));
        let in_line = InLine { q: self, ticket };
        std::future::poll_fn(|cx| {
            let mut line = self.line.borrow_mut();
            if line.front().is_some_and(|f| f.0 == ticket) {
                return Poll::Ready(());
            }
            if let Some(e) = line.iter_mut().find(|e| e.0 == ticket) {
                e.1 = Some(cx.waker().clone());
            }
            Poll::Pending
        })
        .await;
        in_line
    }

    /// Queues `item` after anyone waiting; `false` when the receiver is gone.
    async fn send(&self, item: (ConnId, ListenerEvent)) -> bool {
        let _turn = match self.is_full() {
            true => Some(self.wait_turn().await),
            false => None,
        };
        send_or_wait(&self.tx, item).await
    }
}

/// Sends on a bounded local channel, waiting for room only when it is full (`send` builds a
/// waiter every time). `false`: the receiver is gone.
async fn send_or_wait<T>(tx: &LocalSender<T>, item: T) -> bool {
    if tx.is_full() {
        tx.send(item).await.is_ok()
    } else {
        tx.try_send(item).is_ok()
    }
}

impl Sink<'_> {
    /// Whether what the peer sends is no longer taken: its connection was closed for leaving
    /// our messages unread, so nothing could answer it.
    fn refuses(&self) -> bool {
        match self {
            Sink::Connection(_) => false,
            Sink::Listener(_, _, refused) => refused.get(),
        }
    }

    /// Whether a message now would have to wait.
    fn is_full(&self) -> bool {
        match self {
            Sink::Connection(tx) => tx.is_full(),
            Sink::Listener(q, _, _) => q.is_full(),
        }
    }

    async fn deliver(&self, m: SipMessage) -> Result<(), ReceiverGone> {
        let ok = match self {
            Sink::Connection(tx) => send_or_wait(tx, Incoming::Message(m)).await,
            Sink::Listener(q, id, _) => q.send((*id, ListenerEvent::Message(m))).await,
        };
        if ok {
            Ok(())
        } else {
            Err(ReceiverGone)
        }
    }
}

/// Takes one queued write into `out` if it belongs to flow `epoch`; `true` when it asks to end
/// the flow (nothing after it is taken).
fn take_outgoing(o: Outgoing, epoch: u64, out: &mut Vec<u8>) -> bool {
    if o.epoch != epoch {
        return false;
    }
    if o.reset {
        return true;
    }
    out.extend_from_slice(&o.bytes);
    false
}

/// Delivers `m`. On the next hop's flow, while the consumer has no room, takes what is queued
/// for the peer into `out` (written after this read): the consumer may be waiting for room in
/// that queue before it takes the next message (a SUBSCRIBE answered with a 200 and a NOTIFY),
/// and only this task drains it: waiting on one side only would wait for each other. Nobody
/// waits for room in a listener connection's queue ([`ListenerHandle::send`]), so a listener
/// connection only waits for its turn, and what is queued for its peer keeps counting against
/// `send_queue` until it is written.
async fn deliver_draining<'s>(
    sink: Sink<'s>,
    m: SipMessage,
    ctl: &LocalReceiver<Outgoing>,
    epoch: u64,
    out: &mut Vec<u8>,
    end: &mut Option<FlowEnd>,
    turn: &mut Option<InLine<'s>>,
) -> Result<(), ReceiverGone> {
    if turn.is_none() && !sink.is_full() {
        return sink.deliver(m).await;
    }
    if let Sink::Listener(q, id, _) = sink {
        if turn.is_none() {
            *turn = Some(q.wait_turn().await);
        }
        return match send_or_wait(&q.tx, (id, ListenerEvent::Message(m))).await {
            true => Ok(()),
            false => Err(ReceiverGone),
        };
    }
    let go = sink.deliver(m);
    let drain = async {
        loop {
            // A pending `recv` dropped when the delivery completes takes nothing.
            match ctl.recv().await {
                Some(o) if end.is_none() => {
                    if take_outgoing(o, epoch, out) {
                        *end = Some(FlowEnd::ProbeFailed);
                    }
                }
                Some(_) => {}
                None => {
                    end.get_or_insert(FlowEnd::LocalClose);
                    std::future::pending::<()>().await;
                }
            }
        }
    };
    future::or(go, drain).await
}

/// `fut`'s output, or `None` once `limit` has passed since `*since` without it. The clock
/// starts (`*since` is set) the first time `fut` is not ready and the timer is armed only then,
/// in the same poll: what is ready at once (the common case) costs neither a clock read nor a
/// timer, and `fut` is never polled twice for one wake-up (each poll of a socket write or read
/// is a syscall).
async fn within<T>(
    since: &mut Option<Instant>,
    limit: Duration,
    fut: impl Future<Output = T>,
) -> Option<T> {
    let mut fut = std::pin::pin!(fut);
    let mut timer: Option<glommio::timer::Timer> = None;
    std::future::poll_fn(|cx| {
        if let Poll::Ready(v) = fut.as_mut().poll(cx) {
            return Poll::Ready(Some(v));
        }
        let t = timer.get_or_insert_with(|| {
            let start = *since.get_or_insert_with(Instant::now);
            glommio::timer::Timer::new((start + limit).saturating_duration_since(Instant::now()))
        });
        match Pin::new(t).poll(cx) {
            Poll::Ready(_) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

/// What [`write_or_read`] made progress on.
enum WriteStep {
    Wrote(io::Result<usize>),
    Read(io::Result<usize>),
}

/// Writes some of `out`, or, while the peer takes no bytes, reads what it sends into `buf`
/// (when `may_read`): whichever is ready first.
///
/// A SIP peer that writes its responses before it reads again (a blocking write, as simple
/// servers and our loadgen's sink do) fills our receive window while we wait to write to it.
/// If we only wrote, both sides would wait on each other until the peer's zero-window probe,
/// 0.2 s to seconds later, or for good when the peer never reads in between (the
/// `flow_reads_while_a_peer_that_writes_first…` test in `tests/sip_transport.rs`).
async fn write_or_read<S>(s: &mut S, out: &[u8], buf: &mut [u8], may_read: bool) -> WriteStep
where
    S: futures_lite::AsyncRead + futures_lite::AsyncWrite + Unpin,
{
    std::future::poll_fn(|cx| {
        if let Poll::Ready(r) = Pin::new(&mut *s).poll_write(cx, out) {
            return Poll::Ready(WriteStep::Wrote(r));
        }
        if may_read {
            if let Poll::Ready(r) = Pin::new(&mut *s).poll_read(cx, buf) {
                return Poll::Ready(WriteStep::Read(r));
            }
        }
        Poll::Pending
    })
    .await
}

/// Feeds what a read of `buf` returned into `framer`; the end of the stream, a socket error or
/// unframeable bytes are noted in `end`.
fn feed_read(r: io::Result<usize>, buf: &[u8], framer: &mut SipFramer, end: &mut Option<FlowEnd>) {
    match r {
        Ok(0) => *end = Some(FlowEnd::PeerClosed),
        Ok(n) => {
            if let Err(e) = framer.feed(&buf[..n]) {
                *end = Some(FlowEnd::Framing(e));
            }
        }
        Err(e) => *end = Some(FlowEnd::Io(e.kind())),
    }
}

/// Delivers every complete message the framer holds, answers pings with pongs (into `out`) and
/// notes pongs; stops at the first end.
async fn deliver_framed<'s>(
    framer: &mut SipFramer,
    sink: Sink<'s>,
    ctl: &LocalReceiver<Outgoing>,
    epoch: u64,
    out: &mut Vec<u8>,
    end: &mut Option<FlowEnd>,
    pong_due: &mut Option<Instant>,
) -> Result<(), ReceiverGone> {
    // This read's messages go over in one turn when connections wait in line.
    let mut turn = None;
    while end.is_none() {
        match framer.poll() {
            None => break,
            Some(Err(e)) => *end = Some(FlowEnd::Framing(e)),
            Some(Ok(Framed::Ping)) => {
                out.extend_from_slice(PONG);
                // Two pongs in separate reads (the first still buffered by the framer) come
                // out as Pong then Ping: a ping counts as a pong too.
                *pong_due = None;
            }
            Some(Ok(Framed::Pong)) => *pong_due = None,
            // Not delivered: acting on a request whose answer cannot be written would leave
            // its sender believing it failed. The connection ends; the peer sees it drop.
            Some(Ok(Framed::Message(_))) if sink.refuses() => {
                *end = Some(FlowEnd::LocalClose);
            }
            Some(Ok(Framed::Message(m))) => {
                deliver_draining(sink, m, ctl, epoch, out, end, &mut turn).await?
            }
        }
    }
    Ok(())
}

/// Runs one flow until it ends: writes queued messages of `epoch`, reads and frames, answers
/// pings with pongs, and (with `keepalive = Some((interval, pong_timeout))`) pings the peer.
async fn flow<S>(
    mut s: S,
    limits: Limits,
    keepalive: Option<(Duration, Duration)>,
    write_stall: Duration,
    ctl: &LocalReceiver<Outgoing>,
    epoch: u64,
    sink: Sink<'_>,
) -> Result<FlowEnd, ReceiverGone>
where
    S: futures_lite::AsyncRead + futures_lite::AsyncWrite + Unpin,
{
    let mut framer = SipFramer::new(limits);
    let mut buf = vec![0u8; READ_CHUNK];
    let mut out: Vec<u8> = Vec::new();
    // What reading during a write produced (pongs, requests drained while a delivery waited):
    // written next.
    let mut more: Vec<u8> = Vec::new();
    let mut next_ping = keepalive.map(|(i, _)| Instant::now() + i);
    let mut pong_due: Option<Instant> = None;
    loop {
        let deadline = match (next_ping, pong_due) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let mut end = None;
        // Requests already queued are written before the next read: with reads first, a steady
        // stream of responses held them back until the queue filled and the partner streams
        // behind it stalled for milliseconds. Bytes carried over from the last write go first.
        let wake = if !out.is_empty() {
            None
        } else {
            match future::poll_once(ctl.recv()).await.flatten() {
                Some(first) => Some(Wake::Control(Some(first))),
                None => Some(pump::wait_into(&mut s, &mut buf, deadline, Some(ctl)).await),
            }
        };
        match wake {
            None => {}
            Some(Wake::Read(r)) => {
                feed_read(r, &buf, &mut framer, &mut end);
                let (f, p) = (&mut framer, &mut pong_due);
                deliver_framed(f, sink, ctl, epoch, &mut out, &mut end, p).await?;
            }
            Some(Wake::Timer) => {
                let now = Instant::now();
                if pong_due.is_some_and(|d| now >= d) {
                    end = Some(FlowEnd::KeepaliveTimeout);
                } else if let (Some(at), Some((interval, timeout))) = (next_ping, keepalive) {
                    if now >= at {
                        out.extend_from_slice(PING);
                        pong_due.get_or_insert(now + timeout);
                        next_ping = Some(now + interval);
                    }
                }
            }
            Some(Wake::Control(None)) => end = Some(FlowEnd::LocalClose),
            Some(Wake::Control(Some(first))) => {
                let mut item = Some(first);
                // Batch what is already queued into one write.
                while let Some(o) = item.take() {
                    if take_outgoing(o, epoch, &mut out) {
                        end = Some(FlowEnd::ProbeFailed);
                        break;
                    }
                    if out.len() >= READ_CHUNK * 4 {
                        break;
                    }
                    item = future::poll_once(ctl.recv()).await.flatten();
                }
            }
        }
        // Write `out`, reading and delivering what the peer sends meanwhile; a peer that takes
        // none of it for `write_stall` ends the flow (reads do not count: they are its bytes).
        let mut written = 0;
        let mut stalled_since = None;
        while written < out.len() {
            let write = write_or_read(&mut s, &out[written..], &mut buf, end.is_none());
            let Some(step) = within(&mut stalled_since, write_stall, write).await else {
                return Ok(end.unwrap_or(FlowEnd::WriteStall(write_stall)));
            };
            match step {
                WriteStep::Wrote(Ok(0)) => {
                    return Ok(end.unwrap_or(FlowEnd::Io(io::ErrorKind::WriteZero)))
                }
                WriteStep::Wrote(Ok(n)) => {
                    written += n;
                    stalled_since = None;
                }
                WriteStep::Wrote(Err(e)) => return Ok(end.unwrap_or(FlowEnd::Io(e.kind()))),
                WriteStep::Read(r) => {
                    feed_read(r, &buf, &mut framer, &mut end);
                    let (f, p) = (&mut framer, &mut pong_due);
                    deliver_framed(f, sink, ctl, epoch, &mut more, &mut end, p).await?;
                }
            }
        }
        if !out.is_empty() {
            // TLS holds records back until flushed: the same bound applies.
            let flush = futures_lite::AsyncWriteExt::flush(&mut s);
            match within(&mut None, write_stall, flush).await {
                Some(Ok(())) => {}
                Some(Err(e)) => return Ok(end.unwrap_or(FlowEnd::Io(e.kind()))),
                None => return Ok(end.unwrap_or(FlowEnd::WriteStall(write_stall))),
            }
        }
        out.clear();
        std::mem::swap(&mut out, &mut more);
        if let Some(end) = end {
            // A close_notify to a peer that reads nothing must not hold the flow either.
            let close = futures_lite::AsyncWriteExt::close(&mut s);
            let _ = within(&mut None, write_stall, close).await;
            return Ok(end);
        }
    }
}

/// A connection accepted by a [`SipListener`], unique for the listener's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sip-conn-{}", self.0)
    }
}

/// An event of a listener connection.
// The message variant is large (inline header index); boxing would allocate per message.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum ListenerEvent {
    /// A message (call [`SipMessage::validate`] before acting).
    Message(SipMessage),
    /// The connection ended; its id is not reused.
    Closed(FlowEnd),
}

/// Settings of a [`SipListener`].
#[derive(Debug, Clone)]
pub struct ListenerConfig {
    /// Addresses to listen on (SO_REUSEPORT: every shard binds the same ones).
    pub listen: Vec<SocketAddr>,
    /// TLS server settings; `None` for plain TCP.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Framer caps for what peers send.
    pub limits: Limits,
    /// Connections open at once on this shard; more are accepted and closed at once.
    pub max_connections: usize,
    /// Messages queued for writing per connection. Senders never wait for a listener
    /// connection (one peer that stops reading would hold every other connection's answers);
    /// a send that finds this many unread closes the connection instead
    /// ([`SendError::PeerNotReading`]). The queue takes memory only while it holds messages.
    pub send_queue: usize,
    /// Events queued for the caller before reading stops.
    pub incoming_queue: usize,
    /// TLS handshake limit.
    pub handshake_timeout: Duration,
    /// A connection whose peer takes none of our bytes for this long is closed
    /// ([`FlowEnd::WriteStall`]).
    pub write_stall: Duration,
}

impl ListenerConfig {
    /// Plain TCP on `listen`, default caps, 1024 connections, write queues of 1024 and event
    /// queue of 256.
    pub fn new(listen: Vec<SocketAddr>) -> Self {
        ListenerConfig {
            listen,
            tls: None,
            limits: Limits::default(),
            max_connections: 1024,
            // Above what one consumer pass can write to one connection before the connection's
            // task runs (a batch of events or mesh answers), so a peer that reads is never cut.
            send_queue: 1024,
            incoming_queue: 256,
            handshake_timeout: Duration::from_secs(10),
            write_stall: WRITE_STALL,
        }
    }
}

/// A listener connection as its writers see it.
struct ConnTx {
    tx: LocalSender<Outgoing>,
    /// Set when the connection is closed for leaving our messages unread: its task then takes
    /// no more requests from the peer.
    refused: Rc<Cell<bool>>,
}

struct ListenerInner {
    conns: RefCell<HashMap<ConnId, ConnTx>>,
    next_id: Cell<u64>,
    local: Vec<SocketAddr>,
    events: Rc<ListenerEvents>,
    cfg: ListenerConfig,
    /// Accept loops; dropped (cancelled) with the last handle.
    accept_tasks: RefCell<Vec<glommio::Task<()>>>,
}

/// Writes to listener connections. Cheap to clone; the listener stops accepting and closes
/// its connections when the last clone is dropped.
#[derive(Clone)]
pub struct ListenerHandle {
    inner: Rc<ListenerInner>,
}

impl ListenerHandle {
    /// Queues `bytes` on connection `conn` without waiting. A connection that already holds
    /// [`ListenerConfig::send_queue`] unread messages is closed ([`SendError::PeerNotReading`]):
    /// waiting for it would hold whatever the caller writes to every other connection.
    pub fn send(&self, conn: ConnId, bytes: Vec<u8>) -> Result<(), SendError> {
        let mut conns = self.inner.conns.borrow_mut();
        let c = conns.get(&conn).ok_or(SendError::UnknownConnection)?;
        if c.tx.len() >= self.inner.cfg.send_queue.max(1) {
            warn!(
                conn = %conn,
                queued = c.tx.len(),
                "SIP connection closed: its peer leaves our messages unread"
            );
            // The connection's task takes no more requests, and ends once its current write
            // ends (within `write_stall` for a peer that reads nothing).
            c.refused.set(true);
            conns.remove(&conn);
            return Err(SendError::PeerNotReading);
        }
        c.tx.try_send(Outgoing {
            epoch: 0,
            bytes: bytes.into(),
            reset: false,
        })
        .map_err(|_| SendError::UnknownConnection)
    }

    /// Closes connection `conn` after what is queued for it (no-op if gone).
    pub fn close(&self, conn: ConnId) {
        // Dropping its sender ends its loop once the queue is drained.
        self.inner.conns.borrow_mut().remove(&conn);
    }

    /// The bound addresses (ports resolved when 0 was asked).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.inner.local
    }

    /// Connections open now.
    pub fn connections(&self) -> usize {
        self.inner.conns.borrow().len()
    }
}

/// Accepts SIP flows from the internal side.
pub struct SipListener;

impl SipListener {
    /// Binds every `listen` address and starts accepting on the current glommio executor.
    /// Returns the handle and the receiver of `(ConnId, ListenerEvent)`.
    pub fn spawn(
        config: ListenerConfig,
    ) -> io::Result<(ListenerHandle, LocalReceiver<(ConnId, ListenerEvent)>)> {
        let mut listeners = Vec::new();
        let mut local = Vec::new();
        for a in &config.listen {
            let l = TcpListener::bind(a)?;
            local.push(l.local_addr()?);
            listeners.push(l);
        }
        let (events, rx) = local_channel::new_bounded(config.incoming_queue.max(1));
        let inner = Rc::new(ListenerInner {
            conns: RefCell::new(HashMap::new()),
            next_id: Cell::new(0),
            local,
            events: Rc::new(ListenerEvents::new(events)),
            cfg: config,
            accept_tasks: RefCell::new(Vec::new()),
        });
        let tasks = listeners
            .into_iter()
            .map(|l| glommio::spawn_local(accept_loop(l, Rc::downgrade(&inner))))
            .collect();
        *inner.accept_tasks.borrow_mut() = tasks;
        Ok((ListenerHandle { inner }, rx))
    }
}

async fn accept_loop(l: TcpListener, weak: Weak<ListenerInner>) {
    loop {
        let accepted = l.accept().await;
        let Some(inner) = weak.upgrade() else { return };
        let tcp = match accepted {
            Ok(t) => t,
            Err(e) => {
                // EMFILE and friends: pause rather than spin.
                warn!(error = %e, "SIP accept failed");
                drop(inner);
                glommio::timer::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if inner.conns.borrow().len() >= inner.cfg.max_connections {
            warn!(
                peer = ?tcp.peer_addr().ok(),
                "SIP connection refused: max_connections reached"
            );
            continue;
        }
        let _ = tcp.set_nodelay(true);
        let id = ConnId(inner.next_id.get());
        inner.next_id.set(id.0 + 1);
        // Unbounded: `ListenerHandle::send` enforces `send_queue` by closing, never by waiting.
        let (tx, rx) = local_channel::new_unbounded();
        let refused = Rc::new(Cell::new(false));
        let conn = ConnTx {
            tx,
            refused: Rc::clone(&refused),
        };
        inner.conns.borrow_mut().insert(id, conn);
        glommio::spawn_local(serve(tcp, id, rx, refused, Rc::downgrade(&inner))).detach();
    }
}

async fn serve(
    tcp: TcpStream,
    id: ConnId,
    ctl: LocalReceiver<Outgoing>,
    refused: Rc<Cell<bool>>,
    weak: Weak<ListenerInner>,
) {
    let Some(inner) = weak.upgrade() else { return };
    let limits = inner.cfg.limits;
    let tls = inner.cfg.tls.clone();
    let handshake_timeout = inner.cfg.handshake_timeout;
    let write_stall = inner.cfg.write_stall;
    // Hold only the event sender, so that dropping the last handle closes this connection.
    let events = Rc::clone(&inner.events);
    drop(inner);
    let sink = Sink::Listener(&events, id, &refused);
    let end = match tls {
        None => flow(tcp, limits, None, write_stall, &ctl, 0, sink).await,
        Some(cfg) => {
            let hs = future::or(
                async { upgrade::accept(cfg, tcp).await.map_err(|e| e.kind()) },
                async {
                    glommio::timer::sleep(handshake_timeout).await;
                    Err(io::ErrorKind::TimedOut)
                },
            );
            match hs.await {
                Ok((s, _chain)) => flow(s, limits, None, write_stall, &ctl, 0, sink).await,
                Err(k) => Ok(FlowEnd::Io(k)),
            }
        }
    };
    if let Some(inner) = weak.upgrade() {
        inner.conns.borrow_mut().remove(&id);
    }
    drop(ctl);
    if let Ok(end) = end {
        if matches!(end, FlowEnd::Framing(_) | FlowEnd::WriteStall(_)) {
            warn!(conn = %id, reason = %end, "SIP connection closed");
        }
        let _ = events.send((id, ListenerEvent::Closed(end))).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls_pki_types::ServerName;

    fn closed(n: u64) -> (ConnId, ListenerEvent) {
        (ConnId(n), ListenerEvent::Closed(FlowEnd::LocalClose))
    }

    /// Runs `body` on a fresh glommio executor (small rings) and waits for it.
    fn on_executor<F, Fut>(body: F)
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + 'static,
    {
        glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .io_memory(512 * 1024)
            .ring_depth(8)
            .spawn(body)
            .expect("executor")
            .join()
            .expect("test body");
    }

    /// The starvation the line prevents: when a slot frees, a connection arriving before the
    /// woken waiter runs must not take it.
    #[test]
    fn a_sender_arriving_while_another_waits_goes_behind_it() {
        on_executor(|| async {
            let (tx, rx) = local_channel::new_bounded(1);
            let q = Rc::new(ListenerEvents::new(tx));
            assert!(q.send(closed(0)).await, "fills the queue");
            let qa = q.clone();
            let a = glommio::spawn_local(async move { qa.send(closed(1)).await });
            // A runs until it waits in line.
            while q.line.borrow().is_empty() {
                future::yield_now().await;
            }
            // A slot frees (A is woken, not run yet) and B arrives: B waits behind A.
            assert_eq!(rx.recv().await.map(|e| e.0), Some(ConnId(0)));
            let mut b = Box::pin(q.send(closed(2)));
            assert_eq!(future::poll_once(&mut b).await, None, "B went past A");
            assert_eq!(rx.recv().await.map(|e| e.0), Some(ConnId(1)));
            assert!(a.await);
            assert!(b.await);
            assert_eq!(rx.recv().await.map(|e| e.0), Some(ConnId(2)));
            assert!(q.line.borrow().is_empty());
        });
    }

    /// A connection that leaves the line (its flow dropped) lets the next one go.
    #[test]
    fn a_dropped_waiter_leaves_the_line() {
        on_executor(|| async {
            let (tx, rx) = local_channel::new_bounded(1);
            let q = ListenerEvents::new(tx);
            assert!(q.send(closed(0)).await);
            let mut a = Box::pin(q.send(closed(1)));
            assert_eq!(future::poll_once(&mut a).await, None);
            let mut b = Box::pin(q.send(closed(2)));
            assert_eq!(future::poll_once(&mut b).await, None);
            drop(a);
            assert_eq!(rx.recv().await.map(|e| e.0), Some(ConnId(0)));
            assert!(b.await);
            assert_eq!(rx.recv().await.map(|e| e.0), Some(ConnId(2)));
            assert!(q.line.borrow().is_empty());
        });
    }

    fn target(addr: &str) -> HopTarget {
        HopTarget {
            addr: addr.parse().unwrap(),
            transport: HopTransport::Tcp,
            server_name: ServerName::try_from("pool.corp.test").unwrap(),
        }
    }

    #[test]
    fn target_of_the_flow_that_went_down_is_tried_last() {
        let mut t = vec![
            target("192.0.2.1:5060"),
            target("192.0.2.2:5060"),
            target("192.0.2.3:5060"),
        ];
        demote_target(&mut t, Some("192.0.2.1:5060".parse().unwrap()));
        let order: Vec<String> = t.iter().map(|x| x.addr.to_string()).collect();
        assert_eq!(
            order,
            ["192.0.2.2:5060", "192.0.2.3:5060", "192.0.2.1:5060"]
        );
        demote_target(&mut t, None);
        demote_target(&mut t, Some("198.51.100.1:5060".parse().unwrap()));
        assert_eq!(t.len(), 3);
        assert_eq!(t[0].addr.to_string(), "192.0.2.2:5060");
    }
}
