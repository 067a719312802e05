//! XMPP → SIP messages through the gateway: a federated partner (scripted S2S peer) messages
//! bob@corp.test; the router sends a SIP MESSAGE to the internal pool (SIPp); the SIP outcome decides
//! what the partner sees: nothing on 200, the RFC 7247 error otherwise.

mod support;

use std::time::{Duration, Instant};

use stanza_router::pki::ThrowawayCa;
use support::dialogue::{inbound_sasl, ip, listener, outbound_sasl, partner, peer_tls};
use support::router::{RouterSetup, TestRouter};
use support::sipp::{Scenario, Sipp, SippOptions};

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(20)
}

/// Router at 127.0.0.`r`, partner listener at `r+1`, SIPp UAS answering `code` at `r+2`.
fn setup(
    r: u8,
    code: &str,
) -> (
    TestRouter,
    Sipp,
    support::dialogue::Peer,
    support::s2s_peer::PeerListener,
) {
    let ca = ThrowawayCa::new("gateway CA").unwrap();
    let peer = peer_tls(&ca.issue_with(&["a.test"], false).unwrap());
    let l = listener(r + 1);
    let uas = Sipp::uas(
        Scenario::UasMessage,
        SippOptions::new(ip(r + 2)).calls(0).var("reply_code", code),
    )
    .expect("sipp uas starts");
    let mut setup = RouterSetup::new(ip(r), &ca);
    setup.partners.push(partner(
        &l,
        "tls = \"required\"\nsasl = \"optional\"\ndialback = true",
    ));
    setup.extra = format!(
        "[sip]\nnext_hop = \"sip:{};transport=tcp\"\n",
        uas.local_addr()
    );
    (TestRouter::start(setup), uas, peer, l)
}

