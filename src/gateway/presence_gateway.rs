//! Presence through the gateway (RFC 8048), on the shard that owns the internal user: every
//! subscription is keyed by (partner user, internal user), so XMPP stanzas addressed to the
//! internal user and SIP requests from them meet the same tables.
//!
//! * Partner user → internal user: XMPP `subscribe` starts a [`Subscriber`] (SIP SUBSCRIBE to the
//!   internal user, refreshed by the gateway every `subscription_refresh`; refreshes never reach
//!   XMPP); its NOTIFYs become `subscribed` / presence / `unsubscribed`.
//! * Internal user → partner user: SIP SUBSCRIBE enters [`Notifiers`] (dialog `pending`) and is
//!   asked on the XMPP side (`subscribe`); the partner's `subscribed` / `unsubscribed` answers it;
//!   the partner user's presence becomes NOTIFY with PIDF.
//! * Lync partner types: a `public-unverified` partner's user may not start a subscription to an
//!   internal user unless that user subscribed to them first (answered `unsubscribed`).
//!
//! * Flows: a SIP subscription that came in over a `[sip] listen` connection gets its NOTIFYs
//!   back over that same connection while it is open (RFC 3261 §18, RFC 5626 practice: the
//!   subscriber may be reachable only there), over the next hop once it is closed.
//!
//! Bounds: subscriber dialogs per shard (`MAX_SUBSCRIBERS`), notifier dialogs per owner and in
//! all ([`crate::gateway::subscription::NotifierConfig`]); the last presence kept per subscriber.
//! Expiry: notifier dialogs end when not refreshed or, still pending, when the XMPP user leaves
//! them unanswered (`answer_timeout`); [`PresenceTables::sweep`] drops ended subscribers after a
//! linger of 64·T1 (late NOTIFYs are still answered) and every entry (last presence, Call-ID
//! index, dialog pairs, flows) whose dialog is gone.
//! Known simplification: a partner user's presence updates every notifier dialog of that partner
//! user on this shard (servers broadcast presence to each contact anyway).

use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tracing::debug;

use super::address::{jid_to_sip_uri, sip_uri_to_jid};
use super::children::for_each_child;
use super::inbound::{internal_jid, ListenerFlow};
use super::notify_queue::NotifyQueue;
use super::outbound_message::{MessageGateway, Pending};
use super::presence::{pidf_from_presence, presence_from_pidf, Show, XmppPresence};
use super::subscription::{
    DialogKey, EndReason, LocalEndpoint, NotifierConfig, NotifierEvent, Notifiers, OutRequest,
    Subscriber, SubscriberConfig, SubscriberEvent, SubscriberState,
};
use crate::config::{Config, PartnerType};
use crate::edge::context::EdgeContext;
use crate::edge::route::send_reply;
use crate::sip::message::SipMessage;
use crate::sip::transaction::{random_hex, response_to, Outcome};
use crate::xml::{escape_attr, escape_text, open_stanza, Stanza};
use crate::xmpp::answer::Reply;
use crate::xmpp::jid::{bare_of, domain_of};

/// (partner user's bare JID, internal user's bare JID).
pub type SubKey = (String, String);

/// Subscriber dialogs per shard at most; more `subscribe`s are answered `unsubscribed`.
const MAX_SUBSCRIBERS: usize = 65_536;

/// How often the tables are swept for ended state.
const SWEEP_EVERY: Duration = Duration::from_secs(30);

/// Presence state of one shard.
pub struct PresenceTables {
    subscribers: HashMap<SubKey, Subscriber>,
    by_call_id: HashMap<String, SubKey>,
    /// Last presence of the internal user per subscription (answers probes).
    last: HashMap<SubKey, XmppPresence>,
    notifiers: Notifiers,
    /// Notifier dialog ⇄ (partner user, internal user).
    dialog_pair: HashMap<DialogKey, SubKey>,
    pair_dialog: HashMap<SubKey, DialogKey>,
    /// Notifier dialogs whose latest SUBSCRIBE came over a listener connection.
    flows: HashMap<DialogKey, ListenerFlow>,
    /// NOTIFYs waiting for their dialog's previous one to end.
    notify_queue: NotifyQueue<DialogKey, (OutRequest, Option<ListenerFlow>)>,
    /// When a sweep first saw a subscriber ended.
    ended_at: HashMap<SubKey, Instant>,
    /// How long an ended subscriber is kept (answers the NOTIFY terminated of its unsubscribe).
    linger: Duration,
    sweep_at: Instant,
    sub_cfg: SubscriberConfig,
    ep: LocalEndpoint,
}

