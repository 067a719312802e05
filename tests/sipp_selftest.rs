//! Proves the SIPp harness on its own (no router): SIPp UAC against SIPp UAS over TCP on
//! loopback for MESSAGE with chosen answers, SUBSCRIBE/NOTIFY, an unanswered MESSAGE that must
//! end as a bounded failure, and TLS when this SIPp has it.

mod support;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use support::peers::HarnessError;
use support::sipp::{
    sipp_supports_tls, Direction, Scenario, Sipp, SippOptions, SippOutcome, SippTransport,
};
use support::workdir::WorkDir;

const UAS_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 41);
const UAC_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 42);

/// Upper bound for any one SIPp run to end after it was told to (or its calls were done).
const RUN_DEADLINE: Duration = Duration::from_secs(30);

fn deadline() -> Instant {
    Instant::now() + RUN_DEADLINE
}

/// A UAS bounded only by its timeout, stopped with [`Sipp::finish`] once the UAC is done.
fn uas() -> SippOptions {
    SippOptions::new(UAS_IP).calls(0)
}

/// Start lines of the messages SIPp sent.
fn sent_start_lines(o: &SippOutcome) -> Vec<String> {
    o.sip_messages()
        .into_iter()
        .filter(|m| m.direction == Direction::Sent)
        .map(|m| m.start_line)
        .collect()
}

#[test]
fn uac_message_to_uas_200_ten_calls_all_successful() {
    let server = Sipp::uas(Scenario::UasMessage, uas()).expect("start uas");
    let client = Sipp::uac(
        Scenario::UacMessage,
        server.local_addr(),
        SippOptions::new(UAC_IP)
            .calls(10)
            .key("to_uri", "sip:alice@a.test")
            .key("lang", "fr")
            .key("body", "Grüße, ça va ?"),
    )
    .expect("start uac");
    let c = client.wait(deadline()).expect("uac ends");
    assert!(c.all_ok(), "uac failed:\n{}", c.diagnostics);
    assert_eq!(c.successful_calls, 10);
    assert_eq!(c.logged_final_codes(), vec![200; 10]);
    assert_eq!(c.received_final_codes(), vec![200; 10]);

    let s = server.finish(deadline()).expect("uas ends");
    assert!(s.all_ok(), "uas failed:\n{}", s.diagnostics);
    assert_eq!(s.successful_calls, 10);
    let got = s.received_requests("MESSAGE");
    assert_eq!(got.len(), 10);
    let first = &got[0];
    assert_eq!(first.start_line, "MESSAGE sip:alice@a.test SIP/2.0");
    assert_eq!(
        first.header("content-type"),
        Some("text/plain;charset=UTF-8")
    );
    assert_eq!(first.header("Content-Language"), Some("fr"));
    assert_eq!(first.body, "Grüße, ça va ?");
}

#[test]
fn uas_486_is_counted_as_the_expected_outcome() {
    let server =
        Sipp::uas(Scenario::UasMessage, uas().var("reply_code", "486")).expect("start uas");
    let client = Sipp::uac(
        Scenario::UacMessage,
        server.local_addr(),
        SippOptions::new(UAC_IP).calls(3).var("expect_code", "486"),
    )
    .expect("start uac");
    let c = client.wait(deadline()).expect("uac ends");
    assert!(c.all_ok(), "uac failed:\n{}", c.diagnostics);
    assert_eq!(c.successful_calls, 3);
    assert_eq!(c.logged_final_codes(), vec![486; 3]);
    let s = server.finish(deadline()).expect("uas ends");
    assert!(s.all_ok(), "uas failed:\n{}", s.diagnostics);
}

#[test]
fn unexpected_final_code_fails_the_uac_call() {
    let server =
        Sipp::uas(Scenario::UasMessage, uas().var("reply_code", "503")).expect("start uas");
    let client = Sipp::uac(
        Scenario::UacMessage,
        server.local_addr(),
        SippOptions::new(UAC_IP).calls(1),
    )
    .expect("start uac");
    let c = client.wait(deadline()).expect("uac ends");
    assert_eq!(c.exit_code, Some(1), "{}", c.diagnostics);
    assert_eq!((c.successful_calls, c.failed_calls), (0, 1));
    assert_eq!(c.logged_final_codes(), vec![503]);
    // The mismatch path fails the call through a 1 ms receive timeout (see uac_message.xml).
    assert_eq!(
        c.failures("FailedTimeoutOnRecv(C)"),
        1,
        "{:?}",
        c.failure_reasons
    );
    assert_eq!(
        sent_start_lines(&c),
        vec!["MESSAGE sip:alice@a.test SIP/2.0"],
        "no BYE after the aborted call"
    );
    drop(server);
}

