//! Java 17 as monsiaj uses it (tests/clients/OrcaClient.java, compiled by
//! javac here): `java.net.http.HttpClient` with orca-catool's `.p12` in a
//! PKCS12 KeyStore and `ca.crt` as the trust store, an ORCA API call over
//! HTTP/1.1 and HTTP/2, `java.net.http.WebSocket` on `/ws` through a reload
//! and a quiet period, and the `missing` answer without a key manager.

use sha2::{Digest, Sha256};
use tokio::process::Command;

use crate::util::backend::hex;
use crate::util::env::Env;
use crate::util::push::PushProxy;
use crate::util::real::{bounded, catool_files, java, json_lines};

const XML: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<data>
  <patientinfreq type="record">
    <Patient_ID type="string">1</Patient_ID>
    <WholeName type="string">日医　太郎</WholeName>
  </patientinfreq>
</data>
"#;

#[tokio::test]
async fn java_httpclient_with_the_p12_posts_xml_over_http1_and_http2() {
    let env = Env::start().await;
    let files = catool_files(env.dir.path(), 3, &env.user1, &env.ca.pem).await;
    let pass = env.path("000003__JP_orca_user1.pass");
    let body = crate::util::pki::write(env.dir.path(), "patientgetv2.xml", XML);
    let url = format!(
        "https://localhost:{}/api01rv2/patientgetv2?id=1",
        env.addr.port()
    );
    for version in ["HTTP_1_1", "HTTP_2"] {
        let before = env.backend.count();
        let mut cmd = java("api").await;
        cmd.arg(&url)
            .arg(env.path("ca.crt"))
            .arg(&files.p12)
            .arg(&pass)
            .arg(version)
            .arg(&body);
        let answer = &json_lines(&bounded(60, &mut cmd).await)[0];
        assert_eq!(answer["status"], 200, "{version}: {answer}");
        assert_eq!(answer["version"], version, "{answer}");
        assert_eq!(env.backend.count(), before + 1);
        let seen = env.backend.last();
        assert_eq!(seen.method, "POST");
        assert_eq!(seen.target, "/api01rv2/patientgetv2?id=1");
        assert_eq!(seen.one("content-type"), Some("application/xml"));
        assert_eq!(
            seen.one("authorization"),
            Some("Basic b3JtYXN0ZXI6b3JtYXN0ZXIxMjM=")
        );
        assert_eq!(seen.body_sha256, hex(&Sha256::digest(XML.as_bytes())));
        assert_eq!(seen.one("x-ssl-client-s-dn"), Some("CN=user1,O=orca,C=JP"));
        // the stand-in's answer reached Java unchanged
        let echoed: serde_json::Value =
            serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
        assert_eq!(echoed["body_sha256"], seen.body_sha256);
    }
}

#[tokio::test]
async fn java_httpclient_without_a_key_manager_gets_the_missing_answer() {
    let env = Env::start().await;
    let url = format!(
        "https://localhost:{}/api01rv2/system01lstv2",
        env.addr.port()
    );
    let mut cmd: Command = java("missing").await;
    cmd.arg(&url).arg(env.path("ca.crt"));
    let answer = &json_lines(&bounded(60, &mut cmd).await)[0];
    assert_eq!(answer["status"], 403, "{answer}");
    assert_eq!(answer["cert_error"], "missing", "{answer}");
    assert!(
        answer["body"].as_str().unwrap().contains("証明書"),
        "{answer}"
    );
    assert_eq!(env.backend.count(), 0, "a refused client reached WebORCA");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn java_websocket_stays_open_through_a_reload_and_past_idle_timeout() {
    let mut run = PushProxy::start().await;
    let mut ws = run.java_client().await;
    ws.connected().await;
    ws.subscribe().await;
    run.check_upgrade_seen();
    run.reload_and_quiet(&mut ws).await;
    ws.close_cleanly().await;
}
