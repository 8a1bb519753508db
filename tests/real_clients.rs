//! The clients clinics use, as real programs: curl (ORCA API clients) and
//! openssl s_client (what a vendor's engineer checks with).

use std::process::Output;

use tokio::process::Command;

use crate::util::env::Env;
use crate::util::pki::write;

async fn run(cmd: &mut Command) -> Output {
    tokio::time::timeout(std::time::Duration::from_secs(30), cmd.output())
        .await
        .expect("bounded")
        .expect("runs")
}

fn files(env: &Env) -> (String, String, String) {
    let d = env.dir.path();
    let crt = write(d, "000003__JP_orca_user1.crt", &env.user1.pem);
    let key = write(d, "000003__JP_orca_user1.pem", &env.user1.key_pem);
    (
        crt.display().to_string(),
        key.display().to_string(),
        env.path("ca.crt").display().to_string(),
    )
}

#[tokio::test]
async fn curl_with_pem_certificate_posts_xml_through() {
    let env = Env::start().await;
    let (crt, key, ca) = files(&env);
    let url = format!(
        "https://localhost:{}/api01rv2/patientgetv2?id=1",
        env.addr.port()
    );
    let out = run(Command::new("curl")
        .args([
            "-sS",
            "--resolve",
            &format!("localhost:{}:127.0.0.1", env.addr.port()),
        ])
        .args([
            "--cacert",
            &ca,
            "--cert",
            &crt,
            "--key",
            &key,
            "-u",
            "ormaster:ormaster",
        ])
        .args([
            "-H",
            "Content-Type: application/xml",
            "--data-binary",
            "<data><Patient_ID>1</Patient_ID></data>",
            &url,
        ]))
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen = env.backend.last();
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.target, "/api01rv2/patientgetv2?id=1");
    assert_eq!(
        seen.one("authorization"),
        Some("Basic b3JtYXN0ZXI6b3JtYXN0ZXI=")
    );
    assert_eq!(seen.body_len, 39);
}

#[tokio::test]
async fn curl_without_certificate_gets_the_403_text() {
    let env = Env::start().await;
    let (_, _, ca) = files(&env);
    let url = format!(
        "https://localhost:{}/api01rv2/system01lstv2",
        env.addr.port()
    );
    let out = run(Command::new("curl").args([
        "-sS",
        "-i",
        "--resolve",
        &format!("localhost:{}:127.0.0.1", env.addr.port()),
        "--cacert",
        &ca,
        &url,
    ]))
    .await;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        text.starts_with("HTTP/2 403") || text.starts_with("HTTP/1.1 403"),
        "{text}"
    );
    assert!(
        text.to_ascii_lowercase()
            .contains("x-client-cert-error: missing"),
        "{text}"
    );
    assert!(text.contains("証明書"), "{text}");
    assert_eq!(env.backend.count(), 0);
}

#[tokio::test]
async fn curl_plain_http_follows_the_redirect_to_https() {
    let env = Env::start().await;
    let (crt, key, ca) = files(&env);
    let port = env.addr.port();
    let out = run(Command::new("curl")
        .args([
            "-sS",
            "-L",
            "-o",
            "/dev/null",
            "-w",
            "%{url_effective} %{http_code}",
        ])
        .args([
            "--resolve",
            &format!("localhost:{port}:127.0.0.1"),
            "--cacert",
            &ca,
            "--cert",
            &crt,
            "--key",
            &key,
        ])
        .arg(format!("http://localhost:{port}/path?q=1")))
    .await;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(
        text,
        format!("https://localhost:{port}/path?q=1 200"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(env.backend.last().target, "/path?q=1");
}

#[tokio::test]
async fn openssl_sees_the_ca_names_and_a_verified_answer() {
    let env = Env::start().await;
    let (crt, key, ca) = files(&env);
    let connect = env.addr.to_string();
    let mut cmd = Command::new("openssl");
    cmd.args([
        "s_client", "-connect", &connect, "-CAfile", &ca, "-cert", &crt, "-key", &key, "-ign_eof",
    ])
    .stdin(std::process::Stdio::piped());
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(
                b"GET /from-openssl HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
            )
            .await
            .unwrap();
    }
    let out = tokio::time::timeout(std::time::Duration::from_secs(30), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        text.contains("Acceptable client certificate CA names"),
        "{text}"
    );
    let names = text
        .split("Acceptable client certificate CA names")
        .nth(1)
        .unwrap();
    assert!(
        names.lines().nth(1).unwrap().contains("CN = test-ca"),
        "{names}"
    );
    assert!(text.contains("HTTP/1.1 200"), "{text}");
    assert_eq!(env.backend.last().target, "/from-openssl");
}

#[tokio::test]
async fn openssl_tls11_is_refused() {
    let env = Env::start().await;
    let (crt, key, ca) = files(&env);
    let connect = env.addr.to_string();
    for proto in ["-tls1_1", "-tls1"] {
        let out = run(Command::new("openssl")
            .args([
                "s_client",
                "-connect",
                &connect,
                proto,
                "-cipher",
                "DEFAULT@SECLEVEL=0",
                "-CAfile",
                &ca,
                "-cert",
                &crt,
                "-key",
                &key,
            ])
            .stdin(std::process::Stdio::null()))
        .await;
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        // rustls answers an old ClientHello with a fatal alert; no cipher is ever agreed
        assert!(
            text.contains("Cipher is (NONE)"),
            "{proto} was accepted: {text}"
        );
        assert!(
            text.contains("alert handshake failure") || text.contains("alert protocol version"),
            "{proto}: {text}"
        );
    }
    let ok = run(Command::new("openssl")
        .args([
            "s_client", "-connect", &connect, "-tls1_2", "-CAfile", &ca, "-cert", &crt, "-key",
            &key,
        ])
        .stdin(std::process::Stdio::null()))
    .await;
    let text = String::from_utf8_lossy(&ok.stdout).to_string();
    assert!(
        text.contains("Protocol  : TLSv1.2") || text.contains("Protocol: TLSv1.2"),
        "{text}"
    );
    assert_eq!(env.backend.count(), 0);
}
