//! The one I/O loop shared by inbound and outbound drivers: write what the session produced, then
//! wait for bytes, a timer or a control message — whichever comes first.

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::Poll;
use std::time::{Duration, Instant};

use futures_lite::AsyncWriteExt;
use glommio::channels::local_channel::LocalReceiver;

/// How long a stream stays quiet before it gives back its buffers ([`IdleRelease`]).
pub const IDLE_RELEASE_AFTER: Duration = Duration::from_secs(2);

/// The one read buffer all streams of a shard read into.
///
/// A read hands its bytes to the session before the task awaits again, and the readiness-based
/// socket and rustls keep nothing of the caller's buffer while pending, so one buffer per shard
/// serves every stream: an idle stream holds no read buffer (it was `runtime.read_buffer` per
/// stream before).
pub struct ShardReadBuf(RefCell<Box<[u8]>>);

impl ShardReadBuf {
    /// A buffer of `size` bytes.
    pub fn new(size: usize) -> Self {
        ShardReadBuf(RefCell::new(vec![0u8; size].into_boxed_slice()))
    }

    /// Runs `f` on the first `n` bytes, as filled by the last [`wait`] that returned
    /// `Wake::Read(Ok(n))`. Call it before awaiting anything else.
    pub fn with<R>(&self, n: usize, f: impl FnOnce(&[u8]) -> R) -> R {
        let b = self.0.borrow();
        f(&b[..n.min(b.len())])
    }
}

/// When a quiet stream should give its buffers back (the framer's, the output buffer's).
#[derive(Debug, Clone, Copy)]
pub struct IdleRelease {
    last_active: Instant,
    released: bool,
}

impl IdleRelease {
    /// A stream that was just active.
    pub fn new(now: Instant) -> Self {
        IdleRelease {
            last_active: now,
            released: false,
        }
    }

    /// Bytes were read or stanzas queued for writing at `now`.
    pub fn on_activity(&mut self, now: Instant) {
        self.last_active = now;
        self.released = false;
    }

    /// The instant to wake up for the release, while one is due.
    pub fn deadline(&self) -> Option<Instant> {
        (!self.released).then(|| self.last_active + IDLE_RELEASE_AFTER)
    }

    /// True once per quiet period, when the release is due at `now`.
    pub fn due(&mut self, now: Instant) -> bool {
        if self.released || now < self.last_active + IDLE_RELEASE_AFTER {
            return false;
        }
        self.released = true;
        true
    }
}

/// What woke the loop.
pub enum Wake<C> {
    /// Bytes read (0 = the peer closed TCP).
    Read(std::io::Result<usize>),
    /// The session's deadline passed.
    Timer,
    /// A control message (None = all senders gone).
    Control(Option<C>),
}

/// Writes `out` fully and flushes.
pub async fn write_all<S: futures_lite::AsyncWrite + Unpin>(
    s: &mut S,
    out: &[u8],
) -> std::io::Result<()> {
    if !out.is_empty() {
        s.write_all(out).await?;
        s.flush().await?;
    }
    Ok(())
}

/// Waits for the first of: readable bytes into the shard's `buf`, `deadline`, a message on
/// `ctl`. The bytes are read with [`ShardReadBuf::with`].
pub async fn wait<S, C>(
    s: &mut S,
    buf: &ShardReadBuf,
    deadline: Option<Instant>,
    ctl: Option<&LocalReceiver<C>>,
) -> Wake<C>
where
    S: futures_lite::AsyncRead + Unpin,
{
    // The buffer is borrowed only inside one poll, never across a suspension.
    let read = std::future::poll_fn(|cx| match buf.0.try_borrow_mut() {
        Ok(mut b) => Pin::new(&mut *s).poll_read(cx, &mut b),
        Err(_) => Poll::Ready(Err(io::Error::other("shard read buffer in use"))),
    });
    first_of(read, deadline, ctl).await
}

/// [`wait`] reading into a buffer of the caller's own (flows that keep a larger one).
pub async fn wait_into<S, C>(
    s: &mut S,
    buf: &mut [u8],
    deadline: Option<Instant>,
    ctl: Option<&LocalReceiver<C>>,
) -> Wake<C>
where
    S: futures_lite::AsyncRead + Unpin,
{
    let read = std::future::poll_fn(|cx| Pin::new(&mut *s).poll_read(cx, buf));
    first_of(read, deadline, ctl).await
}

async fn first_of<C>(
    read: impl Future<Output = io::Result<usize>>,
    deadline: Option<Instant>,
    ctl: Option<&LocalReceiver<C>>,
) -> Wake<C> {
    let read = async { Wake::Read(read.await) };
    let timer = async {
        match deadline {
            Some(d) => {
                glommio::timer::sleep(d.saturating_duration_since(Instant::now())).await;
                Wake::Timer
            }
            None => std::future::pending().await,
        }
    };
    let control = async {
        match ctl {
            Some(rx) => Wake::Control(rx.recv().await),
            None => std::future::pending().await,
        }
    };
    futures_lite::future::or(read, futures_lite::future::or(timer, control)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_release_is_due_once_per_quiet_period() {
        let t0 = Instant::now();
        let mut idle = IdleRelease::new(t0);
        assert_eq!(idle.deadline(), Some(t0 + IDLE_RELEASE_AFTER));
        assert!(!idle.due(t0 + IDLE_RELEASE_AFTER / 2));
        assert!(idle.due(t0 + IDLE_RELEASE_AFTER));
        assert!(!idle.due(t0 + 2 * IDLE_RELEASE_AFTER), "released already");
        assert_eq!(idle.deadline(), None, "no wake-up while released");
        let t1 = t0 + 3 * IDLE_RELEASE_AFTER;
        idle.on_activity(t1);
        assert_eq!(idle.deadline(), Some(t1 + IDLE_RELEASE_AFTER));
        assert!(idle.due(t1 + IDLE_RELEASE_AFTER));
    }

    #[test]
    fn shard_read_buffer_hands_out_only_what_was_filled() {
        let buf = ShardReadBuf::new(16);
        assert_eq!(buf.with(4, <[u8]>::len), 4);
        assert_eq!(buf.with(64, <[u8]>::len), 16, "clamped to the buffer");
    }
}
