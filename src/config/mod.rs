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

/// Every key this proxy reads; any other key in the file is ignored (the real
/// jma-receipt.conf also holds WebORCA's database settings).
pub const KNOWN_KEYS: &[&str] = &[
    "SERVER_CRT",
    "SERVER_PEM",
    "CA_CRT",
    "SERVER_P12",
    "SERVER_PASS_FILE",
    "CA_CRL",
    "LISTEN",
    "BACKEND_URL",
    "STATUS_LISTEN",
    "STATUS_LISTEN_FORCE",
    "LOG_FILE",
    "ACCESS_LOG",
    "CERT_WARN_DAYS",
    "CLIENT_CERT_ERRORS",
    "ALLOW_CN",
    "FORWARD_CLIENT_CERT",
    "HANDSHAKE_TIMEOUT",
    "HEADER_TIMEOUT",
    "IDLE_TIMEOUT",
    "BACKEND_CONNECT_TIMEOUT",
    "BACKEND_TIMEOUT",
    "SHUTDOWN_GRACE",
    "MAX_CONNECTIONS",
    "CERT_WATCH_INTERVAL",
    "WORKERS",
];

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
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// `LOG_FILE`: also append the log here.
    pub log_file: Option<PathBuf>,
    /// `ACCESS_LOG`: one line per request (default on).
    pub access_log: bool,
    /// `CERT_WARN_DAYS`: warn this many days before a certificate expires (default 30).
    pub cert_warn_days: u32,
    /// `CLIENT_CERT_ERRORS`: how a refused client certificate is answered (default page).
    pub client_cert_errors: ClientCertErrors,
    /// `ALLOW_CN`: the client certificate CNs allowed in; `None` allows any CN the CA issued.
    pub allow_cn: Option<Vec<String>>,
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
        self.workers.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .min(MAX_WORKERS)
        })
    }
}

/// How a client certificate that is refused is answered (`CLIENT_CERT_ERRORS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientCertErrors {
    /// Finish the handshake and answer a 403 page that explains what is wrong.
    Page,
    /// Refuse in the TLS handshake, as WebORCA itself does.
    Handshake,
}

/// The WebORCA backend, parsed from `BACKEND_URL`.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    let mut warnings = raw.warnings;
    let known = Known::collect(&raw.entries, path, &mut warnings);
    let config = build(&known, &mut warnings)?;
    Ok(Loaded { config, warnings })
}

// ---------------------------------------------------------------------------------------
// Stage 1: shell-style text → raw entries.
// ---------------------------------------------------------------------------------------

/// Why a line was skipped; shown in parentheses in the warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unsupported {
    CommandSubstitution,
    Arithmetic,
    Operator(char),
    Unterminated(char),
    NotAssignment,
    SpaceAroundEquals,
    BadKey,
    ExtraWords,
    MultipleAssignments,
    Modifier,
    SpecialParameter,
    Continuation,
    Tilde,
    AnsiQuote,
    TooLong,
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CommandSubstitution => f.write_str("command substitution is never run"),
            Self::Arithmetic => f.write_str("arithmetic expansion is not supported"),
            Self::Operator(c) => write!(
                f,
                "shell operator '{c}' is never run; quote the value if '{c}' is part of it"
            ),
            Self::Unterminated(q) => write!(f, "unterminated {q} quote; a value cannot span lines"),
            Self::NotAssignment => f.write_str("shell commands are never run"),
            Self::SpaceAroundEquals => f.write_str("no spaces are allowed around '=' in shell"),
            Self::BadKey => {
                f.write_str("a key is letters, digits and '_' and does not start with a digit")
            }
            Self::ExtraWords => f.write_str(
                "text after the value would run as a command in shell; quote values with spaces",
            ),
            Self::MultipleAssignments => f.write_str("only one assignment per line is supported"),
            Self::Modifier => f.write_str("only $NAME and ${NAME} expansions are supported"),
            Self::SpecialParameter => {
                f.write_str("special parameters like $1 or $? are not supported")
            }
            Self::Continuation => {
                f.write_str("continuing a line with a trailing backslash is not supported")
            }
            Self::Tilde => f.write_str("'~' is not expanded; write the full path"),
            Self::AnsiQuote => f.write_str("$'...' and $\"...\" quoting is not supported"),
            Self::TooLong => write!(f, "the value is longer than {MAX_VALUE_BYTES} bytes"),
        }
    }
}

/// A value being built, with the names of unset variables it referred to.
#[derive(Default)]
struct Word {
    text: String,
    unset: Vec<String>,
}

/// A successfully parsed assignment line.
struct Assignment<'a> {
    key: &'a str,
    word: Word,
}

