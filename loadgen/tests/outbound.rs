//! Scenario: stanza-router in-process with a `[sip] listen` (config from
//! `setup::router_toml_sip`); the loadgen's SIP source sends MESSAGEs to partner users over TCP,
//! the router delivers them as `<message/>` over its outbound S2S streams to the loadgen's
//! partner listeners, and answers each MESSAGE 200. Every MESSAGE must be seen at a partner and
//! answered 2xx, none lost; with `--direction both`, pings flow inbound at the same time. With
//! the mix, SUBSCRIBEs form dialogs with the router's notifier, reach the partners as
//! `subscribe`, and are ended by the source.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use loadgen::report::Report;
use loadgen::run::{self, Delivery, Direction, Mode, RunPlan, SipSource};
use loadgen::setup;
use loadgen::workload::{BodySize, Mix, Workload};
use stanza_router::config::Config;
use stanza_router::runtime::shards;

mod common;

use common::*;

fn bench(label: &str, direction: Direction, mode: Mode, count: u64) -> Bench {
    bench_with(label, direction, mode, count, false)
}

/// With `sink`, the router gets a `[sip] next_hop` where the run's SIP sink listens (its
/// presence gateway, which the source's SUBSCRIBEs need, runs only with one).
fn bench_with(label: &str, direction: Direction, mode: Mode, count: u64, sink: bool) -> Bench {
    let dir = TempDir::new(label);
    let names = setup::default_partners(2);
    setup::write_ca(&dir.0, "corp.test", &names).unwrap();
    let ca = setup::read_ca_dir(&dir.0).unwrap();
    let router: SocketAddr = (IP, free_port()).into();
    let sip: SocketAddr = (IP, free_port()).into();
    let base = free_port_run(2);
    let listen: Vec<SocketAddr> = (0..2).map(|i| (IP, base + i).into()).collect();
    let next_hop: Option<SocketAddr> = sink.then(|| (IP, free_port()).into());
    let sides = setup::SipSides {
        next_hop,
        listen: Some(sip),
        s2s_tls: None,
        dialback: false,
    };
    let toml = setup::router_toml_sip(&ca, &names, router, &listen, 2, "2", sides);
    let path = dir.0.join("router.toml");
    std::fs::write(&path, &toml).unwrap();
    let cfg = Config::load(&path).unwrap_or_else(|e| panic!("config invalid:\n{e}\n{toml}"));
    let handle = shards::start(Arc::new(cfg)).expect("router starts");
    wait_listening(router);
    wait_listening(sip);
    let tls = setup::partner_tls(&dir.0).unwrap();
    let plan = RunPlan {
        router,
        tls: run::TlsMode::Starttls,
        auth: run::Auth::Sasl,
        domain: "corp.test".into(),
        partners: names,
        partner_listen: listen,
        connections: 2,
        mode,
        duration: Duration::from_secs(20),
        warmup: Duration::ZERO,
        ramp_up: Duration::ZERO,
        count: Some(count),
        drain: Duration::from_secs(10),
        body: BodySize::Fixed { bytes: 200 },
        users: 50,
        workload: Workload::Pings,
        mix: Default::default(),
        router_pid: None,
        progress: false,
        recipient_domain: "corp.test".into(),
        delivery: match next_hop {
            Some(listen) => Delivery::SipSink {
                listen,
                errors: None,
            },
            None => Delivery::Streams,
        },
        direction,
        sip_source: Some(SipSource {
            router: sip,
            connections: 2,
            sip_domain: "corp.test".into(),
        }),
    };
    Bench {
        _dir: dir,
        router: Some(handle),
        plan,
        tls,
    }
}

#[test]
fn every_sip_message_reaches_a_partner_and_is_answered_200() {
    let b = bench(
        "out-open",
        Direction::Outbound,
        Mode::Open { rate: 3000.0 },
        1000,
    );
    let result = run::run(&b.plan, &b.tls).expect("run starts");
    let report = Report::new(&b.plan, &result);
    let o = &report.outcomes;
    assert_eq!(o.lost, 0, "{}", report.text());
    assert_eq!(o.delivered, 1000, "{}", report.text());
    assert!(o.refused.is_empty(), "{}", report.text());
    assert_eq!(o.unexpected, 0, "{}", report.text());
    let src = report.sip_source.expect("source counts");
    assert_eq!(src.sent, 1000);
    assert_eq!(src.ok, 1000, "{}", report.text());
    assert_eq!(src.unanswered(), 0);
    assert_eq!(report.setup.connections_established, 0, "no inbound S2S");
    assert!(report.setup.router_streams >= 2, "a stream to each partner");
    assert_eq!(report.latency_ms.corrected.count, 1000);
    assert!(report.clean(), "{}", report.text());
}

#[test]
fn closed_loop_outbound_delivers_every_message() {
    let b = bench(
        "out-closed",
        Direction::Outbound,
        Mode::Closed { window: 64 },
        2000,
    );
    let result = run::run(&b.plan, &b.tls).expect("run starts");
    let report = Report::new(&b.plan, &result);
    assert_eq!(report.outcomes.lost, 0, "{}", report.text());
    assert_eq!(report.outcomes.delivered, 2000, "{}", report.text());
    assert_eq!(report.sip_source.map(|s| s.ok), Some(2000));
    assert!(report.clean(), "{}", report.text());
}

