//! The receiving side of an S2S stream a federated peer opened to us.
//!
//! Order of business (RFC 6120 §4–6, XEP-0220, XEP-0178): header → our header + features →
//! STARTTLS (driver runs the handshake) → header again → SASL EXTERNAL (restart) or dialback → stanzas.
//! Every refusal is the RFC stream error, sent after our own header when we had not sent it yet.

use std::collections::VecDeque;
use std::time::Instant;

use rustls_pki_types::CertificateDer;
use smallvec::SmallVec;

use super::wire::{self, DbElement, Features};
use super::{AuthMethod, CloseReason, Deadlines, Due, StreamPolicy, StreamTimeouts};
use crate::config::{Negotiation, PartnerPolicy};
use crate::xml::{Event as XmlEvent, Framer, FramerLimits, Stanza, StanzaKind, StreamHeader};
use crate::xmpp::error::{StanzaCondition, StreamCondition};
use crate::xmpp::jid::{self, Jid};

/// What the driver must do or know after feeding the stream.
#[derive(Debug)]
pub enum InboundEvent {
    /// Flush the output, then run the TLS server handshake and call
    /// [`InboundStream::tls_established`]. Bytes read before this point were discarded.
    StartTls,
    /// The peer named itself in its stream header (unauthenticated; for connection accounting).
    PeerNamed(String),
    /// A remote domain is now authenticated on this stream.
    Authenticated {
        /// The domain.
        domain: String,
        /// How.
        method: AuthMethod,
    },
    /// Receiving-server dialback: ask the authoritative server of `originating` whether `key` is
    /// valid, then call [`InboundStream::dialback_verified`].
    VerifyKey {
        /// The domain claiming to send (whose authoritative server we ask).
        originating: String,
        /// Our domain it wants to send to.
        receiving: String,
        /// Our stream id on this stream.
        stream_id: String,
        /// The key it presented.
        key: String,
    },
    /// An authenticated, address-checked stanza (message, presence or iq).
    Stanza(Stanza),
    /// The stream is over; flush the output and close the connection.
    Closed(CloseReason),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    AwaitHeader,
    Negotiating,
    TlsHandshake,
    Closed,
}

/// Limits for the framer before and after authentication.
#[derive(Debug, Clone, Copy)]
pub struct PhaseLimits {
    /// Until a domain is authenticated (small: unauthenticated memory is the attack surface).
    pub before_auth: FramerLimits,
    /// After authentication.
    pub after_auth: FramerLimits,
}

/// An inbound S2S stream.
pub struct InboundStream {
    framer: Framer,
    limits: PhaseLimits,
    state: State,
    out: Vec<u8>,
    events: VecDeque<InboundEvent>,
    deadlines: Deadlines,
    tls_active: bool,
    peer_chain: Vec<CertificateDer<'static>>,
    sasl_done: bool,
    /// Our domain the peer addressed (`to` of its header).
    local: Option<String>,
    /// The domain the peer named (`from` of its header).
    peer: Option<String>,
    peer_policy: Option<PartnerPolicy>,
    stream_id: String,
    header_sent: bool,
    authenticated: SmallVec<[String; 2]>,
    /// Dialback keys we are verifying: (originating, receiving).
    pending_verify: SmallVec<[(String, String); 2]>,
}

impl InboundStream {
    /// A new stream on an accepted connection; `tls_active` for direct TLS (XEP-0368) listeners,
    /// in which case `peer_chain` is the client certificate chain already presented.
    pub fn new(
        limits: PhaseLimits,
        timeouts: StreamTimeouts,
        tls_active: bool,
        peer_chain: Vec<CertificateDer<'static>>,
        now: Instant,
    ) -> Self {
        InboundStream {
            framer: Framer::new(limits.before_auth),
            limits,
            state: State::AwaitHeader,
            out: Vec::new(),
            events: VecDeque::new(),
            deadlines: Deadlines::new(timeouts, now),
            tls_active,
            peer_chain,
            sasl_done: false,
            local: None,
            peer: None,
            peer_policy: None,
            stream_id: String::new(),
            header_sent: false,
            authenticated: SmallVec::new(),
            pending_verify: SmallVec::new(),
        }
    }

    /// Bytes to send, moved into `buf` (which is cleared first).
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
    pub fn poll_event(&mut self) -> Option<InboundEvent> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        (self.state != State::Closed).then(|| self.deadlines.next())
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

    /// Domains authenticated on this stream.
    pub fn authenticated(&self) -> &[String] {
        &self.authenticated
    }

    /// Our current stream id.
    pub fn stream_id(&self) -> &str {
        &self.stream_id
    }

    /// Bytes received from the peer (plaintext).
    pub fn handle_bytes(&mut self, data: &[u8], now: Instant, policy: &dyn StreamPolicy) {
        if self.state == State::Closed || self.state == State::TlsHandshake {
            // After <proceed/> nothing but the TLS handshake may come; the driver stops reading.
            return;
        }
        self.deadlines.last_rx = now;
        self.framer.feed(data);
        loop {
            if self.state == State::Closed || self.state == State::TlsHandshake {
                return;
            }
            match self.framer.next_event() {
                Ok(None) => return,
                Ok(Some(XmlEvent::StreamOpen(h))) => self.on_header(&h, policy),
                Ok(Some(XmlEvent::Stanza(s))) => self.on_element(s, policy),
                Ok(Some(XmlEvent::StreamClose)) => {
                    wire::stream_close(&mut self.out);
                    self.finish(CloseReason::PeerClosed);
                }
                Err(e) => {
                    let cond = e.condition();
                    self.fail(cond, Some(&e.to_string()));
                }
            }
        }
    }

