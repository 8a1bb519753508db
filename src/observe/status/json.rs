//! The `/status` document as serde structs: the fields and their names are
//! the JSON contract monitoring scripts read (tests/status.rs pins them).

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{PoisonError, Stats, StatusContext};
use std::sync::atomic::Ordering;

/// A certificate with its days left.
#[derive(Serialize)]
pub(super) struct Cert {
    subject: String,
    serial: String,
    /// SHA-256 of the certificate (lowercase hex): what a client's
    /// `ca_sha256` names, where two CAs share a subject
    sha256: String,
    not_after: String,
    days_left: i64,
}

impl Cert {
    pub(super) fn of(info: &crate::x509::CertInfo, now: DateTime<Utc>) -> Cert {
        Cert {
            subject: info.subject_oneline.clone(),
            serial: info.serial_hex.clone(),
            sha256: info.sha256_hex.clone(),
            not_after: info.not_after.to_rfc3339(),
            days_left: info.days_left(now),
        }
    }
}

#[derive(Serialize)]
struct Crl {
    path: String,
    issuer: String,
    this_update: String,
    next_update: Option<String>,
    revoked: usize,
    state: &'static str,
}

#[derive(Serialize)]
struct Backend {
    url: String,
    last_ok: Option<String>,
    state: &'static str,
    last_error: Option<String>,
}

#[derive(Serialize)]
struct Reload {
    at: String,
    ok: bool,
    message: String,
}

#[derive(Serialize)]
struct Client {
    cn: String,
    serial: String,
    /// the certificate's issuer, one-line form
    issuer: String,
    /// the SHA-256 of the CA_CRT certificate its chain ends at (a
    /// `ca_certificates` entry's `sha256`), `null` when not known: two CAs
    /// of CA_CRT may share a name, and each numbers its clients from 01
    ca_sha256: Option<String>,
    not_after: String,
    days_left: i64,
    last_seen: String,
    requests: u64,
    expiring_soon: bool,
    /// the reason it was refused since it was last accepted (`revoked`…)
    refused: Option<String>,
}

/// The whole `/status` document.
#[derive(Serialize)]
pub(super) struct Status {
    version: &'static str,
    started: String,
    uptime_seconds: u64,
    server_certificate: Cert,
    ca_certificates: Vec<Cert>,
    crls: Vec<Crl>,
    crl_stale: &'static str,
    crl_refusing_clients: bool,
    backend: Backend,
    last_reload: Option<Reload>,
    cert_warn_days: i64,
    clients: Vec<Client>,
}

/// Gathers the `/status` document now.
pub(super) fn status(ctx: &StatusContext) -> Status {
    let now = Utc::now();
    let stats = &ctx.stats;
    let tls = ctx.tls.load();
    let warn_days = i64::from(stats.warn_days.load(Ordering::Relaxed));
    let crls = tls
        .crls
        .iter()
        .map(|c| Crl {
            path: c.path.display().to_string(),
            issuer: c.issuer.clone(),
            this_update: c.this_update.to_rfc3339(),
            next_update: c.next_update.map(|n| n.to_rfc3339()),
            revoked: c.revoked,
            state: if crate::tls::crl::is_stale(c, now) {
                "stale"
            } else {
                "current"
            },
        })
        .collect();
    let crl_stale = tls.crl_stale == crate::config::CrlStale::Refuse;
    let refusing = crl_stale && tls.crls.iter().any(|c| crate::tls::crl::is_stale(c, now));
    let mut seen: Vec<(i64, Client)> = {
        let map = stats.clients.lock().unwrap_or_else(PoisonError::into_inner);
        map.values()
            .map(|c| {
                let days = (c.not_after - now).num_seconds().div_euclid(86_400);
                let at = c.last_seen.load(Ordering::Relaxed);
                let last = DateTime::from_timestamp(at, 0).unwrap_or_default();
                let client = Client {
                    cn: c.cn.clone(),
                    serial: c.serial.clone(),
                    issuer: c.issuer.clone(),
                    ca_sha256: c.ca_sha256().map(|f| f.to_string()),
                    not_after: c.not_after.to_rfc3339(),
                    days_left: days,
                    last_seen: last.to_rfc3339(),
                    requests: c.requests.load(Ordering::Relaxed),
                    expiring_soon: days <= warn_days,
                    refused: Stats::refused_of(c),
                };
                (at, client)
            })
            .collect()
    };
    seen.sort_by_key(|s| std::cmp::Reverse(s.0));
    let reload = stats
        .last_reload
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let backend_ok_at = stats.backend_ok_at.load(Ordering::Relaxed);
    Status {
        version: env!("CARGO_PKG_VERSION"),
        started: stats.started_at.to_rfc3339(),
        uptime_seconds: stats.started.elapsed().as_secs(),
        server_certificate: Cert::of(&tls.server_cert, now),
        ca_certificates: tls.ca_certs.iter().map(|c| Cert::of(c, now)).collect(),
        crls,
        crl_stale: if crl_stale { "refuse" } else { "warn" },
        crl_refusing_clients: refusing,
        backend: Backend {
            url: ctx.backend_url.clone(),
            last_ok: DateTime::from_timestamp(backend_ok_at, 0)
                .filter(|_| backend_ok_at > 0)
                .map(|t| t.to_rfc3339()),
            state: if stats.backend_fresh() {
                "answering"
            } else {
                "not answering"
            },
            last_error: stats
                .backend_error
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        },
        last_reload: reload.map(|r| Reload {
            at: r.at.to_rfc3339(),
            ok: r.ok,
            message: r.message,
        }),
        cert_warn_days: warn_days,
        clients: seen.into_iter().map(|(_, c)| c).collect(),
    }
}
