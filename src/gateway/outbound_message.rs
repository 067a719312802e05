//! XMPP → SIP messages on a shard (RFC 7572): a partner's `<message/>` to one of our users becomes a
//! SIP MESSAGE to the internal next hop; the SIP outcome decides what the sender sees — nothing on
//! 2xx, the RFC 7247 error otherwise (SIP error, Timer F → remote-server-timeout, transport failure →
//! service-unavailable). Every message accepted ends in exactly one of the two, and both are counted.
//!
//! It also probes the next hop with OPTIONS every `[sip] options_interval` ([`OptionsProbe`]) and
//! ends a flow that fails the probe, so that the connection fails over to the next target.

use crate::runtime::id_map::IdMap;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use tracing::{debug, warn};

use super::address::write_sip_uri_of;
use super::children::for_each_child;
use super::errors::SipFailure;
use super::inbound::{ListenerFlow, Origin};
use super::message::{
    sip_parts_from_xmpp, ChatState, MessageLimits, MessageType, XmppMessage, NS_CHATSTATES,
};
use super::message_request::{MessageRequest, WrittenRequest};
use super::options_probe::{options_request, OptionsProbe, Verdict};
use crate::edge::context::EdgeContext;
use crate::edge::route::send_reply;
use crate::runtime::mesh::MeshMsg;
use crate::sip::next_hop::NextHop;
use crate::sip::token::TokenGen;
use crate::sip::transaction::{
    response_to, BranchGen, ClientTransactions, Outcome, TxConfig, TxError, TxId,
};
use crate::sip::transport::{ConnectionConfig, Incoming, SipConnection, SipHandle};
use crate::xml::Stanza;
use crate::xmpp::answer::error_to;
use crate::xmpp::error::StanzaCondition;
use crate::xmpp::jid::Jid;

/// Who to answer when a MESSAGE fails.
pub(super) struct MessagePending {
    /// The partner's `<message/>`: a shared view (two reference counts), cheaper than copying
    /// its `to`, `from` and `id` for every message when only a failure needs them.
    stanza: Stanza,
}

/// What a client transaction on the next-hop flow is for.
pub(super) enum Pending {
    /// A MESSAGE carrying a partner's `<message/>`.
    Message(MessagePending),
    /// A SUBSCRIBE of the subscription (partner user, internal user).
    Subscribe(super::presence_gateway::SubKey),
    /// A NOTIFY of an internal user's subscription to a partner user.
    Notify(super::subscription::DialogKey),
    /// An OPTIONS health probe of the next hop.
    Options,
}

/// Longest a sender waits for room in a full transaction table before bouncing with
/// `resource-constraint` (the same bound as waiting for the next-hop flow to come up).
const ROOM_WAIT: Duration = Duration::from_secs(2);

/// Requests from the pool on the next-hop flow waiting to be answered; beyond it they are
/// answered 503 with Retry-After at once (the pool is sending faster than we can answer).
const POOL_REQUESTS: usize = 4096;

/// The gateway's SIP side on one shard.
pub struct MessageGateway {
    sip: SipHandle,
    txs: RefCell<ClientTransactions>,
    pending: RefCell<IdMap<TxId, Pending>>,
    branches: RefCell<BranchGen>,
    tokens: RefCell<TokenGen>,
    limits: MessageLimits,
    pub(super) via_host: String,
    /// Presence subscriptions both ways, for the internal users this shard owns.
    pub(super) presence: RefCell<super::presence_gateway::PresenceTables>,
    /// Wakes the event loop when a transaction starts (its Timer F may be the earliest deadline).
    kick: LocalSender<()>,
    /// Requests the pool sent on our flow, answered in order by [`serve_pool_requests`].
    pool_requests: LocalSender<crate::sip::SipMessage>,
    /// Signalled when a transaction ends while senders wait for room ([`Self::wait_for_room`]).
    room: (LocalSender<()>, LocalReceiver<()>),
    room_waiters: std::cell::Cell<usize>,
    /// OPTIONS health probe schedule of the next-hop flow.
    probe: RefCell<OptionsProbe>,
    /// The To and From URIs of the MESSAGE being written (reused: no allocation per message).
    uris: RefCell<String>,
    /// Request-URI of the probe: the configured next hop.
    probe_uri: String,
    /// From of the probe: our first domain.
    probe_from: String,
}

