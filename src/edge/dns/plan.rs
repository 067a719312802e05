//! The resolution plans as sans-IO state machines: where to connect for an XMPP domain
//! (RFC 6120 §3.2 with XEP-0368), and the addresses of one host.
//!
//! S2S plan for domain D:
//! 1. Ask `_xmpps-server._tcp.D` and `_xmpp-server._tcp.D` SRV in parallel.
//! 2. If either has usable records: merge them (XEP-0368: one set, priorities and weights
//!    mixed), order them per RFC 2782, take target addresses from the additional section or
//!    ask A and AAAA for each target, and list every (target address, port) in order.
//!    A set that is a single record with target "." only says that service is absent
//!    (XEP-0368 §4: direct TLS not offered, use `_xmpp-server`).
//! 3. If neither has records: if one said "." the service is decidedly not available
//!    (RFC 6120 §3.2.1; XEP-0368 §4 forbids the A/AAAA fallback then); if both were
//!    NXDOMAIN/NODATA, fall back to A/AAAA of D on port 5269 with STARTTLS (RFC 6120
//!    §3.2.2); if a lookup failed (timeout, SERVFAIL, malformed), report that failure rather
//!    than guess, so a broken resolver cannot silently downgrade us to the fallback.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use hickory_proto::rr::{Name, RecordType};

use super::error::ResolveError;
use super::exchange::{Exchanges, LookupResult, QueryToken, Transmit};
use super::message::{Digest, SrvRecord};
use super::order::{order_srv, SplitMix64, TlsPreference};

/// Port of the RFC 6120 §3.2.2 fallback (IANA "xmpp-server").
pub const DEFAULT_S2S_PORT: u16 = 5269;

/// How many times a lookup follows a CNAME chain that the answer left incomplete.
const MAX_ALIAS_RESTARTS: u8 = 4;

/// How many distinct SRV targets are resolved at most; a hostile SRV set must not make us
/// send hundreds of queries.
pub(super) const MAX_TARGETS: usize = 16;

/// One place to connect to, in the order to try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S2sTarget {
    /// The SRV target host (or the domain itself for the A/AAAA fallback), without the
    /// trailing dot. Certificate checks still use the XMPP domain, not this name.
    pub host: String,
    /// Address and port to connect to.
    pub addr: SocketAddr,
    /// True for `_xmpps-server` (TLS from the first byte, XEP-0368), false for STARTTLS.
    pub direct_tls: bool,
}

/// Order of address families for one host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AddressOrder {
    /// AAAA addresses before A (the RFC 6724 default policy prefers IPv6).
    #[default]
    Ipv6First,
    /// A addresses before AAAA.
    Ipv4First,
}

/// Options of the S2S plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct S2sOptions {
    /// Direct TLS vs STARTTLS at equal SRV priority.
    pub tls_preference: TlsPreference,
    /// Address family order within one host.
    pub address_order: AddressOrder,
}

/// The common face of the resolution state machines, for the driver.
pub trait DnsMachine {
    /// What a successful resolution produces.
    type Output;
    /// Next query to send, if any.
    fn poll_transmit(&mut self) -> Option<Transmit>;
    /// When [`handle_timeout`](Self::handle_timeout) must be called next, if anything is
    /// outstanding.
    fn poll_timeout(&self) -> Option<Instant>;
    /// Bytes arrived for `token` (over TCP: the message without its length prefix).
    fn handle_response(&mut self, token: QueryToken, bytes: &[u8], now: Instant);
    /// Sending, connecting or receiving for `token` failed locally or was refused.
    fn handle_transport_error(&mut self, token: QueryToken, kind: io::ErrorKind, now: Instant);
    /// Time has passed; expire what is due.
    fn handle_timeout(&mut self, now: Instant);
    /// The result, once (later calls return `None`).
    fn take_outcome(&mut self) -> Option<Result<Self::Output, ResolveError>>;
}

#[derive(Debug)]
struct Lookup {
    name: Name,
    rtype: RecordType,
    restarts: u8,
    result: Option<LookupResult>,
}

/// Lookups of one resolution and the exchanges that serve them.
#[derive(Debug)]
pub(super) struct Core {
    pub(super) ex: Exchanges,
    pub(super) rng: SplitMix64,
    lookups: Vec<Lookup>,
}

impl Core {
    pub(super) fn new(
        servers: &[SocketAddr],
        timeout: Duration,
        seed: u64,
    ) -> Result<Self, ResolveError> {
        Ok(Self {
            ex: Exchanges::new(servers, timeout)?,
            rng: SplitMix64::new(seed),
            lookups: Vec::new(),
        })
    }