#[test]
fn message_accepted_by_sip_reaches_the_pool_and_is_not_bounced() {
    let (router, mut uas, peer, l) = setup(120, "200");
    let mut c = inbound_sasl(&router, &peer);
    c.send(
        "<message type='chat' from='alice@a.test/r' to='bob@corp.test' id='m1' xml:lang='en'>\
         <body>hello &amp; welcome</body><subject>greeting</subject></message>",
    );
    let got = uas
        .wait_for_received("MESSAGE", deadline(), |m| m.method() == Some("MESSAGE"))
        .expect("the pool receives the MESSAGE");
    assert!(
        got.start_line.starts_with("MESSAGE sip:bob@corp.test"),
        "{}",
        got.start_line
    );
    assert_eq!(got.body, "hello & welcome");
    assert!(
        got.header("From")
            .is_some_and(|f| f.contains("sip:alice@a.test")),
        "{:?}",
        got.header("From")
    );
    assert!(got
        .header("Content-Type")
        .is_some_and(|v| v.contains("text/plain")));
    assert_eq!(got.header("Content-Language"), Some("en"));
    assert_eq!(got.header("Subject"), Some("greeting"));
    let deadline = deadline();
    while router
        .counters()
        .messages_delivered
        .load(std::sync::atomic::Ordering::Relaxed)
        < 1
    {
        assert!(Instant::now() < deadline, "the 200 was not accounted for");
        std::thread::yield_now();
    }
    // The next thing on the router's outbound stream is the ping result, not a bounce for m1.
    c.send("<iq type='get' from='alice@a.test/r' to='corp.test' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>");
    let mut o = outbound_sasl(&l, &peer);
    let first = o.expect("id=");
    assert!(
        first.contains("id='p1'") && first.contains("type='result'"),
        "{first}"
    );
    assert_eq!(
        router
            .counters()
            .messages_bounced
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
}

fn bounced_with(r: u8, code: &str, condition: &str) {
    let (router, _uas, peer, l) = setup(r, code);
    let mut c = inbound_sasl(&router, &peer);
    c.send("<message type='chat' from='alice@a.test/r' to='bob@corp.test' id='m-err'><body>hi</body></message>");
    let mut o = outbound_sasl(&l, &peer);
    let bounce = o.expect("id='m-err'");
    assert!(bounce.contains("type='error'"), "{bounce}");
    assert!(
        bounce.contains(&format!("<{condition} ")),
        "SIP {code} must map to {condition}: {bounce}"
    );
    assert!(
        bounce.contains("from='bob@corp.test'") && bounce.contains("to='alice@a.test/r'"),
        "{bounce}"
    );
    assert_eq!(
        router
            .counters()
            .messages_bounced
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

#[test]
fn sip_404_bounces_item_not_found() {
    bounced_with(124, "404", "item-not-found");
}

#[test]
fn sip_486_bounces_recipient_unavailable() {
    bounced_with(128, "486", "recipient-unavailable");
}

#[test]
fn sip_503_bounces_service_unavailable() {
    bounced_with(132, "503", "service-unavailable");
}

#[test]
fn unanswered_message_bounces_remote_server_timeout_after_timer_f() {
    let ca = ThrowawayCa::new("gateway CA").unwrap();
    let peer = peer_tls(&ca.issue_with(&["a.test"], false).unwrap());
    let l = listener(137);
    let mut uas = Sipp::uas(Scenario::UasNoAnswer, SippOptions::new(ip(138)).calls(0))
        .expect("sipp uas starts");
    let mut setup = RouterSetup::new(ip(136), &ca);
    setup.partners.push(partner(
        &l,
        "tls = \"required\"\nsasl = \"optional\"\ndialback = true",
    ));
    // T1 = 10 ms → Timer F = 640 ms, so the test does not wait 32 s.
    setup.extra = format!(
        "[sip]\nnext_hop = \"sip:{};transport=tcp\"\nt1 = \"10ms\"\n",
        uas.local_addr()
    );
    let router = TestRouter::start(setup);
    let mut c = inbound_sasl(&router, &peer);
    c.send("<message type='chat' from='alice@a.test/r' to='bob@corp.test' id='m-late'><body>hi</body></message>");
    uas.wait_for_received("MESSAGE", deadline(), |m| m.method() == Some("MESSAGE"))
        .expect("the pool receives it");
    let mut o = outbound_sasl(&l, &peer);
    let bounce = o.expect("id='m-late'");
    assert!(bounce.contains("<remote-server-timeout "), "{bounce}");
}

#[test]
fn pool_down_bounces_service_unavailable_and_delivery_resumes_when_it_returns() {
    let ca = ThrowawayCa::new("gateway CA").unwrap();
    let peer = peer_tls(&ca.issue_with(&["a.test"], false).unwrap());
    let l = listener(141);
    let uas = Sipp::uas(Scenario::UasMessage, SippOptions::new(ip(142)).calls(0))
        .expect("sipp uas starts");
    let pool = uas.local_addr();
    let mut setup = RouterSetup::new(ip(140), &ca);
    setup.partners.push(partner(
        &l,
        "tls = \"required\"\nsasl = \"optional\"\ndialback = true",
    ));
    setup.extra = format!("[sip]\nnext_hop = \"sip:{pool};transport=tcp\"\n");
    let router = TestRouter::start(setup);
    let delivered = |n: u64| {
        let deadline = deadline();
        while router
            .counters()
            .messages_delivered
            .load(std::sync::atomic::Ordering::Relaxed)
            < n
        {
            assert!(Instant::now() < deadline, "message {n} was not delivered");
            std::thread::yield_now();
        }
    };
    let mut c = inbound_sasl(&router, &peer);
    c.send("<message type='chat' from='alice@a.test/r' to='bob@corp.test' id='before'><body>1</body></message>");
    delivered(1);

    drop(uas); // the pool dies
    c.send("<message type='chat' from='alice@a.test/r' to='bob@corp.test' id='during'><body>2</body></message>");
    let mut o = outbound_sasl(&l, &peer);
    let bounce = o.expect("id='during'");
    assert!(bounce.contains("<service-unavailable "), "{bounce}");

    let mut back = Sipp::uas(
        Scenario::UasMessage,
        SippOptions {
            port: pool.port(),
            ..SippOptions::new(ip(142)).calls(0)
        },
    )
    .expect("sipp uas restarts on the same port");
    // The router reconnects with backoff, which may outlast the send wait: a message sent
    // before the flow is back bounces (never vanishes). Each one ends one way or the other;
    // one gets through.
    let until = deadline();
    for k in 0.. {
        assert!(Instant::now() < until, "delivery did not resume");
        let body = format!("after {k}");
        c.send(&format!(
            "<message type='chat' from='alice@a.test/r' to='bob@corp.test' id='after-{k}'>\
             <body>{body}</body></message>"
        ));
        let bounced = loop {
            if back
                .wait_for_received("MESSAGE", Instant::now(), |m| m.body == body)
                .is_ok()
            {
                break false;
            }
            if let Some(support::s2s_peer::Got::Element(e)) =
                o.next_within(Duration::from_millis(100))
            {
                if e.contains(&format!("id='after-{k}'")) {
                    assert!(e.contains("<service-unavailable "), "{e}");
                    break true;
                }
            }
            assert!(
                Instant::now() < until,
                "after-{k} neither delivered nor bounced"
            );
        };
        if !bounced {
            break;
        }
    }
    delivered(2);
}
