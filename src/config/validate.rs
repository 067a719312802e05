//! Semantic checks on a parsed configuration. Every problem is collected, none stops the others.
//!
//! Problems are reported against dotted key paths; `load.rs` turns them into file lines.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use super::duration::format_duration;
use super::schema::{Negotiation, RuntimeConfig, Shards};
use super::Config;

/// Prosody's floor for `stanza_bytes`; RFC 6120 §13.12 requires accepting at least 10000 bytes.
pub const MIN_STANZA_BYTES: usize = 10_000;
/// io_uring refuses rings deeper than this.
pub const MAX_RING_DEPTH: u32 = 32_768;
/// `runtime.spin_before_park` cap: spinning longer only burns the CPU the shard is pinned to.
pub const MAX_SPIN_BEFORE_PARK: Duration = Duration::from_millis(100);
/// `runtime.preempt_timer` floor: below this the timer itself becomes the work.
pub const MIN_PREEMPT_TIMER: Duration = Duration::from_micros(100);
/// `runtime.preempt_timer` cap: longer lets one busy stream starve the shard's others.
pub const MAX_PREEMPT_TIMER: Duration = Duration::from_secs(10);
/// `runtime.read_buffer` floor: smaller buffers turn one TLS record into many reads.
pub const MIN_READ_BUFFER: usize = 512;
/// `runtime.read_buffer` cap (one per shard; a larger read only batches more records).
pub const MAX_READ_BUFFER: usize = 1 << 20;
/// `runtime.write_batch` cap.
pub const MAX_WRITE_BATCH: usize = 65_536;
/// Largest `sip.max_transactions` (each pending transaction holds its branch and what it is
/// for: a few hundred bytes).
pub const MAX_SIP_TRANSACTIONS: usize = 1 << 20;

/// One semantic problem at a dotted key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    pub key: String,
    pub message: String,
}

/// Why a partner's TLS/SASL/dialback combination cannot work (Lync negotiation matrix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NegotiationError {
    /// SASL (EXTERNAL) runs only inside TLS, but TLS is not supported.
    SaslWithoutTls {
        /// The SASL setting (required or optional).
        sasl: Negotiation,
        /// Whether dialback is enabled (if not, nothing could authenticate the partner).
        dialback: bool,
    },
    /// Neither SASL nor dialback is available: the partner could never be authenticated.
    NoAuthentication {
        /// The TLS setting, for the message.
        tls: Negotiation,
    },
}

impl fmt::Display for NegotiationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::SaslWithoutTls {
                sasl: Negotiation::Required,
                dialback,
            } => {
                f.write_str(
                    r#"sasl = "required" with tls = "not-supported" is invalid: SASL runs only over TLS"#,
                )?;
                if !dialback {
                    f.write_str(", and with dialback = false there is no way to authenticate")?;
                }
                Ok(())
            }
            Self::SaslWithoutTls { sasl, .. } => write!(
                f,
                r#"sasl = "{sasl}" with tls = "not-supported" is invalid: SASL runs only over TLS; set sasl = "not-supported" to use dialback over plain TCP"#
            ),
            Self::NoAuthentication { tls } => write!(
                f,
                r#"no authentication method: sasl = "not-supported" and dialback = false (tls = "{tls}"); enable dialback or SASL"#
            ),
        }
    }
}

impl std::error::Error for NegotiationError {}

/// Checks one partner's negotiation settings against the Lync matrix: SASL requires TLS, and at
/// least one of SASL or dialback must be able to authenticate the partner.
pub fn check_negotiation(
    tls: Negotiation,
    sasl: Negotiation,
    dialback: bool,
) -> Result<(), NegotiationError> {
    if tls == Negotiation::NotSupported && sasl != Negotiation::NotSupported {
        return Err(NegotiationError::SaslWithoutTls { sasl, dialback });
    }
    if sasl == Negotiation::NotSupported && !dialback {
        return Err(NegotiationError::NoAuthentication { tls });
    }
    Ok(())
}

