//! The processes under test and what the kernel and the log say about them:
//! the backend (this binary in its backend role, restartable on its port),
//! the proxy (the release binary), the proxy's open descriptors sorted by
//! what they are, and its log read as it grows.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::backend;
use crate::certs::Live;

/// How long a process may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// The proxy's SHUTDOWN_GRACE, and how long after SIGTERM it may take to exit.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// Connect, read and write timeout of the plain-HTTP look-ups (status, backend count).
const PLAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Sends `sig` (e.g. "HUP") to `pid` with kill(1).
pub fn signal(sig: &str, pid: u32) -> bool {
    Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Reads a `listening on ADDR` line from `out` within [`START_TIMEOUT`].
fn listening_line(out: impl Read + Send + 'static) -> Result<SocketAddr, String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(out).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(START_TIMEOUT)
        .map_err(|_| format!("no address within {START_TIMEOUT:?}"))?;
    line.trim()
        .strip_prefix("listening on ")
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| format!("said {line:?} instead of its address"))
}

/// One plain HTTP/1.1 GET to a loopback listener; the body of a 200.
pub fn plain_get(addr: SocketAddr, path: &str) -> Result<String, String> {
    let attempt = || -> std::io::Result<String> {
        let mut s = TcpStream::connect_timeout(&addr, PLAIN_TIMEOUT)?;
        s.set_read_timeout(Some(PLAIN_TIMEOUT))?;
        s.set_write_timeout(Some(PLAIN_TIMEOUT))?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )?;
        let mut text = String::new();
        s.read_to_string(&mut text)?;
        Ok(text)
    };
    let text = attempt().map_err(|e| format!("GET http://{addr}{path}: {e}"))?;
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!(
            "GET http://{addr}{path}: {}",
            head.lines().next().unwrap_or("")
        ));
    }
    Ok(body.to_string())
}

/// The stand-in WebORCA: this binary in its backend role.
pub struct Backend {
    child: Child,
    /// kept open: the backend exits when it closes
    _stdin: Option<ChildStdin>,
    pub addr: SocketAddr,
}

impl Backend {
    /// Starts a backend on 127.0.0.1:`port` (0: any free port).
    pub fn start(port: u16) -> Result<Backend, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut child = Command::new(exe)
            .env(backend::ROLE_ENV, "1")
            .env(backend::PORT_ENV, port.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start the backend: {e}"))?;
        let stdin = child.stdin.take();
        let Some(stdout) = child.stdout.take() else {
            let _ = child.kill();
            return Err("no stdout from the backend".into());
        };
        match listening_line(stdout) {
            Ok(addr) => Ok(Backend {
                child,
                _stdin: stdin,
                addr,
            }),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(format!("backend: {e}"))
            }
        }
    }

    /// Kills it (SIGKILL: a crash, connections and all) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// How many `/refused-probe` requests it has seen since it started.
    pub fn probe_count(&self) -> Result<u64, String> {
        let body = plain_get(self.addr, "/__count")?;
        body.trim()
            .strip_prefix("{\"refused_probe\":")
            .and_then(|rest| rest.strip_suffix('}'))
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| format!("backend /__count said {body:?}"))
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The proxy under test, killed when dropped if still running.
pub struct Proxy {
    child: Mutex<Child>,
    pub pid: u32,
    pub addr: SocketAddr,
    pub status: SocketAddr,
    pub log: PathBuf,
}

