//! The response body handed to hyper: streams the backend's body (or a page)
//! through unchanged, counts its bytes, and when it is done — sent or dropped —
//! writes the request's access-log line and releases the connection's
//! "request in flight" mark that keeps the idle watchdog away, and the
//! backend slot the response's backend connection held.
//!
//! A backend body that stops (WebORCA closed or reset the connection, or sent
//! nothing for BACKEND_TIMEOUT) ends in an error, which makes hyper cut the
//! client's connection (HTTP/1.1) or stream (HTTP/2): a truncated answer never
//! looks complete to the client.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use super::gated::{Refused, Watch};
use super::pool::Lease;
use bytes::Bytes;
use http::Request;
use http_body_util::{Either, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::time::Sleep;

use crate::conn::ActiveGuard;
use crate::conn::ConnInfo;
use crate::tls::judgement::Verdict;

pub use crate::text::log_safe;

/// `value` with control characters as `\xHH` and nothing cut: for request
/// targets, which the audit trail keeps whole.
pub fn escape_controls(value: &str) -> std::borrow::Cow<'_, str> {
    if !value.chars().any(char::is_control) {
        return value.into();
    }
    crate::text::one_line(value, usize::MAX, crate::text::Controls::Hex, "").into()
}

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
    /// the ACCESS_POLICY rule that decided (`FILE:LINE`, `-`), when one is set
    rule: Option<String>,
}

impl AccessRecord {
    /// Starts the record of a request; who made it is filled in by [`AccessRecord::who`].
    pub fn new<B>(conn: &ConnInfo, req: &Request<B>, started: Instant) -> AccessRecord {
        AccessRecord {
            peer: conn.peer,
            cn: String::new(),
            serial: String::new(),
            method: req.method().clone(),
            target: escape_controls(req.uri().path_and_query().map_or("/", |p| p.as_str()))
                .into_owned(),
            version: req.version(),
            started,
            status: 0,
            rule: None,
        }
    }

    /// The record naming the certificate the request was judged by.
    pub fn who(mut self, verdict: &Verdict) -> AccessRecord {
        let info = match verdict {
            Ok(id) => Some(&id.info),
            Err(r) => r.info.as_ref(),
        };
        self.cn = log_safe(info.and_then(|i| i.common_name.as_deref()).unwrap_or("-"));
        self.serial = log_safe(info.map_or("-", |i| i.serial_hex.as_str()));
        self
    }

