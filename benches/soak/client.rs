//! The soak's clients: rustls + hyper + tungstenite over real TLS
//! connections to the proxy, every step bounded by a timeout, every failure
//! returned as a [`Fail`] the caller judges (never a panic).

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt, stream};
use http::{Request, StatusCode, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::client::Resumption;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, HandshakeKind, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::certs::Client;

/// TCP connect plus TLS handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A small request, from sending to the end of the answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// An upload or download, from sending to the end of the answer.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(120);
/// A WebSocket message's echo, or the Close handshake.
pub const WS_TIMEOUT: Duration = Duration::from_secs(10);
/// Chunk size of an upload body.
const CHUNK: usize = 64 * 1024;
/// Bytes of an answer body kept for checking (the rest only counted).
const KEEP_BODY: usize = 4096;

type Body = BoxBody<Bytes, Infallible>;
pub type H1 = hyper::client::conn::http1::SendRequest<Body>;
pub type H2 = hyper::client::conn::http2::SendRequest<Body>;
pub type Ws = WebSocketStream<TlsStream<TcpStream>>;

/// Why an exchange did not give the expected answer.
#[derive(Debug)]
pub enum Fail {
    /// an answer with an unexpected status (and its X-Client-Cert-Error)
    Status(u16, Option<String>),
    /// the TLS layer refused: an alert, a certificate error
    Tls(String),
    /// connect failed, the connection broke or closed early, or the answer was wrong
    Io(String),
    /// no answer in time
    Timeout(&'static str),
}

impl Fail {
    /// Whether this is what a backend restart does to a request in flight:
    /// 502 (WebORCA not answering) or 504 (too slow).
    pub fn is_gateway(&self) -> bool {
        matches!(self, Fail::Status(502 | 504, _))
    }

    pub fn describe(&self) -> String {
        match self {
            Fail::Status(s, Some(why)) => format!("answered {s} (X-Client-Cert-Error: {why})"),
            Fail::Status(s, None) => format!("answered {s}"),
            Fail::Tls(e) => format!("TLS: {e}"),
            Fail::Io(e) => e.clone(),
            Fail::Timeout(what) => format!("timed out: {what}"),
        }
    }
}

/// A rustls error anywhere in `e`'s chain (also inside an io::Error) makes a [`Fail::Tls`].
fn fail(e: &(dyn std::error::Error + 'static)) -> Fail {
    let mut text = e.to_string();
    let mut tls = false;
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err.downcast_ref::<rustls::Error>().is_some()
            || err
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some())
        {
            tls = true;
        }
        cur = err.source();
        if let Some(s) = cur {
            text.push_str(": ");
            text.push_str(&s.to_string());
        }
    }
    if tls { Fail::Tls(text) } else { Fail::Io(text) }
}

impl From<std::io::Error> for Fail {
    fn from(e: std::io::Error) -> Fail {
        fail(&e)
    }
}

impl From<hyper::Error> for Fail {
    fn from(e: hyper::Error) -> Fail {
        fail(&e)
    }
}

impl From<tungstenite::Error> for Fail {
    fn from(e: tungstenite::Error) -> Fail {
        match e {
            tungstenite::Error::Http(resp) => Fail::Status(resp.status().as_u16(), None),
            tungstenite::Error::Io(io) => io.into(),
            tungstenite::Error::Tls(t) => Fail::Tls(t.to_string()),
            other => Fail::Io(format!("websocket: {other}")),
        }
    }
}

/// Runs `f` for at most `limit`.
async fn within<T>(
    limit: Duration,
    what: &'static str,
    f: impl Future<Output = Result<T, Fail>>,
) -> Result<T, Fail> {
    tokio::time::timeout(limit, f)
        .await
        .unwrap_or(Err(Fail::Timeout(what)))
}

/// Session resumption on the client side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resume {
    /// every connection a full handshake
    Off,
    /// TLS 1.3 session tickets
    Tickets,
    /// TLS 1.2 only, session IDs
    Tls12Ids,
}

