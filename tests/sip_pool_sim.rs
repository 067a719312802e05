//! The simulated SIP pool (`stanza_router::sim`) against plain TcpStream peers playing the
//! router: answers by plan, SUBSCRIBE → 200 + NOTIFY, CRLF keepalive, malformed input, and the
//! source side (`send_messages`, `subscribe`) against in-test listeners.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use stanza_router::sim::{AnswerPlan, PoolConfig, SendPlan, SipPool};
use stanza_router::sip::framer::{Framed, SipFramer};
use stanza_router::sip::headers::HeaderName;
use stanza_router::sip::message::SipMessage;
use stanza_router::sip::transaction::response_to;

const DEADLINE: Duration = Duration::from_secs(10);

fn pool(plan: AnswerPlan) -> SipPool {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut cfg = PoolConfig::new(listener, "corp.test");
    cfg.answers = plan;
    cfg.samples = 4;
    SipPool::start(cfg).unwrap()
}

/// A framed SIP connection with a bounded blocking read.
struct Peer {
    stream: TcpStream,
    framer: SipFramer,
}

impl Peer {
    fn connect(addr: SocketAddr) -> Peer {
        Peer::over(TcpStream::connect(addr).unwrap())
    }

    fn over(stream: TcpStream) -> Peer {
        stream
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        Peer {
            stream,
            framer: SipFramer::default(),
        }
    }

    fn send(&mut self, b: &[u8]) {
        self.stream.write_all(b).unwrap();
    }

    /// The next item, or `None` when the peer closed; panics at the deadline.
    fn next(&mut self) -> Option<Framed> {
        let end = Instant::now() + DEADLINE;
        let mut buf = [0u8; 8192];
        loop {
            if let Some(item) = self.framer.poll() {
                return Some(item.unwrap());
            }
            assert!(Instant::now() < end, "nothing arrived before the deadline");
            match self.stream.read(&mut buf) {
                Ok(0) => return None,
                Ok(n) => self.framer.feed(&buf[..n]).unwrap(),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
                Err(_) => {}
            }
        }
    }

    fn next_message(&mut self) -> SipMessage {
        loop {
            match self.next() {
                Some(Framed::Message(m)) => return m,
                Some(_) => {}
                None => panic!("connection closed while a message was expected"),
            }
        }
    }

    /// Ping, then wait for the pong: everything sent before has been handled by the pool.
    fn sync(&mut self) {
        self.send(b"\r\n\r\n");
        match self.next() {
            // A pong right behind an earlier one that was already reported reads as a
            // double CRLF (see `Framed::Pong`): it is our pong too.
            Some(Framed::Pong | Framed::Ping) => {}
            Some(Framed::Message(m)) => panic!("unexpected message {:?}", m.bytes()),
            None => panic!("closed during sync"),
        }
    }
}

fn request(method: &str, n: u32, extra: &str) -> String {
    format!(
        "{method} sip:bob@corp.test SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bKr{n}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:alice@partner.test>;tag=a{n}\r\nTo: <sip:bob@corp.test>\r\n\
         Call-ID: call{n}@partner.test\r\nCSeq: 1 {method}\r\n{extra}Content-Length: 0\r\n\r\n"
    )
}

fn message(n: u32) -> String {
    format!(
        "MESSAGE sip:bob@corp.test SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bKm{n}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:alice@partner.test>;tag=a{n}\r\nTo: <sip:bob@corp.test>\r\n\
         Call-ID: msg{n}@partner.test\r\nCSeq: 1 MESSAGE\r\nContent-Type: text/plain\r\n\
         Content-Length: 5\r\n\r\nhello"
    )
}

#[test]
fn answers_messages_by_plan_with_every_nth_error() {
    let pool = pool(AnswerPlan {
        error_every: Some((2, 486)),
        ..AnswerPlan::default()
    });
    let mut router = Peer::connect(pool.local_addr());
    let mut codes = Vec::new();
    for n in 1..=4 {
        router.send(message(n).as_bytes());
        let r = router.next_message();
        assert_eq!(r.call_id(), Ok(format!("msg{n}@partner.test").as_str()));
        assert!(
            r.to().unwrap().tag().is_some(),
            "final response carries a To-tag"
        );
        codes.push(r.status().unwrap());
    }
    assert_eq!(codes, [200, 486, 200, 486]);
    let stats = pool.stats();
    assert_eq!(stats.messages_received, 4);
    assert_eq!(stats.messages_answered.get(&200), Some(&2));
    assert_eq!(stats.messages_answered.get(&486), Some(&2));
    let samples = pool.samples();
    assert_eq!(samples.len(), 4);
    assert!(samples[0].starts_with("MESSAGE sip:bob@corp.test"));
    pool.stop();
}

