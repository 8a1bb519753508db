//! The proxy as a process, as systemd runs it: its log lines on stderr are
//! both what the tests check and the readiness signal (`listening on …`).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A started proxy process.
pub struct Proc {
    pub child: Child,
    /// log lines with the timestamp removed
    pub lines: mpsc::Receiver<String>,
    pub seen: Vec<String>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port free on 127.0.0.1 now, for a config that names its port. It is
/// taken below the kernel's ephemeral range (`ip_local_port_range`), where
/// the other tests' outgoing connections and port-0 listeners never land,
/// so that nothing takes it between now and the bind of the program that is
/// given it; each call of this process starts from another port.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    if low < 2048 {
        // no room below the range: any free port
        return std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
    }
    // 10000 ports below the range (or what there is above 1024)
    let first = low.saturating_sub(10_000).max(1025);
    let span = u32::from(low - first);
    // processes started together start far apart: a prime stride by pid
    let start = std::process::id().wrapping_mul(7919) % span;
    for _ in 0..span {
        let offset = (start + u32::from(NEXT.fetch_add(1, Ordering::Relaxed))) % span;
        let port = first + offset as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port on 127.0.0.1 between {first} and {low}");
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_weborca-mtls-proxy")
}

/// Strips the `YYYY/MM/DD HH:MM:SS ` stamp, checking its shape.
pub fn unstamp(line: &str) -> String {
    let b = line.as_bytes();
    let ok = b.len() >= 20
        && b[4] == b'/'
        && b[7] == b'/'
        && b[10] == b' '
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b' '
        && line[..4].chars().all(|c| c.is_ascii_digit());
    assert!(ok, "line without a WebORCA timestamp: {line:?}");
    line[20..].to_string()
}

impl Proc {
    pub fn start(conf: &Path, args: &[&str]) -> Proc {
        Self::start_with_env(conf, args, &[])
    }

    pub fn start_with_env(conf: &Path, args: &[&str], env: &[(&str, &str)]) -> Proc {
        let mut child = Command::new(bin())
            .env_remove("NOTIFY_SOCKET")
            // the proxy looks at the guard's table: never the machine's own
            // firewall (a test that wants a guard names its stand-in nft)
            .env("NFT", "false")
            // info, unless the test asks for another level
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .arg("-c")
            .arg(conf)
            .args(args)
            .env_remove("JOURNAL_STREAM")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn proxy");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc {
            child,
            lines: rx,
            seen: Vec::new(),
        }
    }

    /// Reads lines until one contains `needle`; None if the process ended first.
    pub fn wait_for(&mut self, needle: &str) -> Option<String> {
        loop {
            match self.lines.recv_timeout(Duration::from_secs(30)) {
                Ok(line) => {
                    let text = unstamp(&line);
                    self.seen.push(text.clone());
                    if text.contains(needle) {
                        return Some(text);
                    }
                }
                Err(_) => return None,
            }
        }
    }

    /// Waits for `listening on ADDR` and returns the address.
    pub fn listening(&mut self) -> SocketAddr {
        let line = self
            .wait_for("listening on ")
            .unwrap_or_else(|| panic!("never listened; log: {:#?}", self.seen));
        let addr = line
            .trim_start_matches("listening on ")
            .split(',')
            .next()
            .unwrap();
        addr.parse().unwrap()
    }

    /// Waits for the exit; returns the code and every line logged.
    pub fn exit(mut self) -> (i32, Vec<String>) {
        let status = self.child.wait().unwrap();
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(unstamp(&line));
        }
        (status.code().unwrap_or(-1), std::mem::take(&mut self.seen))
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
}
