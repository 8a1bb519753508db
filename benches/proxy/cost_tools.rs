//! The counting tools of the cost figures (benches/proxy/cost.rs): a server
//! started under `valgrind --tool=callgrind` or `strace -c -f`, stopped with
//! SIGTERM so the tool writes its count, and the counts read back; and the
//! per-function difference of two callgrind profiles.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::pki::Pki;
use crate::procstat;

/// How long a server may take to listen under a tool (valgrind is slow to start).
const START_TIMEOUT: Duration = Duration::from_secs(180);
/// How long a server may take to exit under a tool after SIGTERM (callgrind
/// writes its profile then).
const STOP_TIMEOUT: Duration = Duration::from_secs(180);

/// What counts a run's cost.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tool {
    /// user-space instructions, every thread
    Callgrind,
    /// system calls, every thread
    Strace,
}

impl Tool {
    pub fn name(self) -> &'static str {
        match self {
            Tool::Callgrind => "callgrind",
            Tool::Strace => "strace",
        }
    }

    pub fn unit(self) -> &'static str {
        match self {
            Tool::Callgrind => "instructions",
            Tool::Strace => "system calls",
        }
    }

    /// The command line that runs `program` under this tool, its output in `dir`.
    fn wrap(self, dir: &Path, program: &Path) -> Command {
        match self {
            Tool::Callgrind => {
                let mut c = Command::new("valgrind");
                c.arg("--tool=callgrind")
                    .arg(format!(
                        "--callgrind-out-file={}",
                        dir.join("callgrind.out").display()
                    ))
                    .arg(format!("--log-file={}", dir.join("valgrind.log").display()))
                    .arg(program);
                c
            }
            Tool::Strace => {
                let mut c = Command::new("strace");
                c.arg("-f")
                    .arg("-c")
                    .arg("-o")
                    .arg(dir.join("strace.txt"))
                    .arg(program);
                c
            }
        }
    }
}

/// Fails early, naming the package, when a tool is missing.
pub fn require_tools(tools: &[Tool]) {
    for t in tools {
        let (cmd, arg) = match t {
            Tool::Callgrind => ("valgrind", "--version"),
            Tool::Strace => ("strace", "-V"),
        };
        let ok = Command::new(cmd)
            .arg(arg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "{cmd} is needed for the cost figures: apt-get install -y {cmd}"
        );
    }
}

/// What a tool counted over one run.
#[derive(Debug, Default)]
pub struct Count {
    /// instructions, or system calls
    pub total: f64,
    /// system calls by name (strace only)
    pub by_name: BTreeMap<String, f64>,
}

/// A server running under a tool.
pub struct Traced {
    pub addr: SocketAddr,
    tool: Tool,
    dir: PathBuf,
    child: Child,
}

impl Traced {
    /// The server's own process: valgrind runs it in its own process,
    /// strace as its child.
    fn server_pid(&self) -> Option<u32> {
        match self.tool {
            Tool::Callgrind => Some(self.child.id()),
            Tool::Strace => procstat::tree(self.child.id()).get(1).copied(),
        }
    }

    /// Stops the server with SIGTERM and reads what the tool counted.
    pub fn finish(mut self) -> Count {
        if let Some(pid) = self.server_pid() {
            kill("TERM", pid);
        }
        let until = Instant::now() + STOP_TIMEOUT;
        let status = loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                break s;
            }
            assert!(
                Instant::now() < until,
                "the server under {} did not exit within {STOP_TIMEOUT:?} of SIGTERM",
                self.tool.name()
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        let _ = status;
        match self.tool {
            Tool::Callgrind => Count {
                total: callgrind_total(&self.dir.join("callgrind.out"))
                    - start_up_entropy(&self.dir.join("callgrind.out")),
                by_name: BTreeMap::new(),
            },
            Tool::Strace => strace_counts(&self.dir.join("strace.txt")),
        }
    }
}

impl Drop for Traced {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            for pid in procstat::tree(self.child.id()) {
                kill("KILL", pid);
            }
            let _ = self.child.wait();
        }
    }
}

