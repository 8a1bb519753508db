//! The processes under test, each started with its own config in the run's
//! temporary folder on a loopback port, and stopped when dropped (also when
//! the bench fails): the backend, this proxy (the release binary) and nginx
//! (the Debian package, installed here when missing).

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use crate::pki::Pki;
use crate::procstat;

/// How long a server may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a server may take to stop after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// A child process that is stopped (SIGTERM, then SIGKILL to the whole tree) when dropped.
pub struct Proc {
    child: Child,
    /// kept open: the backend exits when it closes
    _stdin: Option<ChildStdin>,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let tree = procstat::tree(self.pid());
        signal("TERM", &[self.pid()]);
        let until = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < until {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let alive: Vec<u32> = tree
            .into_iter()
            .filter(|p| Path::new(&format!("/proc/{p}")).exists())
            .collect();
        if !alive.is_empty() {
            signal("KILL", &alive);
        }
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

fn signal(sig: &str, pids: &[u32]) {
    let mut cmd = Command::new("kill");
    cmd.arg(format!("-{sig}"));
    for p in pids {
        cmd.arg(p.to_string());
    }
    let _ = cmd.stdout(Stdio::null()).stderr(Stdio::null()).status();
}

/// A server under test: where it listens and the process to measure.
pub struct Server {
    pub name: String,
    pub addr: SocketAddr,
    proc: Proc,
}

impl Server {
    /// The process and, for nginx, its workers.
    pub fn pids(&self) -> Vec<u32> {
        procstat::tree(self.proc.pid())
    }
}

/// Starts the backend: this bench binary again, in its backend role.
pub fn start_backend() -> (Proc, SocketAddr) {
    let exe = std::env::current_exe().expect("current exe");
    let mut child = Command::new(exe)
        .env(crate::backend::ROLE_ENV, "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the backend");
    let stdin = child.stdin.take();
    let mut line = String::new();
    let stdout = child.stdout.take().expect("backend stdout");
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("backend address");
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("backend said {line:?}"));
    (
        Proc {
            child,
            _stdin: stdin,
        },
        addr,
    )
}

/// The proxy binary: `PROXY_BIN`, or the one cargo built alongside this bench.
pub fn proxy_bin() -> PathBuf {
    std::env::var_os("PROXY_BIN")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_weborca-mtls-proxy")))
}

/// Departures from both servers' defaults, for finding out what a figure is bound by.
#[derive(Clone, Debug, Default)]
pub struct Tweaks {
    /// `ACCESS_LOG=off` and nginx's `access_log off`
    pub no_access_log: bool,
    /// more lines for proxy.conf
    pub proxy_conf: Vec<String>,
    /// nginx `listen … reuseport`: one accept queue per worker
    pub nginx_reuseport: bool,
}

/// Starts this proxy with its defaults (access log on, identity headers on,
/// CLIENT_CERT_ERRORS=page) in front of `backend`.
pub fn start_proxy(
    name: &str,
    dir: &Path,
    pki: &Pki,
    backend: SocketAddr,
    tweaks: &Tweaks,
) -> Server {
    std::fs::create_dir_all(dir).expect("proxy dir");
    let conf = dir.join("proxy.conf");
    let mut text = format!(
        "SERVER_CRT={}\nSERVER_PEM={}\nCA_CRT={}\nCA_CRL={}\nLISTEN=127.0.0.1:0\nBACKEND_URL=http://{backend}\nSHUTDOWN_GRACE=1s\n",
        pki.server_crt.display(),
        pki.server_key.display(),
        pki.ca_crt.display(),
        pki.crl.display(),
    );
    if tweaks.no_access_log {
        text.push_str("ACCESS_LOG=off\n");
    }
    for line in &tweaks.proxy_conf {
        text.push_str(line);
        text.push('\n');
    }
    std::fs::write(&conf, text).expect("proxy.conf");
    let log = dir.join("proxy.log");
    let child = Command::new(proxy_bin())
        .arg("-c")
        .arg(&conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("proxy.log"))
        .spawn()
        .expect("start the proxy (cargo build --release, or set PROXY_BIN)");
    let mut proc = Proc {
        child,
        _stdin: None,
    };
    let until = Instant::now() + START_TIMEOUT;
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(addr) = text
            .lines()
            .find_map(|l| l.split_once("listening on ").map(|(_, rest)| rest))
            .and_then(|rest| rest.split(',').next())
            .and_then(|a| a.parse().ok())
        {
            return Server {
                name: name.to_string(),
                addr,
                proc,
            };
        }
        if let Ok(Some(status)) = proc.child.try_wait() {
            panic!("the proxy exited ({status}) before listening:\n{text}");
        }
        if Instant::now() > until {
            proc.stop();
            panic!("the proxy did not listen within {START_TIMEOUT:?}:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Installs the Debian nginx package when `nginx` is not on PATH.
pub fn ensure_nginx() {
    if Command::new("nginx").arg("-v").output().is_ok() {
        return;
    }
    eprintln!("nginx not found: apt-get install -y nginx");
    let ok = Command::new("apt-get")
        .arg("update")
        .status()
        .is_ok_and(|s| s.success())
        && Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends", "nginx"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success());
    assert!(ok, "could not install nginx (needs root and apt-get)");
}

/// A free loopback port (bound, then released for nginx to take).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// nginx's variant: request and response buffering as shipped, or both off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Buffering {
    Default,
    Off,
}

/// Starts nginx with `workers` worker processes in front of `backend`: mutual
/// TLS with the same certificates and CRL, an upstream keep-alive pool, and
/// the same headers to the backend as the proxy sends.
pub fn start_nginx(
    name: &str,
    dir: &Path,
    pki: &Pki,
    backend: SocketAddr,
    workers: usize,
    buffering: Buffering,
    tweaks: &Tweaks,
) -> Server {
    std::fs::create_dir_all(dir.join("logs")).expect("nginx dir");
    let port = free_port();
    let conf = dir.join("nginx.conf");
    std::fs::write(
        &conf,
        nginx_conf(dir, pki, backend, port, workers, buffering, tweaks),
    )
    .expect("nginx.conf");
    let child = Command::new("nginx")
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(&conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("logs/stderr.log")).expect("nginx stderr"))
        .spawn()
        .expect("start nginx");
    let mut proc = Proc {
        child,
        _stdin: None,
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let until = Instant::now() + START_TIMEOUT;
    loop {
        let listening = TcpStream::connect(addr).is_ok();
        let workers_up = procstat::tree(proc.pid()).len() > workers;
        if listening && workers_up {
            return Server {
                name: name.to_string(),
                addr,
                proc,
            };
        }
        if let Ok(Some(status)) = proc.child.try_wait() {
            let err = std::fs::read_to_string(dir.join("logs/error.log")).unwrap_or_default();
            panic!("nginx exited ({status}) before listening:\n{err}");
        }
        if Instant::now() > until {
            proc.stop();
            panic!("nginx did not listen on {addr} within {START_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn nginx_conf(
    dir: &Path,
    pki: &Pki,
    backend: SocketAddr,
    port: u16,
    workers: usize,
    buffering: Buffering,
    tweaks: &Tweaks,
) -> String {
    let d = dir.display();
    let reuseport = if tweaks.nginx_reuseport {
        " reuseport"
    } else {
        ""
    };
    let access_log = if tweaks.no_access_log {
        "off".to_string()
    } else {
        format!("{d}/logs/access.log")
    };
    let buffering = match buffering {
        Buffering::Default => "",
        Buffering::Off => "proxy_request_buffering off;\n            proxy_buffering off;",
    };
    // root runs the workers as root, so they can write the temp folders here
    let user = if is_root() { "user root;" } else { "" };
    format!(
        r#"# generated by benches/proxy (weborca-mtls-proxy vs nginx)
{user}
worker_processes {workers};
worker_rlimit_nofile 16384;
daemon off;
pid {d}/nginx.pid;
error_log {d}/logs/error.log warn;
events {{
    worker_connections 8192;
}}
http {{
    access_log {access_log};
    client_body_temp_path {d}/client_body_temp;
    proxy_temp_path {d}/proxy_temp;
    fastcgi_temp_path {d}/fastcgi_temp;
    uwsgi_temp_path {d}/uwsgi_temp;
    scgi_temp_path {d}/scgi_temp;
    # as the proxy: no body size limit, connections kept for any number of requests
    client_max_body_size 0;
    keepalive_requests 1000000;
    keepalive_timeout 90s;
    upstream backend {{
        server {backend};
        keepalive 256;
        keepalive_requests 1000000;
        keepalive_timeout 60s;
    }}
    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ''      '';
    }}
    server {{
        listen 127.0.0.1:{port} ssl http2{reuseport};
        ssl_certificate {crt};
        ssl_certificate_key {key};
        ssl_client_certificate {ca};
        ssl_verify_client on;
        ssl_crl {crl};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_ciphers ECDHE+AESGCM:ECDHE+CHACHA20;
        ssl_session_cache shared:SSL:10m;
        ssl_session_tickets on;
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Forwarded-Proto https;
            proxy_set_header X-Forwarded-Host $host;
            proxy_set_header X-SSL-Client-Verify $ssl_client_verify;
            proxy_set_header X-SSL-Client-S-DN $ssl_client_s_dn;
            proxy_set_header X-SSL-Client-I-DN $ssl_client_i_dn;
            proxy_set_header X-SSL-Client-Serial $ssl_client_serial;
            proxy_set_header X-SSL-Client-Fingerprint $ssl_client_fingerprint;
            proxy_set_header X-SSL-Client-Not-After $ssl_client_v_end;
            proxy_set_header Client-Cert $ssl_client_escaped_cert;
            proxy_read_timeout 300s;
            {buffering}
        }}
    }}
}}
"#,
        crt = pki.server_crt.display(),
        key = pki.server_key.display(),
        ca = pki.ca_crt.display(),
        crl = pki.crl.display(),
    )
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .is_some_and(|s| s.trim() == "0")
}
