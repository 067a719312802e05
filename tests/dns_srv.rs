//! The glommio DNS driver against the test DNS server on loopback.

mod support;

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::rr::RecordType;
use stanza_router::edge::dns::{resolve_host, resolve_s2s, ResolveError, S2sTarget};
use support::dns_server::DnsServer;

/// Per-query timeout: generous, since only the "silent server" tests ever wait for it.
const TIMEOUT: Duration = Duration::from_millis(400);

fn on_glommio<F, Fut, T>(f: F) -> T
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T> + 'static,
    T: Send + 'static,
{
    glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .io_memory(512 * 1024)
        .spawn(f)
        .expect("start glommio executor")
        .join()
        .expect("executor thread")
}

fn s2s(domain: &'static str, servers: Vec<SocketAddr>) -> Result<Vec<S2sTarget>, ResolveError> {
    on_glommio(move || async move { resolve_s2s(domain, &servers, TIMEOUT).await })
}

fn target(host: &str, addr: &str, direct_tls: bool) -> S2sTarget {
    S2sTarget {
        host: host.into(),
        addr: addr.parse().unwrap(),
        direct_tls,
    }
}

#[test]
fn merges_direct_tls_and_starttls_srv_in_priority_order() {
    let dns = DnsServer::loopback();
    dns.srv(
        "_xmpps-server._tcp.example.test",
        10,
        0,
        5270,
        "tls.example.test",
    )
    .srv(
        "_xmpp-server._tcp.example.test",
        5,
        0,
        5269,
        "xmpp.example.test",
    )
    .srv(
        "_xmpp-server._tcp.example.test",
        20,
        0,
        5269,
        "backup.example.test",
    )
    .a("tls.example.test", Ipv4Addr::new(127, 0, 0, 10))
    .a("xmpp.example.test", Ipv4Addr::new(127, 0, 0, 20))
    .aaaa("xmpp.example.test", Ipv6Addr::LOCALHOST)
    .a("backup.example.test", Ipv4Addr::new(127, 0, 0, 30));
    let out = s2s("example.test", vec![dns.addr()]).unwrap();
    assert_eq!(
        out,
        vec![
            target("xmpp.example.test", "[::1]:5269", false),
            target("xmpp.example.test", "127.0.0.20:5269", false),
            target("tls.example.test", "127.0.0.10:5270", true),
            target("backup.example.test", "127.0.0.30:5269", false),
        ]
    );
    assert_eq!(
        dns.queries("_xmpps-server._tcp.example.test", RecordType::SRV),
        1
    );
    assert_eq!(
        dns.queries("_xmpp-server._tcp.example.test", RecordType::SRV),
        1
    );
    // Target addresses came in the additional section: nothing else was asked.
    assert_eq!(dns.total_queries(), 2);
}

#[test]
fn resolves_srv_targets_with_separate_address_queries() {
    let dns = DnsServer::loopback();
    dns.additional_section(false)
        .srv(
            "_xmpp-server._tcp.example.test",
            0,
            0,
            15269,
            "xmpp.example.test",
        )
        .a("xmpp.example.test", Ipv4Addr::new(127, 0, 0, 21));
    let out = s2s("example.test", vec![dns.addr()]).unwrap();
    assert_eq!(
        out,
        vec![target("xmpp.example.test", "127.0.0.21:15269", false)]
    );
    assert_eq!(dns.queries("xmpp.example.test", RecordType::A), 1);
    assert_eq!(dns.queries("xmpp.example.test", RecordType::AAAA), 1);
}

#[test]
fn srv_target_behind_cname_is_followed() {
    let dns = DnsServer::loopback();
    dns.additional_section(false)
        .srv(
            "_xmpp-server._tcp.example.test",
            0,
            0,
            5269,
            "alias.example.test",
        )
        .cname("alias.example.test", "real.example.test")
        .a("real.example.test", Ipv4Addr::new(127, 0, 0, 22));
    let out = s2s("example.test", vec![dns.addr()]).unwrap();
    assert_eq!(
        out,
        vec![target("alias.example.test", "127.0.0.22:5269", false)]
    );
}

#[test]
fn without_srv_falls_back_to_domain_address_on_5269() {
    let dns = DnsServer::loopback();
    dns.a("plain.test", Ipv4Addr::new(127, 0, 0, 40));
    let out = s2s("plain.test", vec![dns.addr()]).unwrap();
    assert_eq!(out, vec![target("plain.test", "127.0.0.40:5269", false)]);
    assert_eq!(dns.queries("plain.test", RecordType::A), 1);
}

#[test]
fn dot_target_reports_service_decidedly_unavailable() {
    let dns = DnsServer::loopback();
    dns.srv("_xmpp-server._tcp.closed.test", 0, 0, 0, ".")
        .a("closed.test", Ipv4Addr::new(127, 0, 0, 41));
    let err = s2s("closed.test", vec![dns.addr()]).unwrap_err();
    assert_eq!(
        err,
        ResolveError::ServiceUnavailable {
            domain: "closed.test".into()
        }
    );
    assert_eq!(dns.queries_for("closed.test"), 0, "no A/AAAA fallback");
}

