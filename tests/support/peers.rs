//! Real XMPP servers (Prosody, ejabberd) as federation partners on 127.0.0.x.
//!
//! Shared vocabulary of the harness: what a peer is asked to be ([`PeerOptions`]), what can go
//! wrong starting it ([`HarnessError`]) and what every running peer offers ([`Peer`]).
//! Neither server may ever resolve a name through the system resolver: see README.md here.
#![allow(dead_code)]

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use stanza_router::pki::IssuedCert;

#[allow(unused_imports)] // not every test binary uses both peers
pub use super::ejabberd::Ejabberd;
#[allow(unused_imports)]
pub use super::prosody::Prosody;

/// How long a peer may take to start before [`HarnessError::Timeout`].
pub const START_DEADLINE: Duration = Duration::from_secs(30);

/// What a test asks of one peer server.
#[derive(Clone, Debug)]
pub struct PeerOptions {
    /// The XMPP domain it serves (one VirtualHost / host).
    pub domain: String,
    /// Loopback address (127.0.0.x) for all its listeners.
    pub ip: Ipv4Addr,
    /// S2S listener (STARTTLS).
    pub s2s_port: u16,
    /// Direct-TLS S2S listener (XEP-0368), if wanted.
    pub s2s_tls_port: Option<u16>,
    /// C2S listener; plain-text SASL PLAIN is allowed on it (test client has no TLS).
    pub c2s_port: u16,
    /// Certificate and key for `domain`.
    pub cert: IssuedCert,
    /// CA the peer trusts for S2S: `Some` makes SASL EXTERNAL possible, `None` leaves dialback.
    pub trust_ca_pem: Option<String>,
    /// Static S2S routes: how this peer reaches other domains. Nothing else is resolvable.
    pub routes: Vec<(String, SocketAddr)>,
    /// Require TLS on S2S (both directions).
    pub require_encryption: bool,
    /// Maximum S2S stanza size in bytes (Prosody enforces at least 10000).
    pub stanza_size_limit: Option<usize>,
    /// Accounts to create: (localpart, password).
    pub users: Vec<(String, String)>,
}

impl PeerOptions {
    /// `ip:c2s_port`.
    pub fn c2s_addr(&self) -> SocketAddr {
        SocketAddr::from((self.ip, self.c2s_port))
    }

    /// `ip:s2s_port`.
    pub fn s2s_addr(&self) -> SocketAddr {
        SocketAddr::from((self.ip, self.s2s_port))
    }
}

/// Why the harness failed; names the server or command and carries its log tail.
#[derive(Debug)]
pub enum HarnessError {
    /// A local file or process operation failed.
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The server exited or refused its configuration.
    Start {
        /// "prosody a.test", "ejabberd b.test".
        server: String,
        /// What went wrong.
        reason: String,
        /// End of the server's log.
        log_tail: String,
    },
    /// A helper command (prosodyctl, …) failed.
    Command {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// Its stdout and stderr.
        output: String,
    },
    /// A deadline passed.
    Timeout {
        /// What was awaited.
        what: String,
        /// End of the server's log.
        log_tail: String,
    },
    /// The options cannot be expressed (bad characters, …).
    Options(String),
}

impl HarnessError {
    /// Wraps an I/O error with context.
    pub fn io(context: String, source: std::io::Error) -> HarnessError {
        HarnessError::Io { context, source }
    }
}

impl fmt::Display for HarnessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HarnessError::Io { context, source } => write!(f, "{context}: {source}"),
            HarnessError::Start {
                server,
                reason,
                log_tail,
            } => write!(
                f,
                "{server} failed to start: {reason}\n--- log tail ---\n{log_tail}"
            ),
            HarnessError::Command {
                command,
                status,
                output,
            } => write!(f, "`{command}` failed ({status}):\n{output}"),
            HarnessError::Timeout { what, log_tail } => {
                write!(
                    f,
                    "timed out waiting for {what}\n--- log tail ---\n{log_tail}"
                )
            }
            HarnessError::Options(why) => write!(f, "unusable peer options: {why}"),
        }
    }
}

impl std::error::Error for HarnessError {}

/// What every running peer offers to tests.
pub trait Peer {
    /// The options it was started with.
    fn options(&self) -> &PeerOptions;
    /// Last `n` lines of its main log.
    fn log_tail(&self, n: usize) -> String;
    /// Whether its main log contains `needle`.
    fn log_contains(&self, needle: &str) -> bool;
    /// Waits for a log line containing `needle`; returns the line.
    fn wait_for_log(&mut self, needle: &str, deadline: Instant) -> Result<String, HarnessError>;

    /// Its domain.
    fn domain(&self) -> &str {
        &self.options().domain
    }
    /// Where a test client connects.
    fn c2s_addr(&self) -> SocketAddr {
        self.options().c2s_addr()
    }
    /// Where other servers connect (STARTTLS S2S).
    fn s2s_addr(&self) -> SocketAddr {
        self.options().s2s_addr()
    }
}

/// Checks that a string can go into a config file or command line unquoted-safe: domains,
/// user names and passwords of tests are plain; anything odd is refused rather than escaped.
pub(crate) fn check_plain(what: &str, s: &str) -> Result<(), HarnessError> {
    let ok = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '+' | '='));
    if ok {
        Ok(())
    } else {
        Err(HarnessError::Options(format!(
            "{what} {s:?}: only [A-Za-z0-9.-_+=] accepted"
        )))
    }
}
