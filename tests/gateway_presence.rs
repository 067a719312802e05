//! Presence through the gateway, both ways:
//! * a partner user subscribes to an internal user: SIP SUBSCRIBE to the pool (SIPp), whose
//!   NOTIFY comes back as `subscribed` and presence (status text with its xml:lang kept);
//! * an internal user subscribes to a partner user: a scripted pool on the next-hop flow sends
//!   SUBSCRIBE, the partner is asked with `subscribe`, its `subscribed` and presence come back as
//!   NOTIFYs (pending → active with PIDF);
//! * a `public-unverified` partner may not start a subscription (answered `unsubscribed`);
//! * an internal user's subscription made by SIPp over the router's `[sip] listen` gets its
//!   whole dialog — 200, NOTIFY pending, active, active with PIDF, and after its own
//!   `Expires: 0` the NOTIFY terminated — over SIPp's own connection, none over the next hop.
//! * two internal users on one listener connection, one owned by each shard: NOTIFYs of both
//!   dialogs come back on that connection and their responses settle them on the owning shard.

mod support;

use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use stanza_router::pki::ThrowawayCa;
use stanza_router::sip::SipMessage;
use support::dialogue::{inbound_sasl, ip, listener, outbound_sasl, partner, peer_tls};
use support::router::{RouterSetup, TestRouter};
use support::sip_script::{header as sip_header, SipFlow};
use support::sipp::{Scenario, Sipp, SippOptions};
use support::workdir::free_port;

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(30)
}

#[test]
fn partner_subscription_becomes_sip_subscribe_and_notify_becomes_presence() {
    let r = 170;
    let ca = ThrowawayCa::new("gateway CA").unwrap();
    let peer = peer_tls(&ca.issue_with(&["a.test"], false).unwrap());
    let l = listener(r + 1);
    let uas = Sipp::uas(
        Scenario::UasSubscribe,
        SippOptions::new(ip(r + 2))
            .calls(1)
            .key("note", "Im Meeting")
            .key("note_lang", "de"),
    )
    .expect("sipp uas starts");
    let mut setup = RouterSetup::new(ip(r), &ca);
    setup.partners.push(partner(
        &l,
        "type = \"federated\"\ntls = \"required\"\nsasl = \"optional\"\ndialback = true",
    ));
    setup.extra = format!(
        "[sip]\nnext_hop = \"sip:{};transport=tcp\"\n",
        uas.local_addr()
    );
    let router = TestRouter::start(setup);
    let mut c = inbound_sasl(&router, &peer);
    c.send("<presence type='subscribe' from='alice@a.test' to='bob@corp.test' id='s1'/>");
    let mut sipp = uas;
    let sub = sipp
        .wait_for_received("SUBSCRIBE", deadline(), |m| m.method() == Some("SUBSCRIBE"))
        .expect("the pool receives the SUBSCRIBE");
    assert!(
        sub.start_line.starts_with("SUBSCRIBE sip:bob@corp.test"),
        "{}",
        sub.start_line
    );
    assert_eq!(sub.header("Event"), Some("presence"));
    assert!(sub
        .header("From")
        .is_some_and(|f| f.contains("sip:alice@a.test")));
    assert!(sub
        .header("Accept")
        .is_some_and(|a| a.contains("application/pidf+xml")));
    let mut o = outbound_sasl(&l, &peer);
    let subscribed = o.expect("type='subscribed'");
    assert!(
        subscribed.contains("from='bob@corp.test'") && subscribed.contains("to='alice@a.test'"),
        "{subscribed}"
    );
    let presence = o.expect("<status");
    assert!(
        presence.contains("<presence from='bob@corp.test' to='alice@a.test'>"),
        "{presence}"
    );
    assert!(
        presence.contains("<status xml:lang='de'>Im Meeting</status>"),
        "status text and its language survive: {presence}"
    );
}

/// Router at 127.0.0.`r` whose next hop is a plain listener at `r+2` (the test plays the pool);
/// partner a.test of `partner_type` listens at `r+1`. With `sip_listen`, the router also takes
/// SIP requests at 127.0.0.`r` (the address is returned).
fn with_scripted_pool(
    r: u8,
    partner_type: &str,
    sip_listen: bool,
    sip_extra: &str,
) -> (
    TestRouter,
    support::dialogue::Peer,
    support::s2s_peer::PeerListener,
    TcpListener,
    SocketAddr,
) {
    let ca = ThrowawayCa::new("gateway CA").unwrap();
    let peer = peer_tls(&ca.issue_with(&["a.test"], false).unwrap());
    let l = listener(r + 1);
    let pool = TcpListener::bind((ip(r + 2), 0)).unwrap();
    let sip = SocketAddr::new(ip(r).into(), free_port(ip(r)).unwrap());
    let mut setup = RouterSetup::new(ip(r), &ca);
    setup.partners.push(partner(
        &l,
        &format!(
            "type = \"{partner_type}\"\ntls = \"required\"\nsasl = \"optional\"\ndialback = true"
        ),
    ));
    let listen = if sip_listen {
        format!("listen = [\"{sip}\"]\n")
    } else {
        String::new()
    };
    setup.extra = format!(
        "[sip]\nnext_hop = \"sip:{};transport=tcp\"\n{listen}{sip_extra}",
        pool.local_addr().unwrap()
    );
    let router = TestRouter::start(setup);
    (router, peer, l, pool, sip)
}