#[test]
fn silent_plan_leaves_the_chosen_message_unanswered() {
    let pool = pool(AnswerPlan {
        silent_every: Some(2),
        ..AnswerPlan::default()
    });
    let mut router = Peer::connect(pool.local_addr());
    router.send(message(1).as_bytes());
    router.send(message(2).as_bytes());
    router.send(message(3).as_bytes());
    // Handled in order on one connection: the answers to 1 and 3 arrive, 2 gets none.
    let a = router.next_message();
    let b = router.next_message();
    assert_eq!(a.call_id(), Ok("msg1@partner.test"));
    assert_eq!(b.call_id(), Ok("msg3@partner.test"));
    router.sync();
    assert_eq!(pool.stats().messages_silenced, 1);
    pool.stop();
}

#[test]
fn subscribe_gets_200_then_a_notify_with_open_pidf_whose_answer_is_counted() {
    let pool = pool(AnswerPlan::default());
    let mut router = Peer::connect(pool.local_addr());
    router.send(
        request(
            "SUBSCRIBE",
            1,
            "Contact: <sip:gw@127.0.0.1:5060;transport=tcp>\r\nEvent: presence\r\n\
             Accept: application/pidf+xml\r\nExpires: 300\r\n",
        )
        .as_bytes(),
    );
    let ok = router.next_message();
    assert_eq!(ok.status(), Some(200));
    assert_eq!(ok.expires(), Ok(300));
    assert!(ok.contacts().next().is_some());
    let to_tag = ok.to().unwrap().tag().unwrap().to_string();
    let notify = router.next_message();
    notify.validate().unwrap();
    assert_eq!(notify.method(), Some("NOTIFY"));
    assert_eq!(notify.call_id(), Ok("call1@partner.test"));
    assert_eq!(notify.from().unwrap().tag(), Some(to_tag.as_str()));
    assert_eq!(notify.event().unwrap().token, "presence");
    let ss = notify.subscription_state().unwrap();
    assert!(ss.is_active());
    assert_eq!(ss.expires, Some(300));
    assert!(notify.content_type().unwrap().is("application", "pidf+xml"));
    assert!(String::from_utf8_lossy(&notify.body()).contains("<basic>open</basic>"));
    router.send(
        &response_to(&notify, 200, "OK", None)
            .unwrap()
            .finish()
            .unwrap(),
    );
    router.sync();
    let stats = pool.stats();
    assert_eq!(stats.subscribes.initial, 1);
    assert_eq!(stats.notifies_sent, 1);
    assert_eq!(stats.notify_responses.get(&200), Some(&1));
    assert_eq!(stats.stray_responses, 0);

    // Refresh (To-tag) and unsubscribe (Expires: 0) are told apart.
    let refresh = request("SUBSCRIBE", 1, "Event: presence\r\nExpires: 300\r\n")
        .replace("CSeq: 1", "CSeq: 2")
        .replace(
            "To: <sip:bob@corp.test>",
            &format!("To: <sip:bob@corp.test>;tag={to_tag}"),
        );
    router.send(refresh.as_bytes());
    assert_eq!(router.next_message().status(), Some(200));
    router.next_message(); // its NOTIFY, left unanswered
    let unsub = refresh
        .replace("CSeq: 2", "CSeq: 3")
        .replace("Expires: 300", "Expires: 0");
    router.send(unsub.as_bytes());
    assert_eq!(router.next_message().status(), Some(200));
    let last = router.next_message();
    assert!(last.subscription_state().unwrap().is_terminated());
    router.sync();
    let s = pool.stats().subscribes;
    assert_eq!((s.initial, s.refresh, s.unsubscribe), (1, 1, 1));
    pool.stop();
}

