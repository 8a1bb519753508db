//! Bodies that stop when their connection's certificate stops being
//! accepted, in both directions.
//!
//! A request was judged before it was sent, but its bodies may stream for a
//! long time after: a large upload or a chunked body trickling in to WebORCA,
//! a long download or a streamed answer back to the client. A CRL installed
//! meanwhile must stop the rest, both ways. Each frame is let through only
//! while the connection's verdict holds (the stored verdict, judged again
//! only after a reload or when its dates run out: an atomic load and a clock
//! read per frame). A refused one ends the body in an error:
//! - the request body (`Gated`): hyper abandons the request on that backend
//!   connection and closes it, and the client gets the refusal page;
//! - the response body (`ProxyBody`, through [`Watch`]): hyper cuts the
//!   client's HTTP/1.1 connection or resets its HTTP/2 stream, so the part
//!   already sent never looks complete, and the connection is then closed.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};

use crate::conn::ConnInfo;
use crate::status::Stats;

/// A connection whose certificate a body's frames are checked against.
pub struct Watch {
    conn: Arc<ConnInfo>,
    /// where a refusal found here is counted (the console's list)
    stats: Arc<Stats>,
}

impl Watch {
    pub fn new(conn: Arc<ConnInfo>, stats: Arc<Stats>) -> Watch {
        Watch { conn, stats }
    }

    /// Whether the connection's certificate is refused now; the refusal is
    /// logged and counted once, by whichever check found it first.
    pub fn refused(&self) -> bool {
        if self.conn.judgement.holds_accepted() {
            return false;
        }
        let (judged, news) = self.conn.judgement.now_and_news();
        let Err(refusal) = &judged.verdict else {
            return false;
        };
        if news {
            super::answer::refused_on_open_connection(&self.stats, &self.conn, &judged, refusal);
        }
        true
    }

    /// WebORCA failed in the middle of a response: counted like a failure
    /// before one (`backend_errors_total{kind}`, the console's last error).
    pub fn backend_failed(&self, kind: &str, detail: &str) {
        self.stats.backend_failed(kind, detail);
    }

    /// The client's address.
    pub fn peer(&self) -> std::net::SocketAddr {
        self.conn.peer
    }

    /// The certificate's CN and serial, for logs.
    pub fn who(&self) -> (String, String) {
        crate::tls::judgement::Judgement::who(&self.conn.judgement.now())
    }

    /// Closes the connection once what is in flight on it is done (GOAWAY
    /// on HTTP/2).
    pub fn close(&self) {
        self.conn.close.cancel();
    }
}

/// When a request body last brought a frame, for the wait for WebORCA's
/// answer: BACKEND_TIMEOUT counts from there, not from the request's start,
/// since a long upload is the client's time, not WebORCA being slow. Put in
/// the outbound request's extensions (never sent) for `Proxy::forward`.
#[derive(Debug, Clone)]
pub struct Upload(Arc<UploadClock>);

#[derive(Debug)]
struct UploadClock {
    start: std::time::Instant,
    /// milliseconds after `start` of the last frame
    last_ms: std::sync::atomic::AtomicU64,
}

impl Upload {
    fn new() -> Upload {
        Upload(Arc::new(UploadClock {
            start: std::time::Instant::now(),
            last_ms: std::sync::atomic::AtomicU64::new(0),
        }))
    }

    fn frame(&self) {
        let ms = self.0.start.elapsed().as_millis() as u64;
        self.0
            .last_ms
            .store(ms, std::sync::atomic::Ordering::Relaxed);
    }

    /// When the body last brought a frame (its start before the first).
    pub fn last_frame(&self) -> std::time::Instant {
        let ms = self.0.last_ms.load(std::sync::atomic::Ordering::Relaxed);
        self.0.start + std::time::Duration::from_millis(ms)
    }
}

/// The client's request body, let through while its certificate is accepted.
pub struct Gated {
    inner: Incoming,
    watch: Watch,
    /// when it last brought a frame
    upload: Upload,
    /// asked for a frame the client has not sent yet: the upload waits on
    /// the client, and one that sends nothing more for IDLE_TIMEOUT is cut
    /// (conn.rs), not left to hold WebORCA's connection until BACKEND_TIMEOUT
    /// and then blamed on WebORCA
    waiting: bool,
    /// whether such a wait counts (not on HTTP/2: outbound.rs says why)
    stall_cut: bool,
}

impl Gated {
    pub fn new(inner: Incoming, watch: Watch, stall_cut: bool) -> Gated {
        Gated {
            inner,
            watch,
            upload: Upload::new(),
            waiting: false,
            stall_cut,
        }
    }

    /// The clock of its frames, for the wait for WebORCA's answer.
    pub fn upload(&self) -> Upload {
        self.upload.clone()
    }

    /// Marks (or clears) the wait for the client's next frame.
    fn waits(&mut self, waiting: bool) {
        if self.stall_cut && self.waiting != waiting {
            self.waiting = waiting;
            let activity = &self.watch.conn.activity;
            if waiting {
                activity.wait_on_client();
            } else {
                activity.client_moved();
            }
        }
    }
}

impl Drop for Gated {
    fn drop(&mut self) {
        self.waits(false);
    }
}

/// Why a body was cut: its certificate is no longer accepted.
#[derive(Debug)]
pub struct Refused;

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the client certificate was refused while the body was sent")
    }
}

impl std::error::Error for Refused {}

impl Body for Gated {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        self.waits(polled.is_pending());
        if polled.is_ready() {
            self.upload.frame();
        }
        match polled {
            Poll::Ready(Some(Ok(_))) if self.watch.refused() => {
                Poll::Ready(Some(Err(Box::new(Refused))))
            }
            Poll::Ready(Some(Ok(frame))) => Poll::Ready(Some(Ok(frame))),
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Box::new(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