/// A partner's `subscribe` that finds the shard's SIP transaction table full waits for room, as
/// a message does, instead of being answered `unsubscribed` at once (seen under closed-loop
/// load, where the pool's 200s lag behind its deliveries).
#[test]
fn partner_subscription_waits_for_room_in_a_full_transaction_table() {
    let r = 182;
    let (router, peer, l, pool, _) = with_scripted_pool(
        r,
        "federated",
        false,
        "max_transactions = 2\noptions_interval = \"0s\"\n",
    );
    let mut flows = SipFlow::accept_all(&pool, router_shards());
    let mut c = inbound_sasl(&router, &peer);
    // Two MESSAGEs to bob fill his shard's table: the pool holds back their 200s.
    c.send("<message from='alice@a.test' to='bob@corp.test' id='m1'><body>one</body></message>");
    c.send("<message from='alice@a.test' to='bob@corp.test' id='m2'><body>two</body></message>");
    let (i, m1) = SipFlow::expect_request_any(&mut flows, "MESSAGE");
    let m2 = flows[i].expect_request("MESSAGE");
    c.send("<presence type='subscribe' from='alice@a.test' to='bob@corp.test'/>");
    assert!(
        flows[i]
            .next(Instant::now() + Duration::from_millis(300))
            .is_none(),
        "nothing is sent while the table is full"
    );
    // Room: the waiting subscription goes out.
    flows[i].answer(&m1, 200);
    flows[i].answer(&m2, 200);
    let sub = flows[i].expect_request("SUBSCRIBE");
    flows[i].accept_subscribe(&sub, "pool1", "sip:bob@127.0.0.1", 600);
    let notify = stanza_router::sip::serialize::Request::builder(
        "NOTIFY",
        sip_header(&sub, stanza_router::sip::HeaderName::Contact)
            .trim_start_matches('<')
            .trim_end_matches('>'),
    )
    .via("TCP", "127.0.0.1", None, "z9hG4bKpoolnotify1", false)
    .max_forwards(70)
    .header(
        stanza_router::sip::HeaderName::From,
        &format!(
            "{};tag=pool1",
            sip_header(&sub, stanza_router::sip::HeaderName::To)
        ),
    )
    .header(
        stanza_router::sip::HeaderName::To,
        &sip_header(&sub, stanza_router::sip::HeaderName::From),
    )
    .call_id(&sip_header(&sub, stanza_router::sip::HeaderName::CallId))
    .cseq(1, "NOTIFY")
    .header(stanza_router::sip::HeaderName::Event, "presence")
    .header(
        stanza_router::sip::HeaderName::SubscriptionState,
        "active;expires=600",
    )
    .contact("sip:bob@127.0.0.1")
    .finish()
    .unwrap();
    flows[i].send(&notify);
    flows[i].expect_response(200);
    // The partner's first answer is the grant, not a refusal.
    let mut o = outbound_sasl(&l, &peer);
    let answer = o.expect("<presence");
    assert!(
        answer.contains("type='subscribed'") && answer.contains("from='bob@corp.test'"),
        "{answer}"
    );
}

#[test]
fn public_unverified_partner_cannot_start_a_subscription() {
    let r = 174;
    let (router, peer, l, pool, _) = with_scripted_pool(r, "public-unverified", false, "");
    let mut c = inbound_sasl(&router, &peer);
    c.send("<presence type='subscribe' from='alice@a.test' to='bob@corp.test'/>");
    let mut o = outbound_sasl(&l, &peer);
    let answer = o.expect("type='unsubscribed'");
    assert!(answer.contains("from='bob@corp.test'"), "{answer}");
    // Nothing reached the pool: the shards' flows carry no SUBSCRIBE.
    let mut pool_conns = SipFlow::accept_all(&pool, router_shards());
    assert!(pool_conns.iter_mut().all(|p| p
        .next(Instant::now() + Duration::from_millis(300))
        .is_none()));
}

