//! The glommio SIP transport on real loopback sockets: the outbound `SipConnection` against a
//! SIPp UAS (delivery, reconnect after a restart), its CRLF keepalive against silent and
//! answering peers, and the `SipListener` against a SIPp UAC and raw sockets (ping/pong,
//! oversized message). Each test runs in its own glommio executor, bounded in time.

mod support;

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use futures_lite::{future, AsyncReadExt, AsyncWriteExt};
use glommio::channels::local_channel::{self, LocalReceiver};
use glommio::net::{TcpListener, TcpStream};
use glommio::{LocalExecutorBuilder, Placement};

use stanza_router::sip::next_hop::NextHop;
use stanza_router::sip::transport::{
    ConnId, ConnectionConfig, FlowEnd, Incoming, ListenerConfig, ListenerEvent, ListenerHandle,
    SendError, SipConnection, SipListener,
};
use stanza_router::sip::{FramerError, HeaderName, Limits, ParseError, Request, SipMessage};
use support::sipp::{Scenario, Sipp, SippOptions};

const UAS_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 111);
const RESTART_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 112);
const SILENT_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 113);
const PONGING_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 114);
const LISTEN_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 115);
const UAC_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 116);
const CLOSED_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 117);
const WRITE_FIRST_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 118);
const DEAF_PEER_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 119);
const DEAF_HOP_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 120);

/// Hard bound of one test body.
const TEST_LIMIT: Duration = Duration::from_secs(60);
/// Bound for a SIPp run to end once its work is done.
const SIPP_DEADLINE: Duration = Duration::from_secs(30);

/// Runs `body` in a fresh glommio executor, failing if it exceeds [`TEST_LIMIT`].
fn run<F, Fut>(body: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(512 * 1024)
        .ring_depth(64)
        .spawn(move || async move {
            future::or(body(), async {
                glommio::timer::sleep(TEST_LIMIT).await;
                panic!("test exceeded {TEST_LIMIT:?}");
            })
            .await
        })
        .expect("executor starts")
        .join()
        .expect("test body completes without panic");
}

fn tcp_hop(addr: SocketAddr) -> NextHop {
    NextHop::parse(&format!("sip:{addr};transport=tcp")).expect("next hop parses")
}

fn message(call_id: &str) -> Vec<u8> {
    Request::builder("MESSAGE", "sip:alice@sip.test")
        .via(
            "TCP",
            "127.0.0.110",
            Some(5060),
            &format!("z9hG4bK-{call_id}"),
            false,
        )
        .max_forwards(70)
        .from(None, "sip:romeo@xmpp.test", Some("gw1"))
        .to(None, "sip:alice@sip.test", None)
        .call_id(call_id)
        .cseq(1, "MESSAGE")
        .body("text/plain;charset=UTF-8", b"Hello over SIP")
        .expect("request builds")
}

async fn next(rx: &LocalReceiver<Incoming>) -> Incoming {
    rx.recv().await.expect("connection task alive")
}

/// Skips to the first final response for `call_id`.
async fn final_response(rx: &LocalReceiver<Incoming>, call_id: &str) -> SipMessage {
    loop {
        match next(rx).await {
            Incoming::Message(m)
                if m.status().is_some_and(|s| s >= 200) && m.call_id() == Ok(call_id) =>
            {
                return m
            }
            Incoming::Message(_) => {}
            other => panic!("expected the response to {call_id}, got {other:?}"),
        }
    }
}

#[test]
fn message_reaches_sipp_uas_and_its_200_comes_back() {
    run(|| async {
        let uas =
            Sipp::uas(Scenario::UasMessage, SippOptions::new(UAS_IP).calls(0)).expect("start uas");
        let (h, rx) = SipConnection::spawn(ConnectionConfig::new(tcp_hop(uas.local_addr())));
        match next(&rx).await {
            Incoming::Up(peer) => assert_eq!(peer, uas.local_addr()),
            other => panic!("expected Up, got {other:?}"),
        }
        h.send(message("first@gw")).await.expect("send");
        let resp = final_response(&rx, "first@gw").await;
        assert_eq!(resp.status(), Some(200));
        assert!(resp.validate().is_ok());
        drop((h, rx));
        let out = uas
            .finish(Instant::now() + SIPP_DEADLINE)
            .expect("uas ends");
        let got = out.received_requests("MESSAGE");
        assert_eq!(got.len(), 1, "{}", out.diagnostics);
        assert_eq!(got[0].body, "Hello over SIP");
    });
}

