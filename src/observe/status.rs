//! The status listener (STATUS_LISTEN, loopback only) and what it reports:
//!
//! - `/healthz`: the process is alive (200).
//! - `/readyz`: certificates are loaded and WebORCA answered within the last
//!   30 s (or answers a TCP connect now): 200, else 503.
//! - `/status`: JSON — version, uptime, server/CA certificates with days left,
//!   CRLs, backend state, last reload, and the client certificates seen
//!   recently (CN, serial, days left, last seen, requests; flagged inside
//!   CERT_WARN_DAYS).
//! - `/metrics`: Prometheus text (see `metrics`).

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::{Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::tls::{Identity, TlsState};

/// Client certificates remembered for `/status`; the least recently seen go first.
const MAX_CLIENTS_TRACKED: usize = 1024;
/// A backend answer younger than this makes `/readyz` green without a probe.
const BACKEND_FRESH: Duration = Duration::from_secs(30);
/// How long the `/readyz` probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// A client certificate seen in use.
#[derive(Debug)]
pub struct SeenClient {
    /// CN, or `-`
    pub cn: String,
    /// serial, hex
    pub serial: String,
    /// the certificate's end of validity
    pub not_after: DateTime<Utc>,
    last_seen: AtomicI64,
    requests: AtomicU64,
    /// the day (days since 1970) its expiry was last logged
    warned_day: AtomicI64,
}

impl SeenClient {
    /// Counts one request.
    pub fn request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.last_seen
            .store(Utc::now().timestamp(), Ordering::Relaxed);
    }
}

/// The last reload and how it went.
#[derive(Debug, Clone)]
struct ReloadRecord {
    at: DateTime<Utc>,
    ok: bool,
    message: String,
}

/// Everything the status listener reports on, shared by the server parts.
pub struct Stats {
    /// Prometheus metrics
    pub metrics: Metrics,
    started: Instant,
    started_at: DateTime<Utc>,
    /// when WebORCA last answered (Unix seconds, 0 = never)
    backend_ok_at: AtomicI64,
    /// WebORCA's last failure, for `/status`
    backend_error: Mutex<Option<String>>,
    last_reload: Mutex<Option<ReloadRecord>>,
    clients: Mutex<HashMap<String, Arc<SeenClient>>>,
    /// CERT_WARN_DAYS, updated on reload
    warn_days: AtomicU32,
}

impl Stats {
    /// Fresh statistics.
    pub fn new(warn_days: u32) -> Stats {
        Stats {
            metrics: Metrics::new(),
            started: Instant::now(),
            started_at: Utc::now(),
            backend_ok_at: AtomicI64::new(0),
            backend_error: Mutex::new(None),
            last_reload: Mutex::new(None),
            clients: Mutex::new(HashMap::new()),
            warn_days: AtomicU32::new(warn_days),
        }
    }

    /// WebORCA answered.
    pub fn backend_ok(&self) {
        self.backend_ok_at
            .store(Utc::now().timestamp(), Ordering::Relaxed);
    }

    /// WebORCA failed; `kind` is the metric label.
    pub fn backend_failed(&self, kind: &str, detail: &str) {
        Metrics::count(&self.metrics.backend_errors, kind);
        *self
            .backend_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(detail.to_string());
    }

    /// Records a reload's outcome.
    pub fn reloaded(&self, ok: bool, message: &str, warn_days: u32) {
        Metrics::count(&self.metrics.reloads, if ok { "ok" } else { "failed" });
        if ok {
            self.warn_days.store(warn_days, Ordering::Relaxed);
        }
        let record = ReloadRecord {
            at: Utc::now(),
            ok,
            message: message.to_string(),
        };
        *self
            .last_reload
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(record);
    }

