//! Running the proxy as a program: the start-up sequence with WebORCA's log
//! lines, the signals (SIGHUP reload, SIGTERM/SIGINT drain), and the mapping of
//! failures to exit codes (78 for anything the operator must fix in the
//! config or certificates).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::signal::unix::{SignalKind, signal};

use crate::config::{self, Config, ConfigError};
use crate::log::LogHandle;
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
}

/// Runs the proxy from the config file at `path` until SIGTERM/SIGINT.
pub async fn run(path: PathBuf, log: Arc<LogHandle>) -> Result<(), Failure> {
    let config = load_config(&path)?;
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
    let server = Server::bind(config, tls).map_err(Failure::Runtime)?;
    for addr in server.local_addrs() {
        tracing::info!(
            "listening on {addr}, forwarding to {backend}, client certificates from CA {ca}"
        );
    }
    let handle = server.handle();
    tokio::spawn(signals(handle, path, log, sessions));
    server.run().await;
    tracing::info!("stopped");
    Ok(())
}

async fn signals(handle: Handle, path: PathBuf, log: Arc<LogHandle>, sessions: Sessions) {
    let (Ok(mut hup), Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::hangup()),
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop the proxy with SIGKILL");
        return;
    };
    loop {
        tokio::select! {
            _ = hup.recv() => reload(&handle, &path, &log, &sessions).await,
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    tracing::info!("shutting down: no new connections, finishing requests in flight");
    handle.shutdown();
}

/// SIGHUP: reopen LOG_FILE, re-read config and certificates, swap them in whole or keep the old.
pub async fn reload(handle: &Handle, path: &Path, log: &LogHandle, sessions: &Sessions) {
    let path = path.to_path_buf();
    let sessions = sessions.clone();
    let loaded = tokio::task::spawn_blocking(move || -> Result<(Config, TlsState), Failure> {
        let config = load_config(&path)?;
        let tls = load_tls(&config, &sessions)?;
        Ok((config, tls))
    })
    .await;
    let result = match loaded {
        Ok(r) => r,
        Err(e) => Err(Failure::Runtime(format!("reload task failed: {e}"))),
    };
    match result {
        Ok((config, tls)) => {
            if let Err(e) = log.reopen(config.log_file.as_deref()) {
                tracing::warn!("LOG_FILE: cannot reopen: {e}");
            }
            warn_expiring(&tls, config.cert_warn_days);
            let serial = tls.server_cert.serial_hex.clone();
            handle.replace_tls(tls);
            tracing::info!("reload: ok, new connections use server certificate serial {serial}");
        }
        Err(f) => {
            if let Err(e) = log.reopen(log.path().as_deref()) {
                tracing::warn!("LOG_FILE: cannot reopen: {e}");
            }
            tracing::error!(
                "reload refused, still serving the previous certificates: {}",
                f.message()
            );
        }
    }
}
