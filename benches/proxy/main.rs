//! `cargo bench --bench proxy`: this proxy against nginx, side by side, on this machine.
//!
//! Makes an RSA-2048 PKI like orca-catool's (and an ECDSA P-256 one), starts
//! a fast plain-HTTP backend, this proxy (the release binary, as a process)
//! and nginx (Debian package; `ssl_verify_client on`, upstream keep-alive
//! pool, as many workers as the proxy has threads; and a second nginx with
//! request and response buffering off) in front of it with the same
//! certificates and CRL, drives them with one load generator that presents the
//! client certificate, A/B interleaved over several repetitions, and prints
//! one table of medians. Method and latest results: benches/RESULTS.md.
//!
//! Options (after `--`): `--quick` (tiny durations, to try the harness),
//! `--reps N`, `--secs S` (per rate figure), `--gib G` (transfer size),
//! `--idle N` (idle connections and WebSockets), `--rate R` (requests/s for
//! the CPU figure), `--only a,b` (figure groups: idle, ws, h1, h2, full,
//! resumed, cpu, upload, download, ceiling, oha: the keep-alive figures with
//! oha as the load generator, see oha.rs). For finding what bounds a
//! figure: `--no-access-log` (both servers), `--proxy-conf KEY=VALUE`.
//!
//! `--cost` measures instead what one request costs each server in
//! instructions (callgrind) and system calls (strace), see cost.rs.

mod backend;
mod cost;
mod cost_tools;
mod load;
mod oha;
mod pki;
mod procstat;
mod report;
mod servers;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use load::{KeepAlive, Resume, Who};
use pki::{Alg, Pki};
use report::{CEILING, NGINX, NGINX_NOBUF, PROXY, Results, Row, Target};
use servers::{Buffering, Server};

/// Revoked serials in each CA's CRL, loaded by both servers.
const CRL_SIZE: usize = 10_000;
/// Connections (and requests in flight) of the keep-alive figures.
const CONNS: usize = 32;
/// HTTP/2: connections × streams = CONNS requests in flight.
const H2_CONNS: usize = 4;
const H2_STREAMS: usize = CONNS / H2_CONNS;
/// Connections opened at once when filling the idle and WebSocket figures.
const OPEN_CONCURRENCY: usize = 32;
/// Pause between measurements, for sockets and the allocator to settle.
const SETTLE: Duration = Duration::from_millis(1000);
/// Bound on one whole measurement beyond its own duration.
const SLACK: Duration = Duration::from_secs(120);

struct Opts {
    reps: usize,
    secs: f64,
    transfer: u64,
    idle: usize,
    rate: f64,
    only: Option<Vec<String>>,
    tweaks: servers::Tweaks,
}

impl Opts {
    fn parse() -> Opts {
        let mut o = Opts {
            reps: 5,
            secs: 5.0,
            transfer: 1 << 30,
            idle: 1000,
            rate: 2000.0,
            only: None,
            tweaks: servers::Tweaks::default(),
        };
        let mut args = std::env::args().skip(1);
        while let Some(a) = args.next() {
            let mut val = || args.next().unwrap_or_else(|| panic!("{a} needs a value"));
            match a.as_str() {
                "--bench" => {} // added by `cargo bench`
                "--quick" => {
                    o.reps = 1;
                    o.secs = 0.5;
                    o.transfer = 16 << 20;
                    o.idle = 50;
                    o.rate = 500.0;
                }
                "--reps" => o.reps = val().parse().expect("--reps N"),
                "--secs" => o.secs = val().parse().expect("--secs S"),
                "--gib" => {
                    let g: f64 = val().parse().expect("--gib G");
                    o.transfer = ((g * (1u64 << 30) as f64) as u64) / (64 * 1024) * (64 * 1024);
                }
                "--idle" => o.idle = val().parse().expect("--idle N"),
                "--rate" => o.rate = val().parse().expect("--rate R"),
                "--no-access-log" => o.tweaks.no_access_log = true,
                "--nginx-reuseport" => o.tweaks.nginx_reuseport = true,
                "--proxy-conf" => o.tweaks.proxy_conf.push(val()),
                "--only" => o.only = Some(val().split(',').map(str::to_string).collect()),
                other => panic!("unknown option {other}; see benches/proxy/main.rs"),
            }
        }
        o
    }

