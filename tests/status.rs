//! The status listener after real traffic, and the access log: what the
//! clinic's operator and its monitoring see.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::util::backend::Backend;
use crate::util::client::Client;
use crate::util::env::Setup;
use crate::util::pki::write;
use crate::util::process::Proc;

/// A plain HTTP/1.0 GET of `path` (with `accept`, if any) to the status
/// listener: the whole answer, head and body.
async fn raw_get(addr: std::net::SocketAddr, path: &str, accept: Option<&str>) -> String {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let accept = accept
        .map(|a| format!("Accept: {a}\r\n"))
        .unwrap_or_default();
    tcp.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n{accept}\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    tcp.read_to_string(&mut out).await.unwrap();
    out
}

/// A GET to the status listener: (status code, body).
async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let out = raw_get(addr, path, None).await;
    let code = out[9..12].parse().unwrap();
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

/// The Content-Type of a GET of `path` with `accept`.
async fn content_type(addr: std::net::SocketAddr, path: &str, accept: Option<&str>) -> String {
    let out = raw_get(addr, path, accept).await;
    out.lines()
        .find_map(|l| {
            l.split_once(':')
                .filter(|(k, _)| k.eq_ignore_ascii_case("content-type"))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| panic!("no Content-Type: {out}"))
}

/// Prometheus' classic text as its parsers read it: every sample belongs
/// to the family the `# TYPE` before it names (a counter's name with its
/// `_total`, a histogram's with `_bucket`, `_sum`, `_count`), and no
/// OpenMetrics-only line.
fn classic_text_is_whole(text: &str) {
    let mut family: Option<(&str, &str)> = None;
    let mut samples = 0;
    for line in text.lines() {
        assert!(
            line != "# EOF" && !line.starts_with("# UNIT "),
            "{line}\n{text}"
        );
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(kind != "counter" || name.ends_with("_total"), "{line}");
            family = Some((name, kind));
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let name = line.split(['{', ' ']).next().unwrap();
        let (typed, kind) = family.unwrap_or_else(|| panic!("no # TYPE before {line}"));
        let belongs = name == typed
            || (kind == "histogram"
                && ["_bucket", "_sum", "_count"]
                    .iter()
                    .any(|s| name.strip_suffix(s) == Some(typed)));
        assert!(
            belongs,
            "{line} is not of the family {typed} ({kind})\n{text}"
        );
        samples += 1;
    }
    assert!(samples > 10, "{text}");
}

#[tokio::test]
async fn status_and_metrics_reflect_real_traffic() {
    let mut setup = Setup::new();
    let revoked = setup.ca.client("lost-laptop");
    let crl = write(setup.dir.path(), "ca.crl", &setup.ca.crl(&[revoked.serial]));
    setup.conf.push(format!("CA_CRL={}", crl.display()));
    setup.conf.push("STATUS_LISTEN=127.0.0.1:0".into());
    let env = setup.start().await;
    let status = env.status.expect("status listener");
    assert_eq!(get(status, "/healthz").await.0, 200);
    assert_eq!(
        env.client(Some(&env.user1))
            .get(env.addr, "/")
            .await
            .unwrap()
            .status,
        200
    );
    assert_eq!(
        env.client(Some(&env.user1))
            .get(env.addr, "/")
            .await
            .unwrap()
            .status,
        200
    );
    assert_eq!(
        env.client(Some(&revoked))
            .get(env.addr, "/")
            .await
            .unwrap()
            .status,
        403
    );
    assert_eq!(
        env.client(None).get(env.addr, "/").await.unwrap().status,
        403
    );

    let (code, body) = get(status, "/status").await;
    assert_eq!(code, 200);
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        json["server_certificate"]["subject"],
        "/C=JP/O=orca/CN=localhost"
    );
    assert!(json["server_certificate"]["days_left"].as_i64().unwrap() > 3000);
    assert_eq!(json["crls"][0]["revoked"], 1);
    let clients = json["clients"].as_array().unwrap();
    assert_eq!(
        clients.len(),
        1,
        "only verified clients are listed: {clients:?}"
    );
    assert_eq!(clients[0]["cn"], "user1");
    assert_eq!(clients[0]["serial"], format!("{:02x}", env.user1.serial));
    assert_eq!(clients[0]["requests"], 2);
    assert_eq!(clients[0]["expiring_soon"], false);
    assert!(clients[0]["days_left"].as_i64().unwrap() > 3000);
    assert_eq!(json["backend"]["state"], "answering");

    let (_, metrics) = get(status, "/metrics").await;
    classic_text_is_whole(&metrics);
    let open = raw_get(status, "/metrics", Some("application/openmetrics-text")).await;
    assert!(open.trim_end().ends_with("# EOF"), "{open}");
    assert!(
        open.contains("# TYPE weborca_proxy_connections counter"),
        "{open}"
    );
    // classic text for curl and most tools, OpenMetrics when asked for
    for (accept, expected) in [
        (None, "text/plain; version=0.0.4; charset=utf-8"),
        (
            Some("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"),
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        ),
    ] {
        assert_eq!(content_type(status, "/metrics", accept).await, expected);
    }
    for line in [
        "weborca_proxy_client_cert_refusals_total{reason=\"revoked\"} 1",
        "weborca_proxy_client_cert_refusals_total{reason=\"missing\"} 1",
        "weborca_proxy_requests_total{class=\"2xx\",code=\"200\"} 2",
        "weborca_proxy_requests_total{class=\"4xx\",code=\"403\"} 2",
        "weborca_proxy_tls_handshakes_total{result=\"ok\"} 4",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "missing {line} in\n{metrics}"
        );
    }
    assert!(metrics.contains("weborca_proxy_cert_expiry_timestamp_seconds{kind=\"server\",subject=\"/C=JP/O=orca/CN=localhost\"}"));
    assert!(metrics.contains("kind=\"crl\""));
    assert!(metrics.contains("weborca_proxy_request_duration_seconds_bucket"));
}

