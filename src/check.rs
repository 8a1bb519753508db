//! `weborca-mtls-proxy check`: WebORCA's troubleshooting list (seeds/004:
//! files missing, key with passphrase, wrong CN, expired certificate, …) as a
//! command. One line per check, `ok` / `warn` / `FAIL` with the fix; exit 0
//! only when nothing failed. It reads, never changes anything.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use crate::config::{Config, ConfigError, CrlStale};
use crate::guard::{self, SCRIPT_PATH, TABLE, UNIT};
use crate::load::{self, Failure, Steps};
use crate::policy::{self, Policy, PolicyError};
use crate::tls::{KeyError, Sessions, TlsState};
use crate::x509::CertInfo;

/// The user WebORCA and the proxy's unit run as.
const SERVICE_USER: &str = "orca";
/// How long the backend may take to answer the check.
const BACKEND_CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// How one check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// fine
    Ok,
    /// works, but should be looked at
    Warn,
    /// the proxy will not work (or not safely) like this
    Fail,
}

/// One line of the report.
#[derive(Debug, Clone)]
pub struct Line {
    /// the outcome
    pub level: Level,
    /// what was checked and found
    pub text: String,
    /// what to do, for warn and FAIL
    pub fix: Option<String>,
}

impl std::fmt::Display for Line {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tag = match self.level {
            Level::Ok => "ok  ",
            Level::Warn => "warn",
            Level::Fail => "FAIL",
        };
        write!(f, "{tag} {}", self.text)?;
        if let Some(fix) = &self.fix {
            write!(f, " — fix: {fix}")?;
        }
        Ok(())
    }
}

/// The report being written.
#[derive(Default)]
struct Report {
    lines: Vec<Line>,
}

impl Report {
    fn ok(&mut self, text: impl Into<String>) {
        self.lines.push(Line {
            level: Level::Ok,
            text: text.into(),
            fix: None,
        });
    }
    fn warn(&mut self, text: impl Into<String>, fix: impl Into<String>) {
        self.lines.push(Line {
            level: Level::Warn,
            text: text.into(),
            fix: Some(fix.into()),
        });
    }
    fn fail(&mut self, text: impl Into<String>, fix: impl Into<String>) {
        self.lines.push(Line {
            level: Level::Fail,
            text: text.into(),
            fix: Some(fix.into()),
        });
    }
}

/// Runs every check; `hosts` are the names clients use (empty: this machine's).
///
/// The config and TLS state are read by the same load as the server's
/// ([`load::load_from`]), reporting each step here instead of in the log.
pub fn run(config_path: &Path, hosts: &[String]) -> Vec<Line> {
    let mut steps = Checks {
        r: Report::default(),
        hosts,
    };
    let Ok(config) = load::read_config(config_path, &mut steps) else {
        return steps.r.lines;
    };
    steps.load(config.clone());
    let mut r = steps.r;
    check_backend(&mut r, &config);
    check_backend_exposure(&mut r, &config);
    r.lines
}

/// The certificate part of the list (files, permissions, key, dates, hosts,
/// chain, CRL), which `setup` runs before it changes anything.
pub fn certificates(config: &Config, hosts: &[String]) -> Vec<Line> {
    let mut steps = Checks {
        r: Report::default(),
        hosts,
    };
    steps.load(config.clone());
    steps.r.lines
}

/// The load's steps, as lines of the report.
struct Checks<'a> {
    r: Report,
    hosts: &'a [String],
}

impl Checks<'_> {
    /// The files, TLS and certificate steps of the load for `config`.
    fn load(&mut self, config: Config) {
        match Sessions::new() {
            // The outcome is in the report: a failed step has its FAIL line.
            Ok(sessions) => drop(load::load_from(config, &sessions, self)),
            Err(e) => {
                check_files(&mut self.r, &config);
                self.r.fail(
                    format!("TLS session setup failed: {e}"),
                    "report this: the TLS library could not start",
                );
            }
        }
    }
}

