//! What the sweep prints and writes: the table of points, and the profile file with its
//! figures, machine, date and command as comments.

use std::io::Write;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use super::search::{Against, Candidate, Figures, Knob, Measurement, Objective, Outcome, Point};

/// The table's header line.
pub fn header() -> String {
    format!(
        "{:>4} {:<16} {:>6} {:>8} {:>8} {:>5} {:>5} {:>7} | {:>9} {:>7} {:>7} {:>5} {:>6} {:>7}  {}",
        "#",
        "varied",
        "shards",
        "read_buf",
        "wr_batch",
        "batch",
        "spin",
        "preempt",
        "rate/s",
        "p50 ms",
        "p99 ms",
        "lost",
        "cpu s",
        "rss MiB",
        "verdict"
    )
}

/// One row: `n` is the point's number, `label` what it varied.
pub fn row(n: &str, label: &str, c: &Candidate, m: &Measurement) -> String {
    row_noted(n, label, c, m, "")
}

/// How a challenger fared against the incumbent it ran alongside (point `against + 1`), for
/// the verdict column: the median change of the objective's figure over their pairs.
pub fn against_note(a: &Against, objective: Objective) -> String {
    // Ratios are oriented so that above 1 favours the challenger; shown as the change of the
    // objective's own figure.
    let change = |r: f64| match objective {
        Objective::Throughput => (r - 1.0) * 100.0,
        Objective::Latency => (1.0 / r - 1.0) * 100.0,
    };
    let what = match objective {
        Objective::Throughput => "rate",
        Objective::Latency => "p99",
    };
    match (a.ratio, a.least) {
        (Some(r), Some(l)) => format!(
            " ({what} {:+.1} % vs #{} alongside, least favourable pair {:+.1} %)",
            change(r),
            a.point + 1,
            change(l)
        ),
        _ => format!(" (vs #{})", a.point + 1),
    }
}

/// [`row`] with `note` after the verdict.
pub fn row_noted(n: &str, label: &str, c: &Candidate, m: &Measurement, note: &str) -> String {
    let f = &m.figures;
    let cpu = f
        .cpu_seconds
        .map_or_else(|| "-".to_string(), |s| format!("{s:.2}"));
    let rss = f
        .peak_rss_kib
        .map_or_else(|| "-".to_string(), |k| format!("{:.1}", k as f64 / 1024.0));
    format!(
        "{:>4} {:<16} {:>6} {:>8} {:>8} {:>5} {:>5} {:>7} | {:>9.0} {:>7.3} {:>7.3} {:>5} {:>6} {:>7}  {}{}",
        n,
        label,
        Knob::Shards.show(c.get(Knob::Shards)),
        Knob::ReadBuffer.show(c.get(Knob::ReadBuffer)),
        Knob::WriteBatch.show(c.get(Knob::WriteBatch)),
        Knob::Batch.show(c.get(Knob::Batch)),
        Knob::SpinBeforePark.show(c.get(Knob::SpinBeforePark)),
        Knob::PreemptTimer.show(c.get(Knob::PreemptTimer)),
        f.rate,
        f.p50_ms,
        f.p99_ms,
        f.lost,
        cpu,
        rss,
        m.disqualified.as_deref().unwrap_or("ok"),
        note,
    )
}

/// A point's label: what it varied, or `base`.
pub fn label(p: &Point) -> String {
    p.varied
        .map_or_else(|| "base".to_string(), |k| k.key().to_string())
}

/// The whole table, the best point marked with `*`.
pub fn table(out: &Outcome) -> String {
    let mut t = header();
    t.push('\n');
    for (i, p) in out.points.iter().enumerate() {
        let mark = if out.best == Some(i) { "*" } else { "" };
        let note = p
            .against
            .map(|a| against_note(&a, out.objective))
            .unwrap_or_default();
        t.push_str(&row_noted(
            &format!("{}{mark}", i + 1),
            &label(p),
            &p.candidate,
            &p.measurement,
            &note,
        ));
        t.push('\n');
    }
    t
}

