//! `weborca-mtls-proxy check`: passes on a good setup, and for each case of
//! WebORCA's troubleshooting list fails naming the problem and the fix.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use crate::util::backend::Backend;
use crate::util::env::Setup;
use crate::util::openssl::openssl;
use crate::util::pki::write;
use crate::util::process::bin;

/// A setup as an operator would leave it: key files mode 400.
fn good_setup(backend: &Backend) -> (Setup, std::path::PathBuf) {
    let setup = Setup::new();
    let conf = setup.write_config(&backend.url());
    let key = setup.dir.path().join("000002__JP_orca_localhost.pem");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o400)).unwrap();
    (setup, conf)
}

/// Runs check; returns (exit code, stdout lines).
fn check(conf: &std::path::Path, hosts: &[&str]) -> (i32, Vec<String>) {
    let mut cmd = Command::new(bin());
    // never the machine's own firewall
    cmd.env("NFT", "false").arg("check").arg("-c").arg(conf);
    for h in hosts {
        cmd.args(["--host", h]);
    }
    let out = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    (
        out.status.code().unwrap_or(-1),
        text.lines().map(str::to_string).collect(),
    )
}

fn failing<'a>(lines: &'a [String], needle: &str) -> &'a String {
    lines
        .iter()
        .find(|l| l.starts_with("FAIL") && l.contains(needle))
        .unwrap_or_else(|| panic!("no FAIL line with {needle:?}: {lines:#?}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn check_passes_on_a_good_setup() {
    let backend = Backend::start().await;
    let (_setup, conf) = good_setup(&backend);
    let (code, lines) = check(&conf, &["localhost", "127.0.0.1"]);
    assert_eq!(code, 0, "{lines:#?}");
    assert!(!lines.iter().any(|l| l.starts_with("FAIL")), "{lines:#?}");
    for needle in [
        "server key matches the certificate",
        "covers localhost",
        "covers 127.0.0.1",
        "WebORCA answers at",
        "listens on loopback only",
        "issued by the CA of CA_CRT",
    ] {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("ok") && l.contains(needle)),
            "{needle}: {lines:#?}"
        );
    }
    // The test's files are in a temporary folder, which the unit hides.
    let under_tmp = conf.starts_with("/tmp");
    let warned = lines
        .iter()
        .any(|l| l.starts_with("warn") && l.contains("SERVER_PEM") && l.contains("PrivateTmp=yes"));
    assert_eq!(warned, under_tmp, "{} {lines:#?}", conf.display());
}

#[tokio::test(flavor = "multi_thread")]
async fn check_fails_on_an_expired_server_certificate() {
    let backend = Backend::start().await;
    let (mut setup, _) = good_setup(&backend);
    setup.server = setup.ca.server_between(
        &["localhost"],
        (-400, -2),
        rcgen::KeyPair::generate().unwrap(),
    );
    let conf = setup.write_config(&backend.url());
    let (code, lines) = check(&conf, &["localhost"]);
    assert_eq!(code, 1);
    let line = failing(&lines, "will be expired in -");
    assert!(line.contains("orca-catool issue_server_cert"), "{line}");
}