    fn wants(&self, group: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|l| l.iter().any(|g| g == group))
    }
}

/// One repetition's servers, started fresh and stopped when dropped.
struct Lineup {
    proxy: Server,
    nginx: Server,
    nginx_nobuf: Server,
    proxy_ec: Server,
    nginx_ec: Server,
    /// the backend's process, whose CPU time the transfer figures report too
    backend_pid: u32,
    /// the backend's address, for the bare-backend CPU figure
    backend: SocketAddr,
}

fn main() {
    if std::env::var_os(backend::ROLE_ENV).is_some() {
        backend::run();
        return;
    }
    if std::env::args().any(|a| a == "--cost") {
        cost::run();
        return;
    }
    let opts = Opts::parse();
    servers::ensure_nginx();
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    print_machine(workers);
    // oha: found once, or said once why its figures are missing
    let oha_bin = opts.wants("oha").then(oha::find);
    let oha_note = match &oha_bin {
        Some(Some(bin)) => format!("oha: {} ({})", oha::version(bin), bin.display()),
        Some(None) => "oha: skipped: oha not found (cargo install oha; or set OHA)".to_string(),
        None => String::new(),
    };
    if !oha_note.is_empty() {
        println!("{oha_note}");
    }
    let tmp = tempfile::Builder::new()
        .prefix("weborca-bench-")
        .tempdir()
        .expect("temp dir");
    let t0 = Instant::now();
    eprintln!("making the PKIs (RSA-2048 and ECDSA P-256, CRLs of {CRL_SIZE} serials)");
    let rsa = pki::make(&tmp.path().join("pki-rsa"), Alg::Rsa2048, CRL_SIZE);
    let ec = pki::make(&tmp.path().join("pki-ecdsa"), Alg::EcdsaP256, CRL_SIZE);
    let (backend_proc, backend) = servers::start_backend();
    eprintln!(
        "backend on {backend}; proxy {}",
        servers::proxy_bin().display()
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("runtime");
    let mut results = Results::default();
    for rep in 0..opts.reps {
        eprintln!(
            "== repetition {} of {} ({:.0} s so far)",
            rep + 1,
            opts.reps,
            t0.elapsed().as_secs_f64()
        );
        let dir = tmp.path().join(format!("rep{rep}"));
        let lineup = Lineup {
            proxy: servers::start_proxy(PROXY, &dir.join("proxy"), &rsa, backend, &opts.tweaks),
            nginx: servers::start_nginx(
                NGINX,
                &dir.join("nginx"),
                &rsa,
                backend,
                workers,
                Buffering::Default,
                &opts.tweaks,
            ),
            nginx_nobuf: servers::start_nginx(
                NGINX_NOBUF,
                &dir.join("nginx-nobuf"),
                &rsa,
                backend,
                workers,
                Buffering::Off,
                &opts.tweaks,
            ),
            proxy_ec: servers::start_proxy(
                PROXY,
                &dir.join("proxy-ec"),
                &ec,
                backend,
                &opts.tweaks,
            ),
            nginx_ec: servers::start_nginx(
                NGINX,
                &dir.join("nginx-ec"),
                &ec,
                backend,
                workers,
                Buffering::Default,
                &opts.tweaks,
            ),
            backend_pid: backend_proc.pid(),
            backend,
        };
        rt.block_on(repetition(&opts, rep, &lineup, &rsa, &ec, &mut results));
        drop(lineup);
        let fresh = |tag: &str| -> [Server; 2] {
            let d = dir.join(tag);
            let proxy = servers::start_proxy(PROXY, &d.join("proxy"), &rsa, backend, &opts.tweaks);
            let nginx = servers::start_nginx(
                NGINX,
                &d.join("nginx"),
                &rsa,
                backend,
                workers,
                Buffering::Default,
                &opts.tweaks,
            );
            if rep.is_multiple_of(2) {
                [proxy, nginx]
            } else {
                [nginx, proxy]
            }
        };
        rt.block_on(memory(&opts, &fresh, &rsa, &mut results));
        if let Some(Some(bin)) = &oha_bin {
            let setup = oha::Setup {
                oha: bin,
                rep,
                dir: &dir,
                pki: &rsa,
                backend,
                workers,
                tweaks: &opts.tweaks,
                secs: opts.secs,
            };
            oha::repetition(&setup, &mut results);
        }
    }
    if opts.wants("ceiling") {
        rt.block_on(ceiling(&opts, backend, &mut results));
    }
    if opts.wants("ceiling") {
        openssl_speed(&mut results);
    }
    eprintln!("done in {:.0} s", t0.elapsed().as_secs_f64());
    println!("\nraw figures, one per repetition:\n{}", results.raw());
    if !oha_note.is_empty() {
        println!("{oha_note}");
    }
    println!("{}", results.table(&rows(&opts)));
}

fn print_machine(workers: usize) {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let nginx = std::process::Command::new("nginx")
        .arg("-v")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stderr).trim().to_string())
        .unwrap_or_default();
    println!(
        "machine: {cpu}, {workers} cores, Linux {}, load average {}; {nginx}; proxy threads = nginx workers = {workers}",
        kernel.trim(),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    );
}

