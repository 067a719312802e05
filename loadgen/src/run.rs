//! The run: threads that connect, send on schedule, read answers, and report progress.
//!
//! Threads: per established connection to the router, one *writer* (formats due requests into a
//! batch buffer and sends it as one large TLS write) and one *reader* of the router's side of
//! that stream (stream errors only; answers never come back on it). Per partner, one *acceptor*
//! on its listen address, and per stream the router opens back, one *answer reader* that frames
//! the stanzas with the project framer and completes them in the shared [`Correlator`]. The
//! calling thread prints progress, then drains, stops everything and collects the recorders.

use std::io::IsTerminal;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rustls::{ClientConfig, ServerConfig};
use stanza_router::xml::{Event, StanzaKind};
use stanza_router::xmpp::dialback::DialbackSecret;

use crate::component::{self, ComponentCounts};
use crate::correlator::{Correlator, Kind, Recorder};
use crate::procstat::{self, ProcUsage};
use crate::s2s::{self, Duplex, Established};
use crate::schedule::Schedule;
use crate::second_log::{SecondLatency, SecondLog};
use crate::sip_sink::{SinkTotals, SipErrors, SipSink};
use crate::sip_source::{self, SourceCounts, SourceProgress, SourceTemplates, SourceWire};
use crate::workload::{self, BodySize, Mix, Templates, Workload};

/// Bytes collected before a batch is written (one large TLS write).
const BATCH_BYTES: usize = 64 * 1024;
/// Shortest sleep of an open-loop writer between bursts (see `WriterJob::open_loop`).
const SEND_QUANTUM_NS: u64 = 200000;
/// Time allowed for each stream dialogue.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Smallest pending table (open loop: rate × worst latency must fit).
const MIN_RING: usize = 1 << 20;
/// Error messages kept for the report.
const KEEP_MESSAGES: usize = 8;
/// Stream dialogues run at once while connecting (TLS handshakes are CPU-bound on the server).
const CONNECT_PARALLEL: usize = 32;

/// Lets this thread's sleeps end within a microsecond of their deadline instead of the
/// default 50 µs timer slack: an open-loop writer that wakes late sends late, and the lateness
/// counts in the corrected latency as if the router had caused it.
fn precise_sleeps() {
    // SAFETY: PR_SET_TIMERSLACK takes a plain integer and affects only the calling thread.
    let _ = unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1000 as libc::c_ulong) };
}

/// How requests are paced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// Constant arrival rate (requests/s), latency from the intended send time.
    Open {
        /// Target rate after the ramp-up.
        rate: f64,
    },
    /// As fast as answers come back, at most `window` outstanding over all connections.
    Closed {
        /// Outstanding requests.
        window: u64,
    },
}

/// How our streams to the router start TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// STARTTLS on the router's `listen.s2s`.
    Starttls,
    /// Direct TLS (XEP-0368) on the router's `listen.s2s_tls`.
    Direct,
}

/// How our partners authenticate their streams to the router.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Auth {
    /// SASL EXTERNAL with the partners' certificate.
    Sasl,
    /// Server dialback (XEP-0220) over TLS; the loadgen answers the router's verify streams
    /// as the partners' authoritative server, with a secret of its own.
    Dialback,
}

/// Which way the load flows through the router.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Partners → router over S2S (the `--workload`).
    Inbound,
    /// The SIP source → the router's `[sip] listen` → the partners over the router's S2S
    /// streams (SIP MESSAGEs, and SUBSCRIBEs with `--workload mix`).
    Outbound,
    /// Both at once, each at the full `--rate` (or `--window`), reported separately and
    /// together.
    Both,
}

impl Direction {
    /// Whether partners send over S2S.
    pub fn inbound(self) -> bool {
        self != Direction::Outbound
    }

    /// Whether the SIP source sends.
    pub fn outbound(self) -> bool {
        self != Direction::Inbound
    }
}

/// The SIP source of an outbound run.
#[derive(Debug, Clone, PartialEq)]
pub struct SipSource {
    /// The router's `[sip] listen` address.
    pub router: SocketAddr,
    /// TCP connections to it.
    pub connections: usize,
    /// The SIP domain of the senders `lgC@…` (an internal domain of the router).
    pub sip_domain: String,
}

/// A validated run.
#[derive(Debug, Clone)]
pub struct RunPlan {
    /// The router's S2S listener (STARTTLS or direct TLS, per `tls`).
    pub router: SocketAddr,
    /// How our streams start TLS.
    pub tls: TlsMode,
    /// How our streams authenticate.
    pub auth: Auth,
    /// The router's domain.
    pub domain: String,
    /// Partner domains; partner `i` listens on `partner_listen[i]`.
    pub partners: Vec<String>,
    /// Where each partner accepts the router's outbound streams.
    pub partner_listen: Vec<SocketAddr>,
    /// Connections to the router (spread round-robin over the partners).
    pub connections: usize,
    /// Pacing.
    pub mode: Mode,
    /// Recorded phase.
    pub duration: Duration,
    /// Unrecorded phase before it.
    pub warmup: Duration,
    /// Linear rate (or window) ramp from the start.
    pub ramp_up: Duration,
    /// Measured requests at most.
    pub count: Option<u64>,
    /// How long to wait for outstanding answers after the last send.
    pub drain: Duration,
    /// Message bodies.
    pub body: BodySize,
    /// Distinct recipients of messages.
    pub users: u64,
    /// What to send.
    pub workload: Workload,
    /// Proportions of `Workload::Mix`.
    pub mix: Mix,
    /// Router process to sample (CPU, peak RSS).
    pub router_pid: Option<u32>,
    /// Print progress on stderr.
    pub progress: bool,
    /// Domain of the message recipients `userN@…` (the router's domain, or a component's).
    pub recipient_domain: String,
    /// Where deliveries are observed besides the partners' streams.
    pub delivery: Delivery,
    /// Which way the load flows.
    pub direction: Direction,
    /// The SIP source (outbound and both).
    pub sip_source: Option<SipSource>,
}

/// Where the loadgen observes messages delivered on the far side of the server under test.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    /// Nowhere: only answers on the router's outbound streams (pings, bounces).
    Streams,
    /// A SIP listener the router's `[sip] next_hop` points to.
    SipSink {
        /// Listen address.
        listen: SocketAddr,
        /// Error answers for a share of MESSAGEs.
        errors: Option<SipErrors>,
    },
    /// An XEP-0114 external component connected to the server (Prosody, ejabberd).
    Component {
        /// The server's component listener.
        server: SocketAddr,
        /// The component's domain (messages go to `userN@domain`).
        domain: String,
        /// Shared secret.
        secret: String,
    },
}

