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

/// Decrypts a PEM private key:
///  - traditional OpenSSL encryption (`Proc-Type: 4,ENCRYPTED` + `DEK-Info: AES-128-CBC,IV` / AES-192-CBC / AES-256-CBC / DES-EDE3-CBC), inner key PKCS#1 RSA ("RSA PRIVATE KEY") or SEC1 ("EC PRIVATE KEY"); key derivation is OpenSSL's EVP_BytesToKey with MD5, one iteration, salt = first 8 bytes of the IV
///  - encrypted PKCS#8 (`BEGIN ENCRYPTED PRIVATE KEY`), PBES2 with PBKDF2 (HMAC-SHA1/SHA224/SHA256/SHA384/SHA512) and AES-128/192/256-CBC or DES-EDE3-CBC (scrypt and AES-GCM too, as `pkcs5` reads them)
///
/// and returns the decrypted key in the form rustls takes (PrivateKeyDer::Pkcs1 / Sec1 / Pkcs8).
/// Other PEM blocks before the key (certificates, `EC PARAMETERS`) are skipped;
/// DER input (an encrypted PKCS#8 `.der`) is accepted too, and a key that is
/// not encrypted at all is returned as it is.
pub fn decrypt_pem_key(pem: &[u8], passphrase: &[u8]) -> Result<PrivateKeyDer<'static>, OpenError> {
    if pem.first() == Some(&0x30) {
        return decrypt_pkcs8(pem, passphrase);
    }
    let block = find_key_block(pem)?;
    let body = decode_base64(&block.base64)?;
    if block.kind == KeyKind::EncryptedPkcs8 {
        return decrypt_pkcs8(&body, passphrase);
    }
    let Some(proc_type) = block.proc_type else {
        return to_key(block.kind, body).ok_or_else(|| {
            malformed(format!("the {} inside cannot be parsed", block.kind.name()))
        });
    };
    if !proc_type.eq_ignore_ascii_case("4,ENCRYPTED") {
        return Err(OpenError::Unsupported(format!(
            "PEM Proc-Type {}",
            shorten(&proc_type)
        )));
    }
    let dek_info = block
        .dek_info
        .ok_or_else(|| malformed("Proc-Type: 4,ENCRYPTED without a DEK-Info header"))?;
    let plain = decrypt_traditional(&dek_info, &body, passphrase)?;
    // The padding was right, but that happens by chance once in 256 wrong
    // passphrases: only a key that parses proves the passphrase.
    to_key(block.kind, plain).ok_or(OpenError::WrongPassphrase)
}

/// What a PEM block's label says the key is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    /// `RSA PRIVATE KEY`: PKCS#1
    Rsa,
    /// `EC PRIVATE KEY`: SEC1
    Ec,
    /// `PRIVATE KEY`: PKCS#8
    Pkcs8,
    /// `ENCRYPTED PRIVATE KEY`: PKCS#8 EncryptedPrivateKeyInfo
    EncryptedPkcs8,
}

impl KeyKind {
    /// The kind named by a PEM label; `Ok(None)` for blocks that are not keys.
    fn from_label(label: &[u8]) -> Result<Option<KeyKind>, OpenError> {
        Ok(Some(match label {
            b"RSA PRIVATE KEY" => KeyKind::Rsa,
            b"EC PRIVATE KEY" => KeyKind::Ec,
            b"PRIVATE KEY" => KeyKind::Pkcs8,
            b"ENCRYPTED PRIVATE KEY" => KeyKind::EncryptedPkcs8,
            b"DSA PRIVATE KEY" => return Err(OpenError::Unsupported("DSA keys".into())),
            _ => return Ok(None),
        }))
    }

    fn name(self) -> &'static str {
        match self {
            KeyKind::Rsa => "PKCS#1 RSA key",
            KeyKind::Ec => "SEC1 EC key",
            KeyKind::Pkcs8 => "PKCS#8 key",
            KeyKind::EncryptedPkcs8 => "encrypted PKCS#8 key",
        }
    }
}

/// One private-key PEM block: its kind, the two RFC 1421 headers OpenSSL
/// writes, and the base64 text (secret when the key is not encrypted).
struct PemBlock {
    kind: KeyKind,
    proc_type: Option<String>,
    dek_info: Option<String>,
    base64: Zeroizing<Vec<u8>>,
}

