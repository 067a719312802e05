//! The gateway's per-message CPU work on the inbound S2S → SIP path, without I/O, for a fixed
//! number of messages, for instruction counting (wall clock drifts on a shared VM):
//!
//! ```text
//! cargo build --release --example gateway_instructions
//! valgrind --tool=callgrind --toggle-collect='*router_*' --callgrind-out-file=/tmp/cg.out \
//!     target/release/examples/gateway_instructions 100000     # the router's side only
//! ```
//!
//! Per message: read the stanza's children, map it (RFC 7572), parse both addresses, write the
//! SIP MESSAGE, start a client transaction, then parse the pool's 200 and match it.

use std::time::Instant;

use bytes::Bytes;
use stanza_router::gateway::address::write_sip_uri_of;
use stanza_router::gateway::message::{sip_parts_from_xmpp, MessageLimits};
use stanza_router::gateway::message_request::MessageRequest;
use stanza_router::gateway::outbound_message::xmpp_message;
use stanza_router::sip::token::TokenGen;
use stanza_router::sip::transaction::{BranchGen, ClientTransactions, TxConfig};
use stanza_router::sip::SipMessage;
use stanza_router::xml::{Event, Framer, FramerLimits, Stanza};
use stanza_router::xmpp::jid::Jid;

// The router's allocator, so allocation costs count as they do there.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const HEADER: &[u8] = b"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' from='a.example' to='b.example' version='1.0'>";
const MESSAGE: &[u8] = b"<message type='chat' from='juliet@a.example/balcony' to='romeo@b.example' id='m-000001' xml:lang='en'><body>Wherefore art thou, Romeo? &lt;3 -- 000001 and some more text to make two hundred bytes of body, which is what the load generator sends by default in its messages workload ....</body></message>";

fn stanza() -> Stanza {
    let mut f = Framer::new(FramerLimits::post_auth());
    f.feed(HEADER);
    f.feed(MESSAGE);
    match (f.next_event(), f.next_event()) {
        (Ok(Some(Event::StreamOpen(_))), Ok(Some(Event::Stanza(s)))) => s,
        other => panic!("fixture: {other:?}"),
    }
}

/// The router's side of one message up to the write: map, write the request, start the
/// transaction (as `MessageGateway::build` and `send` do).
#[inline(never)]
fn router_send(
    s: &Stanza,
    limits: &MessageLimits,
    txs: &mut ClientTransactions,
    gens: &mut (BranchGen, TokenGen, String),
    now: Instant,
) -> Bytes {
    let m = xmpp_message(s).expect("message");
    let parts = sip_parts_from_xmpp(&m, limits)
        .expect("maps")
        .expect("body");
    let (from, to) = (s.from().expect("from"), s.to().expect("to"));
    let to_jid = Jid::split_checked(&to);
    let from_jid = Jid::split_checked(&from);
    let (branches, tokens, uris) = gens;
    uris.clear();
    write_sip_uri_of(&to_jid, uris).expect("to maps");
    let to_end = uris.len();
    write_sip_uri_of(&from_jid, uris).expect("from maps");
    let (to_uri, from_uri) = uris.split_at(to_end);
    let w = MessageRequest {
        via_host: "127.0.0.1",
        to_uri,
        from_uri,
        parts: &parts,
    }
    .write(branches, tokens)
    .expect("writes");
    txs.start_at(Bytes::from(w.bytes), w.branch, "MESSAGE", now)
        .expect("room");
    txs.poll_transmit().expect("queued")
}

/// The pool's side (not the router's work): parse the request, answer 200.
#[inline(never)]
fn pool_answer(sent: Bytes) -> Bytes {
    let request = SipMessage::parse(sent).expect("parses");
    let ok = stanza_router::sip::transaction::response_to(&request, 200, "OK", Some("p"))
        .and_then(|b| b.finish())
        .expect("200");
    Bytes::from(ok)
}

/// The router's side of the answer: parse the 200 and complete the transaction.
#[inline(never)]
fn router_settle(txs: &mut ClientTransactions, ok: Bytes, now: Instant) -> bool {
    let response = SipMessage::parse(ok).expect("200 parses");
    txs.on_response(&response, now).is_some()
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map_or(Ok(100_000), |a| a.parse())
        .unwrap_or_else(|_| {
            eprintln!("usage: gateway_instructions [MESSAGES]");
            std::process::exit(2);
        });
    let s = stanza();
    let limits = MessageLimits::default();
    let mut txs = ClientTransactions::new(TxConfig::default());
    let mut gens = (
        BranchGen::with_prefix("0123456789abcdef01234567"),
        TokenGen::with_key(1, 2),
        String::new(),
    );
    let now = Instant::now();
    let start = Instant::now();
    for _ in 0..n {
        let sent = router_send(&s, &limits, &mut txs, &mut gens, now);
        let ok = pool_answer(sent);
        assert!(router_settle(&mut txs, ok, now));
    }
    eprintln!(
        "{n} messages, {:.0} ns per message with the pool's side (wall clock, indicative only)",
        start.elapsed().as_nanos() as f64 / n as f64
    );
}