    pub(super) fn start(&mut self, name: Name, rtype: RecordType, now: Instant) -> usize {
        let key = self.lookups.len();
        let res = self.ex.start(key, name.clone(), rtype, &mut self.rng, now);
        self.lookups.push(Lookup {
            name,
            rtype,
            restarts: 0,
            result: res.err().map(Err),
        });
        key
    }

    pub(super) fn done(&self, key: usize) -> bool {
        self.lookups.get(key).is_some_and(|l| l.result.is_some())
    }

    pub(super) fn result(&self, key: usize) -> Option<&LookupResult> {
        self.lookups.get(key).and_then(|l| l.result.as_ref())
    }

    /// Records finished lookups, restarting those whose CNAME chain was left incomplete.
    fn absorb(&mut self, finished: impl IntoIterator<Item = (usize, LookupResult)>, now: Instant) {
        for (key, res) in finished {
            let Some(lookup) = self.lookups.get_mut(key) else {
                continue;
            };
            match res {
                Ok(Digest::Alias { target }) if lookup.restarts < MAX_ALIAS_RESTARTS => {
                    lookup.restarts += 1;
                    lookup.name = target.clone();
                    if let Err(e) = self.ex.start(key, target, lookup.rtype, &mut self.rng, now) {
                        lookup.result = Some(Err(e));
                    }
                }
                Ok(Digest::Alias { .. }) => {
                    lookup.result = Some(Err(ResolveError::Malformed {
                        name: lookup.name.to_ascii(),
                        rtype: lookup.rtype,
                        server: None,
                        reason: "CNAME chain too long",
                    }));
                }
                other => lookup.result = Some(other),
            }
        }
    }

    pub(super) fn handle_response(&mut self, token: QueryToken, bytes: &[u8], now: Instant) {
        let done = self.ex.handle_response(token, bytes, &mut self.rng, now);
        self.absorb(done, now);
    }

    pub(super) fn handle_transport_error(
        &mut self,
        token: QueryToken,
        kind: io::ErrorKind,
        now: Instant,
    ) {
        let done = self
            .ex
            .handle_transport_error(token, kind, &mut self.rng, now);
        self.absorb(done, now);
    }

    pub(super) fn handle_timeout(&mut self, now: Instant) {
        let done = self.ex.handle_timeout(&mut self.rng, now);
        self.absorb(done, now);
    }
}

/// Parses a domain given by configuration or a JID into an absolute DNS name.
pub(super) fn parse_name(text: &str) -> Result<Name, ResolveError> {
    let invalid = || ResolveError::InvalidName {
        name: text.to_owned(),
    };
    let trimmed = text.strip_suffix('.').unwrap_or(text);
    if trimmed.is_empty() || !trimmed.is_ascii() || trimmed.parse::<IpAddr>().is_ok() {
        return Err(invalid());
    }
    let mut name = Name::from_ascii(trimmed).map_err(|_| invalid())?;
    name.set_fqdn(true);
    Ok(name)
}

pub(super) fn display_name(name: &Name) -> String {
    let s = name.to_ascii();
    match s.strip_suffix('.') {
        Some(t) if !t.is_empty() => t.to_owned(),
        _ => s,
    }
}

/// Addresses of one host from its A and AAAA lookups, in `order`, with whether both said
/// NXDOMAIN and the first lookup error.
pub(super) struct HostAddrs {
    pub(super) addrs: Vec<IpAddr>,
    pub(super) nxdomain: bool,
    pub(super) error: Option<ResolveError>,
}

impl HostAddrs {
    /// The addresses, or why there are none: the first lookup error, else NXDOMAIN when both
    /// lookups said so, else no address records for `name`.
    pub(super) fn into_result(self, name: String) -> Result<Vec<IpAddr>, ResolveError> {
        if !self.addrs.is_empty() {
            Ok(self.addrs)
        } else if let Some(e) = self.error {
            Err(e)
        } else if self.nxdomain {
            Err(ResolveError::NxDomain { name })
        } else {
            Err(ResolveError::NoAddresses { name })
        }
    }
}

