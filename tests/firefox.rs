//! Firefox ESR, headless, as a clinic's PC uses it: a fresh profile whose NSS
//! database gets the user's `.p12` through pk12util and the clinic's CA as
//! trusted, and `security.default_personal_cert` set so the certificate is
//! chosen without a dialog. The proxy runs as a process; each case leaves a
//! screenshot in `target/artefacts/`.

use std::path::Path;

use crate::util::backend::Backend;
use crate::util::env::Setup;
use crate::util::firefox::Firefox;
use crate::util::process::Proc;
use crate::util::real::catool_files;

/// The proxy as a process in front of a stand-in, and user1's files.
struct Running {
    setup: Setup,
    backend: Backend,
    proc: Proc,
    port: u16,
}

async fn proxy(setup: Setup) -> Running {
    let backend = Backend::start().await;
    let conf = setup.write_config(&backend.url());
    let mut proc = Proc::start(&conf, &[]);
    let port = proc.listening().port();
    Running {
        setup,
        backend,
        proc,
        port,
    }
}

/// PNG files of a real page are more than a few hundred bytes.
fn check_png(png: &Path) {
    let bytes = std::fs::read(png).unwrap();
    assert!(bytes.starts_with(b"\x89PNG"), "{} is no PNG", png.display());
    assert!(bytes.len() > 2000, "{} is nearly empty", png.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firefox_with_the_imported_p12_reaches_weborca_as_user1() {
    let mut run = proxy(Setup::new()).await;
    let firefox = Firefox::new(&run.setup.ca.pem, "").await;
    let files = catool_files(run.setup.dir.path(), 3, &run.setup.user1, &run.setup.ca.pem).await;
    firefox.import_p12(&files).await;

    let url = format!("https://localhost:{}/?from=firefox", run.port);
    let png = firefox.screenshot(&url, "firefox-1-user1-p12").await;
    check_png(&png);
    let seen = run.backend.seen.lock().unwrap().clone();
    let page = seen
        .iter()
        .find(|s| s.target == "/?from=firefox")
        .unwrap_or_else(|| panic!("Firefox's page request did not reach WebORCA: {seen:#?}"));
    assert_eq!(page.one("x-ssl-client-verify"), Some("SUCCESS"));
    assert_eq!(page.one("x-ssl-client-s-dn"), Some("CN=user1,O=orca,C=JP"));
    // the User-Agent Firefox really sends is told as Firefox's (its refusal
    // pages name Firefox's menus)
    let ua = page.one("user-agent").expect("Firefox sends a User-Agent");
    assert_eq!(
        weborca_mtls_proxy::pages::Browser::of(Some(&http::HeaderValue::from_str(ua).unwrap())),
        weborca_mtls_proxy::pages::Browser::Firefox,
        "{ua}"
    );
    assert!(
        seen.iter()
            .all(|s| s.one("x-ssl-client-s-dn") == Some("CN=user1,O=orca,C=JP")),
        "every request Firefox made came as user1: {seen:#?}"
    );
    let line = tokio::task::block_in_place(|| run.proc.wait_for("cn=user1"));
    assert!(
        line.is_some_and(|l| l.contains("/?from=firefox") && l.contains(" 200 ")),
        "no access log line for Firefox's page: {:#?}",
        run.proc.seen
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firefox_without_a_certificate_shows_the_missing_page() {
    let mut run = proxy(Setup::new()).await;
    // the CA is trusted, but no .p12 was imported
    let firefox = Firefox::new(&run.setup.ca.pem, "").await;
    let url = format!("https://localhost:{}/?from=firefox", run.port);
    let png = firefox.screenshot(&url, "firefox-2-no-certificate").await;
    check_png(&png);
    assert_eq!(run.backend.count(), 0, "a refused browser reached WebORCA");
    let line = tokio::task::block_in_place(|| run.proc.wait_for("client certificate refused"));
    assert!(
        line.as_deref().is_some_and(|l| l.contains("missing")),
        "the proxy did not refuse Firefox as 'missing': {:#?}",
        run.proc.seen
    );
    // ...and answered the page request with the 403 page Firefox rendered
    let page = tokio::task::block_in_place(|| run.proc.wait_for("/?from=firefox"));
    assert!(
        page.as_deref().is_some_and(|l| l.contains(" 403 ")),
        "no 403 answer to Firefox's page request: {:#?}",
        run.proc.seen
    );
}
