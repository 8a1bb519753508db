//! The soak's verdict and its markdown report, ready for benches/RESULTS.md.

use std::fmt::Write as _;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Duration;

use crate::disturb::{self, Reloads, Restarts};
use crate::mix::{self, Held};
use crate::procs::{self, Fds, LogTail};
use crate::tally::{Kind, Outcome, Tally};

/// Warning and error lines the soak provokes on purpose. Whether the
/// backend-restart ones came only at restarts is checked on the requests
/// themselves: a 502 or a cut download at any other time is an error there.
const EXPECTED_LOG: [(&str, &str, &str); 3] = [
    (
        "ERROR",
        "reload refused, still serving the previous certificates",
        "one per broken set",
    ),
    (
        "WARN",
        "WebORCA is not answering",
        "requests while the backend restarts",
    ),
    (
        "WARN",
        "WebORCA broke off a response after N bytes",
        "a download cut by a backend restart",
    ),
];

/// Everything one run measured.
pub struct Run {
    pub minutes: f64,
    pub load_secs: f64,
    pub warmup: Duration,
    pub tally: Arc<Tally>,
    pub reloads: Reloads,
    pub restarts: Restarts,
    pub held: Vec<Held>,
    /// when (into the load), RSS KiB and descriptors of the start sample
    pub start: Option<(Duration, u64, Fds)>,
    pub peak_rss: u64,
    pub end_rss: u64,
    pub end_fds: Fds,
    /// the proxy's backend connections once the last backend was stopped
    pub backend_fds_after_stop: usize,
    /// the last backend's `/refused-probe` count
    pub probe_hits: Result<u64, String>,
    pub probe_controls: u64,
    pub metrics: Result<String, String>,
    /// the proxy's exit after SIGTERM (None: it had to be killed)
    pub exit: Option<ExitStatus>,
    pub log: LogTail,
    /// what stopped the soak early
    pub fatal: Vec<String>,
    pub crl_size: u64,
    pub rss_bound_mib: f64,
    pub fd_bound: usize,
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn expected_log(level: &str, kind: &str) -> Option<&'static str> {
    EXPECTED_LOG
        .iter()
        .find(|(l, k, _)| *l == level && *k == kind)
        .map(|(_, _, why)| *why)
}

impl Run {
    /// `/refused-probe` requests all the backends saw.
    fn probes_seen(&self) -> Result<u64, String> {
        self.probe_hits
            .clone()
            .map(|last| last + self.restarts.probe_hits)
    }

    fn metric(&self, name: &str, label: &str) -> Option<f64> {
        self.metrics
            .as_ref()
            .ok()
            .map(|m| procs::metric(m, name, label))
    }