#[test]
fn reconnects_after_sipp_uas_restart_on_the_same_port() {
    run(|| async {
        let first = Sipp::uas(Scenario::UasMessage, SippOptions::new(RESTART_IP).calls(0))
            .expect("start uas");
        let addr = first.local_addr();
        let mut cfg = ConnectionConfig::new(tcp_hop(addr));
        cfg.backoff_max = Duration::from_millis(400);
        let (h, rx) = SipConnection::spawn(cfg);
        assert!(matches!(next(&rx).await, Incoming::Up(_)));
        h.send(message("before@gw")).await.expect("send");
        assert_eq!(final_response(&rx, "before@gw").await.status(), Some(200));

        drop(first); // kills SIPp
        match next(&rx).await {
            Incoming::Down(FlowEnd::PeerClosed | FlowEnd::Io(_)) => {}
            other => panic!("expected Down after the kill, got {other:?}"),
        }
        assert!(!h.is_up());

        let opts = SippOptions {
            port: addr.port(),
            ..SippOptions::new(RESTART_IP).calls(0)
        };
        let second = Sipp::uas(Scenario::UasMessage, opts).expect("restart uas");
        match next(&rx).await {
            Incoming::Up(peer) => assert_eq!(peer, addr),
            other => panic!("expected Up after the restart, got {other:?}"),
        }
        h.send(message("after@gw"))
            .await
            .expect("send after reconnect");
        assert_eq!(final_response(&rx, "after@gw").await.status(), Some(200));
        drop((h, rx));
        let out = second
            .finish(Instant::now() + SIPP_DEADLINE)
            .expect("uas ends");
        assert_eq!(
            out.received_requests("MESSAGE").len(),
            1,
            "{}",
            out.diagnostics
        );
    });
}

/// A peer that accepts one connection and answers the first `pongs` CRLF pings; reports the
/// number of pings it saw once the connection closes.
fn ping_peer(ip: Ipv4Addr, pongs: usize) -> (SocketAddr, LocalReceiver<usize>) {
    let l = TcpListener::bind((ip, 0)).expect("bind peer");
    let addr = l.local_addr().expect("peer addr");
    let (tx, rx) = local_channel::new_bounded(1);
    glommio::spawn_local(async move {
        let mut s = l.accept().await.expect("accept");
        let mut seen = Vec::new();
        let mut buf = [0u8; 512];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let before = count_pings(&seen);
                    seen.extend_from_slice(&buf[..n]);
                    for k in before..count_pings(&seen) {
                        if k < pongs && s.write_all(b"\r\n").await.is_err() {
                            break;
                        }
                    }
                }
            }
        }
        let _ = tx.send(count_pings(&seen)).await;
    })
    .detach();
    (addr, rx)
}

fn count_pings(b: &[u8]) -> usize {
    b.chunks_exact(4).filter(|c| *c == b"\r\n\r\n").count()
}

#[test]
fn silent_peer_is_declared_dead_after_ping_and_pong_timeout() {
    run(|| async {
        let (addr, pings) = ping_peer(SILENT_IP, 0);
        let mut cfg = ConnectionConfig::new(tcp_hop(addr));
        cfg.keepalive_interval = Duration::from_millis(100);
        cfg.pong_timeout = Duration::from_millis(200);
        let (h, rx) = SipConnection::spawn(cfg);
        assert!(matches!(next(&rx).await, Incoming::Up(_)));
        match next(&rx).await {
            Incoming::Down(end) => assert_eq!(end, FlowEnd::KeepaliveTimeout),
            other => panic!("expected Down, got {other:?}"),
        }
        let seen = pings.recv().await.expect("peer reports");
        assert!(seen >= 1, "the peer saw no CRLF ping");
        drop(h);
    });
}

