//! The listener: binds LISTEN, accepts within MAX_CONNECTIONS, tells TLS from
//! plain HTTP by the first byte, runs the handshake under HANDSHAKE_TIMEOUT,
//! judges the client certificate, and serves HTTP/1.1 or HTTP/2 (by ALPN) with
//! the proxy as the service. Shutdown stops accepting, lets in-flight requests
//! finish within SHUTDOWN_GRACE, and closes WebSocket tunnels.
//!
//! Beyond MAX_CONNECTIONS new connections are not accepted: they wait in the
//! kernel's accept queue (LISTEN_BACKLOG) until a slot frees, and a client
//! whose connect the full queue drops retries by itself. MAX_CONNECTIONS is
//! lowered at start-up, with a warning, if the open-files limit could not hold
//! that many client connections plus as many backend connections.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;
use std::time::Duration;

use arc_swap::ArcSwap;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::body::log_safe;
use crate::config::parts::{Limits, Listener, ServerParts};
use crate::config::{BackendUrl, ClientCertErrors};
use crate::conn::Activity;
use crate::conn::ConnInfo;
use crate::metrics::Metrics;
use crate::plain::{self, FirstByte};
use crate::proxy::Proxy;
use crate::status::{self, Stats, StatusContext};
use crate::tls::TlsState;
use crate::tls::judgement::{Generations, Judgement};
use crate::tls::verify::CertErrorKind;

mod accept;
mod bind;
mod connection;
mod cuttable;
mod spread;
mod watchdog;
mod workers;

use accept::*;
use bind::*;
use connection::*;
use cuttable::Cuttable;
use spread::*;
use watchdog::{Finish, Watchdog};
use workers::*;

/// The kernel's queue of connections not yet accepted.
const LISTEN_BACKLOG: u32 = 1024;
/// Pause after an accept error (e.g. out of file descriptors) before trying again.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);
/// HTTP/2 streams one client may have open at once.
const H2_MAX_STREAMS: u32 = 128;
/// Largest request head (request line and headers) read, HTTP/1.1 and HTTP/2
/// alike; beyond it the client gets 431. Browsers' cookies fit many times over,
/// and 2048 connections at this size stay far from exhausting memory.
const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Most header lines in one HTTP/1.1 request; beyond it the client gets 431.
const MAX_HEADERS: usize = 100;
/// HTTP/2 streams a client may open and reset before the proxy has taken them
/// up; beyond it the connection is closed with ENHANCE_YOUR_CALM (the "rapid
/// reset" attack, CVE-2023-44487).
const H2_MAX_PENDING_RESETS: usize = 20;
/// HTTP/2 streams the proxy may reset for a client's protocol errors before it
/// closes the connection.
const H2_MAX_ERROR_RESETS: usize = 256;
/// File descriptors kept aside from the connection budget: listeners, idle
/// pooled backend connections (at most `pool::MAX_IDLE` over all workers),
/// the status listener, log and certificate files.
const RESERVED_FDS: usize = 512;
/// How often "MAX_CONNECTIONS reached" may be logged.
const LIMIT_LOG_EVERY: Duration = Duration::from_secs(60);

/// What every connection task shares.
#[derive(Clone)]
struct Shared {
    /// the current TLS state; replaced whole on reload
    tls: Arc<ArcSwap<TlsState>>,
    /// judgement generations: a reload that changes CA, CRL or ALLOW_CN
    /// makes open connections be judged again
    generations: Arc<Generations>,
    /// metrics and what `/status` reports
    stats: Arc<Stats>,
    /// forwards requests
    proxy: Arc<Proxy>,
    /// LISTEN, MAX_CONNECTIONS (as fitted), WORKERS and the timeouts
    listener: Listener,
    /// MAX_CONNECTIONS
    limit: Arc<Semaphore>,
    /// cancelled on SIGTERM/SIGINT
    shutdown: CancellationToken,
    /// connection tasks, to wait for on shutdown
    conns: TaskTracker,
    /// WebSocket tunnels, to wait for on shutdown
    tunnels: TaskTracker,
    /// HTTP/1.1 server settings
    h1: hyper::server::conn::http1::Builder,
    /// HTTP/2 server settings
    h2: hyper::server::conn::http2::Builder<TokioExecutor>,
    /// whether "MAX_CONNECTIONS reached" was logged within LIMIT_LOG_EVERY
    limit_logged: Arc<AtomicBool>,
}

