//! The resolution plans against scripted DNS answers and simulated time.

use std::collections::VecDeque;
use std::net::{Ipv4Addr, Ipv6Addr};

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, SRV};
use hickory_proto::rr::{RData, Record};

use super::*;
use crate::edge::dns::exchange::Transport;

const S1: &str = "192.0.2.53:53";
const S2: &str = "198.51.100.53:53";
const TIMEOUT: Duration = Duration::from_secs(2);

fn n(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

fn servers(list: &[&str]) -> Vec<SocketAddr> {
    list.iter().map(|s| s.parse().unwrap()).collect()
}

/// A scripted authoritative zone: records by owner, CNAMEs followed like a recursive server.
#[derive(Default, Clone)]
struct Zone {
    records: Vec<(Name, RData)>,
    no_additional: bool,
}

impl Zone {
    fn srv(mut self, owner: &str, prio: u16, weight: u16, port: u16, target: &str) -> Self {
        self.records.push((
            n(owner),
            RData::SRV(SRV::new(prio, weight, port, n(target))),
        ));
        self
    }
    fn a(mut self, owner: &str, ip: [u8; 4]) -> Self {
        self.records
            .push((n(owner), RData::A(A(Ipv4Addr::from(ip)))));
        self
    }
    fn aaaa(mut self, owner: &str, ip: Ipv6Addr) -> Self {
        self.records.push((n(owner), RData::AAAA(AAAA(ip))));
        self
    }
    fn cname(mut self, owner: &str, target: &str) -> Self {
        self.records
            .push((n(owner), RData::CNAME(CNAME(n(target)))));
        self
    }
    fn without_additional(mut self) -> Self {
        self.no_additional = true;
        self
    }

    fn answer(&self, q: &Message) -> Message {
        let query = &q.queries()[0];
        let mut r = reply_to(q);
        let mut name = query.name().clone();
        let mut exists = false;
        for _ in 0..4 {
            let here: Vec<_> = self.records.iter().filter(|(o, _)| o == &name).collect();
            exists |= !here.is_empty();
            if let Some((_, RData::CNAME(c))) =
                here.iter().find(|(_, d)| matches!(d, RData::CNAME(_)))
            {
                r.add_answer(Record::from_rdata(
                    name.clone(),
                    60,
                    RData::CNAME(c.clone()),
                ));
                name = c.0.clone();
                continue;
            }
            for (o, d) in here {
                if d.record_type() == query.query_type() {
                    r.add_answer(Record::from_rdata(o.clone(), 60, d.clone()));
                    if let (RData::SRV(s), false) = (d, self.no_additional) {
                        for (o2, d2) in &self.records {
                            if o2 == s.target() && matches!(d2, RData::A(_) | RData::AAAA(_)) {
                                r.add_additional(Record::from_rdata(o2.clone(), 60, d2.clone()));
                            }
                        }
                    }
                }
            }
            break;
        }
        if !exists {
            r.set_response_code(ResponseCode::NXDomain);
        }
        r
    }
}

fn reply_to(q: &Message) -> Message {
    let mut r = Message::new();
    r.set_id(q.id())
        .set_message_type(MessageType::Response)
        .set_recursion_desired(true)
        .set_recursion_available(true)
        .add_query(q.queries()[0].clone());
    r
}

/// What one scripted server does with one transmission.
enum Act {
    Answer(Message),
    Silent,
    Raw(Vec<u8>),
}

/// Every transmission of a run, with its decoded query.
type Log = Vec<(Transmit, Message)>;

/// Runs `m` to its outcome, answering with `script` and jumping simulated time to each
/// deadline when nothing is in flight. Returns the outcome and every transmission.
fn run<M: DnsMachine>(
    m: &mut M,
    start: Instant,
    mut script: impl FnMut(&Transmit, &Message) -> Act,
) -> (Result<M::Output, ResolveError>, Log) {
    let mut now = start;
    let mut log = Vec::new();
    let mut inbox: VecDeque<(QueryToken, Vec<u8>)> = VecDeque::new();
    for _ in 0..1000 {
        while let Some(t) = m.poll_transmit() {
            let q = Message::from_vec(&t.payload).expect("query decodes");
            match script(&t, &q) {
                Act::Answer(r) => inbox.push_back((t.token, r.to_vec().unwrap())),
                Act::Raw(b) => inbox.push_back((t.token, b)),
                Act::Silent => {}
            }
            log.push((t, q));
        }
        if let Some(out) = m.take_outcome() {
            return (out, log);
        }
        if let Some((tok, bytes)) = inbox.pop_front() {
            m.handle_response(tok, &bytes, now);
            continue;
        }
        let deadline = m
            .poll_timeout()
            .expect("machine waits for nothing yet has no outcome");
        assert!(deadline >= now, "deadline in the past");
        now = deadline;
        m.handle_timeout(now);
    }
    panic!("resolution did not finish");
}

fn s2s(domain: &str, servers: &[SocketAddr], seed: u64, now: Instant) -> S2sResolution {
    S2sResolution::new(domain, servers, TIMEOUT, S2sOptions::default(), seed, now).unwrap()
}

fn asked(log: &[(Transmit, Message)]) -> Vec<(String, RecordType)> {
    log.iter()
        .map(|(_, q)| {
            (
                q.queries()[0].name().to_ascii(),
                q.queries()[0].query_type(),
            )
        })
        .collect()
}

fn target(host: &str, addr: &str, direct_tls: bool) -> S2sTarget {
    S2sTarget {
        host: host.into(),
        addr: addr.parse().unwrap(),
        direct_tls,
    }
}

#[test]
fn merges_both_srv_kinds_by_priority_with_additional_addresses() {
    let zone = Zone::default()
        .srv(
            "_xmpps-server._tcp.example.org.",
            10,
            0,
            5270,
            "tls.example.org.",
        )
        .srv(
            "_xmpp-server._tcp.example.org.",
            5,
            0,
            5269,
            "xmpp.example.org.",
        )
        .a("tls.example.org.", [192, 0, 2, 10])
        .a("xmpp.example.org.", [192, 0, 2, 20])
        .aaaa("xmpp.example.org.", "2001:db8::20".parse().unwrap());
    let now = Instant::now();
    let mut m = s2s("example.org", &servers(&[S1]), 1, now);
    let (out, log) = run(&mut m, now, |_, q| Act::Answer(zone.answer(q)));
    assert_eq!(
        out.unwrap(),
        vec![
            target("xmpp.example.org", "[2001:db8::20]:5269", false),
            target("xmpp.example.org", "192.0.2.20:5269", false),
            target("tls.example.org", "192.0.2.10:5270", true),
        ]
    );
    // Addresses came in the additional section: only the two SRV queries were sent.
    assert_eq!(log.len(), 2);
}

#[test]
fn resolves_srv_targets_with_separate_queries_when_additional_is_empty() {
    let zone = Zone::default()
        .srv(
            "_xmpp-server._tcp.example.org.",
            0,
            0,
            5269,
            "xmpp.example.org.",
        )
        .a("xmpp.example.org.", [192, 0, 2, 20])
        .without_additional();
    let now = Instant::now();
    let mut m = s2s("example.org", &servers(&[S1]), 1, now);
    let (out, log) = run(&mut m, now, |_, q| Act::Answer(zone.answer(q)));
    assert_eq!(
        out.unwrap(),
        vec![target("xmpp.example.org", "192.0.2.20:5269", false)]
    );
    let asked = asked(&log);
    assert!(asked.contains(&("xmpp.example.org.".into(), RecordType::A)));
    assert!(asked.contains(&("xmpp.example.org.".into(), RecordType::AAAA)));
    assert_eq!(asked.len(), 4);
}

#[test]
fn equal_priority_mixes_kinds_by_weight_deterministically_per_seed() {
    let zone = Zone::default()
        .srv(
            "_xmpps-server._tcp.example.org.",
            1,
            50,
            5270,
            "a.example.org.",
        )
        .srv(
            "_xmpp-server._tcp.example.org.",
            1,
            50,
            5269,
            "b.example.org.",
        )
        .a("a.example.org.", [192, 0, 2, 1])
        .a("b.example.org.", [192, 0, 2, 2]);
    let mut firsts = std::collections::HashSet::new();
    for seed in 0..40 {
        let now = Instant::now();
        let mut m = s2s("example.org", &servers(&[S1]), seed, now);
        let (out, _) = run(&mut m, now, |_, q| Act::Answer(zone.answer(q)));
        let out = out.unwrap();
        let mut again = s2s("example.org", &servers(&[S1]), seed, now);
        let (out2, _) = run(&mut again, now, |_, q| Act::Answer(zone.answer(q)));
        assert_eq!(out, out2.unwrap(), "same seed, same order");
        assert_eq!(out.len(), 2);
        firsts.insert(out[0].direct_tls);
    }
    assert_eq!(firsts.len(), 2, "both kinds come first for some seed");
}

#[test]
fn single_dot_target_means_decidedly_unavailable_without_fallback() {
    let zone = Zone::default()
        .srv("_xmpp-server._tcp.example.org.", 0, 0, 0, ".")
        .a("example.org.", [192, 0, 2, 1]);
    let now = Instant::now();
    let mut m = s2s("example.org", &servers(&[S1]), 1, now);
    let (out, log) = run(&mut m, now, |_, q| Act::Answer(zone.answer(q)));
    assert_eq!(
        out,
        Err(ResolveError::ServiceUnavailable {
            domain: "example.org".into()
        })
    );
    assert_eq!(log.len(), 2, "no A/AAAA fallback after a '.' target");
}

#[test]
fn dot_on_direct_tls_still_uses_starttls_records() {
    let zone = Zone::default()
        .srv("_xmpps-server._tcp.example.org.", 0, 0, 0, ".")
        .srv(
            "_xmpp-server._tcp.example.org.",
            0,
            0,
            5269,
            "xmpp.example.org.",
        )
        .a("xmpp.example.org.", [192, 0, 2, 20]);
    let now = Instant::now();
    let mut m = s2s("example.org", &servers(&[S1]), 1, now);
    let (out, _) = run(&mut m, now, |_, q| Act::Answer(zone.answer(q)));
    assert_eq!(
        out.unwrap(),
        vec![target("xmpp.example.org", "192.0.2.20:5269", false)]
    );
}

#[test]
fn falls_back_to_domain_addresses_on_5269_without_srv() {
    let zone = Zone::default()
        .a("example.org.", [192, 0, 2, 7])
        .aaaa("example.org.", Ipv6Addr::LOCALHOST);
    let now = Instant::now();
    let mut m = s2s("example.org.", &servers(&[S1]), 1, now);
    let (out, _) = run(&mut m, now, |_, q| Act::Answer(zone.answer(q)));
    assert_eq!(
        out.unwrap(),
        vec![
            target("example.org", "[::1]:5269", false),
            target("example.org", "192.0.2.7:5269", false),
        ]
    );
}

#[test]
fn fallback_follows_cname_of_domain() {
    let zone = Zone::default()
        .cname("example.org.", "host.example.net.")
        .a("host.example.net.", [192, 0, 2, 8]);
    let now = Instant::now();
    let mut m = s2s("example.org", &servers(&[S1]), 1, now);
    let (out, _) = run(&mut m, now, |_, q| Act::Answer(zone.answer(q)));
    assert_eq!(
        out.unwrap(),
        vec![target("example.org", "192.0.2.8:5269", false)]
    );
}

#[test]
fn nonexistent_domain_is_nxdomain() {
    let now = Instant::now();
    let mut m = s2s("nowhere.example", &servers(&[S1]), 1, now);
    let (out, log) = run(&mut m, now, |_, q| Act::Answer(Zone::default().answer(q)));
    assert_eq!(
        out,
        Err(ResolveError::NxDomain {
            name: "nowhere.example".into()
        })
    );
    assert_eq!(log.len(), 4, "two SRV then A and AAAA of the domain");
}

#[test]
fn timeout_moves_to_next_server() {
    let zone = Zone::default()
        .srv(
            "_xmpp-server._tcp.example.org.",
            0,
            0,
            5269,
            "x.example.org.",
        )
        .a("x.example.org.", [192, 0, 2, 30]);
    let (s1, s2) = (S1.parse().unwrap(), S2.parse::<SocketAddr>().unwrap());
    let now = Instant::now();
    let mut m = s2s("example.org", &[s1, s2], 1, now);
    let (out, log) = run(&mut m, now, |t, q| {
        if t.server == s1 {
            Act::Silent
        } else {
            Act::Answer(zone.answer(q))
        }
    });
    assert_eq!(
        out.unwrap(),
        vec![target("x.example.org", "192.0.2.30:5269", false)]
    );
    // Each lookup went to S1 first, then S2.
    let to_s1 = log.iter().filter(|(t, _)| t.server == s1).count();
    let to_s2 = log.iter().filter(|(t, _)| t.server == s2).count();
    assert_eq!(to_s1, to_s2);
}

#[test]
fn all_servers_silent_is_a_timeout_naming_the_query() {
    let now = Instant::now();
    let mut m = s2s("example.org", &servers(&[S1, S2]), 1, now);
    let (out, log) = run(&mut m, now, |_, _| Act::Silent);
    assert_eq!(
        out,
        Err(ResolveError::Timeout {
            name: "_xmpp-server._tcp.example.org.".into(),
            rtype: RecordType::SRV,
            servers_tried: 2
        })
    );
    assert_eq!(log.len(), 4, "each SRV query once per server, no fallback");
}

#[test]
fn srv_failure_does_not_fall_back_to_address_records() {
    let zone = Zone::default().a("example.org.", [192, 0, 2, 1]);
    let now = Instant::now();
    let mut m = s2s("example.org", &servers(&[S1]), 1, now);
    let (out, log) = run(&mut m, now, |_, q| {
        if q.queries()[0].name() == &n("_xmpp-server._tcp.example.org.") {
            let mut r = reply_to(q);
            r.set_response_code(ResponseCode::ServFail);
            Act::Answer(r)
        } else {
            Act::Answer(zone.answer(q))
        }
    });
    assert!(
        matches!(
            out,
            Err(ResolveError::ServerFailure {
                rcode: ResponseCode::ServFail,
                ..
            })
        ),
        "{out:?}"
    );
    assert_eq!(log.len(), 2);
}

#[test]
fn servfail_tries_next_server() {
    let zone = Zone::default().a("example.org.", [192, 0, 2, 1]);
    let s1: SocketAddr = S1.parse().unwrap();
    let now = Instant::now();
    let mut m = HostResolution::new(
        "example.org",
        &servers(&[S1, S2]),
        TIMEOUT,
        AddressOrder::Ipv4First,
        9,
        now,
    )
    .unwrap();
    let (out, _) = run(&mut m, now, |t, q| {
        if t.server == s1 {
            let mut r = reply_to(q);
            r.set_response_code(ResponseCode::Refused);
            Act::Answer(r)
        } else {
            Act::Answer(zone.answer(q))
        }
    });
    assert_eq!(out.unwrap(), vec![IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))]);
}