/// Servers in the order of this repetition: A/B one way on even repetitions, the other way on odd ones.
fn ordered<'a>(rep: usize, a: &'a Server, b: &'a Server) -> [&'a Server; 2] {
    if rep.is_multiple_of(2) {
        [a, b]
    } else {
        [b, a]
    }
}

fn column(s: &Server) -> &str {
    &s.name
}

async fn repetition(opts: &Opts, rep: usize, l: &Lineup, rsa: &Pki, ec: &Pki, r: &mut Results) {
    let user = load::client_config(rsa, &[b"http/1.1"], Resume::Off, Who::User);
    let user_h2 = load::client_config(rsa, &[b"h2"], Resume::Off, Who::User);
    if rep == 0 {
        sanity(l, rsa, ec).await;
    }
    // warm-up: code paths, pools, allocator
    for s in [&l.proxy, &l.nginx, &l.nginx_nobuf] {
        let shape = KeepAlive::h1(CONNS, 1.0, None);
        bounded(load::keep_alive(s.addr, Some(user.clone()), shape), 1.0)
            .await
            .expect("warm-up");
    }
    let pair = ordered(rep, &l.proxy, &l.nginx);

    for (group, h2, conns, streams, config) in [
        ("h1", false, CONNS, 1, &user),
        ("h2", true, H2_CONNS, H2_STREAMS, &user_h2),
    ] {
        if !opts.wants(group) {
            continue;
        }
        eprintln!("  -- {group}");
        for s in pair {
            let shape = KeepAlive {
                conns,
                streams,
                h2,
                secs: opts.secs,
                rate: None,
            };
            let cpu0 = cpu_snapshot(l, s);
            let mut m = bounded(
                load::keep_alive(s.addr, Some(config.clone()), shape),
                opts.secs,
            )
            .await
            .expect(group);
            let cpu = cpu_since(l, s, cpu0);
            note_cpu(group, s, &cpu, m.ok);
            let key = |figure: &str| format!("{group}_{figure}");
            r.add(&key("cpu"), column(s), cpu[0] * 1e6 / m.ok.max(1) as f64);
            r.add(&key("rps"), column(s), m.per_sec());
            r.add(&key("p50"), column(s), m.pct_ms(50.0));
            r.add(&key("p99"), column(s), m.pct_ms(99.0));
            note_errors(group, s, m.errors);
            tokio::time::sleep(SETTLE).await;
        }
    }
    if opts.wants("full") {
        eprintln!("  -- full");
        for (key, pki, pair) in [
            ("full_rsa", rsa, ordered(rep, &l.proxy, &l.nginx)),
            ("full_ecdsa", ec, ordered(rep, &l.proxy_ec, &l.nginx_ec)),
        ] {
            for s in pair {
                let config = load::client_config(pki, &[b"http/1.1"], Resume::Off, Who::User);
                let configs = vec![config; CONNS];
                let m = bounded(
                    load::new_conns(s.addr, configs, false, opts.secs),
                    opts.secs,
                )
                .await;
                r.add(key, column(s), m.per_sec());
                note_errors(key, s, m.errors);
                if m.resumed > 0 {
                    eprintln!(
                        "    !! {} resumed {} sessions with resumption off",
                        s.name, m.resumed
                    );
                }
                tokio::time::sleep(SETTLE).await;
            }
        }
    }
    if opts.wants("resumed") {
        eprintln!("  -- resumed");
        for (key, resume) in [
            ("resumed_tls13", Resume::Tls13Tickets),
            ("resumed_tls12", Resume::Tls12Ids),
        ] {
            for s in pair {
                // a fresh session cache per client, primed by one connection each
                let configs = (0..CONNS)
                    .map(|_| load::client_config(rsa, &[b"http/1.1"], resume, Who::User))
                    .collect();
                let m = bounded(load::new_conns(s.addr, configs, true, opts.secs), opts.secs).await;
                r.add(key, column(s), m.per_sec());
                r.add(
                    &format!("{key}_pct"),
                    column(s),
                    100.0 * m.resumed as f64 / m.ok.max(1) as f64,
                );
                note_errors(key, s, m.errors);
                tokio::time::sleep(SETTLE).await;
            }
        }
    }
    if opts.wants("cpu") {
        eprintln!("  -- cpu");
        let shape = KeepAlive::h1(CONNS, opts.secs, Some(opts.rate));
        for s in pair {
            let cpu0 = cpu_snapshot(l, s);
            let mut m = bounded(
                load::keep_alive(s.addr, Some(user.clone()), shape),
                opts.secs,
            )
            .await
            .expect("cpu");
            let cpu = cpu_since(l, s, cpu0);
            note_cpu("cpu", s, &cpu, m.ok);
            r.add("cpu_us", column(s), cpu[0] * 1e6 / m.ok.max(1) as f64);
            r.add("cpu_rate", column(s), m.per_sec());
            r.add("cpu_p99", column(s), m.pct_ms(99.0));
            r.add(
                "cpu_backend_us",
                column(s),
                cpu[1] * 1e6 / m.ok.max(1) as f64,
            );
            note_errors("cpu", s, m.errors);
            tokio::time::sleep(SETTLE).await;
        }
        // the bare backend at the same rate (plain HTTP, no server in front):
        // what "within 2.5× of the bare backend's CPU per request" compares with
        let b0 = procstat::cpu_secs(&[l.backend_pid]);
        let m = bounded(load::keep_alive(l.backend, None, shape), opts.secs)
            .await
            .expect("cpu, bare backend");
        let bare = (procstat::cpu_secs(&[l.backend_pid]) - b0) * 1e6 / m.ok.max(1) as f64;
        eprintln!("    cpu CPU µs/request: the bare backend {bare:.1}");
        r.add("cpu_bare_us", CEILING, bare);
        if let (Some(p), Some(b)) = (r.last("cpu_us", PROXY), Some(bare)) {
            r.add("cpu_vs_bare", PROXY, p / b.max(1e-9));
        }
        if let Some(n) = r.last("cpu_us", NGINX) {
            r.add("cpu_vs_bare", NGINX, n / bare.max(1e-9));
        }
        tokio::time::sleep(SETTLE).await;
    }
    let trio: Vec<&Server> = if rep.is_multiple_of(2) {
        vec![&l.proxy, &l.nginx, &l.nginx_nobuf]
    } else {
        vec![&l.nginx_nobuf, &l.nginx, &l.proxy]
    };
    for (group, up) in [("upload", true), ("download", false)] {
        if !opts.wants(group) {
            continue;
        }
        eprintln!("  -- {group}");
        for s in &trio {
            let rss0 = procstat::rss_kib(&s.pids());
            let sampler = procstat::PeakRss::start(s.pids());
            let cpu0 = cpu_snapshot(l, s);
            let secs = if up {
                bounded(load::upload(s.addr, &user, opts.transfer), 0.0).await
            } else {
                bounded(load::download(s.addr, &user, opts.transfer), 0.0).await
            }
            .expect(group);
            let peak = sampler.finish();
            let cpu = cpu_since(l, s, cpu0);
            let gib = opts.transfer as f64 / (1u64 << 30) as f64;
            eprintln!(
                "    CPU s/GiB: {} {:.2}, backend {:.2}, load generator {:.2}",
                s.name,
                cpu[0] / gib,
                cpu[1] / gib,
                cpu[2] / gib
            );
            r.add(&format!("{group}_cpu"), column(s), cpu[0] / gib);
            r.add(
                &format!("{group}_mbs"),
                column(s),
                opts.transfer as f64 / 1e6 / secs,
            );
            r.add(&format!("{group}_peak"), column(s), peak as f64 / 1024.0);
            r.add(
                &format!("{group}_rise"),
                column(s),
                peak.saturating_sub(rss0) as f64 / 1024.0,
            );
            tokio::time::sleep(SETTLE).await;
        }
    }
}

