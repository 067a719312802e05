//! The whole sans-IO receive path of an authenticated inbound S2S stream: framer, stanza
//! classification, `from`/`to` address checks, event queue. Realistic chat messages are fed
//! through `InboundStream::handle_bytes` in 16 KiB reads and drained with `poll_event`.
//!
//! Comparison: the bare `Framer` (post-auth limits) on the same bytes, so the difference is the
//! cost the stream adds on top of framing.

use std::time::{Duration, Instant};

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use stanza_router::xml::{Event, Framer, FramerLimits};

#[path = "common/s2s.rs"]
mod s2s;
use s2s::{authenticated_stream, messages, receive_all, BenchPolicy, CHUNK};

const N: usize = 10_000;

/// Frames `data` in [`CHUNK`]-byte reads after the stream header; returns the stanzas.
fn framer_only(header: &[u8], data: &[u8]) -> usize {
    let mut f = Framer::new(FramerLimits::post_auth());
    f.feed(header);
    let mut stanzas = 0;
    for chunk in data.chunks(CHUNK) {
        f.feed(chunk);
        while let Some(ev) = f.next_event().expect("valid stream") {
            if let Event::Stanza(s) = ev {
                black_box(&s);
                stanzas += 1;
            }
        }
    }
    stanzas
}

fn bench(c: &mut Criterion) {
    let policy = BenchPolicy::new();
    let now = Instant::now();
    let data = messages(N);
    assert_eq!(
        receive_all(&mut authenticated_stream(&policy, now), &data, &policy, now),
        N
    );
    assert_eq!(framer_only(s2s::HEADER.as_bytes(), &data), N);
    eprintln!(
        "{N} messages, {} bytes ({} bytes/message)",
        data.len(),
        data.len() / N
    );

    for (label, throughput) in [
        ("stanzas", Throughput::Elements(N as u64)),
        ("bytes", Throughput::Bytes(data.len() as u64)),
    ] {
        let mut g = c.benchmark_group(format!("s2s_receive_{label}"));
        g.throughput(throughput);
        g.bench_function("inbound_stream", |b| {
            b.iter_batched_ref(
                || authenticated_stream(&policy, now),
                |stream| receive_all(stream, black_box(&data), &policy, now),
                BatchSize::LargeInput,
            )
        });
        g.bench_function("framer_only", |b| {
            b.iter(|| framer_only(s2s::HEADER.as_bytes(), black_box(&data)))
        });
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(20);
    targets = bench
}
criterion_main!(benches);