/// Figures in one line.
pub fn figures_line(f: &Figures) -> String {
    let mut s = format!(
        "{:.0} stanzas/s, p50 {:.3} ms, p99 {:.3} ms, lost {}",
        f.rate, f.p50_ms, f.p99_ms, f.lost
    );
    if let Some(c) = f.cpu_seconds {
        s.push_str(&format!(", router CPU {c:.2} s"));
    }
    if let Some(k) = f.peak_rss_kib {
        s.push_str(&format!(", router peak RSS {:.1} MiB", k as f64 / 1024.0));
    }
    s
}

/// The machine, for the file: CPUs, model, kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    /// CPUs online (`nproc` of the whole machine).
    pub cpus: usize,
    /// `model name` of /proc/cpuinfo.
    pub model: String,
    /// Kernel release.
    pub kernel: String,
}

impl Machine {
    /// Reads it from /proc.
    pub fn read() -> Machine {
        let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let model = info
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_else(|| "unknown".into());
        // SAFETY: sysconf has no preconditions.
        let online = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".into());
        Machine {
            cpus: usize::try_from(online).unwrap_or(1).max(1),
            model,
            kernel,
        }
    }
}

/// What the file records besides the points.
#[derive(Debug, Clone)]
pub struct Provenance {
    /// The machine.
    pub machine: Machine,
    /// `YYYY-MM-DD` (UTC).
    pub date: String,
    /// The command line, shell-quoted.
    pub command: String,
    /// One line on the load (workload, objective, rates, CPUs).
    pub setup: String,
}

/// The profile file of the best point: comments (figures of the best point and of the base,
/// machine, date, command, every point), then the `[runtime]` table.
pub fn profile_file(out: &Outcome, p: &Provenance) -> Option<String> {
    let best = out.best_point()?;
    let mut t = String::new();
    t.push_str(&format!(
        "# Tuning profile found by `loadgen sweep` on {} ({} CPUs, {}, Linux {}).\n",
        p.date, p.machine.cpus, p.machine.model, p.machine.kernel
    ));
    t.push_str(&format!("# Load: {}\n#\n", p.setup));
    t.push_str(&format!(
        "# best (point {}): {}\n",
        out.best.map_or(0, |i| i + 1),
        figures_line(&best.measurement.figures)
    ));
    if let Some(base) = out.base() {
        let how = match &base.measurement.disqualified {
            None => figures_line(&base.measurement.figures),
            Some(why) => format!("disqualified: {why}"),
        };
        t.push_str(&format!(
            "# default (the config's own values, point 1): {how}\n"
        ));
        let changed: Vec<String> = Knob::ALL
            .into_iter()
            .filter(|k| best.candidate.get(*k) != base.candidate.get(*k))
            .map(|k| {
                format!(
                    "{} {} → {}",
                    k.key(),
                    k.show(base.candidate.get(k)),
                    k.show(best.candidate.get(k))
                )
            })
            .collect();
        t.push_str(&format!(
            "# changed from the default: {}\n",
            if changed.is_empty() {
                "nothing (the default was best)".to_string()
            } else {
                changed.join(", ")
            }
        ));
    }
    t.push_str(&format!("#\n# command:\n#   {}\n#\n# points:\n", p.command));
    for line in table(out).lines() {
        t.push_str(&format!("#   {line}\n"));
    }
    t.push_str(
        "#\n# Only [runtime] keys and [limits] outbound_queue may appear here.\n\
         #   stanza-router run --config ROUTER.toml --profile THIS_FILE\n\n",
    );
    t.push_str(&best.candidate.profile_toml());
    Some(t)
}

/// `tuning/sweep-YYYY-MM-DD.toml`.
pub fn default_out(date: &str) -> std::path::PathBuf {
    Path::new("tuning").join(format!("sweep-{date}.toml"))
}

/// Writes `text` to `path`; an existing file is replaced only with `force`.
pub fn write_new(path: &Path, text: &str, force: bool) -> Result<(), String> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true);
    if force {
        opts.create(true).truncate(true);
    } else {
        opts.create_new(true);
    }
    opts.open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                format!("{} exists; pass --force to replace it", path.display())
            } else {
                format!("{}: {e}", path.display())
            }
        })
}

