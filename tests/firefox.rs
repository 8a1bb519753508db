//! Firefox ESR, headless, as a clinic's PC uses it: a fresh profile whose NSS
//! database gets the user's `.p12` through pk12util and the clinic's CA as
//! trusted, and `security.default_personal_cert` set so the certificate is
//! chosen without a dialog. The proxy runs as a process; each case leaves a
//! screenshot in `target/artefacts/`.

use std::path::{Path, PathBuf};

use tempfile::TempDir;
use tokio::process::Command;

use crate::util::backend::Backend;
use crate::util::env::Setup;
use crate::util::pki::write;
use crate::util::process::Proc;
use crate::util::real::{CatoolFiles, artefacts, bounded, catool_files, require};

/// Prefs of the test profile: the certificate picked automatically, and the
/// first-run pages and background traffic a fresh profile would start turned
/// off (the machine has no network beyond loopback).
const USER_JS: &str = r#"user_pref("security.default_personal_cert", "Select Automatically");
user_pref("browser.shell.checkDefaultBrowser", false);
user_pref("browser.aboutwelcome.enabled", false);
user_pref("browser.startup.homepage_override.mstone", "ignore");
user_pref("datareporting.policy.dataSubmissionEnabled", false);
user_pref("toolkit.telemetry.reportingpolicy.firstRun", false);
user_pref("app.normandy.enabled", false);
user_pref("network.captive-portal-service.enabled", false);
user_pref("network.connectivity-service.enabled", false);
user_pref("extensions.update.enabled", false);
user_pref("browser.safebrowsing.update.enabled", false);
user_pref("security.OCSP.enabled", 0);
"#;

/// A fresh Firefox profile with the clinic's CA trusted.
pub struct Firefox {
    home: TempDir,
}

impl Firefox {
    /// A profile trusting `ca_pem`; `prefs` are appended to user.js.
    pub async fn new(ca_pem: &str, prefs: &str) -> Firefox {
        for tool in ["firefox-esr", "certutil", "pk12util", "timeout"] {
            require(tool);
        }
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(home.path().join("profile")).unwrap();
        let f = Firefox { home };
        f.nss(Command::new("certutil").args(["-N", "--empty-password"]))
            .await;
        let ca = write(f.home.path(), "ca.crt", ca_pem);
        f.nss(
            Command::new("certutil")
                .args(["-A", "-n", "clinic CA", "-t", "C,,", "-i"])
                .arg(ca),
        )
        .await;
        write(&f.profile(), "user.js", &format!("{USER_JS}{prefs}"));
        f
    }

    fn profile(&self) -> PathBuf {
        self.home.path().join("profile")
    }

    async fn nss(&self, cmd: &mut Command) {
        let db = format!("sql:{}", self.profile().display());
        let out = bounded(30, cmd.arg("-d").arg(db)).await;
        assert!(
            out.status.success(),
            "{:?}: {}{}",
            cmd.as_std(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `pk12util -i X.p12 -W PASS` into the profile, as a user imports
    /// orca-catool's zip (Settings → Certificates → Import).
    pub async fn import_p12(&self, files: &CatoolFiles) {
        self.nss(
            Command::new("pk12util")
                .arg("-i")
                .arg(&files.p12)
                .args(["-W", &files.pass]),
        )
        .await;
    }

    /// Opens `url` headless and writes `target/artefacts/<shot>.png`;
    /// `--screenshot` exits once the page has loaded.
    pub async fn screenshot(&self, url: &str, shot: &str) -> PathBuf {
        let png = artefacts().join(format!("{shot}.png"));
        let _ = std::fs::remove_file(&png);
        let out = bounded(
            90,
            Command::new("firefox-esr")
                .env("HOME", self.home.path())
                .env("MOZ_CRASHREPORTER_DISABLE", "1")
                .arg("--headless")
                .arg("--profile")
                .arg(self.profile())
                .args(["--no-remote", "--window-size=1280,1300", "--screenshot"])
                .arg(&png)
                .arg(url),
        )
        .await;
        assert!(
            png.exists(),
            "Firefox wrote no screenshot of {url} ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        png
    }
}

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
}