impl Delivery {
    /// One line saying where deliveries were observed, and for a component, why it is the fair
    /// equivalent of the SIP delivery.
    pub fn describe(&self) -> String {
        match self {
            Delivery::Streams => "answers on the router's outbound S2S streams".into(),
            Delivery::SipSink { listen, .. } => {
                format!("SIP sink on {listen} (the router's [sip] next_hop): MESSAGEs delivered")
            }
            Delivery::Component { server, domain, .. } => format!(
                "XEP-0114 component {domain} connected to {server}: a server-side sink with no \
                 roster, offline storage, carbons or client session, the closest equivalent of \
                 the router's SIP delivery"
            ),
        }
    }
}

/// The partners' TLS material.
#[derive(Clone)]
pub struct PartnerTls {
    /// Client side (our streams to the router), certificate covering every partner domain.
    pub client: Arc<ClientConfig>,
    /// The same, offering ALPN `xmpp-server` (direct TLS, XEP-0368).
    pub client_direct: Arc<ClientConfig>,
    /// Server side (the router's streams to us).
    pub server: Arc<ServerConfig>,
}

/// One second of the run.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Sample {
    /// Seconds since the start (end of the interval).
    pub t: f64,
    /// Requests sent per second in the interval.
    pub sent_per_s: f64,
    /// Requests completed per second in the interval.
    pub completed_per_s: f64,
    /// Outstanding at the end of the interval.
    pub pending: u64,
}

/// Connection trouble, by kind.
#[derive(Debug, Default)]
pub struct ErrorCounts {
    /// TCP connects to the router that failed.
    pub connect: AtomicU64,
    /// Stream dialogues with the router (ours) that failed.
    pub handshake: AtomicU64,
    /// Dialogues of the router's outbound streams that failed.
    pub accept: AtomicU64,
    /// Socket or TLS errors after the dialogue.
    pub io: AtomicU64,
    /// Streams the router closed (or stream errors) before we stopped.
    pub closed_by_router: AtomicU64,
    messages: Mutex<Vec<String>>,
}

impl ErrorCounts {
    fn note(&self, counter: &AtomicU64, what: String) {
        counter.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut m) = self.messages.lock() {
            if m.len() < KEEP_MESSAGES {
                m.push(what);
            }
        }
    }

    /// The first few error messages.
    pub fn messages(&self) -> Vec<String> {
        self.messages.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// All errors.
    pub fn total(&self) -> u64 {
        [
            &self.connect,
            &self.handshake,
            &self.accept,
            &self.io,
            &self.closed_by_router,
        ]
        .iter()
        .map(|c| c.load(Ordering::Relaxed))
        .sum()
    }
}

/// One direction's part of a run.
#[derive(Debug, Clone)]
pub struct DirectionResult {
    /// Merged recorders of this direction's observers.
    pub recorder: Recorder,
    /// Requests sent (registered), warm-up included.
    pub sent: u64,
    /// Measured requests without an answer after the drain.
    pub lost: u64,
    /// Warm-up requests without an answer after the drain.
    pub lost_warmup: u64,
    /// Answers that matched no pending request.
    pub unmatched: u64,
    /// Seconds of this direction's measured phase.
    pub measured_seconds: f64,
}

/// What a run produced.
#[derive(Debug)]
pub struct RunResult {
    /// Merged recorders of every observing thread.
    pub recorder: Recorder,
    /// Requests sent (registered), warm-up included.
    pub sent: u64,
    /// Measured requests planned but never sent (a connection failed, the pending table was
    /// full at the deadline).
    pub not_sent: u64,
    /// Measured requests without an answer after the drain.
    pub lost: u64,
    /// Warm-up requests without an answer after the drain.
    pub lost_warmup: u64,
    /// Answers that matched no pending request.
    pub unmatched: u64,
    /// Connections established.
    pub connections: usize,
    /// Streams the router opened to the partners.
    pub router_streams: u64,
    /// Errors.
    pub errors: ErrorCounts,
    /// Per-second samples.
    pub timeline: Vec<Sample>,
    /// Corrected latency of the measured completions, second by second (both directions).
    pub latency_per_second: Vec<SecondLatency>,
    /// Seconds of the measured phase (warm-up end to last measured answer, or planned end).
    pub measured_seconds: f64,
    /// Router CPU seconds and peak RSS over the measured phase.
    pub router_usage: Option<Result<ProcUsage, String>>,
    /// What the SIP sink saw.
    pub sip_sink: Option<SinkTotals>,
    /// What the component saw.
    pub component: Option<ComponentCounts>,
    /// Partners → router part (with `Direction::Both`, or alone).
    pub inbound: Option<DirectionResult>,
    /// SIP source → partners part (outbound and both).
    pub outbound: Option<DirectionResult>,
    /// What the SIP source saw.
    pub sip_source: Option<SourceCounts>,
    /// `--auth dialback`: keys the router asked us to verify, (valid, invalid).
    pub dialback_verifies: Option<(u64, u64)>,
}

/// Why the run could not start.
#[derive(Debug)]
pub enum RunError {
    /// A partner listen address could not be bound.
    Bind(SocketAddr, std::io::Error),
    /// No connection to the router could be established.
    NoConnection(String),
    /// The component could not connect or authenticate.
    Component(String),
    /// No connection to the router's SIP listener.
    SipSource(SocketAddr, std::io::Error),
    /// A thread could not be spawned.
    Spawn(std::io::Error),
    /// The router's SIP flow did not reach the sink in time.
    NoSipFlow(SocketAddr, Duration),
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Bind(a, e) => write!(f, "cannot listen on {a} for a partner: {e}"),
            RunError::NoConnection(e) => write!(f, "no connection to the router: {e}"),
            RunError::Component(e) => write!(f, "component: {e}"),
            RunError::SipSource(a, e) => {
                write!(f, "cannot connect to the router's SIP listener {a}: {e}")
            }
            RunError::Spawn(e) => write!(f, "cannot start a thread: {e}"),
            RunError::NoSipFlow(a, d) => write!(
                f,
                "the router did not connect to the SIP sink on {a} within {} s \
                 (is {a} the router's [sip] next_hop?)",
                d.as_secs()
            ),
        }
    }
}

