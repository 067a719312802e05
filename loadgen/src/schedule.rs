//! The open-loop arrival schedule: when each request is *intended* to be sent.
//!
//! Sans-IO: times are nanosecond offsets from the run's start, no clock is read here. Arrivals
//! follow a constant rate `R` after a linear ramp from 0 to `R` over `U`, so arrival `n` (0-based)
//! is due at `sqrt(2·U·n/R)` inside the ramp and at `n/R + U/2` after it. The first `warmup` of
//! the run is sent but not recorded; the measured arrivals are the `count` (at most) that follow,
//! and none is due at or after `warmup + duration`.
//!
//! Latency measured from these intended times instead of the actual send time is what corrects
//! coordinated omission: a sender that falls behind still charges the wait to the system.

use std::time::Duration;

/// The arrival plan of an open-loop run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    /// Target rate after the ramp, requests per second (finite, > 0).
    rate: f64,
    /// Ramp-up length, nanoseconds.
    ramp_ns: f64,
    /// Arrivals due before this offset are warm-up (sent, not recorded).
    warmup_ns: u64,
    /// No arrival is due at or after this offset.
    end_ns: u64,
    /// First measured arrival.
    first_measured: u64,
    /// One past the last arrival sent.
    end_index: u64,
}

impl Schedule {
    /// Plans `rate` per second with a linear `ramp_up`, a recorded phase of `duration` after
    /// `warmup`, and at most `count` measured arrivals (`None`: bounded by `duration` only).
    /// `rate` must be finite and positive (checked by the argument validation).
    pub fn new(
        rate: f64,
        ramp_up: Duration,
        warmup: Duration,
        duration: Duration,
        count: Option<u64>,
    ) -> Schedule {
        let mut s = Schedule {
            rate,
            ramp_ns: ramp_up.as_nanos() as f64,
            warmup_ns: warmup.as_nanos() as u64,
            end_ns: (warmup + duration).as_nanos() as u64,
            first_measured: 0,
            end_index: 0,
        };
        s.first_measured = s.first_at_or_after(s.warmup_ns);
        let by_time = s.first_at_or_after(s.end_ns);
        s.end_index = match count {
            Some(c) => by_time.min(s.first_measured.saturating_add(c)),
            None => by_time,
        };
        s
    }

    /// Offset (ns from start) at which arrival `n` is due.
    pub fn intended_ns(&self, n: u64) -> u64 {
        let n = n as f64;
        let per_ns = self.rate / 1e9;
        let in_ramp = per_ns * self.ramp_ns / 2.0;
        let t = if self.ramp_ns > 0.0 && n < in_ramp {
            (2.0 * self.ramp_ns * n / per_ns).sqrt()
        } else {
            n / per_ns + self.ramp_ns / 2.0
        };
        t as u64
    }

    /// Whether arrival `n` is recorded (not warm-up).
    pub fn is_measured(&self, n: u64) -> bool {
        n >= self.first_measured
    }

    /// Index of the first measured arrival.
    pub fn first_measured(&self) -> u64 {
        self.first_measured
    }

    /// One past the last arrival to send.
    pub fn end_index(&self) -> u64 {
        self.end_index
    }

    /// Measured arrivals planned.
    pub fn measured_count(&self) -> u64 {
        self.end_index.saturating_sub(self.first_measured)
    }

    /// The smallest `n` due at or after `t_ns` (a float estimate, then corrected exactly against
    /// [`Self::intended_ns`] so both always agree).
    fn first_at_or_after(&self, t_ns: u64) -> u64 {
        let per_ns = self.rate / 1e9;
        let t = t_ns as f64;
        let est = if self.ramp_ns > 0.0 && t < self.ramp_ns {
            per_ns * t * t / (2.0 * self.ramp_ns)
        } else {
            (t - self.ramp_ns / 2.0) * per_ns
        };
        let mut n = est.max(0.0).ceil() as u64;
        while n > 0 && self.intended_ns(n - 1) >= t_ns {
            n -= 1;
        }
        while self.intended_ns(n) < t_ns {
            n += 1;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn constant_rate_spaces_arrivals_evenly() {
        let s = Schedule::new(1000.0, Duration::ZERO, Duration::ZERO, S, None);
        assert_eq!(s.intended_ns(0), 0);
        assert_eq!(s.intended_ns(1), 1_000_000);
        assert_eq!(s.intended_ns(999), 999_000_000);
        assert_eq!(s.end_index(), 1000);
        assert_eq!(s.measured_count(), 1000);
    }

    #[test]
    fn warmup_arrivals_are_sent_but_not_measured() {
        let s = Schedule::new(100.0, Duration::ZERO, Duration::from_millis(500), S, None);
        assert_eq!(s.first_measured(), 50);
        assert!(!s.is_measured(49));
        assert!(s.is_measured(50));
        assert_eq!(s.end_index(), 150);
        assert_eq!(s.measured_count(), 100);
    }

    #[test]
    fn count_bounds_measured_arrivals() {
        let s = Schedule::new(
            1000.0,
            Duration::ZERO,
            Duration::from_millis(10),
            S,
            Some(7),
        );
        assert_eq!(s.first_measured(), 10);
        assert_eq!(s.end_index(), 17);
        assert_eq!(s.measured_count(), 7);
    }

    #[test]
    fn ramp_up_starts_slow_and_reaches_the_rate() {
        let rate = 1000.0;
        let s = Schedule::new(rate, S, Duration::ZERO, 3 * S, None);
        // Half the rate's worth of arrivals fit in the ramp: N(U) = R·U/2 = 500.
        assert!(s.intended_ns(499) < 1_000_000_000);
        assert!(s.intended_ns(500) >= 1_000_000_000 - 1);
        // Gaps shrink during the ramp and settle at 1/R after it.
        let gap = |n| s.intended_ns(n + 1) - s.intended_ns(n);
        assert!(gap(10) > gap(100));
        assert!(gap(100) > gap(400));
        let after = gap(1500);
        assert!((999_000..=1_001_000).contains(&after), "gap {after}");
        // 500 in the ramp, then 2 s at full rate.
        assert_eq!(s.end_index(), 2500);
    }

    #[test]
    fn intended_times_never_decrease() {
        let s = Schedule::new(
            12_345.0,
            Duration::from_millis(300),
            Duration::from_millis(100),
            S,
            None,
        );
        let mut last = 0;
        for n in 0..s.end_index() {
            let t = s.intended_ns(n);
            assert!(t >= last);
            last = t;
        }
        assert!(last < 1_100_000_000);
    }

    #[test]
    fn boundaries_agree_with_intended_times() {
        let s = Schedule::new(
            333.3,
            Duration::from_millis(70),
            Duration::from_millis(40),
            S,
            None,
        );
        let w = 40_000_000;
        assert!(s.intended_ns(s.first_measured()) >= w);
        assert!(s.intended_ns(s.first_measured() - 1) < w);
        assert!(s.intended_ns(s.end_index() - 1) < 1_040_000_000);
        assert!(s.intended_ns(s.end_index()) >= 1_040_000_000);
    }
}
