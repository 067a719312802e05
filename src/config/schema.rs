//! The configuration schema: one serde struct per TOML table, with the documented defaults.
//!
//! Every table denies unknown keys: a misspelt key is an error, never silently ignored. Values are
//! typed here (socket addresses, durations, sizes, keywords); cross-field rules live in
//! `validate.rs`. Domains are lowercased and relative paths resolved after parsing (`load.rs`).

use std::fmt;
use std::marker::PhantomData;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use super::{duration, size};

/// The XMPP server-to-server port, used when a route names no port.
pub const XMPP_SERVER_PORT: u16 = 5269;
/// The DNS port, used when `dns.servers` names no port.
pub const DNS_PORT: u16 = 53;

/// `[server]`: who we are.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// XMPP domains we serve (at least one; lowercased).
    pub domains: Vec<String>,
}

/// `[listen]`: sockets we accept S2S streams (and metrics scrapes) on.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ListenConfig {
    /// STARTTLS listeners (RFC 6120), IP literals only.
    #[serde(deserialize_with = "de_listen_addrs")]
    pub s2s: Vec<SocketAddr>,
    /// Direct-TLS listeners (XEP-0368).
    #[serde(deserialize_with = "de_listen_addrs")]
    pub s2s_tls: Vec<SocketAddr>,
    /// OpenMetrics endpoint (parsed only for now).
    #[serde(deserialize_with = "de_opt_listen_addr")]
    pub metrics: Option<SocketAddr>,
}

/// `[tls]`: our certificates and the roots we trust for partners.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain for all served domains (unless a per-domain entry overrides it).
    pub certificate: PathBuf,
    /// PEM private key matching `certificate`.
    pub key: PathBuf,
    /// Extra PEM roots for partners' certificates.
    #[serde(default)]
    pub trust: Vec<PathBuf>,
    /// Also trust the system root bundle (our extension; default true).
    #[serde(default = "yes")]
    pub system_roots: bool,
    /// `[[tls.domain]]`: per-domain certificates.
    #[serde(default, rename = "domain")]
    pub domains: Vec<DomainCertificate>,
}

/// `[[tls.domain]]`: a certificate for one served domain.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainCertificate {
    /// One of `server.domains`.
    pub domain: String,
    /// PEM certificate chain for `domain`.
    pub certificate: PathBuf,
    /// PEM private key for `certificate`.
    pub key: PathBuf,
}

/// `[dialback]`: XEP-0220 server dialback.
#[derive(Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DialbackConfig {
    /// XEP-0185 key secret; `None` lets the caller pick a random one at start.
    pub secret: Option<String>,
}

impl fmt::Debug for DialbackConfig {
    // The secret never reaches logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DialbackConfig")
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// `[dns]`: the resolver for SRV/A/AAAA lookups.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DnsConfig {
    /// Name servers (IP, or IP:port; port 53 by default). Empty: the caller reads /etc/resolv.conf.
    #[serde(deserialize_with = "de_dns_addrs")]
    pub servers: Vec<SocketAddr>,
    /// Per-query timeout (our extension; default 2 s).
    #[serde(deserialize_with = "duration::deserialize")]
    pub timeout: Duration,
}

impl Default for DnsConfig {
    fn default() -> Self {
        Self {
            servers: Vec::new(),
            timeout: Duration::from_secs(2),
        }
    }
}

/// `[federation]`: what to do with domains that have no `[[partner]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FederationConfig {
    /// Policy for unlisted domains.
    pub default: FederationDefault,
}

/// `[[partner]]`: one federated domain, Lync `CsXmppAllowedPartner` vocabulary.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Partner {
    /// The partner's primary XMPP domain (lowercased).
    pub domain: String,
    /// Further domains of the same partner (subdomains are listed explicitly).
    #[serde(default)]
    pub additional_domains: Vec<String>,
    /// Lync PartnerType (default public-unverified).
    #[serde(default, rename = "type")]
    pub kind: PartnerType,
    /// TLS negotiation (default required).
    #[serde(default)]
    pub tls: Negotiation,
    /// SASL EXTERNAL negotiation (default required).
    #[serde(default)]
    pub sasl: Negotiation,
    /// Accept/verify this partner by server dialback (default true).
    #[serde(default = "yes")]
    pub dialback: bool,
    /// Send keep-alive whitespace on idle streams (default true).
    #[serde(default = "yes")]
    pub keepalive: bool,
    /// Max simultaneous connections; `None` = `limits.connections_per_partner`.
    #[serde(default)]
    pub connection_limit: Option<u32>,
    /// Static route instead of SRV (Lync ProxyFqdn).
    #[serde(default)]
    pub proxy_fqdn: Option<ProxyRoute>,
}

