//! Findings of the security review, each tried as an attacker would, through
//! real TLS, with the backend's record proving what it received: log lines
//! forged through certificate fields, the status listener read through DNS
//! rebinding or flooded, request targets and cookies read two ways, client
//! identity headers in other spellings, HTTP/1.0 without Host, an
//! out-of-date CRL with CRL_STALE=refuse, and a CRL replaced during a reload.

use std::net::SocketAddr;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::util::backend::Backend;
use crate::util::client::Client;
use crate::util::env::{Env, Setup};
use crate::util::kept::Kept;
use crate::util::pki::{Ca, write};
use crate::util::raw::{PATIENCE, exchange, h2, start_proc, wait_any};

const FORGED: &str = "2025/01/01 00:00:00 FORGED";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_fields_cannot_forge_log_lines() {
    let mut setup = Setup::new();
    let cn = format!("mallory\n{FORGED} client certificate CN=admin accepted");
    // Issued by the clinic's CA (a careless or tricked issuer), expiring
    // soon: accepted, access-logged, warned about.
    let inside = setup.ca.client_valid(&cn, -1, 5);
    // The same CN from a stranger's CA: refused, with its subject logged.
    let stranger = Ca::new("elsewhere").client(&cn);
    let crl = write(setup.dir.path(), "ca.crl", &setup.ca.crl(&[]));
    setup.conf.push(format!("CA_CRL={}", crl.display()));
    let backend = Backend::start().await;
    let (mut p, addr) = start_proc(&setup, &backend.url(), &["CERT_WARN_DAYS=30"]);
    let c_inside = Client::h1(&setup.ca.pem, Some(&inside));
    let mut open = Kept::open(&c_inside, addr).await;
    assert_eq!(
        open.get("/ok")
            .await
            .map(|a| a.status.as_u16())
            .unwrap_or(0),
        200
    );
    let refused = Client::h1(&setup.ca.pem, Some(&stranger))
        .get(addr, "/")
        .await
        .unwrap();
    assert_eq!(refused.status, 403);
    // Revoked while its connection is open: the "now refused" line names it too.
    write(setup.dir.path(), "ca.crl", &setup.ca.crl(&[inside.serial]));
    p.signal("HUP");
    let reloaded =
        tokio::task::block_in_place(|| wait_any(&mut p, &["reload: ok", "reload refused"]));
    assert!(reloaded.is_some_and(|l| l.contains("reload: ok")));
    assert_eq!(open.get("/after").await.unwrap().status, 403);
    p.signal("TERM");
    let (_, lines) = tokio::task::block_in_place(|| p.exit());
    // `unstamp` (in `exit`) already insisted every line starts with a timestamp.
    let forged: Vec<&String> = lines.iter().filter(|l| l.starts_with("FORGED")).collect();
    assert!(forged.is_empty(), "forged log lines: {forged:#?}");
    let naming: Vec<&String> = lines.iter().filter(|l| l.contains("FORGED")).collect();
    // The CN was logged, escaped, on each kind of line that names a client.
    for needle in [
        "expires in",
        "certificate refused",
        "now refused",
        "GET /ok",
    ] {
        assert!(
            naming.iter().any(|l| l.contains(needle)),
            "no line with the CN for {needle:?}: {naming:#?}"
        );
    }
    assert_eq!(backend.count(), 1, "only the request before the revocation");
}

/// A raw HTTP/1.1 request to the status listener: (status, body).
async fn status_get(addr: SocketAddr, host: Option<&str>, path: &str) -> (u16, String) {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let host = host.map_or(String::new(), |h| format!("Host: {h}\r\n"));
    let version = if host.is_empty() { "1.0" } else { "1.1" };
    let req = format!("GET {path} HTTP/{version}\r\n{host}Connection: close\r\n\r\n");
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    tcp.read_to_string(&mut out).await.unwrap();
    let code = out.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = out
        .split_once("\r\n\r\n")
        .map_or(String::new(), |(_, b)| b.to_string());
    (code, body)
}

