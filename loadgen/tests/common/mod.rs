//! What the loadgen's scenario tests share: a temporary directory, free loopback ports, waiting
//! for a listener, and the in-process router a run is measured against.
#![allow(dead_code)] // each test file uses its own subset

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU16, Ordering};
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

/// Ports handed out for listeners come from below the kernel's ephemeral range (32768–60999
/// by default): a port taken with `bind(0)` could be taken again, between the check and the
/// run's bind, by an outgoing connection of a test running alongside (seen in CI as
/// `AddrInUse`). A counter keeps the tests of one binary on distinct ports; the start depends on
/// the process, so consecutive binaries do not reuse each other's ports in TIME_WAIT.
const LOW: u16 = 20_000;
const SPAN: u16 = 12_000;
static NEXT: AtomicU16 = AtomicU16::new(0);

/// `n` consecutive port numbers, not yet handed out by this process.
fn next_ports(n: u16) -> u16 {
    let offset = (std::process::id() % 60) as u16 * 200;
    loop {
        let k = NEXT.fetch_add(n, Ordering::Relaxed);
        let p = (offset + k) % SPAN;
        // A run must not wrap past the top of the range.
        if p + n <= SPAN {
            return LOW + p;
        }
    }
}

/// A loopback port free right now, below the ephemeral range.
pub fn free_port() -> u16 {
    free_port_run(1)
}

/// `n` consecutive free ports (partner `i` listens on base + i), below the ephemeral range.
pub fn free_port_run(n: u16) -> u16 {
    for _ in 0..1000 {
        let base = next_ports(n);
        if (0..n).all(|i| TcpListener::bind((IP, base + i)).is_ok()) {
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
