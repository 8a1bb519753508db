//! The CA certificate of CA_CRT a chain ends at: its dates, and the
//! verifier that judges the chains ending at it.
//!
//! rustls' WebPKI verifier takes every certificate of CA_CRT as a trust
//! anchor and, as WebPKI does, never looks at an anchor's validity period.
//! A clinic's CA_CRT may hold an intermediate CA next to its root, or a CA
//! kept there after it expired; a client certificate issued by such a CA
//! would be accepted, where OpenSSL and Go's crypto/x509 (which WebORCA's
//! own TLS uses) refuse it. So the anchor a verified chain ends at is found
//! here the way WebPKI finds it (from the leaf up, an anchor that issued the
//! certificate first, else a certificate the client sent), and its dates
//! are judged like the chain's.
//!
//! Each anchor has its own WebPKI verifier, trusting that anchor alone and
//! holding the CRLs for its clients ([`crate::tls::crl::judging`]): WebPKI
//! picks a CRL by its issuer's name, and two CAs of CA_CRT may share one.

use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::server::danger::ClientCertVerifier;
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer as _;

use crate::x509::CertInfo;

/// One certificate of CA_CRT: what finding it needs, its dates and its verifier.
#[derive(Debug)]
pub(super) struct Anchor {
    der: Vec<u8>,
    /// its fields, for the page naming a CA that has expired
    pub(super) info: CertInfo,
    /// its SHA-256 fingerprint, shared by the identities of its clients
    /// (an `Arc` so that naming it costs a client no copy)
    pub(super) sha256: Arc<str>,
    not_before: i64,
    not_after: i64,
    /// a WebPKI verifier trusting this certificate alone, with the CRLs
    /// that judge its clients
    pub(super) verifier: Arc<dyn ClientCertVerifier>,
}

impl Anchor {
    /// Its validity, Unix seconds.
    pub(super) fn window(&self) -> (i64, i64) {
        (self.not_before, self.not_after)
    }
}

/// The certificates of CA_CRT, for their dates and their verifiers.
#[derive(Debug, Default)]
pub(super) struct Anchors {
    anchors: Vec<Anchor>,
}

impl Anchors {
    /// The certificates of CA_CRT, each with its verifier (any that cannot
    /// be read are left out: loading CA_CRT has already refused those).
    pub(super) fn new(
        ca: impl IntoIterator<Item = (CertificateDer<'static>, Arc<dyn ClientCertVerifier>)>,
    ) -> Anchors {
        let anchors = ca
            .into_iter()
            .filter_map(|(der, verifier)| {
                let (_, cert) = X509Certificate::from_der(der.as_ref()).ok()?;
                let v = cert.validity();
                let info = CertInfo::from_der(der.as_ref()).ok()?;
                Some(Anchor {
                    sha256: Arc::from(info.sha256_hex.as_str()),
                    info,
                    not_before: v.not_before.timestamp(),
                    not_after: v.not_after.timestamp(),
                    der: der.as_ref().to_vec(),
                    verifier,
                })
            })
            .collect();
        Anchors { anchors }
    }

    /// The CA certificate of CA_CRT that the chain of `leaf` and
    /// `intermediates` ends at, when one is found.
    pub(super) fn of(
        &self,
        leaf: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
    ) -> Option<&Anchor> {
        fn parse<'a>(der: &'a CertificateDer<'_>) -> Option<X509Certificate<'a>> {
            X509Certificate::from_der(der.as_ref()).map(|(_, c)| c).ok()
        }
        let intermediates: Vec<X509Certificate<'_>> =
            intermediates.iter().map(parse).collect::<Option<_>>()?;
        let leaf = parse(leaf)?;
        let mut top = &leaf;
        // at most one step per certificate sent: a loop of issuers ends
        for _ in 0..=intermediates.len() {
            if let Some(anchor) = self.anchors.iter().find(|a| issued(&a.der, top)) {
                return Some(anchor);
            }
            top = intermediates.iter().find(|c| issued_by(top, c))?;
        }
        None
    }
}

/// Whether the CA certificate `ca_der` issued `cert`.
fn issued(ca_der: &[u8], cert: &X509Certificate<'_>) -> bool {
    X509Certificate::from_der(ca_der).is_ok_and(|(_, ca)| issued_by(cert, &ca))
}

/// Whether `ca` issued `cert`: its subject is the issuer, and the key
/// identifiers agree when both name one, else the signature verifies.
fn issued_by(cert: &X509Certificate<'_>, ca: &X509Certificate<'_>) -> bool {
    if cert.issuer().as_raw() != ca.subject().as_raw() {
        return false;
    }
    let aki = cert
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            x509_parser::extensions::ParsedExtension::AuthorityKeyIdentifier(aki) => {
                aki.key_identifier.as_ref().map(|k| k.0)
            }
            _ => None,
        });
    let ski = ca
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(ski) => Some(ski.0),
            _ => None,
        });
    match (aki, ski) {
        (Some(a), Some(s)) => a == s,
        _ => cert.verify_signature(Some(ca.public_key())).is_ok(),
    }
}
