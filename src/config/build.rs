//! Stage 2 of the config reader: raw entries → the typed, validated [`Config`](super::Config).

#[allow(unused_imports)]
use super::*;

/// The last value of each known key, with its line.
pub(super) struct Setting {
    value: String,
    line: usize,
}

/// The known keys found in one file, and how to resolve and report them.
pub(super) struct Known<'a> {
    path: &'a Path,
    settings: HashMap<&'static str, Setting>,
}

impl<'a> Known<'a> {
    /// Keeps the last value of each known key, warning about repeats and likely typos.
    pub(super) fn collect(
        entries: &[RawEntry],
        path: &'a Path,
        warnings: &mut Vec<String>,
    ) -> Self {
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
    pub(super) fn get(&self, key: &str) -> Option<&Setting> {
        self.settings
            .get(key)
            .filter(|setting| !setting.value.trim().is_empty())
    }

    pub(super) fn invalid(
        &self,
        key: &'static str,
        setting: &Setting,
        expected: String,
    ) -> ConfigError {
        ConfigError::Invalid {
            key,
            path: self.path.to_path_buf(),
            line: setting.line,
            value: setting.value.clone(),
            expected,
        }
    }

    /// Parses `key` with `parse` (given the trimmed value), or `None` when unset.
    pub(super) fn optional<T>(
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

    pub(super) fn flag(&self, key: &'static str, default: bool) -> Result<bool, ConfigError> {
        Ok(self.optional(key, parse_bool)?.unwrap_or(default))
    }

    pub(super) fn duration(
        &self,
        key: &'static str,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        Ok(self.optional(key, parse_duration)?.unwrap_or(default))
    }

    /// A path key, resolved against the config file's folder when relative.
    pub(super) fn path(&self, key: &str) -> Option<PathBuf> {
        self.get(key).map(|setting| self.resolve(&setting.value))
    }

    pub(super) fn resolve(&self, value: &str) -> PathBuf {
        let dir = self.path.parent().unwrap_or(Path::new(""));
        dir.join(value)
    }

    /// A character that stood for invalid UTF-8 in the file, or a NUL, would make a path
    /// that cannot exist; say so here rather than report a missing file later.
    pub(super) fn check_text(&self) -> Result<(), ConfigError> {
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
pub(super) fn build(known: &Known<'_>, warnings: &mut Vec<String>) -> Result<Config, ConfigError> {
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
        crl_stale: known
            .optional("CRL_STALE", parse_crl_stale)?
            .unwrap_or(CrlStale::Warn),
        access_policy: known.path("ACCESS_POLICY"),
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
pub(super) fn default_listen() -> SocketAddr {
    SocketAddr::from((Ipv6Addr::UNSPECIFIED, DEFAULT_LISTEN_PORT))
}

/// [`DEFAULT_BACKEND_URL`], already parsed (a test checks that they agree).
pub(super) fn default_backend() -> BackendUrl {
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
pub(super) struct TlsFiles {
    server_crt: Option<PathBuf>,
    server_pem: Option<PathBuf>,
    ca_crt: Option<PathBuf>,
    server_p12: Option<PathBuf>,
    server_pass_file: Option<PathBuf>,
    ca_crl: Vec<PathBuf>,
}

pub(super) fn tls_files(known: &Known<'_>) -> Result<TlsFiles, ConfigError> {
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
pub(super) fn check_tls_keys(known: &Known<'_>) -> Result<(), ConfigError> {
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
pub(super) fn status_listen(
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
pub(super) fn check_backend_is_not_self(
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
