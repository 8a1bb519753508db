//! A request body on its way to WebORCA that stops when its connection's
//! certificate stops being accepted.
//!
//! The request was judged before it was sent, but its body may stream for a
//! long time after (a large upload, a chunked body trickling in): a CRL
//! installed meanwhile must stop the rest from reaching WebORCA. Each frame
//! is let through only while the connection's verdict holds (the stored
//! verdict, re-judged only after a reload or when its dates run out: one
//! atomic load and a clock read per frame). A refused one ends the body in
//! an error, which makes hyper abandon the request on that backend
//! connection and close it.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};

use crate::conn::ConnInfo;
use crate::status::Stats;

/// The client's request body, let through while its certificate is accepted.
pub struct Gated {
    inner: Incoming,
    conn: Arc<ConnInfo>,
    /// where a refusal found here is counted (the console's list)
    stats: Arc<Stats>,
}

impl Gated {
    pub fn new(inner: Incoming, conn: Arc<ConnInfo>, stats: Arc<Stats>) -> Gated {
        Gated { inner, conn, stats }
    }
}

/// Why a body was cut: its certificate is no longer accepted.
#[derive(Debug)]
pub struct Refused;

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the client certificate was refused while the request body was sent")
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
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let (judged, news) = self.conn.judgement.now_and_news();
                if let Err(refusal) = &judged.verdict {
                    if news {
                        super::answer::refused_on_open_connection(
                            &self.stats,
                            &self.conn,
                            &judged,
                            refusal,
                        );
                    }
                    return Poll::Ready(Some(Err(Box::new(Refused))));
                }
                Poll::Ready(Some(Ok(frame)))
            }
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