#[test]
fn notify_options_and_other_methods_are_answered() {
    let pool = pool(AnswerPlan::default());
    let mut router = Peer::connect(pool.local_addr());
    router.send(
        request(
            "NOTIFY",
            1,
            "Event: presence\r\nSubscription-State: active;expires=60\r\n",
        )
        .as_bytes(),
    );
    assert_eq!(router.next_message().status(), Some(200));
    router.send(request("OPTIONS", 2, "").as_bytes());
    let opt = router.next_message();
    assert_eq!(opt.status(), Some(200));
    assert!(opt.header(HeaderName::Allow).is_some());
    router.send(request("INFO", 3, "").as_bytes());
    assert_eq!(router.next_message().status(), Some(405));
    router.send(request("FROBNICATE", 4, "").as_bytes());
    assert_eq!(router.next_message().status(), Some(501));
    router.sync();
    let stats = pool.stats();
    assert_eq!((stats.notifies_received, stats.options_received), (1, 1));
    assert_eq!(stats.other_requests.get("INFO"), Some(&1));
    assert_eq!(stats.crlf_pings, 1);
    pool.stop();
}

#[test]
fn crlf_ping_gets_a_pong() {
    let pool = pool(AnswerPlan::default());
    let mut router = Peer::connect(pool.local_addr());
    router.sync();
    router.sync();
    assert_eq!(pool.stats().crlf_pings, 2);
    pool.stop();
}

#[test]
fn request_without_content_length_gets_400_then_close() {
    let pool = pool(AnswerPlan::default());
    let mut router = Peer::connect(pool.local_addr());
    let bad = message(1).replace("Content-Length: 5\r\n", "");
    router.send(bad.as_bytes());
    let r = router.next_message();
    assert_eq!(r.status(), Some(400));
    assert!(router.next().is_none(), "connection closed after the 400");
    let stats = pool.stats();
    assert_eq!((stats.malformed, stats.malformed_answered), (1, 1));
    pool.stop();
}

#[test]
fn garbage_closes_the_connection() {
    let pool = pool(AnswerPlan::default());
    let mut router = Peer::connect(pool.local_addr());
    router.send(b"\x16\x03\x01 this is not SIP\r\n\r\n");
    assert!(router.next().is_none());
    assert_eq!(pool.stats().malformed, 1);
    // The pool still serves other connections.
    let mut again = Peer::connect(pool.local_addr());
    again.send(message(9).as_bytes());
    assert_eq!(again.next_message().status(), Some(200));
    pool.stop();
}

/// An in-test router that answers MESSAGEs 200, except the ones `skip` picks, until closed.
fn fake_router(skip: fn(u32) -> bool) -> (SocketAddr, thread::JoinHandle<u32>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let h = thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        let mut peer = Peer::over(s);
        let mut n = 0;
        while let Some(item) = peer.next() {
            if let Framed::Message(m) = item {
                n += 1;
                if !skip(n) {
                    peer.send(
                        &response_to(&m, 200, "OK", Some("r"))
                            .unwrap()
                            .finish()
                            .unwrap(),
                    );
                }
            }
        }
        n
    });
    (addr, h)
}

#[test]
fn send_messages_counts_every_final_response_with_latency() {
    let pool = pool(AnswerPlan::default());
    let (addr, router) = fake_router(|_| false);
    let mut plan = SendPlan::new("bob", "sip:alice@partner.test", 50);
    plan.window = 8;
    let report = pool.send_messages(addr, plan).unwrap();
    assert_eq!(report.sent, 50);
    assert_eq!(report.by_status.get(&200), Some(&50));
    assert_eq!((report.missing, report.not_sent, report.stray), (0, 0, 0));
    assert_eq!(report.latencies_us.len(), 50);
    assert!(report.ended_by.is_none());
    pool.stop(); // closes the client connection: the fake router ends
    assert_eq!(router.join().unwrap(), 50);
}

#[test]
fn send_messages_reports_an_unanswered_message_as_missing() {
    let pool = pool(AnswerPlan::default());
    let (addr, router) = fake_router(|n| n == 3);
    let mut plan = SendPlan::new("bob", "sip:alice@partner.test", 5);
    plan.window = 2;
    plan.response_timeout = Duration::from_millis(300);
    let report = pool.send_messages(addr, plan).unwrap();
    assert_eq!(report.sent, 5);
    assert_eq!(report.by_status.get(&200), Some(&4));
    assert_eq!(report.missing, 1);
    assert_eq!(report.sent, report.answered() + report.missing);
    pool.stop();
    router.join().unwrap();
}

