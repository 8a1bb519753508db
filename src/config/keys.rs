//! The table of keys: every key this proxy reads, its value form and default,
//! and whether a new value takes effect on reload or needs a restart.
//!
//! The did-you-mean list ([`KNOWN_KEYS`](super::KNOWN_KEYS)), the keys a
//! reload reports as needing a restart ([`restart_needed`]) and the files the
//! reloader watches ([`watched_files`]) are all read from [`KEYS`]. Adding a
//! key is one row here, its field in [`Config`], its parse in `build.rs`, and
//! the part that uses it.

use std::path::PathBuf;

use super::Config;

/// When a changed value of a key is taken on by the running proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applies {
    /// On reload (SIGHUP, or a watched file changed).
    Reload,
    /// Only after a restart: the listener, the backend client or the worker
    /// threads were built with it.
    Restart,
}

/// One key of the config file.
pub struct Key {
    /// The key as written in the file.
    pub name: &'static str,
    /// The value form, as the error messages and conf/proxy.conf describe it.
    pub form: &'static str,
    /// The default, written as a value of the key would be; empty: unset.
    pub default: &'static str,
    /// When a changed value takes effect.
    pub applies: Applies,
    /// Whether the value differs between two configs.
    changed: fn(&Config, &Config) -> bool,
    /// The files the key names, which a reload must notice changing.
    files: fn(&Config) -> Vec<PathBuf>,
}

/// A key whose value names no file to watch.
fn no_files(_: &Config) -> Vec<PathBuf> {
    Vec::new()
}

/// A row of [`KEYS`]: `name, form, default, applies, field` plus, for keys
/// naming certificate files, `files`.
macro_rules! key {
    ($name:literal, $form:literal, $default:literal, $applies:ident, $field:ident) => {
        Key {
            name: $name,
            form: $form,
            default: $default,
            applies: Applies::$applies,
            changed: |old, new| old.$field != new.$field,
            files: no_files,
        }
    };
    ($name:literal, $form:literal, $default:literal, $applies:ident, $field:ident, files) => {
        Key {
            name: $name,
            form: $form,
            default: $default,
            applies: Applies::$applies,
            changed: |old, new| old.$field != new.$field,
            files: |config| config.$field.iter().cloned().collect(),
        }
    };
}

/// Every key, in the order conf/proxy.conf lists them (also the order of the
/// restart-needed warnings and of the watched files).
pub const KEYS: &[Key] = &[
    key!("SERVER_CRT", "path", "", Reload, server_crt, files),
    key!("SERVER_PEM", "path", "", Reload, server_pem, files),
    key!("CA_CRT", "path", "", Reload, ca_crt, files),
    key!("SERVER_P12", "path", "", Reload, server_p12, files),
    key!(
        "SERVER_PASS_FILE",
        "path",
        "",
        Reload,
        server_pass_file,
        files
    ),
    key!(
        "CA_CRL",
        "paths, comma-separated",
        "",
        Reload,
        ca_crl,
        files
    ),
    key!(
        "LISTEN",
        "socket addresses, comma-separated",
        "[::]:8000",
        Restart,
        listen
    ),
    key!(
        "BACKEND_URL",
        "http://host:port",
        "http://127.0.0.1:8001",
        Restart,
        backend
    ),
    key!(
        "STATUS_LISTEN",
        "socket address",
        "",
        Restart,
        status_listen
    ),
    key!(
        "STATUS_LISTEN_FORCE",
        "on/off",
        "off",
        Reload,
        status_listen
    ),
    key!("LOG_FILE", "path", "", Reload, log_file),
    key!("ACCESS_LOG", "on/off", "on", Restart, access_log),
    key!(
        "CERT_WARN_DAYS",
        "days, 0-3650",
        "30",
        Reload,
        cert_warn_days
    ),
    key!(
        "CLIENT_CERT_ERRORS",
        "page/handshake",
        "page",
        Reload,
        client_cert_errors
    ),
    key!("CRL_STALE", "warn/refuse", "warn", Reload, crl_stale),
    key!("ALLOW_CN", "names, comma-separated", "", Reload, allow_cn),
    key!("ACCESS_POLICY", "path", "", Reload, access_policy, files),
    key!(
        "FORWARD_CLIENT_CERT",
        "on/off",
        "on",
        Restart,
        forward_client_cert
    ),
    key!(
        "HANDSHAKE_TIMEOUT",
        "duration",
        "10s",
        Restart,
        handshake_timeout
    ),
    key!("HEADER_TIMEOUT", "duration", "30s", Restart, header_timeout),
    key!("IDLE_TIMEOUT", "duration", "90s", Restart, idle_timeout),
    key!(
        "BACKEND_CONNECT_TIMEOUT",
        "duration",
        "5s",
        Restart,
        backend_connect_timeout
    ),
    key!(
        "BACKEND_TIMEOUT",
        "duration",
        "300s",
        Restart,
        backend_timeout
    ),
    key!("SHUTDOWN_GRACE", "duration", "30s", Restart, shutdown_grace),
    key!(
        "MAX_CONNECTIONS",
        "count, 1-1000000",
        "2048",
        Restart,
        max_connections
    ),
    key!(
        "CERT_WATCH_INTERVAL",
        "duration",
        "30s",
        Reload,
        cert_watch_interval
    ),
    key!("WORKERS", "count or auto", "auto", Restart, workers),
];