impl PresenceTables {
    /// Empty tables for a shard whose SIP requests carry `via_host`.
    pub fn new(cfg: &Config, via_host: &str, now: Instant) -> Result<PresenceTables, String> {
        let ep = LocalEndpoint {
            transport: "TCP".into(),
            host: via_host.to_owned(),
            port: None,
            contact: format!("sip:gw@{via_host};transport=tcp"),
        };
        let seed = random_hex(6).map_err(|e| e.to_string())?;
        let expires = u32::try_from(cfg.limits.subscription_refresh.as_secs())
            .unwrap_or(u32::MAX)
            .max(60);
        let sub_cfg = SubscriberConfig {
            expires,
            t1: cfg.sip.t1,
            ..SubscriberConfig::default()
        };
        Ok(PresenceTables::with_parts(
            sub_cfg,
            NotifierConfig::default(),
            ep,
            &seed,
            now,
        ))
    }

    /// Empty tables from their parts (`seed`: random, for the notifiers' tags and branches).
    pub fn with_parts(
        sub_cfg: SubscriberConfig,
        notifier_cfg: NotifierConfig,
        ep: LocalEndpoint,
        seed: &str,
        now: Instant,
    ) -> PresenceTables {
        PresenceTables {
            subscribers: HashMap::new(),
            by_call_id: HashMap::new(),
            last: HashMap::new(),
            notifiers: Notifiers::new(notifier_cfg, ep.clone(), seed),
            dialog_pair: HashMap::new(),
            pair_dialog: HashMap::new(),
            flows: HashMap::new(),
            notify_queue: NotifyQueue::default(),
            ended_at: HashMap::new(),
            linger: sub_cfg.t1.saturating_mul(64),
            sweep_at: now + SWEEP_EVERY,
            sub_cfg,
            ep,
        }
    }

    /// Drops ended state: subscribers ended for longer than the linger, and the last presence,
    /// Call-ID index entries, dialog pairs and flows of dialogs that no longer exist. Runs
    /// every `SWEEP_EVERY` from the timers ([`Self::poll_timeout`] includes it).
    pub fn sweep(&mut self, now: Instant) {
        self.sweep_at = now + SWEEP_EVERY;
        let ended = |s: &Subscriber| matches!(s.state(), SubscriberState::Terminated(_));
        for (k, s) in &self.subscribers {
            if ended(s) && !self.ended_at.contains_key(k) {
                self.ended_at.insert(k.clone(), now);
            }
        }
        let linger = self.linger;
        let subscribers = &mut self.subscribers;
        self.ended_at.retain(|k, since| {
            let Some(s) = subscribers.get(k) else {
                return false;
            };
            if !ended(s) {
                return false; // replaced by a new subscription
            }
            if now.saturating_duration_since(*since) >= linger {
                subscribers.remove(k);
                return false;
            }
            true
        });
        let subscribers = &self.subscribers;
        self.last.retain(|k, _| subscribers.contains_key(k));
        self.by_call_id.retain(|_, k| subscribers.contains_key(k));
        let notifiers = &self.notifiers;
        self.dialog_pair.retain(|dk, _| notifiers.contains(dk));
        self.pair_dialog.retain(|_, dk| notifiers.contains(dk));
        self.flows.retain(|dk, _| notifiers.contains(dk));
    }

    /// Listener flow `flow` is closed: its dialogs' requests go to the next hop from now on.
    pub fn forget_flow(&mut self, flow: ListenerFlow) {
        self.flows.retain(|_, f| *f != flow);
    }

    /// Entries held: (subscribers, last presences, notifier dialogs, dialog pairs, flows).
    pub fn sizes(&self) -> (usize, usize, usize, usize, usize) {
        (
            self.subscribers.len(),
            self.last.len(),
            self.notifiers.len(),
            self.dialog_pair.len(),
            self.flows.len(),
        )
    }