impl Steps for Checks<'_> {
    fn config_read(&mut self, path: &Path, warnings: &[String]) {
        self.r.ok(format!("config {} reads", path.display()));
        for w in warnings {
            self.r
                .warn(w.clone(), "correct the line in the config file");
        }
    }

    fn config_failed(&mut self, error: &ConfigError) {
        self.r.fail(
            error.to_string(),
            "correct the config file (see conf/proxy.conf for every key)",
        );
    }

    /// Never stops the load: a missing file has its FAIL line, and the TLS
    /// step says what that means for the certificates.
    fn files(&mut self, config: &Config) -> Result<(), Failure> {
        check_files(&mut self.r, config);
        Ok(())
    }

    fn tls_failed(&mut self, error: &KeyError) {
        match error {
            KeyError::PassphraseNeeded(e) => self.r.fail(
                format!("PASSWORD input was canceled: {}", e.problem),
                e.fix.clone(),
            ),
            KeyError::Other(e) => self.r.fail(
                format!("{} ({}): {}", e.key, e.path.display(), e.problem),
                e.fix.clone(),
            ),
        }
    }

    fn tls_loaded(&mut self, config: &Config, tls: &TlsState) {
        self.r
            .ok("server key matches the certificate; CA_CRT and CA_CRL load");
        check_server_cert(&mut self.r, config, &tls.server_cert, self.hosts);
        check_chain(&mut self.r, tls);
        check_crls(&mut self.r, tls);
    }

    fn policy_loaded(&mut self, policy: Option<&Policy>) {
        if let Some(p) = policy {
            check_policy(&mut self.r, p);
        }
    }

    fn policy_failed(&mut self, error: &PolicyError) {
        self.r.fail(
            error.to_string(),
            "correct the line (see conf/access-policy.example); until then the running proxy keeps its old rules, and a start fails",
        );
    }
}

/// Every file named by the config: there, readable by the service user, keys private.
fn check_files(r: &mut Report, config: &Config) {
    let user = service_user();
    if user.is_none() {
        r.warn(
            format!("user {SERVICE_USER} does not exist on this machine"),
            "the unit runs as orca (WebORCA's user); install WebORCA or edit User= in the unit",
        );
    }
    let mut files: Vec<(&str, &Path, bool)> = Vec::new();
    let singles = [
        ("CA_CRT", &config.ca_crt, false),
        ("SERVER_CRT", &config.server_crt, false),
        ("SERVER_PEM", &config.server_pem, true),
        ("SERVER_P12", &config.server_p12, true),
        ("SERVER_PASS_FILE", &config.server_pass_file, true),
    ];
    for (key, path, secret) in singles {
        if let Some(p) = path {
            files.push((key, p, secret));
        }
    }
    for p in &config.ca_crl {
        files.push(("CA_CRL", p, false));
    }
    for (key, path, secret) in files {
        check_file(r, key, path, secret, user);
    }
}

fn check_file(r: &mut Report, key: &str, path: &Path, secret: bool, user: Option<(u32, u32)>) {
    let shown = path.display();
    let meta = match std::fs::metadata(path) {
        Ok(m) if m.is_file() => m,
        Ok(_) => {
            return r.fail(
                format!("{key} {shown} is not a file"),
                format!("point {key} at the file itself"),
            );
        }
        Err(e) => {
            return r.fail(
                format!("{key} {shown}: {e}"),
                format!("copy the file from orca-catool's zip there, or correct {key}"),
            );
        }
    };
    if let Err(e) = std::fs::File::open(path) {
        return r.fail(
            format!("{key} {shown} cannot be read: {e}"),
            "chown orca:orca and chmod 400 the file",
        );
    }
    let mode = meta.mode() & 0o777;
    match user {
        Some((uid, gid)) if !readable_by(&meta, uid, gid) => r.fail(
            format!("{key} {shown} is not readable by user {SERVICE_USER} (owner uid {}, mode {mode:03o})", meta.uid()),
            format!("sudo chown {SERVICE_USER}:{SERVICE_USER} {shown}; sudo chmod 400 {shown}"),
        ),
        None => r.ok(format!("{key} {shown} exists and is readable")),
        Some(_) => r.ok(format!("{key} {shown} exists and is readable by {SERVICE_USER}")),
    }
    if secret && mode & 0o077 != 0 {
        r.fail(
            format!("{key} {shown} is readable by group or others (mode {mode:03o}): anyone on the server could copy the key"),
            format!("sudo chmod 400 {shown}"),
        );
    }
}

