//! Moving HTTP: one request from a judged connection to WebORCA and back.
//!
//! A refused client gets its 403 page here and the backend is never touched.
//! A verified one is forwarded over pooled keep-alive HTTP/1.1: hop-by-hop and
//! client-sent identity headers removed, `X-Forwarded-*` and the identity
//! headers set, bodies streamed both ways, WebSocket upgrades tunnelled.
//!
//! Requests WebORCA could read differently from the proxy are answered here
//! and never forwarded ([`check_request`]): CONNECT, a Host that disagrees
//! with the request target, ambiguous body framing (Content-Length with
//! Transfer-Encoding, several Content-Lengths, codings other than chunked) and
//! WebSocket handshakes missing their key or version.
//!
//! Backend requests in flight are capped at MAX_CONNECTIONS, so a flood of
//! HTTP/2 streams cannot open unbounded backend sockets. A failed backend
//! request is sent again once only when replaying it cannot do harm: a GET,
//! HEAD or OPTIONS without a body; a POST that may have reached WebORCA is
//! never replayed (hyper's pool also resends a request it never wrote).
//!
//! This file holds the [`Proxy`] and the forwarding itself; the request
//! WebORCA sees is built in `outbound.rs`, the pages the proxy answers with
//! (refusals, WebORCA down or slow) are in `answer.rs`, WebSocket tunnels
//! after a 101 in `tunnel.rs`, the header rules in `headers.rs` and the
//! requests refused before forwarding in `request.rs`.

pub mod body;
pub mod conn;
pub mod plain;
pub mod server;
pub mod ws;

mod access;
mod admin;
mod answer;
mod gated;
mod headers;
mod outbound;
pub mod pool;
mod request;
#[cfg(test)]
mod tests;
mod tunnel;

use access::*;
use answer::*;
pub use answer::{not_permitted, page};
use headers::*;
pub use outbound::default_host;
use request::*;
pub use request::{Checked, HostSeen, Malformed, check_request};

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::{Either, Empty, Full};
use hyper::body::{Body as _, Incoming};
use hyper_util::rt::TokioIo;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant as Deadline;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::body::{AccessRecord, ProxyBody, log_safe};
use crate::config::parts::{Backend, Limits, Logging};
use crate::metrics::Metrics;
use crate::pages::{self, CertRefusal, Page};
use crate::status::Stats;
use crate::tls::judgement::{Judged, Judgement};
use crate::tls::verify::CertErrorKind;
use crate::tls::{IDENTITY_HEADERS, Identity, Refusal};

pub use conn::ConnInfo;

/// The body of a request to WebORCA: the client's, streamed, or none at all
/// for a bodiless request (which can then be sent twice).
type OutBody = Either<gated::Gated, Empty<Bytes>>;

/// A response and, while it streams, the backend slot and connection it holds.
type Forwarded = (Response<Either<Incoming, Full<Bytes>>>, Option<pool::Lease>);

/// Forwards requests to WebORCA.
#[derive(Clone)]
pub struct Proxy {
    /// pooled HTTP/1.1 connections to the backend
    pool: Arc<pool::Pool>,
    /// BACKEND_CONNECT_TIMEOUT
    connect_timeout: Duration,
    /// worker threads, each with a pool of its own
    workers: usize,
    /// backend requests (and tunnels) in flight, at most MAX_CONNECTIONS:
    /// bounds the sockets the proxy opens to WebORCA
    backend_slots: Arc<Semaphore>,
    /// `http://host:port` of the backend, for the error pages
    backend_url: Arc<str>,
    /// `host:port` every request is sent to (checked at start)
    backend_authority: http::uri::Authority,
    /// how long to wait for the backend's response headers
    backend_timeout: Duration,
    /// FORWARD_CLIENT_CERT
    forward_identity: bool,
    /// ACCESS_LOG
    access_log: bool,
    /// WebSocket tunnels, so shutdown can wait for and close them
    tunnels: TaskTracker,
    /// cancelled when the proxy shuts down
    shutdown: CancellationToken,
    /// metrics, backend state
    stats: Arc<Stats>,
}

