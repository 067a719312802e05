//! The real [`Measure`]: per candidate, write the profile, start the router pinned, run the
//! loadgen's workload in-process against it, stop the router, and print the table row.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use stanza_router::config::{Config, Profile};

use super::output;
use super::router::{Launch, RouterProcess, STOP_GRACE};
use super::search::{
    judge_pairs, median_run, paired_order, Against, Candidate, Figures, Knob, Measure, Measurement,
    Objective, Side,
};
use crate::report::Report;
use crate::run::{self, Mode, PartnerTls, RunPlan};

/// Share of the offered rate an open-loop point must achieve to count.
pub const KEEP_UP: f64 = 0.95;

/// Everything a point needs.
pub struct Bench {
    /// The router binary.
    pub router_bin: PathBuf,
    /// The router config file.
    pub config_path: PathBuf,
    /// It, loaded (candidates are checked against it before a router is started).
    pub config: Arc<Config>,
    /// The router's S2S listener.
    pub s2s: std::net::SocketAddr,
    /// CPUs of the router.
    pub router_cpus: Vec<usize>,
    /// Profiles and router logs go here.
    pub work_dir: PathBuf,
    /// The load (its mode is set per point; `router_pid` per router).
    pub plan: RunPlan,
    /// Partner TLS.
    pub tls: PartnerTls,
    /// Router start bound.
    pub start_timeout: Duration,
    /// No point starts after this.
    pub deadline: Instant,
    /// Runs per point (the point stands for the median one).
    pub repeat: usize,
    /// Points of the search measured so far (numbers the rows).
    pub count: usize,
    /// Routers started so far (numbers the profile and log files).
    pub files: usize,
}

impl Bench {
    /// Wall time one point may take: per run, start, warm-up, load, drain, stop.
    pub fn point_budget(&self) -> Duration {
        (self.start_timeout.min(Duration::from_secs(3))
            + self.plan.warmup
            + self.plan.duration
            + self.plan.drain
            + STOP_GRACE.min(Duration::from_secs(1)))
            * self.repeat.max(1) as u32
    }

    /// Measures `c` under `mode` (closed loop for throughput and calibration, open for latency),
    /// or `None` when the point would not end before the deadline.
    pub fn measure_with(&mut self, c: &Candidate, mode: Mode, label: &str) -> Option<Measurement> {
        if Instant::now() + self.point_budget() > self.deadline {
            return None;
        }
        self.count += 1;
        let n = self.count.to_string();
        let m = self.repeated(c, mode, &n, label);
        println!("{}", output::row(&n, label, c, &m));
        Some(m)
    }

    /// Runs `challenger` and `incumbent` alternately, `repeat` times each ([`paired_order`]),
    /// printing every run as a row: `N.i` with the knob for the challenger's, `N.i` with
    /// `#K again` for the incumbent's. `None` when the runs would not end before the deadline.
    pub fn compare_with(
        &mut self,
        incumbent: &Candidate,
        incumbent_point: usize,
        challenger: &Candidate,
        varied: Knob,
        mode: Mode,
    ) -> Option<Vec<(Measurement, Measurement)>> {
        if Instant::now() + self.point_budget() * 2 > self.deadline {
            return None;
        }
        self.count += 1;
        let n = self.count;
        let again = format!("#{incumbent_point} again");
        let (mut inc, mut ch) = (Vec::new(), Vec::new());
        for side in paired_order(self.repeat) {
            let (c, label, runs) = match side {
                Side::Incumbent => (incumbent, again.as_str(), &mut inc),
                Side::Challenger => (challenger, varied.key(), &mut ch),
            };
            let m = self.point(c, mode);
            let i = runs.len() + 1;
            println!("{}", output::row(&format!("{n}.{i}"), label, c, &m));
            runs.push(m);
        }
        let pairs: Vec<(Measurement, Measurement)> = inc.into_iter().zip(ch).collect();
        // The descent judges the same way; this row shows the verdict as the runs end.
        let objective = objective_of(mode);
        let judged = judge_pairs(pairs.clone(), objective);
        let against = Against {
            point: incumbent_point - 1,
            ratio: judged.ratio,
            least: judged.least,
        };
        let note = output::against_note(&against, objective);
        println!(
            "{}",
            output::row_noted(
                &n.to_string(),
                varied.key(),
                challenger,
                &judged.challenger,
                &note
            )
        );
        Some(pairs)
    }

    /// [`Bench::measure_with`] for a point outside the search (the latency calibration): its
    /// row is numbered `cal`, the search's points keep their numbers.
    pub fn calibrate(&mut self, c: &Candidate, mode: Mode) -> Option<Measurement> {
        if Instant::now() + self.point_budget() > self.deadline {
            return None;
        }
        let m = self.repeated(c, mode, "cal", "calibration");
        println!("{}", output::row("cal", "calibration", c, &m));
        Some(m)
    }