#[test]
fn answered_pings_keep_the_flow_until_the_peer_stops_ponging() {
    run(|| async {
        // Pong timeout shorter than the interval: an unanswered ping ends the flow before the
        // next one, so the count of pings tells how many pongs were accepted.
        let (addr, pings) = ping_peer(PONGING_IP, 2);
        let mut cfg = ConnectionConfig::new(tcp_hop(addr));
        cfg.keepalive_interval = Duration::from_millis(600);
        cfg.pong_timeout = Duration::from_millis(400);
        let (h, rx) = SipConnection::spawn(cfg);
        assert!(matches!(next(&rx).await, Incoming::Up(_)));
        match next(&rx).await {
            Incoming::Down(end) => assert_eq!(end, FlowEnd::KeepaliveTimeout),
            other => panic!("expected Down, got {other:?}"),
        }
        assert_eq!(pings.recv().await, Some(3));
        drop(h);
    });
}

#[test]
fn send_fails_with_down_when_no_flow_comes_up() {
    run(|| async {
        // A port that was free a moment ago: connections are refused.
        let addr = {
            let l = std::net::TcpListener::bind((CLOSED_IP, 0)).expect("bind");
            l.local_addr().expect("addr")
        };
        let mut cfg = ConnectionConfig::new(tcp_hop(addr));
        cfg.send_wait = Duration::from_millis(300);
        let (h, _rx) = SipConnection::spawn(cfg);
        assert_eq!(h.send(message("nowhere@gw")).await, Err(SendError::Down));
    });
}

