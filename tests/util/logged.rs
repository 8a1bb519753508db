//! The proxy as a process whose log may be text or JSON (LOG_FORMAT): its
//! stderr lines on a channel, read by their text (a JSON line's `msg`), the
//! `listening on` line being the readiness signal.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use super::process::bin;

/// The proxy as a process; its stderr lines, text or JSON, on a channel.
pub struct Proxy {
    pub child: Child,
    pub lines: mpsc::Receiver<String>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The text of a log line in either format (a JSON line's `msg`).
pub fn text_of(line: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(line) {
        Ok(v) => v["msg"].as_str().unwrap_or_default().to_string(),
        Err(_) => line.to_string(),
    }
}

impl Proxy {
    pub fn start(conf: &Path) -> Proxy {
        let mut child = Command::new(bin())
            .arg("-c")
            .arg(conf)
            .env("RUST_LOG", "info")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("JOURNAL_STREAM")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn proxy");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proxy { child, lines }
    }

    /// The text of the first line from now on that contains `needle`.
    pub fn wait_for(&self, needle: &str) -> String {
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| panic!("no line with {needle:?}"));
            let text = text_of(&line);
            if text.contains(needle) {
                return text;
            }
        }
    }

    pub fn listening(&self) -> SocketAddr {
        let line = self.wait_for("listening on ");
        let rest = &line[line.find("listening on ").unwrap() + "listening on ".len()..];
        rest.split(',').next().unwrap().parse().unwrap()
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig}");
    }

    /// SIGTERM and the exit, which writes out every line.
    pub fn stop(mut self) {
        self.signal("TERM");
        let status = self.child.wait().unwrap();
        assert!(status.success(), "proxy exit: {status}");
    }
}