impl MessageGateway {
    /// Connects this shard to the internal next hop and starts the event loop.
    pub fn start(ctx: &Rc<EdgeContext>, next_hop: NextHop) -> Result<Rc<MessageGateway>, String> {
        let probe_uri = ctx
            .config
            .sip
            .next_hop
            .clone()
            .unwrap_or_else(|| next_hop_uri(&next_hop));
        let probe_from = format!(
            "sip:{}",
            ctx.config
                .server
                .domains
                .first()
                .map_or("localhost", String::as_str)
        );
        let mut cfg = ConnectionConfig::new(next_hop);
        cfg.dns_servers = ctx.dns_servers.clone();
        cfg.dns_timeout = ctx.dns_timeout();
        cfg.tls = Some(ctx.tls_client.clone());
        let (sip, incoming) = SipConnection::spawn(cfg);
        let (kick, kicked) = local_channel::new_bounded(1);
        let (pool_requests, pool_rx) = local_channel::new_bounded(POOL_REQUESTS);
        let via_host = ctx
            .config
            .listen
            .s2s
            .first()
            .map_or("127.0.0.1".to_string(), |a| a.ip().to_string());
        let gw = Rc::new(MessageGateway {
            sip,
            txs: RefCell::new(ClientTransactions::new(TxConfig {
                t1: ctx.config.sip.t1,
                max_client: ctx.config.sip.max_transactions,
                ..TxConfig::default()
            })),
            pending: RefCell::new(IdMap::default()),
            branches: RefCell::new(BranchGen::new().map_err(|e| e.to_string())?),
            tokens: RefCell::new(TokenGen::new().map_err(|e| e.to_string())?),
            limits: MessageLimits {
                max_body: 64 * 1024,
                congestion_safe: true,
            },
            presence: RefCell::new(super::presence_gateway::PresenceTables::new(
                &ctx.config,
                &via_host,
                Instant::now(),
            )?),
            via_host,
            kick,
            pool_requests,
            room: local_channel::new_bounded(1),
            room_waiters: std::cell::Cell::new(0),
            probe: RefCell::new(OptionsProbe::new(ctx.config.sip.options_interval)),
            uris: RefCell::new(String::new()),
            probe_uri,
            probe_from,
        });
        glommio::spawn_local(run(ctx.clone(), gw.clone(), incoming, kicked)).detach();
        glommio::spawn_local(serve_pool_requests(ctx.clone(), gw.sip.clone(), pool_rx)).detach();
        Ok(gw)
    }

    /// The flow to the next hop (the ingress answers requests arriving on it).
    pub fn sip_handle(&self) -> SipHandle {
        self.sip.clone()
    }

    /// Sends `s` (a message from a partner to one of our users) as a SIP MESSAGE.
    pub async fn send(&self, ctx: &Rc<EdgeContext>, s: &Stanza) {
        let (Some(from), Some(to)) = (s.from(), s.to()) else {
            return;
        };
        let bounce = |cond| error_to("message", &to, &from, s.id().as_deref(), cond);
        // Only here, on the partner stream's own task: the gateway loop, which settles
        // transactions and so makes room, must never wait for room itself. Room first, so
        // that the request is written and its transaction started with no wait between.
        if self.txs.borrow().is_full() {
            self.wait_for_room().await;
        }
        let request = match self.build(&ctx.config, s, &from, &to) {
            Ok(Some(r)) => r,
            Ok(None) => return, // nothing to carry (e.g. a bare chat state SIP cannot express)
            Err(cond) => {
                ctx.counters
                    .messages_bounced
                    .fetch_add(1, Ordering::Relaxed);
                return send_reply(ctx, bounce(cond)).await;
            }
        };
        let pending = Pending::Message(MessagePending { stanza: s.clone() });
        let started = self.txs.borrow_mut().start_at(
            Bytes::from(request.bytes),
            request.branch,
            "MESSAGE",
            Instant::now(),
        );
        if self.started(started, "MESSAGE", pending).is_none() {
            ctx.counters
                .messages_bounced
                .fetch_add(1, Ordering::Relaxed);
            return send_reply(ctx, bounce(StanzaCondition::ResourceConstraint)).await;
        }
        self.flush(ctx, None).await;
    }

