//! Deciding who is allowed in: the client-certificate verifier handed to rustls,
//! and the per-connection verdict (an [`Identity`] or a [`Refusal`]).
//!
//! Chain, validity and CRL checks are rustls' own `WebPkiClientVerifier`; this
//! module only wraps it. It differs from the plain verifier in two ways:
//!
//! - with `CLIENT_CERT_ERRORS=page` the handshake accepts any certificate the
//!   client proves it holds, and the real verdict is taken right after the
//!   handshake, so the client can be shown a page saying what is wrong. Nothing
//!   reaches the backend unless that verdict is an [`Identity`].
//! - `ALLOW_CN` is checked after the chain.
//!
//! The verdict is taken again on every connection, resumed ones too: a session
//! ticket must not outlive a revocation, an expiry or a new CA.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use http::{HeaderName, HeaderValue};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, Error, HandshakeKind,
    SignatureScheme,
};

use crate::config::ClientCertErrors;
use crate::x509::CertInfo;

/// Why a client certificate was refused; the value of the
/// `X-Client-Cert-Error` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CertErrorKind {
    /// No client certificate was sent.
    Missing,
    /// The certificate's notAfter has passed.
    Expired,
    /// The certificate's notBefore is still in the future.
    NotYetValid,
    /// The certificate does not chain to an accepted CA.
    UnknownCa,
    /// The certificate is on the CRL.
    Revoked,
    /// The certificate is valid but its subject is not in ALLOW_CN.
    NotAllowed,
    /// CA_CRL is past its nextUpdate and CRL_STALE=refuse.
    CrlStale,
    /// The certificate passes, but ACCESS_POLICY does not let it use the
    /// path asked for (a refusal of one request, not of the connection).
    NotPermitted,
}

impl CertErrorKind {
    /// Machine-readable reason code, also shown on the page.
    pub fn as_str(self) -> &'static str {
        match self {
            CertErrorKind::Missing => "missing",
            CertErrorKind::Expired => "expired",
            CertErrorKind::NotYetValid => "not-yet-valid",
            CertErrorKind::UnknownCa => "unknown-ca",
            CertErrorKind::Revoked => "revoked",
            CertErrorKind::NotAllowed => "not-allowed",
            CertErrorKind::CrlStale => "crl-stale",
            CertErrorKind::NotPermitted => "not-permitted",
        }
    }
}

impl fmt::Display for CertErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The identity headers this proxy sets, and strips from every client request.
pub const IDENTITY_HEADERS: [&str; 8] = [
    "x-ssl-client-verify",
    "x-ssl-client-s-dn",
    "x-ssl-client-i-dn",
    "x-ssl-client-serial",
    "x-ssl-client-fingerprint",
    "x-ssl-client-not-after",
    "client-cert",
    "client-cert-chain",
];

