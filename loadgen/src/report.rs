//! The end-of-run report: text on stdout, JSON for tools, and the data behind the HTML page.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::component::ComponentCounts;
use crate::correlator::Recorder;
use crate::correlator::CONDITIONS;
use crate::procstat::ProcUsage;
use crate::run::{Direction, DirectionResult, Mode, RunPlan, RunResult, Sample};
use crate::second_log::SecondLatency;
use crate::sip_sink::SinkTotals;
use crate::sip_source::SourceCounts;
use crate::workload::{BodySize, Workload};

/// Latency summary, milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Percentiles {
    /// Values recorded.
    pub count: u64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

impl Percentiles {
    /// From a histogram of nanoseconds.
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        let ms = |ns: u64| ns as f64 / 1e6;
        if h.is_empty() {
            return Percentiles {
                count: 0,
                p50: 0.0,
                p90: 0.0,
                p99: 0.0,
                p999: 0.0,
                max: 0.0,
                mean: 0.0,
            };
        }
        Percentiles {
            count: h.len(),
            p50: ms(h.value_at_quantile(0.5)),
            p90: ms(h.value_at_quantile(0.9)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
            mean: h.mean() / 1e6,
        }
    }
}

/// Latency at one percentile, for the percentile plot.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CurvePoint {
    /// Percentile (0–100).
    pub percentile: f64,
    /// Corrected latency, ms.
    pub corrected_ms: f64,
    /// Uncorrected latency, ms.
    pub uncorrected_ms: f64,
}

/// Both latency views.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Latency {
    /// From the intended send time (coordinated omission corrected).
    pub corrected: Percentiles,
    /// From the actual send time.
    pub uncorrected: Percentiles,
    /// Percentile curve from 0 to 99.999 (log-spaced towards the tail).
    pub curve: Vec<CurvePoint>,
}

/// What became of the requests.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcomes {
    /// Requests sent, warm-up included.
    pub sent: u64,
    /// Measured requests planned but never sent.
    pub not_sent: u64,
    /// Iq results.
    pub answered: u64,
    /// Deliveries observed by a sink.
    pub delivered: u64,
    /// Bounces by stanza error condition.
    pub bounced: BTreeMap<String, u64>,
    /// SIP requests of the source refused by the router, by final status.
    pub refused: BTreeMap<String, u64>,
    /// Mix: subscriptions granted (`subscribed` at the partner).
    pub subscribed: u64,
    /// Mix: subscriptions refused (`unsubscribed`).
    pub unsubscribed: u64,
    /// Presence stanzas that answer no request (updates after a subscription, the
    /// `unsubscribe` ending a SIP source dialog; not counted).
    pub presence_updates: u64,
    /// Answers of another kind (or stanzas without a loadgen id).
    pub unexpected: u64,
    /// Answers matching no pending request (duplicates).
    pub unmatched: u64,
    /// Measured requests never answered after the drain (must be 0).
    pub lost: u64,
    /// Warm-up requests never answered after the drain (must be 0).
    pub lost_warmup: u64,
}

/// One direction of a `--direction both` run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DirectionReport {
    /// Measured completions per second over its measured phase.
    pub achieved_rate: f64,
    /// Seconds the rate is computed over.
    pub measured_seconds: f64,
    /// From the intended send time.
    pub corrected_ms: Percentiles,
    /// From the actual send time.
    pub uncorrected_ms: Percentiles,
    /// Requests sent, warm-up included.
    pub sent: u64,
    /// Iq results.
    pub answered: u64,
    /// Deliveries observed.
    pub delivered: u64,
    /// Bounces by stanza error condition.
    pub bounced: BTreeMap<String, u64>,
    /// SIP refusals by final status.
    pub refused: BTreeMap<String, u64>,
    /// Measured requests never answered (must be 0).
    pub lost: u64,
}

impl DirectionReport {
    fn of(d: &DirectionResult) -> DirectionReport {
        let r = &d.recorder;
        DirectionReport {
            achieved_rate: rate(r.corrected.len(), d.measured_seconds),
            measured_seconds: d.measured_seconds,
            corrected_ms: Percentiles::of(&r.corrected),
            uncorrected_ms: Percentiles::of(&r.uncorrected),
            sent: d.sent,
            answered: r.answered,
            delivered: r.delivered,
            bounced: bounced_map(r),
            refused: refused_map(r),
            lost: d.lost + d.lost_warmup,
        }
    }
}