impl Proxy {
    /// A proxy to BACKEND_URL with the config's timeouts; it sees only its
    /// parts of the config.
    pub fn new(
        backend: &Backend,
        limits: Limits,
        logging: &Logging,
        tunnels: TaskTracker,
        shutdown: CancellationToken,
        stats: Arc<Stats>,
    ) -> Result<Proxy, String> {
        let backend_authority = backend.url.authority.parse().map_err(|e| {
            format!(
                "BACKEND_URL: invalid authority {:?}: {e}",
                backend.url.authority
            )
        })?;
        let pool = Arc::new(pool::Pool::new(
            &backend.url.authority,
            backend.connect_timeout,
            limits.workers,
        ));
        Ok(Proxy {
            pool,
            connect_timeout: backend.connect_timeout,
            workers: limits.workers,
            backend_slots: Arc::new(Semaphore::new(limits.max_connections.max(1))),
            backend_url: backend.url.url.as_str().into(),
            backend_authority,
            backend_timeout: backend.timeout,
            forward_identity: backend.forward_client_cert,
            access_log: logging.access_log,
            tunnels,
            shutdown,
            stats,
        })
    }

    /// The same proxy with a pool of backend connections of its own, for
    /// another worker thread: the backend slots (MAX_CONNECTIONS), tunnels,
    /// shutdown and metrics stay shared.
    pub fn sibling(&self) -> Proxy {
        Proxy {
            pool: Arc::new(pool::Pool::new(
                self.backend_authority.as_str(),
                self.connect_timeout,
                self.workers,
            )),
            ..self.clone()
        }
    }

    /// Answers one request from a client connection.
    pub async fn handle(
        self: Arc<Self>,
        conn: Arc<ConnInfo>,
        mut req: Request<Incoming>,
    ) -> Result<Response<ProxyBody>, Infallible> {
        let started = Instant::now();
        let guard = conn.activity.begin();
        let record = self
            .access_log
            .then(|| AccessRecord::new(&conn, &req, started));
        let html = pages::wants_html(req.headers().get(header::ACCEPT));
        // told now: a refusal later on may come after `req` is forwarded
        conn.browser(req.headers());
        let (judged, news) = conn.judgement.now_and_news();
        let record = record.map(|r| r.who(&judged.verdict));
        // the rule that decided the request, when a policy did: counted once,
        // also when the client gives the request up before it is answered
        let mut decided = Decided::new(&self.stats);
        let (response, slot) = match &judged.verdict {
            Err(refusal) => {
                if news {
                    refused_on_open_connection(&self.stats, &conn, &judged, refusal);
                }
                (self.refused(&conn, refusal, req.version(), html), None)
            }
            Ok(identity) => match check_on(&req, &conn.host_seen) {
                Err(bad) => {
                    tracing::info!(name: "request-refused", peer = %conn.peer, cn = %log_safe(identity.cn()), "request refused, not forwarded: {}", bad.why);
                    (bad.response(req.version()), None)
                }
                // the operator console: answered here, never forwarded
                Ok(_) if admin::is_admin_path(req.uri().path()) => {
                    // boxed: a rare path, kept out of every request's future
                    (Box::pin(self.admin(&conn, identity, req, html)).await, None)
                }
                Ok(checked) => {
                    let mut access = self.access(
                        &conn,
                        &judged,
                        identity,
                        req.method(),
                        req.uri().path(),
                        html,
                    );
                    decided.rule = access.take_rule();
                    match access {
                        Access::Refused(answer, _) => (answer, None),
                        // allowed on its normal form, which is then what is forwarded
                        Access::Allowed(_, Some(normal)) if respell(&mut req, &normal).is_err() => {
                            (simple(StatusCode::BAD_REQUEST), None)
                        }
                        Access::Open | Access::Allowed(..) => {
                            if let Some(client) = &conn.client {
                                client.request();
                            }
                            let (judged, d) = (&judged, &mut decided);
                            self.forward(&conn, judged, identity, req, checked, html, d, started)
                                .await
                        }
                    }
                }
            },
        };
        let record = record.map(|r| r.with_rule(decided.rule.as_deref()));
        drop(decided);
        let metrics = &self.stats.metrics;
        metrics
            .request_duration
            .observe(started.elapsed().as_secs_f64());
        self.stats.answered(response.status().as_u16());
        let record = record.map(|r| r.with_status(response.status().as_u16()));
        let stall_limit = slot.is_some().then_some(self.backend_timeout);
        let watch = slot.is_some().then(|| self.watch(&conn));
        let close = response
            .extensions()
            .get::<CloseAfter>()
            .map(|_| conn.close.clone());
        Ok(response.map(|body| {
            ProxyBody::new(body, record, guard)
                .from_backend(slot, stall_limit, watch)
                .close_after(close)
        }))
    }

