//! What the loadgen's scenario tests share: a temporary directory, free loopback ports, waiting
//! for a listener, and the in-process router a run is measured against.
#![allow(dead_code)] // each test file uses its own subset

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use loadgen::run::{self, RunPlan};
use stanza_router::runtime::shards;

/// Every test listens and connects on loopback only.
pub const IP: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// A directory removed at the end of a passing test (kept for a failing one).
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A fresh directory named after `label`, the process and the time.
    pub fn new(label: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let p =
            std::env::temp_dir().join(format!("loadgen-{label}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A loopback port free right now.
pub fn free_port() -> u16 {
    TcpListener::bind((IP, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `n` consecutive free ports (partner `i` listens on base + i).
pub fn free_port_run(n: u16) -> u16 {
    for _ in 0..100 {
        let base = free_port();
        if base.checked_add(n).is_none() {
            continue;
        }
        if (1..n).all(|i| TcpListener::bind((IP, base + i)).is_ok()) {
            return base;
        }
    }
    panic!("no run of {n} free ports");
}

/// Waits (at most 10 s) until something accepts connections on `addr`.
pub fn wait_listening(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(Instant::now() < deadline, "router did not listen on {addr}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// An in-process router and the run planned against it; the router stops when dropped.
pub struct Bench {
    pub _dir: TempDir,
    pub router: Option<shards::RouterHandle>,
    pub plan: RunPlan,
    pub tls: run::PartnerTls,
}

impl Drop for Bench {
    fn drop(&mut self) {
        if let Some(r) = self.router.take() {
            r.shutdown();
        }
    }
}
