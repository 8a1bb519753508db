//! A stand-in for WebORCA: records every request it receives and answers with
//! what it saw (method, target, version, headers, body length and SHA-256) as
//! JSON; `/ws` is a WebSocket echo; `/slow` answers after a pause; `/big?n=N`
//! streams N bytes; `/nothing` answers 204; `/close` answers and closes
//! the connection. It counts the TCP connections it accepted, and those open.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::{Message, handshake::derive_accept_key};

/// What the backend saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body_len: u64,
    pub body_sha256: String,
}

impl Seen {
    /// All values of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
    /// The single value of header `name`.
    pub fn one(&self, name: &str) -> Option<&str> {
        let v = self.header(name);
        assert!(v.len() <= 1, "header {name} appears {} times", v.len());
        v.first().copied()
    }
}

/// A running stand-in backend.
pub struct Backend {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    /// every WebSocket text message that arrived, on any tunnel
    pub ws_received: Arc<Mutex<Vec<String>>>,
    /// WebSocket tunnels that have ended on this side
    ws_ended: Arc<AtomicUsize>,
    /// TCP connections accepted
    connections: Arc<AtomicUsize>,
    /// TCP connections open now
    open: Arc<AtomicUsize>,
    /// the accept loop and every connection, all stopped when the backend is dropped
    tasks: tokio_util::task::AbortOnDropHandle<()>,
    conns: Arc<Mutex<tokio::task::JoinSet<()>>>,
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.conns.lock().unwrap().abort_all();
    }
}

impl Backend {
    /// Starts on 127.0.0.1:0.
    pub async fn start() -> Backend {
        Self::start_on("127.0.0.1:0".parse().unwrap()).await
    }

    /// Starts on a given address (to bring a backend back on the same port).
    pub async fn start_on(addr: SocketAddr) -> Backend {
        let listener = TcpListener::bind(addr).await.expect("bind backend");
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen2 = seen.clone();
        let ws_received = Arc::new(Mutex::new(Vec::new()));
        let ws2 = ws_received.clone();
        let ws_ended = Arc::new(AtomicUsize::new(0));
        let ended2 = ws_ended.clone();
        let conns = Arc::new(Mutex::new(tokio::task::JoinSet::new()));
        let conns2 = conns.clone();
        let connections = Arc::new(AtomicUsize::new(0));
        let accepted = connections.clone();
        let open = Arc::new(AtomicUsize::new(0));
        let open2 = open.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                accepted.fetch_add(1, Ordering::SeqCst);
                open2.fetch_add(1, Ordering::SeqCst);
                let open = open2.clone();
                let seen = seen2.clone();
                let ws = ws2.clone();
                let ended = ended2.clone();
                conns2.lock().unwrap().spawn(async move {
                    let svc =
                        service_fn(move |req| handle(req, seen.clone(), ws.clone(), ended.clone()));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), svc)
                        .with_upgrades()
                        .await;
                    open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        Backend {
            addr,
            seen,
            ws_received,
            ws_ended,
            connections,
            open,
            tasks: tokio_util::task::AbortOnDropHandle::new(task),
            conns,
        }
    }

    /// Stops the backend and waits (10 s at most) until its port refuses
    /// connections: the listener closes once its task has been cancelled.
    pub async fn stop(self) {
        let addr = self.addr;
        drop(self);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while tokio::net::TcpStream::connect(addr).await.is_ok() {
            assert!(
                std::time::Instant::now() < deadline,
                "the stand-in kept listening"
            );
            tokio::task::yield_now().await;
        }
    }

    /// How many requests arrived.
    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    /// Waits (PATIENCE at most) until `n` WebSocket tunnels have ended on
    /// the backend's side: whatever a tunnel carried up has arrived by then.
    pub async fn ws_ended(&self, n: usize) {
        let ended = &self.ws_ended;
        assert!(
            super::raw::eventually(|| ended.load(Ordering::SeqCst) >= n).await,
            "{n} WebSocket tunnels never ended at the backend"
        );
    }

    /// How many TCP connections were accepted.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// How many TCP connections are open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// The last request that arrived.
    pub fn last(&self) -> Seen {
        self.seen
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("the backend received no request")
    }

    /// `http://127.0.0.1:port`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

type Body = BoxBody<Bytes, Infallible>;

fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).boxed()
}

