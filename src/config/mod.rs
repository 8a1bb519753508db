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
    let mut out = String::new();
    for (count, c) in text.chars().enumerate() {
        if count == MAX_QUOTED_CHARS {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
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

/// Levenshtein distance (insertions, deletions, substitutions), two rows at a time.
fn edit_distance(a: &str, b: &str) -> usize {
    let mut previous: Vec<usize> = (0..=b.chars().count()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = Vec::with_capacity(previous.len());
        current.push(i.saturating_add(1));
        for ((cb, diagonal), above) in b.chars().zip(&previous).zip(previous.iter().skip(1)) {
            let left = current.last().copied().unwrap_or(usize::MAX);
            let substitute = diagonal.saturating_add(usize::from(ca != cb));
            current.push(
                substitute
                    .min(above.saturating_add(1))
                    .min(left.saturating_add(1)),
            );
        }
        previous = current;
    }
    previous.last().copied().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATH: &str = "/etc/weborca-mtls-proxy/proxy.conf";
    /// The three lines from WebORCA's guide (seeds/004).
    const GUIDE_TLS: &str = "\
SERVER_CRT=/opt/jma/weborca/conf/000002__JP_orca_192.168.1.100.crt
SERVER_PEM=/opt/jma/weborca/conf/000002__JP_orca_192.168.1.100.pem
CA_CRT=/opt/jma/weborca/conf/ca.crt
";

    fn path() -> &'static Path {
        Path::new(PATH)
    }

    fn raw(text: &str) -> RawConfig {
        parse_raw(text, path())
    }

    /// The value of `key` after the raw stage (last assignment wins).
    fn raw_value(text: &str, key: &str) -> Option<String> {
        raw(text)
            .entries
            .into_iter()
            .rev()
            .find(|entry| entry.key == key)
            .map(|entry| entry.value)
    }

    /// Parses `extra` after the guide's three TLS lines.
    fn ok(extra: &str) -> Loaded {
        match parse(&format!("{GUIDE_TLS}{extra}"), path()) {
            Ok(loaded) => loaded,
            Err(error) => panic!("config refused: {error}"),
        }
    }

    fn config(extra: &str) -> Config {
        ok(extra).config
    }

    fn refused(text: &str) -> ConfigError {
        match parse(text, path()) {
            Ok(loaded) => panic!("config accepted: {loaded:?}"),
            Err(error) => error,
        }
    }

    /// The message for `extra` after the guide's TLS lines (which take lines 1-3).
    fn refusal(extra: &str) -> String {
        refused(&format!("{GUIDE_TLS}{extra}")).to_string()
    }

    /// Checks that `message` is an Invalid message for a value on line 4 (after the
    /// guide's TLS lines) whose "expected" part starts with `expected`.
    fn assert_invalid(message: &str, key: &str, value: &str, expected: &str) {
        let start =
            format!("{key}: invalid value \"{value}\" in {PATH} line 4: expected {expected}");
        assert!(message.starts_with(&start), "{message}");
    }

    /// The single warning the raw stage gives for `line`.
    fn ignored_reason(line: &str) -> String {
        let raw = raw(line);
        assert!(
            raw.entries.is_empty(),
            "{line:?} was assigned: {:?}",
            raw.entries
        );
        assert_eq!(raw.warnings.len(), 1, "{line:?}: {:?}", raw.warnings);
        raw.warnings.concat()
    }

    fn assert_ignored(line: &str, reason: &str) {
        let expected = format!(
            "{PATH} line 1: ignored, not a plain KEY=VALUE assignment ({reason}): {}",
            line.trim_matches([' ', '\t'])
        );
        assert_eq!(ignored_reason(line), expected);
    }

    // --- raw syntax -------------------------------------------------------------------

    #[test]
    fn blank_lines_and_comments_are_skipped() {
        let raw = raw("\n   \n# comment\n   # indented comment\n\t#tab\nA=1\n");
        assert_eq!(
            raw.entries,
            vec![RawEntry {
                key: "A".into(),
                value: "1".into(),
                line: 6
            }]
        );
        assert!(raw.warnings.is_empty());
    }

    #[test]
    fn export_prefix_and_leading_blanks_are_accepted() {
        assert_eq!(raw_value("export A=1", "A").as_deref(), Some("1"));
        assert_eq!(raw_value("  export\tA=2", "A").as_deref(), Some("2"));
        assert_eq!(raw_value("\tA=3", "A").as_deref(), Some("3"));
        // `exportA=1` is just a key named exportA.
        assert_eq!(raw_value("exportA=1", "exportA").as_deref(), Some("1"));
    }

    #[test]
    fn trailing_comment_after_value_is_dropped() {
        assert_eq!(
            raw_value("A=value # comment", "A").as_deref(),
            Some("value")
        );
        assert_eq!(
            raw_value("A=value\t#comment", "A").as_deref(),
            Some("value")
        );
        assert_eq!(raw_value("A=\"x y\" # c", "A").as_deref(), Some("x y"));
        assert_eq!(raw_value("A= # only a comment", "A").as_deref(), Some(""));
        assert_eq!(raw_value("A=value   ", "A").as_deref(), Some("value"));
    }

    #[test]
    fn hash_inside_a_word_is_literal() {
        assert_eq!(raw_value("A=a#b", "A").as_deref(), Some("a#b"));
        assert_eq!(raw_value("A=#x", "A").as_deref(), Some("#x"));
        assert_eq!(raw_value("A=\"x\"#y", "A").as_deref(), Some("x#y"));
    }

    #[test]
    fn empty_value_assigns_empty_string() {
        assert_eq!(raw_value("A=", "A").as_deref(), Some(""));
        assert_eq!(raw_value("A=''", "A").as_deref(), Some(""));
        assert_eq!(raw_value("A=\"\"", "A").as_deref(), Some(""));
    }

    #[test]
    fn double_quotes_keep_blanks_hash_and_operators() {
        assert_eq!(
            raw_value("A=\"a b # c ; d | e & f < g > (h)\"", "A").as_deref(),
            Some("a b # c ; d | e & f < g > (h)")
        );
    }

    #[test]
    fn double_quote_escapes_follow_the_shell() {
        assert_eq!(raw_value(r#"A="q\"q""#, "A").as_deref(), Some("q\"q"));
        assert_eq!(raw_value(r#"A="b\\s""#, "A").as_deref(), Some("b\\s"));
        assert_eq!(raw_value(r#"A="\$HOME""#, "A").as_deref(), Some("$HOME"));
        assert_eq!(raw_value(r#"A="\`id\`""#, "A").as_deref(), Some("`id`"));
        // Other backslashes stay.
        assert_eq!(
            raw_value(r#"A="C:\dir\n""#, "A").as_deref(),
            Some("C:\\dir\\n")
        );
    }

    #[test]
    fn single_quotes_are_literal() {
        assert_eq!(
            raw_value(r#"A='$B ${C} $(id) `id` \ " # ;'"#, "A").as_deref(),
            Some(r#"$B ${C} $(id) `id` \ " # ;"#)
        );
        assert!(raw(r#"A='$(touch x)'"#).warnings.is_empty());
    }

    #[test]
    fn quoted_and_unquoted_parts_concatenate() {
        assert_eq!(raw_value(r#"A="a"b'c'"#, "A").as_deref(), Some("abc"));
        assert_eq!(raw_value(r#"A='it'\''s'"#, "A").as_deref(), Some("it's"));
        assert_eq!(
            raw_value(r#"A=/opt/"my dir"/x"#, "A").as_deref(),
            Some("/opt/my dir/x")
        );
    }

    #[test]
    fn unquoted_backslash_escapes_next_character() {
        assert_eq!(raw_value(r"A=a\ b", "A").as_deref(), Some("a b"));
        assert_eq!(raw_value(r"A=a\;b", "A").as_deref(), Some("a;b"));
        assert_eq!(raw_value(r"A=\$B", "A").as_deref(), Some("$B"));
    }

    #[test]
    fn variables_set_earlier_expand() {
        let text = "DIR=/opt/jma/weborca/conf\nA=$DIR/a.crt\nB=${DIR}/b.crt\nC=\"$DIR/c d\"\n\
                    D=${DIR}x\nE=$DIRx\nF='$DIR'\nG=\"${DIR}\"";
        let raw = raw(text);
        let value = |key: &str| {
            raw.entries
                .iter()
                .find(|entry| entry.key == key)
                .map(|entry| entry.value.as_str())
        };
        assert_eq!(value("A"), Some("/opt/jma/weborca/conf/a.crt"));
        assert_eq!(value("B"), Some("/opt/jma/weborca/conf/b.crt"));
        assert_eq!(value("C"), Some("/opt/jma/weborca/conf/c d"));
        assert_eq!(value("D"), Some("/opt/jma/weborca/confx"));
        assert_eq!(value("E"), Some(""), "$DIRx names the variable DIRx");
        assert_eq!(value("F"), Some("$DIR"));
        assert_eq!(value("G"), Some("/opt/jma/weborca/conf"));
        assert_eq!(raw.warnings.len(), 1, "{:?}", raw.warnings);
    }

    #[test]
    fn expansion_uses_the_value_at_that_line() {
        let text = "A=1\nB=$A\nA=2\nC=$A";
        assert_eq!(raw_value(text, "B").as_deref(), Some("1"));
        assert_eq!(raw_value(text, "C").as_deref(), Some("2"));
    }

    #[test]
    fn expanded_text_is_not_parsed_again() {
        let text = "A='$(id); rm x'\nB=$A";
        let raw = raw(text);
        assert_eq!(raw_value(text, "B").as_deref(), Some("$(id); rm x"));
        assert!(raw.warnings.is_empty());
    }

    #[test]
    fn unset_variable_expands_empty_with_warning() {
        let raw = raw("# first\nA=x${NOPE}y$NOPE");
        assert_eq!(raw.entries[0].value, "xy");
        assert_eq!(
            raw.warnings,
            vec![format!(
                "{PATH} line 2: $NOPE is not set earlier in this file, so it expands to an \
                 empty string (the environment is not read)"
            )]
        );
    }

    #[test]
    fn environment_variables_are_not_read() {
        let raw = raw("A=$HOME/x\nB=$PATH");
        assert_eq!(raw.entries[0].value, "/x");
        assert_eq!(raw.entries[1].value, "");
        assert_eq!(raw.warnings.len(), 2);
        assert!(raw.warnings[0].contains("line 1: $HOME is not set"));
        assert!(raw.warnings[1].contains("line 2: $PATH is not set"));
    }

    #[test]
    fn variable_set_later_is_unset_earlier() {
        let raw = raw("A=$B\nB=1");
        assert_eq!(raw.entries[0].value, "");
        assert!(raw.warnings[0].contains("line 1: $B is not set earlier"));
    }

    #[test]
    fn dollar_that_starts_no_expansion_is_literal() {
        assert_eq!(raw_value("A=cost$", "A").as_deref(), Some("cost$"));
        assert_eq!(raw_value("A=a$/b", "A").as_deref(), Some("a$/b"));
        assert_eq!(raw_value("A=\"a$ b\"", "A").as_deref(), Some("a$ b"));
        assert_eq!(raw_value("A=\"x$\"", "A").as_deref(), Some("x$"));
    }

    #[test]
    fn command_substitution_is_never_run() {
        let marker = std::env::temp_dir().join(format!(
            "weborca-mtls-proxy-config-pwned-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_file(&marker);
        let m = marker.display();
        let text = format!(
            "X=$(touch {m})\nY=`touch {m}`\nZ=\"$(touch {m})\"\nW=\"`touch {m}`\"\n\
             V=a$(touch {m})\nexport SERVER_CRT=$(touch {m})"
        );
        let raw = raw(&text);
        assert!(!marker.exists(), "a command was run");
        assert!(raw.entries.is_empty(), "{:?}", raw.entries);
        assert_eq!(raw.warnings.len(), 6);
        for (index, warning) in raw.warnings.iter().enumerate() {
            let prefix = format!(
                "{PATH} line {}: ignored, not a plain KEY=VALUE assignment (command \
                 substitution is never run): ",
                index + 1
            );
            assert!(warning.starts_with(&prefix), "{warning}");
            assert!(warning.contains(&format!("touch {m}")), "{warning}");
        }
    }

    #[test]
    fn ignored_line_warning_has_the_documented_form() {
        let raw = parse_raw("\n\n\n\n\n\nFOO=$(id)\n", Path::new("/etc/x/proxy.conf"));
        assert_eq!(
            raw.warnings,
            vec![
                "/etc/x/proxy.conf line 7: ignored, not a plain KEY=VALUE assignment \
                 (command substitution is never run): FOO=$(id)"
                    .to_string()
            ]
        );
    }

    #[test]
    fn shell_operators_in_unquoted_values_are_ignored() {
        for (line, op) in [
            ("A=1; rm -rf /", ';'),
            ("A=1;B=2", ';'),
            ("A=x && echo y", '&'),
            ("A=x&", '&'),
            ("A=x ; echo y", ';'),
            ("A=\"x\" | cat", '|'),
            ("A= > /tmp/y", '>'),
            ("A=x | cat", '|'),
            ("A=x>/tmp/y", '>'),
            ("A=x</tmp/y", '<'),
            ("A=(1 2)", '('),
            ("A=x)", ')'),
        ] {
            let reason = format!(
                "shell operator '{op}' is never run; quote the value if '{op}' is part of it"
            );
            assert_ignored(line, &reason);
        }
    }

    #[test]
    fn shell_commands_and_control_flow_are_ignored() {
        for line in [
            "if [ -f /x ]; then",
            "fi",
            "f() { A=1; }",
            "source /etc/other.conf",
            ". /etc/other.conf",
            "echo hello",
            "export",
            "export A",
            "A",
        ] {
            assert_ignored(line, "shell commands are never run");
        }
    }

    #[test]
    fn other_unsupported_forms_are_ignored_with_their_reason() {
        let bad_key = "a key is letters, digits and '_' and does not start with a digit";
        let unterminated = |q: char| format!("unterminated {q} quote; a value cannot span lines");
        let expansion = "only $NAME and ${NAME} expansions are supported";
        let special = "special parameters like $1 or $? are not supported";
        let extra =
            "text after the value would run as a command in shell; quote values with spaces";
        let cases: &[(&str, &[&str])] = &[
            (&unterminated('"'), &["A=\"abc", "A=\"abc\\", "A=x\"y"]),
            (&unterminated('\''), &["A='abc", "A=x'y"]),
            (
                "no spaces are allowed around '=' in shell",
                &["A = 1", "A =1", "A= 1", "A= B=1"],
            ),
            (
                bad_key,
                &["1A=x", "A-B=x", "A+=x", "A[0]=x", "=x", "\u{3000}A=1"],
            ),
            (
                "command substitution is never run",
                &["A=x $(id)", "A= `id`", "A=x y$(id)"],
            ),
            ("only one assignment per line is supported", &["A=1 B=2"]),
            (extra, &["A=b c", "A=\"b\" c"]),
            (
                expansion,
                &["A=${B:-x}", "A=${#B}", "A=${B", "A=${}", "A=\"${B/x/y}\""],
            ),
            (special, &["A=$1", "A=$?", "A=\"$$\"", "A=$@", "A=$#"]),
            (
                "arithmetic expansion is not supported",
                &["A=$((1+2))", "A=$[1+2]"],
            ),
            (
                "'~' is not expanded; write the full path",
                &["A=~/x", "A=~orca/x"],
            ),
            (
                "continuing a line with a trailing backslash is not supported",
                &["A=x\\"],
            ),
            (
                "$'...' and $\"...\" quoting is not supported",
                &["A=$'x'", "A=$\"x\""],
            ),
        ];
        for (reason, lines) in cases {
            for line in *lines {
                assert_ignored(line, reason);
            }
        }
    }

    #[test]
    fn values_cannot_grow_without_bound() {
        let mut text = String::from("A=xxxxxxxxxxxxxxxx\n");
        for _ in 0..40 {
            text.push_str("A=$A$A\n");
        }
        let raw = raw(&text);
        assert!(
            raw.entries
                .iter()
                .all(|entry| entry.value.len() <= MAX_VALUE_BYTES)
        );
        assert_eq!(
            raw.warnings.len(),
            40 - 12,
            "2^12 * 16 bytes is the largest that fits"
        );
        assert!(raw.warnings[0].contains("(the value is longer than 65536 bytes): A=$A$A"));
        let long = format!("A={}", "x".repeat(MAX_VALUE_BYTES + 1));
        assert!(ignored_reason(&long).contains("longer than 65536 bytes"));
    }

    #[test]
    fn ignored_line_assigns_nothing() {
        let raw = raw("A=1\nA=$(id)\nB=$A");
        assert_eq!(raw_value("A=1\nA=$(id)\nB=$A", "B").as_deref(), Some("1"));
        assert_eq!(raw.entries.len(), 2);
        assert_eq!(raw.warnings.len(), 1);
    }

    #[test]
    fn literal_special_characters_outside_operators_are_kept() {
        assert_eq!(raw_value("A=*.crt", "A").as_deref(), Some("*.crt"));
        assert_eq!(raw_value("A={a,b}", "A").as_deref(), Some("{a,b}"));
        assert_eq!(raw_value("A=a=b", "A").as_deref(), Some("a=b"));
        assert_eq!(raw_value("A=x~y", "A").as_deref(), Some("x~y"));
        assert_eq!(raw_value("A=hi!", "A").as_deref(), Some("hi!"));
    }

    #[test]
    fn crlf_line_endings_and_bom_are_accepted() {
        let raw = raw("\u{feff}A=1\r\nB=\"2\"\r\n# c\r\n");
        assert_eq!(raw.entries.len(), 2);
        assert_eq!(raw.entries[0].value, "1");
        assert_eq!(raw.entries[1].value, "2");
        assert!(raw.warnings.is_empty());
    }

    #[test]
    fn non_ascii_values_are_kept() {
        assert_eq!(
            raw_value("A=/opt/証明書/サーバ.crt # コメント", "A").as_deref(),
            Some("/opt/証明書/サーバ.crt")
        );
    }

    #[test]
    fn control_characters_in_ignored_lines_are_escaped_in_warnings() {
        let warning = ignored_reason("A=x\u{1b}[31m y");
        assert!(warning.contains("\\u{1b}[31m"), "{warning}");
        assert!(!warning.contains('\u{1b}'));
    }

    #[test]
    fn long_ignored_lines_are_cut_in_warnings() {
        let line = format!("A=x {}", "y".repeat(10_000));
        let warning = ignored_reason(&line);
        assert!(warning.len() < 600, "{}", warning.len());
        assert!(warning.ends_with('…'));
    }

    // --- unknown keys and repeats ---------------------------------------------------

    #[test]
    fn typo_of_a_known_key_gets_did_you_mean() {
        let loaded = ok("SERVER_CRTT=/x.crt\n");
        assert_eq!(
            loaded.warnings,
            vec![format!(
                "SERVER_CRTT: unknown key, did you mean SERVER_CRT? ({PATH} line 4)"
            )]
        );
    }

    #[test]
    fn did_you_mean_covers_common_slips() {
        for (typo, meant) in [
            ("CA_CERT", "CA_CRT"),
            ("server_crt", "SERVER_CRT"),
            ("Listen", "LISTEN"),
            ("LISTN", "LISTEN"),
            ("LOGFILE", "LOG_FILE"),
            ("BACKEND_URI", "BACKEND_URL"),
            ("ALLOW_CNS", "ALLOW_CN"),
            ("MAX_CONNECTION", "MAX_CONNECTIONS"),
            ("SERVER_PEN", "SERVER_PEM"),
        ] {
            let warnings = ok(&format!("{typo}=1\n")).warnings;
            let expected = format!("{typo}: unknown key, did you mean {meant}? ({PATH} line 4)");
            assert_eq!(warnings, vec![expected]);
        }
    }

    #[test]
    fn unrelated_unknown_keys_are_silent() {
        let keys = [
            "DBHOST",
            "DBNAME",
            "DBUSER",
            "DBPASS",
            "DBPORT",
            "DBENCODING",
            "HTTP_PORT",
            "PORT",
            "LOGDIR",
            "USERDIR",
            "ORCAUSER",
            "ORCAGROUP",
            "REDIRECTLOG",
            "A",
            "CA",
            "LOG",
            "SERVER",
            "TIMEOUT",
            "SERVER_CRT_OLD",
        ];
        let text: String = keys.iter().map(|key| format!("{key}=x\n")).collect();
        assert_eq!(ok(&text).warnings, Vec::<String>::new());
    }

    #[test]
    fn suggestion_needs_distance_two_or_less() {
        assert_eq!(suggest("SERVER_CRTTT"), Some("SERVER_CRT"));
        assert_eq!(suggest("SERVER_CRTTTT"), None);
        assert_eq!(suggest("LSN"), None, "short keys are never compared");
    }

    #[test]
    fn edit_distance_is_levenshtein() {
        assert_eq!(edit_distance("", ""), 0);
        assert_eq!(edit_distance("abc", ""), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("CA_CRT", "CA_CRL"), 1);
        assert_eq!(edit_distance("SERVER_PEM", "SERVER_P12"), 2);
    }

    #[test]
    fn repeated_known_key_last_wins_with_warning() {
        let loaded = ok("ACCESS_LOG=off\nACCESS_LOG=on\n");
        assert!(loaded.config.access_log);
        assert_eq!(
            loaded.warnings,
            vec![format!(
                "ACCESS_LOG: set on line 4 and again on line 5 of {PATH}; the value on line 5 \
                 is used"
            )]
        );
    }

    #[test]
    fn repeated_key_set_empty_last_is_unset() {
        let loaded = ok("LOG_FILE=/var/log/x.log\nLOG_FILE=\n");
        assert_eq!(loaded.config.log_file, None);
        assert_eq!(loaded.warnings.len(), 1);
    }

    #[test]
    fn repeated_unknown_key_is_silent() {
        assert!(ok("DBHOST=a\nDBHOST=b\n").warnings.is_empty());
    }

    #[test]
    fn ignored_line_warnings_reach_the_loaded_config() {
        let loaded = ok("LISTEN=$(hostname):8000\n");
        assert!(loaded.config.listen_is_default);
        assert_eq!(loaded.warnings.len(), 1);
        assert!(loaded.warnings[0].starts_with(&format!("{PATH} line 4: ignored")));
    }

    // --- typed config -----------------------------------------------------------------

    #[test]
    fn defaults_apply_when_only_the_guide_keys_are_set() {
        let config = config("");
        let expected = Config {
            path: PathBuf::from(PATH),
            server_crt: Some("/opt/jma/weborca/conf/000002__JP_orca_192.168.1.100.crt".into()),
            server_pem: Some("/opt/jma/weborca/conf/000002__JP_orca_192.168.1.100.pem".into()),
            ca_crt: Some("/opt/jma/weborca/conf/ca.crt".into()),
            server_p12: None,
            server_pass_file: None,
            ca_crl: vec![],
            listen: vec!["[::]:8000".parse().unwrap()],
            listen_is_default: true,
            backend: parse_backend_url(DEFAULT_BACKEND_URL).unwrap(),
            status_listen: None,
            log_file: None,
            access_log: true,
            cert_warn_days: 30,
            client_cert_errors: ClientCertErrors::Page,
            allow_cn: None,
            forward_client_cert: true,
            handshake_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(90),
            backend_connect_timeout: Duration::from_secs(5),
            backend_timeout: Duration::from_secs(300),
            shutdown_grace: Duration::from_secs(30),
            max_connections: 2048,
            cert_watch_interval: Duration::from_secs(30),
            workers: None,
        };
        assert_eq!(config, expected);
    }

    #[test]
    fn default_backend_matches_its_url() {
        let backend = default_backend();
        assert_eq!(parse_backend_url(DEFAULT_BACKEND_URL), Ok(backend.clone()));
        assert_eq!(backend.authority, "127.0.0.1:8001");
    }

    #[test]
    fn realistic_jma_receipt_conf_is_read() {
        let text = r#"# jma-receipt.conf
# データベース設定
DBNAME=orca
DBUSER=orca
DBPASS=""
DBHOST=localhost
DBPORT=5432
DBENCODING="UTF-8"
export HTTP_PORT=8000   # WebORCA's own port
LOGDIR=/opt/jma/weborca/log
REDIRECTLOG=on

# SSLクライアント認証
SERVER_CRT=/opt/jma/weborca/conf/000002__JP_orca_192.168.1.100.crt
SERVER_PEM=/opt/jma/weborca/conf/000002__JP_orca_192.168.1.100.pem
CA_CRT=/opt/jma/weborca/conf/ca.crt
"#;
        let loaded = parse(text, Path::new("/opt/jma/weborca/conf/jma-receipt.conf")).unwrap();
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        let config = loaded.config;
        assert_eq!(
            config.server_crt.as_deref(),
            Some(Path::new(
                "/opt/jma/weborca/conf/000002__JP_orca_192.168.1.100.crt"
            ))
        );
        assert_eq!(
            config.server_pem.as_deref(),
            Some(Path::new(
                "/opt/jma/weborca/conf/000002__JP_orca_192.168.1.100.pem"
            ))
        );
        assert_eq!(
            config.ca_crt.as_deref(),
            Some(Path::new("/opt/jma/weborca/conf/ca.crt"))
        );
        assert!(config.listen_is_default);
    }

    #[test]
    fn every_key_is_read_from_a_full_config() {
        let config = parse(
            r#"SERVER_P12=server.p12
SERVER_PASS_FILE=server.pass
CA_CRT=ca.crt
CA_CRL="a.crl, /var/lib/crl/b.crl"
LISTEN=0.0.0.0:8443,[::1]:18000
BACKEND_URL=http://orca.local:8001/
STATUS_LISTEN=127.0.0.1:9000
LOG_FILE=/var/log/weborca-mtls-proxy.log
ACCESS_LOG=off
CERT_WARN_DAYS=60
CLIENT_CERT_ERRORS=handshake
ALLOW_CN="user1, user2"
FORWARD_CLIENT_CERT=no
HANDSHAKE_TIMEOUT=5
HEADER_TIMEOUT=10s
IDLE_TIMEOUT=2m
BACKEND_CONNECT_TIMEOUT=500ms
BACKEND_TIMEOUT=1h
SHUTDOWN_GRACE=45s
MAX_CONNECTIONS=100
CERT_WATCH_INTERVAL=1m
"#,
            Path::new("/etc/weborca-mtls-proxy/proxy.conf"),
        )
        .unwrap()
        .config;
        let dir = Path::new("/etc/weborca-mtls-proxy");
        assert_eq!(config.server_p12, Some(dir.join("server.p12")));
        assert_eq!(config.server_pass_file, Some(dir.join("server.pass")));
        assert_eq!(config.ca_crt, Some(dir.join("ca.crt")));
        assert_eq!(
            config.ca_crl,
            vec![dir.join("a.crl"), PathBuf::from("/var/lib/crl/b.crl")]
        );
        assert_eq!(
            config.listen,
            vec![
                "0.0.0.0:8443".parse().unwrap(),
                "[::1]:18000".parse().unwrap()
            ]
        );
        assert!(!config.listen_is_default);
        assert_eq!(config.backend.url, "http://orca.local:8001");
        assert_eq!(config.backend.authority, "orca.local:8001");
        assert_eq!(
            config.status_listen,
            Some("127.0.0.1:9000".parse().unwrap())
        );
        assert_eq!(
            config.log_file,
            Some(PathBuf::from("/var/log/weborca-mtls-proxy.log"))
        );
        assert!(!config.access_log);
        assert_eq!(config.cert_warn_days, 60);
        assert_eq!(config.client_cert_errors, ClientCertErrors::Handshake);
        assert_eq!(
            config.allow_cn,
            Some(vec!["user1".to_string(), "user2".to_string()])
        );
        assert!(!config.forward_client_cert);
        assert_eq!(config.handshake_timeout, Duration::from_secs(5));
        assert_eq!(config.header_timeout, Duration::from_secs(10));
        assert_eq!(config.idle_timeout, Duration::from_secs(120));
        assert_eq!(config.backend_connect_timeout, Duration::from_millis(500));
        assert_eq!(config.backend_timeout, Duration::from_secs(3600));
        assert_eq!(config.shutdown_grace, Duration::from_secs(45));
        assert_eq!(config.max_connections, 100);
        assert_eq!(config.cert_watch_interval, Duration::from_secs(60));
    }

    #[test]
    fn relative_paths_resolve_against_the_config_folder() {
        let text = "SERVER_CRT=server.crt\nSERVER_PEM=./keys/server.pem\nCA_CRT=../ca.crt\n\
                    LOG_FILE=proxy.log";
        let config = parse(text, Path::new("/etc/proxy/proxy.conf"))
            .unwrap()
            .config;
        assert_eq!(
            config.server_crt,
            Some(PathBuf::from("/etc/proxy/server.crt"))
        );
        assert_eq!(
            config.server_pem,
            Some(PathBuf::from("/etc/proxy/./keys/server.pem"))
        );
        assert_eq!(config.ca_crt, Some(PathBuf::from("/etc/proxy/../ca.crt")));
        assert_eq!(config.log_file, Some(PathBuf::from("/etc/proxy/proxy.log")));
        // A config named without a folder keeps paths relative to the working directory,
        // which is where that config is.
        let config = parse(text, Path::new("proxy.conf")).unwrap().config;
        assert_eq!(config.server_crt, Some(PathBuf::from("server.crt")));
        assert_eq!(config.path, PathBuf::from("proxy.conf"));
    }

    #[test]
    fn paths_keep_spaces_and_expansion() {
        let text = "CONF=/opt/jma/weborca/conf\nSERVER_CRT=\"$CONF/my server.crt\"\n\
                    SERVER_PEM=${CONF}/s.pem\nCA_CRT=$CONF/ca.crt";
        let config = parse(text, path()).unwrap().config;
        assert_eq!(
            config.server_crt,
            Some(PathBuf::from("/opt/jma/weborca/conf/my server.crt"))
        );
        assert_eq!(
            config.server_pem,
            Some(PathBuf::from("/opt/jma/weborca/conf/s.pem"))
        );
        assert_eq!(
            config.ca_crt,
            Some(PathBuf::from("/opt/jma/weborca/conf/ca.crt"))
        );
    }

    #[test]
    fn empty_value_means_unset() {
        let config = config(
            "LISTEN=\nBACKEND_URL=\nSTATUS_LISTEN=\nLOG_FILE=\nACCESS_LOG=\nCERT_WARN_DAYS=\n\
             ALLOW_CN=\nCA_CRL=\nHANDSHAKE_TIMEOUT=\"\"\nMAX_CONNECTIONS=' '\nSERVER_P12=\n",
        );
        assert_eq!(config, self::config(""));
    }

    #[test]
    fn no_tls_keys_refuses_to_start() {
        let error = refused("DBNAME=orca\nLISTEN=[::]:8000\n");
        assert!(matches!(error, ConfigError::NoTls { .. }));
        assert_eq!(
            error.to_string(),
            format!(
                "no server certificate in {PATH}: this proxy never falls back to plain HTTP; \
                 set SERVER_CRT, SERVER_PEM and CA_CRT as in WebORCA's jma-receipt.conf (or \
                 SERVER_P12 instead of SERVER_CRT and SERVER_PEM)"
            )
        );
        assert!(matches!(refused(""), ConfigError::NoTls { .. }));
        assert!(matches!(
            refused("SERVER_CRT=\nSERVER_PEM=\nCA_CRT=\n"),
            ConfigError::NoTls { .. }
        ));
    }

    #[test]
    fn tls_keys_behind_command_substitution_count_as_unset() {
        let error = refused("SERVER_CRT=$(ls /x.crt)\nSERVER_PEM=`ls /x.pem`\nCA_CRT=$(ls)\n");
        assert!(matches!(error, ConfigError::NoTls { .. }));
    }

    #[test]
    fn missing_ca_crt_is_named() {
        let error = refused("SERVER_CRT=/s.crt\nSERVER_PEM=/s.pem\n");
        assert!(matches!(error, ConfigError::Missing { key: "CA_CRT", .. }));
        let message = error.to_string();
        assert!(
            message.starts_with(&format!("CA_CRT is not set in {PATH}: set CA_CRT")),
            "{message}"
        );
        assert!(
            message.contains("CA_CRT=/opt/jma/weborca/conf/ca.crt"),
            "{message}"
        );
        let error = refused("SERVER_P12=/s.p12\n");
        assert!(matches!(error, ConfigError::Missing { key: "CA_CRT", .. }));
    }

    #[test]
    fn server_crt_without_pem_is_named() {
        let error = refused("SERVER_CRT=/s.crt\nCA_CRT=/ca.crt\n");
        assert!(matches!(
            error,
            ConfigError::Missing {
                key: "SERVER_PEM",
                ..
            }
        ));
        let message = error.to_string();
        assert!(
            message.starts_with(&format!(
                "SERVER_PEM is not set in {PATH}: SERVER_CRT needs its private key"
            )),
            "{message}"
        );
    }

    #[test]
    fn server_pem_without_crt_is_named() {
        let error = refused("SERVER_PEM=/s.pem\nCA_CRT=/ca.crt\n");
        assert!(matches!(
            error,
            ConfigError::Missing {
                key: "SERVER_CRT",
                ..
            }
        ));
        assert!(error.to_string().starts_with(&format!(
            "SERVER_CRT is not set in {PATH}: SERVER_PEM needs its certificate"
        )));
    }

    #[test]
    fn ca_crt_alone_asks_for_a_server_certificate() {
        let error = refused("CA_CRT=/ca.crt\n");
        assert!(matches!(
            error,
            ConfigError::Missing {
                key: "SERVER_CRT",
                ..
            }
        ));
        assert!(error.to_string().contains("or SERVER_P12"));
    }

    #[test]
    fn p12_with_crt_or_pem_conflicts() {
        let error =
            refused("SERVER_CRT=/s.crt\nSERVER_PEM=/s.pem\nCA_CRT=/ca.crt\nSERVER_P12=/s.p12\n");
        assert_eq!(
            error.to_string(),
            format!(
                "SERVER_P12 (line 4) and SERVER_CRT (line 1) are both set in {PATH}: use either \
                 SERVER_P12 alone or SERVER_CRT with SERVER_PEM, and remove the other"
            )
        );
        let error = refused("SERVER_P12=/s.p12\nSERVER_PEM=/s.pem\nCA_CRT=/ca.crt\n");
        assert!(matches!(
            error,
            ConfigError::Conflict {
                key: "SERVER_P12",
                other: "SERVER_PEM",
                line: 1,
                other_line: 2,
                ..
            }
        ));
    }

    #[test]
    fn p12_with_ca_is_enough() {
        let config = parse(
            "SERVER_P12=/s.p12\nSERVER_PASS_FILE=/s.pass\nCA_CRT=/ca.crt\n",
            path(),
        )
        .unwrap()
        .config;
        assert_eq!(config.server_p12, Some(PathBuf::from("/s.p12")));
        assert_eq!(config.server_pass_file, Some(PathBuf::from("/s.pass")));
        assert_eq!(config.server_crt, None);
    }

    #[test]
    fn invalid_value_names_key_file_line_value_and_form() {
        let text = format!("{GUIDE_TLS}\n\n\n\n\n\n\n\nHANDSHAKE_TIMEOUT=abc\n");
        let error = refused(&text);
        assert_eq!(
            error.to_string(),
            "HANDSHAKE_TIMEOUT: invalid value \"abc\" in /etc/weborca-mtls-proxy/proxy.conf line \
             12: expected seconds like 30, 30s, 5m or 500ms"
        );
        let ConfigError::Invalid {
            key, line, value, ..
        } = error
        else {
            panic!("not Invalid: {error:?}");
        };
        assert_eq!(
            (key, line, value.as_str()),
            ("HANDSHAKE_TIMEOUT", 12, "abc")
        );
    }

    #[test]
    fn booleans_accept_on_off_and_friends() {
        for key in ["ACCESS_LOG", "FORWARD_CLIENT_CERT"] {
            for (value, expected) in [
                ("on", true),
                ("ON", true),
                ("yes", true),
                ("True", true),
                ("1", true),
                ("off", false),
                ("Off", false),
                ("no", false),
                ("FALSE", false),
                ("0", false),
                ("\" on \"", true),
            ] {
                let config = config(&format!("{key}={value}\n"));
                let actual = if key == "ACCESS_LOG" {
                    config.access_log
                } else {
                    config.forward_client_cert
                };
                assert_eq!(actual, expected, "{key}={value}");
            }
            for bad in ["enabled", "2", "o", "onn"] {
                let message = refusal(&format!("{key}={bad}\n"));
                assert_eq!(
                    message,
                    format!(
                        "{key}: invalid value \"{bad}\" in {PATH} line 4: expected on or off \
                         (also yes/no, true/false, 1/0)"
                    )
                );
            }
        }
    }

    #[test]
    fn durations_accept_seconds_and_units() {
        for (value, expected) in [
            ("30", Duration::from_secs(30)),
            ("30s", Duration::from_secs(30)),
            ("30S", Duration::from_secs(30)),
            ("5m", Duration::from_secs(300)),
            ("1h", Duration::from_secs(3600)),
            ("24h", Duration::from_secs(86_400)),
            ("86400", Duration::from_secs(86_400)),
            ("500ms", Duration::from_millis(500)),
            ("1ms", Duration::from_millis(1)),
        ] {
            assert_eq!(parse_duration(value), Ok(expected), "{value}");
        }
    }

    #[test]
    fn durations_refuse_zero_too_long_and_garbage() {
        let form = "seconds like 30, 30s, 5m or 500ms";
        for bad in ["abc", "", "s", "-5", "+5"] {
            assert_eq!(parse_duration(bad), Err(form.to_string()), "{bad}");
        }
        for bad in ["1.5s", "5 m", "5d", "10sec", "30s0"] {
            assert_eq!(
                parse_duration(bad),
                Err(format!("{form} (units: ms, s, m, h)")),
                "{bad}"
            );
        }
        for zero in ["0", "0s", "0ms", "00"] {
            let error = parse_duration(zero).unwrap_err();
            assert!(
                error.starts_with("a duration above zero"),
                "{zero}: {error}"
            );
        }
        for long in [
            "86401",
            "25h",
            "1441m",
            "86400001ms",
            "99999999999999999999999",
            "18446744073709551615h",
        ] {
            assert_eq!(
                parse_duration(long),
                Err("at most 24h (86400 seconds)".to_string()),
                "{long}"
            );
        }
    }

    #[test]
    fn every_duration_key_is_validated() {
        for key in [
            "HANDSHAKE_TIMEOUT",
            "HEADER_TIMEOUT",
            "IDLE_TIMEOUT",
            "BACKEND_CONNECT_TIMEOUT",
            "BACKEND_TIMEOUT",
            "SHUTDOWN_GRACE",
            "CERT_WATCH_INTERVAL",
        ] {
            let message = refusal(&format!("{key}=0\n"));
            assert!(
                message.starts_with(&format!(
                    "{key}: invalid value \"0\" in {PATH} line 4: expected a duration above zero"
                )),
                "{message}"
            );
            let config = config(&format!("{key}=7s\n"));
            let all = [
                config.handshake_timeout,
                config.header_timeout,
                config.idle_timeout,
                config.backend_connect_timeout,
                config.backend_timeout,
                config.shutdown_grace,
                config.cert_watch_interval,
            ];
            assert_eq!(
                all.iter().filter(|d| **d == Duration::from_secs(7)).count(),
                1,
                "{key}"
            );
        }
    }

    #[test]
    fn cert_warn_days_range() {
        assert_eq!(config("CERT_WARN_DAYS=0\n").cert_warn_days, 0);
        assert_eq!(config("CERT_WARN_DAYS=3650\n").cert_warn_days, 3650);
        assert_eq!(config("CERT_WARN_DAYS=\"14\"\n").cert_warn_days, 14);
        for bad in ["3651", "-1", "+5", "ten", "1e3", "99999999999999999999999"] {
            let message = refusal(&format!("CERT_WARN_DAYS={bad}\n"));
            let expected = "expected a number of days from 0 to 3650, like 30 (0 warns only \
                            about expired certificates)";
            assert!(message.ends_with(expected), "{message}");
        }
    }

    #[test]
    fn workers_auto_or_a_count() {
        assert_eq!(config("").workers, None);
        assert_eq!(config("WORKERS=auto\n").workers, None);
        assert_eq!(config("WORKERS=AUTO\n").workers, None);
        assert_eq!(config("WORKERS=1\n").workers, Some(1));
        assert_eq!(config("WORKERS=256\n").worker_count(), 256);
        assert!(config("").worker_count() >= 1);
        for bad in ["0", "257", "-1", "two", "1.5"] {
            let message = refusal(&format!("WORKERS={bad}\n"));
            assert!(message.contains("WORKERS"), "{message}");
            assert!(message.contains("auto"), "{message}");
        }
    }

    #[test]
    fn max_connections_range() {
        assert_eq!(config("MAX_CONNECTIONS=1\n").max_connections, 1);
        assert_eq!(
            config("MAX_CONNECTIONS=1000000\n").max_connections,
            1_000_000
        );
        for bad in ["0", "1000001", "-3", "many", "2k"] {
            let message = refusal(&format!("MAX_CONNECTIONS={bad}\n"));
            assert!(
                message.ends_with("expected a number of connections from 1 to 1000000, like 2048"),
                "{message}"
            );
        }
    }

    #[test]
    fn client_cert_errors_values() {
        assert_eq!(
            config("CLIENT_CERT_ERRORS=page\n").client_cert_errors,
            ClientCertErrors::Page
        );
        assert_eq!(
            config("CLIENT_CERT_ERRORS=HANDSHAKE\n").client_cert_errors,
            ClientCertErrors::Handshake
        );
        let message = refusal("CLIENT_CERT_ERRORS=tls\n");
        assert_invalid(&message, "CLIENT_CERT_ERRORS", "tls", "page (a 403 page");
    }

    #[test]
    fn allow_cn_list_is_trimmed_and_deduplicated() {
        assert_eq!(
            config("ALLOW_CN=\" user1 ,user2,user1, 受付端末 \"\n").allow_cn,
            Some(vec![
                "user1".to_string(),
                "user2".to_string(),
                "受付端末".to_string()
            ])
        );
        assert_eq!(
            config("ALLOW_CN=one\n").allow_cn,
            Some(vec!["one".to_string()])
        );
        for bad in ["a,,b", "a,", ",a", "' , '"] {
            let message = refusal(&format!("ALLOW_CN={bad}\n"));
            assert!(message.contains("with no empty entry"), "{message}");
        }
    }

    #[test]
    fn ca_crl_list() {
        let config = config("CA_CRL=crl/a.crl,/abs/b.crl\n");
        let dir = Path::new("/etc/weborca-mtls-proxy");
        assert_eq!(
            config.ca_crl,
            vec![dir.join("crl/a.crl"), PathBuf::from("/abs/b.crl")]
        );
        let message = refusal("CA_CRL=a.crl,\n");
        assert!(
            message.starts_with(&format!(
                "CA_CRL: invalid value \"a.crl,\" in {PATH} line 4: expected CRL files"
            )),
            "{message}"
        );
    }

    #[test]
    fn listen_accepts_socket_addresses() {
        let config =
            config("LISTEN='[::]:8000, 0.0.0.0:8000 ,127.0.0.1:18000,127.0.0.1:0,127.0.0.1:0'\n");
        let expected: Vec<SocketAddr> = [
            "[::]:8000",
            "0.0.0.0:8000",
            "127.0.0.1:18000",
            "127.0.0.1:0",
            "127.0.0.1:0",
        ]
        .iter()
        .map(|addr| addr.parse().unwrap())
        .collect();
        assert_eq!(config.listen, expected);
        assert!(!config.listen_is_default);
    }

    #[test]
    fn listen_refuses_bad_entries() {
        let cases: &[(&str, &str)] = &[
            (
                "8000",
                "; \"8000\" is a port alone, write [::]:8000 or 0.0.0.0:8000",
            ),
            (
                "localhost:8000",
                "; \"localhost:8000\": host names are not resolved, give an IP address",
            ),
            (
                "::1:8000",
                "; \"::1:8000\": an IPv6 address needs brackets, like [::1]:8000",
            ),
            ("0.0.0.0", "; \"0.0.0.0\" is not an IP address and port"),
            (
                "0.0.0.0:99999",
                "; \"0.0.0.0:99999\" is not an IP address and port",
            ),
            ("0.0.0.0:8000,,[::]:8001", ", with no empty entry"),
            (
                "0.0.0.0:8000,0.0.0.0:8000",
                ", each once; 0.0.0.0:8000 is listed twice",
            ),
        ];
        for (value, why) in cases {
            let expected = format!(
                "LISTEN: invalid value \"{value}\" in {PATH} line 4: expected socket addresses \
                 like [::]:8000, 0.0.0.0:8000 or 127.0.0.1:18000, comma separated{why}"
            );
            assert_eq!(refusal(&format!("LISTEN='{value}'\n")), expected);
        }
    }

    #[test]
    fn backend_url_forms() {
        let cases: &[(&str, &str, u16)] = &[
            ("http://127.0.0.1:8001", "127.0.0.1", 8001),
            ("http://127.0.0.1:8001/", "127.0.0.1", 8001),
            ("http://localhost", "localhost", 80),
            ("HTTP://Orca-Server.local/", "Orca-Server.local", 80),
            ("http://[::1]:8001", "[::1]", 8001),
            ("http://[::1]/", "[::1]", 80),
            ("http://orca_backend:08080", "orca_backend", 8080),
        ];
        for &(value, host, port) in cases {
            let expected = BackendUrl {
                url: value.trim_end_matches('/').to_string(),
                host: host.to_string(),
                port,
                authority: format!("{host}:{port}"),
            };
            assert_eq!(parse_backend_url(value), Ok(expected.clone()), "{value}");
            assert_eq!(config(&format!("BACKEND_URL={value}\n")).backend, expected);
        }
    }

    #[test]
    fn backend_url_refusals_say_why() {
        let port = "the port is a number from 1 to 65535";
        let scheme = "(http://, a host and an optional port)";
        let cases: &[(&str, &[&str])] = &[
            (
                "https to the backend is not supported",
                &["https://127.0.0.1:8001", "HTTPS://x"],
            ),
            (scheme, &["127.0.0.1:8001", "ftp://x", "http:/x", "http"]),
            (
                "without a path",
                &["http://127.0.0.1:8001/api", "http://127.0.0.1:8001//"],
            ),
            (
                "without a query",
                &["http://127.0.0.1:8001?x=1", "http://127.0.0.1:8001/?x"],
            ),
            (
                "without a fragment",
                &["http://127.0.0.1:8001#top", "http://x/#"],
            ),
            (
                "without user:password@",
                &["http://user:pw@127.0.0.1:8001", "http://@x"],
            ),
            ("the host is missing", &["http://", "http://:8001"]),
            (
                port,
                &[
                    "http://x:",
                    "http://x:0",
                    "http://x:65536",
                    "http://x:+80",
                    "http://x:a",
                    "http://[::1]:",
                ],
            ),
            (
                "an IPv6 address needs brackets",
                &["http://::1:8001", "http://fe80::1"],
            ),
            ("lacks its closing ]", &["http://[::1:8001"]),
            ("[nope] is not an IPv6 address", &["http://[nope]:8001"]),
            (
                "only :port may follow [::1]",
                &["http://[::1]x", "http://[::1]8001"],
            ),
            (
                "is not a host name or IP address",
                &["http://999.1.1.1", "http://ho st", "http://サーバ"],
            ),
        ];
        for (why, values) in cases {
            for value in *values {
                let message = refusal(&format!("BACKEND_URL='{value}'\n"));
                let prefix = format!(
                    "BACKEND_URL: invalid value \"{value}\" in {PATH} line 4: expected an http:// \
                     URL like http://127.0.0.1:8001"
                );
                assert!(message.starts_with(&prefix), "{message}");
                assert!(message.contains(why), "{value}: {message}");
            }
        }
    }

    #[test]
    fn backend_pointing_at_the_proxy_itself_is_refused() {
        let message = refusal("BACKEND_URL=http://127.0.0.1:8000\n");
        let expected = "the address where WebORCA listens in plain HTTP, not this proxy's own \
                        LISTEN address [::]:8000";
        assert_invalid(&message, "BACKEND_URL", "http://127.0.0.1:8000", expected);
        assert!(refusal("BACKEND_URL=http://localhost:8000\n").starts_with("BACKEND_URL:"));
        assert!(
            refusal("LISTEN=192.168.1.100:8443\nBACKEND_URL=http://192.168.1.100:8443\n")
                .starts_with("BACKEND_URL:")
        );
        let message = refusal("LISTEN=127.0.0.1:8001\n");
        let expected = "addresses on a port other than 8001";
        assert_invalid(&message, "LISTEN", "127.0.0.1:8001", expected);
        // Another address on the same port is a different socket.
        assert_eq!(config("LISTEN=192.168.1.100:8001\n").listen.len(), 1);
        assert_eq!(config("BACKEND_URL=http://orca:8000\n").backend.port, 8000);
    }

    #[test]
    fn status_listen_must_be_loopback() {
        assert_eq!(
            config("STATUS_LISTEN=127.0.0.1:9000\n").status_listen,
            Some("127.0.0.1:9000".parse().unwrap())
        );
        assert_eq!(
            config("STATUS_LISTEN=[::1]:9000\n").status_listen,
            Some("[::1]:9000".parse().unwrap())
        );
        assert!(
            config("STATUS_LISTEN=[::ffff:127.0.0.1]:9000\n")
                .status_listen
                .is_some()
        );
        let message = refusal("STATUS_LISTEN=0.0.0.0:9000\n");
        let expected = "a loopback address like 127.0.0.1:9000 or [::1]:9000, because /status \
                        and /metrics answer without a client certificate";
        assert_invalid(&message, "STATUS_LISTEN", "0.0.0.0:9000", expected);
        assert!(
            message.ends_with("also set STATUS_LISTEN_FORCE=on"),
            "{message}"
        );
        let message = refusal("STATUS_LISTEN=localhost:9000\n");
        assert!(message.contains("host names are not resolved"), "{message}");
    }

    #[test]
    fn status_listen_force_allows_other_addresses_with_a_warning() {
        let loaded = ok("STATUS_LISTEN=0.0.0.0:9000\nSTATUS_LISTEN_FORCE=on\n");
        assert_eq!(
            loaded.config.status_listen,
            Some("0.0.0.0:9000".parse().unwrap())
        );
        assert_eq!(
            loaded.warnings,
            vec![format!(
                "STATUS_LISTEN: 0.0.0.0:9000 is not a loopback address, so /healthz, /readyz, \
                 /status and /metrics are reachable without a client certificate \
                 (STATUS_LISTEN_FORCE=on, {PATH} line 4)"
            )]
        );
        let message = refusal("STATUS_LISTEN=0.0.0.0:9000\nSTATUS_LISTEN_FORCE=maybe\n");
        assert!(
            message.starts_with("STATUS_LISTEN_FORCE: invalid value \"maybe\""),
            "{message}"
        );
        assert!(
            refusal("STATUS_LISTEN=0.0.0.0:9000\nSTATUS_LISTEN_FORCE=off\n")
                .starts_with("STATUS_LISTEN:")
        );
    }

    #[test]
    fn status_listen_force_alone_warns() {
        let loaded = ok("STATUS_LISTEN_FORCE=yes\n");
        assert_eq!(
            loaded.warnings,
            vec![format!(
                "STATUS_LISTEN_FORCE: has no effect without STATUS_LISTEN ({PATH} line 4)"
            )]
        );
        assert!(ok("STATUS_LISTEN_FORCE=off\n").warnings.is_empty());
    }

    #[test]
    fn status_listen_cannot_share_a_listen_address() {
        let message = refusal("LISTEN=127.0.0.1:18000\nSTATUS_LISTEN=127.0.0.1:18000\n");
        assert!(
            message.ends_with(
                "expected an address not also in LISTEN; 127.0.0.1:18000 already serves the proxy"
            ),
            "{message}"
        );
        assert!(
            config("LISTEN=127.0.0.1:0\nSTATUS_LISTEN=127.0.0.1:0\n")
                .status_listen
                .is_some()
        );
    }

    #[test]
    fn replacement_character_in_a_known_key_is_refused() {
        let message = refusal("LOG_FILE=/var/log/\u{fffd}.log\n");
        assert!(message.starts_with("LOG_FILE: invalid value"), "{message}");
        assert!(message.ends_with(
            "expected text in UTF-8; the file is not valid UTF-8 here, save it as UTF-8"
        ));
        let message = refusal("SERVER_PASS_FILE=\"/x\0y\"\n");
        assert_invalid(
            &message,
            "SERVER_PASS_FILE",
            "/x\\u{0}y",
            "text without NUL characters",
        );
        // Elsewhere it is harmless.
        assert!(ok("# \u{fffd}\nDBPASS=\u{fffd}\n").warnings.is_empty());
    }

    #[test]
    fn invalid_value_with_control_characters_is_escaped() {
        let message = refusal("ACCESS_LOG=\"o\u{7}n\"\n");
        assert!(message.contains("invalid value \"o\\u{7}n\""), "{message}");
    }

    // --- load -------------------------------------------------------------------------

    /// A fresh folder under the system temp dir, removed when dropped.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir().join(format!(
                "weborca-mtls-proxy-config-{name}-{}",
                std::process::id()
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn load_reads_a_file_and_resolves_against_its_folder() {
        let dir = TempDir::new("load");
        let file = dir.0.join("proxy.conf");
        std::fs::write(
            &file,
            "SERVER_CRT=s.crt\nSERVER_PEM=s.pem\nCA_CRT=ca.crt\nLISTN=x\n",
        )
        .unwrap();
        let loaded = load(&file).unwrap();
        assert_eq!(loaded.config.path, file);
        assert_eq!(loaded.config.ca_crt, Some(dir.0.join("ca.crt")));
        assert_eq!(loaded.warnings.len(), 1);
    }

    #[test]
    fn load_of_a_missing_file_says_to_check_the_path() {
        let dir = TempDir::new("missing");
        let file = dir.0.join("nope.conf");
        let error = load(&file).unwrap_err();
        assert!(matches!(error, ConfigError::Read { .. }));
        let message = error.to_string();
        assert!(
            message.starts_with(&format!("cannot read config file {}: ", file.display())),
            "{message}"
        );
        let hint = "; check the path given with -c/--config (default \
                    /etc/weborca-mtls-proxy/proxy.conf)";
        assert!(message.ends_with(hint), "{message}");
    }

    #[test]
    fn load_of_a_folder_says_to_give_the_file() {
        let dir = TempDir::new("folder");
        let message = load(&dir.0).unwrap_err().to_string();
        assert!(
            message.ends_with("give the config file itself, not its folder, with -c/--config"),
            "{message}"
        );
    }

    #[test]
    fn load_refuses_huge_files() {
        let dir = TempDir::new("huge");
        let file = dir.0.join("big.conf");
        let size = usize::try_from(MAX_CONFIG_BYTES).unwrap() + 1;
        std::fs::write(&file, vec![b'#'; size]).unwrap();
        let message = load(&file).unwrap_err().to_string();
        assert!(message.contains("larger than 1048576 bytes"), "{message}");
    }

    #[test]
    fn load_tolerates_non_utf8_comments() {
        let dir = TempDir::new("eucjp");
        let file = dir.0.join("jma-receipt.conf");
        let mut bytes = b"# \xa5\xc7\xa1\xbc\xa5\xbf\n".to_vec(); // EUC-JP comment
        bytes.extend_from_slice(GUIDE_TLS.as_bytes());
        std::fs::write(&file, &bytes).unwrap();
        assert!(load(&file).unwrap().warnings.is_empty());
        bytes.extend_from_slice(b"LOG_FILE=/var/log/\xa5\xc7.log\n");
        std::fs::write(&file, &bytes).unwrap();
        assert!(
            load(&file)
                .unwrap_err()
                .to_string()
                .starts_with("LOG_FILE: invalid value")
        );
    }

    // --- robustness ---------------------------------------------------------------------

    #[test]
    fn arbitrary_input_never_panics() {
        let pieces = [
            "A",
            "=",
            "\"",
            "'",
            "\\",
            "$",
            "{",
            "}",
            "(",
            ")",
            "`",
            "#",
            " ",
            "\t",
            "\n",
            "\r",
            ";",
            "|",
            "&",
            "~",
            "export ",
            "SERVER_CRT",
            "LISTEN",
            "BACKEND_URL",
            ":",
            "[",
            "]",
            "http://",
            "0",
            "9",
            "s",
            "ms",
            "é",
            "\u{feff}",
            "\u{fffd}",
            ",",
            "/",
            "@",
            "?",
        ];
        // A small deterministic generator, so a failure can be reproduced.
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            let mut text = String::new();
            for _ in 0..(state % 40) {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                let index = usize::try_from((state >> 33) % pieces.len() as u64).unwrap();
                text.push_str(pieces[index]);
            }
            let _ = parse(&text, path());
            let _ = parse(&format!("{GUIDE_TLS}{text}"), path());
        }
    }

    #[test]
    fn value_parsers_never_panic_on_odd_input() {
        for value in [
            "",
            " ",
            "é",
            "[",
            "]",
            ":",
            "[:",
            "http://[",
            "http://[]",
            "http://é",
            "9".repeat(400).as_str(),
            "\u{0}",
        ] {
            let _ = parse_backend_url(value);
            let _ = parse_listen(value);
            let _ = parse_duration(value);
            let _ = parse_bool(value);
            let _ = parse_cert_warn_days(value);
            let _ = parse_max_connections(value);
            let _ = suggest(value);
        }
    }
}
