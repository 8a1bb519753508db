//! Headless Firefox ESR with a fresh profile: the clinic's CA trusted in its
//! NSS database, the user's `.p12` imported with pk12util, and the client
//! certificate chosen without a dialog (`security.default_personal_cert`).

use std::path::PathBuf;

use tempfile::TempDir;
use tokio::process::Command;

use super::pki::write;
use super::real::{CatoolFiles, artefacts, bounded, import_p12, nss_trusting, require};

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
        let f = Firefox {
            home: tempfile::tempdir().unwrap(),
        };
        nss_trusting(&f.profile(), f.home.path(), ca_pem).await;
        write(&f.profile(), "user.js", &format!("{USER_JS}{prefs}"));
        f
    }

    fn profile(&self) -> PathBuf {
        self.home.path().join("profile")
    }

    /// `pk12util -i X.p12 -W PASS` into the profile, as a user imports
    /// orca-catool's zip (Settings → Certificates → Import).
    pub async fn import_p12(&self, files: &CatoolFiles) {
        import_p12(&self.profile(), files).await;
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
