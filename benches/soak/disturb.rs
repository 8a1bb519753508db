//! What the operator and WebORCA do to the proxy while it serves: a SIGHUP
//! every [`RELOAD_EVERY`] alternating the two valid server certificate sets,
//! every [`BROKEN_EVERY`]th a broken set the proxy must refuse while it keeps
//! serving the previous one, the CRL re-signed every [`CRL_EVERY`]th; and the
//! backend killed and restarted on its port every [`BACKEND_RESTART_EVERY`].
//!
//! Each reload is matched to its log line, and then a new connection must be
//! served the certificate the soak expects.
//!
//! Every [`REVOKE_EVERY`]th reload also revokes a client that holds a
//! keep-alive HTTP/1.1 connection and a WebSocket open across it: after the
//! reload its next request on that connection must be refused and its
//! WebSocket closed with 1008; both then ask for the backend's counted probe
//! (a request, a message), so anything of it forwarded after the reload
//! fails the soak like a refused client let in. A later reload reinstates it.

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
/// Every this many-th reload revokes the client holding connections open.
pub const REVOKE_EVERY: u64 = 4;
/// WebSocket close code for a policy violation (RFC 6455 §7.4.1).
const CLOSE_POLICY: u16 = 1008;
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
    /// reloads that revoked a client holding a connection and a WebSocket open
    pub revocations: u64,
    /// of those, the revoked client's next request refused on its open connection
    pub revoked_request_refused: u64,
    /// of those, the revoked client's WebSocket closed with 1008
    pub revoked_ws_closed: u64,
    /// revocations not tried because the client's connections could not be
    /// opened first (a backend restart at that moment)
    pub revocations_skipped: u64,
    /// anything else: a reload without outcome, a wrong outcome, the wrong certificate served
    pub problems: Vec<String>,
}

/// The revokee's connections held open across a revoking reload.
struct Victim {
    h1: client::H1,
    ws: client::Ws,
}

/// Opens the revokee's keep-alive connection and WebSocket, each used once.
async fn open_victim(
    addr: std::net::SocketAddr,
    config: &Arc<ClientConfig>,
) -> Result<Victim, client::Fail> {
    let conn = client::connect(addr, config).await?;
    let mut h1 = client::h1(conn).await?;
    let answer = client::get_h1(&mut h1, addr, "/").await?;
    if answer.status != http::StatusCode::OK {
        return Err(answer.fail());
    }
    let mut ws = client::ws_open(addr, config).await?;
    client::ws_echo(&mut ws, "before the revocation").await?;
    Ok(Victim { h1, ws })
}

/// After the revoking reload: the open connection must refuse, the WebSocket
/// must close with 1008; both then try the counted probe.
async fn check_victim(n: u64, mut v: Victim, addr: std::net::SocketAddr, r: &mut Reloads) {
    match client::get_h1(&mut v.h1, addr, crate::mix::PROBE_PATH).await {
        Ok(a) if a.status == http::StatusCode::FORBIDDEN && a.cert_error.as_deref() == Some("revoked") => {
            r.revoked_request_refused += 1;
        }
        Ok(a) => r.problems.push(format!(
            "reload {n}: the revoked client's open connection got {} ({:?}) instead of the revoked page",
            a.status, a.cert_error
        )),
        Err(f) => r.problems.push(format!(
            "reload {n}: the revoked client's open connection failed instead of answering the revoked page: {}",
            f.describe()
        )),
    }
    match client::ws_close_code(&mut v.ws).await {
        Ok(Some(CLOSE_POLICY)) => r.revoked_ws_closed += 1,
        Ok(code) => r.problems.push(format!(
            "reload {n}: the revoked client's WebSocket closed with {code:?}, not {CLOSE_POLICY}"
        )),
        Err(f) => r.problems.push(format!(
            "reload {n}: the revoked client's WebSocket was not closed with {CLOSE_POLICY}: {}",
            f.describe()
        )),
    }
    client::ws_try_send(&mut v.ws, "refused-probe").await;
}

fn other(set: Set) -> Set {
    if set == Set::A { Set::B } else { Set::A }
}

/// Sends SIGHUPs until `stop`, checking each; `done` counts them for the progress line.
#[allow(clippy::too_many_arguments)]
pub async fn reloads(
    proxy: Arc<Proxy>,
    certs: Arc<Mutex<Certs>>,
    log: Arc<Mutex<LogTail>>,
    check: Arc<ClientConfig>,
    revokee: Arc<ClientConfig>,
    stop: CancellationToken,
    done: Arc<AtomicU64>,
) -> Reloads {
    let mut r = Reloads::default();
    let mut served = Set::A;
    let mut revokee_revoked = false;
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
        let valid = set != Set::Broken;
        // Revoke the revokee while it holds connections open, or reinstate it.
        let mut victim = None;
        if valid && !revokee_revoked && n.is_multiple_of(REVOKE_EVERY) {
            match open_victim(proxy.addr, &revokee).await {
                Ok(v) => victim = Some(v),
                Err(f) => {
                    eprintln!(
                        "soak: reload {n}: the revokee's connections could not be opened ({}); no revocation this time",
                        f.describe()
                    );
                    r.revocations_skipped += 1;
                }
            }
        }
        let revoke = victim.is_some();
        let reinstate = valid && revokee_revoked && !n.is_multiple_of(REVOKE_EVERY);
        let new_crl = valid && (n.is_multiple_of(CRL_EVERY) || revoke || reinstate);
        let installed = tokio::task::spawn_blocking({
            let certs = certs.clone();
            move || {
                let mut certs = lock(&certs);
                certs.install(set)?;
                if revoke {
                    certs.set_revokee(true);
                } else if reinstate {
                    certs.set_revokee(false);
                }
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
                if revoke {
                    revokee_revoked = true;
                } else if reinstate {
                    revokee_revoked = false;
                }
                if let Some(v) = victim.take() {
                    r.revocations += 1;
                    check_victim(n, v, proxy.addr, &mut r).await;
                }
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
