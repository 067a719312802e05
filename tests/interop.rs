//! Interop with real federation peers started on loopback: Prosody 0.12 and ejabberd 23.01 each
//! federate with stanza-router in both directions, with SASL EXTERNAL when certificates are trusted
//! both ways and with server dialback when they are not. A client on the partner pings
//! `corp.test` (answered over the router's outbound stream) and messages `bob@corp.test`
//! (bounced with `service-unavailable` until the gateway lands).

mod support;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use stanza_router::pki::ThrowawayCa;
use support::c2s::C2sClient;
use support::ejabberd::S2sAuth;
use support::peers::{Ejabberd, HarnessError, Peer, PeerOptions, Prosody};
use support::router::{PartnerEntry, RouterSetup, TestRouter};
use support::workdir::free_port;

fn started<T>(what: &str, r: Result<T, HarnessError>) -> T {
    r.unwrap_or_else(|e| panic!("{what} did not start: {e}"))
}

fn peer_options(
    ca: &ThrowawayCa,
    domain: &str,
    ip: Ipv4Addr,
    trust_ca: Option<String>,
) -> PeerOptions {
    PeerOptions {
        domain: domain.into(),
        ip,
        s2s_port: free_port(ip).unwrap(),
        s2s_tls_port: None,
        c2s_port: free_port(ip).unwrap(),
        // DNS-ID only: ejabberd 23.01 crashes on peer certificates with XmppAddr (tests/support/README.md).
        cert: ca.issue_with(&[domain], false).unwrap(),
        trust_ca_pem: trust_ca,
        routes: Vec::new(),
        require_encryption: true,
        stanza_size_limit: None,
        users: vec![("alice".into(), "alicepw".into())],
    }
}

/// The router at `router_ip` and a partner at `peer_ip` routed to each other. With `trusted`, both
/// trust one CA; otherwise each side's certificate comes from a CA the other does not trust.
fn setup(router_ip: u8, peer_ip: u8, trusted: bool, domain: &str) -> (RouterSetup, PeerOptions) {
    let peer_ca = ThrowawayCa::new("partner CA").unwrap();
    let router_ca = if trusted {
        None
    } else {
        Some(ThrowawayCa::new("router CA").unwrap())
    };
    let rca = router_ca.as_ref().unwrap_or(&peer_ca);
    let ip = Ipv4Addr::new(127, 0, 0, router_ip);
    let mut r = RouterSetup::new(ip, rca);
    // The router trusts the partner's CA only in trusted mode; otherwise its own (unrelated) CA.
    r.trust = vec![rca.cert_pem()];
    let p = peer_options(
        &peer_ca,
        domain,
        Ipv4Addr::new(127, 0, 0, peer_ip),
        trusted.then(|| peer_ca.cert_pem()),
    );
    r.partners.push(PartnerEntry {
        domain: domain.into(),
        toml: format!(
            "tls = \"required\"\nsasl = \"optional\"\ndialback = true\nproxy_fqdn = \"{}\"",
            p.s2s_addr()
        ),
    });
    (r, p)
}

/// alice@partner pings corp.test and messages bob@corp.test.
fn exercise(client: &mut C2sClient, logs: &dyn Fn() -> String) {
    let pong = client
        .ping("corp.test")
        .unwrap_or_else(|e| panic!("ping corp.test: {e}\n{}", logs()));
    assert!(
        pong.is_iq_result(),
        "ping answered {}\n{}",
        pong.xml,
        logs()
    );
    assert_eq!(pong.sender_bare(), Some("corp.test"));
    client.send_message("bob@corp.test", "hello bob").unwrap();
    let bounce = client
        .recv_until(
            |s| s.name() == "message" && s.attr("type") == Some("error"),
            std::time::Instant::now() + std::time::Duration::from_secs(20),
        )
        .unwrap_or_else(|e| panic!("no bounce for bob@corp.test: {e}\n{}", logs()));
    assert!(bounce.xml.contains("service-unavailable"), "{}", bounce.xml);
    assert_eq!(bounce.sender_bare(), Some("bob@corp.test"));
}