    /// Earliest timer of any dialog.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let subs = self
            .subscribers
            .values()
            .filter_map(|s| s.poll_timeout())
            .min();
        let due = match (subs, self.notifiers.poll_timeout()) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b).unwrap_or(self.sweep_at),
        };
        Some(due.min(self.sweep_at))
    }

    fn forget_subscriber(&mut self, key: &SubKey) {
        self.subscribers.remove(key);
        self.last.remove(key);
        self.by_call_id.retain(|_, k| k != key);
    }
}

/// A request produced while handling an event, sent once the event's response is out.
pub enum Later {
    /// A SUBSCRIBE of subscription `SubKey`.
    Subscribe(SubKey, OutRequest),
    /// A NOTIFY of a notifier dialog, over the listener flow its SUBSCRIBE came on (if open).
    Notify(DialogKey, OutRequest, Option<ListenerFlow>),
}

/// What a SUBSCRIBE/NOTIFY from the internal side produced.
pub struct SipAnswer {
    /// The response to write on the request's flow.
    pub response: Option<Vec<u8>>,
    /// Requests to send after it ([`MessageGateway::send_later`]).
    pub later: Vec<Later>,
}

impl SipAnswer {
    fn only(response: Option<Vec<u8>>) -> SipAnswer {
        SipAnswer {
            response,
            later: Vec::new(),
        }
    }
}

/// XMPP presence `type` values handled here.
enum PresenceKind {
    Available,
    Unavailable,
    Subscribe,
    Subscribed,
    Unsubscribe,
    Unsubscribed,
    Probe,
    Error,
}

impl MessageGateway {
    /// A partner's `<presence/>` to one of our users (this shard owns the user).
    pub async fn on_xmpp_presence(&self, ctx: &Rc<EdgeContext>, s: &Stanza) {
        let (Some(from), Some(to)) = (s.from(), s.to()) else {
            return;
        };
        let partner = bare_of(&from).0.to_ascii_lowercase();
        let internal = bare_of(&to).0.to_ascii_lowercase();
        let key: SubKey = (partner, internal);
        let kind = match s.stanza_type().as_deref() {
            None => PresenceKind::Available,
            Some("unavailable") => PresenceKind::Unavailable,
            Some("subscribe") => PresenceKind::Subscribe,
            Some("subscribed") => PresenceKind::Subscribed,
            Some("unsubscribe") => PresenceKind::Unsubscribe,
            Some("unsubscribed") => PresenceKind::Unsubscribed,
            Some("probe") => PresenceKind::Probe,
            _ => PresenceKind::Error,
        };
        // On the partner's task, as for a MESSAGE: presence that may start SIP transactions
        // waits while the table is full (backpressure) instead of having them refused. A
        // refused SUBSCRIBE was answered `unsubscribed`: seen under closed-loop load, where
        // the pool's 200s lag its deliveries and the table fills.
        if !matches!(kind, PresenceKind::Probe | PresenceKind::Error) {
            self.wait_for_room().await;
        }
        let now = Instant::now();
        match kind {
            PresenceKind::Subscribe => self.xmpp_subscribe(ctx, key, now).await,
            PresenceKind::Unsubscribe => {
                let evs = self
                    .presence
                    .borrow_mut()
                    .subscribers
                    .get_mut(&key)
                    .map(|s| s.unsubscribe(now));
                match evs {
                    Some(evs) => {
                        self.subscriber_events_now(ctx, &key, evs).await;
                    }
                    None => self.tell(ctx, &key, Some("unsubscribed"), None).await,
                }
            }
            PresenceKind::Subscribed | PresenceKind::Unsubscribed => {
                let yes = matches!(kind, PresenceKind::Subscribed);
                let dk = self.presence.borrow().pair_dialog.get(&key).cloned();
                let Some(dk) = dk else {
                    debug!(
                        ?key,
                        "subscription answer without a SIP subscription; ignored"
                    );
                    return;
                };
                let evs = self
                    .presence
                    .borrow_mut()
                    .notifiers
                    .xmpp_answer(&dk, yes, now);
                if let Ok(evs) = evs {
                    self.notifier_events_now(ctx, evs).await;
                }
            }
            PresenceKind::Available | PresenceKind::Unavailable => {
                let mut p = xmpp_presence(s);
                p.available = matches!(kind, PresenceKind::Available);
                let Ok(entity) = jid_to_sip_uri(&key.0) else {
                    return;
                };
                let pidf = pidf_from_presence(&entity, &p, "xmpp");
                let evs = self.presence.borrow_mut().notifiers.on_presence(
                    &key.0,
                    Bytes::from(pidf),
                    now,
                );
                self.notifier_events_now(ctx, evs).await;
            }
            PresenceKind::Probe => {
                let (last, active) = {
                    let t = self.presence.borrow();
                    let active = t
                        .subscribers
                        .get(&key)
                        .is_some_and(|s| *s.state() == SubscriberState::Active);
                    (t.last.get(&key).cloned(), active)
                };
                match (last, active) {
                    (Some(p), true) => self.tell(ctx, &key, None, Some(&p)).await,
                    (_, true) => {} // the next NOTIFY brings the presence
                    (_, false) => self.tell(ctx, &key, Some("unsubscribed"), None).await,
                }
            }
            PresenceKind::Error => {
                debug!(?key, "presence error from partner ignored");
            }
        }
    }

