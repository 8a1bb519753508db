//! `cargo bench --bench proxy -- --cost`: what one keep-alive request costs
//! each server, in figures the neighbours on a shared machine cannot move.
//!
//! - user-space instructions per request, counted by `valgrind
//!   --tool=callgrind` (every thread of the server);
//! - system calls per request, counted by `strace -c -f`.
//!
//! Each server is started under the tool, sent N requests over one
//! keep-alive connection with the client certificate, and stopped; then
//! started again and sent 3N. `(count(3N) − count(N)) / 2N` is the cost of
//! one request with start-up, the handshake and shutdown cancelled out.
//!
//! The servers, each in front of the same plain-HTTP backend with the same
//! certificates: this proxy with its defaults but `WORKERS=1` and
//! `ACCESS_LOG=off`; nginx as one process (`master_process off;
//! worker_processes 1;`, access log off) sending no identity headers
//! (`nginx-min`: what a clinic that picks nginx would configure) and sending
//! the same headers as the proxy (`nginx-hdr`, `$ssl_client_escaped_cert` for
//! Client-Cert). The request shapes: `GET /` over HTTP/1.1, the same over
//! HTTP/2 (one stream at a time), and a 64 KiB `POST /upload` over HTTP/1.1.
//!
//! Options (after `--cost`): `--n N` (requests of the short run, default
//! 300), `--reps R` (default 2), `--only h1,h2,upload`, `--servers
//! proxy,nginx-min,nginx-hdr`, `--tools callgrind,strace`, `--out DIR` (the
//! profiles of the last repetition and their per-function breakdown, default
//! /tmp/weborca-cost), `--proxy-conf KEY=VALUE`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::cost_tools::{self, Tool};
use crate::load::{self, Resume, Who};
use crate::pki::{self, Alg, Pki};
use crate::servers;

/// Revoked serials in the CRL: a start-up cost only, cancelled out; small so
/// that start-up under valgrind stays short.
const COST_CRL_SIZE: usize = 100;
/// Bound on one server's whole measured run (start, requests, stop).
const RUN_BOUND: Duration = Duration::from_secs(900);
/// Body of one upload request.
const UPLOAD_BYTES: usize = 64 * 1024;

struct CostOpts {
    n: u64,
    reps: usize,
    modes: Vec<String>,
    servers: Vec<String>,
    tools: Vec<Tool>,
    out: PathBuf,
    proxy_conf: Vec<String>,
}

fn parse() -> CostOpts {
    let list = |s: &str| s.split(',').map(str::to_string).collect::<Vec<_>>();
    let mut o = CostOpts {
        n: 300,
        reps: 2,
        modes: list("h1,h2,upload"),
        servers: list("proxy,nginx-min,nginx-hdr"),
        tools: vec![Tool::Callgrind, Tool::Strace],
        out: PathBuf::from("/tmp/weborca-cost"),
        proxy_conf: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().unwrap_or_else(|| panic!("{a} needs a value"));
        match a.as_str() {
            "--bench" | "--cost" => {}
            "--n" => o.n = val().parse().expect("--n N"),
            "--reps" => o.reps = val().parse().expect("--reps R"),
            "--only" => o.modes = list(&val()),
            "--servers" => o.servers = list(&val()),
            "--tools" => {
                o.tools = list(&val())
                    .iter()
                    .map(|t| match t.as_str() {
                        "callgrind" => Tool::Callgrind,
                        "strace" => Tool::Strace,
                        other => panic!("--tools: unknown tool {other}"),
                    })
                    .collect()
            }
            "--out" => o.out = PathBuf::from(val()),
            "--proxy-conf" => o.proxy_conf.push(val()),
            other => panic!("unknown --cost option {other}; see benches/proxy/cost.rs"),
        }
    }
    o
}

/// The request shape of one figure.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    H1,
    H2,
    Upload,
}

impl Mode {
    fn from(name: &str) -> Mode {
        match name {
            "h1" => Mode::H1,
            "h2" => Mode::H2,
            "upload" => Mode::Upload,
            other => panic!("--only: unknown request shape {other} (h1, h2, upload)"),
        }
    }

    fn label(self) -> &'static str {
        match self {
            Mode::H1 => "keep-alive HTTP/1.1 GET",
            Mode::H2 => "keep-alive HTTP/2 GET, one stream at a time",
            Mode::Upload => "keep-alive HTTP/1.1 POST of 64 KiB",
        }
    }

    /// Requests of the short run: an upload costs tens of times a GET.
    fn n(self, n: u64) -> u64 {
        if self == Mode::Upload {
            (n / 3).max(10)
        } else {
            n
        }
    }
}

