//! What the soak counts: every request (or WebSocket message) by kind and
//! outcome, and the windows around backend restarts inside which a 502/504
//! (or a broken stream) is what a restart does, not an error.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::client::Fail;

/// How long after the restarted backend listens its in-flight failures are
/// still put down to the restart: the proxy's pooled connections to the old
/// backend are dropped as it notices them closed.
const RESTART_GRACE: Duration = Duration::from_secs(3);
/// Error descriptions kept for the report.
const ERROR_SAMPLES: usize = 30;

/// What a request was.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    KeepAliveH1,
    KeepAliveH2,
    NewFull,
    NewResumed,
    Upload,
    Download,
    /// an echo on one of the WebSockets held open all along (and their reopening)
    WsHeld,
    /// a WebSocket opened, echoed once and closed
    WsChurn,
    NoCert,
    ForeignCa,
    Expired,
    Revoked,
}

impl Kind {
    pub const ALL: [Kind; 12] = [
        Kind::KeepAliveH1,
        Kind::KeepAliveH2,
        Kind::NewFull,
        Kind::NewResumed,
        Kind::Upload,
        Kind::Download,
        Kind::WsHeld,
        Kind::WsChurn,
        Kind::NoCert,
        Kind::ForeignCa,
        Kind::Expired,
        Kind::Revoked,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Kind::KeepAliveH1 => "keep-alive HTTP/1.1",
            Kind::KeepAliveH2 => "keep-alive HTTP/2",
            Kind::NewFull => "new connection, full handshake",
            Kind::NewResumed => "new connection, resumption offered",
            Kind::Upload => "upload",
            Kind::Download => "download",
            Kind::WsHeld => "held WebSockets: echoes, reopenings",
            Kind::WsChurn => "WebSocket open/echo/close",
            Kind::NoCert => "refused: no certificate",
            Kind::ForeignCa => "refused: foreign CA",
            Kind::Expired => "refused: expired",
            Kind::Revoked => "refused: revoked (CRL)",
        }
    }

    /// The X-Client-Cert-Error the proxy must answer a refused kind with.
    pub fn refusal(self) -> Option<&'static str> {
        match self {
            Kind::NoCert => Some("missing"),
            Kind::ForeignCa => Some("unknown-ca"),
            Kind::Expired => Some("expired"),
            Kind::Revoked => Some("revoked"),
            _ => None,
        }
    }

    /// Kinds whose stream is tied to a backend connection while it lasts
    /// (a transfer, a WebSocket tunnel): a backend restart may break them
    /// mid-way rather than answer 502.
    fn streams(self) -> bool {
        matches!(
            self,
            Kind::Upload | Kind::Download | Kind::WsHeld | Kind::WsChurn
        )
    }
}

/// How a request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    Ok,
    /// a refused client answered with the 403 page and the right reason
    Refused,
    /// a refused client stopped by the TLS layer
    RefusedTls,
    /// 502/504 or a broken stream around a backend restart
    BackendRestart,
    Error,
    /// a refused client let in: a security failure
    LetIn,
}

/// One backend restart: from the kill to [`RESTART_GRACE`] after the new one listens.
struct Window {
    from: Instant,
    to: Option<Instant>,
}

pub struct Tally {
    t0: Instant,
    counts: Mutex<BTreeMap<(Kind, Outcome), u64>>,
    resumed: Mutex<BTreeMap<Kind, u64>>,
    samples: Mutex<Vec<String>>,
    windows: Mutex<Vec<Window>>,
    total: AtomicU64,
    errors: AtomicU64,
}

impl Tally {
    pub fn new(t0: Instant) -> Tally {
        Tally {
            t0,
            counts: Mutex::default(),
            resumed: Mutex::default(),
            samples: Mutex::default(),
            windows: Mutex::default(),
            total: AtomicU64::new(0),
            errors: AtomicU64::new(0),
        }
    }