    async fn xmpp_subscribe(&self, ctx: &Rc<EdgeContext>, key: SubKey, now: Instant) {
        let partner_type = ctx.config.policy_for(domain_of(&key.0)).map(|p| p.kind);
        let asked_first = self.presence.borrow().pair_dialog.contains_key(&key);
        if partner_type == Some(PartnerType::PublicUnverified) && !asked_first {
            debug!(
                ?key,
                "public-unverified partner may not start a subscription"
            );
            return self.tell(ctx, &key, Some("unsubscribed"), None).await;
        }
        let existing = self
            .presence
            .borrow()
            .subscribers
            .get(&key)
            .map(|s| s.state().clone());
        match existing {
            Some(SubscriberState::Active) => {
                return self.tell(ctx, &key, Some("subscribed"), None).await
            }
            Some(SubscriberState::Terminated(_)) | None => {}
            Some(_) => return, // under way: its outcome answers
        }
        let created = self.new_subscriber(ctx, &key);
        let evs = match created {
            Some(mut sub) => {
                let evs = sub.subscribe(now);
                let mut t = self.presence.borrow_mut();
                t.by_call_id.retain(|_, k| *k != key);
                t.by_call_id.insert(sub.call_id().to_owned(), key.clone());
                t.subscribers.insert(key.clone(), sub);
                evs
            }
            None => return self.tell(ctx, &key, Some("unsubscribed"), None).await,
        };
        self.subscriber_events_now(ctx, &key, evs).await;
    }

    fn new_subscriber(&self, ctx: &EdgeContext, key: &SubKey) -> Option<Subscriber> {
        let t = self.presence.borrow();
        if t.subscribers.len() >= MAX_SUBSCRIBERS {
            return None;
        }
        let local = jid_to_sip_uri(&key.0).ok()?;
        let (user, domain) = key.1.split_once('@')?;
        let sip_domain = ctx.config.sip_domain_for_xmpp(domain);
        let remote = jid_to_sip_uri(&format!("{user}@{sip_domain}")).ok()?;
        let call_id = random_hex(16).ok()?;
        let tag = random_hex(8).ok()?;
        let branch = random_hex(8).ok()?;
        Some(Subscriber::new(
            &local,
            &remote,
            &call_id,
            &tag,
            &branch,
            t.ep.clone(),
            t.sub_cfg,
        ))
    }

    /// A SUBSCRIBE or NOTIFY from the internal side, for a user this shard owns. Returns the
    /// response to send on the request's flow and the requests to send after it (a NOTIFY
    /// must not overtake the 200 that creates its dialog): hand those to [`Self::send_later`].
    /// `flow`: the listener connection the request came on (`None`: the next-hop flow); a
    /// SUBSCRIBE's dialog sends its NOTIFYs there.
    pub async fn on_sip_request(
        &self,
        ctx: &Rc<EdgeContext>,
        m: &SipMessage,
        flow: Option<ListenerFlow>,
    ) -> SipAnswer {
        let mut answer = self.sip_request(ctx, m, flow).await;
        if answer.response.is_none() {
            // Every request gets an answer, even when a dialog produced none.
            answer.response = refuse(m, 500, "Server Internal Error");
        }
        answer
    }

