//! The proxy as a process whose log may be text or JSON (LOG_FORMAT): started
//! as [`Proc`] starts it, its stderr lines read by their text (a JSON line's
//! `msg`), the `listening on` line being the readiness signal.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use super::process::Proc;

/// The proxy as a process; its stderr lines, text or JSON, read by their text.
pub struct Proxy {
    proc: Proc,
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
        Proxy {
            proc: Proc::start(conf, &[]),
        }
    }

    /// The text of the first line from now on that contains `needle`.
    pub fn wait_for(&self, needle: &str) -> String {
        loop {
            let line = self
                .proc
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
        self.proc.signal(sig);
    }

    /// SIGTERM and the exit, which writes out every line.
    pub fn stop(mut self) {
        self.signal("TERM");
        let status = self.proc.child.wait().unwrap();
        assert!(status.success(), "proxy exit: {status}");
    }
}
