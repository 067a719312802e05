//! Prosody 0.12 as a federation peer on 127.0.0.x.
//!
//! Name resolution is kept off the system resolver twice over: the test plugin
//! `prosody_plugins/mod_test_static_routes.lua` answers S2S service lookups from
//! [`PeerOptions::routes`] (any port, no DNS), and libunbound is configured with a private
//! hosts file, a private resolv.conf and `local-zone: ". static"`, so any other lookup is
//! answered NXDOMAIN locally without a packet being sent.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::peers::{check_plain, HarnessError, Peer, PeerOptions, START_DEADLINE};
use super::workdir::{run_helper, ServerProcess, WorkDir};

/// Log lines that mean the start failed although the process lives on.
const PROSODY_FATAL: &[&str] = &[
    "Failed to open server port",
    "Failed to activate service",
    "Error binding encrypted port",
    "Error creating TLS context",
];

/// A running Prosody; killed (whole process group) on drop.
pub struct Prosody {
    // Field order matters: the process dies before its directory is removed.
    process: ServerProcess,
    opts: PeerOptions,
    config: PathBuf,
    dir: WorkDir,
    started_in: std::time::Duration,
}

/// Lua string literal.
fn lua_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn path_str(p: &Path) -> String {
    lua_str(&p.to_string_lossy())
}

/// Directory holding the test plugins, from the crate root (tests run with any cwd).
fn plugin_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/prosody_plugins")
}

impl Prosody {
    /// Writes the config, registers the users, starts `prosody -F` and waits (at most
    /// [`START_DEADLINE`]) until its c2s and s2s listeners are up.
    pub fn start(opts: PeerOptions) -> Result<Prosody, HarnessError> {
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
        let dir = WorkDir::new(&format!("prosody-{}", opts.domain))?;
        let config = dir.write("prosody.cfg.lua", &render_config(&dir, &opts)?)?;
        let name = format!("prosody {}", opts.domain);

        // Accounts are written straight into data_path before the server runs: no race with
        // startup, and prosodyctl needs no running server for the internal storage.
        for (user, password) in &opts.users {
            run_helper(
                "prosodyctl",
                &[
                    "--config".into(),
                    config.to_string_lossy().into_owned(),
                    "register".into(),
                    user.clone(),
                    opts.domain.clone(),
                    password.clone(),
                ],
                &[],
                20,
            )?;
        }

        let log = dir.join("prosody.log");
        let mut process = ServerProcess::spawn(
            &name,
            "prosody",
            &[
                "-F".into(),
                "--config".into(),
                config.to_string_lossy().into_owned(),
            ],
            &[],
            &dir.join("stdout.log"),
            log,
        )?;
        // Prosody keeps running when a port cannot be bound; its error line ends the wait.
        let mut ready = vec![
            format!("Activated service 'c2s' on [{}]:{}", opts.ip, opts.c2s_port),
            format!("Activated service 's2s' on [{}]:{}", opts.ip, opts.s2s_port),
        ];
        if let Some(p) = opts.s2s_tls_port {
            ready.push(format!(
                "Activated service 's2s_direct_tls' on [{}]:{p}",
                opts.ip
            ));
        }
        process.wait_for_all(&ready, PROSODY_FATAL, deadline)?;
        let mut addrs = vec![opts.c2s_addr(), opts.s2s_addr()];
        if let Some(p) = opts.s2s_tls_port {
            addrs.push((opts.ip, p).into());
        }
        process.wait_for_ports(&addrs, deadline)?;
        Ok(Prosody {
            process,
            opts,
            config,
            dir,
            started_in: t0.elapsed(),
        })
    }

    /// Output of `prosodyctl shell "s2s:show()"`: one row per S2S session with its TLS,
    /// SASL (EXTERNAL) and dialback state.
    pub fn s2s_show(&self) -> Result<String, HarnessError> {
        self.shell("s2s:show()")
    }

    /// S2S sessions parsed from [`Prosody::s2s_show`].
    pub fn s2s_sessions(&self) -> Result<Vec<S2sSession>, HarnessError> {
        Ok(parse_s2s_show(&self.s2s_show()?))
    }

    /// Runs one admin shell command (`prosodyctl --config CFG shell CMD`).
    pub fn shell(&self, command: &str) -> Result<String, HarnessError> {
        run_helper(
            "prosodyctl",
            &[
                "--config".into(),
                self.config.to_string_lossy().into_owned(),
                "shell".into(),
                command.into(),
            ],
            &[],
            20,
        )
    }

    /// Config file path.
    pub fn config_path(&self) -> &Path {
        &self.config
    }

    /// Work directory (config, data, logs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// How long `start` took.
    pub fn started_in(&self) -> std::time::Duration {
        self.started_in
    }

    /// Server process (pid, log path, kill).
    pub fn process(&mut self) -> &mut ServerProcess {
        &mut self.process
    }
}

/// One row of `s2s:show()`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S2sSession {
    /// Prosody's session id (`s2sin…`, `s2sout…`).
    pub id: String,
    /// Local domain.
    pub host: String,
    /// `true` for outgoing (`-->`), `false` for incoming (`<--`).
    pub outgoing: bool,
    /// Remote domain.
    pub remote: String,
    /// TLS version (`TLSv1.3`) or what Prosody shows when unencrypted.
    pub security: String,
    /// SASL column: `Succeeded` means SASL EXTERNAL authenticated the session.
    pub sasl: String,
    /// Dialback column: `Not used`, or the dialback state.
    pub dialback: String,
}

