//! The sweep's search, sans-IO: runtime profile candidates, the knobs and their values, and a
//! bounded coordinate descent that asks a [`Measure`] for each point.
//!
//! One knob at a time, in [`Knob::ALL`] order: from the incumbent (at first the configuration's
//! own values), try each other value of the knob; keep the best, then move to the next knob. A
//! full grid of the default knobs is hundreds of points; this is at most 1 + Σ(values − 1).

use std::fmt;
use std::time::Duration;

use stanza_router::config::duration::format_duration;

/// A runtime knob the sweep varies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Knob {
    /// `runtime.shards`.
    Shards,
    /// `runtime.read_buffer` (bytes).
    ReadBuffer,
    /// `runtime.write_batch`.
    WriteBatch,
    /// `runtime.batch`.
    Batch,
    /// `runtime.spin_before_park` (nanoseconds).
    SpinBeforePark,
    /// `runtime.preempt_timer` (nanoseconds).
    PreemptTimer,
}

impl Knob {
    /// Every knob, in the order the descent visits them.
    pub const ALL: [Knob; 6] = [
        Knob::Shards,
        Knob::ReadBuffer,
        Knob::WriteBatch,
        Knob::Batch,
        Knob::SpinBeforePark,
        Knob::PreemptTimer,
    ];

    /// The key under `[runtime]`.
    pub fn key(self) -> &'static str {
        match self {
            Knob::Shards => "shards",
            Knob::ReadBuffer => "read_buffer",
            Knob::WriteBatch => "write_batch",
            Knob::Batch => "batch",
            Knob::SpinBeforePark => "spin_before_park",
            Knob::PreemptTimer => "preempt_timer",
        }
    }

    /// The knob named `key`.
    pub fn from_key(key: &str) -> Option<Knob> {
        Knob::ALL.into_iter().find(|k| k.key() == key)
    }

    /// A value of this knob as the profile syntax writes it (`"16KiB"`, `"50us"`, `64`).
    pub fn toml_value(self, v: u64) -> String {
        match self {
            Knob::Shards | Knob::WriteBatch | Knob::Batch => v.to_string(),
            Knob::ReadBuffer => format!("\"{}\"", format_size(v)),
            Knob::SpinBeforePark | Knob::PreemptTimer => {
                format!("\"{}\"", format_duration(Duration::from_nanos(v)))
            }
        }
    }

    /// A value for the table (no quotes).
    pub fn show(self, v: u64) -> String {
        self.toml_value(v).trim_matches('"').to_string()
    }
}

/// `n` bytes in the size syntax, with the largest exact unit.
pub fn format_size(n: u64) -> String {
    for (unit, size) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        if n != 0 && n.is_multiple_of(size) {
            return format!("{}{unit}", n / size);
        }
    }
    format!("{n}B")
}

/// One runtime profile: a value for every knob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Candidate {
    /// Values in [`Knob::ALL`] order.
    pub values: [u64; 6],
}

impl Candidate {
    /// The knob's value.
    pub fn get(&self, k: Knob) -> u64 {
        self.values[k as usize]
    }

    /// This candidate with `k` set to `v`.
    pub fn with(mut self, k: Knob, v: u64) -> Candidate {
        self.values[k as usize] = v;
        self
    }

    /// The profile file: a `[runtime]` table with every knob.
    pub fn profile_toml(&self) -> String {
        let mut t = String::from("[runtime]\n");
        for k in Knob::ALL {
            t.push_str(&format!("{} = {}\n", k.key(), k.toml_value(self.get(k))));
        }
        t
    }
}

impl fmt::Display for Candidate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, k) in Knob::ALL.into_iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{}={}", k.key(), k.show(self.get(k)))?;
        }
        Ok(())
    }
}

/// The values tried per knob, in visiting order; knobs absent are not varied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grid {
    /// `(knob, values)` pairs.
    pub knobs: Vec<(Knob, Vec<u64>)>,
}

