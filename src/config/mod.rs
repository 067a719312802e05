//! Configuration: the TOML schema, loading with located errors, validation, and the resolved
//! partner policy the edge asks for.
//!
//! ```text
//! schema.rs    serde structs, one per table, with defaults
//! load.rs      TOML text -> Config; errors at file:line: key
//! validate.rs  semantic checks (every problem collected), Lync negotiation matrix
//! duration.rs  "500ms" / "60s" / "10m" / "8h"
//! size.rs      "512KiB" / "1MiB"
//! profile.rs   tuning profiles (--profile FILE) overlaid on a loaded configuration
//! error.rs     ConfigError, ConfigErrors
//! ```

pub mod duration;
mod error;
mod load;
mod profile;
pub mod schema;
pub mod size;
pub mod validate;

use std::path::{Path, PathBuf};
use std::str::FromStr;

pub use error::{ConfigError, ConfigErrors};
pub use profile::{LimitsOverlay, Profile, RuntimeOverlay};
pub use schema::{
    DialbackConfig, DnsConfig, DomainCertificate, FederationConfig, FederationDefault,
    LimitsConfig, ListenConfig, LogConfig, Negotiation, Partner, PartnerType, ProxyRoute,
    RuntimeConfig, ServerConfig, Shards, SipConfig, TlsConfig,
};
pub use validate::{check_negotiation, NegotiationError};

/// A loaded and validated configuration. Domains are lowercase; paths are resolved against the
/// configuration file's directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `[server]`.
    pub server: ServerConfig,
    /// `[listen]`.
    pub listen: ListenConfig,
    /// `[tls]`.
    pub tls: TlsConfig,
    /// `[dialback]`.
    pub dialback: DialbackConfig,
    /// `[dns]`.
    pub dns: DnsConfig,
    /// `[federation]`.
    pub federation: FederationConfig,
    /// `[[partner]]`, in file order.
    pub partners: Vec<Partner>,
    /// `[limits]`.
    pub limits: LimitsConfig,
    /// `[runtime]`.
    pub runtime: RuntimeConfig,
    /// `[sip]`.
    pub sip: SipConfig,
    /// `[log]`.
    pub log: LogConfig,
    /// The file this was read from (as given).
    pub source: PathBuf,
}

/// What the edge applies to one remote domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartnerPolicy {
    /// The partner's primary domain (the queried domain itself when unlisted).
    pub domain: String,
    /// Lync PartnerType.
    pub kind: PartnerType,
    /// TLS negotiation.
    pub tls: Negotiation,
    /// SASL EXTERNAL negotiation.
    pub sasl: Negotiation,
    /// Whether server dialback may authenticate the partner.
    pub dialback: bool,
    /// Whether to send keep-alives on idle streams.
    pub keepalive: bool,
    /// Max simultaneous connections.
    pub connection_limit: u32,
    /// Static route instead of SRV.
    pub proxy: Option<ProxyRoute>,
    /// True when a `[[partner]]` entry names the domain; false under `allow-verified`.
    pub listed: bool,
}

