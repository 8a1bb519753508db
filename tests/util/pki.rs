//! Test PKIs made with rcgen: a CA like orca-catool's, server and client
//! certificates (valid, expired, not yet valid, from another CA), CRLs.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    RevokedCertParams, SerialNumber,
};
use rustls::pki_types::CertificateDer;
use time::{Duration, OffsetDateTime};

/// A CA that can issue certificates and CRLs.
pub struct Ca {
    pub issuer: Issuer<'static, KeyPair>,
    pub pem: String,
    pub der: CertificateDer<'static>,
    next_serial: std::cell::Cell<u64>,
    /// certificates a leaf of this CA presents after itself (an intermediate's own)
    above: Vec<CertificateDer<'static>>,
}

/// An issued certificate with its key.
#[derive(Clone)]
pub struct Leaf {
    pub pem: String,
    pub key_pem: String,
    pub der: CertificateDer<'static>,
    pub serial: u64,
    pub cn: String,
    /// intermediates presented after the leaf
    pub chain: Vec<CertificateDer<'static>>,
}

fn dn(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, "JP");
    dn.push(DnType::OrganizationName, "orca");
    dn.push(DnType::CommonName, cn);
    dn
}

impl Ca {
    /// A new self-signed CA with an ECDSA P-256 key.
    pub fn new(cn: &str) -> Ca {
        Self::with_key(cn, KeyPair::generate().expect("key"))
    }

