//! `install-cert`: checking the zip's new set before anything is written: a
//! current server certificate (serverAuth, naming a host, covering `--host`),
//! its key without a passphrase and matching it, and its chain to the zip's ca.crt.

use rustls::pki_types::{PrivateKeyDer, pem::PemObject};

use super::archive::ZipCert;
use crate::setup::command::parse_pem_certs;
use crate::x509::CertInfo;

/// Checks the certificate, key and CA of the zip; the certificate's info on success.
pub(super) fn check_cert(z: &ZipCert, hosts: &[String]) -> Result<CertInfo, String> {
    let crt_name = format!("{}.crt", z.stem);
    let pem_name = format!("{}.pem", z.stem);
    let chain = parse_pem_certs(&crt_name, &z.crt)?;
    let cas = parse_pem_certs("ca.crt", &z.ca)?;
    let leaf_der = &chain[0];
    let info = CertInfo::from_der(leaf_der.as_ref())
        .map_err(|e| format!("{crt_name}: {}", e.message()))?;
    let (_, leaf) = x509_parser::parse_x509_certificate(leaf_der.as_ref())
        .map_err(|e| format!("{crt_name}: {e}"))?;
    if !crate::x509::serves_tls(leaf_der.as_ref()) {
        return Err(format!(
            "{crt_name} is a client certificate (no serverAuth): use the zip of orca-catool issue_server_cert, not issue_client_cert"
        ));
    }
    if info.dns_names.is_empty()
        && info.ip_addresses.is_empty()
        && info.common_name.as_deref().is_none_or(str::is_empty)
    {
        return Err(format!(
            "{crt_name} names no host (no SAN, no CN): it is not a server certificate"
        ));
    }
    let now = chrono::Utc::now();
    if info.not_after < now {
        return Err(format!(
            "{crt_name} expired on {}: issue a new one with orca-catool issue_server_cert",
            info.not_after
        ));
    }
    if info.not_before > now {
        return Err(format!(
            "{crt_name} is not valid before {}: check this machine's clock",
            info.not_before
        ));
    }
    // The key: no passphrase, and the one of this certificate.
    if std::str::from_utf8(&z.pem).is_ok_and(|t| t.contains("ENCRYPTED")) {
        return Err(format!(
            "{pem_name} is protected by a passphrase: the zip's .pem must be the one without"
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(&z.pem).map_err(|e| {
        format!(
            "{pem_name} holds no usable private key: {}",
            crate::text::pem_error(&e)
        )
    })?;
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| format!("{pem_name}: unsupported private key: {e}"))?;
    let certified = rustls::sign::CertifiedKey::new(chain.clone(), signing);
    certified.keys_match().map_err(|_| {
        format!(
            "{pem_name} does not match {crt_name} ({}): use the key issued with it",
            crate::tls::mismatch_reason(&certified)
        )
    })?;
    // The chain: signed by the zip's CA.
    let signed = cas.iter().any(|ca| {
        x509_parser::parse_x509_certificate(ca.as_ref()).is_ok_and(|(_, ca)| {
            ca.subject().as_raw() == leaf.issuer().as_raw()
                && leaf.verify_signature(Some(ca.public_key())).is_ok()
        })
    });
    if !signed {
        return Err(format!(
            "{crt_name} (issued by {}) does not chain to the zip's ca.crt: the zip mixes files of two CAs",
            info.issuer_oneline
        ));
    }
    for host in hosts {
        if !info.covers_host(host) {
            let names: Vec<String> = info
                .dns_names
                .iter()
                .cloned()
                .chain(info.ip_addresses.iter().map(|i| i.to_string()))
                .collect();
            return Err(format!(
                "{crt_name} does not cover {host} (it names {}): issue one with orca-catool issue_server_cert for that name",
                names.join(", ")
            ));
        }
    }
    Ok(info)
}
