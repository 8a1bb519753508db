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

pub mod body;
pub mod conn;
pub mod plain;
pub mod server;
pub mod ws;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::{Either, Empty, Full};
use hyper::body::{Body as _, Incoming};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
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
use crate::tls::{IDENTITY_HEADERS, Identity, Refusal};

/// How long an unused backend connection stays in the pool.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Idle backend connections kept for reuse; WebORCA is one host.
const POOL_MAX_IDLE: usize = 256;

/// Hop-by-hop headers (RFC 9110 §7.6.1, plus the legacy `keep-alive` and
/// `proxy-connection`), never forwarded in either direction.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authenticate",
];

pub use conn::ConnInfo;

/// The Host for HTTP/1.0 requests that name none: the SNI name the client
/// asked for, or else the local address it connected to (`[v6]:port`).
pub fn default_host(sni: Option<&str>, local: Option<std::net::SocketAddr>) -> Option<HeaderValue> {
    let text = match (sni, local) {
        (Some(name), _) => match local {
            Some(addr) => format!("{name}:{}", addr.port()),
            None => name.to_string(),
        },
        (None, Some(addr)) => {
            let ip = addr.ip().to_canonical();
            std::net::SocketAddr::new(ip, addr.port()).to_string()
        }
        (None, None) => return None,
    };
    let value = HeaderValue::from_str(&text).ok()?;
    valid_host(&value)?;
    Some(value)
}

/// The body of a request to WebORCA: the client's, streamed, or none at all
/// for a bodiless request (which can then be sent twice).
type OutBody = Either<Incoming, Empty<Bytes>>;

/// A response and, while it streams, the backend slot its connection holds.
type Forwarded = (
    Response<Either<Incoming, Full<Bytes>>>,
    Option<OwnedSemaphorePermit>,
);