    async fn sip_request(
        &self,
        ctx: &Rc<EdgeContext>,
        m: &SipMessage,
        flow: Option<ListenerFlow>,
    ) -> SipAnswer {
        let now = Instant::now();
        match m.method() {
            Some("NOTIFY") => {
                let key = m
                    .call_id()
                    .ok()
                    .and_then(|c| self.presence.borrow().by_call_id.get(c).cloned());
                let Some(key) = key else {
                    return SipAnswer::only(refuse(m, 481, "Subscription Does Not Exist"));
                };
                let evs = self
                    .presence
                    .borrow_mut()
                    .subscribers
                    .get_mut(&key)
                    .map(|s| s.on_notify(m, now))
                    .unwrap_or_default();
                let mut later = Vec::new();
                let resp = self.subscriber_events(ctx, &key, evs, &mut later).await;
                SipAnswer {
                    response: resp,
                    later,
                }
            }
            Some("SUBSCRIBE") => {
                // In a dialog the Request-URI is our Contact: the dialog names the pair.
                let known = in_dialog(m).and_then(|dk| {
                    let t = self.presence.borrow();
                    t.dialog_pair.get(&dk).cloned()
                });
                let Some(pair) = known.or_else(|| subscribe_pair(ctx, m)) else {
                    return SipAnswer::only(refuse(m, 403, "Forbidden"));
                };
                let result = self
                    .presence
                    .borrow_mut()
                    .notifiers
                    .on_subscribe(m, &pair.0, now);
                let evs = match result {
                    Ok(evs) => evs,
                    Err((e, evs)) => {
                        debug!(error = %e, "SIP SUBSCRIBE refused");
                        evs
                    }
                };
                // Remember which pair each new dialog belongs to, and the flow its latest
                // SUBSCRIBE came on, before acting on its events.
                {
                    let mut t = self.presence.borrow_mut();
                    for ev in &evs {
                        if let NotifierEvent::AskXmpp(dk) | NotifierEvent::Send(dk, _) = ev {
                            if !t.dialog_pair.contains_key(dk) {
                                t.dialog_pair.insert(dk.clone(), pair.clone());
                                t.pair_dialog.insert(pair.clone(), dk.clone());
                            }
                            match flow {
                                Some(f) => t.flows.insert(dk.clone(), f),
                                None => t.flows.remove(dk),
                            };
                        }
                    }
                }
                let mut later = Vec::new();
                let resp = self.notifier_events(ctx, evs, &mut later).await;
                SipAnswer {
                    response: resp,
                    later,
                }
            }
            _ => SipAnswer::only(refuse(m, 405, "Method Not Allowed")),
        }
    }

    /// Acts on a subscriber's events; returns the response to the request being handled.
    async fn subscriber_events(
        &self,
        ctx: &Rc<EdgeContext>,
        key: &SubKey,
        evs: Vec<SubscriberEvent>,
        later: &mut Vec<Later>,
    ) -> Option<Vec<u8>> {
        let mut response = None;
        for ev in evs {
            match ev {
                SubscriberEvent::Subscribed => {
                    self.tell(ctx, key, Some("subscribed"), None).await;
                }
                SubscriberEvent::Unsubscribed { reason } => {
                    debug!(?key, ?reason, "SIP subscription ended");
                    self.presence.borrow_mut().forget_subscriber(key);
                    // Ended by the partner user's own `unsubscribe`: nothing to tell them.
                    if !matches!(reason, EndReason::Unsubscribed) {
                        self.tell(ctx, key, Some("unsubscribed"), None).await;
                    }
                }
                SubscriberEvent::Presence(pidf) => match presence_from_pidf(&pidf) {
                    Ok(p) => {
                        self.presence
                            .borrow_mut()
                            .last
                            .insert(key.clone(), p.clone());
                        self.tell(ctx, key, None, Some(&p)).await;
                    }
                    Err(e) => debug!(error = %e, "PIDF refused"),
                },
                SubscriberEvent::Send(req) => later.push(Later::Subscribe(key.clone(), req)),
                SubscriberEvent::Respond(bytes) => response = Some(bytes),
            }
        }
        response
    }

