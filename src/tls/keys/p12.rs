//! PKCS#12 (.p12/.pfx) files: key, leaf and chain, with the leaf found by its
//! public key and the chain put in order.

use super::*;

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
pub(super) fn pfx_has_mac(der: &[u8]) -> Result<bool, OpenError> {
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
pub(super) fn p12_error(der: &[u8], has_mac: bool, e: p12_keystore::error::Error) -> OpenError {
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
pub(super) const P12_UNSUPPORTED: [&str; 16] = [
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

pub(super) fn unsupported_p12_algorithm(der: &[u8]) -> Option<String> {
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
pub(super) struct BagCert {
    der: Vec<u8>,
    subject: Vec<u8>,
    issuer: Vec<u8>,
    /// algorithm OID and key bits of the SubjectPublicKeyInfo
    public_key: (String, Vec<u8>),
    local_key_id: Option<Vec<u8>>,
}

impl BagCert {
    pub(super) fn self_issued(&self) -> bool {
        self.subject == self.issuer
    }
}

/// The certificates of the file, duplicates dropped, in file order.
pub(super) fn bag_certs(archive: &Pkcs12Archive) -> Result<Vec<BagCert>, OpenError> {
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
pub(super) fn find_leaf(key: &p12_keystore::PrivateKeyBag, certs: &[BagCert]) -> Option<usize> {
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
pub(super) fn public_key_of(pkcs8: &[u8]) -> Option<(String, Vec<u8>)> {
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
pub(super) fn order_chain(certs: Vec<BagCert>, leaf: usize) -> Vec<CertificateDer<'static>> {
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
