//! SIPp (sip-tester) as the internal SIP pool of interop tests, on loopback over TCP.
//!
//! [`Sipp::uas`] starts a SIPp server scenario listening on `ip:port` and returns once the port
//! accepts connections; [`Sipp::uac`] starts a client scenario towards an address. Both run in
//! a fresh [`WorkDir`] with the message trace, error trace, `<log>` actions and the statistics
//! CSV written there, in their own process group (killed on drop), bounded by SIPp's own
//! `-timeout` (and `-m` calls). [`Sipp::wait`] / [`Sipp::finish`] return a [`SippOutcome`]:
//! SIPp's exit code, its call counters and the traces, with helpers to read the SIP messages.
//! Only IP literals are ever passed: SIPp never resolves a name here.
#![allow(dead_code)]

use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::peers::HarnessError;
use super::workdir::{free_port, tail_lines, WorkDir};

/// How long SIPp may take to listen before [`HarnessError::Timeout`].
pub const START_DEADLINE: Duration = Duration::from_secs(10);

/// Pause between two polls of the process or a port.
const POLL_PAUSE: Duration = Duration::from_millis(20);

/// The scenario files shipped in `tests/sipp_scenarios`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// Receives MESSAGE, answers the code in variable `reply_code` (default 200).
    UasMessage,
    /// Receives MESSAGE, never answers; holds the call for `-d` (default: the run's timeout).
    UasNoAnswer,
    /// Receives SUBSCRIBE, answers 200 + Expires, sends NOTIFY (PIDF open + note), expects 200;
    /// with `-set terminate yes` a terminated NOTIFY follows after `-d`.
    UasSubscribe,
    /// Sends MESSAGE to `to_uri`, expects a final code equal to variable `expect_code`.
    UacMessage,
    /// Sends SUBSCRIBE, expects 2xx, then NOTIFY (answered 200); `-set expect_terminated yes`
    /// expects a second, terminated NOTIFY too.
    UacSubscribe,
    /// Any other scenario file.
    File(PathBuf),
}

impl Scenario {
    /// Path of the XML file.
    pub fn path(&self) -> PathBuf {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/sipp_scenarios");
        match self {
            Scenario::UasMessage => dir.join("uas_message.xml"),
            Scenario::UasNoAnswer => dir.join("uas_no_answer.xml"),
            Scenario::UasSubscribe => dir.join("uas_subscribe.xml"),
            Scenario::UacMessage => dir.join("uac_message.xml"),
            Scenario::UacSubscribe => dir.join("uac_subscribe.xml"),
            Scenario::File(p) => p.clone(),
        }
    }

    /// Keys (`-key`) the scenario requires, with the values used unless the options give one.
    pub fn default_keys(&self) -> &'static [(&'static str, &'static str)] {
        match self {
            Scenario::UasSubscribe => &[
                ("expires", "600"),
                ("note", "Available"),
                ("note_lang", "en"),
            ],
            Scenario::UacMessage => &[
                ("to_uri", "sip:alice@a.test"),
                ("from_uri", "sip:bob@sip.test"),
                ("lang", "en"),
                ("body", "Hello from SIPp"),
            ],
            Scenario::UacSubscribe => &[
                ("to_uri", "sip:alice@a.test"),
                ("from_uri", "sip:bob@sip.test"),
                ("expires", "600"),
            ],
            _ => &[],
        }
    }

    /// Global variables (`-set`) the scenario reads, with their defaults.
    pub fn default_vars(&self) -> &'static [(&'static str, &'static str)] {
        match self {
            Scenario::UasMessage => &[("reply_code", "200")],
            Scenario::UasSubscribe => &[("terminate", "no")],
            Scenario::UacMessage => &[("expect_code", "200")],
            Scenario::UacSubscribe => &[("expect_terminated", "no")],
            _ => &[],
        }
    }
}

/// SIP transport for SIPp.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SippTransport {
    /// `-t t1`: TCP, one socket.
    Tcp,
    /// `-t l1`: TLS, one socket, with a PEM certificate and key (`-tls_cert`, `-tls_key`).
    /// Needs a SIPp built with OpenSSL: see [`sipp_supports_tls`].
    Tls {
        /// PEM certificate chain file.
        cert: PathBuf,
        /// PEM private key file.
        key: PathBuf,
    },
}