/// Finds the first private-key block. Hand-written because the PEM readers
/// around (`pem-rfc7468`, rustls' `PemObject`) reject or drop the headers that
/// carry the traditional encryption parameters.
fn find_key_block(pem: &[u8]) -> Result<PemBlock, OpenError> {
    let mut lines = pem.split(|&b| b == b'\n').map(<[u8]>::trim_ascii);
    while let Some(line) = lines.next() {
        let Some(label) = line
            .strip_prefix(b"-----BEGIN ")
            .and_then(|l| l.strip_suffix(b"-----"))
        else {
            continue;
        };
        if let Some(kind) = KeyKind::from_label(label)? {
            return read_block(&mut lines, label, kind, pem.len());
        }
    }
    Err(malformed(
        "no private key found (expected -----BEGIN … PRIVATE KEY-----)",
    ))
}

/// Reads a block's headers and base64 body up to its END line.
fn read_block<'a>(
    lines: &mut impl Iterator<Item = &'a [u8]>,
    label: &[u8],
    kind: KeyKind,
    capacity: usize,
) -> Result<PemBlock, OpenError> {
    let mut end = b"-----END ".to_vec();
    end.extend_from_slice(label);
    end.extend_from_slice(b"-----");
    // Reserved up front so the buffer never reallocates, which would leave
    // copies of an unencrypted key's text behind unzeroized.
    let mut block = PemBlock {
        kind,
        proc_type: None,
        dek_info: None,
        base64: Zeroizing::new(Vec::with_capacity(capacity)),
    };
    let mut in_headers = true;
    for line in lines {
        if line == end.as_slice() {
            return Ok(block);
        }
        if in_headers {
            let mut parts = line.splitn(2, |&b| b == b':');
            if let (Some(name), Some(value)) = (parts.next(), parts.next()) {
                block.set_header(name.trim_ascii(), value.trim_ascii())?;
                continue;
            }
            in_headers = false;
        }
        block.base64.extend_from_slice(line);
    }
    Err(malformed(format!(
        "the -----END {}----- line is missing",
        String::from_utf8_lossy(label)
    )))
}

impl PemBlock {
    /// Keeps the headers that matter; others (RFC 1421 has a few) are ignored.
    fn set_header(&mut self, name: &[u8], value: &[u8]) -> Result<(), OpenError> {
        let value = || {
            std::str::from_utf8(value)
                .map(str::to_owned)
                .map_err(|_| malformed("a PEM header is not text"))
        };
        if name.eq_ignore_ascii_case(b"Proc-Type") {
            self.proc_type = Some(value()?);
        } else if name.eq_ignore_ascii_case(b"DEK-Info") {
            self.dek_info = Some(value()?);
        }
        Ok(())
    }
}

fn decode_base64(text: &[u8]) -> Result<Zeroizing<Vec<u8>>, OpenError> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map(Zeroizing::new)
        .map_err(|e| malformed(format!("the base64 text is damaged ({e})")))
}

/// Checks that `der` is a well-formed key of `kind` and hands it over in
/// rustls' form; `None` if it does not parse.
fn to_key(kind: KeyKind, mut der: Zeroizing<Vec<u8>>) -> Option<PrivateKeyDer<'static>> {
    let parses = match kind {
        KeyKind::Rsa => pkcs1::RsaPrivateKeyRef::try_from(der.as_slice()).is_ok(),
        KeyKind::Ec => sec1::EcPrivateKey::try_from(der.as_slice()).is_ok(),
        KeyKind::Pkcs8 => pkcs8::PrivateKeyInfoRef::try_from(der.as_slice()).is_ok(),
        KeyKind::EncryptedPkcs8 => false,
    };
    if !parses {
        return None;
    }
    // Moved, not copied: the only copy left is the one rustls owns.
    let owned = std::mem::take(&mut *der);
    Some(match kind {
        KeyKind::Rsa => PrivateKeyDer::Pkcs1(owned.into()),
        KeyKind::Ec => PrivateKeyDer::Sec1(owned.into()),
        KeyKind::Pkcs8 | KeyKind::EncryptedPkcs8 => PrivateKeyDer::Pkcs8(owned.into()),
    })
}

/// The ciphers OpenSSL's traditional PEM encryption is used with in practice.
#[derive(Debug, Clone, Copy)]
enum TraditionalCipher {
    Aes128,
    Aes192,
    Aes256,
    DesEde3,
}