/// Runs the cost figures and prints their table.
pub fn run() {
    let opts = parse();
    servers::ensure_nginx();
    cost_tools::require_tools(&opts.tools);
    std::fs::create_dir_all(&opts.out).expect("--out folder");
    let tmp = tempfile::Builder::new()
        .prefix("weborca-cost-")
        .tempdir()
        .expect("temp dir");
    eprintln!("making the PKI (RSA-2048, a CRL of {COST_CRL_SIZE} serials)");
    let rsa = pki::make(&tmp.path().join("pki"), Alg::Rsa2048, COST_CRL_SIZE);
    let (_backend, backend) = servers::start_backend();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let t0 = Instant::now();
    // (tool, mode, server) -> per-repetition cost per request
    let mut figures: BTreeMap<(String, String, String), Vec<f64>> = BTreeMap::new();
    let mut syscalls: BTreeMap<(String, String), BTreeMap<String, f64>> = BTreeMap::new();
    for rep in 0..opts.reps {
        for tool in &opts.tools {
            for mode_name in &opts.modes {
                let mode = Mode::from(mode_name);
                let n = mode.n(opts.n);
                for server in &opts.servers {
                    eprintln!(
                        "== rep {} {} {mode_name} {server}: {n} and {} requests ({:.0} s so far)",
                        rep + 1,
                        tool.name(),
                        3 * n,
                        t0.elapsed().as_secs_f64()
                    );
                    let dir = tmp
                        .path()
                        .join(format!("r{rep}-{}-{mode_name}-{server}", tool.name()));
                    let mut counts = Vec::new();
                    for (i, requests) in [n, 3 * n].into_iter().enumerate() {
                        let run_dir = dir.join(format!("n{requests}"));
                        let count = rt.block_on(measure(
                            &opts, *tool, mode, server, &rsa, backend, &run_dir, requests,
                        ));
                        if rep + 1 == opts.reps && *tool == Tool::Callgrind {
                            let kept = opts
                                .out
                                .join(format!("{mode_name}-{server}-{}.callgrind", ["n", "3n"][i]));
                            let _ = std::fs::copy(run_dir.join("callgrind.out"), &kept);
                        }
                        counts.push(count);
                    }
                    let per = (counts[1].total - counts[0].total) / (2 * n) as f64;
                    eprintln!(
                        "   {} per request: {per:.1} ({} and {})",
                        tool.unit(),
                        counts[0].total,
                        counts[1].total
                    );
                    figures
                        .entry((tool.name().into(), mode_name.clone(), server.clone()))
                        .or_default()
                        .push(per);
                    if *tool == Tool::Strace && rep + 1 == opts.reps {
                        let by_call =
                            cost_tools::per_request(&counts[0].by_name, &counts[1].by_name, n);
                        syscalls.insert((mode_name.clone(), server.clone()), by_call);
                    }
                }
            }
        }
    }
    if opts.tools.contains(&Tool::Callgrind) {
        for mode in &opts.modes {
            for server in &opts.servers {
                let n = Mode::from(mode).n(opts.n);
                let a = opts.out.join(format!("{mode}-{server}-n.callgrind"));
                let b = opts.out.join(format!("{mode}-{server}-3n.callgrind"));
                let text = cost_tools::breakdown(&a, &b, n, 40);
                let file = opts.out.join(format!("{mode}-{server}.functions.txt"));
                std::fs::write(&file, &text).expect("breakdown file");
                if server == "proxy" && mode == "h1" {
                    println!(
                        "\nwhere the proxy's instructions per HTTP/1.1 request go (top 40 functions, self cost):\n{text}"
                    );
                }
            }
        }
        println!(
            "per-function breakdowns and the profiles: {}",
            opts.out.display()
        );
    }
    print_table(&opts, &figures, &syscalls);
    eprintln!("done in {:.0} s", t0.elapsed().as_secs_f64());
}

/// Starts `server` under `tool`, sends `requests`, stops it; the tool's count.
#[allow(clippy::too_many_arguments)]
async fn measure(
    opts: &CostOpts,
    tool: Tool,
    mode: Mode,
    server: &str,
    pki: &Pki,
    backend: SocketAddr,
    dir: &Path,
    requests: u64,
) -> cost_tools::Count {
    std::fs::create_dir_all(dir).expect("run dir");
    let started = Instant::now();
    let traced = match server {
        "proxy" => cost_tools::start_proxy(tool, dir, pki, backend, &opts.proxy_conf),
        "nginx-min" => cost_tools::start_nginx(tool, dir, pki, backend, false),
        "nginx-hdr" => cost_tools::start_nginx(tool, dir, pki, backend, true),
        other => panic!("--servers: unknown server {other} (proxy, nginx-min, nginx-hdr)"),
    };
    let remaining = RUN_BOUND.saturating_sub(started.elapsed());
    let alpn: &[&[u8]] = if mode == Mode::H2 {
        &[b"h2"]
    } else {
        &[b"http/1.1"]
    };
    let config = load::client_config(pki, alpn, Resume::Off, Who::User);
    let addr = traced.addr;
    let driven = tokio::time::timeout(remaining, drive(addr, config, mode, requests)).await;
    match driven {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("{server} {}: requests failed: {e}", tool.name()),
        Err(_) => panic!("{server} {}: requests ran past {RUN_BOUND:?}", tool.name()),
    }
    traced.finish()
}

