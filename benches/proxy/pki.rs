//! The benchmark's PKI, made with rcgen like orca-catool's: a CA, a server
//! certificate for 127.0.0.1/localhost, a client certificate for `user1`, and a
//! CRL revoking many other serials, all written to files both servers read.
//!
//! orca-catool makes RSA-2048 throughout; the ECDSA P-256 variant measures the
//! handshake with the cheaper signature.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    RevokedCertParams, RsaKeySize, SerialNumber,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use time::{Duration, OffsetDateTime};

/// The key algorithm of every key in one PKI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alg {
    /// orca-catool's keys
    Rsa2048,
    /// the cheap-handshake variant
    EcdsaP256,
}

impl Alg {
    pub fn label(self) -> &'static str {
        match self {
            Alg::Rsa2048 => "RSA-2048",
            Alg::EcdsaP256 => "ECDSA P-256",
        }
    }

    fn key(self) -> KeyPair {
        match self {
            Alg::Rsa2048 => KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_2048),
            Alg::EcdsaP256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
        }
        .expect("key generation")
    }
}

/// Serial of the client certificate, as orca-catool numbers it (1 is the CA, 2 the server).
const CLIENT_SERIAL: u64 = 3;
/// Revoked serials start here, far from the client's.
const FIRST_REVOKED: u64 = 1_000_000;

/// The files of one PKI, and the client's credentials for the load generator.
pub struct Pki {
    pub alg: Alg,
    pub ca_crt: PathBuf,
    pub server_crt: PathBuf,
    pub server_key: PathBuf,
    pub crl: PathBuf,
    pub ca_der: CertificateDer<'static>,
    pub client_chain: Vec<CertificateDer<'static>>,
    pub client_key: PrivateKeyDer<'static>,
    /// a client certificate whose serial is in the middle of the CRL
    pub revoked_chain: Vec<CertificateDer<'static>>,
    pub revoked_key: PrivateKeyDer<'static>,
}

pub fn dn(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, "JP");
    dn.push(DnType::OrganizationName, "orca");
    dn.push(DnType::CommonName, cn);
    dn
}

fn leaf_params(
    cn: &str,
    sans: &[&str],
    serial: u64,
    eku: ExtendedKeyUsagePurpose,
) -> CertificateParams {
    let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
    let mut params = CertificateParams::new(sans).expect("params");
    params.distinguished_name = dn(cn);
    params.serial_number = Some(SerialNumber::from(serial));
    params.not_before = OffsetDateTime::now_utc() - Duration::days(1);
    params.not_after = OffsetDateTime::now_utc() + Duration::days(3650);
    params.key_identifier_method = KeyIdMethod::Sha256;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![eku];
    params
}

/// A CA like orca-catool's: valid from yesterday for ten years, serial 1.
pub fn ca_params(cn: &str) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.distinguished_name = dn(cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = OffsetDateTime::now_utc() - Duration::days(1);
    params.not_after = OffsetDateTime::now_utc() + Duration::days(3650);
    params.serial_number = Some(SerialNumber::from(1u64));
    params
}

/// Makes a PKI of `alg` in `dir` whose CRL revokes `revoked` serials (not
/// the client's; `revoked` must be at least 1, the revoked client's own).
pub fn make(dir: &Path, alg: Alg, revoked: usize) -> Pki {
    std::fs::create_dir_all(dir).expect("pki dir");
    let ca_key = alg.key();
    let params = ca_params("weborca-mtls-proxy bench CA");
    let ca_cert = params.self_signed(&ca_key).expect("ca");
    let issuer = Issuer::new(params, ca_key);

    let server_key = alg.key();
    let server = leaf_params(
        "127.0.0.1",
        &["127.0.0.1", "localhost"],
        2,
        ExtendedKeyUsagePurpose::ServerAuth,
    )
    .signed_by(&server_key, &issuer)
    .expect("server cert");
    let client_key = alg.key();
    let client = leaf_params(
        "user1",
        &[],
        CLIENT_SERIAL,
        ExtendedKeyUsagePurpose::ClientAuth,
    )
    .signed_by(&client_key, &issuer)
    .expect("client cert");

    let revoked_key = alg.key();
    let revoked_serial = FIRST_REVOKED + revoked as u64 / 2;
    let revoked_cert = leaf_params(
        "revoked-user",
        &[],
        revoked_serial,
        ExtendedKeyUsagePurpose::ClientAuth,
    )
    .signed_by(&revoked_key, &issuer)
    .expect("revoked client cert");

    let pki = Pki {
        alg,
        ca_crt: write(dir, "ca.crt", &ca_cert.pem()),
        server_crt: write(dir, "server.crt", &server.pem()),
        server_key: write(dir, "server.pem", &server_key.serialize_pem()),
        crl: write(dir, "ca.crl", &crl(&issuer, revoked)),
        ca_der: ca_cert.der().clone(),
        client_chain: vec![client.der().clone()],
        client_key: PrivateKeyDer::from_pem_slice(client_key.serialize_pem().as_bytes())
            .expect("client key"),
        revoked_chain: vec![revoked_cert.der().clone()],
        revoked_key: PrivateKeyDer::from_pem_slice(revoked_key.serialize_pem().as_bytes())
            .expect("revoked key"),
    };
    write(dir, "user1.crt", &client.pem());
    write(dir, "user1.pem", &client_key.serialize_pem());
    pki
}

/// A CRL signed by the CA, revoking `revoked` serials other than the client's.
pub fn crl(issuer: &Issuer<'_, KeyPair>, revoked: usize) -> String {
    let now = OffsetDateTime::now_utc();
    let params = CertificateRevocationListParams {
        this_update: now - Duration::hours(1),
        next_update: now + Duration::days(30),
        crl_number: SerialNumber::from(1u64),
        issuing_distribution_point: None,
        revoked_certs: (0..revoked as u64)
            .map(|i| RevokedCertParams {
                serial_number: SerialNumber::from(FIRST_REVOKED + i),
                revocation_time: now - Duration::minutes(5),
                reason_code: None,
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: KeyIdMethod::Sha256,
    };
    params
        .signed_by(issuer)
        .expect("crl")
        .pem()
        .expect("crl pem")
}

fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).expect("write pki file");
    path
}