/// Memory per connection: the RSS each server gains holding `opts.idle` idle
/// mutual-TLS connections (one request made on each), then as many open
/// WebSockets. Each figure is taken on a freshly started pair, warmed by a
/// few connections: on a server that has run the other figures, memory freed
/// and kept by the allocator would absorb part of the new connections.
async fn memory(opts: &Opts, fresh: &dyn Fn(&str) -> [Server; 2], rsa: &Pki, r: &mut Results) {
    let user = load::client_config(rsa, &[b"http/1.1"], Resume::Off, Who::User);
    for (group, key) in [("idle", "idle_kib"), ("ws", "ws_kib")] {
        if !opts.wants(group) {
            continue;
        }
        eprintln!("  -- {group}");
        for s in fresh(&format!("mem-{group}")) {
            let warm = bounded(load::open_idle(s.addr, &user, CONNS, CONNS), 0.0).await;
            drop(warm.expect("warm-up connections"));
            tokio::time::sleep(SETTLE).await;
            let rss0 = procstat::rss_kib(&s.pids());
            let held = if group == "idle" {
                bounded(
                    load::open_idle(s.addr, &user, opts.idle, OPEN_CONCURRENCY),
                    0.0,
                )
                .await
            } else {
                bounded(
                    load::open_websockets(s.addr, &user, opts.idle, OPEN_CONCURRENCY),
                    0.0,
                )
                .await
            }
            .expect(group);
            tokio::time::sleep(SETTLE).await;
            let rss1 = procstat::rss_kib(&s.pids());
            drop(held);
            r.add(
                key,
                column(&s),
                (rss1 as f64 - rss0 as f64) / opts.idle as f64,
            );
        }
    }
}