    /// Starts a client transaction for `bytes` and writes it to the next hop. `false` when the
    /// transaction table refused it (nothing was sent; the caller answers).
    pub(super) async fn transmit(
        &self,
        ctx: &Rc<EdgeContext>,
        bytes: Vec<u8>,
        branch: &str,
        method: &str,
        pending: Pending,
    ) -> bool {
        self.transmit_on(ctx, bytes, branch, method, pending, None)
            .await
    }

    /// [`Self::transmit`] over listener flow `flow` when given (falling back to the next hop
    /// when it is closed). Its response may come on either: both feed the same transactions.
    pub(super) async fn transmit_on(
        &self,
        ctx: &Rc<EdgeContext>,
        bytes: Vec<u8>,
        branch: &str,
        method: &str,
        pending: Pending,
        flow: Option<ListenerFlow>,
    ) -> bool {
        if self.start_tx(bytes, branch, method, pending).is_none() {
            return false;
        }
        self.flush(ctx, flow).await;
        true
    }

    /// Waits, at most [`ROOM_WAIT`], while the transaction table is full. A full table means the
    /// pool's answers are read slower than partners send (a burst, a slow pool); the sending
    /// stream then stops reading, which is backpressure, instead of bouncing what it already
    /// read with `resource-constraint` (seen at 150k messages/s when the flow came up).
    pub(super) async fn wait_for_room(&self) {
        if !self.txs.borrow().is_full() {
            return;
        }
        let deadline = Instant::now() + ROOM_WAIT;
        while self.txs.borrow().is_full() {
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            self.room_waiters.set(self.room_waiters.get() + 1);
            futures_lite::future::or(
                async {
                    let _ = self.room.1.recv().await;
                },
                glommio::timer::sleep(deadline - now),
            )
            .await;
            self.room_waiters.set(self.room_waiters.get() - 1);
        }
    }

    /// Starts a client transaction for `bytes` and remembers what it is for.
    fn start_tx(
        &self,
        bytes: Vec<u8>,
        branch: &str,
        method: &str,
        pending: Pending,
    ) -> Option<TxId> {
        let started =
            self.txs
                .borrow_mut()
                .start(Bytes::from(bytes), branch, method, Instant::now());
        self.started(started, method, pending)
    }

    /// Remembers what a started transaction is for; `None` when the table refused it.
    fn started(
        &self,
        started: Result<TxId, TxError>,
        method: &str,
        pending: Pending,
    ) -> Option<TxId> {
        let tx = match started {
            Ok(tx) => tx,
            Err(e) => {
                warn!(error = ?e, method, "SIP transaction table refused a request");
                return None;
            }
        };
        self.pending.borrow_mut().insert(tx, pending);
        // Wake the loop to arm Timer F when this is the only transaction: otherwise an earlier
        // deadline (Timer F is the same for all) is already armed. Once a kick is pending
        // another adds nothing (and a refused try_send builds an error value: measurable at
        // 150k messages/s).
        if self.txs.borrow().len() == 1 && !self.kick.is_full() {
            let _ = self.kick.try_send(());
        }
        Some(tx)
    }

