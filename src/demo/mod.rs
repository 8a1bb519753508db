//! The `demo` command: the first thing a newcomer runs, with nothing to set up.
//!
//! It makes a throwaway CA, a server certificate and a client certificate in
//! orca-catool's file names (`ca.crt`, `000002__JP_orca_localhost.crt/.pem`,
//! `000003__JP_orca_user1.crt/.pem/.p12/.pass`), writes a loopback-only
//! `proxy.conf` naming them, starts a small stand-in for WebORCA, and starts the
//! real proxy in front of it through the same start-up sequence as a normal run
//! ([`app::start`], [`app::serve`]). Then it prints the curl commands and the
//! Chrome steps of WebORCA's guide, and serves until Ctrl-C / SIGTERM.
//!
//! Running it again reuses the folder's certificates, so a browser that imported
//! them keeps working. Because that browser then trusts the demo CA, whose key
//! sits in the folder, the CA is name-constrained to localhost, 127.0.0.1 and ::1:
//! it cannot vouch for any other site. And because the folder is written to, a
//! folder holding anything the demo did not make (say the clinic's real
//! `/opt/jma/weborca/conf`) is refused rather than overwritten.
//!
//! The stand-in answers `GET /` with a page (Japanese first, English below; text
//! for non-HTML clients) showing the identity the proxy forwarded, `/ws` with a
//! WebSocket echo that confirms push-exchanger's `subscribe`, and any other path
//! with a JSON echo of the request, for trying ORCA API calls.

mod conf;
mod folder;
mod guide;
mod pki;
mod stand_in;

use conf::*;
use folder::*;
use guide::*;
use pki::*;
use stand_in::*;

use std::convert::Infallible;
use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{ErrorKind, Write};
use std::net::{Ipv6Addr, SocketAddr, TcpListener as StdListener};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Days, Utc};
use futures_util::{SinkExt, StreamExt};
use http::header::{
    ACCEPT, CONNECTION, CONTENT_TYPE, HeaderValue, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, UPGRADE,
};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use p12_keystore::{
    Certificate, EncryptionAlgorithm, KeyStore, KeyStoreEntry, MacAlgorithm, Pkcs12ImportPolicy,
    PrivateKey, PrivateKeyChain,
};
use rcgen::{
    BasicConstraints, CertificateParams, CidrSubnet, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, GeneralSubtree, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    NameConstraints, PublicKeyData, RsaKeySize, SerialNumber,
};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_util::task::AbortOnDropHandle;

use crate::app::{self, Failure};
use crate::log::LogHandle;
use crate::pages::wants_html;
use crate::x509::CertInfo;

/// The CA certificate, orca-catool's name for it.
const CA_CRT: &str = "ca.crt";
/// The CA key: orca-catool keeps it in its own store; the demo keeps it beside
/// ca.crt so a second run can issue a missing certificate from the same CA.
const CA_KEY: &str = "ca.key";
/// orca-catool's `<serial>__JP_orca_<CN>` name for the server certificate.
const SERVER_STEM: &str = "000002__JP_orca_localhost";
/// orca-catool's name for the client certificate of user1.
const USER_STEM: &str = "000003__JP_orca_user1";
/// The config file the demo writes on every start.
const CONF: &str = "proxy.conf";
/// Marks a folder as the demo's own: only such a folder (or an empty one) is written to.
const MARKER: &str = "README-demo.txt";

/// The start of the CA's CN; a timestamp follows, so a browser's certificate
/// list tells an old demo CA from a new one and never sees the same issuer
/// name with the same serial twice (Firefox refuses that).
const CA_CN: &str = "weborca-mtls-proxy demo CA";
/// The server certificate's names: what a browser on this machine may type.
const SERVER_SANS: [&str; 3] = ["localhost", "127.0.0.1", "::1"];
/// The client certificate's CN, as in WebORCA's guide.
const USER_CN: &str = "user1";
/// Serials as in the file names (orca-catool numbers its certificates from 1, the CA).
const CA_SERIAL: u64 = 1;
const SERVER_SERIAL: u64 = 2;
const USER_SERIAL: u64 = 3;
/// CA and client certificates live ten years, like orca-catool's.
const LONG_DAYS: u64 = 3650;
/// The server certificate stays within 398 days, which some browsers demand even of private CAs.
const SERVER_DAYS: u64 = 397;
/// A certificate this close to its end is replaced rather than reused, so the
/// demo never shows the proxy's expiry warning.
const RENEW_DAYS: i64 = crate::config::DEFAULT_CERT_WARN_DAYS as i64;

/// The .pass length and alphabet: orca-catool's look (`6RYv24bqgpyu6tn8`).
const PASS_LEN: usize = 16;
const PASS_ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// PBKDF2 and MAC iterations of the .p12, OpenSSL 3's and Java's default.
const P12_ITERATIONS: u32 = 10_000;

/// Pause after a failed accept on the stand-in (e.g. out of file descriptors).
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);
/// The port suggested when the chosen one is taken.
const OTHER_PORT: u16 = 18000;

// ---------------------------------------------------------------------------------------
// The folder and its files.
// ---------------------------------------------------------------------------------------

