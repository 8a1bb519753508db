//! `install-crl` keeps every other CA's CRL: with two CAs in CA_CRT only the
//! CA_CRL entry of the new CRL's issuer is replaced (the others stay, in
//! order) or the new one is appended; an older CRL than the installed one of
//! its issuer is refused naming both, and the same one again changes nothing;
//! a CRL under the file name of the installed one (orca-catool writes the
//! same name every time) is copied with its CRL number in its name. Whose a
//! CRL is, is told by its signature: two CAs of one name in CA_CRT, each
//! numbering its CRLs from 1, each keep their own entry.

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

/// The regression of telling the installed CRL of a CA by its issuer's
/// name: orca-catool's CAs of one clinic often share a name and each
/// numbers its CRLs from 1, so the first CRL of a second CA of the name was
/// refused as older than the first CA's.
#[test]
fn install_crl_of_a_second_ca_of_one_name_is_added_not_judged_older_than_the_firsts() {
    let second = Ca::new("test-ca");
    let (root, _) = two_ca_root(&second, &format!("CA_CRL={CONF_DIR}/first-3.crl\n"));
    write(
        &root.real(CONF_DIR),
        "first-3.crl",
        &root.ca.numbered_crl(3, &[3]),
    );
    let work = tempfile::tempdir().unwrap();
    let new = write(work.path(), "second-1.crl", &second.numbered_crl(1, &[4]));
    let out = install_crl(&root, &new);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        ca_crl_line(&root),
        format!("CA_CRL={CONF_DIR}/first-3.crl,{CONF_DIR}/second-1.crl"),
        "{}",
        text(&out)
    );
}

/// With two CAs of one name in CA_CRT, a new CRL of either replaces the
/// entry of its own CA only, is judged older or newer by that CA's CRL
/// only, and the other CA's CRL (whose revoked clients stay refused) is kept.
#[test]
fn install_crl_of_one_of_two_cas_of_one_name_replaces_only_that_cas_entry() {
    let second = Ca::new("test-ca");
    let (root, _) = two_ca_root(
        &second,
        &format!("CA_CRL={CONF_DIR}/first-1.crl,{CONF_DIR}/second-4.crl\n"),
    );
    let conf_dir = root.real(CONF_DIR);
    write(&conf_dir, "first-1.crl", &root.ca.numbered_crl(1, &[3]));
    write(&conf_dir, "second-4.crl", &second.numbered_crl(4, &[4]));
    let work = tempfile::tempdir().unwrap();
    let first2 = write(
        work.path(),
        "first-2.crl",
        &root.ca.numbered_crl(2, &[3, 5]),
    );
    let out = install_crl(&root, &first2);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        ca_crl_line(&root),
        format!("CA_CRL={CONF_DIR}/first-2.crl,{CONF_DIR}/second-4.crl"),
        "{}",
        text(&out)
    );
    // The second CA's CRL 3 is older than its installed 4, though newer than the first CA's 2.
    let second3 = write(work.path(), "second-3.crl", &second.numbered_crl(3, &[4]));
    let before = root.snapshot();
    let out = install_crl(&root, &second3);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(78), "{t}");
    assert!(
        t.contains("older than the installed") && t.contains(&format!("{CONF_DIR}/second-4.crl")),
        "{t}"
    );
    assert_eq!(root.snapshot(), before);
    let second5 = write(
        work.path(),
        "second-5.crl",
        &second.numbered_crl(5, &[4, 6]),
    );
    let out = install_crl(&root, &second5);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        ca_crl_line(&root),
        format!("CA_CRL={CONF_DIR}/first-2.crl,{CONF_DIR}/second-5.crl"),
        "{}",
        text(&out)
    );
}

/// A CRL of the new CRL's CA name that no CA of CA_CRT signed (an old CA's,
/// left in CA_CRL when CA_CRT was changed by hand: the proxy refuses that
/// set) is replaced by the new CRL, not kept beside it, and the command
/// says whose it was.
#[test]
fn install_crl_replaces_the_crl_of_an_old_ca_of_its_name_no_longer_in_ca_crt() {
    let old = Ca::new("test-ca");
    let root = FakeRoot::with_conf(&format!("{}CA_CRL={CONF_DIR}/old-7.crl\n", pki_conf()));
    write(
        &root.real(CONF_DIR),
        "old-7.crl",
        &old.numbered_crl(7, &[3]),
    );
    let work = tempfile::tempdir().unwrap();
    let new = write(work.path(), "new-1.crl", &root.ca.numbered_crl(1, &[4]));
    let out = install_crl(&root, &new);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert_eq!(
        ca_crl_line(&root),
        format!("CA_CRL={CONF_DIR}/new-1.crl"),
        "{t}"
    );
    assert!(
        t.contains(&format!(
            "the new CRL also replaces {CONF_DIR}/old-7.crl in CA_CRL: a CRL of its CA's name that no CA of CA_CRT signed"
        )),
        "{t}"
    );
}