/// A client config trusting `ca`, presenting `who` (or no certificate).
///
/// X25519 only, as benches/proxy/load.rs does: the cheapest key exchange,
/// so the soak's own CPU stays out of the way on a small machine.
pub fn config(
    ca: &CertificateDer<'static>,
    who: Option<&Client>,
    alpn: &[&[u8]],
    resume: Resume,
) -> Arc<ClientConfig> {
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    provider.kx_groups = vec![rustls::crypto::aws_lc_rs::kx_group::X25519];
    let versions: &[&rustls::SupportedProtocolVersion] = match resume {
        Resume::Tls12Ids => &[&rustls::version::TLS12],
        _ => &[&rustls::version::TLS13, &rustls::version::TLS12],
    };
    let mut roots = RootCertStore::empty();
    roots.add(ca.clone()).expect("CA as root");
    let builder = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(versions)
        .expect("versions")
        .with_root_certificates(roots);
    let mut config = match who {
        Some(c) => builder
            .with_client_auth_cert(c.chain.clone(), c.key.clone_key())
            .expect("client cert"),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config.resumption = match resume {
        Resume::Off => Resumption::disabled(),
        Resume::Tickets => Resumption::in_memory_sessions(64),
        Resume::Tls12Ids => Resumption::in_memory_sessions(64)
            .tls12_resumption(rustls::client::Tls12Resumption::SessionIdOnly),
    };
    Arc::new(config)
}

/// A TLS connection to the proxy.
pub struct Conn {
    pub tls: TlsStream<TcpStream>,
    /// the handshake resumed a session
    pub resumed: bool,
}

impl Conn {
    /// The certificate the server presented (of the original handshake when resumed).
    pub fn server_cert(&self) -> Option<CertificateDer<'static>> {
        self.tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.clone().into_owned())
    }
}

pub async fn connect(addr: SocketAddr, config: &Arc<ClientConfig>) -> Result<Conn, Fail> {
    within(CONNECT_TIMEOUT, "connect and TLS handshake", async {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let name = ServerName::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST).into());
        let tls = TlsConnector::from(config.clone())
            .connect(name, tcp)
            .await?;
        let resumed = tls.get_ref().1.handshake_kind() == Some(HandshakeKind::Resumed);
        Ok(Conn { tls, resumed })
    })
    .await
}

/// HTTP/1.1 over `conn`; the connection ends when the sender is dropped.
pub async fn h1(conn: Conn) -> Result<H1, Fail> {
    within(CONNECT_TIMEOUT, "HTTP/1.1 handshake", async {
        let (send, task) = hyper::client::conn::http1::handshake(TokioIo::new(conn.tls)).await?;
        tokio::spawn(async move {
            let _ = task.await;
        });
        Ok(send)
    })
    .await
}

/// HTTP/2 over `conn` (negotiated by ALPN); the connection ends with the last sender.
pub async fn h2(conn: Conn) -> Result<H2, Fail> {
    within(CONNECT_TIMEOUT, "HTTP/2 handshake", async {
        let (send, task) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(conn.tls))
                .await?;
        tokio::spawn(async move {
            let _ = task.await;
        });
        Ok(send)
    })
    .await
}

fn empty() -> Body {
    Empty::new().map_err(|e| match e {}).boxed()
}

/// An answer: status, the proxy's refusal reason if any, the first bytes of
/// the body and its full length.
pub struct Answer {
    pub status: StatusCode,
    pub cert_error: Option<String>,
    pub body: Vec<u8>,
    pub len: u64,
}

impl Answer {
    /// A [`Fail::Status`] for this answer.
    pub fn fail(&self) -> Fail {
        Fail::Status(self.status.as_u16(), self.cert_error.clone())
    }
}

async fn read(resp: http::Response<hyper::body::Incoming>) -> Result<Answer, Fail> {
    let status = resp.status();
    let cert_error = resp
        .headers()
        .get("x-client-cert-error")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut body = resp.into_body();
    let mut kept = Vec::new();
    let mut len = 0u64;
    while let Some(frame) = body.frame().await {
        if let Some(data) = frame?.data_ref() {
            len += data.len() as u64;
            let room = KEEP_BODY.saturating_sub(kept.len());
            kept.extend_from_slice(&data[..room.min(data.len())]);
        }
    }
    Ok(Answer {
        status,
        cert_error,
        body: kept,
        len,
    })
}

fn get_request(addr: SocketAddr, path: &str, http2: bool, close: bool) -> Request<Body> {
    let builder = if http2 {
        Request::get(format!("https://{addr}{path}")).version(http::Version::HTTP_2)
    } else {
        Request::get(path).header(header::HOST, addr.to_string())
    };
    let builder = builder.header(header::ACCEPT, "text/html,application/json");
    let builder = if close {
        builder.header(header::CONNECTION, "close")
    } else {
        builder
    };
    builder.body(empty()).expect("request")
}

/// `GET path` on a kept HTTP/1.1 connection.
pub async fn get_h1(send: &mut H1, addr: SocketAddr, path: &str) -> Result<Answer, Fail> {
    within(REQUEST_TIMEOUT, "request", async {
        send.ready().await?;
        read(
            send.send_request(get_request(addr, path, false, false))
                .await?,
        )
        .await
    })
    .await
}

/// `GET path` as one HTTP/2 stream.
pub async fn get_h2(send: &mut H2, addr: SocketAddr, path: &str) -> Result<Answer, Fail> {
    within(REQUEST_TIMEOUT, "request", async {
        send.ready().await?;
        read(
            send.send_request(get_request(addr, path, true, false))
                .await?,
        )
        .await
    })
    .await
}