/// A 200 for request `m`, copying its Via, From, To (plus a tag), Call-ID and CSeq.
fn ok_for(m: &SipMessage) -> Vec<u8> {
    let mut out = b"SIP/2.0 200 OK\r\n".to_vec();
    for v in m.header_values(HeaderName::Via) {
        out.extend_from_slice(b"Via: ");
        out.extend_from_slice(v);
        out.extend_from_slice(b"\r\n");
    }
    for (name, h, suffix) in [
        ("From", HeaderName::From, &b""[..]),
        ("To", HeaderName::To, &b";tag=gw-uas"[..]),
        ("Call-ID", HeaderName::CallId, &b""[..]),
        ("CSeq", HeaderName::CSeq, &b""[..]),
    ] {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(m.header(h).expect("header present"));
        out.extend_from_slice(suffix);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    out
}

#[test]
fn listener_receives_sipp_uac_message_and_answers_200_on_the_same_connection() {
    run(|| async {
        let (lh, events) =
            SipListener::spawn(ListenerConfig::new(vec![SocketAddr::from((LISTEN_IP, 0))]))
                .expect("listen");
        let addr = lh.local_addrs()[0];
        let uac =
            Sipp::uac(Scenario::UacMessage, addr, SippOptions::new(UAC_IP)).expect("start uac");
        let (conn, msg) = match events.recv().await.expect("listener alive") {
            (c, ListenerEvent::Message(m)) => (c, m),
            other => panic!("expected a message, got {other:?}"),
        };
        assert_eq!(msg.method(), Some("MESSAGE"));
        assert!(msg.validate().is_ok());
        assert_eq!(lh.connections(), 1);
        lh.send(conn, ok_for(&msg)).expect("answer");
        // SIPp ends after its one call and closes the connection.
        match events.recv().await.expect("listener alive") {
            (c, ListenerEvent::Closed(FlowEnd::PeerClosed | FlowEnd::Io(_))) => {
                assert_eq!(c, conn)
            }
            other => panic!("expected the close, got {other:?}"),
        }
        assert_eq!(
            lh.send(conn, b"late".to_vec()),
            Err(SendError::UnknownConnection)
        );
        let out = uac.wait(Instant::now() + SIPP_DEADLINE).expect("uac ends");
        assert!(out.all_ok(), "uac failed:\n{}", out.diagnostics);
        assert_eq!(out.logged_final_codes(), vec![200]);
    });
}

#[test]
fn listener_answers_crlf_ping_with_pong() {
    run(|| async {
        let (lh, _events) =
            SipListener::spawn(ListenerConfig::new(vec![SocketAddr::from((LISTEN_IP, 0))]))
                .expect("listen");
        let mut s = TcpStream::connect(lh.local_addrs()[0])
            .await
            .expect("connect");
        s.write_all(b"\r\n\r\n").await.expect("ping");
        let mut pong = [0u8; 2];
        s.read_exact(&mut pong).await.expect("pong");
        assert_eq!(&pong, b"\r\n");
    });
}

#[test]
fn listener_closes_connection_on_oversized_message() {
    run(|| async {
        let mut cfg = ListenerConfig::new(vec![SocketAddr::from((LISTEN_IP, 0))]);
        cfg.limits = Limits {
            max_body_bytes: 64,
            ..Limits::default()
        };
        let (lh, events) = SipListener::spawn(cfg).expect("listen");
        let mut s = TcpStream::connect(lh.local_addrs()[0])
            .await
            .expect("connect");
        s.write_all(
            b"MESSAGE sip:alice@sip.test SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.9;branch=z9hG4bK1\r\n\
              Content-Length: 1000\r\n\r\n",
        )
        .await
        .expect("write");
        let (_c, ev): (ConnId, ListenerEvent) = events.recv().await.expect("listener alive");
        match ev {
            ListenerEvent::Closed(FlowEnd::Framing(FramerError::Parse(
                ParseError::BodyTooLarge { declared, limit },
            ))) => assert_eq!((declared, limit), (1000, 64)),
            other => panic!("expected a framing close, got {other:?}"),
        }
        let mut rest = Vec::new();
        // The server closed: reading ends (EOF or reset), it does not hang.
        let _ = s.read_to_end(&mut rest).await;
        assert!(rest.is_empty());
        assert_eq!(lh.connections(), 0);
    });
}

/// A consumer that answers each request with several writes before taking the next one (the
/// presence gateway: a SUBSCRIBE's 200, then its NOTIFY), behind an event queue of one, and a
/// peer that pipelines its requests in one write: the connection hands the requests over one by
/// one while the answers queue up, and writes them all. (When senders waited for room in the
/// connection's queue, the connection had to keep draining it while it waited, or the two
/// waited for each other.) The write queue is sized for what one read brings: the answers to
/// the requests of one read are written after the read's last request is handed over.
#[test]
fn listener_answers_a_pipelining_peer_whose_consumer_writes_several_answers_each() {
    const REQUESTS: usize = 40;
    const WRITES_EACH: usize = 3;
    run(|| async {
        let mut cfg = ListenerConfig::new(vec![SocketAddr::from((LISTEN_IP, 0))]);
        cfg.send_queue = REQUESTS * WRITES_EACH;
        cfg.incoming_queue = 1;
        let (lh, events) = SipListener::spawn(cfg).expect("listen");
        let addr = lh.local_addrs()[0];
        let consumer = glommio::spawn_local(async move {
            let mut handled = 0;
            while handled < REQUESTS {
                match events.recv().await.expect("listener alive") {
                    (conn, ListenerEvent::Message(m)) => {
                        for _ in 0..WRITES_EACH {
                            lh.send(conn, ok_for(&m)).expect("connection open");
                        }
                        handled += 1;
                    }
                    (_, ListenerEvent::Closed(end)) => panic!("closed early: {end:?}"),
                }
            }
            lh
        });
        let mut s = TcpStream::connect(addr).await.expect("connect");
        let mut all = Vec::new();
        for i in 0..REQUESTS {
            all.extend_from_slice(&message(&format!("pipelined-{i}")));
        }
        s.write_all(&all).await.expect("pipelined requests");
        let want = REQUESTS * WRITES_EACH;
        let mut got = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        while got
            .windows(b"SIP/2.0 200 OK".len())
            .filter(|w| w == b"SIP/2.0 200 OK")
            .count()
            < want
        {
            let n = s.read(&mut buf).await.expect("read");
            assert!(n > 0, "listener closed before every answer");
            got.extend_from_slice(&buf[..n]);
        }
        let _lh = consumer.await;
    });
}

/// Connections of one listener take turns handing over what they read when its queue is full:
/// two peers pipelining at once both make progress. (Taking free slots first let the running
/// connection keep the queue while the other, woken for a slot already taken, went back to the
/// end of the line: under load one connection waited for seconds.)
#[test]
fn listener_connections_take_turns_when_the_queue_is_full() {
    const EACH: usize = 400;
    run(|| async {
        let mut cfg = ListenerConfig::new(vec![SocketAddr::from((LISTEN_IP, 0))]);
        cfg.incoming_queue = 4;
        let (lh, events) = SipListener::spawn(cfg).expect("listen");
        let addr = lh.local_addrs()[0];
        let burst = |tag: &str| {
            let mut all = Vec::new();
            for i in 0..EACH {
                all.extend_from_slice(&message(&format!("{tag}-{i}")));
            }
            all
        };
        let (a, b) = (burst("a"), burst("b"));
        let mut sa = TcpStream::connect(addr).await.expect("connect a");
        let mut sb = TcpStream::connect(addr).await.expect("connect b");
        let writers = glommio::spawn_local(async move {
            let (ra, rb) = future::zip(sa.write_all(&a), sb.write_all(&b)).await;
            ra.expect("burst a");
            rb.expect("burst b");
            (sa, sb)
        });
        // A consumer slower than the connections: the queue stays full.
        let mut order: Vec<ConnId> = Vec::new();
        while order.len() < 2 * EACH {
            match events.recv().await.expect("listener alive") {
                (conn, ListenerEvent::Message(_)) => order.push(conn),
                (_, ListenerEvent::Closed(end)) => panic!("closed early: {end:?}"),
            }
            future::yield_now().await;
        }
        let _streams = writers.await;
        let first = order[0];
        // Until one connection is done, the other has its turns: its longest wait is a few
        // reads' worth of the first one's messages, not the whole burst.
        let done_at = order
            .iter()
            .enumerate()
            .filter(|(_, c)| **c == first)
            .nth(EACH - 1)
            .map(|(i, _)| i)
            .expect("all of the first connection's messages");
        let other_before = order[..done_at].iter().filter(|c| **c != first).count();
        assert!(
            other_before >= EACH / 2,
            "the second connection got {other_before} of {EACH} through while the first sent all"
        );
        drop(lh);
    });
}

/// A next hop that writes all it has to say before it reads again (a blocking write, as simple
/// SIP servers do): 8 MB of responses against our 8 MB of requests, more than the socket
/// buffers of both sides hold. The flow must keep reading while its own write waits; when it
/// did not, each side waited for the other to read, for good on this test's volumes (and
/// until a zero-window probe, 0.2 s to seconds, when the peer read now and then).
#[test]
fn flow_reads_while_a_peer_that_writes_first_takes_none_of_our_bytes() {
    const REQUESTS: usize = 20_000;
    const RESPONSES: usize = 30_000;
    let l = std::net::TcpListener::bind((WRITE_FIRST_IP, 0)).expect("bind peer");
    let addr = l.local_addr().expect("peer addr");
    let peer = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut s, _) = l.accept().expect("accept");
        s.set_read_timeout(Some(TEST_LIMIT)).expect("read timeout");
        let one = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/TCP 127.0.0.110:5060;branch=z9hG4bK-w\r\n\
            From: <sip:romeo@xmpp.test>;tag=gw1\r\nTo: <sip:alice@sip.test>;tag=p1\r\n\
            Call-ID: write-first\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n";
        let blob: Vec<u8> = one
            .iter()
            .copied()
            .cycle()
            .take(one.len() * RESPONSES)
            .collect();
        // Everything first, reading nothing meanwhile.
        s.write_all(&blob).expect("responses written");
        let mut seen = 0;
        let mut tail = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        while seen < REQUESTS {
            let n = s.read(&mut buf).expect("read requests");
            assert!(n > 0, "flow closed after {seen} requests");
            tail.extend_from_slice(&buf[..n]);
            seen += tail.windows(8).filter(|w| w == b"MESSAGE ").count();
            // Keep a possible partial "MESSAGE " for the next read.
            let keep = tail.len().min(7);
            tail.drain(..tail.len() - keep);
        }
        // Tells the flow's owner that every request arrived.
        let done = String::from_utf8_lossy(one).replace("write-first", "all-read");
        s.write_all(done.as_bytes()).expect("last response written");
        seen
    });
    run(move || async move {
        let (h, rx) = SipConnection::spawn(ConnectionConfig::new(tcp_hop(addr)));
        assert!(matches!(next(&rx).await, Incoming::Up(_)));
        let responses = glommio::spawn_local(async move {
            let mut n = 0;
            loop {
                match next(&rx).await {
                    Incoming::Message(m) if m.call_id() == Ok("all-read") => break,
                    Incoming::Message(m) => {
                        assert_eq!(m.status(), Some(200));
                        n += 1;
                    }
                    other => panic!("flow ended after {n} responses: {other:?}"),
                }
            }
            (n, rx)
        });
        for i in 0..REQUESTS {
            h.send(message(&format!("w{i}"))).await.expect("queued");
        }
        let (n, _rx) = responses.await;
        assert_eq!(n, RESPONSES);
        drop(h);
    });
    // Each request starts with "MESSAGE " once; the Request-URI and CSeq lines do not repeat it.
    assert_eq!(peer.join().expect("peer thread"), REQUESTS);
}