fn readable_by(meta: &std::fs::Metadata, uid: u32, gid: u32) -> bool {
    let mode = meta.mode();
    (meta.uid() == uid && mode & 0o400 != 0)
        || (meta.gid() == gid && mode & 0o040 != 0)
        || mode & 0o004 != 0
}

/// uid and gid of the service user, from /etc/passwd.
fn service_user() -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.first() == Some(&SERVICE_USER) && f.len() > 3)
            .then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))?
    })
}

fn check_server_cert(r: &mut Report, config: &Config, cert: &CertInfo, hosts: &[String]) {
    let now = chrono::Utc::now();
    let days = cert.days_left(now);
    let subject = &cert.subject_oneline;
    if cert.not_before > now {
        r.fail(
            format!(
                "server certificate {subject} is not valid before {}",
                cert.not_before
            ),
            "check the server's clock, or issue a new certificate",
        );
    } else if days < 0 {
        r.fail(
            format!("The certificate({subject}) will be expired in {days} days: browsers refuse it"),
            "orca-catool issue_server_cert, then replace SERVER_CRT/SERVER_PEM and systemctl reload weborca-mtls-proxy",
        );
    } else if days <= i64::from(config.cert_warn_days) {
        r.warn(
            format!("server certificate {subject} expires in {days} days"),
            "issue a new one with orca-catool issue_server_cert before then",
        );
    } else {
        r.ok(format!(
            "server certificate {subject} is valid, {days} days left"
        ));
    }
    let hosts = if hosts.is_empty() {
        this_machine()
    } else {
        hosts.to_vec()
    };
    for host in hosts {
        if cert.covers_host(&host) {
            r.ok(format!("server certificate covers {host}"));
        } else {
            let sans: Vec<String> = cert
                .dns_names
                .iter()
                .cloned()
                .chain(cert.ip_addresses.iter().map(IpAddr::to_string))
                .collect();
            r.fail(
                format!("server certificate does not cover {host} (it names {})", sans.join(", ")),
                format!("clients must open https://NAME:8000 with a NAME the certificate names, or issue one with orca-catool issue_server_cert -c {host} (or -i for an address)"),
            );
        }
    }
}

/// This machine's host name and non-loopback addresses: what LAN clients type.
fn this_machine() -> Vec<String> {
    let mut hosts = Vec::new();
    if let Ok(name) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        hosts.push(name.trim().to_string());
    }
    if let Ok(ifs) = if_addrs::get_if_addrs() {
        for i in ifs {
            if !i.is_loopback() && !i.is_link_local() {
                hosts.push(i.ip().to_string());
            }
        }
    }
    hosts
}

/// Is the server certificate issued by a CA of CA_CRT (browsers that imported ca.crt trust it)?
fn check_chain(r: &mut Report, tls: &TlsState) {
    let issuer = tls.server_cert.issuer_oneline.clone();
    if tls.ca_subjects.contains(&issuer) {
        r.ok(format!(
            "server certificate is issued by the CA of CA_CRT ({issuer})"
        ));
    } else {
        r.warn(
            format!("server certificate is issued by {issuer}, not by the CA of CA_CRT ({})", tls.ca_subjects.join(", ")),
            "clients must trust that issuer too; with orca-catool, server and client certificates come from the same CA",
        );
    }
    for ca in &tls.ca_certs {
        let days = ca.days_left(chrono::Utc::now());
        if days < 0 {
            r.fail(
                format!("CA certificate {} has expired", ca.subject_oneline),
                "make a new CA and reissue the certificates",
            );
        }
    }
}

