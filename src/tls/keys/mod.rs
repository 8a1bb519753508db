//! Decrypting the server's private key and reading PKCS#12 files: what
//! orca-catool hands out besides the plain `.pem` (the passphrase-protected
//! key with its `.pass` file, and the `.p12` bundle).
//!
//! Three inputs are understood:
//!
//! - traditional OpenSSL PEM encryption (`Proc-Type: 4,ENCRYPTED` and
//!   `DEK-Info`), which no maintained crate reads, so it is done here with the
//!   RustCrypto block ciphers;
//! - encrypted PKCS#8 (`BEGIN ENCRYPTED PRIVATE KEY`), read with `pkcs8`/`pkcs5`;
//! - PKCS#12, read with `p12-keystore`, which handles both OpenSSL 3's default
//!   (PBES2/AES-256-CBC, HMAC-SHA256 MAC) and `-legacy` (3DES keys, 40-bit RC2
//!   certificates, SHA-1 MAC).
//!
//! Every function takes untrusted bytes and never panics; a wrong passphrase is
//! told apart from a damaged file wherever the format allows it. Decrypted key
//! material is kept in [`Zeroizing`] buffers until it is handed to rustls.

mod p12;
mod pem;
mod pkcs8_enc;

use pem::*;
use pkcs8_enc::*;

pub use p12::open_p12;
pub use pem::decrypt_pem_key;

use std::fmt;
use std::io;
use std::path::Path;

use base64::Engine as _;
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockCipherDecrypt, BlockModeDecrypt, KeyInit, KeyIvInit};
use md5::{Digest, Md5};
use p12_keystore::Pkcs12Archive;
use pkcs8::der::asn1::{AnyRef, ObjectIdentifier, OctetStringRef};
use pkcs8::der::{Reader, SliceReader, Tag, Tagged};
use pkcs8::pkcs5::{self, pbes1, pbes2};
use pkcs8::spki::AlgorithmIdentifierRef;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use x509_parser::prelude::FromDer;
use zeroize::Zeroizing;

/// The most PBKDF2 iterations accepted in an encrypted PKCS#8 key: RFC 8018's
/// figure for "especially critical keys". OpenSSL writes 2048 and the RustCrypto
/// default is 600,000; the cap only stops a damaged or hostile file from
/// keeping start-up busy for minutes.
const MAX_PBKDF2_ITERATIONS: u32 = 10_000_000;

/// The most memory (128·N·r bytes) an scrypt-protected key may ask for: the
/// limit OpenSSL itself applies by default, so any key OpenSSL opens, we open.
const MAX_SCRYPT_MEMORY: u64 = 32 * 1024 * 1024;

/// Why an encrypted key or a PKCS#12 file could not be opened.
#[derive(Debug)]
pub enum OpenError {
    /// the passphrase is wrong (bad padding / MAC mismatch / decrypted data is not a key)
    WrongPassphrase,
    /// a cipher or KDF this build does not support: name it (e.g. "RC4", "PBES1 MD5-DES")
    Unsupported(String),
    /// the file is damaged or not what it claims
    Malformed(String),
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::WrongPassphrase => f.write_str("the passphrase is wrong"),
            OpenError::Unsupported(what) => write!(f, "this build does not support {what}"),
            OpenError::Malformed(what) => {
                write!(f, "the file is damaged or not a key file: {what}")
            }
        }
    }
}

impl std::error::Error for OpenError {}

fn malformed(what: impl Into<String>) -> OpenError {
    OpenError::Malformed(what.into())
}

/// Reads a passphrase file (orca-catool's `.pass`): the first line, trailing "\n" / "\r\n" removed; empty → Err.
pub fn read_pass_file(path: &Path) -> io::Result<Zeroizing<String>> {
    let data = Zeroizing::new(std::fs::read(path)?);
    // Only the first line counts, as with OpenSSL's `-passin file:`.
    let line = data.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the first line of the passphrase file is empty",
        ));
    }
    // Borrowed check first: `String::from_utf8` would hand the bytes back
    // inside its error, outside any zeroizing buffer.
    let text = std::str::from_utf8(line).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "the passphrase is not UTF-8 text",
        )
    })?;
    Ok(Zeroizing::new(text.to_owned()))
}

#[cfg(test)]
mod tests;
