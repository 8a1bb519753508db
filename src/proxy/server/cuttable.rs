//! A client's socket that is reset, not closed, when its connection is cut
//! for a client that took nothing (conn.rs); and where that taking is seen:
//! each write of at least [`TOOK`] bytes that the socket accepts is a move
//! (smaller ones are the connection's own chatter, HTTP/2 pings and window
//! updates, which a client holding its window shut still takes). Closed the normal way, the
//! socket would go on sending what it still holds (up to its send buffer) to
//! a client that is not reading it, and that client would see a slow
//! download end in a clean end of stream, long after the cut, instead of a
//! reset; the kernel would keep the socket and its buffer as long.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::conn::Activity;

/// The smallest write that counts as the client taking something.
const TOOK: usize = 1024;

/// The client's TCP stream and the bookkeeping that says whether it was cut.
pub(super) struct Cuttable {
    tcp: TcpStream,
    activity: Arc<Activity>,
}

impl Cuttable {
    pub(super) fn new(tcp: TcpStream, activity: Arc<Activity>) -> Cuttable {
        Cuttable { tcp, activity }
    }
}

impl Cuttable {
    fn took(&self, written: &Poll<io::Result<usize>>) {
        if matches!(written, Poll::Ready(Ok(n)) if *n >= TOOK) {
            self.activity.client_took();
        }
    }
}

impl Drop for Cuttable {
    fn drop(&mut self) {
        if self.activity.is_cut() {
            // best effort: closed the normal way if this fails
            let _ = socket2::SockRef::from(&self.tcp).set_linger(Some(Duration::ZERO));
        }
    }
}

impl AsyncRead for Cuttable {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Cuttable {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.tcp).poll_write(cx, buf);
        self.took(&written);
        written
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs);
        self.took(&written);
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}
