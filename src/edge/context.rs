//! Per-shard state of the edge: configuration snapshot, TLS material, counters, the outbound
//! streams this shard owns, and its ends of the queue mesh.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use glommio::channels::local_channel::LocalSender;
use rustls::RootCertStore;
use rustls_pki_types::{CertificateDer, UnixTime};

use crate::config::{Config, PartnerPolicy};
use crate::edge::tls::{self, PeerCertStatus, Purpose};
use glommio::channels::shared_channel::ConnectedSender;

use crate::runtime::mesh::MeshMsg;
use crate::xml::FramerLimits;
use crate::xmpp::dialback::DialbackSecret;
use crate::xmpp::stream::inbound::PhaseLimits;
use crate::xmpp::stream::{StreamPolicy, StreamTimeouts};

/// Counters shared by all shards (atomics, touched per connection, not per stanza).
#[derive(Debug, Default)]
pub struct SharedCounters {
    /// Open inbound + outbound connections.
    pub connections: Arc<AtomicU32>,
    /// Open connections per partner domain (primary domain), created lazily.
    pub per_partner: std::sync::Mutex<HashMap<String, Arc<AtomicU32>>>,
    /// Stanzas accepted from peers.
    pub stanzas_in: AtomicU64,
    /// Stanzas written to peers.
    pub stanzas_out: AtomicU64,
    /// Replies dropped because their outbound stream could not be established.
    pub replies_undeliverable: AtomicU64,
    /// Gatewayed messages the SIP side accepted (2xx).
    pub messages_delivered: AtomicU64,
    /// Gatewayed messages bounced to their XMPP sender (SIP error, timeout, transport failure).
    pub messages_bounced: AtomicU64,
    /// SIP MESSAGEs received from the internal side (each ends delivered or refused).
    pub sip_messages_in: AtomicU64,
    /// SIP MESSAGEs answered 200: their stanza was handed to an authenticated partner stream.
    pub sip_messages_delivered: AtomicU64,
    /// SIP MESSAGEs answered with an error (refused, or the partner could not be reached).
    pub sip_messages_refused: AtomicU64,
    /// OPTIONS health probes sent to the SIP next hop (`[sip] options_interval`).
    pub sip_options_sent: AtomicU64,
    /// Probes that failed (no final response within Timer F, or 503): each ended its flow and
    /// made the shard reconnect, trying the next target first.
    pub sip_options_failed: AtomicU64,
    /// Set by the signal thread: stop accepting, close every stream.
    pub shutdown: AtomicBool,
}

impl SharedCounters {
    /// The counter for a partner (locked once per connection, never per stanza).
    pub fn partner(&self, domain: &str) -> Arc<AtomicU32> {
        let mut map = self.per_partner.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(domain.to_string()).or_default().clone()
    }
}

/// Holds one unit of a connection counter while alive.
pub struct Slot(Arc<AtomicU32>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Takes a slot of `counter` if it is below `limit`.
pub fn take_slot(counter: &Arc<AtomicU32>, limit: u32) -> Option<Slot> {
    let mut cur = counter.load(Ordering::Acquire);
    loop {
        if cur >= limit {
            return None;
        }
        match counter.compare_exchange(cur, cur + 1, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return Some(Slot(counter.clone())),
            Err(now) => cur = now,
        }
    }
}

/// (our domain, remote domain): the key of an outbound stream.
pub type DomainPair = (String, String);

/// Control messages to a live outbound stream.
pub enum OutboundCtl {
    /// A serialized stanza to send, and who waits to learn whether it was handed to the stream.
    Stanza(Vec<u8>, Option<AckTo>),
}

/// Where to report the fate of a stanza handed to an outbound stream: a token of the
/// [`crate::gateway::inbound::SipIngress`] of shard `shard`, which answers the SIP request
/// that produced the stanza.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckTo {
    /// The shard waiting.
    pub shard: usize,
    /// Its token for the waiting request.
    pub token: u64,
}

/// What became of a stanza queued for a partner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Written to an authenticated outbound stream.
    Sent,
    /// Not sent; the condition says why (remote-server-not-found, -timeout, forbidden, ...).
    Failed(crate::xmpp::error::StanzaCondition),
}