impl Shared {
    /// What a further worker thread shares: everything but the backend
    /// connection pool, which each worker keeps on its own runtime.
    fn for_worker(&self) -> Shared {
        Shared {
            proxy: Arc::new(self.proxy.sibling()),
            ..self.clone()
        }
    }
}

/// A bound, not yet running proxy.
pub struct Server {
    listeners: Vec<TcpListener>,
    /// STATUS_LISTEN, when set
    status: Option<TcpListener>,
    /// BACKEND_URL, which the status endpoints report on
    backend: BackendUrl,
    shared: Arc<Shared>,
}

/// Controls a running server from outside: signals, tests.
#[derive(Clone)]
pub struct Handle {
    shared: Arc<Shared>,
}

impl Handle {
    /// Starts a graceful shutdown.
    pub fn shutdown(&self) {
        self.shared.shutdown.cancel();
    }

    /// Puts a new TLS state in place for new handshakes. When it judges
    /// clients on other grounds (CA_CRT, CA_CRL, ALLOW_CN…) than the serving
    /// one, every open connection is judged again before its next request,
    /// and open WebSockets of now refused certificates are closed.
    pub fn replace_tls(&self, mut tls: TlsState) {
        self.shared.stats.metrics.set_expiry(&tls);
        let serving = self.shared.tls.load_full();
        // The new generation is announced only once the state is in place,
        // so whoever wakes on it judges by the new verifier.
        let next = self.shared.generations.next_for(&serving, &tls);
        tls.generation = next;
        self.shared.tls.store(Arc::new(tls));
        self.shared.generations.announce(next);
    }

    /// Metrics and status.
    pub fn stats(&self) -> Arc<Stats> {
        self.shared.stats.clone()
    }

    /// The TLS state new handshakes use.
    pub fn tls(&self) -> Arc<TlsState> {
        self.shared.tls.load_full()
    }
}

impl Server {
    /// Binds every LISTEN address (and STATUS_LISTEN) and builds the proxy
    /// from its parts. Must be called inside a tokio runtime.
    pub fn bind(parts: ServerParts, tls: TlsState) -> Result<Server, String> {
        let ServerParts {
            mut listener,
            backend,
            logging,
            status,
        } = parts;
        listener.max_connections =
            fitting_max_connections(listener.max_connections, open_files_limit());
        let listeners = bind_listen(&listener)?;
        let status_listener = match status.listen {
            Some(addr) => Some(
                bind_one(addr)
                    .map_err(|e| format!("STATUS_LISTEN: cannot listen on {addr}: {e}"))?,
            ),
            None => None,
        };
        let shutdown = CancellationToken::new();
        let tunnels = TaskTracker::new();
        let stats = Arc::new(Stats::new(status.cert_warn_days));
        stats.metrics.set_expiry(&tls);
        // Backend requests in flight are bounded as client connections are.
        let limits = Limits {
            max_connections: listener.max_connections,
            workers: listener.worker_count(),
        };
        let proxy = Arc::new(Proxy::new(
            &backend,
            limits,
            &logging,
            tunnels.clone(),
            shutdown.clone(),
            stats.clone(),
        )?);
        let (h1, h2) = http_builders(&listener);
        let shared = Arc::new(Shared {
            tls: Arc::new(ArcSwap::from_pointee(tls)),
            generations: Arc::new(Generations::new()),
            stats,
            proxy,
            limit: Arc::new(Semaphore::new(listener.max_connections)),
            listener,
            shutdown,
            conns: TaskTracker::new(),
            tunnels,
            h1,
            h2,
            limit_logged: Arc::new(AtomicBool::new(false)),
        });
        Ok(Server {
            listeners,
            status: status_listener,
            backend: backend.url,
            shared,
        })
    }

    /// The bound addresses (with the real port when LISTEN asked for port 0).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }

