//! The status endpoints on axum: the loopback-only listener and its answers
//! (`/healthz`, `/readyz`, `/status`, `/metrics`, and the console at `/`),
//! read from [`Stats`](super::Stats).
//!
//! The loopback-Host check is a middleware in front of every route. The
//! connection cap is kept at accept time, not as a request layer: a request
//! layer sees nothing of a connection that sends no request, and it is
//! exactly those idle sockets a flood piles up. So that such sockets cannot
//! keep the slots, a connection is closed when it has not sent a whole
//! request head within [`STATUS_HEADER_TIMEOUT`] (of its accept or of its
//! last answer), or has left an answer unread for [`STATUS_WRITE_TIMEOUT`].

#[allow(unused_imports)]
use super::*;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::StatusCode;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::stalled::WriteBounded;
use crate::observe::console::{self, Place};
use crate::tls::TlsState;

/// How long the `/readyz` probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// What the status listener needs besides the stats.
#[derive(Clone)]
pub struct StatusContext {
    /// the statistics
    pub stats: Arc<Stats>,
    /// the TLS state now serving
    pub tls: Arc<arc_swap::ArcSwap<TlsState>>,
    /// `host:port` of WebORCA, for the probe
    pub backend_authority: String,
    /// BACKEND_URL as written
    pub backend_url: String,
}

/// Most connections the status listener serves at once; one more is closed
/// as soon as it is accepted, so a flood cannot pile up tasks and sockets.
/// Monitoring and `curl` need one or two.
pub const STATUS_MAX_CONNECTIONS: usize = 32;

/// How long a status connection may take to send its request head, counted
/// from its accept or from the end of its last answer (HTTP/1.1 keep-alive):
/// past it the connection is closed, so idle or trickling sockets cannot
/// hold the [`STATUS_MAX_CONNECTIONS`] slots. A monitor or `curl` sends its
/// request at once.
pub const STATUS_HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// How long an answer may wait for the client to read it: a connection
/// whose socket has had no room for that long is closed, so a client that
/// sends requests and never reads cannot hold a slot either.
pub const STATUS_WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// The routes, behind the loopback-Host check.
fn router(ctx: StatusContext) -> Router {
    Router::new()
        .route("/", get(console_page))
        .route("/healthz", get(|| async { text(StatusCode::OK, "ok\n") }))
        .route("/readyz", get(readyz))
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .fallback(|| async {
            text(
                StatusCode::NOT_FOUND,
                "/ /healthz /readyz /status /metrics\n",
            )
        })
        .layer(middleware::from_fn(loopback_only))
        .with_state(ctx)
}

/// Serves the status endpoints until `shutdown`.
pub async fn serve(listener: TcpListener, ctx: StatusContext, shutdown: CancellationToken) {
    let slots = Arc::new(tokio::sync::Semaphore::new(STATUS_MAX_CONNECTIONS));
    let app = router(ctx);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.cancelled() => return,
        };
        let Ok((tcp, _)) = accepted else { continue };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            drop(tcp);
            continue;
        };
        let app = app.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                app.clone().oneshot(req.map(axum::body::Body::new))
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(STATUS_HEADER_TIMEOUT);
            let io = WriteBounded::new(tcp, STATUS_WRITE_TIMEOUT);
            let _ = builder.serve_connection(TokioIo::new(io), svc).await;
        });
    }
}

fn text(status: StatusCode, body: &'static str) -> Response {
    (status, [(http::header::CONTENT_TYPE, "text/plain")], body).into_response()
}

/// Refuses (421) a request whose Host is not one loopback name, or whose
/// request target names another host (it would win over the Host).
async fn loopback_only(req: Request, next: Next) -> Response {
    let mut hosts = req.headers().get_all(header::HOST).iter();
    let (host, second) = (hosts.next(), hosts.next());
    let target_ok = req.uri().authority().is_none_or(|a| {
        header::HeaderValue::from_str(a.as_str()).is_ok_and(|v| local_host(Some(&v)))
    });
    if second.is_some() || !target_ok || !local_host(host) {
        return text(
            StatusCode::MISDIRECTED_REQUEST,
            "状態表示は Host: localhost、127.0.0.1、[::1] だけに答えます（SSH のトンネル越しでも、手元のブラウザーで localhost として開いてください）。\n\
             the status listener answers only one Host: localhost, 127.0.0.1 or [::1]\n",
        );
    }
    next.run(req).await
}