/// Both servers let the user in and keep the revoked certificate out.
async fn sanity(l: &Lineup, rsa: &Pki, ec: &Pki) {
    for (s, pki) in [
        (&l.proxy, rsa),
        (&l.nginx, rsa),
        (&l.nginx_nobuf, rsa),
        (&l.proxy_ec, ec),
        (&l.nginx_ec, ec),
    ] {
        let user = load::client_config(pki, &[b"http/1.1"], Resume::Off, Who::User);
        let revoked = load::client_config(pki, &[b"http/1.1"], Resume::Off, Who::Revoked);
        let agreed = match load::status_as(s.addr, &user).await {
            Ok((200, agreed)) => agreed,
            other => panic!(
                "{} {:?}: the client was not let in: {other:?}",
                s.name, pki.alg
            ),
        };
        // the proxy answers its 403 page; nginx 400 (or a TLS alert, an error here)
        let refused = load::status_as(s.addr, &revoked)
            .await
            .map(|(status, _)| status);
        assert!(
            !matches!(refused, Ok(200)),
            "{}: a revoked certificate was let in",
            s.name
        );
        eprintln!(
            "  sanity {} {}: user 200 ({agreed}), revoked {:?}",
            s.name,
            pki.alg.label(),
            refused.map_err(|e| e.to_string())
        );
    }
}

/// The backend on its own: what no proxy can beat.
async fn ceiling(opts: &Opts, backend: SocketAddr, r: &mut Results) {
    for _ in 0..opts.reps {
        let shape = KeepAlive::h1(CONNS, opts.secs, None);
        let mut m = bounded(load::keep_alive(backend, None, shape), opts.secs)
            .await
            .expect("ceiling");
        r.add("ceiling_rps", CEILING, m.per_sec());
        r.add("ceiling_p99", CEILING, m.pct_ms(99.0));
        tokio::time::sleep(SETTLE).await;
    }
}

