//! Backends for the hostile-conditions tests: [`Lean`], a fast stand-in for
//! WebORCA that only counts (it stays cheap under thousands of requests and
//! can be stopped and started again on its port), and [`Scripted`], a raw
//! TCP backend that fails on purpose (closes, resets, hangs mid-answer).

use std::collections::HashSet;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

/// What [`Lean`] counts.
#[derive(Default)]
pub struct LeanStats {
    /// requests received
    pub requests: AtomicUsize,
    /// requests being answered now
    pub in_flight: AtomicUsize,
    /// the most requests answered at once
    pub max_in_flight: AtomicUsize,
    /// TCP connections open now
    pub conns: AtomicUsize,
    /// the most TCP connections open at once
    pub max_conns: AtomicUsize,
    /// the `id=` query values received
    pub ids: Mutex<HashSet<String>>,
}

/// Raises `max` to `now` if higher.
fn raise(max: &AtomicUsize, now: usize) {
    max.fetch_max(now, Ordering::SeqCst);
}

/// Counts one unit up while alive.
struct Up(Arc<LeanStats>, fn(&LeanStats) -> &AtomicUsize);

impl Drop for Up {
    fn drop(&mut self) {
        (self.1)(&self.0).fetch_sub(1, Ordering::SeqCst);
    }
}

/// A fast stand-in backend: `/delay?ms=N` answers after N ms, `/hang` never
/// answers, `/ws` is a WebSocket echo, anything else answers `ok` at once. A
/// request body is read whole and its length answered. `id=X` in the query is
/// remembered in `stats.ids`.
pub struct Lean {
    pub addr: SocketAddr,
    pub stats: Arc<LeanStats>,
    accept: Option<JoinHandle<()>>,
    conns: Arc<Mutex<JoinSet<()>>>,
}

impl Drop for Lean {
    fn drop(&mut self) {
        if let Some(a) = self.accept.take() {
            a.abort();
        }
        self.conns.lock().unwrap().abort_all();
    }
}

impl Lean {
    pub async fn start() -> Lean {
        Self::start_on("127.0.0.1:0".parse().unwrap(), Arc::default()).await
    }

    /// Starts on `addr` (a port just freed by [`Lean::stop`]), counting into `stats`.
    pub async fn start_on(addr: SocketAddr, stats: Arc<LeanStats>) -> Lean {
        let listener = TcpListener::bind(addr).await.expect("bind lean backend");
        let addr = listener.local_addr().unwrap();
        let conns = Arc::new(Mutex::new(JoinSet::new()));
        let conns2 = conns.clone();
        let stats2 = stats.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let _ = tcp.set_nodelay(true);
                let stats = stats2.clone();
                conns2.lock().unwrap().spawn(async move {
                    let now = stats.conns.fetch_add(1, Ordering::SeqCst) + 1;
                    raise(&stats.max_conns, now);
                    let _up = Up(stats.clone(), |s| &s.conns);
                    let svc = service_fn(move |req| lean_answer(req, stats.clone()));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), svc)
                        .with_upgrades()
                        .await;
                });
            }
        });
        Lean {
            addr,
            stats,
            accept: Some(accept),
            conns,
        }
    }

    /// Stops listening and closes every connection; returns once the port is free.
    pub async fn stop(&mut self) {
        if let Some(a) = self.accept.take() {
            a.abort();
            let _ = a.await;
        }
        let mut set = std::mem::take(&mut *self.conns.lock().unwrap());
        set.shutdown().await;
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> usize {
        self.stats.requests.load(Ordering::SeqCst)
    }
}

type LeanBody = Full<Bytes>;

async fn lean_answer(
    mut req: Request<Incoming>,
    stats: Arc<LeanStats>,
) -> Result<Response<LeanBody>, Infallible> {
    stats.requests.fetch_add(1, Ordering::SeqCst);
    let now = stats.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    raise(&stats.max_in_flight, now);
    let _up = Up(stats.clone(), |s| &s.in_flight);
    let query = req.uri().query().unwrap_or("").to_string();
    let param = |name: &str| {
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .map(str::to_string)
    };
    if let Some(id) = param("id") {
        stats.ids.lock().unwrap().insert(id);
    }
    match req.uri().path() {
        "/ws" => return Ok(ws_echo(&mut req)),
        "/hang" => std::future::pending::<()>().await,
        "/delay" => {
            let ms = param("ms").and_then(|m| m.parse().ok()).unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        _ => {}
    }
    let len = match req.into_body().collect().await {
        Ok(b) => b.to_bytes().len(),
        Err(_) => return Ok(Response::new(Full::new(Bytes::from_static(b"broken")))),
    };
    Ok(Response::new(Full::new(Bytes::from(format!("ok {len}")))))
}

fn ws_echo(req: &mut Request<Incoming>) -> Response<LeanBody> {
    let Some(key) = req.headers().get("sec-websocket-key").cloned() else {
        let mut r = Response::new(Full::new(Bytes::from_static(b"no key")));
        *r.status_mut() = StatusCode::BAD_REQUEST;
        return r;
    };
    let on_upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
            TokioIo::new(upgraded),
            Role::Server,
            None,
        )
        .await;
        while let Some(Ok(msg)) = ws.next().await {
            if msg.is_text() || msg.is_binary() {
                let _ = ws.send(msg).await;
            } else if msg.is_close() {
                break;
            }
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-accept", derive_accept_key(key.as_bytes()))
        .body(Full::new(Bytes::new()))
        .unwrap()
}

/// How [`Scripted`] misbehaves after reading a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// closes the connection without answering
    CloseBeforeAnswer,
    /// resets the connection (RST) without answering
    Reset,
    /// never answers
    Hang,
    /// sends a head announcing 100000 bytes, 1000 of them, then closes
    PartialThenClose,
    /// sends a head announcing 100000 bytes, 1000 of them, then nothing
    PartialThenHang,
    /// answers the first request of each connection (keep-alive); reads the
    /// second and closes without answering, like a backend dying mid-request
    DropSecondRequest,
    /// reads the backend's first request's head only and answers it at once (401,
    /// keep-alive), leaving its body unread, as a backend refusing an
    /// upload early does; whatever follows is read as requests and answered
    AnswerBeforeBody,
}

