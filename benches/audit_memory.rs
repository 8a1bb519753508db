//! `cargo bench --bench audit_memory -- [--mib N]`: the memory and speed of
//! `audit` over a big log. Writes a log of N MiB (default 1024) to
//! target/audit-bench/ — access lines of 50 users over a year, refusals,
//! expiry warnings and start-up lines, text and JSON mixed, a garbage line
//! now and then — runs the release binary's `audit --format csv` on it under
//! `/usr/bin/time -v`, and prints the peak RSS, the time and the throughput
//! for benches/RESULTS.md.
//!
//! Why: a clinic keeps a year of logs; the report must stream them, its
//! memory bounded by users × days, not by the size of the log.

use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Writing the log stops here even if it is not N MiB yet.
const WRITE_LIMIT: Duration = Duration::from_secs(300);
const USERS: u64 = 50;
const DAYS: u64 = 365;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mib: u64 = args
        .iter()
        .position(|a| a == "--mib")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/audit-bench");
    std::fs::create_dir_all(&dir).expect("create target/audit-bench");
    let log = dir.join("proxy.log");
    let started = Instant::now();
    let (bytes, lines) = write_log(&log, mib << 20);
    println!(
        "wrote {} MiB, {lines} lines in {:.1} s",
        bytes >> 20,
        started.elapsed().as_secs_f64()
    );
    let bin = env!("CARGO_BIN_EXE_weborca-mtls-proxy");
    let started = Instant::now();
    let out = Command::new("/usr/bin/time")
        .arg("-v")
        .arg(bin)
        .args(["audit", "-c", "/nonexistent", "--format", "csv"])
        .arg(&log)
        .output()
        .expect("run /usr/bin/time (apt-get install time)");
    let secs = started.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "audit failed: {stderr}");
    let rss_kib: u64 = stderr
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Maximum resident set size (kbytes): ")
        })
        .and_then(|v| v.trim().parse().ok())
        .expect("time -v prints the peak RSS");
    // CPU time too: on a shared machine the wall time says more about the neighbours.
    let cpu: f64 = ["User time (seconds): ", "System time (seconds): "]
        .iter()
        .filter_map(|key| {
            stderr
                .lines()
                .find_map(|l| l.trim().strip_prefix(key))
                .and_then(|v| v.trim().parse::<f64>().ok())
        })
        .sum();
    let rows = String::from_utf8_lossy(&out.stdout).lines().count();
    let mib = (bytes >> 20) as f64;
    println!(
        "| log | lines | report rows | peak RSS | wall time | CPU time | MiB per CPU second |"
    );
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| {mib:.0} MiB | {lines} | {rows} | {:.1} MiB | {secs:.1} s | {cpu:.1} s | {:.0} |",
        rss_kib as f64 / 1024.0,
        mib / cpu.max(0.001)
    );
}

/// Writes about `target` bytes of log lines; returns bytes and lines written.
fn write_log(path: &Path, target: u64) -> (u64, u64) {
    let mut out =
        BufWriter::with_capacity(1 << 20, std::fs::File::create(path).expect("create log"));
    let started = Instant::now();
    let (mut bytes, mut lines) = (0u64, 0u64);
    let lines_per_day = (target / 190 / DAYS).max(1);
    let mut n = 0u64;
    while bytes < target && started.elapsed() < WRITE_LIMIT {
        let day = (n / lines_per_day).min(DAYS - 1);
        let date = chrono::NaiveDate::from_ymd_opt(2025, 1, 1).unwrap() + chrono::Days::new(day);
        let secs = (n % lines_per_day) * 86_399 / lines_per_day;
        let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
        let user = n % USERS;
        let stamp = format!("{} {h:02}:{m:02}:{s:02}", date.format("%Y/%m/%d"));
        let iso = format!("{}T{h:02}:{m:02}:{s:02}.000+09:00", date.format("%Y-%m-%d"));
        let port = 40000 + n % 20000;
        let line = match n % 97 {
            0 => format!(
                "{stamp} client certificate refused: certificate revoked peer=192.0.2.{}:{port} reason=\"revoked\" subject=\"/C=JP/O=orca/CN=user{user}\"\n",
                n % 200
            ),
            1 => format!(
                "{stamp} client certificate CN=user{user} (serial {user:02x}) expires in 9 days (2026/01/10 23:59:00); issue a new one with orca-catool issue_client_cert before the user is locked out\n"
            ),
            2 => "garbage that is no log line\n".to_string(),
            3 => format!("{stamp} Server Mode: HTTPS\n"),
            k if k % 2 == 0 => format!(
                "{{\"time\":\"{iso}\",\"level\":\"info\",\"event\":\"access\",\"addr\":\"10.0.{user}.{}:{port}\",\"cn\":\"user{user}\",\"serial\":\"{user:02x}\",\"method\":\"GET\",\"path\":\"/api01rv2/patientgetv2?id={n}\",\"version\":\"HTTP/1.1\",\"status\":200,\"bytes\":1234,\"duration_ms\":3.2}}\n",
                n % 7
            ),
            _ => format!(
                "{stamp} 10.0.{user}.{}:{port} cn=user{user} serial={user:02x} \"POST /orca11/acceptmodv2?class=0{} HTTP/1.1\" 200 512 4.1ms\n",
                n % 7,
                n % 3
            ),
        };
        out.write_all(line.as_bytes()).expect("write log");
        bytes += line.len() as u64;
        lines += 1;
        n += 1;
    }
    out.flush().expect("write log");
    (bytes, lines)
}
