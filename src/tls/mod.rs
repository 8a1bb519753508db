//! The TLS state the listener hands every new connection: rustls' server
//! config (server certificate, client verifier, ALPN, resumption) plus the
//! parsed certificates the logs, pages and status report on.
//!
//! A [`TlsState`] is built whole from the config or not at all; the server
//! keeps the current one behind an `ArcSwap`, so a reload that fails leaves the
//! last good state serving.

pub mod crl;
pub mod judgement;
pub mod keys;
pub mod load;
pub mod verify;

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::server::{ServerSessionMemoryCache, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};

use crate::config::parts::{TlsFiles, Verification};
use crate::config::{ClientCertErrors, Config, CrlStale};
use crate::policy::Policy;
use crate::x509::CertInfo;
pub use load::{KeyError, LoadError};
pub use verify::{ClientVerifier, IDENTITY_HEADERS, Identity, Refusal};

/// How many TLS sessions the server remembers for resumption by session ID.
const SESSION_CACHE_SIZE: usize = 4096;

/// Session resumption state, kept across reloads: a client resuming after a
/// reload is judged by the new verifier (see `verify`), so sharing is safe, and
/// clients keep their fast reconnects.
#[derive(Debug, Clone)]
pub struct Sessions {
    /// TLS 1.2 session IDs and TLS 1.3 stateful tickets
    cache: Arc<dyn rustls::server::StoresServerSessions>,
    /// TLS 1.3 / 1.2 stateless tickets, keys rotated by rustls
    ticketer: Arc<dyn rustls::server::ProducesTickets>,
}

impl Sessions {
    /// A fresh session cache and ticket key.
    pub fn new() -> Result<Sessions, rustls::Error> {
        Ok(Sessions {
            cache: ServerSessionMemoryCache::new(SESSION_CACHE_SIZE),
            ticketer: rustls::crypto::aws_lc_rs::Ticketer::new()?,
        })
    }
}

/// Everything the listener needs to accept and judge connections.
#[derive(Debug)]
pub struct TlsState {
    /// rustls' config for new handshakes
    pub server_config: Arc<ServerConfig>,
    /// the verdict on each connection after the handshake
    pub verifier: Arc<ClientVerifier>,
    /// the server certificate (leaf)
    pub server_cert: CertInfo,
    /// the intermediate certificates SERVER_CRT holds after the leaf
    pub server_intermediates: Vec<CertInfo>,
    /// whether the server certificate may serve TLS: no extended key usage,
    /// or one naming serverAuth (a client certificate put there by mistake
    /// is refused by every browser)
    pub server_auth: bool,
    /// the CA certificates of CA_CRT
    pub ca_certs: Vec<CertInfo>,
    /// whether the server certificate is signed by a CA of CA_CRT (through
    /// the intermediates SERVER_CRT holds): what a browser that imported
    /// ca.crt checks, beyond the issuer's name
    pub server_chain: ServerChain,
    /// the CRLs of CA_CRL
    pub crls: Vec<crl::CrlInfo>,
    /// CA subjects in one-line form, for the error pages
    pub ca_subjects: Arc<[String]>,
    /// SHA-256 over what a verdict depends on: CA_CRT, CA_CRL, ALLOW_CN,
    /// CLIENT_CERT_ERRORS and CRL_STALE. A reload that changes it makes every
    /// open connection be judged again (see `judgement`).
    pub judging_inputs: [u8; 32],
    /// the judgement generation, set when the state is put in place
    pub generation: u64,
    /// CRL_STALE: whether a CRL past its nextUpdate refuses every client
    pub crl_stale: CrlStale,
    /// ACCESS_POLICY, when set: which paths each certificate may use. It is
    /// part of `judging_inputs`, so a changed file re-judges open connections.
    pub policy: Option<Arc<Policy>>,
}

/// Whether the server certificate is signed by a CA of CA_CRT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerChain {
    /// Signed by a CA of CA_CRT, directly or through SERVER_CRT's
    /// intermediates.
    Verified,
    /// Its issuer is a CA of CA_CRT by name, whose key did not make its
    /// signature: another CA of the same name (one made again).
    WrongKey,
    /// Neither could be shown: another issuer, or a signature algorithm the
    /// check does not know (browsers may still accept it).
    Unknown,
}