/// What the deaf-peer tests write, 1 MiB a message.
fn filler() -> Vec<u8> {
    vec![b'x'; 1 << 20]
}

/// The deaf-peer listener's `send_queue`: its fillers are far more than both sides' socket
/// buffers hold (loopback TCP autotunes them to a few MiB), so the flow's write stops.
const DEAF_QUEUE: usize = 64;

/// A listener connection whose peer sends a request and then reads nothing: the flow's write
/// stops and its queue fills; the consumer's send past `send_queue` fails at once and closes
/// it. The flow itself, stuck in its write, ends after `write_stall`, and the listener serves
/// another connection. (Before the bound the flow's write waited for ever.)
#[test]
fn listener_closes_a_connection_whose_peer_takes_none_of_our_bytes() {
    const STALL: Duration = Duration::from_millis(300);
    run(|| async {
        let d = deaf_listener(STALL).await;
        let (lh, events, addr, conn) = (&d.lh, &d.events, d.addr, d.conn);
        let (accepted, refused) = fill_until_refused(lh, conn);
        assert_eq!(refused, SendError::PeerNotReading);
        assert_eq!(accepted, DEAF_QUEUE, "the queue took {accepted} writes");
        match events.recv().await.expect("listener alive") {
            (c, ListenerEvent::Closed(end)) => {
                assert_eq!(c, conn);
                assert_eq!(end, FlowEnd::WriteStall(STALL));
            }
            (_, ListenerEvent::Message(m)) => panic!("unexpected {m:?}"),
        }
        // The listener serves the next connection.
        let mut other = TcpStream::connect(addr).await.expect("connect");
        other.write_all(&message("after-1")).await.expect("request");
        let (c2, m2) = match events.recv().await.expect("listener alive") {
            (c, ListenerEvent::Message(m)) => (c, m),
            (_, ListenerEvent::Closed(end)) => panic!("closed: {end:?}"),
        };
        assert_ne!(c2, conn);
        lh.send(c2, ok_for(&m2)).expect("connection open");
        read_until_ok(&mut other).await;
        drop(d.deaf);
    });
}

