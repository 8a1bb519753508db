//! `install-cert ZIP` against a fake root: every refusal of an orca-catool zip
//! (zip-slip, absolute and symlink entries, strangers, a client certificate, a
//! key that does not match, a broken chain, an expired certificate, a host not
//! covered, another CA) with nothing written; a good zip copied 0400 for the
//! owner with the config set after a backup; and, against the real proxy, the
//! reload confirmed by the certificate it serves (its whole DER, not its
//! serial: another CA's old certificate may share that).

use std::os::unix::fs::MetadataExt;

use crate::util::fakeroot::{CONF_DIR, FakeRoot, PROXY_CONF, reloading_systemctl, text};
use crate::util::pki::{Ca, Leaf, write};
use crate::util::process::{Proc, bin, free_port};
use crate::util::zips::{Member, catool_zip, current_user, write_zip};

const STEM: &str = "000005__JP_orca_localhost";

/// A fake root whose proxy.conf uses the root's CA, with `orca` as this user.
fn root() -> FakeRoot {
    FakeRoot::with_conf(&format!(
        "# proxy\nCA_CRT={CONF_DIR}/ca.crt\nLISTEN=127.0.0.1:8000\n"
    ))
}

fn install(root: &FakeRoot, zip: &std::path::Path, extra: &[&str]) -> std::process::Output {
    root.install("install-cert", zip, extra)
}

#[test]
fn install_cert_refuses_every_bad_zip_and_writes_nothing() {
    let root = root();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let ca = &root.ca;
    let good = ca.server(&["localhost", "127.0.0.1"], 825);
    let (crt, pem, cap) = (format!("{STEM}.crt"), format!("{STEM}.pem"), "ca.crt");
    let other_ca = Ca::new("other-ca");
    let client = ca.client("user1");
    let expired = ca.server_between(
        &["localhost"],
        (-400, -1),
        rcgen::KeyPair::generate().unwrap(),
    );
    let stranger = other_ca.server(&["localhost"], 825);
    let other_key = rcgen::KeyPair::generate().unwrap().serialize_pem();
    let files = |c: &str, k: &str, a: &str| -> Vec<(String, Vec<u8>)> {
        vec![
            (crt.clone(), c.as_bytes().to_vec()),
            (pem.clone(), k.as_bytes().to_vec()),
            (cap.to_string(), a.as_bytes().to_vec()),
        ]
    };
    let zip_of = |name: &str, members: &[(String, Vec<u8>)], extra: &[Member]| {
        let mut all: Vec<Member> = members.iter().map(|(n, d)| Member::File(n, d)).collect();
        for m in extra {
            all.push(match m {
                Member::File(n, d) => Member::File(n, d),
                Member::Link(n, t) => Member::Link(n, t),
                Member::Dir(n) => Member::Dir(n),
            });
        }
        write_zip(&w.join(name), &all)
    };
    let good_files = files(&good.pem, &good.key_pem, &ca.pem);
    let cases: Vec<(&str, std::path::PathBuf, &[&str])> = vec![
        (
            "`..`",
            zip_of(
                "slip.zip",
                &good_files,
                &[Member::File("../../etc/cron.d/x", b"* * * * * root sh")],
            ),
            &[],
        ),
        (
            "absolute path",
            zip_of("abs.zip", &good_files, &[Member::File("/etc/passwd", b"x")]),
            &[],
        ),
        (
            "is a link",
            zip_of(
                "link.zip",
                &good_files,
                &[Member::Link(&format!("{STEM}.pass"), "/etc/shadow")],
            ),
            &[],
        ),
        (
            "is not one of",
            zip_of(
                "stranger.zip",
                &good_files,
                &[Member::File("install.sh", b"rm -rf /")],
            ),
            &[],
        ),
        (
            "ca.crt is missing",
            zip_of("noca.zip", &good_files[..2], &[]),
            &[],
        ),
        (
            "is a client certificate (no serverAuth)",
            zip_of(
                "client.zip",
                &files(&client.pem, &client.key_pem, &ca.pem),
                &[],
            ),
            &[],
        ),
        (
            "does not match",
            zip_of("key.zip", &files(&good.pem, &other_key, &ca.pem), &[]),
            &[],
        ),
        (
            "does not chain to the zip's ca.crt",
            zip_of(
                "chain.zip",
                &files(&stranger.pem, &stranger.key_pem, &ca.pem),
                &[],
            ),
            &[],
        ),
        (
            "expired on",
            zip_of(
                "expired.zip",
                &files(&expired.pem, &expired.key_pem, &ca.pem),
                &[],
            ),
            &[],
        ),
        (
            "does not cover orca.example",
            zip_of("host.zip", &good_files, &[]),
            &["--host", "orca.example"],
        ),
        (
            "is not the CA_CRT in use",
            zip_of(
                "newca.zip",
                &files(&stranger.pem, &stranger.key_pem, &other_ca.pem),
                &[],
            ),
            &[],
        ),
        ("not a zip file", write(w, "garbage.zip", "PK? no"), &[]),
        (
            // looked up in the root's passwd, and said so
            "user nosuch is not in ",
            zip_of("owner.zip", &good_files, &[]),
            &["--owner", "nosuch"],
        ),
    ];
    let before = root.snapshot();
    for (needle, zip, extra) in &cases {
        let out = install(&root, zip, extra);
        let t = text(&out);
        assert_eq!(out.status.code(), Some(78), "{needle}: {t}");
        assert!(t.contains(needle), "{needle}: {t}");
        assert!(
            t.contains(&zip.display().to_string()) && t.contains("nothing was installed"),
            "{needle}: {t}"
        );
        assert_eq!(t.trim().lines().count(), 1, "one line: {t}");
        assert_eq!(root.snapshot(), before, "{needle}: something was written");
    }
    // A file of the same name with other content is never overwritten.
    std::fs::write(root.real(&format!("{CONF_DIR}/{crt}")), "someone else's\n").unwrap();
    let before = root.snapshot();
    let out = install(&root, &zip_of("good.zip", &good_files, &[]), &[]);
    assert_eq!(out.status.code(), Some(78), "{}", text(&out));
    assert!(
        text(&out).contains("already exists with other content"),
        "{}",
        text(&out)
    );
    // the way out that moves nothing in use: a folder of its own
    assert!(
        text(&out).contains(&format!("--dir {CONF_DIR}-new")),
        "{}",
        text(&out)
    );
    assert_eq!(root.snapshot(), before);
    assert!(root.take_calls().is_empty());
}

