//! A newcomer's path, end to end against a fake root: a demo-style throwaway
//! PKI packed as an orca-catool zip → `install-cert` into WebORCA's
//! jma-receipt.conf → `setup --root` → `check` on the result, all ok.

use crate::util::fakeroot::{CONF_DIR, FakeRoot, JMA_CONF, PROXY_CONF, text};
use crate::util::process::{bin, free_port};
use crate::util::zips::{Member, passwd_with_orca, write_zip};

#[tokio::test(flavor = "multi_thread")]
async fn demo_pki_zip_install_cert_setup_then_check_is_all_ok() {
    // WebORCA's new port: the stand-in systemctl starts the stand-in WebORCA there
    let port = free_port().to_string();
    let work = tempfile::tempdir().unwrap();
    let files = tokio::task::block_in_place(|| {
        weborca_mtls_proxy::demo::prepare(&work.path().join("demo"))
    })
    .unwrap_or_else(|f| panic!("{}", f.message()));
    let stem = files
        .server_crt
        .file_stem()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let read = |p: &std::path::Path| std::fs::read(p).unwrap();
    let (crt, pem, ca) = (
        read(&files.server_crt),
        read(&files.server_pem),
        read(&files.ca_crt),
    );
    let names = [
        format!("{stem}/{stem}.crt"),
        format!("{stem}/{stem}.pem"),
        format!("{stem}/ca.crt"),
    ];
    let zip = write_zip(
        &work.path().join(format!("{stem}.zip")),
        &[
            Member::Dir(&format!("{stem}/")),
            Member::File(&names[0], &crt),
            Member::File(&names[1], &pem),
            Member::File(&names[2], &ca),
        ],
    );

    let root = FakeRoot::empty();
    passwd_with_orca(root.dir.path());
    let weborca = "# jma-receipt.conf\nDBNAME=orca\n";
    std::fs::write(root.real(JMA_CONF), weborca).unwrap();
    let zip_s = zip.display().to_string();
    let out = root.run(&[
        "install-cert",
        &zip_s,
        "-c",
        JMA_CONF,
        "--host",
        "localhost",
        "--no-reload",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        String::from_utf8(root.read(JMA_CONF)).unwrap(),
        format!(
            "{weborca}SERVER_CRT={CONF_DIR}/{stem}.crt\nSERVER_PEM={CONF_DIR}/{stem}.pem\nCA_CRT={CONF_DIR}/ca.crt\n"
        )
    );

    let out = root.run(&["setup", "--backend-port", &port, "--host", "localhost"]);
    assert!(out.status.success(), "{}", text(&out));

    // check on the result: proxy.conf with its paths taken under the root.
    let proxy = String::from_utf8(root.read(PROXY_CONF)).unwrap();
    let rooted = proxy.replace("/opt/jma", &root.real("/opt/jma").display().to_string());
    let conf = work.path().join("proxy-rooted.conf");
    std::fs::write(&conf, rooted).unwrap();
    let out = std::process::Command::new(bin())
        .args(["check", "-c"])
        .arg(&conf)
        .args(["--host", "localhost"])
        .env("NFT", root.nft())
        .output()
        .unwrap();
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(!t.lines().any(|l| l.starts_with("FAIL")), "{t}");
    for needle in [
        "server key matches the certificate",
        "covers localhost",
        "WebORCA answers at",
        "backend guard loaded",
    ] {
        assert!(
            t.lines().any(|l| l.starts_with("ok") && l.contains(needle)),
            "{needle}: {t}"
        );
    }
}
