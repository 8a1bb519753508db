//! ACCESS_POLICY through real TLS: each kind of WHO allows its certificate and
//! refuses others, the longest whole-segment prefix decides, methods limit a
//! rule, every bypass spelling of a path is refused or judged on its normal
//! form over HTTP/1.1 and HTTP/2, WebSocket upgrades are judged like any
//! request, and a reload re-judges open connections (a broken file keeps the
//! old rules). The backend's record proves that nothing refused got through
//! and that an allowed request arrives with its target as sent.

use std::path::{Path, PathBuf};
use std::process::Command;

use bytes::Bytes;
use futures_util::SinkExt;
use http::Request;
use http_body_util::Full;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::util::client::{Answer, Client};
use crate::util::env::{Env, Setup};
use crate::util::kept::Kept;
use crate::util::pki::{Leaf, write};
use crate::util::process::bin;
use crate::util::raw::{exchange, metric, start_proc};
use crate::util::ws::{close_code, echo, try_open};

/// The policy of most tests: `/ws` only for the push-exchanger, the rest for all.
const PUSH_ONLY: &str = "# test policy\n/ws cn:push-exchanger\n/ any\n";

/// A setup whose ACCESS_POLICY file `access-policy` holds `rules`.
fn with_policy(rules: &str) -> (Setup, PathBuf) {
    let mut s = Setup::new();
    let file = write(s.dir.path(), "access-policy", rules);
    s.conf.push(format!("ACCESS_POLICY={}", file.display()));
    (s, file)
}

