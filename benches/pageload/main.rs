//! `cargo bench --bench pageload`: the page load a clinic feels. Headless
//! Chromium loads one WebORCA-shaped page (60 static assets of 2–200 KiB
//! and 5 API calls, site.rs) three ways: through this proxy (the release
//! binary, its defaults) and through nginx doing the same work (mutual TLS,
//! HTTP/2, the same identity headers; benches/proxy/servers.rs), both over
//! HTTP/2, and direct to the plain-HTTP/1.1 backend. Each load has a fresh
//! profile and the client certificate imported fresh; the ways take turns.
//!
//! Options after `--`: `--loads N` (30 per way). Without Chromium (or
//! certutil, pk12util, unshare, mount) it prints why it skips and exits 0.
#![forbid(unsafe_code)]

mod backend;
mod browser;
#[path = "../../tests/util/cdp.rs"]
#[allow(dead_code)]
mod cdp;
#[path = "../../tests/util/chromium.rs"]
#[allow(dead_code)]
mod chromium;
#[path = "../proxy/pki.rs"]
#[allow(dead_code)]
mod pki;
#[path = "../proxy/procstat.rs"]
#[allow(dead_code)]
mod procstat;
mod report;
#[path = "../proxy/servers.rs"]
#[allow(dead_code)]
mod servers;
mod site;

use std::path::Path;
use std::time::{Duration, Instant};

use browser::Loaded;
use servers::{Buffering, Tweaks};

/// Loads per way unless `--loads` says otherwise.
const LOADS: usize = 30;
/// The whole measurement stops here, reporting the loads it has.
const RUN_LIMIT: Duration = Duration::from_secs(40 * 60);
/// Revoked serials in the CA's CRL, as benches/proxy makes it.
const REVOKED: usize = 10_000;
/// Tools the loads need; without them the bench skips.
const TOOLS: [&str; 5] = ["chromium", "certutil", "pk12util", "unshare", "mount"];

fn main() {
    if std::env::var_os(backend::ROLE_ENV).is_some() {
        return backend::run();
    }
    let mut loads = LOADS;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--loads" => {
                loads = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|&n| n > 0)
                    .expect("--loads takes a positive number")
            }
            "--bench" => {} // cargo bench passes it
            other => panic!("unknown option {other:?} (known: --loads N)"),
        }
    }
    if let Some(missing) = TOOLS.iter().find(|t| !on_path(t)) {
        println!(
            "pageload: skipped: {missing} not found (apt-get install -y --no-install-recommends chromium libnss3-tools)"
        );
        return;
    }
    if let Err(why) = browser::can_write_policy() {
        println!(
            "pageload: skipped: {why}; Chromium's certificate policy needs root, as the browser tests do"
        );
        return;
    }
    servers::ensure_nginx();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(run(loads));
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(tool).is_file()))
}

/// One way into the backend.
struct Way {
    name: &'static str,
    url: String,
    /// the protocol every resource must have come over
    protocol: &'static str,
    loads: Vec<Loaded>,
}