impl Proxy {
    /// Writes `dir/proxy.conf` and starts the proxy on a free loopback port:
    /// defaults (access log on, identity headers, CLIENT_CERT_ERRORS=page)
    /// except the status listener, a short shutdown grace, and the file
    /// watcher slowed to once an hour so that every reload is one of the
    /// soak's SIGHUPs, matched to its log line. JOURNAL_STREAM makes each log
    /// line carry its syslog priority (`<3>` error, `<4>` warning).
    pub fn start(dir: &Path, live: &Live, backend: SocketAddr) -> Result<Proxy, String> {
        let conf = dir.join("proxy.conf");
        let text = format!(
            "# written by benches/soak.rs\n\
             SERVER_CRT={}\nSERVER_PEM={}\nCA_CRT={}\nCA_CRL={}\n\
             LISTEN=127.0.0.1:0\nBACKEND_URL=http://{backend}\nSTATUS_LISTEN=127.0.0.1:0\n\
             SHUTDOWN_GRACE={}s\nCERT_WATCH_INTERVAL=1h\n",
            live.crt.display(),
            live.key.display(),
            live.ca.display(),
            live.crl.display(),
            SHUTDOWN_GRACE.as_secs(),
        );
        std::fs::write(&conf, text).map_err(|e| format!("proxy.conf: {e}"))?;
        let log = dir.join("proxy.log");
        let stderr = std::fs::File::create(&log).map_err(|e| format!("proxy.log: {e}"))?;
        let mut child = Command::new(crate::servers::proxy_bin())
            .arg("-c")
            .arg(&conf)
            .env("JOURNAL_STREAM", "soak")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("cannot start the proxy (cargo build --release): {e}"))?;
        let until = Instant::now() + START_TIMEOUT;
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let after = |marker: &str, end: char| {
                text.lines()
                    .find_map(|l| l.split_once(marker).map(|(_, rest)| rest))
                    .and_then(|rest| rest.split(end).next())
                    .and_then(|a| a.parse::<SocketAddr>().ok())
            };
            if let (Some(addr), Some(status)) =
                (after("listening on ", ','), after("status on http://", '/'))
            {
                return Ok(Proxy {
                    pid: child.id(),
                    child: Mutex::new(child),
                    addr,
                    status,
                    log,
                });
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "the proxy exited ({status}) before listening:\n{text}"
                ));
            }
            if Instant::now() > until {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "the proxy did not listen within {START_TIMEOUT:?}:\n{text}"
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The exit status if it has exited.
    pub fn exited(&self) -> Option<ExitStatus> {
        self.child
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .try_wait()
            .ok()
            .flatten()
    }

    /// SIGTERM, then its exit status within [`STOP_TIMEOUT`] (None: it had to be killed).
    pub fn stop(&self) -> Option<ExitStatus> {
        if let Some(status) = self.exited() {
            return Some(status);
        }
        signal("TERM", self.pid);
        let until = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < until {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut child = self
            .child
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// The Prometheus text of the status listener.
    pub fn metrics(&self) -> Result<String, String> {
        plain_get(self.status, "/metrics")
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let child = self
            .child
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if matches!(child.try_wait(), Ok(None)) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Sum of the samples of metric `name` whose labels contain `label` ("" for any).
pub fn metric(text: &str, name: &str, label: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            let (metric, labels) = key.split_once('{').unwrap_or((key, ""));
            (metric == name && labels.contains(label)).then(|| value.parse::<f64>().ok())?
        })
        .sum()
}

/// RSS of a process in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    crate::procstat::rss_kib(&[pid])
}

/// Open descriptors of a process (0 if it is gone).
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// The proxy's open descriptors by what they are.
#[derive(Clone, Copy, Debug, Default)]
pub struct Fds {
    pub total: usize,
    /// TCP connections from clients to the proxy's port
    pub clients: usize,
    /// TCP connections to the backend's port
    pub backend: usize,
    /// listening sockets and the status listener's connections
    pub listeners: usize,
    /// other sockets, files, pipes, epoll and event descriptors
    pub other: usize,
}

/// Local port, remote port and state ("0A" is LISTEN) of each TCP socket, by inode.
fn tcp_sockets() -> HashMap<u64, (u16, u16, String)> {
    let mut map = HashMap::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let port = |field: Option<&&str>| {
                field
                    .and_then(|a| a.rsplit_once(':'))
                    .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
            };
            if let (Some(local), Some(remote), Some(state), Some(inode)) = (
                port(f.get(1)),
                port(f.get(2)),
                f.get(3),
                f.get(9).and_then(|i| i.parse::<u64>().ok()),
            ) {
                map.insert(inode, (local, remote, state.to_string()));
            }
        }
    }
    map
}

