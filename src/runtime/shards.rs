//! Starting the router: TLS material, the queue mesh, and one pinned glommio executor per shard,
//! each binding every listener with SO_REUSEPORT.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use glommio::net::TcpListener;
use glommio::{LocalExecutorBuilder, Placement};
use tracing::{error, info, warn};

use crate::config::Config;
use crate::edge::context::{EdgeContext, SharedCounters};
use crate::edge::tls::{self, Alpn};
use crate::edge::{inbound, route};
use crate::runtime::mesh::{self, MeshPlan};
use crate::xmpp::dialback::DialbackSecret;

/// Why the router could not start.
#[derive(Debug)]
#[non_exhaustive]
pub enum StartError {
    /// Certificates, keys or roots could not be loaded.
    Tls(tls::TlsSetupError),
    /// An executor could not be created (io_uring, RLIMIT_MEMLOCK).
    Executor(String),
    /// A listener could not be bound.
    Bind(String),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Tls(e) => write!(f, "TLS setup: {e}"),
            StartError::Executor(e) => write!(f, "cannot start shard executor: {e} (check RLIMIT_MEMLOCK and io_uring support; see tuning/README.md)"),
            StartError::Bind(e) => write!(f, "cannot listen: {e}"),
        }
    }
}

impl std::error::Error for StartError {}

/// TLS material shared read-only by all shards.
struct TlsSet {
    starttls: Arc<rustls::ServerConfig>,
    direct: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
    client_direct: Arc<rustls::ClientConfig>,
    roots: Arc<rustls::RootCertStore>,
}

fn tls_set(cfg: &Config) -> Result<TlsSet, tls::TlsSetupError> {
    let id = tls::load_identity(&cfg.tls.certificate, &cfg.tls.key)?;
    let mut per_domain = Vec::new();
    for d in &cfg.tls.domains {
        per_domain.push((
            d.domain.clone(),
            tls::load_identity(&d.certificate, &d.key)?,
        ));
    }
    Ok(TlsSet {
        starttls: tls::server_config(&id, &per_domain, Alpn::None)?,
        direct: tls::server_config(&id, &per_domain, Alpn::XmppServer)?,
        client: tls::client_config(&id, Alpn::None)?,
        client_direct: tls::client_config(&id, Alpn::XmppServer)?,
        roots: tls::load_roots(&cfg.tls.trust, cfg.tls.system_roots)?,
    })
}

/// A running router.
pub struct RouterHandle {
    joins: Vec<glommio::ExecutorJoinHandle<()>>,
    /// Counters of all shards.
    pub counters: Arc<SharedCounters>,
}

impl RouterHandle {
    /// Asks every shard to close its streams and stop.
    pub fn request_shutdown(&self) {
        self.counters.shutdown.store(true, Ordering::SeqCst);
    }

    /// Waits until every shard has stopped.
    pub fn join(self) {
        for j in self.joins {
            let _ = j.join();
        }
    }

    /// Shutdown and join.
    pub fn shutdown(self) {
        self.request_shutdown();
        self.join();
    }
}

/// Turns transparent huge pages off for this process (`runtime.huge_pages = false`): the flag
/// applies to mappings the allocator already made as well, from their next page fault on.
fn disable_huge_pages() {
    if let Err(e) = nix::sys::prctl::set_thp_disable(true) {
        warn!(error = %e, "could not turn transparent huge pages off (runtime.huge_pages = false)");
    }
}

/// Starts the router described by `cfg`.
pub fn start(cfg: Arc<Config>) -> Result<RouterHandle, StartError> {
    if !cfg.runtime.huge_pages {
        disable_huge_pages();
    }
    let tls = Arc::new(tls_set(&cfg).map_err(StartError::Tls)?);
    let dialback = match &cfg.dialback.secret {
        Some(s) => DialbackSecret::new(s.as_bytes()),
        None => DialbackSecret::random(),
    };
    let dns_servers = if cfg.dns.servers.is_empty() {
        std::fs::read_to_string("/etc/resolv.conf")
            .map(|t| crate::edge::dns::servers_from_resolv_conf(&t))
            .unwrap_or_default()
    } else {
        cfg.dns.servers.clone()
    };
    let n = cfg.shard_count();
    let counters = Arc::new(SharedCounters::default());
    // The CPUs this process may run on (its affinity mask), so `CPUAffinity=2-7` puts the
    // shards on 2–7 rather than on 0–5.
    let allowed: Vec<usize> = core_affinity::get_core_ids()
        .map(|ids| ids.into_iter().map(|c| c.id).collect())
        .unwrap_or_default();
    let mut joins = Vec::with_capacity(n);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
    for (i, plan) in mesh::plan(n, cfg.runtime.queue_capacity)
        .into_iter()
        .enumerate()
    {
        let cfg = cfg.clone();
        let tls = tls.clone();
        let dialback = dialback.clone();
        let dns_servers = dns_servers.clone();
        let counters = counters.clone();
        let ready = ready_tx.clone();
        let placement = match super::placement::shard_cpu(i, &allowed) {
            Some(cpu) => Placement::Fixed(cpu),
            None => Placement::Unbound,
        };
        let mut builder = LocalExecutorBuilder::new(placement)
            .name(&format!("shard-{i}"))
            .io_memory(cfg.runtime.io_memory)
            .ring_depth(cfg.runtime.ring_depth as usize)
            .preempt_timer(cfg.runtime.preempt_timer);
        // Zero means "park at once", which is glommio's behaviour when spinning is not set.
        if !cfg.runtime.spin_before_park.is_zero() {
            builder = builder.spin_before_park(cfg.runtime.spin_before_park);
        }
        let join = builder
            .spawn(move || async move {
                shard_main(i, n, plan, cfg, tls, dialback, dns_servers, counters, ready).await;
            })
            .map_err(|e| StartError::Executor(e.to_string()))?;
        joins.push(join);
    }
    // Return only when every shard listens (or say why one cannot).
    let handle = RouterHandle { joins, counters };
    for _ in 0..n {
        let failure = match ready_rx.recv_timeout(Duration::from_secs(30)) {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(StartError::Bind(e)),
            Err(_) => Some(StartError::Executor(
                "a shard did not start within 30 s".into(),
            )),
        };
        if let Some(e) = failure {
            handle.shutdown();
            return Err(e);
        }
    }
    Ok(handle)
}

