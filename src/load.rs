//! Loading everything the proxy serves with, in one place: the config, the
//! files it names (WebORCA's `KEY ...file exists` lines), the TLS state and
//! the expiry warnings. Start-up ([`crate::app::start`]) and reload
//! ([`crate::reload::Reloader::reload`]) both go through [`load_from`], so
//! the two cannot drift apart; failures carry their exit code ([`Failure`]).

use std::path::Path;

use crate::config::{self, Config, ConfigError};
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
            if tls.crl_stale == crate::config::CrlStale::Refuse {
                tracing::error!(
                    "CA_CRL ({}): out of date since {} and CRL_STALE=refuse: every client gets the crl-stale page until a current CRL is loaded (orca-catool issue_crl, then SIGHUP)",
                    crl.path.display(),
                    next.with_timezone(&chrono::Local)
                        .format(crate::log::TIME_FORMAT)
                );
                continue;
            }
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

/// What one load produced: the config and the TLS state built from it.
pub struct Loaded {
    /// the config as read
    pub config: Config,
    /// certificates, key, CAs and CRLs, ready to serve
    pub tls: TlsState,
}

/// Reads the config at `path`, then everything it names ([`load_from`]).
pub fn load_all(path: &Path, sessions: &Sessions) -> Result<Loaded, Failure> {
    load_from(load_config(path)?, sessions)
}

/// Everything a read config names: files present, TLS state loaded, expiry
/// warnings logged, in that order and with WebORCA's log lines.
pub fn load_from(config: Config, sessions: &Sessions) -> Result<Loaded, Failure> {
    check_files(&config)?;
    let tls = load_tls(&config, sessions)?;
    warn_expiring(&tls, config.cert_warn_days);
    Ok(Loaded { config, tls })
}
