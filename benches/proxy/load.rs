//! The load generator: tokio + rustls + hyper, presenting the client
//! certificate on every connection. One generator drives both servers, so
//! whatever it costs it costs both the same.
//!
//! Every loop runs until a deadline; every connection attempt is bounded by
//! [`CONNECT_TIMEOUT`]. The key exchange is fixed to X25519 (see
//! [`client_config`]) so both servers do the same work.

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::stream;
use http::{Request, StatusCode, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::client::Resumption;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, HandshakeKind, RootCertStore};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio_rustls::TlsConnector;

use crate::pki::Pki;

/// Longest TCP connect plus TLS handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Chunk size of an upload body.
const CHUNK: usize = 64 * 1024;

pub type Body = BoxBody<Bytes, Infallible>;
type H1 = hyper::client::conn::http1::SendRequest<Body>;
type H2 = hyper::client::conn::http2::SendRequest<Body>;
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// Session resumption on the client side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resume {
    /// none: every connection is a full handshake
    Off,
    /// TLS 1.3 session tickets
    Tls13Tickets,
    /// TLS 1.2, session IDs only (no tickets offered)
    Tls12Ids,
}

/// Which client certificate to present.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Who {
    User,
    Revoked,
}

/// A rustls client config presenting the PKI's client certificate.
///
/// X25519 only: rustls offers the post-quantum X25519MLKEM768 first, which
/// this proxy accepts and nginx with OpenSSL 3.0 does not; both servers are
/// measured on the same key exchange. Cipher suites in Chrome's order
/// (AES-128-GCM first; rustls' own client puts AES-256-GCM first): both
/// servers follow the client's order, so both run what browsers make them run.
pub fn client_config(pki: &Pki, alpn: &[&[u8]], resume: Resume, who: Who) -> Arc<ClientConfig> {
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    provider.kx_groups = vec![rustls::crypto::aws_lc_rs::kx_group::X25519];
    provider.cipher_suites.sort_by_key(|s| {
        let name = format!("{:?}", s.suite());
        let tls12 = name.starts_with("TLS_");
        let rank = ["AES_128_GCM", "AES_256_GCM", "CHACHA20"]
            .iter()
            .position(|c| name.contains(c))
            .unwrap_or(3);
        (tls12, rank)
    });
    let versions: &[&rustls::SupportedProtocolVersion] = match resume {
        Resume::Tls12Ids => &[&rustls::version::TLS12],
        _ => &[&rustls::version::TLS13, &rustls::version::TLS12],
    };
    let mut roots = RootCertStore::empty();
    roots.add(pki.ca_der.clone()).expect("CA as root");
    let (chain, key): (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) = match who {
        Who::User => (pki.client_chain.clone(), pki.client_key.clone_key()),
        Who::Revoked => (pki.revoked_chain.clone(), pki.revoked_key.clone_key()),
    };
    let mut config = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(versions)
        .expect("versions")
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .expect("client cert");
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config.resumption = match resume {
        Resume::Off => Resumption::disabled(),
        Resume::Tls13Tickets => Resumption::in_memory_sessions(1024),
        Resume::Tls12Ids => Resumption::in_memory_sessions(1024)
            .tls12_resumption(rustls::client::Tls12Resumption::SessionIdOnly),
    };
    Arc::new(config)
}

pub fn server_name() -> ServerName<'static> {
    ServerName::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST).into())
}

async fn tcp(addr: SocketAddr) -> Result<TcpStream, Error> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    Ok(tcp)
}

/// A TLS connection; also says whether the session was resumed.
pub async fn tls(
    addr: SocketAddr,
    config: &Arc<ClientConfig>,
) -> Result<(tokio_rustls::client::TlsStream<TcpStream>, bool), Error> {
    let connect = async {
        let tcp = tcp(addr).await?;
        let tls = TlsConnector::from(config.clone())
            .connect(server_name(), tcp)
            .await?;
        let resumed = tls.get_ref().1.handshake_kind() == Some(HandshakeKind::Resumed);
        Ok::<_, Error>((tls, resumed))
    };
    tokio::time::timeout(CONNECT_TIMEOUT, connect).await?
}

