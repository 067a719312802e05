//! The one I/O loop shared by inbound and outbound drivers: write what the session produced, then
//! wait for bytes, a timer or a control message — whichever comes first.

use std::time::Instant;

use futures_lite::{AsyncReadExt, AsyncWriteExt};

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

/// Waits for the first of: readable bytes into `buf`, `deadline`, a message on `ctl`.
pub async fn wait<S, C>(
    s: &mut S,
    buf: &mut [u8],
    deadline: Option<Instant>,
    ctl: Option<&glommio::channels::local_channel::LocalReceiver<C>>,
) -> Wake<C>
where
    S: futures_lite::AsyncRead + Unpin,
{
    let read = async { Wake::Read(s.read(buf).await) };
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
