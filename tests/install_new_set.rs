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
