//! `install-crl FILE`: a CRL not signed by CA_CRT, out of date, not yet current or not a CRL is refused with
//! nothing written; a good one is copied 0400 and set as CA_CRL; against the
//! running proxy, the reload makes it refuse the revoked client, and the
//! command names the recently seen clients the CRL revokes: with two CAs in
//! CA_CRT, each numbering from 01, only those of the CRL's own CA.

use std::os::unix::fs::MetadataExt;

use crate::util::backend::Backend;
use crate::util::fakeroot::{CONF_DIR, FakeRoot, PROXY_CONF, pki_conf, reloading_systemctl, text};
use crate::util::pki::{Ca, Leaf, write};
use crate::util::process::{Proc, bin, free_port};
use crate::util::zips::current_user;

/// A CRL of `ca` whose nextUpdate has passed.
fn stale_crl(ca: &Ca) -> String {
    use time::{Duration, OffsetDateTime};
    let now = OffsetDateTime::now_utc();
    ca.crl_with(
        1,
        &[],
        now,
        (now - Duration::days(40), now - Duration::days(10)),
    )
}

#[test]
fn install_crl_refuses_a_foreign_or_broken_crl_and_installs_a_good_one() {
    let conf = pki_conf();
    let root = FakeRoot::with_conf(&conf);
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let foreign = write(w, "foreign.crl", &Ca::new("other-ca").crl(&[7]));
    let garbage = write(
        w,
        "garbage.crl",
        "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n",
    );
    let stale = write(w, "stale.crl", &stale_crl(&root.ca));
    let future = {
        use time::{Duration, OffsetDateTime};
        let now = OffsetDateTime::now_utc();
        let crl = root.ca.crl_with(
            1,
            &[],
            now,
            (now + Duration::days(1), now + Duration::days(30)),
        );
        write(w, "future.crl", &crl)
    };
    let before = root.snapshot();
    for (file, needle) in [
        (&foreign, "which is not a CA in CA_CRT"),
        (&garbage, "CRL"),
        (&stale, "the CRL is out of date (nextUpdate"),
        (&future, "the CRL is not current yet (thisUpdate"),
    ] {
        let out = root.install("install-crl", file, &[]);
        let t = text(&out);
        assert_eq!(out.status.code(), Some(78), "{t}");
        assert!(
            t.contains(needle) && t.contains("nothing was installed"),
            "{t}"
        );
        assert_eq!(root.snapshot(), before);
    }
    let good = write(w, "clinic.crl", &root.ca.crl(&[7, 9]));
    let out = root.install("install-crl", &good, &[]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("the CRL revokes 2 serial(s): 07, 09"), "{t}");
    let copied = root.real(&format!("{CONF_DIR}/clinic.crl"));
    assert_eq!(std::fs::metadata(&copied).unwrap().mode() & 0o777, 0o400);
    assert_eq!(
        String::from_utf8(root.read(PROXY_CONF)).unwrap(),
        format!("{conf}CA_CRL={CONF_DIR}/clinic.crl\n")
    );
    assert!(root.take_calls().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn install_crl_reloads_and_names_the_recently_seen_clients_it_revokes() {
    install_crl_against_a_running_proxy(true).await;
}

/// A reload that does not happen (or fails in the proxy) is found out: the
/// command fails instead of saying that the CRL's clients are refused.
#[tokio::test(flavor = "multi_thread")]
async fn install_crl_fails_when_the_proxy_did_not_take_the_new_crl() {
    install_crl_against_a_running_proxy(false).await;
}

/// Runs `install-crl FILE -c CONF --dir DIR` as this user, with `systemctl` for systemctl.
fn install_crl_with(
    file: &std::path::Path,
    conf: &std::path::Path,
    dir: &std::path::Path,
    systemctl: &std::path::Path,
) -> std::process::Output {
    let (user, _, _) = current_user();
    std::process::Command::new(bin())
        .arg("install-crl")
        .arg(file)
        .arg("-c")
        .arg(conf)
        .arg("--dir")
        .arg(dir)
        .args(["--owner", &user])
        .env("SYSTEMCTL", systemctl)
        .output()
        .unwrap()
}

async fn install_crl_against_a_running_proxy(reloads: bool) {
    let backend = Backend::start().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Ca::new("test-ca");
    let server = ca.server(&["localhost", "127.0.0.1"], 825);
    let user1 = ca.client("user1");
    write(d, "s.crt", &server.pem);
    write(d, "s.pem", &server.key_pem);
    write(d, "ca.crt", &ca.pem);
    let (port, status) = (free_port(), free_port());
    let conf = write(
        d,
        "proxy.conf",
        &format!(
            "SERVER_CRT={d}/s.crt\nSERVER_PEM={d}/s.pem\nCA_CRT={d}/ca.crt\nLISTEN=127.0.0.1:{port}\nSTATUS_LISTEN=127.0.0.1:{status}\nBACKEND_URL={}\n",
            backend.url(),
            d = d.display()
        ),
    );
    let mut proxy = Proc::start(&conf, &[]);
    let addr = proxy.listening();
    let client = crate::util::client::Client::h1(&ca.pem, Some(&user1));
    assert_eq!(client.get(addr, "/").await.unwrap().status, 200);
    let systemctl = if reloads {
        reloading_systemctl(d, proxy.child.id())
    } else {
        let path = d.join("systemctl-no-reload");
        write(d, "systemctl-no-reload", "#!/bin/sh\nexit 0\n");
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        path
    };
    let crl = write(d, "new.crl", &ca.crl(&[user1.serial]));
    let out = install_crl_with(&crl, &conf, &d.join("conf"), &systemctl);
    let t = text(&out);
    let installed = d.join("conf").join("new.crl");
    if !reloads {
        assert!(!out.status.success(), "{t}");
        assert!(
            t.contains(&format!(
                "CA_CRL is set to {}, but after the reload the proxy does not use it (it uses no CRL)",
                installed.display()
            )),
            "{t}"
        );
        assert!(!t.contains("now refused"), "{t}");
        // and indeed the proxy still lets user1 in
        assert_eq!(client.get(addr, "/").await.unwrap().status, 200);
        return;
    }
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains(&format!(
            "the proxy now checks clients against {}",
            installed.display()
        )),
        "{t}"
    );
    assert!(
        t.contains("recently seen clients now refused: CN=user1"),
        "{t}"
    );
    tokio::task::block_in_place(|| assert!(proxy.wait_for("reload").is_some(), "{:?}", proxy.seen));
    let refused = client.get(addr, "/").await;
    assert!(
        refused.map(|a| a.status.as_u16()) != Ok(200),
        "user1 is revoked"
    );
}

/// With two CAs in CA_CRT (a clinic moving from one orca-catool CA to the
/// next; of one name or of two) each numbering its certificates from 01, a
/// seen client of each has serial 0a. B's CRL revoking 0a names B's client
/// only as now refused, and A's client as not refused by it; A's CRL then
/// names A's. The proxy's own verdicts agree.
#[tokio::test(flavor = "multi_thread")]
async fn install_crl_names_only_the_seen_client_of_its_own_ca_when_two_cas_share_a_serial() {
    two_cas_sharing_a_serial("clinic-ca").await;
}

/// As above, with the new CA under a name of its own.
#[tokio::test(flavor = "multi_thread")]
async fn install_crl_names_only_the_seen_client_of_its_own_ca_of_another_name() {
    two_cas_sharing_a_serial("clinic-ca-2").await;
}

async fn two_cas_sharing_a_serial(b_name: &str) {
    let backend = Backend::start().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let a = Ca::new("clinic-ca");
    let b = Ca::new(b_name);
    let server = a.server(&["localhost", "127.0.0.1"], 825);
    let user_a = a.client_numbered("userA", 10);
    let user_b = b.client_numbered("userB", 10);
    write(d, "s.crt", &server.pem);
    write(d, "s.pem", &server.key_pem);
    write(d, "cas.crt", &format!("{}{}", a.pem, b.pem));
    let (port, status) = (free_port(), free_port());
    let conf = write(
        d,
        "proxy.conf",
        &format!(
            "SERVER_CRT={d}/s.crt\nSERVER_PEM={d}/s.pem\nCA_CRT={d}/cas.crt\nLISTEN=127.0.0.1:{port}\nSTATUS_LISTEN=127.0.0.1:{status}\nBACKEND_URL={}\n",
            backend.url(),
            d = d.display()
        ),
    );
    let mut proxy = Proc::start(&conf, &[]);
    let addr = proxy.listening();
    let pem = a.pem.clone();
    let get = |leaf: &Leaf| {
        let client = crate::util::client::Client::h1(&pem, Some(leaf));
        async move { client.get(addr, "/").await.map(|a| a.status.as_u16()).ok() }
    };
    assert_eq!(get(&user_a).await, Some(200));
    assert_eq!(get(&user_b).await, Some(200));
    let systemctl = reloading_systemctl(d, proxy.child.id());
    let b_crl = write(d, "b.crl", &b.crl(&[10]));
    let out = install_crl_with(&b_crl, &conf, &d.join("conf"), &systemctl);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains("recently seen clients now refused: CN=userB (serial 0a)\n"),
        "{t}"
    );
    assert!(
        t.contains(
            "not refused by this CRL, of a revoked serial but issued by another CA of CA_CRT than the CRL's (each CA numbers its certificates from 01): CN=userA (serial 0a)\n"
        ),
        "{t}"
    );
    assert_eq!(get(&user_a).await, Some(200), "A's client is not revoked");
    assert_ne!(get(&user_b).await, Some(200), "B's client is revoked");
    // the control: A's CRL of the same serial names A's client
    let a_crl = write(d, "a.crl", &a.crl(&[10]));
    let out = install_crl_with(&a_crl, &conf, &d.join("conf"), &systemctl);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains("recently seen clients now refused: CN=userA (serial 0a)\n"),
        "{t}"
    );
    assert!(
        t.contains("issued by another CA of CA_CRT than the CRL's (each CA numbers its certificates from 01): CN=userB (serial 0a)\n"),
        "{t}"
    );
    assert_ne!(get(&user_a).await, Some(200), "A's client is revoked now");
}