fn rate(n: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        n as f64 / seconds
    } else {
        0.0
    }
}

fn bounced_map(rec: &Recorder) -> BTreeMap<String, u64> {
    let mut bounced = BTreeMap::new();
    for (i, n) in rec.bounced.iter().enumerate() {
        if *n > 0 {
            let name = CONDITIONS.get(i).copied().unwrap_or("other");
            bounced.insert(name.to_string(), *n);
        }
    }
    bounced
}

fn refused_map(rec: &Recorder) -> BTreeMap<String, u64> {
    rec.refused
        .iter()
        .map(|(c, n)| (c.to_string(), *n))
        .collect()
}

/// Connection trouble.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Errors {
    /// TCP connects to the router that failed.
    pub connect: u64,
    /// Our stream dialogues that failed.
    pub handshake: u64,
    /// The router's stream dialogues (to our partners) that failed.
    pub accept: u64,
    /// Socket/TLS/XML errors after the dialogue.
    pub io: u64,
    /// Streams the router closed or errored before the end.
    pub closed_by_router: u64,
    /// The first messages.
    pub messages: Vec<String>,
}

/// The run's parameters as they were applied.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Setup {
    /// What was sent (inbound).
    pub workload: Workload,
    /// Which way the load flowed.
    pub direction: Direction,
    /// How our S2S streams started TLS.
    pub tls: crate::run::TlsMode,
    /// How they authenticated.
    pub auth: crate::run::Auth,
    /// The router's SIP listener the source sent to (outbound).
    pub sip_source: Option<String>,
    /// SIP source connections (outbound).
    pub sip_connections: Option<usize>,
    /// `open` or `closed`.
    pub mode: &'static str,
    /// Router address.
    pub router: String,
    /// Router domain.
    pub domain: String,
    /// Partner domains.
    pub partners: usize,
    /// Connections asked for.
    pub connections: usize,
    /// Connections established.
    pub connections_established: usize,
    /// Streams the router opened back to the partners.
    pub router_streams: u64,
    /// Closed loop: outstanding window.
    pub window: Option<u64>,
    /// Seconds of warm-up, ramp-up, recorded duration and drain.
    pub warmup_s: f64,
    /// Ramp-up seconds.
    pub ramp_up_s: f64,
    /// Recorded seconds planned.
    pub duration_s: f64,
    /// Measured request cap.
    pub count: Option<u64>,
    /// Message body sizes.
    pub body_size: BodySize,
    /// Distinct recipients.
    pub users: u64,
}

/// The whole report (the JSON document).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Version of the report layout.
    pub schema: u32,
    /// Parameters.
    pub setup: Setup,
    /// Open loop: target rate (requests/s); `None` in closed loop.
    pub offered_rate: Option<f64>,
    /// Measured completions per second over the measured phase.
    pub achieved_rate: f64,
    /// Seconds the achieved rate is computed over.
    pub measured_seconds: f64,
    /// Latencies, ms.
    pub latency_ms: Latency,
    /// Outcomes.
    pub outcomes: Outcomes,
    /// Errors.
    pub errors: Errors,
    /// Router CPU and memory (with `--router-pid`).
    pub router_process: Option<ProcUsage>,
    /// Why the router process could not be sampled.
    pub router_process_error: Option<String>,
    /// Per-second throughput.
    pub timeline: Vec<Sample>,
    /// Corrected latency of the measured completions by the second they completed in: whether
    /// a tail is spread over the run or packed into a few seconds.
    pub latency_per_second: Vec<SecondLatency>,
    /// Where deliveries were observed.
    pub delivery: String,
    /// What the SIP sink saw (with `--sip-sink`).
    pub sip_sink: Option<SinkTotals>,
    /// What the component saw (with `--component`).
    pub component: Option<ComponentCounts>,
    /// What the SIP source saw (outbound).
    pub sip_source: Option<SourceCounts>,
    /// `--direction both`: the inbound part (the top-level figures are both together).
    pub inbound: Option<DirectionReport>,
    /// `--direction both`: the outbound part.
    pub outbound: Option<DirectionReport>,
    /// `--auth dialback`: keys the router asked the loadgen to verify, [valid, invalid].
    pub dialback_verifies: Option<[u64; 2]>,
}