impl std::error::Error for RunError {}

struct Shared {
    /// Inbound requests (set once the connections are up).
    corr: OnceLock<Arc<Correlator>>,
    /// Outbound requests (their own sequence numbers), when the SIP source runs.
    out: OnceLock<Arc<Correlator>>,
    /// `--auth dialback`: our partners' key secret (we are their authoritative server too).
    secret: Option<DialbackSecret>,
    /// Dialback keys the router asked us to verify, found valid.
    verify_valid: AtomicU64,
    /// … found invalid.
    verify_invalid: AtomicU64,
    stop: AtomicBool,
    errors: ErrorCounts,
    not_sent: AtomicU64,
    writers_left: AtomicUsize,
    router_streams: AtomicU64,
    /// The SIP source's final responses and open SUBSCRIBE dialogs.
    sip: SourceProgress,
}

impl Shared {
    fn corrs(&self) -> impl Iterator<Item = &Correlator> {
        self.corr
            .get()
            .into_iter()
            .chain(self.out.get())
            .map(|c| &**c)
    }

    fn registered(&self) -> u64 {
        self.corrs().map(Correlator::registered).sum()
    }

    fn completed(&self) -> u64 {
        self.corrs().map(Correlator::completed).sum()
    }

    fn pending(&self) -> u64 {
        self.corrs().map(Correlator::pending).sum()
    }
}

