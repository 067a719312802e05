//! The configured SIP next hop (`[sip] next_hop = "sip:pool.corp.test;transport=tcp"`): where
//! the gateway's one connection per shard goes. An IP literal is used as is; a host name is
//! located per RFC 3263 §4 through the configured DNS servers ([`resolve_sip`]): an explicit
//! port means A/AAAA only, an explicit transport means SRV `_sip._tcp` / `_sips._tcp` then
//! A/AAAA, neither means NAPTR first. The result is an ordered list of [`HopTarget`]s, each
//! with its transport and the TLS name to check (the URI's host, RFC 5922 §4).
//!
//! UDP, SCTP and WebSocket are refused in the URI and ignored in NAPTR records.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use rustls_pki_types::ServerName;

use super::uri::{SipUri, UriError};
use crate::edge::dns::{resolve_sip, ResolveError, SipUriHints};

/// Default port of SIP over TCP (RFC 3261 §19.1.2).
pub const DEFAULT_TCP_PORT: u16 = 5060;
/// Default port of SIP over TLS (RFC 3261 §19.1.2).
pub const DEFAULT_TLS_PORT: u16 = 5061;

/// Stream transport towards the next hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HopTransport {
    /// Plain TCP.
    Tcp,
    /// TLS over TCP (a `sips:` URI, or `;transport=tls`).
    Tls,
}

/// Where the next hop is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HopHost {
    /// An IP literal: no resolution.
    Ip(IpAddr),
    /// A name resolved to A/AAAA at every (re)connection.
    Name(String),
}

/// A parsed next-hop URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextHop {
    /// Transport the URI implies (explicit, else TLS for `sips:`, TCP for `sip:`). For a host
    /// name, DNS (NAPTR) may pick another one per target.
    pub transport: HopTransport,
    /// Host.
    pub host: HopHost,
    /// Port (explicit, or the transport's default); for a host name, SRV may pick others.
    pub port: u16,
    /// What the URI said explicitly (scheme, transport, port): drives RFC 3263.
    pub hints: SipUriHints,
}

/// One place to connect to, in the order to try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HopTarget {
    /// Address and port.
    pub addr: SocketAddr,
    /// Transport.
    pub transport: HopTransport,
    /// TLS server name to send (SNI) and verify: the URI's host (not an SRV target).
    pub server_name: ServerName<'static>,
}

/// Why a next-hop URI was refused. The configuration is at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NextHopError {
    /// Not a SIP/SIPS URI.
    Uri(UriError),
    /// A transport this gateway does not speak (`udp`, `sctp`, `ws`, ...), or `sips:` with a
    /// transport that is not TCP/TLS.
    UnsupportedTransport(String),
    /// A user part, password or `?headers` where only a host is meaningful.
    NotAHostUri,
    /// The host is neither an IP literal nor a plausible DNS name.
    BadHost(String),
}

impl fmt::Display for NextHopError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NextHopError::Uri(e) => write!(f, "configured SIP next hop: {e}"),
            NextHopError::UnsupportedTransport(t) => {
                write!(
                    f,
                    "configured SIP next hop: transport {t:?} not supported (tcp or tls)"
                )
            }
            NextHopError::NotAHostUri => f.write_str(
                "configured SIP next hop: only scheme, host, port and transport are allowed",
            ),
            NextHopError::BadHost(h) => write!(f, "configured SIP next hop: bad host {h:?}"),
        }
    }
}

impl std::error::Error for NextHopError {}

impl NextHop {
    /// Parses `sip:host[:port][;transport=tcp|tls]` or `sips:host[:port]`.
    pub fn parse(s: &str) -> Result<NextHop, NextHopError> {
        let uri = SipUri::parse(s.trim()).map_err(NextHopError::Uri)?;
        if uri.user.is_some() || uri.password.is_some() || uri.headers.is_some() {
            return Err(NextHopError::NotAHostUri);
        }
        let explicit = uri.param("transport").is_some();
        let transport = match uri.param("transport") {
            None => {
                if uri.secure {
                    HopTransport::Tls
                } else {
                    HopTransport::Tcp
                }
            }
            Some(v) => {
                let v = v.unwrap_or("");
                if v.eq_ignore_ascii_case("tls") {
                    HopTransport::Tls
                } else if v.eq_ignore_ascii_case("tcp") {
                    // sips: over TCP means TLS on every hop (RFC 3261 §26.2.2).
                    if uri.secure {
                        HopTransport::Tls
                    } else {
                        HopTransport::Tcp
                    }
                } else {
                    return Err(NextHopError::UnsupportedTransport(v.to_string()));
                }
            }
        };
        let host = parse_host(uri.host)?;
        let port = uri.port.unwrap_or(match transport {
            HopTransport::Tcp => DEFAULT_TCP_PORT,
            HopTransport::Tls => DEFAULT_TLS_PORT,
        });
        Ok(NextHop {
            transport,
            host,
            port,
            hints: SipUriHints {
                secure: uri.secure,
                transport: explicit.then_some(transport),
                port: uri.port,
            },
        })
    }

