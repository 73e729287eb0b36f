//! Byte-for-byte splicing of an upgraded exec/attach/port-forward connection to the runtime's
//! streaming server, closed once no byte has moved in either direction for the idle timeout
//! (kubelet's --streaming-connection-idle-timeout). Time is tokio's, so tests can pause it.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// Why a splice ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Both sides finished.
    Closed,
    /// Nothing moved for the idle timeout.
    Idle,
}

/// Copies between `a` and `b` in both directions until both are done or until nothing has
/// moved for `idle`; dropping the two ends then closes them.
pub async fn splice<A, B>(a: A, b: B, idle: Duration) -> io::Result<Ended>
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let activity = Activity::new();
    let mut a = Tracked {
        inner: a,
        activity: &activity,
    };
    let mut b = Tracked {
        inner: b,
        activity: &activity,
    };
    tokio::select! {
        r = tokio::io::copy_bidirectional(&mut a, &mut b) => r.map(|_| Ended::Closed),
        () = activity.idle_for(idle) => Ok(Ended::Idle),
    }
}

/// When a byte last moved, as nanoseconds since the splice began (an atomic, so that both
/// directions can touch it through shared references).
struct Activity {
    start: Instant,
    last: AtomicU64,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            start: Instant::now(),
            last: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let nanos = u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.last.store(nanos, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.start + Duration::from_nanos(self.last.load(Ordering::Relaxed))
    }

    /// Resolves once nothing has moved for `idle`; a timer per idle period, not per byte.
    async fn idle_for(&self, idle: Duration) {
        loop {
            let deadline = self.last() + idle;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// An end of the splice that records activity on every byte read or written.
struct Tracked<'a, T> {
    inner: T,
    activity: &'a Activity,
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<'_, T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<'_, T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, duplex};

    const IDLE: Duration = Duration::from_secs(10);

    /// (client's end, backend's end, the splice between them).
    fn spliced() -> (
        DuplexStream,
        DuplexStream,
        tokio::task::JoinHandle<io::Result<Ended>>,
    ) {
        let (client, a) = duplex(1024);
        let (b, backend) = duplex(1024);
        (client, backend, tokio::spawn(splice(a, b, IDLE)))
    }

    async fn pass(from: &mut DuplexStream, to: &mut DuplexStream) {
        from.write_all(b"x").await.unwrap();
        let mut one = [0u8; 1];
        to.read_exact(&mut one).await.unwrap();
    }

    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_stream_is_closed_after_the_timeout_and_not_before() {
        let (mut client, mut backend, task) = spliced();
        tokio::time::sleep(IDLE.saturating_sub(Duration::from_secs(1))).await;
        settle().await;
        assert!(!task.is_finished());
        tokio::time::sleep(Duration::from_secs(2)).await;
        settle().await;
        assert!(task.is_finished());
        assert_eq!(task.await.unwrap().unwrap(), Ended::Idle);
        // Both ends see the close.
        let mut buf = [0u8; 8];
        assert_eq!(client.read(&mut buf).await.unwrap(), 0);
        assert_eq!(backend.read(&mut buf).await.unwrap(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn traffic_in_either_direction_keeps_the_stream_open() {
        let (mut client, mut backend, task) = spliced();
        for i in 0..6 {
            tokio::time::sleep(IDLE.saturating_sub(Duration::from_secs(2))).await;
            if i % 2 == 0 {
                pass(&mut client, &mut backend).await;
            } else {
                pass(&mut backend, &mut client).await;
            }
        }
        settle().await;
        assert!(!task.is_finished(), "closed while bytes were moving");
        // Idle from the last byte on.
        tokio::time::sleep(IDLE.saturating_sub(Duration::from_secs(1))).await;
        settle().await;
        assert!(!task.is_finished());
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(task.await.unwrap().unwrap(), Ended::Idle);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_whose_ends_close_ends_without_waiting() {
        let (client, backend, task) = spliced();
        drop(client);
        drop(backend);
        assert_eq!(task.await.unwrap().unwrap(), Ended::Closed);
    }
}