/// Reads a line left to right without indexing, so no input can make it panic.
struct Scanner<'a> {
    rest: &'a str,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<char> {
        self.rest.chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let mut chars = self.rest.chars();
        let c = chars.next()?;
        self.rest = chars.as_str();
        Some(c)
    }

    fn eat(&mut self, c: char) -> bool {
        match self.rest.strip_prefix(c) {
            Some(rest) => {
                self.rest = rest;
                true
            }
            None => false,
        }
    }

    /// Takes a shell name (`[A-Za-z_][A-Za-z0-9_]*`) if one starts here.
    fn take_name(&mut self) -> Option<&'a str> {
        if !self
            .peek()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        {
            return None;
        }
        let end = self
            .rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(self.rest.len());
        let (name, rest) = self.rest.split_at_checked(end)?;
        self.rest = rest;
        Some(name)
    }
}

/// The shell's blanks: what separates words on a line.
fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// Parses the text of a config file into assignments, as `source` would make them,
/// without running anything. Never fails: lines it cannot take are skipped with a warning.
pub fn parse_raw(text: &str, path: &Path) -> RawConfig {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut raw = RawConfig::default();
    // Every key assigned so far, known or not, for `$VAR` expansion.
    let mut vars: HashMap<String, String> = HashMap::new();
    for (index, line) in text.split('\n').enumerate() {
        let number = index.saturating_add(1);
        let line = line.strip_suffix('\r').unwrap_or(line);
        match parse_line(line, &vars) {
            Ok(None) => {}
            Ok(Some(Assignment { key, word })) => {
                for name in word.unset {
                    raw.warnings.push(format!(
                        "{} line {number}: ${name} is not set earlier in this file, so it \
                         expands to an empty string (the environment is not read)",
                        path.display()
                    ));
                }
                vars.insert(key.to_string(), word.text.clone());
                raw.entries.push(RawEntry {
                    key: key.to_string(),
                    value: word.text,
                    line: number,
                });
            }
            Err(reason) => raw.warnings.push(format!(
                "{} line {number}: ignored, not a plain KEY=VALUE assignment ({reason}): {}",
                path.display(),
                printable(line.trim_matches(is_blank))
            )),
        }
    }
    raw
}

/// One line: `Ok(None)` for blank and comment lines, the assignment, or why it was skipped.
fn parse_line<'a>(
    line: &'a str,
    vars: &HashMap<String, String>,
) -> Result<Option<Assignment<'a>>, Unsupported> {
    let body = line.trim_start_matches(is_blank);
    if body.is_empty() || body.starts_with('#') {
        return Ok(None);
    }
    let mut scanner = Scanner {
        rest: strip_export(body),
    };
    let key = parse_key(&mut scanner)?;
    // `KEY= value` assigns an empty KEY and runs `value` as a command.
    let spaced = scanner.peek().is_some_and(is_blank);
    let mut word = Word::default();
    parse_word(&mut scanner, vars, &mut word)?;
    match check_after_value(scanner.rest) {
        Err(Unsupported::ExtraWords | Unsupported::MultipleAssignments) if spaced => {
            Err(Unsupported::SpaceAroundEquals)
        }
        Err(reason) => Err(reason),
        Ok(()) => Ok(Some(Assignment { key, word })),
    }
}

/// `export KEY=VALUE` assigns like `KEY=VALUE`; exporting makes no difference here.
fn strip_export(body: &str) -> &str {
    match body.strip_prefix("export") {
        Some(rest) if rest.starts_with(is_blank) => rest.trim_start_matches(is_blank),
        _ => body,
    }
}

/// The key and its `=`, or why this is not an assignment.
fn parse_key<'a>(scanner: &mut Scanner<'a>) -> Result<&'a str, Unsupported> {
    let first_word = scanner.rest.split(is_blank).next().unwrap_or_default();
    match scanner.take_name() {
        Some(key) if scanner.eat('=') => Ok(key),
        Some(_) if scanner.rest.trim_start_matches(is_blank).starts_with('=') => {
            Err(Unsupported::SpaceAroundEquals)
        }
        _ if first_word.contains('=') => Err(Unsupported::BadKey),
        _ => Err(Unsupported::NotAssignment),
    }
}

/// After the value only blanks and a `#` comment may follow.
fn check_after_value(rest: &str) -> Result<(), Unsupported> {
    let rest = rest.trim_start_matches(is_blank);
    if rest.is_empty() || rest.starts_with('#') {
        return Ok(());
    }
    // Name what makes the rest dangerous before calling it merely extra words.
    if rest.contains('`') || rest.contains("$(") {
        return Err(Unsupported::CommandSubstitution);
    }
    if let Some(op) = rest.chars().next().filter(|c| ";|&<>()".contains(*c)) {
        return Err(Unsupported::Operator(op));
    }
    let mut next = Scanner { rest };
    if next.take_name().is_some() && next.eat('=') {
        Err(Unsupported::MultipleAssignments)
    } else {
        Err(Unsupported::ExtraWords)
    }
}