/// Whether `chain[0]` is signed by one of `cas`, directly or through the
/// intermediates after it in `chain`: each step's issuer found by name and
/// its signature checked with that issuer's key (x509-parser, which knows
/// RSA, ECDSA P-256/P-384 and Ed25519). Dates are not looked at here;
/// `check` says them on their own lines.
fn server_chain(chain: &[CertificateDer<'_>], cas: &[CertificateDer<'_>]) -> ServerChain {
    use x509_parser::certificate::X509Certificate;
    use x509_parser::error::X509Error;
    fn parse<'a>(der: &'a CertificateDer<'_>) -> Option<X509Certificate<'a>> {
        x509_parser::parse_x509_certificate(der.as_ref())
            .ok()
            .map(|(_, c)| c)
    }
    let cas: Vec<_> = cas.iter().filter_map(parse).collect();
    let above: Vec<_> = chain.iter().skip(1).filter_map(parse).collect();
    let Some(leaf) = chain.first().and_then(parse) else {
        return ServerChain::Unknown;
    };
    let named = |issuer: &X509Certificate<'_>, cert: &X509Certificate<'_>| {
        issuer.subject().as_raw() == cert.issuer().as_raw()
    };
    let signs = |issuer: &X509Certificate<'_>, cert: &X509Certificate<'_>| {
        named(issuer, cert) && cert.verify_signature(Some(issuer.public_key())).is_ok()
    };
    let mut cert = leaf.clone();
    // each intermediate once at most: a chain cannot loop
    for _ in 0..=above.len() {
        if cas.iter().any(|ca| signs(ca, &cert)) {
            return ServerChain::Verified;
        }
        match above.iter().find(|i| signs(i, &cert)) {
            Some(next) => cert = next.clone(),
            None => break,
        }
    }
    // a CA of that name whose key, checked, is not the signer's
    let wrong = cas.iter().any(|ca| {
        named(ca, &leaf)
            && matches!(
                leaf.verify_signature(Some(ca.public_key())),
                Err(X509Error::SignatureVerificationError)
            )
    });
    if wrong {
        ServerChain::WrongKey
    } else {
        ServerChain::Unknown
    }
}

/// The crypto provider: aws-lc-rs, rustls' default, for its fast RSA and ECDSA.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

impl TlsState {
    /// Loads certificates, key, CA and CRLs named by `config` and builds the TLS state,
    /// from the config's TLS parts ([`TlsState::load_parts`]).
    /// Blocking: call at start-up or from `spawn_blocking`.
    pub fn load(config: &Config, sessions: &Sessions) -> Result<TlsState, KeyError> {
        Self::load_parts(&config.tls_files(), &config.verification(), sessions)
    }

    /// Loads the files of `config` and builds the TLS state judging clients by `verification`.
    pub fn load_parts(
        config: &TlsFiles,
        verification: &Verification,
        sessions: &Sessions,
    ) -> Result<TlsState, KeyError> {
        let (chain, key) = load_server_identity(config)?;
        let ca_path = config.ca_crt.as_deref().ok_or_else(|| {
            LoadError::new(
                "CA_CRT",
                &config.config_path,
                "not set",
                "set CA_CRT to the ca.crt of the CA that issues the client certificates",
            )
        })?;
        let ca_der = load::load_certs("CA_CRT", ca_path)?;
        let crls = load::load_crls(&config.ca_crl)?;
        let material = Material {
            chain,
            key,
            ca_der,
            crls,
            ca_path,
        };
        Ok(Self::build(config, verification, material, sessions)?)
    }