/// Whether a Host header names this machine by a loopback name: `localhost`,
/// `127.0.0.1` or `[::1]`, with or without a port. Anything else — above all
/// a name a web page's script resolved to 127.0.0.1 (DNS rebinding) — is
/// refused, so a browser on the server cannot read `/status`.
pub(super) fn local_host(host: Option<&header::HeaderValue>) -> bool {
    let Some(text) = host.and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let Ok(authority) = text.parse::<http::uri::Authority>() else {
        return false;
    };
    let name = authority.host();
    let canonical = match authority.port_u16() {
        Some(port) => format!("{name}:{port}"),
        None => name.to_string(),
    };
    if canonical != text {
        return false;
    }
    name.eq_ignore_ascii_case("localhost") || name == "127.0.0.1" || name == "[::1]"
}

/// Whether WebORCA accepts a TCP connection now, within `limit`.
async fn backend_answers(ctx: &StatusContext, limit: Duration) -> bool {
    probe_backend(&ctx.stats, &ctx.backend_authority, limit).await
}

/// Whether WebORCA at `authority` accepts a TCP connection now, within
/// `limit`, recorded in `stats`: an answer a moment ago says nothing about a
/// WebORCA stopped since.
pub async fn probe_backend(stats: &Stats, authority: &str, limit: Duration) -> bool {
    match tokio::time::timeout(limit, tokio::net::TcpStream::connect(authority)).await {
        Ok(Ok(_)) => {
            stats.backend_ok();
            true
        }
        Ok(Err(e)) => {
            stats.backend_unreachable(&format!("{authority} does not accept a connection: {e}"));
            false
        }
        Err(_) => {
            let secs = limit.as_secs();
            stats.backend_unreachable(&format!(
                "{authority} did not accept a connection within {secs} s"
            ));
            false
        }
    }
}

async fn readyz(State(ctx): State<StatusContext>) -> Response {
    // CRL_STALE=refuse past CA_CRL's nextUpdate: every client is refused,
    // which a load balancer or monitor must not read as serving
    let deadline = ctx.tls.load().verifier.crl_deadline();
    let refusing = deadline.is_some_and(|d| crate::tls::judgement::unix_now() > d);
    if !refusing && backend_answers(&ctx, PROBE_TIMEOUT).await {
        text(StatusCode::OK, "ready\n")
    } else {
        let body = if refusing {
            "not ready: CA_CRL is past its nextUpdate and CRL_STALE=refuse, so every client \
             is refused; make a new CRL with orca-catool issue_crl and put it in place with \
             install-crl\n"
                .to_string()
        } else {
            format!(
                "not ready: WebORCA at {} is not answering\n",
                ctx.backend_url
            )
        };
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [(http::header::CONTENT_TYPE, "text/plain")],
            body,
        )
            .into_response()
    }
}

async fn status(State(ctx): State<StatusContext>) -> Response {
    // the backend's state is as of now, like `/readyz`
    backend_answers(&ctx, PROBE_TIMEOUT).await;
    axum::Json(super::json::status(&ctx)).into_response()
}

/// The metrics as OpenMetrics when the scraper asks for it (Prometheus
/// does), else in Prometheus' classic text format (curl, most tools).
async fn metrics(State(ctx): State<StatusContext>, headers: http::HeaderMap) -> Response {
    ctx.stats.metrics.set_crl_state(&ctx.tls.load(), Utc::now());
    let openmetrics = headers
        .get_all(http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    let (content_type, body) = if openmetrics {
        let open = "application/openmetrics-text; version=1.0.0; charset=utf-8";
        (open, ctx.stats.metrics.encode())
    } else {
        let classic = "text/plain; version=0.0.4; charset=utf-8";
        (classic, ctx.stats.metrics.encode_classic())
    };
    (
        StatusCode::OK,
        [(http::header::CONTENT_TYPE, content_type)],
        body,
    )
        .into_response()
}

/// The operator console. WebORCA is probed like `/readyz`, with a shorter
/// limit: the page must come quickly even when WebORCA hangs.
async fn console_page(State(ctx): State<StatusContext>) -> Response {
    backend_answers(&ctx, Duration::from_secs(1)).await;
    let view = super::console_view(&ctx.stats, &ctx.tls.load(), &ctx.backend_url);
    html(console::render(&view, &Place::StatusListener))
}

/// A page as `text/html`, never cached (it is a snapshot of now), never
/// framed, allowed no script (it has none).
pub fn html(page: maud::Markup) -> Response {
    (
        StatusCode::OK,
        [
            (http::header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (http::header::CACHE_CONTROL, "no-store"),
            (http::header::X_FRAME_OPTIONS, "DENY"),
            (
                http::header::CONTENT_SECURITY_POLICY,
                crate::observe::console::CSP,
            ),
        ],
        page.into_string(),
    )
        .into_response()
}
