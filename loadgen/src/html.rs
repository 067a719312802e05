//! A self-contained HTML page of the report: a summary table and two inline SVG plots (latency by
//! percentile on a log tail axis, throughput over time). No script, no external resource.

use std::fmt::Write as _;

use crate::report::{Percentiles, Report};

const W: f64 = 760.0;
const H: f64 = 320.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 20.0;
const BOTTOM: f64 = 45.0;
const CORRECTED: &str = "#c0392b";
const UNCORRECTED: &str = "#2e86c1";

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A "nice" upper bound for an axis (1, 2, 5 × 10^k).
fn nice_max(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let mag = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|c| *c >= v)
        .unwrap_or(10.0 * mag)
}

struct Plot {
    svg: String,
    x_max: f64,
    y_max: f64,
}

impl Plot {
    fn new(title: &str, x_max: f64, y_max: f64, y_label: &str) -> Plot {
        let mut svg = String::new();
        let _ = write!(
            svg,
            "<svg xmlns='http://www.w3.org/2000/svg' width='{W}' height='{H}' viewBox='0 0 {W} {H}' \
             font-family='sans-serif' font-size='12'><title>{}</title>\
             <rect x='{LEFT}' y='{TOP}' width='{}' height='{}' fill='#fafafa' stroke='#999'/>",
            esc(title),
            W - LEFT - RIGHT,
            H - TOP - BOTTOM
        );
        let mut p = Plot { svg, x_max, y_max };
        for i in 0..=5 {
            let v = y_max * i as f64 / 5.0;
            let y = p.y(v);
            let _ = write!(
                p.svg,
                "<line x1='{LEFT}' x2='{}' y1='{y:.1}' y2='{y:.1}' stroke='#ddd'/>\
                 <text x='{}' y='{:.1}' text-anchor='end'>{}</text>",
                W - RIGHT,
                LEFT - 6.0,
                y + 4.0,
                fmt_num(v)
            );
        }
        let _ = write!(
            p.svg,
            "<text transform='translate(14 {}) rotate(-90)' text-anchor='middle'>{}</text>",
            TOP + (H - TOP - BOTTOM) / 2.0,
            esc(y_label)
        );
        p
    }

    fn x(&self, v: f64) -> f64 {
        LEFT + (W - LEFT - RIGHT) * (v / self.x_max).clamp(0.0, 1.0)
    }

    fn y(&self, v: f64) -> f64 {
        H - BOTTOM - (H - TOP - BOTTOM) * (v / self.y_max).clamp(0.0, 1.0)
    }

    fn x_tick(&mut self, v: f64, label: &str) {
        let x = self.x(v);
        let _ = write!(
            self.svg,
            "<line x1='{x:.1}' x2='{x:.1}' y1='{TOP}' y2='{}' stroke='#ddd'/>\
             <text x='{x:.1}' y='{}' text-anchor='middle'>{}</text>",
            H - BOTTOM,
            H - BOTTOM + 16.0,
            esc(label)
        );
    }

    fn x_label(&mut self, label: &str) {
        let _ = write!(
            self.svg,
            "<text x='{}' y='{}' text-anchor='middle'>{}</text>",
            LEFT + (W - LEFT - RIGHT) / 2.0,
            H - 6.0,
            esc(label)
        );
    }

    fn line(&mut self, points: &[(f64, f64)], color: &str, name: &str, legend_row: usize) {
        if points.is_empty() {
            return;
        }
        let pts: Vec<String> = points
            .iter()
            .map(|(x, y)| format!("{:.1},{:.1}", self.x(*x), self.y(*y)))
            .collect();
        let ly = TOP + 16.0 + 16.0 * legend_row as f64;
        let _ = write!(
            self.svg,
            "<polyline fill='none' stroke='{color}' stroke-width='2' points='{}'/>\
             <line x1='{}' x2='{}' y1='{ly}' y2='{ly}' stroke='{color}' stroke-width='3'/>\
             <text x='{}' y='{}'>{}</text>",
            pts.join(" "),
            LEFT + 12.0,
            LEFT + 36.0,
            LEFT + 42.0,
            ly + 4.0,
            esc(name)
        );
    }

    fn finish(mut self) -> String {
        self.svg.push_str("</svg>");
        self.svg
    }
}

