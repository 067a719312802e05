//! SIP → XMPP on a shard: requests from the internal side (on the `[sip] listen` flows, or on the
//! flow to the next hop) become stanzas to partners.
//!
//! A MESSAGE is answered only once its fate is known (issue 3 §3): `200 OK` when the stanza was
//! handed to an authenticated outbound stream; otherwise the RFC 7247 status of what went wrong —
//! `403` when the sender is not ours or federation with the domain is not allowed, `404` for our
//! own domains (we host no XMPP users) and unknown partner domains, `408` when the partner could
//! not be reached, `503` when the router is shutting down or the partner's stream failed (a
//! stream error or a lost connection fails the stream's pending MESSAGEs at once). Every MESSAGE
//! received is counted once as answered 2xx or refused.
//!
//! A MESSAGE whose fate is still unknown [`ANSWER_WITHIN_T1`]·T1 after it arrived (the partner's
//! stream is still coming up: connect and establishment timeouts can be longer than the
//! sender's Timer F of 64·T1) is answered 408 then, so that the sender hears an answer rather
//! than timing out; a fate arriving later is ignored.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};

use crate::runtime::id_map::IdMap;
use std::rc::{Rc, Weak};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use tracing::debug;

use super::address::sip_uri_to_jid;
use super::errors::sip_status_to_send;
use super::message::{write_message_stanza, xmpp_from_sip, MessageLimits, SipMessage as SipText};
use super::MapError;
use crate::config::Config;
use crate::edge::context::{AckTo, Delivery, EdgeContext};
use crate::edge::route::send_acked;
use crate::runtime::mesh::MeshMsg;
use crate::runtime::placement::user_shard;
use crate::sip::headers::HeaderName;
use crate::sip::message::SipMessage;
use crate::sip::transaction::{response_to, ServerEvent, ServerTransactions, TxConfig, TxKey};
use crate::sip::transport::{ConnId, ListenerEvent, ListenerHandle, SipHandle};
use crate::xmpp::answer::Reply;
use crate::xmpp::error::StanzaCondition;
use crate::xmpp::jid::{bare_of, domain_of, Jid};

/// Methods we answer (RFC 3261 §20.5 `Allow`).
const ALLOW: &str = "MESSAGE, SUBSCRIBE, NOTIFY, OPTIONS";

/// Where a request came from, so its response goes back on the same flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Origin {
    /// A connection accepted by the `[sip] listen` listener.
    Listener(ConnId),
    /// The flow to `[sip] next_hop`.
    NextHop,
}

impl Origin {
    /// The listener connection this origin is, named across shards (`shard`: where it was
    /// accepted; a [`ConnId`] is unique only there). `None` for the next-hop flow.
    pub fn listener_flow(self, shard: usize) -> Option<ListenerFlow> {
        match self {
            Origin::Listener(conn) => Some(ListenerFlow { shard, conn }),
            Origin::NextHop => None,
        }
    }
}

/// A `[sip] listen` connection of some shard: requests inside a dialog created over it go back
/// over it while it is open (RFC 3261 §18, RFC 5626 flows).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListenerFlow {
    /// The shard that accepted it.
    pub shard: usize,
    /// Its id on that shard.
    pub conn: ConnId,
}

/// A MESSAGE waiting for its stanza's fate.
struct Waiting {
    origin: Origin,
    key: TxKey,
    req: SipMessage,
}

