//! The dates of the CA certificate a chain ends at.
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

use rustls::pki_types::CertificateDer;
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer as _;

use crate::x509::CertInfo;

/// One certificate of CA_CRT: what finding it needs, and its dates.
#[derive(Debug)]
struct Anchor {
    der: Vec<u8>,
    info: CertInfo,
    not_before: i64,
    not_after: i64,
}

/// The certificates of CA_CRT, for their dates.
#[derive(Debug, Default)]
pub(super) struct Anchors {
    anchors: Vec<Anchor>,
}

impl Anchors {
    /// The certificates of CA_CRT (any that cannot be read are left out:
    /// loading CA_CRT has already refused those).
    pub(super) fn new(ca_der: &[CertificateDer<'_>]) -> Anchors {
        let anchors = ca_der
            .iter()
            .filter_map(|der| {
                let (_, cert) = X509Certificate::from_der(der.as_ref()).ok()?;
                let v = cert.validity();
                Some(Anchor {
                    der: der.as_ref().to_vec(),
                    info: CertInfo::from_der(der.as_ref()).ok()?,
                    not_before: v.not_before.timestamp(),
                    not_after: v.not_after.timestamp(),
                })
            })
            .collect();
        Anchors { anchors }
    }

    /// The CA certificate of CA_CRT that the chain of `leaf` and
    /// `intermediates` ends at, with its validity (Unix seconds), when one
    /// is found.
    pub(super) fn of(
        &self,
        leaf: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
    ) -> Option<(&CertInfo, (i64, i64))> {
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
                return Some((&anchor.info, (anchor.not_before, anchor.not_after)));
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
