//! Messages through the gateway with real XMPP servers and real SIPp (issue 3 §3, §5): a user on
//! Prosody (a.test) or ejabberd (b.test) ⇄ stanza-router ⇄ SIPp, the internal SIP side.
//! * XMPP → SIP: the pool (SIPp UAS, `uas_message_by_user.xml`) answers by recipient: 200 (no
//!   error comes back), 404, 486, 503, or nothing (Timer F, with a small `sip.t1`); each failure
//!   reaches the client as a message error with the condition and type of the mapping tables
//!   (`gateway::errors`, `StanzaCondition::error_type`);
//! * SIP → XMPP: SIPp UAC sends MESSAGE to the client's JID over `[sip] listen`: the client gets
//!   the body and its xml:lang, SIPp gets 200; to an unlisted domain 403, to our own 404
//!   (`gateway::inbound`);
//! * the pool killed mid-run: messages sent meanwhile bounce (service-unavailable or
//!   remote-server-timeout) within a bounded wait, and delivery resumes once SIPp is back on
//!   the same port (the router reconnects with backoff).
//!
//! OPTIONS probes are left on, every second (`sip.options_interval = "1s"`): the pool scenario
//! answers them (an optional first `<recv>`), so the probe runs against real SIPp too.
//!
//! Addresses: Prosody tests on 127.0.0.222–225, ejabberd tests on 226–229 (router, server,
//! SIPp UAS, SIPp UAC). Every step waits for its event with a deadline.

mod support;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use stanza_router::gateway::errors::{condition_for_sip_status, SipFailure};
use stanza_router::xmpp::error::StanzaCondition;
use support::c2s::{C2sClient, ClientError, Stanza};
use support::gateway_world::{start_federated, XmppServer as Server};
use support::peers::Peer;
use support::router::TestRouter;
use support::sipp::{Scenario, Sipp, SippOptions};
use support::workdir::free_port;

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, last)
}

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(30)
}

impl Server {
    /// First of its four addresses: router, server, SIPp UAS, SIPp UAC.
    fn base(self) -> u8 {
        match self {
            Server::Prosody => 222,
            Server::Ejabberd => 226,
        }
    }
}

/// The pool: answers MESSAGE by recipient user (`codeNNN`), OPTIONS with 200.
fn start_pool(addr: SocketAddr) -> Sipp {
    let scenario = Scenario::File(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/sipp_scenarios/uas_message_by_user.xml"),
    );
    let ip = match addr.ip() {
        std::net::IpAddr::V4(v4) => v4,
        std::net::IpAddr::V6(_) => unreachable!("the pool is on 127.0.0.x"),
    };
    let opts = SippOptions {
        port: addr.port(),
        // Outlives every test here; the run's end is not a failure.
        timeout: Duration::from_secs(240),
        timeout_is_error: false,
        // How long the unanswered MESSAGE is held: well beyond Timer F (64 × 50 ms).
        pause: Some(Duration::from_secs(30)),
        ..SippOptions::new(ip).calls(0)
    };
    Sipp::uas(scenario, opts).expect("sipp pool starts")
}

/// The router, the XMPP server with alice logged in, and the SIPp pool.
struct World {
    router: TestRouter,
    peer: Box<dyn Peer>,
    pool: Option<Sipp>,
    pool_addr: SocketAddr,
    sip_listen: SocketAddr,
    alice: C2sClient,
    server: Server,
}

impl World {
    /// `t1`: the router's `sip.t1` (TOML duration).
    fn start(server: Server, t1: &str) -> World {
        let b = server.base();
        let pool_addr = SocketAddr::new(ip(b + 2).into(), free_port(ip(b + 2)).unwrap());
        let pool = start_pool(pool_addr);
        let sip_listen = SocketAddr::new(ip(b).into(), free_port(ip(b)).unwrap());
        // Probes every second, answered by the pool scenario.
        let sip = format!(
            "[sip]\nnext_hop = \"sip:{pool_addr};transport=tcp\"\nlisten = [\"{sip_listen}\"]\n\
             t1 = \"{t1}\"\noptions_interval = \"1s\"\n"
        );
        let f = start_federated(server, ip(b), ip(b + 1), sip);
        World {
            router: f.router,
            peer: f.peer,
            pool: Some(pool),
            pool_addr,
            sip_listen,
            alice: f.alice,
            server,
        }
    }