/// Forwards requests to WebORCA.
#[derive(Clone)]
pub struct Proxy {
    /// pooled HTTP/1.1 connections to the backend
    client: Client<HttpConnector, OutBody>,
    /// BACKEND_CONNECT_TIMEOUT
    connect_timeout: Duration,
    /// backend requests (and tunnels) in flight, at most MAX_CONNECTIONS:
    /// bounds the sockets the proxy opens to WebORCA
    backend_slots: Arc<Semaphore>,
    /// `http://host:port` of the backend, for the error pages
    backend_url: Arc<str>,
    /// scheme and authority every request is sent to
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

/// A pool of keep-alive HTTP/1.1 connections to the backend.
fn backend_client(connect_timeout: Duration) -> Client<HttpConnector, OutBody> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(connect_timeout));
    connector.set_keepalive(Some(Duration::from_secs(60)));
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .pool_max_idle_per_host(POOL_MAX_IDLE)
        .pool_timer(hyper_util::rt::TokioTimer::new())
        .set_host(false)
        .build(connector)
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
        let client = backend_client(backend.connect_timeout);
        Ok(Proxy {
            client,
            connect_timeout: backend.connect_timeout,
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
            client: backend_client(self.connect_timeout),
            ..self.clone()
        }
    }

    /// Answers one request from a client connection.
    pub async fn handle(
        self: Arc<Self>,
        conn: Arc<ConnInfo>,
        req: Request<Incoming>,
    ) -> Result<Response<ProxyBody>, Infallible> {
        let started = Instant::now();
        let guard = conn.activity.begin();
        let record = self
            .access_log
            .then(|| AccessRecord::new(&conn, &req, started));
        let html = pages::wants_html(req.headers().get(header::ACCEPT));
        let (judged, news) = conn.judgement.now_and_news();
        let record = record.map(|r| r.who(&judged.verdict));
        let (response, slot) = match &judged.verdict {
            Err(refusal) => {
                if news {
                    self.refused_on_open_connection(&conn, &judged, refusal);
                }
                (self.refused(&conn, refusal, req.version(), html), None)
            }
            Ok(identity) => match check_request(&req) {
                Err(bad) => {
                    tracing::info!(peer = %conn.peer, cn = %identity.cn(), "request refused, not forwarded: {}", bad.why);
                    (bad.response(req.version()), None)
                }
                Ok(()) => {
                    if let Some(client) = &conn.client {
                        client.request();
                    }
                    self.forward(&conn, identity, req, html).await
                }
            },
        };
        let metrics = &self.stats.metrics;
        metrics
            .request_duration
            .observe(started.elapsed().as_secs_f64());
        Metrics::count(&metrics.requests, status_class(response.status()));
        let record = record.map(|r| r.with_status(response.status().as_u16()));
        let stall_limit = slot.is_some().then_some(self.backend_timeout);
        Ok(
            response
                .map(|body| ProxyBody::new(body, record, guard).from_backend(slot, stall_limit)),
        )
    }

    /// The page for a refused client; the connection is closed after it, so a
    /// client without a certificate holds no MAX_CONNECTIONS slot and a
    /// browser that has just imported its `.p12` gets a fresh handshake.
    fn refused(
        &self,
        conn: &ConnInfo,
        refusal: &Refusal,
        version: Version,
        html: bool,
    ) -> Response<Either<Incoming, Full<Bytes>>> {
        let mut resp = refused(refusal, &conn.ca_subjects, html);
        if version <= Version::HTTP_11 {
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        conn.close.cancel();
        resp
    }

    /// Logs and counts an open connection whose certificate is now refused.
    fn refused_on_open_connection(&self, conn: &ConnInfo, judged: &Judged, refusal: &Refusal) {
        Metrics::count(&self.stats.metrics.refusals, refusal.kind.as_str());
        let (cn, serial) = Judgement::who(judged);
        tracing::info!(peer = %conn.peer, cn = %cn, serial = %serial, reason = refusal.kind.as_str(), "client certificate of an open connection now refused, closing it: {}", log_safe(&refusal.detail));
    }

    async fn forward(
        &self,
        conn: &Arc<ConnInfo>,
        identity: &Identity,
        mut req: Request<Incoming>,
        html: bool,
    ) -> Forwarded {
        let upgrade = is_websocket_upgrade(req.headers());
        let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
        let replayable = !upgrade && is_safe(req.method()) && req.body().is_end_stream();
        let out = match self.outbound(conn, identity, req, upgrade, replayable) {
            Ok(out) => out,
            Err(status) => return (simple(status), None),
        };
        // BACKEND_TIMEOUT covers waiting for a slot, a replay and the answer's head.
        let deadline = Deadline::now() + self.backend_timeout;
        let slot =
            match tokio::time::timeout_at(deadline, self.backend_slots.clone().acquire_owned())
                .await
            {
                Ok(Ok(slot)) => slot,
                Ok(Err(_)) => return (simple(StatusCode::SERVICE_UNAVAILABLE), None),
                Err(_) => return (self.backend_slow(html), None),
            };
        let replay = replayable.then(|| bodiless_copy(&out));
        let mut result = tokio::time::timeout_at(deadline, self.client.request(out)).await;
        if let (Ok(Err(e)), Some(again)) = (&result, replay)
            && !e.is_connect()
        {
            // A kept-alive backend connection closed under the request: WebORCA
            // restarted or timed it out. Nothing is lost by asking once more.
            tracing::info!(backend = %self.backend_url, "backend connection failed ({}); sending the {} again on a new connection", error_chain(e), again.method());
            result = tokio::time::timeout_at(deadline, self.client.request(again)).await;
        }
        let mut resp = match result {
            Ok(Ok(resp)) => resp,
            Ok(Err(e)) if client_body_failed(&e) => {
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
        let switching = resp.status() == StatusCode::SWITCHING_PROTOCOLS;
        match client_upgrade {
            Some(client_upgrade) if switching => {
                let backend_upgrade = hyper::upgrade::on(&mut resp);
                self.spawn_tunnel(conn, client_upgrade, backend_upgrade, slot);
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
        (resp.map(Either::Left), Some(slot))
    }

    /// Builds the request WebORCA sees.
    fn outbound(
        &self,
        conn: &ConnInfo,
        identity: &Identity,
        req: Request<Incoming>,
        upgrade: bool,
        bodiless: bool,
    ) -> Result<Request<OutBody>, StatusCode> {
        let (mut parts, body) = req.into_parts();
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let uri = Uri::builder()
            .scheme("http")
            .authority(self.backend_authority.clone())
            .path_and_query(path)
            .build()
            .map_err(|_| StatusCode::BAD_REQUEST)?;
        // HTTP/2 carries the host in :authority; WebORCA needs a Host header.
        // HTTP/1.0 may send none at all (RFC 9112 §3.2 asks it only of 1.1).
        let host = match parts.headers.get(header::HOST) {
            Some(h) => h.clone(),
            None => parts
                .uri
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
                .or_else(|| {
                    (parts.version < Version::HTTP_11)
                        .then(|| conn.default_host.clone())
                        .flatten()
                })
                .ok_or(StatusCode::BAD_REQUEST)?,
        };
        let headers = &mut parts.headers;
        if parts.version == Version::HTTP_2 {
            join_cookies(headers);
        }
        strip_hop_by_hop(headers);
        let spoofed: Vec<HeaderName> = headers.keys().filter(|n| is_ours(n)).cloned().collect();
        for name in spoofed {
            headers.remove(name);
        }
        if upgrade {
            headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        }
        headers.insert(header::HOST, host.clone());
        headers.insert("x-forwarded-host", host);
        headers.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        if let Ok(v) = HeaderValue::from_str(&conn.peer.ip().to_canonical().to_string()) {
            headers.insert("x-forwarded-for", v);
        }
        if self.forward_identity {
            for (name, value) in &identity.headers {
                headers.insert(name.clone(), value.clone());
            }
        }
        parts.uri = uri;
        parts.version = Version::HTTP_11;
        let body = if bodiless {
            Either::Right(Empty::new())
        } else {
            Either::Left(body)
        };
        Ok(Request::from_parts(parts, body))
    }

    fn spawn_tunnel(
        &self,
        conn: &Arc<ConnInfo>,
        client: hyper::upgrade::OnUpgrade,
        backend: hyper::upgrade::OnUpgrade,
        slot: OwnedSemaphorePermit,
    ) {
        let shutdown = self.shutdown.clone();
        let peer = conn.peer;
        let cn = Judgement::who(&conn.judgement.now()).0;
        let guard = conn.activity.begin();
        let access_log = self.access_log;
        let conn = conn.clone();
        let stats = self.stats.clone();
        self.tunnels.spawn(async move {
            let _guard = guard;
            let _slot = slot;
            let started = Instant::now();
            let (client, backend) = tokio::join!(client, backend);
            let (Ok(client), Ok(backend)) = (client, backend) else {
                tracing::debug!(%peer, "websocket upgrade did not complete");
                return;
            };
            let by_shutdown = shutdown.clone();
            let refused = CancellationToken::new();
            let tunnel = crate::ws::tunnel(
                TokioIo::new(client),
                TokioIo::new(backend),
                shutdown,
                refused.clone(),
            );
            tokio::pin!(tunnel);
            let (up, down) = tokio::select! {
                carried = &mut tunnel => carried,
                () = tunnel_refused(&conn, &stats) => {
                    refused.cancel();
                    tunnel.await
                }
            };
            let how = if refused.is_cancelled() {
                "closed (1008): client certificate now refused"
            } else if by_shutdown.is_cancelled() {
                "closed by shutdown"
            } else {
                "closed"
            };
            let outcome = format!("{how}, {up} bytes up, {down} bytes down");
            if access_log {
                let secs = started.elapsed().as_secs_f64();
                tracing::info!(target: "access", %peer, cn = %cn, duration_s = format_args!("{secs:.1}"), "websocket {outcome}");
            }
        });
    }

    fn backend_down(
        &self,
        kind: &str,
        detail: &str,
        html: bool,
    ) -> Response<Either<Incoming, Full<Bytes>>> {
        self.stats.backend_failed(kind, detail);
        tracing::warn!(backend = %self.backend_url, "WebORCA is not answering: {detail}");
        page(
            &Page::BackendDown {
                backend: &self.backend_url,
                detail,
            },
            html,
        )
    }

    fn backend_slow(&self, html: bool) -> Response<Either<Incoming, Full<Bytes>>> {
        let secs = self.backend_timeout.as_secs();
        self.stats.backend_failed(
            "timeout",
            &format!("no answer within BACKEND_TIMEOUT ({secs} s)"),
        );
        tracing::warn!(backend = %self.backend_url, "WebORCA did not answer within BACKEND_TIMEOUT ({secs} s)");
        page(
            &Page::BackendTimeout {
                backend: &self.backend_url,
                timeout_secs: secs,
            },
            html,
        )
    }
}

/// Returns once the tunnel's certificate is refused: after a reload that
/// changed the verdict's inputs, or when a certificate of the chain (or, with
/// CRL_STALE=refuse, the CRL) runs out. Logs the CN, serial and reason.
async fn tunnel_refused(conn: &ConnInfo, stats: &Stats) {
    /// Longest sleep between two looks at the clock: a verdict window far in
    /// the future is still looked at daily (a suspended machine's clock jumps).
    const LONGEST_WAIT: i64 = 24 * 60 * 60;
    let mut changes = conn.judgement.changes();
    loop {
        let judged = conn.judgement.now();
        if let Err(r) = &judged.verdict {
            Metrics::count(&stats.metrics.refusals, r.kind.as_str());
            let (cn, serial) = Judgement::who(&judged);
            tracing::info!(peer = %conn.peer, cn = %cn, serial = %serial, reason = r.kind.as_str(), "websocket closed with 1008: the client certificate is now refused: {}", log_safe(&r.detail));
            return;
        }
        let secs = judged
            .window
            .1
            .saturating_sub(crate::tls::judgement::unix_now())
            .saturating_add(1)
            .clamp(1, LONGEST_WAIT);
        tokio::select! {
            changed = changes.changed() => {
                if changed.is_err() {
                    // the server is gone; only the clock can still refuse
                    changes = tokio::sync::watch::channel(0).1;
                }
            }
            () = tokio::time::sleep(Duration::from_secs(secs.unsigned_abs())) => {}
        }
    }
}

/// HTTP/2 lets a client split `cookie` into several fields; an HTTP/1.1
/// backend expects one header, joined with `; ` (RFC 9113 §8.2.3).
fn join_cookies(headers: &mut HeaderMap) {
    let mut values = headers.get_all(header::COOKIE).iter();
    let (Some(first), Some(_)) = (values.next(), values.next()) else {
        return;
    };
    let mut joined = first.as_bytes().to_vec();
    for v in headers.get_all(header::COOKIE).iter().skip(1) {
        joined.extend_from_slice(b"; ");
        joined.extend_from_slice(v.as_bytes());
    }
    if let Ok(v) = HeaderValue::from_bytes(&joined) {
        headers.insert(header::COOKIE, v);
    }
}

/// GET, HEAD and OPTIONS: safe to send twice (RFC 9110 §9.2.1).
fn is_safe(method: &Method) -> bool {
    [Method::GET, Method::HEAD, Method::OPTIONS].contains(method)
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

/// Whether the backend request failed because the client's own body broke off
/// (an aborted upload): the client's doing, not WebORCA's.
fn client_body_failed(e: &hyper_util::client::legacy::Error) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(h) = s.downcast_ref::<hyper::Error>()
            && h.is_user()
        {
            return true;
        }
        source = s.source();
    }
    false
}

/// The full cause of a client error, e.g. "client error (Connect): tcp connect error: Connection refused".
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

fn refused(
    refusal: &Refusal,
    ca_subjects: &[String],
    html: bool,
) -> Response<Either<Incoming, Full<Bytes>>> {
    let info = refusal.info.as_ref();
    let page_data = CertRefusal {
        kind: refusal.kind,
        subject: info.map(|i| i.subject_oneline.as_str()),
        issuer: info.map(|i| i.issuer_oneline.as_str()),
        serial_hex: info.map(|i| i.serial_hex.as_str()),
        not_before: info.map(|i| i.not_before),
        not_after: info.map(|i| i.not_after),
        expected_ca: ca_subjects,
        detail: Some(&refusal.detail),
    };
    page(&Page::CertRefused(page_data), html)
}

/// Renders an error page as a response.
pub fn page(page: &Page<'_>, html: bool) -> Response<Either<Incoming, Full<Bytes>>> {
    let rendered = pages::render(page, html);
    let mut builder = Response::builder()
        .status(rendered.status)
        .header(header::CONTENT_TYPE, rendered.content_type)
        .header(header::CACHE_CONTROL, "no-store");
    if let Some(code) = rendered.cert_error {
        builder = builder.header("x-client-cert-error", code);
    }
    builder
        .body(Either::Right(Full::new(rendered.body)))
        .unwrap_or_else(|_| simple(StatusCode::INTERNAL_SERVER_ERROR))
}

fn simple(status: StatusCode) -> Response<Either<Incoming, Full<Bytes>>> {
    let mut resp = Response::new(Either::Right(Full::new(Bytes::from(status.to_string()))));
    *resp.status_mut() = status;
    resp
}

/// `2xx`, `4xx`…: the label requests are counted under.
fn status_class(status: StatusCode) -> &'static str {
    match status.as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// A request the proxy answers itself because WebORCA might read it differently.
#[derive(Debug, PartialEq, Eq)]
pub struct Malformed {
    /// the answer's status
    pub status: StatusCode,
    /// what is wrong, for the log and the answer's text
    pub why: &'static str,
}

impl Malformed {
    fn new(status: StatusCode, why: &'static str) -> Malformed {
        Malformed { status, why }
    }

    /// The answer; an HTTP/1.x connection is closed after it, since the
    /// request's end (and so the next request's start) is in doubt.
    fn response(&self, version: Version) -> Response<Either<Incoming, Full<Bytes>>> {
        let text = format!("{}: {}\n", self.status, self.why);
        let mut resp = Response::new(Either::Right(Full::new(Bytes::from(text))));
        *resp.status_mut() = self.status;
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if self.status == StatusCode::UPGRADE_REQUIRED {
            h.insert("sec-websocket-version", HeaderValue::from_static("13"));
        }
        if version <= Version::HTTP_11 {
            h.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    }
}

/// Refuses what must not reach WebORCA: methods a reverse proxy does not
/// serve, Host confusion, ambiguous body framing (request smuggling) and
/// WebSocket handshakes WebORCA would have to reject anyway.
pub fn check_request<B>(req: &Request<B>) -> Result<(), Malformed> {
    use StatusCode as S;
    if req.method() == Method::CONNECT {
        return Err(Malformed::new(
            S::METHOD_NOT_ALLOWED,
            "CONNECT is not served: this is not a forward proxy",
        ));
    }
    let headers = req.headers();
    let mut hosts = headers.get_all(header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(Malformed::new(S::BAD_REQUEST, "more than one Host header"));
    }
    let host = match host {
        Some(h) => {
            Some(valid_host(h).ok_or(Malformed::new(S::BAD_REQUEST, "invalid Host header"))?)
        }
        None => None,
    };
    // HTTP/1.0 need not send Host (RFC 9112 §3.2); it is forwarded with the
    // connection's server name instead (see `outbound`).
    if host.is_none() && req.uri().authority().is_none() && req.version() >= Version::HTTP_11 {
        return Err(Malformed::new(S::BAD_REQUEST, "no Host header"));
    }
    check_target(req)?;
    if let Some(authority) = req.uri().authority() {
        // HTTP/1.1 absolute-form, or HTTP/2's :authority
        if authority.as_str().contains('@') {
            return Err(Malformed::new(
                S::BAD_REQUEST,
                "user information in the request target",
            ));
        }
        if host.is_some_and(|h| !same_host(h, authority)) {
            return Err(Malformed::new(
                S::BAD_REQUEST,
                "the Host header names another host than the request target",
            ));
        }
    }
    if req.version() <= Version::HTTP_11 {
        check_framing(headers)?;
    }
    if is_websocket_upgrade(headers) {
        check_websocket(req)?;
    }
    Ok(())
}

/// Request targets WebORCA could read otherwise than the proxy: bytes outside
/// ASCII (HTTP/2 lets them through where HTTP/1.1 parsers refuse them) and
/// the asterisk form with any method but OPTIONS (RFC 9112 §3.2.4).
fn check_target<B>(req: &Request<B>) -> Result<(), Malformed> {
    let target = req.uri().path_and_query().map_or("", |p| p.as_str());
    if !target.is_ascii() || target.bytes().any(|b| b.is_ascii_control()) {
        return Err(Malformed::new(
            StatusCode::BAD_REQUEST,
            "bytes outside printable ASCII in the request target",
        ));
    }
    if req.uri().path() == "*" && req.method() != Method::OPTIONS {
        return Err(Malformed::new(
            StatusCode::BAD_REQUEST,
            "the request target * is only for OPTIONS",
        ));
    }
    Ok(())
}

/// Whether a Host header and a request target's authority name the same
/// host: equal, or the same host name where one leaves the port out (clients
/// that send both commonly write `Host: name` beside `:authority: name:8000`).
fn same_host(host: &str, authority: &http::uri::Authority) -> bool {
    if host.eq_ignore_ascii_case(authority.as_str()) {
        return true;
    }
    let Ok(h) = host.parse::<http::uri::Authority>() else {
        return false;
    };
    h.host().eq_ignore_ascii_case(authority.host())
        && (h.port().is_none() || authority.port().is_none())
}

/// A Host value that is `host[:port]` and nothing else.
fn valid_host(value: &HeaderValue) -> Option<&str> {
    let text = value.to_str().ok()?;
    let authority: http::uri::Authority = text.parse().ok()?;
    (authority.as_str() == text && !text.contains('@') && !text.is_empty()).then_some(text)
}

/// HTTP/1.x body framing that two parsers could read two ways (RFC 9112 §6.1, §6.3).
fn check_framing(headers: &HeaderMap) -> Result<(), Malformed> {
    use StatusCode as S;
    let lengths: Vec<&HeaderValue> = headers.get_all(header::CONTENT_LENGTH).iter().collect();
    if lengths.len() > 1 || lengths.iter().any(|v| v.as_bytes().contains(&b',')) {
        return Err(Malformed::new(
            S::BAD_REQUEST,
            "more than one Content-Length",
        ));
    }
    let codings: Vec<String> = headers
        .get_all(header::TRANSFER_ENCODING)
        .iter()
        .flat_map(|v| {
            String::from_utf8_lossy(v.as_bytes())
                .split(',')
                .map(|t| t.trim().to_ascii_lowercase())
                .collect::<Vec<_>>()
        })
        .collect();
    if codings.is_empty() {
        return Ok(());
    }
    if !lengths.is_empty() {
        return Err(Malformed::new(
            S::BAD_REQUEST,
            "both Content-Length and Transfer-Encoding",
        ));
    }
    if codings != ["chunked"] {
        return Err(Malformed::new(
            S::NOT_IMPLEMENTED,
            "a transfer coding other than chunked",
        ));
    }
    Ok(())
}

/// An RFC 6455 opening handshake: GET over HTTP/1.1, a 16-byte key, version 13.
fn check_websocket<B>(req: &Request<B>) -> Result<(), Malformed> {
    use StatusCode as S;
    if req.method() != Method::GET || req.version() != Version::HTTP_11 {
        return Err(Malformed::new(
            S::BAD_REQUEST,
            "a WebSocket handshake must be an HTTP/1.1 GET",
        ));
    }
    let headers = req.headers();
    let version_13 = headers
        .get_all("sec-websocket-version")
        .iter()
        .any(|v| v.as_bytes() == b"13");
    if !version_13 {
        return Err(Malformed::new(
            S::UPGRADE_REQUIRED,
            "a WebSocket handshake needs Sec-WebSocket-Version: 13",
        ));
    }
    let mut keys = headers.get_all("sec-websocket-key").iter();
    let key_ok = match (keys.next(), keys.next()) {
        (Some(key), None) => {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD
                .decode(key.as_bytes())
                .is_ok_and(|k| k.len() == 16)
        }
        _ => false,
    };
    if !key_ok {
        return Err(Malformed::new(
            S::BAD_REQUEST,
            "a WebSocket handshake needs one Sec-WebSocket-Key of 16 bytes in base64",
        ));
    }
    Ok(())
}

/// Whether a client-sent header claims to be one only the proxy may set: the
/// identity headers, `Forwarded`, `X-Forwarded-*`, `X-Real-IP`, any
/// `X-SSL-Client-*`, and the other spellings of a client identity some
/// backend or framework trusts (`X-Client-*`, `SSL-Client-*`,
/// `X-Forwarded-Client-Cert`, `Client-Cert-Chain`, `X-Amzn-Mtls-*`) — also
/// spelled with `_` for `-`, which CGI-style backends read as the same variable.
fn is_ours(name: &HeaderName) -> bool {
    /// Prefixes of header names only the proxy may set.
    const OURS: [&str; 5] = [
        "x-ssl-client-",
        "x-forwarded-",
        "x-client-",
        "ssl-client-",
        "x-amzn-mtls-",
    ];
    let raw = name.as_str();
    let name: std::borrow::Cow<'_, str> = if raw.contains('_') {
        raw.replace('_', "-").into()
    } else {
        raw.into()
    };
    let name = name.as_ref();
    IDENTITY_HEADERS.contains(&name)
        || OURS.iter().any(|p| name.starts_with(p))
        || name == "forwarded"
        || name == "x-real-ip"
}

/// Is this an HTTP/1.1 WebSocket handshake (`Connection: upgrade`, `Upgrade: websocket`)?
fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    let connection_upgrade = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    let upgrade_websocket = headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("websocket"))
        });
    connection_upgrade && upgrade_websocket
}