#[test]
fn truncated_udp_answer_is_retried_over_tcp_on_same_server() {
    let zone = Zone::default().a("example.org.", [192, 0, 2, 1]);
    let now = Instant::now();
    let mut m = HostResolution::new(
        "example.org",
        &servers(&[S1, S2]),
        TIMEOUT,
        AddressOrder::Ipv4First,
        9,
        now,
    )
    .unwrap();
    let (out, log) = run(&mut m, now, |t, q| {
        if t.transport == Transport::Udp {
            let mut r = reply_to(q);
            r.set_truncated(true);
            Act::Answer(r)
        } else {
            Act::Answer(zone.answer(q))
        }
    });
    assert_eq!(out.unwrap(), vec![IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))]);
    let tcp: Vec<_> = log
        .iter()
        .filter(|(t, _)| t.transport == Transport::Tcp)
        .collect();
    assert_eq!(tcp.len(), 2);
    assert!(tcp.iter().all(|(t, _)| t.server == S1.parse().unwrap()));
}

#[test]
fn spoofed_answer_with_wrong_id_is_ignored() {
    let zone = Zone::default().a("example.org.", [192, 0, 2, 1]);
    let now = Instant::now();
    let mut m = HostResolution::new(
        "example.org",
        &servers(&[S1]),
        TIMEOUT,
        AddressOrder::Ipv4First,
        9,
        now,
    )
    .unwrap();
    // Hand in a forged answer first for every query, then the real one.
    let mut tokens = Vec::new();
    while let Some(t) = m.poll_transmit() {
        tokens.push(t);
    }
    for t in &tokens {
        let q = Message::from_vec(&t.payload).unwrap();
        let mut forged = Zone::default()
            .a("example.org.", [203, 0, 113, 66])
            .answer(&q);
        forged.set_id(q.id().wrapping_add(1));
        m.handle_response(t.token, &forged.to_vec().unwrap(), now);
        assert!(m.take_outcome().is_none());
        m.handle_response(t.token, &zone.answer(&q).to_vec().unwrap(), now);
    }
    assert_eq!(
        m.take_outcome().unwrap().unwrap(),
        vec![IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))]
    );
}

