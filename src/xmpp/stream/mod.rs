//! The S2S stream state machines, sans-IO.
//!
//! [`inbound::InboundStream`] is the receiving side of a stream a peer opened to us;
//! [`outbound::OutboundStream`] is a stream we open. Both take bytes (`handle_bytes`), TLS completion
//! (`tls_established`) and time (`handle_timeout(now)`), and are drained with `take_output`,
//! `poll_event` and `poll_timeout` — the driver only moves bytes and timers.

pub mod inbound;
pub mod outbound;
pub mod wire;

use std::time::{Duration, Instant};

use rustls_pki_types::CertificateDer;

use crate::config::PartnerPolicy;
use crate::xmpp::error::StreamCondition;

/// What a stream needs to know about configuration and certificates; implemented by the edge over
/// the live config, and by tests with fixed answers.
pub trait StreamPolicy {
    /// Whether we serve `domain` (an XMPP domain of ours).
    fn serves(&self, domain: &str) -> bool;
    /// The policy for a remote domain; `None` when it is refused.
    fn policy_for(&self, domain: &str) -> Option<PartnerPolicy>;
    /// Whether `chain` chains to our trust roots and names `domain` (RFC 9525).
    fn certificate_trusted(&self, chain: &[CertificateDer<'static>], domain: &str) -> bool;
    /// The dialback key secret.
    fn dialback(&self) -> &crate::xmpp::dialback::DialbackSecret;
}

/// How a remote domain was authenticated on a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// SASL EXTERNAL with a certificate (XEP-0178).
    SaslExternal,
    /// Server dialback (XEP-0220).
    Dialback,
}

impl AuthMethod {
    /// Short name for logs and metrics.
    pub const fn as_str(self) -> &'static str {
        match self {
            AuthMethod::SaslExternal => "sasl-external",
            AuthMethod::Dialback => "dialback",
        }
    }
}

/// Timeouts of a stream (from `[limits]`).
#[derive(Debug, Clone, Copy)]
pub struct StreamTimeouts {
    /// From TCP connect until the first domain is authenticated.
    pub establishment: Duration,
    /// No byte received for this long closes the stream.
    pub inactivity: Duration,
    /// Whitespace keepalive after this long without sending (when the partner wants keepalives).
    pub keepalive: Duration,
}

/// The reason a stream ended, for logs, metrics and bounces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// The peer closed the stream cleanly.
    PeerClosed,
    /// We sent a stream error (the peer misbehaved, or a limit/timeout hit).
    SentError(StreamCondition),
    /// The peer sent a stream error.
    ReceivedError(String),
    /// We closed (shutdown, done, idle).
    LocalClose,
    /// Negotiation could not reach an authenticated stream (outbound).
    NegotiationFailed(&'static str),
}

/// Deadline bookkeeping shared by both directions.
#[derive(Debug, Clone)]
pub(crate) struct Deadlines {
    pub timeouts: StreamTimeouts,
    pub established_by: Option<Instant>,
    /// Last traffic that counts as use: bytes received, or (outbound) a stanza sent. Keepalive
    /// whitespace does not count, so an unused stream still closes.
    pub last_rx: Instant,
    pub last_tx: Instant,
    pub keepalive: bool,
}

impl Deadlines {
    pub fn new(timeouts: StreamTimeouts, now: Instant) -> Self {
        Deadlines {
            timeouts,
            established_by: Some(now + timeouts.establishment),
            last_rx: now,
            last_tx: now,
            keepalive: false,
        }
    }

    pub fn next(&self) -> Instant {
        let mut t = self.last_rx + self.timeouts.inactivity;
        if let Some(e) = self.established_by {
            t = t.min(e);
        }
        if self.keepalive {
            t = t.min(self.last_tx + self.timeouts.keepalive);
        }
        t
    }

    /// What is due at `now`.
    pub fn due(&self, now: Instant) -> Due {
        if self.established_by.is_some_and(|e| now >= e) {
            return Due::EstablishmentTimeout;
        }
        if now >= self.last_rx + self.timeouts.inactivity {
            return Due::Inactive;
        }
        if self.keepalive && now >= self.last_tx + self.timeouts.keepalive {
            return Due::Keepalive;
        }
        Due::Nothing
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Due {
    Nothing,
    EstablishmentTimeout,
    Inactive,
    Keepalive,
}

#[cfg(test)]
pub(crate) mod testing;