fn check_crls(r: &mut Report, tls: &TlsState) {
    let now = chrono::Utc::now();
    let fix = "run orca-catool issue_crl and copy the new CRL there";
    for crl in &tls.crls {
        let shown = crl.path.display();
        match crl.next_update {
            Some(next) if next < now && tls.crl_stale == CrlStale::Refuse => r.fail(
                format!(
                    "CA_CRL {shown} is out of date (nextUpdate {next}); with CRL_STALE=refuse every client is refused"
                ),
                fix,
            ),
            Some(next) if next < now => r.warn(
                format!(
                    "CA_CRL {shown} is out of date (nextUpdate {next}); CRL_STALE=warn keeps using it"
                ),
                fix,
            ),
            next => r.ok(format!(
                "CA_CRL {shown} is signed by {} and current (nextUpdate {}), {} revoked",
                crl.issuer,
                next.map_or_else(|| "none".to_string(), |n| n.to_string()),
                crl.revoked
            )),
        }
    }
}

/// WebORCA answers plain HTTP at BACKEND_URL.
fn check_backend(r: &mut Report, config: &Config) {
    let url = &config.backend.url;
    let fix =
        "start WebORCA in plain HTTP on that port (HTTP_PORT=8001 in its service environment)";
    let addr = match config
        .backend
        .authority
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
    {
        Some(a) => a,
        None => {
            return r.fail(
                format!(
                    "BACKEND_URL {url}: cannot resolve {}",
                    config.backend.authority
                ),
                fix,
            );
        }
    };
    match http_probe(addr, &config.backend.authority) {
        Ok(status) => r.ok(format!("WebORCA answers at {url} ({status})")),
        Err(e) => r.fail(format!("WebORCA does not answer at {url}: {e}"), fix),
    }
}

/// Sends `HEAD /` to `addr`; the status line of the answer.
pub fn http_probe(addr: SocketAddr, host: &str) -> std::io::Result<String> {
    let mut tcp = TcpStream::connect_timeout(&addr, BACKEND_CHECK_TIMEOUT)?;
    tcp.set_read_timeout(Some(BACKEND_CHECK_TIMEOUT))?;
    tcp.write_all(
        format!("HEAD / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    )?;
    let mut buf = [0u8; 64];
    let n = tcp.read(&mut buf)?;
    let head = String::from_utf8_lossy(&buf[..n]);
    let status = head.lines().next().unwrap_or("").to_string();
    if status.starts_with("HTTP/") {
        Ok(status)
    } else {
        Err(std::io::Error::other("the answer is not HTTP"))
    }
}

/// The backend port must not be reachable from the LAN: that would bypass the
/// proxy, unless the backend guard drops it there.
fn check_backend_exposure(r: &mut Report, config: &Config) {
    let port = config.backend.port;
    let exposed: Vec<IpAddr> = listening_sockets()
        .into_iter()
        .filter(|(ip, p)| *p == port && !ip.is_loopback())
        .map(|(ip, _)| ip)
        .collect();
    let guard = crate::guard::state(port);
    r.lines.extend(exposure(port, &guard, &exposed));
}

/// Listening TCP sockets from the kernel's tables (/proc/net/tcp, /proc/net/tcp6).
pub fn listening_sockets() -> Vec<(IpAddr, u16)> {
    let mut out = Vec::new();
    for (file, v6) in [("/proc/net/tcp", false), ("/proc/net/tcp6", true)] {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // field 3 is the state: 0A = LISTEN
            if fields.get(3) != Some(&"0A") {
                continue;
            }
            if let Some(local) = fields.get(1).and_then(|l| parse_proc_addr(l, v6)) {
                out.push(local);
            }
        }
    }
    out
}

/// `0100007F:1F41` (IPv4, little-endian words) or 32 hex digits (IPv6) and a port.
fn parse_proc_addr(s: &str, v6: bool) -> Option<(IpAddr, u16)> {
    let (ip, port) = s.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let words: Vec<u32> = (0..ip.len() / 8)
        .map(|i| {
            ip.get(i * 8..i * 8 + 8)
                .and_then(|w| u32::from_str_radix(w, 16).ok())
        })
        .collect::<Option<_>>()?;
    let bytes: Vec<u8> = words
        .iter()
        .flat_map(|w| w.swap_bytes().to_be_bytes())
        .collect();
    let ip = if v6 {
        let b: [u8; 16] = bytes.try_into().ok()?;
        let v6 = std::net::Ipv6Addr::from(b);
        v6.to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6))
    } else {
        let b: [u8; 4] = bytes.try_into().ok()?;
        IpAddr::V4(b.into())
    };
    Some((ip, port))
}

