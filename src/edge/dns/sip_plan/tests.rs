//! The RFC 3263 plan against scripted DNS answers and simulated time (no sockets).

use std::collections::VecDeque;
use std::net::Ipv4Addr;

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, NAPTR, SRV};
use hickory_proto::rr::{RData, Record};

use super::*;

const S1: &str = "192.0.2.53:53";
const TIMEOUT: Duration = Duration::from_secs(2);

fn n(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

/// A scripted zone: records by owner, plus owners answered SERVFAIL or never answered.
#[derive(Default, Clone)]
struct Zone {
    records: Vec<(Name, RData)>,
    servfail: Vec<Name>,
    silent: Vec<Name>,
}

impl Zone {
    fn naptr(
        mut self,
        owner: &str,
        order: u16,
        pref: u16,
        flags: &str,
        svc: &str,
        repl: &str,
    ) -> Self {
        let rd = NAPTR::new(
            order,
            pref,
            flags.as_bytes().into(),
            svc.as_bytes().into(),
            Box::default(),
            n(repl),
        );
        self.records.push((n(owner), RData::NAPTR(rd)));
        self
    }
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
    fn aaaa(mut self, owner: &str, ip: &str) -> Self {
        self.records
            .push((n(owner), RData::AAAA(AAAA(ip.parse().unwrap()))));
        self
    }
    fn servfail(mut self, owner: &str) -> Self {
        self.servfail.push(n(owner));
        self
    }
    fn silent(mut self, owner: &str) -> Self {
        self.silent.push(n(owner));
        self
    }

    /// The answer, or `None` to stay silent.
    fn answer(&self, q: &Message) -> Option<Message> {
        let query = &q.queries()[0];
        if self.silent.contains(query.name()) {
            return None;
        }
        let mut r = Message::new();
        r.set_id(q.id())
            .set_message_type(MessageType::Response)
            .set_recursion_desired(true)
            .set_recursion_available(true)
            .add_query(query.clone());
        if self.servfail.contains(query.name()) {
            r.set_response_code(ResponseCode::ServFail);
            return Some(r);
        }
        let here: Vec<_> = self
            .records
            .iter()
            .filter(|(o, _)| o == query.name())
            .collect();
        if here.is_empty() {
            r.set_response_code(ResponseCode::NXDomain);
        }
        for (o, d) in here {
            if d.record_type() == query.query_type() {
                r.add_answer(Record::from_rdata(o.clone(), 60, d.clone()));
            }
        }
        Some(r)
    }
}

type Log = Vec<(String, RecordType)>;

/// Runs `m` to its outcome against `zone`, jumping simulated time to each deadline when
/// nothing is in flight.
fn run(
    m: &mut SipResolution,
    zone: &Zone,
    start: Instant,
) -> (Result<Vec<SipTarget>, ResolveError>, Log) {
    let mut now = start;
    let mut log = Vec::new();
    let mut inbox: VecDeque<(QueryToken, Vec<u8>)> = VecDeque::new();
    for _ in 0..1000 {
        while let Some(t) = m.poll_transmit() {
            let q = Message::from_vec(&t.payload).expect("query decodes");
            log.push((
                q.queries()[0].name().to_ascii(),
                q.queries()[0].query_type(),
            ));
            if let Some(r) = zone.answer(&q) {
                inbox.push_back((t.token, r.to_vec().unwrap()));
            }
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

fn hints(secure: bool, transport: Option<HopTransport>, port: Option<u16>) -> SipUriHints {
    SipUriHints {
        secure,
        transport,
        port,
    }
}

fn resolve(host: &str, h: SipUriHints, zone: &Zone) -> (Result<Vec<SipTarget>, ResolveError>, Log) {
    let now = Instant::now();
    let servers = [S1.parse().unwrap()];
    let mut m = SipResolution::new(host, h, &servers, TIMEOUT, 7, now)
        .unwrap()
        .with_address_order(AddressOrder::Ipv4First);
    run(&mut m, zone, now)
}

fn t(host: &str, addr: &str, transport: HopTransport) -> SipTarget {
    SipTarget {
        host: host.into(),
        addr: addr.parse().unwrap(),
        transport,
    }
}

fn q(name: &str, rtype: RecordType) -> (String, RecordType) {
    (name.into(), rtype)
}

/// Two pools behind NAPTR → SRV, TLS preferred by NAPTR order.
fn naptr_zone() -> Zone {
    Zone::default()
        .naptr(
            "pool.corp.test.",
            10,
            10,
            "s",
            "SIPS+D2T",
            "_sips._tcp.pool.corp.test.",
        )
        .naptr(
            "pool.corp.test.",
            20,
            10,
            "s",
            "SIP+D2T",
            "_sip._tcp.pool.corp.test.",
        )
        .naptr(
            "pool.corp.test.",
            5,
            10,
            "s",
            "SIP+D2U",
            "_sip._udp.pool.corp.test.",
        )
        .srv("_sips._tcp.pool.corp.test.", 10, 0, 5061, "a.corp.test.")
        .srv("_sip._tcp.pool.corp.test.", 10, 0, 5060, "b.corp.test.")
        .srv("_sip._tcp.pool.corp.test.", 5, 0, 5070, "a.corp.test.")
        .srv("_sip._udp.pool.corp.test.", 1, 0, 5060, "udp.corp.test.")
        .a("a.corp.test.", [192, 0, 2, 1])
        .a("b.corp.test.", [192, 0, 2, 2])
        .a("udp.corp.test.", [192, 0, 2, 9])
}

#[test]
fn naptr_picks_services_we_speak_in_order_and_follows_each_to_srv() {
    let (out, log) = resolve("pool.corp.test", hints(false, None, None), &naptr_zone());
    assert_eq!(
        out.unwrap(),
        vec![
            t("a.corp.test", "192.0.2.1:5061", HopTransport::Tls),
            t("a.corp.test", "192.0.2.1:5070", HopTransport::Tcp),
            t("b.corp.test", "192.0.2.2:5060", HopTransport::Tcp),
        ]
    );
    assert_eq!(log[0], q("pool.corp.test.", RecordType::NAPTR));
    assert!(
        !log.iter()
            .any(|(name, _)| name.contains("_udp") || name.starts_with("udp.")),
        "UDP NAPTR must be ignored: {log:?}"
    );
}

#[test]
fn sips_uri_takes_only_sips_naptr_records() {
    let (out, log) = resolve("pool.corp.test", hints(true, None, None), &naptr_zone());
    assert_eq!(
        out.unwrap(),
        vec![t("a.corp.test", "192.0.2.1:5061", HopTransport::Tls)]
    );
    assert!(!log.contains(&q("_sip._tcp.pool.corp.test.", RecordType::SRV)));
}

#[test]
fn naptr_preference_orders_records_of_equal_order() {
    let zone = Zone::default()
        .naptr("p.test.", 10, 50, "S", "SIP+D2T", "_sip._tcp.p.test.")
        .naptr("p.test.", 10, 20, "S", "SIPS+D2T", "_sips._tcp.p.test.")
        .srv("_sip._tcp.p.test.", 0, 0, 5060, "h.p.test.")
        .srv("_sips._tcp.p.test.", 0, 0, 5061, "h.p.test.")
        .a("h.p.test.", [192, 0, 2, 7]);
    let (out, _) = resolve("p.test", hints(false, None, None), &zone);
    assert_eq!(
        out.unwrap(),
        vec![
            t("h.p.test", "192.0.2.7:5061", HopTransport::Tls),
            t("h.p.test", "192.0.2.7:5060", HopTransport::Tcp),
        ]
    );
}

#[test]
fn without_naptr_asks_sips_then_sip_srv() {
    let zone = Zone::default()
        .a("pool.corp.test.", [192, 0, 2, 100])
        .srv("_sip._tcp.pool.corp.test.", 20, 0, 5080, "b.corp.test.")
        .srv("_sip._tcp.pool.corp.test.", 10, 0, 5070, "a.corp.test.")
        .srv("_sips._tcp.pool.corp.test.", 10, 0, 5071, "a.corp.test.")
        .a("a.corp.test.", [192, 0, 2, 1])
        .a("b.corp.test.", [192, 0, 2, 2]);
    let (out, log) = resolve("pool.corp.test", hints(false, None, None), &zone);
    assert_eq!(
        out.unwrap(),
        vec![
            t("a.corp.test", "192.0.2.1:5071", HopTransport::Tls),
            t("a.corp.test", "192.0.2.1:5070", HopTransport::Tcp),
            t("b.corp.test", "192.0.2.2:5080", HopTransport::Tcp),
        ]
    );
    assert_eq!(log[0], q("pool.corp.test.", RecordType::NAPTR));
    assert!(log.contains(&q("_sips._tcp.pool.corp.test.", RecordType::SRV)));
    assert!(log.contains(&q("_sip._tcp.pool.corp.test.", RecordType::SRV)));
}

#[test]
fn only_udp_naptr_counts_as_no_naptr() {
    let zone = Zone::default()
        .naptr(
            "pool.corp.test.",
            10,
            10,
            "s",
            "SIP+D2U",
            "_sip._udp.pool.corp.test.",
        )
        .naptr(
            "pool.corp.test.",
            10,
            10,
            "s",
            "SIP+D2W",
            "_sip._ws.pool.corp.test.",
        )
        .srv("_sip._tcp.pool.corp.test.", 10, 0, 5070, "a.corp.test.")
        .a("a.corp.test.", [192, 0, 2, 1]);
    let (out, log) = resolve("pool.corp.test", hints(false, None, None), &zone);
    assert_eq!(
        out.unwrap(),
        vec![t("a.corp.test", "192.0.2.1:5070", HopTransport::Tcp)]
    );
    assert!(!log
        .iter()
        .any(|(name, _)| name.contains("_udp") || name.contains("_ws")));
}

#[test]
fn naptr_with_regexp_or_other_flags_is_ignored() {
    let zone = Zone::default()
        .naptr("p.test.", 10, 10, "a", "SIP+D2T", "h.p.test.")
        .srv("_sip._tcp.p.test.", 10, 0, 5070, "h.p.test.")
        .a("h.p.test.", [192, 0, 2, 1]);
    let (out, log) = resolve("p.test", hints(false, None, None), &zone);
    assert_eq!(
        out.unwrap(),
        vec![t("h.p.test", "192.0.2.1:5070", HopTransport::Tcp)]
    );
    assert!(log.contains(&q("_sips._tcp.p.test.", RecordType::SRV)));
}

#[test]
fn no_naptr_no_srv_falls_back_to_a_on_default_port() {
    let zone = Zone::default()
        .a("pool.corp.test.", [192, 0, 2, 100])
        .aaaa("pool.corp.test.", "2001:db8::100");
    let (out, _) = resolve("pool.corp.test", hints(false, None, None), &zone);
    assert_eq!(
        out.unwrap(),
        vec![
            t("pool.corp.test", "192.0.2.100:5060", HopTransport::Tcp),
            t("pool.corp.test", "[2001:db8::100]:5060", HopTransport::Tcp),
        ]
    );
    let (out, _) = resolve("pool.corp.test", hints(true, None, None), &zone);
    assert_eq!(
        out.unwrap()[0],
        t("pool.corp.test", "192.0.2.100:5061", HopTransport::Tls)
    );
}

#[test]
fn naptr_whose_srv_is_absent_falls_back_to_a_with_its_transport() {
    let zone = Zone::default()
        .naptr("p.test.", 10, 10, "s", "SIPS+D2T", "_sips._tcp.p.test.")
        .a("p.test.", [192, 0, 2, 5]);
    let (out, _) = resolve("p.test", hints(false, None, None), &zone);
    assert_eq!(
        out.unwrap(),
        vec![t("p.test", "192.0.2.5:5061", HopTransport::Tls)]
    );
}

#[test]
fn explicit_transport_asks_its_srv_only_then_a_fallback() {
    let zone = naptr_zone().a("pool.corp.test.", [192, 0, 2, 100]);
    let (out, log) = resolve(
        "pool.corp.test",
        hints(false, Some(HopTransport::Tcp), None),
        &zone,
    );
    assert_eq!(
        out.unwrap(),
        vec![
            t("a.corp.test", "192.0.2.1:5070", HopTransport::Tcp),
            t("b.corp.test", "192.0.2.2:5060", HopTransport::Tcp),
        ]
    );
    assert_eq!(log[0], q("_sip._tcp.pool.corp.test.", RecordType::SRV));
    assert!(!log.iter().any(|(_, r)| *r == RecordType::NAPTR));

    let bare = Zone::default().a("h.test.", [192, 0, 2, 8]);
    let (out, log) = resolve("h.test", hints(false, Some(HopTransport::Tls), None), &bare);
    assert_eq!(
        out.unwrap(),
        vec![t("h.test", "192.0.2.8:5061", HopTransport::Tls)]
    );
    assert_eq!(log[0], q("_sips._tcp.h.test.", RecordType::SRV));
}

#[test]
fn explicit_port_asks_only_a_and_aaaa() {
    let zone = naptr_zone().a("pool.corp.test.", [192, 0, 2, 100]);
    let (out, log) = resolve("pool.corp.test", hints(false, None, Some(5999)), &zone);
    assert_eq!(
        out.unwrap(),
        vec![t("pool.corp.test", "192.0.2.100:5999", HopTransport::Tcp)]
    );
    assert!(log
        .iter()
        .all(|(_, r)| matches!(r, RecordType::A | RecordType::AAAA)));
    let (out, _) = resolve("pool.corp.test", hints(true, None, Some(5999)), &zone);
    assert_eq!(out.unwrap()[0].transport, HopTransport::Tls);
}

#[test]
fn servfail_on_naptr_is_an_error_not_a_downgrade() {
    let zone = naptr_zone().servfail("pool.corp.test.");
    let (out, log) = resolve("pool.corp.test", hints(false, None, None), &zone);
    assert!(
        matches!(
            out,
            Err(ResolveError::ServerFailure {
                rtype: RecordType::NAPTR,
                ..
            })
        ),
        "{out:?}"
    );
    assert_eq!(log.len(), 1);
}

#[test]
fn naptr_timeout_is_an_error() {
    let zone = naptr_zone().silent("pool.corp.test.");
    let (out, _) = resolve("pool.corp.test", hints(false, None, None), &zone);
    assert!(
        matches!(
            out,
            Err(ResolveError::Timeout {
                rtype: RecordType::NAPTR,
                servers_tried: 1,
                ..
            })
        ),
        "{out:?}"
    );
}

#[test]
fn srv_timeout_without_records_is_an_error() {
    let zone = Zone::default()
        .silent("_sip._tcp.p.test.")
        .a("p.test.", [192, 0, 2, 1]);
    let (out, _) = resolve("p.test", hints(false, Some(HopTransport::Tcp), None), &zone);
    assert!(
        matches!(
            out,
            Err(ResolveError::Timeout {
                rtype: RecordType::SRV,
                ..
            })
        ),
        "{out:?}"
    );
}

#[test]
fn srv_dot_target_means_unavailable_without_a_fallback() {
    let zone = Zone::default()
        .srv("_sip._tcp.p.test.", 0, 0, 0, ".")
        .a("p.test.", [192, 0, 2, 1]);
    let (out, _) = resolve("p.test", hints(false, Some(HopTransport::Tcp), None), &zone);
    assert!(
        matches!(out, Err(ResolveError::ServiceUnavailable { .. })),
        "{out:?}"
    );
}

#[test]
fn unknown_name_is_nxdomain() {
    let (out, _) = resolve("nowhere.test", hints(false, None, None), &Zone::default());
    assert_eq!(
        out,
        Err(ResolveError::NxDomain {
            name: "nowhere.test".into()
        })
    );
}

#[test]
fn srv_target_without_address_is_skipped_for_the_next() {
    let zone = Zone::default()
        .srv("_sip._tcp.p.test.", 10, 0, 5070, "gone.p.test.")
        .srv("_sip._tcp.p.test.", 20, 0, 5080, "b.p.test.")
        .a("b.p.test.", [192, 0, 2, 2]);
    let (out, _) = resolve("p.test", hints(false, Some(HopTransport::Tcp), None), &zone);
    assert_eq!(
        out.unwrap(),
        vec![t("b.p.test", "192.0.2.2:5080", HopTransport::Tcp)]
    );
}

#[test]
fn rejects_ip_literals_and_bad_names() {
    let servers = [S1.parse().unwrap()];
    let now = Instant::now();
    assert!(matches!(
        SipResolution::new(
            "192.0.2.1",
            hints(false, None, None),
            &servers,
            TIMEOUT,
            1,
            now
        ),
        Err(ResolveError::InvalidName { .. })
    ));
    assert!(matches!(
        SipResolution::new("p.test", hints(false, None, None), &[], TIMEOUT, 1, now),
        Err(ResolveError::NoServers)
    ));
}
