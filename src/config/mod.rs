//! The configuration file: a jma-receipt.conf-style shell fragment read without a shell.
//!
//! WebORCA's `/opt/jma/weborca/conf/jma-receipt.conf` is `source`d by a shell, so the
//! keys operators already know (`SERVER_CRT`, `SERVER_PEM`, `CA_CRT`) live in shell
//! syntax. This module owns reading that syntax safely and turning it into a typed
//! [`Config`], in two stages:
//!
//! 1. [`parse_raw`]: text → `KEY=VALUE` entries with their line numbers, plus warnings.
//!    Only plain assignments are understood (quotes, `export`, comments, `$VAR` of keys
//!    set earlier in the same file). Anything else — command substitution, pipes,
//!    `if`, functions — is skipped with a warning; nothing is ever executed.
//! 2. [`parse`]: the entries → a validated [`Config`], or a [`ConfigError`] that names the
//!    key, the file, the line, the value and what would be valid.
//!
//! It does not touch the files the config names: checking that certificates exist and
//! parse is the TLS loader's job, so that it can log WebORCA's own lines for them.

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

mod build;
mod forms;
mod keys;
pub mod parts;
mod shell;
mod suggest;
mod values;

use build::*;
use forms::*;
use suggest::*;
use values::*;

pub use keys::{Applies, KEYS, Key, restart_needed, watched_files};
pub use shell::parse_raw;

/// Every key this proxy reads, from [`KEYS`]; any other key in the file is
/// ignored (the real jma-receipt.conf also holds WebORCA's database settings).
pub const KNOWN_KEYS: &[&str] = &keys::names();

/// Where the config is read from when `-c/--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/weborca-mtls-proxy/proxy.conf";
/// The port WebORCA itself serves on, so clients keep their `https://host:8000` URLs.
pub const DEFAULT_LISTEN_PORT: u16 = 8000;
/// Where WebORCA is expected to listen in plain HTTP once the proxy holds port 8000.
pub const DEFAULT_BACKEND_URL: &str = "http://127.0.0.1:8001";
/// Default for `CERT_WARN_DAYS`.
pub const DEFAULT_CERT_WARN_DAYS: u32 = 30;
/// Upper bound for `CERT_WARN_DAYS`: ten years, orca-catool's default validity.
pub const MAX_CERT_WARN_DAYS: u32 = 3650;
/// Default for `MAX_CONNECTIONS`.
pub const DEFAULT_MAX_CONNECTIONS: usize = 2048;
/// Upper bound for `MAX_CONNECTIONS`; beyond this the file-descriptor limit is the real cap.
pub const MAX_MAX_CONNECTIONS: usize = 1_000_000;
/// Upper bound for `WORKERS`.
pub const MAX_WORKERS: usize = 256;
/// Default for `HANDSHAKE_TIMEOUT`.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default for `HEADER_TIMEOUT`.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// Default for `IDLE_TIMEOUT`.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Default for `BACKEND_CONNECT_TIMEOUT`.
pub const DEFAULT_BACKEND_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default for `BACKEND_TIMEOUT`: long, because WebORCA batch screens can think for minutes.
pub const DEFAULT_BACKEND_TIMEOUT: Duration = Duration::from_secs(300);
/// Default for `SHUTDOWN_GRACE`.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// Default for `CERT_WATCH_INTERVAL`.
pub const DEFAULT_CERT_WATCH_INTERVAL: Duration = Duration::from_secs(30);
/// Longest accepted duration for any timeout key; longer is almost surely a typo.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 60 * 60);
/// A config file larger than this is refused: a jma-receipt.conf is a few kilobytes, and
/// a path pointing at a device or a log must not be read into memory whole.
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// The HTTP port assumed when `BACKEND_URL` names none.
const DEFAULT_HTTP_PORT: u16 = 80;
/// A typo suggestion is offered up to this many edits away from a known key.
const SUGGEST_MAX_DISTANCE: usize = 2;
/// Shorter unknown keys are never compared: they match too much by chance.
const SUGGEST_MIN_KEY_LEN: usize = 4;
/// A value longer than this after `$VAR` expansion is refused: doubling a variable on
/// each line (`A=$A$A`) would otherwise need memory that grows exponentially.
const MAX_VALUE_BYTES: usize = 64 * 1024;
/// Lines quoted in warnings are cut here so one garbage line cannot flood the log.
const MAX_QUOTED_CHARS: usize = 200;