/// 4 KiB, 16 KiB, 64 KiB.
const READ_BUFFERS: [u64; 3] = [4 << 10, 16 << 10, 64 << 10];
/// Batches tried for `write_batch` and `batch`.
const BATCHES: [u64; 3] = [16, 64, 256];
/// 0 and 50 µs, in nanoseconds.
const SPINS: [u64; 2] = [0, 50_000];
/// 1 ms and 100 ms, in nanoseconds.
const PREEMPTS: [u64; 2] = [1_000_000, 100_000_000];

impl Grid {
    /// The default grid for a router given `cpus` CPUs: shards 1..=cpus, read buffers 4/16/64 KiB,
    /// write batches and batches 16/64/256, spin 0/50 µs, preempt 1/100 ms.
    pub fn default_for(cpus: usize) -> Grid {
        Grid {
            knobs: vec![
                (Knob::Shards, (1..=cpus.max(1) as u64).collect()),
                (Knob::ReadBuffer, READ_BUFFERS.to_vec()),
                (Knob::WriteBatch, BATCHES.to_vec()),
                (Knob::Batch, BATCHES.to_vec()),
                (Knob::SpinBeforePark, SPINS.to_vec()),
                (Knob::PreemptTimer, PREEMPTS.to_vec()),
            ],
        }
    }

    /// Points a full descent from `base` measures: the base, then per knob its values other
    /// than the incumbent's (counted as if the incumbent kept the base's value).
    pub fn descent_points(&self, base: &Candidate) -> usize {
        1 + self
            .knobs
            .iter()
            .map(|(k, vs)| vs.iter().filter(|v| **v != base.get(*k)).count())
            .sum::<usize>()
    }
}

/// What to optimise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Objective {
    /// Highest achieved rate (closed loop).
    Throughput,
    /// Lowest p99 at a fixed offered rate (open loop).
    Latency,
}

/// Figures of one measured point.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Figures {
    /// Completions per second over the measured phase.
    pub rate: f64,
    /// Median latency, ms (corrected).
    pub p50_ms: f64,
    /// 99th percentile, ms (corrected).
    pub p99_ms: f64,
    /// Measured requests never answered.
    pub lost: u64,
    /// Router CPU seconds over the measured phase.
    pub cpu_seconds: Option<f64>,
    /// Router peak RSS, KiB.
    pub peak_rss_kib: Option<u64>,
}

/// A measured point: its figures, and why it does not count when it does not.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    /// What was measured (zero when the point never ran).
    pub figures: Figures,
    /// `Some(reason)`: the point is out of the running (lost stanzas, a failed start, …).
    pub disqualified: Option<String>,
}

impl Measurement {
    /// A point that counts, unless it lost stanzas.
    pub fn of(figures: Figures) -> Measurement {
        let disqualified = (figures.lost > 0).then(|| format!("{} lost", figures.lost));
        Measurement {
            figures,
            disqualified,
        }
    }

    /// A point that could not be measured.
    pub fn failed(why: impl Into<String>) -> Measurement {
        Measurement {
            figures: Figures::default(),
            disqualified: Some(why.into()),
        }
    }

    /// Whether it counts.
    pub fn qualified(&self) -> bool {
        self.disqualified.is_none()
    }
}

/// The run that stands for a point measured several times. A point with a disqualified run is
/// disqualified (the first such run's reason, with its number: a stanza lost once is lost);
/// otherwise it is the median run by the objective, and of an even count the worse of the two
/// middle ones. Its figures are that run's own, so they stay consistent with each other.
pub fn median_run(runs: Vec<Measurement>, objective: Objective) -> Measurement {
    let n = runs.len();
    if n == 1 {
        return runs
            .into_iter()
            .next()
            .unwrap_or_else(|| Measurement::failed("no run"));
    }
    if let Some((i, bad)) = runs.iter().enumerate().find(|(_, m)| !m.qualified()) {
        let mut m = bad.clone();
        m.disqualified = Some(format!(
            "run {} of {n}: {}",
            i + 1,
            bad.disqualified.as_deref().unwrap_or_default()
        ));
        return m;
    }
    let mut runs = runs;
    // Worst first.
    runs.sort_by(|a, b| {
        let (a, b) = (&a.figures, &b.figures);
        match objective {
            Objective::Throughput => a.rate.total_cmp(&b.rate),
            Objective::Latency => b.p99_ms.total_cmp(&a.p99_ms),
        }
    });
    match runs.into_iter().nth(n.saturating_sub(1) / 2) {
        Some(m) => m,
        None => Measurement::failed("no run"),
    }
}

