//! The soak's certificates, RSA-2048 throughout like orca-catool's: one CA
//! whose key is kept (the CRL is re-signed during the run), two valid server
//! certificate sets to alternate on reload, a broken set, and one client of
//! each kind the proxy must tell apart:
//!
//! - `user1`, let in;
//! - `revoked-user`, in the CRL;
//! - `expired-user`, issued by the CA but expired yesterday;
//! - a client of a foreign CA (pki::make's, a CA the proxy does not trust);
//! - and, in `client`, no certificate at all.
//!
//! The proxy reads the *live* files; [`Certs::install`] puts a set in their
//! place by writing a temporary file and renaming it over the live one, as
//! `cp` + `mv` would, so the proxy never reads a half-written file.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rcgen::{
    CertificateParams, CertificateRevocationListParams, ExtendedKeyUsagePurpose, Issuer,
    KeyIdMethod, KeyPair, KeyUsagePurpose, RevokedCertParams, RsaKeySize, SerialNumber,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use time::{Duration, OffsetDateTime};

use crate::pki::{self, Alg};

/// Revoked serials in the CRL: a clinic's few years of lost laptops, many times over.
const CRL_SIZE: u64 = 1_000;
/// The CRL's serials start here; the revoked client's is in the middle.
const FIRST_REVOKED: u64 = 1_000_000;
const REVOKED_SERIAL: u64 = FIRST_REVOKED + CRL_SIZE / 2;
/// The client the reloads revoke and reinstate while it holds connections open.
const REVOKEE_SERIAL: u64 = 7;

/// A client's certificate chain and key, as the load generator presents them.
pub struct Client {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

/// A server certificate and its key, PEM, and the certificate as clients see it.
pub struct ServerSet {
    crt: String,
    key: String,
    pub der: CertificateDer<'static>,
}

/// Which server set to put in the live files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Set {
    A,
    B,
    /// set A's certificate with set B's key: a reload must refuse it
    Broken,
}

/// The files the proxy's config names.
pub struct Live {
    pub crt: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
    pub crl: PathBuf,
}

pub struct Certs {
    issuer: Issuer<'static, KeyPair>,
    /// CRL number of the last CRL signed
    crl_number: u64,
    pub ca_der: CertificateDer<'static>,
    pub live: Live,
    pub set_a: ServerSet,
    pub set_b: ServerSet,
    pub user: Client,
    pub revoked: Client,
    /// revoked by some reloads while it holds a keep-alive connection and a
    /// WebSocket, reinstated by later ones
    pub revokee: Client,
    /// whether the live CRL revokes the revokee
    revokee_revoked: bool,
    pub expired: Client,
    pub foreign: Client,
}

fn rsa_key() -> KeyPair {
    KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_2048).expect("RSA key")
}

/// A leaf valid from `from` to `to` days from now.
fn leaf(cn: &str, sans: &[&str], serial: u64, days: (i64, i64), server: bool) -> CertificateParams {
    let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
    let mut params = CertificateParams::new(sans).expect("params");
    params.distinguished_name = pki::dn(cn);
    params.serial_number = Some(SerialNumber::from(serial));
    params.not_before = OffsetDateTime::now_utc() + Duration::days(days.0);
    params.not_after = OffsetDateTime::now_utc() + Duration::days(days.1);
    params.key_identifier_method = KeyIdMethod::Sha256;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![if server {
        ExtendedKeyUsagePurpose::ServerAuth
    } else {
        ExtendedKeyUsagePurpose::ClientAuth
    }];
    params
}

fn client(issuer: &Issuer<'_, KeyPair>, cn: &str, serial: u64, days: (i64, i64)) -> Client {
    let key = rsa_key();
    let cert = leaf(cn, &[], serial, days, false)
        .signed_by(&key, issuer)
        .expect("client cert");
    Client {
        chain: vec![cert.der().clone()],
        key: PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).expect("client key"),
    }
}

fn server(issuer: &Issuer<'_, KeyPair>, serial: u64) -> ServerSet {
    let key = rsa_key();
    let cert = leaf(
        "127.0.0.1",
        &["127.0.0.1", "localhost"],
        serial,
        (-1, 3650),
        true,
    )
    .signed_by(&key, issuer)
    .expect("server cert");
    ServerSet {
        crt: cert.pem(),
        key: key.serialize_pem(),
        der: cert.der().clone(),
    }
}