/// The value: unquoted text, quoted parts and expansions up to the first unquoted blank.
fn parse_word(
    scanner: &mut Scanner<'_>,
    vars: &HashMap<String, String>,
    word: &mut Word,
) -> Result<(), Unsupported> {
    // The shell would turn a leading `~` into $HOME; a literal `~` path would surprise.
    if scanner.peek() == Some('~') {
        return Err(Unsupported::Tilde);
    }
    while let Some(c) = scanner.peek() {
        if is_blank(c) {
            break;
        }
        scanner.bump();
        match c {
            '\'' => single_quoted(scanner, word)?,
            '"' => double_quoted(scanner, vars, word)?,
            '\\' => match scanner.bump() {
                Some(escaped) => word.text.push(escaped),
                None => return Err(Unsupported::Continuation),
            },
            '$' => expand(scanner, vars, word, false)?,
            '`' => return Err(Unsupported::CommandSubstitution),
            ';' | '|' | '&' | '<' | '>' | '(' | ')' => return Err(Unsupported::Operator(c)),
            _ => word.text.push(c),
        }
    }
    if word.text.len() > MAX_VALUE_BYTES {
        return Err(Unsupported::TooLong);
    }
    Ok(())
}

/// After an opening `'`: everything is literal up to the next `'`.
fn single_quoted(scanner: &mut Scanner<'_>, word: &mut Word) -> Result<(), Unsupported> {
    let (inside, rest) = scanner
        .rest
        .split_once('\'')
        .ok_or(Unsupported::Unterminated('\''))?;
    word.text.push_str(inside);
    scanner.rest = rest;
    Ok(())
}

/// After an opening `"`: `\"`, `\\`, `\$` and `` \` `` escape, `$VAR` expands, and a
/// backtick would be command substitution.
fn double_quoted(
    scanner: &mut Scanner<'_>,
    vars: &HashMap<String, String>,
    word: &mut Word,
) -> Result<(), Unsupported> {
    loop {
        match scanner.bump() {
            None => return Err(Unsupported::Unterminated('"')),
            Some('"') => return Ok(()),
            Some('\\') => match scanner.peek() {
                Some(c @ ('"' | '\\' | '$' | '`')) => {
                    scanner.bump();
                    word.text.push(c);
                }
                // Any other backslash stays, as in the shell (`"a\b"` is `a\b`).
                Some(_) => word.text.push('\\'),
                None => return Err(Unsupported::Unterminated('"')),
            },
            Some('`') => return Err(Unsupported::CommandSubstitution),
            Some('$') => expand(scanner, vars, word, true)?,
            Some(c) => word.text.push(c),
        }
    }
}

