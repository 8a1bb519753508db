//! Chromium started with a managed policy of its own. Headless Chromium has
//! no certificate picker, so the policy `AutoSelectCertificateForUrls` picks
//! the client certificate; Chromium reads it from /etc/chromium/policies/
//! managed. Rather than write there (the machine's /etc, read by every
//! Chromium on it), each Chromium runs in a mount namespace of its own
//! (`unshare --mount`) in which /etc/chromium is a fresh tmpfs holding only
//! this policy: runs in parallel never see each other's, and nothing is left
//! behind when a run is killed.

use tokio::process::Command;

/// The flags every headless run here takes (see TESTING.md: without the
/// background-networking ones Chromium keeps calling out of a closed network).
pub const FLAGS: [&str; 8] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
];

/// The tools a run needs besides Chromium itself (util-linux and mount).
pub const TOOLS: [&str; 3] = ["chromium", "unshare", "mount"];

/// The policy picking the client certificate for `https://127.0.0.1:PORT` of
/// each of `ports`.
pub fn auto_select(ports: &[u16]) -> String {
    let rules: Vec<String> = ports
        .iter()
        .map(|p| {
            serde_json::json!({"pattern": format!("https://127.0.0.1:{p}"), "filter": {}})
                .to_string()
        })
        .collect();
    serde_json::json!({ "AutoSelectCertificateForUrls": rules }).to_string()
}

/// The shell run inside the new mount namespace: the private /etc/chromium,
/// the policy in it, then Chromium in place of the shell (same pid, so a kill
/// reaches it). /etc/chromium comes with Debian's chromium package.
const IN_NAMESPACE: &str = "set -e
mount -t tmpfs -o mode=0755 weborca-test-policy /etc/chromium
mkdir -p /etc/chromium/policies/managed
printf '%s' \"$WEBORCA_TEST_POLICY\" > /etc/chromium/policies/managed/test.json
exec chromium \"$@\"";

/// `chromium` with `policy` as its only managed policy and [`FLAGS`]; the
/// caller adds its own arguments. Needs root (a mount namespace).
pub fn command(policy: &str) -> Command {
    let mut c = Command::new("unshare");
    c.args(["--mount", "--propagation", "private", "--", "sh", "-c"])
        .arg(IN_NAMESPACE)
        .arg("chromium")
        .args(FLAGS)
        .env("WEBORCA_TEST_POLICY", policy);
    c
}

/// Whether a private policy can be made here: root, and /etc/chromium there
/// to mount over.
pub fn can_run() -> Result<(), String> {
    if !std::path::Path::new("/etc/chromium").is_dir() {
        return Err("/etc/chromium is missing (Debian's chromium package brings it)".into());
    }
    let out = std::process::Command::new("unshare")
        .args(["--mount", "--propagation", "private", "--", "sh", "-c"])
        .arg("mount -t tmpfs weborca-test-probe /etc/chromium")
        .output()
        .map_err(|e| format!("unshare: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cannot give Chromium a private /etc/chromium (unshare --mount, as root): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}
