//! The initiating side of an S2S stream we open to a federated domain.
//!
//! header → features → STARTTLS (driver handshakes) → header → features → SASL EXTERNAL (restart) or
//! dialback (`db:result`) → authenticated; stanzas are written only after that. A stream opened for
//! key verification only (we are a receiving server asking an authoritative server) sends its
//! `db:verify` requests once negotiation allows and closes when all are answered.

use std::collections::VecDeque;
use std::time::Instant;

use quick_xml::events::Event as QEvent;
use rustls_pki_types::CertificateDer;
use smallvec::SmallVec;

use super::inbound::{base64_encode, dialback_allowed, PhaseLimits};
use super::wire::{self, DbElement};
use super::{AuthMethod, CloseReason, Deadlines, Due, StreamPolicy, StreamTimeouts};
use crate::config::{Negotiation, PartnerPolicy};
use crate::xml::{Event as XmlEvent, Framer, Stanza, StanzaKind, StreamHeader};
use crate::xmpp::error::{StanzaCondition, StreamCondition};
use crate::xmpp::jid;

/// Why the stream was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Authenticate as our domain and carry stanzas.
    Deliver,
    /// Only ask the authoritative server about dialback keys (no authentication of our own).
    VerifyOnly,
}

/// A dialback key to verify with the remote (authoritative) server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyRequest {
    /// The domain that presented the key to us (the remote domain of this stream).
    pub originating: String,
    /// Our domain it addressed.
    pub receiving: String,
    /// Our stream id on the inbound stream where the key was presented.
    pub stream_id: String,
    /// The key.
    pub key: String,
}

/// What the driver must do or know.
#[derive(Debug)]
pub enum OutboundEvent {
    /// Flush the output, run the TLS client handshake (SNI = remote domain), then call
    /// [`OutboundStream::tls_established`].
    StartTls,
    /// We are authenticated to the remote domain; stanzas may be sent.
    Authenticated(AuthMethod),
    /// The authoritative server answered one of our verify requests.
    VerifyAnswer {
        /// The request answered.
        request: VerifyRequest,
        /// `Ok(valid)` or the error it returned.
        answer: Result<bool, StanzaCondition>,
    },
    /// The stream is over; flush the output and close the connection.
    Closed(CloseReason),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    AwaitHeader,
    AwaitFeatures,
    AwaitProceed,
    TlsHandshake,
    AwaitSasl,
    AwaitDialback,
    Ready,
    Closed,
}

/// An outbound S2S stream.
pub struct OutboundStream {
    framer: Framer,
    limits: PhaseLimits,
    state: State,
    purpose: Purpose,
    out: Vec<u8>,
    events: VecDeque<OutboundEvent>,
    deadlines: Deadlines,
    local: String,
    remote: String,
    policy: PartnerPolicy,
    tls_active: bool,
    peer_chain: Vec<CertificateDer<'static>>,
    remote_stream_id: Option<String>,
    header_db_ns: bool,
    sasl_tried: bool,
    authenticated: bool,
    verify_queue: SmallVec<[VerifyRequest; 1]>,
    verify_sent: SmallVec<[VerifyRequest; 1]>,
}