    /// Why the run failed; empty for a pass.
    pub fn failures(&self) -> Vec<String> {
        let mut f: Vec<String> = self.fatal.clone();
        let t = &self.tally;
        let let_in = t.outcome_total(Outcome::LetIn);
        if let_in > 0 {
            f.push(format!(
                "SECURITY: {let_in} requests of refused clients were answered 2xx"
            ));
        }
        match self.probes_seen() {
            Ok(seen) if seen == self.probe_controls => {}
            Ok(seen) => f.push(format!(
                "SECURITY: the backend saw {seen} {} requests, {} control(s) expected: refused clients got through",
                mix::PROBE_PATH,
                self.probe_controls
            )),
            Err(e) => f.push(format!("could not read the backend's probe count: {e}")),
        }
        let errors = t.outcome_total(Outcome::Error);
        if errors > 0 {
            f.push(format!("{errors} unexpected errors (see Errors)"));
        }
        for kind in Kind::ALL {
            if t.kind_total(kind) == 0 {
                f.push(format!("no request of kind \"{}\" was made", kind.label()));
            }
        }
        f.extend(self.reloads.problems.iter().cloned());
        f.extend(self.restarts.problems.iter().cloned());
        if self.load_secs >= 120.0 && self.reloads.revocations == 0 {
            f.push("no reload revoked a client holding connections open".into());
        }
        if self.load_secs >= 60.0 && (self.reloads.ok == 0 || self.reloads.refused_broken == 0) {
            f.push("no valid or no broken reload happened in a run of a minute or more".into());
        }
        if self.load_secs >= (disturb::BACKEND_RESTART_EVERY + disturb::RESTART_QUIET).as_secs_f64()
            && self.restarts.count == 0
        {
            f.push("no backend restart happened".into());
        }
        let open = self.held.iter().filter(|h| h.open_at_end).count();
        if open < mix::WS_HELD {
            f.push(format!(
                "{} of {} held WebSockets were not open at the end",
                mix::WS_HELD - open,
                mix::WS_HELD
            ));
        }
        let dropped: u64 = self.held.iter().map(|h| h.dropped_otherwise).sum();
        if dropped > 0 {
            f.push(format!(
                "held WebSockets dropped {dropped} times other than by a backend restart"
            ));
        }
        match self.start {
            None => f.push("no start sample: the load stopped before the warm-up ended".into()),
            Some((_, rss, fds)) => {
                if mib(self.end_rss) > mib(rss) + self.rss_bound_mib {
                    f.push(format!(
                        "RSS grew from {:.1} to {:.1} MiB, more than {} MiB",
                        mib(rss),
                        mib(self.end_rss),
                        self.rss_bound_mib
                    ));
                }
                if self.end_fds.total > fds.total + self.fd_bound {
                    f.push(format!(
                        "descriptors grew from {} to {}, more than {}",
                        fds.total, self.end_fds.total, self.fd_bound
                    ));
                }
            }
        }
        if self.end_fds.clients > 0 {
            f.push(format!(
                "{} client connections still open in the proxy after the clients closed theirs",
                self.end_fds.clients
            ));
        }
        if self.backend_fds_after_stop > 0 {
            f.push(format!(
                "{} backend connections still open in the proxy after the backend stopped",
                self.backend_fds_after_stop
            ));
        }
        match self.exit {
            Some(s) if s.success() => {}
            Some(s) => f.push(format!("the proxy's exit after SIGTERM: {s}")),
            None => f.push("the proxy did not exit after SIGTERM; killed".into()),
        }
        if self.log.panic_count > 0 {
            f.push(format!(
                "{} log lines mention a panic",
                self.log.panic_count
            ));
        }
        for ((level, kind), n) in &self.log.by_kind {
            if expected_log(level, kind).is_none() {
                f.push(format!(
                    "unexpected {level} in the proxy log ({n}×): {kind}"
                ));
            }
        }
        let refused_lines = self
            .log
            .by_kind
            .get(&("ERROR", EXPECTED_LOG[0].1.to_string()))
            .copied()
            .unwrap_or(0);
        if refused_lines != self.reloads.refused_broken {
            f.push(format!(
                "{refused_lines} refused-reload lines in the log for {} broken sets",
                self.reloads.refused_broken
            ));
        }
        match (
            self.metric("weborca_proxy_reloads_total", "\"ok\""),
            self.metric("weborca_proxy_reloads_total", "\"failed\""),
        ) {
            (Some(ok), Some(failed))
                if ok as u64 == self.reloads.ok && failed as u64 == self.reloads.refused_broken => {
            }
            (Some(ok), Some(failed)) => f.push(format!(
                "/metrics counts {ok} reloads ok and {failed} failed; the soak {} and {}",
                self.reloads.ok, self.reloads.refused_broken
            )),
            _ => f.push(format!(
                "no /metrics at the end: {}",
                self.metrics.as_ref().err().map_or("", String::as_str)
            )),
        }
        f
    }