/// Why a request was refused before anything was sent: the status and its reason phrase.
type Refusal = (u16, &'static str);

/// A waiting MESSAGE is answered at the latest this many T1 after it arrived: before the
/// sender's Timer F (64·T1), with 4·T1 to spare for the way back.
pub const ANSWER_WITHIN_T1: u32 = 60;

/// When each waiting MESSAGE must be answered at the latest, in arrival order (every entry
/// gets the same delay, so the queue stays sorted). Entries already answered are skipped when
/// they come due: the waiting table decides.
#[derive(Debug)]
pub struct AnswerBy {
    within: Duration,
    queue: VecDeque<(Instant, u64)>,
}

impl AnswerBy {
    /// Deadlines `within` after arrival.
    pub fn new(within: Duration) -> Self {
        AnswerBy {
            within,
            queue: VecDeque::new(),
        }
    }

    /// MESSAGE `token` arrived at `now`.
    pub fn push(&mut self, token: u64, now: Instant) {
        self.queue.push_back((now + self.within, token));
    }

    /// The next token due at `now`, oldest first.
    pub fn pop_due(&mut self, now: Instant) -> Option<u64> {
        match self.queue.front() {
            Some(&(at, token)) if at <= now => {
                self.queue.pop_front();
                Some(token)
            }
            _ => None,
        }
    }

    /// When the next entry comes due; with none, `within` from `now` (no earlier deadline can
    /// appear before then).
    pub fn next_due(&self, now: Instant) -> Instant {
        self.queue.front().map_or(now + self.within, |&(at, _)| at)
    }
}

/// The SIP → XMPP side of the gateway on one shard.
pub struct SipIngress {
    ctx: Weak<EdgeContext>,
    listener: Option<ListenerHandle>,
    next_hop: RefCell<Option<SipHandle>>,
    servers: RefCell<HashMap<Origin, ServerTransactions>>,
    waiting: RefCell<IdMap<u64, Waiting>>,
    answer_by: RefCell<AnswerBy>,
    next_token: Cell<u64>,
    done: LocalSender<(u64, Delivery)>,
    tx_config: TxConfig,
    limits: MessageLimits,
}

impl SipIngress {
    /// Starts the ingress of this shard: serves `listener` events (when given) and answers
    /// waiting MESSAGEs as their stanzas' fates arrive.
    pub fn start(
        ctx: &Rc<EdgeContext>,
        listener: Option<(ListenerHandle, LocalReceiver<(ConnId, ListenerEvent)>)>,
    ) -> Rc<SipIngress> {
        let (done, done_rx) = local_channel::new_unbounded();
        let (handle, events) = match listener {
            Some((h, rx)) => (Some(h), Some(rx)),
            None => (None, None),
        };
        let ingress = Rc::new(SipIngress {
            ctx: Rc::downgrade(ctx),
            listener: handle,
            next_hop: RefCell::new(None),
            servers: RefCell::new(HashMap::new()),
            waiting: RefCell::new(IdMap::default()),
            answer_by: RefCell::new(AnswerBy::new(ctx.config.sip.t1 * ANSWER_WITHIN_T1)),
            next_token: Cell::new(0),
            done,
            tx_config: TxConfig {
                t1: ctx.config.sip.t1,
                // Our flows are TCP/TLS from the internal proxy (Timer J = 0 on reliable
                // transports): a short linger absorbs retransmissions that crossed a UDP hop
                // upstream (they cross our answer within a round trip) without holding tens of
                // thousands of answered transactions. 2·T1 (1 s): one flow takes 65 K
                // MESSAGEs/s before its table is full (8·T1 gave 503s from 16 K/s on).
                server_linger: ctx.config.sip.t1 * 2,
                max_server: 65_536,
                ..TxConfig::default()
            },
            limits: MessageLimits::default(),
        });
        glommio::spawn_local(run_done(ingress.clone(), done_rx)).detach();
        glommio::spawn_local(run_answer_by(Rc::downgrade(&ingress))).detach();
        if let Some(events) = events {
            glommio::spawn_local(run_listener(ingress.clone(), events)).detach();
        }
        ingress
    }

    /// Answers requests arriving on the next-hop flow through `sip`.
    pub fn set_next_hop(&self, sip: SipHandle) {
        *self.next_hop.borrow_mut() = Some(sip);
    }

    /// The fate of the stanza sent for `token` (called by the outbound stream, or the mesh).
    pub fn on_delivery(&self, token: u64, what: Delivery) {
        // Unbounded: this is called from the outbound writer, which must never wait here.
        let _ = self.done.try_send((token, what));
    }

    /// Handles one message from `origin` (requests only; responses are not ours).
    pub async fn on_message(&self, origin: Origin, m: SipMessage) {
        let Some(ctx) = self.ctx.upgrade() else {
            return;
        };
        if !m.is_request() {
            if let Origin::Listener(_) = origin {
                return self.response_on_listener(&ctx, m).await;
            }
            debug!(?origin, "stray SIP response on the ingress ignored");
            return;
        }
        if let Err(e) = m.validate() {
            debug!(?origin, error = %e, "malformed SIP request");
            // Answer when the headers a response needs are there; otherwise the flow is not
            // worth keeping (RFC 3261 §16.3 would discard; on a stream we close).
            match response_to(&m, 400, "Bad Request", None).and_then(|b| b.finish()) {
                Ok(bytes) => self.write(origin, bytes).await,
                Err(_) => self.close(origin),
            }
            return;
        }
        let now = Instant::now();
        let event = {
            let mut servers = self.servers.borrow_mut();
            let st = servers
                .entry(origin)
                .or_insert_with(|| ServerTransactions::new(self.tx_config));
            st.on_request(&m, now)
        };
        let key = match event {
            Ok(ServerEvent::New(key)) => key,
            Ok(ServerEvent::Retransmission) => return self.flush(origin).await,
            Err(e) => {
                debug!(error = %e, "SIP server transaction refused");
                if m.method() == Some("MESSAGE") {
                    // Counted like any other MESSAGE: received, and refused.
                    ctx.counters.sip_messages_in.fetch_add(1, Ordering::Relaxed);
                    ctx.counters
                        .sip_messages_refused
                        .fetch_add(1, Ordering::Relaxed);
                }
                if let Ok(b) =
                    response_to(&m, 503, "Service Unavailable", None).and_then(|b| b.finish())
                {
                    self.write(origin, b).await;
                }
                return;
            }
        };
        match m.method() {
            Some("MESSAGE") => self.message(&ctx, origin, key, m).await,
            Some("SUBSCRIBE") | Some("NOTIFY") => self.presence(&ctx, origin, key, m).await,
            Some("OPTIONS") => {
                let resp = response_to(&m, 200, "OK", Some("gw"))
                    .map(|b| {
                        b.header(HeaderName::Allow, ALLOW)
                            .header(HeaderName::Accept, "text/plain")
                    })
                    .and_then(|b| b.finish());
                self.answer_built(origin, &key, resp).await;
            }
            _ => {
                let resp = response_to(&m, 405, "Method Not Allowed", Some("gw"))
                    .map(|b| b.header(HeaderName::Allow, ALLOW))
                    .and_then(|b| b.finish());
                self.answer_built(origin, &key, resp).await;
            }
        }
    }

    async fn message(&self, ctx: &Rc<EdgeContext>, origin: Origin, key: TxKey, m: SipMessage) {
        let counters = &ctx.counters;
        counters.sip_messages_in.fetch_add(1, Ordering::Relaxed);
        let token = self.next_token.get();
        let reply = match self.translate(ctx, &m, token) {
            Ok(r) => r,
            Err((code, reason)) => {
                counters
                    .sip_messages_refused
                    .fetch_add(1, Ordering::Relaxed);
                return self.answer(origin, &key, &m, code, reason).await;
            }
        };
        if ctx.shutting_down() {
            counters
                .sip_messages_refused
                .fetch_add(1, Ordering::Relaxed);
            return self
                .answer(origin, &key, &m, 503, "Service Unavailable")
                .await;
        }
        self.next_token.set(token + 1);
        self.answer_by.borrow_mut().push(token, Instant::now());
        self.waiting.borrow_mut().insert(
            token,
            Waiting {
                origin,
                key,
                req: m,
            },
        );
        send_acked(
            ctx,
            reply,
            AckTo {
                shard: ctx.shard,
                token,
            },
        )
        .await;
    }

    /// SUBSCRIBE / NOTIFY: handled by the presence tables of the shard owning the internal
    /// user (the From of both), over the mesh when that is another shard.
    async fn presence(&self, ctx: &Rc<EdgeContext>, origin: Origin, key: TxKey, m: SipMessage) {
        let Some(gw) = ctx.gateway.get().cloned() else {
            // Presence needs the next hop for our own requests.
            return self.answer(origin, &key, &m, 501, "Not Implemented").await;
        };
        // Not ours or malformed: refused by the presence tables, on this shard.
        let owner = m
            .from()
            .ok()
            .and_then(|f| internal_jid(&ctx.config, f.uri).ok().flatten())
            .map_or(ctx.shard, |jid| user_shard(bare_of(&jid).0, ctx.shards));
        if owner == ctx.shard {
            let flow = origin.listener_flow(ctx.shard);
            let answer = gw.on_sip_request(ctx, &m, flow).await;
            if let Some(bytes) = answer.response {
                self.respond(origin, &key, bytes).await;
            }
            return gw.send_later(ctx, answer.later).await;
        }
        let msg = MeshMsg::SipRequest {
            msg: Box::new(m),
            reply_shard: ctx.shard,
            origin,
            key,
        };
        ctx.mesh_send(owner, msg).await;
    }

    /// A response on a listener connection answers one of our in-dialog requests (a NOTIFY):
    /// its client transaction lives on the shard owning the internal user, its To.
    async fn response_on_listener(&self, ctx: &Rc<EdgeContext>, m: SipMessage) {
        let Some(gw) = ctx.gateway.get().cloned() else {
            return;
        };
        let owner = m
            .to()
            .ok()
            .and_then(|t| internal_jid(&ctx.config, t.uri).ok().flatten())
            .map(|jid| user_shard(bare_of(&jid).0, ctx.shards));
        match owner {
            Some(shard) if shard != ctx.shard => {
                ctx.mesh_send(shard, MeshMsg::SipFlowResponse(Box::new(m)))
                    .await;
            }
            // Ours, or not about an internal user: this shard's transactions decide.
            _ => gw.on_flow_response(ctx, &m).await,
        }
    }

    /// Writes a request of ours on listener connection `conn` of this shard; gives the bytes
    /// back when the connection is closed.
    pub fn send_on_listener(&self, conn: ConnId, bytes: Vec<u8>) -> Result<(), Vec<u8>> {
        let Some(l) = &self.listener else {
            return Err(bytes);
        };
        // A copy for the fallback: NOTIFYs are few next to messages, and small.
        let keep = bytes.clone();
        l.send(conn, bytes).map_err(|_| keep)
    }

    /// Writes a response built on another shard for transaction `key` of `origin`.
    pub async fn respond(&self, origin: Origin, key: &TxKey, bytes: Vec<u8>) {
        self.answer_built(origin, key, Ok(bytes)).await;
    }

    /// The stanza for a MESSAGE, or why it is refused.
    fn translate(&self, ctx: &EdgeContext, m: &SipMessage, token: u64) -> Result<Reply, Refusal> {
        let from_uri = m.from().map_err(|_| (400, "Bad Request"))?;
        let from = internal_jid(&ctx.config, from_uri.uri)
            .map_err(|e| refusal(e.sip_status()))?
            .ok_or((403, "Forbidden"))?;
        let target = m.request_uri().ok_or((400, "Bad Request"))?;
        let to = sip_uri_to_jid(target).map_err(|e| refusal(e.sip_status()))?;
        let to_domain = domain_of(&to).to_ascii_lowercase();
        if ctx.config.serves(&to_domain) || ctx.config.xmpp_domain_for_sip(&to_domain).is_some() {
            // Internal to internal is the SIP side's business; we host no XMPP users.
            return Err((404, "Not Found"));
        }
        if ctx.config.policy_for(&to_domain).is_none() {
            return Err((403, "Forbidden"));
        }
        let text = SipText {
            content_type: m
                .header(HeaderName::ContentType)
                .and_then(|v| std::str::from_utf8(v).ok())
                .unwrap_or("text/plain")
                .to_owned(),
            content_language: m.content_languages().next().map(str::to_owned),
            subject: m.subject().ok().map(str::to_owned),
            call_id: m.call_id().ok().map(str::to_owned),
            body: m.body().to_vec(),
        };
        let xm = xmpp_from_sip(&text, &self.limits).map_err(|e| refusal(e.sip_status()))?;
        let mut bytes = Vec::with_capacity(128 + text.body.len());
        let id = format!("sip{}-{token}", ctx.shard);
        write_message_stanza(&from, &to, Some(&id), &xm, &mut bytes);
        Ok(Reply {
            from_domain: domain_of(&from).to_owned(),
            to_domain,
            bytes,
        })
    }

    async fn settle(&self, token: u64, what: Delivery) {
        let Some(w) = self.waiting.borrow_mut().remove(&token) else {
            return;
        };
        let Some(ctx) = self.ctx.upgrade() else {
            return;
        };
        let (code, reason) = match what {
            Delivery::Sent => {
                ctx.counters
                    .sip_messages_delivered
                    .fetch_add(1, Ordering::Relaxed);
                (200, "OK")
            }
            Delivery::Failed(cond) => {
                ctx.counters
                    .sip_messages_refused
                    .fetch_add(1, Ordering::Relaxed);
                refusal(sip_status_to_send(cond))
            }
        };
        self.answer(w.origin, &w.key, &w.req, code, reason).await;
    }

    async fn answer(&self, origin: Origin, key: &TxKey, req: &SipMessage, code: u16, why: &str) {
        let resp = response_to(req, code, why, Some("gw"))
            // RFC 3261 §21.4.6: a 405 lists what we accept.
            .map(|b| match code {
                405 => b.header(HeaderName::Allow, ALLOW),
                _ => b,
            })
            .and_then(|b| b.finish());
        self.answer_built(origin, key, resp).await;
    }

    async fn answer_built(
        &self,
        origin: Origin,
        key: &TxKey,
        resp: Result<Vec<u8>, crate::sip::BuildError>,
    ) {
        let Ok(bytes) = resp else {
            // validate() passed, so the headers a response copies are there; this is our bug.
            debug!("could not build a SIP response");
            return;
        };
        if let Some(st) = self.servers.borrow_mut().get_mut(&origin) {
            let _ = st.respond(key, Bytes::from(bytes), Instant::now());
        }
        self.flush(origin).await;
    }

    /// Writes what the origin's server transactions queued.
    async fn flush(&self, origin: Origin) {
        loop {
            let next = self
                .servers
                .borrow_mut()
                .get_mut(&origin)
                .and_then(|st| st.poll_transmit());
            let Some(bytes) = next else { return };
            self.write(origin, bytes.to_vec()).await;
        }
    }

    async fn write(&self, origin: Origin, bytes: Vec<u8>) {
        let sent = match origin {
            Origin::Listener(conn) => match &self.listener {
                Some(l) => l.send(conn, bytes).is_ok(),
                None => false,
            },
            Origin::NextHop => {
                let hop = self.next_hop.borrow().clone();
                match hop {
                    Some(h) => h.send(bytes).await.is_ok(),
                    None => false,
                }
            }
        };
        if !sent {
            debug!(?origin, "SIP response not written: flow gone");
        }
    }

    fn close(&self, origin: Origin) {
        if let (Origin::Listener(conn), Some(l)) = (origin, &self.listener) {
            l.close(conn);
        }
    }

    fn closed(&self, origin: Origin) {
        self.servers.borrow_mut().remove(&origin);
    }
}

/// A status and its RFC 3261 reason phrase.
fn refusal(code: u16) -> Refusal {
    (code, crate::sip::reason_phrase(code))
}

/// The XMPP address of an internal SIP user's URI: mapped (RFC 7247), with its SIP domain
/// replaced by the XMPP domain it stands for (`sip.domains`). `Ok(None)`: the domain is not ours.
pub(super) fn internal_jid(cfg: &Config, uri: &str) -> Result<Option<String>, MapError> {
    let jid = sip_uri_to_jid(uri)?;
    let j = Jid::parse(&jid).map_err(|_| MapError::BadJid("mapped SIP URI"))?;
    let Some(domain) = cfg.xmpp_domain_for_sip(j.domain) else {
        return Ok(None);
    };
    if domain == j.domain {
        return Ok(Some(jid));
    }
    let mut out = String::with_capacity(jid.len() + domain.len());
    if let Some(l) = j.local {
        out.push_str(l);
        out.push('@');
    }
    out.push_str(domain);
    if let Some(r) = j.resource {
        out.push('/');
        out.push_str(r);
    }
    Ok(Some(out))
}

async fn run_listener(ingress: Rc<SipIngress>, events: LocalReceiver<(ConnId, ListenerEvent)>) {
    while let Some((conn, ev)) = events.recv().await {
        match ev {
            ListenerEvent::Message(m) => ingress.on_message(Origin::Listener(conn), m).await,
            ListenerEvent::Closed(why) => {
                debug!(%conn, %why, "SIP listener flow closed");
                ingress.closed(Origin::Listener(conn));
            }
        }
    }
}

/// Answers 408 to MESSAGEs whose fate did not arrive within [`ANSWER_WITHIN_T1`]·T1.
async fn run_answer_by(ingress: Weak<SipIngress>) {
    loop {
        let next = match ingress.upgrade() {
            Some(i) => i.answer_by.borrow().next_due(Instant::now()),
            None => return,
        };
        glommio::timer::sleep(next.saturating_duration_since(Instant::now())).await;
        let Some(i) = ingress.upgrade() else { return };
        loop {
            let due = i.answer_by.borrow_mut().pop_due(Instant::now());
            let Some(token) = due else { break };
            if i.waiting.borrow().contains_key(&token) {
                debug!(token, "no fate for a MESSAGE in time: answered 408");
                i.settle(
                    token,
                    Delivery::Failed(StanzaCondition::RemoteServerTimeout),
                )
                .await;
            }
        }
    }
}

async fn run_done(ingress: Rc<SipIngress>, done: LocalReceiver<(u64, Delivery)>) {
    while let Some((token, what)) = done.recv().await {
        ingress.settle(token, what).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiting_messages_come_due_in_arrival_order_within_the_bound() {
        let t0 = Instant::now();
        let within = Duration::from_secs(30);
        let mut by = AnswerBy::new(within);
        assert_eq!(
            by.next_due(t0),
            t0 + within,
            "nothing waits: sleep a full bound"
        );
        by.push(1, t0);
        by.push(2, t0 + Duration::from_secs(1));
        assert_eq!(by.next_due(t0), t0 + within);
        assert_eq!(by.pop_due(t0 + within - Duration::from_millis(1)), None);
        assert_eq!(by.pop_due(t0 + within), Some(1));
        assert_eq!(by.pop_due(t0 + within), None, "2 is due a second later");
        assert_eq!(
            by.next_due(t0 + within),
            t0 + within + Duration::from_secs(1)
        );
        assert_eq!(by.pop_due(t0 + within * 2), Some(2));
        assert_eq!(by.pop_due(t0 + within * 2), None);
    }

    #[test]
    fn a_message_without_fate_is_answered_before_the_senders_timer_f() {
        // The sender gives up at Timer F = 64·T1 (RFC 3261 §17.1.2.2).
        const { assert!(ANSWER_WITHIN_T1 < 64) };
        assert_eq!(
            sip_status_to_send(StanzaCondition::RemoteServerTimeout),
            408,
            "the partner could not be reached in time"
        );
    }
}
