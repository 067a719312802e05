//! `loadgen sweep`: searches runtime profiles against a router config on this machine and writes
//! the best one found, with its figures, as a new profile file.
//!
//! [`prepare`] turns the arguments into a [`Sweep`] (every refusal an [`ArgError`], before any
//! router starts); [`Sweep::run`] pins the loadgen, measures the base and the candidates of a
//! bounded [`search::coordinate_descent`] (each a fresh router, see [`bench`]), prints the table
//! and writes the file.

pub mod affinity;
pub mod bench;
pub mod grid;
pub mod output;
pub mod router;
pub mod search;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use stanza_router::config::{Config, Shards};

use crate::cli::{check_loopback, partner_addrs, select_partners, ArgError, SweepArgs};
use crate::run::{Delivery, Mode, RunPlan};
use crate::setup;
use crate::workload::Workload;
use bench::{Bench, SearchBench};
use search::{Candidate, Grid, Knob, Limits, Objective, Outcome, Stopped};

/// Longest recorded phase per point.
pub const MAX_POINT: Duration = Duration::from_secs(600);
/// Most points per sweep.
pub const MAX_POINTS: usize = 1000;
/// Highest `--repeat`.
pub const MAX_REPEAT: usize = 9;
/// Share of the base's closed-loop rate offered for the latency objective.
pub const LATENCY_SHARE: f64 = 0.5;

/// A validated sweep.
pub struct Sweep {
    bench: Bench,
    grid: Grid,
    base: Candidate,
    objective: Objective,
    rate: Option<f64>,
    window: u64,
    limits: Limits,
    out: PathBuf,
    force: bool,
    loadgen_cpus: Vec<usize>,
    command: String,
}

fn bad(msg: impl Into<String>) -> ArgError {
    ArgError(msg.into())
}

/// The `[sip] next_hop` of a config written by `loadgen config`: `sip:IP:PORT;transport=tcp`.
pub fn next_hop_addr(next_hop: &str) -> Option<SocketAddr> {
    let rest = next_hop.strip_prefix("sip:")?;
    let hostport = rest.split(';').next()?;
    let transport_tcp = rest
        .split(';')
        .skip(1)
        .any(|p| p.eq_ignore_ascii_case("transport=tcp"));
    transport_tcp.then(|| hostport.parse().ok()).flatten()
}

