//! `cargo bench --bench soak -- [--minutes M]`: the proxy under 30 minutes
//! (default) of mixed load, reloads and backend restarts, then a markdown
//! report for benches/RESULTS.md and PASS or FAIL (exit code 1). Not part of CI.
//!
//! Why: the tests check each behaviour once; a clinic runs the proxy for
//! months. Whatever leaks a little per request, per connection, per reload
//! or per backend restart — memory, descriptors, tunnels, stuck tasks —
//! shows here as growth between the start and the end of a long run under
//! everything at once.
//!
//! What runs, all on loopback (rates in [`mix`], disturbances in [`disturb`]):
//!
//! - the release proxy binary (defaults: access log on, CLIENT_CERT_ERRORS=page),
//!   an RSA-2048 PKI like orca-catool's, a CRL, a status listener;
//! - the backend (benches/proxy/backend.rs, this binary in its backend role);
//! - keep-alive HTTP/1.1 and HTTP/2, a new connection per request (full and
//!   resumed handshakes), uploads and downloads of several MiB, WebSockets
//!   held open all along with an echo now and then, WebSockets opened and
//!   closed, and refused clients of every kind (no certificate, foreign CA,
//!   expired, revoked) asking for a path the backend counts: a refused
//!   client answered 2xx, or a count above the soak's own control request,
//!   is a security failure;
//! - a SIGHUP every 10 s alternating two valid server certificate sets, every
//!   fifth a broken set the proxy must refuse, the CRL re-signed now and then;
//!   every fourth revokes a client holding a keep-alive connection and a
//!   WebSocket open, whose next request must be refused and WebSocket closed
//!   with 1008, with nothing of it forwarded after the reload (a later reload
//!   reinstates it);
//! - the backend killed and restarted on its port every 2 minutes: requests in
//!   flight then may get 502/504 (and streams may break) inside a short
//!   window; that is counted apart, anything else failing is an error.
//!
//! The proxy's RSS and descriptors are sampled after a warm-up (a minute, or
//! the first 10 % of a shorter run) and at the end once the load has stopped
//! and its connections have closed; in between RSS every second (for the
//! peak) and descriptors once a minute (progress lines); the bounds are
//! [`RSS_GROWTH_BOUND_MIB`] and [`FD_GROWTH_BOUND`]. Progress goes to stderr,
//! the report to stdout. On FAIL the run's folder (proxy log, certificates)
//! is kept and named.

// Shared with the nginx comparison (benches/proxy); the soak uses parts of each.
#[path = "proxy/backend.rs"]
mod backend;
#[path = "proxy/pki.rs"]
#[allow(dead_code)]
mod pki;
#[path = "proxy/procstat.rs"]
#[allow(dead_code)]
mod procstat;
#[path = "proxy/servers.rs"]
#[allow(dead_code)]
mod servers;

#[path = "soak/certs.rs"]
mod certs;
#[path = "soak/client.rs"]
mod client;
#[path = "soak/disturb.rs"]
mod disturb;
#[path = "soak/mix.rs"]
mod mix;
#[path = "soak/procs.rs"]
mod procs;
#[path = "soak/summary.rs"]
mod summary;
#[path = "soak/tally.rs"]
mod tally;

use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::certs::Certs;
use crate::mix::{Configs, Ctx, PROBE_PATH};
use crate::procs::{Backend, Fds, LogTail, Proxy};
use crate::summary::Run;
use crate::tally::{Kind, Tally};

/// The run's length unless `--minutes` says otherwise.
const DEFAULT_MINUTES: f64 = 30.0;
/// The start sample is taken after this warm-up, or after [`WARMUP_FRACTION`]
/// of the run if that is sooner.
const WARMUP: Duration = Duration::from_secs(60);
const WARMUP_FRACTION: f64 = 0.10;
/// RSS and descriptors are sampled this often (and the peak RSS kept).
const SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// A progress line this often.
const PROGRESS_EVERY: Duration = Duration::from_secs(60);
/// How long the load tasks may take to finish their last request after the
/// stop (uploads and downloads have their own 120 s bound inside).
const STOP_BOUND: Duration = Duration::from_secs(150);
/// How long the proxy may take to close its side once the clients closed theirs,
/// and to drop its backend connections once the backend is gone.
const SETTLE_BOUND: Duration = Duration::from_secs(15);