impl Partner {
    /// The primary domain followed by the additional ones.
    pub fn all_domains(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.domain.as_str())
            .chain(self.additional_domains.iter().map(String::as_str))
    }
}

/// `[limits]`: Lync gateway and Prosody defaults, plus our framer caps.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Total S2S connections (Lync ConnectionLimit, 1000).
    pub connections: u32,
    /// Connections per partner unless the partner says otherwise (Lync PartnerConnectionLimit, 20).
    pub connections_per_partner: u32,
    /// Time allowed from TCP accept/connect to an authenticated stream (Lync, 60 s).
    #[serde(deserialize_with = "duration::deserialize")]
    pub stream_establishment: Duration,
    /// Idle time after which a stream is closed (Lync, 600 s).
    #[serde(deserialize_with = "duration::deserialize")]
    pub inactivity: Duration,
    /// Interval of keep-alive whitespace on idle streams (Lync, 300 s).
    #[serde(deserialize_with = "duration::deserialize")]
    pub keepalive_interval: Duration,
    /// Presence subscription refresh towards SIP (Lync SubscriptionRefreshInterval, 8 h; our extension).
    #[serde(deserialize_with = "duration::deserialize")]
    pub subscription_refresh: Duration,
    /// Max stanza size after authentication (Prosody 512 KiB; RFC 6120 §13.12: ≥ 10000).
    #[serde(deserialize_with = "size::deserialize_usize")]
    pub stanza_bytes: usize,
    /// Max stanza size before the stream is authenticated.
    #[serde(deserialize_with = "size::deserialize_usize")]
    pub stanza_bytes_before_auth: usize,
    /// Max element nesting depth inside a stanza.
    pub max_depth: usize,
    /// Max attributes on one element.
    pub max_attributes: usize,
    /// Max elements in one stanza.
    pub max_elements_per_stanza: usize,
    /// Read rate cap per stream in bytes/s; 0 = unlimited (the default; Prosody's mod_limits
    /// uses 30 KiB/s for s2sin when enabled).
    #[serde(deserialize_with = "size::deserialize_u64")]
    pub read_rate_bytes_per_sec: u64,
    /// Stanzas waiting per outbound stream while it comes up.
    pub outbound_queue: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            connections: 1000,
            connections_per_partner: 20,
            stream_establishment: Duration::from_secs(60),
            inactivity: Duration::from_secs(600),
            keepalive_interval: Duration::from_secs(300),
            subscription_refresh: Duration::from_secs(8 * 3600),
            stanza_bytes: 524_288,
            stanza_bytes_before_auth: 10_000,
            max_depth: 64,
            max_attributes: 64,
            max_elements_per_stanza: 4096,
            read_rate_bytes_per_sec: 0,
            outbound_queue: 1000,
        }
    }
}

