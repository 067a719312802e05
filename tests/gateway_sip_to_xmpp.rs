//! SIP → XMPP messages through the gateway: the internal side (SIPp as UAC) sends a MESSAGE to a
//! partner user on the router's `[sip] listen`; the router answers 200 only once the stanza was
//! handed to the authenticated outbound stream to the partner (a scripted S2S peer), and the
//! RFC 7247 error status otherwise.
//!
//! No silent loss when the partner's stream dies (issue 3 §2–§3): MESSAGEs whose stanzas wait
//! in the outbound queue while the stream comes up each get exactly one final response when
//! the partner then sends a stream error, closes, or drops the connection right after
//! authenticating (503), or never answers at all (408 after `limits.stream_establishment`);
//! the counters add up (`in = delivered + refused`), and delivery resumes on a new stream.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use stanza_router::pki::ThrowawayCa;
use support::dialogue::{ip, listener, outbound_sasl, outbound_tls, partner, peer_tls};
use support::router::{RouterSetup, TestRouter};
use support::s2s_peer::{response_header, PeerConn};
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

/// `n` MESSAGEs from bob to alice@a.test over the router's SIP listener, each expecting `expect`.
fn uac_many(r: u8, sip: SocketAddr, n: u32, expect: &str) -> Sipp {
    Sipp::uac(
        Scenario::UacMessage,
        sip,
        SippOptions::new(ip(r))
            .calls(n)
            .key("from_uri", "sip:bob@corp.test")
            .key("to_uri", "sip:alice@a.test")
            .key("body", "queued")
            .var("expect_code", expect),
    )
    .expect("sipp uac starts")
}

