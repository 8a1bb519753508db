//! Keep-alive HTTP/1.1 connections to WebORCA, over hyper's connection API.
//!
//! WebORCA is one host, so the pool is one stack of idle connections: the
//! most recently used is taken first (its socket is the least likely to have
//! been closed by WebORCA), and the stack is trimmed of connections unused
//! for [`IDLE_TIMEOUT`] whenever one is taken or given back.
//!
//! Written here rather than using hyper-util's `legacy::Client` because of
//! what that costs per request (benches/RESULTS.md, "The cuts"): it keys its
//! pool by scheme and authority in std `HashMap`s (SipHash on every
//! checkout), checks a connection out through a future of its own and spawns
//! a task per request to wait for the connection to be ready again. Here a
//! connection goes back on the stack when its answer's body has been read
//! (the [`Lease`] the response body holds), which is when hyper can take the
//! next request on it.
//!
//! A connection that is not ready then is closed at once, its task aborted,
//! not waited for: the one way to get there is an answer that came before
//! the request's body had all been sent (WebORCA refused an upload early).
//! hyper would go on writing the rest of that body, and a backend that had
//! not read it would take the remaining bytes for requests of their own:
//! requests that never passed the proxy's checks, whose answers the next
//! client on that connection would get.
//!
//! A request a kept-alive connection could not take (it closed before the
//! request was written) comes back from hyper unsent and goes out on the
//! next connection, whatever its method: that is what hyper-util's pool did
//! too. A request that was written and then lost is not sent again here; the
//! caller decides (`Proxy::forward` replays only bodiless safe methods).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio::task::AbortHandle;

use super::OutBody;

/// How long an unused backend connection is kept.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Idle backend connections kept for reuse, over all worker threads: each
/// keeps its share. They are outside MAX_CONNECTIONS' descriptor budget,
/// within what is reserved beside it (`RESERVED_FDS`).
pub const MAX_IDLE: usize = 256;
/// The share of [`MAX_IDLE`] each worker keeps at least.
const MIN_IDLE_SHARE: usize = 4;
/// TCP keep-alive on backend sockets, so a vanished WebORCA host is noticed.
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);

/// The backend connections of one worker thread.
pub struct Pool {
    inner: Arc<Inner>,
}

struct Inner {
    /// `host:port` of BACKEND_URL, resolved at each connect
    authority: String,
    /// BACKEND_CONNECT_TIMEOUT
    connect_timeout: Duration,
    /// this worker's share of [`MAX_IDLE`]
    max_idle: usize,
    /// ready connections, the most recently used last
    idle: Mutex<VecDeque<Idle>>,
}

struct Idle {
    conn: Conn,
    since: Instant,
}

/// One backend connection: what sends on it, and the task that drives it.
struct Conn {
    sender: SendRequest<OutBody>,
    task: AbortHandle,
}

impl Conn {
    /// Closes the socket now, whatever hyper was still writing on it.
    fn close(self) {
        self.task.abort();
    }
}

/// Why a request got no answer from WebORCA.
#[derive(Debug)]
pub enum SendError {
    /// no connection could be made (refused, unreachable, timed out)
    Connect(String),
    /// the connection failed while the request was sent or answered
    Request(hyper::Error),
}

impl SendError {
    /// Whether no connection could be made at all.
    pub fn is_connect(&self) -> bool {
        matches!(self, SendError::Connect(_))
    }

    /// Whether the client's own request body broke off (an aborted upload):
    /// the client's doing, not WebORCA's.
    pub fn client_body_failed(&self) -> bool {
        matches!(self, SendError::Request(e) if e.is_user())
    }
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Connect(why) => write!(f, "connect error: {why}"),
            SendError::Request(e) => write!(f, "backend connection error: {e}"),
        }
    }
}

impl std::error::Error for SendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SendError::Connect(_) => None,
            SendError::Request(e) => std::error::Error::source(e),
        }
    }
}

/// A connection taken from the pool for one request.
pub struct Checkout {
    conn: Conn,
    pool: Arc<Inner>,
}

/// The backend slot a response holds while its body streams, and the
/// connection it came on, given back to the pool by [`Lease::done`].
pub struct Lease {
    _slot: OwnedSemaphorePermit,
    conn: Option<Checkout>,
}

impl Lease {
    /// Holds `slot` and the connection the answer streams on.
    pub fn new(slot: OwnedSemaphorePermit, conn: Checkout) -> Lease {
        Lease {
            _slot: slot,
            conn: Some(conn),
        }
    }

    /// The answer has been read to its end: the connection can carry the
    /// next request. Without this call (an answer cut short) the connection
    /// is dropped with the lease, and hyper closes it.
    pub fn done(&mut self) {
        if let Some(c) = self.conn.take() {
            c.pool.give_back(c.conn);
        }
    }
}

