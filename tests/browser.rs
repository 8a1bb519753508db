//! Headless Chromium as a clinic's PC uses it: the user's `.p12` imported into
//! a fresh NSS database with pk12util, the clinic's CA trusted, a managed
//! policy choosing the certificate (headless has no picker), the proxy run as
//! a process. Each case leaves a screenshot in `target/artefacts/`.

use std::path::PathBuf;

use tempfile::TempDir;

use crate::util::backend::Backend;
use crate::util::chromium;
use crate::util::client::Client;
use crate::util::env::Setup;
use crate::util::pki::{Leaf, write};
use crate::util::process::Proc;
use crate::util::real::{
    CatoolFiles, SETUP_HINT, artefacts, bounded, catool_files, import_p12, nss_trusting, require,
};

/// Chromium runs one at a time in this binary: each is a heavy process on a
/// 2-core machine. (The policies need no lock: each run has its own,
/// util/chromium.rs.)
pub static BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A clinic PC's browser profile: HOME with `.pki/nssdb` (where Chromium on
/// Linux reads client certificates), the CA trusted as in seeds/004.
pub struct Browser {
    pub home: TempDir,
    /// the managed policy its runs get (none until [`Browser::auto_select`])
    policy: std::sync::Mutex<String>,
}

/// What one page load left.
struct Visit {
    dom: String,
    stderr: String,
    screenshot: PathBuf,
}

impl Browser {
    pub async fn new(ca_pem: &str) -> Browser {
        for tool in chromium::TOOLS
            .into_iter()
            .chain(["certutil", "pk12util", "timeout"])
        {
            require(tool);
        }
        if let Err(why) = chromium::can_run() {
            panic!("{why}; the browser tests run as root: {SETUP_HINT}");
        }
        let b = Browser {
            home: tempfile::tempdir().unwrap(),
            policy: std::sync::Mutex::new("{}".into()),
        };
        nss_trusting(&b.db(), b.home.path(), ca_pem).await;
        b
    }

    /// From now on its runs pick the client certificate for
    /// `https://127.0.0.1:PORT` (`AutoSelectCertificateForUrls`): headless
    /// Chromium waits forever for a picker otherwise.
    pub fn auto_select(&self, port: u16) {
        *self.policy.lock().unwrap() = chromium::auto_select(&[port]);
    }

    /// The managed policy of its runs.
    pub fn policy(&self) -> String {
        self.policy.lock().unwrap().clone()
    }

    /// Chromium's NSS database, under HOME.
    fn db(&self) -> PathBuf {
        self.home.path().join(".pki/nssdb")
    }

    /// `pk12util -i X.p12 -W PASS`, as a user imports orca-catool's zip.
    pub async fn import_p12(&self, files: &CatoolFiles) {
        import_p12(&self.db(), files).await;
    }

    /// Opens `url` headless; returns the DOM and leaves a screenshot named `shot`.
    async fn visit(&self, url: &str, shot: &str) -> Visit {
        let screenshot = artefacts().join(format!("{shot}.png"));
        let _ = std::fs::remove_file(&screenshot);
        let profile = self.home.path().join("profile");
        let out = bounded(
            60,
            chromium::command(&self.policy())
                .env("HOME", self.home.path())
                .arg("--window-size=1280,1300")
                .arg(format!("--user-data-dir={}", profile.display()))
                .arg(format!("--screenshot={}", screenshot.display()))
                .arg("--dump-dom")
                .arg(url),
        )
        .await;
        let visit = Visit {
            dom: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            screenshot,
        };
        assert!(
            !visit.dom.is_empty(),
            "Chromium loaded nothing from {url}: {}",
            visit.stderr
        );
        assert!(visit.screenshot.exists(), "no screenshot: {}", visit.stderr);
        visit
    }
}