/// Waits until the router has received `n` MESSAGEs from the SIP side (in total).
fn wait_received(router: &TestRouter, n: u64) {
    let until = deadline();
    while sip_counts(router).0 < n {
        assert!(
            Instant::now() < until,
            "the router did not receive {n} MESSAGEs"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The router's outbound stream, up to its SASL EXTERNAL `<auth/>` (not yet answered).
fn outbound_until_auth(
    l: &support::s2s_peer::PeerListener,
    peer: &support::dialogue::Peer,
) -> PeerConn {
    let mut o = outbound_tls(
        l,
        peer,
        "out-1",
        "<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>EXTERNAL</mechanism></mechanisms>",
    );
    o.expect("mechanism='EXTERNAL'");
    o
}

/// SASL success, the restarted stream's header and empty features (the router is now
/// authenticated), followed in the same write by `then`.
fn authenticate_then(o: &mut PeerConn, then: &str) {
    o.send("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
    o.restart();
    o.expect_header();
    o.send(&format!(
        "{}<stream:features/>{then}",
        response_header("a.test", "corp.test", "out-2")
    ));
}

/// How the scripted partner ends the router's outbound stream right after authenticating it.
#[derive(Debug, Clone, Copy)]
enum Death {
    /// `<stream:error>` then `</stream:stream>`.
    StreamError,
    /// `</stream:stream>` before any stanza was written.
    Close,
    /// The TCP connection goes away without a close.
    Drop,
    /// The TCP connection goes away after SASL success, before the restarted stream's
    /// features: authenticated, but never ready to carry a stanza.
    DropBeforeFeatures,
}

impl Death {
    /// The final response every queued MESSAGE gets; `None`: 200 or 503, see below.
    fn status(self) -> Option<u16> {
        match self {
            // The router reads the partner's end together with its features, or before them:
            // nothing was written.
            Death::StreamError | Death::Close | Death::DropBeforeFeatures => Some(503),
            // The router may take and write the queue before it reads the connection's end:
            // those are 200 (written to an authenticated stream; without XEP-0198 nothing
            // tells the router the partner never read them); the others 503.
            Death::Drop => None,
        }
    }
}

/// `n` MESSAGEs wait in the outbound queue while the stream comes up; the partner kills the
/// stream right after authentication. Each MESSAGE gets exactly one final response — 503 when
/// it was still queued — the counters add up, and a later MESSAGE goes out on a new stream.
fn queued_messages_are_answered_when_the_stream_dies(r: u8, death: Death) {
    let (router, sip, peer, l) = setup(r);
    let n = 4;
    let expect = death.status().unwrap_or(503).to_string();
    let client = uac_many(r, sip, n, &expect);
    let mut o = outbound_until_auth(&l, &peer);
    wait_received(&router, u64::from(n));
    match death {
        Death::StreamError => authenticate_then(
            &mut o,
            "<stream:error><undefined-condition xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>\
             </stream:error></stream:stream>",
        ),
        Death::Close => authenticate_then(&mut o, "</stream:stream>"),
        Death::Drop => authenticate_then(&mut o, ""),
        Death::DropBeforeFeatures => {
            o.send("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
            o.restart();
            o.expect_header();
        }
    }
    if matches!(death, Death::Drop | Death::DropBeforeFeatures) {
        drop(o);
    } else {
        // Nothing was sent on the dead stream: it ends without a stanza.
        loop {
            match o.next() {
                support::s2s_peer::Got::Element(e) => {
                    assert!(!e.contains("<message"), "a stanza went out: {e}")
                }
                support::s2s_peer::Got::Header { .. } => {}
                support::s2s_peer::Got::Close | support::s2s_peer::Got::Eof => break,
            }
        }
    }
    let out = client.wait(deadline()).expect("sipp ends");
    let codes = out.received_final_codes();
    assert_eq!(
        codes.len(),
        n as usize,
        "one final response per MESSAGE: {}",
        out.messages
    );
    match death.status() {
        Some(want) => {
            assert!(
                codes.iter().all(|&c| c == want),
                "{codes:?}\n{}",
                out.messages
            );
            assert!(out.all_ok(), "{}", out.diagnostics);
        }
        None => assert!(
            codes.iter().all(|&c| c == 503 || c == 200),
            "{codes:?}\n{}",
            out.messages
        ),
    }
    eprintln!("{death:?}: final codes {codes:?}");
    let ok = codes.iter().filter(|&&c| c == 200).count() as u64;
    assert_eq!(sip_counts(&router), (u64::from(n), ok, u64::from(n) - ok));

    // The partner behaves again: the next MESSAGE goes out on a new stream and gets its 200.
    let again = uac_many(r, sip, 1, "200");
    let mut o = outbound_sasl(&l, &peer);
    let got = o.expect("</message>");
    assert!(got.contains("to='alice@a.test'"), "{got}");
    let out = again.wait(deadline()).expect("sipp ends");
    assert_eq!(out.logged_final_codes(), vec![200], "{}", out.messages);
    let (i, d, f) = sip_counts(&router);
    assert_eq!((i, d + f), (u64::from(n) + 1, u64::from(n) + 1));
    assert_eq!(d, ok + 1);
}

#[test]
fn stream_error_after_authentication_fails_the_queued_messages_with_503() {
    queued_messages_are_answered_when_the_stream_dies(220, Death::StreamError);
}

#[test]
fn partner_closing_right_after_authentication_fails_the_queued_messages_with_503() {
    queued_messages_are_answered_when_the_stream_dies(224, Death::Close);
}

#[test]
fn connection_dropped_after_authentication_answers_every_queued_message_once() {
    queued_messages_are_answered_when_the_stream_dies(228, Death::Drop);
}

#[test]
fn connection_dropped_after_sasl_success_fails_the_queued_messages_with_503() {
    queued_messages_are_answered_when_the_stream_dies(232, Death::DropBeforeFeatures);
}

#[test]
fn silent_partner_fails_the_queued_messages_with_408_after_stream_establishment() {
    let ca = ThrowawayCa::new("gateway CA").unwrap();
    let r = 236;
    let peer_l = listener(r + 1);
    let sip = SocketAddr::new(ip(r).into(), free_port(ip(r)).unwrap());
    let mut setup = RouterSetup::new(ip(r), &ca);
    setup.partners.push(partner(&peer_l, "tls = \"required\""));
    // The bounded wait for a partner that accepts TCP and then says nothing.
    setup.extra = format!("[sip]\nlisten = [\"{sip}\"]\n[limits]\nstream_establishment = \"2s\"\n");
    let router = TestRouter::start(setup);
    let n = 3;
    let client = uac_many(r, sip, n, "408");
    let _silent = peer_l.accept();
    let out = client.wait(deadline()).expect("sipp ends");
    assert_eq!(
        out.received_final_codes(),
        vec![408; n as usize],
        "{}",
        out.messages
    );
    assert!(out.all_ok(), "{}", out.diagnostics);
    assert_eq!(sip_counts(&router), (u64::from(n), 0, u64::from(n)));
}

#[test]
fn message_to_a_partner_whose_stream_never_comes_up_is_answered_408_before_the_senders_timer_f() {
    let ca = ThrowawayCa::new("gateway CA").unwrap();
    let r = 240;
    let peer_l = listener(r + 1);
    let sip = SocketAddr::new(ip(r).into(), free_port(ip(r)).unwrap());
    let mut setup = RouterSetup::new(ip(r), &ca);
    setup.partners.push(partner(&peer_l, "tls = \"required\""));
    // T1 = 50 ms: the sender's Timer F is 3.2 s, far below the stream establishment timeout
    // (60 s): the router answers by itself before the sender gives up.
    setup.extra = format!("[sip]\nlisten = [\"{sip}\"]\nt1 = \"50ms\"\n");
    let router = TestRouter::start(setup);
    let client = uac_many(r, sip, 1, "408");
    let _silent = peer_l.accept();
    // SIPp's run ends within the test's deadline (30 s), long before the stream establishment
    // timeout could: the 408 is the router's own answer to a MESSAGE without a fate.
    let out = client.wait(deadline()).expect("sipp ends");
    assert_eq!(out.received_final_codes(), vec![408], "{}", out.messages);
    assert!(out.all_ok(), "{}", out.diagnostics);
    assert_eq!(sip_counts(&router), (1, 0, 1));
}
