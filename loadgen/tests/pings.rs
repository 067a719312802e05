//! Scenario: stanza-router in-process with a config from `setup::router_toml`, the loadgen
//! sending pings over STARTTLS + SASL EXTERNAL streams and reading the answers on the router's
//! outbound streams. Every ping must be answered, none lost.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use loadgen::report::Report;
use loadgen::run::{self, Mode, RunPlan};
use loadgen::setup;
use loadgen::workload::{BodySize, Workload};
use stanza_router::config::Config;
use stanza_router::runtime::shards;

mod common;

use common::*;

fn bench(label: &str, partners: usize, connections: usize, mode: Mode, count: u64) -> Bench {
    bench_tls(
        label,
        partners,
        connections,
        mode,
        count,
        run::TlsMode::Starttls,
    )
}

fn bench_tls(
    label: &str,
    partners: usize,
    connections: usize,
    mode: Mode,
    count: u64,
    tls_mode: run::TlsMode,
) -> Bench {
    let auth = run::Auth::Sasl;
    bench_auth(label, partners, connections, mode, count, tls_mode, auth)
}

fn bench_auth(
    label: &str,
    partners: usize,
    connections: usize,
    mode: Mode,
    count: u64,
    tls_mode: run::TlsMode,
    auth: run::Auth,
) -> Bench {
    let dir = TempDir::new(label);
    let names = setup::default_partners(partners);
    setup::write_ca(&dir.0, "corp.test", &names).unwrap();
    let ca = setup::read_ca_dir(&dir.0).unwrap();
    let router: SocketAddr = (IP, free_port()).into();
    let base = free_port_run(partners as u16);
    let listen: Vec<SocketAddr> = (0..partners as u16)
        .map(|i| (IP, base + i).into())
        .collect();
    // Direct TLS: the loadgen targets the router's `listen.s2s_tls`.
    let direct: SocketAddr = (IP, free_port()).into();
    let sides = setup::SipSides {
        s2s_tls: Some(direct),
        dialback: auth == run::Auth::Dialback,
        ..setup::SipSides::default()
    };
    let toml = setup::router_toml_sip(&ca, &names, router, &listen, connections, "2", sides);
    let path = dir.0.join("router.toml");
    std::fs::write(&path, &toml).unwrap();
    let cfg = Config::load(&path).unwrap_or_else(|e| panic!("config invalid:\n{e}\n{toml}"));
    let handle = shards::start(Arc::new(cfg)).expect("router starts");
    wait_listening(router);
    wait_listening(direct);
    let router = match tls_mode {
        run::TlsMode::Starttls => router,
        run::TlsMode::Direct => direct,
    };
    let tls = setup::partner_tls(&dir.0).unwrap();
    let plan = RunPlan {
        router,
        tls: tls_mode,
        auth,
        domain: "corp.test".into(),
        partners: names,
        partner_listen: listen,
        connections,
        mode,
        duration: Duration::from_secs(20),
        warmup: Duration::ZERO,
        ramp_up: Duration::ZERO,
        count: Some(count),
        drain: Duration::from_secs(10),
        body: BodySize::Fixed { bytes: 100 },
        users: 10,
        workload: Workload::Pings,
        mix: Default::default(),
        router_pid: Some(std::process::id()),
        progress: false,
        recipient_domain: "corp.test".into(),
        delivery: run::Delivery::Streams,
        direction: run::Direction::Inbound,
        sip_source: None,
    };
    Bench {
        _dir: dir,
        router: Some(handle),
        plan,
        tls,
    }
}

#[test]
fn open_loop_pings_are_all_answered_over_the_routers_outbound_streams() {
    let b = bench("open", 2, 4, Mode::Open { rate: 2000.0 }, 300);
    let result = run::run(&b.plan, &b.tls).expect("run starts");
    let report = Report::new(&b.plan, &result);
    let o = &report.outcomes;
    assert_eq!(o.lost, 0, "{}", report.text());
    assert_eq!(o.answered, 300, "{}", report.text());
    assert_eq!(o.sent, 300);
    assert_eq!(report.latency_ms.corrected.count, 300);
    // The per-second log holds every measured completion once, each in a second of the run.
    let secs = &report.latency_per_second;
    assert_eq!(secs.iter().map(|s| s.count).sum::<u64>(), 300, "{secs:?}");
    for s in secs {
        assert!(s.p50_ms <= s.p99_ms && s.p99_ms <= s.max_ms, "{s:?}");
        assert!(s.max_ms <= report.latency_ms.corrected.max + 0.01, "{s:?}");
    }
    assert!(report.clean(), "{}", report.text());
    assert_eq!(report.setup.connections_established, 4);
    assert!(
        report.setup.router_streams >= 2,
        "each partner got a stream back"
    );
    assert!(report.router_process.is_some());
}

#[test]
fn closed_loop_pings_are_all_answered_and_the_report_has_its_shape() {
    let b = bench("closed", 1, 2, Mode::Closed { window: 16 }, 500);
    let result = run::run(&b.plan, &b.tls).expect("run starts");
    let report = Report::new(&b.plan, &result);
    assert_eq!(report.outcomes.lost, 0, "{}", report.text());
    assert_eq!(report.outcomes.answered, 500, "{}", report.text());
    assert!(report.clean(), "{}", report.text());
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    for key in [
        "setup",
        "offered_rate",
        "achieved_rate",
        "latency_ms",
        "outcomes",
        "errors",
        "router_process",
        "timeline",
        "latency_per_second",
    ] {
        assert!(json.get(key).is_some(), "no {key} in {json}");
    }
    for key in ["p50", "p90", "p99", "p999", "max"] {
        assert!(json["latency_ms"]["corrected"][key].is_number());
        assert!(json["latency_ms"]["uncorrected"][key].is_number());
    }
    assert_eq!(json["outcomes"]["lost"], 0);
    assert_eq!(json["setup"]["mode"], "closed");
    assert!(json["offered_rate"].is_null());
    let page = loadgen::html::render(&report);
    assert!(page.contains("<svg") && page.contains("Latency by percentile"));
    assert!(page.contains("Latency over time"));
    assert!(
        report.text().contains("per second   p99 median"),
        "{}",
        report.text()
    );
}

#[test]
fn direct_tls_streams_carry_pings_like_starttls() {
    let b = bench_tls(
        "direct",
        2,
        2,
        Mode::Closed { window: 16 },
        300,
        run::TlsMode::Direct,
    );
    let result = run::run(&b.plan, &b.tls).expect("run starts");
    let report = Report::new(&b.plan, &result);
    assert_eq!(report.outcomes.lost, 0, "{}", report.text());
    assert_eq!(report.outcomes.answered, 300, "{}", report.text());
    assert_eq!(report.setup.connections_established, 2, "{}", report.text());
    assert!(report.clean(), "{}", report.text());
}

#[test]
fn dialback_streams_are_verified_by_the_loadgens_authoritative_answers() {
    let b = bench_auth(
        "dialback",
        2,
        2,
        Mode::Closed { window: 16 },
        300,
        run::TlsMode::Starttls,
        run::Auth::Dialback,
    );
    let result = run::run(&b.plan, &b.tls).expect("run starts");
    let report = Report::new(&b.plan, &result);
    assert_eq!(report.outcomes.answered, 300, "{}", report.text());
    assert_eq!(report.setup.connections_established, 2, "{}", report.text());
    let [valid, invalid] = report.dialback_verifies.expect("verify counts");
    assert!(valid >= 1, "the router asked us: {}", report.text());
    assert_eq!(invalid, 0, "{}", report.text());
    assert!(report.clean(), "{}", report.text());
}