pub(super) fn host_addrs(
    a: Option<&LookupResult>,
    aaaa: Option<&LookupResult>,
    order: AddressOrder,
) -> HostAddrs {
    let mut out = HostAddrs {
        addrs: Vec::new(),
        nxdomain: true,
        error: None,
    };
    let (first, second) = match order {
        AddressOrder::Ipv6First => (aaaa, a),
        AddressOrder::Ipv4First => (a, aaaa),
    };
    for res in [first, second].into_iter().flatten() {
        match res {
            Ok(Digest::Answer { addrs, .. }) => {
                out.nxdomain = false;
                out.addrs.extend(addrs.iter().copied());
            }
            Ok(Digest::NxDomain) => {}
            Ok(_) => out.nxdomain = false,
            Err(e) => {
                out.nxdomain = false;
                if out.error.is_none() {
                    out.error = Some(e.clone());
                }
            }
        }
    }
    out
}

pub(super) fn sort_family(addrs: &mut [IpAddr], order: AddressOrder) {
    addrs.sort_by_key(|a| match order {
        AddressOrder::Ipv6First => a.is_ipv4(),
        AddressOrder::Ipv4First => a.is_ipv6(),
    });
}

/// What one SRV lookup said.
pub(super) enum SrvSet {
    Records(Vec<SrvRecord>, Vec<(Name, IpAddr)>),
    /// A single record with target ".".
    Unavailable,
    /// NXDOMAIN or NODATA.
    Absent,
    Failed(ResolveError),
}

pub(super) fn classify(res: Option<&LookupResult>) -> SrvSet {
    match res {
        Some(Ok(Digest::Answer {
            srv, additional, ..
        })) => {
            // RFC 2782: "." alone means not available; mixed in with real targets it is
            // meaningless, so skip it.
            let usable: Vec<SrvRecord> = srv
                .iter()
                .filter(|r| !r.target.is_root())
                .cloned()
                .collect();
            if usable.is_empty() {
                SrvSet::Unavailable
            } else {
                SrvSet::Records(usable, additional.clone())
            }
        }
        Some(Ok(Digest::NoData | Digest::NxDomain)) => SrvSet::Absent,
        Some(Err(e)) => SrvSet::Failed(e.clone()),
        Some(Ok(_)) | None => SrvSet::Failed(ResolveError::Malformed {
            name: String::new(),
            rtype: RecordType::SRV,
            server: None,
            reason: "unexpected SRV lookup state",
        }),
    }
}

/// Addresses of one SRV target: from the additional section, or lookups in flight.
#[derive(Debug)]
pub(super) enum TargetAddrs {
    Known(Vec<IpAddr>),
    Lookups { a: usize, aaaa: usize },
}

#[derive(Debug)]
enum Phase {
    /// Waiting for the two SRV lookups: `[xmpps, xmpp]`.
    Srv {
        keys: [usize; 2],
    },
    /// Waiting for A/AAAA of SRV targets.
    Targets {
        ordered: Vec<(SrvRecord, bool)>,
        /// Per distinct target, its addresses or their lookups.
        hosts: Vec<(Name, TargetAddrs)>,
    },
    /// Waiting for A/AAAA of the domain itself.
    Fallback {
        a: usize,
        aaaa: usize,
    },
    Done,
}

/// Sans-IO resolution of where to open an S2S connection for an XMPP domain.
#[derive(Debug)]
pub struct S2sResolution {
    domain: Name,
    core: Core,
    options: S2sOptions,
    phase: Phase,
    outcome: Option<Result<Vec<S2sTarget>, ResolveError>>,
}

impl S2sResolution {
    /// Starts resolving `domain` against `servers` (tried in order, each once, `timeout`
    /// per query). `seed` drives DNS IDs and the RFC 2782 weighted choice; the driver
    /// passes OS randomness, tests a constant.
    pub fn new(
        domain: &str,
        servers: &[SocketAddr],
        timeout: Duration,
        options: S2sOptions,
        seed: u64,
        now: Instant,
    ) -> Result<Self, ResolveError> {
        let domain = parse_name(domain)?;
        let mut core = Core::new(servers, timeout, seed)?;
        let srv_name = |service: &str| {
            Name::from_ascii(service)
                .and_then(|n| n.append_domain(&domain))
                .map_err(|_| ResolveError::InvalidName {
                    name: display_name(&domain),
                })
        };
        let xmpps = srv_name("_xmpps-server._tcp")?;
        let xmpp = srv_name("_xmpp-server._tcp")?;
        let keys = [
            core.start(xmpps, RecordType::SRV, now),
            core.start(xmpp, RecordType::SRV, now),
        ];
        let mut this = Self {
            domain,
            core,
            options,
            phase: Phase::Srv { keys },
            outcome: None,
        };
        this.advance(now);
        Ok(this)
    }

