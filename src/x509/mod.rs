//! Certificate fields the proxy shows, parsed once per certificate.
//!
//! This module owns turning a DER certificate into [`CertInfo`]: subject and
//! issuer as RFC 4514 and OpenSSL one-line strings, the common name, serial,
//! validity, SHA-256 fingerprint and subjectAltName entries, plus the two
//! questions later asked of them (days left, does it cover a host name).
//! It verifies nothing: chain, signature and revocation checks belong to the
//! TLS layer. Every input is untrusted, so nothing here panics on bad DER.

use std::fmt;
use std::net::IpAddr;

use chrono::{DateTime, TimeDelta, Utc};
use sha2::{Digest, Sha256};
use x509_parser::asn1_rs::{Any, BmpString, Class, FromDer, Tag, ToDer, UniversalString};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::x509::{AttributeTypeAndValue, X509Name};

/// OID of commonName, the attribute `common_name` and the CN fallback use.
const OID_CN: &str = "2.5.4.3";
/// OID of organizationName, which ACCESS_POLICY's `o:` names.
const OID_O: &str = "2.5.4.10";
/// OID of organizationalUnitName, which ACCESS_POLICY's `ou:` names.
const OID_OU: &str = "2.5.4.11";
/// OID of PKCS #9 emailAddress: no RFC 4514 short name, but OpenSSL's one-line form names it.
const OID_EMAIL: &str = "1.2.840.113549.1.9.1";

mod names;

#[allow(unused_imports)]
use names::*;
pub(crate) use names::{common_name, oneline, rfc4514};

/// What the proxy shows about a certificate: to the backend (identity
/// headers), in logs and on error pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// RFC 4514 string, most-specific RDN first: `CN=user1,O=orca,C=JP`.
    pub subject_rfc4514: String,
    /// Issuer as an RFC 4514 string.
    pub issuer_rfc4514: String,
    /// OpenSSL one-line form, in certificate order: `/C=JP/O=orca/CN=user1`.
    pub subject_oneline: String,
    /// Issuer in OpenSSL one-line form.
    pub issuer_oneline: String,
    /// Last (most specific) CN of the subject; decoded losslessly when the
    /// value is a well-formed string, lossily when it is a broken one, `None`
    /// when there is no CN or it is not a string at all.
    pub common_name: Option<String>,
    /// Every O of the subject, in certificate order; only values that decode
    /// as a string (a broken one never equals an ACCESS_POLICY name).
    pub organizations: Vec<String>,
    /// Every OU of the subject, in certificate order, decoded like `organizations`.
    pub organizational_units: Vec<String>,
    /// Serial number as lowercase hex bytes without separators (`0a1b`),
    /// leading zero bytes dropped, `00` for zero, `-` prefix if negative.
    pub serial_hex: String,
    /// Start of the validity period.
    pub not_before: DateTime<Utc>,
    /// End of the validity period.
    pub not_after: DateTime<Utc>,
    /// SHA-256 of the whole DER certificate, lowercase hex.
    pub sha256_hex: String,
    /// subjectAltName dNSName entries, in certificate order.
    pub dns_names: Vec<String>,
    /// subjectAltName iPAddress entries, in certificate order.
    pub ip_addresses: Vec<IpAddr>,
}

/// Whether the certificate `der` may serve TLS: it has no extended key
/// usage, or one with serverAuth (or anyExtendedKeyUsage). `false` too for
/// a certificate that cannot be read.
pub fn serves_tls(der: &[u8]) -> bool {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return false;
    };
    match cert.extended_key_usage() {
        Ok(Some(eku)) => eku.value.server_auth || eku.value.any,
        Ok(None) => true,
        Err(_) => false,
    }
}

/// Why a certificate could not be read; carries a human-readable message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct X509Error {
    message: String,
}

impl X509Error {
    fn new(message: impl Into<String>) -> Self {
        X509Error {
            message: message.into(),
        }
    }

    /// The reason, for logs and the technical box of error pages.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for X509Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unreadable certificate: {}", self.message)
    }
}

impl std::error::Error for X509Error {}

impl CertInfo {
    /// Parses one DER certificate. Trailing bytes are refused because the
    /// fingerprint is computed over `der` and must describe exactly one
    /// certificate.
    pub fn from_der(der: &[u8]) -> Result<CertInfo, X509Error> {
        let (rest, cert) = X509Certificate::from_der(der)
            .map_err(|e| X509Error::new(format!("not a DER X.509 certificate: {e}")))?;
        if !rest.is_empty() {
            return Err(X509Error::new(format!(
                "{} bytes of trailing data after the certificate",
                rest.len()
            )));
        }
        let validity = cert.validity();
        let (dns_names, ip_addresses) = san_entries(&cert)?;
        Ok(CertInfo {
            subject_rfc4514: rfc4514(cert.subject()),
            issuer_rfc4514: rfc4514(cert.issuer()),
            subject_oneline: oneline(cert.subject()),
            issuer_oneline: oneline(cert.issuer()),
            common_name: common_name(cert.subject()),
            organizations: names::attribute_strings(cert.subject(), OID_O),
            organizational_units: names::attribute_strings(cert.subject(), OID_OU),
            serial_hex: serial_hex(cert.raw_serial()),
            not_before: to_utc(validity.not_before, "notBefore")?,
            not_after: to_utc(validity.not_after, "notAfter")?,
            sha256_hex: hex_lower(&Sha256::digest(der)),
            dns_names,
            ip_addresses,
        })
    }