#[test]
fn malformed_answer_on_last_server_is_reported_as_malformed() {
    let now = Instant::now();
    let mut m = HostResolution::new(
        "example.org",
        &servers(&[S1]),
        TIMEOUT,
        AddressOrder::Ipv4First,
        9,
        now,
    )
    .unwrap();
    let (out, _) = run(&mut m, now, |_, q| {
        let mut b = reply_to(q).to_vec().unwrap();
        b[5] = 9; // QDCOUNT 9: the body cannot hold that many questions
        Act::Raw(b)
    });
    assert!(
        matches!(
            out,
            Err(ResolveError::Malformed {
                server: Some(_),
                ..
            })
        ),
        "{out:?}"
    );
}

#[test]
fn incomplete_cname_chain_is_asked_again_for_its_end() {
    let now = Instant::now();
    let mut m = HostResolution::new(
        "alias.example.org",
        &servers(&[S1]),
        TIMEOUT,
        AddressOrder::Ipv4First,
        9,
        now,
    )
    .unwrap();
    let (out, log) = run(&mut m, now, |_, q| {
        let mut r = reply_to(q);
        if q.queries()[0].name() == &n("alias.example.org.") {
            r.add_answer(Record::from_rdata(
                n("alias.example.org."),
                60,
                RData::CNAME(CNAME(n("real.example.net."))),
            ));
        } else if q.queries()[0].query_type() == RecordType::A {
            r.add_answer(Record::from_rdata(
                n("real.example.net."),
                60,
                RData::A(A(Ipv4Addr::new(192, 0, 2, 99))),
            ));
        }
        Act::Answer(r)
    });
    assert_eq!(out.unwrap(), vec![IpAddr::V4(Ipv4Addr::new(192, 0, 2, 99))]);
    assert!(asked(&log).contains(&("real.example.net.".into(), RecordType::A)));
}