impl TraditionalCipher {
    fn from_name(name: &str) -> Result<Self, OpenError> {
        // OpenSSL looks cipher names up case-insensitively.
        let known = [
            ("AES-128-CBC", TraditionalCipher::Aes128),
            ("AES-192-CBC", TraditionalCipher::Aes192),
            ("AES-256-CBC", TraditionalCipher::Aes256),
            ("DES-EDE3-CBC", TraditionalCipher::DesEde3),
        ];
        known
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|&(_, c)| c)
            .ok_or_else(|| OpenError::Unsupported(shorten(name)))
    }

    fn key_len(self) -> usize {
        match self {
            TraditionalCipher::Aes128 => 16,
            TraditionalCipher::Aes192 | TraditionalCipher::DesEde3 => 24,
            TraditionalCipher::Aes256 => 32,
        }
    }

    /// Block size, which is also the IV size in CBC mode.
    fn block_len(self) -> usize {
        match self {
            TraditionalCipher::DesEde3 => 8,
            _ => 16,
        }
    }

    /// Decrypts `buf` in place; returns the plaintext length.
    fn decrypt(self, key: &[u8], iv: &[u8], buf: &mut [u8]) -> Result<usize, OpenError> {
        match self {
            TraditionalCipher::Aes128 => cbc_decrypt::<aes::Aes128Dec>(key, iv, buf),
            TraditionalCipher::Aes192 => cbc_decrypt::<aes::Aes192Dec>(key, iv, buf),
            TraditionalCipher::Aes256 => cbc_decrypt::<aes::Aes256Dec>(key, iv, buf),
            TraditionalCipher::DesEde3 => cbc_decrypt::<des::TdesEde3>(key, iv, buf),
        }
    }
}

/// CBC decryption with PKCS#7 padding; bad padding means a wrong key.
fn cbc_decrypt<C: BlockCipherDecrypt + KeyInit>(
    key: &[u8],
    iv: &[u8],
    buf: &mut [u8],
) -> Result<usize, OpenError> {
    let decryptor = cbc::Decryptor::<C>::new_from_slices(key, iv)
        .map_err(|_| malformed("the key or IV has the wrong length for the cipher"))?;
    decryptor
        .decrypt_padded::<Pkcs7>(buf)
        .map(<[u8]>::len)
        .map_err(|_| OpenError::WrongPassphrase)
}

/// Undoes OpenSSL's traditional PEM encryption (PEM_do_header). There is no
/// maintained crate for this pre-PKCS#8 format, so it is written out here from
/// the RustCrypto primitives: EVP_BytesToKey(MD5, 1 iteration) and CBC.
fn decrypt_traditional(
    dek_info: &str,
    data: &[u8],
    passphrase: &[u8],
) -> Result<Zeroizing<Vec<u8>>, OpenError> {
    let (name, iv_hex) = dek_info
        .split_once(',')
        .ok_or_else(|| malformed("the DEK-Info header has no IV"))?;
    let cipher = TraditionalCipher::from_name(name.trim())?;
    let iv = hex_decode(iv_hex.trim())
        .filter(|iv| iv.len() == cipher.block_len())
        .ok_or_else(|| malformed("the IV in the DEK-Info header is not valid"))?;
    if data.is_empty() || !data.len().is_multiple_of(cipher.block_len()) {
        return Err(malformed(
            "the encrypted key is not a whole number of cipher blocks",
        ));
    }
    // OpenSSL uses the first 8 bytes of the IV as the key-derivation salt.
    let salt = iv
        .get(..8)
        .ok_or_else(|| malformed("the IV is too short"))?;
    let key = evp_bytes_to_key_md5(passphrase, salt, cipher.key_len());
    let mut buf = Zeroizing::new(data.to_vec());
    let len = cipher.decrypt(&key, &iv, &mut buf)?;
    buf.truncate(len);
    Ok(buf)
}