/// After a `$`: `$NAME` and `${NAME}` expand to keys set earlier in the file; every other
/// expansion is refused, and a `$` that starts none stays literal, as in the shell.
fn expand(
    scanner: &mut Scanner<'_>,
    vars: &HashMap<String, String>,
    word: &mut Word,
    in_double_quotes: bool,
) -> Result<(), Unsupported> {
    let name = match scanner.peek() {
        Some('(') if scanner.rest.starts_with("((") => return Err(Unsupported::Arithmetic),
        Some('(') => return Err(Unsupported::CommandSubstitution),
        Some('[') => return Err(Unsupported::Arithmetic),
        Some('{') => {
            scanner.bump();
            let name = scanner.take_name().ok_or(Unsupported::Modifier)?;
            if !scanner.eat('}') {
                return Err(Unsupported::Modifier);
            }
            name
        }
        Some(c) if c.is_ascii_digit() || "@*#?-$!".contains(c) => {
            return Err(Unsupported::SpecialParameter);
        }
        Some('\'' | '"') if !in_double_quotes => return Err(Unsupported::AnsiQuote),
        _ => match scanner.take_name() {
            Some(name) => name,
            None => {
                word.text.push('$');
                return Ok(());
            }
        },
    };
    match vars.get(name) {
        Some(value) if word.text.len().saturating_add(value.len()) > MAX_VALUE_BYTES => {
            return Err(Unsupported::TooLong);
        }
        Some(value) => word.text.push_str(value),
        None if !word.unset.iter().any(|seen| seen == name) => word.unset.push(name.to_string()),
        None => {}
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Stage 2: raw entries → typed Config.
// ---------------------------------------------------------------------------------------

/// The last value of each known key, with its line.
struct Setting {
    value: String,
    line: usize,
}

/// The known keys found in one file, and how to resolve and report them.
struct Known<'a> {
    path: &'a Path,
    settings: HashMap<&'static str, Setting>,
}

impl<'a> Known<'a> {
    /// Keeps the last value of each known key, warning about repeats and likely typos.
    fn collect(entries: &[RawEntry], path: &'a Path, warnings: &mut Vec<String>) -> Self {
        let mut settings: HashMap<&'static str, Setting> = HashMap::new();
        for entry in entries {
            let Some(&key) = KNOWN_KEYS.iter().find(|known| **known == entry.key) else {
                if let Some(suggestion) = suggest(&entry.key) {
                    warnings.push(format!(
                        "{}: unknown key, did you mean {suggestion}? ({} line {})",
                        entry.key,
                        path.display(),
                        entry.line
                    ));
                }
                continue;
            };
            let setting = Setting {
                value: entry.value.clone(),
                line: entry.line,
            };
            if let Some(previous) = settings.insert(key, setting) {
                warnings.push(format!(
                    "{key}: set on line {} and again on line {} of {}; the value on line {} is \
                     used",
                    previous.line,
                    entry.line,
                    path.display(),
                    entry.line
                ));
            }
        }
        Known { path, settings }
    }

    /// The setting of `key`; an empty (or blank) value counts as unset, as `KEY=` is how
    /// shell configs leave a key out.
    fn get(&self, key: &str) -> Option<&Setting> {
        self.settings
            .get(key)
            .filter(|setting| !setting.value.trim().is_empty())
    }

    fn invalid(&self, key: &'static str, setting: &Setting, expected: String) -> ConfigError {
        ConfigError::Invalid {
            key,
            path: self.path.to_path_buf(),
            line: setting.line,
            value: setting.value.clone(),
            expected,
        }
    }

    /// Parses `key` with `parse` (given the trimmed value), or `None` when unset.
    fn optional<T>(
        &self,
        key: &'static str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(setting) => parse(setting.value.trim())
                .map(Some)
                .map_err(|expected| self.invalid(key, setting, expected)),
        }
    }

    fn flag(&self, key: &'static str, default: bool) -> Result<bool, ConfigError> {
        Ok(self.optional(key, parse_bool)?.unwrap_or(default))
    }

    fn duration(&self, key: &'static str, default: Duration) -> Result<Duration, ConfigError> {
        Ok(self.optional(key, parse_duration)?.unwrap_or(default))
    }

    /// A path key, resolved against the config file's folder when relative.
    fn path(&self, key: &str) -> Option<PathBuf> {
        self.get(key).map(|setting| self.resolve(&setting.value))
    }

    fn resolve(&self, value: &str) -> PathBuf {
        let dir = self.path.parent().unwrap_or(Path::new(""));
        dir.join(value)
    }

    /// A character that stood for invalid UTF-8 in the file, or a NUL, would make a path
    /// that cannot exist; say so here rather than report a missing file later.
    fn check_text(&self) -> Result<(), ConfigError> {
        for key in KNOWN_KEYS {
            let Some(setting) = self.get(key) else {
                continue;
            };
            let expected = if setting.value.contains('\u{fffd}') {
                "text in UTF-8; the file is not valid UTF-8 here, save it as UTF-8"
            } else if setting.value.contains('\0') {
                "text without NUL characters"
            } else {
                continue;
            };
            return Err(self.invalid(key, setting, expected.to_string()));
        }
        Ok(())
    }
}

/// Validates the known keys into a [`Config`].
fn build(known: &Known<'_>, warnings: &mut Vec<String>) -> Result<Config, ConfigError> {
    known.check_text()?;
    let tls = tls_files(known)?;
    let listen = known.optional("LISTEN", parse_listen)?;
    let listen_is_default = listen.is_none();
    let listen = listen.unwrap_or_else(|| vec![default_listen()]);
    let backend = known
        .optional("BACKEND_URL", parse_backend_url)?
        .unwrap_or_else(default_backend);
    check_backend_is_not_self(known, &listen, &backend)?;
    let status_listen = status_listen(known, &listen, warnings)?;
    Ok(Config {
        path: known.path.to_path_buf(),
        server_crt: tls.server_crt,
        server_pem: tls.server_pem,
        ca_crt: tls.ca_crt,
        server_p12: tls.server_p12,
        server_pass_file: tls.server_pass_file,
        ca_crl: tls.ca_crl,
        listen,
        listen_is_default,
        backend,
        status_listen,
        log_file: known.path("LOG_FILE"),
        access_log: known.flag("ACCESS_LOG", true)?,
        cert_warn_days: known
            .optional("CERT_WARN_DAYS", parse_cert_warn_days)?
            .unwrap_or(DEFAULT_CERT_WARN_DAYS),
        client_cert_errors: known
            .optional("CLIENT_CERT_ERRORS", parse_client_cert_errors)?
            .unwrap_or(ClientCertErrors::Page),
        allow_cn: known.optional("ALLOW_CN", parse_allow_cn)?,
        forward_client_cert: known.flag("FORWARD_CLIENT_CERT", true)?,
        handshake_timeout: known.duration("HANDSHAKE_TIMEOUT", DEFAULT_HANDSHAKE_TIMEOUT)?,
        header_timeout: known.duration("HEADER_TIMEOUT", DEFAULT_HEADER_TIMEOUT)?,
        idle_timeout: known.duration("IDLE_TIMEOUT", DEFAULT_IDLE_TIMEOUT)?,
        backend_connect_timeout: known
            .duration("BACKEND_CONNECT_TIMEOUT", DEFAULT_BACKEND_CONNECT_TIMEOUT)?,
        backend_timeout: known.duration("BACKEND_TIMEOUT", DEFAULT_BACKEND_TIMEOUT)?,
        shutdown_grace: known.duration("SHUTDOWN_GRACE", DEFAULT_SHUTDOWN_GRACE)?,
        max_connections: known
            .optional("MAX_CONNECTIONS", parse_max_connections)?
            .unwrap_or(DEFAULT_MAX_CONNECTIONS),
        cert_watch_interval: known.duration("CERT_WATCH_INTERVAL", DEFAULT_CERT_WATCH_INTERVAL)?,
        workers: known.optional("WORKERS", parse_workers)?.flatten(),
    })
}

