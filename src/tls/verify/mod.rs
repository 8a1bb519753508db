//! Deciding who is allowed in: the client-certificate verifier handed to rustls,
//! and the per-connection verdict (an [`Identity`] or a [`Refusal`]).
//!
//! Chain, validity and CRL checks are rustls' own `WebPkiClientVerifier`; this
//! module only wraps it. It differs from the plain verifier in three ways:
//!
//! - with `CLIENT_CERT_ERRORS=page` the handshake accepts any certificate the
//!   client proves it holds, and the real verdict is taken right after the
//!   handshake, so the client can be shown a page saying what is wrong. Nothing
//!   reaches the backend unless that verdict is an [`Identity`].
//! - `ALLOW_CN` is checked after the chain.
//! - a chain is judged by a WebPKI verifier of the CA_CRT certificate it ends
//!   at, with the CRLs of that CA (`anchors.rs`): WebPKI reads the first CRL
//!   of a certificate's issuer *name*, and two CAs of CA_CRT may share one.
//!
//! The verdict is taken again on every connection, resumed ones too: a session
//! ticket must not outlive a revocation, an expiry or a new CA.
//!
//! This file holds the verifier; the verdict and its reasons are in
//! `verdict.rs`, the chains already accepted in `cache.rs`.

mod anchors;
mod cache;
mod verdict;

pub use verdict::{CertErrorKind, IDENTITY_HEADERS, Identity, Refusal, classify};

use std::collections::HashSet;
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, Error, HandshakeKind,
    SignatureScheme,
};

use crate::config::ClientCertErrors;
use crate::x509::CertInfo;
use anchors::{Anchor, Anchors};
use cache::VerdictCache;

/// The certificate refused in a handshake (`CLIENT_CERT_ERRORS=handshake`),
/// for the line that logs the refusal. rustls' error says why, not whose:
/// the verifier, called while the task that accepts the connection polls
/// the handshake, leaves it here when that task has set one up ([`named`]).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RefusedCert {
    /// the CN, `-` when it has none
    pub cn: String,
    /// the serial, hex
    pub serial: String,
    /// the subject, one-line form
    pub subject: String,
    /// the client did not prove that it holds the certificate's key (its
    /// handshake signature is not the certificate's): someone else's
    /// certificate, shown without its key
    pub no_key: bool,
    /// the certificate is one this TLS stack cannot verify a handshake
    /// signature with at all (X.509 v1, an unknown critical extension, an
    /// RSA key under 2048 bits): not a sign of a stolen certificate
    pub unsupported: bool,
}

tokio::task_local! {
    static REFUSED_IN_HANDSHAKE: std::cell::RefCell<Option<RefusedCert>>;
}

/// Runs `handshake` so that a certificate the verifier refuses in it is
/// given back with its outcome.
pub async fn named<T>(handshake: impl std::future::Future<Output = T>) -> (T, Option<RefusedCert>) {
    REFUSED_IN_HANDSHAKE
        .scope(std::cell::RefCell::new(None), async {
            let outcome = handshake.await;
            (outcome, REFUSED_IN_HANDSHAKE.with(|r| r.take()))
        })
        .await
}

/// Leaves the refused `end_entity` for [`named`], when the handshake runs in
/// it; `no_key`: refused for a handshake signature that is not its key's.
fn note_refused(end_entity: &CertificateDer<'_>, no_key: bool) {
    note(end_entity, no_key, false);
}

fn note(end_entity: &CertificateDer<'_>, no_key: bool, unsupported: bool) {
    let _ = REFUSED_IN_HANDSHAKE.try_with(|r| {
        *r.borrow_mut() = CertInfo::from_der(end_entity.as_ref())
            .ok()
            .map(|i| RefusedCert {
                cn: i.common_name.unwrap_or_else(|| "-".to_string()),
                serial: i.serial_hex,
                subject: i.subject_oneline,
                no_key,
                unsupported,
            });
    });
}

/// A handshake signature of `cert` failed with `e`: the client does not
/// hold the certificate's key (a bad signature with a key this stack takes),
/// or the certificate cannot be used here at all.
fn signature_refused(cert: &CertificateDer<'_>, e: &Error) {
    let bad = matches!(
        e,
        Error::InvalidCertificate(rustls::CertificateError::BadSignature)
    );
    if bad && !weak_rsa(cert) {
        note(cert, true, false);
    } else {
        note(cert, false, true);
    }
}

/// Whether `cert`'s key is RSA under 2048 bits, which the signature checks
/// refuse as they refuse a wrong signature.
fn weak_rsa(cert: &CertificateDer<'_>) -> bool {
    use x509_parser::public_key::PublicKey;
    let Ok((_, parsed)) = x509_parser::parse_x509_certificate(cert.as_ref()) else {
        return false;
    };
    matches!(parsed.public_key().parsed(), Ok(PublicKey::RSA(rsa)) if rsa.key_size() < 2048)
}