impl OutboundStream {
    /// A stream from our `local` domain to `remote` under `policy`; `tls_active` when the
    /// connection is direct TLS (XEP-0368).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        local: String,
        remote: String,
        policy: PartnerPolicy,
        purpose: Purpose,
        tls_active: bool,
        limits: PhaseLimits,
        timeouts: StreamTimeouts,
        now: Instant,
    ) -> Self {
        let mut deadlines = Deadlines::new(timeouts, now);
        deadlines.keepalive = policy.keepalive;
        OutboundStream {
            framer: Framer::new(limits.before_auth),
            limits,
            state: State::Idle,
            purpose,
            out: Vec::new(),
            events: VecDeque::new(),
            deadlines,
            local,
            remote,
            policy,
            tls_active,
            peer_chain: Vec::new(),
            remote_stream_id: None,
            header_db_ns: false,
            sasl_tried: false,
            authenticated: false,
            verify_queue: SmallVec::new(),
            verify_sent: SmallVec::new(),
        }
    }

    /// The connection is up: send our stream header.
    pub fn start(&mut self, now: Instant) {
        self.deadlines.last_rx = now;
        self.send_header();
    }

    fn send_header(&mut self) {
        wire::stream_header(&mut self.out, Some(&self.local), Some(&self.remote), None);
        self.state = State::AwaitHeader;
    }

    /// Bytes to send, moved into `buf` (cleared first).
    pub fn take_output(&mut self, buf: &mut Vec<u8>, now: Instant) {
        buf.clear();
        std::mem::swap(buf, &mut self.out);
        if !buf.is_empty() {
            self.deadlines.last_tx = now;
        }
    }

    /// Whether there are bytes to send.
    pub fn has_output(&self) -> bool {
        !self.out.is_empty()
    }

    /// The next event for the driver.
    pub fn poll_event(&mut self) -> Option<OutboundEvent> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        (self.state != State::Closed).then(|| self.deadlines.next())
    }

    /// Whether stanzas may be written.
    pub fn is_ready(&self) -> bool {
        self.state == State::Ready && self.authenticated
    }

    /// Gives back buffer memory a quiet stream does not need (the framer keeps only a partial
    /// element, if any).
    pub fn release_buffers(&mut self) {
        self.framer.shrink();
    }

    /// Whether the stream has ended.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// The remote domain.
    pub fn remote(&self) -> &str {
        &self.remote
    }

    /// Appends a serialized stanza; only valid once [`is_ready`](Self::is_ready).
    pub fn send_stanza(&mut self, bytes: &[u8], now: Instant) {
        debug_assert!(self.is_ready());
        self.out.extend_from_slice(bytes);
        // Peers rarely send anything back on our outbound stream: sending is what keeps it in use.
        self.deadlines.last_rx = now;
    }

    /// Queues a dialback key verification (sent as soon as negotiation allows).
    pub fn verify(&mut self, req: VerifyRequest) {
        if self.state == State::Closed {
            // Nothing will ever send it: answer now rather than leave the caller waiting.
            self.events.push_back(OutboundEvent::VerifyAnswer {
                request: req,
                answer: Err(StanzaCondition::RemoteServerTimeout),
            });
            return;
        }
        if self.verify_sent.len() + self.verify_queue.len() >= 16 {
            // Bounded: too many outstanding checks towards one server is an answer in itself.
            self.events.push_back(OutboundEvent::VerifyAnswer {
                request: req,
                answer: Err(StanzaCondition::ResourceConstraint),
            });
            return;
        }
        self.verify_queue.push(req);
        self.flush_verifies();
    }

    /// Closes cleanly.
    pub fn close(&mut self) {
        if self.state != State::Closed {
            wire::stream_close(&mut self.out);
            self.finish(CloseReason::LocalClose);
        }
    }

    /// Bytes received (plaintext).
    pub fn handle_bytes(&mut self, data: &[u8], now: Instant, policy: &dyn StreamPolicy) {
        if matches!(self.state, State::Closed | State::TlsHandshake) {
            return;
        }
        self.deadlines.last_rx = now;
        self.framer.feed(data);
        loop {
            if matches!(self.state, State::Closed | State::TlsHandshake) {
                return;
            }
            match self.framer.next_event() {
                Ok(None) => return,
                Ok(Some(XmlEvent::StreamOpen(h))) => self.on_header(&h),
                Ok(Some(XmlEvent::Stanza(s))) => self.on_element(&s, policy),
                Ok(Some(XmlEvent::StreamClose)) => {
                    wire::stream_close(&mut self.out);
                    self.finish(CloseReason::PeerClosed);
                }
                Err(e) => self.fail(e.condition(), Some(&e.to_string())),
            }
        }
    }

    /// The TLS handshake finished with the server's certificate chain.
    pub fn tls_established(&mut self, peer_chain: Vec<CertificateDer<'static>>, now: Instant) {
        self.tls_active = true;
        self.peer_chain = peer_chain;
        self.deadlines.last_rx = now;
        self.send_header();
    }

    /// Timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.state == State::Closed {
            return;
        }
        match self.deadlines.due(now) {
            Due::Nothing => {}
            Due::EstablishmentTimeout => self.fail(
                StreamCondition::ConnectionTimeout,
                Some("stream establishment timed out"),
            ),
            Due::Inactive => {
                // An idle outbound stream is closed cleanly; it is reopened on demand.
                wire::stream_close(&mut self.out);
                self.finish(CloseReason::LocalClose);
            }
            Due::Keepalive => {
                self.out.push(b' ');
                self.deadlines.last_tx = now;
            }
        }
    }

    fn finish(&mut self, reason: CloseReason) {
        self.state = State::Closed;
        for request in self
            .verify_sent
            .drain(..)
            .chain(self.verify_queue.drain(..))
        {
            self.events.push_back(OutboundEvent::VerifyAnswer {
                request,
                answer: Err(StanzaCondition::RemoteServerTimeout),
            });
        }
        self.events.push_back(OutboundEvent::Closed(reason));
    }

    fn fail(&mut self, cond: StreamCondition, text: Option<&str>) {
        wire::stream_error(&mut self.out, cond, text);
        self.finish(CloseReason::SentError(cond));
    }

    fn give_up(&mut self, why: &'static str) {
        wire::stream_close(&mut self.out);
        self.finish(CloseReason::NegotiationFailed(why));
    }

    fn on_header(&mut self, h: &StreamHeader) {
        if self.state != State::AwaitHeader {
            return self.fail(
                StreamCondition::InvalidXml,
                Some("unexpected stream header"),
            );
        }
        if h.namespace.as_deref() != Some(wire::NS_STREAMS) || h.local_name != "stream" {
            return self.fail(StreamCondition::InvalidNamespace, None);
        }
        if h.default_ns.as_deref() != Some(wire::NS_SERVER) {
            return self.fail(StreamCondition::InvalidNamespace, None);
        }
        if h.version.as_deref().and_then(|v| v.split('.').next()) != Some("1") {
            return self.fail(StreamCondition::UnsupportedVersion, None);
        }
        if let Some(from) = h.from.as_deref() {
            if !jid::same_domain(from, &self.remote) {
                return self.fail(StreamCondition::InvalidFrom, None);
            }
        }
        let Some(id) = h.id.clone().filter(|i| !i.is_empty()) else {
            return self.fail(StreamCondition::InvalidXml, Some("missing stream id"));
        };
        self.remote_stream_id = Some(id);
        self.header_db_ns = h.dialback_ns.as_deref() == Some(wire::NS_DIALBACK);
        self.state = State::AwaitFeatures;
    }

    fn on_element(&mut self, s: &Stanza, policy: &dyn StreamPolicy) {
        match (self.state, s.kind()) {
            (State::AwaitFeatures, StanzaKind::Features) => self.on_features(s, policy),
            (State::AwaitProceed, StanzaKind::TlsProceed) => {
                self.framer.reset();
                self.state = State::TlsHandshake;
                self.events.push_back(OutboundEvent::StartTls);
            }
            (State::AwaitProceed, StanzaKind::TlsFailure) => self.give_up("STARTTLS refused"),
            (State::AwaitSasl, StanzaKind::SaslSuccess) => {
                self.framer.reset();
                self.mark_authenticated(AuthMethod::SaslExternal);
                // Stream restart after SASL (RFC 6120 §6.4.6).
                self.send_header();
            }
            (State::AwaitSasl, StanzaKind::SaslFailure) => {
                if self.dialback_possible() {
                    self.send_db_result(policy);
                } else {
                    self.give_up("SASL EXTERNAL refused and dialback not allowed");
                }
            }
            (_, StanzaKind::DialbackResult) => self.on_db_result(s),
            (_, StanzaKind::DialbackVerify) => self.on_db_verify(s),
            (_, StanzaKind::StreamError) => {
                let cond = s
                    .first_child()
                    .map(|c| c.local_name.to_string())
                    .unwrap_or_default();
                wire::stream_close(&mut self.out);
                self.finish(CloseReason::ReceivedError(cond));
            }
            _ => self.fail(StreamCondition::UnsupportedStanzaType, None),
        }
    }

    fn dialback_possible(&self) -> bool {
        self.header_db_ns && dialback_allowed(&self.policy, self.tls_active)
    }

    fn on_features(&mut self, s: &Stanza, policy: &dyn StreamPolicy) {
        let f = parse_features(s.as_bytes());
        if self.authenticated {
            // Features after the SASL restart: the stream is ready.
            self.state = State::Ready;
            self.flush_verifies();
            return;
        }
        if !self.tls_active && f.starttls && self.policy.tls != Negotiation::NotSupported {
            wire::tls_element(&mut self.out, "starttls");
            self.state = State::AwaitProceed;
            return;
        }
        if !self.tls_active && self.policy.tls == Negotiation::Required {
            return self.give_up("TLS required but not offered");
        }
        if f.starttls_required && !self.tls_active {
            return self.give_up("peer requires TLS, policy forbids it");
        }
        self.state = State::Ready;
        if self.purpose == Purpose::VerifyOnly {
            self.flush_verifies();
            return;
        }
        if f.sasl_external
            && self.tls_active
            && self.policy.sasl != Negotiation::NotSupported
            && !self.sasl_tried
        {
            self.sasl_tried = true;
            wire::sasl_auth_external(&mut self.out, &base64_encode(self.local.as_bytes()));
            self.state = State::AwaitSasl;
            return;
        }
        if self.dialback_possible()
            || (f.dialback && dialback_allowed(&self.policy, self.tls_active))
        {
            self.send_db_result(policy);
            return;
        }
        self.give_up("no authentication method in common");
    }

    fn send_db_result(&mut self, policy: &dyn StreamPolicy) {
        let Some(id) = self.remote_stream_id.as_deref() else {
            return self.give_up("no stream id for dialback");
        };
        // XEP-0185: key over (receiving = remote, originating = us, the remote's stream id).
        let key = policy.dialback().key(&self.remote, &self.local, id);
        wire::db_request(
            &mut self.out,
            DbElement::Result,
            &self.local,
            &self.remote,
            None,
            &key,
        );
        self.state = State::AwaitDialback;
        self.flush_verifies();
    }

    fn mark_authenticated(&mut self, method: AuthMethod) {
        self.authenticated = true;
        self.deadlines.established_by = None;
        self.framer.set_limits(self.limits.after_auth);
        self.events.push_back(OutboundEvent::Authenticated(method));
    }

    fn on_db_result(&mut self, s: &Stanza) {
        if self.state != State::AwaitDialback {
            return self.fail(
                StreamCondition::UnsupportedStanzaType,
                Some("unsolicited db:result"),
            );
        }
        // Only an answer to the request we sent counts (from = remote, to = us).
        let matches = s.from().is_some_and(|f| jid::same_domain(&f, &self.remote))
            && s.to().is_some_and(|t| jid::same_domain(&t, &self.local));
        if !matches {
            return self.fail(
                StreamCondition::InvalidFrom,
                Some("db:result does not answer our request"),
            );
        }
        match s.stanza_type().as_deref() {
            Some("valid") => {
                self.state = State::Ready;
                self.mark_authenticated(AuthMethod::Dialback);
                self.flush_verifies();
            }
            Some("invalid") => self.give_up("dialback key refused"),
            _ => self.give_up("dialback error"),
        }
    }

    fn on_db_verify(&mut self, s: &Stanza) {
        let found = self.verify_sent.iter().position(|r| {
            s.from()
                .is_some_and(|f| jid::same_domain(&f, &r.originating))
                && s.to().is_some_and(|t| jid::same_domain(&t, &r.receiving))
                && s.id().as_deref() == Some(r.stream_id.as_str())
        });
        let Some(pos) = found else {
            // XEP-0220 bypass: an answer we did not ask for is a protocol violation.
            return self.fail(
                StreamCondition::InvalidXml,
                Some("db:verify answers no request of ours"),
            );
        };
        let request = self.verify_sent.remove(pos);
        let answer = match s.stanza_type().as_deref() {
            Some("valid") => Ok(true),
            Some("invalid") => Ok(false),
            _ => Err(StanzaCondition::RemoteServerNotFound),
        };
        self.events
            .push_back(OutboundEvent::VerifyAnswer { request, answer });
        if self.purpose == Purpose::VerifyOnly
            && self.verify_sent.is_empty()
            && self.verify_queue.is_empty()
        {
            self.close();
        }
    }

    fn flush_verifies(&mut self) {
        if !matches!(self.state, State::Ready | State::AwaitDialback) {
            return;
        }
        for r in self.verify_queue.drain(..) {
            wire::db_request(
                &mut self.out,
                DbElement::Verify,
                &r.receiving,
                &r.originating,
                Some(&r.stream_id),
                &r.key,
            );
            self.verify_sent.push(r);
        }
    }
}