/// `[::]:8000`: WebORCA's port on every address, IPv4 included on a dual-stack host.
fn default_listen() -> SocketAddr {
    SocketAddr::from((Ipv6Addr::UNSPECIFIED, DEFAULT_LISTEN_PORT))
}

/// [`DEFAULT_BACKEND_URL`], already parsed (a test checks that they agree).
fn default_backend() -> BackendUrl {
    let host = Ipv4Addr::LOCALHOST.to_string();
    let port = 8001;
    BackendUrl {
        url: DEFAULT_BACKEND_URL.to_string(),
        authority: format!("{host}:{port}"),
        host,
        port,
    }
}

/// The certificate, key, CA and CRL paths, after [`check_tls_keys`].
struct TlsFiles {
    server_crt: Option<PathBuf>,
    server_pem: Option<PathBuf>,
    ca_crt: Option<PathBuf>,
    server_p12: Option<PathBuf>,
    server_pass_file: Option<PathBuf>,
    ca_crl: Vec<PathBuf>,
}

fn tls_files(known: &Known<'_>) -> Result<TlsFiles, ConfigError> {
    check_tls_keys(known)?;
    let ca_crl = known
        .optional("CA_CRL", |value| {
            let expected = "CRL files separated by commas, like ca.crl or \
                            /opt/jma/weborca/conf/ca.crl, with no empty entry";
            let files = parse_list(value).ok_or_else(|| expected.to_string())?;
            Ok(files.iter().map(|file| known.resolve(file)).collect())
        })?
        .unwrap_or_default();
    Ok(TlsFiles {
        server_crt: known.path("SERVER_CRT"),
        server_pem: known.path("SERVER_PEM"),
        ca_crt: known.path("CA_CRT"),
        server_p12: known.path("SERVER_P12"),
        server_pass_file: known.path("SERVER_PASS_FILE"),
        ca_crl,
    })
}

/// The server identity is SERVER_CRT + SERVER_PEM or SERVER_P12, and CA_CRT is always
/// needed: without it no client could be verified, and plain HTTP is never an option.
fn check_tls_keys(known: &Known<'_>) -> Result<(), ConfigError> {
    let line = |key: &str| known.get(key).map(|setting| setting.line);
    let (crt, pem, ca) = (line("SERVER_CRT"), line("SERVER_PEM"), line("CA_CRT"));
    let p12 = line("SERVER_P12");
    if let Some(p12_line) = p12 {
        let pair = [("SERVER_CRT", crt), ("SERVER_PEM", pem)];
        if let Some((other, other_line)) = pair.into_iter().find_map(|(k, l)| Some((k, l?))) {
            return Err(ConfigError::Conflict {
                path: known.path.to_path_buf(),
                key: "SERVER_P12",
                line: p12_line,
                other,
                other_line,
            });
        }
    }
    let missing = |key: &'static str, fix: &str| {
        Err(ConfigError::Missing {
            key,
            path: known.path.to_path_buf(),
            fix: fix.to_string(),
        })
    };
    match (crt, pem, ca, p12) {
        (None, None, None, None) => Err(ConfigError::NoTls {
            path: known.path.to_path_buf(),
        }),
        (Some(_), None, _, _) => missing(
            "SERVER_PEM",
            "SERVER_CRT needs its private key; set SERVER_PEM to the .pem file orca-catool \
             made with the .crt, like \
             SERVER_PEM=/opt/jma/weborca/conf/000002__JP_orca_192.168.1.100.pem",
        ),
        (None, Some(_), _, _) => missing(
            "SERVER_CRT",
            "SERVER_PEM needs its certificate; set SERVER_CRT to the .crt file orca-catool \
             made with the .pem, like \
             SERVER_CRT=/opt/jma/weborca/conf/000002__JP_orca_192.168.1.100.crt",
        ),
        (None, None, _, None) => missing(
            "SERVER_CRT",
            "set SERVER_CRT and SERVER_PEM to the server certificate and its key \
             (orca-catool's .crt and .pem), or SERVER_P12 to its .p12",
        ),
        (_, _, None, _) => missing(
            "CA_CRT",
            "set CA_CRT to the CA certificate that issued the client certificates \
             (orca-catool's ca.crt, like CA_CRT=/opt/jma/weborca/conf/ca.crt); without it \
             no client can be verified",
        ),
        _ => Ok(()),
    }
}