/// Removes hop-by-hop headers, including those the `Connection` header names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// Cleans a backend response; a 101 keeps the headers that complete the upgrade.
fn strip_response_headers(headers: &mut HeaderMap, switching: bool) {
    if headers.contains_key(header::TRANSFER_ENCODING) {
        // hyper decoded the chunks; a Content-Length beside them means nothing.
        headers.remove(header::CONTENT_LENGTH);
    }
    let upgrade = headers.get(header::UPGRADE).cloned();
    strip_hop_by_hop(headers);
    if switching {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        if let Some(u) = upgrade {
            headers.insert(header::UPGRADE, u);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_and_connection_named_headers_are_removed() {
        let mut h = HeaderMap::new();
        h.insert(
            "connection",
            HeaderValue::from_static("keep-alive, X-Secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("te", HeaderValue::from_static("trailers"));
        h.insert(
            "authorization",
            HeaderValue::from_static("Basic dXNlcjpwYXNz"),
        );
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("authorization"));
    }

    fn req(lines: &[(&str, &str)], method: &str, uri: &str, version: Version) -> Request<()> {
        let mut b = Request::builder().method(method).uri(uri).version(version);
        for (n, v) in lines {
            b = b.header(*n, *v);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn requests_that_could_be_read_two_ways_are_refused() {
        let h1 = Version::HTTP_11;
        let host = ("host", "localhost");
        let status = |r: &Request<()>| check_request(r).err().map(|m| m.status.as_u16());
        assert_eq!(status(&req(&[host], "GET", "/", h1)), None);
        assert_eq!(
            status(&req(&[host], "CONNECT", "localhost:443", h1)),
            Some(405)
        );
        assert_eq!(status(&req(&[], "GET", "/", h1)), Some(400));
        assert_eq!(status(&req(&[], "GET", "/", Version::HTTP_10)), None);
        assert_eq!(status(&req(&[host], "GET", "*", h1)), Some(400));
        assert_eq!(status(&req(&[host], "OPTIONS", "*", h1)), None);
        assert_eq!(
            status(&req(&[host, ("host", "b")], "GET", "/", h1)),
            Some(400)
        );
        assert_eq!(status(&req(&[("host", "a/b")], "GET", "/", h1)), Some(400));
        assert_eq!(status(&req(&[host], "GET", "http://evil/", h1)), Some(400));
        assert_eq!(
            status(&req(&[host], "GET", "https://localhost:8000/", h1)),
            None
        );
        assert_eq!(
            status(&req(
                &[("host", "localhost:1")],
                "GET",
                "https://localhost:2/",
                h1
            )),
            Some(400)
        );
        let cl_te = [
            host,
            ("content-length", "3"),
            ("transfer-encoding", "chunked"),
        ];
        assert_eq!(status(&req(&cl_te, "POST", "/", h1)), Some(400));
        let gzip = [host, ("transfer-encoding", "gzip, chunked")];
        assert_eq!(status(&req(&gzip, "POST", "/", h1)), Some(501));
        let two = [host, ("content-length", "3"), ("content-length", "3")];
        assert_eq!(status(&req(&two, "POST", "/", h1)), Some(400));
        let ws = [
            host,
            ("connection", "upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ];
        assert_eq!(status(&req(&ws, "GET", "/ws", h1)), None);
        assert_eq!(status(&req(&ws, "POST", "/ws", h1)), Some(400));
        assert_eq!(status(&req(&ws[..4], "GET", "/ws", h1)), Some(400));
        assert_eq!(status(&req(&ws[..3], "GET", "/ws", h1)), Some(426));
    }

    #[test]
    fn client_sent_identity_headers_are_recognised_in_any_spelling() {
        for name in [
            "x-ssl-client-verify",
            "x_ssl_client_verify",
            "x-ssl-client-anything",
            "client_cert",
            "x-forwarded-port",
            "x_forwarded_for",
            "forwarded",
            "x-real-ip",
            "x-client-cert",
            "x_client_dn",
            "ssl-client-cert",
            "ssl_client_s_dn",
            "x-forwarded-client-cert",
            "client-cert-chain",
            "client_cert_chain",
            "x-amzn-mtls-clientcert",
            "x_amzn_mtls_clientcert_leaf",
        ] {
            assert!(is_ours(&HeaderName::from_static(name)), "{name}");
        }
        for name in ["authorization", "cookie", "x-ginbee-tenant-id", "x_custom"] {
            assert!(!is_ours(&HeaderName::from_static(name)), "{name}");
        }
    }

    #[test]
    fn websocket_upgrade_needs_both_headers() {
        let mut h = HeaderMap::new();
        h.insert(
            "connection",
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        assert!(!is_websocket_upgrade(&h));
        h.insert("upgrade", HeaderValue::from_static("WebSocket"));
        assert!(is_websocket_upgrade(&h));
        h.insert("upgrade", HeaderValue::from_static("h2c"));
        assert!(!is_websocket_upgrade(&h));
    }
}