    /// Notes a verified client; logs once a day when its certificate expires within CERT_WARN_DAYS.
    pub fn client_seen(&self, id: &Identity) -> Arc<SeenClient> {
        let now = Utc::now();
        let client = {
            let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
            if !clients.contains_key(&id.info.sha256_hex) && clients.len() >= MAX_CLIENTS_TRACKED {
                evict_oldest(&mut clients);
            }
            clients
                .entry(id.info.sha256_hex.clone())
                .or_insert_with(|| {
                    Arc::new(SeenClient {
                        cn: id.cn().to_string(),
                        serial: id.info.serial_hex.clone(),
                        not_after: id.info.not_after,
                        last_seen: AtomicI64::new(now.timestamp()),
                        requests: AtomicU64::new(0),
                        warned_day: AtomicI64::new(i64::MIN),
                    })
                })
                .clone()
        };
        let days = id.info.days_left(now);
        let today = now.timestamp().div_euclid(86_400);
        if days <= i64::from(self.warn_days.load(Ordering::Relaxed))
            && client.warned_day.swap(today, Ordering::Relaxed) != today
        {
            tracing::warn!(
                "client certificate CN={} (serial {}) expires in {days} days ({}); issue a new one with orca-catool issue_client_cert before the user is locked out",
                crate::text::log_safe(&client.cn),
                crate::text::log_safe(&client.serial),
                client
                    .not_after
                    .with_timezone(&chrono::Local)
                    .format(crate::log::TIME_FORMAT)
            );
        }
        client
    }

    fn backend_fresh(&self) -> bool {
        let at = self.backend_ok_at.load(Ordering::Relaxed);
        at > 0 && Utc::now().timestamp() - at < BACKEND_FRESH.as_secs() as i64
    }
}

fn evict_oldest(clients: &mut HashMap<String, Arc<SeenClient>>) {
    let oldest = clients
        .iter()
        .min_by_key(|(_, c)| c.last_seen.load(Ordering::Relaxed))
        .map(|(k, _)| k.clone());
    if let Some(k) = oldest {
        clients.remove(&k);
    }
}

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

/// Serves the status endpoints until `shutdown`.
pub async fn serve(listener: TcpListener, ctx: StatusContext, shutdown: CancellationToken) {
    let slots = Arc::new(tokio::sync::Semaphore::new(STATUS_MAX_CONNECTIONS));
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
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let svc = service_fn(move |req| answer(ctx.clone(), req));
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10));
            let _ = builder.serve_connection(TokioIo::new(tcp), svc).await;
        });
    }
}

fn reply(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    resp
}

async fn answer(
    ctx: StatusContext,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    const JSON: &str = "application/json";
    if !local_host(req.headers().get(header::HOST)) {
        return Ok(reply(
            StatusCode::MISDIRECTED_REQUEST,
            "text/plain",
            "the status listener answers only Host: localhost, 127.0.0.1 or [::1]\n".into(),
        ));
    }
    Ok(match req.uri().path() {
        "/healthz" => reply(StatusCode::OK, "text/plain", "ok\n".into()),
        "/readyz" => readyz(&ctx).await,
        "/status" => reply(StatusCode::OK, JSON, status_json(&ctx).to_string()),
        "/metrics" => {
            ctx.stats.metrics.set_crl_state(&ctx.tls.load(), Utc::now());
            reply(
                StatusCode::OK,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ctx.stats.metrics.encode(),
            )
        }
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            "/healthz /readyz /status /metrics\n".into(),
        ),
    })
}

/// Whether a Host header names this machine by a loopback name: `localhost`,
/// `127.0.0.1` or `[::1]`, with or without a port. Anything else — above all
/// a name a web page's script resolved to 127.0.0.1 (DNS rebinding) — is
/// refused, so a browser on the server cannot read `/status`.
fn local_host(host: Option<&header::HeaderValue>) -> bool {
    let Some(text) = host.and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let Ok(authority) = text.parse::<http::uri::Authority>() else {
        return false;
    };
    if authority.as_str() != text || text.contains('@') {
        return false;
    }
    let name = authority.host();
    name.eq_ignore_ascii_case("localhost") || name == "127.0.0.1" || name == "[::1]"
}

async fn readyz(ctx: &StatusContext) -> Response<Full<Bytes>> {
    let ready = ctx.stats.backend_fresh()
        || matches!(
            tokio::time::timeout(
                PROBE_TIMEOUT,
                tokio::net::TcpStream::connect(&ctx.backend_authority)
            )
            .await,
            Ok(Ok(_))
        );
    if ready {
        ctx.stats.backend_ok();
        reply(StatusCode::OK, "text/plain", "ready\n".into())
    } else {
        let text = format!(
            "not ready: WebORCA at {} is not answering\n",
            ctx.backend_url
        );
        reply(StatusCode::SERVICE_UNAVAILABLE, "text/plain", text)
    }
}