    /// Acts on the notifiers' events; returns the response to the request being handled.
    async fn notifier_events(
        &self,
        ctx: &Rc<EdgeContext>,
        evs: Vec<NotifierEvent>,
        later: &mut Vec<Later>,
    ) -> Option<Vec<u8>> {
        let mut response = None;
        for ev in evs {
            match ev {
                NotifierEvent::Respond(bytes) => response = Some(bytes),
                NotifierEvent::Send(dk, req) => {
                    let flow = self.presence.borrow().flows.get(&dk).copied();
                    later.push(Later::Notify(dk, req, flow));
                }
                NotifierEvent::AskXmpp(dk) => {
                    let pair = self.presence.borrow().dialog_pair.get(&dk).cloned();
                    if let Some(pair) = pair {
                        self.tell(ctx, &pair, Some("subscribe"), None).await;
                    }
                }
                NotifierEvent::Ended(dk, reason) => {
                    let pair = {
                        let mut t = self.presence.borrow_mut();
                        t.flows.remove(&dk);
                        let pair = t.dialog_pair.remove(&dk);
                        if let Some(p) = &pair {
                            if t.pair_dialog.get(p) == Some(&dk) {
                                t.pair_dialog.remove(p);
                            }
                        }
                        pair
                    };
                    if let (Some(pair), Some(kind)) = (pair, xmpp_type_for_notifier_end(&reason)) {
                        self.tell(ctx, &pair, Some(kind), None).await;
                    }
                }
            }
        }
        response
    }

    async fn subscriber_events_now(
        &self,
        ctx: &Rc<EdgeContext>,
        key: &SubKey,
        evs: Vec<SubscriberEvent>,
    ) {
        let mut later = Vec::new();
        self.subscriber_events(ctx, key, evs, &mut later).await;
        self.send_later(ctx, later).await;
    }

    async fn notifier_events_now(&self, ctx: &Rc<EdgeContext>, evs: Vec<NotifierEvent>) {
        let mut later = Vec::new();
        self.notifier_events(ctx, evs, &mut later).await;
        self.send_later(ctx, later).await;
    }

    /// Sends the requests an event produced; a request the transaction table refuses fails
    /// its dialog as a transport failure would (and what that produces is sent in turn).
    pub async fn send_later(&self, ctx: &Rc<EdgeContext>, later: Vec<Later>) {
        let mut queue = std::collections::VecDeque::from(later);
        while let Some(item) = queue.pop_front() {
            let transport = super::errors::SipFailure::Transport;
            let mut more = Vec::new();
            match item {
                Later::Subscribe(key, req) => {
                    let pending = Pending::Subscribe(key.clone());
                    if self
                        .transmit(ctx, req.bytes, &req.branch, req.method, pending)
                        .await
                    {
                        continue;
                    }
                    let evs = self
                        .presence
                        .borrow_mut()
                        .subscribers
                        .get_mut(&key)
                        .map(|s| s.on_failure(transport, Instant::now()))
                        .unwrap_or_default();
                    self.subscriber_events(ctx, &key, evs, &mut more).await;
                }
                Later::Notify(dk, req, flow) => {
                    let now = self
                        .presence
                        .borrow_mut()
                        .notify_queue
                        .offer(&dk, (req, flow));
                    // Sent at once, or by `notify_outcome` when the one in flight ends.
                    if let Some((req, flow)) = now {
                        self.send_notify(ctx, &dk, req, flow, &mut more).await;
                    }
                }
            }
            queue.extend(more);
        }
    }

