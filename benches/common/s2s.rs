//! Shared by `benches/s2s_stream.rs` and `examples/stream_instructions.rs`: a fixed stream
//! policy, a dialback-authenticated inbound stream, and a buffer of realistic messages.

use std::time::{Duration, Instant};

use rustls_pki_types::CertificateDer;
use stanza_router::config::{Negotiation, PartnerPolicy, PartnerType};
use stanza_router::xml::FramerLimits;
use stanza_router::xmpp::dialback::DialbackSecret;
use stanza_router::xmpp::stream::inbound::{InboundEvent, InboundStream, PhaseLimits};
use stanza_router::xmpp::stream::{StreamPolicy, StreamTimeouts};

/// Our domain.
pub const LOCAL: &str = "corp.test";
/// The federated partner, authenticated by dialback.
pub const REMOTE: &str = "a.test";
/// Read size of the driver.
pub const CHUNK: usize = 16 * 1024;

/// We serve [`LOCAL`]; [`REMOTE`] is a federated partner with TLS required and dialback allowed
/// (the common production case: direct TLS, no trusted client certificate).
pub struct BenchPolicy {
    partner: PartnerPolicy,
    secret: DialbackSecret,
}

impl BenchPolicy {
    /// The policy above.
    pub fn new() -> Self {
        BenchPolicy {
            partner: PartnerPolicy {
                domain: REMOTE.to_string(),
                kind: PartnerType::Federated,
                tls: Negotiation::Required,
                sasl: Negotiation::Optional,
                dialback: true,
                keepalive: true,
                connection_limit: 20,
                proxy: None,
                listed: true,
            },
            secret: DialbackSecret::new(b"bench secret"),
        }
    }
}

impl StreamPolicy for BenchPolicy {
    fn serves(&self, domain: &str) -> bool {
        domain.eq_ignore_ascii_case(LOCAL)
    }
    fn policy_for(&self, domain: &str) -> Option<PartnerPolicy> {
        domain
            .eq_ignore_ascii_case(&self.partner.domain)
            .then(|| self.partner.clone())
    }
    fn certificate_trusted(&self, _chain: &[CertificateDer<'static>], _domain: &str) -> bool {
        false
    }
    fn dialback(&self) -> &DialbackSecret {
        &self.secret
    }
}

fn limits() -> PhaseLimits {
    PhaseLimits {
        before_auth: FramerLimits::pre_auth(),
        after_auth: FramerLimits::post_auth(),
    }
}

fn timeouts() -> StreamTimeouts {
    StreamTimeouts {
        establishment: Duration::from_secs(60),
        inactivity: Duration::from_secs(600),
        keepalive: Duration::from_secs(300),
    }
}

/// The stream header [`REMOTE`] opens with.
pub const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:server' \
    xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' \
    from='a.test' to='corp.test' version='1.0'>";

/// A direct-TLS inbound stream from [`REMOTE`] after header, `db:result` and a positive
/// verification: the state in which stanzas flow. Panics if the stream does not get there.
pub fn authenticated_stream(policy: &BenchPolicy, now: Instant) -> InboundStream {
    let mut s = InboundStream::new(limits(), timeouts(), true, Vec::new(), now);
    s.handle_bytes(HEADER.as_bytes(), now, policy);
    s.handle_bytes(
        b"<db:result from='a.test' to='corp.test'>0123456789abcdef</db:result>",
        now,
        policy,
    );
    let mut verify = false;
    while let Some(ev) = s.poll_event() {
        verify |= matches!(ev, InboundEvent::VerifyKey { .. });
    }
    assert!(verify, "db:result did not ask for verification");
    s.dialback_verified(REMOTE, LOCAL, Ok(true));
    let mut authenticated = false;
    while let Some(ev) = s.poll_event() {
        authenticated |= matches!(ev, InboundEvent::Authenticated { .. });
    }
    assert!(authenticated, "dialback did not authenticate");
    let mut out = Vec::new();
    s.take_output(&mut out, now);
    s
}

/// `n` chat messages from users of [`REMOTE`] to users of [`LOCAL`], each with a body of 200 bytes
/// as sent (one escaped character in it) and a chat state, about 400 bytes per message on the wire.
pub fn messages(n: usize) -> Vec<u8> {
    let mut s = String::with_capacity(n * 420);
    for i in 0..n {
        let mut body = format!("msg {i:08} from juliet &amp; co: ");
        let pad = 200 - body.len();
        body.extend(std::iter::repeat_n('x', pad));
        s.push_str(&format!(
            "<message from='user{:03}@a.test/phone' to='user{:03}@corp.test' type='chat' \
             id='m-{i:08}' xml:lang='en'><body>{body}</body>\
             <active xmlns='http://jabber.org/protocol/chatstates'/></message>",
            i % 97,
            i % 101,
        ));
    }
    s.into_bytes()
}

/// Feeds `data` in [`CHUNK`]-byte reads and drains the events after each; returns the stanzas
/// delivered. Panics on any other event (a close would mean the input was refused).
#[inline(never)]
pub fn receive_all(
    stream: &mut InboundStream,
    data: &[u8],
    policy: &BenchPolicy,
    now: Instant,
) -> usize {
    let mut stanzas = 0;
    for chunk in data.chunks(CHUNK) {
        stream.handle_bytes(chunk, now, policy);
        while let Some(ev) = stream.poll_event() {
            match ev {
                InboundEvent::Stanza(s) => {
                    std::hint::black_box(&s);
                    stanzas += 1;
                }
                other => panic!("unexpected event {other:?}"),
            }
        }
    }
    stanzas
}
