//! One page load in a fresh headless Chromium, as tests/browser.rs sets one
//! up: a new HOME whose NSS database trusts the bench's CA and has the
//! client's `.p12` imported with pk12util, a new profile (user-data-dir), and
//! a managed policy choosing the certificate (headless has no picker), in a
//! private /etc/chromium (tests/util/chromium.rs). The page is then driven
//! over the DevTools protocol (tests/util/cdp.rs).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use p12_keystore::{
    Certificate, EncryptionAlgorithm, KeyStore, KeyStoreEntry, MacAlgorithm, PrivateKey,
    PrivateKeyChain,
};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::process::Command;

use crate::cdp::Chromium;
use crate::pki::Pki;

/// How long one NSS tool may take.
const TOOL_WAIT: Duration = Duration::from_secs(30);
/// How long a page may take from the load event to its completion mark.
const DONE_WAIT: Duration = Duration::from_secs(60);
/// How often the page is asked whether it is done, once its load event fired.
const POLL_EVERY: Duration = Duration::from_millis(2);
/// The `.p12` passphrase: the file lives in the run's temporary folder only.
const P12_PASS: &str = "pageload-bench";

/// The client's certificate as a user receives it: a `.p12` and the CA.
pub struct ClientFiles {
    pub p12: PathBuf,
    pub ca_crt: PathBuf,
}

/// Writes the client's `.p12` (PBES2 with AES-256 and a SHA-256 MAC, as the
/// demo writes it, which NSS reads) next to the PKI.
pub fn client_files(dir: &Path, pki: &Pki) -> ClientFiles {
    let cert = pki.client_chain[0].as_ref();
    let chain = PrivateKeyChain::new(
        Sha256::digest(cert).to_vec(),
        PrivateKey::from_der(pki.client_key.secret_der()).expect("client key for the .p12"),
        [
            Certificate::from_der(cert).expect("client certificate"),
            Certificate::from_der(pki.ca_der.as_ref()).expect("CA certificate"),
        ],
    );
    let mut store = KeyStore::new();
    store.add_entry("user1", KeyStoreEntry::PrivateKeyChain(chain));
    let p12 = store
        .writer(P12_PASS)
        .encryption_algorithm(EncryptionAlgorithm::PbeWithHmacSha256AndAes256)
        .mac_algorithm(MacAlgorithm::HmacSha256)
        .write()
        .expect("write the .p12");
    let path = dir.join("user1.p12");
    std::fs::write(&path, p12).expect("user1.p12");
    ClientFiles {
        p12: path,
        ca_crt: pki.ca_crt.clone(),
    }
}

/// Whether Chromium can be given a private policy here (root).
pub fn can_write_policy() -> Result<(), String> {
    crate::chromium::can_run()
}

/// What the page said about one load, and the wall time around it.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// navigation start to completion, from the page (performance.now())
    pub page_ms: f64,
    /// from sending Page.navigate to reading the completion mark
    pub wall_ms: f64,
    pub dcl_ms: f64,
    pub load_ms: f64,
    pub resources: u64,
    pub protocols: String,
    pub scripts: u64,
    pub ok: bool,
}

/// A fresh HOME with the NSS database, the CA trusted and the `.p12` imported.
pub async fn fresh_home(dir: &Path, files: &ClientFiles) -> PathBuf {
    let home = dir.to_path_buf();
    let db = home.join(".pki/nssdb");
    std::fs::create_dir_all(&db).expect("nssdb dir");
    let db = format!("sql:{}", db.display());
    tool(Command::new("certutil").args(["-N", "--empty-password", "-d", &db])).await;
    tool(
        Command::new("certutil")
            .args(["-A", "-n", "clinic CA", "-t", "C,,", "-d", &db, "-i"])
            .arg(&files.ca_crt),
    )
    .await;
    tool(
        Command::new("pk12util")
            .args(["-d", &db, "-W", P12_PASS, "-i"])
            .arg(&files.p12),
    )
    .await;
    home
}

async fn tool(cmd: &mut Command) {
    let out = tokio::time::timeout(TOOL_WAIT, cmd.kill_on_drop(true).output())
        .await
        .unwrap_or_else(|_| panic!("{cmd:?} took more than {TOOL_WAIT:?}"))
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Loads `url` once in a new Chromium with `home` and a policy that picks
/// the certificate for `ports`.
pub async fn load(home: &Path, url: &str, ports: &[u16]) -> Loaded {
    let mut chromium = Chromium::start(home, &crate::chromium::auto_select(ports)).await;
    let t0 = Instant::now();
    chromium.open(url).await;
    let until = Instant::now() + DONE_WAIT;
    let mark = loop {
        let v = chromium
            .eval("window.__pageload ? JSON.stringify(window.__pageload) : null")
            .await;
        if let Some(s) = v.as_str() {
            break serde_json::from_str::<Value>(s).expect("the page's mark is JSON");
        }
        assert!(
            Instant::now() < until,
            "{url}: loaded, but not done within {DONE_WAIT:?}"
        );
        tokio::time::sleep(POLL_EVERY).await;
    };
    let wall_ms = t0.elapsed().as_secs_f64() * 1e3;
    drop(chromium);
    assert!(
        mark.get("error").is_none(),
        "{url}: the page failed: {mark}"
    );
    let num = |k: &str| mark[k].as_f64().unwrap_or(f64::NAN);
    Loaded {
        page_ms: num("done"),
        wall_ms,
        dcl_ms: num("dcl"),
        load_ms: num("load"),
        resources: mark["resources"].as_u64().unwrap_or(0),
        protocols: mark["protocols"].as_str().unwrap_or("").to_string(),
        scripts: mark["scripts"].as_u64().unwrap_or(0),
        ok: mark["ok"].as_bool().unwrap_or(false),
    }
}
