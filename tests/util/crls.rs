//! CRLs with a chosen CRL number, for the tests of which CRL is newer.

use super::pki::Ca;

/// A current CRL of `ca` with CRL number `number`, revoking `serials`.
pub fn numbered_crl(ca: &Ca, number: u64, serials: &[u64]) -> String {
    use time::{Duration, OffsetDateTime};
    let now = OffsetDateTime::now_utc();
    rcgen::CertificateRevocationListParams {
        this_update: now - Duration::hours(1),
        next_update: now + Duration::days(30),
        crl_number: rcgen::SerialNumber::from(number),
        issuing_distribution_point: None,
        revoked_certs: serials
            .iter()
            .map(|s| rcgen::RevokedCertParams {
                serial_number: rcgen::SerialNumber::from(*s),
                revocation_time: now - Duration::minutes(5),
                reason_code: None,
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: rcgen::KeyIdMethod::Sha256,
    }
    .signed_by(&ca.issuer)
    .unwrap()
    .pem()
    .unwrap()
}