/// Which profile a run of a paired comparison measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The point the descent stands on.
    Incumbent,
    /// The point that may replace it.
    Challenger,
}

/// The order of a paired comparison's `repeat` runs of each side. Pairs alternate which side
/// runs first (incumbent then challenger, challenger then incumbent, …), so neither side is
/// always the one measured later on a machine that speeds up or slows down.
pub fn paired_order(repeat: usize) -> Vec<Side> {
    (0..repeat.max(1))
        .flat_map(|i| match i % 2 {
            0 => [Side::Incumbent, Side::Challenger],
            _ => [Side::Challenger, Side::Incumbent],
        })
        .collect()
}

/// A challenger measured alongside the incumbent, run by run.
#[derive(Debug, Clone, PartialEq)]
pub struct Paired {
    /// The incumbent's median run of this comparison.
    pub incumbent: Measurement,
    /// The challenger's median run.
    pub challenger: Measurement,
    /// Median over the pairs of the challenger's figure relative to the incumbent's run next
    /// to it, oriented so that above 1 is better: rate ratio (throughput), inverse p99 ratio
    /// (latency). `None` when a run of either side was disqualified.
    pub ratio: Option<f64>,
    /// The least favourable pair's ratio, which decides ([`paired_beats`]).
    pub least: Option<f64>,
}

/// Judges a paired comparison from its runs, pair by pair (`pairs[i]`: the incumbent's and
/// the challenger's i-th runs). Comparing each challenger run with the incumbent run next to
/// it cancels what the machine did between pairs; comparing medians measured minutes apart
/// does not.
pub fn judge_pairs(pairs: Vec<(Measurement, Measurement)>, objective: Objective) -> Paired {
    let qualified = pairs.iter().all(|(i, c)| i.qualified() && c.qualified());
    let ratios = if qualified && !pairs.is_empty() {
        let mut r: Vec<f64> = pairs
            .iter()
            .map(|(i, c)| match objective {
                Objective::Throughput => c.figures.rate / i.figures.rate,
                Objective::Latency => i.figures.p99_ms / c.figures.p99_ms,
            })
            .map(|x| if x.is_finite() { x } else { 0.0 })
            .collect();
        r.sort_by(f64::total_cmp);
        Some(r)
    } else {
        None
    };
    // Of an even count, the lower middle.
    let ratio = ratios.as_ref().map(|r| r[(r.len() - 1) / 2]);
    let least = ratios.as_ref().map(|r| r[0]);
    let (inc, ch): (Vec<Measurement>, Vec<Measurement>) = pairs.into_iter().unzip();
    Paired {
        incumbent: median_run(inc, objective),
        challenger: median_run(ch, objective),
        ratio,
        least,
    }
}

/// Whether the challenger of `p` beats its incumbent by more than `min_gain` (a fraction) in
/// every pair. A profile no better than its incumbent still wins most pairs by chance on a
/// noisy machine (a median of three did: a 50 µs spin at +17 % that alternated runs then showed
/// to be no gain); it rarely wins all of them. A disqualified challenger never wins; a
/// qualified one always beats a disqualified incumbent.
pub fn paired_beats(p: &Paired, min_gain: f64) -> bool {
    match (p.challenger.qualified(), p.incumbent.qualified()) {
        (false, _) => false,
        (true, false) => true,
        (true, true) => p.least.is_some_and(|r| r > 1.0 + min_gain),
    }
}

/// Measures candidates (a router run, or figures from memory in tests).
pub trait Measure {
    /// Measures the base; `None` when the sweep must stop (out of time): the search ends there.
    fn measure(&mut self, c: &Candidate) -> Option<Measurement>;