impl Config {
    /// Reads, parses and validates `path`, including that certificate, key and trust files exist.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            line: None,
            column: None,
            key: String::new(),
            message: format!("cannot read the configuration file: {e}"),
        })?;
        Self::parse(&text, path, true)
    }

    /// Parses and validates `text` as if read from `origin` (used for messages and to resolve
    /// relative paths). `check_files = false` skips the filesystem checks (for tests).
    pub fn parse(text: &str, origin: &Path, check_files: bool) -> Result<Config, ConfigErrors> {
        load::parse(text, origin, check_files)
    }

    /// The policy for remote `domain`, or `None` when it is refused: unlisted under
    /// `default = "deny"`, one of our own domains, or empty.
    ///
    /// Unlisted domains under `allow-verified` get: public-unverified, TLS required, SASL
    /// optional, dialback allowed (so SASL EXTERNAL or dialback over TLS authenticates them).
    pub fn policy_for(&self, domain: &str) -> Option<PartnerPolicy> {
        if domain.is_empty() || self.serves(domain) {
            return None;
        }
        if let Some(p) = self.partner(domain) {
            return Some(PartnerPolicy {
                domain: p.domain.clone(),
                kind: p.kind,
                tls: p.tls,
                sasl: p.sasl,
                dialback: p.dialback,
                keepalive: p.keepalive,
                connection_limit: p
                    .connection_limit
                    .unwrap_or(self.limits.connections_per_partner),
                proxy: p.proxy_fqdn.clone(),
                listed: true,
            });
        }
        match self.federation.default {
            FederationDefault::Deny => None,
            FederationDefault::AllowVerified => Some(PartnerPolicy {
                domain: domain.to_ascii_lowercase(),
                kind: PartnerType::PublicUnverified,
                tls: Negotiation::Required,
                sasl: Negotiation::Optional,
                dialback: true,
                keepalive: true,
                connection_limit: self.limits.connections_per_partner,
                proxy: None,
                listed: false,
            }),
        }
    }

    /// The `[[partner]]` entry listing `domain` (primary or additional; case-insensitive).
    pub fn partner(&self, domain: &str) -> Option<&Partner> {
        // A linear scan: partners are few and this runs per stream, not per stanza.
        self.partners
            .iter()
            .find(|p| p.all_domains().any(|d| d.eq_ignore_ascii_case(domain)))
    }

    /// True when `domain` is one of `server.domains` (case-insensitive).
    pub fn serves(&self, domain: &str) -> bool {
        self.server
            .domains
            .iter()
            .any(|d| d.eq_ignore_ascii_case(domain))
    }

    /// The XMPP domain of an internal SIP domain: a served domain maps to itself; otherwise
    /// `sip.domains[i]` maps to `server.domains[i]` (the first XMPP domain when there are fewer).
    /// `None`: the SIP domain is not ours.
    pub fn xmpp_domain_for_sip(&self, sip_domain: &str) -> Option<&str> {
        if let Some(d) = self
            .server
            .domains
            .iter()
            .find(|d| d.eq_ignore_ascii_case(sip_domain))
        {
            return Some(d);
        }
        let i = self
            .sip
            .domains
            .iter()
            .position(|d| d.eq_ignore_ascii_case(sip_domain))?;
        self.server
            .domains
            .get(i)
            .or(self.server.domains.first())
            .map(String::as_str)
    }

    /// The internal SIP domain of one of our XMPP domains (the inverse of
    /// [`Config::xmpp_domain_for_sip`]): `sip.domains[i]` for `server.domains[i]`, else itself.
    pub fn sip_domain_for_xmpp<'a>(&'a self, xmpp_domain: &'a str) -> &'a str {
        self.server
            .domains
            .iter()
            .position(|d| d.eq_ignore_ascii_case(xmpp_domain))
            .and_then(|i| self.sip.domains.get(i))
            .map_or(xmpp_domain, String::as_str)
    }

    /// The certificate and key files for served `domain`: its `[[tls.domain]]` entry if any,
    /// else `tls.certificate` / `tls.key`.
    pub fn certificate_for(&self, domain: &str) -> (&Path, &Path) {
        match self
            .tls
            .domains
            .iter()
            .find(|d| d.domain.eq_ignore_ascii_case(domain))
        {
            Some(d) => (&d.certificate, &d.key),
            None => (&self.tls.certificate, &self.tls.key),
        }
    }

    /// Number of shards: the configured count, or the available CPUs for `"auto"` (at least 1).
    pub fn shard_count(&self) -> usize {
        match self.runtime.shards {
            Shards::Count(n) => n.max(1),
            Shards::Auto => std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

impl FromStr for Config {
    type Err = ConfigErrors;

    /// Parses without filesystem checks; errors name the file `<string>`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text, Path::new("<string>"), false)
    }
}

#[cfg(test)]
mod tests;