    /// `repeat` runs of `c`, each row printed as `n.i` when there are several; their median.
    fn repeated(&mut self, c: &Candidate, mode: Mode, n: &str, label: &str) -> Measurement {
        if self.repeat <= 1 {
            return self.point(c, mode);
        }
        let runs: Vec<Measurement> = (1..=self.repeat)
            .map(|i| {
                let m = self.point(c, mode);
                println!("{}", output::row(&format!("{n}.{i}"), label, c, &m));
                m
            })
            .collect();
        median_run(runs, objective_of(mode))
    }

    fn point(&mut self, c: &Candidate, mode: Mode) -> Measurement {
        self.files += 1;
        let profile_path = self.work_dir.join(format!("point-{}.toml", self.files));
        let text = c.profile_toml();
        if let Err(e) = std::fs::write(&profile_path, &text) {
            return Measurement::failed(format!("{}: {e}", profile_path.display()));
        }
        // A candidate the router would refuse is judged here, with the router's own words.
        let checked = Profile::parse(&text, &profile_path)
            .and_then(|p| Config::clone(&self.config).with_profile(&p));
        if let Err(e) = checked {
            return Measurement::failed(format!("invalid profile: {e}"));
        }
        let log = self.work_dir.join(format!("router-{}.log", self.files));
        let launch = Launch {
            bin: &self.router_bin,
            config: &self.config_path,
            profile: &profile_path,
            cpus: &self.router_cpus,
            log: &log,
        };
        let mut router = match RouterProcess::start(&launch, self.s2s, self.start_timeout) {
            Ok(r) => r,
            Err(e) => return Measurement::failed(e),
        };
        let mut plan = self.plan.clone();
        plan.mode = mode;
        plan.router_pid = router.pid();
        let result = run::run(&plan, &self.tls);
        let clean_exit = router.stop();
        let result = match result {
            Ok(r) => r,
            Err(e) => return Measurement::failed(format!("run: {e}")),
        };
        let report = Report::new(&plan, &result);
        judge(&report, clean_exit)
    }
}

/// What a point in `mode` is judged on: the rate in a closed loop, the p99 in an open one.
fn objective_of(mode: Mode) -> Objective {
    match mode {
        Mode::Closed { .. } => Objective::Throughput,
        Mode::Open { .. } => Objective::Latency,
    }
}

/// The figures of a report and whether they count: lost stanzas, unsent requests, connection
/// errors, an open loop that fell behind its rate, or a router that needed SIGKILL disqualify.
pub fn judge(report: &Report, clean_exit: bool) -> Measurement {
    let o = &report.outcomes;
    let figures = Figures {
        rate: report.achieved_rate,
        p50_ms: report.latency_ms.corrected.p50,
        p99_ms: report.latency_ms.corrected.p99,
        lost: o.lost + o.lost_warmup,
        cpu_seconds: report.router_process.map(|u| u.cpu_seconds),
        peak_rss_kib: report.router_process.map(|u| u.peak_rss_kib),
    };
    let mut m = Measurement::of(figures);
    if m.disqualified.is_none() {
        let e = &report.errors;
        let errors = e.connect + e.handshake + e.accept + e.io + e.closed_by_router;
        m.disqualified = if o.not_sent > 0 {
            Some(format!("{} not sent", o.not_sent))
        } else if errors > 0 {
            Some(format!(
                "{errors} connection errors: {}",
                e.messages.first().cloned().unwrap_or_default()
            ))
        } else if !report.clean() {
            Some("unexpected answers".into())
        } else if report
            .offered_rate
            .is_some_and(|r| report.achieved_rate < r * KEEP_UP)
        {
            Some(format!(
                "fell behind: {:.0}/s of {:.0}/s offered",
                report.achieved_rate,
                report.offered_rate.unwrap_or(0.0)
            ))
        } else if report.latency_ms.corrected.count == 0 {
            Some("nothing measured".into())
        } else if !clean_exit {
            Some("router needed SIGKILL to stop".into())
        } else {
            None
        };
    }
    m
}

/// The measurer the search uses: closed or open loop as the objective says.
pub struct SearchBench<'a> {
    /// The bench.
    pub bench: &'a mut Bench,
    /// The mode of every point.
    pub mode: Mode,
}

impl Measure for SearchBench<'_> {
    fn measure(&mut self, c: &Candidate) -> Option<Measurement> {
        self.bench.measure_with(c, self.mode, "base")
    }

    fn compare(
        &mut self,
        incumbent: &Candidate,
        incumbent_point: usize,
        challenger: &Candidate,
        varied: Knob,
    ) -> Option<Vec<(Measurement, Measurement)>> {
        self.bench
            .compare_with(incumbent, incumbent_point, challenger, varied, self.mode)
    }
}
