//! Presence subscriptions through the gateway with real XMPP servers and real SIPp on loopback
//! (issue 3 §2, §5): a user on Prosody (a.test) or ejabberd (b.test) ⇄ stanza-router ⇄ the
//! internal SIP side, both ways:
//! * the XMPP user subscribes to `bob@corp.test`, played by SIPp as the pool behind the
//!   router's next hop (`uas_subscribe_updates.xml`): SIPp gets the SUBSCRIBE, its 200 and
//!   NOTIFY active (PIDF) reach the client as `subscribed` and presence with show/status and
//!   the status's xml:lang; its second NOTIFY with a new status reaches it as presence; the
//!   client's `unsubscribe` becomes SUBSCRIBE Expires: 0 in the dialog, answered 200 and
//!   NOTIFY terminated; SIPp exits 0. The router probes SIPp with OPTIONS meanwhile (every
//!   second), which the scenario answers.
//! * the SIP user bob SUBSCRIBEs to the XMPP user over the router's `[sip] listen`:
//!   - played by SIPp (`uac_subscribe_dialog.xml`): the client gets `subscribe` and answers
//!     `subscribed` (while unavailable, see [`sipp_user_subscribes_to_xmpp_user`]); NOTIFY
//!     pending, active, then PIDF with the status (and its language) the client sets next,
//!     come back on SIPp's own connection; SIPp's Expires: 0 ends it with 200 and NOTIFY
//!     terminated, the client hears `unsubscribe`, SIPp exits 0, and the pool saw nothing of
//!     that dialog (OPTIONS probes at most);
//!   - played by a scripted user agent (`SipFlow`): the same dialog with the client approving
//!     while available, so that its server pushes its current presence right behind the
//!     `subscribed` (two NOTIFYs back to back, which SIPp's scenario cannot take).
//!
//! Addresses (127.0.1.x, used by no other test): one block of four per test (router + its SIP
//! listener, XMPP server, pool, SIPp UAC). Every step waits for its event with a deadline;
//! nothing sleeps.

mod support;

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use stanza_router::sip::{HeaderName, Request};
use support::c2s::{C2sClient, Stanza};
use support::gateway_world::{start_federated, XmppServer as Server};
use support::peers::Peer;
use support::router::TestRouter;
use support::sip_script::{header, text, SipFlow};
use support::sipp::{Direction, Scenario, Sipp, SippOptions};
use support::workdir::free_port;

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 1, last)
}

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(30)
}

/// The tests of this file, run against each server.
#[derive(Clone, Copy, Debug)]
enum Case {
    /// The XMPP user subscribes to SIPp (the pool).
    XmppSubscribesToSipp,
    /// SIPp subscribes to the XMPP user over the listener.
    SippSubscribesToXmpp,
    /// A scripted user agent subscribes to the XMPP user over the listener.
    ScriptedSubscribesToXmpp,
}

impl Server {
    /// First address of the block of four of `case` on this server.
    fn block(self, case: Case) -> u8 {
        let server = match self {
            Server::Prosody => 10,
            Server::Ejabberd => 30,
        };
        let case = match case {
            Case::XmppSubscribesToSipp => 0,
            Case::SippSubscribesToXmpp => 4,
            Case::ScriptedSubscribesToXmpp => 8,
        };
        server + case
    }
}

/// What plays the router's next hop.
enum Pool {
    /// The test, on the router's flows (one per shard).
    Scripted(Vec<SipFlow>),
    /// SIPp running `uas_subscribe_updates.xml`; OPTIONS probes every second.
    Sipp(Sipp),
}

/// The SIPp presentity bob: answers one subscription dialog (and any OPTIONS probe).
fn start_sipp_pool(at: Ipv4Addr) -> Sipp {
    let scenario = Scenario::File(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/sipp_scenarios/uas_subscribe_updates.xml"),
    );
    let opts = SippOptions {
        // Outlives every step's deadline; ended by `finish` (soft exit) or dropped.
        timeout: Duration::from_secs(150),
        ..SippOptions::new(at)
            // The probes are calls too: no call limit.
            .calls(0)
            .key("expires", "600")
            .key("activity", "away")
            .key("note", "Im Meeting")
            .key("note_lang", "de")
            .key("note2", "Back at my desk")
            .key("note2_lang", "en")
    };
    Sipp::uas(scenario, opts).expect("sipp pool starts")
}

