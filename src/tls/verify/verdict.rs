//! The verdict on a client: an [`Identity`] (the certificate's fields and the
//! headers that tell WebORCA who it is) or a [`Refusal`] with its
//! [`CertErrorKind`], the reason the client is told about.

use std::fmt;
use std::sync::Arc;

use http::{HeaderName, HeaderValue};
use rustls::{CertificateError, Error};

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
    /// the SHA-256 fingerprint (lowercase hex) of the CA_CRT certificate
    /// its chain ends at, `None` when none of CA_CRT is found for it: with
    /// two CAs in CA_CRT (each numbering from 01) the serial alone does not
    /// say whose client it is, and `/status` says this for install-crl
    pub ca_sha256: Option<Arc<str>>,
}

impl Identity {
    pub(super) fn new(info: CertInfo, der: &[u8], ca_sha256: Option<Arc<str>>) -> Identity {
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
        Identity {
            info,
            headers,
            ca_sha256,
        }
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
    /// for an `expired` chain whose leaf is itself still valid: the
    /// intermediate CA certificate the client sent that has expired
    pub expired_ca: Option<CertInfo>,
}

impl Refusal {
    pub(super) fn new(kind: CertErrorKind, info: Option<CertInfo>, detail: String) -> Box<Refusal> {
        Box::new(Refusal {
            kind,
            info,
            detail,
            expired_ca: None,
        })
    }

    /// No certificate was presented.
    pub fn missing() -> Refusal {
        Refusal {
            kind: CertErrorKind::Missing,
            info: None,
            detail: "no client certificate was sent".into(),
            expired_ca: None,
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
            // only this verifier says it, for ALLOW_CN (rustls' WebPKI never does)
            CertificateError::ApplicationVerificationFailure => CertErrorKind::NotAllowed,
            _ => CertErrorKind::UnknownCa,
        },
        _ => CertErrorKind::UnknownCa,
    }
}
