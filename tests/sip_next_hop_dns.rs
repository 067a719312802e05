//! The SIP next hop located through DNS (RFC 3263) and kept healthy with OPTIONS: the router's
//! `[sip] next_hop` is a name served by the test DNS server; NAPTR/SRV give two pool members,
//! and the router fails over from the first to the second when the first refuses connections
//! or stops answering OPTIONS. Addresses 127.0.0.230–239 are this file's.

mod support;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;
use stanza_router::pki::ThrowawayCa;
use stanza_router::sim::{PoolConfig, SipPool};
use stanza_router::sip::framer::{Framed, SipFramer};
use stanza_router::sip::parse::Limits;
use stanza_router::sip::transaction::response_to;
use support::dialogue::{inbound_sasl, ip, listener, partner, peer_tls};
use support::dns_server::DnsServer;
use support::router::{RouterSetup, TestRouter};
use support::workdir::free_port;

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(20)
}

/// Waits until `cond` holds, failing with `what` at the deadline.
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = deadline();
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn sim_pool(last: u8) -> SipPool {
    let l = TcpListener::bind((ip(last), 0)).expect("bind pool");
    SipPool::start(PoolConfig::new(l, "corp.test")).expect("pool starts")
}

/// The router at `r` with a partner listener at `r + 1`, DNS at `dns`, and `sip` appended to
/// `[sip]`. One shard, so one next-hop flow.
fn router(
    r: u8,
    dns: &DnsServer,
    sip: &str,
) -> (
    TestRouter,
    support::dialogue::Peer,
    support::s2s_peer::PeerListener,
) {
    let ca = ThrowawayCa::new("next hop CA").unwrap();
    let peer = peer_tls(&ca.issue_with(&["a.test"], false).unwrap());
    let l = listener(r + 1);
    let mut setup = RouterSetup::new(ip(r), &ca);
    setup.shards = 1;
    setup.partners.push(partner(
        &l,
        "tls = \"required\"\nsasl = \"optional\"\ndialback = true",
    ));
    setup.extra = format!(
        "[dns]\nservers = [\"{}\"]\ntimeout = \"1s\"\n[sip]\n{sip}\n",
        dns.addr()
    );
    (TestRouter::start(setup), peer, l)
}

fn delivered(router: &TestRouter) -> u64 {
    router.counters().messages_delivered.load(Ordering::Relaxed)
}

#[test]
fn naptr_srv_next_hop_fails_over_from_a_refusing_target_to_the_next() {
    let dns = DnsServer::start(SocketAddr::new(ip(230).into(), 0));
    // The priority target refuses: nothing listens on its port.
    let down_port = free_port(ip(233)).unwrap();
    let pool = sim_pool(234);
    dns.naptr(
        "pool.corp.test",
        10,
        10,
        "s",
        "SIP+D2U",
        "_sip._udp.pool.corp.test",
    )
    .naptr(
        "pool.corp.test",
        20,
        10,
        "s",
        "SIP+D2T",
        "_sip._tcp.pool.corp.test",
    )
    .srv(
        "_sip._tcp.pool.corp.test",
        10,
        0,
        down_port,
        "a.pool.corp.test",
    )
    .srv(
        "_sip._tcp.pool.corp.test",
        20,
        0,
        pool.local_addr().port(),
        "b.pool.corp.test",
    )
    .a("a.pool.corp.test", ip(233))
    .a("b.pool.corp.test", ip(234));
    let (router, peer, _l) = router(231, &dns, "next_hop = \"sip:pool.corp.test\"");
    let mut c = inbound_sasl(&router, &peer);
    c.send(
        "<message type='chat' from='alice@a.test/r' to='bob@corp.test' id='n1'>\
         <body>via the second target</body></message>",
    );
    wait_until("the MESSAGE is delivered", || delivered(&router) >= 1);
    assert_eq!(pool.stats().messages_received, 1);
    assert!(dns.queries("pool.corp.test", RecordType::NAPTR) >= 1);
    assert!(dns.queries("_sip._tcp.pool.corp.test", RecordType::SRV) >= 1);
    assert_eq!(
        dns.queries_for("_sip._udp.pool.corp.test"),
        0,
        "UDP NAPTR records must be ignored"
    );
    assert_eq!(
        router.counters().messages_bounced.load(Ordering::Relaxed),
        0
    );
}

