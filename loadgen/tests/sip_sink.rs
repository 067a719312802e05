//! Scenario: stanza-router in-process with a config from `setup::router_toml` whose `[sip]
//! next_hop` is the loadgen's SIP sink; the loadgen sends messages to the router's users over
//! STARTTLS + SASL EXTERNAL streams and the sink sees them arrive as SIP MESSAGEs. Every message
//! must be delivered (or, for the chosen error share, bounced back), none lost.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use loadgen::report::Report;
use loadgen::run::{self, Delivery, Mode, RunPlan};
use loadgen::setup;
use loadgen::sip_sink::SipErrors;
use loadgen::workload::{BodySize, Workload};
use stanza_router::config::Config;
use stanza_router::runtime::shards;

mod common;

use common::*;

fn bench(label: &str, mode: Mode, count: u64, errors: Option<SipErrors>) -> Bench {
    let dir = TempDir::new(label);
    let names = setup::default_partners(2);
    setup::write_ca(&dir.0, "corp.test", &names).unwrap();
    let ca = setup::read_ca_dir(&dir.0).unwrap();
    let router: SocketAddr = (IP, free_port()).into();
    let sink: SocketAddr = (IP, free_port()).into();
    let base = free_port_run(2);
    let listen: Vec<SocketAddr> = (0..2).map(|i| (IP, base + i).into()).collect();
    let toml = setup::router_toml(&ca, &names, router, &listen, 4, "2", Some(sink));
    let path = dir.0.join("router.toml");
    std::fs::write(&path, &toml).unwrap();
    let cfg = Config::load(&path).unwrap_or_else(|e| panic!("config invalid:\n{e}\n{toml}"));
    let handle = shards::start(Arc::new(cfg)).expect("router starts");
    wait_listening(router);
    let tls = setup::partner_tls(&dir.0).unwrap();
    let plan = RunPlan {
        router,
        tls: run::TlsMode::Starttls,
        auth: run::Auth::Sasl,
        domain: "corp.test".into(),
        partners: names,
        partner_listen: listen,
        connections: 4,
        mode,
        duration: Duration::from_secs(20),
        warmup: Duration::ZERO,
        ramp_up: Duration::ZERO,
        count: Some(count),
        drain: Duration::from_secs(10),
        body: BodySize::Fixed { bytes: 200 },
        users: 50,
        workload: Workload::Messages,
        mix: Default::default(),
        router_pid: None,
        progress: false,
        recipient_domain: "corp.test".into(),
        delivery: Delivery::SipSink {
            listen: sink,
            errors,
        },
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
fn every_message_reaches_the_sip_sink_and_is_counted_delivered() {
    let b = bench("sink-open", Mode::Open { rate: 3000.0 }, 1000, None);
    let result = run::run(&b.plan, &b.tls).expect("run starts");
    let report = Report::new(&b.plan, &result);
    let o = &report.outcomes;
    assert_eq!(o.lost, 0, "{}", report.text());
    assert_eq!(o.delivered, 1000, "{}", report.text());
    assert!(o.bounced.is_empty(), "{}", report.text());
    assert!(report.clean(), "{}", report.text());
    let sink = report.sip_sink.expect("sink totals");
    assert_eq!(sink.counts.messages, 1000);
    assert_eq!(sink.counts.no_seq, 0);
    assert_eq!(sink.framing_errors, 0);
    assert!(
        sink.connections >= 1,
        "the router opened a flow to the sink"
    );
    assert_eq!(report.latency_ms.corrected.count, 1000);
}

#[test]
fn closed_loop_with_an_error_share_delivers_the_rest_and_bounces_the_share() {
    let errors: SipErrors = "486:10%".parse().unwrap();
    let b = bench(
        "sink-closed",
        Mode::Closed { window: 64 },
        2000,
        Some(errors),
    );
    let result = run::run(&b.plan, &b.tls).expect("run starts");
    let report = Report::new(&b.plan, &result);
    let o = &report.outcomes;
    assert_eq!(o.lost, 0, "{}", report.text());
    let sink = report.sip_sink.expect("sink totals");
    assert_eq!(sink.counts.messages, 2000, "{}", report.text());
    assert_eq!(sink.counts.errors_sent, 200, "{}", report.text());
    assert_eq!(o.delivered, 1800, "{}", report.text());
    let bounced: u64 = o.bounced.values().sum();
    assert_eq!(bounced, 200, "{}", report.text());
}

#[test]
fn mix_of_messages_probes_and_subscriptions_completes_each_end_to_end() {
    let mut b = bench("sink-mix", Mode::Open { rate: 2000.0 }, 1000, None);
    b.plan.workload = Workload::Mix;
    b.plan.mix = "messages=60,presence=20,subscriptions=20".parse().unwrap();
    let result = run::run(&b.plan, &b.tls).expect("run starts");
    let report = Report::new(&b.plan, &result);
    let o = &report.outcomes;
    assert_eq!(o.lost, 0, "{}", report.text());
    assert!(report.clean(), "{}", report.text());
    let sink = report.sip_sink.expect("sink totals");
    // Every subscription went through the sink as a SUBSCRIBE and came back `subscribed`.
    assert!(o.subscribed > 100, "{}", report.text());
    assert_eq!(o.unsubscribed, 0, "{}", report.text());
    assert_eq!(sink.counts.subscribes, o.subscribed, "{}", report.text());
    assert_eq!(sink.counts.messages, o.delivered, "{}", report.text());
    assert!(o.answered > 100, "probes answered: {}", report.text());
    assert_eq!(
        o.delivered + o.answered + o.subscribed,
        1000,
        "{}",
        report.text()
    );
}

/// Closed loop, so the router runs flat out: subscriptions make the pool send NOTIFYs on the
/// router's own next-hop flow while messages keep that flow's write queue full. The router
/// once answered those NOTIFYs from the loop that drains the flow, and the two waited on each
/// other: inbound streams stopped being read within a second and most requests were lost.
#[test]
fn mix_at_saturation_loses_nothing_when_the_pool_sends_on_the_routers_flow() {
    let mut b = bench(
        "sink-mix-closed",
        Mode::Closed { window: 1024 },
        20_000,
        None,
    );
    b.plan.workload = Workload::Mix;
    b.plan.mix = "messages=80,presence=15,subscriptions=5".parse().unwrap();
    let result = run::run(&b.plan, &b.tls).expect("run starts");
    let report = Report::new(&b.plan, &result);
    let o = &report.outcomes;
    assert_eq!(o.lost, 0, "{}", report.text());
    assert!(report.clean(), "{}", report.text());
    assert_eq!(
        o.delivered + o.answered + o.subscribed,
        20_000,
        "{}",
        report.text()
    );
}
