//! Test support for the sans-IO streams: a policy with fixed answers and a byte-level peer script.

use std::time::{Duration, Instant};

use rustls_pki_types::CertificateDer;

use super::inbound::PhaseLimits;
use super::{StreamPolicy, StreamTimeouts};
use crate::config::{Negotiation, PartnerPolicy, PartnerType};
use crate::xml::FramerLimits;
use crate::xmpp::dialback::DialbackSecret;

pub struct FakePolicy {
    pub ours: Vec<&'static str>,
    pub partners: Vec<PartnerPolicy>,
    pub trusted: bool,
    pub secret: DialbackSecret,
}

pub fn partner(domain: &str, tls: Negotiation, sasl: Negotiation, dialback: bool) -> PartnerPolicy {
    PartnerPolicy {
        domain: domain.to_string(),
        kind: PartnerType::Federated,
        tls,
        sasl,
        dialback,
        keepalive: true,
        connection_limit: 20,
        proxy: None,
        listed: true,
    }
}

impl FakePolicy {
    pub fn new(partners: Vec<PartnerPolicy>) -> Self {
        FakePolicy {
            ours: vec!["corp.test"],
            partners,
            trusted: false,
            secret: DialbackSecret::new(b"test secret"),
        }
    }
}

impl StreamPolicy for FakePolicy {
    fn serves(&self, domain: &str) -> bool {
        self.ours.iter().any(|d| d.eq_ignore_ascii_case(domain))
    }
    fn policy_for(&self, domain: &str) -> Option<PartnerPolicy> {
        self.partners
            .iter()
            .find(|p| p.domain.eq_ignore_ascii_case(domain))
            .cloned()
    }
    fn certificate_trusted(&self, chain: &[CertificateDer<'static>], _domain: &str) -> bool {
        self.trusted && !chain.is_empty()
    }
    fn dialback(&self) -> &DialbackSecret {
        &self.secret
    }
}

pub fn limits() -> PhaseLimits {
    let before = FramerLimits {
        max_stanza_bytes: 10_000,
        ..FramerLimits::default()
    };
    PhaseLimits {
        before_auth: before,
        after_auth: FramerLimits {
            max_stanza_bytes: 524_288,
            ..before
        },
    }
}

pub fn timeouts() -> StreamTimeouts {
    StreamTimeouts {
        establishment: Duration::from_secs(60),
        inactivity: Duration::from_secs(600),
        keepalive: Duration::from_secs(300),
    }
}

pub fn t0() -> Instant {
    Instant::now()
}

/// The initiating header a peer `from` sends to `to`.
pub fn peer_header(from: &str, to: &str) -> String {
    format!(
        "<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' \
         xmlns:db='jabber:server:dialback' from='{from}' to='{to}' version='1.0'>"
    )
}

/// A dummy non-empty certificate chain (content is judged by the fake policy only).
pub fn some_chain() -> Vec<CertificateDer<'static>> {
    vec![CertificateDer::from(vec![0x30, 0x00])]
}

/// The responding header a peer `from` sends back to `to`, naming its stream `id`.
pub fn peer_response_header(from: &str, to: &str, id: &str) -> String {
    format!(
        "<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' \
         xmlns:db='jabber:server:dialback' from='{from}' to='{to}' id='{id}' version='1.0'>"
    )
}

/// `<stream:features>` offering STARTTLS (not required) and dialback.
pub const FEATURES_STARTTLS: &str = "<stream:features>\
    <starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>\
    <dialback xmlns='urn:xmpp:features:dialback'><errors/></dialback></stream:features>";

/// `<stream:features>` offering SASL EXTERNAL and dialback (what a peer offers after TLS).
pub const FEATURES_EXTERNAL: &str = "<stream:features>\
    <mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>EXTERNAL</mechanism></mechanisms>\
    <dialback xmlns='urn:xmpp:features:dialback'><errors/></dialback></stream:features>";

/// `<stream:features>` offering dialback only.
pub const FEATURES_DIALBACK: &str = "<stream:features>\
    <dialback xmlns='urn:xmpp:features:dialback'><errors/></dialback></stream:features>";

/// Empty `<stream:features/>`: negotiation is complete.
pub const FEATURES_NONE: &str = "<stream:features/>";