#[test]
fn internal_subscription_asks_the_partner_and_its_answer_and_presence_become_notifies() {
    let r = 178;
    let (router, peer, l, pool, _) = with_scripted_pool(r, "public-unverified", false, "");
    let mut flows = SipFlow::accept_all(&pool, router_shards());
    let subscribe = "SUBSCRIBE sip:alice@a.test SIP/2.0\r\n\
        Via: SIP/2.0/TCP 127.0.0.180;branch=z9hG4bKsub1\r\n\
        Max-Forwards: 70\r\n\
        From: <sip:bob@corp.test>;tag=bobtag\r\n\
        To: <sip:alice@a.test>\r\n\
        Call-ID: sub-call-1\r\n\
        CSeq: 1 SUBSCRIBE\r\n\
        Contact: <sip:bob@127.0.0.180;transport=tcp>\r\n\
        Event: presence\r\n\
        Accept: application/pidf+xml\r\n\
        Expires: 600\r\n\
        Content-Length: 0\r\n\r\n";
    flows[0].send(subscribe.as_bytes());
    let ok = flows[0].expect_response(200);
    let to = String::from_utf8_lossy(ok.header(stanza_router::sip::HeaderName::To).unwrap())
        .into_owned();
    assert!(to.contains(";tag="), "the 200 creates the dialog: {to}");
    // NOTIFYs come on the flow of the shard owning bob, which may be another one.
    let (i, pending) = SipFlow::expect_request_any(&mut flows, "NOTIFY");
    assert!(header(&pending, "Subscription-State").starts_with("pending"));
    flows[i].answer(&pending, 200);
    // The partner is asked.
    let mut o = outbound_sasl(&l, &peer);
    let ask = o.expect("type='subscribe'");
    assert!(
        ask.contains("from='bob@corp.test'") && ask.contains("to='alice@a.test'"),
        "{ask}"
    );
    // The partner user approves and tells its presence; bob asked first, so the
    // public-unverified partner may answer.
    let mut c = inbound_sasl(&router, &peer);
    c.send("<presence type='subscribed' from='alice@a.test' to='bob@corp.test'/>");
    let (i, active) = SipFlow::expect_request_any(&mut flows, "NOTIFY");
    assert!(header(&active, "Subscription-State").starts_with("active"));
    flows[i].answer(&active, 200);
    c.send(
        "<presence from='alice@a.test/home' to='bob@corp.test'><show>away</show>\
         <status xml:lang='fr'>En réunion</status></presence>",
    );
    let (i, notify) = SipFlow::expect_request_any(&mut flows, "NOTIFY");
    flows[i].answer(&notify, 200);
    let body = String::from_utf8_lossy(&notify.body()).into_owned();
    assert!(body.contains("<basic>open</basic>"), "{body}");
    assert!(body.contains("xml:lang=\"fr\""), "{body}");
    assert!(body.contains("En réunion"), "{body}");
}

#[test]
fn sipp_subscription_over_the_listener_gets_its_notifies_on_its_own_connection() {
    let r = 240;
    let (router, peer, l, pool, sip) = with_scripted_pool(r, "federated", true, "");
    let mut flows = SipFlow::accept_all(&pool, router_shards());
    let scenario = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sipp_scenarios/uac_subscribe_dialog.xml");
    let mut opts = SippOptions::new(ip(r + 3))
        .calls(1)
        .key("to_uri", "sip:alice@a.test")
        .key("from_uri", "sip:bob@corp.test")
        .key("expires", "600");
    opts.timeout = Duration::from_secs(30);
    let mut uac = Sipp::uac(Scenario::File(scenario), sip, opts).expect("sipp uac starts");
    // SIPp treats a NOTIFY arriving while it is still answering the previous one as
    // unexpected: each step below waits until SIPp has answered the NOTIFY before.
    // The partner user is asked; it approves and tells its presence.
    let mut o = outbound_sasl(&l, &peer);
    let ask = o.expect("type='subscribe'");
    assert!(
        ask.contains("from='bob@corp.test'") && ask.contains("to='alice@a.test'"),
        "{ask}"
    );
    let mut c = inbound_sasl(&router, &peer);
    uac.wait_answered("NOTIFY", 1, deadline()).unwrap();
    c.send("<presence type='subscribed' from='alice@a.test' to='bob@corp.test'/>");
    uac.wait_answered("NOTIFY", 2, deadline()).unwrap();
    c.send(
        "<presence from='alice@a.test/home' to='bob@corp.test'><show>dnd</show>\
         <status xml:lang='de'>Im Meeting</status></presence>",
    );
    // SIPp ends the subscription itself: the partner hears `unsubscribe`.
    let unsub = o.expect("type='unsubscribe'");
    assert!(unsub.contains("from='bob@corp.test'"), "{unsub}");
    let out = uac.wait(deadline()).expect("sipp ends");
    assert!(out.all_ok(), "{}\n{}", out.diagnostics, out.messages);
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
        out.logs.contains("note <note xml:lang=\"de\">Im Meeting"),
        "the status and its language reach SIPp: {}",
        out.logs
    );
    // Nothing of that dialog went over the next hop.
    assert!(flows.iter_mut().all(|p| p
        .next(Instant::now() + Duration::from_millis(300))
        .is_none()));
}

