//! Where to send SIP requests for a next-hop URI whose host is a name: RFC 3263 §4 as a
//! sans-IO state machine over the same exchanges as the S2S plan.
//!
//! Plan for `sip:NAME` / `sips:NAME` (an IP literal never gets here):
//! 1. Explicit port (RFC 3263 §4.2): A/AAAA of NAME on that port. The transport is the
//!    explicit one, else TLS for `sips:` and TCP for `sip:` (§4.1 says UDP for a `sip:` URI
//!    with a port and no transport; we speak no UDP, so TCP).
//! 2. Explicit transport, no port (§4.2): SRV `_sips._tcp.NAME` for TLS, `_sip._tcp.NAME` for
//!    TCP; without records, A/AAAA of NAME on the transport's default port (5061 / 5060).
//! 3. Neither (§4.1): NAPTR of NAME. Records whose service is `SIPS+D2T` (TLS) or `SIP+D2T`
//!    (TCP) with flag `S` and an empty regexp are kept; UDP, SCTP and WebSocket services are
//!    dropped (we speak none of them), and a `sips:` URI drops `SIP+D2T` too. The kept ones are
//!    ordered by order, then preference, and each replacement is asked for SRV; the targets
//!    come out NAPTR by NAPTR, each SRV set in RFC 2782 order ([`order_srv`]). With no kept
//!    NAPTR record: SRV `_sips._tcp.NAME`, then (for `sip:`) `_sip._tcp.NAME`, TLS targets
//!    first; without any SRV record, A/AAAA of NAME on the default port of TLS (`sips:`) or
//!    TCP (`sip:`; §4.1 says UDP, see above).
//!
//! Failures, like the S2S plan: a NAPTR lookup that fails (timeout, SERVFAIL, malformed) ends
//! the resolution with that error rather than guessing a transport; an SRV step without any
//! record reports the first failed lookup; an SRV set that is only "." makes the service
//! unavailable (no A/AAAA fallback, RFC 2782).
//!
//! Checked against RFC 3263 text: the service names, `_sips` for TLS also under a `sip:` URI
//! (a `sip:` client that supports TLS keeps `SIPS+D2T` records), UDP as the default for a
//! `sip:` URI with a port. Not verified against the RFC text (written from memory of it):
//! that a NAPTR set left empty after dropping unsupported services falls back to the SRV
//! queries as if there were no NAPTR records (what common stacks do), that every kept NAPTR is
//! followed (rather than only the first whose SRV answers), and the `S` flag / empty regexp
//! requirement.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use hickory_proto::rr::{Name, RecordType};

use super::error::ResolveError;
use super::exchange::{QueryToken, Transmit};
use super::message::{Digest, NaptrRecord, SrvRecord};
use super::order::{order_srv, TlsPreference};
use super::plan::{
    classify, display_name, host_addrs, parse_name, sort_family, AddressOrder, Core, DnsMachine,
    SrvSet, TargetAddrs, MAX_TARGETS,
};
use crate::sip::next_hop::{HopTransport, DEFAULT_TCP_PORT, DEFAULT_TLS_PORT};

/// Most NAPTR records followed to SRV: a hostile NAPTR set must not fan out.
pub const MAX_NAPTR: usize = 4;

/// What the URI says, apart from its host name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SipUriHints {
    /// A `sips:` URI: TLS only.
    pub secure: bool,
    /// The transport the URI names (`;transport=`), already mapped (`sips:` over TCP is TLS).
    pub transport: Option<HopTransport>,
    /// The port the URI names.
    pub port: Option<u16>,
}

/// One place to send SIP to, in the order to try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipTarget {
    /// The SRV target (or the URI's host for the A/AAAA steps), without the trailing dot.
    /// TLS still checks the URI's host, not this name (RFC 5922 §4).
    pub host: String,
    /// Address and port.
    pub addr: SocketAddr,
    /// Transport to use.
    pub transport: HopTransport,
}

#[derive(Debug)]
enum Phase {
    /// Waiting for the NAPTR lookup of the name.
    Naptr {
        key: usize,
    },
    /// Waiting for SRV lookups, in the order their targets are to be tried.
    Srv {
        sets: Vec<(HopTransport, usize)>,
        /// Transport of the A/AAAA fallback when no set has records.
        fallback: HopTransport,
    },
    /// Waiting for A/AAAA of SRV targets.
    Targets {
        ordered: Vec<(SrvRecord, HopTransport)>,
        hosts: Vec<(Name, TargetAddrs)>,
    },
    /// Waiting for A/AAAA of the name itself.
    Host {
        a: usize,
        aaaa: usize,
        port: u16,
        transport: HopTransport,
    },
    Done,
}

/// Sans-IO RFC 3263 resolution of a SIP next hop given by name.
#[derive(Debug)]
pub struct SipResolution {
    name: Name,
    hints: SipUriHints,
    core: Core,
    order: AddressOrder,
    phase: Phase,
    outcome: Option<Result<Vec<SipTarget>, ResolveError>>,
}