/// WebORCA stopping right after it answered: `/readyz` and `/status` say so
/// at once, not once an earlier answer has grown old; back, they say so too.
#[tokio::test]
async fn readyz_and_status_see_weborca_stop_right_after_it_answered() {
    let weborca = Backend::start().await;
    let weborca_addr = weborca.addr;
    let mut setup = Setup::new();
    setup.conf.push("STATUS_LISTEN=127.0.0.1:0".into());
    setup
        .conf
        .push(format!("BACKEND_URL=http://{weborca_addr}"));
    let env = setup.start_with_backend(Backend::start().await).await;
    let status = env.status.unwrap();
    let answer = env
        .client(Some(&env.user1))
        .get(env.addr, "/")
        .await
        .unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(weborca.count(), 1);
    assert_eq!(get(status, "/readyz").await.0, 200);
    weborca.stop().await;
    let (code, body) = get(status, "/readyz").await;
    assert_eq!(code, 503, "{body}");
    let (_, body) = get(status, "/status").await;
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["backend"]["state"], "not answering", "{json}");
    assert!(json["backend"]["last_ok"].is_string(), "{json}");
    assert!(
        json["backend"]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains(&format!("{weborca_addr} does not accept a connection"))),
        "{json}"
    );
    let _back = Backend::start_on(weborca_addr).await;
    assert_eq!(get(status, "/readyz").await.0, 200);
    let (_, body) = get(status, "/status").await;
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["backend"]["state"], "answering", "{json}");
}