/// What a test asks of one SIPp run.
#[derive(Clone, Debug)]
pub struct SippOptions {
    /// Loopback address (127.0.0.x) for `-i` (Via/Contact and the listening socket).
    pub ip: Ipv4Addr,
    /// Local port (`-p`); 0 picks a free one.
    pub port: u16,
    /// Transport.
    pub transport: SippTransport,
    /// `-m`: stop after this many calls; 0 means no `-m` (stop with [`Sipp::finish`]).
    pub calls: u32,
    /// `-timeout`: SIPp quits after this long whatever happens (the run's hard bound).
    pub timeout: Duration,
    /// `-timeout_error`: reaching `timeout` is a failure (exit code 1) rather than a clean end.
    pub timeout_is_error: bool,
    /// `-recv_timeout`: a `<recv>` waiting longer fails its call (FailedTimeoutOnRecv).
    pub recv_timeout: Option<Duration>,
    /// `-d`: duration of `<pause/>` without `milliseconds` (default: `timeout`).
    pub pause: Option<Duration>,
    /// `-key name value`, overriding [`Scenario::default_keys`].
    pub keys: Vec<(String, String)>,
    /// `-set name value`, overriding [`Scenario::default_vars`].
    pub vars: Vec<(String, String)>,
    /// Further arguments, appended last.
    pub extra_args: Vec<String>,
}

impl SippOptions {
    /// TCP on `ip` with a free port, 1 call, 10 s timeout, scenario defaults.
    pub fn new(ip: Ipv4Addr) -> SippOptions {
        SippOptions {
            ip,
            port: 0,
            transport: SippTransport::Tcp,
            calls: 1,
            timeout: Duration::from_secs(10),
            timeout_is_error: true,
            recv_timeout: None,
            pause: None,
            keys: Vec::new(),
            vars: Vec::new(),
            extra_args: Vec::new(),
        }
    }

    /// Adds `-key name value`.
    pub fn key(mut self, name: &str, value: &str) -> SippOptions {
        self.keys.push((name.to_string(), value.to_string()));
        self
    }

    /// Adds `-set name value`.
    pub fn var(mut self, name: &str, value: &str) -> SippOptions {
        self.vars.push((name.to_string(), value.to_string()));
        self
    }

    /// Sets `-m`.
    pub fn calls(mut self, calls: u32) -> SippOptions {
        self.calls = calls;
        self
    }
}

/// Whether the installed SIPp was built with TLS (its `-v` banner names TLS).
/// Debian's sip-tester 3.6.1 is `SIPp v3.6.1-SCTP-PCAP-RTPSTREAM`: no TLS.
pub fn sipp_supports_tls() -> bool {
    Command::new("sipp")
        .arg("-v")
        .stdin(Stdio::null())
        .output()
        .map(|o| {
            let text = String::from_utf8_lossy(&o.stdout).into_owned()
                + &String::from_utf8_lossy(&o.stderr);
            text.lines()
                .find(|l| l.contains("SIPp v"))
                .is_some_and(|l| l.contains("TLS"))
        })
        .unwrap_or(false)
}

/// A running SIPp, killed (with its process group) on drop.
pub struct Sipp {
    name: String,
    child: Option<Child>,
    local: SocketAddr,
    dir: WorkDir,
}

const MESSAGES: &str = "messages.log";
const ERRORS: &str = "errors.log";
const LOGS: &str = "logs.log";
const STATS: &str = "stats.csv";
const SCREEN: &str = "screen.log";
const STDOUT: &str = "stdout.log";

impl Sipp {
    /// Starts a server scenario on `opts.ip:opts.port` and waits until the port accepts TCP.
    pub fn uas(scenario: Scenario, opts: SippOptions) -> Result<Sipp, HarnessError> {
        let mut sipp = Sipp::spawn("sipp uas", &scenario, None, opts)?;
        sipp.wait_listening(Instant::now() + START_DEADLINE)?;
        Ok(sipp)
    }

    /// Starts a client scenario towards `target` (an IP literal and port).
    pub fn uac(
        scenario: Scenario,
        target: SocketAddr,
        opts: SippOptions,
    ) -> Result<Sipp, HarnessError> {
        Sipp::spawn("sipp uac", &scenario, Some(target), opts)
    }