/// `[runtime]`: thread-per-core knobs (tuning profiles overlay these).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Number of shards (executors).
    pub shards: Shards,
    /// glommio io_memory per executor (default 512 KiB; RLIMIT_MEMLOCK bounds the total).
    #[serde(deserialize_with = "size::deserialize_usize")]
    pub io_memory: usize,
    /// io_uring ring depth per executor.
    pub ring_depth: u32,
    /// Capacity of each SPSC queue of the shard mesh.
    pub queue_capacity: usize,
    /// Max items moved per batch.
    pub batch: usize,
    /// How long an idle executor spins before it parks in the kernel (glommio
    /// `spin_before_park`); zero (the default) parks at once. Spinning trades a busy CPU for a
    /// shorter wake-up.
    #[serde(deserialize_with = "duration::deserialize")]
    pub spin_before_park: Duration,
    /// How often a running task queue is asked to yield (glommio `preempt_timer`, default 100 ms,
    /// glommio's own default).
    #[serde(deserialize_with = "duration::deserialize")]
    pub preempt_timer: Duration,
    /// Read buffer of each shard, in bytes (default 4 KiB), shared by all its streams.
    #[serde(deserialize_with = "size::deserialize_usize")]
    pub read_buffer: usize,
    /// Max stanzas an outbound stream takes from its queue before one write (default 64).
    pub write_batch: usize,
    /// Transparent huge pages for the process heap (default false). The allocator asks for them
    /// on its arenas; with many idle sessions the 2 MiB pages are sparsely used, which more than
    /// doubled the RSS per idle S2S session here (37 KB against 17 KB).
    pub huge_pages: bool,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            shards: Shards::Auto,
            io_memory: 512 * 1024,
            ring_depth: 128,
            queue_capacity: 1024,
            batch: 64,
            spin_before_park: Duration::ZERO,
            preempt_timer: Duration::from_millis(100),
            read_buffer: 4096,
            write_batch: 64,
            huge_pages: false,
        }
    }
}

/// `[sip]`: the internal SIP side of the gateway. Absent `next_hop`: no gateway (users of our
/// domains get `service-unavailable`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SipConfig {
    /// The internal pool: `sip:IP:port;transport=tcp`, or a name located per RFC 3263
    /// (`sip:pool.corp.test;transport=tcp`: SRV; `sips:pool.corp.test`: NAPTR, SRV, A/AAAA;
    /// with a port: A/AAAA only).
    pub next_hop: Option<String>,
    /// Listeners for requests from the internal side (parsed; served by a later change).
    pub listen: Vec<SocketAddr>,
    /// SIP domains that map to our XMPP domains (default: the XMPP domains themselves).
    pub domains: Vec<String>,
    /// RFC 3261 T1 (default 500 ms); a MESSAGE unanswered for 64·T1 (Timer F) counts as 408.
    #[serde(deserialize_with = "duration::deserialize")]
    pub t1: Duration,
    /// OPTIONS health probe to the next hop on each shard's flow, this often (default 30 s;
    /// 0 = off). No final response within Timer F, or a 503, ends the flow: the router
    /// reconnects, trying the next target first.
    #[serde(deserialize_with = "duration::deserialize")]
    pub options_interval: Duration,
    /// Client transactions (MESSAGE, SUBSCRIBE, NOTIFY, OPTIONS) pending per shard at most
    /// (default 4096). A full table makes partner streams wait for room (backpressure, at most
    /// 2 s) before a message is bounced `resource-constraint` or a subscription answered
    /// `unsubscribed`.
    pub max_transactions: usize,
}

impl Default for SipConfig {
    fn default() -> Self {
        Self {
            next_hop: None,
            listen: Vec::new(),
            domains: Vec::new(),
            t1: Duration::from_millis(500),
            options_interval: Duration::from_secs(30),
            max_transactions: 4096,
        }
    }
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// tracing `EnvFilter` directives; RUST_LOG overrides (caller).
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".to_owned(),
        }
    }
}

fn yes() -> bool {
    true
}

/// `runtime.shards`: `"auto"` (one per CPU) or a count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Shards {
    /// One shard per available CPU.
    #[default]
    Auto,
    /// Exactly this many (validation rejects 0).
    Count(usize),
}

impl<'de> Deserialize<'de> for Shards {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        const EXPECTING: &str = r#""auto" or a number of shards (1 or more)"#;
        impl Visitor<'_> for V {
            type Value = Shards;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(EXPECTING)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Shards, E> {
                match v {
                    "auto" => Ok(Shards::Auto),
                    _ => Err(E::custom(format!("expected {EXPECTING}, got {v:?}"))),
                }
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Shards, E> {
                usize::try_from(v)
                    .map(Shards::Count)
                    .map_err(|_| E::custom(format!("expected {EXPECTING}, got {v}")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Shards, E> {
                usize::try_from(v)
                    .map(Shards::Count)
                    .map_err(|_| E::custom(format!("expected {EXPECTING}, got {v}")))
            }
        }
        d.deserialize_any(V)
    }
}

/// Declares a keyword enum whose TOML form is one of a fixed set of strings, with an error that
/// lists them all: `expected one of "required", "optional", "not-supported", got "yes"`.
macro_rules! keyword_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// The accepted keywords, in documentation order.
            pub const KEYWORDS: &'static [&'static str] = &[$($text),+];