    /// Forwards `req` of `identity`, accepted (and allowed) under `first`,
    /// as [`check_request`] found it.
    /// A request decided again on its way (a reload while it waited for a
    /// backend slot) puts that decision in `decided`: none when its
    /// certificate is now refused, since it then never reaches WebORCA.
    #[allow(clippy::too_many_arguments)]
    async fn forward(
        &self,
        conn: &Arc<ConnInfo>,
        first: &Arc<Judged>,
        identity: &Identity,
        mut req: Request<Incoming>,
        checked: Checked,
        html: bool,
        decided: &mut Decided<'_>,
        started: Instant,
    ) -> Forwarded {
        let version = req.version();
        let upgrade = checked.upgrade;
        // the path the tunnel is kept to ACCESS_POLICY by
        let tunnel_path = upgrade.then(|| req.uri().path().to_string());
        let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
        let replayable = !upgrade && is_safe(req.method()) && req.body().is_end_stream();
        let mut out = match self.outbound(conn, identity, req, upgrade, replayable) {
            Ok(out) => out,
            Err(status) => return (simple(status), None),
        };
        // BACKEND_TIMEOUT covers waiting for a slot, a replay and the answer's head.
        // (from the request's arrival: its clock is read once)
        let deadline = Deadline::from_std(started + self.backend_timeout);
        // A free slot is taken at once; only a wait for one needs a timer.
        let slot = match self.backend_slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(tokio::sync::TryAcquireError::Closed) => {
                return (simple(StatusCode::SERVICE_UNAVAILABLE), None);
            }
            Err(tokio::sync::TryAcquireError::NoPermits) => {
                let _waiting = Metrics::held(&self.stats.metrics.backend_waiting);
                match tokio::time::timeout_at(deadline, self.backend_slots.clone().acquire_owned())
                    .await
                {
                    Ok(Ok(slot)) => slot,
                    Ok(Err(_)) => return (simple(StatusCode::SERVICE_UNAVAILABLE), None),
                    Err(_) => return (self.backend_slow(html), None),
                }
            }
        };
        // Judged again once a backend slot is free: a reload while the request
        // waited for one may have refused its certificate since.
        let judged = match self.judged_now(conn, version, html) {
            Ok(judged) => judged,
            Err(refused) => {
                // the certificate decided it: no rule is its decision (once
                // sent, the rule that let it reach WebORCA stays its decision,
                // also when its answer is then withheld)
                decided.rule = None;
                return *refused;
            }
        };
        // ... and, when that verdict is a new one, decided again on the path
        // that is to be forwarded (already the normal form if a policy decided
        // on it): the reload may have brought or changed ACCESS_POLICY.
        if let Ok(identity) = &judged.verdict
            && !Arc::ptr_eq(first, &judged)
        {
            let mut access = self.access(
                conn,
                &judged,
                identity,
                out.method(),
                out.uri().path(),
                html,
            );
            decided.rule = access.take_rule();
            match access {
                Access::Refused(answer, _) => return (answer, None),
                Access::Allowed(_, Some(normal)) if respell(&mut out, &normal).is_err() => {
                    return (simple(StatusCode::BAD_REQUEST), None);
                }
                Access::Open | Access::Allowed(..) => {}
            }
        }
        let replay = replayable.then(|| bodiless_copy(&out));
        let upload = out.extensions().get::<gated::Upload>().cloned();
        let send = self.pool.send(out);
        tokio::pin!(send);
        let mut deadline = deadline;
        let mut result = loop {
            match tokio::time::timeout_at(deadline, send.as_mut()).await {
                // still uploading within BACKEND_TIMEOUT of its last frame:
                // the client's time, not WebORCA's (a stalled HTTP/1.1
                // upload is cut after IDLE_TIMEOUT meanwhile)
                Err(elapsed) => {
                    let later = upload
                        .as_ref()
                        .map(|u| Deadline::from_std(u.last_frame() + self.backend_timeout));
                    match later {
                        Some(later) if later > deadline => deadline = later,
                        _ => break Err(elapsed),
                    }
                }
                Ok(answer) => break Ok(answer),
            }
        };
        if let (Ok(Err(e)), Some(again)) = (&result, replay)
            && !e.is_connect()
        {
            // A kept-alive backend connection closed under the request: WebORCA
            // restarted or timed it out. Nothing is lost by asking once more,
            // if the certificate is still accepted (the first try may have
            // waited up to BACKEND_TIMEOUT, and a reload come meanwhile).
            if let Err(refused) = self.judged_now(conn, version, html) {
                return *refused;
            }
            tracing::info!(backend = %self.backend_url, "backend connection failed ({}); sending the {} again on a new connection", error_chain(e), again.method());
            result = tokio::time::timeout_at(deadline, self.pool.send_again(again)).await;
        }
        let (mut resp, checkout) = match result {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) if e.client_body_failed() => {
                // The body is cut when the certificate is refused under it
                // (gated.rs): that refusal is the answer.
                if let Err(refused) = self.judged_now(conn, version, html) {
                    return *refused;
                }
                tracing::info!(peer = %conn.peer, "request body from the client broke off: {}", error_chain(&e));
                return (simple(StatusCode::BAD_REQUEST), None);
            }
            Ok(Err(e)) => {
                let kind = if e.is_connect() { "connect" } else { "other" };
                return (self.backend_down(kind, &error_chain(&e), html), None);
            }
            Err(_) => return (self.backend_slow(html), None),
        };
        self.stats.backend_ok();
        // WebORCA may have taken its time: a certificate refused meanwhile
        // gets none of its answer, not even the head (a HEAD, 204 or 304 is
        // all head). The connection is not given back: its answer is unread.
        if !conn.judgement.holds_accepted()
            && let Err(refused) = self.judged_now(conn, version, html)
        {
            return *refused;
        }
        let switching = resp.status() == StatusCode::SWITCHING_PROTOCOLS;
        match client_upgrade {
            Some(client_upgrade) if switching => {
                let backend_upgrade = hyper::upgrade::on(&mut resp);
                let path = tunnel_path.unwrap_or_default();
                // the connection is the tunnel's now: not given back
                drop(checkout);
                self.spawn_tunnel(conn, client_upgrade, backend_upgrade, slot, path);
                strip_response_headers(resp.headers_mut(), true);
                return (resp.map(Either::Left), None);
            }
            None if switching => {
                // Relaying it would leave client and proxy disagreeing on what
                // the connection now carries.
                let detail = "WebORCA answered 101 Switching Protocols to a request that asked for no WebSocket";
                return (self.backend_down("other", detail, html), None);
            }
            _ => strip_response_headers(resp.headers_mut(), false),
        }
        (
            resp.map(Either::Left),
            Some(pool::Lease::new(slot, checkout)),
        )
    }
}

