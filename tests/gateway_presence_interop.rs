//! Presence subscriptions through the gateway with real XMPP servers on loopback (issue 3 §2,
//! §5): a user on Prosody or ejabberd ⇄ stanza-router ⇄ the internal SIP side, played by the
//! test (the pool behind the router's next hop, and an internal user agent on its
//! `[sip] listen`), both ways:
//! * the XMPP user subscribes to `bob@corp.test`: SIP SUBSCRIBE at the pool, whose 200 and
//!   NOTIFY active (PIDF) reach the client as `subscribed` and presence with show/status and
//!   the status's xml:lang; a later NOTIFY with a new status reaches it as presence; its
//!   `unsubscribe` becomes SUBSCRIBE Expires: 0, ended by the pool's NOTIFY terminated;
//! * the SIP user bob SUBSCRIBEs to the XMPP user over the listener: the client gets
//!   `subscribe`, answers `subscribed`; the NOTIFYs (pending, active, then PIDF with the
//!   client's show/status) come back on bob's own connection; bob's Expires: 0 ends it with
//!   NOTIFY terminated and the client hears `unsubscribe`.
//!
//! Every step waits for its event with a deadline; nothing sleeps.

mod support;

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use stanza_router::pki::ThrowawayCa;
use stanza_router::sip::{HeaderName, Request, SipMessage};
use support::c2s::{C2sClient, Stanza};
use support::peers::{Ejabberd, HarnessError, Peer, PeerOptions, Prosody};
use support::router::{PartnerEntry, RouterSetup, TestRouter};
use support::sip_script::{header, pidf, text, SipFlow};
use support::workdir::free_port;

fn started<T>(what: &str, r: Result<T, HarnessError>) -> T {
    r.unwrap_or_else(|e| panic!("{what} did not start: {e}"))
}

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, last)
}

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(30)
}

/// Which real server hosts the XMPP user.
#[derive(Clone, Copy)]
enum Server {
    Prosody,
    Ejabberd,
}

/// The router at `.r` (SIP listener there too), the partner server at `.r+1` for `domain`,
/// the pool (the router's next hop, played by the test) at `.r+2`.
struct World {
    router: TestRouter,
    peer: Box<dyn Peer>,
    pool: Vec<SipFlow>,
    sip_listen: SocketAddr,
    alice: C2sClient,
    jid: String,
}

impl World {
    fn start(server: Server, r: u8, domain: &str) -> World {
        let ca = ThrowawayCa::new("interop CA").unwrap();
        let peer_ip = ip(r + 1);
        let opts = PeerOptions {
            domain: domain.into(),
            ip: peer_ip,
            s2s_port: free_port(peer_ip).unwrap(),
            s2s_tls_port: None,
            c2s_port: free_port(peer_ip).unwrap(),
            // DNS-ID only: ejabberd 23.01 crashes on XmppAddr SANs (tests/support/README.md).
            cert: ca.issue_with(&[domain], false).unwrap(),
            trust_ca_pem: Some(ca.cert_pem()),
            routes: Vec::new(),
            require_encryption: true,
            stanza_size_limit: None,
            users: vec![("alice".into(), "alicepw".into())],
        };
        let pool = TcpListener::bind((ip(r + 2), 0)).unwrap();
        let sip_listen = SocketAddr::new(ip(r).into(), free_port(ip(r)).unwrap());
        let mut setup = RouterSetup::new(ip(r), &ca);
        setup.partners.push(PartnerEntry {
            domain: domain.into(),
            toml: format!(
                "type = \"federated\"\ntls = \"required\"\nsasl = \"optional\"\n\
                 dialback = true\nproxy_fqdn = \"{}\"",
                opts.s2s_addr()
            ),
        });
        setup.extra = format!(
            "[sip]\nnext_hop = \"sip:{};transport=tcp\"\nlisten = [\"{sip_listen}\"]\n",
            pool.local_addr().unwrap()
        );
        let shards = setup.shards;
        let router = TestRouter::start(setup);
        let pool = SipFlow::accept_all(&pool, shards);
        let mut opts = opts;
        opts.routes = vec![("corp.test".into(), router.s2s)];
        let peer: Box<dyn Peer> = match server {
            Server::Prosody => Box::new(started("prosody", Prosody::start(opts))),
            Server::Ejabberd => Box::new(started("ejabberd", Ejabberd::start(opts))),
        };
        let mut alice = C2sClient::login(peer.c2s_addr(), domain, "alice", "alicepw", "t")
            .unwrap_or_else(|e| panic!("login: {e}\n{}", peer.log_tail(40)));
        // An "interested resource" (RFC 6121 §2.1.6): Prosody delivers subscription stanzas
        // other than `subscribe` only to resources that asked for the roster.
        alice
            .send("<iq type='get' id='roster1'><query xmlns='jabber:iq:roster'/></iq>")
            .unwrap();
        alice
            .recv_until(
                |s| s.name() == "iq" && s.attr("id") == Some("roster1"),
                deadline(),
            )
            .unwrap_or_else(|e| panic!("roster: {e}\n{}", peer.log_tail(40)));
        World {
            router,
            peer,
            pool,
            sip_listen,
            alice,
            jid: format!("alice@{domain}"),
        }
    }

