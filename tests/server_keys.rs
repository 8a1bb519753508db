//! Server keys as orca-catool ships them: `.enc.pem` with its `.pass`
//! (traditional OpenSSL and encrypted PKCS#8), and `.p12` (modern and legacy).

use std::path::PathBuf;

use crate::util::env::Setup;
use crate::util::openssl::openssl;
use crate::util::pki::write;
use crate::util::process::Proc;

/// Writes the `.pass` file (with a trailing newline, as editors leave it).
fn pass_file(setup: &Setup) -> PathBuf {
    write(
        setup.dir.path(),
        "000002__JP_orca_localhost.pass",
        "6RYv24bqgpyu6tn8\n",
    )
}

const KEY: &str = "000002__JP_orca_localhost.pem";
const CRT: &str = "000002__JP_orca_localhost.crt";

/// Serves one request with a setup whose SERVER_PEM is `enc` made by `args`.
async fn serves_with_encrypted_key(args: &[&str]) {
    let mut setup = Setup::new();
    setup.write_config("http://127.0.0.1:9");
    let pass = pass_file(&setup);
    let mut full: Vec<&str> = args.to_vec();
    full.extend([
        "-in",
        KEY,
        "-out",
        "enc.pem",
        "-passout",
        "pass:6RYv24bqgpyu6tn8",
    ]);
    openssl(&full, setup.dir.path());
    setup.conf.push(format!(
        "SERVER_PEM={}",
        setup.dir.path().join("enc.pem").display()
    ));
    setup
        .conf
        .push(format!("SERVER_PASS_FILE={}", pass.display()));
    let env = setup.start().await;
    let answer = env
        .client(Some(&env.user1))
        .get(env.addr, "/")
        .await
        .unwrap();
    assert_eq!(answer.status, 200, "{args:?}");
}

#[tokio::test]
async fn traditional_encrypted_keys_open_with_the_pass_file() {
    for cipher in ["-aes128", "-aes192", "-aes256", "-des3"] {
        serves_with_encrypted_key(&["pkey", "-traditional", cipher]).await;
    }
}

#[tokio::test]
async fn encrypted_pkcs8_keys_open_with_the_pass_file() {
    serves_with_encrypted_key(&[
        "pkcs8",
        "-topk8",
        "-v2",
        "aes-256-cbc",
        "-v2prf",
        "hmacWithSHA256",
    ])
    .await;
    serves_with_encrypted_key(&["pkcs8", "-topk8", "-v2", "des3"]).await;
}

#[tokio::test]
async fn pkcs12_server_certificates_open_in_modern_and_legacy_form() {
    for legacy in [false, true] {
        let setup = Setup::new();
        setup.write_config("http://127.0.0.1:9");
        let pass = pass_file(&setup);
        let mut args = vec![
            "pkcs12",
            "-export",
            "-inkey",
            KEY,
            "-in",
            CRT,
            "-certfile",
            "ca.crt",
        ];
        args.extend(["-out", "server.p12", "-passout", "pass:6RYv24bqgpyu6tn8"]);
        if legacy {
            args.push("-legacy");
        }
        openssl(&args, setup.dir.path());
        let conf = setup.write_config("http://127.0.0.1:9");
        // the same config without SERVER_CRT/SERVER_PEM, with SERVER_P12
        let text: String = std::fs::read_to_string(&conf)
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with("SERVER_CRT") && !l.starts_with("SERVER_PEM"))
            .map(|l| format!("{l}\n"))
            .collect();
        let text = format!(
            "{text}SERVER_P12={}\nSERVER_PASS_FILE={}\n",
            setup.dir.path().join("server.p12").display(),
            pass.display()
        );
        std::fs::write(&conf, text).unwrap();
        let mut p = Proc::start(&conf, &[]);
        let addr = p.listening();
        assert!(
            p.seen.contains(&"SERVER_P12 ...file exists".to_string()),
            "{:#?}",
            p.seen
        );
        let client = crate::util::client::Client::h1(&setup.ca.pem, Some(&setup.user1));
        let tls = client.connect(addr).await.unwrap();
        let served = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
        assert_eq!(
            served.as_ref(),
            setup.server.der.as_ref(),
            "legacy={legacy}"
        );
    }
}

#[tokio::test]
async fn wrong_passphrase_says_so_and_exits_78() {
    let setup = Setup::new();
    let conf = setup.write_config("http://127.0.0.1:9");
    openssl(
        &[
            "pkey",
            "-traditional",
            "-aes256",
            "-in",
            KEY,
            "-out",
            "enc.pem",
            "-passout",
            "pass:right",
        ],
        setup.dir.path(),
    );
    let pass = write(setup.dir.path(), "wrong.pass", "wrong\n");
    let text = std::fs::read_to_string(&conf).unwrap()
        + &format!(
            "SERVER_PEM={}\nSERVER_PASS_FILE={}\n",
            setup.dir.path().join("enc.pem").display(),
            pass.display()
        );
    std::fs::write(&conf, text).unwrap();
    let (code, lines) = Proc::start(&conf, &[]).exit();
    assert_eq!(code, 78, "{lines:#?}");
    assert!(
        lines.contains(&"PASSWORD input was canceled".to_string()),
        "{lines:#?}"
    );
    let last = lines.last().unwrap();
    assert!(
        last.contains("passphrase") && last.contains("wrong") && last.contains("wrong.pass"),
        "{last}"
    );
}

#[tokio::test]
async fn server_p12_together_with_server_crt_is_a_config_error() {
    let setup = Setup::new();
    let conf = setup.write_config("http://127.0.0.1:9");
    let text = std::fs::read_to_string(&conf).unwrap() + "SERVER_P12=/nonexistent/server.p12\n";
    std::fs::write(&conf, text).unwrap();
    let (code, lines) = Proc::start(&conf, &[]).exit();
    assert_eq!(code, 78);
    let last = lines.last().unwrap();
    assert!(
        last.contains("SERVER_P12") && last.contains("SERVER_CRT"),
        "{last}"
    );
}
