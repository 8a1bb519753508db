//! Reading certificate material from disk: certificate chains, private keys and
//! CRLs, each error naming the config key, the file and the fix.
//!
//! PEM is read with `rustls-pki-types`' `PemObject` (rustls-pemfile is
//! unmaintained). These functions do blocking file I/O: call them at start-up
//! or from `spawn_blocking`, never on the async hot path.

use std::fmt;
use std::path::{Path, PathBuf};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};

/// A certificate file that could not be used, with everything an operator needs
/// to fix it: the config key, the file, what is wrong and what to do.
#[derive(Debug, Clone)]
pub struct LoadError {
    /// the config key the file was named by (`SERVER_CRT`, `CA_CRL`, …)
    pub key: &'static str,
    /// the file
    pub path: PathBuf,
    /// what is wrong, lowercase, no trailing period
    pub problem: String,
    /// what to do about it
    pub fix: String,
}

impl LoadError {
    /// A new error about `path`, named by `key`.
    pub fn new(
        key: &'static str,
        path: &Path,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        LoadError {
            key,
            path: path.to_path_buf(),
            problem: problem.into(),
            fix: fix.into(),
        }
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}): {}; {}",
            self.key,
            self.path.display(),
            self.problem,
            self.fix
        )
    }
}

impl std::error::Error for LoadError {}

/// Reads a whole file, naming the key on failure.
pub fn read_file(key: &'static str, path: &Path) -> Result<Vec<u8>, LoadError> {
    std::fs::read(path).map_err(|e| {
        let fix = match e.kind() {
            std::io::ErrorKind::NotFound => {
                format!("put the file there or correct {key} in the config file")
            }
            std::io::ErrorKind::PermissionDenied => {
                "make it readable by the service user (chown orca:orca, chmod 400)".to_string()
            }
            _ => format!("check the file named by {key}"),
        };
        LoadError::new(key, path, format!("cannot read: {e}"), fix)
    })
}

/// Loads a PEM file of one or more certificates (leaf first for SERVER_CRT).
pub fn load_certs(
    key: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, LoadError> {
    let data = read_file(key, path)?;
    parse_certs(key, path, &data)
}

/// Parses PEM certificates; DER is accepted too, since some tools write `.crt` as DER.
pub fn parse_certs(
    key: &'static str,
    path: &Path,
    data: &[u8],
) -> Result<Vec<CertificateDer<'static>>, LoadError> {
    if data.first() == Some(&0x30) {
        return Ok(vec![CertificateDer::from(data.to_vec())]);
    }
    let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(data).collect();
    let certs = certs.map_err(|e| {
        LoadError::new(
            key,
            path,
            format!(
                "not a valid PEM certificate file: {}",
                crate::text::pem_error(&e)
            ),
            "use the .crt file from orca-catool",
        )
    })?;
    if certs.is_empty() {
        return Err(LoadError::new(
            key,
            path,
            "no certificate found (expected -----BEGIN CERTIFICATE-----)",
            "use the .crt file from orca-catool",
        ));
    }
    for cert in &certs {
        if let Err(e) = x509_parser::parse_x509_certificate(cert.as_ref()) {
            return Err(LoadError::new(
                key,
                path,
                format!("a certificate in the file cannot be parsed: {e}"),
                "replace the file with an intact copy",
            ));
        }
    }
    Ok(certs)
}

/// What the PEM text of a key says about itself, before any parsing.
fn is_encrypted_pem(data: &[u8]) -> bool {
    let text = String::from_utf8_lossy(data);
    text.contains("Proc-Type: 4,ENCRYPTED") || text.contains("BEGIN ENCRYPTED PRIVATE KEY")
}