impl Visit {
    /// The text a person reads (tags dropped, entities of the pages decoded).
    fn text(&self) -> String {
        let mut text = String::new();
        let mut in_tag = false;
        let mut in_style = false;
        let lower = self.dom.to_ascii_lowercase();
        let mut i = 0;
        let bytes = self.dom.as_bytes();
        while i < bytes.len() {
            if lower[i..].starts_with("<style") {
                in_style = true;
            }
            if in_style && lower[i..].starts_with("</style>") {
                in_style = false;
            }
            let c = self.dom[i..].chars().next().unwrap();
            match c {
                '<' => in_tag = true,
                '>' => {
                    in_tag = false;
                    text.push(' ');
                }
                _ if !in_tag && !in_style => text.push(c),
                _ => {}
            }
            i += c.len_utf8();
        }
        let text = text
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&amp;", "&");
        let lines: Vec<String> = text
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .filter(|l| !l.is_empty())
            .collect();
        lines.join("\n")
    }

    /// The stand-in backend's JSON answer as the browser shows it (in a `<pre>`).
    fn backend_json(&self) -> serde_json::Value {
        let pre = self
            .dom
            .split_once("<pre")
            .and_then(|(_, rest)| rest.split_once('>'))
            .and_then(|(_, rest)| rest.split_once("</pre>"))
            .map(|(pre, _)| pre)
            .unwrap_or_else(|| panic!("not the stand-in's page: {}", self.dom));
        let json = pre
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&amp;", "&");
        serde_json::from_str(&json)
            .unwrap_or_else(|e| panic!("not the stand-in's JSON ({e}): {json}"))
    }
}

/// The headers the stand-in saw, from its JSON answer.
fn header<'a>(json: &'a serde_json::Value, name: &str) -> Vec<&'a str> {
    json["headers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h[0] == name)
        .map(|h| h[1].as_str().unwrap())
        .collect()
}

/// The proxy as a process (as systemd runs it) in front of a stand-in.
struct Running {
    setup: Setup,
    backend: Backend,
    proc: Proc,
    port: u16,
}

