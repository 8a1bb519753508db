//! The response body handed to hyper: streams the backend's body (or a page)
//! through unchanged, counts its bytes, and when it is done — sent or dropped —
//! writes the request's access-log line and releases the connection's
//! "request in flight" mark that keeps the idle watchdog away.

use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::Request;
use http_body_util::{Either, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};

use crate::conn::ActiveGuard;
use crate::proxy::ConnInfo;

/// What the access log says about one request: the clinic's audit trail of who
/// touched patient data. Never the Authorization header or cookies.
#[derive(Debug)]
pub struct AccessRecord {
    peer: SocketAddr,
    cn: String,
    serial: String,
    method: http::Method,
    /// path and query as sent
    target: String,
    version: http::Version,
    started: Instant,
    /// set once the response head is known
    status: u16,
}

impl AccessRecord {
    /// Starts the record of a request.
    pub fn new<B>(conn: &ConnInfo, req: &Request<B>, started: Instant) -> AccessRecord {
        let (cn, serial) = match &conn.verdict {
            Ok(id) => (id.cn().to_string(), id.info.serial_hex.clone()),
            Err(r) => (
                r.info
                    .as_ref()
                    .and_then(|i| i.common_name.clone())
                    .unwrap_or_else(|| "-".into()),
                r.info
                    .as_ref()
                    .map_or_else(|| "-".into(), |i| i.serial_hex.clone()),
            ),
        };
        AccessRecord {
            peer: conn.peer,
            cn,
            serial,
            method: req.method().clone(),
            target: req
                .uri()
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_string(),
            version: req.version(),
            started,
            status: 0,
        }
    }

    /// The record with the response's status.
    pub fn with_status(mut self, status: u16) -> AccessRecord {
        self.status = status;
        self
    }
}

/// A response body that streams, counts and logs.
pub struct ProxyBody {
    inner: Either<Incoming, Full<Bytes>>,
    bytes: u64,
    record: Option<AccessRecord>,
    _guard: ActiveGuard,
}

impl ProxyBody {
    /// Wraps a response body; `record` is logged when the body is done.
    pub fn new(
        inner: Either<Incoming, Full<Bytes>>,
        record: Option<AccessRecord>,
        guard: ActiveGuard,
    ) -> ProxyBody {
        ProxyBody {
            inner,
            bytes: 0,
            record,
            _guard: guard,
        }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            self.bytes += data.len() as u64;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for ProxyBody {
    fn drop(&mut self) {
        if let Some(r) = self.record.take() {
            let ms = r.started.elapsed().as_secs_f64() * 1000.0;
            tracing::info!(
                target: "access",
                "{} cn={} serial={} \"{} {} {:?}\" {} {} {:.1}ms",
                r.peer,
                r.cn,
                r.serial,
                r.method,
                r.target,
                r.version,
                r.status,
                self.bytes,
                ms
            );
        }
    }
}