            /// The keyword as written in the configuration.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }

            /// Parses the exact (lowercase) keyword.
            pub fn from_keyword(text: &str) -> Option<Self> {
                match text {
                    $($text => Some(Self::$variant),)+
                    _ => None,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_str(KeywordVisitor::<$name> {
                    keywords: Self::KEYWORDS,
                    parse: Self::from_keyword,
                    _out: PhantomData,
                })
            }
        }
    };
}

keyword_enum! {
    /// Lync TlsNegotiation / SaslNegotiation.
    Negotiation {
        /// Must be negotiated, or the stream is refused (the default).
        #[default]
        Required => "required",
        /// Used when the peer offers it.
        Optional => "optional",
        /// Never used.
        NotSupported => "not-supported",
    }
}

keyword_enum! {
    /// Lync PartnerType.
    PartnerType {
        /// Trusted partner: subscriptions flow both ways without prompts.
        Federated => "federated",
        /// The partner's users may add ours first.
        PublicVerified => "public-verified",
        /// Our user must add the contact first (the default).
        #[default]
        PublicUnverified => "public-unverified",
    }
}

keyword_enum! {
    /// `federation.default`: the policy for domains without a `[[partner]]` entry.
    FederationDefault {
        /// Refuse them (the default).
        #[default]
        Deny => "deny",
        /// Accept them once authenticated (SASL EXTERNAL or dialback over TLS).
        AllowVerified => "allow-verified",
    }
}

/// Formats keywords as `"a", "b", "c"`.
pub(crate) fn quoted_list(words: &[&str]) -> String {
    let mut out = String::new();
    for (i, w) in words.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push('"');
        out.push_str(w);
        out.push('"');
    }
    out
}

struct KeywordVisitor<T> {
    keywords: &'static [&'static str],
    parse: fn(&str) -> Option<T>,
    _out: PhantomData<T>,
}

impl<T> Visitor<'_> for KeywordVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "one of {}", quoted_list(self.keywords))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        (self.parse)(v).ok_or_else(|| {
            E::custom(format!(
                "expected one of {}, got {v:?}",
                quoted_list(self.keywords)
            ))
        })
    }
}

/// `proxy_fqdn`: a static route to a partner instead of its SRV records.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ProxyRoute {
    /// Connect to this address directly.
    Addr(SocketAddr),
    /// Resolve `host` (A/AAAA via `dns.servers`) and connect to `port`.
    Host {
        /// A DNS name, lowercased.
        host: String,
        /// The port (5269 when the route names none).
        port: u16,
    },
}

impl fmt::Display for ProxyRoute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Addr(a) => write!(f, "{a}"),
            Self::Host { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

impl ProxyRoute {
    /// Parses `IP:port`, `[IPv6]:port`, `IP`, `host:port` or `host` (port 5269 when absent).
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if let Ok(addr) = text.parse::<SocketAddr>() {
            return Ok(Self::Addr(addr));
        }
        if let Ok(ip) = text.parse::<IpAddr>() {
            return Ok(Self::Addr(SocketAddr::new(ip, XMPP_SERVER_PORT)));
        }
        let (host, port) = match text.rsplit_once(':') {
            Some((host, port)) => {
                let port: u16 = port
                    .parse()
                    .map_err(|_| format!("port {port:?} is not a number from 1 to 65535"))?;
                (host, port)
            }
            None => (text, XMPP_SERVER_PORT),
        };
        if port == 0 {
            return Err("port 0 cannot be connected to".to_owned());
        }
        let host = host.to_ascii_lowercase();
        super::validate::check_dns_name(&host).map_err(|why| format!("host {host:?}: {why}"))?;
        Ok(Self::Host { host, port })
    }
}

