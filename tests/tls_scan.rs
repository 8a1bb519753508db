//! sslyze against the running proxy: protocol versions, cipher suites,
//! compression, renegotiation, client authentication. The JSON reports stay in
//! `target/artefacts/`.

use std::path::Path;

use serde_json::Value;
use tokio::process::Command;

use crate::util::env::{Env, Setup};
use crate::util::real::{artefacts, bounded, catool_files, venv_python};

/// Runs sslyze on `addr`, with the client certificate when given, and
/// returns the scan of that server from the JSON report written to `report`.
async fn sslyze(
    addr: std::net::SocketAddr,
    cert: Option<(&Path, &Path)>,
    scans: &[&str],
    report: &str,
) -> Value {
    let json = artefacts().join(report);
    let _ = std::fs::remove_file(&json);
    let mut cmd = Command::new(venv_python());
    cmd.args(["-m", "sslyze", "--quiet", "--mozilla_config=disable"]);
    if let Some((crt, key)) = cert {
        cmd.arg("--cert").arg(crt).arg("--key").arg(key);
    }
    cmd.args(scans)
        .arg("--json_out")
        .arg(&json)
        .arg(addr.to_string());
    let out = bounded(120, &mut cmd).await;
    assert!(
        out.status.success(),
        "sslyze: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let server = doc["server_scan_results"][0].clone();
    assert_eq!(
        server["connectivity_status"], "COMPLETED",
        "sslyze could not connect: {}",
        server["connectivity_error_trace"]
    );
    server
}

/// The result of one scan command, which must have completed.
fn result<'a>(server: &'a Value, command: &str) -> &'a Value {
    let scan = &server["scan_result"][command];
    assert_eq!(scan["status"], "COMPLETED", "{command}: {scan}");
    &scan["result"]
}

fn accepted(server: &Value, command: &str) -> Vec<String> {
    result(server, command)["accepted_cipher_suites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let name = s["cipher_suite"]["name"].as_str().unwrap().to_string();
            // forward secrecy: each accepted suite used an ephemeral key
            assert!(
                s["ephemeral_key"].is_object(),
                "{name} without an ephemeral key: {s}"
            );
            name
        })
        .collect()
}

#[tokio::test]
async fn sslyze_finds_only_modern_tls_and_client_authentication() {
    let python = venv_python();
    assert!(python.exists());
    let env = Env::start().await;
    let files = catool_files(env.dir.path(), 3, &env.user1, &env.ca.pem).await;
    let mut strict = Setup::new();
    strict.conf.push("CLIENT_CERT_ERRORS=handshake".into());
    let strict = strict.start().await;

    let full = [
        "--sslv2",
        "--sslv3",
        "--tlsv1",
        "--tlsv1_1",
        "--tlsv1_2",
        "--tlsv1_3",
        "--compression",
        "--reneg",
        "--resum",
        "--fallback",
        "--heartbleed",
        "--openssl_ccs",
        "--robot",
        "--elliptic_curves",
        "--ems",
        "--early_data",
    ];
    // sslyze reports whether client authentication is requested only when it
    // has no certificate to send; those scans need nothing else
    let (scan, page_mode, handshake_mode) = tokio::join!(
        sslyze(
            env.addr,
            Some((&files.crt, &files.pem)),
            &full,
            "sslyze.json"
        ),
        sslyze(env.addr, None, &[], "sslyze-client-auth-page-mode.json"),
        sslyze(
            strict.addr,
            None,
            &[],
            "sslyze-client-auth-handshake-mode.json"
        ),
    );

    // only TLS 1.2 and 1.3
    for old in [
        "ssl_2_0_cipher_suites",
        "ssl_3_0_cipher_suites",
        "tls_1_0_cipher_suites",
        "tls_1_1_cipher_suites",
    ] {
        assert_eq!(accepted(&scan, old), Vec::<String>::new(), "{old}");
    }
    let tls12 = accepted(&scan, "tls_1_2_cipher_suites");
    let tls13 = accepted(&scan, "tls_1_3_cipher_suites");
    assert!(
        !tls12.is_empty() && !tls13.is_empty(),
        "{tls12:?} {tls13:?}"
    );
    // only AEAD suites with forward secrecy
    let aead =
        |n: &str| n.contains("_GCM_") || n.contains("CHACHA20_POLY1305") || n.contains("_CCM");
    for name in &tls12 {
        assert!(aead(name), "TLS 1.2 suite without AEAD: {name}");
        assert!(
            name.starts_with("TLS_ECDHE_") || name.starts_with("TLS_DHE_"),
            "TLS 1.2 suite without forward secrecy: {name}"
        );
    }
    for name in &tls13 {
        assert!(aead(name), "TLS 1.3 suite without AEAD: {name}");
    }
    // no compression
    assert_eq!(
        result(&scan, "tls_compression")["supports_compression"],
        false
    );
    // secure renegotiation or none
    let reneg = result(&scan, "session_renegotiation");
    assert_eq!(
        reneg["is_vulnerable_to_client_renegotiation_dos"], false,
        "{reneg}"
    );
    assert!(
        reneg["supports_secure_renegotiation"] == true
            || reneg["client_renegotiations_success_count"] == 0,
        "{reneg}"
    );
    // and the classics
    assert_eq!(
        result(&scan, "heartbleed")["is_vulnerable_to_heartbleed"],
        false
    );
    assert_eq!(
        result(&scan, "openssl_ccs_injection")["is_vulnerable_to_ccs_injection"],
        false
    );
    assert_eq!(
        result(&scan, "tls_fallback_scsv")["supports_fallback_scsv"],
        true
    );
    assert_eq!(
        result(&scan, "tls_1_3_early_data")["supports_early_data"],
        false
    );

    // client authentication is requested: optional in the TLS sense with
    // CLIENT_CERT_ERRORS=page (the proxy finishes the handshake to show its
    // page), required with CLIENT_CERT_ERRORS=handshake
    assert_eq!(
        page_mode["connectivity_result"]["client_auth_requirement"],
        "OPTIONAL"
    );
    assert_eq!(
        handshake_mode["connectivity_result"]["client_auth_requirement"],
        "REQUIRED"
    );
    // nothing of the scans reached WebORCA but the client-certificate ones
    assert_eq!(strict.backend.count(), 0);
}
