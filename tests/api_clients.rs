//! ORCA API clients as curl: a PEM certificate+key and orca-catool's `.p12`
//! with its passphrase, XML and JSON bodies with Basic auth, and a large
//! download from a `/blobapi/`-like path; everything arrives unchanged.

use sha2::{Digest, Sha256};
use tokio::process::Command;

use crate::util::backend::{hex, pattern_chunk};
use crate::util::env::Env;
use crate::util::real::{CatoolFiles, bounded, catool_files, require};

const XML: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<data>
  <patientinfreq type="record">
    <Patient_ID type="string">1</Patient_ID>
    <WholeName type="string">日医　太郎</WholeName>
  </patientinfreq>
</data>
"#;

const JSON: &str = r#"{"patientlst2req":{"Patient_ID_Information":[{"Patient_ID":"00001"},{"Patient_ID":"00002"}],"WholeName":"日医　花子"}}"#;

/// How curl shows the client certificate.
#[derive(Clone, Copy)]
enum Cert<'a> {
    Pem(&'a CatoolFiles),
    P12(&'a CatoolFiles),
}

async fn curl(env: &Env, cert: Cert<'_>, args: &[&str]) -> std::process::Output {
    require("curl");
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--fail-with-body", "--cacert"])
        .arg(env.path("ca.crt"));
    match cert {
        Cert::Pem(f) => cmd.arg("--cert").arg(&f.crt).arg("--key").arg(&f.pem),
        Cert::P12(f) => cmd
            .arg("--cert")
            .arg(format!("{}:{}", f.p12.display(), f.pass))
            .args(["--cert-type", "P12"]),
    };
    let out = bounded(60, cmd.args(args)).await;
    assert!(
        out.status.success(),
        "curl {args:?}: {}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    out
}

fn sha(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// POSTs `body` to `path` and checks the backend got exactly that.
async fn post(env: &Env, cert: Cert<'_>, path: &str, content_type: &str, body: &str) {
    let before = env.backend.count();
    let url = format!("https://127.0.0.1:{}{path}", env.addr.port());
    let out = curl(
        env,
        cert,
        &[
            "-u",
            "ormaster:ormaster123",
            "-H",
            &format!("Content-Type: {content_type}"),
            "--data-binary",
            body,
            &url,
        ],
    )
    .await;
    assert_eq!(env.backend.count(), before + 1);
    let seen = env.backend.last();
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.target, path);
    assert_eq!(seen.one("content-type"), Some(content_type));
    assert_eq!(
        seen.one("authorization"),
        Some("Basic b3JtYXN0ZXI6b3JtYXN0ZXIxMjM=")
    );
    assert_eq!(seen.body_len, body.len() as u64);
    assert_eq!(seen.body_sha256, sha(body.as_bytes()), "the body changed");
    assert_eq!(seen.one("x-ssl-client-s-dn"), Some("CN=user1,O=orca,C=JP"));
    // and the answer reached curl unchanged
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["body_sha256"], seen.body_sha256);
}

#[tokio::test]
async fn curl_http1_0_which_asks_for_it_by_alpn_is_served() {
    // `curl --http1.0` offers ALPN `http/1.0` alone: refused in the handshake
    // unless the server offers it too
    let env = Env::start().await;
    let files = catool_files(env.dir.path(), 3, &env.user1, &env.ca.pem).await;
    let url = format!("https://127.0.0.1:{}/one-zero", env.addr.port());
    let out = curl(
        &env,
        Cert::Pem(&files),
        &[
            "--http1.0",
            "-o",
            "/dev/null",
            "-w",
            "%{http_version}",
            &url,
        ],
    )
    .await;
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1");
    assert_eq!(env.backend.last().target, "/one-zero");
}

#[tokio::test]
async fn curl_with_pem_and_with_p12_sends_xml_and_json_unchanged() {
    let env = Env::start().await;
    let files = catool_files(env.dir.path(), 3, &env.user1, &env.ca.pem).await;
    for cert in [Cert::Pem(&files), Cert::P12(&files)] {
        post(
            &env,
            cert,
            "/api01rv2/patientgetv2?id=1",
            "application/xml",
            XML,
        )
        .await;
        post(
            &env,
            cert,
            "/api01rv2/patientlst2v2?class=01&format=json",
            "application/json",
            JSON,
        )
        .await;
    }
}

#[tokio::test]
async fn curl_downloads_a_large_blob_unchanged() {
    const N: u64 = 48 * 1024 * 1024;
    let env = Env::start().await;
    let files = catool_files(env.dir.path(), 3, &env.user1, &env.ca.pem).await;
    let out_file = env.path("blob.bin");
    let url = format!("https://127.0.0.1:{}/blobapi/big?n={N}", env.addr.port());
    let out = curl(
        &env,
        Cert::P12(&files),
        &[
            "-u",
            "ormaster:ormaster123",
            "-o",
            &out_file.display().to_string(),
            "-w",
            "%{http_code} %{size_download}",
            &url,
        ],
    )
    .await;
    assert_eq!(String::from_utf8_lossy(&out.stdout), format!("200 {N}"));
    let got = std::fs::read(&out_file).unwrap();
    assert_eq!(got.len() as u64, N);
    let mut expected = Sha256::new();
    let mut off = 0u64;
    while off < N {
        let len = (N - off).min(1 << 20);
        expected.update(pattern_chunk(off, len as usize));
        off += len;
    }
    assert_eq!(sha(&got), hex(&expected.finalize()), "the blob changed");
    assert_eq!(env.backend.last().target, format!("/blobapi/big?n={N}"));
}
