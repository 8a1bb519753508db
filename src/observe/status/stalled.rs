//! A status connection's socket whose writes may not stay blocked for long:
//! past [`STATUS_WRITE_TIMEOUT`](super::STATUS_WRITE_TIMEOUT) without room to
//! write, the write fails and hyper closes the connection.
//!
//! hyper's header-read timeout covers a client that sends nothing, half a
//! request head, or nothing more after an answer. It does not cover one that
//! sends requests and never reads the answers: once the socket's buffers are
//! full hyper waits on the write, reads no further head (so no header timer
//! runs) and keeps the connection, and its slot, for good.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// `io` whose writes (and flushes) fail once they have been blocked for
/// `limit` in a row; any write that goes through starts the count again.
pub(super) struct WriteBounded<T> {
    /// the socket
    io: T,
    /// how long a write may stay blocked
    limit: Duration,
    /// running while a write is blocked, since it first was
    blocked: Option<Pin<Box<Sleep>>>,
}

impl<T> WriteBounded<T> {
    /// `io`, its writes bounded by `limit`.
    pub(super) fn new(io: T, limit: Duration) -> WriteBounded<T> {
        WriteBounded {
            io,
            limit,
            blocked: None,
        }
    }

    /// What a write that came back `polled` answers: its result when it
    /// went through, else pending until `limit` has passed blocked, then
    /// an error (the waker is the timer's as well as the socket's).
    fn bounded<R>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        if polled.is_ready() {
            self.blocked = None;
            return polled;
        }
        let limit = self.limit;
        let timer = self
            .blocked
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "the client has not read its answer for {} s",
                    limit.as_secs()
                ),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for WriteBounded<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WriteBounded<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_write(cx, buf);
        this.bounded(cx, polled)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.bounded(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_flush(cx);
        this.bounded(cx, polled)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_shutdown(cx);
        this.bounded(cx, polled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn a_write_blocked_past_the_limit_fails_and_one_that_goes_through_does_not() {
        // a pipe whose reader takes 8 bytes and then nothing
        let (near, mut far) = tokio::io::duplex(8);
        let limit = Duration::from_millis(100);
        let mut bounded = WriteBounded::new(near, limit);
        bounded.write_all(b"12345678").await.unwrap();
        let mut taken = [0u8; 8];
        tokio::io::AsyncReadExt::read_exact(&mut far, &mut taken)
            .await
            .unwrap();
        bounded.write_all(b"abcdefgh").await.unwrap();
        let started = tokio::time::Instant::now();
        let e = tokio::time::timeout(Duration::from_secs(10), bounded.write_all(b"never read"))
            .await
            .expect("a write blocked past its limit did not fail")
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= limit);
    }
}
