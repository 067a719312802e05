//! Why a resolution failed, and whose fault it was.

use std::fmt;
use std::net::SocketAddr;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use crate::xmpp::error::Side;

/// A DNS resolution failure. Each variant names who failed: our configuration, our host,
/// the DNS server we asked, or the name itself (the remote domain's DNS data).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResolveError {
    /// Configuration: no DNS server was given.
    NoServers,
    /// Configuration or caller: the name is not a valid ASCII DNS name.
    InvalidName {
        /// The name as given.
        name: String,
    },
    /// DNS servers: no server answered `name`/`rtype` within the timeout (each server
    /// was tried once, in order).
    Timeout {
        /// The name asked.
        name: String,
        /// The record type asked.
        rtype: RecordType,
        /// How many servers were tried.
        servers_tried: usize,
    },
    /// DNS server: answered with a failure code (SERVFAIL, REFUSED, ...); this is the
    /// last server tried.
    ServerFailure {
        /// The name asked.
        name: String,
        /// The record type asked.
        rtype: RecordType,
        /// The server that answered.
        server: SocketAddr,
        /// The response code it gave.
        rcode: ResponseCode,
    },
    /// DNS server: the answer could not be decoded or broke the protocol; this is the last
    /// server tried.
    Malformed {
        /// The name asked.
        name: String,
        /// The record type asked.
        rtype: RecordType,
        /// The server that answered (none when the fault spans several answers, such as an
        /// overlong CNAME chain).
        server: Option<SocketAddr>,
        /// What was wrong.
        reason: &'static str,
    },
    /// Remote domain: the name does not exist (NXDOMAIN).
    NxDomain {
        /// The name that does not exist.
        name: String,
    },
    /// Remote domain: the name exists but has no usable A/AAAA address (for S2S: neither
    /// the SRV targets nor the fallback had any).
    NoAddresses {
        /// The domain or host that was resolved.
        name: String,
    },
    /// Remote domain: its SRV records say the service (XMPP server, or SIP for the next hop)
    /// is decidedly not available (a single SRV record with target "."; RFC 2782, RFC 6120
    /// §3.2.1).
    ServiceUnavailable {
        /// The domain (XMPP domain, or the SIP next hop host).
        domain: String,
    },
    /// Our host: a local socket operation failed (bind, send, connect).
    Io {
        /// The server we were talking to, if any.
        server: Option<SocketAddr>,
        /// What failed.
        kind: std::io::ErrorKind,
    },
}

impl ResolveError {
    /// Which side failed: configuration, our host, or the remote side (the DNS servers and
    /// the peer domain's DNS data).
    pub fn side(&self) -> Side {
        match self {
            Self::NoServers | Self::InvalidName { .. } => Side::Config,
            Self::Io { .. } => Side::Ours,
            Self::Timeout { .. }
            | Self::ServerFailure { .. }
            | Self::Malformed { .. }
            | Self::NxDomain { .. }
            | Self::NoAddresses { .. }
            | Self::ServiceUnavailable { .. } => Side::Peer,
        }
    }

    /// True when the remote domain's DNS data definitively says there is nothing to connect
    /// to (as opposed to a transient failure that a retry later may fix).
    pub fn is_definitive(&self) -> bool {
        matches!(
            self,
            Self::NxDomain { .. } | Self::NoAddresses { .. } | Self::ServiceUnavailable { .. }
        )
    }
}

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoServers => f.write_str("no DNS server configured"),
            Self::InvalidName { name } => write!(f, "invalid DNS name {name:?}"),
            Self::Timeout {
                name,
                rtype,
                servers_tried,
            } => write!(
                f,
                "DNS query {name} {rtype} timed out on {servers_tried} server(s)"
            ),
            Self::ServerFailure {
                name,
                rtype,
                server,
                rcode,
            } => write!(f, "DNS server {server} answered {rcode} for {name} {rtype}"),
            Self::Malformed {
                name,
                rtype,
                server,
                reason,
            } => match server {
                Some(s) => write!(
                    f,
                    "DNS server {s} sent a malformed answer for {name} {rtype}: {reason}"
                ),
                None => write!(f, "malformed DNS data for {name} {rtype}: {reason}"),
            },
            Self::NxDomain { name } => write!(f, "{name} does not exist (NXDOMAIN)"),
            Self::NoAddresses { name } => write!(f, "no A/AAAA address found for {name}"),
            Self::ServiceUnavailable { domain } => write!(
                f,
                "{domain} publishes that the service is not available (SRV target \".\")"
            ),
            Self::Io { server, kind } => match server {
                Some(s) => write!(f, "local socket error talking to DNS server {s}: {kind}"),
                None => write!(f, "local socket error: {kind}"),
            },
        }
    }
}

impl std::error::Error for ResolveError {}
