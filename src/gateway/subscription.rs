//! SIP presence subscription dialogs (RFC 6665, `Event: presence` per RFC 3856, mapped to XMPP
//! by RFC 8048), sans-IO: methods take messages and `now` and return [`Event`]-like values —
//! requests to send (to be run through a [`ClientTransactions`]), responses to NOTIFY/SUBSCRIBE
//! requests, and what the XMPP side must hear.
//!
//! Choices (documented because RFC 6665 leaves them open):
//! - Refresh: the subscriber refreshes at `max(0.8·E, E − 60 s)` after a 2xx granting `E`
//!   seconds: late for long subscriptions (60 s margin covers Timer F, 32 s, plus a retry) and at
//!   80 % for short ones, so the margin is never under 20 % of the period.
//! - Refresh failures that may be transient (408, 500, 503, 504, Timer F, transport) are retried
//!   after `retry_base · 2ⁿ` up to `max_refresh_retries` times, then the subscription ends.
//! - NOTIFY `terminated` with `reason=timeout` or `deactivated` re-subscribes at once, `probation`
//!   or `giveup` after `retry-after` (RFC 6665 §4.1.3) — once; the allowance comes back after a
//!   refresh succeeds (the subscription then survived a full period). A re-subscription keeps the
//!   Call-ID and From tag and starts a new dialog (the notifier picks a new To tag).
//! - Notifier: answers SUBSCRIBE with 200, never 202 (RFC 6665 §4.2.1.1 and §8.3.1 deprecate
//!   202; our subscriber still accepts 202 as any 2xx), and sends the NOTIFY required at once
//!   (`pending` until the XMPP user answers).
//! - Only the first dialog of a forked SUBSCRIBE is kept; NOTIFYs of others get 481.
//! - Loose routing only (`;lr`); strict routers are not supported.
//!
//! [`ClientTransactions`]: crate::sip::transaction::ClientTransactions

use crate::gateway::errors::SipFailure;
use crate::sip::transaction::{response_to, MAGIC_COOKIE};
use crate::sip::{BuildError, HeaderName, Request, SipMessage};
use bytes::Bytes;
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::time::{Duration, Instant};

/// Media type of presence documents.
pub const PIDF: &str = "application/pidf+xml";

/// Where we send from: top Via and Contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalEndpoint {
    /// Via transport (`TLS`, `TCP`).
    pub transport: String,
    /// Via sent-by host.
    pub host: String,
    /// Via sent-by port.
    pub port: Option<u16>,
    /// Our Contact URI.
    pub contact: String,
}

/// A request to send through a client transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutRequest {
    /// The serialized request.
    pub bytes: Vec<u8>,
    /// Its top Via branch (key of the client transaction).
    pub branch: String,
    /// `SUBSCRIBE` or `NOTIFY`.
    pub method: &'static str,
    /// Its CSeq number.
    pub cseq: u32,
}

/// Why a subscription ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EndReason {
    /// We (the subscriber) unsubscribed, or the SIP subscriber sent Expires: 0.
    Unsubscribed,
    /// `reason=rejected` (authorization refused or withdrawn).
    Rejected,
    /// `reason=noresource`.
    NoResource,
    /// `reason=invariant`.
    Invariant,
    /// `reason=timeout`, or (notifier side) not refreshed in time.
    Timeout,
    /// (Notifier side) the XMPP user did not answer the `subscribe` within
    /// [`NotifierConfig::answer_timeout`]: ended with `reason=giveup` (RFC 6665 §4.1.3: the
    /// notifier "could not obtain authorization in a timely fashion").
    Unanswered,
    /// `reason=deactivated` a second time (re-subscribing was already tried).
    Deactivated,
    /// `reason=probation`/`giveup` a second time.
    GaveUp,
    /// Another or no reason in a `terminated` NOTIFY.
    Other(String),
    /// 481: the peer has no such dialog.
    DialogGone,
    /// No NOTIFY within 64·T1 of the 2xx (RFC 6665 §4.1.2.4).
    NoNotify,
    /// A SUBSCRIBE or NOTIFY failed (status, Timer F or transport).
    Failed(SipFailure),
    /// A request could not be serialized (a peer value such as a Route could not be copied).
    LocalError,
}

impl EndReason {
    fn from_notify(reason: Option<&str>) -> EndReason {
        let r = reason.unwrap_or("").trim();
        let is = |s: &str| r.eq_ignore_ascii_case(s);
        if is("rejected") {
            EndReason::Rejected
        } else if is("noresource") {
            EndReason::NoResource
        } else if is("invariant") {
            EndReason::Invariant
        } else if is("timeout") {
            EndReason::Timeout
        } else if is("deactivated") {
            EndReason::Deactivated
        } else if is("probation") || is("giveup") {
            EndReason::GaveUp
        } else {
            EndReason::Other(r.to_owned())
        }
    }
}

/// Subscriber settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscriberConfig {
    /// Expires we ask for, seconds.
    pub expires: u32,
    /// Refresh retries after transient failures before giving up.
    pub max_refresh_retries: u32,
    /// First retry delay; doubles each time.
    pub retry_base: Duration,
    /// T1 (the NOTIFY wait is 64·T1).
    pub t1: Duration,
}

impl Default for SubscriberConfig {
    fn default() -> Self {
        SubscriberConfig {
            expires: 3600,
            max_refresh_retries: 3,
            retry_base: Duration::from_secs(2),
            t1: Duration::from_millis(500),
        }
    }
}

/// Subscriber dialog state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscriberState {
    /// Nothing sent.
    Init,
    /// SUBSCRIBE sent, no 2xx nor NOTIFY yet.
    Subscribing,
    /// Accepted, authorization pending.
    Pending,
    /// Active.
    Active,
    /// Over.
    Terminated(EndReason),
}

/// What the subscriber asks its driver to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscriberEvent {
    /// Tell the XMPP user: `subscribed`.
    Subscribed,
    /// Tell the XMPP user: `unsubscribed` (the translator may map some reasons otherwise).
    Unsubscribed {
        /// Why.
        reason: EndReason,
    },
    /// A PIDF document to translate into XMPP presence.
    Presence(Bytes),
    /// Send this request (start a client transaction with its branch).
    Send(OutRequest),
    /// Send this response to the NOTIFY just handled (through its server transaction).
    Respond(Vec<u8>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Initial,
    Refresh,
    Unsubscribe,
}

/// The gateway's subscription to a SIP presentity on behalf of an XMPP user.
#[derive(Debug)]
pub struct Subscriber {
    cfg: SubscriberConfig,
    ep: LocalEndpoint,
    local_uri: String,
    remote_uri: String,
    call_id: String,
    local_tag: String,
    branch_prefix: String,
    target: String,
    remote_tag: Option<String>,
    route: Vec<String>,
    cseq: u32,
    remote_cseq: Option<u32>,
    outstanding: Option<(u32, Kind)>,
    state: SubscriberState,
    refresh_at: Option<Instant>,
    retry_at: Option<Instant>,
    resubscribe_at: Option<Instant>,
    notify_deadline: Option<Instant>,
    retries: u32,
    resubscribed: bool,
    unsubscribe_wanted: bool,
}

/// `max(0.8·E, E − 60 s)`.
pub fn refresh_delay(expires: u32) -> Duration {
    let e = u64::from(expires);
    Duration::from_secs((e * 4 / 5).max(e.saturating_sub(60)))
}

fn tag_of(m: &SipMessage, to: bool) -> Option<String> {
    let na = if to { m.to() } else { m.from() };
    na.ok().and_then(|n| n.tag().map(str::to_owned))
}

