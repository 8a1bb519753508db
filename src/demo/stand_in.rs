//! The demo's stand-in for WebORCA: an identity page on `/`, a WebSocket echo
//! on `/ws` (answering push-exchanger's subscribe), a JSON echo elsewhere.

use super::*;

// ---------------------------------------------------------------------------------------
// The stand-in for WebORCA.
// ---------------------------------------------------------------------------------------

type Body = Full<Bytes>;

/// The running stand-in; stops, with its connections, when dropped.
pub(super) struct StandIn {
    /// where it listens: 127.0.0.1 and a free port
    pub(super) addr: SocketAddr,
    /// the accept loop, which owns the connections
    _task: AbortOnDropHandle<()>,
}

impl StandIn {
    pub(super) async fn start() -> Result<StandIn, Failure> {
        let bound = async {
            let listener = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).await?;
            let addr = listener.local_addr()?;
            Ok::<_, std::io::Error>((listener, addr))
        };
        let (listener, addr) = bound.await.map_err(|e| {
            Failure::Runtime(format!(
                "demo: cannot start the stand-in for WebORCA on 127.0.0.1: {e}"
            ))
        })?;
        tracing::info!("demo: stand-in for WebORCA on http://{addr}");
        Ok(StandIn {
            addr,
            _task: AbortOnDropHandle::new(tokio::spawn(accept_loop(listener))),
        })
    }
}

