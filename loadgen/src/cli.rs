//! Command line: `loadgen run | ca | config`, and the validation that turns arguments into a
//! [`RunPlan`]. Every refusal is an [`ArgError`] (exit status 2).

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::run::{Auth, Delivery, Direction, Mode, RunPlan, SipSource, TlsMode};
use crate::setup::{self, CaDir};
use crate::sip_sink::SipErrors;
use crate::workload::{BodySize, Mix, Workload};

/// Longest run accepted (warm-up + duration + drain).
pub const MAX_RUN: Duration = Duration::from_secs(24 * 3600);
/// Most connections accepted.
pub const MAX_CONNECTIONS: usize = 10_000;
/// Closed-loop window when none is given.
pub const DEFAULT_WINDOW: u64 = 512;
/// Highest open-loop rate accepted, requests/s.
pub const MAX_RATE: f64 = 10_000_000.0;

/// Load generator for stanza-router: plays federated XMPP partners over S2S (STARTTLS or direct
/// TLS, SASL EXTERNAL or dialback) and the internal SIP side (a sink for the router's next hop, a source for
/// its SIP listener) against the router, and reports throughput and latency.
#[derive(Debug, Parser)]
#[command(name = "loadgen", version)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
// Parsed once per process: the size of the run arguments does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Send load to a running router and report.
    Run(RunArgs),
    /// Write a throw-away CA, the router's certificate and the partners' certificate.
    Ca(CaArgs),
    /// Write a router config matching a CA directory and the partner listen addresses.
    Config(ConfigArgs),
    /// Search runtime profiles against a router config: start the router per candidate,
    /// measure, and write the best profile found into tuning/.
    Sweep(SweepArgs),
    /// Measure how often and how long a CPU is taken from a thread that never yields it (the
    /// machine's noise floor under latency figures).
    Hiccups(HiccupsArgs),
}

/// Longest `loadgen hiccups` measurement accepted.
pub const MAX_HICCUP_DURATION: Duration = Duration::from_secs(600);