fn route_set(m: &SipMessage, reverse: bool) -> Vec<String> {
    let mut v: Vec<String> = m
        .header_values(HeaderName::RecordRoute)
        .filter_map(|r| std::str::from_utf8(r).ok().map(str::to_owned))
        .collect();
    if reverse {
        v.reverse();
    }
    v
}

fn contact_uri(m: &SipMessage) -> Option<String> {
    m.contacts()
        .next()
        .and_then(|c| c.ok())
        .map(|c| c.uri.to_owned())
}

fn respond(req: &SipMessage, code: u16, reason: &str) -> Option<Vec<u8>> {
    response_to(req, code, reason, None).ok()?.finish().ok()
}

impl Subscriber {
    /// A subscription from `local_uri` (the XMPP user's SIP address) to `remote_uri`.
    /// `call_id`, `local_tag` and `branch_prefix` should be random (see
    /// [`random_hex`](crate::sip::transaction::random_hex)); branches are
    /// `z9hG4bK{branch_prefix}.{cseq}`.
    pub fn new(
        local_uri: &str,
        remote_uri: &str,
        call_id: &str,
        local_tag: &str,
        branch_prefix: &str,
        ep: LocalEndpoint,
        cfg: SubscriberConfig,
    ) -> Self {
        Subscriber {
            cfg,
            ep,
            local_uri: local_uri.to_owned(),
            remote_uri: remote_uri.to_owned(),
            call_id: call_id.to_owned(),
            local_tag: local_tag.to_owned(),
            branch_prefix: branch_prefix.to_owned(),
            target: remote_uri.to_owned(),
            remote_tag: None,
            route: Vec::new(),
            cseq: 0,
            remote_cseq: None,
            outstanding: None,
            state: SubscriberState::Init,
            refresh_at: None,
            retry_at: None,
            resubscribe_at: None,
            notify_deadline: None,
            retries: 0,
            resubscribed: false,
            unsubscribe_wanted: false,
        }
    }

    /// Current state.
    pub fn state(&self) -> &SubscriberState {
        &self.state
    }

    /// The dialog's Call-ID (NOTIFYs are matched to their subscription by it).
    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    /// The dialog's remote tag, once known.
    pub fn remote_tag(&self) -> Option<&str> {
        self.remote_tag.as_deref()
    }

    fn build(&mut self, expires: u32) -> Result<OutRequest, BuildError> {
        self.cseq += 1;
        let branch = format!("{MAGIC_COOKIE}{}.{}", self.branch_prefix, self.cseq);
        let mut b = Request::builder("SUBSCRIBE", &self.target)
            .via(
                &self.ep.transport,
                &self.ep.host,
                self.ep.port,
                &branch,
                false,
            )
            .max_forwards(70);
        for r in &self.route {
            b = b.header(HeaderName::Route, r);
        }
        let bytes = b
            .from(None, &self.local_uri, Some(&self.local_tag))
            .to(None, &self.remote_uri, self.remote_tag.as_deref())
            .call_id(&self.call_id)
            .cseq(self.cseq, "SUBSCRIBE")
            .contact(&self.ep.contact)
            .header(HeaderName::Event, "presence")
            .header(HeaderName::Accept, PIDF)
            .expires(expires)
            .finish()?;
        Ok(OutRequest {
            bytes,
            branch,
            method: "SUBSCRIBE",
            cseq: self.cseq,
        })
    }

    fn send(&mut self, kind: Kind, out: &mut Vec<SubscriberEvent>) {
        let expires = if kind == Kind::Unsubscribe {
            0
        } else {
            self.cfg.expires
        };
        match self.build(expires) {
            Ok(r) => {
                self.outstanding = Some((r.cseq, kind));
                out.push(SubscriberEvent::Send(r));
            }
            Err(_) => self.end(EndReason::LocalError, out),
        }
    }

    fn end(&mut self, reason: EndReason, out: &mut Vec<SubscriberEvent>) {
        self.refresh_at = None;
        self.retry_at = None;
        self.resubscribe_at = None;
        self.notify_deadline = None;
        let tell = !matches!(self.state, SubscriberState::Terminated(_));
        self.state = SubscriberState::Terminated(reason.clone());
        if tell && reason != EndReason::Unsubscribed {
            out.push(SubscriberEvent::Unsubscribed { reason });
        }
    }

    /// Sends the initial SUBSCRIBE (only from `Init`).
    pub fn subscribe(&mut self, _now: Instant) -> Vec<SubscriberEvent> {
        let mut out = Vec::new();
        if self.state == SubscriberState::Init {
            self.state = SubscriberState::Subscribing;
            self.send(Kind::Initial, &mut out);
        }
        out
    }

    /// Ends the subscription: SUBSCRIBE Expires: 0 in the dialog (deferred until the dialog
    /// exists). No XMPP event: the XMPP user asked for it.
    pub fn unsubscribe(&mut self, _now: Instant) -> Vec<SubscriberEvent> {
        let mut out = Vec::new();
        if matches!(self.state, SubscriberState::Terminated(_)) {
            return out;
        }
        let has_dialog = self.remote_tag.is_some();
        self.end(EndReason::Unsubscribed, &mut out);
        if has_dialog {
            self.send(Kind::Unsubscribe, &mut out);
        } else if self.outstanding.is_some() {
            self.unsubscribe_wanted = true;
        }
        out
    }

    /// A final response to one of our SUBSCRIBEs (as matched by the client transaction).
    /// Responses to other requests than the outstanding one are ignored.
    pub fn on_response(&mut self, resp: &SipMessage, now: Instant) -> Vec<SubscriberEvent> {
        let Some(status) = resp.status().filter(|s| *s >= 200) else {
            return Vec::new();
        };
        let ours = resp.call_id() == Ok(self.call_id.as_str())
            && resp
                .cseq()
                .is_ok_and(|c| c.method == "SUBSCRIBE" && Some(c.seq) == self.cseq_outstanding());
        if !ours {
            return Vec::new();
        }
        if status < 300 {
            self.on_success(resp, now)
        } else {
            self.on_fail(SipFailure::Status(status), now)
        }
    }

    fn cseq_outstanding(&self) -> Option<u32> {
        self.outstanding.map(|(c, _)| c)
    }

    /// The outstanding SUBSCRIBE failed without a response (Timer F or transport).
    pub fn on_failure(&mut self, failure: SipFailure, now: Instant) -> Vec<SubscriberEvent> {
        if self.outstanding.is_none() {
            return Vec::new();
        }
        self.on_fail(failure, now)
    }

    fn on_success(&mut self, resp: &SipMessage, now: Instant) -> Vec<SubscriberEvent> {
        let mut out = Vec::new();
        let Some((_, kind)) = self.outstanding.take() else {
            return out;
        };
        let granted = resp.expires().unwrap_or(self.cfg.expires);
        match kind {
            Kind::Unsubscribe => {}
            Kind::Initial => {
                if self.remote_tag.is_none() {
                    self.remote_tag = tag_of(resp, true);
                    self.route = route_set(resp, true);
                    if let Some(c) = contact_uri(resp) {
                        self.target = c;
                    }
                }
                if self.unsubscribe_wanted {
                    self.unsubscribe_wanted = false;
                    if self.remote_tag.is_some() {
                        self.send(Kind::Unsubscribe, &mut out);
                    }
                    return out;
                }
                if self.state == SubscriberState::Subscribing {
                    self.state = SubscriberState::Pending;
                    self.notify_deadline = Some(now + self.cfg.t1.saturating_mul(64));
                }
                self.refresh_at = Some(now + refresh_delay(granted));
            }
            Kind::Refresh => {
                self.retries = 0;
                self.resubscribed = false;
                self.refresh_at = Some(now + refresh_delay(granted));
            }
        }
        out
    }

