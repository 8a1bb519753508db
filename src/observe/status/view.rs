//! What the operator console shows, gathered from [`Stats`] and the TLS
//! state now serving into a [`View`] (plain data the page renders). Used by
//! `/` on STATUS_LISTEN and by the admin path on the main port.

use std::sync::PoisonError;
use std::sync::atomic::Ordering;

use chrono::{DateTime, Utc};

use super::Stats;
use crate::observe::console::{CertRow, ClientRow, ReloadRow, View};
use crate::tls::TlsState;

/// Client certificates the page lists, most recently seen first: the page
/// stays readable even when [`Stats`] remembers a thousand.
const CLIENTS_SHOWN: usize = 200;

fn cert_row(kind: &'static str, info: &crate::x509::CertInfo, now: DateTime<Utc>) -> CertRow {
    CertRow {
        kind,
        subject: info.subject_oneline.clone(),
        serial: info.serial_hex.clone(),
        until: Some(info.not_after),
        days_left: Some(info.days_left(now)),
    }
}

/// Everything the console shows, now.
pub fn console_view(stats: &Stats, tls: &TlsState, backend_url: &str) -> View {
    let now = Utc::now();
    let mut certs = vec![cert_row("server", &tls.server_cert, now)];
    certs.extend(tls.ca_certs.iter().map(|c| cert_row("ca", c, now)));
    certs.extend(tls.crls.iter().map(|c| {
        CertRow {
            kind: "crl",
            subject: c.issuer.clone(),
            serial: String::new(),
            until: c.next_update,
            days_left: c
                .next_update
                .map(|n| (n - now).num_seconds().div_euclid(86_400)),
        }
    }));
    let mut clients: Vec<ClientRow> = {
        let map = stats.clients.lock().unwrap_or_else(PoisonError::into_inner);
        map.values()
            .map(|c| ClientRow {
                cn: c.cn.clone(),
                serial: c.serial.clone(),
                days_left: (c.not_after - now).num_seconds().div_euclid(86_400),
                last_seen: DateTime::from_timestamp(c.last_seen.load(Ordering::Relaxed), 0)
                    .unwrap_or_default(),
                address: c
                    .address
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .map_or_else(|| "-".to_string(), |a| a.to_string()),
                requests: c.requests.load(Ordering::Relaxed),
                refused: Stats::refused_of(c),
            })
            .collect()
    };
    clients.sort_by_key(|c| std::cmp::Reverse(c.last_seen));
    clients.truncate(CLIENTS_SHOWN);
    let reload = stats
        .last_reload
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
        .map(|r| ReloadRow {
            at: r.at,
            ok: r.ok,
            message: r.message,
        });
    View {
        now,
        warn_days: i64::from(stats.warn_days.load(Ordering::Relaxed)),
        certs,
        backend_url: backend_url.to_string(),
        backend_ok: stats.backend_fresh(),
        backend_error: stats
            .backend_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone(),
        guard: stats.console.guard(),
        reload,
        clients,
        refusals: stats.console.refusals.newest_first(),
        chart: stats.console.chart.last_day(now.timestamp()),
        version: env!("CARGO_PKG_VERSION"),
    }
}