impl Pool {
    /// An empty pool for the backend at `authority` (`host:port`), for one
    /// of `workers` threads.
    pub fn new(authority: &str, connect_timeout: Duration, workers: usize) -> Pool {
        Pool {
            inner: Arc::new(Inner {
                authority: authority.to_string(),
                connect_timeout,
                max_idle: (MAX_IDLE / workers.max(1)).max(MIN_IDLE_SHARE),
                idle: Mutex::new(VecDeque::new()),
            }),
        }
    }

    /// Sends `req` on an idle connection, else on a new one, and returns
    /// the answer's head with the connection it came on.
    pub async fn send(
        &self,
        mut req: Request<OutBody>,
    ) -> Result<(Response<Incoming>, Checkout), SendError> {
        while let Some(mut conn) = self.inner.take() {
            match conn.sender.try_send_request(req).await {
                Ok(resp) => return Ok((resp, self.checkout(conn))),
                Err(mut e) => match e.take_message() {
                    // closed before the request was written: the next one
                    Some(unsent) => req = unsent,
                    None => return Err(SendError::Request(e.into_error())),
                },
            }
        }
        self.send_fresh(req).await
    }

    /// Sends `req` on a new connection. After a kept-alive connection failed
    /// under a request, the others on the stack are likely as stale (WebORCA
    /// restarted): they are dropped, and the request is not risked on one.
    pub async fn send_again(
        &self,
        req: Request<OutBody>,
    ) -> Result<(Response<Incoming>, Checkout), SendError> {
        if let Ok(mut idle) = self.inner.idle.lock() {
            idle.clear();
        }
        self.send_fresh(req).await
    }

    async fn send_fresh(
        &self,
        req: Request<OutBody>,
    ) -> Result<(Response<Incoming>, Checkout), SendError> {
        // Boxed: the connect and handshake futures are large and only a
        // miss needs them; inline they would be moved with every request's
        // future (hyper's HTTP/2 server copies it into a task per stream).
        let mut conn = Box::pin(self.inner.connect()).await?;
        match conn.sender.send_request(req).await {
            Ok(resp) => Ok((resp, self.checkout(conn))),
            Err(e) => Err(SendError::Request(e)),
        }
    }

    fn checkout(&self, conn: Conn) -> Checkout {
        Checkout {
            conn,
            pool: self.inner.clone(),
        }
    }
}

impl Inner {
    /// The most recently used connection that is still open and ready.
    fn take(&self) -> Option<Conn> {
        let mut idle = self.idle.lock().ok()?;
        let now = Instant::now();
        while let Some(c) = idle.pop_back() {
            if now.duration_since(c.since) >= IDLE_TIMEOUT {
                // the rest are older still
                idle.clear();
                return None;
            }
            if c.conn.sender.is_ready() {
                return Some(c.conn);
            }
        }
        None
    }

    /// Puts a connection back if hyper can send on it again, else closes it
    /// (the module's comment says why it is not waited for).
    fn give_back(&self, conn: Conn) {
        if conn.sender.is_ready() {
            self.push(conn);
        } else {
            conn.close();
        }
    }

    fn push(&self, conn: Conn) {
        let Ok(mut idle) = self.idle.lock() else {
            return;
        };
        let now = Instant::now();
        while idle.front().is_some_and(|c| {
            now.duration_since(c.since) >= IDLE_TIMEOUT || c.conn.sender.is_closed()
        }) {
            idle.pop_front();
        }
        if idle.len() >= self.max_idle {
            idle.pop_front();
        }
        idle.push_back(Idle { conn, since: now });
    }

    /// A new connection: TCP (no Nagle, keep-alive) and the HTTP/1.1
    /// handshake, its I/O driven by a task of its own until it closes.
    async fn connect(&self) -> Result<Conn, SendError> {
        let tcp = tokio::time::timeout(
            self.connect_timeout,
            TcpStream::connect(self.authority.as_str()),
        )
        .await
        .map_err(|_| {
            SendError::Connect(format!(
                "{}: no connection within BACKEND_CONNECT_TIMEOUT ({} s)",
                self.authority,
                self.connect_timeout.as_secs()
            ))
        })?
        .map_err(|e| SendError::Connect(format!("{}: {e}", self.authority)))?;
        // Best effort: a socket without these options still works.
        let _ = tcp.set_nodelay(true);
        let keepalive = socket2::TcpKeepalive::new().with_time(TCP_KEEPALIVE);
        let _ = socket2::SockRef::from(&tcp).set_tcp_keepalive(&keepalive);
        let (sender, conn) = http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(SendError::Request)?;
        let task = tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!("backend connection ended: {e}");
            }
        })
        .abort_handle();
        Ok(Conn { sender, task })
    }
}