fn fmt_num(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if v >= 10.0 || v == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// Latency by percentile; x is `log10(1 / (1 - p))`, so 90, 99, 99.9 … are evenly spaced.
fn percentile_plot(r: &Report) -> String {
    let curve = &r.latency_ms.curve;
    let y_max = nice_max(
        curve
            .iter()
            .map(|c| c.corrected_ms.max(c.uncorrected_ms))
            .fold(0.0, f64::max),
    );
    let mut p = Plot::new("Latency by percentile", 5.0, y_max, "latency (ms)");
    for (k, label) in ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"]
        .iter()
        .enumerate()
    {
        p.x_tick(k as f64, label);
    }
    p.x_label("percentile (log scale towards the tail)");
    let to_x = |pct: f64| (100.0 / (100.0 - pct).max(1e-9)).log10().min(5.0);
    let corrected: Vec<_> = curve
        .iter()
        .map(|c| (to_x(c.percentile), c.corrected_ms))
        .collect();
    let uncorrected: Vec<_> = curve
        .iter()
        .map(|c| (to_x(c.percentile), c.uncorrected_ms))
        .collect();
    p.line(
        &corrected,
        CORRECTED,
        "corrected (from intended send time)",
        0,
    );
    p.line(
        &uncorrected,
        UNCORRECTED,
        "uncorrected (from actual send)",
        1,
    );
    p.finish()
}

/// Requests sent and completed per second.
fn throughput_plot(r: &Report) -> String {
    let t_max = nice_max(r.timeline.iter().map(|s| s.t).fold(0.0, f64::max));
    let y_max = nice_max(
        r.timeline
            .iter()
            .map(|s| s.sent_per_s.max(s.completed_per_s))
            .fold(0.0, f64::max),
    );
    let mut p = Plot::new("Throughput over time", t_max, y_max, "requests / s");
    for i in 0..=5 {
        let v = t_max * i as f64 / 5.0;
        p.x_tick(v, &fmt_num(v));
    }
    p.x_label("seconds since start");
    let sent: Vec<_> = r.timeline.iter().map(|s| (s.t, s.sent_per_s)).collect();
    let done: Vec<_> = r
        .timeline
        .iter()
        .map(|s| (s.t, s.completed_per_s))
        .collect();
    p.line(&sent, UNCORRECTED, "sent", 0);
    p.line(&done, CORRECTED, "completed", 1);
    p.finish()
}

/// The median and the p99 of each second's completions.
fn latency_time_plot(r: &Report) -> String {
    let secs = &r.latency_per_second;
    let t_max = nice_max(secs.iter().map(|s| s.t).fold(0.0, f64::max));
    let y_max = nice_max(secs.iter().map(|s| s.p99_ms).fold(0.0, f64::max));
    let mut p = Plot::new("Latency over time", t_max, y_max, "corrected latency (ms)");
    for i in 0..=5 {
        let v = t_max * i as f64 / 5.0;
        p.x_tick(v, &fmt_num(v));
    }
    p.x_label("seconds since start (each point: the completions of one second)");
    let p99: Vec<_> = secs.iter().map(|s| (s.t, s.p99_ms)).collect();
    let p50: Vec<_> = secs.iter().map(|s| (s.t, s.p50_ms)).collect();
    p.line(&p99, CORRECTED, "p99 of the second", 0);
    p.line(&p50, UNCORRECTED, "median of the second", 1);
    p.finish()
}

fn row(out: &mut String, name: &str, p: &Percentiles) {
    let _ = write!(
        out,
        "<tr><th>{name}</th><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td></tr>",
        p.p50, p.p90, p.p99, p.p999, p.max
    );
}

/// The page.
pub fn render(r: &Report) -> String {
    let s = &r.setup;
    let o = &r.outcomes;
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>loadgen report</title><style>\
         body{{font-family:sans-serif;margin:24px;color:#222}}table{{border-collapse:collapse;margin:8px 0 16px}}\
         td,th{{border:1px solid #ccc;padding:4px 10px;text-align:right}}th{{background:#f0f0f0}}\
         .ok{{color:#1e8449;font-weight:bold}}.bad{{color:#c0392b;font-weight:bold}}</style></head><body>\
         <h1>loadgen: {:?} against {}</h1>\
         <p>{} loop, {} partners, {}/{} connections, {} router streams back. \
         Result: <span class='{}'>{}</span></p>",
        s.workload,
        esc(&s.router),
        s.mode,
        s.partners,
        s.connections_established,
        s.connections,
        s.router_streams,
        if r.clean() { "ok" } else { "bad" },
        if r.clean() { "clean" } else { "NOT CLEAN" },
    );
    let offered = r
        .offered_rate
        .map_or("closed loop".to_string(), |v| format!("{v:.0}/s"));
    let _ = write!(
        out,
        "<table><tr><th>offered</th><th>achieved</th><th>measured</th><th>seconds</th></tr>\
         <tr><td>{}</td><td>{:.0}/s</td><td>{}</td><td>{:.2}</td></tr></table>",
        esc(&offered),
        r.achieved_rate,
        r.latency_ms.corrected.count,
        r.measured_seconds
    );
    out.push_str(
        "<table><tr><th>latency (ms)</th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th></tr>",
    );
    row(&mut out, "corrected", &r.latency_ms.corrected);
    row(&mut out, "uncorrected", &r.latency_ms.uncorrected);
    out.push_str("</table>");
    let bounced: Vec<String> = o
        .bounced
        .iter()
        .map(|(k, v)| format!("{} {v}", esc(k)))
        .collect();
    let _ = write!(
        out,
        "<table><tr><th>sent</th><th>answered</th><th>delivered</th><th>bounced</th><th>unexpected</th>\
         <th>lost</th><th>not sent</th><th>errors</th></tr><tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
         <td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr></table>",
        o.sent,
        o.answered,
        o.delivered,
        if bounced.is_empty() { "0".into() } else { bounced.join(", ") },
        o.unexpected,
        o.lost + o.lost_warmup,
        o.not_sent,
        r.errors.connect + r.errors.handshake + r.errors.accept + r.errors.io + r.errors.closed_by_router
    );
    if let Some(p) = &r.router_process {
        let _ = write!(
            out,
            "<p>Router pid {}: {:.2} CPU s over {:.2} s ({:.2} cores busy), peak RSS {:.1} MiB.</p>",
            p.pid,
            p.cpu_seconds,
            p.wall_seconds,
            p.cores_busy,
            p.peak_rss_kib as f64 / 1024.0
        );
    }
    out.push_str("<h2>Latency by percentile</h2>");
    out.push_str(&percentile_plot(r));
    out.push_str("<h2>Throughput</h2>");
    out.push_str(&throughput_plot(r));
    if !r.latency_per_second.is_empty() {
        out.push_str("<h2>Latency over time</h2>");
        out.push_str(&latency_time_plot(r));
    }
    out.push_str("</body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_max_rounds_up_to_1_2_5() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(3.2), 5.0);
        assert_eq!(nice_max(120.0), 200.0);
        assert_eq!(nice_max(1000.0), 1000.0);
    }

    #[test]
    fn escapes_markup() {
        assert_eq!(esc("<a&'\">"), "&lt;a&amp;'&quot;&gt;");
    }
}