#[test]
fn prosody_federates_with_sasl_external_both_ways_when_certificates_are_trusted() {
    let (r, mut p) = setup(60, 61, true, "a.test");
    let router = TestRouter::start(r);
    p.routes = vec![("corp.test".into(), router.s2s)];
    let prosody = started("prosody", Prosody::start(p));
    let mut alice =
        C2sClient::login(prosody.c2s_addr(), "a.test", "alice", "alicepw", "t").unwrap();
    exercise(&mut alice, &|| prosody.log_tail(60));
    let sessions = prosody.s2s_sessions().expect("s2s:show()");
    assert!(
        sessions.iter().any(|s| s.outgoing) && sessions.iter().any(|s| !s.outgoing),
        "{sessions:#?}"
    );
    assert!(
        sessions
            .iter()
            .all(|s| s.remote == "corp.test" && s.used_sasl_external()),
        "{sessions:#?}"
    );
}

#[test]
fn prosody_federates_with_dialback_both_ways_when_certificates_are_untrusted() {
    let (r, mut p) = setup(62, 63, false, "a.test");
    let router = TestRouter::start(r);
    p.routes = vec![("corp.test".into(), router.s2s)];
    let prosody = started("prosody", Prosody::start(p));
    let mut alice =
        C2sClient::login(prosody.c2s_addr(), "a.test", "alice", "alicepw", "t").unwrap();
    exercise(&mut alice, &|| prosody.log_tail(80));
    let sessions = prosody.s2s_sessions().expect("s2s:show()");
    assert!(
        sessions.iter().any(|s| s.outgoing) && sessions.iter().any(|s| !s.outgoing),
        "{sessions:#?}"
    );
    assert!(
        sessions
            .iter()
            .all(|s| !s.used_sasl_external() && s.security.starts_with("TLS")),
        "{sessions:#?}"
    );
}

/// Whether ejabberd logged an inbound and an outbound authentication with corp.test by `method`.
fn both_ways(auths: &[S2sAuth], method: &str) -> bool {
    auths
        .iter()
        .any(|a| a.inbound && a.method == method && a.from == "corp.test")
        && auths
            .iter()
            .any(|a| !a.inbound && a.method == method && a.to == "corp.test")
}

