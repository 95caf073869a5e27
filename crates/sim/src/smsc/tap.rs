//! A stream wrapper that can slip raw octets in front of the next write:
//! how the simulator sends garbage, since the session engine only writes
//! whole PDUs.
//!
//! [`Tap`] sits between the socket and the engine. Armed with junk, its next
//! `poll_write` writes the junk first (in as many calls as the socket
//! needs) and only then the engine's octets, so PDUs are never torn, only
//! preceded by junk. The simulator arms it and then sends an enquire_link
//! to make the engine write.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Junk waiting to be written, shared by the [`Tap`] and whoever arms it.
#[derive(Debug, Default)]
pub(crate) struct Junk {
    /// Fast path: false when nothing is pending, so an idle tap costs one
    /// atomic load per write.
    armed: AtomicBool,
    pending: Mutex<BytesMut>,
}

impl Junk {
    /// Queues `octets` before the next write.
    pub(crate) fn arm(&self, octets: &[u8]) {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(octets);
        self.armed.store(true, Ordering::Release);
    }
}

/// The wrapped stream.
#[derive(Debug)]
pub(crate) struct Tap<S> {
    inner: S,
    junk: Arc<Junk>,
}

impl<S> Tap<S> {
    pub(crate) fn new(inner: S, junk: Arc<Junk>) -> Self {
        Self { inner, junk }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Tap<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tap<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.junk.armed.load(Ordering::Acquire) {
            let junk = self.junk.clone();
            let mut pending = junk.pending.lock().unwrap_or_else(|p| p.into_inner());
            while !pending.is_empty() {
                match Pin::new(&mut self.inner).poll_write(cx, &pending) {
                    Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                    Poll::Ready(Ok(n)) => pending.advance(n),
                    other => return other,
                }
            }
            junk.armed.store(false, Ordering::Release);
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn junk_goes_before_the_next_write_and_only_once() {
        let (a, mut b) = tokio::io::duplex(4);
        let junk = Arc::new(Junk::default());
        let mut tap = Tap::new(a, junk.clone());
        junk.arm(b"JUNK!");
        let writer = tokio::spawn(async move {
            tap.write_all(b"pdu").await.expect("write");
            tap.write_all(b"pdu").await.expect("write");
            tap.shutdown().await.expect("shutdown");
        });
        let mut got = Vec::new();
        b.read_to_end(&mut got).await.expect("read");
        writer.await.expect("writer");
        assert_eq!(got, b"JUNK!pdupdu");
    }
}