async fn handle(
    mut req: Request<Incoming>,
    seen: Arc<Mutex<Vec<Seen>>>,
    ws_received: Arc<Mutex<Vec<String>>>,
    ws_ended: Arc<AtomicUsize>,
) -> Result<Response<Body>, Infallible> {
    let method = req.method().to_string();
    let target = req.uri().to_string();
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    if req.uri().path() == "/ws" {
        record(&seen, &method, &target, &headers, 0, Sha256::new());
        return Ok(websocket(&mut req, ws_received, ws_ended));
    }
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let mut hasher = Sha256::new();
    let mut len = 0u64;
    let mut body = req.into_body();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { break };
        if let Some(d) = frame.data_ref() {
            len += d.len() as u64;
            hasher.update(d);
        }
    }
    let sha = record(&seen, &method, &target, &headers, len, hasher);
    if path == "/slow" {
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    if path.ends_with("/big") {
        let n: u64 = query
            .strip_prefix("n=")
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        return Ok(Response::new(big_body(n)));
    }
    if path == "/nothing" {
        let mut resp = Response::new(full(Bytes::new()));
        *resp.status_mut() = StatusCode::NO_CONTENT;
        return Ok(resp);
    }
    if path == "/close" {
        return Ok(Response::builder()
            .header("connection", "close")
            .body(full("closing"))
            .unwrap());
    }
    let echo = json!({ "method": method, "target": target, "headers": headers, "body_len": len, "body_sha256": sha });
    Ok(Response::builder()
        .header("content-type", "application/json")
        .header("set-cookie", "session=abc; Path=/")
        .header("keep-alive", "timeout=5")
        .body(full(echo.to_string()))
        .unwrap())
}

fn record(
    seen: &Mutex<Vec<Seen>>,
    method: &str,
    target: &str,
    headers: &[(String, String)],
    len: u64,
    h: Sha256,
) -> String {
    let sha = hex(&h.finalize());
    seen.lock().unwrap().push(Seen {
        method: method.into(),
        target: target.into(),
        headers: headers.to_vec(),
        body_len: len,
        body_sha256: sha.clone(),
    });
    sha
}

/// Deterministic bytes: byte i is (i % 251).
pub fn pattern_chunk(offset: u64, len: usize) -> Bytes {
    (0..len)
        .map(|i| ((offset + i as u64) % 251) as u8)
        .collect::<Vec<u8>>()
        .into()
}

fn big_body(n: u64) -> Body {
    const CHUNK: u64 = 64 * 1024;
    let stream = futures_util::stream::unfold(0u64, move |off| async move {
        if off >= n {
            return None;
        }
        let len = CHUNK.min(n - off);
        Some((
            Ok::<_, Infallible>(Frame::data(pattern_chunk(off, len as usize))),
            off + len,
        ))
    });
    BodyExt::boxed(StreamBody::new(stream))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Counts a backend WebSocket as ended when dropped.
struct Ended(Arc<AtomicUsize>);

impl Drop for Ended {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn websocket(
    req: &mut Request<Incoming>,
    received: Arc<Mutex<Vec<String>>>,
    ended: Arc<AtomicUsize>,
) -> Response<Body> {
    let Some(key) = req.headers().get("sec-websocket-key").cloned() else {
        return Response::builder()
            .status(StatusCode::BAD_REQUEST)
            .body(full("no key"))
            .unwrap();
    };
    let on_upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let _ended = Ended(ended);
        let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
            TokioIo::new(upgraded),
            Role::Server,
            None,
        )
        .await;
        while let Some(Ok(msg)) = ws.next().await {
            match msg {
                Message::Text(t) => {
                    received.lock().unwrap().push(t.to_string());
                    // push-exchanger's subscribe gets the push API's two answers.
                    if t.contains("\"subscribe\"") {
                        let _ = ws
                            .send(Message::text(r#"{"command":"subscribed","req.id":"1"}"#))
                            .await;
                        let _ = ws
                            .send(Message::text(
                                r#"{"command":"event","data":{"event":"patient_infomation"}}"#,
                            ))
                            .await;
                    } else if let Some((ms, text)) = t
                        .strip_prefix("later:")
                        .and_then(|rest| rest.split_once(':'))
                    {
                        // `later:MS:TEXT`: WebORCA pushing TEXT after MS
                        let ms = ms.parse().unwrap_or(0);
                        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                        let _ = ws.send(Message::text(text)).await;
                    } else {
                        let _ = ws.send(Message::Text(t)).await;
                    }
                }
                Message::Binary(b) => {
                    let _ = ws.send(Message::Binary(b)).await;
                }
                Message::Close(_) => {
                    // tungstenite queues the Close reply: send it before
                    // ending, as WebORCA does, so a client's close is clean
                    let _ = ws.flush().await;
                    break;
                }
                _ => {}
            }
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-accept", derive_accept_key(key.as_bytes()))
        .body(full(""))
        .unwrap()
}
