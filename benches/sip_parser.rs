//! SIP parser throughput on a realistic MESSAGE and NOTIFY (gateway traffic), ours against
//! `ezk-sip-types` (the maintained, runtime-free alternative) doing the same work: parse the
//! start line and headers, then read top Via branch, From tag, To URI, Call-ID, CSeq and
//! Content-Type, and take the body. Also the stream framer over many messages.

use bytes::Bytes;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use stanza_router::sip::{Framed, SipFramer, SipMessage};

const MESSAGE: &str = "MESSAGE sip:romeo@a.example SIP/2.0\r\n\
Via: SIP/2.0/TLS gw1.b.example:5061;branch=z9hG4bK776asdhds;rport\r\n\
Via: SIP/2.0/TLS proxy.b.example;branch=z9hG4bK4b43c2ff8.1;received=192.0.2.4\r\n\
Max-Forwards: 69\r\n\
From: \"Juliet Capulet\" <sip:juliet@b.example>;tag=49583\r\n\
To: <sip:romeo@a.example>\r\n\
Call-ID: a84b4c76e66710@gw1.b.example\r\n\
CSeq: 1 MESSAGE\r\n\
Record-Route: <sip:proxy.b.example;lr>\r\n\
Content-Type: text/plain; charset=UTF-8\r\n\
Content-Language: en\r\n\
Subject: balcony\r\n\
User-Agent: stanza-router/0.1\r\n\
Content-Length: 41\r\n\
\r\n\
Wherefore art thou, Romeo? <3 -- 000001\r\n";

const NOTIFY: &str = "NOTIFY sip:romeo@gw.a.example;transport=tls SIP/2.0\r\n\
Via: SIP/2.0/TLS pres.b.example:5061;branch=z9hG4bKnashds7\r\n\
Max-Forwards: 70\r\n\
From: <sip:juliet@b.example>;tag=ffd2\r\n\
To: <sip:romeo@a.example>;tag=xfg9\r\n\
Call-ID: 2010@gw.a.example\r\n\
CSeq: 7 NOTIFY\r\n\
Event: presence\r\n\
Subscription-State: active;expires=599\r\n\
Contact: <sip:pres.b.example;transport=tls>\r\n\
Content-Type: application/pidf+xml\r\n\
Content-Length: 230\r\n\
\r\n\
<?xml version='1.0' encoding='UTF-8'?><presence xmlns='urn:ietf:params:xml:ns:pidf' entity='pres:juliet@b.example'><tuple id='balcony'><status><basic>open</basic></status><note xml:lang='en'>be right back</note></tuple></presence>";

fn ours(buf: &Bytes) -> usize {
    let m = SipMessage::parse(buf.clone()).expect("parses");
    let via = m.top_via().expect("via");
    let from = m.from().expect("from");
    let to = m.to().expect("to");
    let cseq = m.cseq().expect("cseq");
    let ct = m.content_type().expect("content-type");
    black_box((
        via.branch(),
        from.tag(),
        to.uri,
        m.call_id().expect("call-id"),
        cseq.seq,
        ct.subtype,
    ));
    m.body().len()
}

fn ezk(buf: &Bytes) -> usize {
    use ezk_sip_types::header::typed::{CSeq, CallID, ContentType, FromTo, Via};
    use ezk_sip_types::msg::{MessageLine, PullParser};
    use ezk_sip_types::parse::Parse;
    use ezk_sip_types::{Headers, Name};
    let mut lines = PullParser::new(buf, 0);
    let first = lines.next().expect("line").expect("complete");
    let first = std::str::from_utf8(first).expect("utf8");
    let (_, line) = MessageLine::parse(buf)(first).expect("start line");
    let mut headers = Headers::with_capacity(16);
    for l in lines.by_ref() {
        let l = std::str::from_utf8(l.expect("complete")).expect("utf8");
        let (name, value) = l.split_once(':').expect("colon");
        headers.insert(
            Name::from(bytesstr::BytesStr::from_parse(buf, name.trim())),
            bytesstr::BytesStr::from_parse(buf, value.trim()),
        );
    }
    let head_end = lines.head_end();
    let via: Via = headers.get_named().expect("via");
    let from: FromTo = headers.get(Name::FROM).expect("from");
    let to: FromTo = headers.get(Name::TO).expect("to");
    let call_id: CallID = headers.get_named().expect("call-id");
    let cseq: CSeq = headers.get_named().expect("cseq");
    let ct: ContentType = headers.get_named().expect("content-type");
    let len: usize = headers
        .get_raw(&Name::CONTENT_LENGTH)
        .next()
        .and_then(|v| v.trim().parse().ok())
        .expect("content-length");
    black_box((line, via, from.tag, to.uri, call_id, cseq.cseq, ct));
    buf.slice(head_end..head_end + len).len()
}

fn bench(c: &mut Criterion) {
    for (name, text) in [("MESSAGE", MESSAGE), ("NOTIFY", NOTIFY)] {
        let buf = Bytes::from_static(text.as_bytes());
        assert_eq!(
            ours(&buf),
            ezk(&buf),
            "{name}: both parsers see the same body"
        );
        let mut g = c.benchmark_group(format!("sip_parse_{name}"));
        g.throughput(Throughput::Elements(1));
        g.bench_function("stanza_router", |b| b.iter(|| ours(black_box(&buf))));
        g.bench_function("ezk_sip_types", |b| b.iter(|| ezk(black_box(&buf))));
        g.finish();
    }
    let mut stream = Vec::new();
    for i in 0..1000 {
        stream.extend_from_slice(if i % 2 == 0 { MESSAGE } else { NOTIFY }.as_bytes());
    }
    let mut g = c.benchmark_group("sip_framer");
    g.throughput(Throughput::Elements(1000));
    g.bench_function("1000_msgs_16k_reads", |b| {
        b.iter(|| {
            let mut f = SipFramer::default();
            let mut n = 0;
            for chunk in stream.chunks(16 * 1024) {
                f.feed(chunk).expect("feed");
                while let Some(r) = f.poll() {
                    if let Framed::Message(m) = r.expect("frame") {
                        n += m.header_count();
                    }
                }
            }
            black_box(n)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