/// The status endpoints answer without a client certificate, so they stay on loopback
/// unless the operator says otherwise in so many words.
fn status_listen(
    known: &Known<'_>,
    listen: &[SocketAddr],
    warnings: &mut Vec<String>,
) -> Result<Option<SocketAddr>, ConfigError> {
    let force = known.flag("STATUS_LISTEN_FORCE", false)?;
    let Some(setting) = known.get("STATUS_LISTEN") else {
        if let Some(forced) = known.get("STATUS_LISTEN_FORCE").filter(|_| force) {
            warnings.push(format!(
                "STATUS_LISTEN_FORCE: has no effect without STATUS_LISTEN ({} line {})",
                known.path.display(),
                forced.line
            ));
        }
        return Ok(None);
    };
    let invalid = |expected: String| known.invalid("STATUS_LISTEN", setting, expected);
    let addr = parse_socket_addr(setting.value.trim())
        .map_err(|why| invalid(format!("a socket address like 127.0.0.1:9000; {why}")))?;
    if addr.port() != 0 && listen.contains(&addr) {
        return Err(invalid(format!(
            "an address not also in LISTEN; {addr} already serves the proxy"
        )));
    }
    if !addr.ip().to_canonical().is_loopback() {
        if !force {
            return Err(invalid(format!(
                "a loopback address like 127.0.0.1:9000 or [::1]:9000, because /status and \
                 /metrics answer without a client certificate; to serve them on {addr} anyway \
                 also set STATUS_LISTEN_FORCE=on"
            )));
        }
        warnings.push(format!(
            "STATUS_LISTEN: {addr} is not a loopback address, so /healthz, /readyz, /status \
             and /metrics are reachable without a client certificate (STATUS_LISTEN_FORCE=on, \
             {} line {})",
            known.path.display(),
            setting.line
        ));
    }
    Ok(Some(addr))
}

/// Pointing BACKEND_URL at the proxy's own port is a likely slip when moving WebORCA off
/// port 8000, and would make the proxy talk to itself.
fn check_backend_is_not_self(
    known: &Known<'_>,
    listen: &[SocketAddr],
    backend: &BackendUrl,
) -> Result<(), ConfigError> {
    let bare_host = backend.host.trim_start_matches('[').trim_end_matches(']');
    let backend_ip = bare_host.parse::<IpAddr>().ok().map(|ip| ip.to_canonical());
    let backend_is_local = bare_host.eq_ignore_ascii_case("localhost")
        || backend_ip.is_some_and(|ip| ip.is_loopback() || ip.is_unspecified());
    let clash = listen.iter().find(|addr| {
        let ip = addr.ip().to_canonical();
        addr.port() == backend.port
            && (backend_ip == Some(ip)
                || (backend_is_local && (ip.is_loopback() || ip.is_unspecified())))
    });
    let Some(addr) = clash else {
        return Ok(());
    };
    if let Some(setting) = known.get("BACKEND_URL") {
        return Err(known.invalid(
            "BACKEND_URL",
            setting,
            format!(
                "the address where WebORCA listens in plain HTTP, not this proxy's own LISTEN \
                 address {addr}; move WebORCA to another port (HTTP_PORT in its environment) \
                 and point BACKEND_URL there"
            ),
        ));
    }
    match known.get("LISTEN") {
        Some(setting) => Err(known.invalid(
            "LISTEN",
            setting,
            format!(
                "addresses on a port other than {}, where BACKEND_URL (default \
                 {DEFAULT_BACKEND_URL}) expects WebORCA",
                backend.port
            ),
        )),
        None => Ok(()),
    }
}

// ---------------------------------------------------------------------------------------
// Value forms. Each returns what would be valid (the text after "expected") on error.
// ---------------------------------------------------------------------------------------

/// `on`/`off`, and the spellings other tools use for them.
fn parse_bool(value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "on" | "yes" | "true" | "1" => Ok(true),
        "off" | "no" | "false" | "0" => Ok(false),
        _ => Err("on or off (also yes/no, true/false, 1/0)".to_string()),
    }
}

/// `30` (seconds), `30s`, `5m`, `1h`, `500ms`; above zero and at most [`MAX_DURATION`].
fn parse_duration(value: &str) -> Result<Duration, String> {
    const FORM: &str = "seconds like 30, 30s, 5m or 500ms";
    let too_long = || format!("at most 24h ({} seconds)", MAX_DURATION.as_secs());
    let digits_end = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (number, unit) = value.split_at_checked(digits_end).unwrap_or((value, ""));
    if number.is_empty() {
        return Err(FORM.to_string());
    }
    let millis_per_unit: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "s" => 1000,
        "ms" => 1,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(format!("{FORM} (units: ms, s, m, h)")),
    };
    let number: u64 = number.parse().map_err(|_| too_long())?;
    if number == 0 {
        return Err(format!(
            "a duration above zero, like 30s ({FORM}); 0 would remove the limit, which is \
             not allowed"
        ));
    }
    let millis = number.checked_mul(millis_per_unit).ok_or_else(too_long)?;
    let duration = Duration::from_millis(millis);
    if duration > MAX_DURATION {
        return Err(too_long());
    }
    Ok(duration)
}