/// Checks a lowercase DNS name (RFC 1035 LDH labels, A-labels for IDNs).
pub fn check_dns_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("empty domain");
    }
    if !name.is_ascii() {
        return Err("non-ASCII: write the IDNA A-label (xn--...) form");
    }
    if name.parse::<IpAddr>().is_ok() {
        return Err("an IP address is not a domain name");
    }
    if name.len() > 253 {
        return Err("longer than 253 characters");
    }
    if name.ends_with('.') {
        return Err("must not end with a dot");
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err("empty label (leading dot or two dots in a row)");
        }
        if label.len() > 63 {
            return Err("a label is longer than 63 characters");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err("only lowercase letters, digits, '-' and '.' are allowed");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("a label must not start or end with '-'");
        }
    }
    Ok(())
}

/// Runs every check; `check_files` also requires certificate, key and trust files to exist.
pub(crate) fn validate(cfg: &Config, check_files: bool) -> Vec<Problem> {
    let mut v = Validator {
        problems: Vec::new(),
        check_files,
    };
    v.server(cfg);
    v.listen(cfg);
    v.tls(cfg);
    v.dialback(cfg);
    v.dns(cfg);
    v.partners(cfg);
    v.limits(cfg);
    v.runtime(&cfg.runtime);
    v.sip(cfg);
    v.log(cfg);
    v.problems
}

/// The checks a tuning profile can change the outcome of: all of `[runtime]`, and
/// `limits.outbound_queue`.
pub(crate) fn validate_tuning(runtime: &RuntimeConfig, outbound_queue: usize) -> Vec<Problem> {
    let mut v = Validator {
        problems: Vec::new(),
        check_files: false,
    };
    v.runtime(runtime);
    v.nonzero("limits.outbound_queue", outbound_queue as u64);
    v.problems
}

/// Shortest OPTIONS probe interval: shorter only loads the pool.
const MIN_OPTIONS_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

struct Validator {
    problems: Vec<Problem>,
    check_files: bool,
}

impl Validator {
    fn sip(&mut self, cfg: &Config) {
        if let Some(hop) = &cfg.sip.next_hop {
            if let Err(e) = crate::sip::next_hop::NextHop::parse(hop) {
                self.report(
                    "sip.next_hop",
                    format!(
                        "expected sip:host[:port][;transport=tcp|tls] or sips:host[:port]: {e}"
                    ),
                );
            }
        }
        if !(1..=MAX_SIP_TRANSACTIONS).contains(&cfg.sip.max_transactions) {
            self.report(
                "sip.max_transactions",
                format!(
                    "must be from 1 to {MAX_SIP_TRANSACTIONS}, got {}",
                    cfg.sip.max_transactions
                ),
            );
        }
        if cfg.sip.t1.is_zero() {
            self.report("sip.t1", "expected a duration above zero, e.g. \"500ms\"");
        }
        let probe = cfg.sip.options_interval;
        if !probe.is_zero() && probe < MIN_OPTIONS_INTERVAL {
            self.report(
                "sip.options_interval",
                "expected 0 (off) or at least \"100ms\", e.g. \"30s\"",
            );
        }
        for (i, d) in cfg.sip.domains.iter().enumerate() {
            self.domain(format!("sip.domains[{i}]"), d);
        }
    }