    /// The TLS handshake finished; `peer_chain` is the client certificate chain (may be empty).
    pub fn tls_established(&mut self, peer_chain: Vec<CertificateDer<'static>>, now: Instant) {
        self.tls_active = true;
        self.peer_chain = peer_chain;
        self.deadlines.last_rx = now;
        self.state = State::AwaitHeader;
        self.header_sent = false;
    }

    /// The authoritative server's answer for a key we asked about (`Ok(valid)`, or `Err` when it could
    /// not be reached). Answers that match no request of ours are ignored (XEP-0220 §2.4 bypass).
    pub fn dialback_verified(
        &mut self,
        originating: &str,
        receiving: &str,
        answer: Result<bool, StanzaCondition>,
    ) {
        let Some(pos) = self
            .pending_verify
            .iter()
            .position(|(o, r)| jid::same_domain(o, originating) && jid::same_domain(r, receiving))
        else {
            return;
        };
        let (o, r) = self.pending_verify.swap_remove(pos);
        if self.state == State::Closed {
            return;
        }
        wire::db_answer(&mut self.out, DbElement::Result, &r, &o, None, answer);
        if answer == Ok(true) {
            self.authenticate(o, AuthMethod::Dialback);
        }
    }

    /// Closes the stream with a stream error (driver decisions: limits, shutdown).
    pub fn close_with(&mut self, cond: StreamCondition, text: Option<&str>) {
        if self.state != State::Closed {
            self.fail(cond, text);
        }
    }

    /// Closes the stream cleanly (`</stream:stream>`), e.g. at shutdown.
    pub fn close(&mut self) {
        if self.state != State::Closed {
            if !self.header_sent {
                wire::stream_header(
                    &mut self.out,
                    self.local.as_deref(),
                    self.peer.as_deref(),
                    None,
                );
            }
            wire::stream_close(&mut self.out);
            self.finish(CloseReason::LocalClose);
        }
    }