impl<'de> Deserialize<'de> for ProxyRoute {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        const EXPECTING: &str = r#"a route "IP:port" or "host:port""#;
        impl Visitor<'_> for V {
            type Value = ProxyRoute;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(EXPECTING)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ProxyRoute, E> {
                ProxyRoute::parse(v)
                    .map_err(|why| E::custom(format!("expected {EXPECTING}, got {v:?}: {why}")))
            }
        }
        d.deserialize_str(V)
    }
}

/// A socket address string; `default_port` applies when only an IP literal is given.
fn parse_socket_addr(text: &str, default_port: Option<u16>) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if let (Some(port), Ok(ip)) = (default_port, text.parse::<IpAddr>()) {
        return Ok(SocketAddr::new(ip, port));
    }
    let form = if default_port.is_some() {
        r#""IP" or "IP:port""#
    } else {
        r#""IP:port""#
    };
    Err(format!(
        "expected a socket address {form} with an IP literal (IPv6 in brackets: \"[::1]:5269\"), got {text:?}"
    ))
}

/// One listener address (no default port: a listener must say where it listens).
struct ListenAddr(SocketAddr);
/// One name server address (port 53 by default).
struct DnsAddr(SocketAddr);

macro_rules! addr_newtype {
    ($name:ident, $default_port:expr) => {
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl Visitor<'_> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str("a socket address string such as \"127.0.0.1:5269\"")
                    }
                    fn visit_str<E: de::Error>(self, v: &str) -> Result<$name, E> {
                        parse_socket_addr(v, $default_port)
                            .map($name)
                            .map_err(E::custom)
                    }
                }
                d.deserialize_str(V)
            }
        }
    };
}

addr_newtype!(ListenAddr, None);
addr_newtype!(DnsAddr, Some(DNS_PORT));

fn de_listen_addrs<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<SocketAddr>, D::Error> {
    Ok(Vec::<ListenAddr>::deserialize(d)?
        .into_iter()
        .map(|a| a.0)
        .collect())
}

fn de_opt_listen_addr<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
    Ok(Option::<ListenAddr>::deserialize(d)?.map(|a| a.0))
}

fn de_dns_addrs<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<SocketAddr>, D::Error> {
    Ok(Vec::<DnsAddr>::deserialize(d)?
        .into_iter()
        .map(|a| a.0)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_route_accepts_ip_and_host_forms() {
        assert_eq!(
            ProxyRoute::parse("127.0.0.2:5269"),
            Ok(ProxyRoute::Addr("127.0.0.2:5269".parse().unwrap()))
        );
        assert_eq!(
            ProxyRoute::parse("[::1]:5270"),
            Ok(ProxyRoute::Addr("[::1]:5270".parse().unwrap()))
        );
        assert_eq!(
            ProxyRoute::parse("127.0.0.2"),
            Ok(ProxyRoute::Addr("127.0.0.2:5269".parse().unwrap()))
        );
        assert_eq!(
            ProxyRoute::parse("Edge.A.test:5299"),
            Ok(ProxyRoute::Host {
                host: "edge.a.test".into(),
                port: 5299
            })
        );
        assert_eq!(
            ProxyRoute::parse("edge.a.test"),
            Ok(ProxyRoute::Host {
                host: "edge.a.test".into(),
                port: 5269
            })
        );
    }

    #[test]
    fn proxy_route_rejects_bad_hosts_and_ports() {
        assert!(ProxyRoute::parse("edge.a.test:0").is_err());
        assert!(ProxyRoute::parse("edge.a.test:http").is_err());
        assert!(ProxyRoute::parse("bad_host:5269").is_err());
        assert!(ProxyRoute::parse("").is_err());
    }

    #[test]
    fn socket_addr_default_port_only_where_allowed() {
        assert!(parse_socket_addr("127.0.0.1", None).is_err());
        assert_eq!(
            parse_socket_addr("127.0.0.53", Some(DNS_PORT)),
            Ok("127.0.0.53:53".parse().unwrap())
        );
        assert!(parse_socket_addr("localhost:5269", None).is_err());
    }
}
