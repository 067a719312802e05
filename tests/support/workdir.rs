//! Work directories and background server processes for the interop harness.
//!
//! A [`WorkDir`] is a fresh, unique directory under the system temp dir holding one peer's
//! config, data and logs; it is removed on drop unless the thread is panicking (so a failed
//! test leaves the logs behind) or `STANZA_ROUTER_KEEP_PEERS` is set.
//! A [`ServerProcess`] is a server started in its own process group, killed as a group on drop.
#![allow(dead_code)]

use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::peers::HarnessError;

/// Upper bound on a leaked server's life if the test process dies without running drops
/// (SIGKILL, abort): each server runs under `timeout -s KILL`.
const SAFETY_KILL_AFTER: &str = "1800";

/// Pause between two polls of a log file or a port.
const POLL_PAUSE: Duration = Duration::from_millis(50);

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A unique scratch directory for one server.
pub struct WorkDir {
    path: PathBuf,
}

impl WorkDir {
    /// Creates `<temp>/stanza-router-peers/<label>-<pid>-<n>-<nanos>`.
    pub fn new(label: &str) -> Result<WorkDir, HarnessError> {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let safe: String = label
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let path = std::env::temp_dir()
            .join("stanza-router-peers")
            .join(format!("{safe}-{}-{n}-{nanos}", std::process::id()));
        fs::create_dir_all(&path).map_err(|e| HarnessError::io(format!("mkdir {path:?}"), e))?;
        Ok(WorkDir { path })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `self.path()/name`.
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Writes `content` to `name` inside the directory, returns the full path.
    pub fn write(&self, name: &str, content: &str) -> Result<PathBuf, HarnessError> {
        let p = self.join(name);
        fs::write(&p, content).map_err(|e| HarnessError::io(format!("write {p:?}"), e))?;
        Ok(p)
    }

    /// Creates the subdirectory `name`, returns its path.
    pub fn mkdir(&self, name: &str) -> Result<PathBuf, HarnessError> {
        let p = self.join(name);
        fs::create_dir_all(&p).map_err(|e| HarnessError::io(format!("mkdir {p:?}"), e))?;
        Ok(p)
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if std::thread::panicking() || std::env::var_os("STANZA_ROUTER_KEEP_PEERS").is_some() {
            eprintln!("peer work dir kept: {}", self.path.display());
            return;
        }
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// Asks the kernel for a currently free TCP port on `ip` (bind to port 0, then release it).
/// Racy in principle, but distinct per call in practice: lets parallel tests avoid fixed ports.
pub fn free_port(ip: Ipv4Addr) -> Result<u16, HarnessError> {
    let l = TcpListener::bind((ip, 0))
        .map_err(|e| HarnessError::io(format!("bind {ip}:0 for a free port"), e))?;
    let port = l
        .local_addr()
        .map_err(|e| HarnessError::io("local_addr of probe listener".into(), e))?
        .port();
    Ok(port)
}

/// A server running in the background in its own process group, with a log file.
pub struct ServerProcess {
    name: String,
    child: Child,
    log_path: PathBuf,
}

impl ServerProcess {
    /// Spawns `program args` in a new process group with `envs`, stdout and stderr appended to
    /// `stdout_path`; `log_path` is the server's main log (what `log_*` read).
    pub fn spawn(
        name: &str,
        program: &str,
        args: &[String],
        envs: &[(&str, String)],
        stdout_path: &Path,
        log_path: PathBuf,
    ) -> Result<ServerProcess, HarnessError> {
        use std::os::unix::process::CommandExt;
        let out = fs::File::create(stdout_path)
            .map_err(|e| HarnessError::io(format!("create {stdout_path:?}"), e))?;
        let err = out
            .try_clone()
            .map_err(|e| HarnessError::io("dup stdout file".into(), e))?;
        let mut cmd = Command::new("timeout");
        cmd.args(["-s", "KILL", SAFETY_KILL_AFTER, program])
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .map_err(|e| HarnessError::io(format!("spawn {name} ({program})"), e))?;
        Ok(ServerProcess {
            name: name.to_string(),
            child,
            log_path,
        })
    }

    /// Process id of the group leader (the `timeout` wrapper; the group id too).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The same process, with `log_*` reading `log_path` from now on (a server whose readiness
    /// shows on stdout but whose log is another file).
    pub fn with_log_path(mut self, log_path: PathBuf) -> ServerProcess {
        self.log_path = log_path;
        self
    }

    /// Path of the server log.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Whole server log (lossy UTF-8); empty if not yet written.
    pub fn log(&self) -> String {
        fs::read(&self.log_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Last `n` lines of the server log.
    pub fn log_tail(&self, n: usize) -> String {
        tail_lines(&self.log(), n)
    }

    /// Whether the log contains `needle`.
    pub fn log_contains(&self, needle: &str) -> bool {
        self.log().contains(needle)
    }

    /// `Some(status)` if the server has exited.
    pub fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(st)) => Some(st.to_string()),
            Ok(None) => None,
            Err(e) => Some(format!("wait failed: {e}")),
        }
    }

    /// Waits until a line of the log satisfies `pred`, returns that line. Reads only the new part
    /// of the file on each poll. Fails if the server exits or `deadline` passes.
    pub fn wait_for_log_line(
        &mut self,
        what: &str,
        deadline: Instant,
        pred: impl Fn(&str) -> bool,
    ) -> Result<String, HarnessError> {
        let mut offset = 0u64;
        let mut partial = String::new();
        loop {
            if let Ok(mut f) = fs::File::open(&self.log_path) {
                if f.seek(SeekFrom::Start(offset)).is_ok() {
                    let mut buf = Vec::new();
                    if let Ok(n) = f.read_to_end(&mut buf) {
                        offset += n as u64;
                        partial.push_str(&String::from_utf8_lossy(&buf));
                    }
                }
            }
            // Only complete lines are matched; the unfinished tail waits for the next poll.
            while let Some(nl) = partial.find('\n') {
                let line: String = partial.drain(..=nl).collect();
                if pred(&line) {
                    return Ok(line.trim_end().to_string());
                }
            }
            if let Some(st) = self.exited() {
                return Err(HarnessError::Start {
                    server: self.name.clone(),
                    reason: format!("exited ({st}) while waiting for {what}"),
                    log_tail: self.log_tail(40),
                });
            }
            if Instant::now() >= deadline {
                return Err(HarnessError::Timeout {
                    what: format!("{}: {what}", self.name),
                    log_tail: self.log_tail(40),
                });
            }
            std::thread::sleep(POLL_PAUSE);
        }
    }

    /// Waits until every needle of `all` has appeared in some log line; fails at once (with
    /// the log tail) if a line contains one of `fatal`, the server exits, or `deadline` passes.
    pub fn wait_for_all(
        &mut self,
        all: &[String],
        fatal: &[&str],
        deadline: Instant,
    ) -> Result<(), HarnessError> {
        let mut missing: Vec<&String> = all.iter().collect();
        while !missing.is_empty() {
            let what = format!("log lines {missing:?}");
            let line = self.wait_for_log_line(&what, deadline, |l| {
                missing.iter().any(|m| l.contains(m.as_str()))
                    || fatal.iter().any(|f| l.contains(f))
            })?;
            if let Some(f) = fatal.iter().find(|f| line.contains(*f)) {
                return Err(HarnessError::Start {
                    server: self.name.clone(),
                    reason: format!("log says {f:?}: {line}"),
                    log_tail: self.log_tail(40),
                });
            }
            missing.retain(|m| !line.contains(m.as_str()));
        }
        Ok(())
    }

    /// Waits until the log contains `needle` (a substring of one line).
    pub fn wait_for_log(
        &mut self,
        needle: &str,
        deadline: Instant,
    ) -> Result<String, HarnessError> {
        self.wait_for_log_line(&format!("log line containing {needle:?}"), deadline, |l| {
            l.contains(needle)
        })
    }

    /// Waits until every address in `addrs` accepts a TCP connection. Polling an external
    /// process's port is the readiness signal of last resort (logs come first).
    pub fn wait_for_ports(
        &mut self,
        addrs: &[SocketAddr],
        deadline: Instant,
    ) -> Result<(), HarnessError> {
        for addr in addrs {
            loop {
                if TcpStream::connect_timeout(addr, Duration::from_millis(200)).is_ok() {
                    break;
                }
                if let Some(st) = self.exited() {
                    return Err(HarnessError::Start {
                        server: self.name.clone(),
                        reason: format!("exited ({st}) before {addr} accepted connections"),
                        log_tail: self.log_tail(40),
                    });
                }
                if Instant::now() >= deadline {
                    return Err(HarnessError::Timeout {
                        what: format!("{}: {addr} to accept connections", self.name),
                        log_tail: self.log_tail(40),
                    });
                }
                std::thread::sleep(POLL_PAUSE);
            }
        }
        Ok(())
    }

    /// Kills the whole process group and reaps the leader. Idempotent.
    pub fn kill(&mut self) {
        if self.exited().is_none() {
            let group = format!("-{}", self.child.id());
            // `kill` (procps) takes a negative pid as a process group: server and its helpers.
            let _ = Command::new("kill")
                .args(["-KILL", "--", &group])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Last `n` lines of `text`.
pub fn tail_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(n);
    lines[start..].join("\n")
}

/// Runs a short helper command to completion (bounded by `timeout -s KILL secs`), returns
/// stdout+stderr; non-zero exit is an error naming the command.
pub fn run_helper(
    program: &str,
    args: &[String],
    envs: &[(&str, String)],
    secs: u32,
) -> Result<String, HarnessError> {
    let mut cmd = Command::new("timeout");
    cmd.args(["-s", "KILL", &secs.to_string(), program])
        .args(args)
        .stdin(Stdio::null());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd
        .output()
        .map_err(|e| HarnessError::io(format!("run {program}"), e))?;
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    if !out.status.success() {
        return Err(HarnessError::Command {
            command: format!("{program} {}", args.join(" ")),
            status: out.status.to_string(),
            output: text,
        });
    }
    Ok(text)
}