    /// Timers: establishment, inactivity, keepalive.
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
            Due::Inactive => self.fail(StreamCondition::ConnectionTimeout, Some("inactivity")),
            Due::Keepalive => {
                self.out.push(b' ');
                self.deadlines.last_tx = now;
            }
        }
    }

    fn finish(&mut self, reason: CloseReason) {
        self.state = State::Closed;
        self.pending_verify.clear();
        self.events.push_back(InboundEvent::Closed(reason));
    }

    fn fail(&mut self, cond: StreamCondition, text: Option<&str>) {
        if !self.header_sent {
            // RFC 6120 §4.9.1.2: send our header first so the error is well-formed.
            let id = wire::new_stream_id();
            wire::stream_header(
                &mut self.out,
                self.local.as_deref(),
                self.peer.as_deref(),
                Some(&id),
            );
            self.header_sent = true;
        }
        wire::stream_error(&mut self.out, cond, text);
        self.finish(CloseReason::SentError(cond));
    }

    fn on_header(&mut self, h: &StreamHeader, policy: &dyn StreamPolicy) {
        if self.state != State::AwaitHeader {
            return self.fail(
                StreamCondition::InvalidXml,
                Some("unexpected stream header"),
            );
        }
        // Keep to/from for our own header even when refusing (only if they look like domains).
        let to = h.to.as_deref().map(str::to_ascii_lowercase);
        let from = h.from.as_deref().map(str::to_ascii_lowercase);
        if let Some(t) = &to {
            if jid::check_domain(t).is_ok() && policy.serves(t) {
                self.local = Some(t.clone());
            }
        }
        if h.namespace.as_deref() != Some(wire::NS_STREAMS) || h.local_name != "stream" {
            return self.fail(StreamCondition::InvalidNamespace, None);
        }
        if h.default_ns.as_deref() != Some(wire::NS_SERVER) {
            return self.fail(
                StreamCondition::InvalidNamespace,
                Some("expected jabber:server"),
            );
        }
        match h.version.as_deref() {
            Some(v) if v.split('.').next() == Some("1") => {}
            _ => {
                return self.fail(
                    StreamCondition::UnsupportedVersion,
                    Some("version 1.0 required"),
                )
            }
        }
        let Some(to) = to else {
            return self.fail(StreamCondition::ImproperAddressing, Some("missing 'to'"));
        };
        if self.local.is_none() {
            return self.fail(StreamCondition::HostUnknown, None);
        }
        // A peer that already authenticated cannot rename itself on restart.
        if self.sasl_done && from.as_deref() != self.peer.as_deref() {
            return self.fail(StreamCondition::InvalidFrom, None);
        }
        match from {
            Some(f) => {
                if jid::check_domain(&f).is_err() {
                    return self.fail(
                        StreamCondition::ImproperAddressing,
                        Some("malformed 'from'"),
                    );
                }
                let Some(p) = policy.policy_for(&f) else {
                    self.peer = Some(f);
                    return self.fail(
                        StreamCondition::PolicyViolation,
                        Some("federation with this domain is not allowed"),
                    );
                };
                if self.peer.is_none() {
                    self.events.push_back(InboundEvent::PeerNamed(f.clone()));
                }
                self.deadlines.keepalive = p.keepalive;
                self.peer = Some(f);
                self.peer_policy = Some(p);
            }
            None => {
                // Verification-only connections from older servers omit 'from': they may use
                // db:verify and STARTTLS, nothing that needs the peer's identity.
                self.peer = None;
                self.peer_policy = None;
            }
        }
        self.stream_id = wire::new_stream_id();
        wire::stream_header(
            &mut self.out,
            Some(&to),
            self.peer.as_deref(),
            Some(&self.stream_id),
        );
        self.header_sent = true;
        let features = self.features(policy);
        if !self.sasl_done
            && self.tls_active
            && !features.sasl_external
            && !features.dialback
            && self.peer_policy.is_some()
        {
            return self.fail(
                StreamCondition::UnsupportedFeature,
                Some("no authentication method: certificate not trusted and dialback not allowed"),
            );
        }
        wire::features(&mut self.out, features);
        self.state = State::Negotiating;
    }

    fn features(&self, policy: &dyn StreamPolicy) -> Features {
        if self.sasl_done {
            return Features::default();
        }
        let p = self.peer_policy.as_ref();
        let tls = p.map_or(Negotiation::Optional, |p| p.tls);
        let mut f = Features::default();
        if !self.tls_active && tls != Negotiation::NotSupported {
            f.starttls = Some(tls == Negotiation::Required);
            if tls == Negotiation::Required {
                // Mandatory-to-negotiate: nothing else until TLS is up.
                return f;
            }
        }
        if let (Some(p), Some(peer)) = (p, self.peer.as_deref()) {
            f.sasl_external = self.tls_active
                && p.sasl != Negotiation::NotSupported
                && policy.certificate_trusted(&self.peer_chain, peer);
            f.dialback = dialback_allowed(p, self.tls_active);
        } else {
            f.dialback = true;
        }
        f
    }

    fn tls_required(&self) -> bool {
        self.peer_policy
            .as_ref()
            .is_some_and(|p| p.tls == Negotiation::Required)
    }

    fn on_element(&mut self, s: Stanza, policy: &dyn StreamPolicy) {
        match s.kind() {
            StanzaKind::StartTls => self.on_starttls(),
            StanzaKind::SaslAuth => self.on_sasl_auth(&s, policy),
            StanzaKind::DialbackResult => self.on_db_result(&s, policy),
            StanzaKind::DialbackVerify => self.on_db_verify(&s, policy),
            StanzaKind::Message | StanzaKind::Presence | StanzaKind::Iq => self.on_stanza(s),
            StanzaKind::StreamError => {
                let text = s
                    .first_child()
                    .map(|c| c.local_name.to_string())
                    .unwrap_or_default();
                wire::stream_close(&mut self.out);
                self.finish(CloseReason::ReceivedError(text));
            }
            _ => self.fail(StreamCondition::UnsupportedStanzaType, None),
        }
    }

    fn on_starttls(&mut self) {
        let allowed = self
            .peer_policy
            .as_ref()
            .is_none_or(|p| p.tls != Negotiation::NotSupported);
        // TLS comes first: after a domain authenticated (dialback in the clear) the stream cannot be
        // upgraded and renamed underneath that authentication.
        if self.tls_active
            || !allowed
            || self.state != State::Negotiating
            || !self.authenticated.is_empty()
        {
            wire::tls_element(&mut self.out, "failure");
            wire::stream_close(&mut self.out);
            return self.finish(CloseReason::SentError(StreamCondition::PolicyViolation));
        }
        wire::tls_element(&mut self.out, "proceed");
        // Anything pipelined after <starttls/> is cleartext injection: discard it (protocol-facts §5).
        let _discarded = self.framer.reset();
        self.state = State::TlsHandshake;
        self.events.push_back(InboundEvent::StartTls);
    }

    fn on_sasl_auth(&mut self, s: &Stanza, policy: &dyn StreamPolicy) {
        if self.tls_required() && !self.tls_active {
            return self.fail(StreamCondition::PolicyViolation, Some("TLS required"));
        }
        let (Some(peer), Some(p)) = (self.peer.clone(), self.peer_policy.as_ref()) else {
            wire::sasl_failure(&mut self.out, "not-authorized");
            return;
        };
        if mechanism(s).as_deref() != Some("EXTERNAL") {
            wire::sasl_failure(&mut self.out, "invalid-mechanism");
            return;
        }
        if self.sasl_done
            || !self.tls_active
            || p.sasl == Negotiation::NotSupported
            || !policy.certificate_trusted(&self.peer_chain, &peer)
        {
            wire::sasl_failure(&mut self.out, "not-authorized");
            return;
        }
        // The initial response is the authzid: empty ("=") or the peer's own domain. Anything else
        // is refused, not ignored (XEP-0178 §3, protocol-facts §5).
        let payload = s.text().map(|t| t.trim().to_string()).unwrap_or_default();
        let authzid_ok = if payload.is_empty() || payload == "=" {
            true
        } else {
            match base64_decode(&payload) {
                Some(id) => std::str::from_utf8(&id).is_ok_and(|id| jid::same_domain(id, &peer)),
                None => {
                    wire::sasl_failure(&mut self.out, "incorrect-encoding");
                    return;
                }
            }
        };
        if !authzid_ok {
            wire::sasl_failure(&mut self.out, "invalid-authzid");
            return;
        }
        wire::sasl_success(&mut self.out);
        self.sasl_done = true;
        // Stream restart: the parser starts afresh; nothing after <auth/> is legitimate yet.
        self.framer.reset();
        self.state = State::AwaitHeader;
        self.header_sent = false;
        self.authenticate(peer, AuthMethod::SaslExternal);
    }

    fn on_db_result(&mut self, s: &Stanza, policy: &dyn StreamPolicy) {
        if self.tls_required() && !self.tls_active {
            return self.fail(StreamCondition::PolicyViolation, Some("TLS required"));
        }
        let (Some(from), Some(to)) = (s.from(), s.to()) else {
            return self.fail(
                StreamCondition::ImproperAddressing,
                Some("db:result needs from and to"),
            );
        };
        let (from, to) = (from.to_ascii_lowercase(), to.to_ascii_lowercase());
        if s.stanza_type().is_some() {
            // A db:result with a type is an answer; we never asked on an inbound stream.
            return self.fail(StreamCondition::UnsupportedStanzaType, None);
        }
        if jid::check_domain(&from).is_err() || jid::check_domain(&to).is_err() {
            return self.fail(StreamCondition::ImproperAddressing, None);
        }
        if !policy.serves(&to) {
            wire::db_answer(
                &mut self.out,
                DbElement::Result,
                &to,
                &from,
                None,
                Err(StanzaCondition::ItemNotFound),
            );
            return;
        }
        let Some(p) = policy.policy_for(&from) else {
            wire::db_answer(
                &mut self.out,
                DbElement::Result,
                &to,
                &from,
                None,
                Err(StanzaCondition::Forbidden),
            );
            return;
        };
        if !dialback_allowed(&p, self.tls_active) {
            wire::db_answer(
                &mut self.out,
                DbElement::Result,
                &to,
                &from,
                None,
                Err(StanzaCondition::NotAllowed),
            );
            return;
        }
        if self
            .authenticated
            .iter()
            .any(|d| jid::same_domain(d, &from))
        {
            wire::db_answer(&mut self.out, DbElement::Result, &to, &from, None, Ok(true));
            return;
        }
        if self.pending_verify.len() >= 8 {
            return self.fail(
                StreamCondition::PolicyViolation,
                Some("too many pending dialback requests"),
            );
        }
        let key = match s.text() {
            Ok(k) if !k.trim().is_empty() => k.trim().to_string(),
            _ => return self.fail(StreamCondition::NotAuthorized, Some("empty dialback key")),
        };
        self.pending_verify.push((from.clone(), to.clone()));
        self.events.push_back(InboundEvent::VerifyKey {
            originating: from,
            receiving: to,
            stream_id: self.stream_id.clone(),
            key,
        });
    }

    fn on_db_verify(&mut self, s: &Stanza, policy: &dyn StreamPolicy) {
        // We are the authoritative server: a receiving server asks whether our key is genuine.
        let (Some(from), Some(to), Some(id)) = (s.from(), s.to(), s.id()) else {
            return self.fail(
                StreamCondition::ImproperAddressing,
                Some("db:verify needs from, to and id"),
            );
        };
        let (from, to, id) = (
            from.to_ascii_lowercase(),
            to.to_ascii_lowercase(),
            id.to_string(),
        );
        if s.stanza_type().is_some() {
            return self.fail(StreamCondition::UnsupportedStanzaType, None);
        }
        let tls_required = policy
            .policy_for(&from)
            .is_some_and(|p| p.tls == Negotiation::Required);
        if tls_required && !self.tls_active {
            return self.fail(StreamCondition::PolicyViolation, Some("TLS required"));
        }
        if !policy.serves(&to) {
            wire::db_answer(
                &mut self.out,
                DbElement::Verify,
                &to,
                &from,
                Some(&id),
                Err(StanzaCondition::ItemNotFound),
            );
            return;
        }
        let key = s.text().map(|k| k.trim().to_string()).unwrap_or_default();
        let valid = policy.dialback().verify(&from, &to, &id, &key);
        wire::db_answer(
            &mut self.out,
            DbElement::Verify,
            &to,
            &from,
            Some(&id),
            Ok(valid),
        );
    }

    fn on_stanza(&mut self, s: Stanza) {
        if self.tls_required() && !self.tls_active {
            return self.fail(StreamCondition::PolicyViolation, Some("TLS required"));
        }
        if self.authenticated.is_empty() {
            return self.fail(StreamCondition::NotAuthorized, None);
        }
        let ok_from = match s.from() {
            None => return self.fail(StreamCondition::ImproperAddressing, Some("missing 'from'")),
            Some(f) => match Jid::parse(&f) {
                Err(_) => {
                    return self.fail(
                        StreamCondition::ImproperAddressing,
                        Some("malformed 'from'"),
                    )
                }
                Ok(j) => self
                    .authenticated
                    .iter()
                    .any(|d| jid::same_domain(d, j.domain)),
            },
        };
        if !ok_from {
            return self.fail(StreamCondition::InvalidFrom, None);
        }
        match s.to() {
            None => return self.fail(StreamCondition::ImproperAddressing, Some("missing 'to'")),
            Some(t) => match Jid::parse(&t) {
                Err(_) => {
                    return self.fail(StreamCondition::ImproperAddressing, Some("malformed 'to'"))
                }
                Ok(j) => {
                    if self
                        .local
                        .as_deref()
                        .is_none_or(|l| !jid::same_domain(l, j.domain))
                    {
                        return self.fail(StreamCondition::HostUnknown, None);
                    }
                }
            },
        }
        self.events.push_back(InboundEvent::Stanza(s));
    }

    fn authenticate(&mut self, domain: String, method: AuthMethod) {
        if self
            .authenticated
            .iter()
            .any(|d| jid::same_domain(d, &domain))
        {
            return;
        }
        if self.authenticated.is_empty() {
            self.deadlines.established_by = None;
            self.framer.set_limits(self.limits.after_auth);
        }
        self.authenticated.push(domain.clone());
        self.events
            .push_back(InboundEvent::Authenticated { domain, method });
    }
}