pub(super) async fn accept_loop(listener: TcpListener) {
    // Connections live in the set, so they end with the loop when the demo stops.
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => {
                    conns.spawn(serve_stand_in(tcp));
                }
                Err(e) => {
                    tracing::warn!("demo: the stand-in cannot accept: {e}");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

pub(super) async fn serve_stand_in(tcp: TcpStream) {
    let served = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(tcp), service_fn(answer))
        .with_upgrades()
        .await;
    if let Err(e) = served {
        tracing::debug!("demo: stand-in connection: {e}");
    }
}

pub(super) async fn answer(req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    if req.uri().path() == "/ws" {
        return Ok(websocket(req));
    }
    let seen = seen(&req);
    if req.uri().path() == "/" && matches!(*req.method(), Method::GET | Method::HEAD) {
        let html = wants_html(req.headers().get(ACCEPT));
        return Ok(page(&seen, html));
    }
    Ok(echo(req, &seen).await)
}

pub(super) fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Body> {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// A header the stand-in shows, with its label in Japanese and in English.
pub(super) struct Shown {
    header: &'static str,
    ja: &'static str,
    en: &'static str,
}

pub(super) const fn shown(header: &'static str, ja: &'static str, en: &'static str) -> Shown {
    Shown { header, ja, en }
}

/// What the proxy tells WebORCA about the client (SPEC "What the backend sees").
pub(super) const SHOWN: [Shown; 8] = [
    shown(
        "x-ssl-client-s-dn",
        "証明書の主体 (Subject)",
        "certificate subject",
    ),
    shown("x-ssl-client-i-dn", "発行者 (Issuer)", "issuer"),
    shown("x-ssl-client-serial", "シリアル番号", "serial number"),
    shown("x-ssl-client-not-after", "有効期限", "valid until"),
    shown("x-ssl-client-verify", "検証結果", "verification"),
    shown(
        "x-ssl-client-fingerprint",
        "フィンガープリント (SHA-256)",
        "fingerprint (SHA-256)",
    ),
    shown(
        "x-forwarded-for",
        "クライアントのアドレス",
        "client address",
    ),
    shown("host", "Host ヘッダ", "Host header"),
];

/// Each shown header's value in the request, if present.
pub(super) fn seen(req: &Request<Incoming>) -> Vec<(&'static Shown, Option<String>)> {
    SHOWN
        .iter()
        .map(|s| {
            let value = req
                .headers()
                .get(s.header)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
            (s, value)
        })
        .collect()
}

pub(super) fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    crate::pages::escape_html(text, &mut out);
    out
}

pub(super) const PAGE_TITLE_JA: &str = "これはデモ用の WebORCA の代わりです";
pub(super) const PAGE_TITLE_EN: &str = "This is the demo stand-in for WebORCA";
pub(super) const PAGE_LEAD_JA: &str = "この画面が見えていれば、クライアント証明書による認証 (SSLクライアント認証) \
     は成功しています。プロキシは次の情報を WebORCA に渡しました。";
pub(super) const PAGE_LEAD_EN: &str = "If you can read this, client-certificate authentication worked. \
     The proxy passed this to WebORCA:";
pub(super) const PAGE_NEXT_JA: &str = "本番では、proxy.conf の BACKEND_URL を WebORCA (HTTP_PORT) に向け、\
     証明書を orca-catool で発行したものに替えます。";
pub(super) const PAGE_NEXT_EN: &str = "In production, BACKEND_URL in proxy.conf points at WebORCA (its HTTP_PORT) \
     and the certificates are the ones orca-catool issued.";

/// `GET /`: the identity the proxy forwarded, Japanese first, English below.
pub(super) fn page(seen: &[(&Shown, Option<String>)], html: bool) -> Response<Body> {
    let row = |label: &str, value: &Option<String>, none: &str| {
        let value = value.as_deref().unwrap_or(none);
        if html {
            format!(
                "<tr><th>{}</th><td><code>{}</code></td></tr>\n",
                escape_html(label),
                escape_html(value)
            )
        } else {
            format!("  {label}: {value}\n")
        }
    };
    let ja: String = seen.iter().map(|(s, v)| row(s.ja, v, "(なし)")).collect();
    let en: String = seen.iter().map(|(s, v)| row(s.en, v, "(none)")).collect();
    if !html {
        let text = format!(
            "{PAGE_TITLE_JA}\n{PAGE_LEAD_JA}\n{ja}{PAGE_NEXT_JA}\n\n\
             {PAGE_TITLE_EN}\n{PAGE_LEAD_EN}\n{en}{PAGE_NEXT_EN}\n"
        );
        return respond(StatusCode::OK, "text/plain; charset=utf-8", text);
    }
    let body = format!(
        "<!DOCTYPE html>\n<html lang=\"ja\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>WebORCA の代わり (デモ) / WebORCA stand-in (demo)</title>\n\
         <style>body{{font-family:sans-serif;max-width:52em;margin:2em auto;padding:0 1em;line-height:1.6}}\
         th{{text-align:left;padding-right:1em;font-weight:normal;color:#555}}\
         code{{word-break:break-all}}hr{{margin:2em 0}}</style>\n</head>\n<body>\n\
         <h1>{PAGE_TITLE_JA}</h1>\n<p>{PAGE_LEAD_JA}</p>\n<table>\n{ja}</table>\n<p>{PAGE_NEXT_JA}</p>\n\
         <hr>\n<div lang=\"en\">\n<h1>{PAGE_TITLE_EN}</h1>\n<p>{PAGE_LEAD_EN}</p>\n<table>\n{en}</table>\n\
         <p>{PAGE_NEXT_EN}</p>\n</div>\n</body>\n</html>\n"
    );
    respond(StatusCode::OK, "text/html; charset=utf-8", body)
}

/// Any other path: the request as JSON, to see what an ORCA API call would reach WebORCA with.
pub(super) async fn echo(
    req: Request<Incoming>,
    seen: &[(&Shown, Option<String>)],
) -> Response<Body> {
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(str::to_string);
    // Counted as it streams, never held whole.
    let mut body = req.into_body();
    let mut body_bytes = 0u64;
    while let Some(Ok(frame)) = body.frame().await {
        if let Some(data) = frame.data_ref() {
            body_bytes += data.len() as u64;
        }
    }
    let headers: serde_json::Map<String, Value> = seen
        .iter()
        .map(|(s, v)| {
            (
                s.header.to_string(),
                v.clone().map_or(Value::Null, Value::String),
            )
        })
        .collect();
    let echo = json!({
        "stand_in": "weborca-mtls-proxy demo",
        "method": method,
        "path": path,
        "query": query,
        "body_bytes": body_bytes,
        "headers": headers,
    });
    respond(StatusCode::OK, "application/json", format!("{echo}\n"))
}

/// `/ws`: accepts the upgrade and echoes messages, like WebORCA's push endpoint would answer.
pub(super) fn websocket(mut req: Request<Incoming>) -> Response<Body> {
    let upgrade = req
        .headers()
        .get(UPGRADE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"));
    let accept = req
        .headers()
        .get(SEC_WEBSOCKET_KEY)
        .filter(|_| upgrade)
        .and_then(|key| HeaderValue::from_str(&derive_accept_key(key.as_bytes())).ok());
    let Some(accept) = accept else {
        return respond(
            StatusCode::BAD_REQUEST,
            "text/plain; charset=utf-8",
            "/ws は WebSocket 専用です / /ws expects a WebSocket upgrade\n",
        );
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    // The tunnel outlives this request; the proxy closes it on shutdown.
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => echo_ws(TokioIo::new(upgraded)).await,
            Err(e) => tracing::debug!("demo: stand-in WebSocket upgrade failed: {e}"),
        }
    });
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = resp.headers_mut();
    headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(SEC_WEBSOCKET_ACCEPT, accept);
    resp
}

pub(super) async fn echo_ws(io: TokioIo<hyper::upgrade::Upgraded>) {
    let mut ws = WebSocketStream::from_raw_socket(io, Role::Server, None).await;
    // Pings are answered by tungstenite itself.
    while let Some(Ok(msg)) = ws.next().await {
        let reply = match msg {
            Message::Text(text) => Message::text(ws_reply(text.as_str())),
            Message::Binary(data) => Message::Binary(data),
            Message::Close(_) => break,
            _ => continue,
        };
        if ws.send(reply).await.is_err() {
            break;
        }
    }
}

/// push-exchanger starts with `{"command":"subscribe","req.id":…}` and waits
/// for WebORCA's `subscribed` with the same req.id; anything else is echoed.
pub(super) fn ws_reply(text: &str) -> String {
    match serde_json::from_str::<Value>(text) {
        Ok(v) if v.get("command").and_then(Value::as_str) == Some("subscribe") => json!({
            "command": "subscribed",
            "req.id": v.get("req.id").cloned().unwrap_or(Value::Null),
            "sub.id": "demo",
        })
        .to_string(),
        _ => text.to_string(),
    }
}
