//! Changing certificates without downtime: SIGHUP, and certificate, key, CA
//! and CRL files changed on disk (checked every CERT_WATCH_INTERVAL, by
//! inode, size and mtime, so replacement by rename is seen too).
//!
//! A reload builds the whole new TLS state off the async runtime and swaps it
//! in; anything wrong with the new set is logged and the old set keeps serving.
//! Settings the listener was built with (LISTEN, BACKEND_URL, timeouts…) are
//! reported as needing a restart.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::config::{Config, restart_needed, watched_files};
use crate::load::{self, Failure, Loaded};
use crate::log::LogHandle;
use crate::server::Handle;
use crate::tls::{Sessions, TlsState};

/// How often expiry warnings are repeated while running.
const EXPIRY_CHECK_EVERY: Duration = Duration::from_secs(24 * 60 * 60);

/// What identifies one version of a file on disk.
type Stamp = Option<(u64, u64, u64, i64, i64)>;

fn stamp(path: &Path) -> Stamp {
    let m = std::fs::metadata(path).ok()?;
    Some((m.dev(), m.ino(), m.size(), m.mtime(), m.mtime_nsec()))
}

fn stamps(files: &[PathBuf]) -> Vec<Stamp> {
    files.iter().map(|f| stamp(f)).collect()
}

/// A config and the TLS state built from it, with how its files looked
/// *before* they were read.
pub struct LoadedSet {
    /// the config read
    pub config: Config,
    /// the TLS state built from it
    pub tls: TlsState,
    /// the files the state is made of
    pub files: Vec<PathBuf>,
    /// their identity (device, inode, size, mtime) taken before reading them
    stamps: Vec<Stamp>,
}

/// Reads the config at `path` and builds its TLS state. The watched files'
/// identities are recorded before they are read: a file replaced while the
/// set is being read then differs from the record, and the next poll
/// reloads it, where a record taken after reading would hide the change.
/// `between` runs after the record and before the reading (tests).
pub fn load_set(
    path: &Path,
    sessions: &Sessions,
    between: impl FnOnce(),
) -> Result<LoadedSet, Failure> {
    let config = load::load_config(path)?;
    let files = watched_files(&config);
    let stamps = stamps(&files);
    between();
    let Loaded { config, tls } = load::load_from(config, sessions, &mut load::Log)?;
    Ok(LoadedSet {
        config,
        tls,
        files,
        stamps,
    })
}

impl LoadedSet {
    /// Whether a watched file differs from how it looked before it was read.
    pub fn changed_since_read(&self) -> bool {
        stamps(&self.files) != self.stamps
    }
}

/// Keeps the served TLS state in step with the config and the files. It
/// alone keeps the whole [`Config`], to compare a new one with
/// ([`restart_needed`]); what it hands on is a part: the TLS state to the
/// server's handle, LOG_FILE to the log.
pub struct Reloader {
    handle: Handle,
    path: PathBuf,
    log: Arc<LogHandle>,
    sessions: Sessions,
    /// the config the current state was built from
    config: Mutex<Config>,
    /// the watched files and how they looked at the last check
    files: Mutex<(Vec<PathBuf>, Vec<Stamp>)>,
    /// serializes reloads (signal and watcher may fire together)
    busy: tokio::sync::Mutex<()>,
}

impl Reloader {
    /// A reloader for a server started from `config` (read from `path`).
    pub fn new(
        handle: Handle,
        path: PathBuf,
        log: Arc<LogHandle>,
        sessions: Sessions,
        config: Config,
    ) -> Arc<Self> {
        let files = watched_files(&config);
        let st = stamps(&files);
        Arc::new(Reloader {
            handle,
            path,
            log,
            sessions,
            config: Mutex::new(config),
            files: Mutex::new((files, st)),
            busy: tokio::sync::Mutex::new(()),
        })
    }