    /// The next presence from `bob@corp.test` that `pred` accepts (others are kept).
    fn presence_from_bob(&mut self, what: &str, pred: impl Fn(&Stanza) -> bool) -> Stanza {
        let got = self.alice.recv_until(
            |s| s.name() == "presence" && s.sender_bare() == Some("bob@corp.test") && pred(s),
            deadline(),
        );
        got.unwrap_or_else(|e| panic!("{what}: {e}\n{}", self.peer.log_tail(60)))
    }
}

fn has_type(s: &Stanza, t: &str) -> bool {
    s.attr("type") == Some(t)
}

/// The element carries `<status xml:lang='lang'>text</status>` (either quote style).
fn has_status(s: &Stanza, lang: &str, text: &str) -> bool {
    let single = format!("xml:lang='{lang}'>{text}</status>");
    let double = format!("xml:lang=\"{lang}\">{text}</status>");
    s.xml.contains(&single) || s.xml.contains(&double)
}

/// A NOTIFY from the pool in the dialog of `sub` (the router's SUBSCRIBE, answered with
/// `tag`).
fn pool_notify(sub: &SipMessage, tag: &str, cseq: u32, state: &str, body: Option<&str>) -> Vec<u8> {
    let target = sub
        .contacts()
        .next()
        .and_then(Result::ok)
        .map(|c| c.uri.to_owned())
        .unwrap_or_else(|| sub.from().unwrap().uri.to_owned());
    let b = Request::builder("NOTIFY", &target)
        .via(
            "TCP",
            "127.0.0.1",
            None,
            &format!("z9hG4bKpool{cseq}"),
            false,
        )
        .max_forwards(70)
        .header(
            HeaderName::From,
            &format!("{};tag={tag}", header(sub, HeaderName::To)),
        )
        .header(HeaderName::To, &header(sub, HeaderName::From))
        .call_id(sub.call_id().unwrap())
        .cseq(cseq, "NOTIFY")
        .contact("sip:bob@127.0.0.1;transport=tcp")
        .header(HeaderName::Event, "presence")
        .header(HeaderName::SubscriptionState, state);
    match body {
        Some(p) => b.body("application/pidf+xml", p.as_bytes()).unwrap(),
        None => b.finish().unwrap(),
    }
}