/// Why a private key could not be loaded: the passphrase case gets WebORCA's own
/// words at start-up, everything else is an ordinary load error.
#[derive(Debug, Clone)]
pub enum KeyError {
    /// The key is encrypted and no usable passphrase was given.
    PassphraseNeeded(LoadError),
    /// Any other problem.
    Other(LoadError),
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::PassphraseNeeded(e) | KeyError::Other(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for KeyError {}

impl From<LoadError> for KeyError {
    fn from(e: LoadError) -> Self {
        KeyError::Other(e)
    }
}

/// Loads the server's private key (PKCS#1, SEC1 or PKCS#8 PEM).
pub fn load_key(
    key: &'static str,
    path: &Path,
    pass_file: Option<&Path>,
) -> Result<PrivateKeyDer<'static>, KeyError> {
    let data = read_file(key, path)?;
    if is_encrypted_pem(&data) {
        let Some(pass_file) = pass_file else {
            return Err(KeyError::PassphraseNeeded(LoadError::new(
                key,
                path,
                "the private key is protected by a passphrase and SERVER_PASS_FILE is not set",
                "use orca-catool's .pem file without passphrase (not the .enc.pem) for SERVER_PEM, or set SERVER_PASS_FILE to its .pass file",
            )));
        };
        let pass = read_pass(pass_file)?;
        return super::keys::decrypt_pem_key(&data, pass.as_bytes())
            .map_err(|e| open_error(key, path, pass_file, &e));
    }
    PrivateKeyDer::from_pem_slice(&data).map_err(|e| {
        KeyError::Other(LoadError::new(
            key,
            path,
            format!(
                "no usable private key (PKCS#1, SEC1 or PKCS#8 PEM): {}",
                crate::text::pem_error(&e)
            ),
            "use the .pem key file from orca-catool",
        ))
    })
}

/// Reads SERVER_PASS_FILE (orca-catool's `.pass`).
pub fn read_pass(pass_file: &Path) -> Result<zeroize::Zeroizing<String>, KeyError> {
    super::keys::read_pass_file(pass_file).map_err(|e| {
        KeyError::PassphraseNeeded(LoadError::new(
            "SERVER_PASS_FILE",
            pass_file,
            format!("cannot read the passphrase: {e}"),
            "point SERVER_PASS_FILE at orca-catool's .pass file (one line, the passphrase), readable by the service user",
        ))
    })
}

/// Turns a decryption failure into an operator message; a wrong passphrase says so.
pub fn open_error(
    key: &'static str,
    path: &Path,
    pass_file: &Path,
    e: &super::keys::OpenError,
) -> KeyError {
    use super::keys::OpenError;
    match e {
        OpenError::WrongPassphrase => KeyError::PassphraseNeeded(LoadError::new(
            key,
            path,
            format!(
                "the passphrase in SERVER_PASS_FILE ({}) is wrong for this file",
                pass_file.display()
            ),
            "use the .pass file issued together with it (same NNNNNN__JP_orca_ name)",
        )),
        other => KeyError::Other(LoadError::new(
            key,
            path,
            other.to_string(),
            "use orca-catool's .pem (no passphrase) and .crt instead",
        )),
    }
}

/// Loads CRLs, each file PEM (one or more `X509 CRL` blocks) or DER.
/// Each CRL comes with the file it was read from, for the messages about it.
pub fn load_crls(
    paths: &[PathBuf],
) -> Result<Vec<(PathBuf, CertificateRevocationListDer<'static>)>, LoadError> {
    let mut crls = Vec::new();
    for path in paths {
        let data = read_file("CA_CRL", path)?;
        crls.extend(
            parse_crls(path, &data)?
                .into_iter()
                .map(|c| (path.clone(), c)),
        );
    }
    Ok(crls)
}

/// Parses one CRL file, PEM or DER, checking that each CRL is well-formed.
pub fn parse_crls(
    path: &Path,
    data: &[u8],
) -> Result<Vec<CertificateRevocationListDer<'static>>, LoadError> {
    let crls: Vec<CertificateRevocationListDer<'static>> = if data.first() == Some(&0x30) {
        vec![CertificateRevocationListDer::from(data.to_vec())]
    } else {
        let parsed: Result<Vec<_>, _> =
            CertificateRevocationListDer::pem_slice_iter(data).collect();
        parsed.map_err(|e| {
            LoadError::new(
                "CA_CRL",
                path,
                format!("not a valid PEM CRL: {}", crate::text::pem_error(&e)),
                "use the CRL made by orca-catool issue_crl",
            )
        })?
    };
    if crls.is_empty() {
        return Err(LoadError::new(
            "CA_CRL",
            path,
            "no CRL found (expected -----BEGIN X509 CRL----- or DER)",
            "use the CRL made by orca-catool issue_crl",
        ));
    }
    for crl in &crls {
        if let Err(e) = x509_parser::parse_x509_crl(crl.as_ref()) {
            return Err(LoadError::new(
                "CA_CRL",
                path,
                format!("the CRL cannot be parsed: {e}"),
                "make a new one with orca-catool issue_crl",
            ));
        }
    }
    Ok(crls)
}