/// OpenSSL's EVP_BytesToKey with MD5 and one iteration:
/// D₁ = MD5(pass ‖ salt), Dᵢ = MD5(Dᵢ₋₁ ‖ pass ‖ salt), key = D₁ ‖ D₂ ‖ … cut to `len`.
fn evp_bytes_to_key_md5(passphrase: &[u8], salt: &[u8], len: usize) -> Zeroizing<Vec<u8>> {
    const MD5_LEN: usize = 16;
    // Room for every block up front: no reallocation leaves key bytes behind.
    let mut out = Zeroizing::new(Vec::with_capacity(len + MD5_LEN));
    while out.len() < len {
        let mut md5 = Md5::new();
        if let Some(previous) = out.len().checked_sub(MD5_LEN).and_then(|s| out.get(s..)) {
            md5.update(previous);
        }
        md5.update(passphrase);
        md5.update(salt);
        let mut digest = md5.finalize();
        out.extend_from_slice(&digest);
        digest.fill(0);
    }
    out.truncate(len);
    out
}

/// Hex to bytes; `None` unless every character is a hex digit and they pair up.
fn hex_decode(text: &str) -> Option<Vec<u8>> {
    hex::decode(text).ok()
}

/// At most 40 characters of an input-derived name, control characters
/// replaced, so that a damaged file cannot garble the log line it ends up in.
fn shorten(text: &str) -> String {
    crate::text::one_line(text, 40, crate::text::Controls::Replace('?'), "")
}

/// Decrypts a PKCS#8 EncryptedPrivateKeyInfo (DER) with `pkcs8`/`pkcs5`,
/// after checking the parameters so that a hostile file cannot make the KDF
/// run for minutes or allocate gigabytes.
fn decrypt_pkcs8(der: &[u8], passphrase: &[u8]) -> Result<PrivateKeyDer<'static>, OpenError> {
    let info =
        pkcs8::EncryptedPrivateKeyInfoRef::try_from(der).map_err(
            |e| match refused_pkcs8_algorithm(der) {
                Some(name) => OpenError::Unsupported(name),
                None => malformed(format!("not a valid encrypted PKCS#8 key ({e})")),
            },
        )?;
    let params = match &info.encryption_algorithm {
        pkcs5::EncryptionScheme::Pbes2(params) => params,
        pkcs5::EncryptionScheme::Pbes1(alg) => {
            return Err(OpenError::Unsupported(pbes1_name(alg.encryption).into()));
        }
        other => {
            return Err(OpenError::Unsupported(oid_description(&other.oid())));
        }
    };
    check_kdf(&params.kdf)?;
    let data = info.encrypted_data.as_bytes();
    check_ciphertext_len(&params.encryption, data.len())?;
    let mut plain = Zeroizing::new(data.to_vec());
    let len = params
        .decrypt_in_place(passphrase, &mut plain)
        .map_err(pkcs5_error)?
        .len();
    plain.truncate(len);
    // As with traditional PEM: right padding by chance is not a right passphrase.
    to_key(KeyKind::Pkcs8, plain).ok_or(OpenError::WrongPassphrase)
}

fn pbes1_name(scheme: pbes1::EncryptionScheme) -> &'static str {
    match scheme {
        pbes1::EncryptionScheme::PbeWithMd2AndDesCbc => "PBES1 MD2-DES",
        pbes1::EncryptionScheme::PbeWithMd2AndRc2Cbc => "PBES1 MD2-RC2",
        pbes1::EncryptionScheme::PbeWithMd5AndDesCbc => "PBES1 MD5-DES",
        pbes1::EncryptionScheme::PbeWithMd5AndRc2Cbc => "PBES1 MD5-RC2",
        pbes1::EncryptionScheme::PbeWithSha1AndDesCbc => "PBES1 SHA1-DES",
        pbes1::EncryptionScheme::PbeWithSha1AndRc2Cbc => "PBES1 SHA1-RC2",
    }
}

/// Refuses key-derivation parameters that would cost more than any real key does.
fn check_kdf(kdf: &pbes2::Kdf) -> Result<(), OpenError> {
    match kdf {
        pbes2::Kdf::Pbkdf2(p) if p.iteration_count > MAX_PBKDF2_ITERATIONS => {
            Err(OpenError::Unsupported(format!(
                "PBKDF2 with {} iterations (at most {MAX_PBKDF2_ITERATIONS})",
                p.iteration_count
            )))
        }
        pbes2::Kdf::Pbkdf2(_) => Ok(()),
        pbes2::Kdf::Scrypt(p) => {
            let memory = 128u64
                .checked_mul(p.cost_parameter)
                .and_then(|m| m.checked_mul(u64::from(p.block_size)));
            match memory {
                Some(m) if m <= MAX_SCRYPT_MEMORY && p.parallelization <= 16 => Ok(()),
                _ => Err(OpenError::Unsupported(format!(
                    "scrypt with N={}, r={}, p={} (more than 32 MiB)",
                    p.cost_parameter, p.block_size, p.parallelization
                ))),
            }
        }
        other => Err(OpenError::Unsupported(format!(
            "PBES2 key derivation {}",
            oid_description(&other.oid())
        ))),
    }
}