    fn spawn(
        role: &str,
        scenario: &Scenario,
        target: Option<SocketAddr>,
        opts: SippOptions,
    ) -> Result<Sipp, HarnessError> {
        use std::os::unix::process::CommandExt;
        if !opts.ip.is_loopback() {
            return Err(HarnessError::Options(format!(
                "{} is not loopback",
                opts.ip
            )));
        }
        if let Some(t) = target {
            if !t.ip().is_loopback() {
                return Err(HarnessError::Options(format!("target {t} is not loopback")));
            }
        }
        let path = scenario.path();
        let file_name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "scenario".into());
        let name = format!("{role} {file_name}");
        let dir = WorkDir::new(&name)?;
        let port = if opts.port == 0 {
            free_port(opts.ip)?
        } else {
            opts.port
        };
        // SIPp binds a UDP control socket (default 8888) on start: give each run its own.
        let control_port = UdpSocket::bind((opts.ip, 0))
            .and_then(|s| s.local_addr())
            .map_err(|e| HarnessError::io("free UDP control port".into(), e))?
            .port();
        let secs = opts.timeout.as_secs().max(1);
        let mut args: Vec<String> = Vec::new();
        if let Some(t) = target {
            args.push(t.to_string());
        }
        args.extend(["-sf".into(), path.to_string_lossy().into_owned()]);
        match &opts.transport {
            SippTransport::Tcp => args.extend(["-t".into(), "t1".into()]),
            SippTransport::Tls { cert, key } => {
                if !sipp_supports_tls() {
                    return Err(HarnessError::Options(
                        "this sipp is built without TLS (sipp -v names no TLS)".into(),
                    ));
                }
                args.extend([
                    "-t".into(),
                    "l1".into(),
                    "-tls_cert".into(),
                    cert.to_string_lossy().into_owned(),
                    "-tls_key".into(),
                    key.to_string_lossy().into_owned(),
                ]);
            }
        }
        let pause = opts.pause.unwrap_or(opts.timeout);
        args.extend([
            "-i".into(),
            opts.ip.to_string(),
            "-p".into(),
            port.to_string(),
            "-ci".into(),
            opts.ip.to_string(),
            "-cp".into(),
            control_port.to_string(),
            "-nostdin".into(),
            "-timeout".into(),
            format!("{secs}s"),
            "-d".into(),
            pause.as_millis().to_string(),
            "-trace_msg".into(),
            "-message_file".into(),
            dir.join(MESSAGES).to_string_lossy().into_owned(),
            "-trace_err".into(),
            "-error_file".into(),
            dir.join(ERRORS).to_string_lossy().into_owned(),
            "-trace_logs".into(),
            "-log_file".into(),
            dir.join(LOGS).to_string_lossy().into_owned(),
            "-trace_stat".into(),
            "-stf".into(),
            dir.join(STATS).to_string_lossy().into_owned(),
            "-trace_screen".into(),
            "-screen_file".into(),
            dir.join(SCREEN).to_string_lossy().into_owned(),
        ]);
        // An aborted call (receive timeout, unexpected message) makes SIPp send a BYE by
        // default, even for a MESSAGE that opened no dialog: never wanted here.
        if !opts
            .extra_args
            .iter()
            .any(|a| a == "-default_behaviors" || a == "-nd")
        {
            args.extend(["-default_behaviors".into(), "all,-bye".into()]);
        }
        if opts.calls > 0 {
            args.extend(["-m".into(), opts.calls.to_string()]);
        }
        if opts.timeout_is_error {
            args.push("-timeout_error".into());
        }
        if let Some(r) = opts.recv_timeout {
            args.extend(["-recv_timeout".into(), r.as_millis().to_string()]);
        }
        for (k, default) in scenario.default_keys() {
            let v = last_value(&opts.keys, k).unwrap_or(default);
            args.extend(["-key".into(), (*k).to_string(), v.to_string()]);
        }
        for (k, v) in &opts.keys {
            if !scenario.default_keys().iter().any(|(d, _)| d == k) {
                args.extend(["-key".into(), k.clone(), v.clone()]);
            }
        }
        for (k, default) in scenario.default_vars() {
            let v = last_value(&opts.vars, k).unwrap_or(default);
            args.extend(["-set".into(), (*k).to_string(), v.to_string()]);
        }
        for (k, v) in &opts.vars {
            if !scenario.default_vars().iter().any(|(d, _)| d == k) {
                args.extend(["-set".into(), k.clone(), v.clone()]);
            }
        }
        args.extend(opts.extra_args.iter().cloned());
        dir.write("command.txt", &format!("sipp {}\n", args.join(" ")))?;

