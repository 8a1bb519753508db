//! Loading everything the proxy serves with, in one place: the config, the
//! files it names (WebORCA's `KEY ...file exists` lines), the TLS state and
//! the expiry warnings. Start-up ([`crate::app::start`]) and reload
//! ([`crate::reload::Reloader::reload`]) both go through [`load_from`], so
//! the two cannot drift apart; failures carry their exit code ([`Failure`]).
//! `check` walks the same steps with its own [`Steps`] reporter, so it prints
//! its report where the server logs WebORCA's lines.

use std::path::Path;

use crate::config::parts::TlsFiles;
use crate::config::{self, Config, ConfigError};
use crate::policy::{Policy, PolicyError};
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

/// Who hears about each step of a load: the log when serving ([`Log`]),
/// the report for `check`. Each method gets what the step found; the load
/// goes on unless a method returns a [`Failure`].
pub trait Steps {
    /// The config was read; `warnings` name ignored lines and typos.
    fn config_read(&mut self, path: &Path, warnings: &[String]);
    /// The config could not be used.
    fn config_failed(&mut self, error: &ConfigError);
    /// The files the config names, before they are opened.
    fn files(&mut self, config: &Config) -> Result<(), Failure>;
    /// The certificate, key, CA or CRL could not be loaded.
    fn tls_failed(&mut self, error: &KeyError);
    /// Everything loaded; the last look before serving.
    fn tls_loaded(&mut self, config: &Config, tls: &TlsState);
    /// ACCESS_POLICY was read (`None`: not set).
    fn policy_loaded(&mut self, _policy: Option<&Policy>) {}
    /// ACCESS_POLICY cannot be used.
    fn policy_failed(&mut self, _error: &PolicyError) {}
}

/// The steps as the server logs them, with WebORCA's lines.
pub struct Log;

impl Steps for Log {
    fn config_read(&mut self, _path: &Path, warnings: &[String]) {
        for w in warnings {
            tracing::warn!("{w}");
        }
    }

    /// The all-unset case logs WebORCA's `...none` lines, so the operator
    /// sees what the proxy looked for.
    fn config_failed(&mut self, error: &ConfigError) {
        match error {
            ConfigError::NoTls { .. } => {
                for key in ["CA_CRT", "SERVER_CRT", "SERVER_PEM"] {
                    tracing::info!("{key} ...none");
                }
            }
            ConfigError::Missing { files, .. } => {
                file_lines(files.iter().map(|(key, path)| (*key, path.as_deref())));
            }
            _ => {}
        }
    }

    fn files(&mut self, config: &Config) -> Result<(), Failure> {
        check_files(&config.tls_files())
    }

    fn tls_failed(&mut self, error: &KeyError) {
        if let KeyError::PassphraseNeeded(_) = error {
            tracing::error!("PASSWORD input was canceled");
        }
    }

    /// The rules' line, then the expiry warnings: after WebORCA's four lines
    /// at start-up ([`Start`]).
    fn tls_loaded(&mut self, config: &Config, tls: &TlsState) {
        if let Some(p) = &tls.policy {
            log_policy(p);
        }
        if !tls.server_auth {
            let files = config.tls_files();
            let (key, path) = crate::tls::server_cert_key(&files);
            tracing::warn!(
                "{key} ({}): {} is not a server certificate (its extended key usage has no serverAuth): browsers refuse it; use the one orca-catool issue_server_cert made",
                path.display(),
                tls.server_cert.subject_oneline
            );
        }
        warn_expiring(tls, config.cert_warn_days);
    }
}

/// The steps at start-up: as [`Log`], with WebORCA's `Server Mode: HTTPS`
/// right after its `...file exists` lines, once everything has loaded; the
/// rules' line and the expiry warnings follow it.
pub struct Start;

impl Steps for Start {
    fn config_read(&mut self, path: &Path, warnings: &[String]) {
        Log.config_read(path, warnings);
    }

    fn config_failed(&mut self, error: &ConfigError) {
        Log.config_failed(error);
    }

    fn files(&mut self, config: &Config) -> Result<(), Failure> {
        Log.files(config)
    }

    fn tls_failed(&mut self, error: &KeyError) {
        Log.tls_failed(error);
    }

    fn tls_loaded(&mut self, config: &Config, tls: &TlsState) {
        tracing::info!("Server Mode: HTTPS");
        Log.tls_loaded(config, tls);
    }
}