    /// Measures `challenger`, which differs from `incumbent` (point number `incumbent_point`,
    /// 1-based) in `varied`, in runs alternating with the incumbent's ([`paired_order`]): the
    /// pairs, incumbent's run first in each (whichever ran first); `None` when the sweep must
    /// stop.
    fn compare(
        &mut self,
        incumbent: &Candidate,
        incumbent_point: usize,
        challenger: &Candidate,
        varied: Knob,
    ) -> Option<Vec<(Measurement, Measurement)>>;
}

/// One point of the sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// The profile.
    pub candidate: Candidate,
    /// Which knob this point varied (`None` for the base).
    pub varied: Option<Knob>,
    /// Its measurement.
    pub measurement: Measurement,
    /// For a challenger: how it fared against the incumbent it ran alongside.
    pub against: Option<Against>,
}

/// How a challenger fared against the incumbent it ran alongside.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Against {
    /// Index of the incumbent's point.
    pub point: usize,
    /// [`Paired::ratio`]: the median pair.
    pub ratio: Option<f64>,
    /// [`Paired::least`]: the least favourable pair, which decided.
    pub least: Option<f64>,
}

/// How the search may run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Points measured at most (the base included).
    pub max_points: usize,
    /// Relative gain a point needs over the incumbent to replace it.
    pub min_gain: f64,
}

/// Why the search ended before visiting every knob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// `max_points` reached.
    MaxPoints,
    /// The measurer said stop (out of time).
    Measurer,
}

/// What the search found.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// Every point measured, in order; `points[0]` is the base.
    pub points: Vec<Point>,
    /// Index of the best qualified point, if any.
    pub best: Option<usize>,
    /// Set when the descent did not finish.
    pub stopped: Option<Stopped>,
    /// What the points were judged on.
    pub objective: Objective,
}

impl Outcome {
    /// The base point (the configuration's own values), if it was measured.
    pub fn base(&self) -> Option<&Point> {
        self.points.first()
    }

    /// The best point.
    pub fn best_point(&self) -> Option<&Point> {
        self.best.and_then(|i| self.points.get(i))
    }
}

