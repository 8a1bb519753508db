//! CA_CRL files checked at load: each CRL must be signed by a CA of CA_CRT
//! (a CRL nobody can vouch for is refused, and on reload the old set keeps
//! serving), and its dates are kept for the expiry warnings and the status page.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer};

use super::load::LoadError;

/// What the logs and the status page say about one CRL.
#[derive(Debug, Clone)]
pub struct CrlInfo {
    /// the file it came from
    pub path: PathBuf,
    /// the issuing CA, OpenSSL one-line form
    pub issuer: String,
    /// thisUpdate
    pub this_update: DateTime<Utc>,
    /// nextUpdate, when the CRL has one
    pub next_update: Option<DateTime<Utc>>,
    /// how many certificates it revokes
    pub revoked: usize,
}

/// Which CA of CA_CRT signed a CRL.
enum Signer {
    /// a CA named as the CRL's issuer whose key verifies its signature
    Verified,
    /// CAs of that name are there, but none of their keys verifies it
    NameOnly,
    /// no CA of that name is there
    Unknown,
}

/// Whether `ca` signed `crl`: it is the CRL's issuer by name, and its key
/// verifies the CRL's signature.
fn signs(
    ca: &x509_parser::certificate::X509Certificate<'_>,
    crl: &x509_parser::revocation_list::CertificateRevocationList<'_>,
) -> bool {
    ca.subject().as_raw() == crl.issuer().as_raw() && crl.verify_signature(ca.public_key()).is_ok()
}

