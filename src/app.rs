//! Running the proxy as a program: the start-up sequence with WebORCA's log
//! lines, the signals (SIGHUP reload, SIGTERM/SIGINT drain), and the mapping of
//! failures to exit codes (78 for anything the operator must fix in the
//! config or certificates).

use std::path::PathBuf;
use std::sync::Arc;

use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::config::Config;
use crate::load::{self, Loaded};
use crate::log::LogHandle;
use crate::reload::Reloader;
use crate::server::{Handle, Server};
use crate::tls::Sessions;

pub use crate::load::{EXIT_CONFIG, Failure, check_files, load_config, load_tls, warn_expiring};

/// Runs the proxy from the config file at `path` until SIGTERM/SIGINT.
pub async fn run(path: PathBuf, log: Arc<LogHandle>) -> Result<(), Failure> {
    let config = load_config(&path)?;
    let started = start(config, &log)?;
    serve(started, path, log).await;
    Ok(())
}

/// A proxy through the start-up sequence: files checked, TLS loaded, ports bound.
pub struct Started {
    /// the bound proxy, not yet serving
    server: Server,
    /// session resumption state, kept across reloads
    sessions: Sessions,
    /// the config it started with, which the reloader keeps to compare
    config: Config,
    /// installed before the ports are bound
    signals: Signals,
}

impl Started {
    /// The bound addresses, with the real port where LISTEN asked for port 0.
    pub fn local_addrs(&self) -> Vec<std::net::SocketAddr> {
        self.server.local_addrs()
    }
}

/// The start-up sequence after the config is read, with WebORCA's log lines:
/// LOG_FILE, `KEY ...file exists`, TLS, expiry warnings, `Server Mode: HTTPS`,
/// bind, one `listening on` line per address (and the status address).
/// Must be called inside a tokio runtime.
pub fn start(config: Config, log: &LogHandle) -> Result<Started, Failure> {
    if let Some(file) = &config.logging().log_file {
        log.reopen(Some(file))
            .map_err(|e| Failure::Config(format!("LOG_FILE ({}): cannot open for appending: {e}; create its directory or make it writable by the service user", file.display())))?;
    }
    crate::log::set_format(config.log_format);
    let sessions =
        Sessions::new().map_err(|e| Failure::Runtime(format!("TLS session setup failed: {e}")))?;
    let Loaded { config, tls } = load::load_from(config, &sessions, &mut load::Log)?;
    tracing::info!("Server Mode: HTTPS");
    let ca = tls.ca_subjects.join(", ");
    let parts = config.server_parts();
    let backend = parts.backend.url.url.clone();
    let sig = Signals::install()?;
    let server = Server::bind(parts, tls).map_err(Failure::Runtime)?;
    for addr in server.local_addrs() {
        tracing::info!(
            "listening on {addr}, forwarding to {backend}, client certificates from CA {ca}"
        );
    }
    if let Some(addr) = server.status_addr() {
        tracing::info!("status on http://{addr}/status (also /healthz, /readyz, /metrics)");
    }
    Ok(Started {
        server,
        sessions,
        config,
        signals: sig,
    })
}

/// Serves until SIGTERM/SIGINT, then drains; SIGHUP (and changed files) reload from `path`.
pub async fn serve(started: Started, path: PathBuf, log: Arc<LogHandle>) {
    let Started {
        server,
        sessions,
        config,
        signals: sig,
    } = started;
    notify(&[
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status("serving"),
    ]);
    let handle = server.handle();
    let reloader = Reloader::new(handle.clone(), path, log, sessions, config);
    tokio::spawn(reloader.clone().watch());
    tokio::spawn(reloader.clone().expiry_checks());
    tokio::spawn(signals(sig, handle, reloader));
    server.run().await;
    tracing::info!("stopped");
}

/// The signals the proxy answers to, installed before it reports itself ready
/// (a SIGHUP arriving earlier would otherwise kill it).
struct Signals {
    hup: Signal,
    term: Signal,
    int: Signal,
}

impl Signals {
    fn install() -> Result<Signals, Failure> {
        let install = |kind| {
            signal(kind)
                .map_err(|e| Failure::Runtime(format!("cannot install signal handlers: {e}")))
        };
        Ok(Signals {
            hup: install(SignalKind::hangup())?,
            term: install(SignalKind::terminate())?,
            int: install(SignalKind::interrupt())?,
        })
    }
}

async fn signals(mut sig: Signals, handle: Handle, reloader: Arc<Reloader>) {
    let Signals { hup, term, int } = &mut sig;
    loop {
        tokio::select! {
            _ = hup.recv() => {
                notify(&[sd_notify::NotifyState::Reloading]);
                reloader.reload("SIGHUP").await;
                notify(&[sd_notify::NotifyState::Ready]);
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    tracing::info!("shutting down: no new connections, finishing requests in flight");
    notify(&[sd_notify::NotifyState::Stopping]);
    handle.shutdown();
}

/// Tells systemd (Type=notify) where the service is; a no-op outside systemd.
fn notify(state: &[sd_notify::NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(state) {
        tracing::warn!("cannot notify systemd (NOTIFY_SOCKET): {e}");
    }
}