/// A listener with `send_queue` [`DEAF_QUEUE`], and a connection to it whose peer sent one
/// request and reads nothing.
struct DeafListener {
    lh: ListenerHandle,
    events: LocalReceiver<(ConnId, ListenerEvent)>,
    addr: SocketAddr,
    deaf: TcpStream,
    conn: ConnId,
}

async fn deaf_listener(write_stall: Duration) -> DeafListener {
    let mut cfg = ListenerConfig::new(vec![SocketAddr::from((DEAF_PEER_IP, 0))]);
    cfg.send_queue = DEAF_QUEUE;
    cfg.write_stall = write_stall;
    let (lh, events) = SipListener::spawn(cfg).expect("listen");
    let addr = lh.local_addrs()[0];
    let mut deaf = TcpStream::connect(addr).await.expect("connect");
    deaf.write_all(&message("deaf-1")).await.expect("request");
    let conn = match events.recv().await.expect("listener alive") {
        (c, ListenerEvent::Message(_)) => c,
        (_, ListenerEvent::Closed(end)) => panic!("closed early: {end:?}"),
    };
    DeafListener {
        lh,
        events,
        addr,
        deaf,
        conn,
    }
}

/// Sends 1 MiB fillers on `conn` until a send fails: how many were taken, and the refusal.
fn fill_until_refused(lh: &ListenerHandle, conn: ConnId) -> (usize, SendError) {
    let mut sent = 0;
    loop {
        match lh.send(conn, filler()) {
            Ok(()) => sent += 1,
            Err(e) => return (sent, e),
        }
        assert!(
            sent <= DEAF_QUEUE,
            "{sent} MiB queued for a peer that reads nothing"
        );
    }
}