/// Coordinate descent from `base` over `grid`: each candidate is measured once, alongside the
/// incumbent it may replace.
pub fn coordinate_descent(
    base: Candidate,
    grid: &Grid,
    objective: Objective,
    limits: Limits,
    m: &mut dyn Measure,
) -> Outcome {
    let mut out = Outcome {
        points: Vec::new(),
        best: None,
        stopped: None,
        objective,
    };
    if limits.max_points == 0 {
        out.stopped = Some(Stopped::MaxPoints);
        return out;
    }
    let Some(first) = m.measure(&base) else {
        out.stopped = Some(Stopped::Measurer);
        return out;
    };
    out.points.push(Point {
        candidate: base,
        varied: None,
        measurement: first,
        against: None,
    });
    // The incumbent: the point the descent stands on, qualified or not.
    let mut inc = 0usize;
    'knobs: for (knob, values) in &grid.knobs {
        let from = out.points[inc].candidate;
        for &v in values {
            let c = from.with(*knob, v);
            if out.points.iter().any(|p| p.candidate == c) {
                continue;
            }
            if out.points.len() >= limits.max_points {
                out.stopped = Some(Stopped::MaxPoints);
                break 'knobs;
            }
            let incumbent = out.points[inc].candidate;
            let Some(pairs) = m.compare(&incumbent, inc + 1, &c, *knob) else {
                out.stopped = Some(Stopped::Measurer);
                break 'knobs;
            };
            let pair = judge_pairs(pairs, objective);
            let wins = paired_beats(&pair, limits.min_gain);
            out.points.push(Point {
                candidate: c,
                varied: Some(*knob),
                measurement: pair.challenger,
                against: Some(Against {
                    point: inc,
                    ratio: pair.ratio,
                    least: pair.least,
                }),
            });
            // Within a knob every value is compared with the best so far, so the order of the
            // values does not decide between two that beat the start.
            if wins {
                inc = out.points.len() - 1;
            }
        }
    }
    out.best = out.points[inc].measurement.qualified().then_some(inc);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Figures from a table; unknown candidates measure `default_rate`. From the
    /// `speedup_after`-th measurement on, the machine is 30 % faster for every profile.
    struct Fake {
        rates: HashMap<Candidate, Measurement>,
        default_rate: f64,
        measured: Vec<Candidate>,
        budget: usize,
        speedup_after: usize,
    }

    impl Fake {
        fn new(default_rate: f64) -> Fake {
            Fake {
                rates: HashMap::new(),
                default_rate,
                measured: Vec::new(),
                budget: usize::MAX,
                speedup_after: usize::MAX,
            }
        }

        fn figures(&self, c: &Candidate) -> Measurement {
            let mut m = self.rates.get(c).cloned().unwrap_or_else(|| {
                Measurement::of(Figures {
                    rate: self.default_rate,
                    p99_ms: 1.0,
                    ..Figures::default()
                })
            });
            if self.measured.len() > self.speedup_after {
                m.figures.rate *= 1.3;
                m.figures.p99_ms /= 1.3;
            }
            m
        }

        fn set(&mut self, c: Candidate, rate: f64, p99: f64, lost: u64) {
            self.rates.insert(
                c,
                Measurement::of(Figures {
                    rate,
                    p99_ms: p99,
                    lost,
                    ..Figures::default()
                }),
            );
        }
    }

    impl Measure for Fake {
        fn measure(&mut self, c: &Candidate) -> Option<Measurement> {
            if self.measured.len() >= self.budget {
                return None;
            }
            self.measured.push(*c);
            Some(self.figures(c))
        }

        fn compare(
            &mut self,
            inc: &Candidate,
            _: usize,
            ch: &Candidate,
            _: Knob,
        ) -> Option<Vec<(Measurement, Measurement)>> {
            if self.measured.len() >= self.budget {
                return None;
            }
            self.measured.push(*ch);
            Some(vec![(self.figures(inc), self.figures(ch))])
        }
    }

    fn base() -> Candidate {
        Candidate {
            values: [2, 4096, 64, 64, 0, 100_000_000],
        }
    }

    fn limits() -> Limits {
        Limits {
            max_points: 16,
            min_gain: 0.0,
        }
    }

    #[test]
    fn default_grid_spans_the_documented_values() {
        let g = Grid::default_for(2);
        let keys: Vec<&str> = g.knobs.iter().map(|(k, _)| k.key()).collect();
        assert_eq!(
            keys,
            [
                "shards",
                "read_buffer",
                "write_batch",
                "batch",
                "spin_before_park",
                "preempt_timer"
            ]
        );
        assert_eq!(g.knobs[0].1, [1, 2]);
        assert_eq!(g.knobs[1].1, [4096, 16384, 65536]);
        // From the router's defaults: 1 + 1 shard + 2 buffers + 2 + 2 batches + 1 + 1 = 10.
        assert_eq!(g.descent_points(&base()), 10);
        assert_eq!(Grid::default_for(0).knobs[0].1, [1]);
    }

    #[test]
    fn candidate_writes_a_profile_in_the_config_syntax() {
        let c = base().with(Knob::SpinBeforePark, 50_000);
        assert_eq!(
            c.profile_toml(),
            "[runtime]\nshards = 2\nread_buffer = \"4KiB\"\nwrite_batch = 64\nbatch = 64\n\
             spin_before_park = \"50us\"\npreempt_timer = \"100ms\"\n"
        );
        let p = stanza_router::config::Profile::parse(
            &c.profile_toml(),
            std::path::Path::new("c.toml"),
        )
        .unwrap();
        assert_eq!(p.runtime.read_buffer, Some(4096));
        assert_eq!(p.runtime.spin_before_park, Some(Duration::from_micros(50)));
        assert_eq!(format_size(1000), "1000B");
        assert_eq!(format_size(3 << 20), "3MiB");
        assert_eq!(Knob::PreemptTimer.show(0), "0s");
    }

    #[test]
    fn descent_visits_each_other_value_once_and_picks_the_best() {
        let mut f = Fake::new(100.0);
        let b = base();
        f.set(b.with(Knob::ReadBuffer, 16384), 150.0, 1.0, 0);
        // Measured from the new incumbent (read_buffer 16 KiB).
        f.set(
            b.with(Knob::ReadBuffer, 16384).with(Knob::Batch, 256),
            180.0,
            1.0,
            0,
        );
        let out = coordinate_descent(
            b,
            &Grid::default_for(2),
            Objective::Throughput,
            limits(),
            &mut f,
        );
        assert_eq!(out.points.len(), 10);
        assert_eq!(out.stopped, None);
        assert_eq!(out.base().unwrap().candidate, b);
        let best = out.best_point().unwrap();
        assert_eq!(
            best.candidate,
            b.with(Knob::ReadBuffer, 16384).with(Knob::Batch, 256)
        );
        assert_eq!(best.varied, Some(Knob::Batch));
        let unique: std::collections::HashSet<_> = f.measured.iter().collect();
        assert_eq!(
            unique.len(),
            f.measured.len(),
            "no candidate measured twice"
        );
    }

    #[test]
    fn the_best_value_of_a_knob_wins_whatever_its_position() {
        let mut f = Fake::new(100.0);
        let b = base();
        f.set(b.with(Knob::ReadBuffer, 16384), 120.0, 1.0, 0);
        f.set(b.with(Knob::ReadBuffer, 65536), 130.0, 1.0, 0);
        let out = coordinate_descent(
            b,
            &Grid::default_for(1),
            Objective::Throughput,
            limits(),
            &mut f,
        );
        assert_eq!(
            out.best_point().unwrap().candidate.get(Knob::ReadBuffer),
            65536
        );
    }

    #[test]
    fn ties_keep_the_incumbent() {
        let mut f = Fake::new(100.0);
        let out = coordinate_descent(
            base(),
            &Grid::default_for(2),
            Objective::Throughput,
            limits(),
            &mut f,
        );
        assert_eq!(out.best, Some(0), "every point ties with the base");
    }

    #[test]
    fn a_gain_below_min_gain_does_not_move_the_descent() {
        let mut f = Fake::new(100.0);
        let b = base();
        f.set(b.with(Knob::WriteBatch, 256), 101.0, 1.0, 0);
        f.set(b.with(Knob::Batch, 16), 110.0, 1.0, 0);
        let l = Limits {
            min_gain: 0.05,
            ..limits()
        };
        let out = coordinate_descent(b, &Grid::default_for(2), Objective::Throughput, l, &mut f);
        assert_eq!(out.best_point().unwrap().candidate, b.with(Knob::Batch, 16));
    }

    #[test]
    fn a_point_that_lost_stanzas_is_disqualified_however_fast() {
        let mut f = Fake::new(100.0);
        let b = base();
        f.set(b.with(Knob::Shards, 1), 1_000.0, 0.1, 1);
        let out = coordinate_descent(
            b,
            &Grid::default_for(2),
            Objective::Throughput,
            limits(),
            &mut f,
        );
        assert_eq!(out.best, Some(0));
        let lossy = out
            .points
            .iter()
            .find(|p| p.candidate == b.with(Knob::Shards, 1));
        assert_eq!(
            lossy.unwrap().measurement.disqualified.as_deref(),
            Some("1 lost")
        );
    }

    #[test]
    fn a_disqualified_base_is_replaced_by_any_qualified_point() {
        let mut f = Fake::new(100.0);
        let b = base();
        f.set(b, 500.0, 1.0, 3);
        let out = coordinate_descent(
            b,
            &Grid::default_for(2),
            Objective::Throughput,
            limits(),
            &mut f,
        );
        let best = out.best_point().unwrap();
        assert_eq!(
            best.candidate,
            b.with(Knob::Shards, 1),
            "the first qualified"
        );
        assert!(out.points[0].measurement.disqualified.is_some());
    }

    #[test]
    fn nothing_qualified_means_no_best() {
        struct Lossy;
        impl Measure for Lossy {
            fn measure(&mut self, _: &Candidate) -> Option<Measurement> {
                Some(Measurement::failed("router did not start"))
            }
            fn compare(
                &mut self,
                _: &Candidate,
                _: usize,
                _: &Candidate,
                _: Knob,
            ) -> Option<Vec<(Measurement, Measurement)>> {
                let failed = Measurement::failed("router did not start");
                Some(vec![(failed.clone(), failed)])
            }
        }
        let out = coordinate_descent(
            base(),
            &Grid::default_for(2),
            Objective::Latency,
            limits(),
            &mut Lossy,
        );
        assert_eq!(out.best, None);
        assert_eq!(out.points.len(), 10);
    }

    #[test]
    fn latency_objective_minimises_p99() {
        let mut f = Fake::new(100.0);
        let b = base();
        f.set(b.with(Knob::PreemptTimer, 1_000_000), 90.0, 0.4, 0);
        f.set(b.with(Knob::SpinBeforePark, 50_000), 200.0, 2.0, 0);
        let out = coordinate_descent(
            b,
            &Grid::default_for(2),
            Objective::Latency,
            limits(),
            &mut f,
        );
        assert_eq!(
            out.best_point().unwrap().candidate,
            b.with(Knob::PreemptTimer, 1_000_000)
        );
    }

    #[test]
    fn the_point_budget_and_the_measurer_bound_the_search() {
        let mut f = Fake::new(100.0);
        let l = Limits {
            max_points: 4,
            ..limits()
        };
        let out = coordinate_descent(
            base(),
            &Grid::default_for(2),
            Objective::Throughput,
            l,
            &mut f,
        );
        assert_eq!(out.points.len(), 4);
        assert_eq!(out.stopped, Some(Stopped::MaxPoints));
        assert_eq!(out.best, Some(0));

        let mut f = Fake::new(100.0);
        f.budget = 3;
        let out = coordinate_descent(
            base(),
            &Grid::default_for(2),
            Objective::Throughput,
            limits(),
            &mut f,
        );
        assert_eq!(out.points.len(), 3);
        assert_eq!(out.stopped, Some(Stopped::Measurer));

        let mut f = Fake::new(100.0);
        f.budget = 0;
        let out = coordinate_descent(
            base(),
            &Grid::default_for(2),
            Objective::Throughput,
            limits(),
            &mut f,
        );
        assert!(out.points.is_empty());
        assert_eq!(out.best, None);
    }

    fn run(rate: f64, p99: f64, lost: u64) -> Measurement {
        Measurement::of(Figures {
            rate,
            p99_ms: p99,
            lost,
            ..Figures::default()
        })
    }

    #[test]
    fn a_repeated_point_stands_for_its_median_run_by_the_objective() {
        let runs = || vec![run(300.0, 0.9, 0), run(100.0, 0.5, 0), run(200.0, 2.0, 0)];
        let m = median_run(runs(), Objective::Throughput);
        assert_eq!((m.figures.rate, m.figures.p99_ms), (200.0, 2.0));
        assert!(m.qualified());
        // By p99 the median run is another one; its figures come whole.
        let m = median_run(runs(), Objective::Latency);
        assert_eq!((m.figures.rate, m.figures.p99_ms), (300.0, 0.9));
    }

    #[test]
    fn of_an_even_count_the_worse_middle_run_stands() {
        let runs = || {
            vec![
                run(400.0, 0.4, 0),
                run(100.0, 3.0, 0),
                run(300.0, 0.6, 0),
                run(200.0, 1.0, 0),
            ]
        };
        assert_eq!(
            median_run(runs(), Objective::Throughput).figures.rate,
            200.0
        );
        assert_eq!(median_run(runs(), Objective::Latency).figures.p99_ms, 1.0);
        assert_eq!(
            median_run(
                vec![run(10.0, 1.0, 0), run(20.0, 2.0, 0)],
                Objective::Throughput
            )
            .figures
            .rate,
            10.0
        );
    }

    #[test]
    fn one_run_that_lost_stanzas_disqualifies_the_point() {
        let runs = vec![run(300.0, 0.5, 0), run(900.0, 0.1, 2), run(310.0, 0.5, 0)];
        let m = median_run(runs, Objective::Throughput);
        assert_eq!(m.disqualified.as_deref(), Some("run 2 of 3: 2 lost"));
    }

    #[test]
    fn pairs_alternate_which_side_runs_first() {
        use Side::{Challenger as C, Incumbent as I};
        assert_eq!(paired_order(1), [I, C]);
        assert_eq!(paired_order(3), [I, C, C, I, I, C]);
        assert_eq!(paired_order(0), [I, C], "at least one pair");
    }

    #[test]
    fn a_paired_comparison_is_judged_pair_by_pair() {
        // The machine speeds up between pairs; within each, the challenger is 10 % faster.
        let pairs = vec![
            (run(100.0, 2.0, 0), run(110.0, 1.0, 0)),
            (run(200.0, 2.0, 0), run(220.0, 1.0, 0)),
            (run(300.0, 2.0, 0), run(330.0, 1.0, 0)),
        ];
        let p = judge_pairs(pairs.clone(), Objective::Throughput);
        assert!((p.ratio.unwrap() - 1.1).abs() < 1e-9);
        assert!((p.least.unwrap() - 1.1).abs() < 1e-9);
        assert!(paired_beats(&p, 0.05));
        assert!(!paired_beats(&p, 0.15));
        assert_eq!(p.incumbent.figures.rate, 200.0);
        assert_eq!(p.challenger.figures.rate, 220.0);
        // Two pairs of three won by 17 % and one lost: the median says +17 %, the point does
        // not win (the sweep of 2026-11-26's spin_before_park, which did not hold up).
        let p = judge_pairs(
            vec![
                (run(365.8, 1.0, 0), run(429.6, 1.0, 0)),
                (run(358.2, 1.0, 0), run(419.6, 1.0, 0)),
                (run(482.2, 1.0, 0), run(481.5, 1.0, 0)),
            ],
            Objective::Throughput,
        );
        assert!(p.ratio.unwrap() > 1.17);
        assert!(p.least.unwrap() < 1.0);
        assert!(!paired_beats(&p, 0.02));
        // Latency: half the p99 is a ratio of 2 in the challenger's favour.
        let p = judge_pairs(pairs, Objective::Latency);
        assert!((p.ratio.unwrap() - 2.0).abs() < 1e-9);
        // Of an even count the lower middle ratio counts.
        let p = judge_pairs(
            vec![
                (run(100.0, 1.0, 0), run(150.0, 1.0, 0)),
                (run(100.0, 1.0, 0), run(101.0, 1.0, 0)),
            ],
            Objective::Throughput,
        );
        assert!((p.ratio.unwrap() - 1.01).abs() < 1e-9);
        // A disqualified run on either side leaves no ratio; a lossy challenger never wins.
        let p = judge_pairs(
            vec![(run(100.0, 1.0, 0), run(500.0, 1.0, 1))],
            Objective::Throughput,
        );
        assert_eq!(p.ratio, None);
        assert!(!paired_beats(&p, 0.0));
        let p = judge_pairs(
            vec![(run(100.0, 1.0, 2), run(50.0, 1.0, 0))],
            Objective::Throughput,
        );
        assert!(
            paired_beats(&p, 0.0),
            "a qualified point replaces a lossy incumbent"
        );
    }

    #[test]
    fn a_machine_that_speeds_up_during_the_sweep_does_not_make_later_points_win() {
        // Every profile is as fast as the base; the machine gets 30 % faster after the base.
        // Judged against the base's figures of minutes before, the next point would win; run
        // alongside the incumbent, none does.
        let mut f = Fake::new(100.0);
        f.speedup_after = 1;
        let out = coordinate_descent(
            base(),
            &Grid::default_for(2),
            Objective::Throughput,
            Limits {
                min_gain: 0.02,
                ..limits()
            },
            &mut f,
        );
        assert_eq!(out.points.len(), 10);
        assert_eq!(out.best, Some(0));
        assert!(out.points[1..].iter().all(|p| p
            .against
            .is_some_and(|a| a.point == 0 && a.least == Some(1.0))));
    }
}