fn kill(sig: &str, pid: u32) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// This proxy with its defaults, one worker thread and no access log.
pub fn start_proxy(
    tool: Tool,
    dir: &Path,
    pki: &Pki,
    backend: SocketAddr,
    extra: &[String],
) -> Traced {
    let conf = dir.join("proxy.conf");
    let mut text = format!(
        "SERVER_CRT={}\nSERVER_PEM={}\nCA_CRT={}\nCA_CRL={}\nLISTEN=127.0.0.1:0\nBACKEND_URL=http://{backend}\nSHUTDOWN_GRACE=1s\nWORKERS=1\nACCESS_LOG=off\n",
        pki.server_crt.display(),
        pki.server_key.display(),
        pki.ca_crt.display(),
        pki.crl.display(),
    );
    for line in extra {
        text.push_str(line);
        text.push('\n');
    }
    std::fs::write(&conf, text).expect("proxy.conf");
    let log = dir.join("proxy.log");
    let mut cmd = tool.wrap(dir, &crate::servers::proxy_bin());
    let child = cmd
        .arg("-c")
        .arg(&conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("proxy.log"))
        .spawn()
        .expect("start the proxy under the tool");
    let mut traced = Traced {
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        tool,
        dir: dir.to_path_buf(),
        child,
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
            traced.addr = addr;
            return traced;
        }
        if let Ok(Some(status)) = traced.child.try_wait() {
            panic!("the proxy exited ({status}) before listening:\n{text}");
        }
        assert!(
            Instant::now() < until,
            "the proxy did not listen within {START_TIMEOUT:?}:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// nginx as one process in front of `backend`; with `headers`, sending the
/// same headers to the backend as the proxy does.
pub fn start_nginx(
    tool: Tool,
    dir: &Path,
    pki: &Pki,
    backend: SocketAddr,
    headers: bool,
) -> Traced {
    std::fs::create_dir_all(dir.join("logs")).expect("nginx dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let conf = dir.join("nginx.conf");
    std::fs::write(&conf, nginx_conf(dir, pki, backend, port, headers)).expect("nginx.conf");
    let nginx = which("nginx");
    let mut cmd = tool.wrap(dir, &nginx);
    let child = cmd
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(&conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("logs/stderr.log")).expect("nginx stderr"))
        .spawn()
        .expect("start nginx under the tool");
    let mut traced = Traced {
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        tool,
        dir: dir.to_path_buf(),
        child,
    };
    let until = Instant::now() + START_TIMEOUT;
    // One connection is made (and closed) here, the same in every run.
    while TcpStream::connect(traced.addr).is_err() {
        if let Ok(Some(status)) = traced.child.try_wait() {
            let err = std::fs::read_to_string(dir.join("logs/error.log")).unwrap_or_default();
            panic!("nginx exited ({status}) before listening:\n{err}");
        }
        assert!(
            Instant::now() < until,
            "nginx did not listen within {START_TIMEOUT:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    traced
}

/// The full path of a program on PATH (valgrind and strace want one).
fn which(program: &str) -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join(program))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| PathBuf::from(format!("/usr/sbin/{program}")))
}

fn nginx_conf(dir: &Path, pki: &Pki, backend: SocketAddr, port: u16, headers: bool) -> String {
    let d = dir.display();
    let user = if is_root() { "user root;" } else { "" };
    let proxy_headers = if headers {
        r#"proxy_set_header Connection $connection_upgrade;
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
            proxy_set_header Client-Cert $ssl_client_escaped_cert;"#
    } else {
        // the least a keep-alive upstream needs: no `Connection: close`
        r#"proxy_set_header Connection "";
            proxy_set_header Host $host;"#
    };
    format!(
        r#"# generated by benches/proxy --cost (weborca-mtls-proxy vs nginx)
{user}
master_process off;
worker_processes 1;
daemon off;
pid {d}/nginx.pid;
error_log {d}/logs/error.log warn;
events {{
    worker_connections 1024;
}}
http {{
    access_log off;
    client_body_temp_path {d}/client_body_temp;
    proxy_temp_path {d}/proxy_temp;
    fastcgi_temp_path {d}/fastcgi_temp;
    uwsgi_temp_path {d}/uwsgi_temp;
    scgi_temp_path {d}/scgi_temp;
    client_max_body_size 0;
    keepalive_requests 1000000;
    keepalive_timeout 90s;
    upstream backend {{
        server {backend};
        keepalive 16;
        keepalive_requests 1000000;
        keepalive_timeout 60s;
    }}
    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ''      '';
    }}
    server {{
        listen 127.0.0.1:{port} ssl http2;
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
            {proxy_headers}
            proxy_read_timeout 300s;
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

/// The `totals:` (or `summary:`) line of a callgrind profile.
fn callgrind_total(file: &Path) -> f64 {
    let text = std::fs::read_to_string(file)
        .unwrap_or_else(|e| panic!("no callgrind profile {}: {e}", file.display()));
    text.lines()
        .filter_map(|l| {
            l.strip_prefix("totals:")
                .or_else(|| l.strip_prefix("summary:"))
        })
        .filter_map(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .next_back()
        .unwrap_or_else(|| panic!("no totals in {}", file.display()))
}

/// System calls by name from `strace -c` output
/// (`% time  seconds  usecs/call  calls  errors  syscall`).
fn strace_counts(file: &Path) -> Count {
    let text = std::fs::read_to_string(file)
        .unwrap_or_else(|e| panic!("no strace summary {}: {e}", file.display()));
    let mut count = Count::default();
    for line in text.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let (Some(name), Some(calls)) = (cols.last(), cols.get(3)) else {
            continue;
        };
        let Ok(calls) = calls.parse::<f64>() else {
            continue;
        };
        if *name == "total" || cols[0].parse::<f64>().is_err() {
            continue;
        }
        count.total += calls;
        *count.by_name.entry(name.to_string()).or_default() += calls;
    }
    count
}

/// `(b − a) / 2n` for each name.
pub fn per_request(
    a: &BTreeMap<String, f64>,
    b: &BTreeMap<String, f64>,
    n: u64,
) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for (name, vb) in b {
        let va = a.get(name).copied().unwrap_or(0.0);
        out.insert(name.clone(), (vb - va) / (2 * n) as f64);
    }
    for (name, va) in a {
        out.entry(name.clone()).or_insert(-va / (2 * n) as f64);
    }
    out
}

/// What AWS-LC spends once per process seeding its random generator from
/// CPU timing jitter (`tree_jitter_initialize_once`, inclusive): ~420 M
/// instructions that vary by ±1 M from run to run, so ±1.5 k "per request"
/// at N = 300 if counted. It is start-up, and no request's cost. (nginx's
/// OpenSSL seeds from the kernel: nothing to take away there.)
fn start_up_entropy(file: &Path) -> f64 {
    functions(file, true)
        .iter()
        .filter(|(name, _)| name.contains("tree_jitter_initialize_once"))
        .map(|(_, ir)| *ir)
        .sum()
}

/// Self (or inclusive) instructions by function (`callgrind_annotate`).
fn functions(file: &Path, inclusive: bool) -> BTreeMap<String, f64> {
    let out = Command::new("callgrind_annotate")
        .arg(format!(
            "--inclusive={}",
            if inclusive { "yes" } else { "no" }
        ))
        .arg("--threshold=100")
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("callgrind_annotate {}: {e}", file.display()));
    let text = String::from_utf8_lossy(&out.stdout);
    let mut map = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim_start();
        let Some((num, rest)) = line.split_once(' ') else {
            continue;
        };
        let Ok(ir) = num.replace(',', "").parse::<f64>() else {
            continue;
        };
        // "(12.34%)  file:function [object]"
        let rest = rest.trim_start();
        let rest = match rest.strip_prefix('(') {
            Some(r) => r.split_once(')').map_or(r, |(_, after)| after),
            None => rest,
        };
        let name = rest.trim();
        if name.is_empty() || name == "PROGRAM TOTALS" {
            continue;
        }
        *map.entry(name.to_string()).or_default() += ir;
    }
    map
}

/// The `top` functions by self instructions per request between the profile
/// of n requests (`a`) and of 3n (`b`), as a Markdown table.
pub fn breakdown(a: &Path, b: &Path, n: u64, top: usize) -> String {
    if !a.exists() || !b.exists() {
        return format!("(no profiles {} and {})\n", a.display(), b.display());
    }
    // the jitter seeding's own functions (start_up_entropy) are not a request's
    let self_costs = |f: &Path| {
        let mut map = functions(f, false);
        map.retain(|name, _| !name.contains("jent_"));
        map
    };
    let diff = per_request(&self_costs(a), &self_costs(b), n);
    let total: f64 = diff.values().sum();
    let mut rows: Vec<(&String, &f64)> = diff.iter().collect();
    rows.sort_by(|x, y| y.1.total_cmp(x.1));
    let mut text = format!(
        "| instructions per request | share | function |\n|---:|---:|---|\n| {total:.0} | 100 % | all |\n"
    );
    for (name, ir) in rows.into_iter().take(top) {
        let name = name.replace('|', "\\|");
        text.push_str(&format!(
            "| {ir:.0} | {:.1} % | `{name}` |\n",
            100.0 * ir / total
        ));
    }
    text
}
