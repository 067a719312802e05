use super::*;
use crate::sip::transport::ConnId;
use crate::sip::{HeaderName, Request};

fn ep() -> LocalEndpoint {
    LocalEndpoint {
        transport: "TCP".into(),
        host: "127.0.0.1".into(),
        port: None,
        contact: "sip:gw@127.0.0.1;transport=tcp".into(),
    }
}

fn sub_cfg() -> SubscriberConfig {
    SubscriberConfig {
        t1: Duration::from_millis(500),
        ..SubscriberConfig::default()
    }
}

fn tables(t0: Instant) -> PresenceTables {
    PresenceTables::with_parts(sub_cfg(), NotifierConfig::default(), ep(), "seed", t0)
}

fn key(partner: &str) -> SubKey {
    (partner.to_owned(), "bob@corp.test".to_owned())
}

/// A subscriber of `partner` to bob, SUBSCRIBE sent; ended at once when `ended`.
fn add_subscriber(t: &mut PresenceTables, partner: &str, ended: bool, now: Instant) {
    let k = key(partner);
    let call_id = format!("call-{partner}");
    let mut s = Subscriber::new(
        &format!("sip:{partner}"),
        "sip:bob@corp.test",
        &call_id,
        "tag",
        "br",
        ep(),
        sub_cfg(),
    );
    assert!(!s.subscribe(now).is_empty());
    if ended {
        s.unsubscribe(now);
        assert!(matches!(s.state(), SubscriberState::Terminated(_)));
    }
    t.by_call_id.insert(call_id, k.clone());
    t.last.insert(k.clone(), XmppPresence::default());
    t.subscribers.insert(k, s);
}

fn sip_subscribe(call_id: &str) -> SipMessage {
    let b = Request::builder("SUBSCRIBE", "sip:alice@a.test")
        .via("TCP", "127.0.0.9", None, "z9hG4bKx1", false)
        .max_forwards(70)
        .from(None, "sip:bob@corp.test", Some("bobtag"))
        .to(None, "sip:alice@a.test", None)
        .call_id(call_id)
        .cseq(1, "SUBSCRIBE")
        .contact("sip:bob@127.0.0.9;transport=tcp")
        .header(HeaderName::Event, "presence")
        .expires(600)
        .finish()
        .unwrap();
    SipMessage::parse(Bytes::from(b)).unwrap()
}

fn flow(conn: u64) -> ListenerFlow {
    ListenerFlow {
        shard: 1,
        conn: ConnId(conn),
    }
}

#[test]
fn empty_tables_still_wake_for_the_sweep() {
    let t0 = Instant::now();
    let t = tables(t0);
    assert_eq!(t.poll_timeout(), Some(t0 + SWEEP_EVERY));
}

#[test]
fn ended_subscriber_lingers_then_goes_with_its_last_presence() {
    let t0 = Instant::now();
    let mut t = tables(t0);
    add_subscriber(&mut t, "alice@a.test", true, t0);
    add_subscriber(&mut t, "carol@a.test", false, t0);
    let linger = Duration::from_millis(500) * 64;
    let t1 = t0 + SWEEP_EVERY;
    t.sweep(t1);
    // Seen ended now: kept for late NOTIFYs of its unsubscribe.
    assert_eq!(t.sizes().0, 2);
    assert!(t.by_call_id.contains_key("call-alice@a.test"));
    assert_eq!(t.poll_timeout(), Some(t1 + SWEEP_EVERY));
    t.sweep(t1 + linger - Duration::from_millis(1));
    assert_eq!(t.sizes().0, 2);
    t.sweep(t1 + linger);
    assert!(!t.subscribers.contains_key(&key("alice@a.test")));
    assert!(!t.last.contains_key(&key("alice@a.test")));
    assert!(!t.by_call_id.contains_key("call-alice@a.test"));
    // The live subscription keeps everything.
    assert!(t.subscribers.contains_key(&key("carol@a.test")));
    assert!(t.last.contains_key(&key("carol@a.test")));
    assert!(t.by_call_id.contains_key("call-carol@a.test"));
    assert!(t.ended_at.is_empty());
}

#[test]
fn resubscribed_pair_is_not_swept_for_its_old_end() {
    let t0 = Instant::now();
    let mut t = tables(t0);
    add_subscriber(&mut t, "alice@a.test", true, t0);
    t.sweep(t0);
    // A new subscription replaces the ended one before the linger is over.
    add_subscriber(&mut t, "alice@a.test", false, t0);
    t.sweep(t0 + Duration::from_secs(3600));
    assert!(t.subscribers.contains_key(&key("alice@a.test")));
    assert!(t.last.contains_key(&key("alice@a.test")));
}

#[test]
fn last_presence_and_index_without_a_subscriber_are_dropped() {
    let t0 = Instant::now();
    let mut t = tables(t0);
    t.last.insert(key("dave@a.test"), XmppPresence::default());
    t.by_call_id.insert("stale".into(), key("dave@a.test"));
    t.sweep(t0);
    assert_eq!(t.sizes().1, 0);
    assert!(t.by_call_id.is_empty());
}