    fn jid(&self) -> String {
        format!("alice@{}", self.server.domain())
    }

    /// alice sends a chat message with `id` and `body` to `user@corp.test`.
    fn send(&mut self, user: &str, id: &str, body: &str) {
        self.alice
            .send(&format!(
                "<message type='chat' id='{id}' to='{user}@corp.test' xml:lang='en'>\
                 <body>{body}</body></message>"
            ))
            .unwrap();
    }

    /// The message error for `id`, waiting until `until`.
    fn bounce(&mut self, id: &str, until: Instant) -> Result<Stanza, ClientError> {
        self.alice.recv_until(|s| is_error_for(s, id), until)
    }

    fn pool(&mut self) -> &mut Sipp {
        self.pool.as_mut().expect("the pool runs")
    }

    /// Waits until the pool has received a MESSAGE with `body`.
    fn pool_receives(&mut self, body: &str) -> support::sipp::SipMessage {
        let got = self.pool().wait_for_received(body, deadline(), |m| {
            m.method() == Some("MESSAGE") && m.body == body
        });
        got.unwrap_or_else(|e| panic!("the pool did not receive {body:?}: {e}"))
    }

    fn counter(&self, pick: impl Fn(&stanza_router::edge::context::SharedCounters) -> u64) -> u64 {
        pick(self.router.counters())
    }

    /// (delivered, bounced) XMPP → SIP messages.
    fn xmpp_to_sip_counts(&self) -> (u64, u64) {
        let c = self.router.counters();
        (
            c.messages_delivered.load(Ordering::Relaxed),
            c.messages_bounced.load(Ordering::Relaxed),
        )
    }

