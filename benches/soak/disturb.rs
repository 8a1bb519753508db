//! What the operator and WebORCA do to the proxy while it serves: a SIGHUP
//! every [`RELOAD_EVERY`] alternating the two valid server certificate sets,
//! every [`BROKEN_EVERY`]th a broken set the proxy must refuse while it keeps
//! serving the previous one, the CRL re-signed every [`CRL_EVERY`]th; and the
//! backend killed and restarted on its port every [`BACKEND_RESTART_EVERY`].
//!
//! Each reload is matched to its log line, and then a new connection must be
//! served the certificate the soak expects.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::ClientConfig;
use tokio_util::sync::CancellationToken;

use crate::certs::{Certs, Set};
use crate::client;
use crate::procs::{Backend, LogTail, Proxy, signal};
use crate::tally::Tally;

pub const RELOAD_EVERY: Duration = Duration::from_secs(10);
/// Every this many-th reload installs the broken set.
pub const BROKEN_EVERY: u64 = 5;
/// Every this many-th reload also installs a freshly signed CRL.
pub const CRL_EVERY: u64 = 3;
/// How long the log may take to show a reload's outcome.
const RELOAD_CONFIRM: Duration = Duration::from_secs(10);
pub const BACKEND_RESTART_EVERY: Duration = Duration::from_secs(120);
/// No restart this close to the end, so that the held WebSockets are back
/// open when the soak checks them.
pub const RESTART_QUIET: Duration = Duration::from_secs(20);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What the reloads did.
#[derive(Default)]
pub struct Reloads {
    pub sighups: u64,
    /// a valid set taken
    pub ok: u64,
    /// a broken set refused, the previous one kept
    pub refused_broken: u64,
    /// of the accepted reloads, those that brought a re-signed CRL
    pub crl_resigned: u64,
    /// anything else: a reload without outcome, a wrong outcome, the wrong certificate served
    pub problems: Vec<String>,
}

fn other(set: Set) -> Set {
    if set == Set::A { Set::B } else { Set::A }
}