#[test]
fn send_messages_counts_outstanding_as_missing_when_the_router_closes() {
    let pool = pool(AnswerPlan::default());
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let router = thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        let mut peer = Peer::over(s);
        let m = peer.next_message();
        peer.send(
            &response_to(&m, 404, "Not Found", Some("r"))
                .unwrap()
                .finish()
                .unwrap(),
        );
        peer.next_message(); // read the second, then hang up unanswered
    });
    let mut plan = SendPlan::new("bob", "sip:alice@partner.test", 10);
    plan.window = 2;
    let report = pool.send_messages(addr, plan).unwrap();
    router.join().unwrap();
    assert_eq!(report.by_status.get(&404), Some(&1));
    assert!(report.ended_by.is_some());
    assert_eq!(report.sent, report.answered() + report.missing);
    assert_eq!(report.sent + report.not_sent, 10);
    assert!(report.missing >= 1);
    pool.stop();
}

/// An in-test router that answers a SUBSCRIBE 200 and sends one NOTIFY (open) — on the same
/// connection, or on a new connection to the pool's listener (its next hop).
fn subscribe_router(
    pool_addr: SocketAddr,
    via_next_hop: bool,
) -> (SocketAddr, thread::JoinHandle<u16>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let h = thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        let mut peer = Peer::over(s);
        let sub = peer.next_message();
        assert_eq!(sub.method(), Some("SUBSCRIBE"));
        assert_eq!(sub.event().unwrap().token, "presence");
        assert!(sub.contacts().next().is_some());
        peer.send(
            &response_to(&sub, 200, "OK", Some("gw1"))
                .unwrap()
                .expires(sub.expires().unwrap())
                .finish()
                .unwrap(),
        );
        let from = sub.from().unwrap();
        let pidf = "<?xml version=\"1.0\"?><presence xmlns=\"urn:ietf:params:xml:ns:pidf\" \
                    entity=\"sip:alice@partner.test\"><tuple id=\"t\"><status><basic>open</basic>\
                    </status></tuple></presence>";
        let notify = stanza_router::sip::serialize::Request::builder("NOTIFY", "sip:bob@127.0.0.1")
            .via("TCP", "127.0.0.1", Some(5060), "z9hG4bKn1", false)
            .max_forwards(70)
            .from(None, "sip:alice@partner.test", Some("gw1"))
            .to(None, from.uri, from.tag())
            .call_id(sub.call_id().unwrap())
            .cseq(1, "NOTIFY")
            .header(HeaderName::Event, "presence")
            .header(HeaderName::SubscriptionState, "active;expires=120")
            .body("application/pidf+xml", pidf.as_bytes())
            .unwrap();
        if via_next_hop {
            let mut next_hop = Peer::connect(pool_addr);
            next_hop.send(&notify);
            let status = next_hop.next_message().status().unwrap();
            // Keep the subscriber's connection open until the NOTIFY was answered.
            drop(peer);
            status
        } else {
            peer.send(&notify);
            peer.next_message().status().unwrap()
        }
    });
    (addr, h)
}

#[test]
fn subscribe_reports_200_and_the_notify_on_the_same_connection() {
    let pool = pool(AnswerPlan::default());
    let (addr, router) = subscribe_router(pool.local_addr(), false);
    let r = pool
        .subscribe(addr, "bob", "sip:alice@partner.test", 600, DEADLINE)
        .unwrap();
    assert_eq!(router.join().unwrap(), 200, "the pool answered the NOTIFY");
    assert_eq!(r.status, Some(200));
    assert_eq!(r.expires, Some(600));
    assert_eq!(r.to_tag.as_deref(), Some("gw1"));
    assert_eq!(r.notifies.len(), 1);
    let n = &r.notifies[0];
    assert_eq!((n.state.as_str(), n.expires), ("active", Some(120)));
    assert_eq!(n.basic.as_deref(), Some("open"));
    assert!(!n.via_next_hop);
    assert_eq!(pool.stats().notifies_received, 1);
    pool.stop();
}

