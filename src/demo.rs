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
// Certificates: reuse what is there, or make new ones.
// ---------------------------------------------------------------------------------------

/// The CA, ready to issue.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    der: CertificateDer<'static>,
    info: CertInfo,
}

fn rsa_key() -> Result<KeyPair, Failure> {
    // RSA-2048 like orca-catool, so the demo exercises the key type clinics have.
    KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_2048)
        .map_err(|e| Failure::Runtime(format!("demo: cannot generate an RSA key: {e}")))
}

fn dn(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, "JP");
    dn.push(DnType::OrganizationName, "orca");
    dn.push(DnType::CommonName, cn);
    dn
}

/// Valid from yesterday (a client clock a little behind still accepts it) for `days`.
fn set_validity(params: &mut CertificateParams, now: DateTime<Utc>, days: u64) {
    use chrono::Datelike;
    // chrono's months and days are always in range, so date_time_ymd cannot panic.
    let ymd = |d: chrono::NaiveDate| rcgen::date_time_ymd(d.year(), d.month() as u8, d.day() as u8);
    let today = now.date_naive();
    params.not_before = ymd(today.checked_sub_days(Days::new(1)).unwrap_or(today));
    params.not_after = ymd(today.checked_add_days(Days::new(days)).unwrap_or(today));
}

/// Permits names this machine alone answers to: a browser that imported the
/// demo CA cannot be fooled by it about any other site, whoever gets ca.key.
fn local_only() -> NameConstraints {
    NameConstraints {
        permitted_subtrees: vec![
            GeneralSubtree::DnsName("localhost".into()),
            GeneralSubtree::IpAddress(CidrSubnet::V4([127, 0, 0, 1], [255; 4])),
            GeneralSubtree::IpAddress(CidrSubnet::V6(Ipv6Addr::LOCALHOST.octets(), [255; 16])),
        ],
        excluded_subtrees: Vec::new(),
    }
}

fn rcgen_failure(what: &str, e: rcgen::Error) -> Failure {
    Failure::Runtime(format!("demo: cannot make {what}: {e}"))
}

fn make_ca(files: &DemoFiles, now: DateTime<Utc>) -> Result<Ca, Failure> {
    let key = rsa_key()?;
    let mut params = CertificateParams::default();
    let cn = format!("{CA_CN} {}", now.format("%Y%m%d-%H%M%S"));
    params.distinguished_name = dn(&cn);
    // Path length 0: the demo CA issues certificates, never other CAs.
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.name_constraints = Some(local_only());
    params.serial_number = Some(SerialNumber::from(CA_SERIAL));
    params.key_identifier_method = KeyIdMethod::Sha256;
    set_validity(&mut params, now, LONG_DAYS);
    let cert = params
        .self_signed(&key)
        .map_err(|e| rcgen_failure("the CA certificate", e))?;
    write_file(&files.ca_key, key.serialize_pem().as_bytes(), true)?;
    write_file(&files.ca_crt, cert.pem().as_bytes(), false)?;
    let der = cert.der().clone();
    let info = CertInfo::from_der(&der).map_err(|e| {
        Failure::Runtime(format!("demo: the new CA certificate is unreadable: {e}"))
    })?;
    Ok(Ca {
        issuer: Issuer::new(params, key),
        der,
        info,
    })
}

/// Parameters shared by the server and client certificates.
fn leaf_params(
    cn: &str,
    sans: &[&str],
    serial: u64,
    now: DateTime<Utc>,
    days: u64,
) -> Result<CertificateParams, Failure> {
    let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
    let mut params =
        CertificateParams::new(sans).map_err(|e| rcgen_failure("the certificate names", e))?;
    params.distinguished_name = dn(cn);
    params.serial_number = Some(SerialNumber::from(serial));
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.key_identifier_method = KeyIdMethod::Sha256;
    params.use_authority_key_identifier_extension = true;
    set_validity(&mut params, now, days);
    Ok(params)
}

