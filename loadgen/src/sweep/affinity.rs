//! CPU lists (`0`, `0-3`, `0,2,5-6`) and pinning with `sched_setaffinity` (Linux).

use std::io;

/// Parses a CPU list; every CPU must be in `allowed` (this process's mask), so a typo does not
/// silently pin to a CPU the kernel then refuses.
pub fn parse_cpu_list(text: &str, allowed: &[usize]) -> Result<Vec<usize>, String> {
    let mut cpus = Vec::new();
    for part in text.split(',') {
        let part = part.trim();
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (num(a)?, num(b)?),
            None => {
                let n = num(part)?;
                (n, n)
            }
        };
        if lo > hi {
            return Err(format!("{part}: the range is reversed"));
        }
        for c in lo..=hi {
            if !allowed.contains(&c) {
                return Err(format!(
                    "CPU {c} is not available to this process (available: {})",
                    format_cpu_list(allowed)
                ));
            }
            if !cpus.contains(&c) {
                cpus.push(c);
            }
        }
    }
    Ok(cpus)
}

fn num(s: &str) -> Result<usize, String> {
    s.trim()
        .parse::<usize>()
        .ok()
        .filter(|n| *n < libc::CPU_SETSIZE as usize)
        .ok_or_else(|| format!("{s:?} is not a CPU number"))
}

/// `[0, 1, 2, 5]` → `"0-2,5"`.
pub fn format_cpu_list(cpus: &[usize]) -> String {
    let mut sorted = cpus.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i;
        while j + 1 < sorted.len() && sorted[j + 1] == sorted[j] + 1 {
            j += 1;
        }
        parts.push(if i == j {
            sorted[i].to_string()
        } else {
            format!("{}-{}", sorted[i], sorted[j])
        });
        i = j + 1;
    }
    parts.join(",")
}

/// The CPUs this thread may run on.
pub fn allowed_cpus() -> io::Result<Vec<usize>> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; the kernel fills at most its size.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: pid 0 is the calling thread; the pointer and size describe `set`.
    let rc =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((0..libc::CPU_SETSIZE as usize)
        // SAFETY: `c` is below CPU_SETSIZE.
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect())
}

/// Pins the calling thread (and the threads and processes it creates afterwards) to `cpus`.
/// Async-signal-safe: usable between fork and exec.
pub fn pin_current(cpus: &[usize]) -> io::Result<()> {
    // SAFETY: as in `allowed_cpus`.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &c in cpus {
        if c < libc::CPU_SETSIZE as usize {
            // SAFETY: `c` is below CPU_SETSIZE.
            unsafe { libc::CPU_SET(c, &mut set) };
        }
    }
    // SAFETY: pid 0 is the calling thread; the pointer and size describe `set`.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_parse_ranges_and_refuse_unavailable_cpus() {
        let all = [0, 1, 2, 3, 5];
        assert_eq!(parse_cpu_list("0", &all).unwrap(), [0]);
        assert_eq!(parse_cpu_list("0-2,5,1", &all).unwrap(), [0, 1, 2, 5]);
        assert!(parse_cpu_list("4", &all)
            .unwrap_err()
            .contains("not available"));
        assert!(parse_cpu_list("3-1", &all)
            .unwrap_err()
            .contains("reversed"));
        assert!(parse_cpu_list("a", &all).unwrap_err().contains("not a CPU"));
        assert!(parse_cpu_list("", &all).is_err());
        assert_eq!(format_cpu_list(&[5, 0, 1, 2]), "0-2,5");
    }

    #[test]
    fn this_process_has_at_least_one_cpu() {
        assert!(!allowed_cpus().unwrap().is_empty());
    }
}