/// Runs the plan to the end (bounded by duration, count and drain).
pub fn run(plan: &RunPlan, tls: &PartnerTls) -> Result<RunResult, RunError> {
    // The pending tables are set once the connections are up (their epoch starts the schedule);
    // the partners' acceptors run before, to answer the router's dialback verify streams.
    let shared = Arc::new(Shared {
        corr: OnceLock::new(),
        out: OnceLock::new(),
        stop: AtomicBool::new(false),
        errors: ErrorCounts::default(),
        not_sent: AtomicU64::new(0),
        writers_left: AtomicUsize::new(0),
        router_streams: AtomicU64::new(0),
        sip: SourceProgress::default(),
        secret: (plan.auth == Auth::Dialback).then(DialbackSecret::random),
        verify_valid: AtomicU64::new(0),
        verify_invalid: AtomicU64::new(0),
    });
    // Listeners first: the router connects back as soon as it has an answer.
    let mut listeners = Vec::with_capacity(plan.partners.len());
    for addr in &plan.partner_listen {
        let l = TcpListener::bind(addr).map_err(|e| RunError::Bind(*addr, e))?;
        l.set_nonblocking(true)
            .map_err(|e| RunError::Bind(*addr, e))?;
        listeners.push(l);
    }
    let sink_listener = match &plan.delivery {
        Delivery::SipSink { listen, .. } => {
            Some(TcpListener::bind(listen).map_err(|e| RunError::Bind(*listen, e))?)
        }
        _ => None,
    };
    let component = match &plan.delivery {
        Delivery::Component {
            server,
            domain,
            secret,
        } => {
            let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
            Some(
                component::connect(*server, domain, secret, deadline)
                    .map_err(|e| RunError::Component(format!("{domain} at {server}: {e}")))?,
            )
        }
        _ => None,
    };
    // Whatever way this function returns, the threads started from here on see `stop`.
    let guard = StopOnDrop(shared.clone());
    let mut acceptors = Vec::new();
    for (i, l) in listeners.into_iter().enumerate() {
        let sh = shared.clone();
        let (local, remote) = (plan.partners[i].clone(), plan.domain.clone());
        let server = tls.server.clone();
        acceptors.push(spawn(&format!("accept-{i}"), move || {
            acceptor(l, &local, &remote, server, &sh)
        })?);
    }
    let streams = if plan.direction.inbound() {
        let s = establish(plan, tls, &shared.errors, shared.secret.as_ref());
        if s.is_empty() {
            let why = shared
                .errors
                .messages()
                .first()
                .cloned()
                .unwrap_or_default();
            return Err(RunError::NoConnection(why));
        }
        s
    } else {
        Vec::new()
    };
    let sip_conns = match &plan.sip_source {
        Some(src) if plan.direction.outbound() => connect_sip_source(src)?,
        _ => Vec::new(),
    };
    // The load starts once the router's SIP flow has reached the sink. The router connects at
    // start-up and retries after a backoff (about a second), so a router started before this
    // run would hold the first second of messages for it, and their wait would count as
    // latency (it did: p99 38-920 ms at 195 K/s in 8 runs of 21).
    let sink_accepted = match (&sink_listener, &plan.delivery) {
        (Some(l), Delivery::SipSink { listen, .. }) if plan.direction.inbound() => {
            match crate::sip_sink::await_connection(l, HANDSHAKE_TIMEOUT) {
                Ok(Some(tcp)) => vec![tcp],
                Ok(None) => return Err(RunError::NoSipFlow(*listen, HANDSHAKE_TIMEOUT)),
                Err(e) => return Err(RunError::Bind(*listen, e)),
            }
        }
        _ => Vec::new(),
    };
    let nconn = streams.len();
    let nsip = sip_conns.len();
    let window = match plan.mode {
        Mode::Closed { window } => window as usize,
        Mode::Open { .. } => 0,
    };
    let epoch = Instant::now();
    // Every second the run can last, with one to spare for the drain's rounding.
    let seconds = (plan.warmup + plan.duration + plan.drain).as_secs() as usize + 2;
    let corr = Arc::new(
        Correlator::new(epoch, MIN_RING.max(window * 4), nconn.max(1)).with_second_log(seconds),
    );
    let _ = shared.corr.set(corr.clone());
    let out = (nsip > 0).then(|| {
        Arc::new(Correlator::new(epoch, MIN_RING.max(window * 4), nsip).with_second_log(seconds))
    });
    if let Some(o) = &out {
        let _ = shared.out.set(o.clone());
    }
    shared.writers_left.store(nconn + nsip, Ordering::Release);

    let sink_stop = Arc::new(AtomicBool::new(false));
    let sip_sink = match (sink_listener, &plan.delivery) {
        (Some(l), Delivery::SipSink { errors, .. }) => {
            match SipSink::start(l, sink_accepted, *errors, corr.clone(), sink_stop.clone()) {
                Ok(s) => Some(s),
                Err(e) => return Err(RunError::Spawn(e)),
            }
        }
        _ => None,
    };
    let component = match component {
        Some(c) => {
            let (corr, stop) = (corr.clone(), sink_stop.clone());
            Some(spawn("component", move || c.serve(&corr, &stop))?)
        }
        None => None,
    };
    let schedule = match plan.mode {
        Mode::Open { rate } => Some(Schedule::new(
            rate,
            plan.ramp_up,
            plan.warmup,
            plan.duration,
            plan.count,
        )),
        Mode::Closed { .. } => None,
    };
    let closed_state = || {
        Arc::new(ClosedState {
            next_seq: AtomicU64::new(0),
            measured_left: AtomicU64::new(plan.count.unwrap_or(u64::MAX)),
        })
    };
    let closed = closed_state();
    let mut writers = Vec::new();
    let mut stream_readers = Vec::new();
    // To unblock a writer the router stopped reading from (see the deadline below); in the
    // order of `writers`.
    let mut writer_sockets: Vec<Wire> = Vec::new();
    for (j, (partner, est)) in streams.into_iter().enumerate() {
        let templates = Templates::new(
            plan.workload,
            &partner,
            j,
            &plan.recipient_domain,
            plan.users,
            plan.body,
        )
        .with_mix(plan.mix);
        writer_sockets.push(Wire::Xmpp(est.duplex.clone()));
        let job = WriterJob {
            conn: j,
            nconn,
            wire: Wire::Xmpp(est.duplex.clone()),
            templates: Tpl::Xmpp(templates),
            kind: plan.workload.kind(),
            plan: plan.clone(),
            schedule,
            closed: closed.clone(),
            corr: corr.clone(),
            shared: shared.clone(),
        };
        writers.push(spawn(&format!("writer-{j}"), move || job.run())?);
        let sh = shared.clone();
        stream_readers.push(spawn(&format!("conn-reader-{j}"), move || {
            stream_reader(est, &sh)
        })?);
    }
    let mut sip_readers = Vec::new();
    if let (Some(src), Some(out)) = (&plan.sip_source, &out) {
        let closed = closed_state();
        // The source's share of a mix: messages and subscriptions (it has no presence item).
        let mix = (plan.workload == Workload::Mix).then(|| plan.mix.outbound());
        for (j, tcp) in sip_conns.into_iter().enumerate() {
            let local = tcp.local_addr().unwrap_or(src.router);
            let wire = Arc::new(SourceWire::new(tcp));
            writer_sockets.push(Wire::Sip(wire.clone()));
            let templates = SourceTemplates::new(
                j,
                local,
                &src.sip_domain,
                &plan.partners,
                plan.users,
                plan.body,
            )
            .with_mix(mix);
            let job = WriterJob {
                conn: j,
                nconn: nsip,
                wire: Wire::Sip(wire.clone()),
                templates: Tpl::Sip(templates.clone()),
                kind: Kind::Message,
                plan: plan.clone(),
                schedule,
                closed: closed.clone(),
                corr: out.clone(),
                shared: shared.clone(),
            };
            writers.push(spawn(&format!("sip-writer-{j}"), move || job.run())?);
            let (corr, stop, sh) = (out.clone(), sink_stop.clone(), shared.clone());
            sip_readers.push(spawn(&format!("sip-reader-{j}"), move || {
                sip_source::read_responses(&wire, &templates, &corr, &sh.sip, &stop)
            })?);
        }
    }

    let mut progress = Progress::new(plan, epoch);
    let usage_start = plan.router_pid.map(procstat::sample);
    // Warm-up: usage is counted from its end.
    let warm_end = epoch + plan.warmup;
    let mut usage_start = if plan.warmup.is_zero() {
        usage_start
    } else {
        None
    };
    // A writer blocked on a router that reads just enough to keep each write alive (its
    // backpressure) would never time out: past the planned end plus the drain, its socket is
    // shut down, which fails the write.
    let writers_deadline = epoch + plan.warmup + plan.duration + plan.drain;
    while shared.writers_left.load(Ordering::Acquire) > 0 {
        progress.tick(&shared, false);
        if usage_start.is_none() && Instant::now() >= warm_end {
            usage_start = plan.router_pid.map(procstat::sample);
        }
        if Instant::now() >= writers_deadline {
            let errs = &shared.errors;
            errs.note(
                &errs.io,
                format!(
                    "{} writers still blocked {:.0} s after the planned end (the router stopped \
                     reading): their connections were shut down",
                    shared.writers_left.load(Ordering::Acquire),
                    plan.drain.as_secs_f64()
                ),
            );
            // Only the stalled ones: the other direction may still be draining.
            let stalled = writers.iter().zip(&writer_sockets);
            for (_, w) in stalled.filter(|(h, _)| !h.is_finished()) {
                match w {
                    Wire::Xmpp(d) => d.shutdown(),
                    Wire::Sip(t) => {
                        let _ = t.tcp().shutdown(std::net::Shutdown::Both);
                    }
                }
            }
            while shared.writers_left.load(Ordering::Acquire) > 0 {
                progress.tick(&shared, true);
            }
        }
    }
    drop(writer_sockets);
    let planned_end = epoch + plan.warmup + plan.duration;
    let drain_deadline = Instant::now() + plan.drain;
    // Outbound: also wait for the SIP final responses (the stanza may come first) and for the
    // SUBSCRIBE dialogs to close.
    let responses_due = || match &out {
        Some(out) => {
            out.registered() > shared.sip.finals.load(Ordering::Acquire)
                || shared.sip.dialogs_open.load(Ordering::Acquire) > 0
        }
        None => false,
    };
    while (shared.pending() > 0 || responses_due()) && Instant::now() < drain_deadline {
        progress.tick(&shared, true);
    }
    let usage = match (plan.router_pid, usage_start) {
        (Some(pid), Some(start)) => Some(procstat::usage(pid, start)),
        (Some(pid), None) => Some(procstat::usage(pid, procstat::sample(pid))),
        _ => None,
    };
    progress.finish(&shared);
    shared.stop.store(true, Ordering::Release);
    sink_stop.store(true, Ordering::Release);

    let mut in_rec = Recorder::new();
    let mut out_rec = Recorder::new();
    let sip_sink = sip_sink.map(|s| {
        let (recs, totals) = s.join();
        for r in &recs {
            in_rec.merge(r);
        }
        totals
    });
    let component = component.and_then(|h| h.join().ok()).map(|(r, counts)| {
        in_rec.merge(&r);
        counts
    });
    for w in writers {
        let _ = w.join();
    }
    for r in stream_readers {
        let _ = r.join();
    }
    let mut sip_source = (nsip > 0).then(|| SourceCounts {
        connections: nsip as u64,
        ..SourceCounts::default()
    });
    for r in sip_readers {
        if let (Ok((rec, counts)), Some(total)) = (r.join(), sip_source.as_mut()) {
            out_rec.merge(&rec);
            total.add(&SourceCounts {
                connections: 0,
                ..counts
            });
        }
    }
    for a in acceptors {
        if let Ok(recs) = a.join() {
            for (i, o) in recs {
                in_rec.merge(&i);
                out_rec.merge(&o);
            }
        }
    }
    let start_ns = plan.warmup.as_nanos() as u64;
    let planned_end_ns = corr.offset_ns(planned_end.min(Instant::now()));
    let part = |corr: &Correlator, recorder: Recorder| {
        let (lost, lost_warmup) = corr.lost();
        let end_ns = if recorder.last_done_ns > start_ns {
            recorder.last_done_ns
        } else {
            planned_end_ns
        };
        DirectionResult {
            sent: corr.registered(),
            unmatched: corr.unmatched(),
            lost,
            lost_warmup,
            measured_seconds: (end_ns.saturating_sub(start_ns)) as f64 / 1e9,
            recorder,
        }
    };
    let latency_per_second = {
        let mut logs = Vec::new();
        if plan.direction.inbound() {
            logs.push(corr.second_log());
        }
        if let Some(o) = &out {
            logs.push(o.second_log());
        }
        SecondLog::summarize(&logs)
    };
    let inbound = plan.direction.inbound().then(|| part(&corr, in_rec));
    let outbound = out.as_ref().map(|o| part(o, out_rec));
    if let (Some(s), Some(o)) = (sip_source.as_mut(), &outbound) {
        s.sent = o.sent;
    }
    let mut recorder = Recorder::new();
    let (mut sent, mut unmatched, mut lost, mut lost_warmup) = (0, 0, 0, 0);
    for d in inbound.iter().chain(outbound.iter()) {
        recorder.merge(&d.recorder);
        sent += d.sent;
        unmatched += d.unmatched;
        lost += d.lost;
        lost_warmup += d.lost_warmup;
    }
    let end_ns = if recorder.last_done_ns > start_ns {
        recorder.last_done_ns
    } else {
        planned_end_ns
    };
    let measured_seconds = (end_ns.saturating_sub(start_ns)) as f64 / 1e9;
    let dialback_verifies = shared.secret.as_ref().map(|_| {
        (
            shared.verify_valid.load(Ordering::Relaxed),
            shared.verify_invalid.load(Ordering::Relaxed),
        )
    });
    drop(guard);
    let shared = Arc::try_unwrap(shared).map_err(|_| ()).ok();
    let (errors, not_sent, router_streams) = match shared {
        Some(s) => (
            s.errors,
            s.not_sent.into_inner(),
            s.router_streams.into_inner(),
        ),
        None => (ErrorCounts::default(), 0, 0),
    };
    Ok(RunResult {
        sent,
        unmatched,
        recorder,
        not_sent,
        lost,
        lost_warmup,
        connections: nconn,
        router_streams,
        errors,
        timeline: progress.samples,
        latency_per_second,
        measured_seconds,
        router_usage: usage,
        sip_sink,
        component,
        inbound,
        outbound,
        sip_source,
        dialback_verifies,
    })
}

