//! `install-crl` keeps every other CA's CRL: with two CAs in CA_CRT only the
//! CA_CRL entry of the new CRL's issuer is replaced (the others stay, in
//! order) or the new one is appended; an older CRL than the installed one of
//! its issuer is refused naming both, and the same one again changes nothing;
//! a CRL under the file name of the installed one (orca-catool writes the
//! same name every time) is copied with its CRL number in its name.

use crate::util::fakeroot::{CONF_DIR, CRT, FakeRoot, KEY, PROXY_CONF, pki_conf, text};
use crate::util::pki::{Ca, write};

/// A fake root whose CA_CRT holds the root's CA and `other`, with `ca_crl` set.
fn two_ca_root(other: &Ca, ca_crl: &str) -> (FakeRoot, String) {
    let conf = format!(
        "SERVER_CRT={CONF_DIR}/{CRT}\nSERVER_PEM={CONF_DIR}/{KEY}\nCA_CRT={CONF_DIR}/cas.crt\n{ca_crl}"
    );
    let root = FakeRoot::with_conf(&conf);
    std::fs::write(
        root.real(&format!("{CONF_DIR}/cas.crt")),
        format!("{}{}", root.ca.pem, other.pem),
    )
    .unwrap();
    (root, conf)
}

fn install_crl(root: &FakeRoot, file: &std::path::Path) -> std::process::Output {
    root.install("install-crl", file, &[])
}

fn ca_crl_line(root: &FakeRoot) -> String {
    String::from_utf8(root.read(PROXY_CONF))
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("CA_CRL="))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn install_crl_replaces_only_the_entry_of_its_issuer_and_keeps_the_other_cas_crl() {
    let other = Ca::new("branch-ca");
    let (root, _) = two_ca_root(
        &other,
        &format!("CA_CRL={CONF_DIR}/main-1.crl,{CONF_DIR}/branch-1.crl\n"),
    );
    let conf_dir = root.real(CONF_DIR);
    write(&conf_dir, "main-1.crl", &root.ca.numbered_crl(1, &[3]));
    write(&conf_dir, "branch-1.crl", &other.numbered_crl(1, &[4]));
    let work = tempfile::tempdir().unwrap();
    let main2 = write(work.path(), "main-2.crl", &root.ca.numbered_crl(2, &[3, 5]));
    let out = install_crl(&root, &main2);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        ca_crl_line(&root),
        format!("CA_CRL={CONF_DIR}/main-2.crl,{CONF_DIR}/branch-1.crl"),
        "{}",
        text(&out)
    );
    // A CRL of a CA with no entry yet is appended.
    let (root, _) = two_ca_root(&other, &format!("CA_CRL={CONF_DIR}/main-1.crl\n"));
    write(
        &root.real(CONF_DIR),
        "main-1.crl",
        &root.ca.numbered_crl(1, &[3]),
    );
    let branch = write(work.path(), "branch-2.crl", &other.numbered_crl(2, &[4]));
    let out = install_crl(&root, &branch);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        ca_crl_line(&root),
        format!("CA_CRL={CONF_DIR}/main-1.crl,{CONF_DIR}/branch-2.crl"),
        "{}",
        text(&out)
    );
}

#[test]
fn install_crl_refuses_an_older_crl_and_takes_the_same_one_as_already_installed() {
    let other = Ca::new("branch-ca");
    let (root, _) = two_ca_root(&other, &format!("CA_CRL={CONF_DIR}/main-5.crl\n"));
    let installed = root.ca.numbered_crl(5, &[3, 4]);
    write(&root.real(CONF_DIR), "main-5.crl", &installed);
    let work = tempfile::tempdir().unwrap();
    let older = write(work.path(), "main-3.crl", &root.ca.numbered_crl(3, &[3]));
    let before = root.snapshot();
    let out = install_crl(&root, &older);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(78), "{t}");
    assert_eq!(t.trim().lines().count(), 1, "one line: {t}");
    assert!(
        t.contains("older than")
            && t.contains(&older.display().to_string())
            && t.contains(&format!("{CONF_DIR}/main-5.crl"))
            && t.contains("nothing was installed"),
        "{t}"
    );
    assert_eq!(root.snapshot(), before);
    // The same CRL again, from another file name: nothing to do, and it says so.
    let again = write(work.path(), "again.crl", &installed);
    let out = install_crl(&root, &again);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains("already installed") && t.contains(&format!("{CONF_DIR}/main-5.crl")),
        "{t}"
    );
    assert_eq!(root.snapshot(), before);
}

#[test]
fn install_crl_of_the_same_file_name_is_copied_with_its_number_and_the_old_file_stays() {
    let root = FakeRoot::with_conf(&format!("{}CA_CRL={CONF_DIR}/crl.pem\n", pki_conf()));
    let first = root.ca.numbered_crl(1, &[3]);
    write(&root.real(CONF_DIR), "crl.pem", &first);
    let work = tempfile::tempdir().unwrap();
    let second = root.ca.numbered_crl(2, &[3, 5]);
    let file = write(work.path(), "crl.pem", &second);
    let out = install_crl(&root, &file);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(ca_crl_line(&root), format!("CA_CRL={CONF_DIR}/crl-2.pem"));
    assert_eq!(
        root.read(&format!("{CONF_DIR}/crl-2.pem")),
        second.as_bytes()
    );
    assert_eq!(root.read(&format!("{CONF_DIR}/crl.pem")), first.as_bytes());
}