    /// Writes what the transactions queued, on listener flow `flow` or to the next hop.
    async fn flush(&self, ctx: &Rc<EdgeContext>, flow: Option<ListenerFlow>) {
        let out = self.txs.borrow_mut().poll_transmit();
        if let Some(bytes) = out {
            match flow {
                Some(f) => self.write_on_flow(ctx, f, bytes.to_vec()).await,
                None => self.write_next_hop(ctx, bytes).await,
            }
        }
    }

    /// Sends an OPTIONS probe on flow `epoch`.
    async fn send_probe(&self, ctx: &Rc<EdgeContext>, epoch: u64, now: Instant) {
        let branch = self.branches.borrow_mut().next_branch();
        let (tag, call_id) = {
            let mut t = self.tokens.borrow_mut();
            (t.hex64(), t.hex128())
        };
        let bytes = options_request(
            &self.probe_uri,
            &self.via_host,
            &self.probe_from,
            &branch,
            &tag,
            &call_id,
        )
        .ok();
        let tx = bytes.and_then(|b| self.start_tx(b, &branch, "OPTIONS", Pending::Options));
        let Some(tx) = tx else {
            self.probe.borrow_mut().not_sent(now);
            return;
        };
        self.probe.borrow_mut().sent(tx, epoch, now);
        ctx.counters
            .sip_options_sent
            .fetch_add(1, Ordering::Relaxed);
        self.flush(ctx, None).await;
    }

    /// A probe ended: a failed one ends its flow (the connection fails over).
    async fn probe_outcome(&self, ctx: &Rc<EdgeContext>, tx: TxId, outcome: Outcome) {
        let verdict = self.probe.borrow_mut().on_outcome(tx, outcome);
        if let Verdict::Down { epoch } = verdict {
            ctx.counters
                .sip_options_failed
                .fetch_add(1, Ordering::Relaxed);
            warn!(
                status = outcome.status(),
                "SIP next hop failed the OPTIONS probe; failing over"
            );
            self.sip.reset_flow(epoch).await;
        }
    }

    /// Writes a request to the next hop; a dead flow fails its transactions.
    async fn write_next_hop(&self, ctx: &Rc<EdgeContext>, bytes: impl Into<Bytes>) {
        let bytes = match self.sip.try_send(bytes.into()) {
            Ok(()) => return,
            Err(bytes) => bytes,
        };
        if self.sip.send(bytes).await.is_err() {
            let failed = self.txs.borrow_mut().on_transport_failure(Instant::now());
            for (tx, outcome) in failed {
                Box::pin(self.settle(ctx, tx, outcome, None)).await;
            }
        }
    }

    /// Writes a request on a listener connection, which may belong to another shard (then that
    /// shard writes it, and hands it back through [`Self::flow_gone`] if it is closed).
    async fn write_on_flow(&self, ctx: &Rc<EdgeContext>, flow: ListenerFlow, bytes: Vec<u8>) {
        if flow.shard != ctx.shard {
            let msg = MeshMsg::SipOnFlow {
                conn: flow.conn,
                bytes,
                owner: ctx.shard,
            };
            // False only at shutdown: the transaction's Timer F then ends it.
            ctx.mesh_send(flow.shard, msg).await;
            return;
        }
        let sent = match ctx.sip_ingress.get().cloned() {
            Some(ingress) => ingress.send_on_listener(flow.conn, bytes),
            None => Err(bytes),
        };
        if let Err(bytes) = sent {
            self.flow_gone(ctx, flow, bytes).await;
        }
    }

    /// Listener connection `flow` is closed: the dialogs that used it send to the next hop from
    /// now on, starting with `bytes` (a request that could not be written there).
    pub async fn flow_gone(&self, ctx: &Rc<EdgeContext>, flow: ListenerFlow, bytes: Vec<u8>) {
        debug!(?flow, "SIP listener flow closed; next hop instead");
        self.presence.borrow_mut().forget_flow(flow);
        self.write_next_hop(ctx, bytes).await;
    }

