//! The real [`Measure`]: per candidate, write the profile, start the router pinned, run the
//! loadgen's workload in-process against it, stop the router, and print the table row.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use stanza_router::config::{Config, Profile};

use super::output;
use super::router::{Launch, RouterProcess, STOP_GRACE};
use super::search::{median_run, Candidate, Figures, Knob, Measure, Measurement, Objective};
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
        let objective = match mode {
            Mode::Closed { .. } => Objective::Throughput,
            Mode::Open { .. } => Objective::Latency,
        };
        median_run(runs, objective)
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
    fn measure(&mut self, c: &Candidate, varied: Option<Knob>) -> Option<Measurement> {
        let label = varied.map_or("base", Knob::key);
        self.bench.measure_with(c, self.mode, label)
    }
}