/// How the per-second p99 spreads over the run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct P99Spread {
    /// Seconds with completions.
    pub seconds: usize,
    /// Median of the seconds' p99s, ms.
    pub median_ms: f64,
    /// Highest second's p99, ms.
    pub worst_ms: f64,
    /// End of that second.
    pub worst_t: f64,
    /// Seconds whose p99 is above 1 ms.
    pub over_1ms: usize,
}

impl P99Spread {
    /// `None` without per-second figures.
    pub fn of(seconds: &[SecondLatency]) -> Option<P99Spread> {
        let worst = seconds
            .iter()
            .max_by(|a, b| a.p99_ms.total_cmp(&b.p99_ms))?;
        let mut p99s: Vec<f64> = seconds.iter().map(|s| s.p99_ms).collect();
        p99s.sort_by(f64::total_cmp);
        Some(P99Spread {
            seconds: seconds.len(),
            median_ms: p99s[p99s.len() / 2],
            worst_ms: worst.p99_ms,
            worst_t: worst.t,
            over_1ms: p99s.iter().filter(|&&v| v > 1.0).count(),
        })
    }
}

/// Percentiles of the curve: 0, then 1 - 10^(-k/8) up to 99.999.
fn curve_percentiles() -> impl Iterator<Item = f64> {
    (0..=40).map(|k| 100.0 * (1.0 - 10f64.powf(-(k as f64) / 8.0)))
}

impl Report {
    /// Builds the report of `result` under `plan`.
    pub fn new(plan: &RunPlan, result: &RunResult) -> Report {
        let rec = &result.recorder;
        let bounced = bounced_map(rec);
        let both = plan.direction == Direction::Both;
        let curve = if rec.corrected.is_empty() {
            Vec::new()
        } else {
            curve_percentiles()
                .map(|p| CurvePoint {
                    percentile: p,
                    corrected_ms: rec.corrected.value_at_percentile(p) as f64 / 1e6,
                    uncorrected_ms: rec.uncorrected.value_at_percentile(p) as f64 / 1e6,
                })
                .collect()
        };
        let measured = rec.corrected.len();
        let e = &result.errors;
        let (router_process, router_process_error) = match &result.router_usage {
            Some(Ok(u)) => (Some(*u), None),
            Some(Err(why)) => (None, Some(why.clone())),
            None => (None, None),
        };
        Report {
            schema: 1,
            setup: Setup {
                workload: plan.workload,
                direction: plan.direction,
                tls: plan.tls,
                auth: plan.auth,
                sip_source: plan.sip_source.as_ref().map(|s| s.router.to_string()),
                sip_connections: plan.sip_source.as_ref().map(|s| s.connections),
                mode: match plan.mode {
                    Mode::Open { .. } => "open",
                    Mode::Closed { .. } => "closed",
                },
                router: plan.router.to_string(),
                domain: plan.domain.clone(),
                partners: plan.partners.len(),
                connections: plan.connections,
                connections_established: result.connections,
                router_streams: result.router_streams,
                window: match plan.mode {
                    Mode::Closed { window } => Some(window),
                    Mode::Open { .. } => None,
                },
                warmup_s: plan.warmup.as_secs_f64(),
                ramp_up_s: plan.ramp_up.as_secs_f64(),
                duration_s: plan.duration.as_secs_f64(),
                count: plan.count,
                body_size: plan.body,
                users: plan.users,
            },
            offered_rate: match plan.mode {
                Mode::Open { rate } => Some(rate),
                Mode::Closed { .. } => None,
            },
            achieved_rate: rate(measured, result.measured_seconds),
            measured_seconds: result.measured_seconds,
            latency_ms: Latency {
                corrected: Percentiles::of(&rec.corrected),
                uncorrected: Percentiles::of(&rec.uncorrected),
                curve,
            },
            outcomes: Outcomes {
                sent: result.sent,
                not_sent: result.not_sent,
                answered: rec.answered,
                delivered: rec.delivered,
                bounced,
                refused: refused_map(rec),
                subscribed: rec.subscribed,
                unsubscribed: rec.unsubscribed,
                presence_updates: rec.presence_updates,
                unexpected: rec.unexpected,
                unmatched: result.unmatched,
                lost: result.lost,
                lost_warmup: result.lost_warmup,
            },
            errors: Errors {
                connect: e.connect.load(Ordering::Relaxed),
                handshake: e.handshake.load(Ordering::Relaxed),
                accept: e.accept.load(Ordering::Relaxed),
                io: e.io.load(Ordering::Relaxed),
                closed_by_router: e.closed_by_router.load(Ordering::Relaxed),
                messages: e.messages(),
            },
            router_process,
            router_process_error,
            timeline: result.timeline.clone(),
            latency_per_second: result.latency_per_second.clone(),
            delivery: plan.delivery.describe(),
            sip_sink: result.sip_sink,
            component: result.component,
            sip_source: result.sip_source,
            inbound: result
                .inbound
                .as_ref()
                .filter(|_| both)
                .map(DirectionReport::of),
            outbound: result
                .outbound
                .as_ref()
                .filter(|_| both)
                .map(DirectionReport::of),
            dialback_verifies: result.dialback_verifies.map(|(v, i)| [v, i]),
        }
    }

