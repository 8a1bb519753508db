//! Moving HTTP: one request from a judged connection to WebORCA and back.
//!
//! A refused client gets its 403 page here and the backend is never touched.
//! A verified one is forwarded over pooled keep-alive HTTP/1.1: hop-by-hop and
//! client-sent identity headers removed, `X-Forwarded-*` and the identity
//! headers set, bodies streamed both ways, WebSocket upgrades tunnelled.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::body::{AccessRecord, ProxyBody};
use crate::config::Config;
use crate::conn::Activity;
use crate::metrics::Metrics;
use crate::pages::{self, CertRefusal, Page};
use crate::status::{SeenClient, Stats};
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

/// What the proxy knows about one client connection, shared by its requests.
#[derive(Debug)]
pub struct ConnInfo {
    /// the client's address
    pub peer: SocketAddr,
    /// the verdict on its certificate
    pub verdict: Result<Identity, Box<Refusal>>,
    /// subjects of the accepted CAs, for the unknown-CA page
    pub ca_subjects: Arc<[String]>,
    /// idle tracking for the connection's watchdog
    pub activity: Arc<Activity>,
    /// the verified client's entry in `/status`
    pub client: Option<Arc<SeenClient>>,
}

/// Forwards requests to WebORCA.
pub struct Proxy {
    /// pooled HTTP/1.1 connections to the backend
    client: Client<HttpConnector, Incoming>,
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

impl Proxy {
    /// A proxy to BACKEND_URL with the config's timeouts.
    pub fn new(
        config: &Config,
        tunnels: TaskTracker,
        shutdown: CancellationToken,
        stats: Arc<Stats>,
    ) -> Result<Proxy, String> {
        let backend_authority = config.backend.authority.parse().map_err(|e| {
            format!(
                "BACKEND_URL: invalid authority {:?}: {e}",
                config.backend.authority
            )
        })?;
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(config.backend_connect_timeout));
        connector.set_keepalive(Some(Duration::from_secs(60)));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_max_idle_per_host(POOL_MAX_IDLE)
            .pool_timer(hyper_util::rt::TokioTimer::new())
            .set_host(false)
            .build(connector);
        Ok(Proxy {
            client,
            backend_url: config.backend.url.as_str().into(),
            backend_authority,
            backend_timeout: config.backend_timeout,
            forward_identity: config.forward_client_cert,
            access_log: config.access_log,
            tunnels,
            shutdown,
            stats,
        })
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
        if let Some(client) = &conn.client {
            client.request();
        }
        let response = match &conn.verdict {
            Err(refusal) => refused(refusal, &conn.ca_subjects, html),
            Ok(identity) => self.forward(&conn, identity, req, html).await,
        };
        let metrics = &self.stats.metrics;
        metrics
            .request_duration
            .observe(started.elapsed().as_secs_f64());
        Metrics::count(&metrics.requests, status_class(response.status()));
        let record = record.map(|r| r.with_status(response.status().as_u16()));
        Ok(response.map(|body| ProxyBody::new(body, record, guard)))
    }

    async fn forward(
        &self,
        conn: &ConnInfo,
        identity: &Identity,
        mut req: Request<Incoming>,
        html: bool,
    ) -> Response<Either<Incoming, Full<Bytes>>> {
        let upgrade = is_websocket_upgrade(req.headers());
        let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
        let out = match self.outbound(conn, identity, req, upgrade) {
            Ok(out) => out,
            Err(status) => return simple(status),
        };
        let result = tokio::time::timeout(self.backend_timeout, self.client.request(out)).await;
        let mut resp = match result {
            Ok(Ok(resp)) => resp,
            Ok(Err(e)) => return self.backend_down(&e, html),
            Err(_) => return self.backend_slow(html),
        };
        self.stats.backend_ok();
        if let Some(client_upgrade) = client_upgrade
            && resp.status() == StatusCode::SWITCHING_PROTOCOLS
        {
            let backend_upgrade = hyper::upgrade::on(&mut resp);
            self.spawn_tunnel(conn, client_upgrade, backend_upgrade);
            strip_response_headers(resp.headers_mut(), true);
        } else {
            strip_response_headers(resp.headers_mut(), false);
        }
        resp.map(Either::Left)
    }

    /// Builds the request WebORCA sees.
    fn outbound(
        &self,
        conn: &ConnInfo,
        identity: &Identity,
        req: Request<Incoming>,
        upgrade: bool,
    ) -> Result<Request<Incoming>, StatusCode> {
        let (mut parts, body) = req.into_parts();
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let uri = Uri::builder()
            .scheme("http")
            .authority(self.backend_authority.clone())
            .path_and_query(path)
            .build()
            .map_err(|_| StatusCode::BAD_REQUEST)?;
        // HTTP/2 carries the host in :authority; WebORCA needs a Host header.
        let host = match parts.headers.get(header::HOST) {
            Some(h) => h.clone(),
            None => parts
                .uri
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
                .ok_or(StatusCode::BAD_REQUEST)?,
        };
        let headers = &mut parts.headers;
        strip_hop_by_hop(headers);
        for name in IDENTITY_HEADERS.iter().chain(&[
            "x-forwarded-for",
            "x-forwarded-proto",
            "x-forwarded-host",
            "forwarded",
        ]) {
            headers.remove(*name);
        }
        // Any other X-SSL-Client-* a client invents is not ours to pass on either.
        let spoofed: Vec<HeaderName> = headers
            .keys()
            .filter(|n| n.as_str().starts_with("x-ssl-client-"))
            .cloned()
            .collect();
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
        Ok(Request::from_parts(parts, body))
    }

    fn spawn_tunnel(
        &self,
        conn: &ConnInfo,
        client: hyper::upgrade::OnUpgrade,
        backend: hyper::upgrade::OnUpgrade,
    ) {
        let shutdown = self.shutdown.clone();
        let peer = conn.peer;
        let cn = conn
            .verdict
            .as_ref()
            .map(|i| i.cn().to_string())
            .unwrap_or_default();
        let guard = conn.activity.begin();
        let access_log = self.access_log;
        self.tunnels.spawn(async move {
            let _guard = guard;
            let started = Instant::now();
            let (client, backend) = tokio::join!(client, backend);
            let (Ok(client), Ok(backend)) = (client, backend) else {
                tracing::debug!(%peer, "websocket upgrade did not complete");
                return;
            };
            let mut client = TokioIo::new(client);
            let mut backend = TokioIo::new(backend);
            let outcome = tokio::select! {
                r = tokio::io::copy_bidirectional(&mut client, &mut backend) => match r {
                    Ok((up, down)) => format!("closed, {up} bytes up, {down} bytes down"),
                    Err(e) => format!("ended: {e}"),
                },
                _ = shutdown.cancelled() => {
                    use tokio::io::AsyncWriteExt as _;
                    let _ = client.shutdown().await;
                    "closed by shutdown".to_string()
                }
            };
            if access_log {
                let secs = started.elapsed().as_secs_f64();
                tracing::info!(target: "access", %peer, cn = %cn, duration_s = format_args!("{secs:.1}"), "websocket {outcome}");
            }
        });
    }

    fn backend_down(
        &self,
        e: &hyper_util::client::legacy::Error,
        html: bool,
    ) -> Response<Either<Incoming, Full<Bytes>>> {
        let detail = error_chain(e);
        let kind = if e.is_connect() { "connect" } else { "other" };
        self.stats.backend_failed(kind, &detail);
        tracing::warn!(backend = %self.backend_url, "WebORCA is not answering: {detail}");
        page(
            &Page::BackendDown {
                backend: &self.backend_url,
                detail: &detail,
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