#[tokio::test]
async fn readyz_follows_the_backend() {
    let backend = Backend::start().await;
    let backend_addr = backend.addr;
    let mut setup = Setup::new();
    setup.conf.push("STATUS_LISTEN=127.0.0.1:0".into());
    let env = setup.start_with_backend(backend).await;
    let status = env.status.unwrap();
    assert_eq!(get(status, "/readyz").await.0, 200);
    // a setup whose backend port has nothing listening
    drop(env);
    let mut setup = Setup::new();
    setup.conf.push("STATUS_LISTEN=127.0.0.1:0".into());
    setup
        .conf
        .push(format!("BACKEND_URL=http://{backend_addr}"));
    let env = setup.start_with_backend(Backend::start().await).await;
    let (code, body) = get(env.status.unwrap(), "/readyz").await;
    assert_eq!(code, 503, "{body}");
    assert!(body.contains(&backend_addr.to_string()));
    let answer = env
        .client(Some(&env.user1))
        .get(env.addr, "/")
        .await
        .unwrap();
    assert_eq!(answer.status, 502);
    let (_, metrics) = get(env.status.unwrap(), "/metrics").await;
    assert!(
        metrics.contains("weborca_proxy_backend_errors_total{kind=\"connect\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn access_log_names_the_client_and_never_the_credentials() {
    let backend = Backend::start().await;
    let mut setup = Setup::new();
    setup.user1 = setup.ca.client_valid("user1", -1, 10);
    let conf = setup.write_config(&backend.url());
    let mut p = Proc::start(&conf, &[]);
    let addr = p.listening();
    let client = Client::h1(&setup.ca.pem, Some(&setup.user1));
    for _ in 0..2 {
        let req = http::Request::get("/api01rv2/patientgetv2?id=1")
            .header("host", "localhost")
            .header("authorization", "Basic c2VjcmV0OnBhc3N3b3Jk")
            .header("cookie", "session=topsecret")
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap();
        assert_eq!(client.send(addr, req).await.unwrap().status, 200);
    }
    let line = p.wait_for("/api01rv2/patientgetv2?id=1").unwrap();
    assert!(
        line.contains("cn=user1") && line.contains(&format!("serial={:02x}", setup.user1.serial)),
        "{line}"
    );
    assert!(
        line.contains("\"GET /api01rv2/patientgetv2?id=1 HTTP/1.1\" 200"),
        "{line}"
    );
    assert!(line.contains("127.0.0.1:"), "{line}");
    p.wait_for("/api01rv2/patientgetv2?id=1").unwrap();
    p.signal("TERM");
    let (_, lines) = p.exit();
    let all = lines.join("\n");
    assert!(
        !all.contains("c2VjcmV0OnBhc3N3b3Jk") && !all.contains("topsecret"),
        "credentials in the log"
    );
    // a client certificate expiring within CERT_WARN_DAYS is logged once a day
    let warnings: Vec<_> = lines
        .iter()
        .filter(|l| l.starts_with("client certificate CN=user1"))
        .collect();
    assert_eq!(warnings.len(), 1, "{lines:#?}");
    assert!(warnings[0].contains("expires in 9 days"), "{}", warnings[0]);
}

#[tokio::test]
async fn a_seen_client_refused_since_is_listed_refused_until_accepted_again() {
    let mut setup = Setup::new();
    let crl = write(setup.dir.path(), "ca.crl", &setup.ca.crl(&[]));
    setup.conf.push(format!("CA_CRL={}", crl.display()));
    setup.conf.push("STATUS_LISTEN=127.0.0.1:0".into());
    let env = setup.start().await;
    let status = env.status.expect("status listener");
    env.assert_serves_user1().await;
    let refused = || async {
        let (_, body) = get(status, "/status").await;
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["clients"][0]["cn"], "user1", "{json}");
        json["clients"][0]["refused"].clone()
    };
    assert_eq!(refused().await, serde_json::Value::Null);
    write(env.dir.path(), "ca.crl", &env.ca.crl(&[env.user1.serial]));
    env.reload().unwrap();
    let answer = env
        .client(Some(&env.user1))
        .get(env.addr, "/")
        .await
        .unwrap();
    assert_eq!(answer.header("x-client-cert-error"), Some("revoked"));
    assert_eq!(refused().await, "revoked");
    let (_, page) = get(status, "/").await;
    assert!(
        page.contains("拒否: ") && page.contains("revoked"),
        "{page}"
    );
    // the CRL put right: accepted, and listed as in use again
    write(env.dir.path(), "ca.crl", &env.ca.crl(&[]));
    env.reload().unwrap();
    env.assert_serves_user1().await;
    assert_eq!(refused().await, serde_json::Value::Null);
}

/// Two CAs of one name in CA_CRT (a clinic moving from one orca-catool CA
/// to the next), a client of each with the same serial: `/status` says of
/// each seen client its issuer and the CA_CRT certificate its own chain
/// ends at (the `sha256` of a `ca_certificates` entry), which is what tells
/// them apart, in the page mode and in the handshake mode (where the
/// verdict is rustls' and the CA is found after it).
#[tokio::test]
async fn status_names_the_ca_certificate_each_seen_client_chains_to() {
    use sha2::Digest as _;
    for mode in ["page", "handshake"] {
        let mut setup = Setup::new();
        let b = crate::util::pki::Ca::new("test-ca");
        let user_a = setup.ca.client_numbered("userA", 10);
        let user_b = b.client_numbered("userB", 10);
        let both = write(
            setup.dir.path(),
            "both-cas.crt",
            &format!("{}{}", setup.ca.pem, b.pem),
        );
        setup.conf.push(format!("CA_CRT={}", both.display()));
        setup.conf.push(format!("CLIENT_CERT_ERRORS={mode}"));
        setup.conf.push("STATUS_LISTEN=127.0.0.1:0".into());
        let env = setup.start().await;
        let status = env.status.expect("status listener");
        for leaf in [&user_a, &user_b] {
            let answer = env.client(Some(leaf)).get(env.addr, "/").await.unwrap();
            assert_eq!(answer.status, 200, "{mode}, {}", leaf.cn);
        }
        let (_, body) = get(status, "/status").await;
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        let fingerprint = |der: &[u8]| hex::encode(sha2::Sha256::digest(der));
        let (fp_a, fp_b) = (fingerprint(&env.ca.der), fingerprint(&b.der));
        assert_ne!(fp_a, fp_b);
        let cas: Vec<&str> = json["ca_certificates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["sha256"].as_str().unwrap())
            .collect();
        assert_eq!(cas, [fp_a.as_str(), fp_b.as_str()], "{mode}: {json}");
        let clients = json["clients"].as_array().unwrap();
        for (cn, fp) in [("userA", &fp_a), ("userB", &fp_b)] {
            let c = clients
                .iter()
                .find(|c| c["cn"] == cn)
                .unwrap_or_else(|| panic!("{mode}: {cn} not listed: {json}"));
            assert_eq!(c["serial"], "0a", "{mode}: {c}");
            assert_eq!(c["issuer"], "/C=JP/O=orca/CN=test-ca", "{mode}: {c}");
            assert_eq!(c["ca_sha256"], fp.as_str(), "{mode}: {cn}'s CA: {c}");
        }
    }
}

/// The CA certificate a seen client is listed with is the one of CA_CRT
/// now: after a reload that renews the CA's certificate (its name and key
/// kept, so its clients stay accepted), the client's next connection lists
/// it with the renewed certificate's fingerprint, the one install-crl finds
/// in CA_CRT.
#[tokio::test]
async fn a_seen_clients_ca_follows_a_reload_of_ca_crt() {
    use sha2::Digest as _;
    let key = rcgen::KeyPair::generate().unwrap();
    let key_pem = key.serialize_pem();
    let mut setup = Setup::new();
    setup.ca = crate::util::pki::Ca::with_key("test-ca", key);
    setup.server = setup.ca.server(&["localhost", "127.0.0.1"], 3650);
    setup.user1 = setup.ca.client("user1");
    let renewed =
        crate::util::pki::Ca::with_key("test-ca", rcgen::KeyPair::from_pem(&key_pem).unwrap());
    setup.conf.push("STATUS_LISTEN=127.0.0.1:0".into());
    let env = setup.start().await;
    let status = env.status.expect("status listener");
    let ca_of_user1 = || async {
        let (_, body) = get(status, "/status").await;
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["clients"][0]["cn"], "user1", "{json}");
        json["clients"][0]["ca_sha256"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let fingerprint = |der: &[u8]| hex::encode(sha2::Sha256::digest(der));
    env.assert_serves_user1().await;
    assert_eq!(ca_of_user1().await, fingerprint(&env.ca.der));
    write(env.dir.path(), "ca.crt", &renewed.pem);
    env.reload().unwrap();
    env.assert_serves_user1().await;
    assert_eq!(ca_of_user1().await, fingerprint(&renewed.der));
}