    /// A response to one of our requests that arrived on a listener connection.
    pub async fn on_flow_response(&self, ctx: &Rc<EdgeContext>, m: &crate::sip::SipMessage) {
        let done = self.txs.borrow_mut().on_response(m, Instant::now());
        match done {
            Some((tx, outcome)) => {
                debug!(
                    shard = ctx.shard,
                    "response on a listener flow settled its request"
                );
                self.settle(ctx, tx, outcome, Some(m)).await;
            }
            None => debug!(
                shard = ctx.shard,
                "response on a listener flow matches nothing"
            ),
        }
    }

    /// The SIP MESSAGE for `s`; `Err` is the XMPP condition to bounce with.
    fn build(
        &self,
        cfg: &crate::config::Config,
        s: &Stanza,
        from: &str,
        to: &str,
    ) -> Result<Option<WrittenRequest>, StanzaCondition> {
        let m = xmpp_message(s).ok_or(StanzaCondition::BadRequest)?;
        let Some(parts) = sip_parts_from_xmpp(&m, &self.limits).map_err(|e| e.condition())? else {
            return Ok(None);
        };
        // Both addresses were checked by the partner's stream (a malformed one ends it).
        let to_jid = Jid::split_checked(to);
        let from_jid = Jid::split_checked(from);
        // Both URIs into one reused string (no allocation per message). The internal user is
        // the bare JID, in the SIP domain configured for its XMPP domain (checked at load).
        let mut uris = self.uris.borrow_mut();
        uris.clear();
        let to_sip = Jid {
            local: to_jid.local,
            domain: cfg.sip_domain_for_xmpp(to_jid.domain),
            resource: None,
        };
        write_sip_uri_of(&to_sip, &mut uris).map_err(|e| e.condition())?;
        let to_end = uris.len();
        write_sip_uri_of(&from_jid, &mut uris).map_err(|e| e.condition())?;
        let (to_uri, from_uri) = uris.split_at(to_end);
        let request = MessageRequest {
            via_host: &self.via_host,
            to_uri,
            from_uri,
            parts: &parts,
        };
        request
            .write(
                &mut self.branches.borrow_mut(),
                &mut self.tokens.borrow_mut(),
            )
            .map(Some)
            .map_err(|e| e.condition())
    }

    async fn settle(
        &self,
        ctx: &Rc<EdgeContext>,
        tx: TxId,
        outcome: Outcome,
        response: Option<&crate::sip::SipMessage>,
    ) {
        if self.room_waiters.get() > 0 {
            let _ = self.room.0.try_send(());
        }
        let Some(p) = self.pending.borrow_mut().remove(&tx) else {
            return;
        };
        let p = match p {
            Pending::Message(p) => p,
            Pending::Subscribe(key) => {
                return self.subscribe_outcome(ctx, key, outcome, response).await;
            }
            Pending::Notify(key) => return self.notify_outcome(ctx, key, outcome).await,
            Pending::Options => return self.probe_outcome(ctx, tx, outcome).await,
        };
        match outcome {
            Outcome::Success(_) => {
                ctx.counters
                    .messages_delivered
                    .fetch_add(1, Ordering::Relaxed);
            }
            Outcome::Failure(f) => {
                ctx.counters
                    .messages_bounced
                    .fetch_add(1, Ordering::Relaxed);
                let s = &p.stanza;
                let (Some(local), Some(remote)) = (s.to(), s.from()) else {
                    return; // checked before the MESSAGE was sent
                };
                debug!(status = f.status(), to = %local, "SIP MESSAGE failed; bouncing");
                let reply = error_to(
                    "message",
                    &local,
                    &remote,
                    s.id().as_deref(),
                    failure_condition(f),
                );
                send_reply(ctx, reply).await;
            }
        }
    }
}

