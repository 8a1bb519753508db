//! Encrypted PKCS#8 (PBES1/PBES2): parameters checked before the KDF runs,
//! unsupported schemes named.

use super::*;

/// Decrypts a PKCS#8 EncryptedPrivateKeyInfo (DER) with `pkcs8`/`pkcs5`,
/// after checking the parameters so that a hostile file cannot make the KDF
/// run for minutes or allocate gigabytes.
pub(super) fn decrypt_pkcs8(
    der: &[u8],
    passphrase: &[u8],
) -> Result<PrivateKeyDer<'static>, OpenError> {
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

pub(super) fn pbes1_name(scheme: pbes1::EncryptionScheme) -> &'static str {
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
pub(super) fn check_kdf(kdf: &pbes2::Kdf) -> Result<(), OpenError> {
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
pub(super) fn check_ciphertext_len(
    scheme: &pbes2::EncryptionScheme,
    len: usize,
) -> Result<(), OpenError> {
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

pub(super) fn pkcs5_error(e: pkcs5::Error) -> OpenError {
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
pub(super) fn refused_pkcs8_algorithm(der: &[u8]) -> Option<String> {
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
pub(super) const PBES2_PRFS: [&str; 5] = [
    "1.2.840.113549.2.7",
    "1.2.840.113549.2.8",
    "1.2.840.113549.2.9",
    "1.2.840.113549.2.10",
    "1.2.840.113549.2.11",
];

/// AES-128/192/256-CBC, AES-128/256-GCM and DES-EDE3-CBC, the PBES2 ciphers `pkcs5` knows.
pub(super) const PBES2_CIPHERS: [&str; 6] = [
    "2.16.840.1.101.3.4.1.2",
    "2.16.840.1.101.3.4.1.22",
    "2.16.840.1.101.3.4.1.42",
    "2.16.840.1.101.3.4.1.6",
    "2.16.840.1.101.3.4.1.46",
    "1.2.840.113549.3.7",
];

/// The PRF of PBKDF2-params (salt, iterations, keyLength?, prf?): the last
/// element if it is a SEQUENCE, else the default, HMAC-SHA1.
pub(super) fn pbkdf2_prf(params: Option<AnyRef<'_>>) -> Option<ObjectIdentifier> {
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
pub(super) const ALGORITHM_NAMES: [(&str, &str); 20] = [
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
pub(super) fn oid_description(oid: &ObjectIdentifier) -> String {
    let dotted = oid.to_string();
    ALGORITHM_NAMES
        .iter()
        .find(|(o, _)| *o == dotted)
        .map_or_else(
            || format!("algorithm {dotted}"),
            |(_, name)| (*name).to_owned(),
        )
}
