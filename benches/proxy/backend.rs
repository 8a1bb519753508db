//! The stand-in WebORCA both servers forward to: plain HTTP/1.1 on loopback,
//! as fast as hyper goes, in its own process (the bench binary run again with
//! [`ROLE_ENV`] set) so its CPU is not counted against either server and the
//! load generator's runtime does not starve it.
//!
//! - `GET /` (and anything else): a small fixed JSON answer.
//! - `POST /upload`: reads and discards the body, answers how many bytes came.
//! - `GET /download?bytes=N`: N bytes, streamed in 64 KiB chunks of one static buffer.
//! - `GET /ws` with `Upgrade: websocket`: 101, then holds the connection,
//!   discarding whatever arrives, until the other side closes.
//!
//! For the soak (benches/soak.rs), which restarts the backend and must know
//! whether refused clients ever reached it:
//! - `GET /ws-echo` with `Upgrade: websocket`: a WebSocket that echoes each
//!   text or binary message, answers pings and the Close handshake.
//! - `/refused-probe`: the same small answer as `/`, and counted (so is a
//!   `refused-probe` text message on `/ws-echo`); `GET
//!   /__count` answers `{"refused_probe":N}`, the count since this process started.
//! - [`PORT_ENV`]: bind this port instead of any free one, so a restarted
//!   backend comes back where the proxy forwards to.
//!
//! It exits when its stdin closes, i.e. when the bench process ends however it ends.

use std::convert::Infallible;
use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt, stream};
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Either, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::Role;

/// Set (to anything) in the environment of the bench binary run as the backend.
pub const ROLE_ENV: &str = "WEBORCA_BENCH_BACKEND";
/// The port to bind on 127.0.0.1, when set; any free port otherwise.
pub const PORT_ENV: &str = "WEBORCA_BENCH_BACKEND_PORT";
/// How long binding a given port is retried: the previous backend on that
/// port may still be on its way out.
const BIND_RETRY_FOR: Duration = Duration::from_secs(10);
/// Requests for `/refused-probe` since start, answered at `/__count`.
static REFUSED_PROBES: AtomicU64 = AtomicU64::new(0);
/// The answer to `GET /`: about the size of a small ORCA API reply.
const SMALL: &[u8] =
    br#"{"Api_Result":"00","Api_Result_Message":"OK","Patient_ID":"00001","Name":"bench"}"#;
/// The size of each chunk of a download.
const CHUNK: usize = 64 * 1024;

type Body = Either<
    Full<Bytes>,
    StreamBody<stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>>,
>;

/// Serves until stdin closes. Prints `listening on ADDR` on stdout once bound.
pub fn run() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("backend runtime");
    let port: u16 = std::env::var(PORT_ENV)
        .ok()
        .map(|p| p.parse().expect("backend port"))
        .unwrap_or(0);
    let listener = rt.block_on(bind(port)).expect("backend bind");
    let addr = listener.local_addr().expect("backend addr");
    println!("listening on {addr}");
    std::io::stdout().flush().expect("stdout");
    rt.spawn(accept_loop(listener));
    // The parent holds our stdin; EOF means it is gone.
    let mut line = String::new();
    while std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map(|n| n > 0)
        .unwrap_or(false)
    {
        line.clear();
    }
    rt.shutdown_background();
}

/// Binds 127.0.0.1:`port`, retrying a given port for [`BIND_RETRY_FOR`].
async fn bind(port: u16) -> std::io::Result<TcpListener> {
    let until = Instant::now() + BIND_RETRY_FOR;
    loop {
        match TcpListener::bind(("127.0.0.1", port)).await {
            Err(_) if port != 0 && Instant::now() < until => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            bound => return bound,
        }
    }
}

async fn accept_loop(listener: TcpListener) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            continue;
        };
        let _ = tcp.set_nodelay(true);
        tokio::spawn(async move {
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service_fn(handle))
                .with_upgrades();
            let _ = conn.await;
        });
    }
}

async fn handle(mut req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path();
    if path == "/ws" && req.headers().contains_key(header::UPGRADE) {
        return Ok(websocket(&mut req));
    }
    if path == "/ws-echo" && req.headers().contains_key(header::UPGRADE) {
        return Ok(websocket_echo(&mut req));
    }
    if path == "/refused-probe" {
        REFUSED_PROBES.fetch_add(1, Ordering::Relaxed);
    }
    if path == "/__count" {
        let n = REFUSED_PROBES.load(Ordering::Relaxed);
        return Ok(small(Bytes::from(format!("{{\"refused_probe\":{n}}}"))));
    }
    if path == "/upload" {
        let mut body = req.into_body();
        let mut n: u64 = 0;
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(f) => n += f.data_ref().map_or(0, |d| d.len() as u64),
                Err(_) => break,
            }
        }
        return Ok(small(Bytes::from(format!("{{\"received\":{n}}}"))));
    }
    if path == "/download" {
        let bytes: usize = req
            .uri()
            .query()
            .and_then(|q| q.strip_prefix("bytes="))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        return Ok(download(bytes));
    }
    Ok(small(Bytes::from_static(SMALL)))
}

fn small(body: Bytes) -> Response<Body> {
    let mut resp = Response::new(Either::Left(Full::new(body)));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    resp
}

fn download(bytes: usize) -> Response<Body> {
    let chunk = Bytes::from(vec![b'x'; CHUNK]);
    let mut frames = Vec::with_capacity(bytes / CHUNK + 1);
    let mut left = bytes;
    while left > 0 {
        let n = left.min(CHUNK);
        frames.push(Ok(Frame::data(chunk.slice(..n))));
        left -= n;
    }
    let mut resp = Response::new(Either::Right(StreamBody::new(stream::iter(frames))));
    resp.headers_mut().insert(
        header::CONTENT_LENGTH,
        header::HeaderValue::from(bytes as u64),
    );
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/octet-stream"),
    );
    resp
}

fn websocket(req: &mut Request<Incoming>) -> Response<Body> {
    let on_upgrade = hyper::upgrade::on(&mut *req);
    tokio::spawn(async move {
        if let Ok(upgraded) = on_upgrade.await {
            let mut io = TokioIo::new(upgraded);
            let mut buf = [0u8; 4096];
            while matches!(io.read(&mut buf).await, Ok(n) if n > 0) {}
        }
    });
    switching_protocols(req)
}

/// `/ws-echo`: every text or binary message back as it came; tungstenite
/// answers pings and completes the Close handshake.
fn websocket_echo(req: &mut Request<Incoming>) -> Response<Body> {
    let on_upgrade = hyper::upgrade::on(&mut *req);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let mut ws =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        while let Some(Ok(msg)) = ws.next().await {
            // a refused client's message counts like its request would
            if msg.to_text().is_ok_and(|t| t == "refused-probe") {
                REFUSED_PROBES.fetch_add(1, Ordering::Relaxed);
            }
            if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
                break;
            }
        }
    });
    switching_protocols(req)
}

/// The 101 answer to a WebSocket handshake.
fn switching_protocols(req: &Request<Incoming>) -> Response<Body> {
    let accept = req
        .headers()
        .get(header::SEC_WEBSOCKET_KEY)
        .map(|k| tokio_tungstenite::tungstenite::handshake::derive_accept_key(k.as_bytes()))
        .unwrap_or_default();
    let mut resp = Response::new(Either::Left(Full::new(Bytes::new())));
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(
        header::CONNECTION,
        header::HeaderValue::from_static("upgrade"),
    );
    h.insert(
        header::UPGRADE,
        header::HeaderValue::from_static("websocket"),
    );
    if let Ok(v) = header::HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    resp
}