/// Reads from `s` until a `SIP/2.0 200 OK` has arrived.
async fn read_until_ok(s: &mut TcpStream) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.windows(14).any(|w| w == b"SIP/2.0 200 OK") {
        let n = s.read(&mut buf).await.expect("read");
        assert!(n > 0, "closed before the answer");
        got.extend_from_slice(&buf[..n]);
    }
}

/// One peer that reads nothing holds nobody else: with a `write_stall` far longer than the test,
/// the consumer's sends to the deaf connection fail as soon as its queue is full, and a request
/// on another connection of the same listener is answered while the deaf connection's write
/// still waits. (When sends waited for room, the consumer waited here for `write_stall`, and
/// every connection of the shard with it.) A request the deaf peer sends after that is not
/// delivered; closing the deaf peer ends its flow.
#[test]
fn a_peer_that_reads_nothing_does_not_hold_the_other_connections() {
    run(|| async {
        let d = deaf_listener(Duration::from_secs(3600)).await;
        let (lh, events, addr, conn) = (&d.lh, &d.events, d.addr, d.conn);
        let mut deaf = d.deaf;
        let (_, refused) = fill_until_refused(lh, conn);
        assert_eq!(refused, SendError::PeerNotReading);
        assert_eq!(lh.send(conn, filler()), Err(SendError::UnknownConnection));
        assert_eq!(lh.connections(), 0, "the deaf connection is still listed");
        // A request on the closed connection is not taken: nothing could answer it.
        deaf.write_all(&message("deaf-2")).await.expect("request");
        let mut other = TcpStream::connect(addr).await.expect("connect");
        other.write_all(&message("other-1")).await.expect("request");
        let (c2, m2) = match events.recv().await.expect("listener alive") {
            (c, ListenerEvent::Message(m)) if c != conn => (c, m),
            (c, ev) => panic!("expected the other connection's request, got {c}: {ev:?}"),
        };
        lh.send(c2, ok_for(&m2)).expect("connection open");
        read_until_ok(&mut other).await;
        drop(deaf);
        match events.recv().await.expect("listener alive") {
            (c, ListenerEvent::Closed(end)) => {
                assert_eq!(c, conn);
                // Ended by us once it refused deaf-2, or by the peer's reset before that.
                assert!(
                    matches!(
                        end,
                        FlowEnd::LocalClose | FlowEnd::Io(_) | FlowEnd::PeerClosed
                    ),
                    "{end:?}"
                );
            }
            (c, ev) => panic!("expected the deaf connection's end, got {c}: {ev:?}"),
        }
    });
}

/// The same on the outbound flow: a next hop that accepts and reads nothing is given up after
/// `write_stall` (and dialled again), instead of holding our writes for ever.
#[test]
fn next_hop_that_takes_none_of_our_bytes_ends_the_flow() {
    const STALL: Duration = Duration::from_millis(300);
    run(|| async {
        let l = TcpListener::bind(SocketAddr::from((DEAF_HOP_IP, 0))).expect("bind");
        let addr = l.local_addr().expect("addr");
        // Accepts and keeps every connection, reading nothing.
        let deaf = glommio::spawn_local(async move {
            let mut held = Vec::new();
            while let Ok(s) = l.accept().await {
                held.push(s);
            }
        });
        let mut cfg = ConnectionConfig::new(tcp_hop(addr));
        cfg.send_queue = 2;
        cfg.write_stall = STALL;
        let (h, rx) = SipConnection::spawn(cfg);
        assert!(matches!(next(&rx).await, Incoming::Up(_)));
        let h2 = h.clone();
        let sender = glommio::spawn_local(async move {
            for _ in 0..1000 {
                if h2.send(filler()).await.is_err() {
                    break;
                }
            }
        });
        match next(&rx).await {
            Incoming::Down(end) => assert_eq!(end, FlowEnd::WriteStall(STALL)),
            other => panic!("expected Down, got {other:?}"),
        }
        drop(sender);
        drop(h);
        drop(deaf);
    });
}
