//! `loadgen hiccups`: how often, and how long, a CPU is taken away from a thread that never
//! gives it up.
//!
//! A thread pinned to the CPU reads the monotonic clock in a loop. Consecutive reads are tens
//! of nanoseconds apart; a gap of 0.1 ms or more is time the thread did not run: an interrupt
//! handled, a kernel thread scheduled on that CPU, or (in a virtual machine) the virtual CPU
//! descheduled by the host. Nothing a server does on that CPU can be faster than that.
//!
//! This is the noise floor under a latency figure: a server at 90% of its CPU that loses it for
//! 5 ms answers late for the 5 ms and for as long again while it catches up, so a few such gaps
//! a second move its p99. `--load-cpu` keeps another CPU busy meanwhile (as the loadgen does
//! during a benchmark): some hosts take time from a guest only when all its CPUs are busy.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// Gaps shorter than this are the loop's own cost and cache misses, not lost time.
pub const GAP_FLOOR_NS: u64 = 100_000;

/// Upper bounds of the size classes reported, ns (the last class is open).
const CLASSES_NS: [u64; 6] = [
    200_000, 500_000, 1_000_000, 2_000_000, 5_000_000, 10_000_000,
];

/// Class labels, in the order of [`Gaps::by_class`].
pub const CLASS_LABELS: [&str; 7] = [
    "0.1-0.2 ms",
    "0.2-0.5 ms",
    "0.5-1 ms",
    "1-2 ms",
    "2-5 ms",
    "5-10 ms",
    ">= 10 ms",
];

/// The gaps seen over a measurement.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Gaps {
    /// Time observed, ns.
    pub span_ns: u64,
    /// Gaps of [`GAP_FLOOR_NS`] or more, by size class ([`CLASS_LABELS`]).
    pub by_class: [u64; 7],
    /// Their total, ns: time the thread did not run.
    pub lost_ns: u64,
    /// The longest gap, ns.
    pub max_ns: u64,
}

impl Gaps {
    /// Counts one gap between two clock reads.
    pub fn observe(&mut self, gap_ns: u64) {
        if gap_ns < GAP_FLOOR_NS {
            return;
        }
        let class = CLASSES_NS
            .iter()
            .position(|&hi| gap_ns < hi)
            .unwrap_or(CLASSES_NS.len());
        self.by_class[class] += 1;
        self.lost_ns += gap_ns;
        self.max_ns = self.max_ns.max(gap_ns);
    }

    /// Gaps of 0.1 ms or more.
    pub fn count(&self) -> u64 {
        self.by_class.iter().sum()
    }

    /// Gaps of 1 ms or more.
    pub fn count_over_1ms(&self) -> u64 {
        self.by_class[3..].iter().sum()
    }

    /// Share of the span the thread did not run.
    pub fn lost_share(&self) -> f64 {
        self.lost_ns as f64 / self.span_ns.max(1) as f64
    }

    /// One line for people.
    pub fn describe(&self) -> String {
        let classes: Vec<String> = CLASS_LABELS
            .iter()
            .zip(self.by_class.iter())
            .filter(|(_, n)| **n > 0)
            .map(|(l, n)| format!("{l}: {n}"))
            .collect();
        format!(
            "{} gaps >= 0.1 ms, {} >= 1 ms, {:.1} ms lost in all ({:.3}% of {:.1} s), longest {:.2} ms{}",
            self.count(),
            self.count_over_1ms(),
            self.lost_ns as f64 / 1e6,
            self.lost_share() * 100.0,
            self.span_ns as f64 / 1e9,
            self.max_ns as f64 / 1e6,
            if classes.is_empty() {
                String::new()
            } else {
                format!(" [{}]", classes.join(", "))
            }
        )
    }
}

/// What to measure.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Pin the measuring thread here (`None`: wherever it runs).
    pub cpu: Option<usize>,
    /// Keep this CPU busy with a spinning thread meanwhile.
    pub load_cpu: Option<usize>,
    /// How long.
    pub duration: Duration,
}