/// `loadgen hiccups`.
#[derive(Debug, Clone, Args)]
pub struct HiccupsArgs {
    /// Measure on this CPU (the one the server under test runs on).
    #[arg(long, value_name = "N")]
    pub cpu: Option<usize>,
    /// Keep this CPU busy meanwhile (the loadgen's CPU during a benchmark).
    #[arg(long, value_name = "N")]
    pub load_cpu: Option<usize>,
    /// How long to measure (at most 10 min).
    #[arg(long, default_value = "10s", value_parser = duration)]
    pub duration: Duration,
    /// Also write the figures as JSON.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

impl HiccupsArgs {
    /// The measurement these arguments ask for, or what is wrong with them.
    pub fn plan(&self) -> Result<crate::hiccup::Plan, String> {
        if self.duration.is_zero() || self.duration > MAX_HICCUP_DURATION {
            return Err("--duration must be positive and at most 10m".into());
        }
        let allowed = crate::sweep::affinity::allowed_cpus()
            .map_err(|e| format!("cannot read this process's CPUs: {e}"))?;
        for (flag, cpu) in [("--cpu", self.cpu), ("--load-cpu", self.load_cpu)] {
            if let Some(c) = cpu {
                crate::sweep::affinity::parse_cpu_list(&c.to_string(), &allowed)
                    .map_err(|e| format!("{flag}: {e}"))?;
            }
        }
        if self.cpu.is_some() && self.cpu == self.load_cpu {
            return Err("--cpu and --load-cpu must differ".into());
        }
        Ok(crate::hiccup::Plan {
            cpu: self.cpu,
            load_cpu: self.load_cpu,
            duration: self.duration,
        })
    }
}

fn duration(s: &str) -> Result<Duration, String> {
    stanza_router::config::duration::parse_duration(s).map_err(|e| e.to_string())
}

/// Which partners of the CA directory to play.
#[derive(Debug, Clone, Args)]
pub struct PartnerSel {
    /// Play the first M partner domains of the CA directory (default: all of them).
    #[arg(long, value_name = "M")]
    pub partners: Option<usize>,
    /// Partner `i` listens for the router's streams on this address's port + i.
    #[arg(long, value_name = "IP:PORTBASE")]
    pub partner_listen: SocketAddr,
}

/// `loadgen run`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// The router's S2S listener (IP literal and port; no name resolution): its `listen.s2s`
    /// (STARTTLS), or with --tls direct its `listen.s2s_tls`.
    #[arg(long, value_name = "IP:PORT")]
    pub router_s2s: SocketAddr,
    /// How our streams start TLS: starttls, or direct (XEP-0368, ALPN xmpp-server).
    #[arg(long, value_enum, default_value_t = TlsMode::Starttls)]
    pub tls: TlsMode,
    /// How our streams authenticate: sasl (EXTERNAL), or dialback (XEP-0220 over STARTTLS;
    /// the loadgen answers the router's verify streams as the partners' authoritative server;
    /// the router config needs `loadgen config --auth dialback`).
    #[arg(long, value_enum, default_value_t = Auth::Sasl)]
    pub auth: Auth,
    /// The router's domain (default: the CA directory's).
    #[arg(long)]
    pub domain: Option<String>,
    /// Directory written by `loadgen ca`.
    #[arg(long, value_name = "DIR")]
    pub ca_dir: PathBuf,
    /// Partners.
    #[command(flatten)]
    pub partners: PartnerSel,
    /// S2S connections to the router, spread round-robin over the partners (default: one per
    /// partner).
    #[arg(long, value_name = "C")]
    pub connections: Option<usize>,
    /// Open loop: constant arrival rate, requests per second (this or --closed-loop, except
    /// for --workload idle). Each connection's writer wakes at most every 200 µs and sends what
    /// is due; latency still counts from each request's intended send time.
    #[arg(long, value_name = "R", conflicts_with = "closed_loop")]
    pub rate: Option<f64>,
    /// Closed loop: send as answers come back, at most --window outstanding.
    #[arg(long)]
    pub closed_loop: bool,
    /// Closed loop: outstanding requests over all connections [default: 512].
    #[arg(long)]
    pub window: Option<u64>,
    /// Recorded phase, e.g. 10s.
    #[arg(long, default_value = "10s", value_parser = duration)]
    pub duration: Duration,
    /// Unrecorded phase before it.
    #[arg(long, default_value = "0s", value_parser = duration)]
    pub warmup: Duration,
    /// Linear ramp of the rate (or window) from the start.
    #[arg(long, default_value = "0s", value_parser = duration)]
    pub ramp_up: Duration,
    /// Stop after N measured requests (the duration still bounds the run).
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// Wait this long for outstanding answers after the last send.
    #[arg(long, default_value = "5s", value_parser = duration)]
    pub drain: Duration,
    /// Message body size: N, fixed:N or uniform:MIN-MAX (bytes, KiB allowed).
    #[arg(long, default_value = "100")]
    pub body_size: BodySize,
    /// Distinct recipients user0..user{K-1} of messages.
    #[arg(long, value_name = "K", default_value_t = 1000)]
    pub users: u64,
    /// What to send.
    #[arg(long, value_enum, default_value_t = Workload::Pings)]
    pub workload: Workload,
    /// --workload mix: weights of messages (delivered at the SIP sink), presence (probes from
    /// a fresh partner user, answered `unsubscribed` by the router's presence tables) and
    /// subscriptions (`subscribe` → SIP SUBSCRIBE at the sink, answered 200 + NOTIFY →
    /// `subscribed` back at the partner) [default: messages=80,presence=15,subscriptions=5].
    /// The SIP source (outbound) sends MESSAGEs and SUBSCRIBEs in the messages:subscriptions
    /// proportion; each SUBSCRIBE completes when its `subscribe` reaches the partner, and its
    /// dialog is then ended with an unsubscribe.
    #[arg(long, value_name = "ITEM=W,...")]
    pub mix: Option<Mix>,
    /// Write the report as JSON.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write the report as a self-contained HTML page.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Sample this router process's CPU time and peak RSS.
    #[arg(long, value_name = "PID")]
    pub router_pid: Option<u32>,
    /// Accept addresses outside loopback (127.0.0.0/8, ::1).
    #[arg(long)]
    pub allow_remote: bool,
    /// No progress on stderr.
    #[arg(long)]
    pub quiet: bool,
    /// Play the internal SIP pool: listen here (the router's `[sip] next_hop`), answer every
    /// MESSAGE and count it delivered when it arrives (the kernel's receive timestamp of its
    /// bytes, not the moment the sink's thread read them); answer SUBSCRIBE with 200 and a NOTIFY.
    #[arg(long, value_name = "IP:PORT", conflicts_with = "component")]
    pub sip_sink: Option<SocketAddr>,
    /// SIP sink: answer this share of MESSAGEs with this code instead of 200, e.g. 486:2%.
    #[arg(long, value_name = "CODE:SHARE", requires = "sip_sink")]
    pub sip_errors: Option<SipErrors>,
    /// Connect to this XEP-0114 component listener of the server under test (Prosody,
    /// ejabberd) and count messages to users@--component-domain delivered when they arrive (the
    /// kernel's receive timestamp, as for the SIP sink).
    #[arg(
        long,
        value_name = "IP:PORT",
        requires_all = ["component_secret", "component_domain"]
    )]
    pub component: Option<SocketAddr>,
    /// The component's shared secret.
    #[arg(long, value_name = "S", requires = "component")]
    pub component_secret: Option<String>,
    /// The component's domain: messages go to userN@D.
    #[arg(long, value_name = "D", requires = "component")]
    pub component_domain: Option<String>,
    /// Which way the load flows: inbound (partners → router over S2S, the --workload),
    /// outbound (the SIP source → router → partners: SIP MESSAGEs, and SUBSCRIBEs with
    /// --workload mix, to userN@<partner>, completed when the stanza reaches the partner; needs
    /// --sip-source) or both at once (each direction
    /// at the full --rate or --window, reported separately and together).
    #[arg(long, value_enum, default_value_t = Direction::Inbound)]
    pub direction: Direction,
    /// Outbound: the router's `[sip] listen` address the SIP source sends requests to.
    #[arg(long, value_name = "IP:PORT")]
    pub sip_source: Option<SocketAddr>,
    /// Outbound: TCP connections of the SIP source (requests spread round-robin). The router
    /// keeps at most 65,536 server transactions per flow, each lingering 2·T1 (1 s) after its
    /// answer, so one flow above ≈ 65 K requests/s gets 503s (a SUBSCRIBE item is two: it and
    /// its unsubscribe): use several.
    #[arg(long, value_name = "N", default_value_t = 1, requires = "sip_source")]
    pub sip_connections: usize,
    /// Outbound: SIP domain of the senders lgN@D (an internal domain of the router) [default:
    /// the router's domain].
    #[arg(long, value_name = "D", requires = "sip_source")]
    pub sip_domain: Option<String>,
}