    fn on_fail(&mut self, f: SipFailure, now: Instant) -> Vec<SubscriberEvent> {
        let mut out = Vec::new();
        let Some((_, kind)) = self.outstanding.take() else {
            return out;
        };
        match kind {
            Kind::Unsubscribe => {}
            Kind::Initial => self.end(EndReason::Failed(f), &mut out),
            Kind::Refresh => {
                let transient = matches!(f, SipFailure::Timeout | SipFailure::Transport)
                    || matches!(f.status(), 408 | 500 | 503 | 504);
                if f.status() == 481 {
                    self.end(EndReason::DialogGone, &mut out);
                } else if transient && self.retries < self.cfg.max_refresh_retries {
                    let delay = self
                        .cfg
                        .retry_base
                        .saturating_mul(1 << self.retries.min(16));
                    self.retries += 1;
                    self.retry_at = Some(now + delay);
                } else {
                    self.end(EndReason::Failed(f), &mut out);
                }
            }
        }
        out
    }

    /// A NOTIFY (already past its server transaction). Always yields a `Respond` first.
    pub fn on_notify(&mut self, req: &SipMessage, now: Instant) -> Vec<SubscriberEvent> {
        let mut out = Vec::new();
        let reply = |code, reason, out: &mut Vec<SubscriberEvent>| {
            if let Some(r) = respond(req, code, reason) {
                out.push(SubscriberEvent::Respond(r));
            }
        };
        let from_tag = tag_of(req, false);
        let ours = req.call_id() == Ok(self.call_id.as_str())
            && tag_of(req, true).as_deref() == Some(self.local_tag.as_str())
            && from_tag.is_some()
            && (self.remote_tag.is_none() || self.remote_tag == from_tag)
            && self.state != SubscriberState::Init;
        if !ours {
            reply(481, "Subscription Does Not Exist", &mut out);
            return out;
        }
        if !req
            .event()
            .is_ok_and(|e| e.token.eq_ignore_ascii_case("presence"))
        {
            reply(489, "Bad Event", &mut out);
            return out;
        }
        let Ok(seq) = req.cseq().map(|c| c.seq) else {
            reply(400, "Bad CSeq", &mut out);
            return out;
        };
        if self.remote_cseq.is_some_and(|c| seq <= c) {
            reply(500, "CSeq Out of Order", &mut out);
            return out;
        }
        let Ok(ss) = req.subscription_state() else {
            reply(400, "Bad Subscription-State", &mut out);
            return out;
        };
        let (state, reason, ss_expires, retry_after) = (
            crate::gateway::presence::SubscriptionState::parse(ss.state),
            ss.reason.map(str::to_owned),
            ss.expires,
            ss.retry_after,
        );
        let Some(state) = state else {
            reply(400, "Unknown Subscription-State", &mut out);
            return out;
        };
        self.remote_cseq = Some(seq);
        reply(200, "OK", &mut out);
        if matches!(self.state, SubscriberState::Terminated(_)) {
            return out;
        }
        if self.remote_tag.is_none() {
            // NOTIFY before the 2xx creates the dialog (RFC 6665 §4.1.2.4); as the UAS of
            // this request, the route set is Record-Route in order (RFC 3261 §12.1.1).
            self.remote_tag = from_tag;
            self.route = route_set(req, false);
            if let Some(c) = contact_uri(req) {
                self.target = c;
            }
        }
        self.notify_deadline = None;
        use crate::gateway::presence::SubscriptionState as S;
        match state {
            S::Active | S::Pending => {
                if let Some(e) = ss_expires {
                    let at = now + refresh_delay(e);
                    if self.refresh_at.is_none_or(|r| at < r) && self.outstanding.is_none() {
                        self.refresh_at = Some(at);
                    }
                }
                if state == S::Active {
                    if self.state != SubscriberState::Active {
                        self.state = SubscriberState::Active;
                        out.push(SubscriberEvent::Subscribed);
                    }
                    let body = req.body();
                    if !body.is_empty() {
                        out.push(SubscriberEvent::Presence(body));
                    }
                } else {
                    self.state = SubscriberState::Pending;
                }
            }
            S::Terminated => {
                let r = EndReason::from_notify(reason.as_deref());
                let retry = match r {
                    EndReason::Timeout | EndReason::Deactivated => Some(0),
                    EndReason::GaveUp => Some(retry_after.unwrap_or(0)),
                    _ => None,
                };
                match retry {
                    Some(after) if !self.resubscribed => {
                        self.resubscribed = true;
                        self.remote_tag = None;
                        self.route.clear();
                        self.target = self.remote_uri.clone();
                        self.remote_cseq = None;
                        self.refresh_at = None;
                        self.retry_at = None;
                        if after == 0 {
                            self.state = SubscriberState::Subscribing;
                            self.send(Kind::Initial, &mut out);
                        } else {
                            self.state = SubscriberState::Pending;
                            self.resubscribe_at = Some(now + Duration::from_secs(u64::from(after)));
                        }
                    }
                    _ => self.end(r, &mut out),
                }
            }
        }
        out
    }

    /// The earliest timer.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.refresh_at,
            self.retry_at,
            self.resubscribe_at,
            self.notify_deadline,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Runs due timers: refresh, retry, re-subscribe, NOTIFY wait.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<SubscriberEvent> {
        let mut out = Vec::new();
        let due = |t: &mut Option<Instant>| t.is_some_and(|t| t <= now) && t.take().is_some();
        if due(&mut self.notify_deadline) {
            self.end(EndReason::NoNotify, &mut out);
        }
        if due(&mut self.resubscribe_at) {
            self.state = SubscriberState::Subscribing;
            self.send(Kind::Initial, &mut out);
        }
        let refresh = due(&mut self.refresh_at);
        let retry = due(&mut self.retry_at);
        if (refresh || retry)
            && self.outstanding.is_none()
            && !matches!(self.state, SubscriberState::Terminated(_))
        {
            self.send(Kind::Refresh, &mut out);
        }
        out
    }
}

/// Notifier settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotifierConfig {
    /// Expires when a SUBSCRIBE has none (RFC 3856 §6.4: 3600 for presence).
    pub default_expires: u32,
    /// Shorter non-zero requests get 423 with this Min-Expires.
    pub min_expires: u32,
    /// Longer requests are granted this.
    pub max_expires: u32,
    /// Dialogs per XMPP user (owner) at most.
    pub max_per_owner: usize,
    /// Dialogs in all at most.
    pub max_dialogs: usize,
    /// A dialog still `pending` this long after its first SUBSCRIBE ends (`giveup`), however
    /// often it is refreshed: an unanswered request must not hold state forever.
    pub answer_timeout: Duration,
}

impl Default for NotifierConfig {
    fn default() -> Self {
        NotifierConfig {
            default_expires: 3600,
            min_expires: 60,
            max_expires: 3600,
            max_per_owner: 64,
            max_dialogs: 65536,
            // RFC 3856's default presence subscription period: a watcher that refreshes at
            // least once gets its answer window, and no more.
            answer_timeout: Duration::from_secs(3600),
        }
    }
}

/// Why the notifier refused. Every variant names who is at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NotifierError {
    /// The SIP peer: this owner already has `max` dialogs (answered 403).
    TooManyForOwner {
        /// The bound.
        max: usize,
    },
    /// Our side: the table is full (answered 503).
    TableFull {
        /// The bound.
        max: usize,
    },
    /// The XMPP side or driver named a dialog that does not exist (any more).
    UnknownDialog,
}

impl fmt::Display for NotifierError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotifierError::TooManyForOwner { max } => {
                write!(f, "SIP peer exceeds {max} subscriptions to one user")
            }
            NotifierError::TableFull { max } => write!(f, "subscription table full ({max})"),
            NotifierError::UnknownDialog => f.write_str("no such subscription dialog"),
        }
    }
}