/// A pool member that answers MESSAGE with 200 and CRLF pings with a pong, but never answers
/// OPTIONS (a stuck application behind a live socket).
struct DeafToOptions {
    addr: SocketAddr,
    options: Arc<AtomicU64>,
    messages: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl DeafToOptions {
    fn start(ip: Ipv4Addr) -> DeafToOptions {
        let l = TcpListener::bind((ip, 0)).expect("bind scripted pool");
        l.set_nonblocking(true).unwrap();
        let addr = l.local_addr().unwrap();
        let options = Arc::new(AtomicU64::new(0));
        let messages = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (o, m, s) = (options.clone(), messages.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut conns = Vec::new();
            while !s.load(Ordering::SeqCst) {
                if let Ok((c, _)) = l.accept() {
                    c.set_nonblocking(false).unwrap();
                    c.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
                    conns.push((c, SipFramer::new(Limits::default())));
                }
                let mut buf = [0u8; 8192];
                conns.retain_mut(|(c, framer)| {
                    let n = match c.read(&mut buf) {
                        Ok(0) => return false,
                        Ok(n) => n,
                        Err(e)
                            if matches!(
                                e.kind(),
                                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                            ) =>
                        {
                            return true
                        }
                        Err(_) => return false,
                    };
                    if framer.feed(&buf[..n]).is_err() {
                        return false;
                    }
                    while let Some(Ok(item)) = framer.poll() {
                        match item {
                            Framed::Ping => {
                                let _ = c.write_all(b"\r\n");
                            }
                            Framed::Pong => {}
                            Framed::Message(msg) if msg.method() == Some("OPTIONS") => {
                                o.fetch_add(1, Ordering::SeqCst);
                            }
                            Framed::Message(msg) if msg.method() == Some("MESSAGE") => {
                                m.fetch_add(1, Ordering::SeqCst);
                                if let Ok(r) =
                                    response_to(&msg, 200, "OK", None).and_then(|b| b.finish())
                                {
                                    let _ = c.write_all(&r);
                                }
                            }
                            Framed::Message(_) => {}
                        }
                    }
                    true
                });
                if conns.is_empty() {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        });
        DeafToOptions {
            addr,
            options,
            messages,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for DeafToOptions {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn unanswered_options_probe_fails_over_to_the_next_srv_target() {
    let dns = DnsServer::start(SocketAddr::new(ip(235).into(), 0));
    let deaf = DeafToOptions::start(ip(238));
    let pool = sim_pool(239);
    dns.srv(
        "_sip._tcp.pool2.corp.test",
        10,
        0,
        deaf.addr.port(),
        "a.pool2.corp.test",
    )
    .srv(
        "_sip._tcp.pool2.corp.test",
        20,
        0,
        pool.local_addr().port(),
        "b.pool2.corp.test",
    )
    .a("a.pool2.corp.test", ip(238))
    .a("b.pool2.corp.test", ip(239));
    // Probe every 200 ms; T1 = 10 ms makes Timer F 640 ms.
    let (router, peer, _l) = router(
        236,
        &dns,
        "next_hop = \"sip:pool2.corp.test;transport=tcp\"\noptions_interval = \"200ms\"\nt1 = \"10ms\"",
    );
    wait_until("the first target gets an OPTIONS", || {
        deaf.options.load(Ordering::SeqCst) >= 1
    });
    wait_until("the router fails over and probes the second target", || {
        pool.stats().options_received >= 1
    });
    let failed = router.counters().sip_options_failed.load(Ordering::Relaxed);
    assert!(failed >= 1, "the unanswered probe is counted as failed");
    assert!(
        router.counters().sip_options_sent.load(Ordering::Relaxed) >= 2,
        "one probe to each target at least"
    );
    // No SRV query asked NAPTR: the explicit transport skips it.
    assert_eq!(dns.queries("pool2.corp.test", RecordType::NAPTR), 0);

    let mut c = inbound_sasl(&router, &peer);
    c.send(
        "<message type='chat' from='alice@a.test/r' to='bob@corp.test' id='p1'>\
         <body>after failover</body></message>",
    );
    wait_until("the MESSAGE is delivered", || delivered(&router) >= 1);
    assert_eq!(pool.stats().messages_received, 1);
    assert_eq!(deaf.messages.load(Ordering::SeqCst), 0);
    // The healthy target keeps answering probes and is not failed over from.
    let answered = pool.stats().options_received;
    wait_until("the second target is probed again", || {
        pool.stats().options_received > answered
    });
    assert_eq!(
        router.counters().sip_options_failed.load(Ordering::Relaxed),
        failed
    );
}
