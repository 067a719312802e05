//! Corrected latency by the second it completed in: the latency-over-time view.
//!
//! A run's p99 says how many requests were slow, not when. Spread evenly over the run, a high
//! p99 is the server's steady state; packed into a few seconds, it is an episode (a stall of
//! the server, of the machine, or of the loadgen) that the other seconds do not share. This log
//! tells the two apart.
//!
//! Every observing thread writes into one shared table of atomic counters, so nothing is
//! merged at the end and a thread's cost is two relaxed atomic adds per measured completion.
//! Buckets are log-linear, 8 per octave of microseconds: a percentile read from them is the
//! upper bound of its bucket, at most 12.5 % above the true value (and never above the
//! second's exact maximum, kept apart).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Values below this many microseconds each have their own bucket.
const LINEAR: u64 = 16;
/// Sub-buckets per octave above [`LINEAR`].
const PER_OCTAVE: u64 = 8;
/// Octaves kept above [`LINEAR`]: up to 2^26 µs (67 s); slower completions count in the top
/// bucket (their exact value still shows as the second's maximum).
const OCTAVES: u64 = 22;
/// Buckets per second.
const BUCKETS: usize = (LINEAR + OCTAVES * PER_OCTAVE) as usize;

/// One second's counters.
struct Second {
    counts: [AtomicU32; BUCKETS],
    max_ns: AtomicU64,
}

/// Corrected latency of measured completions, second by second from the run's epoch.
pub struct SecondLog {
    seconds: Box<[Second]>,
}

/// One second of the log, as reported.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct SecondLatency {
    /// End of the second, seconds since the start (as in the throughput timeline).
    pub t: f64,
    /// Measured completions in the second.
    pub count: u64,
    /// Median, ms (bucket upper bound, ≤ 12.5 % high).
    pub p50_ms: f64,
    /// 99th percentile, ms (bucket upper bound, ≤ 12.5 % high).
    pub p99_ms: f64,
    /// Largest, ms (exact).
    pub max_ms: f64,
}

/// The bucket of `us` microseconds.
fn bucket(us: u64) -> usize {
    if us < LINEAR {
        return us as usize;
    }
    let octave = u64::from(63 - us.leading_zeros()); // ≥ 4
    if octave >= 4 + OCTAVES {
        return BUCKETS - 1;
    }
    let sub = (us >> (octave - 3)) & (PER_OCTAVE - 1);
    (LINEAR + (octave - 4) * PER_OCTAVE + sub) as usize
}

/// The smallest value, µs, above every value of bucket `i`.
fn upper_us(i: usize) -> u64 {
    let i = i as u64;
    if i < LINEAR {
        return i + 1;
    }
    let octave = 4 + (i - LINEAR) / PER_OCTAVE;
    let sub = (i - LINEAR) % PER_OCTAVE;
    (PER_OCTAVE + sub + 1) << (octave - 3)
}

impl SecondLog {
    /// A log for `seconds` seconds. The table is allocated zeroed, so the pages of seconds
    /// never reached are never touched (a 24 h bound costs nothing in a 10 s run).
    pub fn new(seconds: usize) -> SecondLog {
        // SAFETY: all-zero bytes are valid `AtomicU32`s and `AtomicU64`s (zero counters).
        let seconds = unsafe { Box::<[Second]>::new_zeroed_slice(seconds).assume_init() };
        SecondLog { seconds }
    }

    /// Seconds the log covers.
    pub fn len(&self) -> usize {
        self.seconds.len()
    }

    /// Whether the log covers no second (a correlator without one).
    pub fn is_empty(&self) -> bool {
        self.seconds.is_empty()
    }

    /// A completion at `done_ns` from the epoch took `latency_ns`. Completions past the end
    /// of the log are not kept (the run's own bounds stop before it).
    pub fn record(&self, done_ns: u64, latency_ns: u64) {
        let Some(s) = self.seconds.get((done_ns / 1_000_000_000) as usize) else {
            return;
        };
        s.counts[bucket(latency_ns / 1000)].fetch_add(1, Ordering::Relaxed);
        s.max_ns.fetch_max(latency_ns, Ordering::Relaxed);
    }