    fn report(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            key: key.into(),
            message: message.into(),
        });
    }

    fn domain(&mut self, key: String, name: &str) -> bool {
        match check_dns_name(name) {
            Ok(()) => true,
            Err(why) => {
                self.report(key, format!("invalid domain {name:?}: {why}"));
                false
            }
        }
    }

    fn file(&mut self, key: String, path: &Path) {
        if path.as_os_str().is_empty() {
            self.report(key, "must not be empty");
            return;
        }
        if !self.check_files {
            return;
        }
        match std::fs::metadata(path) {
            Ok(m) if m.is_file() => {}
            Ok(_) => self.report(key, format!("{} is not a regular file", path.display())),
            Err(e) => self.report(key, format!("cannot open {}: {e}", path.display())),
        }
    }

    fn nonzero_duration(&mut self, key: &str, d: Duration) {
        if d.is_zero() {
            self.report(key, "must be longer than 0");
        }
    }

    fn nonzero(&mut self, key: &str, n: u64) {
        if n == 0 {
            self.report(key, "must be at least 1");
        }
    }

    fn server(&mut self, cfg: &Config) {
        let domains = &cfg.server.domains;
        if domains.is_empty() {
            self.report("server.domains", "at least one domain is required");
        }
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (i, d) in domains.iter().enumerate() {
            let key = format!("server.domains[{i}]");
            if !self.domain(key.clone(), d) {
                continue;
            }
            if let Some(first) = seen.insert(d, i) {
                self.report(
                    key,
                    format!("{d:?} is already listed as server.domains[{first}]"),
                );
            }
        }
    }

    fn listen(&mut self, cfg: &Config) {
        let l = &cfg.listen;
        if l.s2s.is_empty() && l.s2s_tls.is_empty() {
            self.report(
                "listen",
                "at least one of listen.s2s (STARTTLS) or listen.s2s_tls (direct TLS) is required",
            );
        }
        let mut seen: HashMap<SocketAddr, String> = HashMap::new();
        let all = l
            .s2s
            .iter()
            .enumerate()
            .map(|(i, a)| (format!("listen.s2s[{i}]"), a))
            .chain(
                l.s2s_tls
                    .iter()
                    .enumerate()
                    .map(|(i, a)| (format!("listen.s2s_tls[{i}]"), a)),
            )
            .chain(l.metrics.iter().map(|a| ("listen.metrics".to_owned(), a)));
        for (key, addr) in all {
            // Port 0 (any free port) may repeat: each bind gets its own port.
            if addr.port() == 0 {
                continue;
            }
            if let Some(first) = seen.get(addr) {
                let msg = format!("{addr} is already used by {first}");
                self.report(key, msg);
            } else {
                seen.insert(*addr, key);
            }
        }
    }

    fn tls(&mut self, cfg: &Config) {
        let t = &cfg.tls;
        self.file("tls.certificate".into(), &t.certificate);
        self.file("tls.key".into(), &t.key);
        for (i, p) in t.trust.iter().enumerate() {
            self.file(format!("tls.trust[{i}]"), p);
        }
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (i, dc) in t.domains.iter().enumerate() {
            let key = format!("tls.domain[{i}].domain");
            if self.domain(key.clone(), &dc.domain) {
                if !cfg.server.domains.contains(&dc.domain) {
                    self.report(
                        key.clone(),
                        format!("{:?} is not one of server.domains", dc.domain),
                    );
                }
                if let Some(first) = seen.insert(&dc.domain, i) {
                    self.report(
                        key,
                        format!(
                            "{:?} already has a certificate at tls.domain[{first}]",
                            dc.domain
                        ),
                    );
                }
            }
            self.file(format!("tls.domain[{i}].certificate"), &dc.certificate);
            self.file(format!("tls.domain[{i}].key"), &dc.key);
        }
    }

    fn dialback(&mut self, cfg: &Config) {
        if cfg.dialback.secret.as_deref().is_some_and(str::is_empty) {
            self.report(
                "dialback.secret",
                "must not be empty; leave the key out to generate a random secret at start",
            );
        }
    }

    fn dns(&mut self, cfg: &Config) {
        self.nonzero_duration("dns.timeout", cfg.dns.timeout);
        for (i, s) in cfg.dns.servers.iter().enumerate() {
            if s.port() == 0 {
                self.report(format!("dns.servers[{i}]"), "port 0 cannot be queried");
            }
        }
    }

    fn partners(&mut self, cfg: &Config) {
        // domain -> key of its first listing
        let mut seen: HashMap<&str, String> = HashMap::new();
        for (i, p) in cfg.partners.iter().enumerate() {
            let keys = std::iter::once(format!("partner[{i}].domain")).chain(
                (0..p.additional_domains.len())
                    .map(|k| format!("partner[{i}].additional_domains[{k}]")),
            );
            for (key, d) in keys.zip(p.all_domains()) {
                if !self.domain(key.clone(), d) {
                    continue;
                }
                if cfg.server.domains.iter().any(|s| s == d) {
                    self.report(
                        key.clone(),
                        format!("{d:?} is one of server.domains: we serve it ourselves"),
                    );
                }
                if let Some(first) = seen.get(d) {
                    let msg = format!("{d:?} is already listed at {first}");
                    self.report(key, msg);
                } else {
                    seen.insert(d, key);
                }
            }
            if let Err(e) = check_negotiation(p.tls, p.sasl, p.dialback) {
                let field = match e {
                    NegotiationError::SaslWithoutTls { .. } => "sasl",
                    NegotiationError::NoAuthentication { .. } => "dialback",
                };
                self.report(format!("partner[{i}].{field}"), e.to_string());
            }
            if p.connection_limit == Some(0) {
                self.report(
                    format!("partner[{i}].connection_limit"),
                    "must be at least 1 (remove the partner to refuse it)",
                );
            }
        }
    }

    fn limits(&mut self, cfg: &Config) {
        let l = &cfg.limits;
        self.nonzero("limits.connections", l.connections.into());
        self.nonzero(
            "limits.connections_per_partner",
            l.connections_per_partner.into(),
        );
        if l.connections_per_partner > l.connections {
            self.report(
                "limits.connections_per_partner",
                format!(
                    "{} exceeds limits.connections ({})",
                    l.connections_per_partner, l.connections
                ),
            );
        }
        self.nonzero_duration("limits.stream_establishment", l.stream_establishment);
        self.nonzero_duration("limits.inactivity", l.inactivity);
        self.nonzero_duration("limits.keepalive_interval", l.keepalive_interval);
        self.nonzero_duration("limits.subscription_refresh", l.subscription_refresh);
        if l.stanza_bytes < MIN_STANZA_BYTES {
            self.report(
                "limits.stanza_bytes",
                format!(
                    "{} is below {MIN_STANZA_BYTES}, the minimum stanza size RFC 6120 §13.12 requires servers to accept",
                    l.stanza_bytes
                ),
            );
        }
        if l.stanza_bytes_before_auth > l.stanza_bytes {
            self.report(
                "limits.stanza_bytes_before_auth",
                format!(
                    "{} exceeds limits.stanza_bytes ({}); the pre-authentication cap must be the smaller one",
                    l.stanza_bytes_before_auth, l.stanza_bytes
                ),
            );
        }
        self.nonzero(
            "limits.stanza_bytes_before_auth",
            l.stanza_bytes_before_auth as u64,
        );
        self.nonzero("limits.max_depth", l.max_depth as u64);
        self.nonzero("limits.max_attributes", l.max_attributes as u64);
        self.nonzero(
            "limits.max_elements_per_stanza",
            l.max_elements_per_stanza as u64,
        );
        self.nonzero("limits.outbound_queue", l.outbound_queue as u64);
    }

    fn runtime(&mut self, r: &RuntimeConfig) {
        if r.shards == Shards::Count(0) {
            self.report("runtime.shards", r#"must be at least 1 (or "auto")"#);
        }
        self.nonzero("runtime.io_memory", r.io_memory as u64);
        if r.ring_depth == 0 || r.ring_depth > MAX_RING_DEPTH {
            self.report(
                "runtime.ring_depth",
                format!("must be from 1 to {MAX_RING_DEPTH}, got {}", r.ring_depth),
            );
        }
        self.nonzero("runtime.queue_capacity", r.queue_capacity as u64);
        self.nonzero("runtime.batch", r.batch as u64);
        if r.batch > r.queue_capacity {
            self.report(
                "runtime.batch",
                format!(
                    "{} exceeds runtime.queue_capacity ({})",
                    r.batch, r.queue_capacity
                ),
            );
        }
        if r.spin_before_park > MAX_SPIN_BEFORE_PARK {
            self.report(
                "runtime.spin_before_park",
                format!(
                    "must be at most {} (0s turns spinning off), got {}",
                    format_duration(MAX_SPIN_BEFORE_PARK),
                    format_duration(r.spin_before_park)
                ),
            );
        }
        if !(MIN_PREEMPT_TIMER..=MAX_PREEMPT_TIMER).contains(&r.preempt_timer) {
            self.report(
                "runtime.preempt_timer",
                format!(
                    "must be from {} to {}, got {}",
                    format_duration(MIN_PREEMPT_TIMER),
                    format_duration(MAX_PREEMPT_TIMER),
                    format_duration(r.preempt_timer)
                ),
            );
        }
        if !(MIN_READ_BUFFER..=MAX_READ_BUFFER).contains(&r.read_buffer) {
            self.report(
                "runtime.read_buffer",
                format!(
                    "must be from {MIN_READ_BUFFER} bytes to {} KiB, got {} bytes",
                    MAX_READ_BUFFER / 1024,
                    r.read_buffer
                ),
            );
        }
        if r.write_batch == 0 || r.write_batch > MAX_WRITE_BATCH {
            self.report(
                "runtime.write_batch",
                format!(
                    "must be from 1 to {MAX_WRITE_BATCH} stanzas, got {}",
                    r.write_batch
                ),
            );
        }
    }

    fn log(&mut self, cfg: &Config) {
        if let Err(e) = tracing_subscriber::EnvFilter::builder().parse(&cfg.log.level) {
            self.report(
                "log.level",
                format!("not a tracing filter ({e}); use e.g. \"info\" or \"stanza_router=debug\""),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Negotiation::{NotSupported as NS, Optional as Opt, Required as Req};

    #[test]
    fn accepts_the_valid_lync_combinations() {
        for (tls, sasl, dialback) in [
            (Req, Req, false),
            (Req, Req, true),
            (Req, Opt, true),
            (Req, Opt, false),
            (Opt, Opt, true),
            (Opt, Req, false),
            (Req, NS, true),
            (Opt, NS, true),
            (NS, NS, true),
        ] {
            assert_eq!(
                check_negotiation(tls, sasl, dialback),
                Ok(()),
                "{tls} {sasl} {dialback}"
            );
        }
    }

    #[test]
    fn rejects_sasl_without_tls() {
        for sasl in [Req, Opt] {
            for dialback in [true, false] {
                assert_eq!(
                    check_negotiation(NS, sasl, dialback),
                    Err(NegotiationError::SaslWithoutTls { sasl, dialback })
                );
            }
        }
        let msg = check_negotiation(NS, Req, false).unwrap_err().to_string();
        assert!(msg.contains("SASL runs only over TLS"), "{msg}");
        assert!(msg.contains("no way to authenticate"), "{msg}");
    }

    #[test]
    fn rejects_no_authentication_method() {
        for tls in [Req, Opt, NS] {
            assert_eq!(
                check_negotiation(tls, NS, false),
                Err(NegotiationError::NoAuthentication { tls })
            );
        }
    }

    #[test]
    fn dns_names() {
        for ok in [
            "corp.test",
            "a-b.example",
            "xn--bcher-kva.example",
            "localhost",
        ] {
            assert_eq!(check_dns_name(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "corp..test",
            ".corp.test",
            "corp.test.",
            "-a.test",
            "a-.test",
            "under_score.test",
            "Upper.test",
            "bücher.example",
            "127.0.0.1",
            "a b.test",
        ] {
            assert!(check_dns_name(bad).is_err(), "{bad}");
        }
        assert!(check_dns_name(&"a".repeat(64)).is_err());
        assert!(check_dns_name(&vec!["a".repeat(63); 5].join(".")).is_err());
    }
}