/// ACCESS_POLICY's line: how many rules (none: a warning), and each rule
/// that can never decide.
fn log_policy(p: &Policy) {
    let file = p.file().display();
    if p.rules().is_empty() {
        tracing::warn!(
            "ACCESS_POLICY {file}: no rules, every request is refused (not-permitted); add rules (see access-policy.example) or unset ACCESS_POLICY"
        );
    } else {
        tracing::info!("ACCESS_POLICY {file}: {} rules", p.rules().len());
    }
    for dead in p.dead_rules() {
        tracing::warn!(
            "ACCESS_POLICY rule {} never decides: the earlier rule {} of the same prefix admits every certificate and method it admits",
            dead.rule,
            dead.covered_by
        );
    }
}

/// Reads ACCESS_POLICY when it is set; a broken file fails the load (exit 78
/// at start-up, the old rules kept on reload), naming the file and line.
pub fn load_policy(config: &Config, steps: &mut dyn Steps) -> Result<Option<Policy>, Failure> {
    let Some(path) = &config.access_policy else {
        steps.policy_loaded(None);
        return Ok(None);
    };
    match Policy::load(path) {
        Ok(policy) => {
            steps.policy_loaded(Some(&policy));
            Ok(Some(policy))
        }
        Err(e) => {
            steps.policy_failed(&e);
            Err(Failure::Config(e.to_string()))
        }
    }
}

/// Reads the config, logging its warnings ([`Log`]).
pub fn load_config(path: &Path) -> Result<Config, Failure> {
    read_config(path, &mut Log)
}

/// Reads the config, telling `steps` what was found.
pub fn read_config(path: &Path, steps: &mut dyn Steps) -> Result<Config, Failure> {
    match config::load(path) {
        Ok(loaded) => {
            steps.config_read(path, &loaded.warnings);
            Ok(loaded.config)
        }
        Err(e) => {
            steps.config_failed(&e);
            Err(Failure::Config(e.to_string()))
        }
    }
}

/// Logs WebORCA's `KEY ...none`, `...file exists` and `...file does not
/// exist` lines for `keys`; the missing ones as `KEY=PATH`.
fn file_lines<'a>(keys: impl IntoIterator<Item = (&'a str, Option<&'a Path>)>) -> Vec<String> {
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
    missing
}

/// Logs WebORCA's `KEY ...file exists` lines; fails if a named file is missing.
pub fn check_files(config: &TlsFiles) -> Result<(), Failure> {
    let mut keys: Vec<(&str, Option<&Path>)> = vec![("CA_CRT", config.ca_crt.as_deref())];
    if config.server_p12.is_some() {
        keys.push(("SERVER_P12", config.server_p12.as_deref()));
    } else {
        keys.push(("SERVER_CRT", config.server_crt.as_deref()));
        keys.push(("SERVER_PEM", config.server_pem.as_deref()));
    }
    let missing = file_lines(keys);
    if missing.is_empty() {
        return Ok(());
    }
    Err(Failure::Config(format!(
        "missing file(s): {}; put the files from orca-catool's zip there (chown orca:orca, chmod 400) or correct the paths in {}",
        missing.join(", "),
        config.config_path.display()
    )))
}

/// Loads the TLS state, telling `steps` why it failed.
pub fn load_tls(
    config: &Config,
    sessions: &Sessions,
    steps: &mut dyn Steps,
) -> Result<TlsState, Failure> {
    TlsState::load(config, sessions).map_err(|e| {
        steps.tls_failed(&e);
        match e {
            KeyError::PassphraseNeeded(e) => Failure::Config(e.to_string()),
            KeyError::Other(e) => Failure::Config(e.to_string()),
        }
    })
}

/// Logs WebORCA's expiry warning for each server and CA certificate within CERT_WARN_DAYS.
pub fn warn_expiring(tls: &TlsState, warn_days: u32) {
    let now = chrono::Utc::now();
    let certs = std::iter::once(&tls.server_cert)
        .chain(&tls.server_intermediates)
        .chain(&tls.ca_certs);
    for cert in certs {
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
    load_from(load_config(path)?, sessions, &mut Log)
}

/// Everything a read config names: files present, TLS state loaded, expiry
/// warnings logged, in that order, each step told to `steps`.
pub fn load_from(
    config: Config,
    sessions: &Sessions,
    steps: &mut dyn Steps,
) -> Result<Loaded, Failure> {
    steps.files(&config)?;
    let tls = load_tls(&config, sessions, steps)?;
    let policy = load_policy(&config, steps)?;
    let tls = tls.with_policy(policy);
    steps.tls_loaded(&config, &tls);
    Ok(Loaded { config, tls })
}