impl std::error::Error for NotifierError {}

/// A notifier dialog: Call-ID, the subscriber's tag, our tag.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DialogKey {
    /// Call-ID.
    pub call_id: String,
    /// The SIP subscriber's (From) tag.
    pub remote_tag: String,
    /// Our (To) tag.
    pub local_tag: String,
}

/// What the notifier asks its driver to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotifierEvent {
    /// Send this response to the SUBSCRIBE just handled.
    Respond(Vec<u8>),
    /// Send this NOTIFY (start a client transaction with its branch).
    Send(DialogKey, OutRequest),
    /// Ask the XMPP user (presence `subscribe` from the SIP user); answer with
    /// [`Notifiers::xmpp_answer`].
    AskXmpp(DialogKey),
    /// The dialog ended.
    Ended(DialogKey, EndReason),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NState {
    Pending,
    Active,
}

#[derive(Debug)]
struct NDialog {
    owner: String,
    /// Our From value for NOTIFY: the SUBSCRIBE's To plus our tag.
    local_hdr: String,
    /// Their From value, tag included: our To.
    remote_hdr: String,
    target: String,
    route: Vec<String>,
    event: String,
    cseq: u32,
    remote_cseq: u32,
    state: NState,
    /// When the subscription ends unless refreshed.
    expires_at: Instant,
    /// While pending: when it ends unanswered.
    answer_by: Option<Instant>,
    /// The dialog's timer (the earlier of the two above), keyed with `gen` in `expiry`.
    timer_at: Instant,
    gen: u64,
    pidf: Option<Bytes>,
}

/// Inbound SIP subscriptions to XMPP users of a partner domain.
#[derive(Debug)]
pub struct Notifiers {
    cfg: NotifierConfig,
    ep: LocalEndpoint,
    seed: String,
    n: u64,
    dialogs: HashMap<DialogKey, NDialog>,
    per_owner: HashMap<String, usize>,
    expiry: BTreeSet<(Instant, u64)>,
    by_gen: HashMap<u64, DialogKey>,
}

impl Notifiers {
    /// An empty table. `seed` (random, e.g. `random_hex(12)`) makes our tags and branches.
    pub fn new(cfg: NotifierConfig, ep: LocalEndpoint, seed: &str) -> Self {
        Notifiers {
            cfg,
            ep,
            seed: seed.to_owned(),
            n: 0,
            dialogs: HashMap::new(),
            per_owner: HashMap::new(),
            expiry: BTreeSet::new(),
            by_gen: HashMap::new(),
        }
    }

    /// Live dialogs.
    pub fn len(&self) -> usize {
        self.dialogs.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.dialogs.is_empty()
    }

    fn next(&mut self) -> u64 {
        self.n += 1;
        self.n
    }

    fn set_expiry(&mut self, key: &DialogKey, at: Instant) {
        if let Some(d) = self.dialogs.get_mut(key) {
            d.expires_at = at;
        }
        self.arm(key);
    }

    /// (Re)arms the dialog's timer at the earlier of its expiry and its answer deadline.
    fn arm(&mut self, key: &DialogKey) {
        let g = self.next();
        if let Some(d) = self.dialogs.get_mut(key) {
            self.expiry.remove(&(d.timer_at, d.gen));
            self.by_gen.remove(&d.gen);
            let at = d.answer_by.map_or(d.expires_at, |a| a.min(d.expires_at));
            d.timer_at = at;
            d.gen = g;
            self.expiry.insert((at, g));
            self.by_gen.insert(g, key.clone());
        }
    }

    /// Whether dialog `key` is live.
    pub fn contains(&self, key: &DialogKey) -> bool {
        self.dialogs.contains_key(key)
    }

    fn remove(&mut self, key: &DialogKey) -> Option<NDialog> {
        let d = self.dialogs.remove(key)?;
        self.expiry.remove(&(d.timer_at, d.gen));
        self.by_gen.remove(&d.gen);
        if let Some(c) = self.per_owner.get_mut(&d.owner) {
            *c -= 1;
            if *c == 0 {
                self.per_owner.remove(&d.owner);
            }
        }
        Some(d)
    }

    /// Builds a NOTIFY in dialog `key` with `Subscription-State: state_value`.
    fn notify(&mut self, key: &DialogKey, state_value: &str, out: &mut Vec<NotifierEvent>) {
        let n = self.next();
        let branch = format!("{MAGIC_COOKIE}{}.{n}", self.seed);
        let Some(d) = self.dialogs.get_mut(key) else {
            return;
        };
        d.cseq += 1;
        let mut b = Request::builder("NOTIFY", &d.target)
            .via(
                &self.ep.transport,
                &self.ep.host,
                self.ep.port,
                &branch,
                false,
            )
            .max_forwards(70);
        for r in &d.route {
            b = b.header(HeaderName::Route, r);
        }
        b = b
            .header(HeaderName::From, &d.local_hdr)
            .header(HeaderName::To, &d.remote_hdr)
            .call_id(&key.call_id)
            .cseq(d.cseq, "NOTIFY")
            .contact(&self.ep.contact)
            .header(HeaderName::Event, &d.event)
            .header(HeaderName::SubscriptionState, state_value);
        let built = match (&d.pidf, d.state, state_value.starts_with("active")) {
            (Some(p), NState::Active, true) => b.body(PIDF, p),
            _ => b.finish(),
        };
        if let Ok(bytes) = built {
            let cseq = d.cseq;
            out.push(NotifierEvent::Send(
                key.clone(),
                OutRequest {
                    bytes,
                    branch,
                    method: "NOTIFY",
                    cseq,
                },
            ));
        }
    }

    fn state_value(&self, key: &DialogKey, now: Instant) -> String {
        match self.dialogs.get(key) {
            Some(d) => {
                let left = d.expires_at.saturating_duration_since(now).as_secs();
                let s = if d.state == NState::Active {
                    "active"
                } else {
                    "pending"
                };
                format!("{s};expires={left}")
            }
            None => String::new(),
        }
    }

    fn terminate(
        &mut self,
        key: &DialogKey,
        reason: EndReason,
        param: Option<&str>,
        out: &mut Vec<NotifierEvent>,
    ) {
        let v = match param {
            Some(p) => format!("terminated;reason={p}"),
            None => "terminated".to_owned(),
        };
        self.notify(key, &v, out);
        if self.remove(key).is_some() {
            out.push(NotifierEvent::Ended(key.clone(), reason));
        }
    }

