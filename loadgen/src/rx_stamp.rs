//! Receive timestamps: when the kernel queued the bytes on a socket, not when a loadgen thread
//! got round to reading them.
//!
//! The SIP sink, the XEP-0114 component and the readers of the partner streams share one core
//! with every writer of the loadgen. A delivery read late because its thread waited for the CPU
//! was counted as the router's latency: at 150,000 msgs/s the sink's socket held 22 KB on
//! average and up to 217 KB (2.4 ms of traffic) while the router's side was drained. With
//! `SO_TIMESTAMPNS` a read also returns the time the kernel received its last segment, so a
//! delivery or an answer ends when its bytes arrived, whatever the loadgen's scheduling did
//! after.
//!
//! For TCP the kernel reports the timestamp of the last segment a read consumed. Messages
//! from earlier segments of the same read get that later instant: the error only ever adds
//! latency. On a TLS stream the instant is that of the read that completed a record.

use std::io;
use std::mem;
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// Asks the kernel to timestamp what socket `s` receives.
pub fn enable(s: &impl AsRawFd) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: a valid socket and an option value of the size given.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            (&on as *const libc::c_int).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// One read: its byte count and when its bytes arrived.
#[derive(Debug, Clone, Copy)]
pub struct Stamped {
    /// Bytes read (0 = end of stream).
    pub n: usize,
    /// When the kernel received them, or when the read returned if the kernel gave no timestamp.
    pub at: Instant,
    /// Whether `at` is the kernel's timestamp.
    pub from_kernel: bool,
}

/// Reads into `buf` like `Read::read` (same blocking mode and timeouts) and returns the
/// arrival instant with the count.
pub fn read(s: &TcpStream, buf: &mut [u8]) -> io::Result<Stamped> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // Room for one timestamp control message, aligned for `cmsghdr`.
    let mut control = [0u64; 8];
    // SAFETY: all-zero is a valid `msghdr` (null pointers, zero lengths).
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = mem::size_of_val(&control) as _;
    let n = loop {
        // SAFETY: `msg` points at `buf` and `control`, both alive and exclusively borrowed.
        let r = unsafe { libc::recvmsg(s.as_raw_fd(), &mut msg, 0) };
        if r >= 0 {
            break r as usize;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    };
    // The wall clock first, the monotonic one after: the age computed below is then at most
    // the true age, and the arrival instant at least the true one.
    let wall = now_realtime();
    let now = Instant::now();
    let stamp = timestamp_of(&msg);
    let at = stamp.and_then(|ts| arrival(ts, wall, now));
    Ok(Stamped {
        n,
        at: at.unwrap_or(now),
        from_kernel: at.is_some(),
    })
}

/// The `SCM_TIMESTAMPNS` carried by `msg`, if any.
fn timestamp_of(msg: &libc::msghdr) -> Option<libc::timespec> {
    // SAFETY: `msg` was filled by `recvmsg`; the CMSG macros walk within `msg_controllen`.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                return Some(std::ptr::read_unaligned(
                    libc::CMSG_DATA(c).cast::<libc::timespec>(),
                ));
            }
            c = libc::CMSG_NXTHDR(msg, c);
        }
    }
    None
}

fn now_realtime() -> libc::timespec {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock id and a pointer to a timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut t) };
    t
}

fn nanos(t: &libc::timespec) -> i128 {
    t.tv_sec as i128 * 1_000_000_000 + t.tv_nsec as i128
}

/// The monotonic instant of wall-clock stamp `ts`, given the wall clock `wall` read at (or just
/// before) `now`. None for a stamp from the future (a wall-clock step) or older than a minute.
fn arrival(ts: libc::timespec, wall: libc::timespec, now: Instant) -> Option<Instant> {
    let age = nanos(&wall) - nanos(&ts);
    if !(0..=60_000_000_000).contains(&age) {
        return None;
    }
    now.checked_sub(Duration::from_nanos(age as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::TcpListener;

    fn ts(sec: i64, nsec: i64) -> libc::timespec {
        libc::timespec {
            tv_sec: sec as _,
            tv_nsec: nsec as _,
        }
    }

    #[test]
    fn arrival_is_now_minus_the_age_on_the_wall_clock() {
        let now = Instant::now();
        let at = arrival(ts(100, 999_000_000), ts(101, 2_000_000), now).unwrap();
        assert_eq!(now - at, Duration::from_millis(3));
        assert_eq!(arrival(ts(5, 0), ts(5, 0), now), Some(now));
    }

    #[test]
    fn stamps_from_the_future_or_long_ago_are_not_used() {
        let now = Instant::now();
        assert_eq!(arrival(ts(10, 1), ts(10, 0), now), None);
        assert_eq!(arrival(ts(0, 0), ts(61, 0), now), None);
    }

    /// Bytes that wait in the socket keep the instant they arrived: the read that takes them
    /// later reports that instant, not its own.
    #[test]
    fn a_late_read_reports_when_the_bytes_arrived() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut tx = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (rx, _) = l.accept().unwrap();
        enable(&rx).unwrap();
        stamps_switched_on(&mut tx, &rx);
        let before_send = Instant::now();
        tx.write_all(b"hello").unwrap();
        let after_send = Instant::now();
        let hold = Duration::from_millis(30);
        std::thread::sleep(hold);
        let mut buf = [0u8; 16];
        let r = read(&rx, &mut buf).unwrap();
        let read_at = Instant::now();
        assert_eq!(&buf[..r.n], b"hello");
        assert!(r.from_kernel, "the kernel stamped the segment");
        assert!(
            read_at.duration_since(r.at) + Duration::from_millis(2) >= hold,
            "stamped on arrival, not at the read"
        );
        // The wall clock's resolution and the conversion allow a little slack either side.
        let slack = Duration::from_millis(2);
        assert!(r.at + slack >= before_send && r.at <= after_send + slack);
    }

    /// The kernel turns receive timestamps on system-wide from a work queue, a little after the
    /// first socket asks: ping until a segment comes back stamped (a bounded number of tries).
    fn stamps_switched_on(tx: &mut TcpStream, rx: &TcpStream) {
        let mut buf = [0u8; 1];
        for _ in 0..10_000 {
            tx.write_all(b".").unwrap();
            if read(rx, &mut buf).unwrap().from_kernel {
                return;
            }
            std::thread::yield_now();
        }
        panic!("no receive timestamp after 10,000 segments");
    }

    #[test]
    fn without_timestamps_the_read_time_is_used() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut tx = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (rx, _) = l.accept().unwrap();
        tx.write_all(b"x").unwrap();
        let before = Instant::now();
        let mut buf = [0u8; 4];
        let r = read(&rx, &mut buf).unwrap();
        assert_eq!(r.n, 1);
        assert!(!r.from_kernel);
        assert!(r.at >= before);
        drop(tx);
        assert_eq!(read(&rx, &mut buf).unwrap().n, 0, "end of stream reads 0");
    }
}