/// ejabberd's s2s authentication log lines, once both directions by `method` are there (its log
/// is written asynchronously, after the stanzas already flowed) or after 10 s.
fn auth_events_both_ways(ejabberd: &Ejabberd, method: &str) -> Vec<S2sAuth> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let auths = ejabberd.s2s_auth_events();
        if both_ways(&auths, method) || Instant::now() > deadline {
            return auths;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn ejabberd_federates_with_sasl_external_both_ways_when_certificates_are_trusted() {
    let (r, mut p) = setup(64, 65, true, "b.test");
    let router = TestRouter::start(r);
    p.routes = vec![("corp.test".into(), router.s2s)];
    let ejabberd = started("ejabberd", Ejabberd::start(p));
    let mut alice =
        C2sClient::login(ejabberd.c2s_addr(), "b.test", "alice", "alicepw", "t").unwrap();
    exercise(&mut alice, &|| ejabberd.log_tail(60));
    let auths = auth_events_both_ways(&ejabberd, "EXTERNAL");
    assert!(both_ways(&auths, "EXTERNAL"), "{auths:#?}");
}

#[test]
fn ejabberd_federates_with_dialback_both_ways_when_certificates_are_untrusted() {
    let (r, mut p) = setup(66, 67, false, "b.test");
    let router = TestRouter::start(r);
    p.routes = vec![("corp.test".into(), router.s2s)];
    let ejabberd = started("ejabberd", Ejabberd::start(p));
    let mut alice =
        C2sClient::login(ejabberd.c2s_addr(), "b.test", "alice", "alicepw", "t").unwrap();
    exercise(&mut alice, &|| ejabberd.log_tail(80));
    let auths = auth_events_both_ways(&ejabberd, "dialback");
    assert!(
        both_ways(&auths, "dialback") && auths.iter().all(|a| a.method != "EXTERNAL"),
        "{auths:#?}"
    );
}

#[test]
fn unlisted_prosody_domain_is_refused_under_default_deny() {
    let ca = ThrowawayCa::new("CA").unwrap();
    let router = TestRouter::start(RouterSetup::new(Ipv4Addr::new(127, 0, 0, 68), &ca));
    let mut p = peer_options(
        &ca,
        "stranger.test",
        Ipv4Addr::new(127, 0, 0, 69),
        Some(ca.cert_pem()),
    );
    p.routes = vec![("corp.test".into(), router.s2s)];
    let prosody = started("prosody", Prosody::start(p));
    let mut alice =
        C2sClient::login(prosody.c2s_addr(), "stranger.test", "alice", "alicepw", "t").unwrap();
    let answer = alice
        .ping("corp.test")
        .unwrap_or_else(|e| panic!("no answer: {e}\n{}", prosody.log_tail(40)));
    assert!(
        answer.is_iq_error(),
        "an unlisted domain must not get through: {}",
        answer.xml
    );
    assert!(
        prosody.log_contains("policy-violation"),
        "prosody should have received policy-violation:\n{}",
        prosody.log_tail(60)
    );
}

/// Prosody's alice messages bob@corp.test; the router hands it to the internal pool (SIPp).
fn prosody_to_sip(
    router_ip: u8,
    code: &str,
) -> (C2sClient, support::sipp::Sipp, Prosody, TestRouter) {
    use support::sipp::{Scenario, Sipp, SippOptions};
    let uas = Sipp::uas(
        Scenario::UasMessage,
        SippOptions::new(Ipv4Addr::new(127, 0, 0, router_ip + 2))
            .calls(0)
            .var("reply_code", code),
    )
    .expect("sipp uas starts");
    let (mut r, mut p) = setup(router_ip, router_ip + 1, true, "a.test");
    r.extra = format!(
        "[sip]\nnext_hop = \"sip:{};transport=tcp\"\n",
        uas.local_addr()
    );
    let router = TestRouter::start(r);
    p.routes = vec![("corp.test".into(), router.s2s)];
    let prosody = started("prosody", Prosody::start(p));
    let alice = C2sClient::login(prosody.c2s_addr(), "a.test", "alice", "alicepw", "t").unwrap();
    (alice, uas, prosody, router)
}

#[test]
fn prosody_user_message_reaches_the_sip_pool() {
    let (mut alice, mut uas, prosody, _router) = prosody_to_sip(70, "200");
    alice
        .send_message("bob@corp.test", "hello over SIP")
        .unwrap();
    let got = uas
        .wait_for_received(
            "MESSAGE",
            std::time::Instant::now() + std::time::Duration::from_secs(20),
            |m| m.method() == Some("MESSAGE"),
        )
        .unwrap_or_else(|e| panic!("no MESSAGE at the pool: {e}\n{}", prosody.log_tail(40)));
    assert_eq!(got.body, "hello over SIP");
    assert!(
        got.header("From")
            .is_some_and(|f| f.contains("sip:alice@a.test")),
        "{:?}",
        got.header("From")
    );
}

#[test]
fn prosody_user_gets_recipient_unavailable_when_the_pool_answers_486() {
    let (mut alice, _uas, prosody, _router) = prosody_to_sip(74, "486");
    alice
        .send_message("bob@corp.test", "are you there?")
        .unwrap();
    let bounce = alice
        .recv_until(
            |s| s.name() == "message" && s.attr("type") == Some("error"),
            std::time::Instant::now() + std::time::Duration::from_secs(20),
        )
        .unwrap_or_else(|e| panic!("no bounce: {e}\n{}", prosody.log_tail(40)));
    assert!(
        bounce.xml.contains("recipient-unavailable"),
        "{}",
        bounce.xml
    );
    assert_eq!(bounce.sender_bare(), Some("bob@corp.test"));
}