/// Everything a shard's edge tasks share (single-threaded: `Rc`, `RefCell`).
pub struct EdgeContext {
    /// This shard's index.
    pub shard: usize,
    /// Number of shards.
    pub shards: usize,
    /// Configuration snapshot.
    pub config: Arc<Config>,
    /// TLS server config for STARTTLS.
    pub tls_starttls: Arc<rustls::ServerConfig>,
    /// TLS server config for direct TLS (ALPN xmpp-server).
    pub tls_direct: Arc<rustls::ServerConfig>,
    /// TLS client config (STARTTLS outbound).
    pub tls_client: Arc<rustls::ClientConfig>,
    /// TLS client config for direct TLS outbound (ALPN xmpp-server).
    pub tls_client_direct: Arc<rustls::ClientConfig>,
    /// Roots trusted for partners' certificates.
    pub roots: Arc<RootCertStore>,
    /// Dialback key secret.
    pub dialback: DialbackSecret,
    /// DNS servers for SRV/A/AAAA.
    pub dns_servers: Vec<std::net::SocketAddr>,
    /// Shared counters.
    pub counters: Arc<SharedCounters>,
    /// Outbound streams owned by this shard, by (our domain, remote domain).
    pub outbound: RefCell<HashMap<DomainPair, Rc<LocalSender<OutboundCtl>>>>,
    /// This shard's mesh senders (index = target shard; `None` for ourselves).
    pub mesh: Vec<Option<ConnectedSender<MeshMsg>>>,
    /// The XMPP→SIP message gateway of this shard, when `[sip] next_hop` is configured.
    pub gateway: std::cell::OnceCell<Rc<crate::gateway::outbound_message::MessageGateway>>,
    /// Live streams on this shard, inbound and outbound (shutdown waits for them).
    pub live_streams: Cell<u32>,
    /// The SIP → XMPP side of the gateway on this shard, when `[sip] listen` is configured.
    pub sip_ingress: std::cell::OnceCell<Rc<crate::gateway::inbound::SipIngress>>,
    /// The read buffer every stream of this shard reads into.
    pub read_buf: crate::edge::pump::ShardReadBuf,
}

impl EdgeContext {
    /// Framer limits before and after authentication, from `[limits]`.
    pub fn phase_limits(&self) -> PhaseLimits {
        let l = &self.config.limits;
        let cap = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
        // Before authentication the structural caps stay at the framer's small defaults: memory
        // spent on an unauthenticated peer is the attack surface (protocol-facts §5).
        let pre = FramerLimits::pre_auth();
        PhaseLimits {
            before_auth: FramerLimits {
                max_stanza_bytes: l.stanza_bytes_before_auth,
                ..pre
            },
            after_auth: FramerLimits {
                max_stanza_bytes: l.stanza_bytes,
                max_depth: cap(l.max_depth),
                max_attributes: cap(l.max_attributes),
                max_elements: cap(l.max_elements_per_stanza),
                ..FramerLimits::post_auth()
            },
        }
    }

    /// Stream timeouts, from `[limits]`.
    pub fn timeouts(&self) -> StreamTimeouts {
        let l = &self.config.limits;
        StreamTimeouts {
            establishment: l.stream_establishment,
            inactivity: l.inactivity,
            keepalive: l.keepalive_interval,
        }
    }

    /// Whether shutdown was requested.
    pub fn shutting_down(&self) -> bool {
        self.counters.shutdown.load(Ordering::Relaxed)
    }

    /// DNS query timeout.
    pub fn dns_timeout(&self) -> Duration {
        self.config.dns.timeout
    }
}

impl StreamPolicy for EdgeContext {
    fn serves(&self, domain: &str) -> bool {
        self.config.serves(domain)
    }

    fn policy_for(&self, domain: &str) -> Option<PartnerPolicy> {
        self.config.policy_for(domain)
    }

    fn certificate_trusted(&self, chain: &[CertificateDer<'static>], domain: &str) -> bool {
        let now = UnixTime::now();
        // Public CAs are dropping the clientAuth EKU; S2S peers present their server certificate
        // as client certificate, so either purpose is accepted.
        matches!(
            tls::check_peer(chain, &self.roots, domain, Purpose::ServerOrClientAuth, now),
            PeerCertStatus::Trusted
        )
    }

    fn dialback(&self) -> &DialbackSecret {
        &self.dialback
    }
}

impl EdgeContext {
    /// Sends a message to another shard over the mesh; waits while the queue is full
    /// (backpressure). Returns false only if that shard is gone (shutdown).
    pub async fn mesh_send(&self, shard: usize, msg: MeshMsg) -> bool {
        match self.mesh.get(shard).and_then(|s| s.as_ref()) {
            Some(s) => s.send(msg).await.is_ok(),
            None => false,
        }
    }

    /// Reports the fate of a stanza to whoever waits for it. Never waits itself: the outbound
    /// writer calling this must not stall on a full mesh queue (that shard may be waiting on us).
    pub fn ack(self: &Rc<Self>, to: Option<AckTo>, what: Delivery) {
        let Some(to) = to else { return };
        if to.shard == self.shard {
            if let Some(ingress) = self.sip_ingress.get() {
                ingress.on_delivery(to.token, what);
            }
            return;
        }
        let msg = MeshMsg::Ack {
            token: to.token,
            delivery: what,
        };
        self.mesh_post(to.shard, msg);
    }

    /// Sends to another shard without waiting: when its queue is full, a task of its own waits.
    /// For answers (acks, SIP responses): their producer must not stall on a shard that may be
    /// waiting on it.
    pub fn mesh_post(self: &Rc<Self>, shard: usize, msg: MeshMsg) {
        if let Some(Some(tx)) = self.mesh.get(shard) {
            // A closed queue means that shard is gone (shutdown): nothing left to answer.
            if let Err(glommio::GlommioError::WouldBlock(glommio::ResourceType::Channel(msg))) =
                tx.try_send(msg)
            {
                let ctx = self.clone();
                glommio::spawn_local(async move {
                    ctx.mesh_send(shard, msg).await;
                })
                .detach();
            }
        }
    }
}
