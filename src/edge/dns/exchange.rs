//! Query exchanges with the configured DNS servers: IDs, per-query deadlines, failing over
//! to the next server, and the switch to TCP after a truncated UDP answer. Sans-IO.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hickory_proto::rr::{Name, RecordType};

use super::error::ResolveError;
use super::message::{build_query, digest_response, Digest, Reject};
use super::order::SplitMix64;

/// Identifies one transmission (one query to one server over one transport). The driver
/// hands it back with whatever arrives for that transmission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct QueryToken(pub u64);

/// Transport for one transmission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// One datagram out, datagrams back (from `server` only: the driver connects the socket).
    Udp,
    /// One TCP connection; the driver adds and strips the 2-byte length prefix (RFC 1035
    /// §4.2.2) and hands back the message without it.
    Tcp,
}

/// A DNS query to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Hand this back with the answer, a transport error, or nothing (timeouts are ours).
    pub token: QueryToken,
    /// Where to send it.
    pub server: SocketAddr,
    /// How.
    pub transport: Transport,
    /// The DNS message (no TCP length prefix).
    pub payload: Vec<u8>,
}

/// The end of one lookup (one name, one type, across servers and transports).
pub(crate) type LookupResult = Result<Digest, ResolveError>;

#[derive(Debug)]
struct Exchange {
    key: usize,
    name: Name,
    rtype: RecordType,
    id: u16,
    server: usize,
    transport: Transport,
    token: u64,
    deadline: Instant,
}

/// The set of in-flight exchanges of one resolution.
#[derive(Debug)]
pub(crate) struct Exchanges {
    servers: Vec<SocketAddr>,
    timeout: Duration,
    live: Vec<Exchange>,
    outbox: VecDeque<Transmit>,
    next_token: u64,
}

impl Exchanges {
    pub(crate) fn new(servers: &[SocketAddr], timeout: Duration) -> Result<Self, ResolveError> {
        if servers.is_empty() {
            return Err(ResolveError::NoServers);
        }
        Ok(Self {
            servers: servers.to_vec(),
            timeout,
            live: Vec::new(),
            outbox: VecDeque::new(),
            next_token: 0,
        })
    }

    /// Starts looking up `name`/`rtype` on the first server. `key` comes back with the result.
    pub(crate) fn start(
        &mut self,
        key: usize,
        name: Name,
        rtype: RecordType,
        rng: &mut SplitMix64,
        now: Instant,
    ) -> Result<(), ResolveError> {
        let mut ex = Exchange {
            key,
            name,
            rtype,
            id: 0,
            server: 0,
            transport: Transport::Udp,
            token: 0,
            deadline: now,
        };
        self.send(&mut ex, rng, now)?;
        self.live.push(ex);
        Ok(())
    }

    /// (Re)sends `ex` on its current server and transport with a fresh ID, token and deadline.
    fn send(
        &mut self,
        ex: &mut Exchange,
        rng: &mut SplitMix64,
        now: Instant,
    ) -> Result<(), ResolveError> {
        ex.id = rng.next_u64() as u16;
        ex.token = self.next_token;
        self.next_token += 1;
        ex.deadline = now + self.timeout;
        let payload =
            build_query(ex.id, &ex.name, ex.rtype).map_err(|_| ResolveError::InvalidName {
                name: ex.name.to_ascii(),
            })?;
        self.outbox.push_back(Transmit {
            token: QueryToken(ex.token),
            server: self.servers[ex.server],
            transport: ex.transport,
            payload,
        });
        Ok(())
    }