/// The `mechanism` attribute of a SASL `<auth/>` (not a header attribute the framer indexes).
fn mechanism(s: &Stanza) -> Option<String> {
    let mut r = quick_xml::Reader::from_reader(s.as_bytes());
    match r.read_event() {
        Ok(quick_xml::events::Event::Start(e)) | Ok(quick_xml::events::Event::Empty(e)) => e
            .attributes()
            .flatten()
            .find(|a| a.key.as_ref() == b"mechanism")
            .and_then(|a| a.unescape_value().ok().map(|v| v.into_owned())),
        _ => None,
    }
}

/// Dialback is allowed by the partner policy, never when SASL is required (Lync matrix), and only
/// over TLS when TLS is required (the Openfire lesson, protocol-facts §5).
pub(crate) fn dialback_allowed(p: &PartnerPolicy, tls_active: bool) -> bool {
    p.dialback && p.sasl != Negotiation::Required && (tls_active || p.tls != Negotiation::Required)
}

/// Strict base64 (standard alphabet, padding optional) for the SASL initial response.
pub(crate) fn base64_decode(s: &str) -> Option<Vec<u8>> {
    fn val(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let t = s.trim_end_matches('=');
    if s.len() - t.len() > 2 || t.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(t.len() * 3 / 4);
    for chunk in t.as_bytes().chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= val(c)? << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

/// Standard base64 with padding.
pub(crate) fn base64_encode(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let mut acc = 0u32;
        for (i, &b) in chunk.iter().enumerate() {
            acc |= (b as u32) << (16 - 8 * i);
        }
        for i in 0..4 {
            if i <= chunk.len() {
                s.push(A[((acc >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xmpp::stream::testing::*;
    use std::time::Duration;

    struct Dialogue {
        s: InboundStream,
        p: FakePolicy,
        now: Instant,
        out: Vec<u8>,
    }

    impl Dialogue {
        fn new(p: FakePolicy, tls: bool) -> Self {
            let now = t0();
            let chain = if tls { some_chain() } else { Vec::new() };
            Dialogue {
                s: InboundStream::new(limits(), timeouts(), tls, chain, now),
                p,
                now,
                out: Vec::new(),
            }
        }
        fn send(&mut self, bytes: &str) -> String {
            self.s.handle_bytes(bytes.as_bytes(), self.now, &self.p);
            self.s.take_output(&mut self.out, self.now);
            String::from_utf8(self.out.clone()).unwrap()
        }
        fn events(&mut self) -> Vec<InboundEvent> {
            std::iter::from_fn(|| self.s.poll_event()).collect()
        }
        fn closed_with(&mut self) -> Option<StreamCondition> {
            self.events().into_iter().find_map(|e| match e {
                InboundEvent::Closed(CloseReason::SentError(c)) => Some(c),
                _ => None,
            })
        }
    }

    fn dialback_partner() -> FakePolicy {
        FakePolicy::new(vec![partner(
            "a.test",
            Negotiation::Optional,
            Negotiation::Optional,
            true,
        )])
    }

    #[test]
    fn answers_header_with_features_offering_starttls_and_dialback() {
        let mut d = Dialogue::new(dialback_partner(), false);
        let out = d.send(&peer_header("a.test", "corp.test"));
        assert!(out.contains("<stream:stream"), "{out}");
        assert!(out.contains("from='corp.test'") && out.contains("to='a.test'"));
        assert!(out.contains("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'></starttls>"));
        assert!(out.contains("urn:xmpp:features:dialback"));
        assert!(!out.contains("EXTERNAL"));
    }

    #[test]
    fn required_tls_is_the_only_feature_before_tls() {
        let p = FakePolicy::new(vec![partner(
            "a.test",
            Negotiation::Required,
            Negotiation::Optional,
            true,
        )]);
        let mut d = Dialogue::new(p, false);
        let out = d.send(&peer_header("a.test", "corp.test"));
        assert!(out.contains("<required/>"));
        assert!(!out.contains("dialback xmlns"));
    }

    #[test]
    fn stanza_before_tls_when_required_is_policy_violation() {
        let p = FakePolicy::new(vec![partner(
            "a.test",
            Negotiation::Required,
            Negotiation::Optional,
            true,
        )]);
        let mut d = Dialogue::new(p, false);
        d.send(&peer_header("a.test", "corp.test"));
        let out = d.send("<message from='x@a.test' to='bob@corp.test'><body>hi</body></message>");
        assert!(out.contains("<policy-violation"), "{out}");
        assert_eq!(d.closed_with(), Some(StreamCondition::PolicyViolation));
    }

    #[test]
    fn stanza_before_authentication_is_not_authorized() {
        let mut d = Dialogue::new(dialback_partner(), false);
        d.send(&peer_header("a.test", "corp.test"));
        let out = d.send("<message from='x@a.test' to='bob@corp.test'/>");
        assert!(out.contains("<not-authorized"));
        assert_eq!(d.closed_with(), Some(StreamCondition::NotAuthorized));
    }

    #[test]
    fn header_errors_follow_our_own_header() {
        let cases = [
            ("<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' from='a.test' to='corp.test' version='1.0'>", StreamCondition::InvalidNamespace),
            ("<stream:stream xmlns='jabber:server' xmlns:stream='urn:wrong' from='a.test' to='corp.test' version='1.0'>", StreamCondition::InvalidNamespace),
            ("<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' from='a.test' version='1.0'>", StreamCondition::ImproperAddressing),
            ("<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' from='a.test' to='other.test' version='1.0'>", StreamCondition::HostUnknown),
            ("<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' from='a.test' to='corp.test' version='2.0'>", StreamCondition::UnsupportedVersion),
            ("<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' from='unlisted.test' to='corp.test' version='1.0'>", StreamCondition::PolicyViolation),
            ("<'/>", StreamCondition::NotWellFormed),
        ];
        for (header, cond) in cases {
            let mut d = Dialogue::new(dialback_partner(), false);
            let out = d.send(header);
            assert!(
                out.starts_with("<?xml version='1.0'?><stream:stream"),
                "{header}: {out}"
            );
            assert!(
                out.contains(&format!(
                    "<{} xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>",
                    cond.as_str()
                )),
                "{header}: {out}"
            );
            assert!(out.ends_with("</stream:stream>"));
            assert_eq!(d.closed_with(), Some(cond), "{header}");
        }
    }

    #[test]
    fn starttls_discards_cleartext_pipelined_after_it() {
        let mut d = Dialogue::new(dialback_partner(), false);
        d.send(&peer_header("a.test", "corp.test"));
        let out = d.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/><message from='x@a.test' to='bob@corp.test'/>");
        assert!(
            out.ends_with("<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"),
            "{out}"
        );
        let evs = d.events();
        assert!(
            matches!(evs.last(), Some(InboundEvent::StartTls)),
            "{evs:?}"
        );
        assert!(!evs
            .iter()
            .any(|e| matches!(e, InboundEvent::Stanza(_) | InboundEvent::Closed(_))));
        d.s.tls_established(Vec::new(), d.now);
        let out = d.send(&peer_header("a.test", "corp.test"));
        assert!(
            out.contains("<stream:features>") && !out.contains("starttls"),
            "{out}"
        );
    }

    fn dialback_authenticate(d: &mut Dialogue) {
        d.send(&peer_header("a.test", "corp.test"));
        d.events();
        d.send("<db:result from='a.test' to='corp.test'>abcdef</db:result>");
        let evs = d.events();
        let Some(InboundEvent::VerifyKey {
            originating,
            receiving,
            key,
            stream_id,
        }) = evs.into_iter().next()
        else {
            panic!("expected a verify request")
        };
        assert_eq!(
            (originating.as_str(), receiving.as_str(), key.as_str()),
            ("a.test", "corp.test", "abcdef")
        );
        assert_eq!(stream_id, d.s.stream_id());
        d.s.dialback_verified("a.test", "corp.test", Ok(true));
        d.s.take_output(&mut d.out, d.now);
        let out = String::from_utf8(d.out.clone()).unwrap();
        assert!(
            out.contains("<db:result from='corp.test' to='a.test' type='valid'/>"),
            "{out}"
        );
    }

    #[test]
    fn receiving_server_dialback_authenticates_after_verification() {
        let mut d = Dialogue::new(dialback_partner(), false);
        dialback_authenticate(&mut d);
        assert!(d.events().iter().any(|e| matches!(
            e,
            InboundEvent::Authenticated {
                method: AuthMethod::Dialback,
                ..
            }
        )));
        d.send("<iq from='alice@a.test/r' to='corp.test' id='p1' type='get'><ping xmlns='urn:xmpp:ping'/></iq>");
        assert!(matches!(d.events().as_slice(), [InboundEvent::Stanza(_)]));
    }

    #[test]
    fn verification_answers_we_did_not_ask_for_are_ignored() {
        let mut d = Dialogue::new(dialback_partner(), false);
        d.send(&peer_header("a.test", "corp.test"));
        d.s.dialback_verified("a.test", "corp.test", Ok(true));
        assert!(!d
            .events()
            .iter()
            .any(|e| matches!(e, InboundEvent::Authenticated { .. })));
        assert!(d.s.authenticated().is_empty());
    }

    #[test]
    fn invalid_dialback_key_does_not_authenticate() {
        let mut d = Dialogue::new(dialback_partner(), false);
        d.send(&peer_header("a.test", "corp.test"));
        d.send("<db:result from='a.test' to='corp.test'>k</db:result>");
        d.events();
        d.s.dialback_verified("a.test", "corp.test", Ok(false));
        d.s.take_output(&mut d.out, d.now);
        assert!(String::from_utf8_lossy(&d.out).contains("type='invalid'"));
        assert!(d.s.authenticated().is_empty());
    }

    #[test]
    fn starttls_after_cleartext_dialback_is_refused() {
        let mut d = Dialogue::new(dialback_partner(), false);
        dialback_authenticate(&mut d);
        d.events();
        let out = d.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
        assert!(
            out.contains("<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"),
            "{out}"
        );
        assert!(!d
            .events()
            .iter()
            .any(|e| matches!(e, InboundEvent::StartTls)));
        assert!(d.s.is_closed());
    }

    #[test]
    fn stanza_from_unauthenticated_domain_is_invalid_from() {
        let mut d = Dialogue::new(dialback_partner(), false);
        dialback_authenticate(&mut d);
        d.events();
        let out = d.send("<message from='mallory@evil.test' to='bob@corp.test'/>");
        assert!(out.contains("<invalid-from"), "{out}");
    }

    #[test]
    fn stanza_to_foreign_domain_is_host_unknown() {
        let mut d = Dialogue::new(dialback_partner(), false);
        dialback_authenticate(&mut d);
        d.events();
        let out = d.send("<message from='alice@a.test' to='bob@elsewhere.test'/>");
        assert!(out.contains("<host-unknown"), "{out}");
    }

    #[test]
    fn authoritative_server_answers_verify_for_its_own_keys() {
        let p = dialback_partner();
        let key = p.secret.key("a.test", "corp.test", "sid-1");
        let mut d = Dialogue::new(p, false);
        d.send(&peer_header("a.test", "corp.test"));
        let out = d.send(&format!(
            "<db:verify from='a.test' to='corp.test' id='sid-1'>{key}</db:verify>"
        ));
        assert!(
            out.contains("<db:verify from='corp.test' to='a.test' id='sid-1' type='valid'/>"),
            "{out}"
        );
        let out = d.send("<db:verify from='a.test' to='corp.test' id='sid-2'>0000</db:verify>");
        assert!(out.contains("id='sid-2' type='invalid'"), "{out}");
    }

    #[test]
    fn sasl_external_requires_a_trusted_certificate() {
        let mut p = FakePolicy::new(vec![partner(
            "a.test",
            Negotiation::Required,
            Negotiation::Optional,
            true,
        )]);
        p.trusted = true;
        let mut d = Dialogue::new(p, true);
        let out = d.send(&peer_header("a.test", "corp.test"));
        assert!(out.contains("<mechanism>EXTERNAL</mechanism>"), "{out}");
        let out =
            d.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>=</auth>");
        assert!(
            out.ends_with("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>"),
            "{out}"
        );
        assert!(d.events().iter().any(|e| matches!(
            e,
            InboundEvent::Authenticated {
                method: AuthMethod::SaslExternal,
                ..
            }
        )));
        let out = d.send(&peer_header("a.test", "corp.test"));
        assert!(
            out.ends_with("<stream:features></stream:features>"),
            "{out}"
        );
    }

    #[test]
    fn sasl_external_refuses_an_authzid_the_certificate_does_not_cover() {
        let mut p = FakePolicy::new(vec![partner(
            "a.test",
            Negotiation::Required,
            Negotiation::Optional,
            true,
        )]);
        p.trusted = true;
        let mut d = Dialogue::new(p, true);
        d.send(&peer_header("a.test", "corp.test"));
        // base64("evil.test")
        let out = d.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>ZXZpbC50ZXN0</auth>");
        assert!(out.contains("<invalid-authzid/>"), "{out}");
        assert!(d.s.authenticated().is_empty());
    }

    #[test]
    fn untrusted_certificate_without_dialback_leaves_no_method() {
        let p = FakePolicy::new(vec![partner(
            "a.test",
            Negotiation::Required,
            Negotiation::Required,
            false,
        )]);
        let mut d = Dialogue::new(p, true);
        let out = d.send(&peer_header("a.test", "corp.test"));
        assert!(out.contains("<unsupported-feature"), "{out}");
    }

    #[test]
    fn dialback_is_refused_when_sasl_is_required() {
        let mut p = FakePolicy::new(vec![partner(
            "a.test",
            Negotiation::Required,
            Negotiation::Required,
            true,
        )]);
        p.trusted = true;
        let mut d = Dialogue::new(p, true);
        d.send(&peer_header("a.test", "corp.test"));
        d.events();
        let out = d.send("<db:result from='a.test' to='corp.test'>k</db:result>");
        assert!(
            out.contains("type='error'") && out.contains("<not-allowed"),
            "{out}"
        );
        assert!(!d
            .events()
            .iter()
            .any(|e| matches!(e, InboundEvent::VerifyKey { .. })));
    }

    #[test]
    fn establishment_timeout_closes_with_connection_timeout() {
        let mut d = Dialogue::new(dialback_partner(), false);
        d.send(&peer_header("a.test", "corp.test"));
        let deadline = d.s.poll_timeout().unwrap();
        assert_eq!(deadline, d.now + Duration::from_secs(60));
        d.s.handle_timeout(deadline);
        d.s.take_output(&mut d.out, deadline);
        assert!(String::from_utf8_lossy(&d.out).contains("<connection-timeout"));
        assert_eq!(d.closed_with(), Some(StreamCondition::ConnectionTimeout));
    }

    #[test]
    fn keepalive_whitespace_after_idle_interval() {
        let mut d = Dialogue::new(dialback_partner(), false);
        dialback_authenticate(&mut d);
        let later = d.now + Duration::from_secs(300);
        assert!(d.s.poll_timeout().unwrap() <= later);
        d.s.handle_timeout(later);
        d.s.take_output(&mut d.out, later);
        assert_eq!(d.out, b" ");
        assert!(!d.s.is_closed());
    }

    fn authenticated_dialogue() -> Dialogue {
        let mut d = Dialogue::new(dialback_partner(), false);
        dialback_authenticate(&mut d);
        d.events();
        d
    }

    /// Asserts the stream ended with exactly `cond` written as a stream error.
    fn assert_stream_error(d: &mut Dialogue, out: &str, cond: StreamCondition) {
        assert!(
            out.contains(&format!(
                "<stream:error><{} xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>",
                cond.as_str()
            )),
            "{out}"
        );
        assert!(out.ends_with("</stream:stream>"), "{out}");
        let evs = d.events();
        assert!(
            !evs.iter().any(|e| matches!(e, InboundEvent::Stanza(_))),
            "{evs:?}"
        );
        let closed = evs.iter().find_map(|e| match e {
            InboundEvent::Closed(r) => Some(r.clone()),
            _ => None,
        });
        assert_eq!(closed, Some(CloseReason::SentError(cond)));
        assert!(d.s.is_closed());
    }

    #[test]
    fn comment_or_processing_instruction_is_restricted_xml() {
        for junk in [
            "<!-- a comment -->",
            "<message from='alice@a.test' to='bob@corp.test'><!--x--></message>",
            "<?pi data?>",
            "<message from='alice@a.test' to='bob@corp.test'><?pi data?></message>",
        ] {
            let mut d = authenticated_dialogue();
            let out = d.send(junk);
            assert_stream_error(&mut d, &out, StreamCondition::RestrictedXml);
        }
    }

    #[test]
    fn nested_stream_header_is_invalid_xml() {
        let mut d = authenticated_dialogue();
        let out = d.send("<message from='alice@a.test' to='bob@corp.test'><stream:stream>");
        assert_stream_error(&mut d, &out, StreamCondition::InvalidXml);
    }

    #[test]
    fn second_header_mid_stream_is_invalid_xml() {
        let mut d = authenticated_dialogue();
        let header = peer_header("a.test", "corp.test");
        let bare = header
            .strip_prefix("<?xml version='1.0'?>")
            .expect("the header starts with a declaration");
        let out = d.send(bare);
        assert_stream_error(&mut d, &out, StreamCondition::InvalidXml);
        // With its XML declaration, the declaration itself is a misplaced processing instruction.
        let mut d = authenticated_dialogue();
        let out = d.send(&header);
        assert_stream_error(&mut d, &out, StreamCondition::RestrictedXml);
    }

    #[test]
    fn oversized_stanza_before_authentication_is_policy_violation() {
        let mut d = Dialogue::new(dialback_partner(), false);
        d.send(&peer_header("a.test", "corp.test"));
        d.events();
        let key = "k".repeat(limits().before_auth.max_stanza_bytes);
        let out = d.send(&format!(
            "<db:result from='a.test' to='corp.test'>{key}</db:result>"
        ));
        assert_stream_error(&mut d, &out, StreamCondition::PolicyViolation);
    }

    #[test]
    fn authentication_raises_the_stanza_cap_to_the_post_auth_one() {
        let mut d = authenticated_dialogue();
        let body = "b".repeat(limits().before_auth.max_stanza_bytes);
        d.send(&format!(
            "<message from='alice@a.test' to='bob@corp.test'><body>{body}</body></message>"
        ));
        assert!(matches!(d.events().as_slice(), [InboundEvent::Stanza(_)]));
        let body = "b".repeat(limits().after_auth.max_stanza_bytes);
        let out = d.send(&format!(
            "<message from='alice@a.test' to='bob@corp.test'><body>{body}</body></message>"
        ));
        assert_stream_error(&mut d, &out, StreamCondition::PolicyViolation);
    }

    #[test]
    fn unknown_top_level_element_after_auth_is_unsupported_stanza_type() {
        let mut d = authenticated_dialogue();
        let out = d.send("<foo xmlns='urn:example:foo' from='alice@a.test' to='corp.test'/>");
        assert_stream_error(&mut d, &out, StreamCondition::UnsupportedStanzaType);
    }

    #[test]
    fn unbound_prefix_is_bad_namespace_prefix() {
        let mut d = authenticated_dialogue();
        let out = d.send("<x:message from='alice@a.test' to='bob@corp.test'/>");
        assert_stream_error(&mut d, &out, StreamCondition::BadNamespacePrefix);
    }

    #[test]
    fn peer_close_is_answered_with_our_close() {
        let mut d = authenticated_dialogue();
        assert_eq!(d.send("</stream:stream>"), "</stream:stream>");
        let evs = d.events();
        assert!(
            matches!(
                evs.as_slice(),
                [InboundEvent::Closed(CloseReason::PeerClosed)]
            ),
            "{evs:?}"
        );
        assert!(d.s.is_closed());
        assert_eq!(d.s.poll_timeout(), None);
    }

    #[test]
    fn starttls_is_refused_when_policy_does_not_support_tls() {
        let p = FakePolicy::new(vec![partner(
            "a.test",
            Negotiation::NotSupported,
            Negotiation::NotSupported,
            true,
        )]);
        let mut d = Dialogue::new(p, false);
        let out = d.send(&peer_header("a.test", "corp.test"));
        assert!(!out.contains("starttls"), "not offered: {out}");
        d.events();
        let out = d.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
        assert_eq!(
            out,
            "<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:stream>"
        );
        let evs = d.events();
        assert!(
            !evs.iter().any(|e| matches!(e, InboundEvent::StartTls)),
            "{evs:?}"
        );
        assert!(matches!(evs.as_slice(), [InboundEvent::Closed(_)]));
        assert!(d.s.is_closed());
    }

    #[test]
    fn sasl_mechanism_other_than_external_is_invalid_mechanism() {
        let mut p = FakePolicy::new(vec![partner(
            "a.test",
            Negotiation::Required,
            Negotiation::Optional,
            true,
        )]);
        p.trusted = true;
        let mut d = Dialogue::new(p, true);
        d.send(&peer_header("a.test", "corp.test"));
        d.events();
        let out = d.send(
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGEAYg==</auth>",
        );
        assert_eq!(
            out,
            "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><invalid-mechanism/></failure>"
        );
        assert!(d.events().is_empty());
        assert!(d.s.authenticated().is_empty() && !d.s.is_closed());
    }

    #[test]
    fn dialback_for_a_domain_we_do_not_serve_is_item_not_found() {
        let mut d = Dialogue::new(dialback_partner(), false);
        d.send(&peer_header("a.test", "corp.test"));
        d.events();
        let out = d.send("<db:result from='a.test' to='other.test'>k</db:result>");
        assert_eq!(
            out,
            "<db:result from='other.test' to='a.test' type='error'><error type='cancel'>\
             <item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></db:result>"
        );
        assert!(d.events().is_empty(), "nothing to verify");
        assert!(!d.s.is_closed());
    }

    #[test]
    fn more_than_eight_pending_dialback_requests_is_policy_violation() {
        let domains: Vec<String> = (0..9).map(|i| format!("d{i}.test")).collect();
        let partners = std::iter::once("a.test".to_string())
            .chain(domains.iter().cloned())
            .map(|dom| partner(&dom, Negotiation::Optional, Negotiation::Optional, true))
            .collect();
        let mut d = Dialogue::new(FakePolicy::new(partners), false);
        d.send(&peer_header("a.test", "corp.test"));
        d.events();
        for dom in &domains[..8] {
            assert_eq!(
                d.send(&format!(
                    "<db:result from='{dom}' to='corp.test'>k</db:result>"
                )),
                ""
            );
        }
        let asked = d
            .events()
            .iter()
            .filter(|e| matches!(e, InboundEvent::VerifyKey { .. }))
            .count();
        assert_eq!(asked, 8);
        let out = d.send("<db:result from='d8.test' to='corp.test'>k</db:result>");
        assert_stream_error(&mut d, &out, StreamCondition::PolicyViolation);
    }
}