fn cert_json(info: &crate::x509::CertInfo, now: DateTime<Utc>) -> Value {
    json!({
        "subject": info.subject_oneline,
        "serial": info.serial_hex,
        "not_after": info.not_after.to_rfc3339(),
        "days_left": info.days_left(now),
    })
}

fn status_json(ctx: &StatusContext) -> Value {
    let now = Utc::now();
    let stats = &ctx.stats;
    let tls = ctx.tls.load();
    let warn_days = i64::from(stats.warn_days.load(Ordering::Relaxed));
    let crls: Vec<Value> = tls
        .crls
        .iter()
        .map(|c| {
            let stale = crate::tls::crl::is_stale(c, now);
            json!({
                "path": c.path.display().to_string(), "issuer": c.issuer,
                "this_update": c.this_update.to_rfc3339(),
                "next_update": c.next_update.map(|n| n.to_rfc3339()),
                "revoked": c.revoked,
                "state": if stale { "stale" } else { "current" },
            })
        })
        .collect();
    let crl_stale = tls.crl_stale == crate::config::CrlStale::Refuse;
    let refusing = crl_stale && tls.crls.iter().any(|c| crate::tls::crl::is_stale(c, now));
    let mut clients: Vec<Value> = {
        let map = stats.clients.lock().unwrap_or_else(PoisonError::into_inner);
        map.values()
            .map(|c| {
                let days = (c.not_after - now).num_seconds().div_euclid(86_400);
                let last = DateTime::from_timestamp(c.last_seen.load(Ordering::Relaxed), 0)
                    .unwrap_or_default();
                json!({
                    "cn": c.cn, "serial": c.serial, "not_after": c.not_after.to_rfc3339(),
                    "days_left": days, "last_seen": last.to_rfc3339(),
                    "requests": c.requests.load(Ordering::Relaxed),
                    "expiring_soon": days <= warn_days,
                })
            })
            .collect()
    };
    clients.sort_by(|a, b| b["last_seen"].as_str().cmp(&a["last_seen"].as_str()));
    let reload = stats
        .last_reload
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let backend_ok_at = stats.backend_ok_at.load(Ordering::Relaxed);
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "started": stats.started_at.to_rfc3339(),
        "uptime_seconds": stats.started.elapsed().as_secs(),
        "server_certificate": cert_json(&tls.server_cert, now),
        "ca_certificates": tls.ca_certs.iter().map(|c| cert_json(c, now)).collect::<Vec<_>>(),
        "crls": crls,
        "crl_stale": if crl_stale { "refuse" } else { "warn" },
        "crl_refusing_clients": refusing,
        "backend": {
            "url": ctx.backend_url,
            "last_ok": DateTime::from_timestamp(backend_ok_at, 0).filter(|_| backend_ok_at > 0).map(|t| t.to_rfc3339()),
            "state": if stats.backend_fresh() { "answering" } else { "unknown or not answering" },
            "last_error": stats.backend_error.lock().unwrap_or_else(PoisonError::into_inner).clone(),
        },
        "last_reload": reload.map(|r| json!({"at": r.at.to_rfc3339(), "ok": r.ok, "message": r.message})),
        "cert_warn_days": warn_days,
        "clients": clients,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_hosts_are_answered() {
        let ok = |h: &str| local_host(Some(&header::HeaderValue::from_str(h).unwrap()));
        for h in [
            "localhost",
            "LOCALHOST:9100",
            "127.0.0.1",
            "127.0.0.1:9100",
            "[::1]",
            "[::1]:9100",
        ] {
            assert!(ok(h), "{h}");
        }
        for h in [
            "evil.example",
            "evil.example:9100",
            "127.0.0.2",
            "localhost.evil.example",
            "u@localhost",
            "[::2]",
            "",
        ] {
            assert!(!ok(h), "{h}");
        }
        assert!(!local_host(None));
    }
}