impl S2sSession {
    /// Authenticated with SASL EXTERNAL and no dialback.
    pub fn used_sasl_external(&self) -> bool {
        self.sasl == "Succeeded" && self.dialback == "Not used"
    }

    /// Not authenticated by SASL EXTERNAL, so by dialback. (Prosody 0.12 shows `Not used` in
    /// the Dialback column of incoming sessions even when dialback authenticated them.)
    pub fn used_dialback(&self) -> bool {
        self.sasl != "Succeeded"
    }
}

/// Parses the table printed by `s2s:show()`
/// (`Session ID | Host | Dir | Remote | IPv | Security | SASL | Dialback`).
pub fn parse_s2s_show(text: &str) -> Vec<S2sSession> {
    text.lines()
        .filter_map(|line| {
            let cols: Vec<&str> = line.split('|').map(str::trim).collect();
            if cols.len() < 8 || !cols[0].starts_with("s2s") {
                return None;
            }
            Some(S2sSession {
                id: cols[0].to_string(),
                host: cols[1].to_string(),
                outgoing: cols[2].contains("-->"),
                remote: cols[3].to_string(),
                security: cols[5].to_string(),
                sasl: cols[6].to_string(),
                dialback: cols[7].to_string(),
            })
        })
        .collect()
}

impl Peer for Prosody {
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

/// The whole `prosody.cfg.lua`, plus the cert, key, CA, hosts and resolv.conf files it names.
fn render_config(dir: &WorkDir, o: &PeerOptions) -> Result<String, HarnessError> {
    let cert = dir.write("cert.pem", &o.cert.cert_pem)?;
    let key = dir.write("key.pem", &o.cert.key_pem)?;
    let data = dir.mkdir("data")?;
    // Empty on purpose: stops certmanager from scanning a default directory.
    let certs = dir.mkdir("certs")?;
    let mut hosts = String::new();
    for (domain, addr) in &o.routes {
        hosts.push_str(&format!("{} {domain}\n", addr.ip()));
    }
    let hosts = dir.write("hosts", &hosts)?;
    // Never consulted thanks to the static local zone; loopback anyway so that a mistake
    // cannot send a query off the machine.
    let resolv = dir.write("resolv.conf", "nameserver 127.0.0.1\n")?;

    let mut ssl = format!(
        "{{ certificate = {}; key = {};",
        path_str(&cert),
        path_str(&key)
    );
    if let Some(ca) = &o.trust_ca_pem {
        let ca = dir.write("ca.pem", ca)?;
        ssl.push_str(&format!(" cafile = {};", path_str(&ca)));
    }
    // Without a cafile Prosody uses the system store, which does not know the test CA: peer
    // certificates do not validate and dialback is used.
    ssl.push_str(" }");

    let mut routes = String::from("{\n");
    for (domain, addr) in &o.routes {
        routes.push_str(&format!(
            "  [{}] = {{ ip = {}; port = {} }};\n",
            lua_str(domain),
            lua_str(&addr.ip().to_string()),
            addr.port()
        ));
    }
    routes.push('}');

    let ip = lua_str(&o.ip.to_string());
    let tls_ports = o.s2s_tls_port.map(|p| p.to_string()).unwrap_or_default();
    let size_limit = o
        .stanza_size_limit
        .map(|n| format!("s2s_stanza_size_limit = {n}\n"))
        .unwrap_or_default();
    Ok(format!(
        r#"-- Generated by tests/support/prosody.rs
run_as_root = true
daemonize = false
pidfile = {pidfile}
data_path = {data}
certificates = {certs}
plugin_paths = {{ {plugins} }}
log = {{ {{ levels = {{ min = "debug" }}, to = "file", filename = {log} }} }}
admin_socket = {sock}
interfaces = {{ {ip} }}
local_interfaces = {{ {ip} }}
c2s_ports = {{ {c2s} }}
c2s_interfaces = {{ {ip} }}
c2s_direct_tls_ports = {{ }}
s2s_ports = {{ {s2s} }}
s2s_interfaces = {{ {ip} }}
s2s_direct_tls_ports = {{ {tls_ports} }}
s2s_direct_tls_interfaces = {{ {ip} }}
legacy_ssl_ports = {{ }}
http_ports = {{ }}
https_ports = {{ }}
unbound = {{ hoststxt = {hosts}; resolvconf = {resolv}; options = {{ ["local-zone:"] = ". static" }} }}
test_static_s2s_routes = {routes}
modules_enabled = {{ "tls", "dialback", "saslauth", "disco", "ping", "roster", "posix", "admin_shell", "test_static_routes" }}
authentication = "internal_plain"
storage = "internal"
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
s2s_require_encryption = {req}
s2s_secure_auth = false
{size_limit}
VirtualHost {domain}
  ssl = {ssl}
"#,
        pidfile = path_str(&dir.join("prosody.pid")),
        data = path_str(&data),
        certs = path_str(&certs),
        plugins = path_str(&plugin_dir()),
        log = path_str(&dir.join("prosody.log")),
        sock = path_str(&dir.join("prosody.sock")),
        c2s = o.c2s_port,
        s2s = o.s2s_port,
        hosts = path_str(&hosts),
        resolv = path_str(&resolv),
        req = o.require_encryption,
        domain = lua_str(&o.domain),
    ))
}