    fn build(
        config: &TlsFiles,
        verification: &Verification,
        material: Material<'_>,
        sessions: &Sessions,
    ) -> Result<TlsState, LoadError> {
        let Material {
            chain,
            key,
            ca_der,
            crls,
            ca_path,
        } = material;
        let provider = provider();
        let (crt_key, crt_path) = server_cert_key(config);
        let server_cert = CertInfo::from_der(chain[0].as_ref()).map_err(|e| {
            LoadError::new(
                crt_key,
                crt_path,
                format!("cannot read the certificate: {e}"),
                "replace it",
            )
        })?;
        // the intermediates SERVER_CRT sends with it: browsers refuse the
        // chain once one of them runs out, so their dates are warned about too
        let server_intermediates: Vec<CertInfo> = chain[1..]
            .iter()
            .filter_map(|der| CertInfo::from_der(der.as_ref()).ok())
            .collect();
        let server_auth = crate::x509::serves_tls(chain[0].as_ref());
        let mut roots = RootCertStore::empty();
        // each certificate of CA_CRT alone, for the verifier of its own chains
        let mut alone = Vec::new();
        let mut ca_certs = Vec::new();
        for der in &ca_der {
            let mut store = RootCertStore::empty();
            store.add(der.clone()).map_err(|e| {
                LoadError::new(
                    "CA_CRT",
                    ca_path,
                    format!("not usable as a CA certificate: {e}"),
                    "use orca-catool's ca.crt",
                )
            })?;
            roots.roots.extend(store.roots.iter().cloned());
            alone.push((der.clone(), store));
            let info = CertInfo::from_der(der.as_ref()).map_err(|e| {
                LoadError::new(
                    "CA_CRT",
                    ca_path,
                    format!("cannot read: {e}"),
                    "use orca-catool's ca.crt",
                )
            })?;
            ca_certs.push(info);
        }
        let mut crl_infos = Vec::new();
        for (path, crl) in &crls {
            crl_infos.push(crl::check(path, crl, &ca_der)?);
        }
        let server_chain = server_chain(&chain, &ca_der);
        let judging_inputs = judging_inputs(verification, &ca_der, &crls);
        let crl_deadline = match verification.crl_stale {
            CrlStale::Refuse => crl::deadline(&crl_infos),
            CrlStale::Warn => None,
        };
        let crl_path = config
            .ca_crl
            .first()
            .map(|p| p.as_path())
            .unwrap_or(&config.config_path);
        let webpki = |roots: RootCertStore, crls: Vec<CertificateRevocationListDer<'static>>| {
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .with_crls(crls)
                // A CRL covers the CA that signed it; certificates of other CAs in
                // CA_CRT are not refused for lack of one.
                .allow_unknown_revocation_status()
                .build()
                .map_err(|e| {
                    LoadError::new(
                        "CA_CRL",
                        crl_path,
                        format!("cannot be used with CA_CRT: {e}"),
                        "make a new CRL with orca-catool issue_crl",
                    )
                })
        };
        let inner = webpki(roots, crls.iter().map(|(_, c)| c.clone()).collect())?;
        // Each certificate of CA_CRT judges the chains that end at it, with
        // CA_CRL less the CRLs of other CAs of its name (see `crl::judging`).
        let mut anchors = Vec::new();
        for (der, store) in alone {
            let verifier = webpki(store, crl::judging(&der, &crls))?;
            anchors.push((der, verifier));
        }
        let verifier = Arc::new(
            ClientVerifier::new(
                inner,
                verification.client_cert_errors,
                verification.allow_cn.as_deref(),
            )
            .with_crl_deadline(crl_deadline)
            .with_anchors(anchors),
        );
        let signing_key = provider.key_provider.load_private_key(key).map_err(|e| {
            let (k, p) = server_key_key(config);
            LoadError::new(
                k,
                p,
                format!("unsupported private key: {e}"),
                "use an RSA (2048-4096) or ECDSA P-256/P-384 key",
            )
        })?;
        let certified = CertifiedKey::new(chain, signing_key);
        certified.keys_match().map_err(|_| {
            let (k, p) = server_key_key(config);
            LoadError::new(
                k,
                p,
                format!(
                    "the private key does not match the certificate in {}: {}",
                    crt_path.display(),
                    mismatch_reason(&certified)
                ),
                format!("use the key issued together with {crt_key} (same NNNNNN__JP_orca_ name)"),
            )
        })?;
        let mut server_config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| {
                LoadError::new(
                    crt_key,
                    crt_path,
                    format!("TLS setup failed: {e}"),
                    "report this",
                )
            })?
            .with_client_cert_verifier(verifier.clone())
            .with_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(Arc::new(
                certified,
            ))));
        // `http/1.0` too, as nginx offers it: `curl --http1.0` and old
        // scripts ask for it, and rustls refuses a client whose every
        // protocol is unknown (RFC 7301 §3.2)
        server_config.alpn_protocols =
            vec![b"h2".to_vec(), b"http/1.1".to_vec(), b"http/1.0".to_vec()];
        if verification.client_cert_errors == ClientCertErrors::Handshake {
            // A resumed session skips the verifier, so a certificate refused
            // since its first handshake could be told only by a dropped
            // connection: here every handshake is a full one, and a refusal
            // is the TLS alert this mode promises.
            server_config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
            server_config.send_tls13_tickets = 0;
        } else {
            server_config.session_storage = sessions.cache.clone();
            server_config.ticketer = sessions.ticketer.clone();
        }
        let ca_subjects: Arc<[String]> =
            ca_certs.iter().map(|c| c.subject_oneline.clone()).collect();
        Ok(TlsState {
            server_config: Arc::new(server_config),
            verifier,
            server_cert,
            server_intermediates,
            server_auth,
            ca_certs,
            crls: crl_infos,
            ca_subjects,
            judging_inputs,
            server_chain,
            generation: 0,
            crl_stale: verification.crl_stale,
            policy: None,
        })
    }

    /// The state judging requests by `policy` too (ACCESS_POLICY): its file
    /// name and contents join the judging inputs, so a reload that changes
    /// the rules gives the next judgement generation and every open
    /// connection (WebSockets too) is judged again.
    pub fn with_policy(mut self, policy: Option<Policy>) -> TlsState {
        use sha2::Digest as _;
        if let Some(policy) = &policy {
            let mut h = sha2::Sha256::new();
            h.update(self.judging_inputs);
            let file = policy.file().as_os_str().as_encoded_bytes();
            for (tag, bytes) in [(&b"policy-file"[..], file), (b"policy", policy.contents())] {
                h.update(tag);
                h.update((bytes.len() as u64).to_be_bytes());
                h.update(bytes);
            }
            self.judging_inputs = h.finalize().into();
        }
        self.policy = policy.map(Arc::new);
        self
    }
}