        let out = fs::File::create(dir.join(STDOUT))
            .map_err(|e| HarnessError::io(format!("create {STDOUT}"), e))?;
        let err = out
            .try_clone()
            .map_err(|e| HarnessError::io("dup stdout file".into(), e))?;
        // Spawned directly (no `timeout` wrapper) so that SIGUSR1 reaches SIPp itself and its
        // exit code is ours; SIPp's own -timeout bounds its life.
        let child = Command::new("sipp")
            .args(&args)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .map_err(|e| HarnessError::io(format!("spawn {name}"), e))?;
        Ok(Sipp {
            name,
            child: Some(child),
            local: SocketAddr::from((opts.ip, port)),
            dir,
        })
    }

    /// The local address (`-i`:`-p`); for a UAS, where it listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Work directory holding the traces.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Process id of SIPp.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// The message trace so far.
    pub fn messages(&self) -> String {
        read_lossy(&self.dir.join(MESSAGES))
    }

    /// Waits until SIPp's trace shows a received message satisfying `pred` (e.g. the MESSAGE a
    /// UAS is holding unanswered); returns it. Fails if SIPp exits or `deadline` passes.
    pub fn wait_for_received(
        &mut self,
        what: &str,
        deadline: Instant,
        pred: impl Fn(&SipMessage) -> bool,
    ) -> Result<SipMessage, HarnessError> {
        loop {
            if let Some(m) = parse_trace(&self.messages())
                .into_iter()
                .find(|m| m.direction == Direction::Received && pred(m))
            {
                return Ok(m);
            }
            if let Some(st) = self.try_exit() {
                return Err(HarnessError::Start {
                    server: self.name.clone(),
                    reason: format!("exited ({st:?}) while waiting for {what}"),
                    log_tail: self.diagnostics(),
                });
            }
            if Instant::now() >= deadline {
                return Err(HarnessError::Timeout {
                    what: format!("{}: {what}", self.name),
                    log_tail: self.diagnostics(),
                });
            }
            std::thread::sleep(POLL_PAUSE);
        }
    }

    /// Responses SIPp has sent so far to `method` requests (CSeq method), by its trace.
    pub fn responses_sent(&self, method: &str) -> usize {
        parse_trace(&self.messages())
            .iter()
            .filter(|m| m.direction == Direction::Sent && m.status().is_some())
            .filter(|m| m.header("CSeq").is_some_and(|c| c.ends_with(method)))
            .count()
    }

    /// Waits until SIPp's trace shows it has answered `n` `method` requests. SIPp takes a
    /// request arriving while it still answers the previous one as unexpected: a test steps
    /// the other side only once SIPp is ready. Fails if SIPp exits or `deadline` passes.
    pub fn wait_answered(
        &mut self,
        method: &str,
        n: usize,
        deadline: Instant,
    ) -> Result<(), HarnessError> {
        loop {
            let answered = self.responses_sent(method);
            if answered >= n {
                return Ok(());
            }
            let what = format!("{n} answered {method} (has {answered})");
            if let Some(st) = self.try_exit() {
                return Err(HarnessError::Start {
                    server: self.name.clone(),
                    reason: format!("exited ({st:?}) while waiting for {what}"),
                    log_tail: self.diagnostics(),
                });
            }
            if Instant::now() >= deadline {
                return Err(HarnessError::Timeout {
                    what: format!("{}: {what}", self.name),
                    log_tail: self.diagnostics(),
                });
            }
            std::thread::sleep(POLL_PAUSE);
        }
    }

    /// Waits for SIPp to exit by itself (`-m` calls done, `-timeout`, fatal error) and returns
    /// the outcome; kills it and fails if `deadline` passes first.
    pub fn wait(mut self, deadline: Instant) -> Result<SippOutcome, HarnessError> {
        loop {
            if let Some(code) = self.try_exit() {
                return Ok(self.outcome(code));
            }
            if Instant::now() >= deadline {
                let diag = self.diagnostics();
                self.kill();
                return Err(HarnessError::Timeout {
                    what: format!("{} to exit", self.name),
                    log_tail: diag,
                });
            }
            std::thread::sleep(POLL_PAUSE);
        }
    }

    /// Asks SIPp for a soft exit (SIGUSR1: no new calls, running calls finish), then
    /// [`Sipp::wait`]s. For a UAS whose exit after its last call must not close the TCP
    /// connection under a peer still working (the peer would count a FailedTcpClosed).
    pub fn finish(self, deadline: Instant) -> Result<SippOutcome, HarnessError> {
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill")
                .args(["-USR1", &pid.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        self.wait(deadline)
    }

    /// `Some(exit code)` once SIPp has exited (`None` inside for death by signal).
    fn try_exit(&mut self) -> Option<Option<i32>> {
        let child = self.child.as_mut()?;
        match child.try_wait() {
            Ok(Some(st)) => Some(st.code()),
            Ok(None) => None,
            Err(_) => Some(None),
        }
    }

    fn wait_listening(&mut self, deadline: Instant) -> Result<(), HarnessError> {
        loop {
            if TcpStream::connect_timeout(&self.local, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if let Some(code) = self.try_exit() {
                return Err(HarnessError::Start {
                    server: self.name.clone(),
                    reason: format!("exited ({code:?}) before {} listened", self.local),
                    log_tail: self.diagnostics(),
                });
            }
            if Instant::now() >= deadline {
                return Err(HarnessError::Timeout {
                    what: format!("{}: {} to accept connections", self.name, self.local),
                    log_tail: self.diagnostics(),
                });
            }
            std::thread::sleep(POLL_PAUSE);
        }
    }

    /// Command line, errors and the end of stdout, for failure reports.
    fn diagnostics(&self) -> String {
        format!(
            "work dir {}\n{}--- errors ---\n{}\n--- stdout ---\n{}",
            self.dir.path().display(),
            read_lossy(&self.dir.join("command.txt")),
            tail_lines(&read_lossy(&self.dir.join(ERRORS)), 20),
            tail_lines(&read_lossy(&self.dir.join(STDOUT)), 20),
        )
    }

    fn outcome(&mut self, exit_code: Option<i32>) -> SippOutcome {
        let stats = parse_stats(&read_lossy(&self.dir.join(STATS)));
        let counter = |name: &str| {
            stats
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| *v)
                .unwrap_or(0)
        };
        SippOutcome {
            exit_code,
            successful_calls: counter("SuccessfulCall(C)"),
            failed_calls: counter("FailedCall(C)"),
            failure_reasons: stats
                .iter()
                .filter(|(k, v)| k.starts_with("Failed") && k != "FailedCall(C)" && *v > 0)
                .cloned()
                .collect(),
            messages: self.messages(),
            logs: read_lossy(&self.dir.join(LOGS)),
            errors: read_lossy(&self.dir.join(ERRORS)),
            diagnostics: self.diagnostics(),
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            if matches!(child.try_wait(), Ok(None)) {
                let group = format!("-{}", child.id());
                let _ = Command::new("kill")
                    .args(["-KILL", "--", &group])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }
}

impl Drop for Sipp {
    fn drop(&mut self) {
        self.kill();
    }
}

/// How a SIPp run ended.
#[derive(Clone, Debug)]
pub struct SippOutcome {
    /// SIPp's exit code: 0 all calls successful, 1 at least one failed, 97 internal command,
    /// 99 no call processed, 255 (-1) fatal error, 254 (-2) socket bind error; `None` if killed
    /// by a signal.
    pub exit_code: Option<i32>,
    /// `SuccessfulCall(C)` of the statistics CSV.
    pub successful_calls: u64,
    /// `FailedCall(C)`.
    pub failed_calls: u64,
    /// Non-zero `Failed*(C)` reason counters (`FailedTimeoutOnRecv(C)`, `FailedTcpClosed(C)`,
    /// `FailedCallRejected(C)`, `FailedUnexpectedMessage(C)`, ...).
    pub failure_reasons: Vec<(String, u64)>,
    /// The message trace (`-trace_msg`).
    pub messages: String,
    /// The `<log>` action output (`-trace_logs`).
    pub logs: String,
    /// The error trace (`-trace_err`).
    pub errors: String,
    /// Command line, errors and stdout tail, for assertion messages.
    pub diagnostics: String,
}

impl SippOutcome {
    /// Exit code 0 and no failed call.
    pub fn all_ok(&self) -> bool {
        self.exit_code == Some(0) && self.failed_calls == 0
    }

    /// Every SIP message in the trace, in order.
    pub fn sip_messages(&self) -> Vec<SipMessage> {
        parse_trace(&self.messages)
    }

    /// Received requests with this method.
    pub fn received_requests(&self, method: &str) -> Vec<SipMessage> {
        self.sip_messages()
            .into_iter()
            .filter(|m| m.direction == Direction::Received && m.method() == Some(method))
            .collect()
    }

    /// Status codes of the final (>= 200) responses received, in order.
    pub fn received_final_codes(&self) -> Vec<u16> {
        self.sip_messages()
            .iter()
            .filter(|m| m.direction == Direction::Received)
            .filter_map(SipMessage::status)
            .filter(|c| *c >= 200)
            .collect()
    }

    /// Codes recorded by `uac_message.xml` (`final <code> expected <x>` log lines).
    pub fn logged_final_codes(&self) -> Vec<u16> {
        self.logs
            .lines()
            .filter_map(|l| l.strip_prefix("final "))
            .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
            .collect()
    }

    /// Value of a non-zero failure counter, 0 otherwise.
    pub fn failures(&self, reason: &str) -> u64 {
        self.failure_reasons
            .iter()
            .find(|(k, _)| k == reason)
            .map(|(_, v)| *v)
            .unwrap_or(0)
    }
}

/// Whether SIPp sent or received a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// "... message sent".
    Sent,
    /// "... message received".
    Received,
}

/// One SIP message read back from the trace.
#[derive(Clone, Debug)]
pub struct SipMessage {
    /// Sent or received.
    pub direction: Direction,
    /// Request line or status line.
    pub start_line: String,
    /// Headers in order, names as written.
    pub headers: Vec<(String, String)>,
    /// Body (text as logged).
    pub body: String,
}

impl SipMessage {
    /// Method of a request.
    pub fn method(&self) -> Option<&str> {
        if self.start_line.starts_with("SIP/2.0 ") {
            return None;
        }
        self.start_line.split(' ').next()
    }

    /// Status code of a response.
    pub fn status(&self) -> Option<u16> {
        self.start_line
            .strip_prefix("SIP/2.0 ")?
            .get(..3)?
            .parse()
            .ok()
    }

    /// First header named `name` (case-insensitive), trimmed.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Splits a SIPp `-trace_msg` file into messages. Each entry starts with a dashed line and
/// a "<TRANSPORT> message sent|received ..." line, then a blank line and the message.
pub fn parse_trace(text: &str) -> Vec<SipMessage> {
    let mut out = Vec::new();
    for entry in text.split("\n-----------------------------------------------") {
        let mut lines = entry.lines();
        // Skip the time stamp remainder of the dashed line.
        let _ = lines.next();
        let Some(kind) = lines.next() else { continue };
        let direction = if kind.contains("message sent") {
            Direction::Sent
        } else if kind.contains("message received") {
            Direction::Received
        } else {
            continue;
        };
        let rest: Vec<&str> = lines.skip_while(|l| l.trim().is_empty()).collect();
        let Some((start, after)) = rest.split_first() else {
            continue;
        };
        let mut headers = Vec::new();
        let mut body_lines: &[&str] = &[];
        for (i, l) in after.iter().enumerate() {
            if l.trim().is_empty() {
                body_lines = &after[i + 1..];
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        out.push(SipMessage {
            direction,
            start_line: start.trim_end().to_string(),
            headers,
            body: body_lines.join("\n").trim_end().to_string(),
        });
    }
    out
}

/// Last row of SIPp's `;`-separated statistics CSV, as (column, value) for numeric columns.
fn parse_stats(csv: &str) -> Vec<(String, u64)> {
    let mut lines = csv.lines().filter(|l| !l.trim().is_empty());
    let Some(header) = lines.next() else {
        return Vec::new();
    };
    let Some(last) = lines.next_back() else {
        return Vec::new();
    };
    header
        .split(';')
        .zip(last.split(';'))
        .filter_map(|(k, v)| Some((k.to_string(), v.trim().parse().ok()?)))
        .collect()
}

fn last_value<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn read_lossy(path: &std::path::Path) -> String {
    fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}
