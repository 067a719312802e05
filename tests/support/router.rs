//! Runs stanza-router in-process for integration tests, with a configuration written to a work
//! dir (certificates from a throw-away CA) and shutdown on drop.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use stanza_router::config::Config;
use stanza_router::pki::{IssuedCert, ThrowawayCa};
use stanza_router::runtime::shards::{self, RouterHandle};

use super::workdir::{free_port, WorkDir};

/// A partner entry for the generated config (TOML fields written verbatim).
pub struct PartnerEntry {
    /// Its domain.
    pub domain: String,
    /// Extra TOML lines (`tls = "required"`, `proxy_fqdn = "…"`, …).
    pub toml: String,
}

/// What to start.
pub struct RouterSetup {
    /// Loopback address to listen on.
    pub ip: Ipv4Addr,
    /// Our domain.
    pub domain: String,
    /// Our certificate.
    pub cert: IssuedCert,
    /// CA certificates (PEM) to trust for partners.
    pub trust: Vec<String>,
    /// Partners.
    pub partners: Vec<PartnerEntry>,
    /// `federation.default`.
    pub default_policy: &'static str,
    /// Extra TOML appended at the end (e.g. `[dns]`).
    pub extra: String,
    /// Number of shards.
    pub shards: usize,
}

impl RouterSetup {
    /// Defaults: corp.test on `ip`, 2 shards, deny unlisted.
    pub fn new(ip: Ipv4Addr, ca: &ThrowawayCa) -> Self {
        RouterSetup {
            ip,
            domain: "corp.test".into(),
            cert: ca
                .issue_with(&["corp.test"], false)
                .expect("issue router cert"),
            trust: vec![ca.cert_pem()],
            partners: Vec::new(),
            default_policy: "deny",
            extra: String::new(),
            shards: 2,
        }
    }
}

/// A running in-process router.
pub struct TestRouter {
    /// STARTTLS listener address.
    pub s2s: SocketAddr,
    /// Direct TLS listener address.
    pub s2s_tls: SocketAddr,
    handle: Option<RouterHandle>,
    /// Kept for the files' lifetime.
    pub dir: WorkDir,
}

impl TestRouter {
    /// Writes the config and starts the router.
    pub fn start(setup: RouterSetup) -> TestRouter {
        let dir = WorkDir::new("router").expect("work dir");
        dir.write("router.crt", &setup.cert.cert_pem).unwrap();
        dir.write("router.key", &setup.cert.key_pem).unwrap();
        let mut trust = Vec::new();
        for (i, pem) in setup.trust.iter().enumerate() {
            let name = format!("trust{i}.pem");
            dir.write(&name, pem).unwrap();
            trust.push(format!("\"{name}\""));
        }
        let s2s = SocketAddr::new(setup.ip.into(), free_port(setup.ip).unwrap());
        let s2s_tls = SocketAddr::new(setup.ip.into(), free_port(setup.ip).unwrap());
        let mut toml = format!(
            "[server]\ndomains = [\"{}\"]\n[listen]\ns2s = [\"{s2s}\"]\ns2s_tls = [\"{s2s_tls}\"]\n\
             [tls]\ncertificate = \"router.crt\"\nkey = \"router.key\"\ntrust = [{}]\nsystem_roots = false\n\
             [dialback]\nsecret = \"test-secret\"\n[federation]\ndefault = \"{}\"\n\
             [runtime]\nshards = {}\nio_memory = \"512KiB\"\nring_depth = 64\n[log]\nlevel = \"debug\"\n",
            setup.domain,
            trust.join(", "),
            setup.default_policy,
            setup.shards,
        );
        for p in &setup.partners {
            toml.push_str(&format!(
                "[[partner]]\ndomain = \"{}\"\n{}\n",
                p.domain, p.toml
            ));
        }
        toml.push_str(&setup.extra);
        let path = dir.write("router.toml", &toml).unwrap();
        let cfg =
            Config::load(&path).unwrap_or_else(|e| panic!("test config invalid:\n{e}\n{toml}"));
        stanza_router::ops::logging::init("stanza_router=debug");
        let handle = shards::start(Arc::new(cfg)).expect("router starts");
        wait_listening(s2s);
        TestRouter {
            s2s,
            s2s_tls,
            handle: Some(handle),
            dir,
        }
    }

    /// The router's counters.
    pub fn counters(&self) -> &stanza_router::edge::context::SharedCounters {
        &self.handle.as_ref().unwrap().counters
    }
}

impl Drop for TestRouter {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            h.shutdown();
        }
    }
}

/// Waits until the router's listener accepts (the shards bind asynchronously after start).
fn wait_listening(addr: SocketAddr) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(200))
        .is_err()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "router did not listen on {addr}"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}
