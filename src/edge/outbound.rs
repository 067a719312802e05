//! Outbound S2S driver: one stream per (our domain, remote domain) on the shard that owns the
//! remote domain; stanzas wait in a bounded queue while it comes up. Also the short-lived
//! verification streams of receiving-server dialback.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::net::TcpStream;
use rustls_pki_types::ServerName;
use tracing::{debug, info, warn};

use super::context::{AckTo, Delivery, EdgeContext, OutboundCtl};
use super::pump::{self, IdleRelease, Wake};
use super::upgrade;
use crate::config::{PartnerPolicy, ProxyRoute};
use crate::edge::dns;
use crate::xmpp::error::StanzaCondition;
use crate::xmpp::stream::outbound::{OutboundEvent, OutboundStream, Purpose, VerifyRequest};
use crate::xmpp::stream::CloseReason;

/// Where to connect.
#[derive(Debug, Clone)]
pub struct Target {
    /// Address.
    pub addr: SocketAddr,
    /// Direct TLS (XEP-0368) rather than STARTTLS.
    pub direct_tls: bool,
}

/// Queues a serialized stanza for `remote`, starting the stream when none is up. When the queue is
/// full (the stream is still coming up, or slower than its input) this waits: the caller is an
/// inbound stream or a mesh queue, which then stops reading — backpressure, never a drop.
///
/// With `ack`, the waiting party learns when the stanza was handed to the authenticated stream, or
/// why it could not be ([`Delivery::Failed`]).
pub async fn enqueue(
    ctx: &Rc<EdgeContext>,
    local: String,
    remote: String,
    bytes: Vec<u8>,
    ack: Option<AckTo>,
) {
    let key = (local, remote);
    let mut item = OutboundCtl::Stanza(bytes, ack);
    loop {
        let existing = ctx.outbound.borrow().get(&key).cloned();
        let tx = match existing {
            Some(tx) => tx,
            None => {
                let (tx, rx) = local_channel::new_bounded(ctx.config.limits.outbound_queue.max(1));
                let tx = Rc::new(tx);
                ctx.outbound.borrow_mut().insert(key.clone(), tx.clone());
                glommio::spawn_local(run(ctx.clone(), key.clone(), rx, tx.clone())).detach();
                tx
            }
        };
        match tx.send(item).await {
            Ok(()) => return,
            Err(glommio::GlommioError::Closed(glommio::ResourceType::Channel(i))) => {
                // That stream ended while we waited: forget it (unless already replaced) and retry.
                let mut map = ctx.outbound.borrow_mut();
                if map.get(&key).is_some_and(|cur| Rc::ptr_eq(cur, &tx)) {
                    map.remove(&key);
                }
                item = i;
            }
            Err(_) => {
                // The item is gone with the error; `ack` (Copy) was kept for this.
                if ack.is_some() {
                    ctx.ack(ack, Delivery::Failed(StanzaCondition::ServiceUnavailable));
                } else {
                    ctx.counters
                        .replies_undeliverable
                        .fetch_add(1, Ordering::Relaxed);
                }
                return;
            }
        }
    }
}