    fn add(&self, kind: Kind, outcome: Outcome) {
        *lock(&self.counts).entry((kind, outcome)).or_default() += 1;
        self.total.fetch_add(1, Ordering::Relaxed);
        if matches!(outcome, Outcome::Error | Outcome::LetIn) {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn sample(&self, kind: Kind, what: &str) {
        let mut samples = lock(&self.samples);
        if samples.len() < ERROR_SAMPLES {
            samples.push(format!(
                "{:.1} s, {}: {what}",
                self.t0.elapsed().as_secs_f64(),
                kind.label()
            ));
        }
    }

    pub fn ok(&self, kind: Kind) {
        self.add(kind, Outcome::Ok);
    }

    /// A handshake of `kind` resumed a session (counted besides its outcome).
    pub fn resumed(&self, kind: Kind) {
        *lock(&self.resumed).entry(kind).or_default() += 1;
    }

    /// A refused client's answer: the 403 page with the right reason, or a TLS refusal.
    pub fn refused(&self, kind: Kind, by_tls: bool) {
        self.add(
            kind,
            if by_tls {
                Outcome::RefusedTls
            } else {
                Outcome::Refused
            },
        );
    }

    /// A refused client was served: a security failure.
    pub fn let_in(&self, kind: Kind, what: &str) {
        self.add(kind, Outcome::LetIn);
        self.sample(
            kind,
            &format!("SECURITY: a refused client was let in: {what}"),
        );
    }

    /// An error whatever the time.
    pub fn error(&self, kind: Kind, what: &str) {
        self.add(kind, Outcome::Error);
        self.sample(kind, what);
    }

    /// A request of `kind` started at `started` failed now: a backend restart
    /// outcome if it is what a restart does (502/504; a broken stream for
    /// the kinds that stream) and it overlaps a restart window, else an error.
    /// Returns which of the two it was.
    pub fn failed(&self, kind: Kind, started: Instant, fail: &Fail) -> Outcome {
        let restart_like =
            fail.is_gateway() || (kind.streams() && matches!(fail, Fail::Io(_) | Fail::Tls(_)));
        if restart_like && self.in_restart(started, Instant::now()) {
            self.add(kind, Outcome::BackendRestart);
            Outcome::BackendRestart
        } else {
            self.error(kind, &fail.describe());
            Outcome::Error
        }
    }

    /// Whether [from, to] overlaps a restart window.
    fn in_restart(&self, from: Instant, to: Instant) -> bool {
        lock(&self.windows)
            .iter()
            .any(|w| w.from <= to && w.to.is_none_or(|end| from <= end))
    }

    /// The backend is about to be killed; returns the window's number.
    pub fn restart_began(&self) -> usize {
        let mut windows = lock(&self.windows);
        windows.push(Window {
            from: Instant::now(),
            to: None,
        });
        windows.len() - 1
    }

    /// The new backend listens: the window closes after the grace period.
    pub fn restart_ended(&self, window: usize) {
        if let Some(w) = lock(&self.windows).get_mut(window) {
            w.to = Some(Instant::now() + RESTART_GRACE);
        }
    }

    pub fn count(&self, kind: Kind, outcome: Outcome) -> u64 {
        lock(&self.counts)
            .get(&(kind, outcome))
            .copied()
            .unwrap_or(0)
    }

    pub fn resumed_count(&self, kind: Kind) -> u64 {
        lock(&self.resumed).get(&kind).copied().unwrap_or(0)
    }

    pub fn kind_total(&self, kind: Kind) -> u64 {
        lock(&self.counts)
            .iter()
            .filter(|((k, _), _)| *k == kind)
            .map(|(_, n)| n)
            .sum()
    }

    /// Requests (and WebSocket messages) so far, and of them errors and let-ins.
    pub fn totals(&self) -> (u64, u64) {
        (
            self.total.load(Ordering::Relaxed),
            self.errors.load(Ordering::Relaxed),
        )
    }

    pub fn outcome_total(&self, outcome: Outcome) -> u64 {
        lock(&self.counts)
            .iter()
            .filter(|((_, o), _)| *o == outcome)
            .map(|(_, n)| n)
            .sum()
    }

    pub fn samples(&self) -> Vec<String> {
        lock(&self.samples).clone()
    }

    pub fn restart_grace(&self) -> Duration {
        RESTART_GRACE
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
