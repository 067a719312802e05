//! glommio driver: moves the sans-IO resolutions' queries over UDP (and TCP after a
//! truncated answer) and feeds back answers, errors and the time. No DNS logic here.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_lite::future;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::channels::local_channel::{self, LocalSender};
use glommio::net::{TcpStream, UdpSocket};

use super::error::ResolveError;
use super::exchange::{QueryToken, Transmit, Transport};
use super::plan::{AddressOrder, DnsMachine, HostResolution, S2sOptions, S2sResolution, S2sTarget};
use super::sip_plan::{SipResolution, SipTarget, SipUriHints};

/// Largest UDP answer read; we advertise 1232 bytes with EDNS(0), this leaves room for
/// servers that ignore it (a datagram cut here fails to decode and counts as malformed).
const UDP_BUFFER: usize = 4096;

/// What a transmission task reports.
type Arrival = (QueryToken, io::Result<Vec<u8>>);

/// Resolves where to open an S2S connection for XMPP `domain` (RFC 6120 §3.2 + XEP-0368):
/// the targets in the order to try. `servers` are recursive DNS servers tried in order,
/// each once per query, `timeout` per query. Must run inside a glommio executor.
///
/// For the connector: when the list came from SRV records and none of them can be
/// connected, RFC 6120 §3.2.1 step 8 says not to fall back to the domain's A/AAAA; direct-TLS
/// targets need SNI set to `domain` and ALPN `xmpp-server` (XEP-0368 §3).
pub async fn resolve_s2s(
    domain: &str,
    servers: &[SocketAddr],
    timeout: Duration,
) -> Result<Vec<S2sTarget>, ResolveError> {
    let machine = S2sResolution::new(
        domain,
        servers,
        timeout,
        S2sOptions::default(),
        seed()?,
        Instant::now(),
    )?;
    drive(machine).await
}

/// Resolves `name` to its addresses (AAAA then A), for static routes. An IP literal is
/// returned as is, without any query. Same server and timeout rules as [`resolve_s2s`].
/// Must run inside a glommio executor.
pub async fn resolve_host(
    name: &str,
    servers: &[SocketAddr],
    timeout: Duration,
) -> Result<Vec<IpAddr>, ResolveError> {
    if let Ok(ip) = name
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        return Ok(vec![ip]);
    }
    let machine = HostResolution::new(
        name,
        servers,
        timeout,
        AddressOrder::default(),
        seed()?,
        Instant::now(),
    )?;
    drive(machine).await
}

/// Locates a SIP next hop given by name per RFC 3263 §4 ([`SipResolution`]): the targets
/// in the order to try. Same server and timeout rules as [`resolve_s2s`]. Must run inside a
/// glommio executor; `host` must be a name (IP literals need no resolution).
pub async fn resolve_sip(
    host: &str,
    hints: SipUriHints,
    servers: &[SocketAddr],
    timeout: Duration,
) -> Result<Vec<SipTarget>, ResolveError> {
    let machine = SipResolution::new(host, hints, servers, timeout, seed()?, Instant::now())?;
    drive(machine).await
}

/// Fresh OS randomness for DNS IDs and SRV weights of one resolution.
fn seed() -> Result<u64, ResolveError> {
    let mut b = [0u8; 8];
    getrandom::getrandom(&mut b).map_err(|_| ResolveError::Io {
        server: None,
        kind: io::ErrorKind::Other,
    })?;
    Ok(u64::from_le_bytes(b))
}

/// Runs a resolution machine to its outcome. Each transmission is a local task; dropping
/// the task list on return cancels whatever is still waiting.
async fn drive<M: DnsMachine>(mut m: M) -> Result<M::Output, ResolveError> {
    let (tx, rx) = local_channel::new_unbounded::<Arrival>();
    let tx = Rc::new(tx);
    let mut tasks = Vec::new();
    loop {
        while let Some(t) = m.poll_transmit() {
            tasks.push(glommio::spawn_local(transmit(t, Rc::clone(&tx))));
        }
        if let Some(outcome) = m.take_outcome() {
            return outcome;
        }
        let Some(deadline) = m.poll_timeout() else {
            // Nothing outstanding and no outcome: the machine is stuck (a bug, not the
            // network's fault); fail rather than hang.
            return Err(ResolveError::Io {
                server: None,
                kind: io::ErrorKind::Other,
            });
        };
        let wait = deadline.saturating_duration_since(Instant::now());
        let arrival = future::or(async { rx.recv().await }, async {
            glommio::timer::sleep(wait).await;
            None
        })
        .await;
        let now = Instant::now();
        match arrival {
            Some((token, Ok(bytes))) => m.handle_response(token, &bytes, now),
            Some((token, Err(e))) => m.handle_transport_error(token, e.kind(), now),
            None => {}
        }
        m.handle_timeout(now);
    }
}

/// Sends one query and reports every answer that comes back for it (the machine ignores
/// stray ones) until cancelled.
async fn transmit(t: Transmit, tx: Rc<LocalSender<Arrival>>) {
    match t.transport {
        Transport::Udp => {
            if let Err(e) = udp(&t, &tx).await {
                let _ = tx.try_send((t.token, Err(e)));
            }
        }
        Transport::Tcp => {
            let res = tcp(&t).await;
            let _ = tx.try_send((t.token, res));
        }
    }
}

fn local_bind(server: SocketAddr) -> SocketAddr {
    let ip = match (server.ip().is_loopback(), server.ip()) {
        (true, IpAddr::V4(_)) => IpAddr::V4(Ipv4Addr::LOCALHOST),
        (true, IpAddr::V6(_)) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        (false, IpAddr::V4(_)) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        (false, IpAddr::V6(_)) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    SocketAddr::new(ip, 0)
}

async fn udp(t: &Transmit, tx: &LocalSender<Arrival>) -> io::Result<()> {
    // A fresh socket per query gives a fresh random source port, and connecting it makes the
    // kernel drop datagrams from anyone but the server.
    let sock = UdpSocket::bind(local_bind(t.server))?;
    sock.connect(t.server).await?;
    sock.send(&t.payload).await?;
    let mut buf = vec![0u8; UDP_BUFFER];
    loop {
        let n = sock.recv(&mut buf).await?;
        if tx.try_send((t.token, Ok(buf[..n].to_vec()))).is_err() {
            return Ok(());
        }
    }
}

async fn tcp(t: &Transmit) -> io::Result<Vec<u8>> {
    let len = u16::try_from(t.payload.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "query too long"))?;
    let mut stream = TcpStream::connect(t.server).await?;
    let mut framed = Vec::with_capacity(t.payload.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(&t.payload);
    stream.write_all(&framed).await?;
    stream.flush().await?;
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).await?;
    let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut msg).await?;
    Ok(msg)
}