/// Two internal users on one listener connection, one owned by each shard: whichever shard
/// accepted the connection, one dialog is run by the other shard, whose NOTIFYs must still come
/// back on that connection (through the shard holding it) and whose responses must reach it.
#[test]
fn listener_dialogs_of_users_on_either_shard_get_their_notifies_on_that_connection() {
    use stanza_router::runtime::placement::user_shard;
    let r = 250;
    let (router, peer, l, pool, sip) = with_scripted_pool(r, "federated", true, "");
    let mut flows = SipFlow::accept_all(&pool, router_shards());
    let users: Vec<String> = {
        let first = (0..)
            .map(|i| format!("user{i}"))
            .find(|u| user_shard(&format!("{u}@corp.test"), router_shards()) == 0);
        let second = (0..)
            .map(|i| format!("user{i}"))
            .find(|u| user_shard(&format!("{u}@corp.test"), router_shards()) == 1);
        vec![first.unwrap(), second.unwrap()]
    };
    let mut ua = SipFlow::connect(sip);
    let me = ua.local_addr();
    for (n, u) in users.iter().enumerate() {
        let req = stanza_router::sip::Request::builder("SUBSCRIBE", "sip:alice@a.test")
            .via(
                "TCP",
                &me.ip().to_string(),
                Some(me.port()),
                &format!("z9hG4bKu{n}"),
                false,
            )
            .max_forwards(70)
            .from(
                None,
                &format!("sip:{u}@corp.test"),
                Some(&format!("tag{n}")),
            )
            .to(None, "sip:alice@a.test", None)
            .call_id(&format!("call-{n}"))
            .cseq(1, "SUBSCRIBE")
            .contact(&format!("sip:{u}@{me};transport=tcp"))
            .header(stanza_router::sip::HeaderName::Event, "presence")
            .expires(600)
            .finish()
            .unwrap();
        ua.send(&req);
    }
    // Per dialog: the 200, then NOTIFY pending (dialogs may interleave).
    let mut states: Vec<(String, String)> = Vec::new();
    let mut oks = 0;
    while oks < 2 || states.len() < 2 {
        let m = ua
            .next(deadline())
            .expect("the router answers on the connection");
        match m.status() {
            Some(code) => {
                assert_eq!(code, 200, "{}", String::from_utf8_lossy(&m.bytes()));
                oks += 1;
            }
            None => {
                assert_eq!(m.method(), Some("NOTIFY"));
                ua.answer(&m, 200);
                let state = sip_header(&m, stanza_router::sip::HeaderName::SubscriptionState);
                states.push((m.call_id().unwrap().to_owned(), state));
            }
        }
    }
    assert!(
        states.iter().all(|(_, s)| s.starts_with("pending")),
        "{states:?}"
    );
    // The partner is asked for both and approves both.
    let mut o = outbound_sasl(&l, &peer);
    let mut c = inbound_sasl(&router, &peer);
    for u in &users {
        let ask = o.expect("type='subscribe'");
        assert!(ask.contains("to='alice@a.test'"), "{ask}");
        c.send(&format!(
            "<presence type='subscribed' from='alice@a.test' to='{u}@corp.test'/>"
        ));
    }
    let mut active = Vec::new();
    while active.len() < 2 {
        let m = ua.expect_request("NOTIFY");
        ua.answer(&m, 200);
        let state = sip_header(&m, stanza_router::sip::HeaderName::SubscriptionState);
        assert!(state.starts_with("active"), "{state}");
        active.push(m.call_id().unwrap().to_owned());
    }
    active.sort();
    assert_eq!(active, vec!["call-0".to_owned(), "call-1".to_owned()]);
    // The NOTIFY transactions ended with our 200s, on whichever shard: no retransmission or
    // failure reached the next hop.
    assert!(flows.iter_mut().all(|p| p
        .next(Instant::now() + Duration::from_millis(300))
        .is_none()));
}

fn header(m: &SipMessage, name: &str) -> String {
    m.headers()
        .find(|h| h.raw_name.eq_ignore_ascii_case(name.as_bytes()))
        .map(|h| String::from_utf8_lossy(h.value).into_owned())
        .unwrap_or_default()
}

fn router_shards() -> usize {
    2
}
