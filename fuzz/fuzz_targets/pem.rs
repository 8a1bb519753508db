//! Certificate and CRL files (PEM or DER) as an operator's damaged or wrong
//! file might hold them, and the certificate fields the pages and logs show.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use weborca_mtls_proxy::tls::load;
use weborca_mtls_proxy::x509::CertInfo;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz.pem");
    if let Ok(certs) = load::parse_certs("SERVER_CRT", path, data) {
        assert!(!certs.is_empty());
        for cert in &certs {
            if let Ok(info) = CertInfo::from_der(cert.as_ref()) {
                // what ends up in log lines and headers has no line breaks
                assert!(!info.subject_oneline.contains('\n'));
                assert!(!info.subject_rfc4514.contains('\n'));
            }
        }
    }
    if let Ok(crls) = load::parse_crls(path, data) {
        assert!(!crls.is_empty());
    }
    // Any bytes may also arrive as a client certificate.
    let _ = CertInfo::from_der(data);
});