    fn config(&self) -> Config {
        self.config
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Re-reads everything and swaps it in, or keeps the old set. Returns whether it took.
    pub async fn reload(&self, why: &str) -> bool {
        let _busy = self.busy.lock().await;
        tracing::info!("reload ({why}): reading {}", self.path.display());
        let path = self.path.clone();
        let sessions = self.sessions.clone();
        let loaded = tokio::task::spawn_blocking(move || load_set(&path, &sessions, || {}))
            .await
            .unwrap_or_else(|e| Err(Failure::Runtime(format!("reload task failed: {e}"))));
        let stats = self.handle.stats();
        let ok = match loaded {
            Ok(set) => {
                let warn_days = set.config.cert_warn_days;
                let serial = set.tls.server_cert.serial_hex.clone();
                self.apply(set);
                stats.reloaded(
                    true,
                    &format!("{why}: server certificate serial {serial}"),
                    warn_days,
                );
                true
            }
            Err(f) => {
                stats.reloaded(false, &format!("{why}: {}", f.message()), 0);
                tracing::error!(
                    "reload refused, still serving the previous certificates: {}",
                    f.message()
                );
                false
            }
        };
        let logging = self.config().logging();
        if let Err(e) = self.log.reopen(logging.log_file.as_deref()) {
            tracing::warn!("LOG_FILE: cannot reopen: {e}");
        }
        crate::log::set_format(self.config().log_format);
        ok
    }

    fn apply(&self, set: LoadedSet) {
        let LoadedSet {
            config,
            tls,
            files,
            stamps: st,
        } = set;
        self.handle
            .stats()
            .console
            .set_admins(config.admin_cn.as_deref());
        let old = self.config();
        for key in restart_needed(&old, &config) {
            tracing::warn!(
                "{key} changed in {}: takes effect only after a restart (systemctl restart weborca-mtls-proxy)",
                self.path.display()
            );
        }
        let serial = tls.server_cert.serial_hex.clone();
        // A CA_CRT that no longer holds a CA it held refuses every client
        // certificate that CA issued, on open connections too: said here,
        // as install-cert --new-ca says it, not left to the refusals.
        let before = self.handle.tls().ca_subjects.clone();
        let dropped: Vec<&String> = before
            .iter()
            .filter(|ca| !tls.ca_subjects.contains(ca))
            .collect();
        if !dropped.is_empty() {
            let now: Vec<&str> = tls.ca_subjects.iter().map(String::as_str).collect();
            for ca in dropped {
                tracing::warn!(
                    "CA_CRT in {} no longer holds the CA {ca}: every client certificate it issued is refused from now on, on open connections too (CA_CRT now: {})",
                    self.path.display(),
                    now.join("; ")
                );
            }
        }
        self.handle.replace_tls(tls);
        *self.files.lock().unwrap_or_else(PoisonError::into_inner) = (files, st);
        *self.config.lock().unwrap_or_else(PoisonError::into_inner) = config;
        tracing::info!("reload: ok, new connections use server certificate serial {serial}");
    }

    /// Whether a watched file changed since the last look (and remembers this look).
    fn files_changed(&self) -> bool {
        let mut files = self.files.lock().unwrap_or_else(PoisonError::into_inner);
        let now = stamps(&files.0);
        let changed = now != files.1;
        files.1 = now;
        changed
    }

    /// Watches the certificate files until the server stops.
    pub async fn watch(self: Arc<Self>) {
        loop {
            let every = self.config().cert_watch_interval;
            tokio::time::sleep(every).await;
            let this = self.clone();
            let changed = tokio::task::spawn_blocking(move || this.files_changed())
                .await
                .unwrap_or(false);
            if changed {
                self.reload("certificate files changed on disk").await;
            }
        }
    }

    /// Repeats the expiry warnings every 24 h.
    pub async fn expiry_checks(self: Arc<Self>) {
        let start = tokio::time::Instant::now() + EXPIRY_CHECK_EVERY;
        let mut every = tokio::time::interval_at(start, EXPIRY_CHECK_EVERY);
        loop {
            every.tick().await;
            load::warn_expiring(&self.handle.tls(), self.config().cert_warn_days);
        }
    }
}