/// Sorts the proxy's descriptors: connections from clients (to `proxy_port`),
/// to the backend (`backend_port`), listeners, and the rest.
pub fn fds(pid: u32, proxy_port: u16, backend_port: u16) -> Fds {
    let sockets = tcp_sockets();
    let mut fds = Fds::default();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return fds;
    };
    for entry in dir.flatten() {
        fds.total += 1;
        let target = std::fs::read_link(entry.path()).unwrap_or_default();
        let inode = target
            .to_str()
            .and_then(|t| t.strip_prefix("socket:["))
            .and_then(|t| t.strip_suffix(']'))
            .and_then(|i| i.parse::<u64>().ok());
        match inode.and_then(|i| sockets.get(&i)) {
            Some((_, _, state)) if state == "0A" => fds.listeners += 1,
            Some((local, _, _)) if *local == proxy_port => fds.clients += 1,
            Some((_, remote, _)) if *remote == backend_port => fds.backend += 1,
            Some(_) => fds.listeners += 1, // the status listener's connections
            None => fds.other += 1,
        }
    }
    fds
}

/// The proxy's log, read as it grows: reload outcomes, panics, and the
/// warning and error lines by kind.
#[derive(Default)]
pub struct LogTail {
    path: PathBuf,
    offset: u64,
    partial: Vec<u8>,
    pub lines: u64,
    pub access_lines: u64,
    /// `reload (SIGHUP): reading …`
    pub reloads_started: u64,
    /// `reload: ok, …`
    pub reloads_ok: u64,
    /// `reload refused, still serving the previous certificates: …`
    pub reloads_refused: u64,
    /// lines mentioning a panic (the first few kept)
    pub panics: Vec<String>,
    pub panic_count: u64,
    /// warning and error lines by kind (level, message with numbers and details cut)
    pub by_kind: BTreeMap<(&'static str, String), u64>,
    /// one full line of each kind
    pub example: BTreeMap<(&'static str, String), String>,
}

impl LogTail {
    pub fn new(path: &Path) -> LogTail {
        LogTail {
            path: path.to_path_buf(),
            ..LogTail::default()
        }
    }

    /// Reads what was appended since the last call.
    pub fn poll(&mut self) {
        let Ok(mut file) = std::fs::File::open(&self.path) else {
            return;
        };
        if file.seek(SeekFrom::Start(self.offset)).is_err() {
            return;
        }
        let mut buf = Vec::new();
        let Ok(n) = file.read_to_end(&mut buf) else {
            return;
        };
        self.offset += n as u64;
        self.partial.extend_from_slice(&buf);
        let Some(last_nl) = self.partial.iter().rposition(|b| *b == b'\n') else {
            return;
        };
        let rest = self.partial.split_off(last_nl + 1);
        let complete = std::mem::replace(&mut self.partial, rest);
        for line in String::from_utf8_lossy(&complete).lines() {
            self.line(line);
        }
    }

    fn line(&mut self, line: &str) {
        self.lines += 1;
        if line.to_ascii_lowercase().contains("panic") {
            self.panic_count += 1;
            if self.panics.len() < 5 {
                self.panics.push(line.to_string());
            }
        }
        // "<6>2026/01/02 03:04:05 message": priority, then WebORCA's timestamp
        let (level, rest) = match line.get(..3) {
            Some("<3>") => (Some("ERROR"), &line[3..]),
            Some("<4>") => (Some("WARN"), &line[3..]),
            Some(p) if p.starts_with('<') && p.ends_with('>') => (None, &line[3..]),
            _ => (None, line),
        };
        let message = rest.get(20..).unwrap_or(rest);
        if message.contains("\"GET ") || message.contains("\"POST ") {
            self.access_lines += 1;
        }
        if message.starts_with("reload (SIGHUP): reading") {
            self.reloads_started += 1;
        } else if message.starts_with("reload: ok") {
            self.reloads_ok += 1;
        } else if message.starts_with("reload refused") {
            self.reloads_refused += 1;
        }
        if let Some(level) = level {
            let kind = kind_of(message);
            *self.by_kind.entry((level, kind.clone())).or_default() += 1;
            self.example
                .entry((level, kind))
                .or_insert_with(|| line.to_string());
        }
    }
}

/// A message's kind: up to its first colon, numbers replaced by N.
fn kind_of(message: &str) -> String {
    let head = message.split(':').next().unwrap_or(message);
    let mut kind = String::new();
    let mut in_number = false;
    for c in head.chars().take(100) {
        if c.is_ascii_digit() {
            if !in_number {
                kind.push('N');
            }
            in_number = true;
        } else {
            kind.push(c);
            in_number = false;
        }
    }
    kind.trim().to_string()
}
