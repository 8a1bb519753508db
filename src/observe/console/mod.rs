//! The operator console: one HTML page for the clinic's operator at `/` on
//! STATUS_LISTEN (and, for ADMIN_CN certificates, under
//! [`ADMIN_PATH`] on the main port). Japanese first, English below, no
//! JavaScript, refreshed every 30 s.
//!
//! - `rings.rs`: the bounded memory (last 100 refusals, 144 ten-minute buckets).
//! - `page.rs`: the page (maud: every string is escaped by the template).
//! - `chart.rs`: the inline SVG chart of requests and refusals over 24 h.
//!
//! What the page shows is handed to it as a [`View`], plain data gathered by
//! the status part, so this module depends on nothing above it.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use chrono::{DateTime, Utc};

mod chart;
mod page;
pub mod rings;

pub use page::{Place, render};
pub use rings::{Bucket, Refusal};

/// Where the console lives on the main TLS port, for ADMIN_CN certificates.
pub const ADMIN_PATH: &str = "/.well-known/weborca-mtls-proxy/";
/// The Content-Security-Policy of the console: no script, no outside
/// resource, not framed, forms only to itself.
pub const CSP: &str =
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'";
/// The reload button's target on the main port.
pub const RELOAD_PATH: &str = "/.well-known/weborca-mtls-proxy/reload";

/// Runs the same reload as SIGHUP, logged with the reason given; resolves to whether it took.
pub type ReloadHook =
    Arc<dyn Fn(String) -> Pin<Box<dyn Future<Output = bool> + Send>> + Send + Sync>;

/// The backend guard as last looked at (by the program's start-up code,
/// which owns `nft`; the page only reads this).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardView {
    /// `Some(true)`: the nftables table drops the backend port; `Some(false)`:
    /// it does not; `None`: `nft` could not tell
    pub loaded: Option<bool>,
    /// what `nft` said, one line
    pub detail: String,
    /// the non-loopback addresses the backend port listens on
    pub exposed: Vec<String>,
    /// the backend port
    pub port: u16,
    /// when this was looked at
    pub at: DateTime<Utc>,
}

/// The console's own state, kept in [`Stats`](crate::status::Stats).
#[derive(Default)]
pub struct Console {
    /// the last refusals
    pub refusals: rings::RefusalRing,
    /// requests and refusals per ten minutes
    pub chart: rings::Chart,
    guard: Mutex<Option<GuardView>>,
    reload: OnceLock<ReloadHook>,
    /// ADMIN_CN, set at start and on each reload
    admins: Mutex<Arc<[String]>>,
}

impl Console {
    /// Counts one answered request in the chart.
    pub fn request(&self) {
        self.chart.request();
    }

    /// Records a refused client in the list and the chart.
    pub fn refused(&self, peer: SocketAddr, reason: &str, subject: &str) {
        self.refusals.push(peer, reason, subject);
        self.chart.refusal();
    }

    /// Stores the guard's state for the page.
    pub fn set_guard(&self, view: GuardView) {
        *self.guard.lock().unwrap_or_else(PoisonError::into_inner) = Some(view);
    }

    /// The guard's state as last looked at.
    pub fn guard(&self) -> Option<GuardView> {
        self.guard
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Gives the console the reload SIGHUP runs (once; later calls are ignored).
    pub fn set_reload(&self, hook: ReloadHook) {
        let _ = self.reload.set(hook);
    }

    /// Takes ADMIN_CN (at start and after each reload); `None`: nobody.
    pub fn set_admins(&self, admins: Option<&[String]>) {
        *self.admins.lock().unwrap_or_else(PoisonError::into_inner) =
            admins.unwrap_or_default().into();
    }

    /// Whether a certificate's CN is in ADMIN_CN (compared exactly, like
    /// ALLOW_CN). A certificate without a CN is never an administrator, even
    /// when ADMIN_CN holds the `-` logs show for one.
    pub fn is_admin(&self, cn: Option<&str>) -> bool {
        let Some(cn) = cn else {
            return false;
        };
        self.admins
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .any(|a| a == cn)
    }

    /// The reload, when the running program gave one.
    pub fn reload_hook(&self) -> Option<ReloadHook> {
        self.reload.get().cloned()
    }
}

/// A certificate or CRL with its days left.
#[derive(Debug, Clone)]
pub struct CertRow {
    /// `server`, `ca` or `crl`
    pub kind: &'static str,
    /// subject (CRL: issuer), one-line form
    pub subject: String,
    /// serial, hex (empty for a CRL)
    pub serial: String,
    /// not after (CRL: next update)
    pub until: Option<DateTime<Utc>>,
    /// days left until then
    pub days_left: Option<i64>,
}

/// A client certificate seen.
#[derive(Debug, Clone)]
pub struct ClientRow {
    /// CN
    pub cn: String,
    /// serial, hex
    pub serial: String,
    /// days left
    pub days_left: i64,
    /// last request
    pub last_seen: DateTime<Utc>,
    /// the address it last came from
    pub address: String,
    /// requests
    pub requests: u64,
    /// the reason it was refused since it was last accepted
    pub refused: Option<String>,
}

/// The last reload.
#[derive(Debug, Clone)]
pub struct ReloadRow {
    /// when
    pub at: DateTime<Utc>,
    /// whether it took
    pub ok: bool,
    /// what it said
    pub message: String,
}

/// Everything the page shows, gathered at one moment.
#[derive(Debug, Clone)]
pub struct View {
    /// now
    pub now: DateTime<Utc>,
    /// CERT_WARN_DAYS
    pub warn_days: i64,
    /// server certificate, CA certificates, CRLs
    pub certs: Vec<CertRow>,
    /// BACKEND_URL
    pub backend_url: String,
    /// whether WebORCA answered recently
    pub backend_ok: bool,
    /// WebORCA's last failure
    pub backend_error: Option<String>,
    /// the guard, when looked at
    pub guard: Option<GuardView>,
    /// the last reload
    pub reload: Option<ReloadRow>,
    /// client certificates seen, most recent first
    pub clients: Vec<ClientRow>,
    /// refusals, newest first
    pub refusals: Vec<Refusal>,
    /// the chart's buckets, oldest first
    pub chart: Vec<Bucket>,
    /// the proxy's version
    pub version: &'static str,
}