/// Block `b` (from [`Server::block`]): the router at `.b` (SIP listener there too), the
/// partner server at `.b+1`, the pool at `.b+2`; `.b+3` is left for a SIPp UAC.
struct World {
    router: TestRouter,
    peer: Box<dyn Peer>,
    pool: Pool,
    sip_listen: SocketAddr,
    alice: C2sClient,
    jid: String,
    block: u8,
}

impl World {
    fn start(server: Server, case: Case) -> World {
        let b = server.block(case);
        let domain = server.domain();
        let sip_listen = SocketAddr::new(ip(b).into(), free_port(ip(b)).unwrap());
        let (sipp, listener) = match case {
            Case::ScriptedSubscribesToXmpp => {
                (None, Some(TcpListener::bind((ip(b + 2), 0)).unwrap()))
            }
            _ => (Some(start_sipp_pool(ip(b + 2))), None),
        };
        let (pool_addr, probes) = match (&sipp, &listener) {
            (Some(s), _) => (s.local_addr(), "options_interval = \"1s\"\n"),
            (None, Some(l)) => (l.local_addr().unwrap(), ""),
            (None, None) => unreachable!("one pool or the other"),
        };
        let sip = format!(
            "[sip]\nnext_hop = \"sip:{pool_addr};transport=tcp\"\nlisten = [\"{sip_listen}\"]\n{probes}"
        );
        let f = start_federated(server, ip(b), ip(b + 1), sip);
        let pool = match (sipp, listener) {
            (Some(s), _) => Pool::Sipp(s),
            (None, Some(l)) => Pool::Scripted(SipFlow::accept_all(&l, f.shards)),
            (None, None) => unreachable!("one pool or the other"),
        };
        let (router, peer, mut alice) = (f.router, f.peer, f.alice);
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
            block: b,
        }
    }

    fn sipp_pool(&mut self) -> &mut Sipp {
        match &mut self.pool {
            Pool::Sipp(s) => s,
            Pool::Scripted(_) => panic!("this test's pool is scripted"),
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

/// The SIP user bob, a scripted user agent, subscribes to the XMPP user over the router's SIP
/// listener, and follows a presence change the client makes once the subscription is active.
fn scripted_sip_user_subscribes_to_xmpp_user(server: Server) {
    let mut w = World::start(server, Case::ScriptedSubscribesToXmpp);
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
    let Pool::Scripted(flows) = &mut w.pool else {
        panic!("this test's pool is scripted")
    };
    for f in flows {
        assert!(
            f.next(Instant::now() + Duration::from_millis(200))
                .is_none(),
            "the next hop saw a request of bob's dialog"
        );
    }
}

/// The XMPP user subscribes to the SIP user bob, played by SIPp as the pool: bob's NOTIFYs
/// become presence, the client's `unsubscribe` ends the SIP dialog.
fn xmpp_user_subscribes_to_sipp_user(server: Server) {
    let mut w = World::start(server, Case::XmppSubscribesToSipp);
    let jid = w.jid.clone();
    w.alice
        .send("<presence type='subscribe' to='bob@corp.test'/>")
        .unwrap();
    w.presence_from_bob("subscribed", |s| has_type(s, "subscribed"));
    let p = w.presence_from_bob("presence with status", |s| s.attr("type").is_none());
    assert!(has_status(&p, "de", "Im Meeting"), "{}", p.xml);
    assert_eq!(p.child_text("show").as_deref(), Some("away"), "{}", p.xml);
    // SIPp's second NOTIFY, after its pause: the new status reaches the client.
    let p = w.presence_from_bob("the new status", |s| {
        s.attr("type").is_none() && s.xml.contains("Back at my desk")
    });
    assert!(has_status(&p, "en", "Back at my desk"), "{}", p.xml);
    assert!(!p.has_child("show"), "no activity, no show: {}", p.xml);
    // Unsubscribing ends the SIP subscription: SUBSCRIBE Expires: 0 in the dialog, which
    // SIPp answers 200 and ends with NOTIFY terminated.
    w.alice
        .send("<presence type='unsubscribe' to='bob@corp.test'/>")
        .unwrap();
    let Pool::Sipp(sipp) = std::mem::replace(&mut w.pool, Pool::Scripted(Vec::new())) else {
        unreachable!("this test's pool is SIPp")
    };
    let mut sipp = sipp;
    sipp.wait_for_received("the 200 to NOTIFY terminated", deadline(), |m| {
        m.status() == Some(200) && m.header("CSeq").is_some_and(|c| c == "3 NOTIFY")
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", w.peer.log_tail(60)));
    let out = sipp.finish(deadline()).expect("sipp ends");
    assert!(
        out.all_ok(),
        "{:?}\n{}\n{}",
        out.failure_reasons,
        out.diagnostics,
        out.messages
    );
    // Any OPTIONS probe sent meanwhile was answered by the scenario.
    let c = w.router.counters();
    assert_eq!(c.sip_options_failed.load(Ordering::Relaxed), 0);
    eprintln!(
        "{server:?}: {} OPTIONS probe(s) answered by SIPp alongside the dialog",
        out.received_requests("OPTIONS").len()
    );
    // What SIPp received of the dialog: the SUBSCRIBE as the gateway built it, then the
    // unsubscribe in the same dialog.
    let subs = out.received_requests("SUBSCRIBE");
    assert_eq!(subs.len(), 2, "{}", out.messages);
    let (sub, unsub) = (&subs[0], &subs[1]);
    assert!(
        sub.start_line.starts_with("SUBSCRIBE sip:bob@corp.test "),
        "{}",
        sub.start_line
    );
    assert!(
        sub.header("From")
            .is_some_and(|f| f.contains(&format!("sip:{jid}"))),
        "{:?}",
        sub.header("From")
    );
    assert_eq!(sub.header("Event"), Some("presence"));
    assert!(sub
        .header("Accept")
        .is_some_and(|a| a.contains("application/pidf+xml")));
    assert_eq!(unsub.header("Expires"), Some("0"), "{}", out.messages);
    assert_eq!(unsub.header("Call-ID"), sub.header("Call-ID"));
    assert!(
        unsub
            .header("To")
            .is_some_and(|t| t.contains(";tag=") && t.contains("SIPpTag01")),
        "in the dialog SIPp's 200 made: {:?}",
        unsub.header("To")
    );
    // The NOTIFYs SIPp sent were all accepted by the gateway.
    let notify_codes: Vec<(String, u16)> = out
        .sip_messages()
        .iter()
        .filter(|m| m.direction == Direction::Received)
        .filter(|m| m.header("CSeq").is_some_and(|c| c.ends_with("NOTIFY")))
        .filter_map(|m| Some((m.header("CSeq")?.to_owned(), m.status()?)))
        .collect();
    assert_eq!(
        notify_codes,
        vec![
            ("1 NOTIFY".to_owned(), 200),
            ("2 NOTIFY".to_owned(), 200),
            ("3 NOTIFY".to_owned(), 200)
        ]
    );
}

/// The SIP user bob, played by SIPp over the router's SIP listener, subscribes to the XMPP
/// user: the NOTIFYs (pending, active, then PIDF with the status the client sets afterwards)
/// come back on SIPp's connection; SIPp ends the subscription itself.
///
/// The client sets its status first and then approves, so its server sends that presence right
/// behind the `subscribed` (RFC 6121 §3.1.5): the gateway has NOTIFY active and the NOTIFY of
/// that presence to send back to back. SIPp aborts a dialog on a NOTIFY that arrives while it
/// still answers the previous one, so this also shows the gateway sending one NOTIFY at a
/// time per dialog (`src/gateway/notify_queue.rs`).
fn sipp_user_subscribes_to_xmpp_user(server: Server) {
    let mut w = World::start(server, Case::SippSubscribesToXmpp);
    let jid = w.jid.clone();
    let scenario = Scenario::File(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/sipp_scenarios/uac_subscribe_dialog.xml"),
    );
    let mut opts = SippOptions::new(ip(w.block + 3))
        .calls(1)
        .key("to_uri", &format!("sip:{jid}"))
        .key("from_uri", "sip:bob@corp.test")
        .key("expires", "600");
    opts.timeout = Duration::from_secs(90);
    let mut uac = Sipp::uac(scenario, w.sip_listen, opts).expect("sipp uac starts");
    w.presence_from_bob("subscribe", |s| has_type(s, "subscribe"));
    // SIPp must have answered NOTIFY pending before the next one can come.
    uac.wait_answered("NOTIFY", 1, deadline())
        .unwrap_or_else(|e| panic!("{e}\n{}", w.peer.log_tail(60)));
    w.alice
        .send("<presence><show>xa</show><status xml:lang='fr'>En vacances</status></presence>")
        .unwrap();
    w.alice
        .send("<presence type='subscribed' to='bob@corp.test'/>")
        .unwrap();
    // NOTIFY active, then the NOTIFY with that presence; then SIPp unsubscribes.
    w.presence_from_bob("unsubscribe", |s| has_type(s, "unsubscribe"));
    let out = uac.wait(deadline()).expect("sipp ends");
    assert!(
        out.all_ok(),
        "{:?}\n{}\n{}",
        out.failure_reasons,
        out.diagnostics,
        out.messages
    );
    let states: Vec<&str> = out
        .logs
        .lines()
        .filter_map(|l| l.strip_prefix("notify "))
        .map(str::trim)
        .collect();
    assert_eq!(states.len(), 4, "{}", out.logs);
    assert!(states[0].starts_with("pending;expires="), "{states:?}");
    assert!(states[1].starts_with("active;expires="), "{states:?}");
    assert!(states[2].starts_with("active;expires="), "{states:?}");
    assert!(states[3].starts_with("terminated"), "{states:?}");
    assert!(
        out.logs.contains("note <note xml:lang=\"fr\">En vacances"),
        "the status and its language reach SIPp: {}",
        out.logs
    );
    let notifies = out.received_requests("NOTIFY");
    let with_status = notifies
        .iter()
        .find(|n| n.body.contains("En vacances"))
        .expect("a NOTIFY with the status");
    assert!(
        with_status.body.contains("<basic>open</basic>"),
        "{}",
        with_status.body
    );
    assert_eq!(
        with_status.header("Content-Type"),
        Some("application/pidf+xml")
    );
    // Nothing of bob's dialog went over the next hop: the pool saw OPTIONS probes at most.
    let pool_requests: Vec<String> = parse_pool_requests(w.sipp_pool());
    assert!(
        pool_requests.iter().all(|m| m == "OPTIONS"),
        "the next hop saw a request of bob's dialog: {pool_requests:?}"
    );
}

/// Methods of the requests the SIPp pool has received so far.
fn parse_pool_requests(pool: &Sipp) -> Vec<String> {
    support::sipp::parse_trace(&pool.messages())
        .iter()
        .filter(|m| m.direction == Direction::Received)
        .filter_map(|m| m.method().map(str::to_owned))
        .collect()
}

#[test]
fn prosody_user_subscribes_to_a_sipp_user_and_sees_its_notifies_as_presence() {
    xmpp_user_subscribes_to_sipp_user(Server::Prosody);
}

#[test]
fn ejabberd_user_subscribes_to_a_sipp_user_and_sees_its_notifies_as_presence() {
    xmpp_user_subscribes_to_sipp_user(Server::Ejabberd);
}

#[test]
fn prosody_user_is_subscribed_to_by_a_sipp_user_and_its_presence_becomes_notifies() {
    sipp_user_subscribes_to_xmpp_user(Server::Prosody);
}

#[test]
fn ejabberd_user_is_subscribed_to_by_a_sipp_user_and_its_presence_becomes_notifies() {
    sipp_user_subscribes_to_xmpp_user(Server::Ejabberd);
}

#[test]
fn prosody_user_is_subscribed_to_by_a_scripted_sip_user_and_its_presence_changes_become_notifies() {
    scripted_sip_user_subscribes_to_xmpp_user(Server::Prosody);
}

#[test]
fn ejabberd_user_is_subscribed_to_by_a_scripted_sip_user_and_its_presence_changes_become_notifies()
{
    scripted_sip_user_subscribes_to_xmpp_user(Server::Ejabberd);
}
