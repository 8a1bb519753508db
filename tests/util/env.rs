//! A whole setup: a PKI on disk like orca-catool's, a config file naming it, a
//! stand-in backend, and the real proxy started in-process on 127.0.0.1:0.

use std::net::SocketAddr;
use std::path::PathBuf;

use tempfile::TempDir;
use weborca_mtls_proxy::load::Log;
use weborca_mtls_proxy::server::{Handle, Server};
use weborca_mtls_proxy::tls::Sessions;

use super::backend::Backend;
use super::client::Client;
use super::pki::{Ca, Leaf, write};

/// What a test may change before the proxy starts.
pub struct Setup {
    pub dir: TempDir,
    pub ca: Ca,
    pub server: Leaf,
    pub user1: Leaf,
    /// extra config lines, appended after the defaults (last one wins)
    pub conf: Vec<String>,
}

/// A running proxy in front of a stand-in backend.
pub struct Env {
    pub dir: TempDir,
    pub ca: Ca,
    pub server: Leaf,
    pub user1: Leaf,
    pub backend: Backend,
    pub addr: SocketAddr,
    /// STATUS_LISTEN's address, when the setup asked for one
    pub status: Option<SocketAddr>,
    pub handle: Handle,
    pub conf_path: PathBuf,
    pub sessions: Sessions,
    pub task: tokio::task::JoinHandle<bool>,
}

impl Setup {
    pub fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new("test-ca");
        let server = ca.server(&["localhost", "127.0.0.1"], 3650);
        let user1 = ca.client("user1");
        Setup {
            dir,
            ca,
            server,
            user1,
            conf: Vec::new(),
        }
    }

    /// Writes the files and the config; returns the config path.
    pub fn write_config(&self, backend_url: &str) -> PathBuf {
        let d = self.dir.path();
        write(d, "000002__JP_orca_localhost.crt", &self.server.pem);
        write(d, "000002__JP_orca_localhost.pem", &self.server.key_pem);
        write(d, "ca.crt", &self.ca.pem);
        let mut text = format!(
            "# test config\nSERVER_CRT={d}/000002__JP_orca_localhost.crt\nSERVER_PEM={d}/000002__JP_orca_localhost.pem\nCA_CRT={d}/ca.crt\nLISTEN=127.0.0.1:0\nBACKEND_URL={backend_url}\n",
            d = d.display()
        );
        for line in &self.conf {
            text.push_str(line);
            text.push('\n');
        }
        write(d, "proxy.conf", &text)
    }

    pub async fn start(self) -> Env {
        let backend = Backend::start().await;
        self.start_with_backend(backend).await
    }

    pub async fn start_with_backend(self, backend: Backend) -> Env {
        let conf_path = self.write_config(&backend.url());
        let config = weborca_mtls_proxy::config::load(&conf_path)
            .expect("config")
            .config;
        let sessions = Sessions::new().unwrap();
        // The server's own load (start, reload and check share it): ACCESS_POLICY too.
        let loaded = weborca_mtls_proxy::load::load_from(config, &sessions, &mut Log)
            .map_err(|f| f.message().to_string())
            .expect("load");
        let (config, tls) = (loaded.config, loaded.tls);
        let server = Server::bind(config.server_parts(), tls).expect("bind");
        let addr = server.local_addrs()[0];
        let status = server.status_addr();
        let handle = server.handle();
        let task = tokio::spawn(server.run());
        Env {
            dir: self.dir,
            ca: self.ca,
            server: self.server,
            user1: self.user1,
            backend,
            addr,
            status,
            handle,
            conf_path,
            sessions,
            task,
        }
    }
}

impl Env {
    pub async fn start() -> Env {
        Setup::new().start().await
    }

    /// An HTTP/1.1 client showing `cert`.
    pub fn client(&self, cert: Option<&Leaf>) -> Client {
        Client::h1(&self.ca.pem, cert)
    }

    /// Asserts that user1 is still served (200 on `/`).
    pub async fn assert_serves_user1(&self) {
        let ok = self
            .client(Some(&self.user1))
            .get(self.addr, "/")
            .await
            .unwrap();
        assert_eq!(ok.status, 200);
    }

    /// Reloads config and certificates from disk, as SIGHUP does.
    pub fn reload(&self) -> Result<(), String> {
        reload(&self.conf_path, &self.sessions, &self.handle)
    }

    /// Path of a file in the setup's folder.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// Reloads the proxy behind `handle` from `conf_path`, as SIGHUP does.
pub fn reload(
    conf_path: &std::path::Path,
    sessions: &weborca_mtls_proxy::tls::Sessions,
    handle: &weborca_mtls_proxy::server::Handle,
) -> Result<(), String> {
    let config = weborca_mtls_proxy::config::load(conf_path)
        .map_err(|e| e.to_string())?
        .config;
    let loaded = weborca_mtls_proxy::load::load_from(config, sessions, &mut Log)
        .map_err(|f| f.message().to_string())?;
    handle.replace_tls(loaded.tls);
    Ok(())
}
