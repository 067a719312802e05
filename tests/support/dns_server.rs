//! A small authoritative DNS server for tests, on std threads and loopback only.
//!
//! ```ignore
//! let dns = DnsServer::start("127.0.0.1:0".parse().unwrap());
//! dns.srv("_xmpp-server._tcp.example.test", 5, 0, 5269, "xmpp.example.test")
//!     .a("xmpp.example.test", Ipv4Addr::new(127, 0, 0, 2));
//! // ... resolve against dns.addr() ...
//! assert_eq!(dns.queries("xmpp.example.test", RecordType::A), 0);
//! ```
//!
//! Serves NAPTR/SRV/A/AAAA/CNAME records from a table shared with the test (records can be added
//! while it runs), follows CNAMEs like a recursive server would, puts SRV target addresses in
//! the additional section (switchable), answers NXDOMAIN for names it has no record for,
//! and counts queries per (name, type). Answers over UDP and over TCP on the same port.
//! Knobs: `silent` (never answers), `servfail(name)`, `truncate_udp` (TC bit on every UDP
//! answer, so clients must retry over TCP). Stops and joins its threads on drop.
#![allow(dead_code)] // each test binary uses a different part of this helper

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, NAPTR, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};

/// Longest CNAME chain the server follows in one answer.
const MAX_CHAIN: usize = 8;

/// Safety net so a thread never blocks forever if a wake-up is lost.
const IO_TIMEOUT: Duration = Duration::from_millis(500);

#[derive(Default)]
struct Table {
    records: Vec<(String, RData)>,
    servfail: HashSet<String>,
    silent: bool,
    no_additional: bool,
    truncate_udp: bool,
    udp_counts: HashMap<(String, RecordType), usize>,
    tcp_counts: HashMap<(String, RecordType), usize>,
}

struct Shared {
    table: Mutex<Table>,
    stop: AtomicBool,
}

/// A running test DNS server. Dropping it stops it.
pub struct DnsServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