async fn run(
    ctx: Rc<EdgeContext>,
    key: (String, String),
    rx: LocalReceiver<OutboundCtl>,
    me: Rc<LocalSender<OutboundCtl>>,
) {
    let (local, remote) = &key;
    // Counted like inbound streams, so shutdown waits for our `</stream:stream>` too.
    ctx.live_streams.set(ctx.live_streams.get() + 1);
    let outcome = deliver(&ctx, local, remote, &rx).await;
    ctx.live_streams.set(ctx.live_streams.get() - 1);
    {
        let mut map = ctx.outbound.borrow_mut();
        if map.get(&key).is_some_and(|cur| Rc::ptr_eq(cur, &me)) {
            map.remove(&key);
        }
    }
    drop(me);
    let mut left = Vec::new();
    while let Some(Some(OutboundCtl::Stanza(b, ack))) =
        futures_lite::future::poll_once(rx.recv()).await
    {
        left.push((b, ack));
    }
    // Dropping the receiver wakes senders still waiting for room: they start a new stream.
    drop(rx);
    let fate = match &outcome {
        Ok(end) => leftover_fate(end.how, end.written, ctx.shutting_down()),
        Err(why) => Leftover::Fail(why.condition()),
    };
    match (fate, outcome) {
        (Leftover::Retry, _) => {
            // The stream closed cleanly after carrying stanzas (idle close, peer close): what
            // arrived meanwhile goes out on a new stream.
            for (b, ack) in left {
                enqueue(&ctx, local.clone(), remote.clone(), b, ack).await;
            }
        }
        (Leftover::Fail(cond), Ok(end)) => {
            if !left.is_empty() {
                warn!(%remote, how = ?end.how, written = end.written, undeliverable = left.len(),
                    "outbound stream ended with stanzas queued");
            }
            fail_all(&ctx, left, cond);
        }
        (Leftover::Fail(cond), Err(why)) => {
            warn!(%remote, %why, undeliverable = left.len(), "outbound stream failed");
            fail_all(&ctx, left, cond);
        }
    }
}

/// How an authenticated outbound stream ended, as far as what it left queued is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamEnd {
    /// Closed cleanly: either side's `</stream:stream>` (our idle close, the peer's close).
    Clean,
    /// A stream error, sent or received (RFC 6120 §4.9.1.1: the stream is unrecoverable).
    StreamError,
    /// The connection died under the stream: EOF or reset without a close, or a failed write.
    ConnectionLost,
}

/// An authenticated stream's end, and how many stanzas it wrote before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ended {
    /// How it ended.
    pub how: StreamEnd,
    /// Stanzas written to the connection (and acknowledged as sent) while it was up.
    pub written: u64,
}

/// What becomes of the stanzas still queued for a stream that ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leftover {
    /// Queue them on a new stream.
    Retry,
    /// Fail each with this condition: a waiting SIP request gets its mapped status at once.
    Fail(StanzaCondition),
}

/// The fate of what an ended stream left queued (issue 3 §2–§3: no silent loss, and a stream
/// error fails the stream's pending SIP transactions with a 5xx).
///
/// Only a clean close of a stream that carried stanzas is retried on a new stream: each such
/// round writes at least one stanza, so retrying always ends. A stream error, a dead
/// connection, or a clean close before anything was written (a peer that closes right after
/// authenticating would otherwise be reconnected forever) fails them with
/// `service-unavailable`, which the gateway answers with
/// [`STREAM_ERROR_STATUS`](crate::gateway::errors::STREAM_ERROR_STATUS) (503).
pub fn leftover_fate(how: StreamEnd, written: u64, shutting_down: bool) -> Leftover {
    match how {
        StreamEnd::Clean if written > 0 && !shutting_down => Leftover::Retry,
        _ => Leftover::Fail(STREAM_FAILED),
    }
}

/// The condition for stanzas a failed authenticated stream could not carry (→ 503 for SIP).
const STREAM_FAILED: StanzaCondition = StanzaCondition::ServiceUnavailable;

/// Acknowledgements of stanzas handed to the session but not yet written to the connection:
/// a waiting SIP request hears `Sent` only once its stanza's bytes were written.
#[derive(Debug, Default)]
pub struct Unwritten {
    acks: Vec<AckTo>,
    stanzas: u64,
}

impl Unwritten {
    /// A stanza went into the session's output.
    pub fn push(&mut self, ack: Option<AckTo>) {
        self.stanzas += 1;
        if let Some(a) = ack {
            self.acks.push(a);
        }
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.stanzas == 0
    }

    /// The output holding them was written (`written`) or the write failed: tells each waiting
    /// party through `ack` (`Sent`, or `Failed(service-unavailable)`) and returns how many
    /// stanzas were written. Leaves `self` empty, keeping its buffer.
    pub fn settle(&mut self, written: bool, mut ack: impl FnMut(AckTo, Delivery)) -> u64 {
        let what = if written {
            Delivery::Sent
        } else {
            Delivery::Failed(STREAM_FAILED)
        };
        for a in self.acks.drain(..) {
            ack(a, what);
        }
        let n = std::mem::take(&mut self.stanzas);
        if written {
            n
        } else {
            0
        }
    }
}