/// SHA-256 over everything a client verdict depends on besides the clock.
fn judging_inputs(
    verification: &Verification,
    ca_der: &[CertificateDer<'_>],
    crls: &[(
        std::path::PathBuf,
        rustls::pki_types::CertificateRevocationListDer<'_>,
    )],
) -> [u8; 32] {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    let mut part = |tag: &[u8], bytes: &[u8]| {
        h.update(tag);
        h.update((bytes.len() as u64).to_be_bytes());
        h.update(bytes);
    };
    for der in ca_der {
        part(b"ca", der.as_ref());
    }
    for (_, crl) in crls {
        part(b"crl", crl.as_ref());
    }
    if let Some(list) = &verification.allow_cn {
        let mut names: Vec<&str> = list.iter().map(String::as_str).collect();
        names.sort_unstable();
        for n in names {
            part(b"cn", n.as_bytes());
        }
    } else {
        part(b"any-cn", b"");
    }
    let mode = format!(
        "{:?}/{:?}",
        verification.client_cert_errors, verification.crl_stale
    );
    part(b"mode", mode.as_bytes());
    h.finalize().into()
}

/// The certificate material read from disk, before it is checked and assembled.
struct Material<'a> {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    ca_der: Vec<CertificateDer<'static>>,
    crls: Vec<(
        std::path::PathBuf,
        rustls::pki_types::CertificateRevocationListDer<'static>,
    )>,
    ca_path: &'a std::path::Path,
}

/// Why `certified`'s key does not go with its chain, in words (rustls says
/// only `KeyMismatch`): when it is the key of a later certificate of the
/// chain, the chain is in the wrong order, since the server's certificate
/// must come first.
pub fn mismatch_reason(certified: &CertifiedKey) -> String {
    let later = certified.cert.iter().skip(1).position(|c| {
        CertifiedKey::new(vec![c.clone()], certified.key.clone())
            .keys_match()
            .is_ok()
    });
    match later {
        Some(i) => format!(
            "it is the key of certificate {} of the file, so the certificates are in the wrong order: the server's certificate must come first, then its intermediates",
            i + 2
        ),
        None => "its public key is not the certificate's".to_string(),
    }
}

/// The key and file the server certificate came from.
pub fn server_cert_key(config: &TlsFiles) -> (&'static str, &std::path::Path) {
    match (&config.server_p12, &config.server_crt) {
        (Some(p), _) => ("SERVER_P12", p),
        (None, Some(p)) => ("SERVER_CRT", p),
        (None, None) => ("SERVER_CRT", &config.config_path),
    }
}

/// The key and file the server's private key came from.
fn server_key_key(config: &TlsFiles) -> (&'static str, &std::path::Path) {
    match (&config.server_p12, &config.server_pem) {
        (Some(p), _) => ("SERVER_P12", p),
        (None, Some(p)) => ("SERVER_PEM", p),
        (None, None) => ("SERVER_PEM", &config.config_path),
    }
}

/// SERVER_P12 (orca-catool's `.p12`) opened with SERVER_PASS_FILE.
fn load_p12(
    p12: &std::path::Path,
    pass_file: Option<&std::path::Path>,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), KeyError> {
    let Some(pass_file) = pass_file else {
        return Err(KeyError::PassphraseNeeded(LoadError::new(
            "SERVER_P12",
            p12,
            "a PKCS#12 file needs its passphrase and SERVER_PASS_FILE is not set",
            "set SERVER_PASS_FILE to the .pass file issued with the .p12",
        )));
    };
    let data = load::read_file("SERVER_P12", p12)?;
    let pass = load::read_pass(pass_file)?;
    keys::open_p12(&data, &pass).map_err(|e| load::open_error("SERVER_P12", p12, pass_file, &e))
}

