//! `stanza-router demo`: the whole edge on one machine, no arguments needed.
//!
//! Generates a throw-away CA and certificates in a temporary directory, starts the router for
//! `corp.test` on loopback with its SIP gateway, an embedded SIP pool simulator (`crate::sim`, the
//! router's next hop) and an embedded federated partner (`partner.test`, blocking threads with
//! rustls). The partner opens a stream to the router (STARTTLS + SASL EXTERNAL), sends pings to
//! `corp.test` and messages to `userN@corp.test` (SIP MESSAGEs to the pool, which answers every
//! 50th with 486 → bounced as recipient-unavailable); the pool sends MESSAGEs to
//! `alice@partner.test` through the router's SIP listener; then a presence subscription runs each
//! way. The report prints samples, counts by outcome, throughput and latency percentiles, and the
//! command exits 0 only when every message was accounted for (delivered or bounced, both ways) and
//! both subscriptions completed.

mod partner;
mod report;

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::{Config, Profile};
use crate::pki::ThrowawayCa;
use crate::runtime::shards;
use crate::sim::{AnswerPlan, PoolConfig, SipPool};

/// Demo parameters.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Pings to `corp.test`.
    pub pings: usize,
    /// Messages partner → SIP pool (to `userN@corp.test`).
    pub messages: usize,
    /// Messages SIP pool → partner (from `carol@corp.test` to `alice@partner.test`).
    pub sip_messages: usize,
    /// Shards of the router (0 = one per CPU).
    pub shards: usize,
    /// A tuning profile overlaid on the router's configuration.
    pub profile: Option<PathBuf>,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            pings: 5_000,
            messages: 5_000,
            sip_messages: 5_000,
            shards: 0,
            profile: None,
        }
    }
}

fn free_port(ip: Ipv4Addr) -> std::io::Result<u16> {
    Ok(TcpListener::bind((ip, 0))?.local_addr()?.port())
}

/// Runs the demo and prints its report.
pub fn run(opts: DemoOptions) -> ExitCode {
    // A bad profile is a configuration error: located, exit 2, like `run` and `check`.
    let profile = match opts.profile.as_deref().map(Profile::load).transpose() {
        Ok(p) => p,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::from(2);
        }
    };
    match run_inner(opts, profile.as_ref()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("demo failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_inner(
    opts: DemoOptions,
    profile: Option<&Profile>,
) -> Result<bool, Box<dyn std::error::Error>> {
    let ip = Ipv4Addr::LOCALHOST;
    let dir = TempDir::new()?;
    let ca = ThrowawayCa::new("stanza-router demo CA")?;
    let router_cert = ca.issue(&["corp.test"])?;
    let partner_cert = ca.issue(&["partner.test"])?;
    std::fs::write(dir.0.join("corp.test.crt"), &router_cert.cert_pem)?;
    std::fs::write(dir.0.join("corp.test.key"), &router_cert.key_pem)?;
    std::fs::write(dir.0.join("ca.pem"), ca.cert_pem())?;

    // The embedded SIP pool: the router's next hop; every 50th MESSAGE is answered 486 to show
    // the bounce path.
    let mut pool_cfg = PoolConfig::new(TcpListener::bind((ip, 0))?, "corp.test");
    pool_cfg.answers = AnswerPlan {
        error_every: Some((50, 486)),
        ..AnswerPlan::default()
    };
    pool_cfg.samples = 1;
    let pool = SipPool::start(pool_cfg)?;
    let sip_listen = SocketAddr::new(ip.into(), free_port(ip)?);
    let partner_listener = TcpListener::bind((ip, 0))?;
    let partner_addr = partner_listener.local_addr()?;
    let s2s = SocketAddr::new(ip.into(), free_port(ip)?);
    let shards = if opts.shards == 0 {
        "\"auto\"".to_string()
    } else {
        opts.shards.to_string()
    };
    let text = format!(
        "[server]\ndomains = [\"corp.test\"]\n[listen]\ns2s = [\"{s2s}\"]\n\
         [tls]\ncertificate = \"corp.test.crt\"\nkey = \"corp.test.key\"\ntrust = [\"ca.pem\"]\nsystem_roots = false\n\
         [runtime]\nshards = {shards}\nio_memory = \"512KiB\"\nring_depth = 128\n[log]\nlevel = \"warn\"\n\
         [[partner]]\ndomain = \"partner.test\"\ntype = \"federated\"\ntls = \"required\"\nsasl = \"optional\"\n\
         dialback = true\nproxy_fqdn = \"{partner_addr}\"\n\
         [sip]\nnext_hop = \"sip:{};transport=tcp\"\nlisten = [\"{sip_listen}\"]\n",
        pool.local_addr()
    );
    let cfg_path = dir.0.join("demo.toml");
    std::fs::write(&cfg_path, &text)?;
    let mut cfg = Config::load(&cfg_path).map_err(|e| e.to_string())?;
    if let Some(p) = profile {
        cfg = cfg.with_profile(p).map_err(|e| e.to_string())?;
    }
    crate::ops::logging::init(&cfg.log.level);
    println!(
        "stanza-router demo: router for corp.test on {s2s} (SIP {sip_listen}), partner.test on {partner_addr}, SIP pool on {}",
        pool.local_addr()
    );
    println!("  certificates from a throw-away CA in {}", dir.0.display());
    if let Some(p) = profile {
        let r = &cfg.runtime;
        println!(
            "  tuning profile {}: {} shard(s), io_memory {} B, ring_depth {}, read_buffer {} B, write_batch {}, spin_before_park {:?}, preempt_timer {:?}, outbound_queue {}",
            p.source.display(),
            cfg.shard_count(),
            r.io_memory,
            r.ring_depth,
            r.read_buffer,
            r.write_batch,
            r.spin_before_park,
            r.preempt_timer,
            cfg.limits.outbound_queue
        );
    }
    let router = shards::start(Arc::new(cfg))?;
    let counters = router.counters.clone();

    let identity =
        crate::edge::tls::identity_from_pem(&partner_cert.cert_pem, &partner_cert.key_pem)?;
    let result = partner::run(partner::PartnerRun {
        router: s2s,
        router_sip: sip_listen,
        listener: partner_listener,
        identity,
        pings: opts.pings,
        messages: opts.messages,
        sip_messages: opts.sip_messages,
        pool: &pool,
        counters: &counters,
        deadline: Instant::now() + Duration::from_secs(60),
    });
    router.shutdown();
    let outcome = result.map_err(|e| e.to_string())?;
    let ok = report::print(&outcome, &counters, &pool.stats(), &pool.samples());
    pool.stop();
    Ok(ok)
}

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> std::io::Result<TempDir> {
        let mut raw = [0u8; 8];
        getrandom::getrandom(&mut raw).map_err(std::io::Error::other)?;
        let p = std::env::temp_dir().join(format!("stanza-router-demo-{}", hex::encode(raw)));
        std::fs::create_dir_all(&p)?;
        Ok(TempDir(p))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