/// Checks the arguments, the files they name and the CPUs, and builds the sweep.
pub fn prepare(a: &SweepArgs) -> Result<Sweep, ArgError> {
    if a.workload == Workload::Idle {
        return Err(bad(
            "--workload idle measures memory, not a profile: use messages or pings",
        ));
    }
    if !a.router_bin.is_file() {
        return Err(bad(format!(
            "--router-bin {}: no such file (build it: cargo build --release)",
            a.router_bin.display()
        )));
    }
    if a.point_duration.is_zero() || a.point_duration > MAX_POINT {
        return Err(bad("--point-duration must be positive and at most 10m"));
    }
    if a.max_points == 0 || a.max_points > MAX_POINTS {
        return Err(bad(format!("--max-points must be 1..={MAX_POINTS}")));
    }
    if a.max_time.is_zero() {
        return Err(bad("--max-time must be positive"));
    }
    if a.repeat == 0 || a.repeat > MAX_REPEAT {
        return Err(bad(format!("--repeat must be 1..={MAX_REPEAT}")));
    }
    if a.start_timeout.is_zero() || a.start_timeout > Duration::from_secs(120) {
        return Err(bad("--start-timeout must be positive and at most 2m"));
    }
    if !(a.min_gain.is_finite() && (0.0..100.0).contains(&a.min_gain)) {
        return Err(bad("--min-gain is a percentage in 0..100"));
    }
    if let Some(r) = a.rate {
        if a.objective != Objective::Latency {
            return Err(bad("--rate applies to --objective latency only"));
        }
        if !(r.is_finite() && r > 0.0 && r <= crate::cli::MAX_RATE) {
            return Err(bad(format!(
                "--rate {r}: must be > 0 and at most {}",
                crate::cli::MAX_RATE
            )));
        }
    }
    if a.window == Some(0) {
        return Err(bad("--window must be at least 1"));
    }
    if a.users == 0 {
        return Err(bad("--users must be at least 1"));
    }
    let config = Config::load(&a.config)
        .map_err(|e| bad(format!("--config {}: invalid:\n{e}", a.config.display())))?;
    let s2s = *config.listen.s2s.first().ok_or_else(|| {
        bad(format!(
            "--config {}: no [listen] s2s address to send load to",
            a.config.display()
        ))
    })?;
    check_loopback("the config's [listen] s2s", s2s, a.allow_remote)?;
    check_loopback(
        "--partner-listen",
        a.partners.partner_listen,
        a.allow_remote,
    )?;
    let ca = setup::read_ca_dir(&a.ca_dir).map_err(|e| bad(format!("--ca-dir: {e}")))?;
    if !config.serves(&ca.router_domain) {
        return Err(bad(format!(
            "--config {} does not serve {}, the CA directory's router domain",
            a.config.display(),
            ca.router_domain
        )));
    }
    let partners = select_partners(&ca, a.partners.partners)?;
    let listen = partner_addrs(a.partners.partner_listen, partners.len())?;
    for (p, addr) in partners.iter().zip(&listen) {
        let routed = config.partner(p).and_then(|x| x.proxy_fqdn.as_ref());
        match routed {
            Some(stanza_router::config::ProxyRoute::Addr(r)) if r == addr => {}
            other => {
                return Err(bad(format!(
                    "--config routes partner {p} to {}, but --partner-listen puts it on {addr}: \
                     write the config with the same --partner-listen (loadgen config)",
                    other.map_or_else(|| "nowhere".to_string(), |r| r.to_string())
                )))
            }
        }
    }
    let connections = a.connections.unwrap_or(partners.len());
    if connections < partners.len() || connections > crate::cli::MAX_CONNECTIONS {
        return Err(bad(format!(
            "--connections {connections}: between the {} partners and {}",
            partners.len(),
            crate::cli::MAX_CONNECTIONS
        )));
    }
    let window = a.window.unwrap_or(crate::cli::DEFAULT_WINDOW);
    if window < connections as u64 {
        return Err(bad(format!(
            "--window {window} is smaller than --connections {connections}"
        )));
    }
    let delivery = match a.workload {
        Workload::Messages => {
            let hop = config.sip.next_hop.as_deref().ok_or_else(|| {
                bad(format!(
                    "--workload messages: --config {} has no [sip] next_hop, so messages would \
                     only bounce; write it with `loadgen config ... --sip-next-hop IP:PORT`, or \
                     sweep with --workload pings",
                    a.config.display()
                ))
            })?;
            let hop_addr = next_hop_addr(hop).ok_or_else(|| {
                bad(format!(
                    "--config {}: [sip] next_hop {hop:?} is not sip:IP:PORT;transport=tcp \
                     (as `loadgen config --sip-next-hop` writes it)",
                    a.config.display()
                ))
            })?;
            let listen = a.sip_sink.unwrap_or(hop_addr);
            if listen != hop_addr {
                return Err(bad(format!(
                    "--sip-sink {listen}: the config's [sip] next_hop is {hop_addr}; the sink \
                     must listen where the router delivers"
                )));
            }
            check_loopback("--sip-sink", listen, a.allow_remote)?;
            Delivery::SipSink {
                listen,
                errors: None,
            }
        }
        _ => {
            if a.sip_sink.is_some() {
                return Err(bad("--sip-sink applies to --workload messages only"));
            }
            Delivery::Streams
        }
    };
    let grid = match &a.grid {
        Some(p) => grid::load(p).map_err(|e| bad(format!("--grid {e}")))?,
        None => Grid::default_for(0),
    };
    let allowed = affinity::allowed_cpus().map_err(|e| bad(format!("sched_getaffinity: {e}")))?;
    let router_cpus = match &a.router_cpus {
        Some(l) => {
            affinity::parse_cpu_list(l, &allowed).map_err(|e| bad(format!("--router-cpus: {e}")))?
        }
        None => vec![*allowed
            .first()
            .ok_or_else(|| bad("this process may run on no CPU (sched_getaffinity)"))?],
    };
    let loadgen_cpus = match &a.loadgen_cpus {
        Some(l) => affinity::parse_cpu_list(l, &allowed)
            .map_err(|e| bad(format!("--loadgen-cpus: {e}")))?,
        None => {
            let rest: Vec<usize> = allowed
                .iter()
                .copied()
                .filter(|c| !router_cpus.contains(c))
                .collect();
            if rest.is_empty() {
                router_cpus.clone()
            } else {
                rest
            }
        }
    };
    let grid = if a.grid.is_none() {
        Grid::default_for(router_cpus.len())
    } else {
        grid
    };
    let r = &config.runtime;
    let base = Candidate {
        values: [
            match r.shards {
                Shards::Count(n) => n as u64,
                Shards::Auto => router_cpus.len() as u64,
            },
            r.read_buffer as u64,
            r.write_batch as u64,
            r.batch as u64,
            u64::try_from(r.spin_before_park.as_nanos()).unwrap_or(u64::MAX),
            u64::try_from(r.preempt_timer.as_nanos()).unwrap_or(u64::MAX),
        ],
    };
    let date = output::today();
    let out = a.out.clone().unwrap_or_else(|| output::default_out(&date));
    if out.exists() && !a.force {
        return Err(bad(format!(
            "--out {} exists; pass --force to replace it",
            out.display()
        )));
    }
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.is_dir() {
            return Err(bad(format!(
                "--out {}: no directory {}",
                out.display(),
                dir.display()
            )));
        }
    }
    let tls = setup::partner_tls(&a.ca_dir).map_err(|e| bad(format!("--ca-dir: {e}")))?;
    let work_dir = std::env::temp_dir().join(format!("loadgen-sweep-{}", std::process::id()));
    std::fs::create_dir_all(&work_dir).map_err(|e| bad(format!("{}: {e}", work_dir.display())))?;
    let plan = RunPlan {
        router: s2s,
        tls: crate::run::TlsMode::Starttls,
        auth: crate::run::Auth::Sasl,
        domain: ca.router_domain.clone(),
        partners,
        partner_listen: listen,
        connections,
        mode: Mode::Closed { window },
        duration: a.point_duration,
        warmup: a.warmup,
        ramp_up: Duration::ZERO,
        count: None,
        drain: a.drain,
        body: a.body_size,
        users: a.users,
        workload: a.workload,
        mix: crate::workload::Mix::default(),
        router_pid: None,
        progress: false,
        recipient_domain: ca.router_domain.clone(),
        delivery,
        direction: crate::run::Direction::Inbound,
        sip_source: None,
    };
    Ok(Sweep {
        bench: Bench {
            router_bin: a.router_bin.clone(),
            config_path: a.config.clone(),
            config: Arc::new(config),
            s2s,
            router_cpus,
            work_dir,
            plan,
            tls,
            start_timeout: a.start_timeout,
            deadline: Instant::now() + a.max_time,
            repeat: a.repeat,
            count: 0,
            files: 0,
        },
        grid,
        base,
        objective: a.objective,
        rate: a.rate,
        window,
        limits: Limits {
            max_points: a.max_points,
            min_gain: a.min_gain / 100.0,
        },
        out,
        force: a.force,
        loadgen_cpus,
        command: output::shell_line(std::env::args()),
    })
}