#[tokio::test]
async fn status_listener_answers_only_loopback_hosts() {
    let mut setup = Setup::new();
    setup.conf.push("STATUS_LISTEN=127.0.0.1:0".into());
    let env = setup.start().await;
    let status = env.status.unwrap();
    let port = status.port();
    for host in [
        "localhost".to_string(),
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        "[::1]".to_string(),
        format!("[::1]:{port}"),
    ] {
        assert_eq!(
            status_get(status, Some(&host), "/healthz").await.0,
            200,
            "{host}"
        );
    }
    for host in [
        "rebind.evil.example".to_string(),
        format!("rebind.evil.example:{port}"),
        format!("127.0.0.2:{port}"),
        "localhost.evil.example".to_string(),
    ] {
        let (code, body) = status_get(status, Some(&host), "/status").await;
        assert_eq!(code, 421, "{host}");
        assert!(!body.contains("server_certificate"), "{host}: {body}");
    }
    assert_eq!(status_get(status, None, "/status").await.0, 421, "no Host");
    // two Hosts, or a request target naming another host (which wins over Host)
    for head in [
        "GET /status HTTP/1.1\r\nHost: localhost\r\nHost: evil.example\r\n\r\n".to_string(),
        "GET http://evil.example/status HTTP/1.1\r\nHost: localhost\r\n\r\n".to_string(),
    ] {
        let mut tcp = TcpStream::connect(status).await.unwrap();
        tcp.write_all(head.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        let _ = tcp.read_to_end(&mut out).await;
        let out = String::from_utf8_lossy(&out);
        assert!(out.starts_with("HTTP/1.1 421"), "{head:?}: {out}");
        assert!(!out.contains("server_certificate"), "{out}");
    }
}

#[tokio::test]
async fn status_listener_caps_its_connections() {
    let mut setup = Setup::new();
    setup.conf.push("STATUS_LISTEN=127.0.0.1:0".into());
    let env = setup.start().await;
    let status = env.status.unwrap();
    let cap = weborca_mtls_proxy::status::STATUS_MAX_CONNECTIONS;
    let request = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n";
    let mut held = Vec::new();
    for _ in 0..cap {
        let mut tcp = TcpStream::connect(status).await.unwrap();
        let a = exchange(&mut tcp, request, false).await;
        assert_eq!(a.status, Some(200), "{a:?}");
        held.push(tcp); // kept alive: each holds a slot
    }
    let mut extra = TcpStream::connect(status).await.unwrap();
    let a = exchange(&mut extra, request, true).await;
    assert_eq!(a.status, None, "answered beyond the cap: {a:?}");
    assert!(a.closed);
    drop(held.pop());
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let mut tcp = TcpStream::connect(status).await.unwrap();
        if exchange(&mut tcp, request, false).await.status == Some(200) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "a freed slot was never reused"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The regression of a status listener held by idle sockets: connections
/// that send nothing, half a request head, or nothing more after one answer
/// kept their slot for good, so STATUS_MAX_CONNECTIONS of them left
/// `/healthz` unanswered. Each is now closed by the server within
/// STATUS_HEADER_TIMEOUT (its EOF is what the test waits for), and the
/// listener answers again.
#[tokio::test]
async fn status_listener_closes_idle_and_half_sent_connections() {
    use weborca_mtls_proxy::status::{STATUS_HEADER_TIMEOUT, STATUS_MAX_CONNECTIONS};
    let mut setup = Setup::new();
    setup.conf.push("STATUS_LISTEN=127.0.0.1:0".into());
    let env = setup.start().await;
    let status = env.status.unwrap();
    let request = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n";
    let mut held = Vec::new();
    for i in 0..STATUS_MAX_CONNECTIONS {
        let mut tcp = TcpStream::connect(status).await.unwrap();
        match i % 3 {
            0 => {} // sends nothing
            1 => tcp
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: loc")
                .await
                .unwrap(),
            _ => {
                // one answer, then an idle keep-alive connection
                let a = exchange(&mut tcp, request, false).await;
                assert_eq!(a.status, Some(200), "{a:?}");
            }
        }
        held.push(tcp);
    }
    // every slot is taken: one more is closed unanswered
    let mut extra = TcpStream::connect(status).await.unwrap();
    let a = exchange(&mut extra, request, true).await;
    assert_eq!(a.status, None, "answered beyond the cap: {a:?}");
    // the server closes each held connection (EOF), within the timeout
    let limit = STATUS_HEADER_TIMEOUT + PATIENCE;
    for (i, tcp) in held.iter_mut().enumerate() {
        let mut rest = Vec::new();
        let eof = tokio::time::timeout(limit, tcp.read_to_end(&mut rest)).await;
        assert!(
            eof.is_ok(),
            "idle connection {i} still open after {limit:?}"
        );
    }
    let mut tcp = TcpStream::connect(status).await.unwrap();
    let a = exchange(&mut tcp, request, false).await;
    assert_eq!(a.status, Some(200), "{a:?}");
}

/// The status code of an HTTP/2 HEADERS block that starts with an indexed
/// `:status` (HPACK static table, RFC 7541 Appendix A).
fn h2_status(payload: &[u8]) -> Option<u16> {
    Some(match payload.first()? {
        0x88 => 200,
        0x8c => 400,
        0x8d => 404,
        0x8e => 500,
        _ => return None,
    })
}

#[tokio::test]
async fn non_ascii_http2_path_is_refused_with_400_and_never_forwarded() {
    let env = Env::start().await;
    let client = Client::new(&env.ca.pem, Some(&env.user1), &[b"h2"]);
    let mut tls = client.connect(env.addr).await.unwrap();
    let mut out = h2::start();
    let fields = [
        (":method", "GET"),
        (":scheme", "https"),
        (":authority", "localhost"),
        (":path", "/caf\u{e9}/\u{65e5}\u{672c}"),
    ];
    out.extend(h2::frame(
        h2::HEADERS,
        h2::END_HEADERS | h2::END_STREAM,
        1,
        &h2::block(&fields),
    ));
    tls.write_all(&out).await.unwrap();
    let mut status = None;
    let read = async {
        while let Some(f) = h2::read(&mut tls).await {
            if f.ty == h2::HEADERS && f.stream == 1 {
                status = h2_status(&f.payload);
                return;
            }
            if f.ty == h2::RST_STREAM && f.stream == 1 {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(PATIENCE, read).await;
    assert_eq!(status, Some(400));
    assert_eq!(env.backend.count(), 0);
}

#[tokio::test]
async fn asterisk_target_with_another_method_than_options_is_refused() {
    let env = Env::start().await;
    for method in ["GET", "POST", "DELETE"] {
        let tls = env
            .client(Some(&env.user1))
            .connect(env.addr)
            .await
            .unwrap();
        let req = format!("{method} * HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n");
        let a = exchange(tls, req.as_bytes(), false).await;
        assert_eq!(a.status, Some(400), "{method}: {a:?}");
    }
    assert_eq!(env.backend.count(), 0);
}

#[tokio::test]
async fn http2_cookie_fields_reach_the_backend_as_one_header() {
    let env = Env::start().await;
    let client = Client::new(&env.ca.pem, Some(&env.user1), &[b"h2"]);
    let req = Request::get(format!("https://localhost:{}/", env.addr.port()))
        .header("cookie", "a=1")
        .header("cookie", "b=2")
        .header("cookie", "session=xyz")
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(client.send(env.addr, req).await.unwrap().status, 200);
    let seen = env.backend.last();
    assert_eq!(seen.header("cookie"), ["a=1; b=2; session=xyz"]);
}

#[tokio::test]
async fn other_client_identity_spellings_are_stripped() {
    let env = Env::start().await;
    let spoofed = [
        "X-Client-Cert",
        "X-Client-Verify",
        "x_client_dn",
        "SSL-Client-Cert",
        "SSL_CLIENT_S_DN",
        "ssl-client-verify",
        "X-Forwarded-Client-Cert",
        "x_forwarded_client_cert",
        "Client-Cert-Chain",
        "client_cert_chain",
        "X-Amzn-Mtls-Clientcert",
        "X-AMZN-MTLS-CLIENTCERT-LEAF",
        "x_amzn_mtls_clientcert",
        "X-SSL-Cert",
        "x_ssl_issuer",
        "X-ARR-ClientCert",
        // the bare names of the prefix families
        "SSL-Client",
        "ssl_client",
        "X-SSL-Client",
        "X-SSL",
        "X-Client",
        "X-Amzn-Mtls",
        "X-Forwarded",
    ];
    let mut req = Request::get("/").header("host", "localhost");
    for name in spoofed {
        req = req.header(name, "CN=admin");
    }
    let req = req
        .header("x-clinic-note", "kept")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let a = env
        .client(Some(&env.user1))
        .send(env.addr, req)
        .await
        .unwrap();
    assert_eq!(a.status, 200);
    let seen = env.backend.last();
    for name in spoofed {
        let lower = name.to_ascii_lowercase();
        assert!(seen.header(&lower).is_empty(), "{name} reached the backend");
    }
    assert!(
        !seen.headers.iter().any(|(_, v)| v == "CN=admin"),
        "a spoofed value reached the backend: {:?}",
        seen.headers
    );
    assert_eq!(seen.header("x-clinic-note"), ["kept"]);
}

#[tokio::test]
async fn http10_without_host_is_forwarded_with_the_server_name() {
    let env = Env::start().await;
    let tls = env
        .client(Some(&env.user1))
        .connect(env.addr)
        .await
        .unwrap();
    let a = exchange(tls, b"GET /probe HTTP/1.0\r\n\r\n", true).await;
    assert!(
        a.text.starts_with("HTTP/1.0 200") || a.text.starts_with("HTTP/1.1 200"),
        "{a:?}"
    );
    let seen = env.backend.last();
    let expected = format!("localhost:{}", env.addr.port());
    assert_eq!(seen.target, "/probe");
    assert_eq!(seen.one("host"), Some(expected.as_str()));
    assert_eq!(seen.one("x-forwarded-host"), Some(expected.as_str()));
    // HTTP/1.1 still needs its Host.
    let tls = env
        .client(Some(&env.user1))
        .connect(env.addr)
        .await
        .unwrap();
    let a = exchange(tls, b"GET /probe HTTP/1.1\r\n\r\n", false).await;
    assert_eq!(a.status, Some(400), "{a:?}");
    assert_eq!(env.backend.count(), 1);
}

#[tokio::test]
async fn crl_stale_refuse_refuses_every_client_until_a_current_crl_is_loaded() {
    let mut setup = Setup::new();
    let revoked = setup.ca.client("lost-laptop");
    let crl = write(
        setup.dir.path(),
        "ca.crl",
        &setup.ca.stale_crl(&[revoked.serial]),
    );
    setup.conf.push(format!("CA_CRL={}", crl.display()));
    setup.conf.push("CRL_STALE=refuse".into());
    setup.conf.push("STATUS_LISTEN=127.0.0.1:0".into());
    setup.conf.push("ALLOW_CN=user1,lost-laptop".into());
    let outsider = setup.ca.client("outsider");
    let env = setup.start().await;
    let status = env.status.unwrap();
    let page = env
        .client(Some(&env.user1))
        .get(env.addr, "/")
        .await
        .unwrap();
    assert_eq!(page.status, 403);
    assert_eq!(page.header("x-client-cert-error"), Some("crl-stale"));
    assert!(
        page.text().contains("revocation list is out of date"),
        "{}",
        page.text()
    );
    // a certificate the old CRL revokes is told it is revoked, not that
    // only the list is out of date
    let lost = env.client(Some(&revoked)).get(env.addr, "/").await.unwrap();
    assert_eq!(lost.header("x-client-cert-error"), Some("revoked"));
    let outside = env
        .client(Some(&outsider))
        .get(env.addr, "/")
        .await
        .unwrap();
    assert_eq!(outside.header("x-client-cert-error"), Some("not-allowed"));
    assert_eq!(env.backend.count(), 0);
    let (code, body) = status_get(status, Some("localhost"), "/readyz").await;
    assert_eq!(code, 503, "every client is refused: not ready");
    assert!(body.contains("CRL_STALE=refuse"), "{body}");
    let (_, body) = status_get(status, Some("localhost"), "/status").await;
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["crls"][0]["state"], "stale");
    assert_eq!(json["crl_stale"], "refuse");
    assert_eq!(json["crl_refusing_clients"], true);
    let (_, metrics) = status_get(status, Some("localhost"), "/metrics").await;
    assert!(
        metrics.contains("weborca_proxy_crl_stale_refusing 1"),
        "{metrics}"
    );

    write(env.dir.path(), "ca.crl", &env.ca.crl(&[]));
    env.reload().unwrap();
    env.assert_serves_user1().await;
    assert_eq!(env.backend.count(), 1);
    assert_eq!(
        status_get(status, Some("localhost"), "/readyz").await.0,
        200
    );
    let (_, body) = status_get(status, Some("localhost"), "/status").await;
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["crls"][0]["state"], "current");
    assert_eq!(json["crl_refusing_clients"], false);
}

#[tokio::test]
async fn crl_stale_refuse_takes_effect_on_open_connections_when_nextupdate_passes() {
    let mut setup = Setup::new();
    let due = time::OffsetDateTime::now_utc() + time::Duration::seconds(4);
    let crl = write(setup.dir.path(), "ca.crl", &setup.ca.crl_due(&[], due));
    setup.conf.push(format!("CA_CRL={}", crl.display()));
    setup.conf.push("CRL_STALE=refuse".into());
    let env = setup.start().await;
    let mut open = Kept::open(&env.client(Some(&env.user1)), env.addr).await;
    assert_eq!(open.get("/").await.unwrap().status, 200);
    let left = (due - time::OffsetDateTime::now_utc())
        .whole_milliseconds()
        .max(0) as u64;
    tokio::time::sleep(std::time::Duration::from_millis(left + 1_200)).await;
    let page = open.get("/late").await.unwrap();
    assert_eq!(page.status, 403);
    assert_eq!(page.header("x-client-cert-error"), Some("crl-stale"));
    assert_eq!(
        env.backend.count(),
        1,
        "nothing forwarded once the CRL went out of date"
    );
}

#[tokio::test]
async fn crl_stale_warn_keeps_serving_and_reports_the_stale_crl() {
    let mut setup = Setup::new();
    let crl = write(setup.dir.path(), "ca.crl", &setup.ca.stale_crl(&[]));
    setup.conf.push(format!("CA_CRL={}", crl.display()));
    setup.conf.push("STATUS_LISTEN=127.0.0.1:0".into());
    let env = setup.start().await;
    env.assert_serves_user1().await;
    let (_, body) = status_get(env.status.unwrap(), Some("localhost"), "/status").await;
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["crls"][0]["state"], "stale");
    assert_eq!(json["crl_stale"], "warn");
    assert_eq!(json["crl_refusing_clients"], false);
    let (_, metrics) = status_get(env.status.unwrap(), Some("localhost"), "/metrics").await;
    assert!(metrics.contains("weborca_proxy_crl_stale 1"), "{metrics}");
}

#[test]
fn a_crl_replaced_while_a_reload_reads_it_is_seen_by_the_next_poll() {
    let mut setup = Setup::new();
    let crl = write(setup.dir.path(), "ca.crl", &setup.ca.crl(&[]));
    setup.conf.push(format!("CA_CRL={}", crl.display()));
    let conf = setup.write_config("http://127.0.0.1:9");
    let sessions = weborca_mtls_proxy::tls::Sessions::new().unwrap();
    let newer = setup.ca.crl(&[setup.user1.serial]);
    let dir = setup.dir.path().to_path_buf();
    let set = weborca_mtls_proxy::reload::load_set(&conf, &sessions, || {
        // replaced by rename, as orca-catool's copy or an editor does
        let tmp = write(&dir, "ca.crl.new", &newer);
        std::fs::rename(tmp, dir.join("ca.crl")).unwrap();
    })
    .expect("the set loads");
    assert!(
        set.changed_since_read(),
        "the record was taken after the read: the replaced CRL would never be reloaded"
    );
    let unchanged = weborca_mtls_proxy::reload::load_set(&conf, &sessions, || {}).unwrap();
    assert!(!unchanged.changed_since_read());
}

/// The regression of a status listener held by clients that send requests
/// and never read the answers: once the socket's buffers were full the
/// server waited on its write for good, where no header timeout runs, so
/// STATUS_MAX_CONNECTIONS such clients left `/healthz` unanswered. A
/// connection whose answer waits unread for STATUS_WRITE_TIMEOUT is now
/// closed: each client's writes then fail (the server's close is what the
/// test waits for), and the listener answers again.
#[tokio::test]
async fn status_listener_closes_connections_that_never_read_their_answers() {
    use weborca_mtls_proxy::status::{STATUS_MAX_CONNECTIONS, STATUS_WRITE_TIMEOUT};
    let mut setup = Setup::new();
    setup.conf.push("STATUS_LISTEN=127.0.0.1:0".into());
    let env = setup.start().await;
    let status = env.status.unwrap();
    let requests = b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n".repeat(100);
    let mut unread = Vec::new();
    let mut writers = Vec::new();
    for _ in 0..STATUS_MAX_CONNECTIONS {
        let (read, mut write) = TcpStream::connect(status).await.unwrap().into_split();
        let requests = requests.clone();
        // pipelines requests until the server stops taking them, and
        // ends when the server has closed the connection
        writers.push(tokio::spawn(async move {
            while write.write_all(&requests).await.is_ok() {}
        }));
        unread.push(read); // never read
    }
    let request = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n";
    let mut extra = TcpStream::connect(status).await.unwrap();
    let a = exchange(&mut extra, request, true).await;
    assert_eq!(a.status, None, "answered beyond the cap: {a:?}");
    let limit = STATUS_WRITE_TIMEOUT + PATIENCE;
    for (i, writer) in writers.into_iter().enumerate() {
        let closed = tokio::time::timeout(limit, writer).await;
        assert!(
            closed.is_ok(),
            "connection {i}, which never reads, still open after {limit:?}"
        );
    }
    let mut tcp = TcpStream::connect(status).await.unwrap();
    let a = exchange(&mut tcp, request, false).await;
    assert_eq!(a.status, Some(200), "{a:?}");
    drop(unread);
}