/// `loadgen ca`.
#[derive(Debug, Clone, Args)]
pub struct CaArgs {
    /// Directory to write (created if missing; existing files are replaced).
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// The router's domain.
    #[arg(long, default_value = "corp.test")]
    pub router_domain: String,
    /// Partner domains p0.partner.test … p{M-1}.partner.test.
    #[arg(
        long,
        value_name = "M",
        default_value_t = 4,
        conflicts_with = "partner_domains"
    )]
    pub partners: usize,
    /// Partner domains by name instead (comma-separated).
    #[arg(long, value_delimiter = ',', value_name = "DOMAIN,...")]
    pub partner_domains: Vec<String>,
    /// Certificates with DNS-IDs only, no XmppAddr (ejabberd 23.01 fails SASL EXTERNAL on a
    /// certificate with XmppAddr).
    #[arg(long)]
    pub dns_id_only: bool,
}

/// `loadgen config`.
#[derive(Debug, Clone, Args)]
pub struct ConfigArgs {
    /// Directory written by `loadgen ca`.
    #[arg(long, value_name = "DIR")]
    pub ca_dir: PathBuf,
    /// Where to write the router config.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// The router's S2S listen address.
    #[arg(long, value_name = "IP:PORT")]
    pub router_s2s: SocketAddr,
    /// Partners.
    #[command(flatten)]
    pub partners: PartnerSel,
    /// Connections `loadgen run` will open (sizes the connection limits).
    #[arg(long, value_name = "C", default_value_t = 64)]
    pub connections: usize,
    /// Router shards: a number or "auto".
    #[arg(long, default_value = "2")]
    pub shards: String,
    /// Accept addresses outside loopback.
    #[arg(long)]
    pub allow_remote: bool,
    /// Write a `[sip]` section whose next hop is this TCP address (a `loadgen run --sip-sink`).
    #[arg(long, value_name = "IP:PORT")]
    pub sip_next_hop: Option<SocketAddr>,
    /// Also listen for direct TLS S2S (XEP-0368) here: `listen.s2s_tls` (for `loadgen run
    /// --tls direct --router-s2s` at the same address).
    #[arg(long, value_name = "IP:PORT")]
    pub router_s2s_tls: Option<SocketAddr>,
    /// How the partners authenticate: sasl (required), or dialback (partners accept dialback,
    /// SASL optional: for `loadgen run --auth dialback`).
    #[arg(long, value_enum, default_value_t = Auth::Sasl)]
    pub auth: Auth,
    /// Write a `[sip] listen` on this address (for `loadgen run --direction outbound
    /// --sip-source` at the same address).
    #[arg(long, value_name = "IP:PORT")]
    pub sip_listen: Option<SocketAddr>,
}

/// `loadgen sweep`.
#[derive(Debug, Clone, Args)]
pub struct SweepArgs {
    /// The stanza-router binary (a release build for figures worth keeping).
    #[arg(long, value_name = "PATH")]
    pub router_bin: PathBuf,
    /// Router config, as written by `loadgen config` (with `--sip-next-hop` for messages).
    #[arg(long, value_name = "ROUTER.toml")]
    pub config: PathBuf,
    /// Directory written by `loadgen ca`.
    #[arg(long, value_name = "DIR")]
    pub ca_dir: PathBuf,
    /// Partners (the same --partner-listen the config was written with).
    #[command(flatten)]
    pub partners: PartnerSel,
    /// S2S connections to the router (default: one per partner).
    #[arg(long, value_name = "C")]
    pub connections: Option<usize>,
    /// Messages: the SIP sink's listen address (default: the config's `[sip] next_hop`).
    #[arg(long, value_name = "IP:PORT")]
    pub sip_sink: Option<SocketAddr>,
    /// What to send.
    #[arg(long, value_enum, default_value_t = Workload::Messages)]
    pub workload: Workload,
    /// Values to try per knob (TOML: `read_buffer = ["4KiB", "16KiB"]`, …) instead of the
    /// default grid.
    #[arg(long, value_name = "FILE.toml")]
    pub grid: Option<PathBuf>,
    /// Recorded load per point.
    #[arg(long, default_value = "4s", value_parser = duration)]
    pub point_duration: Duration,
    /// Unrecorded load before each point's recorded phase.
    #[arg(long, default_value = "500ms", value_parser = duration)]
    pub warmup: Duration,
    /// Wait this long for outstanding answers at the end of each point.
    #[arg(long, default_value = "2s", value_parser = duration)]
    pub drain: Duration,
    /// Where to write the best profile [default: tuning/sweep-YYYY-MM-DD.toml].
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Replace --out if it exists.
    #[arg(long)]
    pub force: bool,
    /// What the best profile is best at.
    #[arg(long, value_enum, default_value_t = crate::sweep::search::Objective::Throughput)]
    pub objective: crate::sweep::search::Objective,
    /// Latency objective: the offered rate (default: half the base profile's closed-loop rate,
    /// measured first).
    #[arg(long, value_name = "R")]
    pub rate: Option<f64>,
    /// Throughput objective: outstanding requests [default: 512].
    #[arg(long)]
    pub window: Option<u64>,
    /// Points measured at most, the base included.
    #[arg(long, default_value_t = 16)]
    pub max_points: usize,
    /// Runs per point, each against a fresh router; the point stands for its median run (a
    /// single run moves ±15% on a shared machine). Any run that loses stanzas or fails
    /// disqualifies the point.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub repeat: usize,
    /// Wall time of the whole sweep at most; a point that would not fit is not started.
    #[arg(long, default_value = "10m", value_parser = duration)]
    pub max_time: Duration,
    /// Percent a point must gain over the incumbent to replace it (noise guard).
    #[arg(long, value_name = "PERCENT", default_value_t = 2.0)]
    pub min_gain: f64,
    /// Time a router is given to listen after its start.
    #[arg(long, default_value = "10s", value_parser = duration)]
    pub start_timeout: Duration,
    /// CPUs the router runs on, e.g. 0 or 0-3 [default: the first available CPU].
    #[arg(long, value_name = "LIST")]
    pub router_cpus: Option<String>,
    /// CPUs the loadgen runs on [default: the other available CPUs].
    #[arg(long, value_name = "LIST")]
    pub loadgen_cpus: Option<String>,
    /// Message body size: N, fixed:N or uniform:MIN-MAX.
    #[arg(long, default_value = "100")]
    pub body_size: BodySize,
    /// Distinct recipients of messages.
    #[arg(long, value_name = "K", default_value_t = 1000)]
    pub users: u64,
    /// Accept addresses outside loopback.
    #[arg(long)]
    pub allow_remote: bool,
}

