//! The simulated SIP pool against a real SIP implementation (SIPp, over TCP on loopback): its
//! source side sends MESSAGEs to a SIPp UAS, and SIPp UACs send MESSAGE and SUBSCRIBE to it.

mod support;

use std::net::{Ipv4Addr, TcpListener};
use std::time::{Duration, Instant};

use stanza_router::sim::{AnswerPlan, PoolConfig, SendPlan, SipPool};
use support::sipp::{Scenario, Sipp, SippOptions};

const UAS_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 151);
const UAC_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 152);
const POOL_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 153);

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(30)
}

fn pool(plan: AnswerPlan) -> SipPool {
    let listener = TcpListener::bind((POOL_IP, 0)).unwrap();
    let mut cfg = PoolConfig::new(listener, "corp.test");
    cfg.answers = plan;
    SipPool::start(cfg).unwrap()
}

#[test]
fn send_messages_to_sipp_uas_gets_every_answer() {
    let server =
        Sipp::uas(Scenario::UasMessage, SippOptions::new(UAS_IP).calls(0)).expect("start uas");
    let pool = pool(AnswerPlan::default());
    let mut plan = SendPlan::new("bob", "sip:alice@partner.test", 20);
    plan.window = 4;
    plan.deadline = Duration::from_secs(20);
    let report = pool.send_messages(server.local_addr(), plan).unwrap();
    assert_eq!(report.by_status.get(&200), Some(&20), "{report:?}");
    assert_eq!((report.missing, report.stray, report.not_sent), (0, 0, 0));
    let s = server.finish(deadline()).expect("uas ends");
    assert_eq!(s.successful_calls, 20, "{}", s.diagnostics);
    let got = s.received_requests("MESSAGE");
    assert_eq!(
        got[0]
            .header("From")
            .map(|f| f.starts_with("<sip:bob@corp.test>")),
        Some(true)
    );
    pool.stop();
}

#[test]
fn send_messages_counts_sipp_error_answers() {
    let server = Sipp::uas(
        Scenario::UasMessage,
        SippOptions::new(UAS_IP).calls(0).var("reply_code", "486"),
    )
    .expect("start uas");
    let pool = pool(AnswerPlan::default());
    let report = pool
        .send_messages(
            server.local_addr(),
            SendPlan::new("bob", "sip:alice@partner.test", 3),
        )
        .unwrap();
    assert_eq!(report.by_status.get(&486), Some(&3), "{report:?}");
    let _ = server.finish(deadline());
    pool.stop();
}

#[test]
fn sipp_uac_messages_are_answered_by_the_pool() {
    let pool = pool(AnswerPlan::default());
    let client = Sipp::uac(
        Scenario::UacMessage,
        pool.local_addr(),
        SippOptions::new(UAC_IP)
            .calls(5)
            .key("to_uri", "sip:bob@corp.test"),
    )
    .expect("start uac");
    let c = client.wait(deadline()).expect("uac ends");
    assert!(c.all_ok(), "uac failed:\n{}", c.diagnostics);
    assert_eq!(c.received_final_codes(), vec![200; 5]);
    let stats = pool.stats();
    assert_eq!(stats.messages_received, 5);
    assert_eq!(stats.malformed, 0);
    pool.stop();
}

#[test]
fn sipp_uac_subscribe_gets_200_and_a_notify_it_answers() {
    let pool = pool(AnswerPlan::default());
    let client = Sipp::uac(
        Scenario::UacSubscribe,
        pool.local_addr(),
        SippOptions::new(UAC_IP)
            .calls(1)
            .key("to_uri", "sip:bob@corp.test"),
    )
    .expect("start uac");
    let c = client.wait(deadline()).expect("uac ends");
    assert!(c.all_ok(), "uac failed:\n{}", c.diagnostics);
    assert!(c.logs.contains("active;expires=600"), "{}", c.logs);
    let stats = pool.stats();
    assert_eq!(stats.subscribes.initial, 1);
    assert_eq!(stats.notifies_sent, 1);
    // SIPp's 200 to the NOTIFY may still be in flight when SIPp exits: not asserted.
    assert_eq!(stats.malformed, 0);
    pool.stop();
}
