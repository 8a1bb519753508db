//! What the status listener (STATUS_LISTEN, loopback only) reports: the
//! runtime state ([`Stats`]) here, the HTTP endpoints in `endpoints.rs`:
//!
//! - `/healthz`: the process is alive (200).
//! - `/readyz`: certificates are loaded and WebORCA answered within the last
//!   30 s (or answers a TCP connect now): 200, else 503.
//! - `/status`: JSON — version, uptime, server/CA certificates with days left,
//!   CRLs, backend state, last reload, and the client certificates seen
//!   recently (CN, serial, issuer and the CA_CRT certificate their chain
//!   ends at, days left, last seen, requests; flagged inside
//!   CERT_WARN_DAYS).
//! - `/metrics`: Prometheus text (see `metrics`).
//! - `/`: the operator console (see `console`); `view.rs` gathers what it shows.
//!
//! `stalled.rs` closes a connection whose answer is left unread (with
//! hyper's header-read timeout, what keeps idle sockets from holding the
//! listener's connection slots).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use std::net::SocketAddr;

use chrono::{DateTime, Utc};
use http::header;

use crate::metrics::Metrics;
use crate::observe::console::Console;
use crate::tls::Identity;
use crate::tls::judgement::unix_now;

mod endpoints;
mod json;
mod stalled;
mod view;

pub use endpoints::{
    STATUS_HEADER_TIMEOUT, STATUS_MAX_CONNECTIONS, STATUS_WRITE_TIMEOUT, StatusContext,
    probe_backend, serve,
};
pub use view::console_view;

/// Client certificates remembered for `/status`; the least recently seen go first.
const MAX_CLIENTS_TRACKED: usize = 1024;
/// A backend answer younger than this (and no failure since) shows WebORCA
/// as answering; the pages that show it probe first.
const BACKEND_FRESH: Duration = Duration::from_secs(30);

/// A client certificate seen in use.
#[derive(Debug)]
pub struct SeenClient {
    /// CN, or `-`
    pub cn: String,
    /// serial, hex
    pub serial: String,
    /// the certificate's issuer, one-line form: a CRL revokes serials of
    /// the certificates its issuer issued, and every orca-catool CA numbers
    /// them from 01
    pub issuer: String,
    /// the SHA-256 fingerprint of the CA_CRT certificate its chain ended at
    /// when last accepted (see [`Identity::ca_sha256`]): with two CAs of
    /// one name in CA_CRT, what tells whose client it is. Kept current on
    /// each connection, as a reload may change CA_CRT.
    ca_sha256: Mutex<Option<Arc<str>>>,
    /// the certificate's end of validity
    pub not_after: DateTime<Utc>,
    last_seen: AtomicI64,
    /// the address of its latest connection
    address: Mutex<Option<SocketAddr>>,
    requests: AtomicU64,
    /// the day (days since 1970) its expiry was last logged
    warned_day: AtomicI64,
    /// the reason it was last refused (revoked, expired…) when it has not
    /// been accepted since: the lists show it refused, not in use
    refused: Mutex<Option<String>>,
}

impl SeenClient {
    /// The fingerprint of the CA_CRT certificate its chain ended at, when known.
    pub fn ca_sha256(&self) -> Option<Arc<str>> {
        self.ca_sha256
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Counts one request.
    pub fn request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        store_changed(&self.last_seen, unix_now());
    }
}

/// The last reload and how it went.
#[derive(Debug, Clone)]
struct ReloadRecord {
    at: DateTime<Utc>,
    ok: bool,
    message: String,
}

/// Everything the status listener reports on, shared by the server parts.
pub struct Stats {
    /// Prometheus metrics
    pub metrics: Metrics,
    started: Instant,
    started_at: DateTime<Utc>,
    /// when WebORCA last answered (Unix seconds, 0 = never)
    backend_ok_at: AtomicI64,
    /// whether WebORCA's last outcome (a request, a probe) was a failure
    backend_failing: AtomicBool,
    /// WebORCA's last failure, for `/status`
    backend_error: Mutex<Option<String>>,
    last_reload: Mutex<Option<ReloadRecord>>,
    clients: Mutex<HashMap<String, Arc<SeenClient>>>,
    /// CERT_WARN_DAYS, updated on reload
    warn_days: AtomicU32,
    /// the console's rings and hooks
    pub console: Console,
}

impl Stats {
    /// Fresh statistics.
    pub fn new(warn_days: u32) -> Stats {
        Stats {
            metrics: Metrics::new(),
            started: Instant::now(),
            started_at: Utc::now(),
            backend_ok_at: AtomicI64::new(0),
            backend_failing: AtomicBool::new(false),
            backend_error: Mutex::new(None),
            last_reload: Mutex::new(None),
            clients: Mutex::new(HashMap::new()),
            warn_days: AtomicU32::new(warn_days),
            console: Console::default(),
        }
    }

    /// WebORCA answered.
    pub fn backend_ok(&self) {
        store_changed(&self.backend_ok_at, unix_now());
        if self.backend_failing.load(Ordering::Relaxed) {
            self.backend_failing.store(false, Ordering::Relaxed);
        }
    }

    /// WebORCA did not accept a probe's connection (no request failed, so
    /// no metric counts it); `detail` becomes the last error.
    pub fn backend_unreachable(&self, detail: &str) {
        self.backend_failing.store(true, Ordering::Relaxed);
        *self
            .backend_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(detail.to_string());
    }

