//! Scenario tests: the router in-process against a scripted S2S peer over real sockets and real
//! TLS. Each test reads as the dialogue between a federated server (a.test) and the router
//! (corp.test), in both directions: the peer's inbound stream, and the outbound stream(s) the router
//! opens back to the peer's listener (its `proxy_fqdn` static route).

mod support;

use std::net::SocketAddr;

use stanza_router::edge::tls::{client_config, identity_from_pem, Alpn};
use stanza_router::pki::ThrowawayCa;
use support::dialogue::{
    inbound_sasl, inbound_tls, ip, listener, outbound_tls, partner, peer_tls, TLS_NS,
};
use support::router::{PartnerEntry, RouterSetup, TestRouter};
use support::s2s_peer::{header, response_header, PeerConn};

fn text_of(element: &str) -> String {
    let start = element.find('>').unwrap() + 1;
    let end = element.rfind("</").unwrap();
    element[start..end].to_string()
}

#[test]
fn sasl_external_both_ways_answers_ping_and_bounces_user_message() {
    let ca = ThrowawayCa::new("scenario CA").unwrap();
    let peer = peer_tls(&ca.issue_with(&["a.test"], false).unwrap());
    let l = listener(31);
    let mut setup = RouterSetup::new(ip(30), &ca);
    setup.partners.push(partner(
        &l,
        "tls = \"required\"\nsasl = \"optional\"\ndialback = true",
    ));
    let router = TestRouter::start(setup);

    let mut c = inbound_sasl(&router, &peer);
    c.send("<iq type='get' from='alice@a.test/r' to='corp.test' id='ping-1'><ping xmlns='urn:xmpp:ping'/></iq>");

    let mut o = outbound_tls(
        &l,
        &peer,
        "out-1",
        "<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>EXTERNAL</mechanism></mechanisms>",
    );
    assert!(
        o.client_chain_len() > 0,
        "router presented no client certificate"
    );
    let auth = o.expect("mechanism='EXTERNAL'");
    assert!(
        auth.contains("Y29ycC50ZXN0"),
        "authzid should be base64(corp.test): {auth}"
    );
    o.send("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
    o.restart();
    o.expect_header();
    o.send(&response_header("a.test", "corp.test", "out-2"));
    o.send("<stream:features/>");
    let result = o.expect("id='ping-1'");
    assert!(
        result.contains("type='result'") && result.contains("to='alice@a.test/r'"),
        "{result}"
    );
    assert!(result.contains("from='corp.test'"), "{result}");

    c.send("<message type='chat' from='alice@a.test/r' to='bob@corp.test' id='m1'><body>hi</body></message>");
    let bounce = o.expect("id='m1'");
    assert!(
        bounce.contains("type='error'") && bounce.contains("<service-unavailable"),
        "{bounce}"
    );
    assert!(bounce.contains("from='bob@corp.test'"), "{bounce}");
    // An error is never answered.
    c.send("<message type='error' from='alice@a.test/r' to='bob@corp.test' id='m2'/>");
    c.send("<iq type='get' from='alice@a.test/r' to='corp.test' id='ping-2'><ping xmlns='urn:xmpp:ping'/></iq>");
    let next = o.expect("id='ping-2'");
    assert!(
        next.contains("type='result'"),
        "the error m2 must not have been answered: {next}"
    );
}

#[test]
fn dialback_both_ways_with_untrusted_certificates() {
    let ca = ThrowawayCa::new("scenario CA").unwrap();
    let peer = peer_tls(&ThrowawayCa::self_signed(&["a.test"]).unwrap());
    let l = listener(33);
    let mut setup = RouterSetup::new(ip(32), &ca);
    setup.partners.push(partner(
        &l,
        "tls = \"required\"\nsasl = \"optional\"\ndialback = true",
    ));
    let router = TestRouter::start(setup);

    // a.test → corp.test: the router is the receiving server.
    let (mut c, inbound_id) = inbound_tls(&router, &peer);
    let features = c.expect("stream:features");
    assert!(
        !features.contains("EXTERNAL"),
        "untrusted certificate must not be offered SASL EXTERNAL"
    );
    assert!(
        features.contains("urn:xmpp:features:dialback"),
        "{features}"
    );
    c.send("<db:result from='a.test' to='corp.test'>key-from-a</db:result>");

    // The router asks a.test's authoritative server (our listener) over a verify-only stream.
    let mut v = outbound_tls(
        &l,
        &peer,
        "v-1",
        "<dialback xmlns='urn:xmpp:features:dialback'/>",
    );
    let verify = v.expect("<db:verify");
    assert!(verify.contains(&format!("id='{inbound_id}'")), "{verify}");
    assert_eq!(text_of(&verify), "key-from-a");
    v.send(&format!(
        "<db:verify from='a.test' to='corp.test' id='{inbound_id}' type='valid'/>"
    ));
    let ok = c.expect("<db:result");
    assert!(ok.contains("type='valid'"), "{ok}");

    c.send("<iq type='get' from='alice@a.test/r' to='corp.test' id='ping-1'><ping xmlns='urn:xmpp:ping'/></iq>");

    // corp.test → a.test: the router is the originating server.
    let mut o = outbound_tls(
        &l,
        &peer,
        "out-1",
        "<dialback xmlns='urn:xmpp:features:dialback'/>",
    );
    let result = o.expect("<db:result");
    let key = text_of(&result);
    // a.test checks the key with corp.test's authoritative server (the router) on a new stream.
    let (mut w, _) = inbound_tls(&router, &peer);
    w.expect("stream:features");
    w.send(&format!(
        "<db:verify from='a.test' to='corp.test' id='out-1'>{key}</db:verify>"
    ));
    let answer = w.expect("<db:verify");
    assert!(answer.contains("type='valid'"), "{answer}");
    w.send(&format!(
        "<db:verify from='a.test' to='corp.test' id='out-1'>{key}0</db:verify>"
    ));
    assert!(w.expect("<db:verify").contains("type='invalid'"));
    o.send("<db:result from='a.test' to='corp.test' type='valid'/>");
    let pong = o.expect("id='ping-1'");
    assert!(pong.contains("type='result'"), "{pong}");
}

#[test]
fn unlisted_domain_is_refused_under_default_deny() {
    let ca = ThrowawayCa::new("scenario CA").unwrap();
    let router = TestRouter::start(RouterSetup::new(ip(34), &ca));
    let mut c = PeerConn::connect(router.s2s);
    c.send(&header("stranger.test", "corp.test"));
    c.expect_stream_error("policy-violation");
    c.expect_closed();
}

#[test]
fn partner_requiring_tls_is_refused_when_it_skips_tls() {
    let ca = ThrowawayCa::new("scenario CA").unwrap();
    let l = listener(36);
    let mut setup = RouterSetup::new(ip(35), &ca);
    setup.partners.push(partner(
        &l,
        "tls = \"required\"\nsasl = \"optional\"\ndialback = true",
    ));
    let router = TestRouter::start(setup);
    let mut c = PeerConn::connect(router.s2s);
    c.send(&header("a.test", "corp.test"));
    c.expect_header();
    c.expect("<required/>");
    c.send("<db:result from='a.test' to='corp.test'>key</db:result>");
    c.expect_stream_error("policy-violation");
    c.expect_closed();
}

#[test]
fn stream_to_a_domain_we_do_not_serve_is_host_unknown() {
    let ca = ThrowawayCa::new("scenario CA").unwrap();
    let l = listener(38);
    let mut setup = RouterSetup::new(ip(37), &ca);
    setup.partners.push(partner(
        &l,
        "tls = \"optional\"\nsasl = \"optional\"\ndialback = true",
    ));
    let router = TestRouter::start(setup);
    let mut c = PeerConn::connect(router.s2s);
    c.send(&header("a.test", "other.test"));
    c.expect_stream_error("host-unknown");
}

#[test]
fn direct_tls_listener_offers_sasl_external_without_starttls() {
    let ca = ThrowawayCa::new("scenario CA").unwrap();
    let cert = ca.issue_with(&["a.test"], false).unwrap();
    let id = identity_from_pem(&cert.cert_pem, &cert.key_pem).unwrap();
    let l = listener(40);
    let mut setup = RouterSetup::new(ip(39), &ca);
    setup.partners.push(partner(
        &l,
        "tls = \"required\"\nsasl = \"optional\"\ndialback = true",
    ));
    let router = TestRouter::start(setup);
    let mut c = PeerConn::connect(router.s2s_tls);
    c.starttls_client(client_config(&id, Alpn::XmppServer).unwrap(), "corp.test");
    c.send(&header("a.test", "corp.test"));
    c.expect_header();
    let f = c.expect("stream:features");
    assert!(!f.contains("starttls") && f.contains("EXTERNAL"), "{f}");
}

#[test]
fn outbound_stream_is_found_through_dns_srv_on_a_loopback_resolver() {
    let ca = ThrowawayCa::new("scenario CA").unwrap();
    let peer = peer_tls(&ca.issue_with(&["a.test"], false).unwrap());
    let l = listener(42);
    let dns = support::dns_server::DnsServer::start(SocketAddr::new(ip(43).into(), 0));
    dns.srv(
        "_xmpp-server._tcp.a.test",
        10,
        5,
        l.addr().port(),
        "xmpp.a.test",
    );
    dns.a("xmpp.a.test", ip(42));
    let mut setup = RouterSetup::new(ip(41), &ca);
    setup.partners.push(PartnerEntry {
        domain: "a.test".into(),
        toml: "tls = \"required\"\nsasl = \"optional\"\ndialback = true".into(),
    });
    setup.extra = format!("[dns]\nservers = [\"{}\"]\ntimeout = \"2s\"\n", dns.addr());
    let router = TestRouter::start(setup);

    let mut c = inbound_sasl(&router, &peer);
    c.send("<iq type='get' from='alice@a.test/r' to='corp.test' id='srv-1'><ping xmlns='urn:xmpp:ping'/></iq>");

    let mut o = outbound_tls(
        &l,
        &peer,
        "out-1",
        "<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>EXTERNAL</mechanism></mechanisms>",
    );
    o.expect("mechanism='EXTERNAL'");
    o.send("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
    o.restart();
    o.expect_header();
    o.send(&response_header("a.test", "corp.test", "out-2"));
    o.send("<stream:features/>");
    assert!(o.expect("id='srv-1'").contains("type='result'"));
    assert!(
        dns.queries_for("_xmpps-server._tcp.a.test") >= 1,
        "direct TLS SRV asked first (XEP-0368)"
    );
    assert!(dns.queries_for("_xmpp-server._tcp.a.test") >= 1);
}

#[test]
fn partner_connection_limit_refuses_the_extra_stream() {
    let ca = ThrowawayCa::new("scenario CA").unwrap();
    let l = listener(45);
    let mut setup = RouterSetup::new(ip(44), &ca);
    setup.partners.push(partner(
        &l,
        "tls = \"optional\"\nsasl = \"optional\"\ndialback = true\nconnection_limit = 1",
    ));
    let router = TestRouter::start(setup);
    let mut first = PeerConn::connect(router.s2s);
    first.send(&header("a.test", "corp.test"));
    first.expect_header();
    first.expect("stream:features");
    let mut second = PeerConn::connect(router.s2s);
    second.send(&header("a.test", "corp.test"));
    // The limit is checked once the header names the partner, right after our features.
    second.expect_header();
    second.expect("stream:features");
    second.expect_stream_error("policy-violation");
    second.expect_closed();
    // The first stream is unaffected.
    first.send(&format!("<starttls xmlns='{TLS_NS}'/>"));
    first.expect("<proceed");
}

#[test]
fn replies_to_an_unreachable_partner_are_counted_not_bounced_and_nothing_hangs() {
    let ca = ThrowawayCa::new("scenario CA").unwrap();
    let peer = peer_tls(&ca.issue_with(&["a.test"], false).unwrap());
    // A port nobody listens on: the router's outbound connection is refused.
    let closed = listener(47).addr();
    let mut setup = RouterSetup::new(ip(46), &ca);
    setup.partners.push(PartnerEntry {
        domain: "a.test".into(),
        toml: format!(
            "tls = \"required\"\nsasl = \"optional\"\ndialback = true\nproxy_fqdn = \"{closed}\""
        ),
    });
    let router = TestRouter::start(setup);
    let mut c = inbound_sasl(&router, &peer);
    c.send("<iq type='get' from='alice@a.test/r' to='corp.test' id='lost-1'><ping xmlns='urn:xmpp:ping'/></iq>");
    // The result cannot be delivered; it is a result, so it is never bounced: it is counted.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while router
        .counters()
        .replies_undeliverable
        .load(std::sync::atomic::Ordering::Relaxed)
        < 1
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the undeliverable reply was not accounted for"
        );
        std::thread::yield_now();
    }
    // The inbound stream still works and gets no error for its ping.
    c.send("</stream:stream>");
    assert!(matches!(
        c.next(),
        support::s2s_peer::Got::Close | support::s2s_peer::Got::Eof
    ));
}