/// Stanzas that will not be sent: a waiting party learns why (its SIP request gets the mapped
/// error); our own replies are counted (an error or a result is never answered with an error).
fn fail_all(ctx: &Rc<EdgeContext>, left: Vec<(Vec<u8>, Option<AckTo>)>, cond: StanzaCondition) {
    for (_, ack) in left {
        match ack {
            Some(_) => ctx.ack(ack, Delivery::Failed(cond)),
            None => {
                ctx.counters
                    .replies_undeliverable
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Why no outbound stream to a partner could be brought up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliverError {
    /// Our policy: federation with this domain is not allowed.
    Policy,
    /// The partner's domain has no usable address (DNS SRV/A/AAAA).
    NotFound(String),
    /// Every target failed: TCP connect, TLS, or stream authentication (the partner side).
    Unreachable(String),
}

impl DeliverError {
    /// The stanza condition for what was queued (RFC 6120 §8.3.3).
    pub fn condition(&self) -> StanzaCondition {
        match self {
            DeliverError::Policy => StanzaCondition::Forbidden,
            DeliverError::NotFound(_) => StanzaCondition::RemoteServerNotFound,
            DeliverError::Unreachable(_) => StanzaCondition::RemoteServerTimeout,
        }
    }
}

impl std::fmt::Display for DeliverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeliverError::Policy => f.write_str("federation with this domain is not allowed"),
            DeliverError::NotFound(e) => write!(f, "partner domain not found: {e}"),
            DeliverError::Unreachable(e) => write!(f, "partner unreachable: {e}"),
        }
    }
}

async fn deliver(
    ctx: &Rc<EdgeContext>,
    local: &str,
    remote: &str,
    rx: &LocalReceiver<OutboundCtl>,
) -> Result<Ended, DeliverError> {
    let policy = ctx.config.policy_for(remote).ok_or(DeliverError::Policy)?;
    let targets = targets(ctx, remote, &policy)
        .await
        .map_err(DeliverError::NotFound)?;
    let mut last = String::from("no targets");
    for t in targets {
        let mut st = RunState::default();
        let run = connect_and_run(
            ctx,
            local,
            remote,
            &policy,
            &t,
            Purpose::Deliver,
            Some(rx),
            None,
            &mut st,
        )
        .await;
        match (run, st.end) {
            // Once authenticated, the stream was this partner's: however it ended, the next
            // target is not tried with what is left (the caller decides its fate).
            (_, Some(how)) => {
                return Ok(Ended {
                    how,
                    written: st.written,
                })
            }
            (Ok(_), None) => {
                last = "stream closed before authentication".into();
            }
            (Err(e), None) => {
                debug!(%remote, addr = %t.addr, error = %e, "target failed");
                last = e;
            }
        }
    }
    Err(DeliverError::Unreachable(last))
}

/// Asks the authoritative server of `req.originating` whether a dialback key is valid.
pub async fn verify_key(
    ctx: &Rc<EdgeContext>,
    req: VerifyRequest,
) -> Result<bool, StanzaCondition> {
    let policy = ctx
        .config
        .policy_for(&req.originating)
        .ok_or(StanzaCondition::Forbidden)?;
    let targets = targets(ctx, &req.originating, &policy)
        .await
        .map_err(|_| StanzaCondition::RemoteServerNotFound)?;
    for t in targets {
        let local = req.receiving.clone();
        let remote = req.originating.clone();
        if let Ok(Some(answer)) = connect_and_run(
            ctx,
            &local,
            &remote,
            &policy,
            &t,
            Purpose::VerifyOnly,
            None,
            Some(req.clone()),
            &mut RunState::default(),
        )
        .await
        {
            return answer;
        }
    }
    Err(StanzaCondition::RemoteServerNotFound)
}

/// The addresses to try for `remote`: the partner's static route, else DNS SRV (XEP-0368 + RFC 6120
/// §3.2) through the configured servers.
pub async fn targets(
    ctx: &Rc<EdgeContext>,
    remote: &str,
    policy: &PartnerPolicy,
) -> Result<Vec<Target>, String> {
    match &policy.proxy {
        Some(ProxyRoute::Addr(a)) => Ok(vec![Target {
            addr: *a,
            direct_tls: false,
        }]),
        Some(ProxyRoute::Host { host, port }) => {
            let ips = dns::resolve_host(host, &ctx.dns_servers, ctx.dns_timeout())
                .await
                .map_err(|e| e.to_string())?;
            Ok(ips
                .into_iter()
                .map(|ip| Target {
                    addr: SocketAddr::new(ip, *port),
                    direct_tls: false,
                })
                .collect())
        }
        None => {
            let found = dns::resolve_s2s(remote, &ctx.dns_servers, ctx.dns_timeout())
                .await
                .map_err(|e| e.to_string())?;
            Ok(found
                .into_iter()
                .map(|t| Target {
                    addr: t.addr,
                    direct_tls: t.direct_tls,
                })
                .collect())
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn connect_and_run(
    ctx: &Rc<EdgeContext>,
    local: &str,
    remote: &str,
    policy: &PartnerPolicy,
    target: &Target,
    purpose: Purpose,
    rx: Option<&LocalReceiver<OutboundCtl>>,
    verify: Option<VerifyRequest>,
    st: &mut RunState,
) -> Result<Option<Result<bool, StanzaCondition>>, String> {
    let connect_timeout = ctx
        .config
        .limits
        .stream_establishment
        .min(Duration::from_secs(10));
    let tcp = TcpStream::connect_timeout(target.addr, connect_timeout)
        .await
        .map_err(|e| format!("connect {}: {e}", target.addr))?;
    let _ = tcp.set_nodelay(true);
    let now = Instant::now();
    let mut session = OutboundStream::new(
        local.to_string(),
        remote.to_string(),
        policy.clone(),
        purpose,
        target.direct_tls,
        ctx.phase_limits(),
        ctx.timeouts(),
        now,
    );
    if let Some(v) = verify {
        session.verify(v);
    }
    let server_name = ServerName::try_from(remote.to_string()).map_err(|e| e.to_string())?;
    if target.direct_tls {
        let (tls, _chain) = upgrade::connect(ctx.tls_client_direct.clone(), server_name, tcp)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        session.start(Instant::now());
        drive(ctx, tls, &mut session, rx, st).await?;
    } else {
        session.start(now);
        if let Some(tcp) = drive(ctx, tcp, &mut session, rx, st).await? {
            let (tls, chain) = upgrade::connect(ctx.tls_client.clone(), server_name, tcp)
                .await
                .map_err(|e| format!("TLS: {e}"))?;
            session.tls_established(chain, Instant::now());
            drive(ctx, tls, &mut session, rx, st).await?;
        }
    }
    if purpose == Purpose::Deliver && !st.authenticated {
        return Err("stream closed before authentication".into());
    }
    Ok(st.answer.take())
}

/// What one connection attempt learnt.
#[derive(Default)]
struct RunState {
    answer: Option<Result<bool, StanzaCondition>>,
    authenticated: bool,
    /// How the stream ended, once it had authenticated.
    end: Option<StreamEnd>,
    /// Stanzas written while authenticated.
    written: u64,
    /// Stanzas in the session's output, not yet written.
    unwritten: Unwritten,
}

impl RunState {
    /// Records how an authenticated stream ended (the first cause wins).
    fn ended(&mut self, how: StreamEnd) {
        if self.authenticated && self.end.is_none() {
            self.end = Some(how);
        }
    }
}

/// How a session's close reason counts for what it left queued.
fn end_of(reason: &CloseReason) -> StreamEnd {
    match reason {
        CloseReason::PeerClosed | CloseReason::LocalClose => StreamEnd::Clean,
        CloseReason::SentError(_)
        | CloseReason::ReceivedError(_)
        | CloseReason::NegotiationFailed(_) => StreamEnd::StreamError,
    }
}

/// Runs the session over `stream` until it closes (`Ok(None)`) or asks for TLS (`Ok(Some(stream))`).
async fn drive<S>(
    ctx: &Rc<EdgeContext>,
    mut stream: S,
    session: &mut OutboundStream,
    rx: Option<&LocalReceiver<OutboundCtl>>,
    st: &mut RunState,
) -> Result<Option<S>, String>
where
    S: futures_lite::AsyncRead + futures_lite::AsyncWrite + Unpin,
{
    let mut out = Vec::new();
    let mut idle = IdleRelease::new(Instant::now());
    loop {
        let mut start_tls = false;
        let mut closed = false;
        while let Some(ev) = session.poll_event() {
            match ev {
                OutboundEvent::StartTls => start_tls = true,
                OutboundEvent::Authenticated(m) => {
                    st.authenticated = true;
                    info!(
                        remote = session.remote(),
                        method = m.as_str(),
                        "outbound stream authenticated"
                    );
                }
                OutboundEvent::VerifyAnswer { answer, .. } => st.answer = Some(answer),
                OutboundEvent::Closed(reason) => {
                    if !matches!(reason, CloseReason::LocalClose | CloseReason::PeerClosed) {
                        debug!(remote = session.remote(), ?reason, "outbound stream closed");
                    }
                    st.ended(end_of(&reason));
                    closed = true;
                }
            }
        }
        session.take_output(&mut out, Instant::now());
        if !out.is_empty() || !st.unwritten.is_empty() {
            let wrote = pump::write_all(&mut stream, &out).await;
            // Only now do waiting SIP requests learn their stanza's fate: a 200 means written.
            st.written += st
                .unwritten
                .settle(wrote.is_ok(), |a, d| ctx.ack(Some(a), d));
            if let Err(e) = wrote {
                st.ended(StreamEnd::ConnectionLost);
                return Err(e.to_string());
            }
        }
        if start_tls {
            return Ok(Some(stream));
        }
        if closed {
            let _ = futures_lite::AsyncWriteExt::close(&mut stream).await;
            return Ok(None);
        }
        if ctx.shutting_down() {
            session.close();
            continue;
        }
        let ctl = if session.is_ready() { rx } else { None };
        let deadline = [
            session
                .poll_timeout()
                .map(|d| d.min(Instant::now() + Duration::from_millis(500))),
            idle.deadline(),
        ]
        .into_iter()
        .flatten()
        .min();
        match pump::wait(&mut stream, &ctx.read_buf, deadline, ctl).await {
            Wake::Read(Ok(0)) | Wake::Read(Err(_)) => {
                // Gone without `</stream:stream>` (a clean close was seen as an event above).
                st.ended(StreamEnd::ConnectionLost);
                return Ok(None);
            }
            Wake::Read(Ok(n)) => {
                let now = Instant::now();
                idle.on_activity(now);
                ctx.read_buf
                    .with(n, |bytes| session.handle_bytes(bytes, now, &**ctx));
            }
            Wake::Timer => {
                let now = Instant::now();
                if idle.due(now) {
                    session.release_buffers();
                    out = Vec::new();
                }
                session.handle_timeout(now);
            }
            Wake::Control(Some(OutboundCtl::Stanza(bytes, ack))) => {
                idle.on_activity(Instant::now());
                session.send_stanza(&bytes, Instant::now());
                ctx.counters.stanzas_out.fetch_add(1, Ordering::Relaxed);
                st.unwritten.push(ack);
                // Batch: take what else is already queued, up to runtime.write_batch, before writing.
                let mut taken = 1;
                while taken < ctx.config.runtime.write_batch {
                    let Some(Some(OutboundCtl::Stanza(more, ack))) =
                        futures_lite::future::poll_once(rx.expect("ready").recv()).await
                    else {
                        break;
                    };
                    session.send_stanza(&more, Instant::now());
                    ctx.counters.stanzas_out.fetch_add(1, Ordering::Relaxed);
                    st.unwritten.push(ack);
                    taken += 1;
                }
            }
            Wake::Control(None) => session.close(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::errors::{sip_status_for, STREAM_ERROR_STATUS};
    use crate::xmpp::error::StreamCondition;

    const SU: Leftover = Leftover::Fail(StanzaCondition::ServiceUnavailable);

    #[test]
    fn leftovers_are_retried_only_after_a_clean_close_of_a_stream_that_carried_stanzas() {
        let rows: &[(StreamEnd, u64, bool, Leftover)] = &[
            (StreamEnd::Clean, 3, false, Leftover::Retry),
            // A peer closing right after authentication would be reconnected forever.
            (StreamEnd::Clean, 0, false, SU),
            (StreamEnd::Clean, 3, true, SU),
            (StreamEnd::StreamError, 0, false, SU),
            (StreamEnd::StreamError, 7, false, SU),
            (StreamEnd::ConnectionLost, 0, false, SU),
            (StreamEnd::ConnectionLost, 7, false, SU),
            (StreamEnd::ConnectionLost, 7, true, SU),
        ];
        for (how, written, shutting_down, want) in rows {
            assert_eq!(
                leftover_fate(*how, *written, *shutting_down),
                *want,
                "{how:?} after {written} stanzas, shutting down: {shutting_down}"
            );
        }
    }

    #[test]
    fn a_failed_stream_answers_its_waiting_sip_requests_with_the_stream_error_status() {
        let Leftover::Fail(cond) = leftover_fate(StreamEnd::StreamError, 1, false) else {
            panic!("a stream error must fail what is queued");
        };
        assert_eq!(sip_status_for(cond), STREAM_ERROR_STATUS);
        let mut u = Unwritten::default();
        u.push(Some(AckTo { shard: 0, token: 1 }));
        let mut got = Vec::new();
        u.settle(false, |_, d| got.push(d));
        assert_eq!(got, vec![Delivery::Failed(cond)]);
    }

    #[test]
    fn close_reasons_count_as_clean_or_stream_error() {
        let rows = [
            (CloseReason::PeerClosed, StreamEnd::Clean),
            (CloseReason::LocalClose, StreamEnd::Clean),
            (
                CloseReason::ReceivedError("system-shutdown".into()),
                StreamEnd::StreamError,
            ),
            (
                CloseReason::SentError(StreamCondition::ConnectionTimeout),
                StreamEnd::StreamError,
            ),
            (
                CloseReason::NegotiationFailed("no mechanism"),
                StreamEnd::StreamError,
            ),
        ];
        for (reason, want) in rows {
            assert_eq!(end_of(&reason), want, "{reason:?}");
        }
    }

    #[test]
    fn stanzas_are_acknowledged_sent_only_when_their_write_succeeded() {
        let mut u = Unwritten::default();
        assert!(u.is_empty());
        u.push(Some(AckTo { shard: 1, token: 7 }));
        u.push(None); // a reply of ours: nobody waits
        u.push(Some(AckTo { shard: 0, token: 8 }));
        assert!(!u.is_empty());
        let mut got = Vec::new();
        assert_eq!(u.settle(true, |a, d| got.push((a.token, d))), 3);
        assert_eq!(got, vec![(7, Delivery::Sent), (8, Delivery::Sent)]);
        assert!(u.is_empty());

        // A failed write: nobody hears `Sent`, and nothing counts as written.
        u.push(Some(AckTo { shard: 0, token: 9 }));
        got.clear();
        assert_eq!(u.settle(false, |a, d| got.push((a.token, d))), 0);
        assert_eq!(
            got,
            vec![(9, Delivery::Failed(StanzaCondition::ServiceUnavailable))]
        );
        assert!(u.is_empty());
        // Settling nothing acknowledges nothing.
        assert_eq!(u.settle(true, |_, _| panic!("no ack expected")), 0);
    }
}