    /// A CA with the given key.
    pub fn with_key(cn: &str, key: KeyPair) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name = dn(cn);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = OffsetDateTime::now_utc() - Duration::days(1);
        params.not_after = OffsetDateTime::now_utc() + Duration::days(3650);
        params.serial_number = Some(SerialNumber::from(1u64));
        let cert = params.self_signed(&key).expect("self-signed");
        Ca {
            pem: cert.pem(),
            der: cert.der().clone(),
            issuer: Issuer::new(params, key),
            next_serial: std::cell::Cell::new(2),
            above: Vec::new(),
        }
    }

    /// An intermediate CA signed by this one, valid until `not_after`; its
    /// leaves present it after themselves.
    pub fn intermediate(&self, cn: &str, not_after: OffsetDateTime) -> Ca {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name = dn(cn);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = OffsetDateTime::now_utc() - Duration::days(1);
        params.not_after = not_after;
        let serial = self.next_serial.get();
        self.next_serial.set(serial + 1);
        params.serial_number = Some(SerialNumber::from(serial));
        let cert = params.signed_by(&key, &self.issuer).expect("signed");
        let mut above = vec![cert.der().clone()];
        above.extend(self.above.iter().cloned());
        Ca {
            pem: cert.pem(),
            der: cert.der().clone(),
            issuer: Issuer::new(params, key),
            next_serial: std::cell::Cell::new(100),
            above,
        }
    }

    /// A client certificate valid from yesterday until `not_after` (to the second).
    pub fn client_until(&self, cn: &str, not_after: OffsetDateTime) -> Leaf {
        let (mut params, serial) = self.leaf_params(cn, &[], (-1, 1));
        params.not_after = not_after;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(params, KeyPair::generate().expect("key"), cn, serial)
    }

    /// A CRL revoking `serials` whose nextUpdate has passed an hour ago.
    pub fn stale_crl(&self, serials: &[u64]) -> String {
        let now = OffsetDateTime::now_utc();
        self.crl_between(serials, now - Duration::hours(3), now - Duration::hours(1))
    }

    /// A CRL revoking `serials` whose nextUpdate is `next`.
    pub fn crl_due(&self, serials: &[u64], next: OffsetDateTime) -> String {
        self.crl_between(
            serials,
            OffsetDateTime::now_utc() - Duration::hours(1),
            next,
        )
    }

    fn crl_between(&self, serials: &[u64], this: OffsetDateTime, next: OffsetDateTime) -> String {
        self.crl_with(2, serials, this, (this, next))
    }

    fn issue(&self, params: CertificateParams, key: KeyPair, cn: &str, serial: u64) -> Leaf {
        let cert = params.signed_by(&key, &self.issuer).expect("signed");
        Leaf {
            pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().clone(),
            serial,
            cn: cn.to_string(),
            chain: self.above.clone(),
        }
    }

    fn leaf_params(&self, cn: &str, sans: &[&str], days: (i64, i64)) -> (CertificateParams, u64) {
        let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(sans).expect("params");
        params.distinguished_name = dn(cn);
        let serial = self.next_serial.get();
        self.next_serial.set(serial + 1);
        params.serial_number = Some(SerialNumber::from(serial));
        params.not_before = OffsetDateTime::now_utc() + Duration::days(days.0);
        params.not_after = OffsetDateTime::now_utc() + Duration::days(days.1);
        params.key_identifier_method = KeyIdMethod::Sha256;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        (params, serial)
    }

    /// A server certificate for `sans` valid from yesterday for `days`.
    pub fn server(&self, sans: &[&str], days: i64) -> Leaf {
        self.server_with_key(sans, days, KeyPair::generate().expect("key"))
    }

    /// A server certificate with the given key.
    pub fn server_with_key(&self, sans: &[&str], days: i64, key: KeyPair) -> Leaf {
        self.server_between(sans, (-1, days), key)
    }

    /// A server certificate valid between now+`days.0` and now+`days.1` days.
    pub fn server_between(&self, sans: &[&str], days: (i64, i64), key: KeyPair) -> Leaf {
        let cn = sans.first().copied().unwrap_or("localhost");
        let (mut params, serial) = self.leaf_params(cn, sans, days);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue(params, key, cn, serial)
    }

    /// A client certificate valid between now+`from` and now+`to` days.
    pub fn client_valid(&self, cn: &str, from: i64, to: i64) -> Leaf {
        let (mut params, serial) = self.leaf_params(cn, &[], (from, to));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(params, KeyPair::generate().expect("key"), cn, serial)
    }

    /// A client certificate whose subject is `O=o, OU=ou, CN=cn` (for ACCESS_POLICY's `o:` and `ou:`).
    pub fn client_in(&self, cn: &str, o: &str, ou: &str) -> Leaf {
        let (mut params, serial) = self.leaf_params(cn, &[], (-1, 3650));
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CountryName, "JP");
        dn.push(DnType::OrganizationName, o);
        dn.push(DnType::OrganizationalUnitName, ou);
        dn.push(DnType::CommonName, cn);
        params.distinguished_name = dn;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(params, KeyPair::generate().expect("key"), cn, serial)
    }

    /// A client certificate valid for ten years, like orca-catool's.
    pub fn client(&self, cn: &str) -> Leaf {
        self.client_valid(cn, -1, 3650)
    }

    /// A client certificate like [`Ca::client`] with serial `serial`:
    /// orca-catool's CAs each number from 1, so two CAs' certificates share
    /// serials.
    pub fn client_numbered(&self, cn: &str, serial: u64) -> Leaf {
        let next = self.next_serial.replace(serial);
        let leaf = self.client(cn);
        self.next_serial.set(next.max(serial + 1));
        leaf
    }

    /// A CRL revoking `serials`, PEM.
    pub fn crl(&self, serials: &[u64]) -> String {
        self.numbered_crl(1, serials)
    }

    /// A current CRL with CRL number `number` revoking `serials`, PEM (for
    /// the tests of which CRL is newer).
    pub fn numbered_crl(&self, number: u64, serials: &[u64]) -> String {
        let now = OffsetDateTime::now_utc();
        self.crl_with(
            number,
            serials,
            now - Duration::minutes(5),
            (now - Duration::hours(1), now + Duration::days(30)),
        )
    }

    /// A CRL, PEM, with CRL number `number`, revoking `serials` at `revoked`,
    /// valid from `dates.0` with nextUpdate `dates.1`.
    pub fn crl_with(
        &self,
        number: u64,
        serials: &[u64],
        revoked: OffsetDateTime,
        dates: (OffsetDateTime, OffsetDateTime),
    ) -> String {
        let params = CertificateRevocationListParams {
            this_update: dates.0,
            next_update: dates.1,
            crl_number: SerialNumber::from(number),
            issuing_distribution_point: None,
            revoked_certs: serials
                .iter()
                .map(|s| RevokedCertParams {
                    serial_number: SerialNumber::from(*s),
                    revocation_time: revoked,
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        params
            .signed_by(&self.issuer)
            .expect("crl")
            .pem()
            .expect("pem")
    }
}

/// Writes `content` to `dir/name` and returns the path.
pub fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).expect("write");
    path
}
