//! The router under test as a child process: started pinned, waited for, always stopped.
//!
//! [`RouterProcess`] stops its child on drop (SIGTERM, a bounded wait, then SIGKILL), so an
//! error or a panic in the sweep never leaves a router behind; the child also gets SIGKILL if
//! the loadgen dies (`PR_SET_PDEATHSIG`).

use std::fs::File;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a router is given to exit after SIGTERM.
pub const STOP_GRACE: Duration = Duration::from_secs(5);
/// Poll interval while waiting for the port or the exit (a child's exit has no event to await
/// without a signal handler of our own).
const POLL: Duration = Duration::from_millis(20);

/// A running router.
pub struct RouterProcess {
    child: Option<Child>,
    log: PathBuf,
}

/// How a router was started.
pub struct Launch<'a> {
    /// The binary.
    pub bin: &'a Path,
    /// `--config`.
    pub config: &'a Path,
    /// `--profile`.
    pub profile: &'a Path,
    /// CPUs to pin it to.
    pub cpus: &'a [usize],
    /// Its stdout and stderr go here.
    pub log: &'a Path,
}

impl RouterProcess {
    /// Starts `bin run --config … --profile …` pinned to `cpus`, and waits until it accepts on
    /// `s2s` (within `timeout`). Fails with the end of its log when it exits or does not listen.
    pub fn start(l: &Launch<'_>, s2s: SocketAddr, timeout: Duration) -> Result<Self, String> {
        let out = File::create(l.log).map_err(|e| format!("{}: {e}", l.log.display()))?;
        let err = out
            .try_clone()
            .map_err(|e| format!("{}: {e}", l.log.display()))?;
        let cpus = l.cpus.to_vec();
        let mut cmd = Command::new(l.bin);
        cmd.arg("run")
            .arg("--config")
            .arg(l.config)
            .arg("--profile")
            .arg(l.profile)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        // SAFETY: between fork and exec only async-signal-safe calls: sched_setaffinity, prctl.
        unsafe {
            cmd.pre_exec(move || {
                super::affinity::pin_current(&cpus)?;
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", l.bin.display()))?;
        let mut r = RouterProcess {
            child: Some(child),
            log: l.log.to_path_buf(),
        };
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(c) = r.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    r.child = None;
                    return Err(format!(
                        "router exited at start ({status}): {}",
                        r.log_tail()
                    ));
                }
            }
            if TcpStream::connect_timeout(&s2s, POLL * 10).is_ok() {
                return Ok(r);
            }
            if Instant::now() >= deadline {
                let tail = r.log_tail();
                r.stop();
                return Err(format!(
                    "router did not listen on {s2s} within {:.0?}: {tail}",
                    timeout
                ));
            }
            std::thread::sleep(POLL);
        }
    }

    /// Its process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The last lines of its log, on one line.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().rev().take(3).collect();
        if lines.is_empty() {
            format!("(nothing in {})", self.log.display())
        } else {
            lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
        }
    }

    /// SIGTERM, up to [`STOP_GRACE`] for it to exit, then SIGKILL. Returns whether it exited on
    /// SIGTERM by itself.
    pub fn stop(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        if let Ok(Some(_)) = child.try_wait() {
            return true;
        }
        if let Ok(pid) = libc::pid_t::try_from(child.id()) {
            // SAFETY: kill has no memory preconditions; the pid is our unreaped child.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return true;
            }
            std::thread::sleep(POLL);
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }
}

impl Drop for RouterProcess {
    fn drop(&mut self) {
        self.stop();
    }
}