#[test]
fn subscribe_matches_a_notify_arriving_on_the_next_hop_connection() {
    let pool = pool(AnswerPlan::default());
    let (addr, router) = subscribe_router(pool.local_addr(), true);
    let r = pool
        .subscribe(addr, "bob", "sip:alice@partner.test", 600, DEADLINE)
        .unwrap();
    assert_eq!(router.join().unwrap(), 200);
    assert_eq!(r.status, Some(200));
    assert_eq!(r.notifies.len(), 1);
    assert!(r.notifies[0].via_next_hop);
    assert_eq!(r.notifies[0].basic.as_deref(), Some("open"));
    pool.stop();
}

#[test]
fn subscribe_ends_on_an_error_response() {
    let pool = pool(AnswerPlan::default());
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let router = thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        let mut peer = Peer::over(s);
        let sub = peer.next_message();
        peer.send(
            &response_to(&sub, 403, "Forbidden", Some("x"))
                .unwrap()
                .finish()
                .unwrap(),
        );
        peer
    });
    let r = pool
        .subscribe(addr, "bob", "sip:alice@partner.test", 600, DEADLINE)
        .unwrap();
    assert_eq!(r.status, Some(403));
    assert!(r.notifies.is_empty());
    drop(router.join().unwrap());
    pool.stop();
}

#[test]
fn parse_of_samples_round_trips() {
    let pool = pool(AnswerPlan::default());
    let mut router = Peer::connect(pool.local_addr());
    router.send(message(1).as_bytes());
    router.next_message();
    let s = pool.samples();
    let m = SipMessage::parse(Bytes::from(s[0].clone().into_bytes())).unwrap();
    assert_eq!(m.method(), Some("MESSAGE"));
    pool.stop();
}

#[test]
fn body_over_the_cap_gets_413_then_close() {
    let pool = pool(AnswerPlan::default());
    let mut router = Peer::connect(pool.local_addr());
    let big = message(1).replace("Content-Length: 5", "Content-Length: 1000000");
    router.send(big.as_bytes());
    let r = router.next_message();
    assert_eq!(r.status(), Some(413));
    assert_eq!(r.call_id(), Ok("msg1@partner.test"));
    assert!(router.next().is_none(), "connection closed after the 413");
    let stats = pool.stats();
    assert_eq!((stats.malformed, stats.malformed_answered), (1, 1));
    pool.stop();
}

#[test]
fn send_messages_to_the_pool_itself_follows_its_answer_plan() {
    let pool = pool(AnswerPlan {
        error_every: Some((10, 503)),
        silent_every: Some(100),
        ..AnswerPlan::default()
    });
    let mut plan = SendPlan::new("bob", "sip:carol@corp.test", 500);
    plan.window = 32;
    plan.response_timeout = Duration::from_millis(500);
    let report = pool.send_messages(pool.local_addr(), plan).unwrap();
    // Every 100th is silent (5), every other 10th gets 503 (50 - 5 = 45), the rest 200.
    assert_eq!(report.missing, 5);
    assert_eq!(report.by_status.get(&503), Some(&45));
    assert_eq!(report.by_status.get(&200), Some(&450));
    assert_eq!(report.latencies_us.len(), 495);
    let stats = pool.stats();
    assert_eq!(stats.messages_received, 500);
    assert_eq!(stats.messages_silenced, 5);
    pool.stop();
}

#[test]
fn pool_can_be_shared_between_sender_threads() {
    fn shared<T: Send + Sync>() {}
    shared::<SipPool>();
    let pool = std::sync::Arc::new(pool(AnswerPlan::default()));
    let senders: Vec<_> = (0..3)
        .map(|i| {
            let p = pool.clone();
            thread::spawn(move || {
                let plan = SendPlan::new(&format!("user{i}"), "sip:carol@corp.test", 20);
                p.send_messages(p.local_addr(), plan).unwrap()
            })
        })
        .collect();
    for s in senders {
        assert_eq!(s.join().unwrap().by_status.get(&200), Some(&20));
    }
    assert_eq!(pool.stats().messages_received, 60);
    assert_eq!(pool.stats().connections_accepted, 3);
}