/// A validated configuration, ready for the server to use.
///
/// Each field is set by its key's row in [`KEYS`]; `Config::default()`, every
/// field empty or zero, is only what the rows start from, not a usable config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    /// The config file this was read from (relative paths in it were resolved against its folder).
    pub path: PathBuf,
    /// `SERVER_CRT`: the server certificate chain, PEM, leaf first.
    pub server_crt: Option<PathBuf>,
    /// `SERVER_PEM`: the server's private key, PEM.
    pub server_pem: Option<PathBuf>,
    /// `CA_CRT`: the CA certificate(s) that issue accepted client certificates.
    pub ca_crt: Option<PathBuf>,
    /// `SERVER_P12`: a PKCS#12 file used instead of `SERVER_CRT` + `SERVER_PEM`.
    pub server_p12: Option<PathBuf>,
    /// `SERVER_PASS_FILE`: the passphrase of an encrypted `SERVER_PEM` or of `SERVER_P12`.
    pub server_pass_file: Option<PathBuf>,
    /// `CA_CRL`: comma-separated list of CRL files, empty if unset.
    pub ca_crl: Vec<PathBuf>,
    /// `LISTEN`: comma-separated socket addresses (`[::]:8000`, `0.0.0.0:8000`,
    /// `127.0.0.1:18000`; port 0 allowed for tests). Never empty.
    pub listen: Vec<SocketAddr>,
    /// True when `LISTEN` was not set (default `[::]:8000`); only then may the server fall
    /// back to `0.0.0.0:8000` where IPv6 is off, since the operator chose no address.
    pub listen_is_default: bool,
    /// `BACKEND_URL`: where WebORCA listens in plain HTTP.
    pub backend: BackendUrl,
    /// `STATUS_LISTEN`: the status listener; loopback unless `STATUS_LISTEN_FORCE=on`,
    /// because its endpoints answer without a client certificate.
    pub status_listen: Option<SocketAddr>,
    /// `STATUS_LISTEN_FORCE`: allow a STATUS_LISTEN address that is not loopback.
    pub status_listen_force: bool,
    /// `LOG_FILE`: also append the log here.
    pub log_file: Option<PathBuf>,
    /// `ACCESS_LOG`: one line per request (default on).
    pub access_log: bool,
    /// `LOG_FORMAT`: WebORCA-style text lines or one JSON object per line (default text).
    pub log_format: LogFormat,
    /// `CERT_WARN_DAYS`: warn this many days before a certificate expires (default 30).
    pub cert_warn_days: u32,
    /// `CLIENT_CERT_ERRORS`: how a refused client certificate is answered (default page).
    pub client_cert_errors: ClientCertErrors,
    /// `ALLOW_CN`: the client certificate CNs allowed in; `None` allows any CN the CA issued.
    pub allow_cn: Option<Vec<String>>,
    /// `ADMIN_CN`: the CNs whose certificates may open the operator console on the main port; `None`: nobody.
    pub admin_cn: Option<Vec<String>>,
    /// `CRL_STALE`: what a CA_CRL past its nextUpdate does (default warn).
    pub crl_stale: CrlStale,
    /// `ACCESS_POLICY`: the file of per-path rules; `None` lets every
    /// verified certificate use every path.
    pub access_policy: Option<PathBuf>,
    /// `FORWARD_CLIENT_CERT`: send the client identity headers to WebORCA (default on).
    pub forward_client_cert: bool,
    /// `HANDSHAKE_TIMEOUT`: longest TLS handshake (default 10s).
    pub handshake_timeout: Duration,
    /// `HEADER_TIMEOUT`: longest wait for a complete request head (default 30s).
    pub header_timeout: Duration,
    /// `IDLE_TIMEOUT`: how long an idle keep-alive connection is kept (default 90s).
    pub idle_timeout: Duration,
    /// `BACKEND_CONNECT_TIMEOUT`: longest TCP connect to WebORCA (default 5s).
    pub backend_connect_timeout: Duration,
    /// `BACKEND_TIMEOUT`: longest wait for WebORCA's response head (default 300s).
    pub backend_timeout: Duration,
    /// `SHUTDOWN_GRACE`: how long in-flight requests may finish on SIGTERM (default 30s).
    pub shutdown_grace: Duration,
    /// `MAX_CONNECTIONS`: concurrent client connections (default 2048).
    pub max_connections: usize,
    /// `CERT_WATCH_INTERVAL`: how often certificate, key, CA and CRL files are checked for
    /// changes (default 30s).
    pub cert_watch_interval: Duration,
    /// `WORKERS`: threads serving connections; `None` is `auto`, one per CPU core.
    pub workers: Option<usize>,
}