/// Opens the SIP source's connections to the router's SIP listener.
fn connect_sip_source(src: &SipSource) -> Result<Vec<TcpStream>, RunError> {
    (0..src.connections)
        .map(|_| {
            let tcp = TcpStream::connect_timeout(&src.router, HANDSHAKE_TIMEOUT)
                .map_err(|e| RunError::SipSource(src.router, e))?;
            tcp.set_nodelay(true)
                .and_then(|()| tcp.set_write_timeout(Some(s2s::WRITE_STALL)))
                .map_err(|e| RunError::SipSource(src.router, e))?;
            Ok(tcp)
        })
        .collect()
}

fn spawn<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<JoinHandle<T>, RunError> {
    thread::Builder::new()
        .name(name.to_string())
        .spawn(f)
        .map_err(RunError::Spawn)
}

/// Opens every connection, [`CONNECT_PARALLEL`] dialogues at a time, each within
/// [`HANDSHAKE_TIMEOUT`]; returns the established ones with their partner, in order.
fn establish(
    plan: &RunPlan,
    tls: &PartnerTls,
    errors: &ErrorCounts,
    secret: Option<&DialbackSecret>,
) -> Vec<(String, Established)> {
    let next = AtomicUsize::new(0);
    let slots: Vec<Mutex<Option<(String, Established)>>> =
        (0..plan.connections).map(|_| Mutex::new(None)).collect();
    thread::scope(|scope| {
        for _ in 0..plan.connections.min(CONNECT_PARALLEL) {
            scope.spawn(|| loop {
                let c = next.fetch_add(1, Ordering::Relaxed);
                if c >= plan.connections {
                    break;
                }
                let partner = plan.partners[c % plan.partners.len()].clone();
                let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
                let r = match (plan.tls, secret) {
                    (TlsMode::Starttls, Some(secret)) => s2s::connect_dialback(
                        plan.router,
                        &partner,
                        &plan.domain,
                        tls.client.clone(),
                        secret,
                        deadline,
                    ),
                    (TlsMode::Starttls, None) => s2s::connect(
                        plan.router,
                        &partner,
                        &plan.domain,
                        tls.client.clone(),
                        deadline,
                    ),
                    (TlsMode::Direct, _) => s2s::connect_direct(
                        plan.router,
                        &partner,
                        &plan.domain,
                        tls.client_direct.clone(),
                        deadline,
                    ),
                };
                match r {
                    Ok(est) => {
                        if let Ok(mut s) = slots[c].lock() {
                            *s = Some((partner, est));
                        }
                    }
                    Err(e) => {
                        let counter = match e {
                            s2s::S2sError::Connect(..) => &errors.connect,
                            _ => &errors.handshake,
                        };
                        errors.note(counter, format!("{partner} → {}: {e}", plan.domain));
                    }
                }
            });
        }
    });
    slots
        .into_iter()
        .filter_map(|s| s.into_inner().ok().flatten())
        .collect()
}

