//! Gateway translation throughput, one core, no I/O: what a shard does per stanza between the
//! framer and the SIP flow (and back), measured on the same public functions the drivers call.
//!
//! * XMPP → SIP: read the `<message/>`'s fields, map them (RFC 7572), map both addresses
//!   (RFC 7247) and serialize the SIP MESSAGE request.
//! * SIP → XMPP: parse and validate the MESSAGE, map both addresses and the body, serialize the
//!   `<message/>` stanza.
//! * Presence both ways: PIDF → XMPP presence stanza; XMPP presence → PIDF.
//!
//! Baseline in the same run: the SIP parse + validate alone and the framer alone, so the
//! translation's own share can be read off.

use bytes::Bytes;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use stanza_router::gateway::address::{jid_to_sip_uri, sip_uri_to_jid};
use stanza_router::gateway::message::{
    sip_from_xmpp, write_message_stanza, xmpp_from_sip, MessageLimits, SipMessage as SipText,
};
use stanza_router::gateway::outbound_message::xmpp_message;
use stanza_router::gateway::presence::{pidf_from_presence, presence_from_pidf};
use stanza_router::gateway::presence_gateway::{write_presence_stanza, xmpp_presence};
use stanza_router::sip::{HeaderName, Request, SipMessage};
use stanza_router::xml::{Event, Framer, FramerLimits, Stanza};

const HEADER: &[u8] = b"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' from='a.example' to='b.example' version='1.0'>";
const XMPP_MESSAGE: &[u8] = b"<message type='chat' from='juliet@a.example/balcony' to='romeo@b.example' id='m-000001' xml:lang='en'><body>Wherefore art thou, Romeo? &lt;3 -- 000001</body><subject>balcony</subject><thread>th-1</thread></message>";
const XMPP_PRESENCE: &[u8] = b"<presence from='juliet@a.example/balcony' to='romeo@b.example'><show>away</show><status xml:lang='en'>be right back</status><priority>5</priority></presence>";

const SIP_MESSAGE: &str = "MESSAGE sip:juliet@a.example SIP/2.0\r\n\
Via: SIP/2.0/TLS pool.b.example:5061;branch=z9hG4bK776asdhds;rport\r\n\
Max-Forwards: 69\r\n\
From: \"Romeo\" <sip:romeo@b.example>;tag=49583\r\n\
To: <sip:juliet@a.example>\r\n\
Call-ID: a84b4c76e66710@pool.b.example\r\n\
CSeq: 1 MESSAGE\r\n\
Content-Type: text/plain; charset=UTF-8\r\n\
Content-Language: en\r\n\
Content-Length: 39\r\n\
\r\n\
Wherefore art thou, Juliet? <3 -- 0001\n";

const PIDF: &str = "<?xml version='1.0' encoding='UTF-8'?><presence xmlns='urn:ietf:params:xml:ns:pidf' entity='sip:romeo@b.example'><tuple id='t1'><status><basic>open</basic></status><note xml:lang='en'>in a meeting</note></tuple></presence>";

fn stanza(bytes: &[u8]) -> Stanza {
    let mut f = Framer::new(FramerLimits::post_auth());
    f.feed(HEADER);
    f.feed(bytes);
    assert!(matches!(f.next_event(), Ok(Some(Event::StreamOpen(_)))));
    match f.next_event() {
        Ok(Some(Event::Stanza(s))) => s,
        other => panic!("fixture stanza: {other:?}"),
    }
}

fn xmpp_to_sip(s: &Stanza, limits: &MessageLimits, out: Vec<u8>) -> Vec<u8> {
    let m = xmpp_message(s).expect("message");
    let sip = sip_from_xmpp(&m, limits).expect("maps").expect("has body");
    let from = s.from().expect("from");
    let to = s.to().expect("to");
    let from_uri = jid_to_sip_uri(&from).expect("from maps");
    let to_uri = jid_to_sip_uri(&to).expect("to maps");
    let call_id = sip.call_id.as_deref().unwrap_or("c1");
    let mut b = Request::builder_in(out, "MESSAGE", &to_uri)
        .via("TCP", "127.0.0.1", None, "z9hG4bKbench.1", true)
        .max_forwards(70)
        .from(None, &from_uri, Some("t1"))
        .to(None, &to_uri, None)
        .call_id(call_id)
        .cseq(1, "MESSAGE");
    if let Some(l) = &sip.content_language {
        b = b.header(HeaderName::ContentLanguage, l);
    }
    b.body(&sip.content_type, &sip.body).expect("serializes")
}

fn sip_to_xmpp(raw: &Bytes, limits: &MessageLimits, out: &mut Vec<u8>) {
    let m = SipMessage::parse(raw.clone()).expect("parses");
    m.validate().expect("valid");
    let from = sip_uri_to_jid(m.from().expect("from").uri).expect("from maps");
    let to = sip_uri_to_jid(m.request_uri().expect("ruri")).expect("to maps");
    let text = SipText {
        content_type: std::str::from_utf8(m.header(HeaderName::ContentType).unwrap_or(b""))
            .unwrap_or("")
            .to_owned(),
        content_language: m.content_languages().next().map(str::to_owned),
        subject: None,
        call_id: m.call_id().ok().map(str::to_owned),
        body: m.body().to_vec(),
    };
    let xm = xmpp_from_sip(&text, limits).expect("maps");
    out.clear();
    write_message_stanza(&from, &to, Some("sip0-1"), &xm, out);
}

fn bench(c: &mut Criterion) {
    let limits = MessageLimits::default();
    let msg = stanza(XMPP_MESSAGE);
    let pres = stanza(XMPP_PRESENCE);
    let sip = Bytes::from_static(SIP_MESSAGE.as_bytes());
    let mut g = c.benchmark_group("translate");
    g.throughput(Throughput::Elements(1));
    g.bench_function("xmpp_message_to_sip_request", |b| {
        let mut out = Vec::with_capacity(1024);
        b.iter(|| {
            out.clear();
            out = xmpp_to_sip(black_box(&msg), &limits, std::mem::take(&mut out));
            black_box(out.len())
        })
    });
    g.bench_function("sip_message_to_xmpp_stanza", |b| {
        let mut out = Vec::with_capacity(1024);
        b.iter(|| {
            sip_to_xmpp(black_box(&sip), &limits, &mut out);
            black_box(out.len())
        })
    });
    g.bench_function("baseline_sip_parse_validate", |b| {
        b.iter(|| {
            let m = SipMessage::parse(black_box(sip.clone())).expect("parses");
            m.validate().expect("valid");
            black_box(m.header_count())
        })
    });
    g.bench_function("baseline_framer_one_message", |b| {
        b.iter(|| black_box(stanza(black_box(XMPP_MESSAGE)).as_bytes().len()))
    });
    g.bench_function("pidf_to_xmpp_presence", |b| {
        let mut out = Vec::with_capacity(512);
        b.iter(|| {
            let p = presence_from_pidf(black_box(PIDF.as_bytes())).expect("pidf");
            out.clear();
            write_presence_stanza(
                "romeo@b.example",
                "juliet@a.example",
                None,
                Some(&p),
                &mut out,
            );
            black_box(out.len())
        })
    });
    g.bench_function("xmpp_presence_to_pidf", |b| {
        b.iter(|| {
            let p = xmpp_presence(black_box(&pres));
            black_box(pidf_from_presence("sip:juliet@a.example", &p, "xmpp").len())
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
