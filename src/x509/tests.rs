//! Unit tests of the certificate field readers (the parent module).

use super::*;
use rcgen::{
    CertificateParams, DistinguishedName, DnType, DnValue, KeyPair, SerialNumber, date_time_ymd,
};
use std::time::Duration;

// --- tiny DER builder, for names rcgen cannot produce -------------------

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    match content.len() {
        n if n < 0x80 => out.push(n as u8),
        n if n < 0x100 => out.extend([0x81, n as u8]),
        n => out.extend([0x82, (n >> 8) as u8, n as u8]),
    }
    out.extend_from_slice(content);
    out
}

const CN: &[u8] = &[0x06, 0x03, 0x55, 0x04, 0x03];
const O: &[u8] = &[0x06, 0x03, 0x55, 0x04, 0x0a];
const C: &[u8] = &[0x06, 0x03, 0x55, 0x04, 0x06];
const SERIAL_NUMBER: &[u8] = &[0x06, 0x03, 0x55, 0x04, 0x05];
const EMAIL: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01,
];

fn atv(oid: &[u8], value: Vec<u8>) -> Vec<u8> {
    tlv(0x30, &[oid, &value].concat())
}
fn utf8(s: &str) -> Vec<u8> {
    tlv(0x0c, s.as_bytes())
}
fn printable(s: &str) -> Vec<u8> {
    tlv(0x13, s.as_bytes())
}
fn name_der(rdns: &[Vec<Vec<u8>>]) -> Vec<u8> {
    let rdns: Vec<u8> = rdns
        .iter()
        .flat_map(|set| tlv(0x31, &set.concat()))
        .collect();
    tlv(0x30, &rdns)
}

/// (rfc4514, oneline, common_name) of a hand-built Name.
fn forms(rdns: &[Vec<Vec<u8>>]) -> (String, String, Option<String>) {
    let der = name_der(rdns);
    let (rest, name) = X509Name::from_der(&der).expect("test name parses");
    assert!(rest.is_empty());
    (rfc4514(&name), oneline(&name), common_name(&name))
}

fn one_cn(value: Vec<u8>) -> (String, String, Option<String>) {
    forms(&[vec![atv(CN, value)]])
}

// --- names -------------------------------------------------------------

#[test]
fn plain_name_in_both_orders() {
    let (rfc, line, cn) = forms(&[
        vec![atv(C, printable("JP"))],
        vec![atv(O, utf8("orca"))],
        vec![atv(CN, utf8("user1"))],
    ]);
    assert_eq!(rfc, "CN=user1,O=orca,C=JP");
    assert_eq!(line, "/C=JP/O=orca/CN=user1");
    assert_eq!(cn.as_deref(), Some("user1"));
}

#[test]
fn multi_valued_rdn_joined_with_plus() {
    let (rfc, line, _) = forms(&[
        vec![atv(C, printable("JP"))],
        vec![atv(CN, utf8("a")), atv(O, utf8("b"))],
    ]);
    assert_eq!(rfc, "CN=a+O=b,C=JP");
    assert_eq!(line, "/C=JP/CN=a+O=b");
}