/// `openssl speed` signs/s on one core: the bound on full handshakes.
fn openssl_speed(r: &mut Results) {
    for (alg, key, label) in [
        ("rsa2048", "speed_rsa", "rsa 2048 bits"),
        ("ecdsap256", "speed_ecdsa", "256 bits ecdsa"),
    ] {
        let out = std::process::Command::new("openssl")
            .args(["speed", "-seconds", "2", alg])
            .output();
        let Ok(out) = out else { continue };
        let text = String::from_utf8_lossy(&out.stdout);
        // "rsa 2048 bits 0.000614s 0.000018s   1628.0  55555.6": sign/s is the second-to-last column
        let signs = text.lines().find(|l| l.contains(label)).and_then(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            cols.get(cols.len().wrapping_sub(2))?.parse::<f64>().ok()
        });
        if let Some(s) = signs {
            r.add(key, CEILING, s);
        }
    }
}

/// CPU seconds so far of the server, the backend and the load generator (this process).
fn cpu_snapshot(l: &Lineup, s: &Server) -> [f64; 3] {
    [
        procstat::cpu_secs(&s.pids()),
        procstat::cpu_secs(&[l.backend_pid]),
        procstat::cpu_secs(&[std::process::id()]),
    ]
}

fn cpu_since(l: &Lineup, s: &Server, before: [f64; 3]) -> [f64; 3] {
    let now = cpu_snapshot(l, s);
    [0, 1, 2].map(|i| now[i] - before[i])
}

/// Where a run's CPU went, per request: what bounds a rate on a shared machine.
fn note_cpu(what: &str, s: &Server, cpu: &[f64; 3], requests: u64) {
    let per = |c: f64| c * 1e6 / requests.max(1) as f64;
    eprintln!(
        "    {what} CPU µs/request: {} {:.1}, backend {:.1}, load generator {:.1}",
        s.name,
        per(cpu[0]),
        per(cpu[1]),
        per(cpu[2])
    );
}

fn note_errors(what: &str, s: &Server, errors: u64) {
    if errors > 0 {
        eprintln!("    !! {what} on {}: {errors} errors or reconnects", s.name);
    }
}

/// Runs `f` with a bound of its own duration plus SLACK.
async fn bounded<T>(f: impl std::future::Future<Output = T>, secs: f64) -> T {
    tokio::time::timeout(Duration::from_secs_f64(secs) + SLACK, f)
        .await
        .expect("a measurement ran past its time bound")
}