#[test]
fn pairs_and_flows_of_gone_notifier_dialogs_are_dropped() {
    let t0 = Instant::now();
    let mut t = tables(t0);
    let evs = t
        .notifiers
        .on_subscribe(&sip_subscribe("live"), "alice@a.test", t0)
        .unwrap();
    let live = evs
        .iter()
        .find_map(|e| match e {
            NotifierEvent::AskXmpp(dk) => Some(dk.clone()),
            _ => None,
        })
        .expect("a new dialog");
    let gone = DialogKey {
        call_id: "gone".into(),
        remote_tag: "x".into(),
        local_tag: "y".into(),
    };
    let pair = (String::from("alice@a.test"), String::from("bob@corp.test"));
    let other = (String::from("erin@a.test"), String::from("bob@corp.test"));
    t.dialog_pair.insert(live.clone(), pair.clone());
    t.pair_dialog.insert(pair, live.clone());
    t.dialog_pair.insert(gone.clone(), other.clone());
    t.pair_dialog.insert(other, gone.clone());
    t.flows.insert(live.clone(), flow(1));
    t.flows.insert(gone.clone(), flow(2));
    t.sweep(t0);
    assert_eq!(t.sizes(), (0, 0, 1, 1, 1));
    assert!(t.dialog_pair.contains_key(&live) && t.flows.contains_key(&live));
    assert!(!t.dialog_pair.contains_key(&gone) && !t.flows.contains_key(&gone));
}

#[test]
fn unanswered_pending_dialog_expires_through_the_tables_timer() {
    let t0 = Instant::now();
    let cfg = NotifierConfig {
        answer_timeout: Duration::from_secs(120),
        ..NotifierConfig::default()
    };
    let mut t = PresenceTables::with_parts(sub_cfg(), cfg, ep(), "seed", t0);
    t.notifiers
        .on_subscribe(&sip_subscribe("c1"), "alice@a.test", t0)
        .unwrap();
    let due = t0 + Duration::from_secs(120);
    t.sweep(due - SWEEP_EVERY); // the sweep timer is not the earliest
    assert_eq!(t.poll_timeout(), Some(due));
    let evs = t.notifiers.handle_timeout(due);
    assert!(evs
        .iter()
        .any(|e| matches!(e, NotifierEvent::Ended(_, EndReason::Unanswered))));
    assert_eq!(t.sizes().2, 0);
}

#[test]
fn closed_flow_is_forgotten_for_every_dialog_using_it() {
    let t0 = Instant::now();
    let mut t = tables(t0);
    let dk = |c: &str| DialogKey {
        call_id: c.into(),
        remote_tag: "r".into(),
        local_tag: "l".into(),
    };
    t.flows.insert(dk("a"), flow(1));
    t.flows.insert(dk("b"), flow(1));
    t.flows.insert(dk("c"), flow(2));
    t.forget_flow(flow(1));
    assert_eq!(t.flows.len(), 1);
    assert_eq!(t.flows.get(&dk("c")), Some(&flow(2)));
}

#[test]
fn origin_names_its_listener_flow_across_shards() {
    use crate::gateway::inbound::Origin;
    assert_eq!(Origin::Listener(ConnId(7)).listener_flow(1), Some(flow(7)));
    assert_eq!(Origin::NextHop.listener_flow(1), None);
}

#[test]
fn notifier_end_to_xmpp_table() {
    let rows: &[(EndReason, Option<&str>)] = &[
        (EndReason::Unsubscribed, Some("unsubscribe")),
        (EndReason::Unanswered, Some("unsubscribe")),
        (EndReason::Rejected, None),
        (EndReason::Timeout, None),
        (
            EndReason::Failed(super::super::errors::SipFailure::Timeout),
            None,
        ),
    ];
    for (reason, want) in rows {
        assert_eq!(xmpp_type_for_notifier_end(reason), *want, "{reason:?}");
    }
}

#[test]
fn in_dialog_request_names_its_notifier_dialog() {
    let t0 = Instant::now();
    let mut t = tables(t0);
    let evs = t
        .notifiers
        .on_subscribe(&sip_subscribe("c2"), "alice@a.test", t0)
        .unwrap();
    let dk = evs
        .iter()
        .find_map(|e| match e {
            NotifierEvent::AskXmpp(dk) => Some(dk.clone()),
            _ => None,
        })
        .unwrap();
    let b = Request::builder("SUBSCRIBE", "sip:gw@127.0.0.1;transport=tcp")
        .via("TCP", "127.0.0.9", None, "z9hG4bKx2", false)
        .max_forwards(70)
        .from(None, "sip:bob@corp.test", Some("bobtag"))
        .to(None, "sip:alice@a.test", Some(&dk.local_tag))
        .call_id("c2")
        .cseq(2, "SUBSCRIBE")
        .header(HeaderName::Event, "presence")
        .expires(0)
        .finish()
        .unwrap();
    let m = SipMessage::parse(Bytes::from(b)).unwrap();
    assert_eq!(in_dialog(&m), Some(dk));
    assert_eq!(
        in_dialog(&sip_subscribe("c3")),
        None,
        "no To tag: no dialog"
    );
}