#[test]
fn rfc4514_escapes_specials_and_edges() {
    let (rfc, line, cn) = one_cn(utf8("#Doe, \"J\" <j+k>; a\\b/c "));
    assert_eq!(rfc, r#"CN=\#Doe\, \"J\" \<j\+k\>\; a\\b/c\ "#);
    assert_eq!(line, r#"/CN=#Doe, "J" <j+k>; a\b\/c "#);
    assert_eq!(cn.as_deref(), Some("#Doe, \"J\" <j+k>; a\\b/c "));

    assert_eq!(one_cn(utf8(" x # y")).0, r"CN=\ x # y");
    assert_eq!(one_cn(utf8(" ")).0, r"CN=\ ");
    assert_eq!(one_cn(utf8("")).0, "CN=");
}

#[test]
fn control_characters_become_hex_escapes() {
    let (rfc, line, cn) = one_cn(utf8("a\nb\0c\u{7f}d\u{85}"));
    assert_eq!(rfc, r"CN=a\0Ab\00c\7Fd\C2\85");
    assert_eq!(line, r"/CN=a\x0Ab\x00c\x7Fd\xC2\x85");
    assert_eq!(cn.as_deref(), Some("a\nb\0c\u{7f}d\u{85}"));
}

#[test]
fn japanese_kept_verbatim() {
    let (rfc, line, cn) = one_cn(utf8("山田太郎"));
    assert_eq!(rfc, "CN=山田太郎");
    assert_eq!(line, "/CN=山田太郎");
    assert_eq!(cn.as_deref(), Some("山田太郎"));
}

#[test]
fn string_types_decoded() {
    // BMPString (UTF-16BE) 山田
    assert_eq!(one_cn(tlv(0x1e, &[0x5c, 0x71, 0x75, 0x30])).0, "CN=山田");
    // UniversalString (UTF-32BE) "Aé"
    let utf32 = [0, 0, 0, 0x41, 0, 0, 0, 0xe9];
    assert_eq!(one_cn(tlv(0x1c, &utf32)).0, "CN=Aé");
    // TeletexString as Latin-1
    assert_eq!(one_cn(tlv(0x14, b"caf\xe9")).0, "CN=café");
    // IA5String
    assert_eq!(one_cn(tlv(0x16, b"ia5")).0, "CN=ia5");
}

#[test]
fn non_strings_and_broken_strings_become_der_hex() {
    let (rfc, line, cn) = one_cn(tlv(0x02, &[0x05]));
    assert_eq!(rfc, "CN=#020105");
    assert_eq!(line, "/CN=#020105");
    assert_eq!(cn, None);
    // odd-length BMPString: not decodable, shown losslessly as hex
    let (rfc, _, cn) = one_cn(tlv(0x1e, &[0x00, 0x41, 0x00]));
    assert_eq!(rfc, "CN=#1E03004100");
    assert_eq!(cn.as_deref(), Some("\0A\0"));
    // unpaired surrogate
    assert_eq!(one_cn(tlv(0x1e, &[0xd8, 0x00])).0, "CN=#1E02D800");
}

#[test]
fn dotted_oids_and_email() {
    let (rfc, line, _) = forms(&[
        vec![atv(SERIAL_NUMBER, printable("42"))],
        vec![atv(EMAIL, tlv(0x16, b"a@b.jp"))],
    ]);
    assert_eq!(
        rfc,
        "1.2.840.113549.1.9.1=#16066140622E6A70,2.5.4.5=#13023432"
    );
    assert_eq!(line, "/2.5.4.5=42/emailAddress=a@b.jp");
}

#[test]
fn last_cn_wins() {
    let (_, _, cn) = forms(&[vec![atv(CN, utf8("outer"))], vec![atv(CN, utf8("inner"))]]);
    assert_eq!(cn.as_deref(), Some("inner"));
    assert_eq!(forms(&[vec![atv(O, utf8("x"))]]).2, None);
    assert_eq!(forms(&[]).0, "");
    assert_eq!(forms(&[]).1, "");
}

// --- serial ------------------------------------------------------------

#[test]
fn serial_formatting() {
    assert_eq!(serial_hex(&[0x0a, 0x1b]), "0a1b");
    assert_eq!(serial_hex(&[0x00]), "00");
    assert_eq!(serial_hex(&[]), "00");
    assert_eq!(serial_hex(&[0x00, 0x80, 0x01]), "8001");
    assert_eq!(serial_hex(&[0x00, 0x00, 0x01]), "01");
    assert_eq!(serial_hex(&[0xff]), "-01");
    assert_eq!(serial_hex(&[0xff, 0x00]), "-0100");
    assert_eq!(serial_hex(&[0x80]), "-80");
}

// --- whole certificates --------------------------------------------------

fn client_params() -> CertificateParams {
    let mut params = CertificateParams::new(vec![
        "orca.example.jp".to_owned(),
        "*.clinic.example".to_owned(),
        "192.168.1.10".to_owned(),
        "::1".to_owned(),
    ])
    .expect("params");
    let mut dn = DistinguishedName::new();
    dn.push(
        DnType::CountryName,
        DnValue::PrintableString("JP".try_into().expect("printable")),
    );
    dn.push(DnType::OrganizationName, "orca");
    dn.push(DnType::CommonName, "山田太郎");
    params.distinguished_name = dn;
    params.serial_number = Some(SerialNumber::from_slice(&[0x0a, 0x1b]));
    params.not_before = date_time_ymd(2025, 4, 1) + Duration::from_secs(9 * 3600);
    params.not_after = date_time_ymd(2026, 3, 31) + Duration::from_secs(23 * 3600 + 59 * 60);
    params
}

fn self_signed(params: &CertificateParams) -> Vec<u8> {
    let key = KeyPair::generate().expect("key");
    let cert = params.self_signed(&key).expect("cert");
    cert.der().to_vec()
}

fn utc(s: &str) -> DateTime<Utc> {
    s.parse().expect("test date")
}

#[test]
fn every_field_of_a_real_certificate() {
    let der = self_signed(&client_params());
    let info = CertInfo::from_der(&der).expect("parses");
    assert_eq!(info.subject_rfc4514, "CN=山田太郎,O=orca,C=JP");
    assert_eq!(info.issuer_rfc4514, "CN=山田太郎,O=orca,C=JP");
    assert_eq!(info.subject_oneline, "/C=JP/O=orca/CN=山田太郎");
    assert_eq!(info.issuer_oneline, "/C=JP/O=orca/CN=山田太郎");
    assert_eq!(info.common_name.as_deref(), Some("山田太郎"));
    assert_eq!(info.serial_hex, "0a1b");
    assert_eq!(info.not_before, utc("2025-04-01T09:00:00Z"));
    assert_eq!(info.not_after, utc("2026-03-31T23:59:00Z"));
    assert_eq!(info.sha256_hex, hex_lower(&Sha256::digest(&der)));
    assert_eq!(info.sha256_hex.len(), 64);
    assert!(
        info.sha256_hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    );
    assert_eq!(info.dns_names, ["orca.example.jp", "*.clinic.example"]);
    let ips: Vec<IpAddr> = vec!["192.168.1.10".parse().unwrap(), "::1".parse().unwrap()];
    assert_eq!(info.ip_addresses, ips);
}

#[test]
fn issuer_differs_from_subject_and_escapes_survive() {
    let key = KeyPair::generate().expect("key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
    let mut ca_dn = DistinguishedName::new();
    ca_dn.push(DnType::OrganizationName, "orca");
    ca_dn.push(DnType::CommonName, "ORCA CA");
    ca_params.distinguished_name = ca_dn;
    let ca_cert = ca_params.self_signed(&key).expect("ca");
    let issuer = rcgen::Issuer::new(ca_params, key);

    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Clinic, Inc.");
    dn.push(DnType::CommonName, "<script>+a/b");
    params.distinguished_name = dn;
    params.serial_number = Some(SerialNumber::from(0u64));
    let leaf_key = KeyPair::generate().expect("key");
    let leaf = params.signed_by(&leaf_key, &issuer).expect("leaf");

    let info = CertInfo::from_der(leaf.der()).expect("parses");
    assert_eq!(info.subject_rfc4514, r"CN=\<script\>\+a/b,O=Clinic\, Inc.");
    assert_eq!(info.subject_oneline, r"/O=Clinic, Inc./CN=<script>+a\/b");
    assert_eq!(info.issuer_rfc4514, "CN=ORCA CA,O=orca");
    assert_eq!(info.issuer_oneline, "/O=orca/CN=ORCA CA");
    assert_eq!(info.serial_hex, "00");
    assert!(info.dns_names.is_empty() && info.ip_addresses.is_empty());
    assert!(CertInfo::from_der(ca_cert.der()).is_ok());
}

#[test]
fn rejects_garbage_and_trailing_data() {
    assert!(CertInfo::from_der(&[]).is_err());
    assert!(CertInfo::from_der(b"-----BEGIN CERTIFICATE-----").is_err());
    let mut der = self_signed(&client_params());
    der.push(0);
    let err = CertInfo::from_der(&der).expect_err("trailing byte");
    assert!(err.message().contains("trailing"), "{err}");
}

/// Cheap deterministic fuzzing: mutated and truncated certificates must
/// give an error or a value, never a panic.
#[test]
fn mutated_input_never_panics() {
    let der = self_signed(&client_params());
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let now = utc("2026-01-01T00:00:00Z");
    for round in 0..4000 {
        let mut input = der.clone();
        for _ in 0..=(next() % 4) {
            let at = (next() as usize) % input.len();
            input[at] = next() as u8;
        }
        if round % 5 == 0 {
            input.truncate((next() as usize) % input.len());
        }
        if let Ok(info) = CertInfo::from_der(&input) {
            let _ = info.days_left(now);
            let _ = info.covers_host("orca.example.jp");
        }
    }
    for len in 0..der.len() {
        let _ = CertInfo::from_der(&der[..len]);
    }
}

// --- days_left -----------------------------------------------------------

fn info_expiring(not_after: DateTime<Utc>) -> CertInfo {
    CertInfo {
        subject_rfc4514: String::new(),
        issuer_rfc4514: String::new(),
        subject_oneline: String::new(),
        issuer_oneline: String::new(),
        common_name: None,
        organizations: Vec::new(),
        organizational_units: Vec::new(),
        serial_hex: "00".to_owned(),
        not_before: DateTime::<Utc>::MIN_UTC,
        not_after,
        sha256_hex: String::new(),
        dns_names: Vec::new(),
        ip_addresses: Vec::new(),
    }
}

#[test]
fn days_left_rounds_down() {
    let now = utc("2026-01-10T12:00:00Z");
    let days = |d: i64, s: i64| {
        let info = info_expiring(now + TimeDelta::days(d) + TimeDelta::seconds(s));
        info.days_left(now)
    };
    assert_eq!(days(10, -60), 9);
    assert_eq!(days(10, 0), 10);
    assert_eq!(days(0, 1), 0);
    assert_eq!(days(0, 0), 0);
    assert_eq!(days(0, -1), -1);
    assert_eq!(days(0, -3600), -1);
    assert_eq!(days(-1, 0), -1);
    assert_eq!(days(-1, -1), -2);
    // sub-second: expired half a second ago is already "-1"
    let half = info_expiring(now - TimeDelta::milliseconds(500));
    assert_eq!(half.days_left(now), -1);
    // extremes do not overflow
    let far = info_expiring(DateTime::<Utc>::MAX_UTC);
    assert!(far.days_left(DateTime::<Utc>::MIN_UTC) > 0);
    let past = info_expiring(DateTime::<Utc>::MIN_UTC);
    assert!(past.days_left(DateTime::<Utc>::MAX_UTC) < 0);
}

// --- covers_host ---------------------------------------------------------

fn info_for(cn: Option<&str>, dns: &[&str], ips: &[&str]) -> CertInfo {
    CertInfo {
        common_name: cn.map(str::to_owned),
        dns_names: dns.iter().map(|s| (*s).to_owned()).collect(),
        ip_addresses: ips.iter().map(|s| s.parse().expect("ip")).collect(),
        ..info_expiring(DateTime::<Utc>::MAX_UTC)
    }
}

#[test]
fn covers_san_dns_and_wildcard() {
    let info = info_for(
        Some("ignored.example"),
        &["orca.example.jp", "*.clinic.example"],
        &[],
    );
    assert!(info.covers_host("orca.example.jp"));
    assert!(info.covers_host("ORCA.Example.JP"));
    assert!(info.covers_host("orca.example.jp."));
    assert!(info.covers_host("a.clinic.example"));
    assert!(!info.covers_host("clinic.example"));
    assert!(!info.covers_host("a.b.clinic.example"));
    assert!(!info.covers_host(".clinic.example"));
    assert!(!info.covers_host("other.example.jp"));
    // CN is not consulted when DNS SANs exist
    assert!(!info.covers_host("ignored.example"));
    assert!(!info.covers_host(""));
}

#[test]
fn covers_san_ip() {
    let info = info_for(Some("10.0.0.9"), &["orca.local"], &["192.168.1.10", "::1"]);
    assert!(info.covers_host("192.168.1.10"));
    assert!(info.covers_host("::1"));
    assert!(info.covers_host("[::1]"));
    assert!(info.covers_host("0:0:0:0:0:0:0:1"));
    assert!(!info.covers_host("192.168.1.11"));
    assert!(
        !info.covers_host("10.0.0.9"),
        "CN unused when IP SANs exist"
    );
}

#[test]
fn cn_fallback_only_without_san_of_that_kind() {
    let no_san = info_for(Some("orca.local"), &[], &[]);
    assert!(no_san.covers_host("orca.local"));
    assert!(!no_san.covers_host("other.local"));

    let wildcard_cn = info_for(Some("*.clinic.example"), &[], &[]);
    assert!(wildcard_cn.covers_host("pc1.clinic.example"));

    let ip_cn = info_for(Some("192.168.1.10"), &["orca.local"], &[]);
    assert!(ip_cn.covers_host("192.168.1.10"), "no IP SAN: CN is used");
    assert!(!ip_cn.covers_host("192.168.1.10.example"));

    let dns_cn_ip_san = info_for(Some("orca.local"), &[], &["192.168.1.10"]);
    assert!(
        dns_cn_ip_san.covers_host("orca.local"),
        "no DNS SAN: CN is used"
    );

    let none = info_for(None, &[], &[]);
    assert!(!none.covers_host("orca.local"));
    assert!(!none.covers_host("127.0.0.1"));
}

#[test]
fn wildcard_edge_cases() {
    assert!(!dns_matches("*.", "a."));
    assert!(!dns_matches("*", "a"));
    assert!(!dns_matches("*.*.example", "a.b.example"));
    assert!(!dns_matches("a*.example", "ab.example"));
    assert!(dns_matches("a*.example", "a*.example"), "literal compare");
    assert!(dns_matches("*.example", "x.example"));
}