    /// Whole days until `not_after`, rounded down like OpenSSL/WebORCA's
    /// "will be expired in N days": expires in 10 days minus 1 minute → 9,
    /// expired 1 hour ago → -1.
    pub fn days_left(&self, now: DateTime<Utc>) -> i64 {
        let left = self.not_after.signed_duration_since(now);
        let days = left.num_days();
        // num_days truncates toward zero; a negative remainder must round
        // down, otherwise "expired an hour ago" would read as 0 days left.
        match TimeDelta::try_days(days) {
            Some(whole) if left < whole => days - 1,
            _ => days,
        }
    }

    /// True when `host` (a DNS name or an IP literal, IPv6 optionally in
    /// brackets, without port) is covered by a SAN entry of its kind — DNS
    /// entries may use a single-label leftmost wildcard `*.example` — or, when
    /// the certificate has no SAN entry of that kind, by the CN.
    pub fn covers_host(&self, host: &str) -> bool {
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if let Ok(ip) = host.parse::<IpAddr>() {
            if self.ip_addresses.is_empty() {
                let cn_ip = self.common_name.as_deref().map(str::parse::<IpAddr>);
                return matches!(cn_ip, Some(Ok(cn)) if cn == ip);
            }
            return self.ip_addresses.contains(&ip);
        }
        if self.dns_names.is_empty() {
            return self
                .common_name
                .as_deref()
                .is_some_and(|cn| dns_matches(cn, host));
        }
        self.dns_names.iter().any(|name| dns_matches(name, host))
    }
}

/// Case-insensitive DNS match; `*.rest` matches exactly one extra non-empty
/// leftmost label. A trailing root dot is ignored on both sides.
fn dns_matches(pattern: &str, host: &str) -> bool {
    let pattern = pattern.strip_suffix('.').unwrap_or(pattern);
    let host = host.strip_suffix('.').unwrap_or(host);
    if pattern.is_empty() || host.is_empty() {
        return false;
    }
    match pattern.strip_prefix("*.") {
        Some(suffix) => {
            // Only a whole leftmost "*" label is a wildcard; "*" elsewhere or
            // a bare "*." is never treated as one.
            if suffix.is_empty() || suffix.contains('*') {
                return false;
            }
            match host.split_once('.') {
                Some((label, rest)) => !label.is_empty() && rest.eq_ignore_ascii_case(suffix),
                None => false,
            }
        }
        None => pattern.eq_ignore_ascii_case(host),
    }
}

/// A certificate or CRL time as chrono's, or why it cannot be one: the one
/// date converter, for certificates and CRLs alike.
pub fn to_utc(t: x509_parser::time::ASN1Time, field: &str) -> Result<DateTime<Utc>, X509Error> {
    DateTime::from_timestamp(t.timestamp(), 0)
        .ok_or_else(|| X509Error::new(format!("{field} is out of the supported date range")))
}

/// Collects dNSName and iPAddress SAN entries. Entries of other kinds, or
/// ones that cannot be represented (non-UTF-8 names, addresses that are
/// neither 4 nor 16 bytes), are skipped: they can never cover a host, and
/// refusing the whole certificate for them would lock a user out.
fn san_entries(cert: &X509Certificate<'_>) -> Result<(Vec<String>, Vec<IpAddr>), X509Error> {
    let san = cert
        .subject_alternative_name()
        .map_err(|e| X509Error::new(format!("unusable subjectAltName extension: {e}")))?;
    let mut dns_names = Vec::new();
    let mut ip_addresses = Vec::new();
    for name in san.iter().flat_map(|ext| ext.value.general_names.iter()) {
        match name {
            GeneralName::DNSName(dns) => dns_names.push((*dns).to_owned()),
            GeneralName::IPAddress(bytes) => ip_addresses.extend(ip_from_bytes(bytes)),
            _ => {}
        }
    }
    Ok((dns_names, ip_addresses))
}

fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    if let Ok(v4) = <[u8; 4]>::try_from(bytes) {
        return Some(IpAddr::from(v4));
    }
    <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from)
}

/// Formats a DER INTEGER body like OpenSSL's `serial=` output, lowercase.
fn serial_hex(raw: &[u8]) -> String {
    let negative = raw.first().is_some_and(|b| b & 0x80 != 0);
    let magnitude = if negative {
        twos_complement(raw)
    } else {
        raw.to_vec()
    };
    let start = magnitude
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(magnitude.len());
    let digits = match &magnitude[start..] {
        [] => "00".to_owned(),
        bytes => hex_lower(bytes),
    };
    if negative {
        format!("-{digits}")
    } else {
        digits
    }
}

/// Magnitude of a negative two's-complement big-endian number: invert, add one.
fn twos_complement(raw: &[u8]) -> Vec<u8> {
    let mut out: Vec<u8> = raw.iter().map(|b| !b).collect();
    for byte in out.iter_mut().rev() {
        let (sum, carry) = byte.overflowing_add(1);
        *byte = sum;
        if !carry {
            break;
        }
    }
    out
}

fn hex_lower(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

fn hex_upper(bytes: &[u8]) -> String {
    hex::encode_upper(bytes)
}

#[cfg(test)]
mod tests;