fn make_server(files: &DemoFiles, ca: &Ca, now: DateTime<Utc>) -> Result<(), Failure> {
    let key = rsa_key()?;
    let mut params = leaf_params("localhost", &SERVER_SANS, SERVER_SERIAL, now, SERVER_DAYS)?;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params
        .signed_by(&key, &ca.issuer)
        .map_err(|e| rcgen_failure("the server certificate", e))?;
    write_file(&files.server_pem, key.serialize_pem().as_bytes(), true)?;
    write_file(&files.server_crt, cert.pem().as_bytes(), false)
}

/// Makes user1's certificate, key, .p12 and .pass; returns the passphrase.
fn make_user(files: &DemoFiles, ca: &Ca, now: DateTime<Utc>) -> Result<String, Failure> {
    let key = rsa_key()?;
    let mut params = leaf_params(USER_CN, &[], USER_SERIAL, now, LONG_DAYS)?;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params
        .signed_by(&key, &ca.issuer)
        .map_err(|e| rcgen_failure("the client certificate", e))?;
    let passphrase = passphrase()?;
    let p12 = make_p12(cert.der(), &key.serialize_der(), &ca.der, &passphrase).map_err(|e| {
        Failure::Runtime(format!(
            "demo: cannot make {}: {e}",
            files.user_p12.display()
        ))
    })?;
    write_file(&files.user_pem, key.serialize_pem().as_bytes(), true)?;
    write_file(&files.user_crt, cert.pem().as_bytes(), false)?;
    write_file(&files.user_p12, &p12, true)?;
    write_file(&files.user_pass, format!("{passphrase}\n").as_bytes(), true)?;
    Ok(passphrase)
}

/// The client's PKCS#12 with the CA certificate in it, encrypted with PBES2
/// (PBKDF2-SHA256, AES-256-CBC) under a SHA-256 MAC: what OpenSSL 3 (curl),
/// NSS (Chrome, Firefox) and Windows all read, unlike legacy RC2 files.
fn make_p12(
    cert: &[u8],
    key_pkcs8: &[u8],
    ca: &[u8],
    passphrase: &str,
) -> Result<Vec<u8>, p12_keystore::error::Error> {
    let key_id = Sha256::digest(cert).to_vec();
    let chain = PrivateKeyChain::new(
        key_id,
        PrivateKey::from_der(key_pkcs8)?,
        [Certificate::from_der(cert)?, Certificate::from_der(ca)?],
    );
    let mut store = KeyStore::new();
    store.add_entry(USER_CN, KeyStoreEntry::PrivateKeyChain(chain));
    store
        .writer(passphrase)
        .encryption_algorithm(EncryptionAlgorithm::PbeWithHmacSha256AndAes256)
        .encryption_iterations(P12_ITERATIONS)
        .mac_algorithm(MacAlgorithm::HmacSha256)
        .mac_iterations(P12_ITERATIONS)
        .write()
}

/// 16 random letters and digits from the system's secure random source.
fn passphrase() -> Result<String, Failure> {
    let random = rustls::crypto::aws_lc_rs::default_provider().secure_random;
    let mut out = String::with_capacity(PASS_LEN);
    let mut buf = [0u8; 32];
    let n = PASS_ALPHABET.len();
    while out.len() < PASS_LEN {
        random
            .fill(&mut buf)
            .map_err(|_| Failure::Runtime("demo: no secure random numbers available".into()))?;
        let missing = PASS_LEN - out.len();
        // Bytes from 4 × 62 = 248 up are skipped so every character is equally likely.
        out.extend(
            buf.iter()
                .map(|b| usize::from(*b))
                .filter(|b| *b < n * 4)
                .take(missing)
                .map(|b| char::from(PASS_ALPHABET[b % n])),
        );
    }
    Ok(out)
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// Reads one PEM certificate; the error says why it cannot be reused.
fn read_cert(path: &Path) -> Result<(CertificateDer<'static>, CertInfo), String> {
    let name = file_name(path);
    if !path.exists() {
        return Err(format!("no {name} yet"));
    }
    let der = CertificateDer::from_pem_file(path).map_err(|e| format!("{name}: {e}"))?;
    let info = CertInfo::from_der(&der).map_err(|e| format!("{name}: {e}"))?;
    Ok((der, info))
}

/// Reads a PEM key and checks it belongs to the certificate `der`.
fn read_key(path: &Path, der: &[u8]) -> Result<KeyPair, String> {
    let name = file_name(path);
    let pem = fs::read_to_string(path).map_err(|e| format!("{name}: {e}"))?;
    let key = KeyPair::from_pem(&pem).map_err(|e| format!("{name}: {e}"))?;
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| format!("{name}: {e}"))?;
    if cert.public_key().raw != key.subject_public_key_info().as_slice() {
        return Err(format!("{name} does not belong to its certificate"));
    }
    Ok(key)
}