/// A refused argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgError(pub String);

impl fmt::Display for ArgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ArgError {}

fn bad(msg: impl Into<String>) -> ArgError {
    ArgError(msg.into())
}

/// Refuses a non-loopback address unless `allow`.
pub fn check_loopback(what: &str, addr: SocketAddr, allow: bool) -> Result<(), ArgError> {
    if addr.ip().is_loopback() || allow {
        Ok(())
    } else {
        Err(bad(format!(
            "{what} {addr} is outside loopback; pass --allow-remote to target it"
        )))
    }
}

/// Checks an XMPP domain the loadgen writes into streams and certificates.
pub fn check_domain(what: &str, d: &str) -> Result<(), ArgError> {
    let ok = !d.is_empty()
        && d.len() <= 253
        && d.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        });
    if ok {
        Ok(())
    } else {
        Err(bad(format!(
            "{what} {d:?} is not a lower-case DNS domain name"
        )))
    }
}

/// Partner `i`'s listen address: the base port + i.
pub fn partner_addrs(base: SocketAddr, n: usize) -> Result<Vec<SocketAddr>, ArgError> {
    (0..n)
        .map(|i| {
            u16::try_from(usize::from(base.port()) + i)
                .ok()
                .filter(|_| base.port() != 0)
                .map(|p| SocketAddr::new(base.ip(), p))
                .ok_or_else(|| {
                    bad(format!(
                        "--partner-listen {base}: ports {}..{} do not fit (port 0 is not allowed)",
                        base.port(),
                        usize::from(base.port()) + n
                    ))
                })
        })
        .collect()
}

/// The first `m` partners of the CA directory (all when `None`).
pub fn select_partners(ca: &CaDir, m: Option<usize>) -> Result<Vec<String>, ArgError> {
    let m = m.unwrap_or(ca.partners.len());
    if m == 0 {
        return Err(bad("--partners must be at least 1"));
    }
    if m > ca.partners.len() {
        return Err(bad(format!(
            "--partners {m}: the CA directory {} has certificates for {} partners (run `loadgen ca --partners {m}`)",
            ca.dir.display(),
            ca.partners.len()
        )));
    }
    Ok(ca.partners[..m].to_vec())
}