/// A ciphertext of impossible length is damage, not a wrong passphrase:
/// checked here because `pkcs5` reports both as "decryption failed".
fn check_ciphertext_len(scheme: &pbes2::EncryptionScheme, len: usize) -> Result<(), OpenError> {
    let (block, min) = match scheme {
        pbes2::EncryptionScheme::Aes128Cbc { .. }
        | pbes2::EncryptionScheme::Aes192Cbc { .. }
        | pbes2::EncryptionScheme::Aes256Cbc { .. } => (16, 16),
        pbes2::EncryptionScheme::DesEde3Cbc { .. } => (8, 8),
        // GCM: at least the 16-byte tag
        _ => (1, 16),
    };
    if len < min || !len.is_multiple_of(block) {
        return Err(malformed(
            "the encrypted key has an impossible length for its cipher",
        ));
    }
    Ok(())
}

fn pkcs5_error(e: pkcs5::Error) -> OpenError {
    match e {
        pkcs5::Error::DecryptFailed => OpenError::WrongPassphrase,
        pkcs5::Error::UnsupportedAlgorithm { oid } => OpenError::Unsupported(oid_description(&oid)),
        pkcs5::Error::NoPbes1CryptSupport => OpenError::Unsupported("PBES1".into()),
        other => malformed(other.to_string()),
    }
}

/// When `pkcs8` cannot parse an EncryptedPrivateKeyInfo the usual reason is an
/// algorithm identifier it does not know. This reads the identifiers
/// generically and names the first one outside what `pkcs5` supports;
/// `None` if they are all known (then the file is simply damaged).
fn refused_pkcs8_algorithm(der: &[u8]) -> Option<String> {
    let mut reader = SliceReader::new(der).ok()?;
    let alg = reader
        .sequence(|r| {
            let alg: AlgorithmIdentifierRef<'_> = r.decode()?;
            let _data: &OctetStringRef = r.decode()?;
            Ok::<_, pkcs8::der::Error>(alg)
        })
        .ok()?;
    let scheme = alg.oid.to_string();
    if scheme != "1.2.840.113549.1.5.13" {
        // Not PBES2. The PBES1 OIDs parse fine, so this is something else
        // (typically a PKCS#12 PBE from `openssl pkcs8 -v1 PBE-SHA1-3DES`).
        return Some(oid_description(&alg.oid));
    }
    let (kdf, cipher) = alg
        .parameters?
        .sequence(|r| {
            let kdf: AlgorithmIdentifierRef<'_> = r.decode()?;
            let cipher: AlgorithmIdentifierRef<'_> = r.decode()?;
            Ok::<_, pkcs8::der::Error>((kdf, cipher))
        })
        .ok()?;
    let kdf_name = kdf.oid.to_string();
    if kdf_name == "1.2.840.113549.1.5.12" {
        let prf = pbkdf2_prf(kdf.parameters)?;
        if !PBES2_PRFS.contains(&prf.to_string().as_str()) {
            return Some(oid_description(&prf));
        }
    } else if kdf_name != "1.3.6.1.4.1.11591.4.11" {
        return Some(format!(
            "PBES2 key derivation {}",
            oid_description(&kdf.oid)
        ));
    }
    let cipher_name = cipher.oid.to_string();
    (!PBES2_CIPHERS.contains(&cipher_name.as_str())).then(|| oid_description(&cipher.oid))
}

/// HMAC-SHA1/224/256/384/512, the PBKDF2 PRFs `pkcs5` knows.
const PBES2_PRFS: [&str; 5] = [
    "1.2.840.113549.2.7",
    "1.2.840.113549.2.8",
    "1.2.840.113549.2.9",
    "1.2.840.113549.2.10",
    "1.2.840.113549.2.11",
];

/// AES-128/192/256-CBC, AES-128/256-GCM and DES-EDE3-CBC, the PBES2 ciphers `pkcs5` knows.
const PBES2_CIPHERS: [&str; 6] = [
    "2.16.840.1.101.3.4.1.2",
    "2.16.840.1.101.3.4.1.22",
    "2.16.840.1.101.3.4.1.42",
    "2.16.840.1.101.3.4.1.6",
    "2.16.840.1.101.3.4.1.46",
    "1.2.840.113549.3.7",
];