    /// A SUBSCRIBE (already past its server transaction) addressed to XMPP user `owner`.
    /// New dialog: 200 + NOTIFY pending + `AskXmpp`. In-dialog: refresh (200 + NOTIFY with the
    /// current state) or, with Expires: 0, 200 + NOTIFY terminated + `Ended(Unsubscribed)`.
    /// Refusals come back as a response in the events and, for bounds, as the error.
    pub fn on_subscribe(
        &mut self,
        req: &SipMessage,
        owner: &str,
        now: Instant,
    ) -> Result<Vec<NotifierEvent>, (NotifierError, Vec<NotifierEvent>)> {
        let mut out = Vec::new();
        let reply = |code, reason, tag: Option<&str>, extra: Option<u32>| {
            let b = response_to(req, code, reason, tag).ok()?;
            let b = match extra {
                Some(e) if code == 423 => b.header(HeaderName::MinExpires, &e.to_string()),
                Some(e) => b.expires(e),
                None => b,
            };
            b.finish().ok().map(NotifierEvent::Respond)
        };
        let event = match req.event() {
            Ok(e) if e.token.eq_ignore_ascii_case("presence") => {
                String::from_utf8_lossy(req.header(HeaderName::Event).unwrap_or(b"presence"))
                    .into_owned()
            }
            _ => {
                out.extend(reply(489, "Bad Event", None, None));
                return Ok(out);
            }
        };
        let expires = match req.expires() {
            Ok(e) => e,
            Err(crate::sip::ValueError::Missing) => self.cfg.default_expires,
            Err(_) => {
                out.extend(reply(400, "Bad Expires", None, None));
                return Ok(out);
            }
        };
        let (Ok(call_id), Some(from_tag), Ok(seq)) =
            (req.call_id(), tag_of(req, false), req.cseq().map(|c| c.seq))
        else {
            out.extend(reply(400, "Missing Dialog Identifiers", None, None));
            return Ok(out);
        };
        if expires != 0 && expires < self.cfg.min_expires {
            out.extend(reply(
                423,
                "Interval Too Brief",
                None,
                Some(self.cfg.min_expires),
            ));
            return Ok(out);
        }
        let granted = expires.min(self.cfg.max_expires);
        let until = now + Duration::from_secs(u64::from(granted));
        if let Some(to_tag) = tag_of(req, true) {
            let key = DialogKey {
                call_id: call_id.to_owned(),
                remote_tag: from_tag,
                local_tag: to_tag,
            };
            let Some(d) = self.dialogs.get_mut(&key) else {
                out.extend(reply(481, "Subscription Does Not Exist", None, None));
                return Ok(out);
            };
            if seq <= d.remote_cseq {
                out.extend(reply(500, "CSeq Out of Order", None, None));
                return Ok(out);
            }
            d.remote_cseq = seq;
            out.extend(reply(200, "OK", None, Some(granted)));
            if granted == 0 {
                self.terminate(&key, EndReason::Unsubscribed, None, &mut out);
            } else {
                self.set_expiry(&key, until);
                let v = self.state_value(&key, now);
                self.notify(&key, &v, &mut out);
            }
            return Ok(out);
        }
        if granted == 0 {
            // A fetch (RFC 6665 §4.4.3) needs the XMPP user's presence now; not supported:
            // accept and end at once without a body.
            out.extend(reply(200, "OK", None, Some(0)));
            return Ok(out);
        }
        if self.per_owner.get(owner).copied().unwrap_or(0) >= self.cfg.max_per_owner {
            out.extend(reply(403, "Too Many Subscriptions", None, None));
            let max = self.cfg.max_per_owner;
            return Err((NotifierError::TooManyForOwner { max }, out));
        }
        if self.dialogs.len() >= self.cfg.max_dialogs {
            out.extend(reply(503, "Service Unavailable", None, None));
            let max = self.cfg.max_dialogs;
            return Err((NotifierError::TableFull { max }, out));
        }
        let (Ok(to), Some(from)) = (
            std::str::from_utf8(req.header(HeaderName::To).unwrap_or_default()),
            req.header(HeaderName::From)
                .and_then(|f| std::str::from_utf8(f).ok()),
        ) else {
            out.extend(reply(400, "Bad From or To", None, None));
            return Ok(out);
        };
        let n = self.next();
        let local_tag = format!("{}{n}", self.seed);
        let key = DialogKey {
            call_id: call_id.to_owned(),
            remote_tag: from_tag,
            local_tag: local_tag.clone(),
        };
        let g = self.next();
        let answer_by = now + self.cfg.answer_timeout;
        self.dialogs.insert(
            key.clone(),
            NDialog {
                owner: owner.to_owned(),
                local_hdr: format!("{to};tag={local_tag}"),
                remote_hdr: from.to_owned(),
                target: contact_uri(req)
                    .unwrap_or_else(|| req.from().map(|f| f.uri.to_owned()).unwrap_or_default()),
                route: route_set(req, false),
                event,
                cseq: 0,
                remote_cseq: seq,
                state: NState::Pending,
                expires_at: until,
                answer_by: Some(answer_by),
                timer_at: answer_by.min(until),
                gen: g,
                pidf: None,
            },
        );
        self.expiry.insert((answer_by.min(until), g));
        self.by_gen.insert(g, key.clone());
        *self.per_owner.entry(owner.to_owned()).or_insert(0) += 1;
        // Contact is mandatory in a 2xx to SUBSCRIBE (RFC 6665 §4.2.1.1).
        if let Some(r) = response_to(req, 200, "OK", Some(&local_tag))
            .ok()
            .and_then(|b| b.contact(&self.ep.contact).expires(granted).finish().ok())
        {
            out.push(NotifierEvent::Respond(r));
        }
        let v = self.state_value(&key, now);
        self.notify(&key, &v, &mut out);
        out.push(NotifierEvent::AskXmpp(key));
        Ok(out)
    }

    /// The XMPP user answered: `subscribed` (true) → active + NOTIFY with the last presence;
    /// `unsubscribed` (false) → NOTIFY terminated;reason=rejected and the dialog ends.
    pub fn xmpp_answer(
        &mut self,
        key: &DialogKey,
        subscribed: bool,
        now: Instant,
    ) -> Result<Vec<NotifierEvent>, NotifierError> {
        let d = self
            .dialogs
            .get_mut(key)
            .ok_or(NotifierError::UnknownDialog)?;
        let mut out = Vec::new();
        if subscribed {
            d.state = NState::Active;
            if d.answer_by.take().is_some() {
                self.arm(key);
            }
            let v = self.state_value(key, now);
            self.notify(key, &v, &mut out);
        } else {
            self.terminate(key, EndReason::Rejected, Some("rejected"), &mut out);
        }
        Ok(out)
    }

    /// The XMPP user's presence, as PIDF: remembered for every dialog of `owner`, and sent in
    /// a NOTIFY on the active ones.
    pub fn on_presence(&mut self, owner: &str, pidf: Bytes, now: Instant) -> Vec<NotifierEvent> {
        let mut keys: Vec<DialogKey> = Vec::new();
        for (k, d) in self.dialogs.iter_mut().filter(|(_, d)| d.owner == owner) {
            d.pidf = Some(pidf.clone());
            if d.state == NState::Active {
                keys.push(k.clone());
            }
        }
        let mut out = Vec::new();
        for k in keys {
            let v = self.state_value(&k, now);
            self.notify(&k, &v, &mut out);
        }
        out
    }

    /// A NOTIFY failed: on 481, Timer F or a transport failure the subscription is removed
    /// (RFC 6665 §4.2.2); other failures leave it.
    pub fn on_notify_failure(&mut self, key: &DialogKey, f: SipFailure) -> Vec<NotifierEvent> {
        let gone = matches!(f, SipFailure::Timeout | SipFailure::Transport) || f.status() == 481;
        if gone && self.remove(key).is_some() {
            return vec![NotifierEvent::Ended(key.clone(), EndReason::Failed(f))];
        }
        Vec::new()
    }

