//! Feeds arbitrary bytes in arbitrary splits; checks the framer never panics, that the split
//! never changes the events or the error, and that every stanza view is self-consistent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stanza_router::gateway::children::for_each_child;
use stanza_router::xml::{Event, Framer, FramerError, FramerLimits};

const HEADER: &[u8] = b"<stream:stream xmlns='jabber:server' \
    xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback'>";

fn run(data: &[u8], cuts: &[usize]) -> (Vec<Event>, Option<FramerError>) {
    let limits = FramerLimits { max_stanza_bytes: 2048, ..FramerLimits::post_auth() };
    let mut f = Framer::new(limits);
    let mut events = Vec::new();
    let mut last = 0;
    for &c in cuts.iter().chain(std::iter::once(&data.len())) {
        let c = c.clamp(last, data.len());
        f.feed(&data[last..c]);
        last = c;
        loop {
            match f.next_event() {
                Ok(Some(e)) => {
                    if let Event::Stanza(s) = &e {
                        // Exercise the view: none of these may panic.
                        let _ = (s.kind(), s.name(), s.namespace(), s.to(), s.from(), s.id());
                        let _ = (s.first_child(), s.text());
                        let mut out = Vec::new();
                        s.write_children(&mut out);
                        assert!(std::str::from_utf8(&out).is_ok());
                        // The gateway's direct child scan reads only framer-checked stanzas.
                        let _ = for_each_child(s, |c| drop(c));
                    }
                    events.push(e);
                }
                Ok(None) => break,
                Err(e) => {
                    assert_eq!(f.next_event(), Err(e.clone()), "errors are sticky");
                    return (events, Some(e));
                }
            }
        }
    }
    (events, None)
}

fuzz_target!(|input: &[u8]| {
    // First byte: whether to prepend a valid header (reach the stanza states more often);
    // next bytes: split points; the rest: the stream.
    let Some((&mode, rest)) = input.split_first() else { return };
    let ncuts = usize::from(mode >> 1) % 8;
    if rest.len() < ncuts * 2 {
        return;
    }
    let (cut_bytes, body) = rest.split_at(ncuts * 2);
    let mut data = Vec::new();
    if mode & 1 == 1 {
        data.extend_from_slice(HEADER);
    }
    data.extend_from_slice(body);
    let mut cuts: Vec<usize> = cut_bytes
        .chunks(2)
        .map(|c| usize::from(u16::from_le_bytes([c[0], c[1]])) % (data.len() + 1))
        .collect();
    cuts.sort_unstable();
    let whole = run(&data, &[]);
    assert_eq!(run(&data, &cuts), whole, "split changed the outcome");
    let bytewise: Vec<usize> = (1..data.len()).collect();
    if data.len() < 512 {
        assert_eq!(run(&data, &bytewise), whole, "one-byte reads changed the outcome");
    }
});