/// The signer of `crl` among `cas`. The issuer's name alone does not say
/// it: two CAs may have one name (orca-catool's CAs of one clinic often
/// do), and only the key tells them apart.
fn signer(
    crl: &x509_parser::revocation_list::CertificateRevocationList<'_>,
    cas: &[CertificateDer<'_>],
) -> Signer {
    let mut named = false;
    for ca in cas {
        let Ok((_, cert)) = x509_parser::parse_x509_certificate(ca.as_ref()) else {
            continue;
        };
        if signs(&cert, crl) {
            return Signer::Verified;
        }
        named |= cert.subject().as_raw() == crl.issuer().as_raw();
    }
    if named {
        Signer::NameOnly
    } else {
        Signer::Unknown
    }
}

/// Whether `crl` (DER) is signed by one of `cas`, as [`check`] requires of
/// each CRL of CA_CRL: by its key, not by its name alone.
pub fn signed_by_one_of(crl: &[u8], cas: &[CertificateDer<'_>]) -> bool {
    x509_parser::parse_x509_crl(crl)
        .is_ok_and(|(_, parsed)| matches!(signer(&parsed, cas), Signer::Verified))
}

/// Which of `cas` signed `crl` (DER), by its key: the index of the first
/// whose key verifies it. Two CAs of one name are told apart by this, and
/// two certificates of one CA (the same name and key) are one.
pub fn signer_of(crl: &[u8], cas: &[CertificateDer<'_>]) -> Option<usize> {
    let (_, crl) = x509_parser::parse_x509_crl(crl).ok()?;
    cas.iter().position(|ca| {
        x509_parser::parse_x509_certificate(ca.as_ref()).is_ok_and(|(_, ca)| signs(&ca, &crl))
    })
}

/// Every one of `cas` whose key verifies `crl` (DER) and that is its
/// issuer by name: one CA, though CA_CRT may hold two certificates of it
/// (the same name and key). The clients it revokes are those whose chain
/// ends at one of these.
pub fn signers(crl: &[u8], cas: &[CertificateDer<'_>]) -> Vec<usize> {
    let Ok((_, crl)) = x509_parser::parse_x509_crl(crl) else {
        return Vec::new();
    };
    (0..cas.len())
        .filter(|&i| {
            x509_parser::parse_x509_certificate(cas[i].as_ref())
                .is_ok_and(|(_, ca)| signs(&ca, &crl))
        })
        .collect()
}

/// The CRLs of `crls` a chain that ends at the CA_CRT certificate `ca` is
/// checked against: all but those of another CA of `ca`'s name. WebPKI
/// takes the first CRL whose issuer *name* is a certificate's issuer and
/// only then checks its signature, so with two CAs of one name in CA_CRT
/// (orca-catool's CAs of one clinic often share a name, and a clinic moving
/// to a new CA keeps the old one a while) the other CA's CRL would be read
/// for `ca`'s clients: its signature fails with `ca`'s key and every client
/// of `ca` is refused, and `ca`'s own CRL is never read. The CRLs of CAs of
/// other names stay, for the CA certificates a client sends with its own.
pub fn judging<'c>(
    ca: &CertificateDer<'_>,
    crls: &[(PathBuf, CertificateRevocationListDer<'c>)],
) -> Vec<CertificateRevocationListDer<'c>> {
    let Ok((_, ca)) = x509_parser::parse_x509_certificate(ca.as_ref()) else {
        return Vec::new();
    };
    crls.iter()
        .filter(|(_, der)| {
            x509_parser::parse_x509_crl(der.as_ref()).is_ok_and(|(_, crl)| {
                crl.issuer().as_raw() != ca.subject().as_raw() || signs(&ca, &crl)
            })
        })
        .map(|(_, der)| der.clone())
        .collect()
}

/// Checks that `crl` from `path` is signed by one of `cas`, and reads its dates.
pub fn check(
    path: &Path,
    crl: &CertificateRevocationListDer<'_>,
    cas: &[CertificateDer<'_>],
) -> Result<CrlInfo, LoadError> {
    let fix = "make a new CRL with orca-catool issue_crl on the CA that issued CA_CRT";
    let (_, parsed) = x509_parser::parse_x509_crl(crl.as_ref()).map_err(|e| {
        LoadError::new(
            "CA_CRL",
            path,
            format!("the CRL cannot be parsed: {e}"),
            fix,
        )
    })?;
    let issuer = crate::x509::oneline(parsed.issuer());
    let problem = match signer(&parsed, cas) {
        Signer::Verified => {
            let date = |t, field| {
                crate::x509::to_utc(t, field)
                    .map_err(|e| LoadError::new("CA_CRL", path, format!("the CRL's {e}"), fix))
            };
            return Ok(CrlInfo {
                path: path.to_path_buf(),
                issuer,
                this_update: date(parsed.last_update(), "thisUpdate")?,
                next_update: parsed
                    .next_update()
                    .map(|t| date(t, "nextUpdate"))
                    .transpose()?,
                revoked: parsed.iter_revoked_certificates().count(),
            });
        }
        Signer::NameOnly => format!(
            "the CRL claims to be from {issuer} but its signature does not verify with that CA's key"
        ),
        Signer::Unknown => format!("the CRL is issued by {issuer}, which is not a CA in CA_CRT"),
    };
    Err(LoadError::new("CA_CRL", path, problem, fix))
}

/// When the first of `crls` goes out of date: the earliest nextUpdate, in
/// Unix seconds; `None` when no CRL names one.
pub fn deadline(crls: &[CrlInfo]) -> Option<i64> {
    crls.iter()
        .filter_map(|c| c.next_update)
        .map(|t| t.timestamp())
        .min()
}

/// Whether a CRL is past its nextUpdate at `now`.
pub fn is_stale(crl: &CrlInfo, now: DateTime<Utc>) -> bool {
    crl.next_update.is_some_and(|n| n < now)
}

#[cfg(test)]
mod tests {
    use rcgen::{
        BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType, IsCa, Issuer,
        KeyIdMethod, KeyPair, SerialNumber,
    };

    use super::*;

    /// The parameters of a CA certificate named `cn` with `serial`.
    fn ca_params(cn: &str, serial: u64) -> CertificateParams {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.serial_number = Some(SerialNumber::from(serial));
        params
    }

    #[test]
    fn signers_are_every_certificate_of_the_crls_ca_and_no_other_ca_of_its_name() {
        let key = KeyPair::generate().unwrap();
        let first = ca_params("clinic-ca", 1).self_signed(&key).unwrap();
        // the same CA's certificate renewed: its name and key
        let renewed = ca_params("clinic-ca", 2).self_signed(&key).unwrap();
        let other = ca_params("clinic-ca", 1)
            .self_signed(&KeyPair::generate().unwrap())
            .unwrap();
        let crl = CertificateRevocationListParams {
            this_update: rcgen::date_time_ymd(2026, 1, 1),
            next_update: rcgen::date_time_ymd(2026, 2, 1),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: Vec::new(),
            key_identifier_method: KeyIdMethod::Sha256,
        }
        .signed_by(&Issuer::new(ca_params("clinic-ca", 1), key))
        .unwrap();
        let cas = [
            other.der().clone(),
            first.der().clone(),
            renewed.der().clone(),
        ];
        assert_eq!(signers(crl.der(), &cas), [1, 2]);
        assert_eq!(signer_of(crl.der(), &cas), Some(1));
        assert!(signers(b"not a CRL", &cas).is_empty());
    }
}
