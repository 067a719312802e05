//! The partner side of S2S streams: the library's [`stanza_router::sim::s2s_partner`] (STARTTLS,
//! SASL EXTERNAL, the shared [`Duplex`]), re-exported under the name the loadgen's modules use,
//! plus a readiness poll the library (which forbids `unsafe`) leaves to its callers.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

pub use stanza_router::sim::s2s_partner::*;

/// Whether a read of `duplex` would not block (data, end of stream or an error are waiting).
pub fn has_readable(duplex: &Duplex) -> bool {
    readable_within(duplex.as_raw_fd(), Duration::ZERO).unwrap_or(false)
}

/// Waits up to `within` (rounded up to whole milliseconds) for `fd` to poll readable: data,
/// end of stream or an error on a socket, a waiting connection on a listener.
pub fn readable_within(fd: RawFd, within: Duration) -> io::Result<bool> {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = within
        .as_nanos()
        .div_ceil(1_000_000)
        .min(libc::c_int::MAX as u128) as libc::c_int;
    // SAFETY: one valid pollfd.
    let n = unsafe { libc::poll(&mut p, 1, ms) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n > 0 && p.revents != 0)
}
