//! Encrypted and plain PEM keys: the traditional OpenSSL form
//! (`Proc-Type`/`DEK-Info`, EVP_BytesToKey) and the PEM wrapping of PKCS#8.

use super::*;

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
pub(super) enum KeyKind {
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
    pub(super) fn from_label(label: &[u8]) -> Result<Option<KeyKind>, OpenError> {
        Ok(Some(match label {
            b"RSA PRIVATE KEY" => KeyKind::Rsa,
            b"EC PRIVATE KEY" => KeyKind::Ec,
            b"PRIVATE KEY" => KeyKind::Pkcs8,
            b"ENCRYPTED PRIVATE KEY" => KeyKind::EncryptedPkcs8,
            b"DSA PRIVATE KEY" => return Err(OpenError::Unsupported("DSA keys".into())),
            _ => return Ok(None),
        }))
    }

    pub(super) fn name(self) -> &'static str {
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
pub(super) struct PemBlock {
    kind: KeyKind,
    proc_type: Option<String>,
    dek_info: Option<String>,
    base64: Zeroizing<Vec<u8>>,
}

/// Finds the first private-key block. Hand-written because the PEM readers
/// around (`pem-rfc7468`, rustls' `PemObject`) reject or drop the headers that
/// carry the traditional encryption parameters.
pub(super) fn find_key_block(pem: &[u8]) -> Result<PemBlock, OpenError> {
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
pub(super) fn read_block<'a>(
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
    pub(super) fn set_header(&mut self, name: &[u8], value: &[u8]) -> Result<(), OpenError> {
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

pub(super) fn decode_base64(text: &[u8]) -> Result<Zeroizing<Vec<u8>>, OpenError> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map(Zeroizing::new)
        .map_err(|e| malformed(format!("the base64 text is damaged ({e})")))
}

/// Checks that `der` is a well-formed key of `kind` and hands it over in
/// rustls' form; `None` if it does not parse.
pub(super) fn to_key(kind: KeyKind, mut der: Zeroizing<Vec<u8>>) -> Option<PrivateKeyDer<'static>> {
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
pub(super) enum TraditionalCipher {
    Aes128,
    Aes192,
    Aes256,
    DesEde3,
}

impl TraditionalCipher {
    pub(super) fn from_name(name: &str) -> Result<Self, OpenError> {
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

    pub(super) fn key_len(self) -> usize {
        match self {
            TraditionalCipher::Aes128 => 16,
            TraditionalCipher::Aes192 | TraditionalCipher::DesEde3 => 24,
            TraditionalCipher::Aes256 => 32,
        }
    }

    /// Block size, which is also the IV size in CBC mode.
    pub(super) fn block_len(self) -> usize {
        match self {
            TraditionalCipher::DesEde3 => 8,
            _ => 16,
        }
    }

    /// Decrypts `buf` in place; returns the plaintext length.
    pub(super) fn decrypt(self, key: &[u8], iv: &[u8], buf: &mut [u8]) -> Result<usize, OpenError> {
        match self {
            TraditionalCipher::Aes128 => cbc_decrypt::<aes::Aes128Dec>(key, iv, buf),
            TraditionalCipher::Aes192 => cbc_decrypt::<aes::Aes192Dec>(key, iv, buf),
            TraditionalCipher::Aes256 => cbc_decrypt::<aes::Aes256Dec>(key, iv, buf),
            TraditionalCipher::DesEde3 => cbc_decrypt::<des::TdesEde3>(key, iv, buf),
        }
    }
}

/// CBC decryption with PKCS#7 padding; bad padding means a wrong key.
pub(super) fn cbc_decrypt<C: BlockCipherDecrypt + KeyInit>(
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
pub(super) fn decrypt_traditional(
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
pub(super) fn evp_bytes_to_key_md5(
    passphrase: &[u8],
    salt: &[u8],
    len: usize,
) -> Zeroizing<Vec<u8>> {
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
pub(super) fn hex_decode(text: &str) -> Option<Vec<u8>> {
    hex::decode(text).ok()
}

/// At most 40 characters of an input-derived name, control characters
/// replaced, so that a damaged file cannot garble the log line it ends up in.
pub(super) fn shorten(text: &str) -> String {
    crate::text::one_line(text, 40, crate::text::Controls::Replace('?'), "")
}
