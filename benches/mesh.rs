//! Queue mesh: glommio shared channels (what the router uses) against a crossbeam `ArrayQueue`
//! with a glommio doorbell for the wake-up, one producer shard → one consumer shard, each pinned
//! to its own core. Throughput in messages/s; the message is 32 bytes, like a stanza view handle.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use crossbeam_queue::ArrayQueue;
use glommio::channels::shared_channel;
use glommio::{LocalExecutorBuilder, Placement};

type Msg = [u64; 4];
const CAPACITY: usize = 1024;
const BATCH: usize = 64;

fn executor(cpu: usize) -> LocalExecutorBuilder {
    LocalExecutorBuilder::new(Placement::Fixed(cpu % num_cpus()))
        .io_memory(512 * 1024)
        .ring_depth(64)
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// glommio shared channel: one `send().await` per message.
fn glommio_channel(n: u64) -> Duration {
    let (tx, rx) = shared_channel::new_bounded::<Msg>(CAPACITY);
    let start = Arc::new(std::sync::Barrier::new(2));
    let s2 = start.clone();
    let consumer = executor(1)
        .spawn(move || async move {
            let rx = rx.connect().await;
            s2.wait();
            let t = Instant::now();
            let mut sum = 0u64;
            for _ in 0..n {
                sum = sum.wrapping_add(rx.recv().await.expect("producer alive")[0]);
            }
            std::hint::black_box(sum);
            t.elapsed()
        })
        .unwrap();
    let producer = executor(0)
        .spawn(move || async move {
            let tx = tx.connect().await;
            start.wait();
            for i in 0..n {
                tx.send([i, 0, 0, 0]).await.expect("consumer alive");
            }
        })
        .unwrap();
    producer.join().unwrap();
    consumer.join().unwrap()
}

/// crossbeam ArrayQueue + doorbell: pushes in batches, rings once per batch (or when full).
fn crossbeam_doorbell(n: u64) -> Duration {
    let q = Arc::new(ArrayQueue::<Msg>::new(CAPACITY));
    let (bell_tx, bell_rx) = shared_channel::new_bounded::<()>(1);
    let start = Arc::new(std::sync::Barrier::new(2));
    let (q2, s2) = (q.clone(), start.clone());
    let consumer = executor(1)
        .spawn(move || async move {
            let bell = bell_rx.connect().await;
            s2.wait();
            let t = Instant::now();
            let (mut got, mut sum) = (0u64, 0u64);
            while got < n {
                while let Some(m) = q2.pop() {
                    sum = sum.wrapping_add(m[0]);
                    got += 1;
                }
                if got < n {
                    bell.recv().await.expect("producer alive");
                }
            }
            std::hint::black_box(sum);
            t.elapsed()
        })
        .unwrap();
    let producer = executor(0)
        .spawn(move || async move {
            let bell = bell_tx.connect().await;
            start.wait();
            let mut i = 0u64;
            while i < n {
                let mut pushed = 0;
                while pushed < BATCH && i < n {
                    match q.push([i, 0, 0, 0]) {
                        Ok(()) => {
                            i += 1;
                            pushed += 1;
                        }
                        Err(_) => {
                            // Full: make sure the consumer is awake, then let it run.
                            let _ = bell.try_send(());
                            futures_lite::future::yield_now().await;
                        }
                    }
                }
                let _ = bell.try_send(());
            }
        })
        .unwrap();
    producer.join().unwrap();
    consumer.join().unwrap()
}

fn mesh(c: &mut Criterion) {
    let mut g = c.benchmark_group("mesh");
    g.throughput(Throughput::Elements(1));
    g.measurement_time(Duration::from_secs(4));
    g.sample_size(10);
    g.bench_function("glommio_shared_channel", |b| b.iter_custom(glommio_channel));
    g.bench_function("crossbeam_arrayqueue_doorbell", |b| {
        b.iter_custom(crossbeam_doorbell)
    });
    g.finish();
}

criterion_group!(benches, mesh);
criterion_main!(benches);