#[allow(clippy::too_many_arguments)]
async fn shard_main(
    shard: usize,
    shards: usize,
    plan: MeshPlan,
    cfg: Arc<Config>,
    tls: Arc<TlsSet>,
    dialback: DialbackSecret,
    dns_servers: Vec<SocketAddr>,
    counters: Arc<SharedCounters>,
    ready: std::sync::mpsc::Sender<Result<(), String>>,
) {
    let mesh = plan.connect().await;
    let ctx = Rc::new(EdgeContext {
        shard,
        shards,
        config: cfg.clone(),
        tls_starttls: tls.starttls.clone(),
        tls_direct: tls.direct.clone(),
        tls_client: tls.client.clone(),
        tls_client_direct: tls.client_direct.clone(),
        roots: tls.roots.clone(),
        dialback,
        dns_servers,
        counters: counters.clone(),
        outbound: Default::default(),
        mesh: mesh.senders,
        live_streams: Default::default(),
        gateway: Default::default(),
        sip_ingress: Default::default(),
        read_buf: crate::edge::pump::ShardReadBuf::new(cfg.runtime.read_buffer),
    });
    if let Some(hop) = &cfg.sip.next_hop {
        // Validated at load; a parse failure here would be our bug, so it is logged, not fatal.
        match crate::sip::next_hop::NextHop::parse(hop)
            .map_err(|e| e.to_string())
            .and_then(|h| crate::gateway::outbound_message::MessageGateway::start(&ctx, h))
        {
            Ok(gw) => {
                let _ = ctx.gateway.set(gw);
            }
            Err(e) => error!(error = %e, "SIP gateway not started"),
        }
    }
    let mut bound = Ok(());
    if !cfg.sip.listen.is_empty() || ctx.gateway.get().is_some() {
        let listener = if cfg.sip.listen.is_empty() {
            None
        } else {
            let lc = crate::sip::transport::ListenerConfig::new(cfg.sip.listen.clone());
            match crate::sip::transport::SipListener::spawn(lc) {
                Ok(l) => {
                    if shard == 0 {
                        info!(addrs = ?l.0.local_addrs(), "SIP listening");
                    }
                    Some(l)
                }
                Err(e) => {
                    error!(error = %e, "cannot bind SIP listener");
                    bound = Err(format!("sip.listen: {e}"));
                    None
                }
            }
        };
        let ingress = crate::gateway::inbound::SipIngress::start(&ctx, listener);
        if let Some(gw) = ctx.gateway.get() {
            ingress.set_next_hop(gw.sip_handle());
        }
        let _ = ctx.sip_ingress.set(ingress);
    }
    let mut tasks = Vec::new();
    for rx in mesh.receivers {
        tasks.push(glommio::spawn_local(route::serve_mesh(ctx.clone(), rx)));
    }
    let listeners = cfg
        .listen
        .s2s
        .iter()
        .map(|a| (*a, false))
        .chain(cfg.listen.s2s_tls.iter().map(|a| (*a, true)));
    for (addr, direct) in listeners {
        match TcpListener::bind(addr) {
            Ok(l) => {
                if shard == 0 {
                    info!(%addr, direct_tls = direct, "listening");
                }
                tasks.push(glommio::spawn_local(accept_loop(ctx.clone(), l, direct)));
            }
            Err(e) => {
                error!(%addr, error = %e, "cannot bind listener");
                bound = Err(format!("{addr}: {e}"));
            }
        }
    }
    let _ = ready.send(bound);
    while !counters.shutdown.load(Ordering::Relaxed) {
        glommio::timer::sleep(Duration::from_millis(100)).await;
    }
    // Stop accepting; give open streams a bounded time to send </stream:stream>.
    drop(tasks);
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while ctx.live_streams.get() > 0 && std::time::Instant::now() < deadline {
        glommio::timer::sleep(Duration::from_millis(20)).await;
    }
    if ctx.live_streams.get() > 0 {
        warn!(
            shard,
            open = ctx.live_streams.get(),
            "streams still open at shutdown"
        );
    }
}

async fn accept_loop(ctx: Rc<EdgeContext>, listener: TcpListener, direct_tls: bool) {
    loop {
        match listener.accept().await {
            Ok(tcp) => {
                let ctx = ctx.clone();
                glommio::spawn_local(async move {
                    ctx.live_streams.set(ctx.live_streams.get() + 1);
                    inbound::serve(ctx.clone(), tcp, direct_tls).await;
                    ctx.live_streams.set(ctx.live_streams.get() - 1);
                })
                .detach();
            }
            Err(e) => {
                warn!(error = %e, "accept failed");
                glommio::timer::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}
