//! The files `install-cert` and `install-crl` touch: the first original of
//! the config is kept for good and each later run keeps the file as it was
//! before it under a timestamped name; a symlink in the conf folder where a
//! file is expected is refused, never followed.

use crate::util::fakeroot::{CONF_DIR, FakeRoot, PROXY_CONF, pki_conf, text};
use crate::util::pki::write;
use crate::util::zips::catool_zip;

fn fake_root() -> FakeRoot {
    FakeRoot::with_conf(&format!("# proxy\n{}", pki_conf()))
}

fn install_crl(root: &FakeRoot, file: &std::path::Path) -> std::process::Output {
    root.install("install-crl", file, &[])
}

#[test]
fn install_keeps_the_first_original_and_a_timestamped_copy_of_each_later_run() {
    let root = fake_root();
    let original = root.read(PROXY_CONF);
    let work = tempfile::tempdir().unwrap();
    let one = write(work.path(), "one.crl", &root.ca.numbered_crl(1, &[3]));
    let out = install_crl(&root, &one);
    assert!(out.status.success(), "{}", text(&out));
    let backup = format!("{PROXY_CONF}.before-weborca-mtls-proxy");
    assert_eq!(root.read(&backup), original);
    let after_one = root.read(PROXY_CONF);

    let two = write(work.path(), "two.crl", &root.ca.numbered_crl(2, &[3, 4]));
    let out = install_crl(&root, &two);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert_eq!(root.read(&backup), original, "the first original is kept");
    let dir = root.real("/etc/weborca-mtls-proxy");
    let stamped: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("proxy.conf.before-weborca-mtls-proxy."))
        .collect();
    assert_eq!(stamped.len(), 1, "{stamped:?}");
    let stamp = stamped[0].trim_start_matches("proxy.conf.before-weborca-mtls-proxy.");
    assert!(
        stamp.len() == 15
            && stamp.as_bytes()[8] == b'-'
            && stamp.chars().filter(char::is_ascii_digit).count() == 14,
        "YYYYMMDD-HHMMSS: {stamp}"
    );
    assert_eq!(std::fs::read(dir.join(&stamped[0])).unwrap(), after_one);
    assert!(t.contains(&stamped[0]), "the output names the copy: {t}");
}

#[test]
fn install_refuses_a_symlink_in_the_conf_folder() {
    let stem = "000005__JP_orca_localhost";
    let work = tempfile::tempdir().unwrap();
    let w = work.path();

    // The .crt's name in DIR is a link to a file elsewhere with the same content.
    let root = fake_root();
    let server = root.ca.server(&["localhost"], 825);
    let zip = catool_zip(w, stem, &server, &root.ca.pem);
    let elsewhere = write(w, "elsewhere.crt", &server.pem);
    std::os::unix::fs::symlink(&elsewhere, root.real(&format!("{CONF_DIR}/{stem}.crt"))).unwrap();
    let before = root.snapshot();
    let out = root.install("install-cert", &zip, &[]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(78), "{t}");
    assert!(
        t.contains(&format!("{CONF_DIR}/{stem}.crt is a symbolic link"))
            && t.contains("nothing was installed"),
        "{t}"
    );
    assert_eq!(root.snapshot(), before);

    // CA_CRT is a link to another file (holding the CA the CRL is signed by).
    let root = fake_root();
    let ca = root.real(&format!("{CONF_DIR}/ca.crt"));
    let other = write(&root.real(CONF_DIR), "other.crt", &root.ca.pem);
    std::fs::remove_file(&ca).unwrap();
    std::os::unix::fs::symlink(&other, &ca).unwrap();
    let crl = write(w, "clinic.crl", &root.ca.numbered_crl(1, &[3]));
    let before = root.snapshot();
    let out = install_crl(&root, &crl);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(78), "{t}");
    assert!(
        t.contains(&format!("{CONF_DIR}/ca.crt is a symbolic link"))
            && t.contains("nothing was installed"),
        "{t}"
    );
    assert_eq!(root.snapshot(), before);
}
