//! ejabberd 23.01 as a federation peer on 127.0.0.x.
//!
//! Started as a plain `erl` node without distribution (no `-sname`: no epmd, no
//! `ejabberdctl`, node `nonode@nohost`). Name resolution stays off the system resolver: the
//! node runs with `ERL_INETRC` naming no name servers, no hosts file and `lookup [file, dns]`
//! (never `native`, i.e. never libc), and the routes are seeded into the resolver cache
//! (`inet_db:add_rr` of `_xmpp-server._tcp.DOMAIN` SRV records whose target is an IP literal)
//! before ejabberd starts. Any other name yields NXDOMAIN without a packet sent.
//! Users are registered in the same node after start (`ejabberd_auth:try_register`), then a
//! `HARNESS-READY` marker is printed: no admin node needed.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::peers::{check_plain, HarnessError, Peer, PeerOptions, START_DEADLINE};
use super::workdir::{ServerProcess, WorkDir};

/// Where the Debian package keeps the ejabberd application (not under the OTP lib dir).
const EJABBERD_LIBS: &str = "/usr/lib/x86_64-linux-gnu";

/// Printed on stdout once ejabberd runs and the users exist.
const READY_MARKER: &str = "HARNESS-READY";

/// Log lines that mean the start failed.
const EJABBERD_FATAL: &[&str] = &["Failed to start ejabberd application", "[critical]"];

/// A running ejabberd; killed (whole process group) on drop.
pub struct Ejabberd {
    // Field order matters: the process dies before its directory is removed.
    process: ServerProcess,
    opts: PeerOptions,
    dir: WorkDir,
    started_in: Duration,
}

/// YAML double-quoted scalar.
fn yaml_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Erlang string literal (also used inside `-eval` and `-ejabberd config` arguments).
fn erl_str(s: &str) -> String {
    yaml_str(s)
}

fn path_yaml(p: &Path) -> String {
    yaml_str(&p.to_string_lossy())
}

impl Ejabberd {
    /// Writes config and inetrc, starts the node, registers the users and waits (at most
    /// [`START_DEADLINE`]) until its c2s and s2s listeners accept connections.
    pub fn start(opts: PeerOptions) -> Result<Ejabberd, HarnessError> {
        let t0 = Instant::now();
        let deadline = t0 + START_DEADLINE;
        check_plain("domain", &opts.domain)?;
        for (d, _) in &opts.routes {
            check_plain("route domain", d)?;
        }
        for (u, p) in &opts.users {
            check_plain("user", u)?;
            check_plain("password", p)?;
        }
        let dir = WorkDir::new(&format!("ejabberd-{}", opts.domain))?;
        let config = dir.write("ejabberd.yml", &render_config(&dir, &opts)?)?;
        let inetrc = dir.write(
            "inetrc",
            "{resolv_conf, \"\"}.\n{hosts_file, \"\"}.\n{lookup, [file, dns]}.\n",
        )?;
        let db = dir.mkdir("db")?;
        let logs = dir.mkdir("logs")?;
        let log_file = logs.join("ejabberd.log");

        let mut seed = String::new();
        for (domain, addr) in &opts.routes {
            seed.push_str(&format!(
                "ok = inet_db:add_rr({}, in, srv, 86400, {{0, 0, {}, {}}}), ",
                erl_str(&format!("_xmpp-server._tcp.{domain}")),
                addr.port(),
                erl_str(&addr.ip().to_string())
            ));
        }
        seed.push_str("ok.");
        let mut register = String::new();
        for (user, password) in &opts.users {
            register.push_str(&format!(
                "case ejabberd_auth:try_register(list_to_binary({u}), list_to_binary({h}), \
                 list_to_binary({p})) of ok -> ok; R -> io:format(\"register ~s failed: ~p~n\", \
                 [{u}, R]), halt(3) end, ",
                u = erl_str(user),
                h = erl_str(&opts.domain),
                p = erl_str(password),
            ));
        }
        register.push_str(&format!(
            "io:format(\"~s~n\", [{}]).",
            erl_str(READY_MARKER)
        ));

        let args: Vec<String> = vec![
            "-noinput".into(),
            "-mnesia".into(),
            "dir".into(),
            erl_str(&db.to_string_lossy()),
            "-ejabberd".into(),
            "config".into(),
            erl_str(&config.to_string_lossy()),
            "log_path".into(),
            erl_str(&log_file.to_string_lossy()),
            // -eval and -s run in command-line order: cache seeded, then ejabberd started
            // (synchronously), then users registered.
            "-eval".into(),
            seed,
            "-s".into(),
            "ejabberd".into(),
            "-eval".into(),
            register,
        ];
        let name = format!("ejabberd {}", opts.domain);
        let stdout = dir.join("stdout.log");
        let envs = [
            ("ERL_INETRC", inetrc.to_string_lossy().into_owned()),
            ("ERL_LIBS", EJABBERD_LIBS.to_string()),
            ("HOME", dir.path().to_string_lossy().into_owned()),
        ];
        // The node's stdout is the log the harness reads: it carries every info-level line and
        // crash report at once, the readiness marker, and config errors printed before the log
        // file exists; logs/ejabberd.log is written with delay (stale when read mid-test).
        let mut process =
            ServerProcess::spawn(&name, "erl", &args, &envs, &stdout, stdout.clone())?;
        let listening = |port: u16, module: &str| {
            format!(
                "Start accepting TCP connections at {}:{port} for {module}",
                opts.ip
            )
        };
        let mut ready = vec![
            READY_MARKER.to_string(),
            listening(opts.c2s_port, "ejabberd_c2s"),
            listening(opts.s2s_port, "ejabberd_s2s_in"),
        ];
        let mut addrs = vec![opts.c2s_addr(), opts.s2s_addr()];
        if let Some(p) = opts.s2s_tls_port {
            ready.push(listening(p, "ejabberd_s2s_in"));
            addrs.push((opts.ip, p).into());
        }
        process.wait_for_all(&ready, EJABBERD_FATAL, deadline)?;
        process.wait_for_ports(&addrs, deadline)?;
        Ok(Ejabberd {
            process,
            opts,
            dir,
            started_in: t0.elapsed(),
        })
    }