#[test]
fn unknown_domain_is_nxdomain() {
    let dns = DnsServer::loopback();
    let err = s2s("nowhere.test", vec![dns.addr()]).unwrap_err();
    assert_eq!(
        err,
        ResolveError::NxDomain {
            name: "nowhere.test".into()
        }
    );
}

#[test]
fn silent_server_times_out_then_second_server_is_used() {
    let silent = DnsServer::start("127.0.0.2:0".parse().unwrap());
    silent.silent(true);
    let good = DnsServer::start("127.0.0.3:0".parse().unwrap());
    good.srv(
        "_xmpp-server._tcp.example.test",
        0,
        0,
        5269,
        "xmpp.example.test",
    )
    .a("xmpp.example.test", Ipv4Addr::new(127, 0, 0, 20));
    let out = s2s("example.test", vec![silent.addr(), good.addr()]).unwrap();
    assert_eq!(
        out,
        vec![target("xmpp.example.test", "127.0.0.20:5269", false)]
    );
    assert_eq!(
        silent.queries("_xmpp-server._tcp.example.test", RecordType::SRV),
        1
    );
    assert_eq!(
        good.queries("_xmpp-server._tcp.example.test", RecordType::SRV),
        1
    );
}

#[test]
fn all_servers_silent_is_a_timeout() {
    let silent = DnsServer::loopback();
    silent.silent(true);
    let err = s2s("example.test", vec![silent.addr()]).unwrap_err();
    assert!(
        matches!(
            err,
            ResolveError::Timeout {
                rtype: RecordType::SRV,
                servers_tried: 1,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn servfail_is_reported_with_the_server() {
    let dns = DnsServer::loopback();
    dns.servfail("_xmpp-server._tcp.broken.test");
    let err = s2s("broken.test", vec![dns.addr()]).unwrap_err();
    assert!(
        matches!(err, ResolveError::ServerFailure { server, .. } if server == dns.addr()),
        "{err:?}"
    );
}

#[test]
fn truncated_udp_answers_are_retried_over_tcp() {
    let dns = DnsServer::loopback();
    dns.truncate_udp(true)
        .a("host.example.test", Ipv4Addr::new(127, 0, 0, 50))
        .aaaa("host.example.test", Ipv6Addr::LOCALHOST);
    let servers = vec![dns.addr()];
    let out =
        on_glommio(
            move || async move { resolve_host("host.example.test", &servers, TIMEOUT).await },
        )
        .unwrap();
    assert_eq!(
        out,
        vec![
            IpAddr::V6(Ipv6Addr::LOCALHOST),
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, 50))
        ]
    );
    assert_eq!(dns.tcp_queries(), 2);
}

#[test]
fn resolve_host_reports_nxdomain() {
    let dns = DnsServer::loopback();
    let servers = vec![dns.addr()];
    let err =
        on_glommio(move || async move { resolve_host("missing.test", &servers, TIMEOUT).await })
            .unwrap_err();
    assert_eq!(
        err,
        ResolveError::NxDomain {
            name: "missing.test".into()
        }
    );
}

#[test]
fn no_servers_is_a_configuration_error() {
    let err = s2s("example.test", Vec::new()).unwrap_err();
    assert_eq!(err, ResolveError::NoServers);
}

#[test]
fn closed_port_moves_on_to_next_server() {
    // A port nobody listens on: ICMP port-unreachable (or, failing that, the timeout) must
    // make the resolver use the next server.
    let closed = std::net::UdpSocket::bind("127.0.0.4:0").unwrap();
    let closed_addr = closed.local_addr().unwrap();
    drop(closed);
    let good = DnsServer::loopback();
    good.a("plain.test", Ipv4Addr::new(127, 0, 0, 40));
    let out = s2s("plain.test", vec![closed_addr, good.addr()]).unwrap();
    assert_eq!(out, vec![target("plain.test", "127.0.0.40:5269", false)]);
}

#[test]
fn resolve_host_passes_ip_literals_through_without_queries() {
    let dns = DnsServer::loopback();
    let servers = vec![dns.addr()];
    let out = on_glommio(move || async move {
        (
            resolve_host("127.0.0.9", &servers, TIMEOUT).await,
            resolve_host("[::1]", &servers, TIMEOUT).await,
        )
    });
    assert_eq!(
        out.0.unwrap(),
        vec![IpAddr::V4(Ipv4Addr::new(127, 0, 0, 9))]
    );
    assert_eq!(out.1.unwrap(), vec![IpAddr::V6(Ipv6Addr::LOCALHOST)]);
    assert_eq!(dns.total_queries(), 0);
}
