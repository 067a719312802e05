//! Proves the peer harness: Prosody and ejabberd federate over loopback with static routes,
//! with SASL EXTERNAL when they trust the test CA and with dialback when they do not, and
//! several peers run at once.

mod support;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Instant;

use stanza_router::pki::ThrowawayCa;
use support::c2s::C2sClient;
use support::peers::{Ejabberd, HarnessError, Peer, PeerOptions, Prosody};
use support::workdir::free_port;

const A_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const B_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);
const C_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 4);

/// Options with fresh ports; routes filled in by the caller.
fn options(ca: &ThrowawayCa, domain: &str, ip: Ipv4Addr, trust: bool) -> PeerOptions {
    PeerOptions {
        domain: domain.to_string(),
        ip,
        s2s_port: free_port(ip).expect("free s2s port"),
        s2s_tls_port: None,
        c2s_port: free_port(ip).expect("free c2s port"),
        // DNS-ID only: ejabberd 23.01 (xmpp 1.6.1 on OTP 25) crashes its inbound S2S process
        // on any peer certificate carrying an XmppAddr SAN (`<<"a.test">> ++ []` badarg in
        // xmpp_stream_pkix:get_cert_domains), so SASL EXTERNAL towards it needs DNS-ID certs.
        cert: ca.issue_with(&[domain], false).expect("issue cert"),
        trust_ca_pem: trust.then(|| ca.cert_pem()),
        routes: Vec::new(),
        require_encryption: true,
        stanza_size_limit: None,
        users: Vec::new(),
    }
}

fn route(o: &PeerOptions) -> (String, SocketAddr) {
    (o.domain.clone(), o.s2s_addr())
}

fn started<T>(what: &str, r: Result<T, HarnessError>) -> T {
    match r {
        Ok(t) => t,
        Err(e) => panic!("{what} did not start: {e}"),
    }
}

/// a.test (Prosody, alice) and b.test (ejabberd, bob), routed to each other.
fn pair(trust: bool) -> (Prosody, Ejabberd) {
    let ca = ThrowawayCa::new("peers selftest CA").expect("CA");
    let mut a = options(&ca, "a.test", A_IP, trust);
    let mut b = options(&ca, "b.test", B_IP, trust);
    a.routes = vec![route(&b)];
    b.routes = vec![route(&a)];
    a.users = vec![("alice".into(), "alicepw".into())];
    b.users = vec![("bob".into(), "bobpw".into())];
    let t = Instant::now();
    let prosody = started("prosody", Prosody::start(a));
    eprintln!("prosody started in {:?}", t.elapsed());
    let t = Instant::now();
    let ejabberd = started("ejabberd", Ejabberd::start(b));
    eprintln!("ejabberd started in {:?}", t.elapsed());
    (prosody, ejabberd)
}

/// alice pings b.test and messages bob; bob receives it. Returns nothing: asserts.
fn federate(prosody: &Prosody, ejabberd: &Ejabberd) {
    let mut alice = C2sClient::login(prosody.c2s_addr(), "a.test", "alice", "alicepw", "t")
        .unwrap_or_else(|e| panic!("alice login: {e}\n{}", prosody.log_tail(30)));
    let mut bob = C2sClient::login(ejabberd.c2s_addr(), "b.test", "bob", "bobpw", "t")
        .unwrap_or_else(|e| panic!("bob login: {e}\n{}", ejabberd.log_tail(30)));
    let pong = alice.ping("b.test").unwrap_or_else(|e| {
        panic!(
            "ping b.test: {e}\n--- prosody ---\n{}\n--- ejabberd ---\n{}",
            prosody.log_tail(60),
            ejabberd.log_tail(30)
        )
    });
    assert!(
        pong.is_iq_result(),
        "ping b.test answered {}\n--- prosody ---\n{}\n--- ejabberd ---\n{}",
        pong.xml,
        prosody.log_tail(60),
        ejabberd.log_tail(30)
    );
    alice
        .send_message("bob@b.test", "hello <bob> & co")
        .expect("send message");
    let msg = bob.wait_message_from("alice@a.test").unwrap_or_else(|e| {
        panic!(
            "bob got no message: {e}\n--- prosody ---\n{}\n--- ejabberd ---\n{}",
            prosody.log_tail(60),
            ejabberd.log_tail(30)
        )
    });
    assert_eq!(msg.child_text("body").as_deref(), Some("hello <bob> & co"));
    // And back, over the other direction's S2S session.
    let pong = bob.ping("a.test").expect("bob pings a.test");
    assert!(pong.is_iq_result(), "ping a.test answered {}", pong.xml);
}

