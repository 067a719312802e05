//! How fast the SIP sink answers, on one core, against the project's full parser as the
//! alternative: `cargo run --release -p loadgen --example sink_speed [N]`.
//!
//! Both sides get the same N router-like MESSAGEs (200-byte body) in 256 KiB reads and write a
//! 200 per MESSAGE into a reused buffer: (a) the sink's byte scan (`SinkConn::process`), (b) the
//! project's `SipFramer` + `validate` + `response_to` builder. Then (c) the sink over loopback
//! TCP, fed by a writer thread (run under `taskset -c 0` to keep both on one core, or
//! `taskset -c 0,1` to see the sink's own ceiling).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use loadgen::correlator::{Correlator, Kind};
use loadgen::sip_sink::{self, SinkConn};
use stanza_router::sip::framer::{Framed, SipFramer};
use stanza_router::sip::parse::Limits;
use stanza_router::sip::serialize::Request;
use stanza_router::sip::transaction::response_to;

fn message(seq: u64) -> Vec<u8> {
    let body = format!("seq={seq} {}", "x".repeat(200));
    Request::builder("MESSAGE", "sip:user17@corp.test")
        .via(
            "TCP",
            "corp.test",
            None,
            &format!("z9hG4bK.5eed1234abcd.{seq}"),
            true,
        )
        .max_forwards(70)
        .from(None, "sip:lg0@p0.partner.test", Some("a1b2c3d4e5f60718"))
        .to(None, "sip:user17@corp.test", None)
        .call_id(&format!("0123456789abcdef0123456789ab{seq:04}"))
        .cseq(1, "MESSAGE")
        .body("text/plain;charset=UTF-8", body.as_bytes())
        .expect("valid message")
}

fn rate(n: u64, t: Instant) -> String {
    let s = t.elapsed().as_secs_f64();
    format!("{:>9.0} msgs/s ({:.3} s)", n as f64 / s, s)
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let mut input = Vec::new();
    for seq in 0..n {
        input.extend_from_slice(&message(seq));
    }
    println!(
        "{n} MESSAGEs, {} bytes each on average",
        input.len() as u64 / n
    );
    const CHUNK: usize = 256 * 1024;

    // (a) the sink's byte scan.
    let mut conn = SinkConn::new(None);
    let mut out = Vec::with_capacity(1 << 20);
    let (mut seen, mut at, mut end) = (0u64, 0usize, 0usize);
    let t = Instant::now();
    while at < input.len() {
        end = (end + CHUNK).min(input.len());
        at += conn
            .process(&input[at..end], &mut out, |_| seen += 1)
            .expect("frames");
        out.clear();
    }
    assert_eq!(seen, n);
    println!("byte scan sink:             {}", rate(n, t));

    // (b) the project's framer + validate + response builder.
    let mut framer = SipFramer::new(Limits::default());
    let mut answered = 0u64;
    let t = Instant::now();
    for chunk in input.chunks(CHUNK) {
        framer.feed(chunk).expect("feed");
        while let Some(item) = framer.poll() {
            if let Ok(Framed::Message(m)) = item {
                m.validate().expect("valid");
                let r = response_to(&m, 200, "OK", Some("tag1"))
                    .and_then(|b| b.finish())
                    .expect("response");
                out.extend_from_slice(&r);
                answered += 1;
            }
        }
        out.clear();
    }
    assert_eq!(answered, n);
    println!("SipFramer + response_to:    {}", rate(n, t));

    // (c) the sink over loopback TCP.
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    let input = Arc::new(input);
    let feed = input.clone();
    let writer = std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).expect("connect");
        let mut r = s.try_clone().expect("clone");
        // Drain the answers so the sink never blocks on a full socket.
        let drain = std::thread::spawn(move || {
            let mut b = vec![0u8; 1 << 16];
            while matches!(r.read(&mut b), Ok(k) if k > 0) {}
        });
        s.write_all(&feed).expect("write");
        s.shutdown(std::net::Shutdown::Write).ok();
        drain.join().ok();
    });
    let (tcp, _) = l.accept().expect("accept");
    let corr = Correlator::new(Instant::now(), (n as usize).next_power_of_two(), 1);
    for seq in 0..n {
        corr.register(seq, 0, 0, 0, true, Kind::Message);
    }
    let stop = AtomicBool::new(false);
    let t = Instant::now();
    let (rec, counts, _) = sip_sink::serve(tcp, SinkConn::new(None), &corr, &stop);
    let line = rate(n, t);
    writer.join().ok();
    assert_eq!(counts.messages, n);
    assert_eq!(rec.delivered, n);
    println!("sink over loopback TCP:     {line} (incl. Correlator::delivered)");
}