/// End RSS may exceed the start RSS by at most this much.
///
/// The start is sampled after the warm-up, under the full mix, so the
/// allocator already holds the working set of every kind of traffic; the
/// end after the load, when nothing is freed back to the kernel either. What
/// a healthy proxy may still add in between is fragmentation and bursts
/// coinciding (bodies are streamed in 64 KiB frames, never buffered whole),
/// and bounded caches filling (TLS 1.2 session cache, 4096 entries; the
/// verdict cache; the recent-clients list, 1024). 16 MiB covers that with
/// room, and over 30 minutes (~600 000 requests, ~30 000 connections,
/// ~180 reloads) it still catches a leak of ~30 bytes per request, ~600
/// bytes per connection or ~90 KiB per reload (a TLS state not freed).
/// Measured on a 2-core machine: RSS levels off at 22–25 MiB from the third
/// minute on, ending a 30-minute run 5 MiB above its start sample.
const RSS_GROWTH_BOUND_MIB: f64 = 16.0;

/// End descriptors may exceed the start descriptors by at most this many.
///
/// The start is sampled under load (some 60 client connections and their
/// backend connections open), the end at rest, so a healthy proxy ends well
/// below its start and 8 is slack for descriptors opened once, late. Sharper
/// checks come with the end sample: no client connection left once the
/// clients have closed theirs, and no backend connection left once the
/// backend is gone (the pool must notice and close them).
const FD_GROWTH_BOUND: usize = 8;

/// Control requests to [`PROBE_PATH`] made by a client that is let in,
/// proving the backend's count works; refused clients must add nothing.
const PROBE_CONTROLS: u64 = 1;

struct Opts {
    minutes: f64,
}

impl Opts {
    fn parse() -> Result<Opts, String> {
        let mut o = Opts {
            minutes: DEFAULT_MINUTES,
        };
        let mut args = std::env::args().skip(1);
        while let Some(a) = args.next() {
            match a.as_str() {
                "--bench" => {} // added by `cargo bench`
                "--minutes" => {
                    o.minutes = args
                        .next()
                        .and_then(|m| m.parse::<f64>().ok())
                        .filter(|m| *m > 0.0 && m.is_finite())
                        .ok_or("--minutes needs a positive number")?;
                }
                other => {
                    return Err(format!(
                        "unknown option {other}; usage: cargo bench --bench soak -- [--minutes M]"
                    ));
                }
            }
        }
        Ok(o)
    }
}

fn main() -> ExitCode {
    if std::env::var_os(backend::ROLE_ENV).is_some() {
        backend::run();
        return ExitCode::SUCCESS;
    }
    let opts = match Opts::parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let tmp = match tempfile::Builder::new().prefix("weborca-soak-").tempdir() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("soak: temp dir: {e}");
            return ExitCode::FAILURE;
        }
    };
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("soak: runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = rt.block_on(soak(&opts, tmp.path()));
    // Tasks still running (none should be) end with the runtime, quickly.
    rt.shutdown_timeout(Duration::from_secs(5));
    let pass = match outcome {
        Ok(run) => {
            let failures = run.failures();
            println!("{}", run.markdown(&failures));
            failures.is_empty()
        }
        Err(e) => {
            eprintln!("soak: {e}");
            println!("## Soak: FAIL before the load started\n\n{e}");
            false
        }
    };
    if pass {
        ExitCode::SUCCESS
    } else {
        let kept = tmp.keep();
        eprintln!(
            "soak: FAIL; the proxy log and certificates are in {}",
            kept.display()
        );
        ExitCode::FAILURE
    }
}