async fn proxy() -> Running {
    let backend = Backend::start().await;
    let setup = Setup::new();
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

#[tokio::test]
async fn chromium_with_the_imported_p12_reaches_weborca_as_user1() {
    let _one = BROWSER.lock().await;
    let mut run = proxy().await;
    let browser = Browser::new(&run.setup.ca.pem).await;
    let files = catool_files(run.setup.dir.path(), 3, &run.setup.user1, &run.setup.ca.pem).await;
    browser.import_p12(&files).await;
    browser.auto_select(run.port);

    let url = format!("https://127.0.0.1:{}/", run.port);
    let visit = browser.visit(&url, "chromium-1-user1-p12").await;
    let json = visit.backend_json();
    assert_eq!(json["target"], "/");
    assert_eq!(header(&json, "x-ssl-client-verify"), ["SUCCESS"]);
    assert_eq!(header(&json, "x-ssl-client-s-dn"), ["CN=user1,O=orca,C=JP"]);
    assert_eq!(
        header(&json, "x-ssl-client-i-dn"),
        ["CN=test-ca,O=orca,C=JP"]
    );
    assert_eq!(header(&json, "x-forwarded-proto"), ["https"]);
    let seen = run.backend.last();
    assert_eq!(seen.one("x-ssl-client-s-dn"), Some("CN=user1,O=orca,C=JP"));
    // the access log names the user
    run.proc
        .wait_for("cn=user1")
        .unwrap_or_else(|| panic!("no access log line with cn=user1: {:#?}", run.proc.seen));
}

#[tokio::test]
async fn chromium_without_a_certificate_shows_the_japanese_403_page() {
    let _one = BROWSER.lock().await;
    let run = proxy().await;
    // the CA is trusted, but no .p12 was imported
    let browser = Browser::new(&run.setup.ca.pem).await;
    browser.auto_select(run.port);

    let url = format!("https://127.0.0.1:{}/", run.port);
    let visit = browser.visit(&url, "chromium-2-no-certificate").await;
    assert!(visit.dom.contains("<html lang=\"ja\">"), "{}", visit.dom);
    let text = visit.text();
    for needle in [
        "証明書が確認できませんでした",
        "403",
        "デバイス証明書の管理",
        ".p12",
        ".pass",
        "ca.crt",
        "No client certificate was presented",
    ] {
        assert!(text.contains(needle), "the page lacks {needle:?}: {text}");
    }
    // Japanese first, English below
    assert!(
        text.find("証明書が確認できませんでした").unwrap()
            < text.find("No client certificate").unwrap()
    );
    assert_eq!(run.backend.count(), 0, "a refused browser reached WebORCA");
}

#[tokio::test]
async fn chromium_with_an_expired_certificate_is_told_about_the_expiry() {
    let _one = BROWSER.lock().await;
    let run = proxy().await;
    let browser = Browser::new(&run.setup.ca.pem).await;
    let expired = run.setup.ca.client_valid("user1", -400, -30);
    let files = catool_files(run.setup.dir.path(), 4, &expired, &run.setup.ca.pem).await;
    browser.import_p12(&files).await;
    browser.auto_select(run.port);

    // For review: the page the proxy serves when an expired certificate is
    // presented, rendered by the same browser.
    let served = served_page(run.port, &run.setup.ca.pem, &expired).await;
    for needle in ["証明書の有効期限が切れています", "CN=user1", "orca-catool"] {
        assert!(served.contains(needle), "the expired page lacks {needle:?}");
    }
    let file = write(run.setup.dir.path(), "expired-page.html", &served);
    browser
        .visit(
            &format!("file://{}", file.display()),
            "chromium-3b-expired-page-as-served",
        )
        .await;

    let url = format!("https://127.0.0.1:{}/", run.port);
    let visit = browser.visit(&url, "chromium-3-expired-certificate").await;
    let text = visit.text();
    assert!(
        text.contains("有効期限"),
        "With an expired certificate imported, the page does not mention the expiry (有効期限). \
         Chromium does not offer an expired client certificate at all (its NSS client-certificate \
         store skips certificates outside their validity period, policy or not), so the proxy \
         receives no certificate and shows the 'missing' page, whose text blames a missing import \
         or another CA. The page a receptionist sees:\n{text}"
    );
    assert_eq!(run.backend.count(), 0, "a refused browser reached WebORCA");
}

/// The HTML the proxy answers to a browser presenting `leaf`.
async fn served_page(port: u16, ca_pem: &str, leaf: &Leaf) -> String {
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let answer = Client::h1(ca_pem, Some(leaf))
        .get(addr, "/")
        .await
        .expect("the proxy answers");
    assert_eq!(answer.status, 403);
    answer.text()
}

#[tokio::test]
async fn chromium_opening_plain_http_ends_on_the_https_page() {
    let _one = BROWSER.lock().await;
    let mut run = proxy().await;
    let browser = Browser::new(&run.setup.ca.pem).await;
    let files = catool_files(run.setup.dir.path(), 3, &run.setup.user1, &run.setup.ca.pem).await;
    browser.import_p12(&files).await;
    browser.auto_select(run.port);

    let url = format!("http://127.0.0.1:{}/patients?id=1", run.port);
    let visit = browser.visit(&url, "chromium-5-plain-http").await;
    // the page came from WebORCA, over TLS, as user1
    let json = visit.backend_json();
    assert_eq!(json["target"], "/patients?id=1");
    assert_eq!(header(&json, "x-forwarded-proto"), ["https"]);
    assert_eq!(header(&json, "x-ssl-client-s-dn"), ["CN=user1,O=orca,C=JP"]);
    // ...after the proxy answered the plain request with the redirect (the
    // browser did not upgrade by itself)
    run.proc
        .wait_for("plain http:// request")
        .unwrap_or_else(|| {
            panic!(
                "the proxy saw no plain http:// request: {:#?}",
                run.proc.seen
            )
        });
    assert!(
        run.backend
            .seen
            .lock()
            .unwrap()
            .iter()
            .all(|s| s.one("x-forwarded-proto") == Some("https")),
        "only https requests reach WebORCA"
    );
}