/// The source's mix: every SUBSCRIBE forms a dialog with the router's notifier, reaches the
/// partner user as `<presence type='subscribe'/>` from its watcher, and is ended by the
/// source's unsubscribe (200 + NOTIFY terminated, `unsubscribe` at the partner); every NOTIFY
/// is answered, and no dialog is left open in the router's tables or ours.
#[test]
fn sip_subscribes_reach_partners_and_every_dialog_is_ended() {
    let mut b = bench_with(
        "out-subscribe",
        Direction::Outbound,
        Mode::Open { rate: 2000.0 },
        1000,
        true,
    );
    b.plan.workload = Workload::Mix;
    b.plan.mix = Mix {
        messages: 1,
        presence: 0,
        subscriptions: 1,
    };
    let result = run::run(&b.plan, &b.tls).expect("run starts");
    let report = Report::new(&b.plan, &result);
    let text = report.text();
    let o = &report.outcomes;
    assert_eq!((o.delivered, o.lost), (1000, 0), "{text}");
    assert!(o.refused.is_empty(), "{text}");
    let src = report.sip_source.expect("source counts");
    let subs = src.subscribed;
    assert!(
        (350..650).contains(&subs),
        "about half SUBSCRIBEs, got {subs}: {text}"
    );
    assert_eq!((src.sent, src.ok), (1000, 1000), "{text}");
    assert_eq!((src.unsubscribes, src.unsubscribed), (subs, subs), "{text}");
    assert_eq!(src.notifies_terminated, subs, "{text}");
    assert_eq!(src.notifies, 2 * subs, "pending, then terminated: {text}");
    assert_eq!((src.dialog_errors, src.dialogs_left), (0, 0), "{text}");
    // Each dialog's end reaches the partner as `unsubscribe`.
    assert_eq!(o.presence_updates, subs, "{text}");
    assert!(text.contains("SIP source dialogs:"), "{text}");
    assert!(report.clean(), "{text}");
}

#[test]
fn both_directions_run_at_once_and_are_reported_separately() {
    let b = bench("both", Direction::Both, Mode::Open { rate: 1000.0 }, 500);
    let result = run::run(&b.plan, &b.tls).expect("run starts");
    let report = Report::new(&b.plan, &result);
    assert!(report.clean(), "{}", report.text());
    let inbound = report.inbound.as_ref().expect("inbound part");
    let outbound = report.outbound.as_ref().expect("outbound part");
    assert_eq!(
        (inbound.answered, inbound.delivered, inbound.lost),
        (500, 0, 0)
    );
    assert_eq!(
        (outbound.delivered, outbound.answered, outbound.lost),
        (500, 0, 0)
    );
    assert_eq!(report.outcomes.sent, 1000);
    assert_eq!(report.latency_ms.corrected.count, 1000);
    assert_eq!(
        inbound.corrected_ms.count + outbound.corrected_ms.count,
        1000
    );
    let text = report.text();
    assert!(
        text.contains("inbound :") && text.contains("outbound:"),
        "{text}"
    );
}

/// A "router" that accepts the SIP source's connection and never reads: the writers block, and
/// the run still ends by itself once the planned end and the drain have passed, saying why.
#[test]
fn writers_blocked_by_a_router_that_stopped_reading_are_cut_off() {
    let dir = TempDir::new("out-stuck");
    let names = setup::default_partners(1);
    setup::write_ca(&dir.0, "corp.test", &names).unwrap();
    let tls = setup::partner_tls(&dir.0).unwrap();
    let black_hole = TcpListener::bind((IP, 0)).unwrap();
    let sip = black_hole.local_addr().unwrap();
    let plan = RunPlan {
        router: (IP, free_port()).into(),
        tls: run::TlsMode::Starttls,
        auth: run::Auth::Sasl,
        domain: "corp.test".into(),
        partners: names,
        partner_listen: vec![(IP, free_port()).into()],
        connections: 1,
        mode: Mode::Open { rate: 100_000.0 },
        duration: Duration::from_secs(1),
        warmup: Duration::ZERO,
        ramp_up: Duration::ZERO,
        count: None,
        drain: Duration::from_millis(500),
        body: BodySize::Fixed { bytes: 16 * 1024 },
        users: 10,
        workload: Workload::Pings,
        mix: Default::default(),
        router_pid: None,
        progress: false,
        recipient_domain: "corp.test".into(),
        delivery: Delivery::Streams,
        direction: Direction::Outbound,
        sip_source: Some(SipSource {
            router: sip,
            connections: 1,
            sip_domain: "corp.test".into(),
        }),
    };
    let result = run::run(&plan, &tls).expect("run starts");
    let report = Report::new(&plan, &result);
    assert!(!report.clean(), "{}", report.text());
    assert!(
        report
            .errors
            .messages
            .iter()
            .any(|m| m.contains("still blocked")),
        "{}",
        report.text()
    );
    assert_eq!(report.outcomes.delivered, 0);
    drop(black_hole);
}