/// Everything: set-up, sanity checks, the load, the end checks.
async fn soak(opts: &Opts, dir: &Path) -> Result<Run, String> {
    let duration = Duration::from_secs_f64(opts.minutes * 60.0);
    let warmup = WARMUP.min(duration.mul_f64(WARMUP_FRACTION));
    eprintln!(
        "soak: {} min; making the certificates (RSA-2048)",
        opts.minutes
    );
    let certs = {
        let pki = dir.join("pki");
        tokio::task::spawn_blocking(move || Certs::make(&pki))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("certificates: {e}"))?
    };
    let backend = Backend::start(0)?;
    let backend_port = backend.addr.port();
    let proxy = Arc::new(Proxy::start(dir, &certs.live, backend.addr)?);
    eprintln!(
        "soak: proxy {} (pid {}) on {}, status on {}, backend on {}",
        servers::proxy_bin().display(),
        proxy.pid,
        proxy.addr,
        proxy.status,
        backend.addr
    );
    let configs = Configs::new(&certs);
    sanity(&proxy, &backend, &certs, &configs).await?;
    eprintln!("soak: sanity checks passed; load for {} min", opts.minutes);

    let t0 = Instant::now();
    let deadline = t0 + duration;
    let tally = Arc::new(Tally::new(t0));
    let stop = CancellationToken::new();
    let fatal: Arc<Mutex<Vec<String>>> = Arc::default();
    let ctx = Arc::new(Ctx {
        addr: proxy.addr,
        tally: tally.clone(),
        stop: stop.clone(),
        configs,
    });
    let mut load: Vec<JoinHandle<()>> = Vec::new();
    for n in 0..mix::H1_CONNS {
        load.push(tokio::spawn(mix::keep_alive_h1(ctx.clone(), n)));
    }
    for n in 0..mix::H2_CONNS {
        load.push(tokio::spawn(mix::keep_alive_h2(ctx.clone(), n)));
    }
    load.push(tokio::spawn(mix::new_conns(
        ctx.clone(),
        Kind::NewFull,
        vec![ctx.configs.h1.clone()],
        mix::FULL_EVERY,
    )));
    load.push(tokio::spawn(mix::new_conns(
        ctx.clone(),
        Kind::NewResumed,
        vec![ctx.configs.tickets.clone(), ctx.configs.tls12.clone()],
        mix::RESUMED_EVERY,
    )));
    load.push(tokio::spawn(mix::uploads(ctx.clone())));
    load.push(tokio::spawn(mix::downloads(ctx.clone())));
    load.push(tokio::spawn(mix::ws_churn(ctx.clone())));
    for (i, (kind, configs)) in ctx.configs.refused.iter().enumerate() {
        let phase = mix::REFUSED_EVERY.mul_f64(i as f64 / ctx.configs.refused.len() as f64);
        load.push(tokio::spawn(mix::refused(
            ctx.clone(),
            *kind,
            configs.clone(),
            phase,
        )));
    }
    let held: Vec<JoinHandle<mix::Held>> = (0..mix::WS_HELD)
        .map(|n| tokio::spawn(mix::ws_held(ctx.clone(), n)))
        .collect();

    let log = Arc::new(Mutex::new(LogTail::new(&proxy.log)));
    let certs = Arc::new(Mutex::new(certs));
    let backend = Arc::new(Mutex::new(backend));
    let reloads_done = Arc::new(AtomicU64::new(0));
    let restarts_done = Arc::new(AtomicU64::new(0));
    let reloads = tokio::spawn(disturb::reloads(
        proxy.clone(),
        certs.clone(),
        log.clone(),
        ctx.configs.h1.clone(),
        ctx.configs.revokee.clone(),
        stop.clone(),
        reloads_done.clone(),
    ));
    let restarts = tokio::spawn(disturb::backend_restarts(
        backend.clone(),
        tally.clone(),
        deadline,
        stop.clone(),
        restarts_done.clone(),
    ));

    // The monitor: samples, progress, and the proxy's health, until the deadline.
    let mut start: Option<(Duration, u64, Fds)> = None;
    let mut peak_rss = 0u64;
    let mut next_progress = t0 + PROGRESS_EVERY;
    let mut sampler = tokio::time::interval(SAMPLE_EVERY);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep_until(deadline.into()) => break,
            _ = sampler.tick() => {}
        }
        if let Some(status) = proxy.exited() {
            lock(&fatal).push(format!(
                "the proxy exited during the load ({status}) at {:.0} s",
                t0.elapsed().as_secs_f64()
            ));
            break;
        }
        let rss = procs::rss_kib(proxy.pid);
        peak_rss = peak_rss.max(rss);
        let now = Instant::now();
        if start.is_none() && now >= t0 + warmup {
            let fds = procs::fds(proxy.pid, proxy.addr.port(), backend_port);
            eprintln!(
                "soak: start sample at {:.0} s: RSS {:.1} MiB, {} descriptors",
                t0.elapsed().as_secs_f64(),
                mib(rss),
                fds.total
            );
            start = Some((t0.elapsed(), rss, fds));
        }
        if now >= next_progress {
            next_progress += PROGRESS_EVERY;
            let (requests, errors) = tally.totals();
            let restart = tally.outcome_total(tally::Outcome::BackendRestart);
            eprintln!(
                "soak: {:5.1} min: {requests} requests ({restart} backend-restart outcomes, {errors} errors); RSS {:.1} MiB, {} fds; {} reloads, {} backend restarts",
                t0.elapsed().as_secs_f64() / 60.0,
                mib(rss),
                procs::fd_count(proxy.pid),
                reloads_done.load(Ordering::Relaxed),
                restarts_done.load(Ordering::Relaxed),
            );
        }
    }
    stop.cancel();
    let load_secs = t0.elapsed().as_secs_f64();
    eprintln!("soak: stopping the load at {load_secs:.0} s");

    // Every task ends within its own bounds; this bound is the backstop.
    let joined = tokio::time::timeout(STOP_BOUND, async {
        // a task that panicked is a bug of the soak's, and fails it
        let panicked = |e: tokio::task::JoinError| {
            lock(&fatal).push(format!("a soak task failed: {e}"));
        };
        let mut ends = Vec::new();
        for h in held {
            ends.push(h.await.unwrap_or_else(|e| {
                panicked(e);
                mix::Held::default()
            }));
        }
        for h in load {
            h.await.unwrap_or_else(panicked);
        }
        let reloads = reloads.await.unwrap_or_else(|e| {
            panicked(e);
            Default::default()
        });
        let restarts = restarts.await.unwrap_or_else(|e| {
            panicked(e);
            Default::default()
        });
        (ends, reloads, restarts)
    })
    .await;
    let (held, reloads, restarts) = match joined {
        Ok(j) => j,
        Err(_) => {
            lock(&fatal).push(format!(
                "the load tasks did not finish within {STOP_BOUND:?} after the stop"
            ));
            (Vec::new(), Default::default(), Default::default())
        }
    };

    // At rest: the proxy must close every client connection, then give back
    // its backend connections once the backend is gone.
    let settle = |want: fn(&Fds) -> bool| {
        let proxy = proxy.clone();
        async move {
            let until = Instant::now() + SETTLE_BOUND;
            loop {
                let fds = procs::fds(proxy.pid, proxy.addr.port(), backend_port);
                if want(&fds) || Instant::now() > until || proxy.exited().is_some() {
                    return fds;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    settle(|f| f.clients == 0).await;
    // a moment more for the last frees after the last close
    tokio::time::sleep(Duration::from_millis(500)).await;
    let end_rss = procs::rss_kib(proxy.pid);
    let end_fds = procs::fds(proxy.pid, proxy.addr.port(), backend_port);
    peak_rss = peak_rss.max(end_rss);
    let metrics = proxy.metrics();
    let last_hits = tokio::task::spawn_blocking({
        let backend = backend.clone();
        move || {
            let mut backend = lock(&backend);
            let hits = backend.probe_count();
            backend.kill();
            hits
        }
    })
    .await
    .map_err(|e| e.to_string())
    .and_then(|h| h);
    let after_backend = settle(|f| f.backend == 0).await;
    let exit = tokio::task::spawn_blocking({
        let proxy = proxy.clone();
        move || proxy.stop()
    })
    .await
    .ok()
    .flatten();
    let log = {
        let mut log = lock(&log);
        log.poll();
        std::mem::take(&mut *log)
    };
    let crl_size = lock(&certs).crl_size();
    let fatal = lock(&fatal).clone();
    Ok(Run {
        minutes: opts.minutes,
        load_secs,
        warmup,
        tally,
        reloads,
        restarts,
        held,
        start,
        peak_rss,
        end_rss,
        end_fds,
        backend_fds_after_stop: after_backend.backend,
        probe_hits: last_hits,
        probe_controls: PROBE_CONTROLS,
        metrics,
        exit,
        log,
        fatal,
        crl_size,
        rss_bound_mib: RSS_GROWTH_BOUND_MIB,
        fd_bound: FD_GROWTH_BOUND,
    })
}

/// Before the clock starts: user1 is served (and the backend counts its
/// control probe), every refused kind is refused for the right reason,
/// HTTP/2 and the echo WebSocket work. Any surprise stops the soak here.
async fn sanity(
    proxy: &Proxy,
    backend: &Backend,
    certs: &Certs,
    configs: &Configs,
) -> Result<(), String> {
    let addr = proxy.addr;
    let (answer, _) = client::one_shot(addr, &configs.h1, "/")
        .await
        .map_err(|f| format!("sanity: user1 GET /: {}", f.describe()))?;
    if answer.status != http::StatusCode::OK {
        return Err(format!("sanity: user1 GET / answered {}", answer.status));
    }
    let conn = client::connect(addr, &configs.h1)
        .await
        .map_err(|f| format!("sanity: connect: {}", f.describe()))?;
    if conn.server_cert().as_ref() != Some(certs.der(certs::Set::A)) {
        return Err("sanity: the proxy does not serve server certificate set A".into());
    }
    drop(conn);
    for _ in 0..PROBE_CONTROLS {
        let (answer, _) = client::one_shot(addr, &configs.h1, PROBE_PATH)
            .await
            .map_err(|f| format!("sanity: user1 GET {PROBE_PATH}: {}", f.describe()))?;
        if answer.status != http::StatusCode::OK {
            return Err(format!(
                "sanity: user1 GET {PROBE_PATH} answered {}",
                answer.status
            ));
        }
    }
    let hits = backend.probe_count()?;
    if hits != PROBE_CONTROLS {
        return Err(format!(
            "sanity: the backend counted {hits} probes after {PROBE_CONTROLS} control request(s)"
        ));
    }
    for (kind, configs) in &configs.refused {
        let expected = kind.refusal().unwrap_or("?");
        for config in configs {
            match client::one_shot(addr, config, PROBE_PATH).await {
                Ok((a, _))
                    if a.status == http::StatusCode::FORBIDDEN
                        && a.cert_error.as_deref() == Some(expected) => {}
                Err(client::Fail::Tls(_)) => {}
                Ok((a, _)) => {
                    return Err(format!(
                        "sanity: {}: expected 403 with X-Client-Cert-Error: {expected}, got {}{}",
                        kind.label(),
                        a.fail().describe(),
                        if a.status.is_success() {
                            " — SECURITY FAILURE"
                        } else {
                            ""
                        }
                    ));
                }
                Err(f) => return Err(format!("sanity: {}: {}", kind.label(), f.describe())),
            }
        }
    }
    let hits = backend.probe_count()?;
    if hits != PROBE_CONTROLS {
        return Err(format!(
            "sanity: SECURITY FAILURE: refused clients reached the backend ({} probes)",
            hits - PROBE_CONTROLS
        ));
    }
    let conn = client::connect(addr, &configs.h2)
        .await
        .map_err(|f| format!("sanity: HTTP/2 connect: {}", f.describe()))?;
    let mut h2 = client::h2(conn)
        .await
        .map_err(|f| format!("sanity: HTTP/2: {}", f.describe()))?;
    let answer = client::get_h2(&mut h2, addr, "/")
        .await
        .map_err(|f| format!("sanity: HTTP/2 GET /: {}", f.describe()))?;
    if answer.status != http::StatusCode::OK {
        return Err(format!("sanity: HTTP/2 GET / answered {}", answer.status));
    }
    drop(h2);
    let ws = async {
        let mut ws = client::ws_open(addr, &configs.h1).await?;
        client::ws_echo(&mut ws, "sanity").await?;
        client::ws_close(ws).await
    }
    .await;
    ws.map_err(|f| format!("sanity: WebSocket echo: {}", f.describe()))?;
    proxy
        .metrics()
        .map(|_| ())
        .map_err(|e| format!("sanity: {e}"))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}
