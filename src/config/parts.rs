//! The config by part: what each part of the program is given, so a part
//! sees only its own keys. [`Config`](super::Config) is the file as read
//! (and what the reloader compares); these are cut from it where the parts
//! are built: [`Listener`] for the server's sockets and connections,
//! [`Backend`], [`Limits`] and [`Logging`] for the proxy, [`TlsFiles`] and
//! [`Verification`] for the TLS loader, [`Status`] for the status listener.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::{BackendUrl, ClientCertErrors, Config, CrlStale, MAX_WORKERS};

/// The listening sockets and how long a client connection may take (the server).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// `LISTEN`
    pub listen: Vec<SocketAddr>,
    /// `LISTEN` was not set: only then may `[::]` fall back to `0.0.0.0`
    pub listen_is_default: bool,
    /// `MAX_CONNECTIONS`
    pub max_connections: usize,
    /// `WORKERS` (`None`: auto)
    pub workers: Option<usize>,
    /// `HANDSHAKE_TIMEOUT`
    pub handshake_timeout: Duration,
    /// `HEADER_TIMEOUT`
    pub header_timeout: Duration,
    /// `IDLE_TIMEOUT`
    pub idle_timeout: Duration,
    /// `SHUTDOWN_GRACE`
    pub shutdown_grace: Duration,
}

impl Listener {
    /// How many worker threads serve connections: WORKERS, or one per CPU core.
    pub fn worker_count(&self) -> usize {
        self.workers.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .min(MAX_WORKERS)
        })
    }
}

/// What the server is bound with: its own listener part, and the parts it
/// hands to the proxy (backend, logging; its limits are the listener's) and
/// to the status listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerParts {
    /// the listening sockets and connection timeouts
    pub listener: Listener,
    /// the backend, for the proxy
    pub backend: Backend,
    /// the logging, for the proxy
    pub logging: Logging,
    /// the status listener
    pub status: Status,
}

/// The backend WebORCA and how requests reach it (the proxy's forwarder).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    /// `BACKEND_URL`
    pub url: BackendUrl,
    /// `BACKEND_CONNECT_TIMEOUT`
    pub connect_timeout: Duration,
    /// `BACKEND_TIMEOUT`
    pub timeout: Duration,
    /// `FORWARD_CLIENT_CERT`
    pub forward_client_cert: bool,
}

/// What bounds the proxy's use of the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `MAX_CONNECTIONS` (client connections, and backend requests in flight)
    pub max_connections: usize,
    /// worker threads (`WORKERS`), over which idle backend connections are shared out
    pub workers: usize,
}

/// What is logged, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logging {
    /// `LOG_FILE`
    pub log_file: Option<PathBuf>,
    /// `ACCESS_LOG`
    pub access_log: bool,
}

/// The files the TLS state is loaded from (the TLS loader).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// the config file, named in the loader's messages
    pub config_path: PathBuf,
    /// `SERVER_CRT`
    pub server_crt: Option<PathBuf>,
    /// `SERVER_PEM`
    pub server_pem: Option<PathBuf>,
    /// `SERVER_P12`
    pub server_p12: Option<PathBuf>,
    /// `SERVER_PASS_FILE`
    pub server_pass_file: Option<PathBuf>,
    /// `CA_CRT`
    pub ca_crt: Option<PathBuf>,
    /// `CA_CRL`
    pub ca_crl: Vec<PathBuf>,
}

/// How client certificates are judged, beyond the CA (the verifier).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    /// `CLIENT_CERT_ERRORS`
    pub client_cert_errors: ClientCertErrors,
    /// `ALLOW_CN`
    pub allow_cn: Option<Vec<String>>,
    /// `CRL_STALE`
    pub crl_stale: CrlStale,
}

/// The status listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    /// `STATUS_LISTEN`
    pub listen: Option<SocketAddr>,
    /// `CERT_WARN_DAYS`, for the expiry figures it reports
    pub cert_warn_days: u32,
}

impl Config {
    /// The listener part.
    pub fn listener(&self) -> Listener {
        Listener {
            listen: self.listen.clone(),
            listen_is_default: self.listen_is_default,
            max_connections: self.max_connections,
            workers: self.workers,
            handshake_timeout: self.handshake_timeout,
            header_timeout: self.header_timeout,
            idle_timeout: self.idle_timeout,
            shutdown_grace: self.shutdown_grace,
        }
    }

    /// The parts the server is bound with.
    pub fn server_parts(&self) -> ServerParts {
        ServerParts {
            listener: self.listener(),
            backend: self.backend_part(),
            logging: self.logging(),
            status: self.status(),
        }
    }

    /// The backend part.
    pub fn backend_part(&self) -> Backend {
        Backend {
            url: self.backend.clone(),
            connect_timeout: self.backend_connect_timeout,
            timeout: self.backend_timeout,
            forward_client_cert: self.forward_client_cert,
        }
    }

    /// The limits part.
    pub fn limits(&self) -> Limits {
        Limits {
            max_connections: self.max_connections,
            workers: self.worker_count(),
        }
    }

    /// The logging part.
    pub fn logging(&self) -> Logging {
        Logging {
            log_file: self.log_file.clone(),
            access_log: self.access_log,
        }
    }

    /// The TLS files part.
    pub fn tls_files(&self) -> TlsFiles {
        TlsFiles {
            config_path: self.path.clone(),
            server_crt: self.server_crt.clone(),
            server_pem: self.server_pem.clone(),
            server_p12: self.server_p12.clone(),
            server_pass_file: self.server_pass_file.clone(),
            ca_crt: self.ca_crt.clone(),
            ca_crl: self.ca_crl.clone(),
        }
    }

    /// The client verification part.
    pub fn verification(&self) -> Verification {
        Verification {
            client_cert_errors: self.client_cert_errors,
            allow_cn: self.allow_cn.clone(),
            crl_stale: self.crl_stale,
        }
    }

    /// The status part.
    pub fn status(&self) -> Status {
        Status {
            listen: self.status_listen,
            cert_warn_days: self.cert_warn_days,
        }
    }
}
