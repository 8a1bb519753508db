//! Per-connection bookkeeping for the idle timeout: when the connection last
//! finished something, and how many requests (or WebSocket tunnels) are in
//! flight.
//!
//! IDLE_TIMEOUT closes a connection that has had nothing in flight for that
//! long; a request waiting on a slow backend or a WebSocket is never cut by
//! it. Idleness is counted in requests, not bytes: HTTP/2 PING and SETTINGS
//! frames (the server's own keep-alive pings and the client's answers among
//! them) do not make a connection busy, so a client that only keeps the
//! connection warm cannot hold one of the MAX_CONNECTIONS slots forever.
//!
//! Nor can a client that asks for a response and then takes none of it (it
//! never reads, or holds the HTTP/2 flow-control window at zero): hyper stops
//! asking the response body for more, and the request stays in flight, with
//! its WebORCA connection and backend slot, for as long as the client likes.
//! Nor can one that stops sending a request body midway, which would hold
//! them until BACKEND_TIMEOUT (and have WebORCA blamed for the 504).
//! So the bookkeeping also knows which bodies wait on the client (a response
//! body handed a frame to hyper and not asked for the next since; a request
//! body asked for a frame the client has not sent), and every change of
//! that is a move; a connection on which bodies wait and nothing moves for
//! IDLE_TIMEOUT is cut (the watchdog, server/watchdog.rs). A body waiting on
//! WebORCA is not waiting on the client (BACKEND_TIMEOUT is its bound), and a
//! WebSocket tunnel has no such body: neither is cut by this.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use http::HeaderValue;
use tokio_util::sync::CancellationToken;

use crate::pages::Browser;
use crate::status::SeenClient;
use crate::tls::judgement::Judgement;

/// What the proxy knows about one client connection, shared by its requests.
#[derive(Debug)]
pub struct ConnInfo {
    /// the client's address
    pub peer: SocketAddr,
    /// the verdict on its certificate, kept current (expiry, reloads)
    pub judgement: Judgement,
    /// subjects of the accepted CAs, for the unknown-CA page
    pub ca_subjects: Arc<[String]>,
    /// idle tracking for the connection's watchdog
    pub activity: Arc<Activity>,
    /// the verified client's entry in `/status`
    pub client: Option<Arc<SeenClient>>,
    /// cancelled once a refused client has had its page, or the proxy shuts
    /// down: the connection is then closed (GOAWAY on HTTP/2, `Connection:
    /// close` on HTTP/1.1)
    pub close: CancellationToken,
    /// the Host an HTTP/1.0 request without one is forwarded with: the TLS
    /// server name (SNI), else the address the client connected to
    pub default_host: Option<HeaderValue>,
    /// the `X-Forwarded-For` value, the client's address formatted once per
    /// connection (see [`ConnInfo::forwarded_for`])
    pub forwarded_for: Option<HeaderValue>,
    /// the browser a refusal page's steps are written for, told from the
    /// first request's User-Agent (see [`ConnInfo::browser`])
    pub browser: OnceLock<Browser>,
    /// the first valid Host the client sent, so that the same one again is
    /// not parsed again
    pub host_seen: super::request::HostSeen,
}

impl ConnInfo {
    /// The browser on this connection, told from the User-Agent in
    /// `headers` the first time (a connection comes from one browser; later
    /// requests pay one load, not a header lookup).
    pub fn browser(&self, headers: &http::HeaderMap) -> Browser {
        *self
            .browser
            .get_or_init(|| Browser::of(headers.get(http::header::USER_AGENT)))
    }

    /// The `X-Forwarded-For` value for a client at `peer`: its IP address
    /// (an IPv4-mapped IPv6 address as IPv4).
    pub fn forwarded_for(peer: SocketAddr) -> Option<HeaderValue> {
        HeaderValue::from_str(&peer.ip().to_canonical().to_string()).ok()
    }
}

/// When a connection last finished something, and what it has in flight.
#[derive(Debug)]
pub struct Activity {
    /// the connection's start, the origin of `last_ms`
    start: Instant,
    /// milliseconds after `start` of the handshake's end or the last request's end
    last_ms: AtomicU64,
    /// requests whose response is not finished, plus open tunnels
    active: AtomicUsize,
    /// response bodies waiting for the client to take their last frame
    waiting: AtomicUsize,
    /// changes of `waiting`'s set: a body starts or ends waiting
    moves: AtomicU64,
    /// cut for a stalled client: its socket is reset, not closed
    cut: AtomicBool,
}