fn load_server_identity(
    config: &TlsFiles,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), KeyError> {
    if let Some(p12) = &config.server_p12 {
        return load_p12(p12, config.server_pass_file.as_deref());
    }
    let (Some(crt), Some(pem)) = (&config.server_crt, &config.server_pem) else {
        return Err(KeyError::Other(LoadError::new(
            "SERVER_CRT",
            &config.config_path,
            "SERVER_CRT and SERVER_PEM must both be set",
            "set both, as in WebORCA's jma-receipt.conf",
        )));
    };
    let chain = load::load_certs("SERVER_CRT", crt)?;
    let key = load::load_key("SERVER_PEM", pem, config.server_pass_file.as_deref())?;
    Ok((chain, key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

    /// A CA named `cn` (a new key each time): its certificate and issuer.
    fn ca(cn: &str) -> (CertificateDer<'static>, Issuer<'static, KeyPair>) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let der = params.self_signed(&key).unwrap().der().clone();
        (der, Issuer::new(params, key))
    }

    fn leaf(by: &Issuer<'_, KeyPair>) -> CertificateDer<'static> {
        let key = KeyPair::generate().unwrap();
        let params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params.signed_by(&key, by).unwrap().der().clone()
    }

    #[test]
    fn a_key_mismatch_says_when_the_chain_is_in_the_wrong_order() {
        let (_, issuer) = ca("clinic-ca");
        let key = KeyPair::generate().unwrap();
        let params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        let ours = params.signed_by(&key, &issuer).unwrap().der().clone();
        let other = leaf(&issuer);
        let der = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap();
        let signing = provider().key_provider.load_private_key(der).unwrap();
        let swapped = CertifiedKey::new(vec![other.clone(), ours], signing.clone());
        assert!(swapped.keys_match().is_err());
        assert!(mismatch_reason(&swapped).contains("certificate 2 of the file"));
        let wrong = CertifiedKey::new(vec![other], signing);
        assert_eq!(
            mismatch_reason(&wrong),
            "its public key is not the certificate's"
        );
    }

    #[test]
    fn the_server_chain_is_checked_by_signature_not_by_name() {
        let (root, root_issuer) = ca("clinic-ca");
        let (again, again_issuer) = ca("clinic-ca");
        let (other, _) = ca("other-ca");
        // directly, and through an intermediate
        assert_eq!(
            server_chain(&[leaf(&root_issuer)], std::slice::from_ref(&root)),
            ServerChain::Verified
        );
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "clinic-sub-ca");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let sub = params.signed_by(&key, &root_issuer).unwrap().der().clone();
        let sub_issuer = Issuer::new(params, key);
        let by_sub = leaf(&sub_issuer);
        assert_eq!(
            server_chain(&[by_sub.clone(), sub.clone()], std::slice::from_ref(&root)),
            ServerChain::Verified
        );
        // without the intermediate it cannot be shown; nor against another CA
        assert_eq!(
            server_chain(std::slice::from_ref(&by_sub), std::slice::from_ref(&root)),
            ServerChain::Unknown
        );
        assert_eq!(
            server_chain(&[by_sub, sub], std::slice::from_ref(&other)),
            ServerChain::Unknown
        );
        // a CA made again under the same name: its key did not sign
        assert_eq!(
            server_chain(&[leaf(&again_issuer)], std::slice::from_ref(&root)),
            ServerChain::WrongKey
        );
        assert_eq!(
            server_chain(&[leaf(&root_issuer)], &[again, root.clone()]),
            ServerChain::Verified
        );
        // self-signed, and garbage
        assert_eq!(
            server_chain(std::slice::from_ref(&other), std::slice::from_ref(&root)),
            ServerChain::Unknown
        );
        let garbage = CertificateDer::from(vec![0x30, 0x03, 0x01, 0x01, 0xff]);
        assert_eq!(
            server_chain(std::slice::from_ref(&garbage), std::slice::from_ref(&root)),
            ServerChain::Unknown
        );
        assert_eq!(
            server_chain(&[], std::slice::from_ref(&root)),
            ServerChain::Unknown
        );
        assert_eq!(
            server_chain(&[leaf(&root_issuer)], &[garbage]),
            ServerChain::Unknown
        );
    }
}