/// A certificate close to its end is replaced, not reused.
fn fresh(info: &CertInfo, path: &Path, now: DateTime<Utc>) -> Result<(), String> {
    let days = info.days_left(now);
    if days <= RENEW_DAYS {
        return Err(format!("{} expires in {days} days", file_name(path)));
    }
    Ok(())
}

fn reuse_ca(files: &DemoFiles, now: DateTime<Utc>) -> Result<Ca, String> {
    let (der, info) = read_cert(&files.ca_crt)?;
    if !info.subject_rfc4514.contains(CA_CN) {
        return Err(format!("{CA_CRT} is not a demo CA"));
    }
    fresh(&info, &files.ca_crt, now)?;
    let key = read_key(&files.ca_key, &der)?;
    let issuer = Issuer::from_ca_cert_der(&der, key).map_err(|e| format!("{CA_CRT}: {e}"))?;
    Ok(Ca { issuer, der, info })
}

/// Checks a certificate and key issued by `ca`; returns the certificate.
fn reuse_leaf(
    crt: &Path,
    pem: &Path,
    ca: &Ca,
    now: DateTime<Utc>,
) -> Result<CertificateDer<'static>, String> {
    let (der, info) = read_cert(crt)?;
    if info.issuer_rfc4514 != ca.info.subject_rfc4514 {
        return Err(format!("{} is from another CA", file_name(crt)));
    }
    fresh(&info, crt, now)?;
    read_key(pem, &der)?;
    Ok(der)
}

/// Checks user1's certificate, key, .p12 and .pass; returns the passphrase.
fn reuse_user(files: &DemoFiles, ca: &Ca, now: DateTime<Utc>) -> Result<String, String> {
    let der = reuse_leaf(&files.user_crt, &files.user_pem, ca, now)?;
    let p12_name = file_name(&files.user_p12);
    let passphrase = fs::read_to_string(&files.user_pass)
        .map_err(|e| format!("{}: {e}", file_name(&files.user_pass)))?
        .trim()
        .to_string();
    let p12 = fs::read(&files.user_p12).map_err(|e| format!("{p12_name}: {e}"))?;
    let store = KeyStore::from_pkcs12(&p12, &passphrase, Pkcs12ImportPolicy::Strict)
        .map_err(|e| format!("{p12_name}: {e}"))?;
    let holds_cert = store
        .private_key_chain()
        .and_then(|(_, chain)| chain.certs().first())
        .is_some_and(|c| c.as_der() == der.as_ref());
    if !holds_cert {
        return Err(format!(
            "{p12_name} does not hold {}",
            file_name(&files.user_crt)
        ));
    }
    Ok(passphrase)
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
// The stand-in for WebORCA.
// ---------------------------------------------------------------------------------------

type Body = Full<Bytes>;

/// The running stand-in; stops, with its connections, when dropped.
struct StandIn {
    /// where it listens: 127.0.0.1 and a free port
    addr: SocketAddr,
    /// the accept loop, which owns the connections
    _task: AbortOnDropHandle<()>,
}

impl StandIn {
    async fn start() -> Result<StandIn, Failure> {
        let bound = async {
            let listener = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).await?;
            let addr = listener.local_addr()?;
            Ok::<_, std::io::Error>((listener, addr))
        };
        let (listener, addr) = bound.await.map_err(|e| {
            Failure::Runtime(format!(
                "demo: cannot start the stand-in for WebORCA on 127.0.0.1: {e}"
            ))
        })?;
        tracing::info!("demo: stand-in for WebORCA on http://{addr}");
        Ok(StandIn {
            addr,
            _task: AbortOnDropHandle::new(tokio::spawn(accept_loop(listener))),
        })
    }
}