#[tokio::test(flavor = "multi_thread")]
async fn check_fails_on_a_client_certificate_as_the_server_certificate_and_the_proxy_warns() {
    let backend = Backend::start().await;
    let (mut setup, _) = good_setup(&backend);
    // a client certificate (clientAuth only) put in SERVER_CRT by mistake
    setup.server = setup.ca.client("localhost");
    let conf = setup.write_config(&backend.url());
    let (code, lines) = check(&conf, &["localhost"]);
    assert_eq!(code, 1, "{lines:#?}");
    let line = failing(&lines, "is not a server certificate");
    assert!(
        line.contains("serverAuth") && line.contains("issue_server_cert"),
        "{line}"
    );
    let mut proxy = crate::util::process::Proc::start(&conf, &[]);
    let warned = proxy.wait_for("is not a server certificate").unwrap();
    assert!(
        warned.contains("SERVER_CRT (") && warned.contains("browsers refuse it"),
        "{warned}"
    );
    proxy.listening();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_intermediate_of_server_crt_that_expires_soon_is_warned_about() {
    let backend = Backend::start().await;
    let (mut setup, _) = good_setup(&backend);
    let soon = time::OffsetDateTime::now_utc() + time::Duration::days(3);
    let sub = setup.ca.intermediate("short-sub-ca", soon);
    let mut leaf = sub.server(&["localhost"], 365);
    leaf.pem = format!("{}{}", leaf.pem, sub.pem);
    setup.server = leaf;
    let conf = setup.write_config(&backend.url());
    let mut proxy = crate::util::process::Proc::start(&conf, &[]);
    let warned = proxy.wait_for("will be expired in").unwrap();
    assert!(warned.contains("CN=short-sub-ca"), "{warned}");
    proxy.listening();
}

/// A CA made again under the same name: the server certificate of the old
/// one names CA_CRT's CA as issuer, but its signature is not that CA's.
#[tokio::test(flavor = "multi_thread")]
async fn check_fails_on_a_server_certificate_of_another_ca_of_the_same_name() {
    let backend = Backend::start().await;
    let (mut setup, _) = good_setup(&backend);
    let again = crate::util::pki::Ca::new("test-ca");
    setup.server = again.server(&["localhost"], 365);
    let conf = setup.write_config(&backend.url());
    let (code, lines) = check(&conf, &["localhost"]);
    assert_eq!(code, 1, "{lines:#?}");
    let line = failing(&lines, "is not signed by its key");
    assert!(line.contains("install-cert"), "{line}");
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("issued by the CA of CA_CRT") && l.starts_with("ok")),
        "{lines:#?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn check_fails_on_a_host_the_certificate_does_not_name() {
    let backend = Backend::start().await;
    let (_setup, conf) = good_setup(&backend);
    let (code, lines) = check(&conf, &["192.168.1.100"]);
    assert_eq!(code, 1);
    let line = failing(&lines, "does not cover 192.168.1.100");
    assert!(
        line.contains("issue_server_cert") && line.contains("localhost"),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn check_fails_on_a_key_that_does_not_match() {
    let backend = Backend::start().await;
    let (setup, conf) = good_setup(&backend);
    let key = setup.dir.path().join("000002__JP_orca_localhost.pem");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    write(
        setup.dir.path(),
        "000002__JP_orca_localhost.pem",
        &setup.ca.server(&["localhost"], 30).key_pem,
    );
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o400)).unwrap();
    let (code, lines) = check(&conf, &["localhost"]);
    assert_eq!(code, 1);
    failing(&lines, "does not match the certificate");
}

#[tokio::test(flavor = "multi_thread")]
async fn check_fails_on_an_encrypted_key_without_passphrase_file() {
    let backend = Backend::start().await;
    let (setup, conf) = good_setup(&backend);
    let enc = setup.dir.path().join("000002__JP_orca_localhost.enc.pem");
    openssl(
        &[
            "pkey",
            "-aes256",
            "-passout",
            "pass:x",
            "-traditional",
            "-in",
            "000002__JP_orca_localhost.pem",
            "-out",
            "000002__JP_orca_localhost.enc.pem",
        ],
        setup.dir.path(),
    );
    std::fs::set_permissions(&enc, std::fs::Permissions::from_mode(0o400)).unwrap();
    let text = std::fs::read_to_string(&conf)
        .unwrap()
        .replace("localhost.pem", "localhost.enc.pem");
    std::fs::write(&conf, text).unwrap();
    let (code, lines) = check(&conf, &["localhost"]);
    assert_eq!(code, 1);
    let line = failing(&lines, "PASSWORD input was canceled");
    assert!(line.contains(".enc.pem"), "{line}");
}

