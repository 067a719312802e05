//! Framer throughput on a realistic S2S stream, against quick-xml reading the same stream
//! event by event (the obvious alternative, which does no restricted-XML or cap checks).

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use quick_xml::events::Event as XmlEvent;
use quick_xml::Reader;
use stanza_router::xml::{Event, Framer, FramerLimits};

const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:server' \
    xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' \
    to='a.example' from='b.example' id='s1' version='1.0'>";

/// A stream of `n` stanzas: 200-byte messages, presence with children, iq, whitespace pings.
fn stream(n: usize) -> (Vec<u8>, usize) {
    let mut s = String::from(HEADER);
    for i in 0..n {
        match i % 4 {
            0 | 1 => s.push_str(&format!(
                "<message from='juliet@b.example/balcony' to='romeo@a.example' type='chat' \
                 id='m{i:06}'><body>Wherefore art thou, Romeo? &lt;3 — {i:06}</body></message>"
            )),
            2 => s.push_str(&format!(
                "<presence from='juliet@b.example/balcony' to='romeo@a.example' id='p{i}'>\
                 <show>away</show><status xml:lang='en'>be right back</status>\
                 <c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='https://example.org' \
                 ver='QgayPKawpkPSDYmwT/WM94uAlu0='/></presence>\n"
            )),
            _ => s.push_str(&format!(
                "<iq type='get' id='i{i}' from='b.example' to='a.example'>\
                 <ping xmlns='urn:xmpp:ping'/></iq> "
            )),
        }
    }
    s.push_str("</stream:stream>");
    (s.into_bytes(), n)
}

/// Frames `data` fed in 16 KiB reads; returns the number of stanzas.
fn frame(data: &[u8]) -> usize {
    let mut f = Framer::new(FramerLimits::post_auth());
    let mut stanzas = 0;
    for chunk in data.chunks(16 * 1024) {
        f.feed(chunk);
        while let Ok(Some(ev)) = f.next_event() {
            if let Event::Stanza(s) = ev {
                black_box(s.to());
                stanzas += 1;
            }
        }
    }
    stanzas
}

/// Reads `data` with quick-xml event by event; returns the number of events.
fn quick_xml_events(data: &[u8]) -> usize {
    let mut r = Reader::from_reader(data);
    let mut events = 0;
    loop {
        match r.read_event() {
            Ok(XmlEvent::Eof) | Err(_) => return events,
            Ok(e) => {
                black_box(&e);
                events += 1;
            }
        }
    }
}

/// Reads `data` with quick-xml as a checking framer built on it would have to: end-name checks
/// (default), every attribute parsed with duplicate checks, text unescaped; returns the events.
fn quick_xml_checked(data: &[u8]) -> usize {
    let mut r = Reader::from_reader(data);
    let mut events = 0;
    loop {
        match r.read_event() {
            Ok(XmlEvent::Eof) | Err(_) => return events,
            Ok(XmlEvent::Start(e)) | Ok(XmlEvent::Empty(e)) => {
                for a in e.attributes() {
                    let _ = black_box(a.map(|a| a.unescape_value().map(|v| v.len())));
                }
                events += 1;
            }
            Ok(XmlEvent::Text(t)) => {
                let _ = black_box(t.unescape().map(|v| v.len()));
                events += 1;
            }
            Ok(e) => {
                black_box(&e);
                events += 1;
            }
        }
    }
}

fn bench(c: &mut Criterion) {
    let (data, n) = stream(10_000);
    assert_eq!(frame(&data), n);
    for (label, throughput) in [
        ("bytes", Throughput::Bytes(data.len() as u64)),
        ("stanzas", Throughput::Elements(n as u64)),
    ] {
        let mut g = c.benchmark_group(format!("framer_{label}"));
        g.throughput(throughput);
        g.bench_function("stanza_router_framer", |b| {
            b.iter(|| frame(black_box(&data)))
        });
        g.bench_function("quick_xml_reader", |b| {
            b.iter(|| quick_xml_events(black_box(&data)))
        });
        g.bench_function("quick_xml_reader_checked", |b| {
            b.iter(|| quick_xml_checked(black_box(&data)))
        });
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .measurement_time(std::time::Duration::from_secs(3))
        .warm_up_time(std::time::Duration::from_secs(1))
        .sample_size(20);
    targets = bench
}
criterion_main!(benches);