    fn finish(&mut self, res: Result<Vec<S2sTarget>, ResolveError>) {
        self.phase = Phase::Done;
        self.outcome = Some(res);
    }

    /// Moves through the phases as far as the finished lookups allow.
    fn advance(&mut self, now: Instant) {
        loop {
            match &self.phase {
                Phase::Srv { keys } => {
                    let keys = *keys;
                    if !keys.iter().all(|k| self.core.done(*k)) {
                        return;
                    }
                    self.after_srv(keys, now);
                }
                Phase::Targets { hosts, .. } => {
                    let pending = hosts.iter().any(|(_, h)| match h {
                        TargetAddrs::Known(_) => false,
                        TargetAddrs::Lookups { a, aaaa } => {
                            !self.core.done(*a) || !self.core.done(*aaaa)
                        }
                    });
                    if pending {
                        return;
                    }
                    self.after_targets();
                }
                Phase::Fallback { a, aaaa } => {
                    let (a, aaaa) = (*a, *aaaa);
                    if !self.core.done(a) || !self.core.done(aaaa) {
                        return;
                    }
                    self.after_fallback(a, aaaa);
                }
                Phase::Done => return,
            }
        }
    }

    fn after_srv(&mut self, keys: [usize; 2], now: Instant) {
        let sets = [
            classify(self.core.result(keys[0])),
            classify(self.core.result(keys[1])),
        ];
        let mut records = Vec::new();
        let mut additional = Vec::new();
        for (set, direct_tls) in sets.iter().zip([true, false]) {
            if let SrvSet::Records(recs, add) = set {
                records.extend(recs.iter().cloned().map(|r| (r, direct_tls)));
                additional.extend(add.iter().cloned());
            }
        }
        if records.is_empty() {
            // Report the STARTTLS lookup's failure first: it is the RFC 6120 baseline.
            for set in sets.iter().rev() {
                if let SrvSet::Failed(e) = set {
                    return self.finish(Err(e.clone()));
                }
            }
            if sets.iter().any(|s| matches!(s, SrvSet::Unavailable)) {
                return self.finish(Err(ResolveError::ServiceUnavailable {
                    domain: display_name(&self.domain),
                }));
            }
            let a = self.core.start(self.domain.clone(), RecordType::A, now);
            let aaaa = self.core.start(self.domain.clone(), RecordType::AAAA, now);
            self.phase = Phase::Fallback { a, aaaa };
            return;
        }
        let ordered = order_srv(records, self.options.tls_preference, &mut self.core.rng);
        let mut hosts: Vec<(Name, TargetAddrs)> = Vec::new();
        for (rec, _) in &ordered {
            if hosts.len() >= MAX_TARGETS || hosts.iter().any(|(n, _)| n == &rec.target) {
                continue;
            }
            let mut known: Vec<IpAddr> = additional
                .iter()
                .filter(|(n, _)| n == &rec.target)
                .map(|(_, ip)| *ip)
                .collect();
            known.dedup();
            let entry = if known.is_empty() {
                let a = self.core.start(rec.target.clone(), RecordType::A, now);
                let aaaa = self.core.start(rec.target.clone(), RecordType::AAAA, now);
                TargetAddrs::Lookups { a, aaaa }
            } else {
                sort_family(&mut known, self.options.address_order);
                TargetAddrs::Known(known)
            };
            hosts.push((rec.target.clone(), entry));
        }
        self.phase = Phase::Targets { ordered, hosts };
    }

    fn after_targets(&mut self) {
        let Phase::Targets { ordered, hosts } = std::mem::replace(&mut self.phase, Phase::Done)
        else {
            return;
        };
        let mut resolved: Vec<(Name, Vec<IpAddr>)> = Vec::with_capacity(hosts.len());
        let mut first_error = None;
        for (name, entry) in hosts {
            let addrs = match entry {
                TargetAddrs::Known(known) => known,
                TargetAddrs::Lookups { a, aaaa } => {
                    let h = host_addrs(
                        self.core.result(a),
                        self.core.result(aaaa),
                        self.options.address_order,
                    );
                    if first_error.is_none() {
                        first_error = h.error;
                    }
                    h.addrs
                }
            };
            resolved.push((name, addrs));
        }
        let mut targets: Vec<S2sTarget> = Vec::new();
        for (rec, direct_tls) in &ordered {
            let Some((_, addrs)) = resolved.iter().find(|(n, _)| n == &rec.target) else {
                continue;
            };
            for ip in addrs {
                let addr = SocketAddr::new(*ip, rec.port);
                if targets
                    .iter()
                    .any(|t| t.addr == addr && t.direct_tls == *direct_tls)
                {
                    continue;
                }
                targets.push(S2sTarget {
                    host: display_name(&rec.target),
                    addr,
                    direct_tls: *direct_tls,
                });
            }
        }
        let res = if !targets.is_empty() {
            Ok(targets)
        } else if let Some(e) = first_error {
            Err(e)
        } else {
            Err(ResolveError::NoAddresses {
                name: display_name(&self.domain),
            })
        };
        self.finish(res);
    }