    /// The TLS server name to send (SNI) and verify: the host name, or the IP literal.
    pub fn server_name(&self) -> Result<ServerName<'static>, NextHopError> {
        match &self.host {
            HopHost::Ip(ip) => Ok(ServerName::IpAddress((*ip).into())),
            HopHost::Name(n) => {
                ServerName::try_from(n.clone()).map_err(|_| NextHopError::BadHost(n.clone()))
            }
        }
    }

    /// The targets to try, in order: the literal, or the name located per RFC 3263 through
    /// `servers` (`timeout` per query). Must run inside a glommio executor for a name.
    pub async fn resolve(
        &self,
        servers: &[SocketAddr],
        timeout: Duration,
    ) -> Result<Vec<HopTarget>, ResolveError> {
        let server_name = self.server_name().map_err(|_| ResolveError::InvalidName {
            name: self.host.to_string(),
        })?;
        match &self.host {
            HopHost::Ip(ip) => Ok(vec![HopTarget {
                addr: SocketAddr::new(*ip, self.port),
                transport: self.transport,
                server_name,
            }]),
            HopHost::Name(n) => Ok(resolve_sip(n, self.hints, servers, timeout)
                .await?
                .into_iter()
                .map(|t| HopTarget {
                    addr: t.addr,
                    transport: t.transport,
                    server_name: server_name.clone(),
                })
                .collect()),
        }
    }
}

impl fmt::Display for HopHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HopHost::Ip(ip) => write!(f, "{ip}"),
            HopHost::Name(n) => f.write_str(n),
        }
    }
}

fn parse_host(h: &str) -> Result<HopHost, NextHopError> {
    if let Some(inner) = h.strip_prefix('[').and_then(|x| x.strip_suffix(']')) {
        return inner
            .parse::<std::net::Ipv6Addr>()
            .map(|ip| HopHost::Ip(IpAddr::V6(ip)))
            .map_err(|_| NextHopError::BadHost(h.to_string()));
    }
    if let Ok(ip) = h.parse::<IpAddr>() {
        return Ok(HopHost::Ip(ip));
    }
    let plausible = !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    // A dotted all-numeric string that is not an IPv4 literal is a typo, not a name.
    if !plausible || h.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(NextHopError::BadHost(h.to_string()));
    }
    Ok(HopHost::Name(h.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn ip_literal_with_tcp_transport() {
        let h = NextHop::parse("sip:127.0.0.1:5070;transport=tcp").unwrap();
        assert_eq!(h.transport, HopTransport::Tcp);
        assert_eq!(h.host, HopHost::Ip(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1))));
        assert_eq!(h.port, 5070);
    }

    #[test]
    fn sips_name_defaults_to_tls_on_5061() {
        let h = NextHop::parse("sips:Pool.Example.com").unwrap();
        assert_eq!(h.transport, HopTransport::Tls);
        assert_eq!(h.host, HopHost::Name("pool.example.com".into()));
        assert_eq!(h.port, DEFAULT_TLS_PORT);
        assert!(h.server_name().is_ok());
    }

    #[test]
    fn sip_without_transport_is_tcp_on_5060_and_tls_param_switches() {
        assert_eq!(
            NextHop::parse("sip:10.0.0.1").unwrap().port,
            DEFAULT_TCP_PORT
        );
        let h = NextHop::parse("sip:[::1]:5071;transport=TLS").unwrap();
        assert_eq!(h.transport, HopTransport::Tls);
        assert_eq!(h.host, HopHost::Ip("::1".parse().unwrap()));
        assert_eq!(h.port, 5071);
    }

    #[test]
    fn hints_keep_what_the_uri_said_explicitly() {
        let h = NextHop::parse("sip:pool.corp.test;transport=tcp").unwrap();
        assert_eq!(
            h.hints,
            SipUriHints {
                secure: false,
                transport: Some(HopTransport::Tcp),
                port: None
            }
        );
        let h = NextHop::parse("sips:pool.corp.test").unwrap();
        assert_eq!(
            h.hints,
            SipUriHints {
                secure: true,
                transport: None,
                port: None
            }
        );
        let h = NextHop::parse("sip:pool.corp.test:5070").unwrap();
        assert_eq!(h.hints.port, Some(5070));
        assert_eq!(h.hints.transport, None);
    }

    #[test]
    fn sips_over_tcp_param_stays_tls() {
        let h = NextHop::parse("sips:127.0.0.1;transport=tcp").unwrap();
        assert_eq!(h.transport, HopTransport::Tls);
    }

    #[test]
    fn refuses_udp_user_parts_and_bad_hosts() {
        assert_eq!(
            NextHop::parse("sip:127.0.0.1;transport=udp"),
            Err(NextHopError::UnsupportedTransport("udp".into()))
        );
        assert_eq!(
            NextHop::parse("sip:bob@127.0.0.1"),
            Err(NextHopError::NotAHostUri)
        );
        assert!(matches!(
            NextHop::parse("sip:1.2.3.4.5"),
            Err(NextHopError::BadHost(_))
        ));
        assert!(matches!(
            NextHop::parse("tel:+123"),
            Err(NextHopError::Uri(UriError::UnsupportedScheme))
        ));
    }
}