/// The next hop as a URI, when the configured text is not at hand.
fn next_hop_uri(hop: &NextHop) -> String {
    let scheme = if hop.hints.secure { "sips" } else { "sip" };
    match &hop.host {
        crate::sip::next_hop::HopHost::Ip(std::net::IpAddr::V6(ip)) => {
            format!("{scheme}:[{ip}]:{}", hop.port)
        }
        host => format!("{scheme}:{host}:{}", hop.port),
    }
}

/// The XMPP condition for a SIP failure (RFC 7247 table, in `errors.rs`).
fn failure_condition(f: SipFailure) -> StanzaCondition {
    f.condition()
}

/// Answers the requests the pool sent on the next-hop flow, in order (NOTIFYs of one dialog
/// must not overtake each other).
async fn serve_pool_requests(
    ctx: Rc<EdgeContext>,
    sip: SipHandle,
    requests: LocalReceiver<crate::sip::SipMessage>,
) {
    while let Some(req) = requests.recv().await {
        match ctx.sip_ingress.get().cloned() {
            Some(ingress) => ingress.on_message(Origin::NextHop, req).await,
            None => {
                if let Ok(bytes) =
                    response_to(&req, 501, "Not Implemented", None).and_then(|b| b.finish())
                {
                    let _ = sip.send(bytes).await;
                }
            }
        }
    }
}

/// Events handled per turn: responses come in bursts (one per request of a window), and
/// re-arming a timer per response was measurable; after a full batch the loop yields, so one
/// turn stays short (≈ 80 µs) for the tasks waiting behind it.
const RUN_BATCH: usize = 32;

async fn run(
    ctx: Rc<EdgeContext>,
    gw: Rc<MessageGateway>,
    incoming: LocalReceiver<Incoming>,
    kicked: LocalReceiver<()>,
) {
    loop {
        let now = Instant::now();
        // No probes while shutting down (`on_timers` sends none): its deadline would stay due.
        let probe = if ctx.shutting_down() {
            None
        } else {
            gw.probe.borrow().poll_timeout()
        };
        let deadline = [
            gw.txs.borrow().poll_timeout(),
            gw.presence.borrow().poll_timeout(),
            probe,
        ]
        .into_iter()
        .flatten()
        .min();
        // Due timers run first, so a steady stream of responses cannot starve them.
        if deadline.is_some_and(|d| d <= now) {
            on_timers(&ctx, &gw, now).await;
            // Whatever the timers did, the shard's other tasks get a turn before the next look.
            futures_lite::future::yield_now().await;
        } else {
            // Shutdown is noticed within a second even when the next deadline is far (the
            // presence tables' sweep is always due some time).
            let idle = Duration::from_secs(1);
            let wait = deadline.map_or(idle, |d| d.saturating_duration_since(now).min(idle));
            let wait_timer = async {
                glommio::timer::sleep(wait).await;
                None
            };
            let ev = futures_lite::future::or(
                async { Some(incoming.recv().await) },
                futures_lite::future::or(
                    async {
                        kicked.recv().await;
                        None
                    },
                    wait_timer,
                ),
            )
            .await;
            match ev {
                Some(None) => return,
                Some(Some(ev)) => {
                    let now = Instant::now();
                    on_event(&ctx, &gw, ev, now).await;
                    // Whatever else is already queued, without a timer per event.
                    let mut handled = 1;
                    while handled < RUN_BATCH {
                        match futures_lite::future::poll_once(incoming.recv()).await {
                            Some(Some(ev)) => on_event(&ctx, &gw, ev, now).await,
                            Some(None) => return,
                            None => break,
                        }
                        handled += 1;
                    }
                    if handled == RUN_BATCH {
                        // More is queued: let the partner streams and the flow's writes run
                        // first. Draining a full queue in one turn (256 responses, ≈ 0.6 ms)
                        // held every new request back that long.
                        futures_lite::future::yield_now().await;
                    }
                }
                // Kicked (a first transaction armed Timer F) or the wait ended: look again.
                None => {}
            }
        }
        // A probe in flight does not hold shutdown up.
        if ctx.shutting_down()
            && gw
                .pending
                .borrow()
                .values()
                .all(|p| matches!(p, Pending::Options))
        {
            return;
        }
    }
}