    /// Waits until the counters account for `n` XMPP → SIP messages.
    fn wait_accounted(&self, n: u64) -> (u64, u64) {
        let until = deadline();
        loop {
            let (d, b) = self.xmpp_to_sip_counts();
            if d + b >= n {
                return (d, b);
            }
            assert!(
                Instant::now() < until,
                "only {d} + {b} of {n} accounted for"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn is_error_for(s: &Stanza, id: &str) -> bool {
    s.name() == "message" && s.attr("type") == Some("error") && s.attr("id") == Some(id)
}

/// The `type` attribute of the stanza's `<error>` child.
fn error_type(s: &Stanza) -> Option<String> {
    let start = s.xml.find("<error")?;
    let tag = &s.xml[start..start + s.xml[start..].find('>')?];
    let at = tag.find(" type=")? + " type=".len();
    let quote = tag[at..].chars().next()?;
    let rest = &tag[at + 1..];
    Some(rest[..rest.find(quote)?].to_owned())
}

/// XMPP → SIP outcomes, one row per pool behaviour: the recipient user (which picks the pool's
/// answer), the SIP failure, and the error the sender must see.
const FAILURES: &[(&str, SipFailure, &str, &str)] = &[
    (
        "code404",
        SipFailure::Status(404),
        "item-not-found",
        "cancel",
    ),
    (
        "code486",
        SipFailure::Status(486),
        "recipient-unavailable",
        "wait",
    ),
    (
        "code503",
        SipFailure::Status(503),
        "service-unavailable",
        "cancel",
    ),
    (
        "code000",
        SipFailure::Timeout,
        "remote-server-timeout",
        "wait",
    ),
];

fn xmpp_user_messages_sip_users(server: Server) {
    // T1 = 50 ms: Timer F = 3.2 s for the unanswered MESSAGE.
    let mut w = World::start(server, "50ms");
    let jid = w.jid();
    // Every failure first (the Timer F one takes 3.2 s), then the accepted one.
    for (user, ..) in FAILURES {
        w.send(user, &format!("m-{user}"), "hello");
    }
    w.send("bob", "m-ok", "hello &amp; welcome");
    let got = w.pool_receives("hello & welcome");
    assert!(
        got.start_line.starts_with("MESSAGE sip:bob@corp.test"),
        "{}",
        got.start_line
    );
    assert!(
        got.header("From")
            .is_some_and(|f| f.contains(&format!("sip:{jid}"))),
        "{:?}",
        got.header("From")
    );
    assert_eq!(got.header("Content-Language"), Some("en"));
    for (user, failure, condition, ty) in FAILURES {
        // The table agrees with the library's mapping (RFC 7247 §7.2 + RFC 6120 §8.3.3).
        let mapped: StanzaCondition = match failure {
            SipFailure::Status(code) => condition_for_sip_status(*code),
            other => other.condition(),
        };
        assert_eq!(mapped.as_str(), *condition, "{user}");
        assert_eq!(mapped.error_type().as_str(), *ty, "{user}");
        let id = format!("m-{user}");
        let bounce = w
            .bounce(&id, deadline())
            .unwrap_or_else(|e| panic!("no error for {id}: {e}\n{}", w.peer.log_tail(40)));
        assert!(bounce.has_child(condition), "{user}: {}", bounce.xml);
        assert_eq!(error_type(&bounce).as_deref(), Some(*ty), "{}", bounce.xml);
        assert_eq!(
            bounce.sender_bare(),
            Some(format!("{user}@corp.test").as_str()),
            "{}",
            bounce.xml
        );
    }
    // Every failure came back; the accepted message's 200 came long before the Timer F one:
    // no error for it is on its way.
    assert!(
        matches!(
            w.bounce("m-ok", Instant::now() + Duration::from_millis(500)),
            Err(ClientError::Timeout(_))
        ),
        "the accepted message bounced"
    );
    let n = FAILURES.len() as u64 + 1;
    assert_eq!(w.wait_accounted(n), (1, n - 1));
    // The probes went to the pool meanwhile (the Timer F case alone outlasts an interval), and
    // SIPp answered them: none failed, the flow stayed up throughout.
    let probes = w.counter(|c| c.sip_options_sent.load(Ordering::Relaxed));
    let failed_probes = w.counter(|c| c.sip_options_failed.load(Ordering::Relaxed));
    assert!(probes >= 1, "no OPTIONS probe was sent");
    assert_eq!(failed_probes, 0, "a probe failed against SIPp");
    let options = w
        .pool()
        .wait_for_received("an OPTIONS probe", deadline(), |m| {
            m.method() == Some("OPTIONS")
        });
    assert!(options.is_ok(), "{options:?}");
}

fn sip_users_message_the_xmpp_user(server: Server) {
    let mut w = World::start(server, "500ms");
    let jid = w.jid();
    let uac = |to: &str, expect: u16| {
        Sipp::uac(
            Scenario::UacMessage,
            w.sip_listen,
            SippOptions::new(ip(server.base() + 3))
                .calls(1)
                .key("from_uri", "sip:bob@corp.test")
                .key("to_uri", to)
                .key("lang", "de")
                .key("body", "Hallo <Welt> & mehr")
                .var("expect_code", &expect.to_string()),
        )
        .expect("sipp uac starts")
    };
    let client = uac(&format!("sip:{jid}"), 200);
    let m = w
        .alice
        .recv_until(
            |s| s.name() == "message" && s.sender_bare() == Some("bob@corp.test"),
            deadline(),
        )
        .unwrap_or_else(|e| panic!("no message from bob: {e}\n{}", w.peer.log_tail(40)));
    assert_eq!(
        m.child_text("body").as_deref().map(str::trim_end),
        Some("Hallo <Welt> & mehr"),
        "{}",
        m.xml
    );
    assert!(
        m.xml.contains("xml:lang='de'") || m.xml.contains("xml:lang=\"de\""),
        "the language survives: {}",
        m.xml
    );
    assert_ne!(m.attr("type"), Some("error"), "{}", m.xml);
    let out = client.wait(deadline()).expect("sipp ends");
    assert_eq!(out.logged_final_codes(), vec![200], "{}", out.messages);
    assert!(out.all_ok(), "{}", out.diagnostics);
    // Refused before anything is sent (gateway::inbound): a domain that is no partner, and
    // our own (we host no XMPP users).
    for (to, code) in [("sip:eve@unlisted.test", 403), ("sip:carol@corp.test", 404)] {
        let out = uac(to, code).wait(deadline()).expect("sipp ends");
        assert_eq!(
            out.logged_final_codes(),
            vec![code],
            "{to}: {}",
            out.messages
        );
        assert!(out.all_ok(), "{}", out.diagnostics);
    }
    let c = w.router.counters();
    let counts = (
        c.sip_messages_in.load(Ordering::Relaxed),
        c.sip_messages_delivered.load(Ordering::Relaxed),
        c.sip_messages_refused.load(Ordering::Relaxed),
    );
    assert_eq!(counts, (3, 1, 2));
}

/// Conditions a message may bounce with while the pool is down: the transport failed (503),
/// or the bounded wait for a flow ran out.
fn pool_down_condition(s: &Stanza) -> bool {
    s.has_child("service-unavailable") || s.has_child("remote-server-timeout")
}

fn sip_pool_killed_and_restarted(server: Server) {
    // Default T1: the MESSAGE in flight at the kill can only end by the transport failure
    // within the test's deadline, not by Timer F (32 s).
    let mut w = World::start(server, "500ms");
    w.send("bob", "before", "before");
    w.pool_receives("before");
    assert_eq!(w.wait_accounted(1), (1, 0));
    // One MESSAGE in flight when the pool dies: the pool holds it unanswered.
    w.send("code000", "held", "held");
    w.pool_receives("held");

    drop(w.pool.take()); // SIGKILL to SIPp's process group: its connections die with it
    let killed = Instant::now();
    let bounce = w
        .bounce("held", deadline())
        .unwrap_or_else(|e| panic!("the MESSAGE in flight was not bounced: {e}"));
    // At once, as a transport failure (503), not after Timer F (remote-server-timeout).
    assert!(bounce.has_child("service-unavailable"), "{}", bounce.xml);
    eprintln!(
        "{server:?}: in flight at the kill: bounced after {:?}",
        killed.elapsed()
    );
    assert_eq!(w.wait_accounted(2), (1, 1));
    let sent_down = Instant::now();
    w.send("bob", "during", "during");
    let bounce = w
        .bounce("during", deadline())
        .unwrap_or_else(|e| panic!("no bounce while the pool is down: {e}"));
    assert!(pool_down_condition(&bounce), "{}", bounce.xml);
    let waited = sent_down.elapsed();
    let during = if bounce.has_child("service-unavailable") {
        "service-unavailable"
    } else {
        "remote-server-timeout"
    };
    assert_eq!(w.wait_accounted(3), (1, 2));

    w.pool = Some(start_pool(w.pool_addr));
    // The router reconnects with backoff; a message sent before it has may still bounce (and
    // must, rather than vanish). Each one ends one way or the other; one gets through.
    let until = deadline();
    for k in 0.. {
        assert!(Instant::now() < until, "delivery did not resume");
        let (id, body) = (format!("after-{k}"), format!("after {k}"));
        w.send("bob", &id, &body);
        let outcome = loop {
            if w.pool()
                .wait_for_received("poll", Instant::now(), |m| m.body == body)
                .is_ok()
            {
                break true;
            }
            match w.bounce(&id, Instant::now() + Duration::from_millis(200)) {
                Ok(b) => {
                    assert!(pool_down_condition(&b), "{}", b.xml);
                    break false;
                }
                Err(ClientError::Timeout(_)) => {}
                Err(e) => panic!("client: {e}"),
            }
            assert!(Instant::now() < until, "{id} neither delivered nor bounced");
        };
        if outcome {
            let (d, b) = w.wait_accounted(4 + k);
            // before, held, during, and the k that bounced after the restart.
            assert_eq!((d, b), (2, 2 + k), "every message accounted for once");
            eprintln!(
                "{server:?}: {during} while down after {waited:?}; delivered again after {k} bounce(s)"
            );
            return;
        }
    }
}

#[test]
fn prosody_user_messages_sip_users_and_gets_each_sip_failure_as_its_mapped_error() {
    xmpp_user_messages_sip_users(Server::Prosody);
}

#[test]
fn ejabberd_user_messages_sip_users_and_gets_each_sip_failure_as_its_mapped_error() {
    xmpp_user_messages_sip_users(Server::Ejabberd);
}

#[test]
fn sip_user_messages_a_prosody_user_with_body_and_language() {
    sip_users_message_the_xmpp_user(Server::Prosody);
}

#[test]
fn sip_user_messages_an_ejabberd_user_with_body_and_language() {
    sip_users_message_the_xmpp_user(Server::Ejabberd);
}

#[test]
fn prosody_user_messages_bounce_while_the_sip_pool_is_killed_and_flow_again_after_restart() {
    sip_pool_killed_and_restarted(Server::Prosody);
}

#[test]
fn ejabberd_user_messages_bounce_while_the_sip_pool_is_killed_and_flow_again_after_restart() {
    sip_pool_killed_and_restarted(Server::Ejabberd);
}