    /// The seconds with completions, in order, summed over `logs` (the directions of a run).
    pub fn summarize(logs: &[&SecondLog]) -> Vec<SecondLatency> {
        let n = logs.iter().map(|l| l.len()).max().unwrap_or(0);
        let mut out = Vec::new();
        let mut counts = [0u64; BUCKETS];
        for sec in 0..n {
            counts.fill(0);
            let mut max_ns = 0;
            for s in logs.iter().filter_map(|l| l.seconds.get(sec)) {
                for (c, a) in counts.iter_mut().zip(s.counts.iter()) {
                    *c += u64::from(a.load(Ordering::Relaxed));
                }
                max_ns = max_ns.max(s.max_ns.load(Ordering::Relaxed));
            }
            let count: u64 = counts.iter().sum();
            if count == 0 {
                continue;
            }
            let max_ms = max_ns as f64 / 1e6;
            let at = |q: f64| {
                // The rank of the quantile, 1-based, as HdrHistogram counts it.
                let rank = ((q * count as f64).ceil() as u64).clamp(1, count);
                let mut seen = 0;
                for (i, c) in counts.iter().enumerate() {
                    seen += c;
                    if seen >= rank {
                        return (upper_us(i) as f64 / 1e3).min(max_ms);
                    }
                }
                max_ms
            };
            out.push(SecondLatency {
                t: (sec + 1) as f64,
                count,
                p50_ms: at(0.5),
                p99_ms: at(0.99),
                max_ms,
            });
        }
        out
    }
}

impl std::fmt::Debug for SecondLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecondLog")
            .field("seconds", &self.seconds.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_lands_in_a_bucket_that_holds_it() {
        let mut v = 0;
        while v < 1 << 27 {
            let i = bucket(v);
            assert!(i < BUCKETS);
            if v < 1 << 26 {
                assert!(upper_us(i) > v, "{v} µs above its bucket {i}");
                let lower = if i == 0 { 0 } else { upper_us(i - 1) };
                assert!(lower <= v, "{v} µs below its bucket {i}");
                // The bucket is at most 1/8 of its lower bound wide (12.5 %).
                assert!(
                    (upper_us(i) - lower) * 8 <= lower.max(8),
                    "bucket {i} too wide"
                );
            } else {
                assert_eq!(i, BUCKETS - 1);
            }
            v = v * 9 / 8 + 1;
        }
    }

    #[test]
    fn seconds_are_kept_apart_and_summed_over_logs() {
        let a = SecondLog::new(4);
        let b = SecondLog::new(4);
        // Second 0: 99 fast completions and one slow one; second 2: slow ones only.
        for _ in 0..99 {
            a.record(100_000_000, 200_000); // 0.2 ms
        }
        b.record(900_000_000, 7_000_000); // 7 ms
        for _ in 0..10 {
            a.record(2_500_000_000, 40_000_000); // 40 ms
        }
        let s = SecondLog::summarize(&[&a, &b]);
        assert_eq!(s.len(), 2, "the empty seconds 1 and 3 are left out: {s:?}");
        assert_eq!((s[0].t, s[0].count), (1.0, 100));
        assert!((0.2..=0.225).contains(&s[0].p50_ms), "{:?}", s[0]);
        assert!(
            (0.2..=0.225).contains(&s[0].p99_ms),
            "the 99th of 100 is fast: {:?}",
            s[0]
        );
        assert_eq!(s[0].max_ms, 7.0);
        assert_eq!((s[1].t, s[1].count), (3.0, 10));
        assert_eq!(s[1].p99_ms, 40.0, "capped by the exact maximum");
    }

    #[test]
    fn the_slow_hundredth_sets_the_p99_when_it_is_more_than_one_in_a_hundred() {
        let log = SecondLog::new(1);
        for _ in 0..97 {
            log.record(0, 100_000);
        }
        for _ in 0..3 {
            log.record(0, 5_000_000);
        }
        let s = SecondLog::summarize(&[&log]);
        assert!((5.0..=5.625).contains(&s[0].p99_ms), "{:?}", s[0]);
        assert!(s[0].p50_ms < 0.125, "{:?}", s[0]);
    }

    #[test]
    fn completions_past_the_log_and_huge_latencies_are_bounded() {
        let log = SecondLog::new(2);
        log.record(10_000_000_000, 1_000); // second 10: outside, dropped
        log.record(1_000_000_000, 3_600_000_000_000); // one hour: top bucket
        let s = SecondLog::summarize(&[&log]);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].t, 2.0);
        assert_eq!(s[0].max_ms, 3_600_000.0);
        assert_eq!(s[0].p99_ms, upper_us(BUCKETS - 1) as f64 / 1e3);
    }
}