fn default_port(t: HopTransport) -> u16 {
    match t {
        HopTransport::Tcp => DEFAULT_TCP_PORT,
        HopTransport::Tls => DEFAULT_TLS_PORT,
    }
}

/// The transport a kept NAPTR record selects, or `None` to drop it.
fn naptr_transport(r: &NaptrRecord, secure: bool) -> Option<HopTransport> {
    if !r.flags.eq_ignore_ascii_case(b"s") || !r.regexp.is_empty() || r.replacement.is_root() {
        return None;
    }
    if r.services.eq_ignore_ascii_case(b"SIPS+D2T") {
        Some(HopTransport::Tls)
    } else if r.services.eq_ignore_ascii_case(b"SIP+D2T") && !secure {
        Some(HopTransport::Tcp)
    } else {
        None
    }
}

impl SipResolution {
    /// Starts resolving `host` (a DNS name, not an IP literal) with the URI's `hints` against
    /// `servers` (tried in order, each once, `timeout` per query). `seed` drives DNS IDs and
    /// the RFC 2782 weighted choice.
    pub fn new(
        host: &str,
        hints: SipUriHints,
        servers: &[SocketAddr],
        timeout: Duration,
        seed: u64,
        now: Instant,
    ) -> Result<Self, ResolveError> {
        let name = parse_name(host)?;
        let core = Core::new(servers, timeout, seed)?;
        let mut this = Self {
            name,
            hints,
            core,
            order: AddressOrder::default(),
            phase: Phase::Done,
            outcome: None,
        };
        let uri_transport = hints.transport.unwrap_or(if hints.secure {
            HopTransport::Tls
        } else {
            HopTransport::Tcp
        });
        this.phase = match (hints.port, hints.transport) {
            (Some(port), _) => this.host_phase(port, uri_transport, now),
            (None, Some(t)) => {
                let key = this.start_srv(t, now)?;
                Phase::Srv {
                    sets: vec![(t, key)],
                    fallback: t,
                }
            }
            (None, None) => Phase::Naptr {
                key: this.core.start(this.name.clone(), RecordType::NAPTR, now),
            },
        };
        this.advance(now);
        Ok(this)
    }

    /// Sets the order of address families within one host (default: IPv6 first).
    pub fn with_address_order(mut self, order: AddressOrder) -> Self {
        self.order = order;
        self
    }

    fn host_phase(&mut self, port: u16, transport: HopTransport, now: Instant) -> Phase {
        let a = self.core.start(self.name.clone(), RecordType::A, now);
        let aaaa = self.core.start(self.name.clone(), RecordType::AAAA, now);
        Phase::Host {
            a,
            aaaa,
            port,
            transport,
        }
    }

    /// Starts `_sips._tcp.NAME` (TLS) or `_sip._tcp.NAME` (TCP).
    fn start_srv(&mut self, t: HopTransport, now: Instant) -> Result<usize, ResolveError> {
        let service = match t {
            HopTransport::Tls => "_sips._tcp",
            HopTransport::Tcp => "_sip._tcp",
        };
        let owner = Name::from_ascii(service)
            .and_then(|n| n.append_domain(&self.name))
            .map_err(|_| ResolveError::InvalidName {
                name: display_name(&self.name),
            })?;
        Ok(self.core.start(owner, RecordType::SRV, now))
    }

    fn finish(&mut self, res: Result<Vec<SipTarget>, ResolveError>) {
        self.phase = Phase::Done;
        self.outcome = Some(res);
    }