    /// The end of a SUBSCRIBE transaction of subscription `key`.
    pub(super) async fn subscribe_outcome(
        &self,
        ctx: &Rc<EdgeContext>,
        key: SubKey,
        outcome: Outcome,
        response: Option<&SipMessage>,
    ) {
        let now = Instant::now();
        let evs = {
            let mut t = self.presence.borrow_mut();
            let Some(sub) = t.subscribers.get_mut(&key) else {
                return;
            };
            match (outcome, response) {
                (Outcome::Success(_), Some(resp)) => sub.on_response(resp, now),
                (Outcome::Failure(f), _) => sub.on_failure(f, now),
                (Outcome::Success(_), None) => Vec::new(),
            }
        };
        self.subscriber_events_now(ctx, &key, evs).await;
    }

    /// The end of a NOTIFY transaction of dialog `key`.
    pub(super) async fn notify_outcome(
        &self,
        ctx: &Rc<EdgeContext>,
        key: DialogKey,
        outcome: Outcome,
    ) {
        if let Outcome::Failure(f) = outcome {
            let evs = self
                .presence
                .borrow_mut()
                .notifiers
                .on_notify_failure(&key, f);
            self.notifier_events_now(ctx, evs).await;
        }
        let next = self.presence.borrow_mut().notify_queue.done(&key);
        if let Some((req, flow)) = next {
            let mut more = Vec::new();
            self.send_notify(ctx, &key, req, flow, &mut more).await;
            Box::pin(self.send_later(ctx, more)).await;
        }
    }

    /// Sends `req`, the NOTIFY of dialog `dk` now in flight. One the transaction table refuses
    /// fails its dialog as a transport failure would; never sent, it never ends, so the next
    /// queued NOTIFY goes instead.
    async fn send_notify(
        &self,
        ctx: &Rc<EdgeContext>,
        dk: &DialogKey,
        mut req: OutRequest,
        mut flow: Option<ListenerFlow>,
        more: &mut Vec<Later>,
    ) {
        loop {
            let pending = Pending::Notify(dk.clone());
            if self
                .transmit_on(ctx, req.bytes, &req.branch, req.method, pending, flow)
                .await
            {
                return;
            }
            let evs = self
                .presence
                .borrow_mut()
                .notifiers
                .on_notify_failure(dk, super::errors::SipFailure::Transport);
            self.notifier_events(ctx, evs, more).await;
            let next = self.presence.borrow_mut().notify_queue.done(dk);
            match next {
                Some((r, f)) => (req, flow) = (r, f),
                None => return,
            }
        }
    }

    /// Runs the dialogs' timers (refreshes, expiries, NOTIFY waits).
    pub(super) async fn presence_timers(&self, ctx: &Rc<EdgeContext>, now: Instant) {
        let due: Vec<(SubKey, Vec<SubscriberEvent>)> = {
            let mut t = self.presence.borrow_mut();
            t.subscribers
                .iter_mut()
                .filter(|(_, s)| s.poll_timeout().is_some_and(|d| d <= now))
                .map(|(k, s)| (k.clone(), s.handle_timeout(now)))
                .collect()
        };
        for (key, evs) in due {
            self.subscriber_events_now(ctx, &key, evs).await;
        }
        let evs = self.presence.borrow_mut().notifiers.handle_timeout(now);
        self.notifier_events_now(ctx, evs).await;
        let mut t = self.presence.borrow_mut();
        if t.sweep_at <= now {
            t.sweep(now);
        }
    }

    /// Sends a presence stanza from the internal user to the partner user.
    async fn tell(
        &self,
        ctx: &Rc<EdgeContext>,
        key: &SubKey,
        kind: Option<&str>,
        p: Option<&XmppPresence>,
    ) {
        let mut out = Vec::with_capacity(160);
        write_presence_stanza(&key.1, &key.0, kind, p, &mut out);
        send_reply(
            ctx,
            Reply {
                from_domain: domain_of(&key.1).to_owned(),
                to_domain: domain_of(&key.0).to_owned(),
                bytes: out,
            },
        )
        .await;
    }
}