impl RunArgs {
    /// Checks everything that does not need the CA directory.
    pub fn check(&self) -> Result<(), ArgError> {
        check_loopback("--router-s2s", self.router_s2s, self.allow_remote)?;
        check_loopback(
            "--partner-listen",
            self.partners.partner_listen,
            self.allow_remote,
        )?;
        if self.rate.is_none() && !self.closed_loop && self.workload != Workload::Idle {
            return Err(bad("give --rate R (open loop) or --closed-loop"));
        }
        if let Some(a) = self.sip_sink {
            check_loopback("--sip-sink", a, self.allow_remote)?;
        }
        if let Some(a) = self.component {
            check_loopback("--component", a, self.allow_remote)?;
        }
        if let Some(d) = &self.component_domain {
            check_domain("--component-domain", d)?;
        }
        match (self.direction.outbound(), self.sip_source) {
            (true, None) => {
                return Err(bad(format!(
                    "--direction {}: give --sip-source IP:PORT (the router's [sip] listen)",
                    if self.direction.inbound() {
                        "both"
                    } else {
                        "outbound"
                    }
                )))
            }
            (false, Some(_)) => {
                return Err(bad("--sip-source applies to --direction outbound or both"))
            }
            (true, Some(a)) => check_loopback("--sip-source", a, self.allow_remote)?,
            (false, None) => {}
        }
        if self.auth == Auth::Dialback && self.tls == TlsMode::Direct {
            return Err(bad(
                "--auth dialback runs over STARTTLS only (not with --tls direct)",
            ));
        }
        if self.auth == Auth::Dialback && self.workload == Workload::Idle {
            return Err(bad(
                "--auth dialback needs the partners' listeners, which --workload idle does not run",
            ));
        }
        if self.mix.is_some() && self.workload != Workload::Mix {
            return Err(bad("--mix applies to --workload mix"));
        }
        if self.workload == Workload::Mix && self.sip_sink.is_none() {
            return Err(bad(
                "--workload mix needs --sip-sink (messages and subscriptions go through the SIP gateway, \
                 whose presence tables need the router's [sip] next_hop, where the sink listens)",
            ));
        }
        if self.workload == Workload::Mix && self.direction.outbound() {
            let m = self.mix.unwrap_or_default().outbound();
            if m.messages == 0 && m.subscriptions == 0 {
                return Err(bad(
                    "--direction outbound: the SIP source sends the mix's messages and subscriptions, and both weigh 0",
                ));
            }
        }
        if self.direction.outbound() && self.workload == Workload::Idle {
            return Err(bad(
                "--workload idle sends nothing: use --direction inbound",
            ));
        }
        if self.sip_connections == 0 || self.sip_connections > MAX_CONNECTIONS {
            return Err(bad(format!(
                "--sip-connections {}: must be 1..={MAX_CONNECTIONS}",
                self.sip_connections
            )));
        }
        if let Some(d) = &self.sip_domain {
            check_domain("--sip-domain", d)?;
        }
        if let Some(r) = self.rate {
            if !(r.is_finite() && r > 0.0 && r <= MAX_RATE) {
                return Err(bad(format!(
                    "--rate {r}: must be > 0 and at most {MAX_RATE}"
                )));
            }
        }
        if self.window.is_some() && !self.closed_loop {
            return Err(bad("--window applies to --closed-loop only"));
        }
        if self.window == Some(0) {
            return Err(bad("--window must be at least 1"));
        }
        if let Some(c) = self.connections {
            if c == 0 || c > MAX_CONNECTIONS {
                return Err(bad(format!(
                    "--connections {c}: must be 1..={MAX_CONNECTIONS}"
                )));
            }
        }
        if self.duration.is_zero() {
            return Err(bad("--duration must be positive"));
        }
        if self.warmup + self.duration + self.drain > MAX_RUN {
            return Err(bad("--warmup + --duration + --drain must stay under 24h"));
        }
        if self.ramp_up > self.warmup + self.duration {
            return Err(bad("--ramp-up is longer than --warmup + --duration"));
        }
        if self.count == Some(0) {
            return Err(bad("--count must be at least 1"));
        }
        if self.users == 0 {
            return Err(bad("--users must be at least 1"));
        }
        if let Some(d) = &self.domain {
            check_domain("--domain", d)?;
        }
        Ok(())
    }

    /// The run plan, with the partners of `ca`.
    pub fn plan(&self, ca: &CaDir) -> Result<RunPlan, ArgError> {
        self.check()?;
        let partners = select_partners(ca, self.partners.partners)?;
        let connections = self.connections.unwrap_or(partners.len());
        if connections < partners.len() {
            return Err(bad(format!(
                "--connections {connections} is fewer than the {} partners: every partner needs one",
                partners.len()
            )));
        }
        let window = self.window.unwrap_or(DEFAULT_WINDOW);
        if self.closed_loop && self.direction.inbound() && window < connections as u64 {
            return Err(bad(format!(
                "--window {window} is smaller than --connections {connections}"
            )));
        }
        if self.closed_loop && self.direction.outbound() && window < self.sip_connections as u64 {
            return Err(bad(format!(
                "--window {window} is smaller than --sip-connections {}",
                self.sip_connections
            )));
        }
        let partner_listen = partner_addrs(self.partners.partner_listen, partners.len())?;
        let domain = self
            .domain
            .clone()
            .unwrap_or_else(|| ca.router_domain.clone());
        if domain != ca.router_domain {
            return Err(bad(format!(
                "--domain {domain}: the CA directory's router certificate is for {}",
                ca.router_domain
            )));
        }
        Ok(RunPlan {
            router: self.router_s2s,
            tls: self.tls,
            auth: self.auth,
            domain: domain.clone(),
            partners,
            partner_listen,
            connections,
            mode: match self.rate {
                Some(rate) => Mode::Open { rate },
                None => Mode::Closed { window },
            },
            duration: self.duration,
            warmup: self.warmup,
            ramp_up: self.ramp_up,
            count: self.count,
            drain: self.drain,
            body: self.body_size,
            users: self.users,
            workload: self.workload,
            mix: self.mix.unwrap_or_default(),
            router_pid: self.router_pid,
            progress: !self.quiet,
            recipient_domain: self
                .component_domain
                .clone()
                .unwrap_or_else(|| domain.clone()),
            delivery: match (self.sip_sink, self.component) {
                (Some(listen), _) => Delivery::SipSink {
                    listen,
                    errors: self.sip_errors,
                },
                (None, Some(server)) => Delivery::Component {
                    server,
                    domain: self.component_domain.clone().unwrap_or_default(),
                    secret: self.component_secret.clone().unwrap_or_default(),
                },
                (None, None) => Delivery::Streams,
            },
            direction: self.direction,
            sip_source: self.sip_source.map(|router| SipSource {
                router,
                connections: self.sip_connections,
                sip_domain: self.sip_domain.clone().unwrap_or_else(|| domain.clone()),
            }),
        })
    }
}

