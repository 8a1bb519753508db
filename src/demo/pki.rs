//! The demo's certificates: reuse what the folder holds, or make an
//! orca-catool-like CA, server and user1 certificate (with .p12 and .pass).

use super::*;

// ---------------------------------------------------------------------------------------
// Certificates: reuse what is there, or make new ones.
// ---------------------------------------------------------------------------------------

/// The CA, ready to issue.
pub(super) struct Ca {
    issuer: Issuer<'static, KeyPair>,
    der: CertificateDer<'static>,
    info: CertInfo,
}

pub(super) fn rsa_key() -> Result<KeyPair, Failure> {
    // RSA-2048 like orca-catool, so the demo exercises the key type clinics have.
    KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_2048)
        .map_err(|e| Failure::Runtime(format!("demo: cannot generate an RSA key: {e}")))
}

pub(super) fn dn(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, "JP");
    dn.push(DnType::OrganizationName, "orca");
    dn.push(DnType::CommonName, cn);
    dn
}

/// Valid from yesterday (a client clock a little behind still accepts it) for `days`.
pub(super) fn set_validity(params: &mut CertificateParams, now: DateTime<Utc>, days: u64) {
    use chrono::Datelike;
    // chrono's months and days are always in range, so date_time_ymd cannot panic.
    let ymd = |d: chrono::NaiveDate| rcgen::date_time_ymd(d.year(), d.month() as u8, d.day() as u8);
    let today = now.date_naive();
    params.not_before = ymd(today.checked_sub_days(Days::new(1)).unwrap_or(today));
    params.not_after = ymd(today.checked_add_days(Days::new(days)).unwrap_or(today));
}

/// Permits names this machine alone answers to: a browser that imported the
/// demo CA cannot be fooled by it about any other site, whoever gets ca.key.
pub(super) fn local_only() -> NameConstraints {
    NameConstraints {
        permitted_subtrees: vec![
            GeneralSubtree::DnsName("localhost".into()),
            GeneralSubtree::IpAddress(CidrSubnet::V4([127, 0, 0, 1], [255; 4])),
            GeneralSubtree::IpAddress(CidrSubnet::V6(Ipv6Addr::LOCALHOST.octets(), [255; 16])),
        ],
        excluded_subtrees: Vec::new(),
    }
}

pub(super) fn rcgen_failure(what: &str, e: rcgen::Error) -> Failure {
    Failure::Runtime(format!("demo: cannot make {what}: {e}"))
}

pub(super) fn make_ca(files: &DemoFiles, now: DateTime<Utc>) -> Result<Ca, Failure> {
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
pub(super) fn leaf_params(
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

pub(super) fn make_server(files: &DemoFiles, ca: &Ca, now: DateTime<Utc>) -> Result<(), Failure> {
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
pub(super) fn make_user(files: &DemoFiles, ca: &Ca, now: DateTime<Utc>) -> Result<String, Failure> {
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
pub(super) fn make_p12(
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
pub(super) fn passphrase() -> Result<String, Failure> {
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

pub(super) fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// Reads one PEM certificate; the error says why it cannot be reused.
pub(super) fn read_cert(path: &Path) -> Result<(CertificateDer<'static>, CertInfo), String> {
    let name = file_name(path);
    if !path.exists() {
        return Err(format!("no {name} yet"));
    }
    let der = CertificateDer::from_pem_file(path).map_err(|e| format!("{name}: {e}"))?;
    let info = CertInfo::from_der(&der).map_err(|e| format!("{name}: {e}"))?;
    Ok((der, info))
}

/// Reads a PEM key and checks it belongs to the certificate `der`.
pub(super) fn read_key(path: &Path, der: &[u8]) -> Result<KeyPair, String> {
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
pub(super) fn fresh(info: &CertInfo, path: &Path, now: DateTime<Utc>) -> Result<(), String> {
    let days = info.days_left(now);
    if days <= RENEW_DAYS {
        return Err(format!("{} expires in {days} days", file_name(path)));
    }
    Ok(())
}

pub(super) fn reuse_ca(files: &DemoFiles, now: DateTime<Utc>) -> Result<Ca, String> {
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
pub(super) fn reuse_leaf(
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
pub(super) fn reuse_user(files: &DemoFiles, ca: &Ca, now: DateTime<Utc>) -> Result<String, String> {
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