    /// The bound STATUS_LISTEN address.
    pub fn status_addr(&self) -> Option<SocketAddr> {
        self.status.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// A handle to shut down or reload the server.
    pub fn handle(&self) -> Handle {
        Handle {
            shared: self.shared.clone(),
        }
    }

    /// Serves until shutdown, then drains. Returns whether everything finished within SHUTDOWN_GRACE.
    pub async fn run(self) -> bool {
        let shared = self.shared;
        if let Some(listener) = self.status {
            let ctx = StatusContext {
                stats: shared.stats.clone(),
                tls: shared.tls.clone(),
                backend_authority: self.backend.authority.clone(),
                backend_url: self.backend.url.clone(),
            };
            tokio::spawn(status::serve(listener, ctx, shared.shutdown.clone()));
        }
        let mut workers = Vec::new();
        let mut spread = Spread::new();
        let mut started = Vec::new();
        for n in 1..shared.listener.worker_count() {
            // A worker that does not start leaves its receiver dropped: what
            // would be handed to it is served by this thread.
            let (handed, open) = spread.add_worker();
            let (up, is_up) = tokio::sync::oneshot::channel();
            match spawn_worker(n, &shared, handed, open, up) {
                Ok(w) => {
                    workers.push(w);
                    started.push(is_up);
                }
                Err(e) => {
                    tracing::warn!("cannot start worker thread {n}: {e}; going on without it")
                }
            }
        }
        for is_up in started {
            let _ = is_up.await;
        }
        tracing::info!(
            "serving connections on {} thread(s) (WORKERS)",
            workers.len() + 1
        );
        let spread = Arc::new(spread);
        let mut accept_loops = Vec::new();
        for listener in self.listeners {
            accept_loops.push(tokio::spawn(accept_loop(
                shared.clone(),
                listener,
                spread.clone(),
            )));
        }
        shared.shutdown.cancelled().await;
        for l in accept_loops {
            let _ = l.await; // the listeners are closed once their loops end
        }
        tracing::info!(
            "stopped accepting connections; waiting up to SHUTDOWN_GRACE ({} s) for requests in flight",
            shared.listener.shutdown_grace.as_secs()
        );
        shared.conns.close();
        shared.tunnels.close();
        let grace = shared.listener.shutdown_grace;
        let drained = tokio::time::timeout(grace, async {
            shared.conns.wait().await;
            shared.tunnels.wait().await;
        })
        .await
        .is_ok();
        if !drained {
            tracing::warn!(
                "SHUTDOWN_GRACE ({} s) ran out with connections still open; closing them",
                grace.as_secs()
            );
        }
        for w in workers {
            // each ends within SHUTDOWN_GRACE of the same signal
            let _ = tokio::task::spawn_blocking(move || w.join()).await;
        }
        drained
    }
}

/// hyper's own builders, one per protocol (ALPN has told which): not
/// hyper-util's `auto`, which would put a rewinding layer under every read
/// and write for a version it does not need to sniff.
fn http_builders(
    listener: &Listener,
) -> (
    hyper::server::conn::http1::Builder,
    hyper::server::conn::http2::Builder<TokioExecutor>,
) {
    let mut h1 = hyper::server::conn::http1::Builder::new();
    h1.timer(TokioTimer::new())
        .header_read_timeout(listener.header_timeout)
        // a hard limit on the head: `max_buf_size` alone only stops a head
        // that has not been parsed yet, so one that arrives whole in a
        // single read can be larger
        .max_header_size(MAX_HEADER_BYTES)
        .max_buf_size(MAX_HEADER_BYTES)
        .max_headers(MAX_HEADERS);
    let mut h2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    h2.timer(TokioTimer::new())
        .max_concurrent_streams(H2_MAX_STREAMS)
        .max_header_list_size(MAX_HEADER_BYTES as u32)
        .max_pending_accept_reset_streams(H2_MAX_PENDING_RESETS)
        .max_local_error_reset_streams(H2_MAX_ERROR_RESETS)
        // Pings find dead peers; they do not count as activity (see `conn`).
        .keep_alive_interval(Some(listener.idle_timeout))
        .keep_alive_timeout(listener.header_timeout);
    (h1, h2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_connections_fits_the_open_files_limit() {
        assert_eq!(fitting_max_connections(2048, Some(16384)), 2048);
        assert_eq!(fitting_max_connections(2048, None), 2048);
        // `ulimit -n 1024` outside systemd: two descriptors per connection
        assert_eq!(fitting_max_connections(2048, Some(1024)), 256);
        assert_eq!(fitting_max_connections(2048, Some(100)), 1);
    }

    #[test]
    fn log_subjects_are_clipped_on_a_character_boundary() {
        let long = "山".repeat(LOG_SUBJECT_CHARS + 5);
        assert_eq!(clip(&long).chars().count(), LOG_SUBJECT_CHARS);
        assert_eq!(clip("/CN=user1"), "/CN=user1");
    }
}
