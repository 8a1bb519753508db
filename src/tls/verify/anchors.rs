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
    /// `intermediates` ends at, when one is found. (The chain is not
    /// verified yet: that is the found anchor's verifier's work.)
    pub(super) fn of(
        &self,
        leaf: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
    ) -> Option<&Anchor> {
        self.find(leaf, intermediates, &mut { MAX_SIGNATURES })
    }

    /// [`Anchors::of`] within `budget` signature checks, which it spends.
    fn find(
        &self,
        leaf: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        budget: &mut usize,
    ) -> Option<&Anchor> {
        fn parse<'a>(der: &'a CertificateDer<'_>) -> Option<X509Certificate<'a>> {
            X509Certificate::from_der(der.as_ref()).map(|(_, c)| c).ok()
        }
        // what cannot be read is no link of the chain (WebPKI skips it too)
        let intermediates: Vec<X509Certificate<'_>> =
            intermediates.iter().filter_map(parse).collect();
        let leaf = parse(leaf)?;
        let mut used = vec![false; intermediates.len()];
        let mut top = &leaf;
        // each certificate sent is a step once: a loop of issuers ends
        for _ in 0..=intermediates.len().min(MAX_DEPTH) {
            if let Some(anchor) = self.anchors.iter().find(|a| issued(&a.der, top, budget)) {
                return Some(anchor);
            }
            let (i, next) = intermediates
                .iter()
                .enumerate()
                .find(|(i, c)| !used[*i] && issued_by(top, c, budget))?;
            used[i] = true;
            top = next;
        }
        None
    }
}

/// The signatures checked at most to find a chain's anchor. It is looked for
/// before the chain is verified, in the handshake, for a client that has
/// proved nothing yet and may send 64 KiB of certificates of the CA's name
/// signed by nobody: unbounded, that was thousands of signature checks a
/// handshake. A real chain needs one per certificate, at most a handful
/// (WebPKI allows six CAs below the anchor). Past the budget no anchor is
/// found, and the verifier over all of CA_CRT judges (and refuses) it.
const MAX_SIGNATURES: usize = 16;
/// The steps from the leaf up that are followed (WebPKI's six, and some).
const MAX_DEPTH: usize = 8;

/// Whether the CA certificate `ca_der` issued `cert`.
fn issued(ca_der: &[u8], cert: &X509Certificate<'_>, budget: &mut usize) -> bool {
    X509Certificate::from_der(ca_der).is_ok_and(|(_, ca)| issued_by(cert, &ca, budget))
}

/// Whether `ca` issued `cert`: its subject is the issuer, and the key
/// identifiers agree when both name one, else the signature verifies
/// (within `budget`: none is checked once it is spent).
fn issued_by(cert: &X509Certificate<'_>, ca: &X509Certificate<'_>, budget: &mut usize) -> bool {
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
    if let (Some(a), Some(s)) = (aki, ski)
        && a == s
    {
        return true;
    }
    // no identifiers, or ones that differ (a CA certificate made again with
    // the same key may name it otherwise): the signature tells
    if *budget == 0 {
        return false;
    }
    *budget -= 1;
    cert.verify_signature(Some(ca.public_key())).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

    fn ca_params(name: &str) -> CertificateParams {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, name);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p
    }

    /// A client that has proved nothing sends a leaf of the CA's name and
    /// many certificates of that name that signed nothing: the search stops
    /// at its budget, where it went through every one of them each step.
    #[test]
    fn the_search_for_an_anchor_spends_a_bounded_number_of_signatures() {
        let ca_key = KeyPair::generate().unwrap();
        let ca_cert = ca_params("clinic-ca").self_signed(&ca_key).unwrap();
        let decoys: Vec<CertificateDer<'static>> = (0..40)
            .map(|_| {
                let key = KeyPair::generate().unwrap();
                ca_params("clinic-ca")
                    .self_signed(&key)
                    .unwrap()
                    .der()
                    .clone()
            })
            .collect();
        // the leaf names clinic-ca as its issuer, and no key identifier
        let stranger = KeyPair::generate().unwrap();
        let issuer = Issuer::new(ca_params("clinic-ca"), &stranger);
        let leaf_key = KeyPair::generate().unwrap();
        let mut leaf = CertificateParams::new(vec!["user1".to_string()]).unwrap();
        leaf.distinguished_name.push(DnType::CommonName, "user1");
        leaf.use_authority_key_identifier_extension = false;
        let leaf = leaf.signed_by(&leaf_key, &issuer).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca_cert.der().clone()).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .unwrap();
        let anchors = Anchors::new([(ca_cert.der().clone(), verifier)]);
        let mut budget = MAX_SIGNATURES;
        assert!(anchors.find(leaf.der(), &decoys, &mut budget).is_none());
        assert_eq!(budget, 0, "stopped at the budget");

        // a real chain is found within it
        let real_key = KeyPair::generate().unwrap();
        let real_issuer = Issuer::new(ca_params("clinic-ca"), &ca_key);
        let mut params = CertificateParams::new(vec!["user2".to_string()]).unwrap();
        params.use_authority_key_identifier_extension = false;
        let real = params.signed_by(&real_key, &real_issuer).unwrap();
        let mut budget = MAX_SIGNATURES;
        assert!(anchors.find(real.der(), &[], &mut budget).is_some());
        assert!(budget < MAX_SIGNATURES, "found by its signature");
    }
}