fn sha256_hex(der: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Asserts the `not-permitted` page naming `path` and the certificate `cn`.
fn assert_not_permitted(a: &Answer, path: &str, cn: &str) {
    assert_eq!(a.status, 403, "{}", a.text());
    assert_eq!(a.header("x-client-cert-error"), Some("not-permitted"));
    let text = a.text();
    assert!(
        text.contains(path),
        "the page names the path {path}: {text}"
    );
    assert!(
        text.contains(&format!("CN={cn}")),
        "the page names the subject: {text}"
    );
}

#[tokio::test]
async fn each_kind_of_who_allows_its_certificate_and_refuses_others() {
    let mut s = Setup::new();
    let alice = s.ca.client_in("alice", "clinic-a", "api");
    let bob = s.ca.client_in("bob", "clinic-b", "staff");
    let rules = format!(
        "/cn cn:alice\n/o o:clinic-a\n/ou ou:api\n/serial serial:{:X}\n/fp fingerprint:{}\n/any any\n",
        alice.serial,
        sha256_hex(alice.der.as_ref()).to_uppercase()
    );
    let file = write(s.dir.path(), "access-policy", &rules);
    s.conf.push(format!("ACCESS_POLICY={}", file.display()));
    let env = s.start().await;
    let (a, b) = (env.client(Some(&alice)), env.client(Some(&bob)));
    for path in ["/cn", "/o/x", "/ou", "/serial", "/fp", "/any"] {
        let before = env.backend.count();
        let ok = a.get(env.addr, path).await.unwrap();
        assert_eq!(ok.status, 200, "{path}: {}", ok.text());
        assert_eq!(env.backend.count(), before + 1);
        assert_eq!(env.backend.last().target, path);
        if path == "/any" {
            assert_eq!(b.get(env.addr, path).await.unwrap().status, 200);
            continue;
        }
        let before = env.backend.count();
        assert_not_permitted(&b.get(env.addr, path).await.unwrap(), path, "bob");
        assert_eq!(
            env.backend.count(),
            before,
            "{path}: bob's request reached the backend"
        );
    }
    // No rule for `/`: refused for everyone.
    assert_not_permitted(&a.get(env.addr, "/").await.unwrap(), "/", "alice");
}

#[tokio::test]
async fn the_longest_whole_segment_prefix_decides_and_methods_limit_a_rule() {
    let mut s = Setup::new();
    let printer = s.ca.client_in("receipt-printer", "orca", "api");
    let rules = "/api01rv2 ou:api GET,POST\n/api01rv2/admin cn:admin\n/ any\n";
    let file = write(s.dir.path(), "access-policy", rules);
    s.conf.push(format!("ACCESS_POLICY={}", file.display()));
    let env = s.start().await;
    let browser = env.client(Some(&env.user1));
    let api = env.client(Some(&printer));
    assert_not_permitted(
        &browser
            .get(env.addr, "/api01rv2/patientgetv2")
            .await
            .unwrap(),
        "/api01rv2/patientgetv2",
        "user1",
    );
    // `/api01rv2x` is not under `/api01rv2`: `/` decides it.
    assert_eq!(
        browser.get(env.addr, "/api01rv2x").await.unwrap().status,
        200
    );
    assert_eq!(env.backend.last().target, "/api01rv2x");
    assert_eq!(
        api.get(env.addr, "/api01rv2/patientgetv2?id=1")
            .await
            .unwrap()
            .status,
        200
    );
    assert_eq!(env.backend.last().target, "/api01rv2/patientgetv2?id=1");
    // The longer prefix decides even though the shorter one names the printer.
    assert_not_permitted(
        &api.get(env.addr, "/api01rv2/admin/x").await.unwrap(),
        "/api01rv2/admin/x",
        "receipt-printer",
    );
    let before = env.backend.count();
    let send = |method: &str| {
        Request::builder()
            .method(method)
            .uri("/api01rv2/patientmodv2")
            .header("host", "localhost")
            .body(Full::new(Bytes::from_static(b"{}")))
            .unwrap()
    };
    let post = api.send(env.addr, send("POST")).await.unwrap();
    assert_eq!(post.status, 200, "{}", post.text());
    assert_eq!(env.backend.count(), before + 1);
    let put = api.send(env.addr, send("PUT")).await.unwrap();
    assert_eq!(put.status, 403);
    assert_eq!(put.header("x-client-cert-error"), Some("not-permitted"));
    assert!(
        put.header("content-type")
            .unwrap()
            .starts_with("text/plain"),
        "an API client gets text"
    );
    assert_eq!(
        env.backend.count(),
        before + 1,
        "the PUT reached the backend"
    );
}

/// Spellings of `/ws` (and unsafe ones) with what a browser certificate gets:
/// 403 when the normal form is `/ws`, 400 when there is no safe one, 200 for
/// another path.
/// A spelling, the browser's answer, and the target WebORCA is sent when the
/// spelling is allowed: the normal form it was decided on.
const SPELLINGS: &[(&str, u16, &str)] = &[
    ("/ws", 403, "/ws"),
    ("/%77s", 403, "/ws"),
    ("/%77%73/", 403, "/ws/"),
    ("/ws/../ws", 403, "/ws"),
    ("//ws", 403, "/ws"),
    ("/./ws", 403, "/ws"),
    ("/x/../ws/y", 403, "/ws/y"),
    ("/ws%2f..", 400, ""),
    ("/ws%2F", 400, ""),
    ("/x%5cws", 400, ""),
    ("/ws%00", 400, ""),
    ("/../ws", 400, ""),
    ("/ws%zz", 400, ""),
    ("/WS", 200, "/WS"),
    ("/wsx", 200, "/wsx"),
];

/// One GET with `target` as written, over HTTP/1.1 by hand (no client
/// library respells it) or over HTTP/2 with `:path` exactly `target`.
async fn raw_get(env: &Env, leaf: &Leaf, target: &str, use_h2: bool) -> Option<u16> {
    if !use_h2 {
        let tls = env.client(Some(leaf)).connect(env.addr).await.unwrap();
        let req = format!("GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        return exchange(tls, req.as_bytes(), false).await.status;
    }
    let client = Client::new(&env.ca.pem, Some(leaf), &[b"h2"]);
    let uri: http::Uri = format!("https://localhost:{}{target}", env.addr.port())
        .parse()
        .expect("uri");
    assert_eq!(uri.path(), target, "the client would respell the path");
    let req = Request::get(uri).body(Full::new(Bytes::new())).unwrap();
    client
        .send(env.addr, req)
        .await
        .ok()
        .map(|a| a.status.as_u16())
}

async fn bypass_spellings(use_h2: bool) {
    let (s, _) = with_policy(PUSH_ONLY);
    let push = s.ca.client("push-exchanger");
    let env = s.start().await;
    for &(target, browser_status, decided) in SPELLINGS {
        // The backend's count is the proof: WebORCA's own answer to a plain
        // GET /ws (400, no upgrade) is told apart from the proxy's by it.
        let before = env.backend.count();
        let got = raw_get(&env, &env.user1, target, use_h2).await;
        if browser_status == 200 {
            assert_eq!(
                env.backend.count(),
                before + 1,
                "browser {target} (h2: {use_h2})"
            );
            assert_eq!(env.backend.last().target, decided);
        } else {
            assert_eq!(got, Some(browser_status), "browser {target} (h2: {use_h2})");
            assert_eq!(
                env.backend.count(),
                before,
                "browser {target} reached the backend"
            );
        }
        // The push-exchanger is allowed on each safe spelling, and WebORCA is
        // sent the path it was decided on (Echo would route `/x/../ws/y` as written).
        let before = env.backend.count();
        let got = raw_get(&env, &push, target, use_h2).await;
        if browser_status == 400 {
            assert_eq!(got, Some(400), "push {target}");
            assert_eq!(
                env.backend.count(),
                before,
                "push {target}: an unsafe spelling went through"
            );
        } else {
            assert!(got.is_some(), "push {target}: no answer");
            assert_eq!(
                env.backend.count(),
                before + 1,
                "push {target} (h2: {use_h2})"
            );
            assert_eq!(
                env.backend.last().target,
                decided,
                "WebORCA is sent the decided path for {target}"
            );
        }
    }
}

#[tokio::test]
async fn every_bypass_spelling_is_refused_or_judged_on_its_normal_form_over_http1() {
    bypass_spellings(false).await;
}

#[tokio::test]
async fn every_bypass_spelling_is_refused_or_judged_on_its_normal_form_over_http2() {
    bypass_spellings(true).await;
}

#[tokio::test]
async fn websocket_upgrade_is_refused_for_a_browser_and_allowed_for_the_push_exchanger() {
    let (s, _) = with_policy(PUSH_ONLY);
    let push = s.ca.client("push-exchanger");
    let env = s.start().await;
    assert_eq!(try_open(&env, &env.user1).await.err(), Some(403));
    assert_eq!(
        env.backend.count(),
        0,
        "the refused upgrade reached WebORCA"
    );
    let mut ws = try_open(&env, &push).await.expect("push-exchanger upgrade");
    echo(&mut ws, "push").await;
    assert_eq!(env.backend.last().target, "/ws");
}

async fn policy_swapped_on_open_connections(use_h2: bool) {
    let (mut s, file) = with_policy("/ any\n");
    s.conf.push("STATUS_LISTEN=127.0.0.1:0".into());
    let push = s.ca.client("push-exchanger");
    let env = s.start().await;
    let alpn: &[&[u8]] = if use_h2 { &[b"h2"] } else { &[b"http/1.1"] };
    let mut open = Kept::open(&Client::new(&env.ca.pem, Some(&env.user1), alpn), env.addr).await;
    assert!(matches!(open, Kept::H2(..)) == use_h2);
    assert_eq!(open.get("/ws/feed").await.unwrap().status, 200);
    let mut browser_ws = try_open(&env, &env.user1).await.expect("allowed before");
    let mut push_ws = try_open(&env, &push).await.expect("push");
    echo(&mut browser_ws, "before").await;
    let before_gen = env.handle.tls().generation;

    write(env.dir.path(), "access-policy", PUSH_ONLY);
    env.reload().expect("reload");
    // sent before the proxy's Close can have been read
    browser_ws.send(Message::text("after")).await.unwrap();
    assert_eq!(
        env.handle.tls().generation,
        before_gen + 1,
        "a new policy is a new generation"
    );

    let forwarded = env.backend.count();
    assert_not_permitted(&open.get("/ws/feed").await.unwrap(), "/ws/feed", "user1");
    assert_eq!(env.backend.count(), forwarded, "refused request forwarded");
    // Only that request is refused: the same connection still serves other paths.
    assert_eq!(open.get("/other").await.unwrap().status, 200);
    assert_eq!(env.backend.last().target, "/other");
    assert_eq!(close_code(&mut browser_ws).await, Some(CloseCode::Policy));
    env.backend.ws_ended(1).await;
    echo(&mut push_ws, "still open").await;
    assert!(
        !env.backend
            .ws_received
            .lock()
            .unwrap()
            .iter()
            .any(|m| m == "after"),
        "the now-refused tunnel carried a message"
    );
    let status = env.status.expect("status listener");
    let refusals = metric(
        status,
        "weborca_proxy_client_cert_refusals_total{reason=\"not-permitted\"}",
    )
    .await;
    assert!(refusals.is_some_and(|n| n >= 2.0), "{refusals:?}");
    let rule = format!(
        "weborca_proxy_access_policy_decisions_total{{rule=\"{}:2\"}}",
        file.display()
    );
    assert!(
        metric(status, &rule).await.is_some_and(|n| n >= 1.0),
        "{rule}"
    );

    // A broken file is refused, naming file and line; the rules in force stay.
    write(
        env.dir.path(),
        "access-policy",
        "/ws cn:push-exchanger\n/ everyone\n",
    );
    let err = env.reload().expect_err("a broken policy must be refused");
    assert!(err.contains(&format!("{}:2", file.display())), "{err}");
    assert!(err.contains("cn:NAME"), "the valid forms are named: {err}");
    assert_not_permitted(&open.get("/ws/feed").await.unwrap(), "/ws/feed", "user1");
    assert_eq!(open.get("/still").await.unwrap().status, 200);
}

#[tokio::test]
async fn a_policy_swapped_by_reload_judges_the_next_request_of_an_open_http1_connection() {
    policy_swapped_on_open_connections(false).await;
}

#[tokio::test]
async fn a_policy_swapped_by_reload_judges_the_next_request_of_an_open_http2_connection() {
    policy_swapped_on_open_connections(true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_and_the_file_watcher_swap_the_policy_and_the_access_line_names_the_rule() {
    let (s, file) = with_policy("/ any\n");
    let backend = crate::util::backend::Backend::start().await;
    let (mut p, addr) = start_proc(&s, &backend.url(), &["CERT_WATCH_INTERVAL=200ms"]);
    let client = Client::h1(&s.ca.pem, Some(&s.user1));
    let mut open = Kept::open(&client, addr).await;
    assert_eq!(open.get("/ws/feed").await.unwrap().status, 200);
    let line = tokio::task::block_in_place(|| p.wait_for("\"GET /ws/feed HTTP/1.1\" 200"))
        .expect("access line");
    assert!(
        line.ends_with(&format!(" rule={}:1", file.display())),
        "{line}"
    );

    write(s.dir.path(), "access-policy", PUSH_ONLY);
    p.signal("HUP");
    tokio::task::block_in_place(|| p.wait_for("reload: ok")).expect("reload ok");
    assert_not_permitted(&open.get("/ws/feed").await.unwrap(), "/ws/feed", "user1");
    let line = tokio::task::block_in_place(|| p.wait_for("\"GET /ws/feed HTTP/1.1\" 403"))
        .expect("access line of the refusal");
    assert!(
        line.ends_with(&format!(" rule={}:2", file.display())),
        "{line}"
    );
    assert_eq!(
        backend.count(),
        1,
        "only the request before the reload reached WebORCA"
    );

    write(s.dir.path(), "access-policy", "/ws cn:push exchanger\n");
    p.signal("HUP");
    let refused = tokio::task::block_in_place(|| p.wait_for("reload refused")).expect("refused");
    assert!(
        refused.contains(&format!("{}:1", file.display())),
        "{refused}"
    );
    assert_not_permitted(&open.get("/ws/feed").await.unwrap(), "/ws/feed", "user1");
    assert_eq!(open.get("/x").await.unwrap().status, 200);

    // The file watcher takes a changed file without a signal.
    write(s.dir.path(), "access-policy", "/ any\n# watched\n");
    tokio::task::block_in_place(|| p.wait_for("reload (")).expect("watcher reload");
    tokio::task::block_in_place(|| p.wait_for("reload: ok")).expect("watcher reload ok");
    assert_eq!(open.get("/ws/feed").await.unwrap().status, 200);
    p.signal("TERM");
    let (code, _) = p.exit();
    assert_eq!(code, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broken_policy_at_start_exits_78_naming_file_and_line() {
    let (s, file) = with_policy("/ any\n\n/ws cn:\n");
    let conf = s.write_config("http://127.0.0.1:9");
    let out = Command::new(bin()).arg("-c").arg(&conf).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{err}");
    assert!(err.contains(&format!("{}:3", file.display())), "{err}");
}

fn check_as(conf: &Path, cert: &Path, path: &str, method: &str) -> (i32, String) {
    let out = Command::new(bin())
        .args(["check", "-c"])
        .arg(conf)
        .arg("--as-cert")
        .arg(cert)
        .args(["--path", path, "--method", method])
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test]
async fn check_reads_the_policy_flags_dead_rules_and_says_which_rule_decides() {
    let (s, file) = with_policy(
        "/ws cn:push-exchanger\n/ws cn:push-exchanger GET\n/api01rv2 ou:api GET\n/ any\n",
    );
    let push = s.ca.client("push-exchanger");
    let conf = s.write_config("http://127.0.0.1:9");
    let user1 = write(s.dir.path(), "user1.crt", &s.user1.pem);
    let push_crt = write(s.dir.path(), "push.crt", &push.pem);
    let f = file.display();

    let (code, out) = check_as(&conf, &user1, "/%77s", "GET");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("/%77s is matched as /ws"), "{out}");
    assert!(
        out.contains("FAIL GET /ws for /C=JP/O=orca/CN=user1"),
        "{out}"
    );
    assert!(out.contains(&format!("{f}:1")), "{out}");
    let (code, out) = check_as(&conf, &push_crt, "/ws/x", "GET");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("allowed by rule {f}:1")), "{out}");
    let (code, out) = check_as(&conf, &user1, "/api01rv2/x", "POST");
    assert_eq!(code, 1, "{out}");
    let (code, out) = check_as(&conf, &user1, "/ws%2f", "GET");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("400"), "{out}");

    let out = Command::new(bin())
        .args(["check", "-c"])
        .arg(&conf)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("ACCESS_POLICY {f} reads: 4 rules")),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l.starts_with("warn")
            && l.contains(&format!("rule {f}:2 never decides"))
            && l.contains(&format!("{f}:1"))),
        "{text}"
    );
    write(s.dir.path(), "access-policy", "/ws cn:push-exchanger get\n");
    let out = Command::new(bin())
        .args(["check", "-c"])
        .arg(&conf)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with("FAIL") && l.contains(&format!("{f}:1"))),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_brought_by_reload_while_a_request_waits_for_weborca_decides_it() {
    let counted = decided_while_waiting(None, Meanwhile::Policy).await;
    assert_eq!(counted, ["access-policy:1 1"], "the refusing rule, once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_decided_again_after_a_reload_is_counted_once_by_its_last_rule() {
    let counted = decided_while_waiting(Some(BEFORE), Meanwhile::Policy).await;
    // /hold by the first set's `/ any`, the API request by the new set's
    // first rule only: its first decision (the first set's line 1) was replaced
    assert_eq!(counted, ["access-policy:1 1", "before-policy:2 1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_given_up_while_it_waits_for_weborca_is_still_counted_as_decided() {
    let counted = decided_while_waiting(Some(BEFORE), Meanwhile::GiveUp).await;
    assert_eq!(counted, ["before-policy:1 1", "before-policy:2 1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_whose_certificate_is_revoked_while_it_waits_is_decided_by_no_rule() {
    let counted = decided_while_waiting(Some(BEFORE), Meanwhile::Revoke).await;
    // /hold's rule only: the revoked request's first rule is not its decision
    assert_eq!(counted, ["before-policy:2 1"]);
}

/// The policy in force before, in the tests of a request decided while it waits.
const BEFORE: &str = "/api01rv2 any\n/ any\n";

/// The ACCESS_POLICY decisions counted in `metrics` (the /metrics text), as
/// `FILE_NAME:LINE COUNT`, sorted.
fn counted_decisions(metrics: &str) -> Vec<String> {
    let mut counted: Vec<String> = metrics
        .lines()
        .filter_map(|l| l.strip_prefix("weborca_proxy_access_policy_decisions_total{rule=\""))
        .filter_map(|l| {
            let (rule, count) = l.split_once("\"} ")?;
            Some(format!("{} {count}", rule.rsplit('/').next()?))
        })
        .collect();
    counted.sort();
    counted
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Meanwhile {
    /// a reload brings `/api01rv2 cn:receipt-printer`
    Policy,
    /// the client resets the waiting request's stream
    GiveUp,
    /// a reload revokes user1
    Revoke,
}

/// A request that waits for a backend slot while a reload brings
/// ACCESS_POLICY `/api01rv2 cn:receipt-printer` (in place of `before`, if
/// any): it is refused, and nothing but the request before it reaches
/// WebORCA. Or `meanwhile` the client gives the waiting request up, or a
/// reload revokes its certificate. The decisions counted after
/// ([`counted_decisions`]).
async fn decided_while_waiting(before: Option<&str>, meanwhile: Meanwhile) -> Vec<String> {
    use std::sync::{Arc, Mutex};
    use tokio::io::AsyncWriteExt;
    // A backend that records each request's line and holds its answer to
    // the first until told.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let (held_tx, held_rx) = tokio::sync::oneshot::channel::<()>();
    let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
    let record = seen.clone();
    tokio::spawn(async move {
        let mut hold = Some((held_tx, release_rx));
        loop {
            let (mut tcp, _) = listener.accept().await.unwrap();
            let record = record.clone();
            let hold = hold.take();
            tokio::spawn(async move {
                let mut hold = hold;
                let mut buf = Vec::new();
                loop {
                    let Some(head) = crate::util::lean::read_head(&mut tcp, &mut buf).await else {
                        return;
                    };
                    let line = head.lines().next().unwrap().to_string();
                    record.lock().unwrap().push(line);
                    if let Some((held, release)) = hold.take() {
                        held.send(()).unwrap();
                        release.await.unwrap();
                    }
                    let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                    if tcp.write_all(answer).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    // One backend request at a time, and `before` as ACCESS_POLICY.
    let mut s = Setup::new();
    s.conf.push("MAX_CONNECTIONS=1".into());
    let crl = write(s.dir.path(), "ca.crl", &s.ca.crl(&[]));
    s.conf.push(format!("CA_CRL={}", crl.display()));
    if let Some(before) = before {
        let file = write(s.dir.path(), "before-policy", before);
        s.conf.push(format!("ACCESS_POLICY={}", file.display()));
    }
    let front = crate::util::raw::Front::start(s, &backend).await;
    let Kept::H2(sender, port) = Kept::open(&front.h2_client(), front.addr).await else {
        panic!("no HTTP/2");
    };
    let mut first = Kept::H2(sender.clone(), port);
    let mut second = Kept::H2(sender, port);
    let first = tokio::spawn(async move { first.get("/hold").await });
    held_rx.await.unwrap();
    let second = tokio::spawn(async move { second.get("/api01rv2/patientgetv2").await });
    let stats = front.handle.stats();
    assert!(
        crate::util::raw::eventually(|| stats.metrics.backend_waiting.get() == 1).await,
        "the second request never waited for the backend"
    );
    if meanwhile == Meanwhile::Revoke {
        let crl = front.setup.ca.crl(&[front.setup.user1.serial]);
        write(front.setup.dir.path(), "ca.crl", &crl);
        front.reload().expect("reload");
        release_tx.send(()).unwrap();
        // /hold was forwarded before: its answer is refused too now
        let _ = first.await.unwrap();
        let refused = second.await.unwrap().unwrap();
        assert_eq!(refused.header("x-client-cert-error"), Some("revoked"));
        assert_eq!(*seen.lock().unwrap(), ["GET /hold HTTP/1.1"]);
        return counted_decisions(&stats.metrics.encode());
    }
    if meanwhile == Meanwhile::GiveUp {
        // the client gives the waiting request up (its stream is reset)
        second.abort();
        assert!(
            crate::util::raw::eventually(|| stats.metrics.backend_waiting.get() == 0).await,
            "the given-up request still waits"
        );
        release_tx.send(()).unwrap();
        assert_eq!(first.await.unwrap().unwrap().status, 200);
        return counted_decisions(&stats.metrics.encode());
    }
    // Meanwhile a policy comes that keeps the API from this certificate.
    let policy = write(
        front.setup.dir.path(),
        "access-policy",
        "/api01rv2 cn:receipt-printer\n/ any\n",
    );
    let mut conf = std::fs::read_to_string(&front.conf_path).unwrap();
    conf.push_str(&format!("\nACCESS_POLICY={}\n", policy.display()));
    std::fs::write(&front.conf_path, conf).unwrap();
    front.reload().expect("reload");
    release_tx.send(()).unwrap();
    assert_eq!(first.await.unwrap().unwrap().status, 200);
    let refused = second.await.unwrap().unwrap();
    assert_not_permitted(&refused, "/api01rv2/patientgetv2", "user1");
    assert_eq!(stats.metrics.backend_waiting.get(), 0);
    assert_eq!(
        *seen.lock().unwrap(),
        ["GET /hold HTTP/1.1"],
        "only the request before the policy reached WebORCA"
    );
    counted_decisions(&stats.metrics.encode())
}