/// What an idle run saw.
#[derive(Debug)]
pub struct IdleResult {
    /// Sessions established and held.
    pub established: usize,
    /// Of those, closed by the server while held.
    pub closed_early: u64,
    /// Connection errors.
    pub errors: ErrorCounts,
}

/// The `idle` workload: opens `plan.connections` authenticated sessions, calls `ready(n)` once
/// they are all up (n established), holds them for `plan.duration` sending nothing, then closes
/// them. For measuring the server's memory per idle session.
pub fn idle(
    plan: &RunPlan,
    tls: &PartnerTls,
    ready: impl FnOnce(usize),
) -> Result<IdleResult, RunError> {
    let errors = ErrorCounts::default();
    let streams = establish(plan, tls, &errors, None);
    if streams.is_empty() {
        let why = errors.messages().first().cloned().unwrap_or_default();
        return Err(RunError::NoConnection(why));
    }
    let established = streams.len();
    ready(established);
    let until = Instant::now() + plan.duration;
    let mut buf = vec![0u8; 4096];
    let mut closed_early = 0;
    let mut open: Vec<_> = streams.into_iter().map(|(_, e)| (e, true)).collect();
    // Watch the sessions while holding them: a server that drops idle sessions early shows.
    while Instant::now() < until {
        let mut progressed = false;
        for (est, alive) in open.iter_mut().filter(|(_, a)| *a) {
            if !s2s::has_readable(&est.duplex) {
                continue;
            }
            progressed = true;
            match est.duplex.pump(&mut est.framer, &mut buf) {
                Ok(true) => while let Ok(Some(_)) = est.framer.next_event() {},
                _ => {
                    *alive = false;
                    closed_early += 1;
                }
            }
        }
        if !progressed {
            thread::sleep(
                Duration::from_millis(100).min(until.saturating_duration_since(Instant::now())),
            );
        }
    }
    let mut scratch = Vec::new();
    for (est, alive) in &open {
        if *alive {
            let _ = est.duplex.send(b"</stream:stream>", &mut scratch);
        }
        est.duplex.shutdown();
    }
    Ok(IdleResult {
        established,
        closed_early,
        errors,
    })
}

/// Sets the run's stop flag when dropped (an early return ends the threads already started).
struct StopOnDrop(Arc<Shared>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.stop.store(true, Ordering::Release);
    }
}

struct ClosedState {
    next_seq: AtomicU64,
    measured_left: AtomicU64,
}

/// Where a writer's batches go.
enum Wire {
    /// One of our S2S streams to the router.
    Xmpp(Arc<Duplex>),
    /// A SIP source connection to the router's SIP listener.
    Sip(Arc<SourceWire>),
}

/// What a writer formats.
enum Tpl {
    Xmpp(Templates),
    Sip(SourceTemplates),
}

impl Tpl {
    fn write(&self, seq: u64, out: &mut Vec<u8>) {
        match self {
            Tpl::Xmpp(t) => t.write(seq, out),
            Tpl::Sip(t) => t.write(seq, out),
        }
    }
}

struct WriterJob {
    conn: usize,
    nconn: usize,
    wire: Wire,
    templates: Tpl,
    kind: Kind,
    plan: RunPlan,
    schedule: Option<Schedule>,
    closed: Arc<ClosedState>,
    /// This direction's pending table.
    corr: Arc<Correlator>,
    shared: Arc<Shared>,
}

impl WriterJob {
    fn run(mut self) {
        let mut batch = Vec::with_capacity(BATCH_BYTES + 64 * 1024);
        let mut scratch = Vec::with_capacity(BATCH_BYTES + 16 * 1024);
        match self.schedule {
            Some(s) => self.open_loop(&s, &mut batch, &mut scratch),
            None => self.closed_loop(&mut batch, &mut scratch),
        }
        self.shared.writers_left.fetch_sub(1, Ordering::AcqRel);
    }

    fn flush(&mut self, batch: &mut Vec<u8>, scratch: &mut Vec<u8>) -> bool {
        if batch.is_empty() {
            return true;
        }
        let r = match &mut self.wire {
            Wire::Xmpp(d) => d.send(batch, scratch).map_err(|e| e.to_string()),
            Wire::Sip(w) => w.write_all(batch).map_err(|e| format!("SIP source: {e}")),
        };
        batch.clear();
        match r {
            Ok(()) => true,
            Err(e) => {
                let errs = &self.shared.errors;
                errs.note(&errs.io, format!("writer {}: {e}", self.conn));
                false
            }
        }
    }

    fn open_loop(&mut self, s: &Schedule, batch: &mut Vec<u8>, scratch: &mut Vec<u8>) {
        precise_sleeps();
        let corr = self.corr.clone();
        let step = self.nconn as u64;
        let mut n = self.conn as u64;
        let end = s.end_index();
        let mut ok = true;
        while n < end && ok && !self.shared.stop.load(Ordering::Relaxed) {
            let now = corr.offset_ns(Instant::now());
            let due = s.intended_ns(n);
            if due > now {
                // At least SEND_QUANTUM: a wake-up per message or two (tens of thousands a
                // second per writer) made the loadgen, not the router, the tail of the
                // latency. Messages keep their intended send times, so the wait counts.
                let wait = (due - now).clamp(SEND_QUANTUM_NS, 50_000_000);
                thread::sleep(Duration::from_nanos(wait));
                continue;
            }
            let mut stalled = false;
            while n < end && batch.len() < BATCH_BYTES {
                let due = s.intended_ns(n);
                if due > now {
                    break;
                }
                if !corr.register(n, due, now, self.conn, s.is_measured(n), self.kind) {
                    stalled = true;
                    break;
                }
                self.templates.write(n, batch);
                n += step;
            }
            ok = self.flush(batch, scratch);
            if stalled {
                // The pending table is a full lap behind: wait for answers (or the drain).
                if Instant::now()
                    > corr.epoch() + self.plan.warmup + self.plan.duration + self.plan.drain
                {
                    break;
                }
                thread::sleep(Duration::from_millis(1));
            }
        }
        if n < end {
            let left = (end - n).div_ceil(step);
            self.shared.not_sent.fetch_add(left, Ordering::Relaxed);
        }
    }