    pub(crate) fn poll_transmit(&mut self) -> Option<Transmit> {
        self.outbox.pop_front()
    }

    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.live.iter().map(|e| e.deadline).min()
    }

    /// Bytes arrived for `token`. Returns a finished lookup, if this finished one.
    pub(crate) fn handle_response(
        &mut self,
        token: QueryToken,
        bytes: &[u8],
        rng: &mut SplitMix64,
        now: Instant,
    ) -> Option<(usize, LookupResult)> {
        let pos = self.live.iter().position(|e| e.token == token.0)?;
        let ex = &self.live[pos];
        let server = self.servers[ex.server];
        match digest_response(bytes, ex.id, &ex.name, ex.rtype) {
            Err(Reject::Unrelated) => None,
            Err(Reject::Malformed(reason)) => {
                let err = ResolveError::Malformed {
                    name: ex.name.to_ascii(),
                    rtype: ex.rtype,
                    server: Some(server),
                    reason,
                };
                self.next_server(pos, err, rng, now)
            }
            Ok(Digest::Truncated) if ex.transport == Transport::Tcp => {
                let err = ResolveError::Malformed {
                    name: ex.name.to_ascii(),
                    rtype: ex.rtype,
                    server: Some(server),
                    reason: "truncated answer over TCP",
                };
                self.next_server(pos, err, rng, now)
            }
            Ok(Digest::Truncated) => {
                // RFC 2181 §9: discard the partial answer, ask the same server over TCP.
                let mut ex = self.live.swap_remove(pos);
                ex.transport = Transport::Tcp;
                match self.send(&mut ex, rng, now) {
                    Ok(()) => {
                        self.live.push(ex);
                        None
                    }
                    Err(e) => Some((ex.key, Err(e))),
                }
            }
            Ok(Digest::ServerFailure(rcode)) => {
                let err = ResolveError::ServerFailure {
                    name: ex.name.to_ascii(),
                    rtype: ex.rtype,
                    server,
                    rcode,
                };
                self.next_server(pos, err, rng, now)
            }
            Ok(digest) => {
                let ex = self.live.swap_remove(pos);
                Some((ex.key, Ok(digest)))
            }
        }
    }

    /// The driver could not send to, connect to, or read from the server for `token`
    /// (e.g. ICMP port unreachable on a connected UDP socket). Moves on to the next server.
    pub(crate) fn handle_transport_error(
        &mut self,
        token: QueryToken,
        kind: std::io::ErrorKind,
        rng: &mut SplitMix64,
        now: Instant,
    ) -> Option<(usize, LookupResult)> {
        let pos = self.live.iter().position(|e| e.token == token.0)?;
        let server = self.servers[self.live[pos].server];
        let err = ResolveError::Io {
            server: Some(server),
            kind,
        };
        self.next_server(pos, err, rng, now)
    }

    /// Expires exchanges whose deadline has passed; returns the lookups that ran out of
    /// servers.
    pub(crate) fn handle_timeout(
        &mut self,
        rng: &mut SplitMix64,
        now: Instant,
    ) -> Vec<(usize, LookupResult)> {
        let mut done = Vec::new();
        while let Some(pos) = self.live.iter().position(|e| e.deadline <= now) {
            let ex = &self.live[pos];
            let err = ResolveError::Timeout {
                name: ex.name.to_ascii(),
                rtype: ex.rtype,
                servers_tried: ex.server + 1,
            };
            if let Some(d) = self.next_server(pos, err, rng, now) {
                done.push(d);
            }
        }
        done
    }

    /// Gives up on the current server of exchange `pos` with `err`; tries the next server
    /// over UDP or, with none left, finishes the lookup with the error.
    fn next_server(
        &mut self,
        pos: usize,
        err: ResolveError,
        rng: &mut SplitMix64,
        now: Instant,
    ) -> Option<(usize, LookupResult)> {
        let mut ex = self.live.swap_remove(pos);
        if ex.server + 1 >= self.servers.len() {
            return Some((ex.key, Err(err)));
        }
        ex.server += 1;
        ex.transport = Transport::Udp;
        match self.send(&mut ex, rng, now) {
            Ok(()) => {
                self.live.push(ex);
                None
            }
            Err(e) => Some((ex.key, Err(e))),
        }
    }
}