/// `requests` requests, one at a time, over one keep-alive connection that
/// is closed at the end.
async fn drive(
    addr: SocketAddr,
    config: std::sync::Arc<rustls::ClientConfig>,
    mode: Mode,
    requests: u64,
) -> Result<(), load::Error> {
    let upload = Bytes::from(vec![b'u'; UPLOAD_BYTES]);
    let request = |h2: bool| -> Request<load::Body> {
        match mode {
            Mode::Upload => Request::post("/upload")
                .header(header::HOST, addr.to_string())
                .body(Full::new(upload.clone()).map_err(|e| match e {}).boxed())
                .expect("upload request"),
            _ => load::get(addr, "/", h2),
        }
    };
    let check = |status: StatusCode, len: u64| -> Result<(), load::Error> {
        if status != StatusCode::OK || len == 0 {
            return Err(format!("answered {status} with {len} bytes").into());
        }
        Ok(())
    };
    // No connect timeout of its own: a full handshake under valgrind on a
    // busy machine can take longer than the load generator allows; the whole
    // run is bounded by RUN_BOUND.
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let io = tokio_rustls::TlsConnector::from(config)
        .connect(load::server_name(), tcp)
        .await?;
    if mode == Mode::H2 {
        let (mut send, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io)).await?;
        let task = tokio::spawn(conn);
        for _ in 0..requests {
            send.ready().await?;
            let (status, len) = load::drain(send.send_request(request(true)).await?).await?;
            check(status, len)?;
        }
        drop(send);
        task.await??;
    } else {
        let (mut send, task) = load::h1_over(io).await?;
        for _ in 0..requests {
            send.ready().await?;
            let (status, len) = load::drain(send.send_request(request(false)).await?).await?;
            check(status, len)?;
        }
        drop(send);
        task.await?;
    }
    Ok(())
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    if s.is_empty() {
        return f64::NAN;
    }
    if s.len() % 2 == 1 {
        s[s.len() / 2]
    } else {
        (s[s.len() / 2 - 1] + s[s.len() / 2]) / 2.0
    }
}

fn print_table(
    opts: &CostOpts,
    figures: &BTreeMap<(String, String, String), Vec<f64>>,
    syscalls: &BTreeMap<(String, String), BTreeMap<String, f64>>,
) {
    println!(
        "\ncost per request, (count(3N) − count(N)) / 2N, N = {} ({} for uploads); every repetition, then the median:\n",
        opts.n,
        Mode::Upload.n(opts.n)
    );
    println!(
        "| request | server | tool | per request, each repetition | median | / nginx-min | / nginx-hdr |"
    );
    println!("|---|---|---|---|---|---|---|");
    for mode in &opts.modes {
        for tool in &opts.tools {
            let get = |s: &str| {
                figures
                    .get(&(tool.name().to_string(), mode.clone(), s.to_string()))
                    .map(|v| median(v))
            };
            for server in &opts.servers {
                let Some(v) = figures.get(&(tool.name().to_string(), mode.clone(), server.clone()))
                else {
                    continue;
                };
                let m = median(v);
                let ratio = |other: &str| match get(other) {
                    Some(o) if server != other && o > 0.0 => format!("{:.2}×", m / o),
                    _ => "–".to_string(),
                };
                let reps: Vec<String> = v.iter().map(|x| format!("{x:.1}")).collect();
                println!(
                    "| {} | {server} | {} | {} | {m:.1} | {} | {} |",
                    Mode::from(mode).label(),
                    tool.unit(),
                    reps.join(", "),
                    ratio("nginx-min"),
                    ratio("nginx-hdr"),
                );
            }
        }
    }
    if !syscalls.is_empty() {
        println!("\nsystem calls per request by name (last repetition):\n");
        for ((mode, server), calls) in syscalls {
            let mut v: Vec<(&String, &f64)> =
                calls.iter().filter(|(_, c)| c.abs() >= 0.005).collect();
            v.sort_by(|a, b| b.1.total_cmp(a.1));
            let list: Vec<String> = v.iter().map(|(n, c)| format!("{n} {c:.2}")).collect();
            println!("- {mode} {server}: {}", list.join(", "));
        }
    }
}