fn rows(opts: &Opts) -> Vec<Row> {
    let gib = opts.transfer as f64 / (1u64 << 30) as f64;
    let row = |key, label: String, target| Row { key, label, target };
    vec![
        row(
            "h1_rps",
            format!("keep-alive HTTP/1.1, {CONNS} conns: req/s"),
            Some(Target::RatioAtLeast(1.3)),
        ),
        row(
            "h1_cpu",
            "  server CPU µs per request at that rate".into(),
            None,
        ),
        row("h1_p50", "keep-alive HTTP/1.1: p50 ms".into(), None),
        row(
            "h1_p99",
            "keep-alive HTTP/1.1: p99 ms".into(),
            Some(Target::RatioAtMost(1.0)),
        ),
        row(
            "h2_rps",
            format!("keep-alive HTTP/2, {H2_CONNS} conns × {H2_STREAMS} streams: req/s"),
            Some(Target::RatioAtLeast(1.3)),
        ),
        row(
            "h2_cpu",
            "  server CPU µs per request at that rate".into(),
            None,
        ),
        row("h2_p50", "keep-alive HTTP/2: p50 ms".into(), None),
        row(
            "h2_p99",
            "keep-alive HTTP/2: p99 ms".into(),
            Some(Target::RatioAtMost(1.0)),
        ),
        row(
            "oha_h1_rps",
            format!("oha: keep-alive HTTP/1.1, {CONNS} conns, access log off: req/s"),
            Some(Target::RatioAtLeast(1.2)),
        ),
        row(
            "oha_h1_cpu",
            "  server CPU µs per request at that rate".into(),
            None,
        ),
        row(
            "oha_h1_p99",
            "oha: keep-alive HTTP/1.1: p99 ms".into(),
            Some(Target::RatioAtMost(1.0)),
        ),
        row(
            "oha_h2_rps",
            format!(
                "oha: keep-alive HTTP/2, {H2_CONNS} conns × {H2_STREAMS} streams, access log off: req/s"
            ),
            Some(Target::RatioAtLeast(1.2)),
        ),
        row(
            "oha_h2_cpu",
            "  server CPU µs per request at that rate".into(),
            None,
        ),
        row(
            "oha_h2_p99",
            "oha: keep-alive HTTP/2: p99 ms".into(),
            Some(Target::RatioAtMost(1.0)),
        ),
        row(
            "full_rsa",
            format!("new connection per request, full handshake, RSA-2048, {CONNS} at once: req/s"),
            Some(Target::RatioAtLeast(1.2)),
        ),
        row(
            "full_ecdsa",
            "same, ECDSA P-256: req/s".into(),
            Some(Target::RatioAtLeast(1.2)),
        ),
        row(
            "resumed_tls13",
            "resumed TLS 1.3 (tickets), identity re-verified: conn/s".into(),
            None,
        ),
        row("resumed_tls13_pct", "  of which resumed, %".into(), None),
        row(
            "resumed_tls12",
            "resumed TLS 1.2 (session IDs), identity re-verified: conn/s".into(),
            None,
        ),
        row("resumed_tls12_pct", "  of which resumed, %".into(), None),
        row(
            "upload_mbs",
            format!("upload {gib:.3} GiB: MB/s"),
            Some(Target::RatioBoth(2.0, 1.0)),
        ),
        row("upload_cpu", "  server CPU seconds per GiB".into(), None),
        row(
            "upload_peak",
            "  peak RSS during the upload, MiB".into(),
            Some(Target::AbsAtMost(32.0)),
        ),
        row(
            "upload_rise",
            "  of which the transfer added, MiB".into(),
            None,
        ),
        row(
            "download_mbs",
            format!("download {gib:.3} GiB: MB/s"),
            Some(Target::RatioBoth(2.0, 1.0)),
        ),
        row("download_cpu", "  server CPU seconds per GiB".into(), None),
        row(
            "download_peak",
            "  peak RSS during the download, MiB".into(),
            Some(Target::AbsAtMost(32.0)),
        ),
        row(
            "download_rise",
            "  of which the transfer added, MiB".into(),
            None,
        ),
        row(
            "idle_kib",
            format!(
                "{} idle mTLS connections: RSS KiB per connection",
                opts.idle
            ),
            Some(Target::RatioAtMost(1.0)),
        ),
        row(
            "ws_kib",
            format!("{} open WebSockets: RSS KiB per connection", opts.idle),
            Some(Target::RatioAtMost(1.0)),
        ),
        row(
            "cpu_us",
            format!(
                "CPU µs per request at {:.0} req/s (keep-alive, {CONNS} conns)",
                opts.rate
            ),
            Some(Target::RatioAtMost(0.8)),
        ),
        row("cpu_rate", "  request rate reached, req/s".into(), None),
        row(
            "cpu_p99",
            "  p99 ms at that rate".into(),
            Some(Target::RatioAtMost(1.0)),
        ),
        row(
            "cpu_backend_us",
            "  the backend's CPU µs per request behind the server".into(),
            None,
        ),
        row(
            "cpu_bare_us",
            format!(
                "  the bare backend alone at {:.0} req/s: CPU µs per request",
                opts.rate
            ),
            None,
        ),
        row(
            "cpu_vs_bare",
            "  server CPU per request / the bare backend's".into(),
            Some(Target::AbsAtMost(2.5)),
        ),
        row(
            "ceiling_rps",
            format!("ceiling: backend alone, plain HTTP, {CONNS} conns: req/s"),
            None,
        ),
        row("ceiling_p99", "ceiling: backend alone: p99 ms".into(), None),
        row(
            "speed_rsa",
            "ceiling: openssl speed RSA-2048 signs/s, one core".into(),
            None,
        ),
        row(
            "speed_ecdsa",
            "ceiling: openssl speed ECDSA P-256 signs/s, one core".into(),
            None,
        ),
    ]
}