    fn closed_loop(&mut self, batch: &mut Vec<u8>, scratch: &mut Vec<u8>) {
        let Mode::Closed { window } = self.plan.mode else {
            return;
        };
        let corr = self.corr.clone();
        let credit = corr.credit(self.conn);
        let mine = window.div_ceil(self.nconn as u64).max(1);
        let warm_ns = self.plan.warmup.as_nanos() as u64;
        let end_ns = (self.plan.warmup + self.plan.duration).as_nanos() as u64;
        let ramp_ns = self.plan.ramp_up.as_nanos() as u64;
        while !self.shared.stop.load(Ordering::Relaxed) {
            let now = corr.offset_ns(Instant::now());
            if now >= end_ns {
                break;
            }
            let w = if now < ramp_ns {
                ((mine as u128 * now as u128 / ramp_ns as u128) as u64).max(1)
            } else {
                mine
            };
            let inflight = credit.inflight();
            if inflight >= w {
                credit.wait_below(w, Duration::from_millis(10));
                continue;
            }
            let measured = now >= warm_ns;
            let mut k = (w - inflight).min(256);
            if measured {
                let left = &self.closed.measured_left;
                match left.fetch_update(Ordering::AcqRel, Ordering::Acquire, |l| {
                    (l > 0).then(|| l - k.min(l))
                }) {
                    Ok(l) => k = k.min(l),
                    Err(_) => break,
                }
            }
            let seq0 = self.closed.next_seq.fetch_add(k, Ordering::Relaxed);
            for seq in seq0..seq0 + k {
                if corr.register(seq, now, now, self.conn, measured, self.kind) {
                    self.templates.write(seq, batch);
                } else {
                    // A request a full lap older is still pending: skip this number.
                    self.shared.not_sent.fetch_add(1, Ordering::Relaxed);
                }
            }
            if !self.flush(batch, scratch) {
                break;
            }
        }
    }
}

/// Reads the router's side of one of our streams: it should stay silent until we close.
fn stream_reader(mut est: Established, sh: &Shared) {
    let mut buf = vec![0u8; 16384];
    let mut scratch = Vec::new();
    loop {
        match est.framer.next_event() {
            Ok(Some(Event::StreamClose)) => {
                if !sh.stop.load(Ordering::Acquire) {
                    let errs = &sh.errors;
                    errs.note(&errs.closed_by_router, "router closed our stream".into());
                }
                break;
            }
            Ok(Some(Event::Stanza(s))) if s.kind() == StanzaKind::StreamError => {
                let text = String::from_utf8_lossy(&s.as_bytes()[..s.len().min(300)]).into_owned();
                let errs = &sh.errors;
                errs.note(
                    &errs.closed_by_router,
                    format!("router stream error: {text}"),
                );
                break;
            }
            Ok(Some(_)) => continue,
            Ok(None) => {}
            Err(e) => {
                let errs = &sh.errors;
                errs.note(&errs.io, format!("router stream: {e}"));
                break;
            }
        }
        if sh.stop.load(Ordering::Acquire) {
            let _ = est.duplex.send(b"</stream:stream>", &mut scratch);
            break;
        }
        match est.duplex.pump(&mut est.framer, &mut buf) {
            Ok(true) => {}
            Ok(false) => {
                if !sh.stop.load(Ordering::Acquire) {
                    let errs = &sh.errors;
                    errs.note(&errs.closed_by_router, "router closed our stream".into());
                }
                break;
            }
            Err(e) => {
                if !sh.stop.load(Ordering::Acquire) {
                    let errs = &sh.errors;
                    errs.note(&errs.io, format!("our stream: {e}"));
                }
                break;
            }
        }
    }
    est.duplex.shutdown();
}