#[test]
fn uac_subscribe_gets_notify_active_then_terminated() {
    let server = Sipp::uas(
        Scenario::UasSubscribe,
        SippOptions {
            pause: Some(Duration::from_millis(50)),
            ..uas()
        }
        .key("expires", "300")
        .key("note", "En réunion")
        .key("note_lang", "fr")
        .var("terminate", "yes"),
    )
    .expect("start uas");
    let client = Sipp::uac(
        Scenario::UacSubscribe,
        server.local_addr(),
        SippOptions::new(UAC_IP)
            .key("to_uri", "sip:alice@a.test")
            .key("expires", "300")
            .var("expect_terminated", "yes"),
    )
    .expect("start uac");
    let c = client.wait(deadline()).expect("uac ends");
    assert!(c.all_ok(), "uac failed:\n{}", c.diagnostics);
    let notifies = c.received_requests("NOTIFY");
    assert_eq!(notifies.len(), 2, "{}", c.messages);
    let active = &notifies[0];
    assert_eq!(active.header("Event"), Some("presence"));
    assert_eq!(
        active.header("Subscription-State"),
        Some("active;expires=300")
    );
    assert_eq!(active.header("Content-Type"), Some("application/pidf+xml"));
    assert!(
        active.body.contains("entity=\"sip:alice@a.test\""),
        "{}",
        active.body
    );
    assert!(
        active.body.contains("<basic>open</basic>"),
        "{}",
        active.body
    );
    assert!(
        active
            .body
            .contains("<note xml:lang=\"fr\">En réunion</note>"),
        "{}",
        active.body
    );
    assert!(notifies[1]
        .header("Subscription-State")
        .is_some_and(|s| s.starts_with("terminated")));
    let sub_ok = c
        .sip_messages()
        .into_iter()
        .find(|m| m.status() == Some(200) && m.header("CSeq") == Some("1 SUBSCRIBE"))
        .expect("200 to SUBSCRIBE");
    assert_eq!(sub_ok.header("Expires"), Some("300"));

    let s = server.finish(deadline()).expect("uas ends");
    assert!(s.all_ok(), "uas failed:\n{}", s.diagnostics);
    assert_eq!(s.received_requests("SUBSCRIBE").len(), 1);
}

#[test]
fn unanswered_message_ends_as_bounded_uac_failure() {
    let mut server = Sipp::uas(Scenario::UasNoAnswer, uas()).expect("start uas");
    let client = Sipp::uac(
        Scenario::UacMessage,
        server.local_addr(),
        SippOptions {
            recv_timeout: Some(Duration::from_millis(500)),
            ..SippOptions::new(UAC_IP)
        },
    )
    .expect("start uac");
    let held = server
        .wait_for_received("the unanswered MESSAGE", deadline(), |m| {
            m.method() == Some("MESSAGE")
        })
        .expect("uas got MESSAGE");
    assert!(held.header("Call-ID").is_some());
    let c = client.wait(deadline()).expect("uac ends, not hangs");
    assert_eq!(c.exit_code, Some(1), "{}", c.diagnostics);
    assert_eq!((c.successful_calls, c.failed_calls), (0, 1));
    assert_eq!(
        c.failures("FailedTimeoutOnRecv(C)"),
        1,
        "{:?}",
        c.failure_reasons
    );
    assert!(c.received_final_codes().is_empty());
    assert_eq!(
        sent_start_lines(&c),
        vec!["MESSAGE sip:alice@a.test SIP/2.0"],
        "nothing sent after the receive timeout"
    );
    // The UAS still holds the call: dropping it kills SIPp (no wait for its -timeout).
    drop(server);
}

#[test]
fn tls_message_when_sipp_has_tls() {
    let dir = WorkDir::new("sipp-tls-cert").expect("work dir");
    let ca = stanza_router::pki::ThrowawayCa::new("sipp test CA").expect("CA");
    let leaf = ca.issue_with(&["sip.test"], false).expect("leaf");
    let cert = dir.write("cert.pem", &leaf.cert_pem).expect("cert");
    let key = dir.write("key.pem", &leaf.key_pem).expect("key");
    let tls = SippTransport::Tls { cert, key };
    let started = Sipp::uas(
        Scenario::UasMessage,
        SippOptions {
            transport: tls.clone(),
            ..uas()
        },
    );
    if !sipp_supports_tls() {
        // Debian's sip-tester 3.6.1 has no OpenSSL: the harness says so instead of starting.
        match started {
            Err(HarnessError::Options(why)) => assert!(why.contains("without TLS"), "{why}"),
            Err(e) => panic!("unexpected error: {e}"),
            Ok(_) => panic!("TLS UAS started on a SIPp without TLS"),
        }
        return;
    }
    let server = started.expect("start TLS uas");
    let client = Sipp::uac(
        Scenario::UacMessage,
        server.local_addr(),
        SippOptions {
            transport: tls,
            ..SippOptions::new(UAC_IP)
        },
    )
    .expect("start TLS uac");
    let c = client.wait(deadline()).expect("uac ends");
    assert!(c.all_ok(), "uac failed:\n{}", c.diagnostics);
    let s = server.finish(deadline()).expect("uas ends");
    assert!(s.all_ok(), "uas failed:\n{}", s.diagnostics);
}