/// A plain decimal number in `min..=max`; no sign, no spaces, no separators.
fn parse_in_range(value: &str, min: u64, max: u64) -> Option<u64> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value
        .parse::<u64>()
        .ok()
        .filter(|n| (min..=max).contains(n))
}

fn parse_cert_warn_days(value: &str) -> Result<u32, String> {
    parse_in_range(value, 0, MAX_CERT_WARN_DAYS.into())
        .and_then(|days| u32::try_from(days).ok())
        .ok_or_else(|| {
            format!(
                "a number of days from 0 to {MAX_CERT_WARN_DAYS}, like 30 (0 warns only about \
                 expired certificates)"
            )
        })
}

fn parse_max_connections(value: &str) -> Result<usize, String> {
    let max = u64::try_from(MAX_MAX_CONNECTIONS).unwrap_or(u64::MAX);
    parse_in_range(value, 1, max)
        .and_then(|count| usize::try_from(count).ok())
        .ok_or_else(|| {
            format!("a number of connections from 1 to {MAX_MAX_CONNECTIONS}, like 2048")
        })
}

/// `auto` (`None`: one per CPU core) or a number of threads.
fn parse_workers(value: &str) -> Result<Option<usize>, String> {
    if value.eq_ignore_ascii_case("auto") {
        return Ok(None);
    }
    let max = u64::try_from(MAX_WORKERS).unwrap_or(u64::MAX);
    parse_in_range(value, 1, max)
        .and_then(|count| usize::try_from(count).ok())
        .map(Some)
        .ok_or_else(|| {
            format!(
                "auto (one per CPU core) or a number of threads from 1 to {MAX_WORKERS}, like 2"
            )
        })
}

fn parse_client_cert_errors(value: &str) -> Result<ClientCertErrors, String> {
    match value.to_ascii_lowercase().as_str() {
        "page" => Ok(ClientCertErrors::Page),
        "handshake" => Ok(ClientCertErrors::Handshake),
        _ => Err(
            "page (a 403 page that explains the problem) or handshake (refuse in the \
                  TLS handshake, like WebORCA)"
                .to_string(),
        ),
    }
}

/// A comma-separated list, entries trimmed; `None` if any entry is empty, since `a,,b`
/// or a trailing comma is more likely a slip than a wish.
fn parse_list(value: &str) -> Option<Vec<String>> {
    let mut items: Vec<String> = Vec::new();
    for item in value.split(',').map(str::trim) {
        if item.is_empty() {
            return None;
        }
        if !items.iter().any(|seen| seen == item) {
            items.push(item.to_string());
        }
    }
    Some(items)
}

fn parse_allow_cn(value: &str) -> Result<Vec<String>, String> {
    parse_list(value).ok_or_else(|| {
        "certificate common names separated by commas, like user1,user2, with no empty entry"
            .to_string()
    })
}

fn parse_listen(value: &str) -> Result<Vec<SocketAddr>, String> {
    const FORM: &str = "socket addresses like [::]:8000, 0.0.0.0:8000 or 127.0.0.1:18000, \
                        comma separated";
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for part in value.split(',').map(str::trim) {
        if part.is_empty() {
            return Err(format!("{FORM}, with no empty entry"));
        }
        let addr = parse_socket_addr(part).map_err(|why| format!("{FORM}; {why}"))?;
        // Port 0 twice is two ephemeral ports (tests do that); anything else would fail to bind.
        if addr.port() != 0 && addrs.contains(&addr) {
            return Err(format!("{FORM}, each once; {addr} is listed twice"));
        }
        addrs.push(addr);
    }
    Ok(addrs)
}

/// An IP address and port; the error says what is wrong with `value`.
fn parse_socket_addr(value: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = value.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let shown = quoted(value);
    Err(if value.bytes().all(|b| b.is_ascii_digit()) {
        format!("{shown} is a port alone, write [::]:{value} or 0.0.0.0:{value}")
    } else if value.matches(':').count() > 1 && !value.starts_with('[') {
        format!("{shown}: an IPv6 address needs brackets, like [::1]:8000")
    } else if value.contains(|c: char| c.is_ascii_alphabetic()) && !value.contains('[') {
        format!("{shown}: host names are not resolved, give an IP address")
    } else {
        format!("{shown} is not an IP address and port")
    })
}

/// The form every `BACKEND_URL` error starts from.
const BACKEND_FORM: &str = "an http:// URL like http://127.0.0.1:8001";

