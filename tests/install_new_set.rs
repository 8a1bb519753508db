//! `install-cert` loads the new set as the proxy would before writing: a set
//! that would not load is refused with nothing written, and `--new-ca` takes
//! the old CA's CRLs out of CA_CRL (saying so) so that the new set loads.

use crate::util::fakeroot::{CONF_DIR, FakeRoot, text};
use crate::util::pki::{Ca, write};
use crate::util::process::{Proc, bin};
use crate::util::zips::{catool_zip, current_user};

#[test]
fn install_cert_refuses_a_set_the_proxy_would_not_load() {
    let root = FakeRoot::with_conf(&format!(
        "CA_CRT={CONF_DIR}/ca.crt\nCA_CRL={CONF_DIR}/missing.crl\nLISTEN=127.0.0.1:8000\n"
    ));
    let work = tempfile::tempdir().unwrap();
    let server = root.ca.server(&["localhost"], 825);
    let zip = catool_zip(
        work.path(),
        "000007__JP_orca_localhost",
        &server,
        &root.ca.pem,
    );
    let before = root.snapshot();
    let out = root.install("install-cert", &zip, &[]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(78), "{t}");
    assert!(
        t.contains("would not load")
            && t.contains("missing.crl")
            && t.contains("nothing was installed"),
        "{t}"
    );
    assert_eq!(root.snapshot(), before, "nothing is written");
}

#[test]
fn install_cert_new_ca_drops_the_old_cas_crl_and_the_new_set_loads() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let conf_dir = d.join("conf");
    std::fs::create_dir_all(&conf_dir).unwrap();
    let old_ca = Ca::new("old-clinic-ca");
    let old = old_ca.server(&["localhost", "127.0.0.1"], 825);
    write(&conf_dir, "old.crt", &old.pem);
    write(&conf_dir, "old.pem", &old.key_pem);
    write(&conf_dir, "ca.crt", &old_ca.pem);
    write(&conf_dir, "old-ca.crl", &old_ca.crl(&[9]));
    let conf = write(
        d,
        "proxy.conf",
        &format!(
            "SERVER_CRT={c}/old.crt\nSERVER_PEM={c}/old.pem\nCA_CRT={c}/ca.crt\nCA_CRL={c}/old-ca.crl\nLISTEN=127.0.0.1:0\nBACKEND_URL=http://127.0.0.1:9\n",
            c = conf_dir.display()
        ),
    );
    let new_ca = Ca::new("new-clinic-ca");
    let server = new_ca.server(&["localhost", "127.0.0.1"], 825);
    let zip = catool_zip(d, "000001__JP_orca_localhost", &server, &new_ca.pem);
    let (user, _, _) = current_user();
    let out = std::process::Command::new(bin())
        .arg("install-cert")
        .arg(&zip)
        .arg("-c")
        .arg(&conf)
        .arg("--dir")
        .arg(&conf_dir)
        .args(["--owner", &user, "--new-ca", "--no-reload"])
        .output()
        .unwrap();
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains("removed from CA_CRL")
            && t.contains(&format!("{}/old-ca.crl", conf_dir.display()))
            && t.contains("install-crl"),
        "{t}"
    );
    let written = std::fs::read_to_string(&conf).unwrap();
    let ca_crl: Vec<&str> = written
        .lines()
        .filter(|l| l.starts_with("CA_CRL"))
        .collect();
    assert_eq!(ca_crl, ["CA_CRL=''"], "{written}");
    // The proxy starts on the new set.
    let mut proxy = Proc::start(&conf, &[]);
    proxy.listening();
}