/// GET, HEAD and OPTIONS: safe to send twice (RFC 9110 §9.2.1).
fn is_safe(method: &Method) -> bool {
    [Method::GET, Method::HEAD, Method::OPTIONS].contains(method)
}

impl Proxy {
    /// What a body streaming for `conn` checks its frames against.
    fn watch(&self, conn: &Arc<ConnInfo>) -> gated::Watch {
        gated::Watch::new(conn.clone(), self.stats.clone())
    }

    /// The connection's verdict now; a refusal comes back answered (and
    /// logged, once, when this very check made it).
    fn judged_now(
        &self,
        conn: &ConnInfo,
        version: Version,
        html: bool,
    ) -> Result<Arc<Judged>, Box<Forwarded>> {
        let (judged, news) = conn.judgement.now_and_news();
        if let Err(refusal) = &judged.verdict {
            if news {
                refused_on_open_connection(&self.stats, conn, &judged, refusal);
            }
            return Err(Box::new((self.refused(conn, refusal, version, html), None)));
        }
        Ok(judged)
    }
}

/// The same bodiless request again, for one replay.
fn bodiless_copy(req: &Request<OutBody>) -> Request<OutBody> {
    let mut copy = Request::new(Either::Right(Empty::new()));
    *copy.method_mut() = req.method().clone();
    *copy.uri_mut() = req.uri().clone();
    *copy.version_mut() = req.version();
    *copy.headers_mut() = req.headers().clone();
    copy
}

/// The full cause of a backend error, e.g. "connect error: 127.0.0.1:8001: Connection refused (os error 111)".
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Puts `path` (a normal form the policy decided on) in place of the
/// request's path, keeping the query as the client sent it.
fn respell<B>(req: &mut Request<B>, path: &str) -> Result<(), ()> {
    let target = match req.uri().query() {
        Some(query) => format!("{path}?{query}"),
        None => path.to_string(),
    };
    let mut parts = req.uri().clone().into_parts();
    parts.path_and_query = Some(http::uri::PathAndQuery::try_from(target).map_err(|_| ())?);
    *req.uri_mut() = Uri::from_parts(parts).map_err(|_| ())?;
    Ok(())
}