impl Activity {
    /// A new connection, active now.
    pub fn new() -> Arc<Activity> {
        Arc::new(Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
            active: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            moves: AtomicU64::new(0),
            cut: AtomicBool::new(false),
        })
    }

    /// The connection is cut for a stalled client: its socket is to be
    /// reset when it closes (server/cuttable.rs).
    pub fn cut(&self) {
        self.cut.store(true, Ordering::Relaxed);
    }

    /// Whether [`Activity::cut`] was called.
    pub fn is_cut(&self) -> bool {
        self.cut.load(Ordering::Relaxed)
    }

    /// A response body handed hyper a frame and waits to be asked for the
    /// next, i.e. for the client to take it.
    pub fn wait_on_client(&self) {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        self.moves.fetch_add(1, Ordering::Relaxed);
    }

    /// A body waiting on the client was asked for its next frame, or ended.
    pub fn client_moved(&self) {
        self.waiting.fetch_sub(1, Ordering::Relaxed);
        self.moves.fetch_add(1, Ordering::Relaxed);
    }

    /// The client took a write of the connection's (a socket write of some
    /// size went through): what waits on it moved. hyper asks a response
    /// body for more only once its own buffer has room, which a slow reader
    /// makes only every few hundred KiB; the socket sees each step.
    pub fn client_took(&self) {
        self.moves.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether bodies have waited on the client since the last look, with
    /// nothing moving: `seen` is what that look found (the moves then, when
    /// bodies waited), kept by the caller between looks.
    pub fn client_stalled(&self, seen: &mut Option<u64>) -> bool {
        let moves = self.moves.load(Ordering::Relaxed);
        if self.waiting.load(Ordering::Relaxed) == 0 {
            *seen = None;
            return false;
        }
        let stalled = *seen == Some(moves);
        *seen = Some(moves);
        stalled
    }

    /// Restarts the idle clock (the handshake just finished, a request ended).
    pub fn touch(&self) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// Marks a request in flight until the guard is dropped.
    pub fn begin(self: &Arc<Self>) -> ActiveGuard {
        self.active.fetch_add(1, Ordering::Relaxed);
        ActiveGuard(self.clone())
    }

    /// How long until the connection has been idle for `limit`; `None` when it
    /// already has, with nothing in flight.
    pub fn idle_remaining(&self, limit: Duration) -> Option<Duration> {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        let idle = self.start.elapsed().saturating_sub(last);
        if self.active.load(Ordering::Relaxed) > 0 {
            return Some(limit);
        }
        limit.checked_sub(idle).filter(|d| !d.is_zero())
    }
}

/// A request or tunnel in flight on a connection.
#[derive(Debug)]
pub struct ActiveGuard(Arc<Activity>);

impl ActiveGuard {
    /// The connection's bookkeeping.
    pub fn activity(&self) -> &Activity {
        &self.0
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.touch();
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_only_without_requests_in_flight() {
        let a = Activity::new();
        let limit = Duration::from_millis(1);
        let guard = a.begin();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(a.idle_remaining(limit), Some(limit), "busy, never idle");
        drop(guard);
        assert!(a.idle_remaining(Duration::from_secs(60)).is_some());
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(a.idle_remaining(limit), None);
    }

    #[test]
    fn stalled_only_when_the_same_bodies_waited_between_two_looks() {
        let a = Activity::new();
        let mut seen = None;
        assert!(!a.client_stalled(&mut seen), "nothing waits");
        a.wait_on_client();
        assert!(!a.client_stalled(&mut seen), "first look at a waiting body");
        assert!(a.client_stalled(&mut seen), "nothing moved since");
        a.client_moved();
        a.wait_on_client();
        assert!(
            !a.client_stalled(&mut seen),
            "taken and waiting again: it moved"
        );
        // one body ends and another starts waiting between two looks
        a.wait_on_client();
        assert!(!a.client_stalled(&mut seen));
        a.client_moved();
        assert!(!a.client_stalled(&mut seen), "one ended: a move");
        a.client_moved();
        assert!(!a.client_stalled(&mut seen), "none waits");
        assert!(!a.client_stalled(&mut seen), "none waits still");
    }
}
