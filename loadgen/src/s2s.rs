//! The partner side of S2S streams: the library's [`stanza_router::sim::s2s_partner`] (STARTTLS,
//! SASL EXTERNAL, the shared [`Duplex`]), re-exported under the name the loadgen's modules use,
//! plus a readiness poll the library (which forbids `unsafe`) leaves to its callers.

use std::os::fd::AsRawFd;

pub use stanza_router::sim::s2s_partner::*;

/// Whether a read of `duplex` would not block (data, end of stream or an error are waiting).
pub fn has_readable(duplex: &Duplex) -> bool {
    let mut p = libc::pollfd {
        fd: duplex.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    n > 0 && p.revents != 0
}