impl Certs {
    /// Makes everything in `dir` and installs set A, the CA and the CRL in `dir/live`.
    pub fn make(dir: &Path) -> std::io::Result<Certs> {
        let live_dir = dir.join("live");
        std::fs::create_dir_all(&live_dir)?;
        let ca_key = rsa_key();
        let params = pki::ca_params("weborca-mtls-proxy soak CA");
        let ca = params.self_signed(&ca_key).expect("CA");
        let issuer = Issuer::new(params, ca_key);

        // A CA the proxy does not trust, with its own user1: pki::make's.
        let foreign = pki::make(&dir.join("foreign"), Alg::Rsa2048, 1);

        let mut certs = Certs {
            crl_number: 0,
            ca_der: ca.der().clone(),
            live: Live {
                crt: live_dir.join("server.crt"),
                key: live_dir.join("server.pem"),
                ca: live_dir.join("ca.crt"),
                crl: live_dir.join("ca.crl"),
            },
            set_a: server(&issuer, 2),
            user: client(&issuer, "user1", 3, (-1, 3650)),
            set_b: server(&issuer, 4),
            expired: client(&issuer, "expired-user", 5, (-400, -1)),
            revoked: client(&issuer, "revoked-user", REVOKED_SERIAL, (-1, 3650)),
            revokee: client(&issuer, "revoked-while-open", REVOKEE_SERIAL, (-1, 3650)),
            revokee_revoked: false,
            foreign: Client {
                chain: foreign.client_chain,
                key: foreign.client_key,
            },
            issuer,
        };
        replace(&certs.live.ca, &ca.pem(), false)?;
        certs.install(Set::A)?;
        certs.resign_crl()?;
        Ok(certs)
    }

    /// The certificate a set serves (the broken one is never served).
    pub fn der(&self, set: Set) -> &CertificateDer<'static> {
        match set {
            Set::A | Set::Broken => &self.set_a.der,
            Set::B => &self.set_b.der,
        }
    }

    /// Puts `set` in the live certificate and key files.
    pub fn install(&self, set: Set) -> std::io::Result<()> {
        let (crt, key) = match set {
            Set::A => (&self.set_a.crt, &self.set_a.key),
            Set::B => (&self.set_b.crt, &self.set_b.key),
            Set::Broken => (&self.set_a.crt, &self.set_b.key),
        };
        replace(&self.live.crt, crt, false)?;
        replace(&self.live.key, key, true)
    }

    /// Whether the next [`Certs::resign_crl`] revokes the revokee.
    pub fn set_revokee(&mut self, revoked: bool) {
        self.revokee_revoked = revoked;
    }

    /// Signs a new CRL (next CRL number, same revoked serials, and the
    /// revokee's while it is revoked) into the live file.
    pub fn resign_crl(&mut self) -> std::io::Result<()> {
        self.crl_number += 1;
        let now = OffsetDateTime::now_utc();
        let params = CertificateRevocationListParams {
            this_update: now - Duration::minutes(1),
            next_update: now + Duration::days(30),
            crl_number: SerialNumber::from(self.crl_number),
            issuing_distribution_point: None,
            revoked_certs: (FIRST_REVOKED..FIRST_REVOKED + CRL_SIZE)
                .chain(self.revokee_revoked.then_some(REVOKEE_SERIAL))
                .map(|serial| RevokedCertParams {
                    serial_number: SerialNumber::from(serial),
                    revocation_time: now - Duration::days(1),
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        let pem = params
            .signed_by(&self.issuer)
            .and_then(|crl| crl.pem())
            .map_err(std::io::Error::other)?;
        replace(&self.live.crl, &pem, false)
    }

    /// How many serials the CRL revokes, for the report.
    pub fn crl_size(&self) -> u64 {
        CRL_SIZE
    }
}

/// Writes `path` by renaming a temporary file over it (a key readable by the owner only).
fn replace(path: &Path, content: &str, secret: bool) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(if secret { 0o600 } else { 0o644 })
        .open(&tmp)?;
    file.write_all(content.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}