/// A verified client: its certificate's fields and the headers that tell the
/// backend who it is, formatted once per connection rather than per request.
#[derive(Debug, Clone)]
pub struct Identity {
    /// the client certificate's fields
    pub info: CertInfo,
    /// `X-SSL-Client-*` and `Client-Cert` (RFC 9440), ready to insert
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl Identity {
    fn new(info: CertInfo, der: &[u8]) -> Identity {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        let not_after = info
            .not_after
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let pairs: [(&'static str, String); 7] = [
            ("x-ssl-client-verify", "SUCCESS".to_string()),
            ("x-ssl-client-s-dn", info.subject_rfc4514.clone()),
            ("x-ssl-client-i-dn", info.issuer_rfc4514.clone()),
            ("x-ssl-client-serial", info.serial_hex.clone()),
            ("x-ssl-client-fingerprint", info.sha256_hex.clone()),
            ("x-ssl-client-not-after", not_after),
            ("client-cert", format!(":{b64}:")),
        ];
        let headers = pairs
            .into_iter()
            // RFC 4514 escaping leaves no control characters; a value that still
            // cannot be a header is left out rather than sent mangled.
            .filter_map(|(name, value)| {
                Some((
                    HeaderName::from_static(name),
                    HeaderValue::from_bytes(value.as_bytes()).ok()?,
                ))
            })
            .collect();
        Identity { info, headers }
    }

    /// The client's CN for logs, or `-`.
    pub fn cn(&self) -> &str {
        self.info.common_name.as_deref().unwrap_or("-")
    }
}

/// Why a client is refused, with what is known of its certificate.
#[derive(Debug)]
pub struct Refusal {
    /// the reason, also the `X-Client-Cert-Error` value
    pub kind: CertErrorKind,
    /// the refused certificate's fields, when it could be parsed
    pub info: Option<CertInfo>,
    /// the verifier's own words, for the log and the page's detail box
    pub detail: String,
}

impl Refusal {
    fn new(kind: CertErrorKind, info: Option<CertInfo>, detail: String) -> Box<Refusal> {
        Box::new(Refusal { kind, info, detail })
    }

    /// No certificate was presented.
    pub fn missing() -> Refusal {
        Refusal {
            kind: CertErrorKind::Missing,
            info: None,
            detail: "no client certificate was sent".into(),
        }
    }
}

/// The verifier given to rustls, and the judge of each connection after the handshake.
#[derive(Debug)]
pub struct ClientVerifier {
    /// rustls' WebPKI verifier over CA_CRT and CA_CRL: chain, dates, revocation
    inner: Arc<dyn ClientCertVerifier>,
    /// whether refusals are TLS alerts (`handshake`) or pages after the handshake (`page`)
    mode: ClientCertErrors,
    /// ALLOW_CN, when set
    allow_cn: Option<HashSet<String>>,
    /// chains already verified by this verifier (see [`VerdictCache`])
    cache: VerdictCache,
    /// with CRL_STALE=refuse, the earliest nextUpdate of CA_CRL (Unix
    /// seconds): past it every client is refused as `crl-stale`
    crl_deadline: Option<i64>,
}

/// How many verified chains a verifier remembers.
const VERDICT_CACHE_SIZE: usize = 4096;
/// Longest time a cached verdict is used before the chain is verified again,
/// so that nothing accepted once is remembered without bound.
const VERDICT_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// Chains this verifier has already accepted, by SHA-256 of the whole chain.
///
/// A verifier is built with one CA_CRT and one CA_CRL and is replaced whole on
/// reload, so a chain it accepted stays acceptable for its lifetime except by
/// the clock: an entry is used only while *every* certificate of the chain is
/// inside its validity period (an expired intermediate is refused like an
/// expired leaf), and for at most VERDICT_MAX_AGE. This turns the
/// per-connection chain and CRL signature checks of returning clients
/// (resumed sessions, keep-alive reconnects) into a hash lookup. Refusals are
/// not remembered.
#[derive(Debug, Default)]
struct VerdictCache {
    map: std::sync::Mutex<std::collections::HashMap<[u8; 32], CachedVerdict>>,
}

/// One accepted chain.
#[derive(Debug)]
struct CachedVerdict {
    identity: Identity,
    /// where every certificate of the chain is valid (Unix seconds)
    window: (i64, i64),
    /// when the chain was verified
    at: std::time::Instant,
}

impl VerdictCache {
    fn key(chain: &[CertificateDer<'_>]) -> [u8; 32] {
        use sha2::Digest as _;
        let mut h = sha2::Sha256::new();
        for c in chain {
            h.update((c.len() as u64).to_be_bytes());
            h.update(c.as_ref());
        }
        h.finalize().into()
    }

    fn get(&self, key: &[u8; 32], now: UnixTime) -> Option<Identity> {
        let map = self
            .map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = map.get(key)?;
        let now = i64::try_from(now.as_secs()).ok()?;
        let valid = entry.window.0 <= now && now <= entry.window.1;
        let fresh = entry.at.elapsed() < VERDICT_MAX_AGE;
        (valid && fresh).then(|| entry.identity.clone())
    }

    fn put(&self, key: [u8; 32], id: &Identity, window: (i64, i64)) {
        let mut map = self
            .map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= VERDICT_CACHE_SIZE {
            map.retain(|_, e| e.at.elapsed() < VERDICT_MAX_AGE);
            if map.len() >= VERDICT_CACHE_SIZE {
                map.clear(); // rare; a full re-verification is only a few signature checks
            }
        }
        let entry = CachedVerdict {
            identity: id.clone(),
            window,
            at: std::time::Instant::now(),
        };
        map.insert(key, entry);
    }
}

impl ClientVerifier {
    /// Wraps a WebPKI verifier built over CA_CRT (and CA_CRL).
    pub fn new(
        inner: Arc<dyn ClientCertVerifier>,
        mode: ClientCertErrors,
        allow_cn: Option<&[String]>,
    ) -> Self {
        let allow_cn = allow_cn.map(|list| list.iter().cloned().collect());
        ClientVerifier {
            inner,
            mode,
            allow_cn,
            cache: VerdictCache::default(),
            crl_deadline: None,
        }
    }

    /// The verifier refusing every client as `crl-stale` after `deadline`
    /// (Unix seconds): CRL_STALE=refuse with CA_CRL's earliest nextUpdate.
    pub fn with_crl_deadline(mut self, deadline: Option<i64>) -> Self {
        self.crl_deadline = deadline;
        self
    }

    /// With CRL_STALE=refuse, when CA_CRL goes out of date (Unix seconds).
    pub fn crl_deadline(&self) -> Option<i64> {
        self.crl_deadline
    }

    /// The `crl-stale` refusal, when CRL_STALE=refuse and CA_CRL is past its nextUpdate.
    fn crl_stale(&self, now: UnixTime) -> Option<Box<Refusal>> {
        let deadline = self.crl_deadline?;
        let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
        (now > deadline).then(|| {
            let due = chrono::DateTime::from_timestamp(deadline, 0)
                .map_or_else(String::new, |t| t.to_rfc3339());
            let detail = format!(
                "CA_CRL was due for renewal at {due} (nextUpdate) and CRL_STALE=refuse; make a new CRL with orca-catool issue_crl"
            );
            Refusal::new(CertErrorKind::CrlStale, None, detail)
        })
    }

    /// The full verdict on a chain the client presented (leaf first).
    pub fn check(
        &self,
        chain: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<Identity, Box<Refusal>> {
        let Some((leaf, intermediates)) = chain.split_first() else {
            return Err(Box::new(Refusal::missing()));
        };
        if let Some(mut stale) = self.crl_stale(now) {
            stale.info = CertInfo::from_der(leaf.as_ref()).ok();
            return Err(stale);
        }
        let key = VerdictCache::key(chain);
        if let Some(id) = self.cache.get(&key, now) {
            return Ok(id);
        }
        let info = CertInfo::from_der(leaf.as_ref()).ok();
        if let Err(e) = self.inner.verify_client_cert(leaf, intermediates, now) {
            return Err(Refusal::new(classify(&e), info, e.to_string()));
        }
        let Some(info) = info else {
            let detail = "the certificate verified but its fields cannot be read";
            return Err(Refusal::new(CertErrorKind::UnknownCa, None, detail.into()));
        };
        if !self.cn_allowed(info.common_name.as_deref()) {
            let cn = info.common_name.as_deref().unwrap_or("");
            let detail = format!("CN {cn:?} is not in ALLOW_CN");
            return Err(Refusal::new(CertErrorKind::NotAllowed, Some(info), detail));
        }
        let id = Identity::new(info, leaf.as_ref());
        self.cache
            .put(key, &id, crate::tls::judgement::chain_window(chain));
        Ok(id)
    }

    /// The verdict on an established connection. A full handshake in
    /// `handshake` mode was already judged by rustls; everything else is judged now.
    pub fn judge(
        &self,
        peer: Option<&[CertificateDer<'_>]>,
        kind: Option<HandshakeKind>,
    ) -> Result<Identity, Box<Refusal>> {
        let chain = peer.unwrap_or(&[]);
        if self.mode == ClientCertErrors::Handshake
            && kind == Some(HandshakeKind::Full)
            && let Some(leaf) = chain.first()
            && let Ok(info) = CertInfo::from_der(leaf.as_ref())
        {
            if let Some(mut stale) = self.crl_stale(UnixTime::now()) {
                stale.info = Some(info);
                return Err(stale);
            }
            return Ok(Identity::new(info, leaf.as_ref()));
        }
        self.check(chain, UnixTime::now())
    }

    /// CLIENT_CERT_ERRORS this verifier was built with.
    pub fn mode(&self) -> ClientCertErrors {
        self.mode
    }

    fn cn_allowed(&self, cn: Option<&str>) -> bool {
        match (&self.allow_cn, cn) {
            (None, _) => true,
            (Some(list), Some(cn)) => list.contains(cn),
            (Some(_), None) => false,
        }
    }
}

/// Maps rustls' verdict onto the reasons a client is told about.
pub fn classify(e: &Error) -> CertErrorKind {
    match e {
        Error::InvalidCertificate(ce) => match ce {
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                CertErrorKind::Expired
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                CertErrorKind::NotYetValid
            }
            CertificateError::Revoked => CertErrorKind::Revoked,
            _ => CertErrorKind::UnknownCa,
        },
        _ => CertErrorKind::UnknownCa,
    }
}

impl ClientCertVerifier for ClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mode == ClientCertErrors::Handshake
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        if self.mode == ClientCertErrors::Page {
            // Judged after the handshake (see the module header); the client
            // still has to prove it holds the key, in the signature checks below.
            return Ok(ClientCertVerified::assertion());
        }
        self.inner
            .verify_client_cert(end_entity, intermediates, now)?;
        if self.allow_cn.is_some() {
            let cn = CertInfo::from_der(end_entity.as_ref())
                .ok()
                .and_then(|i| i.common_name);
            if !self.cn_allowed(cn.as_deref()) {
                return Err(Error::InvalidCertificate(
                    CertificateError::ApplicationVerificationFailure,
                ));
            }
        }
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(days: (i64, i64)) -> CertificateDer<'static> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["user1".to_string()]).unwrap();
        let now = rcgen::date_time_ymd(2026, 1, 1);
        params.not_before = now + std::time::Duration::from_secs((days.0 * 86_400) as u64);
        params.not_after = now + std::time::Duration::from_secs((days.1 * 86_400) as u64);
        params.self_signed(&key).unwrap().der().clone()
    }

    #[test]
    fn cached_verdict_is_used_only_inside_the_validity_period() {
        let der = cert((0, 10));
        let info = CertInfo::from_der(der.as_ref()).unwrap();
        let cache = VerdictCache::default();
        let key = VerdictCache::key(std::slice::from_ref(&der));
        let window = crate::tls::judgement::chain_window(std::slice::from_ref(&der));
        cache.put(key, &Identity::new(info.clone(), der.as_ref()), window);
        let at = |t: chrono::DateTime<chrono::Utc>| {
            UnixTime::since_unix_epoch(std::time::Duration::from_secs(t.timestamp() as u64))
        };
        assert!(
            cache
                .get(&key, at(info.not_before + chrono::Duration::days(1)))
                .is_some()
        );
        assert!(
            cache
                .get(&key, at(info.not_after + chrono::Duration::seconds(1)))
                .is_none(),
            "expired since"
        );
        assert!(
            cache
                .get(&key, at(info.not_before - chrono::Duration::seconds(1)))
                .is_none()
        );
        let other = VerdictCache::key(&[der.clone(), der.clone()]);
        assert!(
            cache.get(&other, at(info.not_before)).is_none(),
            "another chain is another key"
        );
    }
}