/// The verifier given to rustls, and the judge of each connection after the handshake.
#[derive(Debug)]
pub struct ClientVerifier {
    /// rustls' WebPKI verifier over CA_CRT and CA_CRL: the CA names asked
    /// for, the handshake signatures, and the chains that end at no
    /// certificate of `anchors`
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
    /// the certificates of CA_CRT, whose dates WebPKI does not judge, each
    /// with the verifier of the chains that end at it
    anchors: Anchors,
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
            anchors: Anchors::default(),
        }
    }

    /// The verifier judging a chain by the CA_CRT certificate it ends at
    /// (see `anchors.rs`): each of `anchors` is a certificate of CA_CRT
    /// with a WebPKI verifier trusting it alone, with the CRLs of its
    /// clients. The anchor's dates are judged too.
    pub fn with_anchors(
        mut self,
        anchors: impl IntoIterator<Item = (CertificateDer<'static>, Arc<dyn ClientCertVerifier>)>,
    ) -> Self {
        self.anchors = Anchors::new(anchors);
        self
    }

    /// The WebPKI verifier of a chain that ends at `anchor` (from
    /// [`Anchors::of`]): the anchor's own, or the one over all of CA_CRT
    /// when it ends at none.
    fn webpki<'a>(&'a self, anchor: Option<&'a Anchor>) -> &'a dyn ClientCertVerifier {
        anchor.map_or(self.inner.as_ref(), |a| a.verifier.as_ref())
    }

    /// Where an accepted `chain` (leaf first) is within its dates, Unix
    /// seconds: every certificate sent, and the CA_CRT certificate it ends at.
    pub fn window(&self, chain: &[CertificateDer<'_>]) -> (i64, i64) {
        let (from, until) = crate::tls::judgement::chain_window(chain);
        match chain.split_first().and_then(|(l, i)| self.anchors.of(l, i)) {
            Some(anchor) => {
                let (a_from, a_until) = anchor.window();
                (from.max(a_from), until.min(a_until))
            }
            None => (from, until),
        }
    }

    /// The WebPKI verdict on the chain, and then the dates of the CA_CRT
    /// certificate it ends at; that certificate, when the chain passes.
    fn verify_chain(
        &self,
        leaf: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<Option<&Anchor>, Error> {
        let anchor = self.anchors.of(leaf, intermediates);
        self.webpki(anchor)
            .verify_client_cert(leaf, intermediates, now)?;
        let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
        match anchor.map(Anchor::window) {
            Some((_, until)) if now > until => {
                Err(Error::InvalidCertificate(CertificateError::Expired))
            }
            Some((from, _)) if now < from => {
                Err(Error::InvalidCertificate(CertificateError::NotValidYet))
            }
            _ => Ok(anchor),
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
            let info = CertInfo::from_der(leaf.as_ref()).ok();
            // A certificate the chain or the old CRL already refuses (revoked,
            // expired…) is told so: the crl-stale page says the certificate
            // itself is fine, which is only true of the others.
            if let Err(e) = self.verify_chain(leaf, intermediates, now) {
                return Err(self.chain_refused(&e, info, leaf, intermediates, now));
            }
            if let Some(i) = &info
                && !self.cn_allowed(i.common_name.as_deref())
            {
                let cn = i.common_name.as_deref().unwrap_or("");
                let detail = format!("CN {cn:?} is not in ALLOW_CN");
                return Err(Refusal::new(CertErrorKind::NotAllowed, info, detail));
            }
            stale.info = info;
            return Err(stale);
        }
        let key = VerdictCache::key(chain);
        if let Some(id) = self.cache.get(&key, now) {
            return Ok(id);
        }
        let info = CertInfo::from_der(leaf.as_ref()).ok();
        let anchor = match self.verify_chain(leaf, intermediates, now) {
            Ok(anchor) => anchor,
            Err(e) => return Err(self.chain_refused(&e, info, leaf, intermediates, now)),
        };
        let Some(info) = info else {
            let detail = "the certificate verified but its fields cannot be read";
            return Err(Refusal::new(CertErrorKind::UnknownCa, None, detail.into()));
        };
        if !self.cn_allowed(info.common_name.as_deref()) {
            let cn = info.common_name.as_deref().unwrap_or("");
            let detail = format!("CN {cn:?} is not in ALLOW_CN");
            return Err(Refusal::new(CertErrorKind::NotAllowed, Some(info), detail));
        }
        let id = Identity::new(info, leaf.as_ref(), anchor.map(|a| a.sha256.clone()));
        self.cache.put(key, &id, self.window(chain));
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
            && let Some((leaf, intermediates)) = chain.split_first()
            && let Ok(info) = CertInfo::from_der(leaf.as_ref())
        {
            if let Some(mut stale) = self.crl_stale(UnixTime::now()) {
                stale.info = Some(info);
                return Err(stale);
            }
            // found again (rustls' verdict does not say it): a few parses
            // and name comparisons, once per full handshake
            let ca = self
                .anchors
                .of(leaf, intermediates)
                .map(|a| a.sha256.clone());
            return Ok(Identity::new(info, leaf.as_ref(), ca));
        }
        self.check(chain, UnixTime::now())
    }

    /// The refusal of a chain refused with `e`. An `expired` chain whose
    /// leaf is itself within its dates names the CA certificate that has
    /// expired (one the client sent, or the CA_CRT one the chain ends at),
    /// so the page does not tell the user that their own certificate, whose
    /// dates it shows as valid, has expired.
    fn chain_refused(
        &self,
        e: &Error,
        info: Option<CertInfo>,
        leaf: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Box<Refusal> {
        let e = self.deeper(e.clone(), leaf, intermediates);
        let kind = classify(&e);
        let mut refusal = Refusal::new(kind, info, e.to_string());
        let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
        let leaf_valid = refusal
            .info
            .as_ref()
            .is_some_and(|i| i.not_after.timestamp() >= now);
        if kind == CertErrorKind::Expired && leaf_valid {
            refusal.expired_ca = intermediates
                .iter()
                .filter_map(|c| CertInfo::from_der(c.as_ref()).ok())
                .find(|i| i.not_after.timestamp() < now)
                .or_else(|| {
                    self.anchors
                        .of(leaf, intermediates)
                        .filter(|a| a.window().1 < now)
                        .map(|a| a.info.clone())
                });
            if let Some(ca) = &refusal.expired_ca {
                let at = ca.not_after.to_rfc3339();
                refusal.detail = format!(
                    "{}: the CA certificate {} expired at {at}",
                    refusal.detail, ca.subject_oneline
                );
            }
        }
        refusal
    }

    /// WebPKI judges dates before signatures, so a certificate anyone made
    /// (a CN and serial of the clinic's, dates in the past) is refused as
    /// `expired` without its issuer ever being looked at. A date refusal is
    /// kept only when the chain verifies at a time inside its dates;
    /// otherwise the reason found then (`unknown-ca`, `revoked`…) is the
    /// refusal, with its words. (`e` as it is for any other refusal.)
    fn deeper(
        &self,
        e: Error,
        leaf: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
    ) -> Error {
        let dated = [CertErrorKind::Expired, CertErrorKind::NotYetValid];
        let kind = classify(&e);
        if !dated.contains(&kind) {
            return e;
        }
        let mut chain = vec![leaf.clone()];
        chain.extend(intermediates.iter().cloned());
        let (from, until) = crate::tls::judgement::chain_window(&chain);
        let at = if kind == CertErrorKind::Expired {
            until
        } else {
            from
        };
        let Ok(at) = u64::try_from(at) else {
            return e;
        };
        if from > until {
            return e;
        }
        let then = UnixTime::since_unix_epoch(std::time::Duration::from_secs(at));
        match self
            .webpki(self.anchors.of(leaf, intermediates))
            .verify_client_cert(leaf, intermediates, then)
        {
            Err(deeper) if !dated.contains(&classify(&deeper)) => deeper,
            _ => e,
        }
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
        if let Err(e) = self.verify_chain(end_entity, intermediates, now) {
            note_refused(end_entity, false);
            return Err(self.deeper(e, end_entity, intermediates));
        }
        if self.allow_cn.is_some() {
            let cn = CertInfo::from_der(end_entity.as_ref())
                .ok()
                .and_then(|i| i.common_name);
            if !self.cn_allowed(cn.as_deref()) {
                note_refused(end_entity, false);
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
        self.inner
            .verify_tls12_signature(message, cert, dss)
            .inspect_err(|e| signature_refused(cert, e))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner
            .verify_tls13_signature(message, cert, dss)
            .inspect_err(|e| signature_refused(cert, e))
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod weak_key_tests {
    use super::*;

    #[test]
    fn an_rsa_key_under_2048_bits_is_told_from_a_wrong_key() {
        // made with `openssl req -x509 -newkey rsa:1024` (and rsa:2048)
        let short = include_bytes!("../../../tests/data/rsa1024-client.der");
        let long = include_bytes!("../../../tests/data/rsa2048-client.der");
        assert!(weak_rsa(&CertificateDer::from(&short[..])));
        assert!(!weak_rsa(&CertificateDer::from(&long[..])));
        assert!(!weak_rsa(&CertificateDer::from(&b"garbage"[..])));
    }
}