/// Today (UTC) as `YYYY-MM-DD`.
pub fn today() -> String {
    let days = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86_400);
    date_of_day(days as i64)
}

/// The civil date of day `z` since 1970-01-01 (Howard Hinnant's algorithm).
pub fn date_of_day(z: i64) -> String {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The arguments as one shell line, quoted where needed.
pub fn shell_line(args: impl IntoIterator<Item = String>) -> String {
    args.into_iter()
        .map(|a| {
            let plain = !a.is_empty()
                && a.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_./:=,@%+".contains(&b));
            if plain {
                a
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sweep::search::Measurement;

    fn point(c: Candidate, varied: Option<Knob>, rate: f64, lost: u64) -> Point {
        Point {
            candidate: c,
            varied,
            measurement: Measurement::of(Figures {
                rate,
                p50_ms: 0.5,
                p99_ms: 1.5,
                lost,
                cpu_seconds: Some(3.9),
                peak_rss_kib: Some(20480),
            }),
            against: varied.map(|_| Against {
                point: 0,
                ratio: Some(rate / 1000.0),
                least: Some(rate / 1000.0 - 0.1),
            }),
        }
    }

    #[test]
    fn dates_are_civil() {
        assert_eq!(date_of_day(0), "1970-01-01");
        assert_eq!(date_of_day(20_597), "2026-05-24");
        assert_eq!(date_of_day(11_016), "2000-02-29");
    }

    #[test]
    fn shell_line_quotes_what_the_shell_would_split() {
        assert_eq!(
            shell_line(["loadgen", "--x", "a b", "it's"].map(String::from)),
            "loadgen --x 'a b' 'it'\\''s'"
        );
    }

    #[test]
    fn the_file_holds_the_figures_and_a_parsable_profile() {
        let base = Candidate {
            values: [2, 4096, 64, 64, 0, 100_000_000],
        };
        let best = base.with(Knob::Shards, 1);
        let out = Outcome {
            points: vec![
                point(base, None, 1000.0, 0),
                point(best, Some(Knob::Shards), 1500.0, 0),
                point(best.with(Knob::Batch, 16), Some(Knob::Batch), 9000.0, 2),
            ],
            best: Some(1),
            stopped: None,
            objective: Objective::Throughput,
        };
        let prov = Provenance {
            machine: Machine {
                cpus: 2,
                model: "AMD EPYC".into(),
                kernel: "6.18".into(),
            },
            date: "2026-11-25".into(),
            command: "loadgen sweep --x".into(),
            setup: "messages".into(),
        };
        let text = profile_file(&out, &prov).unwrap();
        assert!(text.contains("# best (point 2): 1500 stanzas/s"), "{text}");
        assert!(text.contains("# default (the config's own values, point 1): 1000 stanzas/s"));
        assert!(text.contains("shards 2 → 1"));
        assert!(text.contains("2 lost"));
        assert!(text.contains("2 CPUs, AMD EPYC"));
        assert!(text.contains("#   loadgen sweep --x"));
        assert!(
            text.contains("ok (rate +50.0 % vs #1 alongside, least favourable pair +40.0 %)"),
            "how point 2 fared against the base it ran with: {text}"
        );
        let p = stanza_router::config::Profile::parse(&text, Path::new("x.toml")).unwrap();
        assert_eq!(
            p.runtime.shards,
            Some(stanza_router::config::Shards::Count(1))
        );
        let none = Outcome { best: None, ..out };
        assert!(profile_file(&none, &prov).is_none());
    }

    #[test]
    fn an_existing_file_is_kept_without_force() {
        let dir = std::env::temp_dir().join(format!("sweep-out-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("p.toml");
        write_new(&f, "a", false).unwrap();
        let e = write_new(&f, "b", false).unwrap_err();
        assert!(e.contains("--force"), "{e}");
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "a");
        write_new(&f, "c", true).unwrap();
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "c");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