/// A new connection for one `GET path` with `Connection: close`; the answer
/// and whether the handshake resumed a session.
pub async fn one_shot(
    addr: SocketAddr,
    config: &Arc<ClientConfig>,
    path: &str,
) -> Result<(Answer, bool), Fail> {
    let conn = connect(addr, config).await?;
    let resumed = conn.resumed;
    let answer = within(REQUEST_TIMEOUT, "request", async {
        let mut send = h1(conn).await?;
        send.ready().await?;
        read(
            send.send_request(get_request(addr, path, false, true))
                .await?,
        )
        .await
    })
    .await?;
    Ok((answer, resumed))
}

/// Uploads `bytes` (a multiple of 64 KiB) in one POST on a new connection.
pub async fn upload(
    addr: SocketAddr,
    config: &Arc<ClientConfig>,
    bytes: u64,
) -> Result<Answer, Fail> {
    let conn = connect(addr, config).await?;
    within(TRANSFER_TIMEOUT, "upload", async {
        let mut send = h1(conn).await?;
        send.ready().await?;
        let chunk = Bytes::from(vec![b'u'; CHUNK]);
        let frames = stream::iter(
            (0..bytes / CHUNK as u64).map(move |_| Ok::<_, Infallible>(Frame::data(chunk.clone()))),
        );
        let req = Request::post("/upload")
            .header(header::HOST, addr.to_string())
            .header(header::CONTENT_LENGTH, bytes)
            .body(BodyExt::boxed(StreamBody::new(frames)))
            .expect("upload request");
        read(send.send_request(req).await?).await
    })
    .await
}

/// Downloads `bytes` on a new connection.
pub async fn download(
    addr: SocketAddr,
    config: &Arc<ClientConfig>,
    bytes: u64,
) -> Result<Answer, Fail> {
    let conn = connect(addr, config).await?;
    within(TRANSFER_TIMEOUT, "download", async {
        let mut send = h1(conn).await?;
        send.ready().await?;
        let path = format!("/download?bytes={bytes}");
        read(
            send.send_request(get_request(addr, &path, false, false))
                .await?,
        )
        .await
    })
    .await
}

/// A WebSocket to the backend's echo, through the proxy.
pub async fn ws_open(addr: SocketAddr, config: &Arc<ClientConfig>) -> Result<Ws, Fail> {
    let conn = connect(addr, config).await?;
    within(REQUEST_TIMEOUT, "websocket handshake", async {
        let req = format!("wss://{addr}/ws-echo")
            .into_client_request()
            .map_err(Fail::from)?;
        let (ws, _) = tokio_tungstenite::client_async(req, conn.tls).await?;
        Ok(ws)
    })
    .await
}

/// Sends `text` and waits for it to come back.
pub async fn ws_echo(ws: &mut Ws, text: &str) -> Result<(), Fail> {
    within(WS_TIMEOUT, "websocket echo", async {
        ws.send(Message::text(text)).await?;
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) if t.as_str() == text => return Ok(()),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(other)) => return Err(Fail::Io(format!("websocket: got {other:?}"))),
                Some(Err(e)) => return Err(e.into()),
                None => return Err(Fail::Io("websocket closed".into())),
            }
        }
    })
    .await
}

/// Waits for the next message, which for a held WebSocket must not come:
/// returns why the WebSocket ended.
pub async fn ws_closed(ws: &mut Ws) -> Fail {
    loop {
        match ws.next().await {
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(Message::Close(frame))) => {
                return Fail::Io(format!("websocket closed by the server: {frame:?}"));
            }
            Some(Ok(other)) => return Fail::Io(format!("websocket: unexpected {other:?}")),
            Some(Err(e)) => return e.into(),
            None => return Fail::Io("websocket closed".into()),
        }
    }
}

/// Waits (bounded) for the server's Close frame; its code, `None` for a
/// Close without one.
pub async fn ws_close_code(ws: &mut Ws) -> Result<Option<u16>, Fail> {
    within(WS_TIMEOUT, "websocket close from the proxy", async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(frame))) => return Ok(frame.map(|f| u16::from(f.code))),
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e.into()),
                None => return Err(Fail::Io("websocket ended without a Close frame".into())),
            }
        }
    })
    .await
}

/// Sends one text message, ignoring whether it can still be sent.
pub async fn ws_try_send(ws: &mut Ws, text: &str) {
    let _ = tokio::time::timeout(WS_TIMEOUT, ws.send(Message::text(text))).await;
}

/// The Close handshake, bounded.
pub async fn ws_close(mut ws: Ws) -> Result<(), Fail> {
    within(WS_TIMEOUT, "websocket close", async {
        ws.close(None).await?;
        while let Some(msg) = ws.next().await {
            if let Err(e) = msg {
                return match e {
                    tungstenite::Error::ConnectionClosed => Ok(()),
                    e => Err(e.into()),
                };
            }
        }
        Ok(())
    })
    .await
}