/// A conf folder in `d` whose proxy serves a certificate of `cas[0]`,
/// with every CA of `cas` in CA_CRT and CA_CRL naming `crls` (file name,
/// PEM) in order: the config's path.
fn conf_with_crls(d: &std::path::Path, cas: &[&Ca], crls: &[(&str, String)]) -> std::path::PathBuf {
    let conf_dir = d.join("conf");
    std::fs::create_dir_all(&conf_dir).unwrap();
    let old = cas[0].server(&["localhost", "127.0.0.1"], 825);
    write(&conf_dir, "old.crt", &old.pem);
    write(&conf_dir, "old.pem", &old.key_pem);
    let ca_pem: String = cas.iter().map(|c| c.pem.as_str()).collect();
    write(&conf_dir, "ca.crt", &ca_pem);
    let mut list = Vec::new();
    for (name, pem) in crls {
        list.push(write(&conf_dir, name, pem).display().to_string());
    }
    write(
        d,
        "proxy.conf",
        &format!(
            "SERVER_CRT={c}/old.crt\nSERVER_PEM={c}/old.pem\nCA_CRT={c}/ca.crt\nCA_CRL={}\nLISTEN=127.0.0.1:0\nBACKEND_URL=http://127.0.0.1:9\n",
            list.join(","),
            c = conf_dir.display()
        ),
    )
}

/// `install-cert --new-ca --no-reload` of a zip of `new_ca` in `d`'s conf
/// folder: its output, which must say it succeeded.
fn install_new_ca(d: &std::path::Path, conf: &std::path::Path, new_ca: &Ca) -> String {
    let server = new_ca.server(&["localhost", "127.0.0.1"], 825);
    let zip = catool_zip(d, "000001__JP_orca_localhost", &server, &new_ca.pem);
    let (user, _, _) = current_user();
    let out = std::process::Command::new(bin())
        .arg("install-cert")
        .arg(&zip)
        .arg("-c")
        .arg(conf)
        .arg("--dir")
        .arg(d.join("conf"))
        .args(["--owner", &user, "--new-ca", "--no-reload"])
        .output()
        .unwrap();
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    t
}

/// The CA_CRL lines of the config at `conf`.
fn ca_crl_lines(conf: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(conf)
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("CA_CRL"))
        .map(str::to_string)
        .collect()
}

/// The regression of telling the old CA's CRL by its issuer's name: the CAs
/// orca-catool makes for one clinic often share a name, and the old CA's
/// CRL was kept beside the new CA, so the new set did not load (a CRL not
/// signed by CA_CRT) and install-cert refused it. It is told by its
/// signature now, removed, and the message says whose it was.
#[test]
fn install_cert_new_ca_of_the_same_name_drops_the_old_cas_crl() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let old_ca = Ca::new("clinic-ca");
    let new_ca = Ca::new("clinic-ca");
    assert_eq!(
        x509_parser::parse_x509_certificate(&old_ca.der)
            .unwrap()
            .1
            .subject()
            .as_raw(),
        x509_parser::parse_x509_certificate(&new_ca.der)
            .unwrap()
            .1
            .subject()
            .as_raw(),
        "one name, two CAs"
    );
    let conf = conf_with_crls(d, &[&old_ca], &[("old-ca.crl", old_ca.crl(&[9]))]);
    // one name: the two CAs are named by their fingerprints
    let fingerprint = |der: &[u8]| {
        use sha2::Digest;
        sha2::Sha256::digest(der)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    // without --new-ca: refused, the two told apart
    let server = new_ca.server(&["localhost", "127.0.0.1"], 825);
    let zip = catool_zip(d, "000001__JP_orca_localhost", &server, &new_ca.pem);
    let (user, _, _) = current_user();
    let out = std::process::Command::new(bin())
        .arg("install-cert")
        .arg(&zip)
        .arg("-c")
        .arg(&conf)
        .arg("--dir")
        .arg(d.join("conf"))
        .args(["--owner", &user, "--no-reload"])
        .output()
        .unwrap();
    let refused = text(&out);
    assert!(!out.status.success(), "{refused}");
    assert!(
        refused.contains(&format!(
            "its ca.crt (/C=JP/O=orca/CN=clinic-ca, SHA-256 {}) is not the CA_CRT in use",
            fingerprint(&new_ca.der)
        )) && refused.contains(&format!(
            "of the same name, SHA-256 {}",
            fingerprint(&old_ca.der)
        )),
        "{refused}"
    );
    let t = install_new_ca(d, &conf, &new_ca);
    // the new CA's file is named by the fingerprint the line shows
    let ca_file = d
        .join("conf")
        .join(format!("ca-{}.crt", &fingerprint(&new_ca.der)[..12]));
    assert!(ca_file.exists(), "no {}: {t}", ca_file.display());
    assert!(
        t.contains(&format!(
            "the new CA /C=JP/O=orca/CN=clinic-ca replaces the old CA of the same name (SHA-256 {}; the new one's is {})",
            fingerprint(&old_ca.der),
            fingerprint(&new_ca.der)
        )),
        "{t}"
    );
    assert!(
        t.contains(&format!(
            "removed from CA_CRL: {}/conf/old-ca.crl (the CRL of the old CA /C=JP/O=orca/CN=clinic-ca, whose name the new CA shares but not its key)",
            d.display()
        )) && t.contains("install-crl"),
        "{t}"
    );
    assert_eq!(ca_crl_lines(&conf), ["CA_CRL=''"]);
    let mut proxy = Proc::start(&conf, &[]);
    proxy.listening();
}