/// Why a sweep ended without a file.
#[derive(Debug)]
pub enum SweepError {
    /// The loadgen could not pin itself.
    Pin(std::io::Error),
    /// No point qualified (all lost stanzas, failed, or none fitted in the time).
    NoBest(String),
    /// The file could not be written.
    Write(String),
}

impl std::fmt::Display for SweepError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SweepError::Pin(e) => write!(f, "cannot pin the loadgen to its CPUs: {e}"),
            SweepError::NoBest(why) => write!(f, "no profile written: {why}"),
            SweepError::Write(e) => write!(f, "cannot write the profile: {e}"),
        }
    }
}

impl std::error::Error for SweepError {}

impl Sweep {
    /// Where the best profile will be written.
    pub fn out(&self) -> &std::path::Path {
        &self.out
    }

    /// Runs the sweep: prints the table as it goes, then the summary; writes the file.
    pub fn run(mut self) -> Result<Outcome, SweepError> {
        // Before any thread starts, so every loadgen thread inherits the mask (the router child
        // sets its own between fork and exec).
        affinity::pin_current(&self.loadgen_cpus).map_err(SweepError::Pin)?;
        let b = &self.bench;
        let setup_line = format!(
            "{} over {} S2S connections from {} partners, {}; objective {}; router on CPU {}, \
             loadgen on CPU {}; {:.1} s per run after {:.1} s warm-up, each against a fresh \
             router; {} run(s) per point, each point after the base run in alternation with the \
             incumbent, replacing it only by winning every pair",
            format!("{:?}", b.plan.workload).to_lowercase(),
            b.plan.connections,
            b.plan.partners.len(),
            b.plan.delivery.describe(),
            format!("{:?}", self.objective).to_lowercase(),
            affinity::format_cpu_list(&b.router_cpus),
            affinity::format_cpu_list(&self.loadgen_cpus),
            b.plan.duration.as_secs_f64(),
            b.plan.warmup.as_secs_f64(),
            b.repeat,
        );
        println!("sweep: {setup_line}");
        println!(
            "sweep: base (the config's own values): {}; up to {} points of a one-knob-at-a-time \
             descent, at most {:.0} s",
            self.base,
            self.limits
                .max_points
                .min(self.grid.descent_points(&self.base)),
            (self.bench.deadline - Instant::now()).as_secs_f64()
        );
        println!("{}", output::header());
        let mut mode = Mode::Closed {
            window: self.window,
        };
        let mut setup_line = setup_line;
        if self.objective == Objective::Latency {
            let rate = match self.rate {
                None => {
                    let cal = self.bench.calibrate(&self.base, mode).ok_or_else(|| {
                        SweepError::NoBest("out of time before the calibration".into())
                    })?;
                    if !cal.qualified() || cal.figures.rate <= 0.0 {
                        return Err(SweepError::NoBest(format!(
                            "the calibration point (base, closed loop) failed: {}",
                            cal.disqualified.unwrap_or_default()
                        )));
                    }
                    let rate = (cal.figures.rate * LATENCY_SHARE).round().max(1.0);
                    setup_line.push_str(&format!(
                        "; open loop at {rate:.0}/s, {:.0} % of the base's closed-loop {:.0}/s",
                        LATENCY_SHARE * 100.0,
                        cal.figures.rate
                    ));
                    rate
                }
                Some(r) => {
                    setup_line.push_str(&format!("; open loop at {r:.0}/s (--rate)"));
                    r
                }
            };
            println!("sweep: latency points offered {rate:.0}/s (open loop)");
            mode = Mode::Open { rate };
        }
        let mut m = SearchBench {
            bench: &mut self.bench,
            mode,
        };
        let outcome =
            search::coordinate_descent(self.base, &self.grid, self.objective, self.limits, &mut m);
        println!();
        match outcome.stopped {
            Some(Stopped::MaxPoints) => {
                println!("sweep: stopped at --max-points {}", self.limits.max_points)
            }
            Some(Stopped::Measurer) => {
                println!("sweep: stopped: the next point would pass --max-time")
            }
            None => {}
        }
        print!("{}", output::table(&outcome));
        let prov = output::Provenance {
            machine: output::Machine::read(),
            date: output::today(),
            command: self.command.clone(),
            setup: setup_line,
        };
        let Some(text) = output::profile_file(&outcome, &prov) else {
            let why = if outcome.points.is_empty() {
                "no point fitted in --max-time".to_string()
            } else {
                format!(
                    "no point qualified (router logs and profiles kept in {})",
                    self.bench.work_dir.display()
                )
            };
            return Err(SweepError::NoBest(why));
        };
        output::write_new(&self.out, &text, self.force).map_err(SweepError::Write)?;
        if let Some(best) = outcome.best_point() {
            println!(
                "sweep: best is point {} ({}): {}",
                outcome.best.map_or(0, |i| i + 1),
                best.candidate,
                output::figures_line(&best.measurement.figures)
            );
            let changed: Vec<&str> = Knob::ALL
                .into_iter()
                .filter(|k| best.candidate.get(*k) != self.base.get(*k))
                .map(Knob::key)
                .collect();
            if changed.is_empty() {
                println!("sweep: the config's own values were best");
            }
        }
        println!("sweep: wrote {}", self.out.display());
        let _ = std::fs::remove_dir_all(&self.bench.work_dir);
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_hop_of_loadgen_config_is_read() {
        assert_eq!(
            next_hop_addr("sip:127.0.0.1:5070;transport=tcp"),
            Some("127.0.0.1:5070".parse().unwrap())
        );
        assert_eq!(next_hop_addr("sip:127.0.0.1:5070"), None, "UDP");
        assert_eq!(next_hop_addr("sip:pool.corp.test;transport=tcp"), None);
    }
}
