//! `--only oha`: the keep-alive figures again with `oha`, an HTTP load
//! generator this project did not write, as a second opinion on the built-in
//! one (load.rs).
//!
//! Each repetition starts a fresh proxy and nginx (the same nginx config as
//! the other figures: the same identity headers, `Client-Cert` from
//! `$ssl_client_escaped_cert`), both with the access log off, and runs oha
//! against each, A/B interleaved: HTTP/1.1 over 32 keep-alive connections,
//! and HTTP/2 over 4 connections × 8 streams (the built-in generator's
//! shape), each for `--secs` (`-z`), presenting the client certificate and
//! verifying the server's against the CA. oha's JSON output gives the
//! answers and the p99; the server's CPU per request is read from /proc as
//! for the other figures.
//!
//! oha is found through `OHA`, then PATH, then /work/tools/oha/bin/oha;
//! without it the group says it was skipped and why.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::pki::Pki;
use crate::procstat;
use crate::report::Results;
use crate::report::{NGINX, PROXY};
use crate::servers::{self, Server};
use crate::{CONNS, H2_CONNS, H2_STREAMS, SETTLE, SLACK};

/// Where `cargo install oha --root /work/tools/oha` puts it.
const FALLBACK: &str = "/work/tools/oha/bin/oha";

/// The oha binary, or `None` when there is none (or `OHA` names no file).
pub fn find() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("OHA").filter(|p| !p.is_empty()) {
        // a wrong OHA is reported as not found rather than tried elsewhere
        return Some(PathBuf::from(p)).filter(|p| p.is_file());
    }
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("oha"))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| Some(PathBuf::from(FALLBACK)).filter(|p| p.is_file()))
}

/// oha's version line, for the record.
pub fn version(oha: &Path) -> String {
    Command::new(oha)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|e| format!("{} --version failed: {e}", oha.display()))
}

/// What one oha run measured.
struct Run {
    /// 200 answers per second
    rps: f64,
    /// 200 answers
    ok: u64,
    p99_ms: f64,
    /// other answers and errors, by what oha calls them (deadline aborts left out)
    errors: Vec<String>,
}

/// Runs oha against `s` for `secs`; HTTP/2 when `h2`.
fn run(oha: &Path, s: &Server, pki: &Pki, h2: bool, secs: f64) -> Result<Run, String> {
    let dir = pki.ca_crt.parent().expect("pki dir");
    let mut cmd = Command::new(oha);
    cmd.args(["--no-tui", "--output-format", "json", "-z"])
        .arg(format!("{secs}s"))
        .arg("--cacert")
        .arg(&pki.ca_crt)
        .arg("--cert")
        .arg(dir.join("user1.crt"))
        .arg("--key")
        .arg(dir.join("user1.pem"));
    if h2 {
        cmd.args(["--http2", "-c"])
            .arg(H2_CONNS.to_string())
            .arg("-p")
            .arg(H2_STREAMS.to_string());
    } else {
        cmd.arg("-c").arg(CONNS.to_string());
    }
    cmd.arg(format!("https://127.0.0.1:{}/", s.addr.port()));
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("could not start {}: {e}", oha.display()))?;
    let pid = child.id();
    // the bound: oha's own -z, plus SLACK; past it oha is killed
    let until = Instant::now() + Duration::from_secs_f64(secs) + SLACK;
    let waiter = std::thread::spawn(move || child.wait_with_output());
    while !waiter.is_finished() {
        if Instant::now() > until {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            let _ = waiter.join();
            return Err(format!("oha ran past {:?}", until.elapsed()));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = waiter
        .join()
        .map_err(|_| "oha's waiter panicked".to_string())?
        .map_err(|e| format!("oha: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "oha exited {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    parse(&out.stdout)
}

/// Reads oha's JSON (1.x: `summary.total` in seconds, `latencyPercentiles`
/// in seconds, `statusCodeDistribution`, `errorDistribution`).
fn parse(json: &[u8]) -> Result<Run, String> {
    let v: serde_json::Value =
        serde_json::from_slice(json).map_err(|e| format!("oha's JSON: {e}"))?;
    let secs = v["summary"]["total"]
        .as_f64()
        .ok_or("oha's JSON has no summary.total")?;
    let mut ok = 0;
    let mut errors = Vec::new();
    if let Some(codes) = v["statusCodeDistribution"].as_object() {
        for (code, n) in codes {
            let n = n.as_u64().unwrap_or(0);
            if code == "200" {
                ok = n;
            } else {
                errors.push(format!("{n} × status {code}"));
            }
        }
    }
    if let Some(errs) = v["errorDistribution"].as_object() {
        for (what, n) in errs {
            // HTTP/1.1 requests in flight at the deadline: expected, not counted
            if what != "aborted due to deadline" {
                errors.push(format!("{} × {what}", n.as_u64().unwrap_or(0)));
            }
        }
    }
    let p99 = v["latencyPercentiles"]["p99"]
        .as_f64()
        .ok_or("oha's JSON has no latencyPercentiles.p99 (no answer?)")?;
    Ok(Run {
        rps: ok as f64 / secs.max(1e-9),
        ok,
        p99_ms: p99 * 1e3,
        errors,
    })
}

/// Everything one repetition's oha figures need.
pub struct Setup<'a> {
    pub oha: &'a Path,
    pub rep: usize,
    pub dir: &'a Path,
    pub pki: &'a Pki,
    pub backend: std::net::SocketAddr,
    pub workers: usize,
    pub tweaks: &'a servers::Tweaks,
    pub secs: f64,
}

/// One repetition: a fresh pair with the access log off, each measured with
/// oha over HTTP/1.1 and HTTP/2, in A/B order.
pub fn repetition(s: &Setup, r: &mut Results) {
    eprintln!("  -- oha ({})", s.oha.display());
    let mut tweaks = s.tweaks.clone();
    tweaks.no_access_log = true;
    let proxy = servers::start_proxy(PROXY, &s.dir.join("oha-proxy"), s.pki, s.backend, &tweaks);
    let nginx = servers::start_nginx(
        NGINX,
        &s.dir.join("oha-nginx"),
        s.pki,
        s.backend,
        s.workers,
        servers::Buffering::Default,
        &tweaks,
    );
    let pair = crate::ordered(s.rep, &proxy, &nginx);
    // warm-up: code paths, pools, allocator
    for server in pair {
        let _ = run(s.oha, server, s.pki, false, 1.0);
    }
    for (group, h2) in [("oha_h1", false), ("oha_h2", true)] {
        for server in pair {
            let cpu0 = procstat::cpu_secs(&server.pids());
            match run(s.oha, server, s.pki, h2, s.secs) {
                Ok(m) => {
                    let cpu = procstat::cpu_secs(&server.pids()) - cpu0;
                    let name = crate::column(server);
                    r.add(&format!("{group}_rps"), name, m.rps);
                    r.add(&format!("{group}_p99"), name, m.p99_ms);
                    r.add(
                        &format!("{group}_cpu"),
                        name,
                        cpu * 1e6 / m.ok.max(1) as f64,
                    );
                    if !m.errors.is_empty() {
                        eprintln!("    !! {group} on {}: {}", server.name, m.errors.join(", "));
                    }
                }
                Err(e) => eprintln!("    !! {group} on {}: {e}", server.name),
            }
            std::thread::sleep(SETTLE);
        }
    }
}