async fn accept_loop(listener: TcpListener) {
    // Connections live in the set, so they end with the loop when the demo stops.
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => {
                    conns.spawn(serve_stand_in(tcp));
                }
                Err(e) => {
                    tracing::warn!("demo: the stand-in cannot accept: {e}");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

async fn serve_stand_in(tcp: TcpStream) {
    let served = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(tcp), service_fn(answer))
        .with_upgrades()
        .await;
    if let Err(e) = served {
        tracing::debug!("demo: stand-in connection: {e}");
    }
}

async fn answer(req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    if req.uri().path() == "/ws" {
        return Ok(websocket(req));
    }
    let seen = seen(&req);
    if req.uri().path() == "/" && matches!(*req.method(), Method::GET | Method::HEAD) {
        let html = wants_html(req.headers().get(ACCEPT));
        return Ok(page(&seen, html));
    }
    Ok(echo(req, &seen).await)
}

fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Body> {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// A header the stand-in shows, with its label in Japanese and in English.
struct Shown {
    header: &'static str,
    ja: &'static str,
    en: &'static str,
}

const fn shown(header: &'static str, ja: &'static str, en: &'static str) -> Shown {
    Shown { header, ja, en }
}

/// What the proxy tells WebORCA about the client (SPEC "What the backend sees").
const SHOWN: [Shown; 8] = [
    shown(
        "x-ssl-client-s-dn",
        "証明書の主体 (Subject)",
        "certificate subject",
    ),
    shown("x-ssl-client-i-dn", "発行者 (Issuer)", "issuer"),
    shown("x-ssl-client-serial", "シリアル番号", "serial number"),
    shown("x-ssl-client-not-after", "有効期限", "valid until"),
    shown("x-ssl-client-verify", "検証結果", "verification"),
    shown(
        "x-ssl-client-fingerprint",
        "フィンガープリント (SHA-256)",
        "fingerprint (SHA-256)",
    ),
    shown(
        "x-forwarded-for",
        "クライアントのアドレス",
        "client address",
    ),
    shown("host", "Host ヘッダ", "Host header"),
];

/// Each shown header's value in the request, if present.
fn seen(req: &Request<Incoming>) -> Vec<(&'static Shown, Option<String>)> {
    SHOWN
        .iter()
        .map(|s| {
            let value = req
                .headers()
                .get(s.header)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
            (s, value)
        })
        .collect()
}

fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    crate::pages::escape_html(text, &mut out);
    out
}

const PAGE_TITLE_JA: &str = "これはデモ用の WebORCA の代わりです";
const PAGE_TITLE_EN: &str = "This is the demo stand-in for WebORCA";
const PAGE_LEAD_JA: &str = "この画面が見えていれば、クライアント証明書による認証 (SSLクライアント認証) \
     は成功しています。プロキシは次の情報を WebORCA に渡しました。";
const PAGE_LEAD_EN: &str = "If you can read this, client-certificate authentication worked. \
     The proxy passed this to WebORCA:";
const PAGE_NEXT_JA: &str = "本番では、proxy.conf の BACKEND_URL を WebORCA (HTTP_PORT) に向け、\
     証明書を orca-catool で発行したものに替えます。";
const PAGE_NEXT_EN: &str = "In production, BACKEND_URL in proxy.conf points at WebORCA (its HTTP_PORT) \
     and the certificates are the ones orca-catool issued.";

/// `GET /`: the identity the proxy forwarded, Japanese first, English below.
fn page(seen: &[(&Shown, Option<String>)], html: bool) -> Response<Body> {
    let row = |label: &str, value: &Option<String>, none: &str| {
        let value = value.as_deref().unwrap_or(none);
        if html {
            format!(
                "<tr><th>{}</th><td><code>{}</code></td></tr>\n",
                escape_html(label),
                escape_html(value)
            )
        } else {
            format!("  {label}: {value}\n")
        }
    };
    let ja: String = seen.iter().map(|(s, v)| row(s.ja, v, "(なし)")).collect();
    let en: String = seen.iter().map(|(s, v)| row(s.en, v, "(none)")).collect();
    if !html {
        let text = format!(
            "{PAGE_TITLE_JA}\n{PAGE_LEAD_JA}\n{ja}{PAGE_NEXT_JA}\n\n\
             {PAGE_TITLE_EN}\n{PAGE_LEAD_EN}\n{en}{PAGE_NEXT_EN}\n"
        );
        return respond(StatusCode::OK, "text/plain; charset=utf-8", text);
    }
    let body = format!(
        "<!DOCTYPE html>\n<html lang=\"ja\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>WebORCA の代わり (デモ) / WebORCA stand-in (demo)</title>\n\
         <style>body{{font-family:sans-serif;max-width:52em;margin:2em auto;padding:0 1em;line-height:1.6}}\
         th{{text-align:left;padding-right:1em;font-weight:normal;color:#555}}\
         code{{word-break:break-all}}hr{{margin:2em 0}}</style>\n</head>\n<body>\n\
         <h1>{PAGE_TITLE_JA}</h1>\n<p>{PAGE_LEAD_JA}</p>\n<table>\n{ja}</table>\n<p>{PAGE_NEXT_JA}</p>\n\
         <hr>\n<div lang=\"en\">\n<h1>{PAGE_TITLE_EN}</h1>\n<p>{PAGE_LEAD_EN}</p>\n<table>\n{en}</table>\n\
         <p>{PAGE_NEXT_EN}</p>\n</div>\n</body>\n</html>\n"
    );
    respond(StatusCode::OK, "text/html; charset=utf-8", body)
}

/// Any other path: the request as JSON, to see what an ORCA API call would reach WebORCA with.
async fn echo(req: Request<Incoming>, seen: &[(&Shown, Option<String>)]) -> Response<Body> {
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(str::to_string);
    // Counted as it streams, never held whole.
    let mut body = req.into_body();
    let mut body_bytes = 0u64;
    while let Some(Ok(frame)) = body.frame().await {
        if let Some(data) = frame.data_ref() {
            body_bytes += data.len() as u64;
        }
    }
    let headers: serde_json::Map<String, Value> = seen
        .iter()
        .map(|(s, v)| {
            (
                s.header.to_string(),
                v.clone().map_or(Value::Null, Value::String),
            )
        })
        .collect();
    let echo = json!({
        "stand_in": "weborca-mtls-proxy demo",
        "method": method,
        "path": path,
        "query": query,
        "body_bytes": body_bytes,
        "headers": headers,
    });
    respond(StatusCode::OK, "application/json", format!("{echo}\n"))
}

/// `/ws`: accepts the upgrade and echoes messages, like WebORCA's push endpoint would answer.
fn websocket(mut req: Request<Incoming>) -> Response<Body> {
    let upgrade = req
        .headers()
        .get(UPGRADE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"));
    let accept = req
        .headers()
        .get(SEC_WEBSOCKET_KEY)
        .filter(|_| upgrade)
        .and_then(|key| HeaderValue::from_str(&derive_accept_key(key.as_bytes())).ok());
    let Some(accept) = accept else {
        return respond(
            StatusCode::BAD_REQUEST,
            "text/plain; charset=utf-8",
            "/ws は WebSocket 専用です / /ws expects a WebSocket upgrade\n",
        );
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    // The tunnel outlives this request; the proxy closes it on shutdown.
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => echo_ws(TokioIo::new(upgraded)).await,
            Err(e) => tracing::debug!("demo: stand-in WebSocket upgrade failed: {e}"),
        }
    });
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = resp.headers_mut();
    headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(SEC_WEBSOCKET_ACCEPT, accept);
    resp
}