/// (a) The XMPP user subscribes to the SIP user bob; bob's NOTIFYs become presence.
fn xmpp_user_subscribes_to_sip_user(server: Server, r: u8, domain: &str) {
    let mut w = World::start(server, r, domain);
    let jid = w.jid.clone();
    w.alice
        .send("<presence type='subscribe' to='bob@corp.test'/>")
        .unwrap();
    let (i, sub) = SipFlow::expect_request_any(&mut w.pool, "SUBSCRIBE");
    assert!(
        sub.request_uri() == Some("sip:bob@corp.test"),
        "{}",
        text(&sub)
    );
    assert!(
        header(&sub, HeaderName::From).contains(&format!("sip:{jid}")),
        "{}",
        text(&sub)
    );
    assert_eq!(header(&sub, HeaderName::Event), "presence");
    let pool = &mut w.pool[i];
    pool.accept_subscribe(&sub, "pooltag", "sip:bob@127.0.0.1;transport=tcp", 600);
    let doc = pidf("sip:bob@corp.test", Some("away"), "de", "Im Meeting");
    pool.send(&pool_notify(
        &sub,
        "pooltag",
        1,
        "active;expires=600",
        Some(&doc),
    ));
    pool.expect_response(200);
    w.presence_from_bob("subscribed", |s| has_type(s, "subscribed"));
    let p = w.presence_from_bob("presence with status", |s| s.attr("type").is_none());
    assert!(has_status(&p, "de", "Im Meeting"), "{}", p.xml);
    assert_eq!(p.child_text("show").as_deref(), Some("away"), "{}", p.xml);
    // A new status on the SIP side reaches the client.
    let doc = pidf("sip:bob@corp.test", None, "en", "Back at my desk");
    let pool = &mut w.pool[i];
    pool.send(&pool_notify(
        &sub,
        "pooltag",
        2,
        "active;expires=590",
        Some(&doc),
    ));
    pool.expect_response(200);
    let p = w.presence_from_bob("the new status", |s| {
        s.attr("type").is_none() && s.xml.contains("Back at my desk")
    });
    assert!(has_status(&p, "en", "Back at my desk"), "{}", p.xml);
    assert!(!p.has_child("show"), "no activity, no show: {}", p.xml);
    // Unsubscribing ends the SIP subscription: SUBSCRIBE Expires: 0 in the dialog.
    w.alice
        .send("<presence type='unsubscribe' to='bob@corp.test'/>")
        .unwrap();
    let (j, unsub) = SipFlow::expect_request_any(&mut w.pool, "SUBSCRIBE");
    assert_eq!(unsub.expires(), Ok(0), "{}", text(&unsub));
    assert_eq!(unsub.call_id(), sub.call_id());
    assert_eq!(
        unsub.to().ok().and_then(|t| t.tag()),
        Some("pooltag"),
        "in the dialog: {}",
        text(&unsub)
    );
    let pool = &mut w.pool[j];
    pool.answer(&unsub, 200);
    pool.send(&pool_notify(&sub, "pooltag", 3, "terminated", None));
    pool.expect_response(200);
    drop(w.router);
}