#[test]
fn endless_cname_restarts_are_bounded() {
    let now = Instant::now();
    let mut m = HostResolution::new(
        "a0.example",
        &servers(&[S1]),
        TIMEOUT,
        AddressOrder::Ipv4First,
        9,
        now,
    )
    .unwrap();
    let (out, log) = run(&mut m, now, |_, q| {
        let qn = q.queries()[0].name().to_ascii();
        let next = format!("x{qn}");
        let mut r = reply_to(q);
        r.add_answer(Record::from_rdata(
            q.queries()[0].name().clone(),
            60,
            RData::CNAME(CNAME(n(&next))),
        ));
        Act::Answer(r)
    });
    assert!(
        matches!(out, Err(ResolveError::Malformed { server: None, .. })),
        "{out:?}"
    );
    assert!(log.len() <= 2 * (1 + usize::from(MAX_ALIAS_RESTARTS)));
}

#[test]
fn rejects_invalid_names_and_empty_server_list() {
    let now = Instant::now();
    for bad in ["", ".", "192.0.2.1", "exämple.org"] {
        assert_eq!(
            S2sResolution::new(bad, &servers(&[S1]), TIMEOUT, S2sOptions::default(), 1, now).err(),
            Some(ResolveError::InvalidName { name: bad.into() }),
            "{bad:?}"
        );
    }
    assert_eq!(
        S2sResolution::new("example.org", &[], TIMEOUT, S2sOptions::default(), 1, now).err(),
        Some(ResolveError::NoServers)
    );
}