/// `http://host[:port][/]`: the backend is a place to connect to, nothing more, since
/// requests keep their own path and WebORCA's own login stays in them.
fn parse_backend_url(value: &str) -> Result<BackendUrl, String> {
    let Some(rest) = strip_prefix_ignore_case(value, "http://") else {
        return Err(if strip_prefix_ignore_case(value, "https://").is_some() {
            format!(
                "{BACKEND_FORM}: https to the backend is not supported; run WebORCA in plain \
                 HTTP on a loopback port behind this proxy"
            )
        } else {
            format!("{BACKEND_FORM} (http://, a host and an optional port)")
        });
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at_checked(end).unwrap_or((rest, ""));
    check_url_tail(tail)?;
    if authority.contains('@') {
        return Err(format!("{BACKEND_FORM}, without user:password@"));
    }
    let (host, port) = split_host_port(authority)?;
    Ok(BackendUrl {
        url: value.strip_suffix('/').unwrap_or(value).to_string(),
        authority: format!("{host}:{port}"),
        host,
        port,
    })
}

fn strip_prefix_ignore_case<'a>(value: &'a str, prefix: &str) -> Option<&'a str> {
    let head = value.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) {
        value.get(prefix.len()..)
    } else {
        None
    }
}

/// Only a lone `/` may follow the authority.
fn check_url_tail(tail: &str) -> Result<(), String> {
    if tail.is_empty() || tail == "/" {
        return Ok(());
    }
    let after_slash = tail.strip_prefix('/').unwrap_or(tail);
    Err(if after_slash.starts_with('?') {
        format!("{BACKEND_FORM}, without a query (?...)")
    } else if after_slash.starts_with('#') {
        format!("{BACKEND_FORM}, without a fragment (#...)")
    } else {
        format!(
            "{BACKEND_FORM}, without a path: requests keep their own path (/api01rv2/...), \
             so only http://, host and port are given"
        )
    })
}

/// Splits `host[:port]` or `[v6][:port]`; the host keeps IPv6 brackets.
fn split_host_port(authority: &str) -> Result<(String, u16), String> {
    if let Some(inner) = authority.strip_prefix('[') {
        let Some((ip, after)) = inner.split_once(']') else {
            return Err(format!(
                "{BACKEND_FORM}; the IPv6 address lacks its closing ]"
            ));
        };
        if ip.parse::<Ipv6Addr>().is_err() {
            return Err(format!(
                "{BACKEND_FORM}; [{}] is not an IPv6 address",
                printable(ip)
            ));
        }
        let port = match after {
            "" => DEFAULT_HTTP_PORT,
            _ => match after.strip_prefix(':') {
                Some(port) => parse_port(port)?,
                None => return Err(format!("{BACKEND_FORM}; only :port may follow [{ip}]")),
            },
        };
        return Ok((format!("[{ip}]"), port));
    }
    let (host, port) = match authority.split_once(':') {
        None => (authority, DEFAULT_HTTP_PORT),
        Some((_, port)) if port.contains(':') => {
            return Err(format!(
                "{BACKEND_FORM}; an IPv6 address needs brackets, like http://[::1]:8001"
            ));
        }
        Some((host, port)) => (host, parse_port(port)?),
    };
    check_host(host)?;
    Ok((host.to_string(), port))
}

fn parse_port(port: &str) -> Result<u16, String> {
    parse_in_range(port, 1, u16::MAX.into())
        .and_then(|port| u16::try_from(port).ok())
        .ok_or_else(|| format!("{BACKEND_FORM}; the port is a number from 1 to 65535"))
}

/// A DNS name or IPv4 address: letters, digits, `-`, `.` and `_` (seen in internal names).
fn check_host(host: &str) -> Result<(), String> {
    const MAX_HOST_LEN: usize = 253;
    if host.is_empty() {
        return Err(format!("{BACKEND_FORM}; the host is missing"));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_');
    let looks_ipv4 = host.chars().all(|c| c.is_ascii_digit() || c == '.');
    if host.len() > MAX_HOST_LEN
        || !host.chars().all(allowed)
        || (looks_ipv4 && host.parse::<Ipv4Addr>().is_err())
    {
        return Err(format!(
            "{BACKEND_FORM}; {} is not a host name or IP address",
            quoted(host)
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Typo suggestions.
// ---------------------------------------------------------------------------------------

/// The known key an unknown key was probably meant to be. Compared in upper case, since
/// `server_crt=` is as likely a slip as `SERVER_CRTT=`.
fn suggest(key: &str) -> Option<&'static str> {
    if key.len() < SUGGEST_MIN_KEY_LEN {
        return None;
    }
    let upper = key.to_ascii_uppercase();
    KNOWN_KEYS
        .iter()
        // Keys differing in length by more than the limit cannot be close enough.
        .filter(|known| known.len().abs_diff(upper.len()) <= SUGGEST_MAX_DISTANCE)
        .map(|known| (edit_distance(&upper, known), *known))
        .filter(|(distance, _)| *distance <= SUGGEST_MAX_DISTANCE)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, known)| known)
}

/// Levenshtein distance (insertions, deletions, substitutions), in characters.
fn edit_distance(a: &str, b: &str) -> usize {
    strsim::levenshtein(a, b)
}

#[cfg(test)]
mod tests;