#[test]
fn prosody_and_ejabberd_federate_with_sasl_external_when_both_trust_the_ca() {
    let (prosody, ejabberd) = pair(true);
    federate(&prosody, &ejabberd);
    let sessions = prosody.s2s_sessions().expect("s2s:show()");
    let auths = ejabberd.s2s_auth_events();
    eprintln!("prosody: {sessions:#?}\nejabberd: {auths:#?}");
    assert!(
        sessions.iter().any(|s| s.outgoing) && sessions.iter().any(|s| !s.outgoing),
        "both directions: {sessions:#?}"
    );
    assert!(
        sessions
            .iter()
            .all(|s| s.remote == "b.test" && s.used_sasl_external()),
        "{sessions:#?}"
    );
    assert!(
        auths
            .iter()
            .any(|a| a.inbound && a.method == "EXTERNAL" && a.from == "a.test")
            && auths
                .iter()
                .any(|a| !a.inbound && a.method == "EXTERNAL" && a.to == "a.test"),
        "{auths:#?}"
    );
}

#[test]
fn prosody_and_ejabberd_federate_with_dialback_when_neither_trusts_the_ca() {
    let (prosody, ejabberd) = pair(false);
    federate(&prosody, &ejabberd);
    let sessions = prosody.s2s_sessions().expect("s2s:show()");
    let auths = ejabberd.s2s_auth_events();
    eprintln!("prosody: {sessions:#?}\nejabberd: {auths:#?}");
    assert!(!sessions.is_empty());
    assert!(
        sessions
            .iter()
            .all(|s| s.used_dialback() && s.security.starts_with("TLS")),
        "{sessions:#?}"
    );
    assert!(
        auths
            .iter()
            .any(|a| a.inbound && a.method == "dialback" && a.from == "a.test")
            && auths
                .iter()
                .any(|a| !a.inbound && a.method == "dialback" && a.to == "a.test")
            && auths.iter().all(|a| a.method != "EXTERNAL"),
        "{auths:#?}"
    );
}

#[test]
fn three_peers_run_at_once_on_distinct_loopback_addresses() {
    let ca = ThrowawayCa::new("three peers CA").expect("CA");
    let mut a = options(&ca, "a3.test", A_IP, true);
    let mut b = options(&ca, "b3.test", B_IP, true);
    let mut c = options(&ca, "c3.test", C_IP, true);
    a.routes = vec![route(&b), route(&c)];
    b.routes = vec![route(&a), route(&c)];
    c.routes = vec![route(&a), route(&b)];
    a.users = vec![("alice".into(), "pw".into())];
    b.users = vec![("bob".into(), "pw".into())];
    c.users = vec![("carol".into(), "pw".into())];
    let pa = started("prosody a3", Prosody::start(a));
    let eb = started("ejabberd b3", Ejabberd::start(b));
    let pc = started("prosody c3", Prosody::start(c));
    let mut alice = C2sClient::login(pa.c2s_addr(), "a3.test", "alice", "pw", "t").expect("alice");
    let mut carol = C2sClient::login(pc.c2s_addr(), "c3.test", "carol", "pw", "t").expect("carol");
    let mut bob = C2sClient::login(eb.c2s_addr(), "b3.test", "bob", "pw", "t").expect("bob");
    for (client, to) in [
        (&mut alice, "b3.test"),
        (&mut carol, "b3.test"),
        (&mut bob, "c3.test"),
    ] {
        let pong = client.ping(to).unwrap_or_else(|e| panic!("ping {to}: {e}"));
        assert!(pong.is_iq_result(), "ping {to}: {}", pong.xml);
    }
    carol
        .send_message("alice@a3.test", "from carol")
        .expect("send");
    let msg = alice
        .wait_message_from("carol@c3.test")
        .expect("alice gets carol's message");
    assert_eq!(msg.child_text("body").as_deref(), Some("from carol"));
}

#[test]
fn failed_starts_report_the_servers_log_tail() {
    let ca = ThrowawayCa::new("failing CA").expect("CA");
    for ip in [A_IP, B_IP] {
        // Hold the c2s port so the server cannot bind it.
        let taken = std::net::TcpListener::bind((ip, 0)).expect("bind");
        let mut o = options(&ca, "fail.test", ip, false);
        o.c2s_port = taken.local_addr().expect("addr").port();
        let err = if ip == A_IP {
            Prosody::start(o).err().expect("prosody must not start")
        } else {
            Ejabberd::start(o).err().expect("ejabberd must not start")
        };
        let text = err.to_string();
        assert!(matches!(err, HarnessError::Start { .. }), "{text}");
        assert!(
            text.contains("--- log tail ---") && text.len() > 200,
            "{text}"
        );
    }
}