#[test]
fn install_cert_copies_0400_for_the_owner_and_sets_the_config_after_a_backup() {
    let root = root();
    let work = tempfile::tempdir().unwrap();
    let server = root.ca.server(&["localhost", "127.0.0.1"], 825);
    let zip = catool_zip(work.path(), STEM, &server, &root.ca.pem);
    let conf_before = root.read(PROXY_CONF);

    let before = root.snapshot();
    let out = install(&root, &zip, &["--host", "localhost", "--dry-run"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("+SERVER_CRT={CONF_DIR}/{STEM}.crt")),
        "{}",
        text(&out)
    );
    assert_eq!(root.snapshot(), before);

    let out = install(&root, &zip, &["--host", "localhost"]);
    assert!(out.status.success(), "{}", text(&out));
    let (_, uid, gid) = current_user();
    for (name, content) in [
        (format!("{STEM}.crt"), &server.pem),
        (format!("{STEM}.pem"), &server.key_pem),
    ] {
        let p = root.real(&format!("{CONF_DIR}/{name}"));
        let m = std::fs::metadata(&p).unwrap();
        assert_eq!(m.mode() & 0o777, 0o400, "{name}");
        assert_eq!((m.uid(), m.gid()), (uid, gid), "{name}");
        assert_eq!(&std::fs::read_to_string(&p).unwrap(), content);
    }
    assert_eq!(
        String::from_utf8(root.read(PROXY_CONF)).unwrap(),
        format!(
            "# proxy\nCA_CRT={CONF_DIR}/ca.crt\nLISTEN=127.0.0.1:8000\nSERVER_CRT={CONF_DIR}/{STEM}.crt\nSERVER_PEM={CONF_DIR}/{STEM}.pem\n"
        )
    );
    assert_eq!(
        root.read(&format!("{PROXY_CONF}.before-weborca-mtls-proxy")),
        conf_before
    );
    // Again: the same files are there, nothing changes.
    let snapshot = root.snapshot();
    let out = install(&root, &zip, &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(root.snapshot(), snapshot);
    // The same key, but readable by others since: not used as it is.
    let key = root.real(&format!("{CONF_DIR}/{STEM}.pem"));
    let private = |mode| {
        std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap()
    };
    private(0o644);
    let out = install(&root, &zip, &[]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(&format!(
            "{CONF_DIR}/{STEM}.pem is already there with the same key, but mode 0644"
        )) && text(&out).contains("chmod 0400"),
        "{}",
        text(&out)
    );
    private(0o400);
    assert_eq!(root.snapshot(), snapshot);

    // A new CA, when asked for: its ca.crt beside the old one, CA_CRT pointed at it.
    let other = Ca::new("new-clinic-ca");
    let s2 = other.server(&["localhost"], 825);
    let stem2 = "000001__JP_orca_localhost";
    let zip2 = catool_zip(work.path(), stem2, &s2, &other.pem);
    let out = install(&root, &zip2, &["--new-ca"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("every client certificate of the old CA will be refused"),
        "{}",
        text(&out)
    );
    let conf = String::from_utf8(root.read(PROXY_CONF)).unwrap();
    let ca_line = conf.lines().find(|l| l.starts_with("CA_CRT=")).unwrap();
    assert!(
        ca_line.starts_with(&format!("CA_CRT={CONF_DIR}/ca-")),
        "{conf}"
    );
    let ca_file = ca_line.trim_start_matches("CA_CRT=");
    assert_eq!(String::from_utf8(root.read(ca_file)).unwrap(), other.pem);
    assert_eq!(
        String::from_utf8(root.read(&format!("{CONF_DIR}/ca.crt"))).unwrap(),
        root.ca.pem,
        "the old CA file is kept"
    );
}

#[test]
fn install_cert_without_host_warns_of_each_name_the_new_certificate_drops() {
    let root = root();
    let work = tempfile::tempdir().unwrap();
    let server = root.ca.server(&["localhost", "127.0.0.1"], 825);
    let zip = catool_zip(work.path(), STEM, &server, &root.ca.pem);
    let out = install(&root, &zip, &["--host", "localhost"]);
    assert!(out.status.success(), "{}", text(&out));
    // the next certificate names another host only; no --host given
    let other = root.ca.server(&["orca.example"], 825);
    let stem = "000003__JP_orca_orca.example";
    let zip = catool_zip(work.path(), stem, &other, &root.ca.pem);
    let out = install(&root, &zip, &["--dry-run"]);
    assert!(out.status.success(), "{}", text(&out));
    for name in ["localhost", "127.0.0.1"] {
        assert!(
            text(&out).contains(&format!("does not name {name}, which the one in use")),
            "{name}: {}",
            text(&out)
        );
    }
    // a name it keeps is not warned about
    let keeps = root.ca.server(&["localhost"], 825);
    let zip = catool_zip(
        work.path(),
        "000004__JP_orca_localhost",
        &keeps,
        &root.ca.pem,
    );
    let out = install(&root, &zip, &["--dry-run"]);
    assert!(
        !text(&out).contains("does not name localhost"),
        "{}",
        text(&out)
    );
    assert!(
        text(&out).contains("does not name 127.0.0.1"),
        "{}",
        text(&out)
    );
}

/// The proxy as a process in `d`, serving `old` with `ca_pem` as CA_CRT on
/// a free loopback port: (its config, the process).
fn running_proxy(d: &std::path::Path, old: &Leaf, ca_pem: &str) -> (std::path::PathBuf, Proc) {
    let (conf, proxy, _) = running_proxy_with(d, old, ca_pem, &[]);
    (conf, proxy)
}

/// [`running_proxy`] with `extra` config lines, logging its own debug
/// lines too (a client that left its handshake is one): (its config, the
/// process, where it listens).
fn running_proxy_with(
    d: &std::path::Path,
    old: &Leaf,
    ca_pem: &str,
    extra: &[String],
) -> (std::path::PathBuf, Proc, std::net::SocketAddr) {
    write(d, "old.crt", &old.pem);
    write(d, "old.pem", &old.key_pem);
    write(d, "ca.crt", ca_pem);
    let port = free_port();
    let mut text = format!(
        "SERVER_CRT={d}/old.crt\nSERVER_PEM={d}/old.pem\nCA_CRT={d}/ca.crt\nLISTEN=127.0.0.1:{port}\nBACKEND_URL=http://127.0.0.1:9\n",
        d = d.display()
    );
    for line in extra {
        text.push_str(line);
        text.push('\n');
    }
    let conf = write(d, "proxy.conf", &text);
    let mut proxy = Proc::start_with_env(&conf, &[], &[("RUST_LOG", DEBUG_OF_THE_PROXY)]);
    let addr = proxy.listening();
    assert_eq!(addr.port(), port);
    (conf, proxy, addr)
}

/// RUST_LOG for a proxy whose debug lines a test reads.
const DEBUG_OF_THE_PROXY: &str = "info,weborca_mtls_proxy=debug";
/// What the proxy logs (at debug level) of a client that left its handshake.
const LEFT_HANDSHAKE: &str = "TLS handshake left by the client before it finished";

#[test]
fn install_cert_reloads_the_running_proxy_and_confirms_the_served_serial() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Ca::new("test-ca");
    let old = ca.server(&["localhost", "127.0.0.1"], 825);
    let (conf, mut proxy) = running_proxy(d, &old, &ca.pem);
    let systemctl = reloading_systemctl(d, proxy.child.id());
    let new = ca.server(&["localhost", "127.0.0.1"], 825);
    assert_ne!(new.serial, old.serial);
    let zip = catool_zip(d, STEM, &new, &ca.pem);
    let (user, _, _) = current_user();
    let out = std::process::Command::new(bin())
        .args(["install-cert"])
        .arg(&zip)
        .arg("-c")
        .arg(&conf)
        .arg("--dir")
        .arg(d.join("conf"))
        .args(["--owner", &user, "--host", "127.0.0.1"])
        .env("SYSTEMCTL", &systemctl)
        .output()
        .unwrap();
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    let serial = x509_parser::parse_x509_certificate(&new.der)
        .unwrap()
        .1
        .raw_serial()
        .iter()
        .skip_while(|b| **b == 0)
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    assert!(
        t.contains(&format!(
            "serves the new certificate /C=JP/O=orca/CN=localhost (serial {serial})"
        )),
        "{t}"
    );
    assert_eq!(
        std::fs::read_to_string(d.join("calls")).unwrap(),
        "reload weborca-mtls-proxy.service\n"
    );
    assert!(proxy.wait_for("reload").is_some(), "{:?}", proxy.seen);
    // The confirmation's handshakes left before any client certificate
    // was asked of them: none of them was taken for a refused client.
    assert!(proxy.wait_for(LEFT_HANDSHAKE).is_some(), "{:?}", proxy.seen);
    assert!(
        !proxy.seen.iter().any(|l| l.contains("refused")),
        "{:#?}",
        proxy.seen
    );
}

/// The regression of a serial-only check: every orca-catool CA numbers from
/// 01, so the old certificate of another CA may have the new one's serial.
/// With a reload that does not take (the stand-in systemctl only records
/// it), the proxy still serves the old certificate: that is no success, and
/// the message names both certificates.
#[test]
fn install_cert_does_not_take_another_cas_certificate_with_the_same_serial_for_the_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (old_ca, new_ca) = (Ca::new("old-clinic-ca"), Ca::new("new-clinic-ca"));
    let old = old_ca.server(&["localhost", "127.0.0.1"], 825);
    let new = new_ca.server(&["localhost", "127.0.0.1"], 825);
    assert_eq!(old.serial, new.serial, "both CAs number alike");
    // held: the proxy serves the old certificate while install-cert runs
    let (conf, _proxy) = running_proxy(d, &old, &old_ca.pem);
    let systemctl = d.join("systemctl");
    write(d, "systemctl", "#!/bin/sh\nexit 0\n");
    std::fs::set_permissions(
        &systemctl,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let zip = catool_zip(d, STEM, &new, &new_ca.pem);
    let (user, _, _) = current_user();
    let out = std::process::Command::new(bin())
        .args(["install-cert"])
        .arg(&zip)
        .arg("-c")
        .arg(&conf)
        .arg("--dir")
        .arg(d.join("conf"))
        .args(["--owner", &user, "--new-ca"])
        .env("SYSTEMCTL", &systemctl)
        .output()
        .unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    let fingerprint = |der: &[u8]| {
        use sha2::Digest;
        sha2::Sha256::digest(der)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    assert!(
        t.contains("does not serve the new certificate")
            && t.contains(&fingerprint(new.der.as_ref()))
            && t.contains("it serves /C=JP/O=orca/CN=localhost issued by")
            && t.contains(&fingerprint(old.der.as_ref()))
            && t.contains("old-clinic-ca")
            && t.contains("new-clinic-ca"),
        "{t}"
    );
    assert!(!t.contains("serves the new certificate /C=JP"), "{t}");
}

/// What the status listener at `status` answers to a GET of `path` (the body).
fn status_body(status: std::net::SocketAddr, path: &str) -> String {
    use std::io::{Read, Write};
    let mut tcp = std::net::TcpStream::connect(status).unwrap();
    tcp.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .unwrap();
    let mut out = String::new();
    tcp.read_to_string(&mut out).unwrap();
    assert!(
        out.starts_with("HTTP/1.0 200") || out.starts_with("HTTP/1.1 200"),
        "{out}"
    );
    out.split_once("\r\n\r\n").unwrap().1.to_string()
}

/// The refusals the running proxy shows: the `client_cert_refusals_total`
/// lines of `/metrics`, the rows of the console's last refusals, and the
/// rows of the `refused` section of `audit` over its LOG_FILE.
fn refusals_shown(
    status: std::net::SocketAddr,
    conf: &std::path::Path,
) -> (Vec<String>, usize, Vec<String>) {
    let metrics: Vec<String> = status_body(status, "/metrics")
        .lines()
        .filter(|l| l.starts_with("weborca_proxy_client_cert_refusals_total{"))
        .map(str::to_string)
        .collect();
    let console = status_body(status, "/")
        .matches("<tr class=\"refusal\"")
        .count();
    let out = std::process::Command::new(bin())
        .arg("audit")
        .arg("-c")
        .arg(conf)
        .args(["--format", "csv"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let audit = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("refused,"))
        .map(str::to_string)
        .collect();
    (metrics, console, audit)
}

/// The regression of a confirmation that finished its handshake without a
/// client certificate: the proxy logged and counted each one (every 200 ms
/// while install-cert waited for a reload) as a client refused as `missing`
/// from 127.0.0.1, on the console's last 100 refusals, in the metrics and in
/// the audit. The probe now hangs up once it has the server's certificate,
/// and the proxy logs that at debug level and counts it as an aborted
/// handshake. A client that does come without a certificate is still a
/// refusal everywhere, in either CLIENT_CERT_ERRORS mode.
#[tokio::test]
async fn reading_the_served_certificate_is_no_client_refusal() {
    const PROBES: usize = 3;
    for mode in ["page", "handshake"] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let ca = Ca::new("test-ca");
        let served = ca.server(&["localhost", "127.0.0.1"], 825);
        let status = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
        let extra = [
            format!("STATUS_LISTEN={status}"),
            format!("LOG_FILE={}/proxy.log", d.display()),
            format!("CLIENT_CERT_ERRORS={mode}"),
        ];
        let (conf, mut proxy, addr) = running_proxy_with(d, &served, &ca.pem, &extra);
        for _ in 0..PROBES {
            let der = weborca_mtls_proxy::setup::wire::served_cert(addr).unwrap();
            assert_eq!(
                der.as_ref(),
                served.der.as_ref(),
                "{mode}: not the served certificate"
            );
        }
        for i in 0..PROBES {
            assert!(
                proxy.wait_for(LEFT_HANDSHAKE).is_some(),
                "{mode}: probe {i} was not taken for a client that left: {:#?}",
                proxy.seen
            );
        }
        assert!(
            !proxy.seen.iter().any(|l| l.contains("refused")),
            "{mode}: {:#?}",
            proxy.seen
        );
        let metrics = status_body(status, "/metrics");
        assert!(
            metrics.lines().any(|l| l
                == format!("weborca_proxy_tls_handshakes_total{{result=\"aborted\"}} {PROBES}")),
            "{mode}: {metrics}"
        );
        assert_eq!(
            refusals_shown(status, &conf),
            (Vec::new(), 0, Vec::new()),
            "{mode}: the probes were shown as refusals"
        );
        // A client that comes without a certificate: refused, and shown so.
        let _ = crate::util::client::Client::h1(&ca.pem, None)
            .get(addr, "/")
            .await;
        assert!(
            proxy
                .wait_for("refused")
                .is_some_and(|l| l.contains("reason=missing")),
            "{mode}: {:#?}",
            proxy.seen
        );
        let (metrics, console, audit) = refusals_shown(status, &conf);
        assert_eq!(
            metrics,
            ["weborca_proxy_client_cert_refusals_total{reason=\"missing\"} 1"],
            "{mode}"
        );
        assert_eq!(console, 1, "{mode}");
        assert!(
            audit.len() == 1 && audit[0].contains(",missing,"),
            "{mode}: {audit:?}"
        );
    }
}