impl Config {
    /// How many worker threads serve connections: WORKERS, or one per CPU core.
    pub fn worker_count(&self) -> usize {
        self.listener().worker_count()
    }
}

/// What a CA_CRL past its nextUpdate does (`CRL_STALE`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CrlStale {
    /// Log a warning (at start, on reload, daily) and go on using it.
    #[default]
    Warn,
    /// Refuse every client with the `crl-stale` page until a current CRL is loaded.
    Refuse,
}

/// How log lines are written (`LOG_FORMAT`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// `2023/09/07 12:56:10 message key=value`, as WebORCA writes.
    #[default]
    Text,
    /// One JSON object per line, the same fields by name, for journald, Fluent Bit or Loki.
    Json,
}

/// How a client certificate that is refused is answered (`CLIENT_CERT_ERRORS`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ClientCertErrors {
    /// Finish the handshake and answer a 403 page that explains what is wrong.
    #[default]
    Page,
    /// Refuse in the TLS handshake, as WebORCA itself does.
    Handshake,
}

/// The WebORCA backend, parsed from `BACKEND_URL`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackendUrl {
    /// The URL as written, without a trailing `/`.
    pub url: String,
    /// The host as written in the URL; an IPv6 address keeps its brackets (`[::1]`), so
    /// it can go into a `Host` header unchanged.
    pub host: String,
    /// The port, 80 when the URL names none.
    pub port: u16,
    /// `host:port` for connecting (`127.0.0.1:8001`, `[::1]:8001`, `orca:80`).
    pub authority: String,
}

/// A config that was read successfully, with what the operator should be told about it.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The validated configuration.
    pub config: Config,
    /// Lines that were ignored, likely typos and repeated keys, each naming file and line.
    pub warnings: Vec<String>,
}

/// One assignment from the file, after quote removal and `$VAR` expansion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEntry {
    /// The key, as written (case kept: the shell is case-sensitive).
    pub key: String,
    /// The value as the shell would have assigned it.
    pub value: String,
    /// The 1-based line number.
    pub line: usize,
}

/// The result of the raw stage: every plain assignment in file order, and warnings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawConfig {
    /// Assignments in file order, unknown keys included (they may be used as `$VAR`).
    pub entries: Vec<RawEntry>,
    /// One message per ignored line or unset `$VAR`, each naming file and line.
    pub warnings: Vec<String>,
    /// Ignored lines that set a key (`KEY=a b`, `KEY = v`, `KEY=$(...)`):
    /// for one of the proxy's keys, not a line to pass over (see [`parse`]).
    pub unreadable: Vec<Unreadable>,
}

/// An ignored line that would have set `key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    /// The key the line names, as written.
    pub key: String,
    /// The 1-based line number.
    pub line: usize,
    /// What follows the key's `=` on the line, as written.
    pub text: String,
    /// Why it could not be read.
    pub reason: String,
}

/// Why the config could not be used. Every message names the file, and the key where
/// there is one, and says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}; {}", read_hint(.source))]
    Read {
        /// The config file.
        path: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
    /// A key has a value that cannot be used.
    #[error("{key}: invalid value {} in {path} line {line}: expected {expected}", quoted(.value))]
    Invalid {
        /// The key.
        key: &'static str,
        /// The config file.
        path: PathBuf,
        /// The line the value is on.
        line: usize,
        /// The value after quote removal and expansion.
        value: String,
        /// What would be valid, and why where it is not obvious.
        expected: String,
    },
    /// No certificate is configured at all.
    #[error(
        "no server certificate in {path}: this proxy never falls back to plain HTTP; set \
         SERVER_CRT, SERVER_PEM and CA_CRT as in WebORCA's jma-receipt.conf (or SERVER_P12 \
         instead of SERVER_CRT and SERVER_PEM)"
    )]
    NoTls {
        /// The config file.
        path: PathBuf,
    },
    /// Two keys that exclude each other are both set.
    #[error(
        "{key} (line {line}) and {other} (line {other_line}) are both set in {path}: use \
         either SERVER_P12 alone or SERVER_CRT with SERVER_PEM, and remove the other"
    )]
    Conflict {
        /// The config file.
        path: PathBuf,
        /// The first key (`SERVER_P12`).
        key: &'static str,
        /// Its line.
        line: usize,
        /// The key it conflicts with.
        other: &'static str,
        /// That key's line.
        other_line: usize,
    },
    /// A key that the others need is not set.
    #[error("{key} is not set in {path}: {fix}")]
    Missing {
        /// The key to add.
        key: &'static str,
        /// The config file.
        path: PathBuf,
        /// What to set it to.
        fix: String,
        /// WebORCA's file keys as they are set (`None`: unset), for its
        /// `...none` and `...file exists` lines.
        files: Vec<(&'static str, Option<PathBuf>)>,
    },
}