/// (partner user, internal user) of a SUBSCRIBE: From must be ours, the target a partner user
/// federation allows.
fn subscribe_pair(ctx: &EdgeContext, m: &SipMessage) -> Option<SubKey> {
    let from = internal_jid(&ctx.config, m.from().ok()?.uri).ok()??;
    let internal = bare_of(&from).0.to_ascii_lowercase();
    let target = sip_uri_to_jid(m.request_uri()?).ok()?;
    let partner = bare_of(&target).0.to_ascii_lowercase();
    let partner_domain = domain_of(&partner);
    if ctx.config.serves(partner_domain) || ctx.config.policy_for(partner_domain).is_none() {
        return None;
    }
    Some((partner, internal))
}

/// The notifier dialog an in-dialog request (To with a tag) names: (Call-ID, From tag, To tag).
fn in_dialog(m: &SipMessage) -> Option<DialogKey> {
    let local_tag = m.to().ok()?.tag()?.to_owned();
    let remote_tag = m.from().ok()?.tag()?.to_owned();
    Some(DialogKey {
        call_id: m.call_id().ok()?.to_owned(),
        remote_tag,
        local_tag,
    })
}

/// What the partner user hears when an internal user's subscription to them ends: the
/// internal user's own `Expires: 0` is RFC 8048's `unsubscribe`; a request the partner left
/// unanswered is withdrawn the same way (RFC 6121 §3.3: `unsubscribe` also cancels a pending
/// request). Other ends (expiry, NOTIFY failures, the partner's own `unsubscribed`) say nothing.
pub fn xmpp_type_for_notifier_end(reason: &EndReason) -> Option<&'static str> {
    match reason {
        EndReason::Unsubscribed | EndReason::Unanswered => Some("unsubscribe"),
        _ => None,
    }
}

fn refuse(m: &SipMessage, code: u16, reason: &str) -> Option<Vec<u8>> {
    response_to(m, code, reason, None).ok()?.finish().ok()
}

/// `<presence from to [type]>` with show/status/priority from `p`, appended to `out`.
pub fn write_presence_stanza(
    from: &str,
    to: &str,
    kind: Option<&str>,
    p: Option<&XmppPresence>,
    out: &mut Vec<u8>,
) {
    let kind = kind.or(match p {
        Some(p) if !p.available => Some("unavailable"),
        _ => None,
    });
    open_stanza(out, "presence", from, to, None, kind);
    let Some(p) = p.filter(|p| p.show.is_some() || !p.status.is_empty() || p.priority != 0) else {
        out.extend_from_slice(b"/>");
        return;
    };
    out.push(b'>');
    if let Some(show) = p.show {
        out.extend_from_slice(b"<show>");
        out.extend_from_slice(show_str(show).as_bytes());
        out.extend_from_slice(b"</show>");
    }
    for (lang, text) in &p.status {
        out.extend_from_slice(b"<status");
        if let Some(l) = lang {
            out.extend_from_slice(b" xml:lang='");
            escape_attr(l, out);
            out.push(b'\'');
        }
        out.push(b'>');
        escape_text(text, out);
        out.extend_from_slice(b"</status>");
    }
    if p.priority != 0 {
        out.extend_from_slice(format!("<priority>{}</priority>", p.priority).as_bytes());
    }
    out.extend_from_slice(b"</presence>");
}

fn show_str(s: Show) -> &'static str {
    match s {
        Show::Away => "away",
        Show::Chat => "chat",
        Show::Dnd => "dnd",
        Show::Xa => "xa",
    }
}

/// show / status (with xml:lang) / priority of a `<presence/>` (bounded: framer caps, no
/// recursion). `available` is left to the caller (it is the stanza's type).
pub fn xmpp_presence(s: &Stanza) -> XmppPresence {
    let mut p = XmppPresence {
        available: true,
        ..XmppPresence::default()
    };
    // A stanza that cannot be read to its end keeps what was read before the fault.
    let _ = for_each_child(s, |c| match c.name {
        b"show" => {
            p.show = match c.text.trim() {
                "away" => Some(Show::Away),
                "chat" => Some(Show::Chat),
                "dnd" => Some(Show::Dnd),
                "xa" => Some(Show::Xa),
                _ => None,
            }
        }
        b"status" if p.status.len() < 16 => p.status.push((c.lang, c.text)),
        b"priority" => p.priority = c.text.trim().parse().unwrap_or(0),
        _ => {}
    });
    p
}

#[cfg(test)]
mod tests;