/// The names of [`KEYS`], in order.
pub const fn names() -> [&'static str; KEYS.len()] {
    let mut names = [""; KEYS.len()];
    let mut i = 0;
    while i < KEYS.len() {
        names[i] = KEYS[i].name;
        i += 1;
    }
    names
}

/// Keys whose new value the running proxy cannot take on, in [`KEYS`] order.
pub fn restart_needed(old: &Config, new: &Config) -> Vec<&'static str> {
    KEYS.iter()
        .filter(|key| key.applies == Applies::Restart && (key.changed)(old, new))
        .map(|key| key.name)
        .collect()
}

/// The files a TLS state is made of: every file a key of the config names.
pub fn watched_files(config: &Config) -> Vec<PathBuf> {
    KEYS.iter().flat_map(|key| (key.files)(config)).collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const TLS: &str = "SERVER_CRT=s.crt\nSERVER_PEM=s.pem\nCA_CRT=ca.crt\n";

    fn parse(extra: &str) -> Config {
        match super::super::parse(&format!("{TLS}{extra}"), Path::new("/etc/p/proxy.conf")) {
            Ok(loaded) => loaded.config,
            Err(e) => panic!("{extra}: {e}"),
        }
    }

    /// Each default in the table is what the key means when it is unset.
    #[test]
    fn every_written_default_is_the_default() {
        let unset = parse("");
        for key in KEYS.iter().filter(|k| !k.default.is_empty()) {
            let set = parse(&format!("{}={}\n", key.name, key.default));
            let mut expected = unset.clone();
            if key.name == "LISTEN" {
                expected.listen_is_default = false;
            }
            assert_eq!(set, expected, "{}={}", key.name, key.default);
        }
    }

    /// A key's `changed` looks at its own field: setting it to another
    /// value changes it and no other key's.
    #[test]
    fn changed_sees_only_its_own_field() {
        let base = parse("");
        let other = [
            ("LISTEN", "127.0.0.1:18000"),
            ("BACKEND_URL", "http://127.0.0.1:18001"),
            ("STATUS_LISTEN", "127.0.0.1:9000"),
            ("ACCESS_LOG", "off"),
            ("FORWARD_CLIENT_CERT", "off"),
            ("HANDSHAKE_TIMEOUT", "11s"),
            ("HEADER_TIMEOUT", "31s"),
            ("IDLE_TIMEOUT", "91s"),
            ("BACKEND_CONNECT_TIMEOUT", "6s"),
            ("BACKEND_TIMEOUT", "301s"),
            ("SHUTDOWN_GRACE", "31s"),
            ("MAX_CONNECTIONS", "100"),
            ("WORKERS", "2"),
            ("CERT_WARN_DAYS", "10"),
            ("CERT_WATCH_INTERVAL", "5s"),
            ("ALLOW_CN", "a"),
            ("CRL_STALE", "refuse"),
        ];
        for (name, value) in other {
            let changed = parse(&format!("{name}={value}\n"));
            let restart = restart_needed(&base, &changed);
            let applies = KEYS.iter().find(|k| k.name == name).unwrap().applies;
            match applies {
                Applies::Restart => assert_eq!(restart, vec![name]),
                Applies::Reload => assert!(restart.is_empty(), "{name}: {restart:?}"),
            }
        }
    }

    /// The keys a reload reports as needing a restart, in the order logged.
    #[test]
    fn restart_keys_in_order() {
        let restart: Vec<&str> = KEYS
            .iter()
            .filter(|k| k.applies == Applies::Restart)
            .map(|k| k.name)
            .collect();
        assert_eq!(
            restart,
            [
                "LISTEN",
                "BACKEND_URL",
                "STATUS_LISTEN",
                "ACCESS_LOG",
                "FORWARD_CLIENT_CERT",
                "HANDSHAKE_TIMEOUT",
                "HEADER_TIMEOUT",
                "IDLE_TIMEOUT",
                "BACKEND_CONNECT_TIMEOUT",
                "BACKEND_TIMEOUT",
                "SHUTDOWN_GRACE",
                "MAX_CONNECTIONS",
                "WORKERS",
            ]
        );
    }

    /// Watched files come from the path keys, in KEYS order (ACCESS_POLICY after the CRLs).
    #[test]
    fn watched_files_are_the_path_keys() {
        let config = parse("SERVER_PASS_FILE=p\nCA_CRL=a.crl,b.crl\nACCESS_POLICY=rules\n");
        let names: Vec<String> = watched_files(&config)
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            ["s.crt", "s.pem", "ca.crt", "p", "a.crl", "b.crl", "rules"]
        );
    }
}