    /// Log lines about S2S sessions: a cheap stand-in for Prosody's `s2s:show()`.
    pub fn s2s_log(&self) -> String {
        self.process
            .log()
            .lines()
            .filter(|l| l.contains(" s2s "))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Authenticated S2S sessions as logged at info level, e.g.
    /// `Accepted inbound s2s EXTERNAL authentication a.test -> b.test (127.0.0.1)`:
    /// `(inbound, method, from, to)` with method `EXTERNAL` or `dialback`.
    pub fn s2s_auth_events(&self) -> Vec<S2sAuth> {
        self.process
            .log()
            .lines()
            .filter_map(parse_auth_line)
            .collect()
    }

    /// Work directory (config, db, logs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// ejabberd's own log file (written with delay; `log_*` read the node's stdout instead).
    pub fn log_file_path(&self) -> PathBuf {
        self.dir.join("logs/ejabberd.log")
    }

    /// How long `start` took.
    pub fn started_in(&self) -> Duration {
        self.started_in
    }

    /// Server process (pid, log path, kill).
    pub fn process(&mut self) -> &mut ServerProcess {
        &mut self.process
    }
}

/// One authenticated S2S session as ejabberd logged it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S2sAuth {
    /// Inbound (the remote authenticated to us) or outbound.
    pub inbound: bool,
    /// `EXTERNAL` or `dialback` (the word ejabberd logs).
    pub method: String,
    /// Sending domain.
    pub from: String,
    /// Receiving domain.
    pub to: String,
}

/// `... Accepted (inbound|outbound) s2s METHOD authentication FROM -> TO (...)`.
fn parse_auth_line(line: &str) -> Option<S2sAuth> {
    let rest = &line[line.find("Accepted ")? + "Accepted ".len()..];
    let mut words = rest.split_whitespace();
    let inbound = match words.next()? {
        "inbound" => true,
        "outbound" => false,
        _ => return None,
    };
    if words.next()? != "s2s" {
        return None;
    }
    let method = words.next()?.to_string();
    if words.next()? != "authentication" {
        return None;
    }
    let from = words.next()?.to_string();
    if words.next()? != "->" {
        return None;
    }
    let to = words.next()?.to_string();
    Some(S2sAuth {
        inbound,
        method,
        from,
        to,
    })
}

impl Peer for Ejabberd {
    fn options(&self) -> &PeerOptions {
        &self.opts
    }
    fn log_tail(&self, n: usize) -> String {
        self.process.log_tail(n)
    }
    fn log_contains(&self, needle: &str) -> bool {
        self.process.log_contains(needle)
    }
    fn wait_for_log(&mut self, needle: &str, deadline: Instant) -> Result<String, HarnessError> {
        self.process.wait_for_log(needle, deadline)
    }
}

/// The whole `ejabberd.yml`, plus the cert bundle and CA files it names.
fn render_config(dir: &WorkDir, o: &PeerOptions) -> Result<String, HarnessError> {
    let bundle = dir.write(
        "cert.pem",
        &format!("{}\n{}", o.cert.cert_pem.trim_end(), o.cert.key_pem),
    )?;
    let mut y = String::from("# Generated by tests/support/ejabberd.rs\n");
    y.push_str(&format!("hosts:\n  - {}\n", yaml_str(&o.domain)));
    y.push_str("loglevel: info\n");
    y.push_str(&format!("certfiles:\n  - {}\n", path_yaml(&bundle)));
    // ACME would try to reach the Internet for hosts without certificates.
    y.push_str("acme:\n  auto: false\n");
    y.push_str(&format!(
        "s2s_use_starttls: {}\n",
        if o.require_encryption {
            "required"
        } else {
            "optional"
        }
    ));
    if let Some(ca) = &o.trust_ca_pem {
        let ca = dir.write("ca.pem", ca)?;
        y.push_str(&format!("s2s_cafile: {}\n", path_yaml(&ca)));
    }
    y.push_str("auth_method: internal\n");
    y.push_str("listen:\n");
    y.push_str(&format!(
        "  -\n    port: {}\n    ip: {}\n    module: ejabberd_c2s\n    starttls: false\n",
        o.c2s_port,
        yaml_str(&o.ip.to_string())
    ));
    let size = o
        .stanza_size_limit
        .map(|n| format!("    max_stanza_size: {n}\n"))
        .unwrap_or_default();
    y.push_str(&format!(
        "  -\n    port: {}\n    ip: {}\n    module: ejabberd_s2s_in\n{size}",
        o.s2s_port,
        yaml_str(&o.ip.to_string())
    ));
    if let Some(p) = o.s2s_tls_port {
        y.push_str(&format!(
            "  -\n    port: {p}\n    ip: {}\n    module: ejabberd_s2s_in\n    tls: true\n{size}",
            yaml_str(&o.ip.to_string())
        ));
    }
    y.push_str(
        "modules:\n  mod_disco: {}\n  mod_ping: {}\n  mod_roster: {}\n  mod_s2s_dialback: {}\n",
    );
    Ok(y)
}