#[tokio::test(flavor = "multi_thread")]
async fn check_fails_on_a_group_readable_key() {
    let backend = Backend::start().await;
    let (setup, conf) = good_setup(&backend);
    let key = setup.dir.path().join("000002__JP_orca_localhost.pem");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
    let (code, lines) = check(&conf, &["localhost"]);
    assert_eq!(code, 1);
    let line = failing(&lines, "readable by group or others");
    assert!(line.contains("chmod 400"), "{line}");
}

#[tokio::test(flavor = "multi_thread")]
async fn check_fails_on_a_missing_file() {
    let backend = Backend::start().await;
    let (setup, conf) = good_setup(&backend);
    std::fs::remove_file(setup.dir.path().join("ca.crt")).unwrap();
    let (code, lines) = check(&conf, &["localhost"]);
    assert_eq!(code, 1);
    let line = failing(&lines, "CA_CRT");
    assert!(line.contains("orca-catool"), "{line}");
}

#[tokio::test(flavor = "multi_thread")]
async fn check_fails_when_the_backend_listens_on_every_address() {
    // WebORCA left on 0.0.0.0: the LAN could bypass the proxy. Only the
    // kernel's socket table is read; no traffic leaves loopback.
    let exposed = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = exposed.local_addr().unwrap().port();
    let backend = Backend::start().await;
    let (setup, _) = good_setup(&backend);
    let conf = setup.write_config(&format!("http://127.0.0.1:{port}"));
    let (code, lines) = check(&conf, &["localhost"]);
    assert_eq!(code, 1);
    let line = failing(&lines, &format!("port {port} (WebORCA) listens on 0.0.0.0"));
    assert!(line.contains("127.0.0.1"), "{line}");
    assert!(line.contains("weborca-mtls-proxy setup"), "{line}");
}

#[tokio::test(flavor = "multi_thread")]
async fn check_fails_when_the_backend_does_not_answer() {
    let backend = Backend::start().await;
    let (setup, _) = good_setup(&backend);
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let conf = setup.write_config(&format!("http://{closed}"));
    let (code, lines) = check(&conf, &["localhost"]);
    assert_eq!(code, 1);
    failing(&lines, "WebORCA does not answer");
}

#[tokio::test(flavor = "multi_thread")]
async fn check_reports_an_out_of_date_crl_by_crl_stale() {
    let backend = Backend::start().await;
    let (setup, conf) = good_setup(&backend);
    let crl = write(setup.dir.path(), "ca.crl", &setup.ca.stale_crl(&[]));
    let base = std::fs::read_to_string(&conf).unwrap();
    let hosts = ["localhost"];
    // CRL_STALE=warn (default): a warning, check passes.
    write(
        setup.dir.path(),
        "proxy.conf",
        &format!("{base}CA_CRL={}\n", crl.display()),
    );
    let (code, lines) = check(&conf, &hosts);
    assert_eq!(code, 0, "{lines:#?}");
    assert!(
        lines.iter().any(|l| l.starts_with("warn")
            && l.contains("out of date")
            && l.contains("CRL_STALE=warn")),
        "{lines:#?}"
    );
    // CRL_STALE=refuse: every client would be refused, a failure.
    write(
        setup.dir.path(),
        "proxy.conf",
        &format!("{base}CA_CRL={}\nCRL_STALE=refuse\n", crl.display()),
    );
    let (code, lines) = check(&conf, &hosts);
    assert_ne!(code, 0);
    assert!(failing(&lines, "out of date").contains("every client is refused"));
    // A current CRL: ok, with its nextUpdate.
    write(setup.dir.path(), "ca.crl", &setup.ca.crl(&[]));
    let (code, lines) = check(&conf, &hosts);
    assert_eq!(code, 0, "{lines:#?}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("ok") && l.contains("current (nextUpdate")),
        "{lines:#?}"
    );
}
