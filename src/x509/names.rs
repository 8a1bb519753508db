//! Distinguished names as the proxy writes them: RFC 4514 strings (the
//! identity headers), OpenSSL's one-line form (WebORCA's log lines and the
//! pages), the common name, and the directory string types decoded from DER
//! without trusting them.

#[allow(unused_imports)]
use super::*;

/// Short names are exactly the ones RFC 4514 §3 defines, so any RFC 4514
/// parser can read the result back; every other type is a dotted OID.
pub(super) fn rfc4514_short_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.6" => "C",
        "2.5.4.9" => "STREET",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        _ => return None,
    })
}

/// The RFC 4514 form: RDNs in reverse certificate order, `+` inside an RDN.
/// For a type written as a dotted OID, RFC 4514 §2.4 requires the value as
/// `#` + hex of its DER encoding; that also covers emailAddress.
pub(crate) fn rfc4514(name: &X509Name<'_>) -> String {
    let rdns: Vec<String> = name
        .iter_rdn()
        .map(|rdn| {
            let parts: Vec<String> = rdn.iter().map(rfc4514_attribute).collect();
            parts.join("+")
        })
        .collect();
    let reversed: Vec<String> = rdns.into_iter().rev().collect();
    reversed.join(",")
}

pub(super) fn rfc4514_attribute(attr: &AttributeTypeAndValue<'_>) -> String {
    let oid = attr.attr_type().to_id_string();
    let value = attr.attr_value();
    match (rfc4514_short_name(&oid), decode_string(value)) {
        (Some(short), Some(text)) => format!("{short}={}", escape_rfc4514(&text)),
        (Some(short), None) => format!("{short}=#{}", der_hex(value)),
        (None, _) => format!("{oid}=#{}", der_hex(value)),
    }
}

/// Escapes per RFC 4514 §2.4. Control characters (C0, DEL, C1) are written
/// as `\hh` per UTF-8 byte so the string stays on one line in logs and is
/// a valid header value; other non-ASCII text (山田太郎) is kept as is.
pub(super) fn escape_rfc4514(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for (i, c) in value.char_indices() {
        let first = i == 0;
        let last = i + c.len_utf8() == value.len();
        match c {
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '#' if first => out.push_str("\\#"),
            ' ' if first || last => out.push_str("\\ "),
            c if c.is_control() => push_byte_escapes(&mut out, c, "\\"),
            c => out.push(c),
        }
    }
    out
}

pub(super) fn push_byte_escapes(out: &mut String, c: char, prefix: &str) {
    let mut buf = [0u8; 4];
    for b in c.encode_utf8(&mut buf).bytes() {
        out.push_str(prefix);
        out.push_str(&hex_upper(&[b]));
    }
}

/// Name used in OpenSSL's one-line form.
pub(super) fn oneline_short_name(oid: &str) -> Option<&'static str> {
    if oid == OID_EMAIL {
        return Some("emailAddress");
    }
    rfc4514_short_name(oid)
}

/// OpenSSL one-line form: `/K=V` per RDN in certificate order, `+` inside an RDN.
pub(crate) fn oneline(name: &X509Name<'_>) -> String {
    let mut out = String::new();
    for rdn in name.iter_rdn() {
        out.push('/');
        for (i, attr) in rdn.iter().enumerate() {
            if i > 0 {
                out.push('+');
            }
            out.push_str(&oneline_attribute(attr));
        }
    }
    out
}

pub(super) fn oneline_attribute(attr: &AttributeTypeAndValue<'_>) -> String {
    let oid = attr.attr_type().to_id_string();
    let key = oneline_short_name(&oid).map_or(oid.clone(), str::to_owned);
    match decode_string(attr.attr_value()) {
        Some(text) => format!("{key}={}", escape_oneline(&text)),
        None => format!("{key}=#{}", der_hex(attr.attr_value())),
    }
}

/// Only `/` needs escaping to keep the form parseable. Control characters
/// become `\xHH` (OpenSSL's own notation) so a hostile value cannot break a
/// log line or an HTTP header.
pub(super) fn escape_oneline(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '/' => out.push_str("\\/"),
            c if c.is_control() => push_byte_escapes(&mut out, c, "\\x"),
            c => out.push(c),
        }
    }
    out
}

/// Last CN of the name, the most specific one.
/// Every value of attribute `oid` in `name` that decodes as a string.
pub(super) fn attribute_strings(name: &X509Name<'_>, oid: &str) -> Vec<String> {
    name.iter_attributes()
        .filter(|attr| attr.attr_type().to_id_string() == oid)
        .filter_map(|attr| decode_string(attr.attr_value()))
        .collect()
}

pub(crate) fn common_name(name: &X509Name<'_>) -> Option<String> {
    let last = name
        .iter_attributes()
        .filter(|attr| attr.attr_type().to_id_string() == OID_CN)
        .last()?;
    let value = last.attr_value();
    decode_string(value).or_else(|| {
        // A string-typed CN with broken encoding is still better shown
        // approximately than not at all; binary values are not text.
        is_string_tag(value).then(|| String::from_utf8_lossy(value.data).into_owned())
    })
}

pub(super) fn is_string_tag(value: &Any<'_>) -> bool {
    value.header.class() == Class::Universal
        && !value.header.is_constructed()
        && matches!(
            value.header.tag(),
            Tag::Utf8String
                | Tag::PrintableString
                | Tag::Ia5String
                | Tag::NumericString
                | Tag::VisibleString
                | Tag::TeletexString
                | Tag::BmpString
                | Tag::UniversalString
        )
}

/// Decodes the directory string types seen in certificates; `None` for
/// anything else or a malformed encoding, which then shows as `#hex`.
pub(super) fn decode_string(value: &Any<'_>) -> Option<String> {
    if !is_string_tag(value) {
        return None;
    }
    let data = value.data;
    match value.header.tag() {
        // T.61 is treated as Latin-1, as OpenSSL and most tools do.
        Tag::TeletexString => Some(data.iter().map(|&b| char::from(b)).collect()),
        Tag::BmpString => decode_bmp(value),
        Tag::UniversalString => decode_universal(value),
        _ => std::str::from_utf8(data).ok().map(str::to_owned),
    }
}

/// BMPString through asn1-rs. Its decoder reads an odd trailing byte as one
/// more UTF-16 unit, so that case (a broken encoding, not a shorter string) is
/// refused here first and shown as `#hex`.
pub(super) fn decode_bmp(value: &Any<'_>) -> Option<String> {
    if !value.data.len().is_multiple_of(2) {
        return None;
    }
    BmpString::try_from(value).ok().map(|s| s.string())
}

/// UniversalString (UTF-32BE) through asn1-rs, which refuses a length that is
/// not a multiple of four and any value that is not a character.
pub(super) fn decode_universal(value: &Any<'_>) -> Option<String> {
    UniversalString::try_from(value).ok().map(|s| s.string())
}

/// Hex of the value's full DER encoding (tag, length, content).
pub(super) fn der_hex(value: &Any<'_>) -> String {
    match value.to_der_vec() {
        Ok(der) => hex_upper(&der),
        // Re-encoding a parsed value into memory cannot really fail; if it
        // ever does, the content octets are the most faithful fallback.
        Err(_) => hex_upper(value.data),
    }
}