async fn echo_ws(io: TokioIo<hyper::upgrade::Upgraded>) {
    let mut ws = WebSocketStream::from_raw_socket(io, Role::Server, None).await;
    // Pings are answered by tungstenite itself.
    while let Some(Ok(msg)) = ws.next().await {
        let reply = match msg {
            Message::Text(text) => Message::text(ws_reply(text.as_str())),
            Message::Binary(data) => Message::Binary(data),
            Message::Close(_) => break,
            _ => continue,
        };
        if ws.send(reply).await.is_err() {
            break;
        }
    }
}

/// push-exchanger starts with `{"command":"subscribe","req.id":…}` and waits
/// for WebORCA's `subscribed` with the same req.id; anything else is echoed.
fn ws_reply(text: &str) -> String {
    match serde_json::from_str::<Value>(text) {
        Ok(v) if v.get("command").and_then(Value::as_str) == Some("subscribe") => json!({
            "command": "subscribed",
            "req.id": v.get("req.id").cloned().unwrap_or(Value::Null),
            "sub.id": "demo",
        })
        .to_string(),
        _ => text.to_string(),
    }
}

// ---------------------------------------------------------------------------------------
// What to try, printed once the proxy listens.
// ---------------------------------------------------------------------------------------

/// A path or argument as a shell word: quoted only when it has to be.
fn sh(word: &str) -> String {
    let plain = word
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/._-+,:@%=".contains(&b));
    if plain && !word.is_empty() {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

fn shp(path: &Path) -> String {
    sh(&path.display().to_string())
}

/// The three curl commands: PEM, .p12, and none (the 403 page).
fn curl_steps(files: &DemoFiles, url: &str) -> String {
    let ca = shp(&files.ca_crt);
    let p12 = sh(&format!(
        "{}:{}",
        files.user_p12.display(),
        files.passphrase
    ));
    format!(
        "1. curl — PEM の証明書と鍵 / PEM certificate and key:\n   \
         curl --cacert {ca} --cert {crt} --key {key} {url}\n\n\
         2. curl — .p12 とパスフレーズ / the .p12 and its passphrase:\n   \
         curl --cacert {ca} --cert {p12} --cert-type P12 {url}\n\n\
         3. curl — 証明書なし: 403 のページ / no certificate: the 403 page:\n   \
         curl --cacert {ca} {url}\n\n",
        crt = shp(&files.user_crt),
        key = shp(&files.user_pem),
    )
}

/// The Chrome steps of WebORCA's guide, in Japanese and in English.
fn chrome_steps(files: &DemoFiles, url: &str) -> String {
    let (p12, ca, pass) = (
        files.user_p12.display(),
        files.ca_crt.display(),
        &files.passphrase,
    );
    format!(
        "4. Google Chrome:\n   \
         右上のメニュー →「設定」→「プライバシーとセキュリティ」→「セキュリティ」→「デバイス証明書の管理」\n   \
         →「インポート」で {p12} を選び、パスフレーズ {pass} を入力します。\n   \
         同じ手順で {ca} もインポートします (パスワードは求められません。\n   \
         Windows では「信頼されたルート証明機関」、Linux では「認証局」に入れます)。\n   \
         {url} を開き、証明書の選択画面で user1 を選んで「OK」を押します。\n   \
         試し終えたら、インポートした user1 とデモ用 CA の証明書を削除してください。\n\n   \
         Menu at the top right → Settings → Privacy and security → Security → Manage device certificates\n   \
         → Import: choose {p12} and enter the passphrase {pass}.\n   \
         Import {ca} the same way (no password is asked; on Windows into\n   \
         \u{201c}Trusted Root Certification Authorities\u{201d}, on Linux under \u{201c}Authorities\u{201d}).\n   \
         Open {url}, choose user1 when asked for a certificate, and press OK.\n   \
         When done, remove the imported user1 and demo CA certificates.\n\n"
    )
}

/// Everything printed to stdout once the proxy listens on `port`.
fn instructions(files: &DemoFiles, port: u16, stand_in: SocketAddr) -> String {
    let url = format!("https://localhost:{port}/");
    let rule = "=".repeat(76);
    format!(
        "\n{rule}\n weborca-mtls-proxy デモ / demo   {url}\n{rule}\n\
         フォルダ / folder: {dir}\n  \
         {CA_CRT}, {SERVER_STEM}.crt/.pem, {USER_STEM}.crt/.pem/.p12/.pass, {CONF}\n  \
         (orca-catool と同じファイル名 / orca-catool's file names)\n\
         WebORCA の代わり / stand-in for WebORCA: http://{stand_in}\n\
         user1 の .p12 のパスフレーズ / passphrase of user1's .p12: {pass}\n\n\
         {curl}{chrome}\
         5. WebSocket (push-exchanger): wss://localhost:{port}/ws — エコー / echo\n\n\
         Ctrl-C で終了します / Press Ctrl-C to stop.\n{rule}\n",
        dir = files.dir.display(),
        pass = files.passphrase,
        curl = curl_steps(files, &url),
        chrome = chrome_steps(files, &url),
    )
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
