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

    /// Whether the stream has ended.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// The remote domain.
    pub fn remote(&self) -> &str {
        &self.remote
    }

    /// Appends a serialized stanza; only valid once [`is_ready`](Self::is_ready).
    pub fn send_stanza(&mut self, bytes: &[u8]) {
        debug_assert!(self.is_ready());
        self.out.extend_from_slice(bytes);
    }

    /// Queues a dialback key verification (sent as soon as negotiation allows).
    pub fn verify(&mut self, req: VerifyRequest) {
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
