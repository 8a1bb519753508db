//! The status endpoints: the loopback-only listener and its answers
//! (`/healthz`, `/readyz`, `/status`, `/metrics`), read from [`Stats`](super::Stats).

#[allow(unused_imports)]
use super::*;

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

pub(super) fn reply(
    status: StatusCode,
    content_type: &'static str,
    body: String,
) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    resp
}

pub(super) async fn answer(
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
pub(super) fn local_host(host: Option<&header::HeaderValue>) -> bool {
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

pub(super) async fn readyz(ctx: &StatusContext) -> Response<Full<Bytes>> {
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

pub(super) fn cert_json(info: &crate::x509::CertInfo, now: DateTime<Utc>) -> Value {
    json!({
        "subject": info.subject_oneline,
        "serial": info.serial_hex,
        "not_after": info.not_after.to_rfc3339(),
        "days_left": info.days_left(now),
    })
}

pub(super) fn status_json(ctx: &StatusContext) -> Value {
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