    /// The record naming the ACCESS_POLICY rule that decided, if any.
    pub fn with_rule(mut self, rule: Option<&str>) -> AccessRecord {
        self.rule = rule.map(str::to_string);
        self
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
    /// the backend slot held until the backend's body is read, and the
    /// connection that goes back to the pool once it is
    lease: Option<Lease>,
    /// BACKEND_TIMEOUT: longest wait for the backend's next frame
    stall_limit: Option<Duration>,
    /// running while the backend's next frame is awaited
    stall: Option<Pin<Box<Sleep>>>,
    /// closes the connection once this body is sent (dropped): a refused
    /// connection is closed after its page, not before it is on the wire
    _close_after: Option<tokio_util::sync::DropGuard>,
    /// the connection whose certificate each frame from WebORCA is let
    /// through under (gated.rs)
    watch: Option<Watch>,
    /// handed to hyper (or a frame of it) and not asked for the next since:
    /// the body waits on the client to take it (conn.rs, `wait_on_client`)
    waiting: bool,
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
            lease: None,
            stall_limit: None,
            stall: None,
            _close_after: None,
            watch: None,
            waiting: false,
        }
    }

    /// Closes the connection (`token`) once this body has been sent.
    pub fn close_after(mut self, token: Option<tokio_util::sync::CancellationToken>) -> ProxyBody {
        self._close_after = token.map(|t| t.drop_guard());
        self
    }

    /// A body read from the backend: holds `lease` until done, fails when
    /// the backend sends nothing for `stall_limit`, and is cut once `watch`'s
    /// certificate is refused.
    pub fn from_backend(
        mut self,
        lease: Option<Lease>,
        stall_limit: Option<Duration>,
        watch: Option<Watch>,
    ) -> ProxyBody {
        self.lease = lease;
        self.stall_limit = stall_limit;
        self.watch = watch;
        // Handed to hyper, not asked for a frame yet: hyper asks once the
        // client has room (an HTTP/2 client that opens no window is never
        // asked at all).
        self.waiting = true;
        self._guard.activity().wait_on_client();
        self
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if this.waiting {
            this.waiting = false;
            this._guard.activity().client_moved();
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(_))) if this.watch.as_ref().is_some_and(Watch::refused) => {
                // not given back: the rest of WebORCA's answer is unread
                this.lease = None;
                this.stall_limit = None;
                if let Some(watch) = this.watch.take() {
                    watch.close();
                    let (cn, serial) = watch.who();
                    tracing::info!(
                        peer = %watch.peer(),
                        cn = %cn,
                        serial = %serial,
                        "response cut after {} bytes: the client certificate was refused while it was sent",
                        this.bytes
                    );
                }
                Poll::Ready(Some(Err(Box::new(Refused))))
            }
            Poll::Ready(Some(Ok(frame))) => {
                this.stall = None;
                if let Some(data) = frame.data_ref() {
                    this.bytes += data.len() as u64;
                }
                // after its last frame a body is not asked again (so an
                // answer in one frame, the common one, costs nothing here)
                if !this.inner.is_end_stream() {
                    this.waiting = true;
                    this._guard.activity().wait_on_client();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                tracing::warn!(
                    "WebORCA broke off a response after {} bytes: {e}; the client's connection is cut so the answer does not look complete",
                    this.bytes
                );
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                if let Some(lease) = &mut this.lease {
                    lease.done();
                }
                Poll::Ready(None)
            }
            Poll::Pending => {
                let Some(limit) = this.stall_limit else {
                    return Poll::Pending;
                };
                let timer = this
                    .stall
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
                if timer.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                this.stall_limit = None;
                let secs = limit.as_secs();
                tracing::warn!(
                    "WebORCA sent nothing for BACKEND_TIMEOUT ({secs} s) in the middle of a response after {} bytes; cutting it",
                    this.bytes
                );
                let e = format!("no data from WebORCA for BACKEND_TIMEOUT ({secs} s)");
                if let Some(watch) = &this.watch {
                    watch.backend_failed("timeout", &format!("{e} in the middle of a response"));
                }
                Poll::Ready(Some(Err(e.into())))
            }
        }
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
        if self.waiting {
            self._guard.activity().client_moved();
        }
        // An answer with no body to read (HEAD, 204, 304, Content-Length: 0)
        // is never polled; its connection is free all the same.
        if let Some(lease) = &mut self.lease
            && self.inner.is_end_stream()
        {
            lease.done();
        }
        if let Some(r) = self.record.take() {
            let ms = r.started.elapsed().as_secs_f64() * 1000.0;
            // The fields are the JSON line's; the text line is the message
            // (observe/log.rs). A new field is one `name = value` here and,
            // for the text line, one `name={}` in the message.
            tracing::info!(
                name: "access",
                target: "access",
                addr = %r.peer,
                cn = r.cn.as_str(),
                serial = r.serial.as_str(),
                method = r.method.as_str(),
                path = r.target.as_str(),
                version = ?r.version,
                status = u64::from(r.status),
                bytes = self.bytes,
                duration_ms = (ms * 10.0).round() / 10.0,
                rule = r.rule.as_deref(),
                "{} cn={} serial={} \"{} {} {:?}\" {} {} {:.1}ms{}{}",
                r.peer,
                crate::text::Token(&r.cn),
                crate::text::Token(&r.serial),
                r.method,
                r.target,
                r.version,
                r.status,
                self.bytes,
                ms,
                if r.rule.is_some() { " rule=" } else { "" },
                r.rule.as_deref().unwrap_or(""),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_values_cannot_break_a_line() {
        assert_eq!(log_safe("user1"), "user1");
        assert_eq!(
            log_safe("x\n2024/01/01 00:00:00 FORGED\r"),
            "x\\x0a2024/01/01 00:00:00 FORGED\\x0d"
        );
        assert_eq!(log_safe("\u{85}"), "\\xc2\\x85");
        let long = log_safe(&"C".repeat(1000));
        assert_eq!(long.chars().count(), crate::text::LOG_VALUE_CHARS + 1);
        assert!(long.ends_with('…'));
    }
}