#[test]
fn srv_fanout_is_bounded() {
    let mut zone = Zone::default().without_additional();
    for i in 0..40 {
        zone = zone.srv(
            "_xmpp-server._tcp.example.org.",
            0,
            1,
            5269,
            &format!("h{i}.example.org."),
        );
    }
    let now = Instant::now();
    let mut m = s2s("example.org", &servers(&[S1]), 1, now);
    let (_, log) = run(&mut m, now, |_, q| Act::Answer(zone.answer(q)));
    assert!(log.len() <= 2 + 2 * MAX_TARGETS, "{} queries", log.len());
}

#[test]
fn late_answer_after_timeout_is_ignored() {
    let zone = Zone::default().a("example.org.", [192, 0, 2, 1]);
    let now = Instant::now();
    let mut m = HostResolution::new(
        "example.org",
        &servers(&[S1, S2]),
        TIMEOUT,
        AddressOrder::Ipv4First,
        9,
        now,
    )
    .unwrap();
    let first: Vec<_> = std::iter::from_fn(|| m.poll_transmit()).collect();
    let later = now + TIMEOUT;
    m.handle_timeout(later);
    // The first server's answers arrive after the switch: stale tokens, ignored.
    for t in &first {
        let q = Message::from_vec(&t.payload).unwrap();
        m.handle_response(t.token, &zone.answer(&q).to_vec().unwrap(), later);
    }
    assert!(m.take_outcome().is_none());
    let second: Vec<_> = std::iter::from_fn(|| m.poll_transmit()).collect();
    assert_eq!(second.len(), 2);
    assert!(second.iter().all(|t| t.server == S2.parse().unwrap()));
}