/// Prints the report; returns whether nothing failed.
pub fn print(lines: &[Line]) -> bool {
    for l in lines {
        println!("{l}");
    }
    let failed = lines.iter().filter(|l| l.level == Level::Fail).count();
    let warned = lines.iter().filter(|l| l.level == Level::Warn).count();
    println!("{} checks: {failed} failed, {warned} warnings", lines.len());
    failed == 0
}

/// The `check` lines about the backend port: where it listens and whether the
/// guard is in force. Listening on a non-loopback address without the guard FAILs.
fn exposure(port: u16, state: &guard::State, exposed: &[IpAddr]) -> Vec<Line> {
    let line = |level, text: String, fix: Option<String>| Line { level, text, fix };
    let mut lines = Vec::new();
    let guard_text = match state {
        guard::State::Loaded => format!(
            "backend guard loaded: nftables table inet {TABLE} drops port {port} from every interface but lo"
        ),
        guard::State::OtherPort(ports) => {
            format!("backend guard loaded for port(s) {ports:?}, not for port {port}")
        }
        guard::State::NotLoaded => {
            format!("backend guard not loaded (no nftables table inet {TABLE})")
        }
        guard::State::Unknown(why) => format!("backend guard state unknown: {why}"),
    };
    let guard_fix = format!(
        "sudo weborca-mtls-proxy setup (or: weborca-mtls-proxy guard print --port {port} > {SCRIPT_PATH}; sudo systemctl enable --now {UNIT})"
    );
    if exposed.is_empty() {
        lines.push(line(
            Level::Ok,
            format!("port {port} (WebORCA) listens on loopback only"),
            None,
        ));
        match state {
            guard::State::Loaded => lines.push(line(Level::Ok, guard_text, None)),
            _ => lines.push(line(Level::Warn, format!("{guard_text}: should WebORCA listen on every interface again, LAN clients could reach it"), Some(guard_fix))),
        }
        return lines;
    }
    let on: Vec<String> = exposed
        .iter()
        .map(|ip| {
            if ip.is_unspecified() {
                format!("{ip} (every address)")
            } else {
                ip.to_string()
            }
        })
        .collect();
    let on = on.join(", ");
    if *state == guard::State::Loaded {
        lines.push(line(Level::Ok, format!("port {port} (WebORCA) listens on {on}, but only this machine reaches it: {guard_text}"), None));
    } else {
        lines.push(line(
            Level::Fail,
            format!("port {port} (WebORCA) listens on {on} and {guard_text}: LAN clients can reach WebORCA without a certificate"),
            Some(format!(
                "{guard_fix}; or make WebORCA listen on 127.0.0.1 only"
            )),
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_addresses_parse() {
        assert_eq!(
            parse_proc_addr("0100007F:1F41", false),
            Some(("127.0.0.1".parse().unwrap(), 8001))
        );
        assert_eq!(
            parse_proc_addr("00000000:1F40", false),
            Some(("0.0.0.0".parse().unwrap(), 8000))
        );
        assert_eq!(
            parse_proc_addr("00000000000000000000000001000000:1F41", true),
            Some(("::1".parse().unwrap(), 8001))
        );
        assert_eq!(
            parse_proc_addr("0000000000000000FFFF00000100007F:0050", true),
            Some(("127.0.0.1".parse().unwrap(), 80))
        );
        assert_eq!(parse_proc_addr("garbage", false), None);
    }
}

// ---------------------------------------------------------------------------
// ACCESS_POLICY

/// The policy's lines: it reads, and rules that can never decide (an earlier
/// rule of the same prefix admits every certificate and method they admit),
/// prefixes written other than they match, and a file without rules.
fn check_policy(r: &mut Report, p: &Policy) {
    let file = p.file().display();
    r.ok(format!(
        "ACCESS_POLICY {file} reads: {} rules",
        p.rules().len()
    ));
    if p.rules().is_empty() {
        r.warn(
            format!("ACCESS_POLICY {file} has no rules: every request is refused (not-permitted)"),
            "add rules (see conf/access-policy.example), or unset ACCESS_POLICY to let every verified certificate use every path",
        );
    }
    for dead in p.dead_rules() {
        r.warn(
            format!(
                "ACCESS_POLICY rule {} never decides: rule {} (same prefix, earlier) admits every certificate and method it admits",
                dead.rule, dead.covered_by
            ),
            "remove the line, or merge its names into the earlier rule",
        );
    }
    for rule in p.rules() {
        if rule.written_prefix.trim_end_matches('/') != rule.prefix
            && rule.written_prefix != rule.prefix
        {
            r.warn(
                format!(
                    "ACCESS_POLICY rule {}: prefix `{}` matches as `{}` (paths are normalised before matching)",
                    rule.name, rule.written_prefix, rule.prefix
                ),
                format!("write it as {}", rule.prefix),
            );
        }
    }
}

/// `check --as-cert FILE --path P [--method M]`: which rule would decide
/// for the certificate in `cert_file` (PEM or DER) asking `method` on `path`,
/// and why. The last line is `ok` when allowed, `FAIL` when refused, so the
/// exit code answers the question.
pub fn as_cert(config_path: &Path, cert_file: &Path, path: &str, method: &str) -> Vec<Line> {
    let mut steps = Checks {
        r: Report::default(),
        hosts: &[],
    };
    let Ok(config) = load::read_config(config_path, &mut steps) else {
        return steps.r.lines;
    };
    let Ok(policy) = load::load_policy(&config, &mut steps) else {
        return steps.r.lines;
    };
    let mut r = steps.r;
    let cert = match read_cert(cert_file) {
        Ok(c) => c,
        Err(e) => {
            r.fail(
                format!("--as-cert {}: {e}", cert_file.display()),
                "give a client certificate file, PEM (.crt) or DER",
            );
            return r.lines;
        }
    };
    let who = format!("{} (serial {})", cert.subject_oneline, cert.serial_hex);
    let Some(policy) = policy else {
        r.ok(format!(
            "ACCESS_POLICY is not set: {method} {path} is allowed for {who}, as every path for every verified certificate"
        ));
        return r.lines;
    };
    let raw = path.split('?').next().unwrap_or(path);
    let normal = match policy::normalize(raw) {
        Ok(n) => n,
        Err(why) => {
            r.fail(
                format!("{method} {path}: refused with 400 before any rule: the path has {why}"),
                "a client must spell the path without it",
            );
            return r.lines;
        }
    };
    if normal != raw {
        r.ok(format!("{path} is matched as {normal}"));
    }
    let decision = policy.decide(&cert, method, &normal);
    let text = format!("{method} {normal} for {who}: {}", decision.why());
    if decision.allowed() {
        r.ok(text);
    } else {
        r.fail(
            text,
            format!(
                "if it should be allowed, add a rule for {normal} naming this certificate to {}",
                policy.file().display()
            ),
        );
    }
    r.lines
}

/// A certificate file, PEM (first certificate) or DER.
fn read_cert(file: &Path) -> Result<CertInfo, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let bytes = std::fs::read(file).map_err(|e| format!("cannot be read: {e}"))?;
    let der = match CertificateDer::from_pem_slice(&bytes) {
        Ok(der) => der.to_vec(),
        Err(_) => bytes,
    };
    CertInfo::from_der(&der).map_err(|e| e.to_string())
}
