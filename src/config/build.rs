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

    /// Parses the setting of `key` with its row's `parse`, or `None` when unset.
    pub(super) fn optional<T>(
        &self,
        key: &'static str,
        parse: impl Fn(&Value<'_>) -> Result<T, String>,
    ) -> Result<Option<T>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(setting) => parse(&self.value_of(&setting.value))
                .map(Some)
                .map_err(|expected| self.invalid(key, setting, expected)),
        }
    }

    /// Parses the setting of `key` with its row's `parse`, or its `default`
    /// when unset (a test checks every default parses).
    pub(super) fn value<T>(
        &self,
        key: &'static str,
        default: &'static str,
        parse: impl Fn(&Value<'_>) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        match self.optional(key, &parse)? {
            Some(value) => Ok(value),
            None => parse(&self.value_of(default)).map_err(|expected| {
                let setting = Setting {
                    value: default.to_string(),
                    line: 0,
                };
                self.invalid(key, &setting, expected)
            }),
        }
    }

    fn value_of<'v>(&'v self, raw: &'v str) -> Value<'v> {
        Value {
            raw,
            dir: self.path.parent().unwrap_or(Path::new("")),
        }
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

/// Validates the known keys into a [`Config`]: each row of [`KEYS`] parses
/// its key into its field, in table order, then the checks across keys run.
pub(super) fn build(known: &Known<'_>, warnings: &mut Vec<String>) -> Result<Config, ConfigError> {
    known.check_text()?;
    // Which of the certificate keys are set decides before any value is read.
    check_tls_keys(known)?;
    let mut config = Config {
        path: known.path.to_path_buf(),
        ..Config::default()
    };
    for key in KEYS {
        (key.set)(known, &mut config)?;
    }
    config.listen_is_default = known.get("LISTEN").is_none();
    check_backend_is_not_self(known, &config)?;
    check_status_listen(known, &config, warnings)?;
    Ok(config)
}

/// [`DEFAULT_BACKEND_URL`], already parsed (a test checks that they agree).
#[cfg(test)]
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
    let dir = known.path.parent().unwrap_or(Path::new(""));
    let file = |key: &'static str| (key, known.get(key).map(|s| dir.join(&s.value)));
    let files = if p12.is_some() {
        vec![file("CA_CRT"), file("SERVER_P12")]
    } else {
        vec![file("CA_CRT"), file("SERVER_CRT"), file("SERVER_PEM")]
    };
    let missing = |key: &'static str, fix: &str| {
        Err(ConfigError::Missing {
            key,
            path: known.path.to_path_buf(),
            fix: fix.to_string(),
            files: files.clone(),
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
pub(super) fn check_status_listen(
    known: &Known<'_>,
    config: &Config,
    warnings: &mut Vec<String>,
) -> Result<(), ConfigError> {
    let force = config.status_listen_force;
    let (Some(addr), Some(setting)) = (config.status_listen, known.get("STATUS_LISTEN")) else {
        if let Some(forced) = known.get("STATUS_LISTEN_FORCE").filter(|_| force) {
            warnings.push(format!(
                "STATUS_LISTEN_FORCE: has no effect without STATUS_LISTEN ({} line {})",
                known.path.display(),
                forced.line
            ));
        }
        return Ok(());
    };
    let invalid = |expected: String| known.invalid("STATUS_LISTEN", setting, expected);
    if addr.port() != 0 && config.listen.contains(&addr) {
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
    Ok(())
}

/// Pointing BACKEND_URL at the proxy's own port is a likely slip when moving WebORCA off
/// port 8000, and would make the proxy talk to itself.
pub(super) fn check_backend_is_not_self(
    known: &Known<'_>,
    config: &Config,
) -> Result<(), ConfigError> {
    let (listen, backend) = (&config.listen, &config.backend);
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