/// The PRF of PBKDF2-params (salt, iterations, keyLength?, prf?): the last
/// element if it is a SEQUENCE, else the default, HMAC-SHA1.
fn pbkdf2_prf(params: Option<AnyRef<'_>>) -> Option<ObjectIdentifier> {
    let last = params?
        .sequence(|r| {
            let mut last = None;
            while !r.is_finished() {
                last = Some(r.decode::<AnyRef<'_>>()?);
            }
            Ok::<_, pkcs8::der::Error>(last)
        })
        .ok()?;
    match last.filter(|any| any.tag() == Tag::Sequence) {
        Some(any) => any
            .decode_as::<AlgorithmIdentifierRef<'_>>()
            .ok()
            .map(|a| a.oid),
        None => ObjectIdentifier::new("1.2.840.113549.2.7").ok(),
    }
}

/// Names for the algorithm OIDs that turn up in keys and PKCS#12 files but are
/// not supported (or only partly), so the message says "RC4", not "1.2.840…".
const ALGORITHM_NAMES: [(&str, &str); 20] = [
    ("1.2.840.113549.1.12.1.1", "PKCS#12 PBE SHA1-RC4-128"),
    ("1.2.840.113549.1.12.1.2", "PKCS#12 PBE SHA1-RC4-40"),
    ("1.2.840.113549.1.12.1.3", "PKCS#12 PBE SHA1-3DES"),
    ("1.2.840.113549.1.12.1.4", "PKCS#12 PBE SHA1-2DES"),
    ("1.2.840.113549.1.12.1.5", "PKCS#12 PBE SHA1-RC2-128"),
    ("1.2.840.113549.1.12.1.6", "PKCS#12 PBE SHA1-RC2-40"),
    ("1.3.14.3.2.7", "DES-CBC"),
    ("1.2.840.113549.3.2", "RC2-CBC"),
    ("1.2.840.113549.3.4", "RC4"),
    ("1.2.840.113549.3.9", "RC5-CBC"),
    ("1.3.6.1.4.1.3029.1.1.2", "Blowfish-CBC"),
    ("1.2.392.200011.61.1.1.1.2", "Camellia-128-CBC"),
    ("1.2.392.200011.61.1.1.1.3", "Camellia-192-CBC"),
    ("1.2.392.200011.61.1.1.1.4", "Camellia-256-CBC"),
    ("2.16.840.1.101.3.4.1.26", "AES-192-GCM"),
    ("1.2.840.113549.2.12", "PBKDF2 with HMAC-SHA512/224"),
    ("1.2.840.113549.2.13", "PBKDF2 with HMAC-SHA512/256"),
    ("1.2.840.113549.1.5.14", "PBMAC1"),
    ("1.2.840.113549.2.5", "MD5"),
    (
        "1.2.840.113549.1.7.3",
        "public-key encryption (envelopedData) of PKCS#12 contents",
    ),
];

/// A readable name for an algorithm OID.
fn oid_description(oid: &ObjectIdentifier) -> String {
    let dotted = oid.to_string();
    ALGORITHM_NAMES
        .iter()
        .find(|(o, _)| *o == dotted)
        .map_or_else(
            || format!("algorithm {dotted}"),
            |(_, name)| (*name).to_owned(),
        )
}

/// Opens a PKCS#12 file (orca-catool's `.p12`): returns the certificate chain, leaf first (the certificate whose public key matches the private key goes first; then the others, CA last), and the private key (PKCS#8).
///
/// Both OpenSSL 3's default form (PBES2/PBKDF2/AES-256-CBC, HMAC-SHA256 MAC)
/// and the `-legacy` form (pbeWithSHAAnd3-KeyTripleDES-CBC keys,
/// pbeWithSHAAnd40BitRC2-CBC certificates, SHA-1 MAC) are read, by
/// `p12-keystore`, which implements both PKCS#12 PBEs itself.
pub fn open_p12(
    der: &[u8],
    passphrase: &str,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), OpenError> {
    let has_mac = pfx_has_mac(der)?;
    let archive =
        Pkcs12Archive::from_pkcs12(der, passphrase).map_err(|e| p12_error(der, has_mac, e))?;
    let certs = bag_certs(&archive)?;
    if archive.keys.is_empty() {
        return Err(malformed("the PKCS#12 file contains no private key"));
    }
    if certs.is_empty() {
        return Err(malformed("the PKCS#12 file contains no certificate"));
    }
    let (key, leaf) = archive
        .keys
        .iter()
        .find_map(|key| find_leaf(key, &certs).map(|leaf| (key, leaf)))
        .ok_or_else(|| malformed("no certificate in the PKCS#12 file matches its private key"))?;
    let key = PrivateKeyDer::Pkcs8(key.key.as_der().to_vec().into());
    Ok((order_chain(certs, leaf), key))
}

/// Whether the PFX carries a MAC, read from its outer SEQUENCE (version,
/// authSafe, macData?) before any decryption: without a MAC, nothing but the
/// decrypted content can tell a wrong passphrase.
fn pfx_has_mac(der: &[u8]) -> Result<bool, OpenError> {
    let count = || -> Result<usize, pkcs8::der::Error> {
        let mut reader = SliceReader::new(der)?;
        let count = reader.sequence(|r| {
            let mut count = 0usize;
            while !r.is_finished() {
                r.decode::<AnyRef<'_>>()?;
                count += 1;
            }
            Ok::<_, pkcs8::der::Error>(count)
        })?;
        reader.finish()?;
        Ok(count)
    };
    match count() {
        Ok(2) => Ok(false),
        Ok(3) => Ok(true),
        Ok(_) => Err(malformed("not a PKCS#12 file (wrong structure)")),
        Err(e) => Err(malformed(format!("not a PKCS#12 file ({e})"))),
    }
}

/// Sorts `p12-keystore`'s errors into wrong passphrase, unsupported, damaged.
fn p12_error(der: &[u8], has_mac: bool, e: p12_keystore::error::Error) -> OpenError {
    use p12_keystore::error::Error as E;
    // `p12-keystore` passes PBES2 errors on as text; this is the padding one.
    let decrypt_failed = pkcs5::Error::DecryptFailed.to_string();
    match e {
        E::MacError(_) | E::UnpadError => return OpenError::WrongPassphrase,
        E::Pkcs5Error(ref text) if *text == decrypt_failed => return OpenError::WrongPassphrase,
        _ => {}
    }
    if let Some(name) = unsupported_p12_algorithm(der) {
        return OpenError::Unsupported(name);
    }
    match e {
        E::UnsupportedEncryptionScheme | E::UnsupportedMacAlgorithm => {
            OpenError::Unsupported("an encryption or MAC algorithm in the PKCS#12 file".into())
        }
        // envelopedData would have been named above; any other type is damage.
        E::UnsupportedContentType => malformed("PKCS#12: unknown content type"),
        E::UnsupportedCertificateType => {
            OpenError::Unsupported("certificates other than X.509".into())
        }
        // Without a MAC, decrypted content that does not parse is most likely
        // the passphrase's fault (its padding happened to come out right).
        E::DerError(_) | E::X509Error(_) | E::InvalidPrivateKey | E::InvalidData if !has_mac => {
            OpenError::WrongPassphrase
        }
        other => malformed(format!("PKCS#12: {other}")),
    }
}

/// OIDs of algorithms `p12-keystore` does not implement. Their DER encodings
/// sit in clear text in the file (only bag contents are encrypted), so a byte
/// search finds them; an 11-byte match inside ciphertext is not a worry.
const P12_UNSUPPORTED: [&str; 16] = [
    "1.2.840.113549.1.7.3",
    "1.2.840.113549.1.12.1.1",
    "1.2.840.113549.1.12.1.2",
    "1.2.840.113549.1.12.1.4",
    "1.2.840.113549.1.12.1.5",
    "1.3.14.3.2.7",
    "1.2.840.113549.3.2",
    "1.2.840.113549.3.9",
    "1.3.6.1.4.1.3029.1.1.2",
    "1.2.392.200011.61.1.1.1.2",
    "1.2.392.200011.61.1.1.1.3",
    "1.2.392.200011.61.1.1.1.4",
    "2.16.840.1.101.3.4.1.26",
    "1.2.840.113549.2.12",
    "1.2.840.113549.1.5.14",
    "1.2.840.113549.2.5",
];

fn unsupported_p12_algorithm(der: &[u8]) -> Option<String> {
    P12_UNSUPPORTED.iter().find_map(|dotted| {
        let oid = ObjectIdentifier::new(dotted).ok()?;
        let body = oid.as_bytes();
        let mut tlv = vec![0x06, u8::try_from(body.len()).ok()?];
        tlv.extend_from_slice(body);
        der.windows(tlv.len())
            .any(|w| w == tlv.as_slice())
            .then(|| oid_description(&oid))
    })
}

/// A certificate from the PKCS#12 file with the fields chain building needs.
struct BagCert {
    der: Vec<u8>,
    subject: Vec<u8>,
    issuer: Vec<u8>,
    /// algorithm OID and key bits of the SubjectPublicKeyInfo
    public_key: (String, Vec<u8>),
    local_key_id: Option<Vec<u8>>,
}

impl BagCert {
    fn self_issued(&self) -> bool {
        self.subject == self.issuer
    }
}

/// The certificates of the file, duplicates dropped, in file order.
fn bag_certs(archive: &Pkcs12Archive) -> Result<Vec<BagCert>, OpenError> {
    let mut certs: Vec<BagCert> = Vec::new();
    for bag in &archive.certs {
        let der = bag.cert.as_der();
        if certs.iter().any(|c| c.der == der) {
            continue;
        }
        let (_, x509) = x509_parser::parse_x509_certificate(der)
            .map_err(|e| malformed(format!("a certificate cannot be parsed ({e})")))?;
        let spki = x509.public_key();
        certs.push(BagCert {
            der: der.to_vec(),
            subject: x509.subject().as_raw().to_vec(),
            issuer: x509.issuer().as_raw().to_vec(),
            public_key: (
                spki.algorithm.algorithm.to_id_string(),
                spki.subject_public_key.data.to_vec(),
            ),
            local_key_id: bag.local_key_id.clone(),
        });
    }
    Ok(certs)
}

/// The index of the certificate for `key`: the one with its public key, or,
/// for key types rustls cannot load (so no public key to compare), the one
/// sharing its PKCS#12 localKeyId.
fn find_leaf(key: &p12_keystore::PrivateKeyBag, certs: &[BagCert]) -> Option<usize> {
    match public_key_of(key.key.as_der()) {
        Some(public_key) => certs.iter().position(|c| c.public_key == public_key),
        None => {
            let id = key.local_key_id.as_ref()?;
            certs
                .iter()
                .position(|c| c.local_key_id.as_deref() == Some(id.as_ref()))
        }
    }
}

/// The public key (algorithm OID, key bits) of a PKCS#8 private key, computed
/// by the same provider the server signs with.
fn public_key_of(pkcs8: &[u8]) -> Option<(String, Vec<u8>)> {
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pkcs8));
    let signing = rustls::crypto::aws_lc_rs::sign::any_supported_type(&key).ok()?;
    let spki = signing.public_key()?;
    let (_, info) = x509_parser::x509::SubjectPublicKeyInfo::from_der(spki.as_ref()).ok()?;
    Some((
        info.algorithm.algorithm.to_id_string(),
        info.subject_public_key.data.to_vec(),
    ))
}

/// Leaf first, then its issuers as far as the file has them, then any other
/// certificates; self-issued ones (the CA) last.
fn order_chain(certs: Vec<BagCert>, leaf: usize) -> Vec<CertificateDer<'static>> {
    let mut rest: Vec<Option<BagCert>> = certs.into_iter().map(Some).collect();
    let Some(first) = rest.get_mut(leaf).and_then(Option::take) else {
        return Vec::new();
    };
    let mut issuers = Vec::new();
    let mut issuer = (!first.self_issued()).then(|| first.issuer.clone());
    while let Some(name) = issuer {
        let next = rest
            .iter_mut()
            .find(|c| c.as_ref().is_some_and(|c| c.subject == name))
            .and_then(Option::take);
        issuer = next
            .as_ref()
            .filter(|c| !c.self_issued())
            .map(|c| c.issuer.clone());
        issuers.extend(next);
    }
    issuers.extend(rest.into_iter().flatten());
    // Stable: the issuer walk's order is kept within each group.
    issuers.sort_by_key(BagCert::self_issued);
    std::iter::once(first)
        .chain(issuers)
        .map(|c| CertificateDer::from(c.der))
        .collect()
}

#[cfg(test)]
mod tests;
