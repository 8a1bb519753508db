//! The flock that browser runs take before they write a Chromium policy:
//! Chromium reads every file in its managed-policy folder, so the tests and
//! the page-load bench, in whatever process, write one at a time.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The lock's file.
pub const LOCK_FILE: &str = "/tmp/weborca-mtls-proxy-chromium-policy.lock";

/// The lock, held by a child `flock` for as long as this value lives; if the
/// process dies, the child's stdin closes and the lock goes with it.
pub struct MachineLock {
    _holder: Child,
}

impl MachineLock {
    /// Waits at most `wait` for the lock (util-linux's `flock`).
    pub async fn take(wait: Duration) -> MachineLock {
        let mut holder = Command::new("flock")
            .args([
                "--exclusive",
                LOCK_FILE,
                "-c",
                "echo locked; exec cat >/dev/null",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("flock (util-linux)");
        let mut line = String::new();
        let mut out = BufReader::new(holder.stdout.take().expect("flock stdout"));
        tokio::time::timeout(wait, out.read_line(&mut line))
            .await
            .unwrap_or_else(|_| panic!("{LOCK_FILE} was held by another process for {wait:?}"))
            .expect("flock output");
        assert_eq!(line.trim(), "locked", "flock said {line:?}");
        MachineLock { _holder: holder }
    }
}