    /// The report.
    pub fn markdown(&self, failures: &[String]) -> String {
        let mut o = String::new();
        let verdict = if failures.is_empty() { "PASS" } else { "FAIL" };
        let _ = writeln!(
            o,
            "## Soak: {} min of mixed load — {verdict}\n",
            self.minutes
        );
        let _ = writeln!(
            o,
            "{} · {} · `cargo bench --bench soak -- --minutes {}` · proxy, backend and load generator on one machine, loopback.\n",
            chrono::Local::now().format("%Y-%m-%d %H:%M"),
            machine(),
            self.minutes
        );
        self.load_mix(&mut o);
        self.requests(&mut o);
        self.disturbances(&mut o);
        self.resources(&mut o);
        self.proxy_log(&mut o);
        self.proxy_metrics(&mut o);
        let samples = self.tally.samples();
        if !samples.is_empty() {
            let _ = writeln!(o, "### Errors (first {})\n", samples.len());
            for s in samples {
                let _ = writeln!(o, "- {s}");
            }
            let _ = writeln!(o);
        }
        let _ = writeln!(o, "### Result: {verdict}\n");
        if failures.is_empty() {
            let _ = writeln!(
                o,
                "No unexpected error, no refused client let in or reaching the backend, every reload and restart as expected, every held WebSocket open at the end, memory and descriptors within their bounds, no panic."
            );
        }
        for f in failures {
            let _ = writeln!(o, "- {f}");
        }
        o
    }

    fn load_mix(&self, o: &mut String) {
        let ms = |d: Duration| d.as_millis();
        let list = |sizes: &[u64]| {
            sizes
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join("/")
        };
        let _ = writeln!(
            o,
            "### Load\n\n\
             Ran {:.0} s; the start sample after {:.0} s of warm-up.\n\n\
             - keep-alive HTTP/1.1: {} connections × {} req/s\n\
             - keep-alive HTTP/2: {} connections × {} streams every {} ms ({:.0} req/s)\n\
             - a new connection per request: a full handshake every {} ms; one offering resumption every {} ms (TLS 1.3 tickets and TLS 1.2 session IDs alternately)\n\
             - uploads of {} MiB every {} s, downloads of {} MiB every {} s, in turn\n\
             - {} WebSockets held open, each echoing a message every {} s; a WebSocket opened, echoed and closed every {} ms\n\
             - refused clients — no certificate, foreign CA, expired, revoked (CRL of {} serials) — each every {} ms, full and resumed handshakes alternately, asking for `{}`\n\
             - a SIGHUP every {} s alternating two valid server certificate sets; every {} a broken set (key not matching the certificate); every {} also a re-signed CRL\n\
             - the backend killed (SIGKILL) and restarted on its port every {} s, none in the last {} s\n",
            self.load_secs,
            self.warmup.as_secs_f64(),
            mix::H1_CONNS,
            mix::H1_RATE_PER_CONN,
            mix::H2_CONNS,
            mix::H2_STREAMS,
            ms(mix::H2_EVERY),
            (mix::H2_CONNS * mix::H2_STREAMS) as f64 / mix::H2_EVERY.as_secs_f64(),
            ms(mix::FULL_EVERY),
            ms(mix::RESUMED_EVERY),
            list(&mix::UPLOAD_MIB),
            mix::UPLOAD_EVERY.as_secs(),
            list(&mix::DOWNLOAD_MIB),
            mix::DOWNLOAD_EVERY.as_secs(),
            mix::WS_HELD,
            mix::WS_MESSAGE_EVERY.as_secs(),
            ms(mix::WS_CHURN_EVERY),
            self.crl_size,
            ms(mix::REFUSED_EVERY),
            mix::PROBE_PATH,
            disturb::RELOAD_EVERY.as_secs(),
            ordinal(disturb::BROKEN_EVERY),
            ordinal(disturb::CRL_EVERY),
            disturb::BACKEND_RESTART_EVERY.as_secs(),
            disturb::RESTART_QUIET.as_secs(),
        );
    }