/// With both CAs of one name in CA_CRT and a CRL of each in CA_CRL (a
/// clinic moving from one to the other), a zip of the new CA alone keeps
/// the new CA's CRL, and only the old one's leaves.
#[test]
fn install_cert_new_ca_of_the_same_name_keeps_the_new_cas_crl() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let old_ca = Ca::new("clinic-ca");
    let new_ca = Ca::new("clinic-ca");
    let conf = conf_with_crls(
        d,
        &[&old_ca, &new_ca],
        &[
            ("old-ca.crl", old_ca.crl(&[9])),
            ("new-ca.crl", new_ca.crl(&[4])),
        ],
    );
    // the set as it is loads: each CRL is signed by a CA of CA_CRT
    let mut before = Proc::start(&conf, &[]);
    before.listening();
    drop(before);
    let t = install_new_ca(d, &conf, &new_ca);
    let c = d.join("conf");
    assert!(
        t.contains(&format!(
            "removed from CA_CRL: {}/old-ca.crl (",
            c.display()
        )) && !t.contains("new-ca.crl"),
        "{t}"
    );
    assert_eq!(
        ca_crl_lines(&conf),
        [format!("CA_CRL={}/new-ca.crl", c.display())]
    );
    let mut proxy = Proc::start(&conf, &[]);
    proxy.listening();
}

#[test]
fn a_reload_that_drops_a_ca_from_ca_crt_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let old_ca = Ca::new("old-clinic-ca");
    let new_ca = Ca::new("new-clinic-ca");
    let server = old_ca.server(&["localhost", "127.0.0.1"], 825);
    write(d, "s.crt", &server.pem);
    write(d, "s.pem", &server.key_pem);
    write(d, "ca.crt", &old_ca.pem);
    let conf = write(
        d,
        "proxy.conf",
        &format!(
            "SERVER_CRT={c}/s.crt\nSERVER_PEM={c}/s.pem\nCA_CRT={c}/ca.crt\nLISTEN=127.0.0.1:0\nBACKEND_URL=http://127.0.0.1:9\n",
            c = d.display()
        ),
    );
    let mut proxy = Proc::start(&conf, &[]);
    proxy.listening();
    // both CAs: nothing dropped, nothing said
    write(d, "ca.crt", &format!("{}{}", old_ca.pem, new_ca.pem));
    proxy.signal("HUP");
    let line = proxy.wait_for("reload: ").unwrap();
    assert!(line.contains("reload: ok"), "{line}");
    write(d, "ca.crt", &new_ca.pem);
    proxy.signal("HUP");
    let line = proxy.wait_for("no longer holds the CA").unwrap();
    assert!(
        line.contains("CN=old-clinic-ca")
            && line.contains("CN=new-clinic-ca")
            && line.contains("CA_CRT in "),
        "{line}"
    );
    assert!(proxy.wait_for("reload: ").unwrap().contains("reload: ok"));
}