/// (b) The SIP user bob subscribes to the XMPP user over the router's SIP listener.
fn sip_user_subscribes_to_xmpp_user(server: Server, r: u8, domain: &str) {
    let mut w = World::start(server, r, domain);
    let jid = w.jid.clone();
    let mut bob = SipFlow::connect(w.sip_listen);
    let me = bob.local_addr();
    let contact = format!("sip:bob@{me};transport=tcp");
    let subscribe = |cseq: u32, uri: &str, to_tag: Option<&str>, expires: u32| {
        Request::builder("SUBSCRIBE", uri)
            .via(
                "TCP",
                &me.ip().to_string(),
                Some(me.port()),
                &format!("z9hG4bKbob{cseq}"),
                false,
            )
            .max_forwards(70)
            .from(None, "sip:bob@corp.test", Some("bobtag"))
            .to(None, &format!("sip:{jid}"), to_tag)
            .call_id("bob-sub-1")
            .cseq(cseq, "SUBSCRIBE")
            .contact(&contact)
            .header(HeaderName::Event, "presence")
            .header(HeaderName::Accept, "application/pidf+xml")
            .expires(expires)
            .finish()
            .unwrap()
    };
    bob.send(&subscribe(1, &format!("sip:{jid}"), None, 600));
    let ok = bob.expect_response(200);
    let to_tag = ok
        .to()
        .unwrap()
        .tag()
        .expect("the 200 creates the dialog")
        .to_owned();
    let gw_contact = ok
        .contacts()
        .next()
        .and_then(Result::ok)
        .expect("Contact in the 2xx")
        .uri
        .to_owned();
    // NOTIFYs come on bob's own connection.
    let pending = bob.expect_request("NOTIFY");
    assert!(
        header(&pending, HeaderName::SubscriptionState).starts_with("pending"),
        "{}",
        text(&pending)
    );
    bob.answer(&pending, 200);
    w.presence_from_bob("subscribe", |s| has_type(s, "subscribe"));
    w.alice
        .send("<presence type='subscribed' to='bob@corp.test'/>")
        .unwrap();
    let active = bob.expect_request("NOTIFY");
    assert!(
        header(&active, HeaderName::SubscriptionState).starts_with("active"),
        "{}",
        text(&active)
    );
    bob.answer(&active, 200);
    w.alice
        .send("<presence><show>xa</show><status xml:lang='fr'>En vacances</status></presence>")
        .unwrap();
    // The server may first send the client's earlier presence to its new contact: every
    // NOTIFY is answered until the one carrying the new status.
    let until = deadline();
    let notify = loop {
        let n = bob.expect_request("NOTIFY");
        bob.answer(&n, 200);
        assert!(
            header(&n, HeaderName::SubscriptionState).starts_with("active"),
            "{}",
            text(&n)
        );
        if String::from_utf8_lossy(&n.body()).contains("En vacances") {
            break n;
        }
        assert!(Instant::now() < until, "no NOTIFY with the new status");
    };
    let body = String::from_utf8_lossy(&notify.body()).into_owned();
    assert!(body.contains("<basic>open</basic>"), "{body}");
    assert!(body.contains("xml:lang=\"fr\""), "{body}");
    assert_eq!(
        header(&notify, HeaderName::ContentType),
        "application/pidf+xml"
    );
    // bob ends it in the dialog, addressed to the gateway's Contact.
    bob.send(&subscribe(2, &gw_contact, Some(&to_tag), 0));
    bob.expect_response(200);
    let end = bob.expect_request("NOTIFY");
    assert!(
        header(&end, HeaderName::SubscriptionState).starts_with("terminated"),
        "{}",
        text(&end)
    );
    bob.answer(&end, 200);
    w.presence_from_bob("unsubscribe", |s| has_type(s, "unsubscribe"));
    // Nothing of bob's dialog went over the next hop.
    for f in &mut w.pool {
        assert!(
            f.next(Instant::now() + Duration::from_millis(200))
                .is_none(),
            "the next hop saw a request of bob's dialog"
        );
    }
}

#[test]
fn ejabberd_user_subscribes_to_a_sip_user_and_sees_its_notifies_as_presence() {
    xmpp_user_subscribes_to_sip_user(Server::Ejabberd, 244, "b.test");
}

#[test]
fn prosody_user_is_subscribed_to_by_a_sip_user_and_its_presence_becomes_notifies() {
    sip_user_subscribes_to_xmpp_user(Server::Prosody, 247, "a.test");
}

#[test]
fn prosody_user_subscribes_to_a_sip_user_and_sees_its_notifies_as_presence() {
    xmpp_user_subscribes_to_sip_user(Server::Prosody, 244, "a.test");
}

#[test]
fn ejabberd_user_is_subscribed_to_by_a_sip_user_and_its_presence_becomes_notifies() {
    sip_user_subscribes_to_xmpp_user(Server::Ejabberd, 247, "b.test");
}
