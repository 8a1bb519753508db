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

mod guide;
mod pki;
mod stand_in;

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

/// Creates `dir` (mode 700: it holds keys) or checks that it is the demo's own
/// or empty, and marks it. Returns the absolute path.
fn claim_folder(dir: &Path) -> Result<PathBuf, Failure> {
    let fix = "choose a new or empty folder with --dir, e.g. \
               `weborca-mtls-proxy demo --dir ./weborca-demo`";
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| {
            Failure::Runtime(format!(
                "demo: cannot create the folder {}: {e}; {fix}",
                dir.display()
            ))
        })?;
    let dir = fs::canonicalize(dir).map_err(|e| {
        Failure::Runtime(format!("demo: cannot open {}: {e}; {fix}", dir.display()))
    })?;
    let marker = dir.join(MARKER);
    if marker.exists() {
        return Ok(dir);
    }
    let foreign: Vec<String> = fs::read_dir(&dir)
        .map_err(|e| Failure::Runtime(format!("demo: cannot list {}: {e}; {fix}", dir.display())))?
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    if !foreign.is_empty() {
        let more = foreign.len().saturating_sub(FOREIGN_SHOWN);
        let mut shown = foreign.into_iter().take(FOREIGN_SHOWN).collect::<Vec<_>>();
        if more > 0 {
            shown.push(format!("and {more} more"));
        }
        return Err(Failure::Runtime(format!(
            "demo: {} already holds files the demo did not make ({}); the demo writes certificates \
             there and would overwrite them, so {fix}",
            dir.display(),
            shown.join(", ")
        )));
    }
    write_file(&marker, MARKER_TEXT.as_bytes(), false)?;
    Ok(dir)
}

/// How many names of a foreign folder's files the refusal lists.
const FOREIGN_SHOWN: usize = 5;

/// What the marker file tells someone who finds the folder.
const MARKER_TEXT: &str = "\
このフォルダは `weborca-mtls-proxy demo` が作ったデモ用です。認証局 (ca.crt, ca.key) と証明書は
試すためだけの使い捨てで、本番には使えません。本番では orca-catool で発行した証明書を使ってください。
不要になったらフォルダごと削除し、ブラウザにインポートした証明書 (user1 とデモ用 CA) も削除してください。

This folder was made by `weborca-mtls-proxy demo`. Its CA (ca.crt, ca.key) and certificates
are throwaway ones for trying the proxy out, not for production: use orca-catool's there.
When done, delete the folder, and remove the certificates imported into the browser
(user1 and the demo CA).
";

/// Writes a whole file through a temporary name, so a half-written file never
/// replaces a good one; `secret` files are created mode 600 from the start.
fn write_file(path: &Path, bytes: &[u8], secret: bool) -> Result<(), Failure> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mode = if secret { 0o600 } else { 0o644 };
    write_then_rename(&tmp, path, bytes, mode).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        Failure::Runtime(format!(
            "demo: cannot write {}: {e}; make its folder writable or choose another with --dir",
            path.display()
        ))
    })
}

fn write_then_rename(tmp: &Path, path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    // A leftover from an interrupted run would have whatever mode it was made with.
    let _ = fs::remove_file(tmp);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(tmp, path)
}

// ---------------------------------------------------------------------------------------
// proxy.conf and the port.
// ---------------------------------------------------------------------------------------

/// The LISTEN addresses: loopback only, since a demo must not open the clinic's LAN.
fn listen_addrs(port: u16) -> Vec<String> {
    let mut addrs = vec![format!("127.0.0.1:{port}")];
    // Port 0 would give ::1 another ephemeral port than 127.0.0.1, and a
    // machine with IPv6 off has no ::1 to bind.
    if port != 0 && StdListener::bind((Ipv6Addr::LOCALHOST, 0)).is_ok() {
        addrs.push(format!("[::1]:{port}"));
    }
    addrs
}

/// Writes proxy.conf in jma-receipt.conf style; rewritten on every start, as the
/// stand-in's port changes.
fn write_config(files: &DemoFiles, port: u16, stand_in: SocketAddr) -> Result<(), Failure> {
    let text = format!(
        "# Written by `weborca-mtls-proxy demo` at each start; edits are overwritten.\n\
         # The keys of WebORCA's /opt/jma/weborca/conf/jma-receipt.conf, naming this folder's\n\
         # files (a relative name is read from the folder this file is in).\n\
         SERVER_CRT={SERVER_STEM}.crt\n\
         SERVER_PEM={SERVER_STEM}.pem\n\
         CA_CRT={CA_CRT}\n\
         # Loopback only: the demo is not reachable from the clinic's LAN.\n\
         LISTEN={}\n\
         # The demo's stand-in for WebORCA; in production, where WebORCA listens in plain HTTP.\n\
         BACKEND_URL=http://{stand_in}\n",
        listen_addrs(port).join(",")
    );
    write_file(&files.conf, text.as_bytes(), false)
}

/// The port to suggest instead of `port`.
fn other_port(port: u16) -> u16 {
    if port == OTHER_PORT {
        OTHER_PORT + 1
    } else {
        OTHER_PORT
    }
}

/// Fails early, before any key is made, when the port is taken.
fn check_port(port: u16) -> Result<(), Failure> {
    if port == 0 {
        return Ok(());
    }
    let Err(e) = StdListener::bind((std::net::Ipv4Addr::LOCALHOST, port)) else {
        return Ok(());
    };
    let why = match e.kind() {
        ErrorKind::AddrInUse => " (WebORCA itself, or a demo already running?)",
        ErrorKind::PermissionDenied => " (ports below 1024 need root)",
        _ => "",
    };
    Err(Failure::Runtime(format!(
        "demo: cannot listen on 127.0.0.1:{port}: {e}{why}; start the demo on another port: \
         weborca-mtls-proxy demo --port {}",
        other_port(port)
    )))
}

/// The start-up's runtime failures are mostly a port taken on ::1 (127.0.0.1 was
/// checked): they get the `--port` advice.
fn with_port_hint(failure: Failure, port: u16) -> Failure {
    match failure {
        Failure::Runtime(m) => Failure::Runtime(format!(
            "{m}; if the port is taken, start the demo on another: weborca-mtls-proxy demo --port {}",
            other_port(port)
        )),
        config => config,
    }
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