pub async fn h1_over<IO>(io: IO) -> Result<(H1, tokio::task::JoinHandle<()>), Error>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    let task = tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    Ok((send, task))
}

/// An HTTP/1.1 connection, over TLS when `config` is given, plain TCP otherwise.
pub async fn h1(
    addr: SocketAddr,
    config: Option<&Arc<ClientConfig>>,
) -> Result<(H1, tokio::task::JoinHandle<()>), Error> {
    match config {
        Some(c) => h1_over(tls(addr, c).await?.0).await,
        None => h1_over(tcp(addr).await?).await,
    }
}

async fn h2(addr: SocketAddr, config: &Arc<ClientConfig>) -> Result<H2, Error> {
    let (io, _) = tls(addr, config).await?;
    let (send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(send)
}

fn empty() -> Body {
    Empty::new().map_err(|e| match e {}).boxed()
}

pub fn get(addr: SocketAddr, path: &str, h2: bool) -> Request<Body> {
    let builder = Request::get(if h2 {
        format!("https://{addr}{path}")
    } else {
        path.to_string()
    });
    let builder = if h2 {
        builder.version(http::Version::HTTP_2)
    } else {
        builder.header(header::HOST, addr.to_string())
    };
    builder.body(empty()).expect("request")
}

/// Reads a response body to its end; its length.
pub async fn drain(resp: http::Response<Incoming>) -> Result<(StatusCode, u64), Error> {
    let status = resp.status();
    let mut body = resp.into_body();
    let mut n = 0u64;
    while let Some(frame) = body.frame().await {
        n += frame?.data_ref().map_or(0, |d| d.len() as u64);
    }
    Ok((status, n))
}

/// What a request-rate run measured.
#[derive(Debug, Default)]
pub struct Rate {
    /// completed 200 answers within the window
    pub ok: u64,
    /// failed requests, non-200 answers and reconnects
    pub errors: u64,
    /// the window, seconds
    pub secs: f64,
    /// latency of each completed request, µs
    pub lat_us: Vec<u32>,
    /// of the connections made, how many resumed a session (new-connection runs)
    pub resumed: u64,
}

impl Rate {
    pub fn per_sec(&self) -> f64 {
        self.ok as f64 / self.secs
    }

    /// The `p`-th percentile latency in ms.
    pub fn pct_ms(&mut self, p: f64) -> f64 {
        if self.lat_us.is_empty() {
            return f64::NAN;
        }
        self.lat_us.sort_unstable();
        let i = ((self.lat_us.len() as f64 * p / 100.0).ceil() as usize)
            .clamp(1, self.lat_us.len())
            - 1;
        f64::from(self.lat_us[i]) / 1000.0
    }

    fn merge(&mut self, other: Rate) {
        self.ok += other.ok;
        self.errors += other.errors;
        self.resumed += other.resumed;
        self.lat_us.extend(other.lat_us);
    }
}

/// How a keep-alive run is shaped.
#[derive(Clone, Copy, Debug)]
pub struct KeepAlive {
    /// connections
    pub conns: usize,
    /// requests in flight per connection (HTTP/2 streams; 1 for HTTP/1.1)
    pub streams: usize,
    pub h2: bool,
    pub secs: f64,
    /// total requests per second to aim at, or as fast as possible
    pub rate: Option<f64>,
}

impl KeepAlive {
    /// `conns` HTTP/1.1 connections, one request at a time on each.
    pub fn h1(conns: usize, secs: f64, rate: Option<f64>) -> KeepAlive {
        KeepAlive {
            conns,
            streams: 1,
            h2: false,
            secs,
            rate,
        }
    }
}

enum Sender {
    H1(H1),
    H2(H2),
}

/// Keep-alive requests over `shape.conns` connections made before the clock
/// starts. `config` None is plain HTTP (the backend on its own).
pub async fn keep_alive(
    addr: SocketAddr,
    config: Option<Arc<ClientConfig>>,
    shape: KeepAlive,
) -> Result<Rate, Error> {
    let mut senders = Vec::new();
    for _ in 0..shape.conns {
        senders.push(if shape.h2 {
            let config = config.as_ref().ok_or("HTTP/2 needs TLS here")?;
            Sender::H2(h2(addr, config).await?)
        } else {
            Sender::H1(h1(addr, config.as_ref()).await?.0)
        });
    }
    let workers = shape.conns * shape.streams;
    let period = shape
        .rate
        .map(|r| Duration::from_secs_f64(workers as f64 / r));
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(shape.secs);
    let mut tasks = JoinSet::new();
    for (i, sender) in senders.into_iter().enumerate() {
        match sender {
            Sender::H1(s) => {
                let config = config.clone();
                tasks.spawn(h1_worker(addr, config, s, deadline, period, i, workers));
            }
            Sender::H2(s) => {
                for j in 0..shape.streams {
                    let phase = i * shape.streams + j;
                    tasks.spawn(h2_worker(addr, s.clone(), deadline, period, phase, workers));
                }
            }
        }
    }
    let mut total = Rate::default();
    while let Some(r) = tasks.join_next().await {
        total.merge(r?);
    }
    total.secs = start.elapsed().as_secs_f64().min(shape.secs.max(1e-3));
    Ok(total)
}

/// A paced worker's first send is offset by its share of the period, so the
/// workers do not fire together.
fn pacer(period: Option<Duration>, phase: usize, workers: usize) -> Option<tokio::time::Interval> {
    period.map(|p| {
        let offset = p.mul_f64(phase as f64 / workers as f64);
        let mut iv = tokio::time::interval_at(tokio::time::Instant::now() + offset, p);
        iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        iv
    })
}

/// Waits for the pacer's next tick (at once when unpaced); false once the
/// deadline has come.
async fn paced(pace: &mut Option<tokio::time::Interval>, deadline: Instant) -> bool {
    if let Some(p) = pace.as_mut() {
        tokio::select! {
            _ = p.tick() => {}
            _ = tokio::time::sleep_until(deadline.into()) => return false,
        }
    }
    Instant::now() < deadline
}

/// What became of one request.
enum Outcome {
    /// answered, counted as ok or as an error by its status
    Answered,
    /// the connection failed under it (counted as an error)
    Broken,
    /// still in flight at the deadline: not counted
    Late,
}

/// Waits for one GET's answer until `deadline` and counts it in `r`.
async fn one_get<F>(r: &mut Rate, deadline: Instant, request: F) -> Outcome
where
    F: Future<Output = Result<(StatusCode, u64), Error>>,
{
    let t = Instant::now();
    match tokio::time::timeout_at(deadline.into(), request).await {
        Ok(Ok((StatusCode::OK, _))) => {
            r.ok += 1;
            r.lat_us.push(t.elapsed().as_micros() as u32);
            Outcome::Answered
        }
        Ok(Ok(_)) => {
            r.errors += 1;
            Outcome::Answered
        }
        Ok(Err(_)) => {
            r.errors += 1;
            Outcome::Broken
        }
        Err(_) => Outcome::Late,
    }
}

async fn h1_worker(
    addr: SocketAddr,
    config: Option<Arc<ClientConfig>>,
    mut send: H1,
    deadline: Instant,
    period: Option<Duration>,
    phase: usize,
    workers: usize,
) -> Rate {
    let mut r = Rate::default();
    let mut pace = pacer(period, phase, workers);
    while paced(&mut pace, deadline).await {
        let request = async {
            send.ready().await?;
            drain(send.send_request(get(addr, "/", false)).await?).await
        };
        match one_get(&mut r, deadline, request).await {
            Outcome::Answered => {}
            // the server closed the connection: make another
            Outcome::Broken => {
                match tokio::time::timeout_at(deadline.into(), h1(addr, config.as_ref())).await {
                    Ok(Ok((s, _))) => send = s,
                    _ => break,
                }
            }
            Outcome::Late => break,
        }
    }
    r
}

async fn h2_worker(
    addr: SocketAddr,
    mut send: H2,
    deadline: Instant,
    period: Option<Duration>,
    phase: usize,
    workers: usize,
) -> Rate {
    let mut r = Rate::default();
    let mut pace = pacer(period, phase, workers);
    while paced(&mut pace, deadline).await {
        let request = async {
            send.ready().await?;
            drain(send.send_request(get(addr, "/", true)).await?).await
        };
        if !matches!(one_get(&mut r, deadline, request).await, Outcome::Answered) {
            break;
        }
    }
    r
}

/// One request per connection: connect, handshake (full, or resumed as the
/// config allows), `GET /` with `Connection: close`, read to the end.
///
/// One task per config, each with its own session cache like one browser
/// each: rustls keeps at most 8 TLS 1.3 tickets per server and cache, which
/// 32 tasks sharing one would run out of. With `prime`, each task makes one
/// uncounted connection first, so its cache holds a session when the clock starts.
pub async fn new_conns(
    addr: SocketAddr,
    configs: Vec<Arc<ClientConfig>>,
    prime: bool,
    secs: f64,
) -> Rate {
    if prime {
        let mut primers = JoinSet::new();
        for config in &configs {
            let config = config.clone();
            primers.spawn(async move { one_request(addr, &config).await.map(|_| ()) });
        }
        while primers.join_next().await.is_some() {}
    }
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(secs);
    let mut tasks = JoinSet::new();
    for config in configs {
        tasks.spawn(async move {
            let mut r = Rate::default();
            while Instant::now() < deadline {
                let t = Instant::now();
                match tokio::time::timeout_at(deadline.into(), one_request(addr, &config)).await {
                    Ok(Ok(resumed)) => {
                        r.ok += 1;
                        r.resumed += u64::from(resumed);
                        r.lat_us.push(t.elapsed().as_micros() as u32);
                    }
                    Ok(Err(_)) => r.errors += 1,
                    Err(_) => break,
                }
            }
            r
        });
    }
    let mut total = Rate::default();
    while let Some(r) = tasks.join_next().await {
        total.merge(r.unwrap_or_default());
    }
    total.secs = secs;
    total
}

/// One connection, one request; whether the session was resumed.
async fn one_request(addr: SocketAddr, config: &Arc<ClientConfig>) -> Result<bool, Error> {
    let (mut io, resumed) = tls(addr, config).await?;
    let req = format!("GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    io.write_all(req.as_bytes()).await?;
    let mut buf = Vec::with_capacity(1024);
    // Read to the end: TLS 1.3 tickets arrive after the handshake, and a
    // server that closes without close_notify ends the read with an error.
    let read = io.read_to_end(&mut buf).await;
    if buf.starts_with(b"HTTP/1.1 200") {
        Ok(resumed)
    } else {
        Err(format!(
            "answer {:?} ({read:?})",
            String::from_utf8_lossy(&buf[..buf.len().min(60)])
        )
        .into())
    }
}

/// The status of `GET /` as the given client, and what the handshake
/// agreed on (version, cipher suite, key exchange); for the sanity checks.
pub async fn status_as(
    addr: SocketAddr,
    config: &Arc<ClientConfig>,
) -> Result<(u16, String), Error> {
    let (io, _) = tls(addr, config).await?;
    let conn = io.get_ref().1;
    let agreed = format!(
        "{:?} {:?} {:?}",
        conn.protocol_version(),
        conn.negotiated_cipher_suite().map(|s| s.suite()),
        conn.negotiated_key_exchange_group().map(|g| g.name())
    );
    let (mut send, task) = h1_over(io).await?;
    send.ready().await?;
    let (status, _) = drain(send.send_request(get(addr, "/", false)).await?).await?;
    task.abort();
    Ok((status.as_u16(), agreed))
}

/// Uploads `bytes` in one POST; seconds from the first byte sent to the answer.
pub async fn upload(
    addr: SocketAddr,
    config: &Arc<ClientConfig>,
    bytes: u64,
) -> Result<f64, Error> {
    let (mut send, task) = h1(addr, Some(config)).await?;
    send.ready().await?;
    let chunk = Bytes::from(vec![b'u'; CHUNK]);
    let chunks = bytes / CHUNK as u64;
    assert_eq!(
        bytes % CHUNK as u64,
        0,
        "upload size must be a multiple of {CHUNK}"
    );
    let frames =
        stream::iter((0..chunks).map(move |_| Ok::<_, Infallible>(Frame::data(chunk.clone()))));
    let req = Request::post("/upload")
        .header(header::HOST, addr.to_string())
        .header(header::CONTENT_LENGTH, bytes)
        .body(StreamBody::new(frames).boxed())
        .expect("upload request");
    let t = Instant::now();
    let resp = send.send_request(req).await?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    let secs = t.elapsed().as_secs_f64();
    task.abort();
    let expected = format!("{{\"received\":{bytes}}}");
    if status != StatusCode::OK || body != expected.as_bytes() {
        return Err(format!(
            "upload answered {status} {:?}",
            String::from_utf8_lossy(&body)
        )
        .into());
    }
    Ok(secs)
}

/// Downloads `bytes`; seconds from the request to the last byte.
pub async fn download(
    addr: SocketAddr,
    config: &Arc<ClientConfig>,
    bytes: u64,
) -> Result<f64, Error> {
    let (mut send, task) = h1(addr, Some(config)).await?;
    send.ready().await?;
    let t = Instant::now();
    let (status, n) = drain(
        send.send_request(get(addr, &format!("/download?bytes={bytes}"), false))
            .await?,
    )
    .await?;
    let secs = t.elapsed().as_secs_f64();
    task.abort();
    if status != StatusCode::OK || n != bytes {
        return Err(format!("download answered {status} with {n} of {bytes} bytes").into());
    }
    Ok(secs)
}

/// Connections held open by [`open_idle`] or [`open_websockets`]; closed when dropped.
pub struct Held {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    _senders: Vec<H1>,
    _upgraded: Vec<TokioIo<hyper::upgrade::Upgraded>>,
}

impl Drop for Held {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Opens `n` mutual-TLS connections (full handshakes, `concurrency` at a
/// time), makes one request on each, and keeps them open and idle.
pub async fn open_idle(
    addr: SocketAddr,
    config: &Arc<ClientConfig>,
    n: usize,
    concurrency: usize,
) -> Result<Held, Error> {
    let opened = open_many(n, concurrency, {
        let config = config.clone();
        move || {
            let config = config.clone();
            async move {
                let (mut send, task) = h1(addr, Some(&config)).await?;
                send.ready().await?;
                let (status, _) = drain(send.send_request(get(addr, "/", false)).await?).await?;
                if status != StatusCode::OK {
                    return Err(format!("answered {status}").into());
                }
                Ok((task, Some(send), None))
            }
        }
    })
    .await?;
    Ok(opened)
}

/// Opens `n` WebSockets to the backend's `/ws` through the server and keeps them open.
pub async fn open_websockets(
    addr: SocketAddr,
    config: &Arc<ClientConfig>,
    n: usize,
    concurrency: usize,
) -> Result<Held, Error> {
    open_many(n, concurrency, {
        let config = config.clone();
        move || {
            let config = config.clone();
            async move {
                let (mut send, task) = h1(addr, Some(&config)).await?;
                send.ready().await?;
                let req = Request::get("/ws")
                    .header(header::HOST, addr.to_string())
                    .header(header::CONNECTION, "Upgrade")
                    .header(header::UPGRADE, "websocket")
                    .header(header::SEC_WEBSOCKET_VERSION, "13")
                    .header(header::SEC_WEBSOCKET_KEY, "dGhlIHNhbXBsZSBub25jZQ==")
                    .body(empty())
                    .expect("ws request");
                let resp = send.send_request(req).await?;
                if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
                    return Err(format!("websocket answered {}", resp.status()).into());
                }
                let upgraded = hyper::upgrade::on(resp).await?;
                Ok((task, None, Some(TokioIo::new(upgraded))))
            }
        }
    })
    .await
}

type Opened = (
    tokio::task::JoinHandle<()>,
    Option<H1>,
    Option<TokioIo<hyper::upgrade::Upgraded>>,
);

async fn open_many<F, Fut>(n: usize, concurrency: usize, open: F) -> Result<Held, Error>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<Opened, Error>> + Send + 'static,
{
    let mut held = Held {
        tasks: Vec::with_capacity(n),
        _senders: Vec::new(),
        _upgraded: Vec::new(),
    };
    let mut set = JoinSet::new();
    let mut started = 0;
    while started < n || !set.is_empty() {
        while started < n && set.len() < concurrency {
            set.spawn(open());
            started += 1;
        }
        let Some(done) = set.join_next().await else {
            break;
        };
        let (task, send, upgraded) = done??;
        held.tasks.push(task);
        held._senders.extend(send);
        held._upgraded.extend(upgraded);
    }
    Ok(held)
}