/// What a `<stream:features/>` offered (not on the hot path: parsed once or twice per stream).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OfferedFeatures {
    pub starttls: bool,
    pub starttls_required: bool,
    pub sasl_external: bool,
    pub dialback: bool,
}

pub(crate) fn parse_features(xml: &[u8]) -> OfferedFeatures {
    let mut f = OfferedFeatures::default();
    let mut r = quick_xml::Reader::from_reader(xml);
    let mut path: SmallVec<[Vec<u8>; 4]> = SmallVec::new();
    let mut in_mechanism = false;
    loop {
        match r.read_event() {
            Ok(QEvent::Start(e)) => {
                let name = e.local_name().as_ref().to_vec();
                in_mechanism = name == b"mechanism";
                note(&mut f, &path, &name);
                if path.len() < 4 {
                    path.push(name);
                }
            }
            Ok(QEvent::Empty(e)) => {
                let name = e.local_name().as_ref().to_vec();
                note(&mut f, &path, &name);
            }
            Ok(QEvent::Text(t))
                if in_mechanism && t.unescape().is_ok_and(|m| m.trim() == "EXTERNAL") =>
            {
                f.sasl_external = true;
            }
            Ok(QEvent::End(_)) => {
                in_mechanism = false;
                path.pop();
            }
            Ok(QEvent::Eof) | Err(_) => break,
            _ => {}
        }
    }
    f
}