    /// WebORCA failed; `kind` is the metric label.
    pub fn backend_failed(&self, kind: &str, detail: &str) {
        Metrics::count(&self.metrics.backend_errors, kind);
        self.backend_failing.store(true, Ordering::Relaxed);
        *self
            .backend_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(detail.to_string());
    }

    /// Records a reload's outcome.
    pub fn reloaded(&self, ok: bool, message: &str, warn_days: u32) {
        Metrics::count(&self.metrics.reloads, if ok { "ok" } else { "failed" });
        if ok {
            self.warn_days.store(warn_days, Ordering::Relaxed);
        }
        let record = ReloadRecord {
            at: Utc::now(),
            ok,
            message: message.to_string(),
        };
        *self
            .last_reload
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(record);
    }

    /// The last reload: whether it took, and what it said.
    pub fn last_reload(&self) -> Option<(bool, String)> {
        self.last_reload
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|r| (r.ok, r.message.clone()))
    }

    /// Counts a refused client (metrics by reason) and lists it on the console:
    /// `subject` is the certificate's, `-` when there was none.
    pub fn refused(&self, peer: SocketAddr, reason: &str, subject: &str) {
        Metrics::count(&self.metrics.refusals, reason);
        self.console.refused(peer, reason, subject);
    }

    /// Marks the seen client with fingerprint `sha256_hex` (if it is one)
    /// refused for `reason`, until it is accepted again.
    pub fn seen_refused(&self, sha256_hex: &str, reason: &str) {
        let clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(c) = clients.get(sha256_hex) {
            *c.refused.lock().unwrap_or_else(PoisonError::into_inner) = Some(reason.to_string());
        }
    }

    /// A seen client's refusal reason, if it is refused now.
    fn refused_of(c: &SeenClient) -> Option<String> {
        c.refused
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Counts an answered request, by status class, in the metrics and the console's chart.
    pub fn answered(&self, status: u16) {
        self.metrics.count_request(status);
        self.console.request();
    }

    /// Notes a verified client connecting from `peer`; logs once a day when
    /// its certificate expires within CERT_WARN_DAYS.
    pub fn client_seen(&self, id: &Identity, peer: SocketAddr) -> Arc<SeenClient> {
        let now = Utc::now();
        let client = {
            let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
            if !clients.contains_key(&id.info.sha256_hex) && clients.len() >= MAX_CLIENTS_TRACKED {
                evict_oldest(&mut clients);
            }
            clients
                .entry(id.info.sha256_hex.clone())
                .or_insert_with(|| {
                    Arc::new(SeenClient {
                        cn: id.cn().to_string(),
                        serial: id.info.serial_hex.clone(),
                        issuer: id.info.issuer_oneline.clone(),
                        ca_sha256: Mutex::new(None),
                        not_after: id.info.not_after,
                        last_seen: AtomicI64::new(now.timestamp()),
                        address: Mutex::new(None),
                        requests: AtomicU64::new(0),
                        warned_day: AtomicI64::new(i64::MIN),
                        refused: Mutex::new(None),
                    })
                })
                .clone()
        };
        *client
            .address
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(peer);
        *client
            .ca_sha256
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = id.ca_sha256.clone();
        *client
            .refused
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
        let days = id.info.days_left(now);
        let today = now.timestamp().div_euclid(86_400);
        if days <= i64::from(self.warn_days.load(Ordering::Relaxed))
            && client.warned_day.swap(today, Ordering::Relaxed) != today
        {
            tracing::warn!(
                name: "cert-expiring",
                "client certificate CN={} (serial {}) expires in {days} days ({}); issue a new one with orca-catool issue_client_cert before the user is locked out",
                crate::text::log_safe(&client.cn),
                crate::text::log_safe(&client.serial),
                client
                    .not_after
                    .with_timezone(&chrono::Local)
                    .format(crate::log::TIME_FORMAT)
            );
        }
        client
    }

    /// Whether WebORCA answered within BACKEND_FRESH and has not failed since.
    fn backend_fresh(&self) -> bool {
        let at = self.backend_ok_at.load(Ordering::Relaxed);
        at > 0
            && unix_now() - at < BACKEND_FRESH.as_secs() as i64
            && !self.backend_failing.load(Ordering::Relaxed)
    }
}

fn evict_oldest(clients: &mut HashMap<String, Arc<SeenClient>>) {
    let oldest = clients
        .iter()
        .min_by_key(|(_, c)| c.last_seen.load(Ordering::Relaxed))
        .map(|(k, _)| k.clone());
    if let Some(k) = oldest {
        clients.remove(&k);
    }
}

/// Stores `now` unless the cell holds it already: a request path that runs
/// many times a second writes the shared cell once a second, not each time.
fn store_changed(cell: &AtomicI64, now: i64) {
    if cell.load(Ordering::Relaxed) != now {
        cell.store(now, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::endpoints::local_host;
    use super::*;

    #[test]
    fn only_loopback_hosts_are_answered() {
        let ok = |h: &str| local_host(Some(&header::HeaderValue::from_str(h).unwrap()));
        for h in [
            "localhost",
            "LOCALHOST:9100",
            "127.0.0.1",
            "127.0.0.1:9100",
            "[::1]",
            "[::1]:9100",
        ] {
            assert!(ok(h), "{h}");
        }
        for h in [
            "evil.example",
            "evil.example:9100",
            "127.0.0.2",
            "localhost.evil.example",
            "u@localhost",
            "[::2]",
            "",
            "localhost:abc",
            "localhost:",
        ] {
            assert!(!ok(h), "{h}");
        }
        assert!(!local_host(None));
    }
}