    fn after_fallback(&mut self, a: usize, aaaa: usize) {
        let h = host_addrs(
            self.core.result(a),
            self.core.result(aaaa),
            self.options.address_order,
        );
        let host = display_name(&self.domain);
        let res = h.into_result(host.clone()).map(|addrs| {
            addrs
                .into_iter()
                .map(|ip| S2sTarget {
                    host: host.clone(),
                    addr: SocketAddr::new(ip, DEFAULT_S2S_PORT),
                    direct_tls: false,
                })
                .collect()
        });
        self.finish(res);
    }
}

impl DnsMachine for S2sResolution {
    type Output = Vec<S2sTarget>;

    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.core.ex.poll_transmit()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        if matches!(self.phase, Phase::Done) {
            return None;
        }
        self.core.ex.poll_timeout()
    }

    fn handle_response(&mut self, token: QueryToken, bytes: &[u8], now: Instant) {
        self.core.handle_response(token, bytes, now);
        self.advance(now);
    }

    fn handle_transport_error(&mut self, token: QueryToken, kind: io::ErrorKind, now: Instant) {
        self.core.handle_transport_error(token, kind, now);
        self.advance(now);
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.core.handle_timeout(now);
        self.advance(now);
    }

    fn take_outcome(&mut self) -> Option<Result<Vec<S2sTarget>, ResolveError>> {
        self.outcome.take()
    }
}

/// Sans-IO resolution of one host name to its addresses (A and AAAA, in parallel), used for
/// static routes (`proxy_fqdn = "host:port"`).
#[derive(Debug)]
pub struct HostResolution {
    name: Name,
    core: Core,
    order: AddressOrder,
    keys: (usize, usize),
    finished: bool,
    outcome: Option<Result<Vec<IpAddr>, ResolveError>>,
}

impl HostResolution {
    /// Starts resolving `name` against `servers` (tried in order, each once, `timeout` per
    /// query); `seed` drives DNS IDs.
    pub fn new(
        name: &str,
        servers: &[SocketAddr],
        timeout: Duration,
        order: AddressOrder,
        seed: u64,
        now: Instant,
    ) -> Result<Self, ResolveError> {
        let name = parse_name(name)?;
        let mut core = Core::new(servers, timeout, seed)?;
        let a = core.start(name.clone(), RecordType::A, now);
        let aaaa = core.start(name.clone(), RecordType::AAAA, now);
        let mut this = Self {
            name,
            core,
            order,
            keys: (a, aaaa),
            finished: false,
            outcome: None,
        };
        this.advance();
        Ok(this)
    }

    fn advance(&mut self) {
        let (a, aaaa) = self.keys;
        if self.finished || !self.core.done(a) || !self.core.done(aaaa) {
            return;
        }
        let h = host_addrs(self.core.result(a), self.core.result(aaaa), self.order);
        self.outcome = Some(h.into_result(display_name(&self.name)));
        self.finished = true;
    }
}

impl DnsMachine for HostResolution {
    type Output = Vec<IpAddr>;

    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.core.ex.poll_transmit()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        if self.finished {
            return None;
        }
        self.core.ex.poll_timeout()
    }

    fn handle_response(&mut self, token: QueryToken, bytes: &[u8], now: Instant) {
        self.core.handle_response(token, bytes, now);
        self.advance();
    }

    fn handle_transport_error(&mut self, token: QueryToken, kind: io::ErrorKind, now: Instant) {
        self.core.handle_transport_error(token, kind, now);
        self.advance();
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.core.handle_timeout(now);
        self.advance();
    }

    fn take_outcome(&mut self) -> Option<Result<Vec<IpAddr>, ResolveError>> {
        self.outcome.take()
    }
}

#[cfg(test)]
mod tests;