/// Lower-case, no trailing dot: how names are keyed here.
fn key(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

fn fqdn(name: &str) -> Name {
    if name == "." {
        return Name::root();
    }
    let mut n = Name::from_ascii(name.trim_end_matches('.')).expect("valid test name");
    n.set_fqdn(true);
    n
}

impl DnsServer {
    /// Starts serving on `bind` (UDP, and TCP on the same address and port). With port 0 an
    /// ephemeral port free for both protocols is picked. Loopback addresses only.
    pub fn start(bind: SocketAddr) -> DnsServer {
        assert!(bind.ip().is_loopback(), "test DNS server is loopback-only");
        let (udp, tcp) = bind_pair(bind);
        let addr = udp.local_addr().expect("udp local addr");
        udp.set_read_timeout(Some(IO_TIMEOUT)).expect("udp timeout");
        tcp.set_nonblocking(false).expect("tcp blocking");
        let shared = Arc::new(Shared {
            table: Mutex::new(Table::default()),
            stop: AtomicBool::new(false),
        });
        let s = Arc::clone(&shared);
        let udp_thread = std::thread::Builder::new()
            .name(format!("dns-udp-{addr}"))
            .spawn(move || serve_udp(udp, s))
            .expect("spawn udp thread");
        let s = Arc::clone(&shared);
        let tcp_thread = std::thread::Builder::new()
            .name(format!("dns-tcp-{addr}"))
            .spawn(move || serve_tcp(tcp, s))
            .expect("spawn tcp thread");
        DnsServer {
            addr,
            shared,
            threads: vec![udp_thread, tcp_thread],
        }
    }

    /// Starts on 127.0.0.1 with an ephemeral port.
    pub fn loopback() -> DnsServer {
        Self::start(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
    }

    /// Where it listens (UDP and TCP).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        self.shared.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn add(&self, name: &str, data: RData) -> &Self {
        self.table().records.push((key(name), data));
        self
    }

    /// Adds `name SRV prio weight port target` (`target` "." for "not available").
    pub fn srv(&self, name: &str, prio: u16, weight: u16, port: u16, target: &str) -> &Self {
        self.add(name, RData::SRV(SRV::new(prio, weight, port, fqdn(target))))
    }

    /// Adds `name NAPTR order pref "flags" "services" "" replacement` (RFC 3403, empty regexp,
    /// as RFC 3263 uses it).
    pub fn naptr(
        &self,
        name: &str,
        order: u16,
        pref: u16,
        flags: &str,
        services: &str,
        replacement: &str,
    ) -> &Self {
        self.add(
            name,
            RData::NAPTR(NAPTR::new(
                order,
                pref,
                flags.as_bytes().into(),
                services.as_bytes().into(),
                Box::default(),
                fqdn(replacement),
            )),
        )
    }

    /// Adds `name A ip`.
    pub fn a(&self, name: &str, ip: Ipv4Addr) -> &Self {
        self.add(name, RData::A(A(ip)))
    }

    /// Adds `name AAAA ip`.
    pub fn aaaa(&self, name: &str, ip: Ipv6Addr) -> &Self {
        self.add(name, RData::AAAA(AAAA(ip)))
    }

    /// Adds `name CNAME target`.
    pub fn cname(&self, name: &str, target: &str) -> &Self {
        self.add(name, RData::CNAME(CNAME(fqdn(target))))
    }

    /// Answers SERVFAIL for every query about `name`.
    pub fn servfail(&self, name: &str) -> &Self {
        self.table().servfail.insert(key(name));
        self
    }

    /// When on, queries are counted but never answered.
    pub fn silent(&self, on: bool) -> &Self {
        self.table().silent = on;
        self
    }

    /// Whether SRV answers carry the targets' A/AAAA records in the additional section
    /// (default on).
    pub fn additional_section(&self, on: bool) -> &Self {
        self.table().no_additional = !on;
        self
    }

    /// When on, every UDP answer is empty with the TC bit set; TCP answers are complete.
    pub fn truncate_udp(&self, on: bool) -> &Self {
        self.table().truncate_udp = on;
        self
    }

    /// Queries received for `name`/`rtype`, over UDP and TCP.
    pub fn queries(&self, name: &str, rtype: RecordType) -> usize {
        let t = self.table();
        let k = (key(name), rtype);
        t.udp_counts.get(&k).copied().unwrap_or(0) + t.tcp_counts.get(&k).copied().unwrap_or(0)
    }

    /// Queries received for `name`, any type, any transport.
    pub fn queries_for(&self, name: &str) -> usize {
        let t = self.table();
        let k = key(name);
        t.udp_counts
            .iter()
            .chain(t.tcp_counts.iter())
            .filter(|((n, _), _)| *n == k)
            .map(|(_, c)| c)
            .sum()
    }

    /// Queries received over TCP.
    pub fn tcp_queries(&self) -> usize {
        self.table().tcp_counts.values().sum()
    }

    /// All queries received.
    pub fn total_queries(&self) -> usize {
        let t = self.table();
        t.udp_counts.values().sum::<usize>() + t.tcp_counts.values().sum::<usize>()
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake both blocking calls; the read timeouts are the fallback.
        if let Ok(s) = UdpSocket::bind(SocketAddr::new(self.addr.ip(), 0)) {
            let _ = s.send_to(&[0], self.addr);
        }
        let _ = TcpStream::connect_timeout(&self.addr, IO_TIMEOUT);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Binds UDP and TCP on the same address and port, retrying ephemeral ports a few times.
fn bind_pair(bind: SocketAddr) -> (UdpSocket, TcpListener) {
    for _ in 0..20 {
        let udp = UdpSocket::bind(bind).expect("bind test DNS UDP socket");
        let addr = udp.local_addr().expect("udp local addr");
        match TcpListener::bind(addr) {
            Ok(tcp) => return (udp, tcp),
            Err(e) if bind.port() != 0 => panic!("bind test DNS TCP {addr}: {e}"),
            Err(_) => continue,
        }
    }
    panic!("no port free for both UDP and TCP on {}", bind.ip());
}

fn serve_udp(sock: UdpSocket, shared: Arc<Shared>) {
    let mut buf = [0u8; 4096];
    while !shared.stop.load(Ordering::SeqCst) {
        let Ok((n, from)) = sock.recv_from(&mut buf) else {
            continue;
        };
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        if let Some(reply) = respond(&shared, &buf[..n], false) {
            let _ = sock.send_to(&reply, from);
        }
    }
}

fn serve_tcp(listener: TcpListener, shared: Arc<Shared>) {
    for conn in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(mut conn) = conn else { continue };
        let _ = conn.set_read_timeout(Some(IO_TIMEOUT));
        // One connection at a time is plenty for tests; serve until the client closes.
        loop {
            let mut len = [0u8; 2];
            if conn.read_exact(&mut len).is_err() {
                break;
            }
            let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
            if conn.read_exact(&mut msg).is_err() {
                break;
            }
            let Some(reply) = respond(&shared, &msg, true) else {
                continue;
            };
            let Ok(rlen) = u16::try_from(reply.len()) else {
                break;
            };
            let mut framed = rlen.to_be_bytes().to_vec();
            framed.extend_from_slice(&reply);
            if conn.write_all(&framed).is_err() {
                break;
            }
        }
    }
}

/// Builds the answer to one query, or `None` to stay silent.
fn respond(shared: &Shared, bytes: &[u8], tcp: bool) -> Option<Vec<u8>> {
    let query = Message::from_vec(bytes).ok()?;
    if query.message_type() != MessageType::Query || query.queries().len() != 1 {
        return None;
    }
    let q = query.queries()[0].clone();
    let qkey = key(&q.name().to_ascii());
    let mut t = shared.table.lock().unwrap_or_else(|p| p.into_inner());
    let counts = if tcp {
        &mut t.tcp_counts
    } else {
        &mut t.udp_counts
    };
    *counts.entry((qkey.clone(), q.query_type())).or_default() += 1;
    if t.silent {
        return None;
    }
    let mut r = Message::new();
    r.set_id(query.id())
        .set_message_type(MessageType::Response)
        .set_op_code(OpCode::Query)
        .set_authoritative(true)
        .set_recursion_desired(query.recursion_desired())
        .add_query(q.clone());
    if t.servfail.contains(&qkey) {
        r.set_response_code(ResponseCode::ServFail);
        return r.to_vec().ok();
    }
    if t.truncate_udp && !tcp {
        r.set_truncated(true);
        return r.to_vec().ok();
    }
    let mut owner = q.name().clone();
    let mut okey = qkey;
    let mut exists = false;
    for _ in 0..MAX_CHAIN {
        let here: Vec<&RData> = t
            .records
            .iter()
            .filter(|(n, _)| *n == okey)
            .map(|(_, d)| d)
            .collect();
        exists |= !here.is_empty();
        let cname = here.iter().find_map(|d| match d {
            RData::CNAME(c) if q.query_type() != RecordType::CNAME => Some(c.0.clone()),
            _ => None,
        });
        if let Some(target) = cname {
            r.add_answer(Record::from_rdata(
                owner.clone(),
                60,
                RData::CNAME(CNAME(target.clone())),
            ));
            okey = key(&target.to_ascii());
            owner = target;
            continue;
        }
        for d in here {
            if d.record_type() != q.query_type() {
                continue;
            }
            r.add_answer(Record::from_rdata(owner.clone(), 60, d.clone()));
            if let (RData::SRV(s), false) = (d, t.no_additional) {
                let tkey = key(&s.target().to_ascii());
                for (n, ad) in &t.records {
                    if *n == tkey && matches!(ad, RData::A(_) | RData::AAAA(_)) {
                        r.add_additional(Record::from_rdata(s.target().clone(), 60, ad.clone()));
                    }
                }
            }
        }
        break;
    }
    if !exists {
        r.set_response_code(ResponseCode::NXDomain);
    }
    r.to_vec().ok()
}