fn note(f: &mut OfferedFeatures, path: &[Vec<u8>], name: &[u8]) {
    match (path.last().map(Vec::as_slice), name) {
        (Some(b"features"), b"starttls") => f.starttls = true,
        (Some(b"starttls"), b"required") => f.starttls_required = true,
        (Some(b"features"), b"dialback") => f.dialback = true,
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xmpp::stream::testing::*;
    use std::time::Duration;

    const TLS_NS: &str = "xmlns='urn:ietf:params:xml:ns:xmpp-tls'";
    const SASL_NS: &str = "xmlns='urn:ietf:params:xml:ns:xmpp-sasl'";

    /// We are corp.test opening a stream to a.test; `send` is what a.test says, its result what we
    /// wrote back.
    struct Dialogue {
        s: OutboundStream,
        p: FakePolicy,
        now: Instant,
        out: Vec<u8>,
    }

    impl Dialogue {
        fn new(p: FakePolicy, purpose: Purpose) -> Self {
            let now = t0();
            let policy = p.policy_for("a.test").expect("a.test is a partner");
            Dialogue {
                s: OutboundStream::new(
                    "corp.test".into(),
                    "a.test".into(),
                    policy,
                    purpose,
                    false,
                    limits(),
                    timeouts(),
                    now,
                ),
                p,
                now,
                out: Vec::new(),
            }
        }
        fn output(&mut self) -> String {
            self.s.take_output(&mut self.out, self.now);
            String::from_utf8(self.out.clone()).unwrap()
        }
        fn start(&mut self) -> String {
            self.s.start(self.now);
            self.output()
        }
        fn send(&mut self, bytes: &str) -> String {
            self.s.handle_bytes(bytes.as_bytes(), self.now, &self.p);
            self.output()
        }
        fn tls_up(&mut self) -> String {
            self.s.tls_established(some_chain(), self.now);
            self.output()
        }
        /// Simulated time: moves the clock to `t` and fires the timers.
        fn at(&mut self, t: Instant) -> String {
            self.now = t;
            self.s.handle_timeout(t);
            self.output()
        }
        fn events(&mut self) -> Vec<OutboundEvent> {
            std::iter::from_fn(|| self.s.poll_event()).collect()
        }
        fn header(&mut self, id: &str) -> String {
            self.send(&peer_response_header("a.test", "corp.test", id))
        }
        /// start → header + STARTTLS → `<proceed/>` → TLS up; returns our post-TLS output.
        fn through_tls(&mut self) -> String {
            self.start();
            self.header("sid-clear");
            assert_eq!(
                self.send(FEATURES_STARTTLS),
                format!("<starttls {TLS_NS}/>")
            );
            self.send(&format!("<proceed {TLS_NS}/>"));
            assert!(matches!(
                self.events().as_slice(),
                [OutboundEvent::StartTls]
            ));
            self.tls_up()
        }
        /// Cleartext dialback offered, our db:result sent; returns the key we sent.
        fn offer_dialback(&mut self) -> String {
            self.start();
            self.header("sid-1");
            let out = self.send(FEATURES_DIALBACK);
            let key = self.p.secret.key("a.test", "corp.test", "sid-1");
            assert_eq!(
                out,
                format!("<db:result from='corp.test' to='a.test'>{key}</db:result>")
            );
            key
        }
    }

    fn partner_with(tls: Negotiation, sasl: Negotiation, dialback: bool) -> FakePolicy {
        FakePolicy::new(vec![partner("a.test", tls, sasl, dialback)])
    }

    fn optional() -> FakePolicy {
        partner_with(Negotiation::Optional, Negotiation::Optional, true)
    }

    fn closed_reason(evs: &[OutboundEvent]) -> Option<CloseReason> {
        evs.iter().find_map(|e| match e {
            OutboundEvent::Closed(r) => Some(r.clone()),
            _ => None,
        })
    }

    fn verify_request(id: &str) -> VerifyRequest {
        VerifyRequest {
            originating: "a.test".into(),
            receiving: "corp.test".into(),
            stream_id: id.into(),
            key: format!("key-{id}"),
        }
    }

    fn verify_answers(evs: &[OutboundEvent]) -> Vec<(String, Result<bool, StanzaCondition>)> {
        evs.iter()
            .filter_map(|e| match e {
                OutboundEvent::VerifyAnswer { request, answer } => {
                    Some((request.stream_id.clone(), *answer))
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn sends_our_header_on_start() {
        let mut d = Dialogue::new(optional(), Purpose::Deliver);
        assert!(!d.s.has_output());
        let out = d.start();
        assert!(
            out.starts_with("<?xml version='1.0'?><stream:stream"),
            "{out}"
        );
        assert!(out.contains("xmlns='jabber:server'"));
        assert!(out.contains("xmlns:db='jabber:server:dialback'"));
        assert!(out.contains("from='corp.test' to='a.test'"), "{out}");
        assert!(
            !out.contains(" id="),
            "the initiating header carries no id: {out}"
        );
        assert!(out.ends_with("version='1.0'>"));
        assert!(d.events().is_empty());
    }

    #[test]
    fn offered_starttls_is_taken_and_proceed_hands_over_to_tls() {
        let mut d = Dialogue::new(optional(), Purpose::Deliver);
        d.start();
        assert_eq!(d.header("sid-1"), "", "nothing before the features");
        assert_eq!(d.send(FEATURES_STARTTLS), format!("<starttls {TLS_NS}/>"));
        assert!(d.events().is_empty());
        assert_eq!(d.send(&format!("<proceed {TLS_NS}/>")), "");
        assert!(matches!(d.events().as_slice(), [OutboundEvent::StartTls]));
        assert!(!d.s.is_ready() && !d.s.is_closed());
    }

    #[test]
    fn cleartext_pipelined_after_proceed_is_discarded() {
        let mut d = Dialogue::new(optional(), Purpose::Deliver);
        d.start();
        d.header("sid-1");
        d.send(FEATURES_STARTTLS);
        // An injected "authentication" riding along with <proceed/> must never be acted on.
        d.send(&format!(
            "<proceed {TLS_NS}/><db:result from='a.test' to='corp.test' type='valid'/>{FEATURES_NONE}"
        ));
        let evs = d.events();
        assert!(
            matches!(evs.as_slice(), [OutboundEvent::StartTls]),
            "{evs:?}"
        );
        // Bytes read during the handshake are not stream data either.
        assert_eq!(
            d.send("<db:result from='a.test' to='corp.test' type='valid'/>"),
            ""
        );
        assert!(d.events().is_empty());
        let out = d.tls_up();
        assert!(
            out.starts_with("<?xml version='1.0'?><stream:stream"),
            "{out}"
        );
        // The encrypted stream starts from a clean parser: a fresh header is accepted.
        d.header("sid-tls");
        assert!(d.send(FEATURES_EXTERNAL).contains("<auth "));
        assert!(!d
            .events()
            .iter()
            .any(|e| matches!(e, OutboundEvent::Authenticated(_))));
    }

    #[test]
    fn sends_a_new_header_after_tls() {
        let mut d = Dialogue::new(optional(), Purpose::Deliver);
        let out = d.through_tls();
        assert!(
            out.starts_with("<?xml version='1.0'?><stream:stream"),
            "{out}"
        );
        assert!(out.contains("from='corp.test' to='a.test'"), "{out}");
        assert!(out.ends_with("version='1.0'>"));
    }

    #[test]
    fn sasl_external_authenticates_after_tls_and_restart() {
        let mut d = Dialogue::new(optional(), Purpose::Deliver);
        d.through_tls();
        d.header("sid-tls");
        // base64("corp.test")
        assert_eq!(
            d.send(FEATURES_EXTERNAL),
            format!("<auth {SASL_NS} mechanism='EXTERNAL'>Y29ycC50ZXN0</auth>")
        );
        let out = d.send(&format!("<success {SASL_NS}/>"));
        assert!(
            out.starts_with("<?xml version='1.0'?><stream:stream"),
            "restart: {out}"
        );
        assert!(out.contains("from='corp.test' to='a.test'"));
        let evs = d.events();
        assert!(
            matches!(
                evs.as_slice(),
                [OutboundEvent::Authenticated(AuthMethod::SaslExternal)]
            ),
            "{evs:?}"
        );
        assert!(
            !d.s.is_ready(),
            "not before the restarted stream's features"
        );
        d.header("sid-sasl");
        assert_eq!(d.send(FEATURES_NONE), "");
        assert!(d.s.is_ready());
        d.s.send_stanza(b"<message from='a@corp.test' to='b@a.test'/>", d.now);
        assert_eq!(d.output(), "<message from='a@corp.test' to='b@a.test'/>");
    }

    #[test]
    fn sasl_failure_falls_back_to_dialback_when_allowed() {
        let mut d = Dialogue::new(optional(), Purpose::Deliver);
        d.through_tls();
        d.header("sid-tls");
        assert!(d.send(FEATURES_EXTERNAL).starts_with("<auth "));
        let out = d.send(&format!("<failure {SASL_NS}><not-authorized/></failure>"));
        let key = d.p.secret.key("a.test", "corp.test", "sid-tls");
        assert_eq!(
            out,
            format!("<db:result from='corp.test' to='a.test'>{key}</db:result>")
        );
        assert!(d.events().is_empty());
        d.send("<db:result from='a.test' to='corp.test' type='valid'/>");
        assert!(matches!(
            d.events().as_slice(),
            [OutboundEvent::Authenticated(AuthMethod::Dialback)]
        ));
        assert!(d.s.is_ready());
    }

    #[test]
    fn sasl_failure_gives_up_when_dialback_is_not_allowed() {
        for (why, p) in [
            (
                "dialback disabled",
                partner_with(Negotiation::Optional, Negotiation::Optional, false),
            ),
            (
                "SASL required",
                partner_with(Negotiation::Optional, Negotiation::Required, true),
            ),
        ] {
            let mut d = Dialogue::new(p, Purpose::Deliver);
            d.through_tls();
            d.header("sid-tls");
            assert!(d.send(FEATURES_EXTERNAL).starts_with("<auth "), "{why}");
            let out = d.send(&format!("<failure {SASL_NS}><not-authorized/></failure>"));
            assert_eq!(out, "</stream:stream>", "{why}");
            assert!(matches!(
                closed_reason(&d.events()),
                Some(CloseReason::NegotiationFailed(_))
            ));
            assert!(d.s.is_closed() && !d.s.is_ready(), "{why}");
        }
    }

    #[test]
    fn dialback_key_is_over_remote_local_and_remote_stream_id() {
        let mut d = Dialogue::new(optional(), Purpose::Deliver);
        let key = d.offer_dialback();
        assert_eq!(key, d.p.secret.key("a.test", "corp.test", "sid-1"));
        assert!(d.p.secret.verify("a.test", "corp.test", "sid-1", &key));
        assert!(!d.p.secret.verify("corp.test", "a.test", "sid-1", &key));
    }

    #[test]
    fn dialback_valid_authenticates() {
        let mut d = Dialogue::new(optional(), Purpose::Deliver);
        d.offer_dialback();
        assert!(!d.s.is_ready());
        assert_eq!(
            d.send("<db:result from='a.test' to='corp.test' type='valid'/>"),
            ""
        );
        assert!(matches!(
            d.events().as_slice(),
            [OutboundEvent::Authenticated(AuthMethod::Dialback)]
        ));
        assert!(d.s.is_ready());
    }

    #[test]
    fn dialback_invalid_closes_unauthenticated() {
        let mut d = Dialogue::new(optional(), Purpose::Deliver);
        d.offer_dialback();
        let out = d.send("<db:result from='a.test' to='corp.test' type='invalid'/>");
        assert_eq!(out, "</stream:stream>");
        let evs = d.events();
        assert!(!evs
            .iter()
            .any(|e| matches!(e, OutboundEvent::Authenticated(_))));
        assert!(matches!(
            closed_reason(&evs),
            Some(CloseReason::NegotiationFailed(_))
        ));
        assert!(d.s.is_closed() && !d.s.is_ready());
    }

    #[test]
    fn dialback_answer_for_another_pair_is_a_stream_error() {
        for answer in [
            "<db:result from='evil.test' to='corp.test' type='valid'/>",
            "<db:result from='a.test' to='other.test' type='valid'/>",
            "<db:result type='valid'/>",
        ] {
            let mut d = Dialogue::new(optional(), Purpose::Deliver);
            d.offer_dialback();
            let out = d.send(answer);
            assert!(out.contains("<invalid-from "), "{answer}: {out}");
            assert!(out.ends_with("</stream:stream>"));
            let evs = d.events();
            assert!(!evs
                .iter()
                .any(|e| matches!(e, OutboundEvent::Authenticated(_))));
            assert_eq!(
                closed_reason(&evs),
                Some(CloseReason::SentError(StreamCondition::InvalidFrom))
            );
            assert!(!d.s.is_ready());
        }
    }

    #[test]
    fn required_tls_not_offered_gives_up_without_sending_stanzas() {
        let mut d = Dialogue::new(
            partner_with(Negotiation::Required, Negotiation::Optional, true),
            Purpose::Deliver,
        );
        d.start();
        d.header("sid-1");
        assert_eq!(d.send(FEATURES_DIALBACK), "</stream:stream>");
        assert!(matches!(
            closed_reason(&d.events()),
            Some(CloseReason::NegotiationFailed(_))
        ));
        assert!(!d.s.is_ready() && d.s.is_closed());
    }

    #[test]
    fn tls_not_supported_never_sends_starttls() {
        let mut d = Dialogue::new(
            partner_with(Negotiation::NotSupported, Negotiation::NotSupported, true),
            Purpose::Deliver,
        );
        d.start();
        d.header("sid-1");
        let out = d.send(FEATURES_STARTTLS);
        assert!(!out.contains("starttls"), "{out}");
        assert!(
            out.starts_with("<db:result "),
            "dialback in the clear: {out}"
        );

        // A peer that insists on TLS gets nothing but a clean close.
        let mut d = Dialogue::new(
            partner_with(Negotiation::NotSupported, Negotiation::NotSupported, true),
            Purpose::Deliver,
        );
        d.start();
        d.header("sid-1");
        let out = d.send(&format!(
            "<stream:features><starttls {TLS_NS}><required/></starttls></stream:features>"
        ));
        assert_eq!(out, "</stream:stream>");
        assert!(matches!(
            closed_reason(&d.events()),
            Some(CloseReason::NegotiationFailed(_))
        ));
    }

    #[test]
    fn peer_header_errors() {
        let ns = "xmlns:stream='http://etherx.jabber.org/streams'";
        let cases = [
            (
                "wrong from",
                format!("<stream:stream xmlns='jabber:server' {ns} from='evil.test' to='corp.test' id='i' version='1.0'>"),
                StreamCondition::InvalidFrom,
            ),
            (
                "missing id",
                format!("<stream:stream xmlns='jabber:server' {ns} from='a.test' to='corp.test' version='1.0'>"),
                StreamCondition::InvalidXml,
            ),
            (
                "empty id",
                format!("<stream:stream xmlns='jabber:server' {ns} from='a.test' to='corp.test' id='' version='1.0'>"),
                StreamCondition::InvalidXml,
            ),
            (
                "client namespace",
                format!("<stream:stream xmlns='jabber:client' {ns} from='a.test' to='corp.test' id='i' version='1.0'>"),
                StreamCondition::InvalidNamespace,
            ),
            (
                "wrong streams namespace",
                "<stream:stream xmlns='jabber:server' xmlns:stream='urn:wrong' from='a.test' to='corp.test' id='i' version='1.0'>".to_string(),
                StreamCondition::InvalidNamespace,
            ),
            (
                "old version",
                format!("<stream:stream xmlns='jabber:server' {ns} from='a.test' to='corp.test' id='i'>"),
                StreamCondition::UnsupportedVersion,
            ),
        ];
        for (why, header, cond) in cases {
            let mut d = Dialogue::new(optional(), Purpose::Deliver);
            d.start();
            let out = d.send(&header);
            assert!(
                out.starts_with(&format!(
                    "<stream:error><{} xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>",
                    cond.as_str()
                )),
                "{why}: {out}"
            );
            assert!(out.ends_with("</stream:stream>"), "{why}");
            assert_eq!(
                closed_reason(&d.events()),
                Some(CloseReason::SentError(cond)),
                "{why}"
            );
        }
    }

    #[test]
    fn verify_only_sends_queued_requests_after_tls() {
        let mut d = Dialogue::new(optional(), Purpose::VerifyOnly);
        d.s.verify(verify_request("in-1"));
        assert!(!d.start().contains("db:verify"));
        d.header("sid-clear");
        // TLS is offered: it comes first, the key goes over it.
        assert_eq!(d.send(FEATURES_STARTTLS), format!("<starttls {TLS_NS}/>"));
        d.send(&format!("<proceed {TLS_NS}/>"));
        assert!(!d.tls_up().contains("db:verify"));
        d.header("sid-tls");
        let out = d.send(FEATURES_EXTERNAL);
        assert_eq!(
            out, "<db:verify from='corp.test' to='a.test' id='in-1'>key-in-1</db:verify>",
            "no authentication of our own on a verify-only stream"
        );
        assert!(!d.s.is_ready());
    }

    #[test]
    fn verify_only_answers_and_closes_when_none_is_outstanding() {
        let mut d = Dialogue::new(optional(), Purpose::VerifyOnly);
        d.start();
        d.header("sid-1");
        d.s.verify(verify_request("in-1"));
        d.s.verify(verify_request("in-2"));
        assert_eq!(d.output(), "");
        let out = d.send(FEATURES_DIALBACK);
        assert_eq!(
            out,
            "<db:verify from='corp.test' to='a.test' id='in-1'>key-in-1</db:verify>\
             <db:verify from='corp.test' to='a.test' id='in-2'>key-in-2</db:verify>"
        );
        let out = d.send("<db:verify from='a.test' to='corp.test' id='in-2' type='invalid'/>");
        assert_eq!(out, "", "one request still outstanding");
        assert_eq!(
            verify_answers(&d.events()),
            vec![("in-2".to_string(), Ok(false))]
        );
        let out = d.send("<db:verify from='a.test' to='corp.test' id='in-1' type='valid'/>");
        assert_eq!(out, "</stream:stream>");
        let evs = d.events();
        assert_eq!(verify_answers(&evs), vec![("in-1".to_string(), Ok(true))]);
        assert_eq!(closed_reason(&evs), Some(CloseReason::LocalClose));
        assert!(d.s.is_closed());
    }

    #[test]
    fn verify_answer_matching_no_request_is_a_stream_error() {
        for answer in [
            "<db:verify from='a.test' to='corp.test' id='forged' type='valid'/>",
            "<db:verify from='evil.test' to='corp.test' id='in-1' type='valid'/>",
            "<db:verify from='a.test' to='other.test' id='in-1' type='valid'/>",
        ] {
            let mut d = Dialogue::new(optional(), Purpose::VerifyOnly);
            d.s.verify(verify_request("in-1"));
            d.start();
            d.header("sid-1");
            d.send(FEATURES_DIALBACK);
            let out = d.send(answer);
            assert!(out.contains("<invalid-xml "), "{answer}: {out}");
            let evs = d.events();
            // The bypass attempt does not answer our real request with its verdict.
            assert_eq!(
                verify_answers(&evs),
                vec![(
                    "in-1".to_string(),
                    Err(StanzaCondition::RemoteServerTimeout)
                )],
                "{answer}"
            );
            assert_eq!(
                closed_reason(&evs),
                Some(CloseReason::SentError(StreamCondition::InvalidXml))
            );
        }
    }

    #[test]
    fn closing_with_outstanding_requests_answers_them_with_timeout() {
        let mut d = Dialogue::new(optional(), Purpose::VerifyOnly);
        d.s.verify(verify_request("sent"));
        d.start();
        d.header("sid-1");
        d.send(FEATURES_DIALBACK);
        assert!(d.events().is_empty());
        d.s.close();
        assert_eq!(d.output(), "</stream:stream>");
        let evs = d.events();
        assert_eq!(
            verify_answers(&evs),
            vec![(
                "sent".to_string(),
                Err(StanzaCondition::RemoteServerTimeout)
            )]
        );
        assert_eq!(closed_reason(&evs), Some(CloseReason::LocalClose));
    }

    #[test]
    fn closing_before_negotiation_answers_queued_requests_with_timeout() {
        let mut d = Dialogue::new(optional(), Purpose::VerifyOnly);
        d.s.verify(verify_request("queued"));
        d.start();
        d.header("sid-1");
        assert_eq!(d.send("</stream:stream>"), "</stream:stream>");
        let evs = d.events();
        assert_eq!(
            verify_answers(&evs),
            vec![(
                "queued".to_string(),
                Err(StanzaCondition::RemoteServerTimeout)
            )]
        );
        assert_eq!(closed_reason(&evs), Some(CloseReason::PeerClosed));
    }

    #[test]
    fn more_than_sixteen_outstanding_requests_are_refused_at_once() {
        let mut d = Dialogue::new(optional(), Purpose::VerifyOnly);
        for i in 0..16 {
            d.s.verify(verify_request(&format!("in-{i}")));
        }
        assert!(d.events().is_empty());
        d.s.verify(verify_request("one-too-many"));
        assert_eq!(
            verify_answers(&d.events()),
            vec![(
                "one-too-many".to_string(),
                Err(StanzaCondition::ResourceConstraint)
            )]
        );
        d.start();
        d.header("sid-1");
        let out = d.send(FEATURES_DIALBACK);
        assert_eq!(out.matches("<db:verify ").count(), 16);
        assert!(!out.contains("one-too-many"));
    }

    #[test]
    fn establishment_timeout_is_connection_timeout() {
        let mut d = Dialogue::new(optional(), Purpose::Deliver);
        d.start();
        d.header("sid-1");
        let deadline = d.s.poll_timeout().expect("a timer while open");
        assert_eq!(deadline, d.now + timeouts().establishment);
        assert_eq!(d.at(deadline - Duration::from_secs(1)), "", "not yet due");
        assert!(d.events().is_empty());
        let out = d.at(deadline);
        assert!(
            out.starts_with("<stream:error><connection-timeout "),
            "{out}"
        );
        assert_eq!(
            closed_reason(&d.events()),
            Some(CloseReason::SentError(StreamCondition::ConnectionTimeout))
        );
        assert_eq!(d.s.poll_timeout(), None);
    }

    #[test]
    fn authenticated_idle_stream_closes_cleanly_at_inactivity_deadline() {
        let mut p = optional();
        p.partners[0].keepalive = false;
        let mut d = Dialogue::new(p, Purpose::Deliver);
        d.offer_dialback();
        d.now += Duration::from_secs(5);
        d.send("<db:result from='a.test' to='corp.test' type='valid'/>");
        d.events();
        // Authenticated: no establishment deadline any more, only inactivity since the last byte.
        let deadline = d.s.poll_timeout().expect("a timer while open");
        assert_eq!(deadline, d.now + timeouts().inactivity);
        assert_eq!(d.at(deadline - Duration::from_secs(1)), "");
        assert!(!d.s.is_closed());
        assert_eq!(d.at(deadline), "</stream:stream>");
        assert_eq!(closed_reason(&d.events()), Some(CloseReason::LocalClose));
        assert!(d.s.is_closed());
    }

    #[test]
    fn sending_stanzas_keeps_an_outbound_stream_in_use() {
        let mut p = optional();
        p.partners[0].keepalive = false;
        let mut d = Dialogue::new(p, Purpose::Deliver);
        d.offer_dialback();
        d.send("<db:result from='a.test' to='corp.test' type='valid'/>");
        d.events();
        let first = d.s.poll_timeout().expect("a timer while open");
        // Half-way to the deadline a stanza goes out: the stream is in use, the deadline moves.
        let sent_at = d.now + timeouts().inactivity / 2;
        d.s.send_stanza(b"<message from='a@corp.test' to='b@a.test'/>", sent_at);
        assert_eq!(d.at(first), "<message from='a@corp.test' to='b@a.test'/>");
        assert!(!d.s.is_closed());
        assert_eq!(d.s.poll_timeout(), Some(sent_at + timeouts().inactivity));
    }

    #[test]
    fn keepalive_whitespace_when_the_policy_wants_keepalives() {
        let mut d = Dialogue::new(optional(), Purpose::Deliver);
        d.offer_dialback();
        d.send("<db:result from='a.test' to='corp.test' type='valid'/>");
        d.events();
        let first = d.s.poll_timeout().expect("a timer while open");
        assert_eq!(first, d.now + timeouts().keepalive);
        assert_eq!(d.at(first), " ");
        assert!(!d.s.is_closed() && d.s.is_ready());
        assert!(d.events().is_empty());
        // Bytes from the peer keep the stream alive; the next keepalive is due from our last write.
        d.send(" ");
        assert_eq!(d.s.poll_timeout(), Some(first + timeouts().keepalive));
    }

    #[test]
    fn peer_stream_error_closes_with_received_error() {
        let mut d = Dialogue::new(optional(), Purpose::Deliver);
        d.start();
        d.header("sid-1");
        let out = d.send(
            "<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>\
             <text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>who?</text></stream:error>",
        );
        assert_eq!(out, "</stream:stream>");
        assert_eq!(
            closed_reason(&d.events()),
            Some(CloseReason::ReceivedError("host-unknown".into()))
        );
        assert!(d.s.is_closed());
    }

    #[test]
    fn peer_close_is_answered_with_our_close() {
        let mut d = Dialogue::new(optional(), Purpose::Deliver);
        d.offer_dialback();
        d.send("<db:result from='a.test' to='corp.test' type='valid'/>");
        d.events();
        assert_eq!(d.send("</stream:stream>"), "</stream:stream>");
        assert_eq!(closed_reason(&d.events()), Some(CloseReason::PeerClosed));
    }

    #[test]
    fn stanza_before_authentication_is_unsupported_stanza_type() {
        let mut d = Dialogue::new(optional(), Purpose::Deliver);
        d.start();
        d.header("sid-1");
        let out = d.send("<message from='x@a.test' to='y@corp.test'/>");
        assert!(out.contains("<unsupported-stanza-type "), "{out}");
        assert_eq!(
            closed_reason(&d.events()),
            Some(CloseReason::SentError(
                StreamCondition::UnsupportedStanzaType
            ))
        );
    }

    #[test]
    fn unsolicited_dialback_valid_is_not_authentication() {
        let mut d = Dialogue::new(optional(), Purpose::Deliver);
        d.start();
        d.header("sid-1");
        let out = d.send("<db:result from='a.test' to='corp.test' type='valid'/>");
        assert!(out.contains("<unsupported-stanza-type "), "{out}");
        assert!(!d
            .events()
            .iter()
            .any(|e| matches!(e, OutboundEvent::Authenticated(_))));
        assert!(!d.s.is_ready());
    }

    #[test]
    fn starttls_failure_gives_up() {
        let mut d = Dialogue::new(optional(), Purpose::Deliver);
        d.start();
        d.header("sid-1");
        d.send(FEATURES_STARTTLS);
        assert_eq!(d.send(&format!("<failure {TLS_NS}/>")), "</stream:stream>");
        assert!(matches!(
            closed_reason(&d.events()),
            Some(CloseReason::NegotiationFailed(_))
        ));
    }

    #[test]
    fn verify_on_a_closed_stream_is_answered_at_once() {
        let mut d = Dialogue::new(optional(), Purpose::VerifyOnly);
        d.start();
        d.s.close();
        d.events();
        d.s.verify(verify_request("late"));
        assert_eq!(
            verify_answers(&d.events()),
            vec![(
                "late".to_string(),
                Err(StanzaCondition::RemoteServerTimeout)
            )],
            "a request on a closed stream must not wait forever"
        );
    }

    #[test]
    fn verify_on_a_ready_stream_is_sent_at_once() {
        let mut d = Dialogue::new(optional(), Purpose::Deliver);
        d.offer_dialback();
        d.send("<db:result from='a.test' to='corp.test' type='valid'/>");
        d.events();
        d.s.verify(verify_request("in-1"));
        assert_eq!(
            d.output(),
            "<db:verify from='corp.test' to='a.test' id='in-1'>key-in-1</db:verify>"
        );
        d.send("<db:verify from='a.test' to='corp.test' id='in-1' type='valid'/>");
        let evs = d.events();
        assert_eq!(verify_answers(&evs), vec![("in-1".to_string(), Ok(true))]);
        assert!(!d.s.is_closed(), "a delivering stream stays open");
    }
}