/// What to do about a config file that cannot be read, by what went wrong.
fn read_hint(error: &io::Error) -> String {
    let hint = match error.kind() {
        io::ErrorKind::NotFound => {
            return format!(
                "check the path given with -c/--config (default {DEFAULT_CONFIG_PATH})"
            );
        }
        io::ErrorKind::PermissionDenied => {
            "make the file readable by the user the proxy runs as (or run it as that user)"
        }
        io::ErrorKind::IsADirectory => {
            "give the config file itself, not its folder, with -c/--config"
        }
        io::ErrorKind::FileTooLarge => {
            "a jma-receipt.conf-style file is a few kilobytes; check the path given with \
             -c/--config"
        }
        _ => "check the path given with -c/--config and that the file is readable",
    };
    hint.to_string()
}

/// A value or line for a message: control characters escaped (no terminal tricks in the
/// log) and long text cut.
fn printable(text: &str) -> String {
    crate::text::one_line(text, MAX_QUOTED_CHARS, crate::text::Controls::Escape, "…")
}

/// A value in double quotes, for `invalid value "abc"`.
fn quoted(value: &str) -> String {
    format!("\"{}\"", printable(value))
}

/// Reads and validates the config file at `path`.
///
/// Relative paths in the file are resolved against the file's folder. The files the
/// config names are not opened here.
pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
    let text = read_limited(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text, path)
}

/// Reads at most [`MAX_CONFIG_BYTES`]. Invalid UTF-8 (a comment saved in EUC-JP or
/// Shift_JIS) is replaced rather than refused, since it is harmless outside our keys;
/// a replaced character in one of our keys is refused by [`parse`].
fn read_limited(path: &Path) -> io::Result<String> {
    let file = File::open(path)?;
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_BYTES.saturating_add(1))
        .read_to_end(&mut bytes)?;
    if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > MAX_CONFIG_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::FileTooLarge,
            format!("the file is larger than {MAX_CONFIG_BYTES} bytes"),
        ));
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Parses and validates config text; `path` is used in messages and to resolve relative
/// paths.
pub fn parse(text: &str, path: &Path) -> Result<Loaded, ConfigError> {
    let raw = parse_raw(text, path);
    // An unreadable line setting one of the proxy's keys is refused, not
    // passed over: skipping `CA_CRL=a.pem b.pem` or `ALLOW_CN=user1 user2`
    // would start the proxy without the revocation or the allow-list meant.
    // (A later line that sets the key as it can be read is what counts, as
    // it would be in the shell.)
    // (Every unreadable line is looked at: one of WebORCA's own keys before
    // it does not hide it.)
    let refused = raw
        .unreadable
        .iter()
        .filter(|bad| {
            !raw.entries
                .iter()
                .any(|e| e.key == bad.key && e.line > bad.line)
        })
        .find_map(|bad| {
            KNOWN_KEYS
                .iter()
                .find(|known| **known == bad.key)
                .map(|&key| (bad, key))
        });
    if let Some((bad, key)) = refused {
        return Err(ConfigError::Invalid {
            key,
            path: path.to_path_buf(),
            line: bad.line,
            value: printable(&bad.text),
            expected: format!(
                "a value this file format can hold ({}); put the value in quotes, e.g. \
                 {key}=\"a b\", with no blanks around `=`",
                bad.reason
            ),
        });
    }
    let mut warnings = raw.warnings;
    let known = Known::collect(&raw.entries, path, &mut warnings);
    let config = build(&known, &mut warnings)?;
    Ok(Loaded { config, warnings })
}

#[cfg(test)]
mod tests;