/// Spins on the clock for `plan.duration` and returns the gaps. Pinning failures are errors:
/// a measurement on the wrong CPU would answer another question.
pub fn measure(plan: &Plan) -> std::io::Result<Gaps> {
    let stop = Arc::new(AtomicBool::new(false));
    let load = match plan.load_cpu {
        Some(cpu) => {
            let stop = stop.clone();
            let (tx, rx) = std::sync::mpsc::channel();
            let h = thread::Builder::new()
                .name("hiccup-load".into())
                .spawn(move || {
                    let pinned = crate::sweep::affinity::pin_current(&[cpu]);
                    let ok = pinned.is_ok();
                    let _ = tx.send(pinned);
                    while ok && !stop.load(Ordering::Relaxed) {
                        std::hint::spin_loop();
                    }
                })?;
            rx.recv()
                .unwrap_or_else(|_| Err(std::io::Error::other("load thread died")))?;
            Some(h)
        }
        None => None,
    };
    let measured = thread::scope(|s| {
        s.spawn(|| -> std::io::Result<Gaps> {
            if let Some(cpu) = plan.cpu {
                crate::sweep::affinity::pin_current(&[cpu])?;
            }
            Ok(spin(plan.duration))
        })
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("measuring thread panicked")))
    });
    stop.store(true, Ordering::Relaxed);
    if let Some(h) = load {
        let _ = h.join();
    }
    measured
}

/// The measuring loop on the current thread.
fn spin(duration: Duration) -> Gaps {
    let start = Instant::now();
    let end = start + duration;
    let mut gaps = Gaps::default();
    let mut last = start;
    loop {
        let now = Instant::now();
        gaps.observe(now.duration_since(last).as_nanos() as u64);
        last = now;
        if now >= end {
            break;
        }
    }
    gaps.span_ns = last.duration_since(start).as_nanos() as u64;
    gaps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_below_the_floor_are_the_loop_and_count_for_nothing() {
        let mut g = Gaps::default();
        g.observe(40);
        g.observe(GAP_FLOOR_NS - 1);
        assert_eq!(g, Gaps::default());
    }

    #[test]
    fn gaps_fall_into_their_classes_and_add_up() {
        let mut g = Gaps::default();
        for ns in [
            100_000, 199_999, 200_000, 999_999, 1_000_000, 4_000_000, 9_000_000, 30_000_000,
        ] {
            g.observe(ns);
        }
        assert_eq!(g.by_class, [2, 1, 1, 1, 1, 1, 1]);
        assert_eq!(g.count(), 8);
        assert_eq!(g.count_over_1ms(), 4);
        assert_eq!(g.max_ns, 30_000_000);
        assert_eq!(
            g.lost_ns,
            100_000 + 199_999 + 200_000 + 999_999 + 1_000_000 + 4_000_000 + 9_000_000 + 30_000_000
        );
        g.span_ns = 1_000_000_000;
        assert!((g.lost_share() - 0.0454999).abs() < 1e-6);
        let line = g.describe();
        assert!(line.starts_with("8 gaps >= 0.1 ms, 4 >= 1 ms"), "{line}");
        assert!(line.contains(">= 10 ms: 1"), "{line}");
    }

    #[test]
    fn a_measurement_covers_its_duration_and_loses_less_than_it_spans() {
        let cpu = crate::sweep::affinity::allowed_cpus().unwrap()[0];
        let g = measure(&Plan {
            cpu: Some(cpu),
            load_cpu: None,
            duration: Duration::from_millis(50),
        })
        .unwrap();
        assert!(g.span_ns >= 50_000_000, "{g:?}");
        assert!(g.lost_ns <= g.span_ns, "{g:?}");
    }

    #[test]
    fn pinning_to_a_cpu_this_process_may_not_use_is_an_error() {
        let bad = libc::CPU_SETSIZE as usize - 1;
        let r = measure(&Plan {
            cpu: None,
            load_cpu: Some(bad),
            duration: Duration::from_millis(1),
        });
        assert!(r.is_err());
    }
}
