//! SIP → XMPP messages through the gateway: the internal side (SIPp as UAC) sends a MESSAGE to a
//! partner user on the router's `[sip] listen`; the router answers 200 only once the stanza was
//! handed to the authenticated outbound stream to the partner (a scripted S2S peer), and the
//! RFC 7247 error status otherwise.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use stanza_router::pki::ThrowawayCa;
use support::dialogue::{ip, listener, outbound_sasl, partner, peer_tls};
use support::router::{RouterSetup, TestRouter};
use support::sipp::{Scenario, Sipp, SippOptions};
use support::workdir::free_port;

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(30)
}

/// Router at 127.0.0.`r` with a SIP listener; partner a.test's listener at `r+1`.
fn setup(
    r: u8,
) -> (
    TestRouter,
    SocketAddr,
    support::dialogue::Peer,
    support::s2s_peer::PeerListener,
) {
    let ca = ThrowawayCa::new("gateway CA").unwrap();
    let peer = peer_tls(&ca.issue_with(&["a.test"], false).unwrap());
    let l = listener(r + 1);
    let sip = SocketAddr::new(ip(r).into(), free_port(ip(r)).unwrap());
    let mut setup = RouterSetup::new(ip(r), &ca);
    setup.partners.push(partner(
        &l,
        "tls = \"required\"\nsasl = \"optional\"\ndialback = true",
    ));
    setup.extra = format!("[sip]\nlisten = [\"{sip}\"]\n");
    (TestRouter::start(setup), sip, peer, l)
}

fn uac(r: u8, sip: SocketAddr, from: &str, to: &str, expect: &str) -> Sipp {
    Sipp::uac(
        Scenario::UacMessage,
        sip,
        SippOptions::new(ip(r + 2))
            .calls(1)
            .key("from_uri", from)
            .key("to_uri", to)
            .key("lang", "de")
            .key("body", "Hallo <Welt> & mehr")
            .var("expect_code", expect),
    )
    .expect("sipp uac starts")
}

/// (received, answered 200, refused) MESSAGEs from the SIP side.
fn sip_counts(router: &TestRouter) -> (u64, u64, u64) {
    let c = router.counters();
    (
        c.sip_messages_in.load(Ordering::Relaxed),
        c.sip_messages_delivered.load(Ordering::Relaxed),
        c.sip_messages_refused.load(Ordering::Relaxed),
    )
}

#[test]
fn message_from_the_pool_reaches_the_partner_and_is_answered_200() {
    let (router, sip, peer, l) = setup(200);
    let client = uac(200, sip, "sip:bob@corp.test", "sip:alice@a.test", "200");
    let mut o = outbound_sasl(&l, &peer);
    let got = o.expect("</message>");
    assert!(got.contains("from='bob@corp.test'"), "{got}");
    assert!(got.contains("to='alice@a.test'"), "{got}");
    assert!(got.contains("type='chat'"), "{got}");
    // SIPp ends the body line with CRLF; the CR travels as a character reference.
    assert!(
        got.contains("<body xml:lang='de'>Hallo &lt;Welt&gt; &amp; mehr"),
        "{got}"
    );
    assert!(
        got.contains("<thread>"),
        "Call-ID becomes the thread: {got}"
    );
    let out = client.wait(deadline()).expect("sipp ends");
    assert_eq!(out.logged_final_codes(), vec![200], "{}", out.messages);
    assert!(out.all_ok(), "{}", out.messages);
    assert_eq!(sip_counts(&router), (1, 1, 0));
}

fn refused(r: u8, from: &str, to: &str, code: u16) {
    let (router, sip, _peer, _l) = setup(r);
    let client = uac(r, sip, from, to, &code.to_string());
    let out = client.wait(deadline()).expect("sipp ends");
    assert_eq!(out.logged_final_codes(), vec![code], "{}", out.messages);
    assert!(out.all_ok(), "{}", out.messages);
    assert_eq!(sip_counts(&router), (1, 0, 1));
}

#[test]
fn message_to_an_unlisted_domain_is_refused_403() {
    refused(204, "sip:bob@corp.test", "sip:eve@unlisted.test", 403);
}

#[test]
fn message_from_a_domain_that_is_not_ours_is_refused_403() {
    refused(208, "sip:mallory@elsewhere.test", "sip:alice@a.test", 403);
}

#[test]
fn message_to_our_own_domain_is_refused_404() {
    refused(212, "sip:bob@corp.test", "sip:carol@corp.test", 404);
}

#[test]
fn message_to_an_unreachable_partner_is_answered_408() {
    let ca = ThrowawayCa::new("gateway CA").unwrap();
    let r = 216;
    // The partner's address is a port nobody listens on.
    let dead = SocketAddr::new(ip(r + 1).into(), free_port(ip(r + 1)).unwrap());
    let sip = SocketAddr::new(ip(r).into(), free_port(ip(r)).unwrap());
    let mut setup = RouterSetup::new(ip(r), &ca);
    setup.partners.push(support::router::PartnerEntry {
        domain: "a.test".into(),
        toml: format!("tls = \"required\"\nproxy_fqdn = \"{dead}\""),
    });
    setup.extra = format!("[sip]\nlisten = [\"{sip}\"]\n");
    let router = TestRouter::start(setup);
    let client = uac(r, sip, "sip:bob@corp.test", "sip:alice@a.test", "408");
    let out = client.wait(deadline()).expect("sipp ends");
    assert_eq!(out.logged_final_codes(), vec![408], "{}", out.messages);
    assert_eq!(sip_counts(&router).2, 1);
}
