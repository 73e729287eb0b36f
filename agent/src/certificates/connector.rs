//! A connector for the API client whose connections end when the client identity is
//! replaced: each TCP stream keeps the [`Identity`] generation it was opened in and fails its
//! next read or write once that generation is over. An idle pooled connection is woken by
//! the cancellation itself (its read is pending on the token), so the pool drops it at once;
//! watches in flight end and are restarted by their watchers on new connections, which
//! present the new certificate. kubelet does the same with client-go's connrotation dialer.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use super::identity::Identity;

/// Wraps a connector (the plain TCP one under TLS) so its streams close on rotation.
#[derive(Clone)]
pub struct ClosingConnector<C> {
    inner: C,
    identity: Arc<Identity>,
}

impl<C> ClosingConnector<C> {
    pub fn new(inner: C, identity: Arc<Identity>) -> Self {
        ClosingConnector { inner, identity }
    }
}

/// A stream that fails once its generation is cancelled.
pub struct ClosingStream<T> {
    inner: T,
    token: CancellationToken,
    closed: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl<T> ClosingStream<T> {
    pub fn new(inner: T, token: CancellationToken) -> Self {
        let closed = Box::pin(token.clone().cancelled_owned());
        ClosingStream {
            inner,
            token,
            closed,
        }
    }
}

fn rotated() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "connection closed: the client certificate was rotated",
    )
}

impl<C> tower::Service<Uri> for ClosingConnector<C>
where
    C: tower::Service<Uri> + Send,
    C::Future: Send + 'static,
{
    type Response = ClosingStream<C::Response>;
    type Error = C::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, C::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), C::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        // The generation is taken before dialling: a rotation during the dial closes this one.
        let token = self.identity.generation();
        let connecting = self.inner.call(uri);
        Box::pin(async move { Ok(ClosingStream::new(connecting.await?, token)) })
    }
}

impl<T: Read + Unpin> Read for ClosingStream<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        if self.closed.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(rotated()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: Write + Unpin> Write for ClosingStream<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.token.is_cancelled() {
            return Poll::Ready(Err(rotated()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<T: Connection> Connection for ClosingStream<T> {
    fn connected(&self) -> Connected {
        self.inner.connected()
    }
}

#[cfg(test)]
mod tests {
    use hyper_util::rt::TokioIo;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn a_pending_read_fails_when_the_generation_ends() {
        let (a, mut b) = tokio::io::duplex(64);
        let token = CancellationToken::new();
        // hyper's traits over the tokio stream, then back to tokio's for the test's reads.
        let mut stream = TokioIo::new(ClosingStream::new(TokioIo::new(a), token.clone()));
        b.write_all(b"hi").await.unwrap();
        let mut buf = [0u8; 2];
        stream.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hi");
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 1];
            stream.read(&mut buf).await
        });
        tokio::task::yield_now().await;
        token.cancel();
        let e = reader.await.unwrap().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionAborted);
    }

    #[tokio::test]
    async fn writes_fail_after_the_generation_ends() {
        let (a, _b) = tokio::io::duplex(64);
        let token = CancellationToken::new();
        let mut stream = TokioIo::new(ClosingStream::new(TokioIo::new(a), token.clone()));
        stream.write_all(b"ok").await.unwrap();
        token.cancel();
        assert!(stream.write_all(b"no").await.is_err());
    }
}