    /// Earliest subscription expiry.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.expiry.first().map(|(t, _)| *t)
    }

    /// Ends subscriptions not refreshed in time (NOTIFY terminated;reason=timeout) and those
    /// the XMPP user left unanswered for `answer_timeout` (NOTIFY terminated;reason=giveup).
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<NotifierEvent> {
        let mut out = Vec::new();
        while let Some(&(t, g)) = self.expiry.first() {
            if t > now {
                break;
            }
            let Some(key) = self.by_gen.get(&g).cloned() else {
                self.expiry.pop_first();
                continue;
            };
            let unanswered = self
                .dialogs
                .get(&key)
                .is_some_and(|d| d.expires_at > now && d.answer_by.is_some_and(|a| a <= now));
            if unanswered {
                self.terminate(&key, EndReason::Unanswered, Some("giveup"), &mut out);
            } else {
                self.terminate(&key, EndReason::Timeout, Some("timeout"), &mut out);
            }
            // `terminate` removed the dialog and its timer; a dialog that vanished without
            // (no NOTIFY could be built) must not leave the timer behind.
            if self.expiry.first() == Some(&(t, g)) {
                self.expiry.pop_first();
                self.by_gen.remove(&g);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::presence::{pidf_from_presence, XmppPresence};

    fn ep() -> LocalEndpoint {
        LocalEndpoint {
            transport: "TLS".into(),
            host: "gw.x.example".into(),
            port: Some(5061),
            contact: "sip:gw.x.example;transport=tls".into(),
        }
    }

    fn parse(b: &[u8]) -> SipMessage {
        SipMessage::parse(Bytes::copy_from_slice(b)).unwrap()
    }

    fn sent(ev: &[SubscriberEvent]) -> SipMessage {
        ev.iter()
            .find_map(|e| match e {
                SubscriberEvent::Send(r) => Some(parse(&r.bytes)),
                _ => None,
            })
            .expect("a request was sent")
    }

    fn responded(ev: &[SubscriberEvent]) -> u16 {
        ev.iter()
            .find_map(|e| match e {
                SubscriberEvent::Respond(r) => parse(r).status(),
                _ => None,
            })
            .expect("a response")
    }

    /// The presentity's answer to `req`, with its To tag, Expires and a Record-Route pair.
    fn answer(req: &SipMessage, code: u16, expires: u32) -> SipMessage {
        let b = response_to(req, code, "X", Some("srv"))
            .unwrap()
            .header(HeaderName::RecordRoute, "<sip:p1.example;lr>")
            .header(HeaderName::RecordRoute, "<sip:p2.example;lr>")
            .contact("sip:juliet@ua.example")
            .expires(expires);
        parse(&b.finish().unwrap())
    }

    /// A NOTIFY from the presentity in our dialog.
    fn notify(seq: u32, state: &str, body: Option<&str>) -> SipMessage {
        let b = Request::builder("NOTIFY", "sip:gw.x.example;transport=tls")
            .via("TLS", "ua.example", None, &format!("z9hG4bKn{seq}"), false)
            .max_forwards(70)
            .from(None, "sip:juliet@s.example", Some("srv"))
            .to(None, "sip:romeo@x.example", Some("ltag"))
            .call_id("cid1")
            .cseq(seq, "NOTIFY")
            .contact("sip:juliet@ua.example")
            .header(HeaderName::Event, "presence")
            .header(HeaderName::SubscriptionState, state);
        parse(&match body {
            Some(x) => b.body(PIDF, x.as_bytes()).unwrap(),
            None => b.finish().unwrap(),
        })
    }

    fn subscriber() -> Subscriber {
        Subscriber::new(
            "sip:romeo@x.example",
            "sip:juliet@s.example",
            "cid1",
            "ltag",
            "bp",
            ep(),
            SubscriberConfig::default(),
        )
    }

    /// Subscribe, get 200 (Expires 3600) and NOTIFY active: returns the subscriber and t0.
    fn active() -> (Subscriber, Instant, SipMessage) {
        let t0 = Instant::now();
        let mut s = subscriber();
        let sub = sent(&s.subscribe(t0));
        assert!(s.on_response(&answer(&sub, 200, 3600), t0).is_empty());
        let ev = s.on_notify(&notify(1, "active;expires=3600", None), t0);
        assert_eq!(ev[1], SubscriberEvent::Subscribed);
        (s, t0, sub)
    }

    #[test]
    fn subscribe_2xx_then_notify_active_announces_subscribed_and_presence() {
        let t0 = Instant::now();
        let mut s = subscriber();
        // Gateway → SUBSCRIBE.
        let sub = sent(&s.subscribe(t0));
        assert_eq!(s.state(), &SubscriberState::Subscribing);
        assert_eq!(sub.method(), Some("SUBSCRIBE"));
        assert_eq!(sub.expires(), Ok(3600));
        assert_eq!(sub.event().unwrap().token, "presence");
        assert_eq!(sub.to().unwrap().tag(), None);
        // Presentity → 200: dialog set, pending until a NOTIFY.
        assert!(s.on_response(&answer(&sub, 200, 600), t0).is_empty());
        assert_eq!(s.state(), &SubscriberState::Pending);
        assert_eq!(s.remote_tag(), Some("srv"));
        // Presentity → NOTIFY active with a PIDF body.
        let pidf = pidf_from_presence("sip:juliet@s.example", &XmppPresence::default(), "t");
        let ev = s.on_notify(&notify(1, "active;expires=600", Some(&pidf)), t0);
        assert_eq!(responded(&ev), 200);
        assert_eq!(ev[1], SubscriberEvent::Subscribed);
        assert_eq!(ev[2], SubscriberEvent::Presence(Bytes::from(pidf)));
        assert_eq!(s.state(), &SubscriberState::Active);
        // A second active NOTIFY is not re-announced.
        let ev = s.on_notify(&notify(2, "active;expires=600", None), t0);
        assert_eq!(ev.len(), 1);
    }

    #[test]
    fn notify_before_the_2xx_creates_the_dialog() {
        let t0 = Instant::now();
        let mut s = subscriber();
        let sub = sent(&s.subscribe(t0));
        let ev = s.on_notify(&notify(1, "pending;expires=3600", None), t0);
        assert_eq!(responded(&ev), 200);
        assert_eq!(s.state(), &SubscriberState::Pending);
        assert_eq!(s.remote_tag(), Some("srv"));
        s.on_response(&answer(&sub, 200, 3600), t0);
        let ev = s.on_notify(&notify(2, "active", None), t0);
        assert_eq!(ev[1], SubscriberEvent::Subscribed);
    }

    #[test]
    fn refresh_is_sent_60_s_before_expiry_in_dialog_with_reversed_route() {
        let (mut s, t0, sub) = active();
        let at = t0 + Duration::from_secs(3540);
        assert_eq!(s.poll_timeout(), Some(at));
        assert!(s.handle_timeout(at - Duration::from_millis(1)).is_empty());
        let ev = s.handle_timeout(at);
        assert_eq!(ev.len(), 1, "refresh is not visible to XMPP");
        let r = sent(&ev);
        assert_eq!(r.request_uri(), Some("sip:juliet@ua.example"));
        assert_eq!(r.call_id(), Ok("cid1"));
        assert_eq!(r.from().unwrap().tag(), Some("ltag"));
        assert_eq!(r.to().unwrap().tag(), Some("srv"));
        assert_eq!(r.cseq().unwrap().seq, sub.cseq().unwrap().seq + 1);
        let routes: Vec<_> = r.routes().map(|x| x.unwrap().uri.to_owned()).collect();
        assert_eq!(routes, ["sip:p2.example;lr", "sip:p1.example;lr"]);
        assert!(s.on_response(&answer(&r, 200, 3600), at).is_empty());
        assert_eq!(s.poll_timeout(), Some(at + Duration::from_secs(3540)));
        // Short periods refresh at 80 %.
        assert_eq!(refresh_delay(100), Duration::from_secs(80));
    }

    #[test]
    fn failing_refresh_retries_with_backoff_then_terminates() {
        let (mut s, t0, _) = active();
        let mut now = t0 + Duration::from_secs(3540);
        let mut r = sent(&s.handle_timeout(now));
        // 503, Timer F, 408: retried after 2, 4, 8 s.
        let fails = [Some(503), None, Some(408)];
        for (i, f) in fails.into_iter().enumerate() {
            let ev = match f {
                Some(code) => s.on_response(&answer(&r, code, 0), now),
                None => s.on_failure(SipFailure::Timeout, now),
            };
            assert!(ev.is_empty());
            let wait = Duration::from_secs(2 << i);
            assert_eq!(s.poll_timeout(), Some(now + wait));
            now += wait;
            r = sent(&s.handle_timeout(now));
        }
        let ev = s.on_response(&answer(&r, 503, 0), now);
        let reason = EndReason::Failed(SipFailure::Status(503));
        assert_eq!(
            ev,
            vec![SubscriberEvent::Unsubscribed {
                reason: reason.clone()
            }]
        );
        assert_eq!(s.state(), &SubscriberState::Terminated(reason));
        assert_eq!(s.poll_timeout(), None);
    }

    #[test]
    fn refresh_481_terminates_as_dialog_gone() {
        let (mut s, t0, _) = active();
        let now = t0 + Duration::from_secs(3540);
        let r = sent(&s.handle_timeout(now));
        let ev = s.on_response(&answer(&r, 481, 0), now);
        assert_eq!(
            ev,
            vec![SubscriberEvent::Unsubscribed {
                reason: EndReason::DialogGone
            }]
        );
    }

    #[test]
    fn notify_terminated_rejected_ends_with_the_reason() {
        let (mut s, t0, _) = active();
        let ev = s.on_notify(&notify(2, "terminated;reason=rejected", None), t0);
        assert_eq!(responded(&ev), 200);
        assert_eq!(
            ev[1],
            SubscriberEvent::Unsubscribed {
                reason: EndReason::Rejected
            }
        );
        assert_eq!(s.poll_timeout(), None);
    }

    #[test]
    fn notify_terminated_timeout_resubscribes_once() {
        let (mut s, t0, _) = active();
        let ev = s.on_notify(&notify(2, "terminated;reason=timeout", None), t0);
        let r = sent(&ev);
        assert_eq!(ev.len(), 2, "200 + new SUBSCRIBE, nothing to XMPP");
        assert_eq!(r.to().unwrap().tag(), None, "a new dialog");
        assert_eq!(r.request_uri(), Some("sip:juliet@s.example"));
        assert_eq!(s.state(), &SubscriberState::Subscribing);
        s.on_response(&answer(&r, 200, 3600), t0);
        s.on_notify(&notify(1, "active", None), t0);
        // The second timeout in a row ends it.
        let ev = s.on_notify(&notify(2, "terminated;reason=timeout", None), t0);
        assert_eq!(
            ev[1],
            SubscriberEvent::Unsubscribed {
                reason: EndReason::Timeout
            }
        );
    }

    #[test]
    fn unsubscribe_sends_expires_zero_silently() {
        let (mut s, t0, _) = active();
        let ev = s.unsubscribe(t0);
        assert_eq!(ev.len(), 1);
        let r = sent(&ev);
        assert_eq!(r.expires(), Ok(0));
        assert_eq!(r.to().unwrap().tag(), Some("srv"));
        assert_eq!(
            s.state(),
            &SubscriberState::Terminated(EndReason::Unsubscribed)
        );
        // The final NOTIFY is still answered 200, nothing else.
        let ev = s.on_notify(&notify(2, "terminated", None), t0);
        assert_eq!(ev.len(), 1);
        assert_eq!(responded(&ev), 200);
    }

    #[test]
    fn initial_failure_and_missing_notify_terminate() {
        let t0 = Instant::now();
        let mut s = subscriber();
        let sub = sent(&s.subscribe(t0));
        let ev = s.on_response(&answer(&sub, 404, 0), t0);
        let reason = EndReason::Failed(SipFailure::Status(404));
        assert_eq!(ev, vec![SubscriberEvent::Unsubscribed { reason }]);

        let mut s = subscriber();
        let sub = sent(&s.subscribe(t0));
        s.on_response(&answer(&sub, 202, 3600), t0);
        let f = t0 + Duration::from_secs(32);
        assert_eq!(s.poll_timeout(), Some(f));
        let ev = s.handle_timeout(f);
        assert_eq!(
            ev,
            vec![SubscriberEvent::Unsubscribed {
                reason: EndReason::NoNotify
            }]
        );
    }

    #[test]
    fn foreign_or_out_of_order_notify_is_refused() {
        let (mut s, t0, _) = active();
        let mut n = notify(5, "active", None).bytes().to_vec();
        let txt = String::from_utf8(n.clone())
            .unwrap()
            .replace("tag=srv", "tag=other");
        assert_eq!(responded(&s.on_notify(&parse(txt.as_bytes()), t0)), 481);
        n = notify(1, "active", None).bytes().to_vec();
        assert_eq!(responded(&s.on_notify(&parse(&n), t0)), 500);
    }

    // ---- notifier side ----

    fn sip_subscribe(seq: u32, to_tag: Option<&str>, expires: u32) -> SipMessage {
        parse(
            &Request::builder("SUBSCRIBE", "sip:romeo@x.example")
                .via("TLS", "ua.example", None, &format!("z9hG4bKs{seq}"), false)
                .max_forwards(70)
                .header(HeaderName::RecordRoute, "<sip:p1.example;lr>")
                .from(None, "sip:juliet@s.example", Some("jt"))
                .to(None, "sip:romeo@x.example", to_tag)
                .call_id("scid")
                .cseq(seq, "SUBSCRIBE")
                .contact("sip:juliet@ua.example")
                .header(HeaderName::Event, "presence")
                .expires(expires)
                .finish()
                .unwrap(),
        )
    }

    fn notifiers() -> Notifiers {
        Notifiers::new(NotifierConfig::default(), ep(), "nt")
    }

    fn nsent(ev: &[NotifierEvent]) -> Vec<SipMessage> {
        ev.iter()
            .filter_map(|e| match e {
                NotifierEvent::Send(_, r) => Some(parse(&r.bytes)),
                _ => None,
            })
            .collect()
    }

    fn nresp(ev: &[NotifierEvent]) -> SipMessage {
        ev.iter()
            .find_map(|e| match e {
                NotifierEvent::Respond(r) => Some(parse(r)),
                _ => None,
            })
            .expect("a response")
    }

    fn state_of(m: &SipMessage) -> String {
        String::from_utf8(m.header(HeaderName::SubscriptionState).unwrap().to_vec()).unwrap()
    }

    /// SIP user subscribes to romeo: 200, NOTIFY pending, AskXmpp.
    fn pending(n: &mut Notifiers, t0: Instant) -> (DialogKey, String) {
        let ev = n
            .on_subscribe(&sip_subscribe(1, None, 600), "romeo@x.example", t0)
            .unwrap();
        let ok = nresp(&ev);
        assert_eq!(ok.status(), Some(200), "200, not the deprecated 202");
        assert_eq!(ok.expires(), Ok(600));
        let tag = ok.to().unwrap().tag().unwrap().to_owned();
        let notes = nsent(&ev);
        assert_eq!(state_of(&notes[0]), "pending;expires=600");
        assert_eq!(notes[0].request_uri(), Some("sip:juliet@ua.example"));
        assert_eq!(notes[0].from().unwrap().tag(), Some(tag.as_str()));
        assert_eq!(notes[0].to().unwrap().tag(), Some("jt"));
        let NotifierEvent::AskXmpp(key) = ev.last().unwrap().clone() else {
            panic!("XMPP is asked")
        };
        (key, tag)
    }

    #[test]
    fn sip_subscribe_then_xmpp_subscribed_sends_notify_active_with_last_presence() {
        let mut n = notifiers();
        let t0 = Instant::now();
        let (key, _) = pending(&mut n, t0);
        let pidf = pidf_from_presence("sip:romeo@x.example", &XmppPresence::default(), "r");
        // Presence while pending: remembered, not sent.
        assert!(n
            .on_presence("romeo@x.example", Bytes::from(pidf.clone()), t0)
            .is_empty());
        let t1 = t0 + Duration::from_secs(10);
        let ev = n.xmpp_answer(&key, true, t1).unwrap();
        let notes = nsent(&ev);
        assert_eq!(state_of(&notes[0]), "active;expires=590");
        assert_eq!(&notes[0].body()[..], pidf.as_bytes());
        assert_eq!(notes[0].cseq().unwrap().seq, 2);
        // Later presence goes out at once.
        let ev = n.on_presence("romeo@x.example", Bytes::from_static(b"<p/>"), t1);
        assert_eq!(&nsent(&ev)[0].body()[..], b"<p/>");
    }

    #[test]
    fn xmpp_unsubscribed_sends_notify_terminated_rejected() {
        let mut n = notifiers();
        let t0 = Instant::now();
        let (key, _) = pending(&mut n, t0);
        let ev = n.xmpp_answer(&key, false, t0).unwrap();
        assert_eq!(state_of(&nsent(&ev)[0]), "terminated;reason=rejected");
        assert_eq!(
            ev.last(),
            Some(&NotifierEvent::Ended(key.clone(), EndReason::Rejected))
        );
        assert!(n.is_empty());
        assert_eq!(
            n.xmpp_answer(&key, true, t0),
            Err(NotifierError::UnknownDialog)
        );
    }

    #[test]
    fn refresh_extends_and_expiry_without_refresh_times_out() {
        let mut n = notifiers();
        let t0 = Instant::now();
        let (key, tag) = pending(&mut n, t0);
        let t1 = t0 + Duration::from_secs(500);
        let ev = n
            .on_subscribe(&sip_subscribe(2, Some(&tag), 600), "romeo@x.example", t1)
            .unwrap();
        assert_eq!(nresp(&ev).status(), Some(200));
        assert_eq!(state_of(&nsent(&ev)[0]), "pending;expires=600");
        let end = t1 + Duration::from_secs(600);
        assert_eq!(n.poll_timeout(), Some(end));
        assert!(n.handle_timeout(end - Duration::from_millis(1)).is_empty());
        let ev = n.handle_timeout(end);
        assert_eq!(state_of(&nsent(&ev)[0]), "terminated;reason=timeout");
        assert_eq!(
            ev.last(),
            Some(&NotifierEvent::Ended(key, EndReason::Timeout))
        );
        assert!(n.is_empty());
    }

    fn short_answer() -> Notifiers {
        let cfg = NotifierConfig {
            answer_timeout: Duration::from_secs(300),
            ..NotifierConfig::default()
        };
        Notifiers::new(cfg, ep(), "nt")
    }

    #[test]
    fn unanswered_pending_subscription_gives_up_despite_refreshes() {
        let mut n = short_answer();
        let t0 = Instant::now();
        let (key, tag) = pending(&mut n, t0);
        let answer_by = t0 + Duration::from_secs(300);
        assert_eq!(n.poll_timeout(), Some(answer_by));
        // A refresh extends the subscription, not the wait for an answer.
        let t1 = t0 + Duration::from_secs(200);
        let ev = n
            .on_subscribe(&sip_subscribe(2, Some(&tag), 600), "romeo@x.example", t1)
            .unwrap();
        assert_eq!(nresp(&ev).status(), Some(200));
        assert_eq!(n.poll_timeout(), Some(answer_by));
        assert!(n
            .handle_timeout(answer_by - Duration::from_millis(1))
            .is_empty());
        let ev = n.handle_timeout(answer_by);
        assert_eq!(state_of(&nsent(&ev)[0]), "terminated;reason=giveup");
        assert_eq!(
            ev.last(),
            Some(&NotifierEvent::Ended(key, EndReason::Unanswered))
        );
        assert!(n.is_empty());
        assert_eq!(n.poll_timeout(), None);
    }

    #[test]
    fn answered_subscription_outlives_the_answer_timeout() {
        let mut n = short_answer();
        let t0 = Instant::now();
        let (key, _) = pending(&mut n, t0);
        n.xmpp_answer(&key, true, t0 + Duration::from_secs(10))
            .unwrap();
        let end = t0 + Duration::from_secs(600);
        assert_eq!(n.poll_timeout(), Some(end));
        assert!(n.handle_timeout(t0 + Duration::from_secs(301)).is_empty());
        assert!(n.contains(&key));
        let ev = n.handle_timeout(end);
        assert_eq!(state_of(&nsent(&ev)[0]), "terminated;reason=timeout");
        assert!(!n.contains(&key));
    }

    #[test]
    fn pending_subscription_not_refreshed_times_out_before_its_answer_deadline() {
        let cfg = NotifierConfig {
            answer_timeout: Duration::from_secs(7200),
            ..NotifierConfig::default()
        };
        let mut n = Notifiers::new(cfg, ep(), "nt");
        let t0 = Instant::now();
        let (key, _) = pending(&mut n, t0);
        let end = t0 + Duration::from_secs(600);
        assert_eq!(n.poll_timeout(), Some(end));
        let ev = n.handle_timeout(end);
        assert_eq!(state_of(&nsent(&ev)[0]), "terminated;reason=timeout");
        assert_eq!(
            ev.last(),
            Some(&NotifierEvent::Ended(key, EndReason::Timeout))
        );
    }

    #[test]
    fn subscribe_expires_zero_ends_the_dialog() {
        let mut n = notifiers();
        let t0 = Instant::now();
        let (key, tag) = pending(&mut n, t0);
        let ev = n
            .on_subscribe(&sip_subscribe(2, Some(&tag), 0), "romeo@x.example", t0)
            .unwrap();
        assert_eq!(nresp(&ev).expires(), Ok(0));
        assert_eq!(state_of(&nsent(&ev)[0]), "terminated");
        assert_eq!(
            ev.last(),
            Some(&NotifierEvent::Ended(key, EndReason::Unsubscribed))
        );
        // The dialog is gone: another refresh gets 481.
        let ev = n
            .on_subscribe(&sip_subscribe(3, Some(&tag), 600), "romeo@x.example", t0)
            .unwrap();
        assert_eq!(nresp(&ev).status(), Some(481));
    }

    #[test]
    fn per_owner_bound_and_too_brief_interval_are_refused() {
        let cfg = NotifierConfig {
            max_per_owner: 1,
            ..NotifierConfig::default()
        };
        let mut n = Notifiers::new(cfg, ep(), "nt");
        let t0 = Instant::now();
        pending(&mut n, t0);
        let Err((e, ev)) = n.on_subscribe(&sip_subscribe(1, None, 600), "romeo@x.example", t0)
        else {
            panic!("bounded")
        };
        assert_eq!(e, NotifierError::TooManyForOwner { max: 1 });
        assert_eq!(nresp(&ev).status(), Some(403));
        // Another owner is fine; a 10 s interval is too brief.
        let ev = n
            .on_subscribe(&sip_subscribe(1, None, 10), "benvolio@x.example", t0)
            .unwrap();
        let r = nresp(&ev);
        assert_eq!(r.status(), Some(423));
        assert_eq!(r.header(HeaderName::MinExpires), Some(&b"60"[..]));
    }

    #[test]
    fn notify_481_or_timeout_removes_the_subscription() {
        let mut n = notifiers();
        let t0 = Instant::now();
        let (key, _) = pending(&mut n, t0);
        assert!(n
            .on_notify_failure(&key, SipFailure::Status(500))
            .is_empty());
        let ev = n.on_notify_failure(&key, SipFailure::Timeout);
        assert_eq!(
            ev,
            vec![NotifierEvent::Ended(
                key,
                EndReason::Failed(SipFailure::Timeout)
            )]
        );
        assert!(n.is_empty());
    }
}