/// Sends SIGHUPs until `stop`, checking each; `done` counts them for the progress line.
pub async fn reloads(
    proxy: Arc<Proxy>,
    certs: Arc<Mutex<Certs>>,
    log: Arc<Mutex<LogTail>>,
    check: Arc<ClientConfig>,
    stop: CancellationToken,
    done: Arc<AtomicU64>,
) -> Reloads {
    let mut r = Reloads::default();
    let mut served = Set::A;
    let mut pace =
        tokio::time::interval_at(tokio::time::Instant::now() + RELOAD_EVERY, RELOAD_EVERY);
    pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for n in 1u64.. {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = pace.tick() => {}
        }
        let set = if n.is_multiple_of(BROKEN_EVERY) {
            Set::Broken
        } else {
            other(served)
        };
        let new_crl = set != Set::Broken && n.is_multiple_of(CRL_EVERY);
        let installed = tokio::task::spawn_blocking({
            let certs = certs.clone();
            move || {
                let mut certs = lock(&certs);
                certs.install(set)?;
                if new_crl {
                    certs.resign_crl()?;
                }
                Ok::<_, std::io::Error>(())
            }
        })
        .await;
        if !matches!(installed, Ok(Ok(()))) {
            r.problems.push(format!(
                "reload {n}: installing {set:?} failed: {installed:?}"
            ));
            continue;
        }
        let before = {
            let mut log = lock(&log);
            log.poll();
            (log.reloads_ok, log.reloads_refused)
        };
        if !signal("HUP", proxy.pid) {
            r.problems.push(format!("reload {n}: kill -HUP failed"));
            continue;
        }
        r.sighups += 1;
        done.fetch_add(1, Ordering::Relaxed);
        let until = Instant::now() + RELOAD_CONFIRM;
        let took = loop {
            {
                let mut log = lock(&log);
                log.poll();
                if log.reloads_ok > before.0 {
                    break Some(true);
                }
                if log.reloads_refused > before.1 {
                    break Some(false);
                }
            }
            if Instant::now() > until {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        match (set, took) {
            (Set::Broken, Some(false)) => r.refused_broken += 1,
            (Set::Broken, Some(true)) => r.problems.push(format!(
                "reload {n}: the broken set (key not matching the certificate) was taken"
            )),
            (_, Some(true)) => {
                r.ok += 1;
                r.crl_resigned += u64::from(new_crl);
                served = set;
            }
            (_, Some(false)) => r.problems.push(format!(
                "reload {n}: valid set {set:?} refused (see the proxy log)"
            )),
            (_, None) => r.problems.push(format!(
                "reload {n}: no outcome in the log within {RELOAD_CONFIRM:?}"
            )),
        }
        // New handshakes must get the set now served, and be served.
        let expected = lock(&certs).der(served).clone();
        let seen = async {
            let conn = client::connect(proxy.addr, &check).await?;
            let cert = conn.server_cert();
            let mut send = client::h1(conn).await?;
            let answer = client::get_h1(&mut send, proxy.addr, "/").await?;
            Ok::<_, client::Fail>((cert, answer.status))
        }
        .await;
        match seen {
            Ok((Some(cert), status)) if cert == expected && status == http::StatusCode::OK => {}
            Ok((cert, status)) => r.problems.push(format!(
                "reload {n} ({set:?}): a new connection got {} and {status}, expected set {served:?} and 200",
                if cert.as_ref() == Some(&expected) { "the expected certificate" } else { "another certificate" }
            )),
            Err(f) => r
                .problems
                .push(format!("reload {n}: the check connection failed: {}", f.describe())),
        }
    }
    r
}

/// What the backend restarts did.
#[derive(Default)]
pub struct Restarts {
    pub count: u64,
    /// from the kill to the new backend listening, ms
    pub gaps_ms: Vec<u64>,
    /// `/refused-probe` requests the killed backends had seen
    pub probe_hits: u64,
    pub problems: Vec<String>,
}

/// Kills and restarts the backend every [`BACKEND_RESTART_EVERY`] until
/// [`RESTART_QUIET`] before `deadline`. A restart that fails stops the soak.
pub async fn backend_restarts(
    backend: Arc<Mutex<Backend>>,
    tally: Arc<Tally>,
    deadline: Instant,
    stop: CancellationToken,
    done: Arc<AtomicU64>,
) -> Restarts {
    let mut r = Restarts::default();
    let start = Instant::now();
    for k in 1u32.. {
        let at = start + BACKEND_RESTART_EVERY * k;
        if at + RESTART_QUIET > deadline {
            break;
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep_until(at.into()) => {}
        }
        let restarted = tokio::task::spawn_blocking({
            let (backend, tally) = (backend.clone(), tally.clone());
            move || {
                let mut backend = lock(&backend);
                let hits = backend.probe_count();
                let port = backend.addr.port();
                let window = tally.restart_began();
                let t = Instant::now();
                backend.kill();
                let new = Backend::start(port);
                let gap = t.elapsed();
                let result = new.map(|new| *backend = new);
                tally.restart_ended(window);
                (hits, gap, result)
            }
        })
        .await;
        match restarted {
            Ok((hits, gap, Ok(()))) => {
                r.count += 1;
                done.fetch_add(1, Ordering::Relaxed);
                r.gaps_ms.push(gap.as_millis() as u64);
                match hits {
                    Ok(h) => r.probe_hits += h,
                    Err(e) => r.problems.push(format!("restart {k}: probe count: {e}")),
                }
            }
            Ok((_, _, Err(e))) => {
                r.problems.push(format!("restart {k}: {e}"));
                stop.cancel();
                break;
            }
            Err(e) => {
                r.problems.push(format!("restart {k}: {e}"));
                stop.cancel();
                break;
            }
        }
    }
    r
}