    fn requests(&self, o: &mut String) {
        let t = &self.tally;
        let _ = writeln!(
            o,
            "### Requests by kind and outcome\n\n\
             | kind | total | ok | refused as expected: 403 page / TLS | backend restart: 502/504, broken stream | errors | let in |\n\
             |---|---:|---:|---:|---:|---:|---:|"
        );
        for kind in Kind::ALL {
            let c = |outcome| t.count(kind, outcome);
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} / {} | {} | {} | {} |",
                kind.label(),
                t.kind_total(kind),
                c(Outcome::Ok),
                c(Outcome::Refused),
                c(Outcome::RefusedTls),
                c(Outcome::BackendRestart),
                c(Outcome::Error),
                c(Outcome::LetIn),
            );
        }
        let all = |outcome| t.outcome_total(outcome);
        let _ = writeln!(
            o,
            "| **all** | **{}** | {} | {} / {} | {} | **{}** | **{}** |\n",
            t.totals().0,
            all(Outcome::Ok),
            all(Outcome::Refused),
            all(Outcome::RefusedTls),
            all(Outcome::BackendRestart),
            all(Outcome::Error),
            all(Outcome::LetIn),
        );
        let refused_resumed: u64 = [Kind::NoCert, Kind::ForeignCa, Kind::Expired, Kind::Revoked]
            .iter()
            .map(|k| t.resumed_count(*k))
            .sum();
        let _ = writeln!(
            o,
            "Handshakes that resumed a session: {} of {} new connections offering resumption; {} of the refused clients' (each refused again, on the resumed connection too). \
             Refused clients reaching the backend: {}.\n",
            t.resumed_count(Kind::NewResumed),
            t.kind_total(Kind::NewResumed),
            refused_resumed,
            match self.probes_seen() {
                Ok(seen) => format!(
                    "{} (the backends counted {seen} `{}` requests, {} of them the soak's control by user1)",
                    seen.saturating_sub(self.probe_controls),
                    mix::PROBE_PATH,
                    self.probe_controls
                ),
                Err(e) => format!("unknown ({e})"),
            }
        );
    }

    fn disturbances(&self, o: &mut String) {
        let r = &self.reloads;
        let _ = writeln!(o, "### Reloads, backend restarts, WebSockets\n");
        let _ = writeln!(
            o,
            "- reloads: {} SIGHUPs; {} valid sets taken ({} with a re-signed CRL), {} broken sets refused with the previous set kept serving; after each, a new connection got the expected certificate: {}",
            r.sighups,
            r.ok,
            r.crl_resigned,
            r.refused_broken,
            if r.problems.is_empty() {
                "yes".to_string()
            } else {
                format!("{} problems", r.problems.len())
            }
        );
        if let (Some(ok), Some(failed)) = (
            self.metric("weborca_proxy_reloads_total", "\"ok\""),
            self.metric("weborca_proxy_reloads_total", "\"failed\""),
        ) {
            let _ = writeln!(o, "- the proxy's `reloads_total`: ok {ok}, failed {failed}");
        }
        let _ = writeln!(
            o,
            "- revoked while open: {} reloads revoked a client holding a keep-alive connection and a WebSocket ({} skipped, its connections not openable then); its next request refused with the revoked page: {}, its WebSocket closed with 1008: {}; nothing of it forwarded after the reload (counted with the probe below)",
            r.revocations, r.revocations_skipped, r.revoked_request_refused, r.revoked_ws_closed
        );
        let gaps = &self.restarts.gaps_ms;
        let mut sorted = gaps.clone();
        sorted.sort_unstable();
        let _ = writeln!(
            o,
            "- backend restarts: {}{}; failures within {} s after the new backend listened were put down to the restart",
            self.restarts.count,
            if sorted.is_empty() {
                String::new()
            } else {
                format!(
                    ", kill to listening again {}–{} ms",
                    sorted[0],
                    sorted[sorted.len() - 1]
                )
            },
            self.tally.restart_grace().as_secs()
        );
        let by_restart: u64 = self.held.iter().map(|h| h.dropped_by_restart).sum();
        let otherwise: u64 = self.held.iter().map(|h| h.dropped_otherwise).sum();
        let reopened: u64 = self.held.iter().map(|h| h.reopened).sum();
        let open = self.held.iter().filter(|h| h.open_at_end).count();
        let _ = writeln!(
            o,
            "- held WebSockets: {}; dropped by backend restarts {by_restart} times (the backend holds the other end; reopened {reopened} times); dropped otherwise {otherwise} times, reloads included; open and echoing at the end: {open} of {}\n",
            mix::WS_HELD,
            mix::WS_HELD
        );
    }

    fn resources(&self, o: &mut String) {
        let fds = |f: &Fds| {
            format!(
                "{} ({} client conns, {} backend conns, {} listening, {} other)",
                f.total, f.clients, f.backend, f.listeners, f.other
            )
        };
        let _ = writeln!(o, "### Proxy memory and descriptors\n");
        let _ = writeln!(
            o,
            "| | start ({}) | peak (1 s samples) | end (load stopped, connections closed) | bound | |\n|---|---:|---:|---:|---|---|",
            self.start.map_or("none".into(), |(at, _, _)| format!(
                "{:.0} s in, under load",
                at.as_secs_f64()
            ))
        );
        match self.start {
            Some((_, rss, start_fds)) => {
                let rss_ok = mib(self.end_rss) <= mib(rss) + self.rss_bound_mib;
                let fd_ok = self.end_fds.total <= start_fds.total + self.fd_bound;
                let _ = writeln!(
                    o,
                    "| RSS, MiB | {:.1} | {:.1} | {:.1} | end ≤ start + {} | {} |",
                    mib(rss),
                    mib(self.peak_rss),
                    mib(self.end_rss),
                    self.rss_bound_mib,
                    if rss_ok { "ok" } else { "**exceeded**" }
                );
                let _ = writeln!(
                    o,
                    "| descriptors | {} | | {} | end ≤ start + {} | {} |\n",
                    fds(&start_fds),
                    fds(&self.end_fds),
                    self.fd_bound,
                    if fd_ok { "ok" } else { "**exceeded**" }
                );
            }
            None => {
                let _ = writeln!(
                    o,
                    "| RSS, MiB | | {:.1} | {:.1} | | |\n| descriptors | | | {} | | |\n",
                    mib(self.peak_rss),
                    mib(self.end_rss),
                    fds(&self.end_fds)
                );
            }
        }
        let _ = writeln!(
            o,
            "Client connections left in the proxy at the end: {}; backend connections left once the backend was stopped: {}.\n",
            self.end_fds.clients, self.backend_fds_after_stop
        );
    }

    fn proxy_log(&self, o: &mut String) {
        let l = &self.log;
        let _ = writeln!(
            o,
            "### Proxy log\n\n{} lines ({} access lines); lines mentioning a panic: {}; exit after SIGTERM: {}.\n",
            l.lines,
            l.access_lines,
            l.panic_count,
            match self.exit {
                Some(s) => s.to_string(),
                None => "none, killed".into(),
            }
        );
        for p in &l.panics {
            let _ = writeln!(o, "    {p}");
        }
        if l.by_kind.is_empty() {
            let _ = writeln!(o, "No warning or error lines.\n");
            return;
        }
        let _ = writeln!(o, "| level | kind | lines | expected |\n|---|---|---:|---|");
        for ((level, kind), n) in &l.by_kind {
            let why = expected_log(level, kind).unwrap_or("**no**");
            let _ = writeln!(o, "| {level} | {kind} | {n} | {why} |");
        }
        let _ = writeln!(o);
        for ((level, kind), line) in &l.example {
            if expected_log(level, kind).is_none() {
                let _ = writeln!(o, "    {line}");
            }
        }
    }

    fn proxy_metrics(&self, o: &mut String) {
        let Ok(text) = &self.metrics else {
            return;
        };
        let _ = writeln!(o, "### The proxy's /metrics at the end\n");
        for name in [
            "weborca_proxy_connections_total",
            "weborca_proxy_tls_handshakes_total",
            "weborca_proxy_client_cert_refusals_total",
            "weborca_proxy_requests_total",
            "weborca_proxy_backend_errors_total",
        ] {
            let samples: Vec<String> = text
                .lines()
                .filter(|l| !l.starts_with('#'))
                .filter_map(|l| {
                    let (key, value) = l.rsplit_once(' ')?;
                    let (metric, labels) = key.split_once('{').unwrap_or((key, "}"));
                    (metric == name).then(|| {
                        let labels = labels.trim_end_matches('}').replace('"', "");
                        if labels.is_empty() {
                            value.to_string()
                        } else {
                            format!("{labels} {value}")
                        }
                    })
                })
                .collect();
            let short = name.trim_start_matches("weborca_proxy_");
            let _ = writeln!(o, "- `{short}`: {}", samples.join(", "));
        }
        let _ = writeln!(o);
    }
}

/// 3rd, 5th…
fn ordinal(n: u64) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

/// CPU model, cores, load average.
fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    format!(
        "{cpu}, {cores} cores, load average at the end {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    )
}