/// The demo's files, all absolute paths, and the client certificate's passphrase.
#[derive(Debug, Clone)]
pub struct DemoFiles {
    /// the folder holding everything
    pub dir: PathBuf,
    /// the CA certificate (CA_CRT)
    pub ca_crt: PathBuf,
    /// the CA key, mode 600
    pub ca_key: PathBuf,
    /// the server certificate (SERVER_CRT)
    pub server_crt: PathBuf,
    /// the server key (SERVER_PEM), mode 600
    pub server_pem: PathBuf,
    /// user1's certificate, PEM
    pub user_crt: PathBuf,
    /// user1's key, PEM, mode 600
    pub user_pem: PathBuf,
    /// user1's certificate, key and the CA certificate as PKCS#12, mode 600
    pub user_p12: PathBuf,
    /// the .p12's passphrase, mode 600
    pub user_pass: PathBuf,
    /// the config the demo's proxy runs with
    pub conf: PathBuf,
    /// the .p12's passphrase, as in `user_pass`
    pub passphrase: String,
    /// true when every certificate was already there and was reused
    pub reused: bool,
}

impl DemoFiles {
    /// The file names in `dir` (absolute); the passphrase is filled in later.
    fn at(dir: &Path) -> DemoFiles {
        DemoFiles {
            dir: dir.to_path_buf(),
            ca_crt: dir.join(CA_CRT),
            ca_key: dir.join(CA_KEY),
            server_crt: dir.join(format!("{SERVER_STEM}.crt")),
            server_pem: dir.join(format!("{SERVER_STEM}.pem")),
            user_crt: dir.join(format!("{USER_STEM}.crt")),
            user_pem: dir.join(format!("{USER_STEM}.pem")),
            user_p12: dir.join(format!("{USER_STEM}.p12")),
            user_pass: dir.join(format!("{USER_STEM}.pass")),
            conf: dir.join(CONF),
            passphrase: String::new(),
            reused: false,
        }
    }
}

/// Makes the CA and certificates in `dir`, or reuses those already there
/// (each one that is missing, broken or within 30 days of expiry is made anew;
/// a new CA means new certificates too). Blocking: RSA keys take a moment.
pub fn prepare(dir: &Path) -> Result<DemoFiles, Failure> {
    let dir = claim_folder(dir)?;
    let mut files = DemoFiles::at(&dir);
    let now = Utc::now();
    let reused_ca = reuse_ca(&files, now).map_err(|why| {
        tracing::info!(
            "demo: making a throwaway CA and certificates in {} ({why})",
            dir.display()
        );
    });
    let ca_new = reused_ca.is_err();
    let ca = match reused_ca {
        Ok(ca) => ca,
        Err(()) => make_ca(&files, now)?,
    };
    let server = reuse_leaf(&files.server_crt, &files.server_pem, &ca, now);
    let server_new = ca_new || !reusable(server, &files.server_crt);
    if server_new {
        make_server(&files, &ca, now)?;
    }
    let user = if ca_new {
        None
    } else {
        reuse_user(&files, &ca, now)
            .map_err(|why| log_remake(&files.user_p12, &why))
            .ok()
    };
    let user_new = user.is_none();
    files.passphrase = match user {
        Some(passphrase) => passphrase,
        None => make_user(&files, &ca, now)?,
    };
    files.reused = !(ca_new || server_new || user_new);
    if files.reused {
        tracing::info!("demo: reusing the certificates in {}", dir.display());
    }
    Ok(files)
}

/// True when the check passed; otherwise logs why the file is made anew.
fn reusable<T>(checked: Result<T, String>, path: &Path) -> bool {
    checked.map_err(|why| log_remake(path, &why)).is_ok()
}

fn log_remake(path: &Path, why: &str) {
    tracing::info!("demo: making {} anew ({why})", path.display());
}

// ---------------------------------------------------------------------------------------
// The command.
// ---------------------------------------------------------------------------------------

/// `weborca-mtls-proxy demo`: certificates in `dir` (made or reused), the
/// stand-in, and the proxy on 127.0.0.1 and ::1 at `port` (0: a free port on
/// 127.0.0.1, logged and printed), until SIGTERM/SIGINT.
pub async fn run(dir: PathBuf, port: u16, log: Arc<LogHandle>) -> Result<(), Failure> {
    check_port(port)?;
    let files = tokio::task::spawn_blocking(move || prepare(&dir))
        .await
        .map_err(|e| Failure::Runtime(format!("demo: the certificate task failed: {e}")))??;
    let stand_in = StandIn::start().await?;
    write_config(&files, port, stand_in.addr)?;
    let config = app::load_config(&files.conf)?;
    let started = app::start(config, &log).map_err(|f| with_port_hint(f, port))?;
    let port = started.local_addrs().first().map_or(port, SocketAddr::port);
    println!("{}", instructions(&files, port, stand_in.addr));
    app::serve(started, files.conf.clone(), log).await;
    // Only now: the proxy has finished the requests it was forwarding to it.
    drop(stand_in);
    Ok(())
}