/// A raw backend that reads each request whole (head and Content-Length or
/// chunked body) and then fails as told. `seen` lists the request heads,
/// `dropped` those read and then left unanswered by `DropSecondRequest`.
pub struct Scripted {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<String>>>,
    pub dropped: Arc<Mutex<Vec<String>>>,
    pub fault: Arc<Mutex<Fault>>,
    accept: JoinHandle<()>,
    conns: Arc<Mutex<JoinSet<()>>>,
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.accept.abort();
        self.conns.lock().unwrap().abort_all();
    }
}

impl Scripted {
    pub async fn start(fault: Fault) -> Scripted {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let dropped = Arc::new(Mutex::new(Vec::new()));
        let fault = Arc::new(Mutex::new(fault));
        let conns = Arc::new(Mutex::new(JoinSet::new()));
        let (seen2, dropped2, fault2, conns2) =
            (seen.clone(), dropped.clone(), fault.clone(), conns.clone());
        let accept = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (seen, dropped, fault) = (seen2.clone(), dropped2.clone(), fault2.clone());
                conns2
                    .lock()
                    .unwrap()
                    .spawn(scripted_conn(tcp, seen, dropped, fault));
            }
        });
        Scripted {
            addr,
            seen,
            dropped,
            fault,
            accept,
            conns,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Request lines received that start with `prefix` (e.g. `"POST /"`).
    pub fn count(&self, prefix: &str) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.starts_with(prefix))
            .count()
    }
}

const OK_KEEP_ALIVE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
const EARLY_REFUSAL: &[u8] = b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n";
const PARTIAL_HEAD: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n";

async fn scripted_conn(
    mut tcp: TcpStream,
    seen: Arc<Mutex<Vec<String>>>,
    dropped: Arc<Mutex<Vec<String>>>,
    fault: Arc<Mutex<Fault>>,
) {
    let mut buf = Vec::new();
    let mut nth = 0;
    loop {
        let fault = *fault.lock().unwrap();
        nth += 1;
        if fault == Fault::AnswerBeforeBody && seen.lock().unwrap().is_empty() {
            let Some(head) = read_head(&mut tcp, &mut buf).await else {
                return;
            };
            seen.lock().unwrap().push(head);
            if tcp.write_all(EARLY_REFUSAL).await.is_err() {
                return;
            }
            continue;
        }
        let Some(line) = read_request(&mut tcp, &mut buf).await else {
            return;
        };
        seen.lock().unwrap().push(line.clone());
        match fault {
            Fault::CloseBeforeAnswer => return,
            Fault::Reset => {
                let _ = socket2::SockRef::from(&tcp).set_linger(Some(Duration::ZERO));
                return;
            }
            Fault::Hang => std::future::pending::<()>().await,
            Fault::PartialThenClose | Fault::PartialThenHang => {
                let _ = tcp.write_all(PARTIAL_HEAD).await;
                let _ = tcp.write_all(&[b'x'; 1000]).await;
                let _ = tcp.flush().await;
                if fault == Fault::PartialThenHang {
                    std::future::pending::<()>().await;
                }
                return;
            }
            Fault::AnswerBeforeBody => {
                if tcp.write_all(OK_KEEP_ALIVE).await.is_err() {
                    return;
                }
            }
            Fault::DropSecondRequest => {
                if nth >= 2 {
                    dropped.lock().unwrap().push(line);
                    return;
                }
                if tcp.write_all(OK_KEEP_ALIVE).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Reads one request's head from `tcp`, keeping leftovers in `buf`.
pub async fn read_head(tcp: &mut TcpStream, buf: &mut Vec<u8>) -> Option<String> {
    let head_end = loop {
        if let Some(i) = find(buf, b"\r\n\r\n") {
            break i + 4;
        }
        fill(tcp, buf).await?;
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    buf.drain(..head_end);
    Some(head)
}

/// Reads one request (head, then a Content-Length or chunked body) from
/// `tcp`, keeping leftovers in `buf`; returns its head.
async fn read_request(tcp: &mut TcpStream, buf: &mut Vec<u8>) -> Option<String> {
    let head = read_head(tcp, buf).await?;
    let lower = head.to_ascii_lowercase();
    let length = lower
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    if let Some(len) = length {
        while buf.len() < len {
            fill(tcp, buf).await?;
        }
        buf.drain(..len);
    } else if lower.contains("transfer-encoding: chunked") {
        let end = loop {
            if let Some(i) = find(buf, b"0\r\n\r\n") {
                break i + 5;
            }
            fill(tcp, buf).await?;
        };
        buf.drain(..end);
    }
    Some(head)
}

async fn fill(tcp: &mut TcpStream, buf: &mut Vec<u8>) -> Option<()> {
    let mut chunk = [0u8; 8192];
    match tcp.read(&mut chunk).await {
        Ok(0) | Err(_) => None,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            Some(())
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