impl CaArgs {
    /// The partner domains to certify.
    pub fn partner_domains(&self) -> Result<Vec<String>, ArgError> {
        check_domain("--router-domain", &self.router_domain)?;
        let list = if self.partner_domains.is_empty() {
            if self.partners == 0 || self.partners > MAX_CONNECTIONS {
                return Err(bad(format!(
                    "--partners {}: must be 1..={MAX_CONNECTIONS}",
                    self.partners
                )));
            }
            setup::default_partners(self.partners)
        } else {
            self.partner_domains.clone()
        };
        for d in &list {
            check_domain("partner domain", d)?;
            if *d == self.router_domain {
                return Err(bad(format!("partner domain {d} is the router's domain")));
            }
        }
        let mut sorted = list.clone();
        sorted.sort();
        sorted.dedup();
        if sorted.len() != list.len() {
            return Err(bad("partner domains must be distinct"));
        }
        Ok(list)
    }
}

impl ConfigArgs {
    /// Checks addresses and counts.
    pub fn check(&self) -> Result<(), ArgError> {
        check_loopback("--router-s2s", self.router_s2s, self.allow_remote)?;
        check_loopback(
            "--partner-listen",
            self.partners.partner_listen,
            self.allow_remote,
        )?;
        if let Some(a) = self.sip_next_hop {
            check_loopback("--sip-next-hop", a, self.allow_remote)?;
        }
        if let Some(a) = self.sip_listen {
            check_loopback("--sip-listen", a, self.allow_remote)?;
        }
        if let Some(a) = self.router_s2s_tls {
            check_loopback("--router-s2s-tls", a, self.allow_remote)?;
        }
        if self.connections == 0 || self.connections > MAX_CONNECTIONS {
            return Err(bad(format!("--connections must be 1..={MAX_CONNECTIONS}")));
        }
        if self.shards != "auto" && self.shards.parse::<usize>().map_or(true, |n| n == 0) {
            return Err(bad(format!(
                "--shards {:?}: a positive number or \"auto\"",
                self.shards
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &str) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("loadgen").chain(args.split_whitespace()))
    }

    fn hiccups_plan(extra: &str) -> Result<crate::hiccup::Plan, String> {
        match parse(&format!("hiccups {extra}")) {
            Ok(Cli {
                command: Command::Hiccups(h),
            }) => h.plan(),
            Ok(_) => Err("not hiccups".into()),
            Err(e) => Err(e.to_string()),
        }
    }

    fn sweep_refusal(extra: &str) -> String {
        let base = "sweep --router-bin /proc/self/exe --config /nonexistent/router.toml \
                    --ca-dir /nonexistent/ca --partner-listen 127.0.0.1:16000";
        match parse(&format!("{base} {extra}")) {
            Ok(Cli {
                command: Command::Sweep(a),
            }) => match crate::sweep::prepare(&a) {
                Ok(_) => "accepted".into(),
                Err(e) => e.to_string(),
            },
            Ok(_) => "not sweep".into(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn sweep_repeat_is_bounded() {
        for n in ["0", "10"] {
            let e = sweep_refusal(&format!("--repeat {n}"));
            assert!(e.contains("--repeat must be 1..=9"), "--repeat {n}: {e}");
        }
        // In range, the refusal that follows is about the missing config, not the count.
        let e = sweep_refusal("--repeat 9");
        assert!(!e.contains("--repeat"), "{e}");
    }

    #[test]
    fn hiccups_takes_available_cpus_and_a_bounded_duration() {
        let cpus = crate::sweep::affinity::allowed_cpus().unwrap();
        let p = hiccups_plan(&format!("--cpu {} --duration 2s", cpus[0])).unwrap();
        assert_eq!((p.cpu, p.load_cpu), (Some(cpus[0]), None));
        assert_eq!(p.duration, Duration::from_secs(2));
        assert_eq!(hiccups_plan("").unwrap().duration, Duration::from_secs(10));
        let e = hiccups_plan("--duration 11m").unwrap_err();
        assert!(e.contains("at most 10m"), "{e}");
        let e = hiccups_plan("--duration 0s").unwrap_err();
        assert!(e.contains("positive"), "{e}");
        let e = hiccups_plan("--cpu 1000").unwrap_err();
        assert!(e.starts_with("--cpu: CPU 1000 is not available"), "{e}");
        let e = hiccups_plan(&format!("--cpu {0} --load-cpu {0}", cpus[0])).unwrap_err();
        assert!(e.contains("must differ"), "{e}");
    }

    fn run_args(extra: &str) -> Result<RunArgs, String> {
        let line = format!(
            "run --router-s2s 127.0.0.1:5269 --ca-dir /tmp/x --partner-listen 127.0.0.1:6000 {extra}"
        );
        match parse(&line) {
            Ok(Cli {
                command: Command::Run(r),
            }) => Ok(r),
            Ok(_) => Err("not run".into()),
            Err(e) => Err(e.to_string()),
        }
    }

    fn ca(n: usize) -> CaDir {
        CaDir {
            dir: "/tmp/x".into(),
            router_domain: "corp.test".into(),
            partners: setup::default_partners(n),
        }
    }

    #[test]
    fn rate_or_closed_loop_is_required_and_exclusive() {
        assert!(run_args("").unwrap().check().is_err());
        assert!(run_args("--workload idle --connections 5")
            .unwrap()
            .check()
            .is_ok());
        assert!(run_args("--rate 10 --closed-loop").is_err());
        assert!(run_args("--rate 10").is_ok());
        assert!(run_args("--closed-loop").is_ok());
        assert!(run_args("--rate 10 --window 5").unwrap().check().is_err());
    }

    #[test]
    fn clap_errors_exit_with_status_2() {
        let e = parse("run --rate 10").unwrap_err();
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn host_names_are_refused_without_resolution() {
        let e = run_args("--rate 1").map(|_| ());
        assert!(e.is_ok());
        let line =
            "run --router-s2s localhost:5269 --ca-dir d --partner-listen 127.0.0.1:6000 --rate 1";
        assert!(parse(line).is_err());
    }

    #[test]
    fn non_loopback_targets_need_allow_remote() {
        let line =
            "run --router-s2s 10.0.0.1:5269 --ca-dir d --partner-listen 127.0.0.1:6000 --rate 1";
        let Ok(Cli {
            command: Command::Run(r),
        }) = parse(line)
        else {
            panic!("parse")
        };
        assert!(r.check().unwrap_err().0.contains("outside loopback"));
        let Ok(Cli {
            command: Command::Run(r),
        }) = parse(&format!("{line} --allow-remote"))
        else {
            panic!("parse")
        };
        assert!(r.check().is_ok());
    }

    #[test]
    fn bad_values_are_refused() {
        for extra in [
            "--rate 0",
            "--rate -5",
            "--rate nan",
            "--rate 1 --connections 0",
            "--rate 1 --count 0",
            "--rate 1 --users 0",
            "--rate 1 --duration 0s",
            "--rate 1 --duration 30h",
            "--rate 1 --ramp-up 20s --duration 10s",
            "--rate 1 --domain Corp.Test",
            "--closed-loop --window 0",
        ] {
            let r = run_args(extra);
            let refused = match r {
                Err(_) => true,
                Ok(r) => r.check().is_err(),
            };
            assert!(refused, "accepted: {extra}");
        }
        assert!(
            run_args("--rate 1 --duration 10").is_err(),
            "unitless duration"
        );
        assert!(run_args("--rate 1 --body-size uniform:9-1").is_err());
    }

    #[test]
    fn plan_takes_partners_from_the_ca_directory() {
        let r = run_args("--rate 100 --partners 2 --connections 4").unwrap();
        let p = r.plan(&ca(3)).unwrap();
        assert_eq!(p.partners, ["p0.partner.test", "p1.partner.test"]);
        assert_eq!(
            p.partner_listen,
            [
                "127.0.0.1:6000".parse().unwrap(),
                "127.0.0.1:6001".parse().unwrap()
            ]
        );
        assert_eq!(p.domain, "corp.test");
        assert_eq!(p.mode, Mode::Open { rate: 100.0 });
        assert!(run_args("--rate 1 --partners 4")
            .unwrap()
            .plan(&ca(3))
            .is_err());
        assert!(run_args("--rate 1 --connections 2")
            .unwrap()
            .plan(&ca(3))
            .is_err());
        assert!(run_args("--rate 1 --domain other.test")
            .unwrap()
            .plan(&ca(3))
            .is_err());
        assert!(run_args("--closed-loop --window 2 --connections 3")
            .unwrap()
            .plan(&ca(3))
            .is_err());
    }

    #[test]
    fn sinks_are_exclusive_and_complete() {
        assert!(run_args("--rate 1 --sip-sink 127.0.0.1:5070 --sip-errors 486:2%").is_ok());
        assert!(
            run_args("--rate 1 --sip-errors 486:2%").is_err(),
            "errors need the sink"
        );
        assert!(
            run_args("--rate 1 --component 127.0.0.1:5347").is_err(),
            "secret and domain"
        );
        assert!(run_args(
            "--rate 1 --sip-sink 127.0.0.1:5070 --component 127.0.0.1:5347 \
             --component-secret s --component-domain sink.corp.test"
        )
        .is_err());
        let r = run_args(
            "--rate 1 --workload messages --component 127.0.0.1:5347 --component-secret s \
             --component-domain sink.corp.test",
        )
        .unwrap();
        let p = r.plan(&ca(1)).unwrap();
        assert_eq!(p.recipient_domain, "sink.corp.test");
        assert_eq!(p.domain, "corp.test");
        assert!(matches!(p.delivery, Delivery::Component { .. }));
        assert!(run_args("--rate 1 --sip-sink 10.0.0.1:5070")
            .unwrap()
            .check()
            .is_err());
    }

    #[test]
    fn outbound_needs_a_sip_source_and_plans_it() {
        let refused = |extra: &str| match run_args(extra) {
            Err(_) => true,
            Ok(r) => r.check().is_err(),
        };
        assert!(refused("--rate 1 --direction outbound"), "no --sip-source");
        assert!(refused("--rate 1 --sip-source 127.0.0.1:5060"), "inbound");
        assert!(refused(
            "--rate 1 --direction sideways --sip-source 127.0.0.1:5060"
        ));
        assert!(refused(
            "--rate 1 --direction outbound --sip-source 127.0.0.1:5060 --sip-connections 0"
        ));
        assert!(refused(
            "--rate 1 --direction both --sip-source 10.0.0.1:5060"
        ));
        assert!(refused(
            "--direction outbound --sip-source 127.0.0.1:5060 --workload idle"
        ));
        assert!(run_args(
            "--closed-loop --window 2 --direction outbound --sip-source 127.0.0.1:5060 \
             --sip-connections 3"
        )
        .unwrap()
        .plan(&ca(1))
        .is_err());
        let r =
            run_args("--rate 5 --direction both --sip-source 127.0.0.1:5060 --sip-connections 3")
                .unwrap();
        let p = r.plan(&ca(2)).unwrap();
        assert_eq!(p.direction, Direction::Both);
        let src = p.sip_source.unwrap();
        assert_eq!(src.router, "127.0.0.1:5060".parse().unwrap());
        assert_eq!(src.connections, 3);
        assert_eq!(src.sip_domain, "corp.test");
        let p = run_args("--rate 5").unwrap().plan(&ca(1)).unwrap();
        assert_eq!((p.direction, p.sip_source), (Direction::Inbound, None));
        // The source's mix needs something it can send, and the sink (the router's presence
        // gateway runs only with its next hop).
        let out_mix = "--rate 5 --direction outbound --sip-source 127.0.0.1:5060 --workload mix \
                       --sip-sink 127.0.0.1:5070";
        assert!(refused(
            "--rate 5 --direction outbound --sip-source 127.0.0.1:5060 --workload mix"
        ));
        let p = run_args(&format!("{out_mix} --mix messages=1,subscriptions=1"))
            .unwrap()
            .plan(&ca(1))
            .unwrap();
        assert_eq!((p.mix.messages, p.mix.subscriptions), (1, 1));
        assert!(refused(&format!("{out_mix} --mix presence=1")));
    }

    #[test]
    fn tls_and_auth_modes_parse_and_dialback_refuses_what_it_cannot_do() {
        let p = run_args("--rate 1 --tls direct")
            .unwrap()
            .plan(&ca(1))
            .unwrap();
        assert_eq!((p.tls, p.auth), (TlsMode::Direct, Auth::Sasl));
        let p = run_args("--rate 1 --auth dialback")
            .unwrap()
            .plan(&ca(1))
            .unwrap();
        assert_eq!((p.tls, p.auth), (TlsMode::Starttls, Auth::Dialback));
        assert!(run_args("--rate 1 --tls direct --auth dialback")
            .unwrap()
            .check()
            .is_err());
        assert!(run_args("--workload idle --auth dialback")
            .unwrap()
            .check()
            .is_err());
        assert!(run_args("--rate 1 --tls implicit").is_err());
        assert!(run_args("--rate 1 --auth plain").is_err());
    }

    #[test]
    fn config_for_dialback_lets_partners_use_it() {
        let names = setup::default_partners(1);
        let sides = setup::SipSides {
            dialback: true,
            s2s_tls: Some("127.0.0.1:5270".parse().unwrap()),
            ..setup::SipSides::default()
        };
        let toml = setup::router_toml_sip(
            &ca(1),
            &names,
            "127.0.0.1:5269".parse().unwrap(),
            &["127.0.0.1:6000".parse().unwrap()],
            4,
            "1",
            sides,
        );
        assert!(
            toml.contains("sasl = \"optional\"\ndialback = true\n"),
            "{toml}"
        );
        assert!(toml.contains("s2s_tls = [\"127.0.0.1:5270\"]\n"), "{toml}");
        let plain = setup::router_toml_sip(
            &ca(1),
            &names,
            "127.0.0.1:5269".parse().unwrap(),
            &["127.0.0.1:6000".parse().unwrap()],
            4,
            "1",
            setup::SipSides::default(),
        );
        assert!(
            plain.contains("sasl = \"required\"\ndialback = false\n"),
            "{plain}"
        );
        assert!(
            !plain.contains("s2s_tls") && !plain.contains("[sip]"),
            "{plain}"
        );
    }

    #[test]
    fn config_writes_the_sip_listener() {
        let Ok(Cli {
            command: Command::Config(c),
        }) = parse(
            "config --ca-dir d --out o --router-s2s 127.0.0.1:5269 \
             --partner-listen 127.0.0.1:6000 --sip-listen 127.0.0.1:5060",
        )
        else {
            panic!("parse")
        };
        assert!(c.check().is_ok());
        assert_eq!(c.sip_listen, Some("127.0.0.1:5060".parse().unwrap()));
        let names = setup::default_partners(1);
        let toml = setup::router_toml_sip(
            &ca(1),
            &names,
            c.router_s2s,
            &["127.0.0.1:6000".parse().unwrap()],
            4,
            "1",
            setup::SipSides {
                next_hop: None,
                listen: c.sip_listen,
                s2s_tls: None,
                dialback: false,
            },
        );
        assert!(
            toml.contains("[sip]\nlisten = [\"127.0.0.1:5060\"]\n"),
            "{toml}"
        );
        assert!(!toml.contains("next_hop"));
    }

    #[test]
    fn partner_ports_must_fit() {
        assert!(partner_addrs("127.0.0.1:65535".parse().unwrap(), 2).is_err());
        assert!(partner_addrs("127.0.0.1:0".parse().unwrap(), 1).is_err());
        assert_eq!(
            partner_addrs("127.0.0.1:65534".parse().unwrap(), 2)
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn ca_partner_domains_are_checked() {
        let ca_args = |extra: &str| match parse(&format!("ca --dir d {extra}")) {
            Ok(Cli {
                command: Command::Ca(c),
            }) => c,
            other => panic!("{other:?}"),
        };
        assert_eq!(ca_args("--partners 2").partner_domains().unwrap().len(), 2);
        assert_eq!(
            ca_args("--partner-domains a.test,b.test")
                .partner_domains()
                .unwrap(),
            ["a.test", "b.test"]
        );
        assert!(ca_args("--partner-domains a.test,a.test")
            .partner_domains()
            .is_err());
        assert!(ca_args("--partner-domains corp.test")
            .partner_domains()
            .is_err());
        assert!(ca_args("--partners 0").partner_domains().is_err());
        assert!(parse("ca --dir d --partners 2 --partner-domains a.test").is_err());
    }
}
