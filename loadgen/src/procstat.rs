//! The router process's CPU time and peak memory, from `/proc` (Linux).

use std::time::Instant;

/// CPU time of a process at an instant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcSample {
    /// When it was read.
    pub at: Instant,
    /// utime + stime, seconds; `None` when unreadable.
    pub cpu_seconds: Option<f64>,
}

/// The router's use of the machine over the measured phase.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct ProcUsage {
    /// The process.
    pub pid: u32,
    /// CPU seconds (user + system) spent between the two samples.
    pub cpu_seconds: f64,
    /// Wall seconds between the two samples.
    pub wall_seconds: f64,
    /// `cpu_seconds / wall_seconds`: cores kept busy on average.
    pub cores_busy: f64,
    /// Peak resident set (VmHWM), KiB, over the process's life.
    pub peak_rss_kib: u64,
}

/// Reads the process's CPU time now.
pub fn sample(pid: u32) -> ProcSample {
    let cpu_seconds = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| cpu_ticks(&s))
        .map(|t| t as f64 / clock_ticks_per_second());
    ProcSample {
        at: Instant::now(),
        cpu_seconds,
    }
}

/// CPU and peak RSS from `start` to now.
pub fn usage(pid: u32, start: ProcSample) -> Result<ProcUsage, String> {
    let end = sample(pid);
    let (Some(a), Some(b)) = (start.cpu_seconds, end.cpu_seconds) else {
        return Err(format!("cannot read /proc/{pid}/stat"));
    };
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("/proc/{pid}/status: {e}"))?;
    let peak_rss_kib =
        vm_hwm_kib(&status).ok_or_else(|| format!("no VmHWM in /proc/{pid}/status"))?;
    let wall = end.at.duration_since(start.at).as_secs_f64();
    Ok(ProcUsage {
        pid,
        cpu_seconds: b - a,
        wall_seconds: wall,
        cores_busy: if wall > 0.0 { (b - a) / wall } else { 0.0 },
        peak_rss_kib,
    })
}

/// `utime + stime` in clock ticks from the text of `/proc/PID/stat`. The command name (field 2)
/// may hold spaces and parentheses, so fields are counted after its last `)`.
pub fn cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut f = rest.split_ascii_whitespace();
    // After the name: state is field 3, utime field 14, stime field 15.
    let utime: u64 = f.nth(11)?.parse().ok()?;
    let stime: u64 = f.next()?.parse().ok()?;
    Some(utime + stime)
}

/// `VmHWM` in KiB from the text of `/proc/PID/status`.
pub fn vm_hwm_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line["VmHWM:".len()..]
        .split_ascii_whitespace()
        .next()?
        .parse()
        .ok()
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_skips_a_command_name_with_spaces() {
        let stat =
            "1234 (stanza (router) x) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 4 0";
        assert_eq!(cpu_ticks(stat), Some(300));
        assert_eq!(cpu_ticks("garbage"), None);
    }

    #[test]
    fn vm_hwm_is_read_in_kib() {
        let status =
            "Name:\tstanza-router\nVmPeak:\t  99999 kB\nVmHWM:\t   12345 kB\nVmRSS:\t 1 kB\n";
        assert_eq!(vm_hwm_kib(status), Some(12345));
        assert_eq!(vm_hwm_kib("Name: x\n"), None);
    }

    #[test]
    fn own_process_is_readable() {
        let pid = std::process::id();
        let start = sample(pid);
        assert!(start.cpu_seconds.is_some());
        let u = usage(pid, start).unwrap();
        assert!(u.peak_rss_kib > 0);
    }
}
