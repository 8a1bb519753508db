//! Running the proxy as a program: the start-up sequence with WebORCA's log
//! lines, the signals (SIGHUP reload, SIGTERM/SIGINT drain), and the mapping of
//! failures to exit codes (78 for anything the operator must fix in the
//! config or certificates).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::config::{self, Config, ConfigError};
use crate::log::LogHandle;
use crate::reload::Reloader;
use crate::server::{Handle, Server};
use crate::tls::{KeyError, Sessions, TlsState};

/// EX_CONFIG from sysexits.h: the unit's `RestartPreventExitStatus=78`.
pub const EXIT_CONFIG: u8 = 78;

/// Why the proxy stopped without serving.
#[derive(Debug)]
pub enum Failure {
    /// The config or a certificate is wrong: exit 78, do not restart.
    Config(String),
    /// Anything else (a port in use…): exit 1.
    Runtime(String),
}

impl Failure {
    /// The process exit code for this failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Config(_) => EXIT_CONFIG,
            Failure::Runtime(_) => 1,
        }
    }

    /// The message for the operator.
    pub fn message(&self) -> &str {
        match self {
            Failure::Config(m) | Failure::Runtime(m) => m,
        }
    }
}

/// Reads the config, logging its warnings. The all-unset case logs WebORCA's
/// `...none` lines first, so the operator sees what the proxy looked for.
pub fn load_config(path: &Path) -> Result<Config, Failure> {
    match config::load(path) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                tracing::warn!("{w}");
            }
            Ok(loaded.config)
        }
        Err(e @ ConfigError::NoTls { .. }) => {
            for key in ["CA_CRT", "SERVER_CRT", "SERVER_PEM"] {
                tracing::info!("{key} ...none");
            }
            Err(Failure::Config(e.to_string()))
        }
        Err(e) => Err(Failure::Config(e.to_string())),
    }
}

/// Logs WebORCA's `KEY ...file exists` lines; fails if a named file is missing.
pub fn check_files(config: &Config) -> Result<(), Failure> {
    let mut keys: Vec<(&str, Option<&Path>)> = vec![("CA_CRT", config.ca_crt.as_deref())];
    if config.server_p12.is_some() {
        keys.push(("SERVER_P12", config.server_p12.as_deref()));
    } else {
        keys.push(("SERVER_CRT", config.server_crt.as_deref()));
        keys.push(("SERVER_PEM", config.server_pem.as_deref()));
    }
    let mut missing = Vec::new();
    for (key, path) in keys {
        match path {
            None => tracing::info!("{key} ...none"),
            Some(p) if p.exists() => tracing::info!("{key} ...file exists"),
            Some(p) => {
                tracing::info!("{key} ...file does not exist");
                missing.push(format!("{key}={}", p.display()));
            }
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    Err(Failure::Config(format!(
        "missing file(s): {}; put the files from orca-catool's zip there (chown orca:orca, chmod 400) or correct the paths in {}",
        missing.join(", "),
        config.path.display()
    )))
}

/// Loads the TLS state, with WebORCA's `PASSWORD input was canceled` for an encrypted key.
pub fn load_tls(config: &Config, sessions: &Sessions) -> Result<TlsState, Failure> {
    TlsState::load(config, sessions).map_err(|e| match e {
        KeyError::PassphraseNeeded(e) => {
            tracing::error!("PASSWORD input was canceled");
            Failure::Config(e.to_string())
        }
        KeyError::Other(e) => Failure::Config(e.to_string()),
    })
}

/// Logs WebORCA's expiry warning for each server and CA certificate within CERT_WARN_DAYS.
pub fn warn_expiring(tls: &TlsState, warn_days: u32) {
    let now = chrono::Utc::now();
    for cert in std::iter::once(&tls.server_cert).chain(&tls.ca_certs) {
        let days = cert.days_left(now);
        if days <= i64::from(warn_days) {
            tracing::warn!(
                "The certificate({}) will be expired in {days} days.",
                cert.subject_oneline
            );
            tracing::warn!("Please update the certificate.");
        }
    }
    for crl in &tls.crls {
        if let Some(next) = crl.next_update.filter(|n| *n < now) {
            tracing::warn!(
                "CA_CRL ({}): the CRL of {} was due for renewal at {} (nextUpdate); make a new one with orca-catool issue_crl",
                crl.path.display(),
                crl.issuer,
                next.with_timezone(&chrono::Local)
                    .format(crate::log::TIME_FORMAT)
            );
        }
    }
}

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
    /// the config it started with, for the file watcher
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
    if let Some(file) = &config.log_file {
        log.reopen(Some(file))
            .map_err(|e| Failure::Config(format!("LOG_FILE ({}): cannot open for appending: {e}; create its directory or make it writable by the service user", file.display())))?;
    }
    check_files(&config)?;
    let sessions =
        Sessions::new().map_err(|e| Failure::Runtime(format!("TLS session setup failed: {e}")))?;
    let tls = load_tls(&config, &sessions)?;
    warn_expiring(&tls, config.cert_warn_days);
    tracing::info!("Server Mode: HTTPS");
    let ca = tls.ca_subjects.join(", ");
    let backend = config.backend.url.clone();
    let watched_config = config.clone();
    let sig = Signals::install()?;
    let server = Server::bind(config, tls).map_err(Failure::Runtime)?;
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
        config: watched_config,
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