    /// Whether the run is clean: nothing lost or unsent, no unexpected answer, no error.
    pub fn clean(&self) -> bool {
        let o = &self.outcomes;
        let e = &self.errors;
        o.lost == 0
            && o.lost_warmup == 0
            && o.not_sent == 0
            && o.unexpected == 0
            && o.unmatched == 0
            && e.connect + e.handshake + e.accept + e.io + e.closed_by_router == 0
            && self.sip_sink.is_none_or(|s| s.framing_errors == 0)
            && self.component.is_none_or(|c| !c.closed_early)
            && self
                .dialback_verifies
                .is_none_or(|[_, invalid]| invalid == 0)
            && self.sip_source.is_none_or(|s| {
                s.unanswered() == 0
                    && s.dialog_errors == 0
                    && s.dialogs_left == 0
                    && s.framing_errors == 0
                    && s.closed_early == 0
                    && s.foreign == 0
            })
    }

    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// The human-readable summary.
    pub fn text(&self) -> String {
        let mut t = String::new();
        let s = &self.setup;
        let source = if s.workload == Workload::Mix {
            "outbound SIP MESSAGEs + SUBSCRIBEs"
        } else {
            "outbound SIP MESSAGEs"
        };
        let what = match s.direction {
            Direction::Inbound => format!("{:?}", s.workload),
            Direction::Outbound => source.to_string(),
            Direction::Both => format!("{:?} + {source}", s.workload),
        };
        let _ = writeln!(
            t,
            "loadgen: {what} {} loop against {} ({}), {} partners, {}/{} connections, {} router streams back",
            s.mode, s.router, s.domain, s.partners, s.connections_established,
            s.connections, s.router_streams
        );
        match self.offered_rate {
            Some(r) => {
                let _ = write!(t, "  offered {r:.0}/s");
            }
            None => {
                let _ = write!(t, "  window {}", s.window.unwrap_or(0));
            }
        }
        let _ = writeln!(
            t,
            "  achieved {:.0}/s over {:.2} s ({} measured)",
            self.achieved_rate, self.measured_seconds, self.latency_ms.corrected.count
        );
        let row = |t: &mut String, name: &str, p: &Percentiles| {
            let _ = writeln!(
                t,
                "  {name:<12} p50 {:>9.3}  p90 {:>9.3}  p99 {:>9.3}  p99.9 {:>9.3}  max {:>9.3} ms",
                p.p50, p.p90, p.p99, p.p999, p.max
            );
        };
        row(&mut t, "corrected", &self.latency_ms.corrected);
        row(&mut t, "uncorrected", &self.latency_ms.uncorrected);
        if let Some(p) = P99Spread::of(&self.latency_per_second) {
            let _ = writeln!(
                t,
                "  per second   p99 median {:.3}, worst {:.3} ms (second ending at {:.0} s), {} of {} seconds above 1 ms",
                p.median_ms, p.worst_ms, p.worst_t, p.over_1ms, p.seconds
            );
        }
        let o = &self.outcomes;
        let list = |m: &BTreeMap<String, u64>| {
            m.iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(
            t,
            "  outcomes: sent {}  answered {}  delivered {}  bounced [{}]  refused [{}]  unexpected {}  unmatched {}  lost {} (+{} warm-up)  not sent {}",
            o.sent,
            o.answered,
            o.delivered,
            list(&o.bounced),
            list(&o.refused),
            o.unexpected,
            o.unmatched,
            o.lost,
            o.lost_warmup,
            o.not_sent
        );
        if o.subscribed + o.unsubscribed + o.presence_updates > 0 {
            let _ = writeln!(
                t,
                "  presence: subscribed {}  unsubscribed {}  presence updates {}",
                o.subscribed, o.unsubscribed, o.presence_updates
            );
        }
        let _ = writeln!(t, "  delivery: {}", self.delivery);
        if let Some(k) = &self.sip_sink {
            let c = &k.counts;
            let _ = writeln!(
                t,
                "  SIP sink: {} connections, {} MESSAGEs ({} answered with the error code, {} without seq), {} SUBSCRIBEs (200 + NOTIFY), {} OPTIONS, {} other, {} framing errors",
                k.connections, c.messages, c.errors_sent, c.no_seq, c.subscribes, c.options, c.other, k.framing_errors
            );
        }
        for (name, d) in [("inbound", &self.inbound), ("outbound", &self.outbound)] {
            if let Some(d) = d {
                let _ = writeln!(
                    t,
                    "  {name:<8}: achieved {:.0}/s  corrected p50 {:.3} p99 {:.3} p99.9 {:.3} max {:.3} ms  sent {}  answered {}  delivered {}  bounced [{}]  refused [{}]  lost {}",
                    d.achieved_rate,
                    d.corrected_ms.p50,
                    d.corrected_ms.p99,
                    d.corrected_ms.p999,
                    d.corrected_ms.max,
                    d.sent,
                    d.answered,
                    d.delivered,
                    list(&d.bounced),
                    list(&d.refused),
                    d.lost
                );
            }
        }
        if let Some(k) = &self.sip_source {
            let _ = writeln!(
                t,
                "  SIP source: {} connections to {}, {} requests, final responses {} 2xx / {} refused, {} unanswered, {} provisional, {} foreign, {} other requests from the router, {} framing errors, {} closed early",
                k.connections,
                s.sip_source.as_deref().unwrap_or("?"),
                k.sent,
                k.ok,
                k.refused,
                k.unanswered(),
                k.provisional,
                k.foreign,
                k.requests,
                k.framing_errors,
                k.closed_early
            );
            if k.subscribed + k.notifies + k.dialog_errors > 0 {
                let _ = writeln!(
                    t,
                    "  SIP source dialogs: {} SUBSCRIBEs accepted, {} unsubscribes sent / {} accepted, {} NOTIFYs answered ({} terminated), {} dialog errors, {} left open",
                    k.subscribed,
                    k.unsubscribes,
                    k.unsubscribed,
                    k.notifies,
                    k.notifies_terminated,
                    k.dialog_errors,
                    k.dialogs_left
                );
            }
        }
        if let Some([valid, invalid]) = self.dialback_verifies {
            let _ = writeln!(
                t,
                "  dialback: the router asked {} key verifications: {valid} valid, {invalid} invalid",
                valid + invalid
            );
        }
        if let Some(c) = &self.component {
            let _ = writeln!(
                t,
                "  component: {} messages, {} other stanzas{}",
                c.messages,
                c.other,
                if c.closed_early {
                    ", closed by the server early"
                } else {
                    ""
                }
            );
        }
        let e = &self.errors;
        let _ = writeln!(
            t,
            "  errors: connect {}  handshake {}  accept {}  io {}  closed by router {}",
            e.connect, e.handshake, e.accept, e.io, e.closed_by_router
        );
        for m in &e.messages {
            let _ = writeln!(t, "    {m}");
        }
        if let Some(p) = &self.router_process {
            let _ = writeln!(
                t,
                "  router pid {}: {:.2} CPU s over {:.2} s ({:.2} cores), peak RSS {:.1} MiB",
                p.pid,
                p.cpu_seconds,
                p.wall_seconds,
                p.cores_busy,
                p.peak_rss_kib as f64 / 1024.0
            );
        }
        if let Some(why) = &self.router_process_error {
            let _ = writeln!(t, "  router process: {why}");
        }
        let _ = writeln!(
            t,
            "  result: {}",
            if self.clean() { "clean" } else { "NOT CLEAN" }
        );
        t
    }
}
