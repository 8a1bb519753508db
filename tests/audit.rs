//! `audit` on logs the real proxy wrote: traffic through real TLS (two users,
//! refusals of each kind, ORCA API calls, a certificate about to expire),
//! LOG_FILE rotated twice the way logrotate does (`.1`, then `.2.gz`), in
//! text and in JSON; then the real binary's report, whose every figure must
//! equal what was sent.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use bytes::Bytes;
use http_body_util::Full;

use crate::util::backend::Backend;
use crate::util::client::Client;
use crate::util::env::Setup;
use crate::util::logged::Proxy;
use crate::util::pki::{Ca, Leaf, write};
use crate::util::process::bin;

/// What the test sent, as the report must count it.
#[derive(Default)]
struct Sent {
    /// (cn, serial, ca) → (requests, refused requests)
    users: BTreeMap<(String, String, String), (u64, u64)>,
    /// reason → refused attempts
    refused: BTreeMap<String, u64>,
    /// API name → calls forwarded
    api: BTreeMap<String, u64>,
}

fn serial(leaf: &Leaf) -> String {
    format!("{:02x}", leaf.serial)
}

fn request(method: &str, path: &str) -> http::Request<Full<Bytes>> {
    http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

/// A certificate of another CA with `user`'s CN and serial: every CA
/// numbers its certificates the same way, so nothing stops one from
/// issuing a clinic user's name and number.
fn same_name_and_serial(user: &Leaf) -> Leaf {
    let other = Ca::new("other-clinic-ca");
    loop {
        let leaf = other.client(&user.cn);
        assert!(
            leaf.serial <= user.serial,
            "{} is past {}",
            leaf.serial,
            user.serial
        );
        if leaf.serial == user.serial {
            return leaf;
        }
    }
}

/// The people and certificates of the test.
struct Cast {
    ca_pem: String,
    user1: Leaf,
    user2: Leaf,
    soon: Leaf,
    revoked: Leaf,
    outsider: Leaf,
    stranger: Leaf,
    /// another CA's certificate with user1's CN and serial
    impostor: Leaf,
}

impl Cast {
    /// An allowed request by `who`, counted as sent.
    async fn allowed(
        &self,
        sent: &mut Sent,
        addr: SocketAddr,
        who: &Leaf,
        method: &str,
        path: &str,
    ) {
        let answer = Client::h1(&self.ca_pem, Some(who))
            .send(addr, request(method, path))
            .await
            .unwrap();
        assert_eq!(answer.status, 200, "{method} {path} by {}", who.cn);
        let key = (who.cn.clone(), serial(who), "CA_CRT".to_string());
        let user = sent.users.entry(key).or_default();
        user.0 += 1;
        if let Some(name) = api_name(path) {
            *sent.api.entry(name).or_default() += 1;
        }
    }

    /// A refused request (its own connection) by `who`, or without a certificate.
    async fn refused(&self, sent: &mut Sent, addr: SocketAddr, who: Option<&Leaf>, reason: &str) {
        self.refused_at(sent, addr, who, "/api01rv2/patientgetv2?id=9", reason)
            .await;
    }

    /// The same, asking for `path`.
    async fn refused_at(
        &self,
        sent: &mut Sent,
        addr: SocketAddr,
        who: Option<&Leaf>,
        path: &str,
        reason: &str,
    ) {
        let answer = Client::h1(&self.ca_pem, who)
            .send(addr, request("GET", path))
            .await
            .unwrap();
        assert_eq!(answer.status, 403, "{reason}");
        assert_eq!(answer.header("x-client-cert-error"), Some(reason));
        // a certificate of another CA is a row of its own
        let ca = match (who, reason) {
            (None, _) => "-",
            (Some(_), "unknown-ca") => "unknown-ca",
            (Some(_), _) => "CA_CRT",
        };
        let key = who.map_or(("-".into(), "-".into(), ca.into()), |w| {
            (w.cn.clone(), serial(w), ca.into())
        });
        let user = sent.users.entry(key).or_default();
        user.0 += 1;
        user.1 += 1;
        *sent.refused.entry(reason.to_string()).or_default() += 1;
    }
}

/// The API name as the report has it: the path without its query.
fn api_name(path: &str) -> Option<String> {
    let path = path.split('?').next().unwrap();
    ["/api01rv2/", "/orca11/", "/blobapi/"]
        .iter()
        .any(|p| path.starts_with(p))
        .then(|| path.to_string())
}

/// logrotate with `compress` and `delaycompress`: `.1` becomes `.2.gz`, the
/// log becomes `.1`, and SIGHUP reopens it.
fn rotate(proxy: &Proxy, log: &Path) {
    let one = PathBuf::from(format!("{}.1", log.display()));
    if one.exists() {
        let plain = std::fs::read(&one).unwrap();
        let gz = std::fs::File::create(format!("{}.2.gz", log.display())).unwrap();
        let mut enc = flate2::write::GzEncoder::new(gz, flate2::Compression::default());
        enc.write_all(&plain).unwrap();
        enc.finish().unwrap();
        std::fs::remove_file(&one).unwrap();
    }
    std::fs::rename(log, &one).unwrap();
    proxy.signal("HUP");
    proxy.wait_for("reload: ok");
}

/// Runs the real binary's `audit`; returns stdout.
fn audit(args: &[&str]) -> String {
    let out = Command::new(bin())
        .arg("audit")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "audit {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// One row of the CSV report.
#[derive(Debug, serde::Deserialize)]
struct Row {
    section: String,
    cn: String,
    serial: String,
    ca: String,
    requests: Option<u64>,
    refused: Option<u64>,
    reason: String,
    addresses: String,
    name: String,
    count: Option<u64>,
    days_left: Option<i64>,
}

fn rows(csv_text: &str) -> Vec<Row> {
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    let header = reader.headers().unwrap().clone();
    assert_eq!(&header[0], "section", "one header row: {header:?}");
    reader.deserialize().map(|r| r.unwrap()).collect()
}

/// The `refused` section of a report: (reason, count) per row.
fn refused_rows(rows: &[Row]) -> Vec<(&str, u64)> {
    rows.iter()
        .filter(|r| r.section == "refused")
        .map(|r| (r.reason.as_str(), r.count.unwrap()))
        .collect()
}

/// Every figure of the CSV against what was sent.
fn check_csv(csv_text: &str, sent: &Sent, cast: &Cast, garbage: u64) {
    let rows = rows(csv_text);
    let section = |s: &'static str| rows.iter().filter(move |r| r.section == s);
    let summary = |name: &str| {
        section("summary")
            .find(|r| r.name == name)
            .and_then(|r| r.count)
            .unwrap()
    };
    assert_eq!(summary("unreadable"), garbage, "{csv_text}");
    // Per user, summed over the days (the test may run across midnight).
    let mut users: BTreeMap<(String, String, String), (u64, u64)> = BTreeMap::new();
    for r in section("user-day") {
        let key = (r.cn.clone(), r.serial.clone(), r.ca.clone());
        let u = users.entry(key).or_default();
        u.0 += r.requests.unwrap();
        u.1 += r.refused.unwrap();
        assert_eq!(r.addresses, "127.0.0.1", "{r:?}");
    }
    // A refused certificate is named as it reads (the unknown CA's too, in
    // a row of its own even with user1's CN and serial); requests without
    // one are the user `-`.
    let expected = sent.users.clone();
    assert_eq!(users, expected, "{csv_text}");
    let mut refused: BTreeMap<String, u64> = BTreeMap::new();
    for r in section("refused") {
        assert_eq!(r.addresses, "127.0.0.1", "{r:?}");
        *refused.entry(r.reason.clone()).or_default() += r.count.unwrap();
    }
    assert_eq!(refused, sent.refused, "{csv_text}");
    let api: BTreeMap<String, u64> = section("api")
        .map(|r| (r.name.clone(), r.count.unwrap()))
        .collect();
    assert_eq!(api, sent.api, "{csv_text}");
    let expiring: Vec<&Row> = section("expiring").collect();
    assert_eq!(expiring.len(), 1, "{csv_text}");
    assert_eq!(
        (expiring[0].cn.as_str(), expiring[0].serial.as_str()),
        (cast.soon.cn.as_str(), serial(&cast.soon).as_str())
    );
    // issued for ten days, a moment ago
    assert_eq!(expiring[0].days_left, Some(9), "{csv_text}");
}

/// The proxy as a process for `setup`, logging to LOG_FILE in `format`,
/// with the CRL `ca.crl` of the setup's folder and the config lines
/// `extra`: (the proxy, its config, LOG_FILE).
fn logging_proxy(
    setup: &Setup,
    backend: &Backend,
    format: &str,
    extra: &str,
) -> (Proxy, PathBuf, PathBuf) {
    let d = setup.dir.path();
    let log = d.join("proxy.log");
    let conf = setup.write_config(&backend.url());
    let mut text = std::fs::read_to_string(&conf).unwrap();
    text.push_str(&format!(
        "LOG_FILE={}\nLOG_FORMAT={format}\nCA_CRL={}/ca.crl\n{extra}",
        log.display(),
        d.display()
    ));
    std::fs::write(&conf, text).unwrap();
    (Proxy::start(&conf), conf, log)
}

async fn traffic_then_audit(format: &str) {
    let backend = Backend::start().await;
    let setup = Setup::new();
    let d = setup.dir.path().to_path_buf();
    let ca = &setup.ca;
    let cast = Cast {
        ca_pem: ca.pem.clone(),
        user1: setup.user1.clone(),
        user2: ca.client("user2"),
        soon: ca.client_valid("soon", -1, 10),
        revoked: ca.client("revoked-user"),
        outsider: ca.client("outsider"),
        stranger: Ca::new("stranger-ca").client("stranger"),
        impostor: same_name_and_serial(&setup.user1),
    };
    write(&d, "ca.crl", &ca.crl(&[cast.revoked.serial]));
    let (proxy, conf, log) = logging_proxy(
        &setup,
        &backend,
        format,
        "ALLOW_CN=user1,user2,soon,revoked-user\nADMIN_CN=user1\n",
    );
    let addr = proxy.listening();
    let mut sent = Sent::default();
    let c = &cast;
    // In what becomes .2.gz
    for _ in 0..3 {
        c.allowed(
            &mut sent,
            addr,
            &c.user1,
            "GET",
            "/api01rv2/patientgetv2?id=1",
        )
        .await;
    }
    c.allowed(
        &mut sent,
        addr,
        &c.user1,
        "POST",
        "/orca11/acceptmodv2?class=01",
    )
    .await;
    c.refused(&mut sent, addr, None, "missing").await;
    rotate(&proxy, &log);
    // In what becomes .1
    c.allowed(
        &mut sent,
        addr,
        &c.user2,
        "GET",
        "/api01rv2/appointlstv2?class=01",
    )
    .await;
    c.allowed(&mut sent, addr, &c.user2, "GET", "/").await;
    c.refused(&mut sent, addr, Some(&c.revoked), "revoked")
        .await;
    c.refused(&mut sent, addr, Some(&c.stranger), "unknown-ca")
        .await;
    c.refused(&mut sent, addr, Some(&c.impostor), "unknown-ca")
        .await;
    rotate(&proxy, &log);
    // In the log itself
    c.allowed(
        &mut sent,
        addr,
        &c.user1,
        "POST",
        "/orca11/acceptmodv2?class=02",
    )
    .await;
    c.allowed(&mut sent, addr, &c.user2, "GET", "/blobapi/1234")
        .await;
    c.allowed(
        &mut sent,
        addr,
        &c.soon,
        "GET",
        "/api01rv2/system01lstv2?class=02",
    )
    .await;
    c.refused(&mut sent, addr, Some(&c.outsider), "not-allowed")
        .await;
    // the operator console, to a user not in ADMIN_CN
    c.refused_at(
        &mut sent,
        addr,
        Some(&c.user2),
        "/.well-known/weborca-mtls-proxy/",
        "not-permitted",
    )
    .await;
    c.refused(&mut sent, addr, None, "missing").await;
    let forwarded: u64 = sent.users.values().map(|(r, f)| r - f).sum();
    assert_eq!(
        backend.count() as u64,
        forwarded,
        "refused requests never reach WebORCA"
    );
    proxy.stop();

    let files = [
        format!("{}.2.gz", log.display()),
        format!("{}.1", log.display()),
        log.display().to_string(),
    ];
    if format == "json" {
        for f in &files[1..] {
            for line in std::fs::read_to_string(f).unwrap().lines() {
                let v: serde_json::Value = serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("{f}: not JSON ({e}): {line}"));
                assert!(v["time"].is_string() && v["level"].is_string(), "{line}");
            }
        }
    }
    if format == "text" {
        // The access line is as it always was: its fields are for JSON only.
        let text = std::fs::read_to_string(&log).unwrap();
        // (the refusal lines name user1 too: the impostor's certificate)
        let access: Vec<&str> = text
            .lines()
            .filter(|l| l.contains(" cn=user1 serial=") && l.contains(" HTTP/"))
            .collect();
        assert!(!access.is_empty(), "{text}");
        for line in access {
            let (_, tail) = line.rsplit_once("\" ").unwrap();
            let parts: Vec<&str> = tail.split(' ').collect();
            assert!(
                parts.len() == 3 && parts[2].ends_with("ms"),
                "STATUS BYTES DURATIONms and nothing after: {line}"
            );
        }
    }
    // Garbage is counted, not fatal.
    let mut current = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    current
        .write_all(b"this is not a log line\n\xff\xfe binary\n")
        .unwrap();
    drop(current);

    // LOG_FILE and its rotated copies, from the config.
    let conf_s = conf.display().to_string();
    let csv_text = audit(&["-c", conf_s.as_str(), "--format", "csv"]);
    check_csv(&csv_text, &sent, &cast, 2);

    // --user: only that CN's rows.
    let only = rows(&audit(&[
        "-c",
        conf_s.as_str(),
        "--format",
        "csv",
        "--user",
        "user2",
    ]));
    let user_rows: Vec<&Row> = only.iter().filter(|r| r.section == "user-day").collect();
    assert!(
        !user_rows.is_empty() && user_rows.iter().all(|r| r.cn == "user2"),
        "{only:?}"
    );
    let user2 = sent.users[&(
        "user2".to_string(),
        serial(&cast.user2),
        "CA_CRT".to_string(),
    )]
        .0;
    assert_eq!(
        user_rows.iter().map(|r| r.requests.unwrap()).sum::<u64>(),
        user2
    );

    // --user: that CN's refused connections too, by reason.
    let only = rows(&audit(&[
        "-c",
        conf_s.as_str(),
        "--format",
        "csv",
        "--user",
        "revoked-user",
    ]));
    assert_eq!(refused_rows(&only), [("revoked", 1)], "{only:?}");

    // The HTML report, files named on the command line.
    let mut args = vec!["-c", conf_s.as_str(), "--format", "html"];
    args.extend(files.iter().map(String::as_str));
    let page = scraper::Html::parse_document(&audit(&args));
    let sel = |s: &str| scraper::Selector::parse(s).unwrap();
    assert!(
        page.select(&sel("svg rect")).count() >= 2,
        "a chart with bars"
    );
    let cells: Vec<String> = page
        .select(&sel("table td"))
        .map(|td| td.text().collect())
        .collect();
    for who in [&cast.user1, &cast.user2, &cast.soon] {
        assert!(cells.contains(&who.cn), "{} in a table: {cells:?}", who.cn);
    }
    assert!(
        page.select(&sel("script, link, img")).next().is_none(),
        "self-contained"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_counts_what_was_sent_in_text_logs() {
    traffic_then_audit("text").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_counts_what_was_sent_in_json_logs() {
    traffic_then_audit("json").await;
}

#[test]
fn audit_without_log_file_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("proxy.conf");
    std::fs::write(
        &conf,
        "SERVER_CRT=/x.crt\nSERVER_PEM=/x.pem\nCA_CRT=/ca.crt\n",
    )
    .unwrap();
    let out = Command::new(bin())
        .args(["audit", "-c"])
        .arg(conf)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("LOG_FILE is not set"), "{err}");
}

/// `CLIENT_CERT_ERRORS=handshake`, text and JSON: the refusals happen inside
/// the TLS handshake, and their lines still name the certificate, so
/// `--user` keeps that user's refusals.
#[tokio::test(flavor = "multi_thread")]
async fn audit_names_the_users_refused_in_the_handshake() {
    for format in ["text", "json"] {
        let backend = Backend::start().await;
        let setup = Setup::new();
        let d = setup.dir.path().to_path_buf();
        let revoked = setup.ca.client("revoked-user");
        let outsider = setup.ca.client("outsider");
        write(&d, "ca.crl", &setup.ca.crl(&[revoked.serial]));
        let (proxy, conf, _) = logging_proxy(
            &setup,
            &backend,
            format,
            "ALLOW_CN=user1,revoked-user\nCLIENT_CERT_ERRORS=handshake\n",
        );
        let addr = proxy.listening();
        for (who, reason) in [(&revoked, "revoked"), (&outsider, "not-allowed")] {
            let outcome = Client::h1(&setup.ca.pem, Some(who))
                .send(addr, request("GET", "/"))
                .await;
            assert!(outcome.is_err(), "{reason}: {outcome:?}");
            proxy.wait_for("client certificate refused in the handshake");
        }
        // user1's certificate, shown by a client that has another key
        let impostor = Client::impostor(&setup.ca.pem, &setup.user1, &outsider);
        let outcome = impostor.send(addr, request("GET", "/")).await;
        assert!(outcome.is_err(), "no-key: {outcome:?}");
        proxy.wait_for("client certificate refused in the handshake");
        proxy.stop();
        assert_eq!(backend.count(), 0);
        let conf_s = conf.display().to_string();
        for (user, reason) in [
            ("revoked-user", "revoked"),
            ("outsider", "not-allowed"),
            ("user1", "no-key"),
        ] {
            let only = rows(&audit(&["-c", &conf_s, "--format", "csv", "--user", user]));
            assert_eq!(
                refused_rows(&only),
                [(reason, 1)],
                "{format} {user}: {only:?}"
            );
        }
    }
}

#[tokio::test]
async fn a_cn_with_blanks_and_quotes_stays_one_field_in_the_log_and_the_audit() {
    // A CN is whatever the certificate's maker wrote: here one that reads as
    // a second `serial=` and `cn=`, and one that reads as a request.
    let backend = Backend::start().await;
    let setup = Setup::new();
    let d = setup.dir.path().to_path_buf();
    write(&d, "ca.crl", &setup.ca.crl(&[]));
    let odd = setup.ca.client("x serial=99 cn=admin");
    let request_like = setup
        .ca
        .client("u \"GET /api01rv2/patientgetv2 HTTP/1.1\" 200 9 1ms");
    write(&d, "policy", "/api01rv2 cn:user1\n/ any\n");
    let policy = d.join("policy");
    let (proxy, conf, log) = logging_proxy(
        &setup,
        &backend,
        "text",
        &format!("ACCESS_POLICY={}\n", policy.display()),
    );
    let addr = proxy.listening();
    for who in [&odd, &request_like] {
        let client = Client::h1(&setup.ca.pem, Some(who));
        let open = client.send(addr, request("GET", "/")).await.unwrap();
        assert_eq!(open.status, 200);
        let api = request("GET", "/api01rv2/patientgetv2?id=1");
        assert_eq!(client.send(addr, api).await.unwrap().status, 403);
    }
    proxy.wait_for("ACCESS_POLICY refused");
    proxy.stop();
    assert_eq!(backend.count(), 2, "only the two requests to /");
    let text = std::fs::read_to_string(&log).unwrap();
    let odd_serial = serial(&odd);
    assert!(
        text.contains(&format!(
            r#" cn="x serial=99 cn=admin" serial={odd_serial} "GET / HTTP/1.1" 200 "#
        )),
        "{text}"
    );
    assert!(
        text.contains(r#"cn="u \"GET /api01rv2/patientgetv2 HTTP/1.1\" 200 9 1ms""#),
        "{text}"
    );
    let rows = rows(&audit(&[
        "-c",
        &conf.display().to_string(),
        "--format",
        "csv",
    ]));
    let summary = |name: &str| {
        rows.iter()
            .find(|r| r.section == "summary" && r.name == name)
            .and_then(|r| r.count)
    };
    assert_eq!(summary("unreadable"), Some(0), "{rows:?}");
    assert_eq!(refused_rows(&rows), [("not-permitted", 2)], "{rows:?}");
    // no call reached WebORCA's API
    assert!(rows.iter().all(|r| r.section != "api"), "{rows:?}");
    let users: Vec<(&str, &str, u64)> = rows
        .iter()
        .filter(|r| r.section == "user-day")
        .map(|r| (r.cn.as_str(), r.serial.as_str(), r.refused.unwrap()))
        .collect();
    let request_like_serial = serial(&request_like);
    let mut expected = vec![
        ("x serial=99 cn=admin", odd_serial.as_str(), 1),
        (request_like.cn.as_str(), request_like_serial.as_str(), 1),
    ];
    let mut users = users;
    users.sort();
    expected.sort();
    assert_eq!(users, expected, "{rows:?}");
}