/// Timers due at `now`: presence soft state, the OPTIONS probe, Timer F.
async fn on_timers(ctx: &Rc<EdgeContext>, gw: &Rc<MessageGateway>, now: Instant) {
    gw.presence_timers(ctx, now).await;
    let due = gw.probe.borrow().due(now);
    if let (Some(epoch), false) = (due, ctx.shutting_down()) {
        gw.send_probe(ctx, epoch, now).await;
    }
    let expired = gw.txs.borrow_mut().handle_timeout(now);
    for (tx, outcome) in expired {
        gw.settle(ctx, tx, outcome, None).await;
    }
}

/// One event of the next-hop flow.
async fn on_event(ctx: &Rc<EdgeContext>, gw: &Rc<MessageGateway>, ev: Incoming, now: Instant) {
    match ev {
        Incoming::Message(m) if !m.is_request() => {
            let done = gw.txs.borrow_mut().on_response(&m, now);
            if let Some((tx, outcome)) = done {
                gw.settle(ctx, tx, outcome, Some(&m)).await;
            }
        }
        Incoming::Message(req) => {
            // The pool may send requests on our flow too. They are answered on their own task:
            // answering writes to the flow, and this loop must keep draining what the flow
            // delivers, or the flow (blocked delivering to us) never writes again.
            if gw.pool_requests.is_full() {
                let sip = gw.sip.clone();
                glommio::spawn_local(async move {
                    let busy = response_to(&req, 503, "Service Unavailable", None)
                        .map(|b| b.header(crate::sip::HeaderName::RetryAfter, "1"))
                        .and_then(|b| b.finish());
                    if let Ok(bytes) = busy {
                        let _ = sip.send(bytes).await;
                    }
                })
                .detach();
            } else {
                let _ = gw.pool_requests.try_send(req);
            }
        }
        Incoming::Down(why) => {
            debug!(%why, "SIP flow down");
            gw.probe.borrow_mut().on_flow_down();
            let failed = gw.txs.borrow_mut().on_transport_failure(now);
            for (tx, outcome) in failed {
                gw.settle(ctx, tx, outcome, None).await;
            }
        }
        Incoming::Up(_) => {
            // No epoch: that flow is already gone again, and its Down follows.
            if let Some(epoch) = gw.sip.flow_epoch() {
                gw.probe.borrow_mut().on_flow_up(epoch, now);
            }
        }
    }
}

/// The fields of a `<message/>` the mapping needs, read from the stanza's children (bounded: the
/// stanza passed the framer's caps; no recursion).
pub fn xmpp_message(s: &Stanza) -> Option<XmppMessage> {
    let kind = match s.stanza_type().as_deref() {
        None | Some("normal") => Some(MessageType::Normal),
        Some("chat") => Some(MessageType::Chat),
        Some("headline") => Some(MessageType::Headline),
        Some("groupchat") => Some(MessageType::Groupchat),
        Some(_) => return None,
    };
    let mut m = XmppMessage {
        kind,
        lang: s.lang().map(|l| l.into_owned()),
        ..XmppMessage::default()
    };
    for_each_child(s, |c| match c.name {
        b"body" => m.bodies.push((c.lang, c.text)),
        b"subject" if m.subject.is_none() => m.subject = Some(c.text),
        b"thread" => m.thread = Some(c.text),
        // XEP-0085: a chat state is a child in its namespace.
        name if c.xmlns == Some(NS_CHATSTATES.as_bytes()) => {
            if let Some(cs) = ChatState::from_name(name) {
                m.chat_state = Some(cs);
            }
        }
        _ => {}
    })?;
    Some(m)
}