/// Accepts the router's outbound streams to one partner until stopped; returns the recorders
/// of their answer readers (inbound answers, outbound deliveries).
fn acceptor(
    l: TcpListener,
    local: &str,
    remote: &str,
    tls: Arc<ServerConfig>,
    sh: &Arc<Shared>,
) -> Vec<(Recorder, Recorder)> {
    let mut readers: Vec<JoinHandle<(Recorder, Recorder)>> = Vec::new();
    let mut n = 0;
    while !sh.stop.load(Ordering::Acquire) {
        match l.accept() {
            Ok((tcp, _)) => {
                n += 1;
                let _ = tcp.set_nonblocking(false);
                let (local, remote, tls, sh2) = (
                    local.to_string(),
                    remote.to_string(),
                    tls.clone(),
                    sh.clone(),
                );
                let id = format!("lg-{local}-{n}");
                let h = thread::Builder::new()
                    .name(format!("answers-{local}-{n}"))
                    .spawn(move || {
                        let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
                        let dialect = s2s::Dialect {
                            dialback_ns: sh2.secret.is_some(),
                        };
                        let secret = sh2.secret.as_ref();
                        match s2s::accept_answering(
                            tcp, &local, &remote, tls, &id, deadline, dialect, secret,
                        ) {
                            Ok(s2s::Accepted::Stream(est)) => {
                                sh2.router_streams.fetch_add(1, Ordering::Relaxed);
                                answer_reader(*est, &sh2)
                            }
                            Ok(s2s::Accepted::Verified { valid, invalid }) => {
                                sh2.verify_valid.fetch_add(valid, Ordering::Relaxed);
                                sh2.verify_invalid.fetch_add(invalid, Ordering::Relaxed);
                                (Recorder::new(), Recorder::new())
                            }
                            Err(e) => {
                                let errs = &sh2.errors;
                                errs.note(&errs.accept, format!("{remote} → {local}: {e}"));
                                (Recorder::new(), Recorder::new())
                            }
                        }
                    });
                match h {
                    Ok(h) => readers.push(h),
                    Err(e) => {
                        let errs = &sh.errors;
                        errs.note(&errs.accept, format!("spawn: {e}"));
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(10));
            }
            Err(e) => {
                let errs = &sh.errors;
                errs.note(&errs.accept, format!("accept on {local}: {e}"));
                thread::sleep(Duration::from_millis(10));
            }
        }
    }
    readers.into_iter().filter_map(|h| h.join().ok()).collect()
}

/// Frames the stanzas on one router stream: answers to our inbound requests (by their `lg-`
/// id) and, with the SIP source running, messages it sent (by the `seq=` in the body) and the
/// `subscribe` of its SUBSCRIBEs (by the watcher `lgw<seq>` in `from`) are completed in their
/// direction's table. Returns (inbound, outbound) recorders.
fn answer_reader(mut est: Established, sh: &Shared) -> (Recorder, Recorder) {
    let mut rec = Recorder::new();
    let mut out_rec = Recorder::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut scratch = Vec::new();
    // Answers end when their bytes reached the socket, not when this thread, sharing a core
    // with the writers, read them (see `rx_stamp`); without stamps, when the read returned.
    let _ = crate::rx_stamp::enable(&*est.duplex);
    let read = |tcp: &std::net::TcpStream, b: &mut [u8]| {
        crate::rx_stamp::read(tcp, b).map(|r| (r.n, r.at))
    };
    let mut at = Instant::now();
    loop {
        loop {
            match est.framer.next_event() {
                Ok(Some(Event::Stanza(s))) => match workload::classify(&s) {
                    Some((seq, outcome)) => {
                        if let Some(done) = sh.corr.get().and_then(|c| c.complete(seq, at)) {
                            rec.record(&done, outcome);
                        }
                    }
                    None => match (sh.out.get(), s.kind()) {
                        (_, StanzaKind::Presence) => match workload::classify_presence(&s) {
                            Some((seq, outcome)) => {
                                if let Some(done) = sh.corr.get().and_then(|c| c.complete(seq, at))
                                {
                                    rec.record(&done, outcome);
                                }
                            }
                            None => {
                                match (sh.out.get(), workload::classify_outbound_presence(&s)) {
                                    // The SIP source's SUBSCRIBE reached the partner user.
                                    (Some(out), Some((seq, true))) => {
                                        out.delivered(seq, at, &mut out_rec)
                                    }
                                    (Some(_), Some((_, false))) => out_rec.presence_updates += 1,
                                    _ => rec.presence_updates += 1,
                                }
                            }
                        },
                        (Some(out), StanzaKind::Message) => {
                            match crate::correlator::seq_from_body_bytes(s.as_bytes()) {
                                Some(seq) => out.delivered(seq, at, &mut out_rec),
                                None => out_rec.unexpected += 1,
                            }
                        }
                        _ => rec.unexpected += 1,
                    },
                },
                Ok(Some(Event::StreamOpen(_))) => {}
                Ok(Some(Event::StreamClose)) => {
                    let _ = est.duplex.send(b"</stream:stream>", &mut scratch);
                    est.duplex.shutdown();
                    return (rec, out_rec);
                }
                Ok(None) => break,
                Err(e) => {
                    let errs = &sh.errors;
                    errs.note(&errs.io, format!("answer stream: {e}"));
                    est.duplex.shutdown();
                    return (rec, out_rec);
                }
            }
        }
        if sh.stop.load(Ordering::Acquire) {
            let _ = est.duplex.send(b"</stream:stream>", &mut scratch);
            break;
        }
        match est.duplex.pump_with(&mut est.framer, &mut buf, read) {
            Ok(Some(arrived)) => at = arrived,
            Ok(None) => break,
            Err(e) => {
                if !sh.stop.load(Ordering::Acquire) {
                    let errs = &sh.errors;
                    errs.note(&errs.io, format!("answer stream: {e}"));
                }
                break;
            }
        }
    }
    est.duplex.shutdown();
    (rec, out_rec)
}

/// The stderr progress: a live one-line rate (terminals only) and an interval line a second.
struct Progress {
    epoch: Instant,
    live: bool,
    quiet: bool,
    last: Instant,
    last_sent: u64,
    last_done: u64,
    next_line: Instant,
    line_sent: u64,
    line_done: u64,
    samples: Vec<Sample>,
}

const TICK: Duration = Duration::from_millis(250);

impl Progress {
    fn new(plan: &RunPlan, epoch: Instant) -> Progress {
        Progress {
            epoch,
            live: plan.progress && std::io::stderr().is_terminal(),
            quiet: !plan.progress,
            last: epoch,
            last_sent: 0,
            last_done: 0,
            next_line: epoch + Duration::from_secs(1),
            line_sent: 0,
            line_done: 0,
            samples: Vec::new(),
        }
    }

    fn tick(&mut self, sh: &Shared, draining: bool) {
        thread::sleep(TICK);
        let now = Instant::now();
        let (sent, done) = (sh.registered(), sh.completed());
        let dt = now.duration_since(self.last).as_secs_f64().max(1e-9);
        if self.live {
            eprint!(
                "\r\x1b[K{:>6.1}s {} sent {:>9.0}/s  done {:>9.0}/s  pending {}",
                now.duration_since(self.epoch).as_secs_f64(),
                if draining { "drain" } else { "run  " },
                (sent - self.last_sent) as f64 / dt,
                (done - self.last_done) as f64 / dt,
                sh.pending(),
            );
        }
        self.last = now;
        self.last_sent = sent;
        self.last_done = done;
        if now >= self.next_line {
            self.line(sh, now);
        }
    }

    fn line(&mut self, sh: &Shared, now: Instant) {
        let (sent, done) = (sh.registered(), sh.completed());
        let span = now
            .duration_since(self.next_line - Duration::from_secs(1))
            .as_secs_f64()
            .max(1e-9);
        let s = Sample {
            t: now.duration_since(self.epoch).as_secs_f64(),
            sent_per_s: (sent - self.line_sent) as f64 / span,
            completed_per_s: (done - self.line_done) as f64 / span,
            pending: sh.pending(),
        };
        if !self.quiet {
            if self.live {
                eprint!("\r\x1b[K");
            }
            eprintln!(
                "[{:>6.1}s] sent {:>9.0}/s  completed {:>9.0}/s  pending {:>7}  errors {}",
                s.t,
                s.sent_per_s,
                s.completed_per_s,
                s.pending,
                sh.errors.total()
            );
        }
        self.samples.push(s);
        self.line_sent = sent;
        self.line_done = done;
        self.next_line = now + Duration::from_secs(1);
    }

    fn finish(&mut self, sh: &Shared) {
        let now = Instant::now();
        if now > self.next_line - Duration::from_secs(1) + Duration::from_millis(100) {
            self.line(sh, now);
        }
        if self.live {
            eprint!("\r\x1b[K");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_loop_writers_sleep_with_a_microsecond_of_slack() {
        // On a thread of its own: the slack is per thread and the test harness reuses threads.
        let slack = thread::spawn(|| {
            precise_sleeps();
            // SAFETY: PR_GET_TIMERSLACK reads the calling thread's value.
            unsafe { libc::prctl(libc::PR_GET_TIMERSLACK) }
        })
        .join()
        .unwrap();
        assert_eq!(slack, 1000);
    }
}