async fn run(loads: usize) {
    let dir = tempfile::tempdir().expect("temporary folder");
    let pki = pki::make(&dir.path().join("pki"), pki::Alg::Rsa2048, REVOKED);
    let files = browser::client_files(dir.path(), &pki);
    let (_backend, backend_addr) = servers::start_backend();
    let tweaks = Tweaks::default();
    let proxy = servers::start_proxy(
        "proxy",
        &dir.path().join("proxy"),
        &pki,
        backend_addr,
        &tweaks,
    );
    // as many nginx workers as the proxy has threads (WORKERS=auto: one per core)
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let nginx = servers::start_nginx(
        "nginx",
        &dir.path().join("nginx"),
        &pki,
        backend_addr,
        workers,
        Buffering::Default,
        &tweaks,
    );
    let ports = [proxy.addr.port(), nginx.addr.port()];
    let mut ways = [
        Way {
            name: "proxy (HTTP/2, mTLS)",
            url: format!("https://127.0.0.1:{}/", proxy.addr.port()),
            protocol: "h2",
            loads: Vec::new(),
        },
        Way {
            name: "nginx (HTTP/2, mTLS)",
            url: format!("https://127.0.0.1:{}/", nginx.addr.port()),
            protocol: "h2",
            loads: Vec::new(),
        },
        Way {
            name: "direct (HTTP/1.1, no TLS)",
            url: format!("http://{backend_addr}/"),
            protocol: "http/1.1",
            loads: Vec::new(),
        },
    ];
    println!(
        "machine: {}; {}; proxy threads = nginx workers = {workers}; load average {}",
        machine(),
        nginx_version(),
        loadavg()
    );
    println!(
        "page: 1 HTML + {} assets ({} KiB) + 5 API calls; {loads} loads per way, ways in turn",
        site::ASSETS,
        site_bytes() / 1024
    );
    println!(
        "direct is plain HTTP/1.1 (the backend has no TLS): up to 6 connections, no handshake"
    );

    // one load each, not counted: checks every way works and warms the servers' upstream pools
    let started = Instant::now();
    for way in &ways {
        let l = one_load(dir.path(), "warm", way, &ports, &files).await;
        println!("warm-up {}: {:.0} ms, {}", way.name, l.page_ms, l.protocols);
    }
    let mut done = 0;
    'outer: for i in 0..loads {
        // rotate the order (ABC, BCA, CAB) so no way always goes first
        for k in 0..ways.len() {
            if started.elapsed() > RUN_LIMIT {
                println!("stopped after {RUN_LIMIT:?}: {done} complete rounds");
                break 'outer;
            }
            let w = (i + k) % ways.len();
            let l = one_load(dir.path(), &format!("{i}-{w}"), &ways[w], &ports, &files).await;
            println!(
                "load {:2} {:26} page {:6.0} ms  wall {:6.0} ms  DOMContentLoaded {:5.0}  load {:6.0}  load average {}",
                i + 1,
                ways[w].name,
                l.page_ms,
                l.wall_ms,
                l.dcl_ms,
                l.load_ms,
                loadavg()
            );
            ways[w].loads.push(l);
        }
        done += 1;
    }
    for w in &mut ways {
        w.loads.truncate(done);
    }
    println!("\nload average at the end {}", loadavg());
    let summary: Vec<report::WayLoads> = ways
        .iter()
        .map(|w| report::WayLoads {
            name: w.name,
            loads: &w.loads,
        })
        .collect();
    if done > 0 {
        report::print(&summary, 2);
    }
}

/// One load of `way` in a fresh HOME (NSS db) and profile, checked to have
/// fetched everything over the way's protocol and had all API answers.
async fn one_load(
    dir: &Path,
    tag: &str,
    way: &Way,
    ports: &[u16],
    files: &browser::ClientFiles,
) -> Loaded {
    let home = dir.join(format!("home-{tag}"));
    let home = browser::fresh_home(&home, files).await;
    let l = browser::load(&home, &way.url, ports).await;
    // Chromium has been killed; its profile goes now so 90 of them do not pile up
    let _ = std::fs::remove_dir_all(&home);
    assert!(l.ok, "{}: an API answer was missing or not 00", way.name);
    assert_eq!(
        l.protocols, way.protocol,
        "{}: not every resource came over {}",
        way.name, way.protocol
    );
    assert!(
        l.resources as usize >= site::ASSETS + site::APIS.len(),
        "{}: only {} resources fetched",
        way.name,
        l.resources
    );
    assert_eq!(
        l.scripts as usize,
        site::ASSETS * 2 / 5,
        "{}: scripts run",
        way.name
    );
    l
}

fn site_bytes() -> usize {
    site::build().values().map(|r| r.body.len()).sum()
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| "?".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let chromium = std::process::Command::new("chromium")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    format!("{cpu}, {cores} cores; {chromium}")
}

fn nginx_version() -> String {
    std::process::Command::new("nginx")
        .arg("-v")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stderr).trim().to_string())
        .unwrap_or_default()
}