    /// Moves through the phases as far as the finished lookups allow.
    fn advance(&mut self, now: Instant) {
        loop {
            match &self.phase {
                Phase::Naptr { key } => {
                    let key = *key;
                    if !self.core.done(key) {
                        return;
                    }
                    self.after_naptr(key, now);
                }
                Phase::Srv { sets, .. } => {
                    if !sets.iter().all(|(_, k)| self.core.done(*k)) {
                        return;
                    }
                    self.after_srv(now);
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
                Phase::Host { a, aaaa, .. } => {
                    if !self.core.done(*a) || !self.core.done(*aaaa) {
                        return;
                    }
                    self.after_host();
                }
                Phase::Done => return,
            }
        }
    }

    fn after_naptr(&mut self, key: usize, now: Instant) {
        let records = match self.core.result(key) {
            Some(Ok(Digest::Answer { naptr, .. })) => naptr.clone(),
            Some(Ok(Digest::NoData | Digest::NxDomain)) => Vec::new(),
            Some(Err(e)) => return self.finish(Err(e.clone())),
            Some(Ok(_)) | None => {
                return self.finish(Err(ResolveError::Malformed {
                    name: display_name(&self.name),
                    rtype: RecordType::NAPTR,
                    server: None,
                    reason: "unexpected NAPTR lookup state",
                }))
            }
        };
        let mut kept: Vec<(NaptrRecord, HopTransport)> = records
            .into_iter()
            .filter_map(|r| naptr_transport(&r, self.hints.secure).map(|t| (r, t)))
            .collect();
        kept.sort_by_key(|(r, _)| (r.order, r.preference));
        let mut sets = Vec::new();
        let mut seen: Vec<(Name, HopTransport)> = Vec::new();
        for (r, t) in kept {
            if sets.len() >= MAX_NAPTR || seen.contains(&(r.replacement.clone(), t)) {
                continue;
            }
            seen.push((r.replacement.clone(), t));
            sets.push((t, self.core.start(r.replacement, RecordType::SRV, now)));
        }
        let default = if self.hints.secure {
            HopTransport::Tls
        } else {
            HopTransport::Tcp
        };
        if let Some((first, _)) = sets.first() {
            let fallback = *first;
            self.phase = Phase::Srv { sets, fallback };
            return;
        }
        // No usable NAPTR: ask SRV for the transports we speak, TLS first.
        let mut wanted = vec![HopTransport::Tls];
        if !self.hints.secure {
            wanted.push(HopTransport::Tcp);
        }
        for t in wanted {
            match self.start_srv(t, now) {
                Ok(k) => sets.push((t, k)),
                Err(e) => return self.finish(Err(e)),
            }
        }
        self.phase = Phase::Srv {
            sets,
            fallback: default,
        };
    }

    fn after_srv(&mut self, now: Instant) {
        let Phase::Srv { sets, fallback } = std::mem::replace(&mut self.phase, Phase::Done) else {
            return;
        };
        let classified: Vec<(HopTransport, SrvSet)> = sets
            .iter()
            .map(|(t, k)| (*t, classify(self.core.result(*k))))
            .collect();
        let mut ordered: Vec<(SrvRecord, HopTransport)> = Vec::new();
        let mut additional = Vec::new();
        for (t, set) in &classified {
            if let SrvSet::Records(recs, add) = set {
                let tagged = recs.iter().cloned().map(|r| (r, false)).collect();
                let sorted = order_srv(tagged, TlsPreference::Mixed, &mut self.core.rng);
                ordered.extend(sorted.into_iter().map(|(r, _)| (r, *t)));
                additional.extend(add.iter().cloned());
            }
        }
        if ordered.is_empty() {
            for (_, set) in &classified {
                if let SrvSet::Failed(e) = set {
                    return self.finish(Err(e.clone()));
                }
            }
            if classified
                .iter()
                .any(|(_, s)| matches!(s, SrvSet::Unavailable))
            {
                return self.finish(Err(ResolveError::ServiceUnavailable {
                    domain: display_name(&self.name),
                }));
            }
            self.phase = self.host_phase(default_port(fallback), fallback, now);
            return;
        }
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
                sort_family(&mut known, self.order);
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
                    let h = host_addrs(self.core.result(a), self.core.result(aaaa), self.order);
                    if first_error.is_none() {
                        first_error = h.error;
                    }
                    h.addrs
                }
            };
            resolved.push((name, addrs));
        }
        let mut targets: Vec<SipTarget> = Vec::new();
        for (rec, transport) in &ordered {
            let Some((_, addrs)) = resolved.iter().find(|(n, _)| n == &rec.target) else {
                continue;
            };
            for ip in addrs {
                let addr = SocketAddr::new(*ip, rec.port);
                if targets
                    .iter()
                    .any(|t| t.addr == addr && t.transport == *transport)
                {
                    continue;
                }
                targets.push(SipTarget {
                    host: display_name(&rec.target),
                    addr,
                    transport: *transport,
                });
            }
        }
        let res = if !targets.is_empty() {
            Ok(targets)
        } else if let Some(e) = first_error {
            Err(e)
        } else {
            Err(ResolveError::NoAddresses {
                name: display_name(&self.name),
            })
        };
        self.finish(res);
    }

    fn after_host(&mut self) {
        let Phase::Host {
            a,
            aaaa,
            port,
            transport,
        } = std::mem::replace(&mut self.phase, Phase::Done)
        else {
            return;
        };
        let h = host_addrs(self.core.result(a), self.core.result(aaaa), self.order);
        let host = display_name(&self.name);
        let res = h.into_result(host.clone()).map(|addrs| {
            addrs
                .into_iter()
                .map(|ip| SipTarget {
                    host: host.clone(),
                    addr: SocketAddr::new(ip, port),
                    transport,
                })
                .collect()
        });
        self.finish(res);
    }
}

impl DnsMachine for SipResolution {
    type Output = Vec<SipTarget>;

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

    fn take_outcome(&mut self) -> Option<Result<Vec<SipTarget>, ResolveError>> {
        self.outcome.take()
    }
}

#[cfg(test)]
mod tests;
