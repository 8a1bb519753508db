//! What WebORCA sees of a verified client's request.

use bytes::Bytes;
use http::Request;
use http_body_util::Full;

use crate::util::backend::hex;
use crate::util::client::Client;
use crate::util::env::Env;

const XML: &str =
    "<data><patientinfo_req type=\"record\"><Patient_ID>1</Patient_ID></patientinfo_req></data>";

fn api_request() -> Request<Full<Bytes>> {
    Request::post("/api01rv2/patientgetv2?id=1&format=xml")
        .header("host", "weborca-server:8000")
        .header("authorization", "Basic b3JtYXN0ZXI6b3JtYXN0ZXI=")
        .header("cookie", "a=1; b=2")
        .header("content-type", "application/xml")
        .header("x-custom", "kept as is")
        .body(Full::new(Bytes::from(XML)))
        .unwrap()
}

#[tokio::test]
async fn verified_client_reaches_backend_with_request_unchanged() {
    let env = Env::start().await;
    let answer = env
        .client(Some(&env.user1))
        .send(env.addr, api_request())
        .await
        .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.text());
    let seen = env.backend.last();
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.target, "/api01rv2/patientgetv2?id=1&format=xml");
    assert_eq!(seen.one("host"), Some("weborca-server:8000"));
    assert_eq!(
        seen.one("authorization"),
        Some("Basic b3JtYXN0ZXI6b3JtYXN0ZXI=")
    );
    assert_eq!(seen.one("cookie"), Some("a=1; b=2"));
    assert_eq!(seen.one("x-custom"), Some("kept as is"));
    assert_eq!(seen.one("content-type"), Some("application/xml"));
    assert_eq!(seen.body_len, XML.len() as u64);
    // the backend's own response headers come back, hop-by-hop ones removed
    assert_eq!(answer.header("set-cookie"), Some("session=abc; Path=/"));
    assert!(answer.header("keep-alive").is_none());
}

#[tokio::test]
async fn identity_and_forwarded_headers_describe_the_client() {
    let env = Env::start().await;
    env.client(Some(&env.user1))
        .send(env.addr, api_request())
        .await
        .unwrap();
    let seen = env.backend.last();
    assert_eq!(seen.one("x-ssl-client-verify"), Some("SUCCESS"));
    assert_eq!(seen.one("x-ssl-client-s-dn"), Some("CN=user1,O=orca,C=JP"));
    assert_eq!(
        seen.one("x-ssl-client-i-dn"),
        Some("CN=test-ca,O=orca,C=JP")
    );
    assert_eq!(
        seen.one("x-ssl-client-serial"),
        Some(format!("{:02x}", env.user1.serial).as_str())
    );
    let sha = {
        use sha2::Digest;
        hex(&sha2::Sha256::digest(env.user1.der.as_ref()))
    };
    assert_eq!(seen.one("x-ssl-client-fingerprint"), Some(sha.as_str()));
    let not_after = seen.one("x-ssl-client-not-after").unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(not_after).is_ok(),
        "{not_after}"
    );
    let client_cert = seen.one("client-cert").unwrap();
    use base64::Engine;
    let der = base64::engine::general_purpose::STANDARD
        .decode(client_cert.trim_matches(':'))
        .unwrap();
    assert_eq!(der, env.user1.der.as_ref());
    assert!(client_cert.starts_with(':') && client_cert.ends_with(':'));
    assert_eq!(seen.one("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(seen.one("x-forwarded-proto"), Some("https"));
    assert_eq!(seen.one("x-forwarded-host"), Some("weborca-server:8000"));
}

#[tokio::test]
async fn spoofed_identity_headers_never_reach_the_backend() {
    let env = Env::start().await;
    let req = Request::get("/api01rv2/system01lstv2")
        .header("host", "localhost")
        .header("X-SSL-Client-S-DN", "CN=admin,O=orca,C=JP")
        .header("x-ssl-client-verify", "SUCCESS-FAKE")
        .header("X-SSL-CLIENT-SERIAL", "01")
        .header("x-ssl-client-cn", "admin")
        .header("SSL-Client", "CN=admin")
        .header("X-SSL-Client", "CN=admin")
        .header("Client-Cert", ":AAAA:")
        .header("client-cert-chain", ":AAAA:")
        .header("X-Forwarded-For", "10.0.0.1")
        .header("x-forwarded-host", "evil")
        .header("forwarded", "for=10.0.0.1")
        .body(Full::new(Bytes::new()))
        .unwrap();
    env.client(Some(&env.user1))
        .send(env.addr, req)
        .await
        .unwrap();
    let seen = env.backend.last();
    assert_eq!(
        seen.header("x-ssl-client-s-dn"),
        vec!["CN=user1,O=orca,C=JP"]
    );
    assert_eq!(seen.header("x-ssl-client-verify"), vec!["SUCCESS"]);
    assert_eq!(seen.header("x-ssl-client-serial").len(), 1);
    assert!(seen.header("x-ssl-client-cn").is_empty());
    assert!(seen.header("ssl-client").is_empty());
    assert!(seen.header("x-ssl-client").is_empty());
    assert_ne!(seen.one("client-cert"), Some(":AAAA:"));
    assert!(seen.header("client-cert-chain").is_empty());
    assert_eq!(seen.header("x-forwarded-for"), vec!["127.0.0.1"]);
    assert_eq!(seen.header("x-forwarded-host"), vec!["localhost"]);
    assert!(seen.header("forwarded").is_empty());
}

#[tokio::test]
async fn identity_headers_are_left_out_when_forward_client_cert_is_off() {
    let mut setup = crate::util::env::Setup::new();
    setup.conf.push("FORWARD_CLIENT_CERT=off".into());
    let env = setup.start().await;
    let req = Request::get("/")
        .header("host", "localhost")
        .header("x-ssl-client-s-dn", "CN=admin")
        .body(Full::new(Bytes::new()))
        .unwrap();
    env.client(Some(&env.user1))
        .send(env.addr, req)
        .await
        .unwrap();
    let seen = env.backend.last();
    assert!(seen.header("x-ssl-client-s-dn").is_empty());
    assert!(seen.header("client-cert").is_empty());
    assert_eq!(seen.one("x-forwarded-proto"), Some("https"));
}

#[tokio::test]
async fn hop_by_hop_headers_are_removed() {
    let env = Env::start().await;
    let req = Request::get("/")
        .header("host", "localhost")
        .header("connection", "keep-alive, X-Private")
        .header("x-private", "hop")
        .header("keep-alive", "timeout=5")
        .header("te", "trailers")
        .header("proxy-connection", "keep-alive")
        .body(Full::new(Bytes::new()))
        .unwrap();
    env.client(Some(&env.user1))
        .send(env.addr, req)
        .await
        .unwrap();
    let seen = env.backend.last();
    for h in ["x-private", "keep-alive", "te", "proxy-connection"] {
        assert!(seen.header(h).is_empty(), "{h} was forwarded");
    }
}

#[tokio::test]
async fn http2_client_is_forwarded_as_http11_with_host() {
    let env = Env::start().await;
    let client = Client::new(
        &env.ca.pem,
        Some(&env.user1),
        &[&b"h2"[..], &b"http/1.1"[..]],
    );
    let tls = client.connect(env.addr).await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let req = Request::get("https://weborca-server:8000/orca12/patientmodv2?class=01")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let answer = crate::util::client::send_on(tls, req).await.unwrap();
    assert_eq!(answer.status, 200);
    let seen = env.backend.last();
    assert_eq!(seen.target, "/orca12/patientmodv2?class=01");
    assert_eq!(seen.one("host"), Some("weborca-server:8000"));
    assert_eq!(seen.one("x-ssl-client-s-dn"), Some("CN=user1,O=orca,C=JP"));
}

#[tokio::test]
async fn large_upload_streams_through_with_digest_intact() {
    use futures_util::StreamExt;
    use http_body_util::StreamBody;
    use hyper::body::Frame;
    const SIZE: u64 = 256 * 1024 * 1024;
    const CHUNK: u64 = 256 * 1024;
    let env = Env::start().await;
    let tls = env
        .client(Some(&env.user1))
        .connect(env.addr)
        .await
        .unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    let mut hasher = sha2::Sha256::new();
    use sha2::Digest;
    let mut off = 0;
    while off < SIZE {
        hasher.update(crate::util::backend::pattern_chunk(off, CHUNK as usize));
        off += CHUNK;
    }
    let expected = hex(&hasher.finalize());
    let stream = futures_util::stream::iter((0..SIZE / CHUNK).map(|i| {
        Ok::<_, std::convert::Infallible>(Frame::data(crate::util::backend::pattern_chunk(
            i * CHUNK,
            CHUNK as usize,
        )))
    }))
    .boxed();
    let req = Request::post("/blobapi/upload")
        .header("host", "localhost")
        .body(StreamBody::new(stream))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let seen = env.backend.last();
    assert_eq!(seen.body_len, SIZE);
    assert_eq!(seen.body_sha256, expected);
}

#[tokio::test]
async fn large_download_streams_back_intact() {
    use http_body_util::BodyExt;
    use sha2::Digest;
    const SIZE: u64 = 64 * 1024 * 1024;
    let env = Env::start().await;
    let tls = env
        .client(Some(&env.user1))
        .connect(env.addr)
        .await
        .unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = Request::get(format!("/blobapi/big?n={SIZE}"))
        .header("host", "localhost")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let mut body = resp.into_body();
    let (mut got, mut hasher, mut expect) = (0u64, sha2::Sha256::new(), sha2::Sha256::new());
    while let Some(frame) = body.frame().await {
        let frame = frame.unwrap();
        if let Some(d) = frame.data_ref() {
            hasher.update(d);
            expect.update(crate::util::backend::pattern_chunk(got, d.len()));
            got += d.len() as u64;
        }
    }
    assert_eq!(got, SIZE);
    assert_eq!(hasher.finalize(), expect.finalize());
}

#[tokio::test]
async fn resumed_session_is_judged_again() {
    // A client that resumes its TLS session after its certificate was revoked
    // (CRL reloaded) must be refused: the verdict is not cached in the ticket.
    let env = Env::start().await;
    let client = env.client(Some(&env.user1));
    let first = client.get(env.addr, "/").await.unwrap();
    assert_eq!(first.status, 200);
    crate::util::pki::write(env.dir.path(), "ca.crl", &env.ca.crl(&[env.user1.serial]));
    let mut text = std::fs::read_to_string(&env.conf_path).unwrap();
    text.push_str(&format!("CA_CRL={}\n", env.path("ca.crl").display()));
    std::fs::write(&env.conf_path, text).unwrap();
    env.reload().unwrap();
    let before = env.backend.count();
    let tls = client.connect(env.addr).await.unwrap();
    assert_eq!(
        tls.get_ref().1.handshake_kind(),
        Some(rustls::HandshakeKind::Resumed)
    );
    let req = Request::get("/")
        .header("host", "localhost")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let answer = crate::util::client::send_on(tls, req).await.unwrap();
    assert_eq!(answer.status, 403);
    assert_eq!(answer.header("x-client-cert-error"), Some("revoked"));
    assert_eq!(env.backend.count(), before);
}

#[tokio::test]
async fn unspecified_ipv6_listen_address_serves_ipv4_clients_too() {
    let mut setup = crate::util::env::Setup::new();
    setup.conf.push("LISTEN=[::]:0".into());
    let env = setup.start().await;
    let port = env.addr.port();
    let client = env.client(Some(&env.user1));
    for addr in [format!("127.0.0.1:{port}"), format!("[::1]:{port}")] {
        let answer = client.get(addr.parse().unwrap(), "/").await.unwrap();
        assert_eq!(answer.status, 200, "{addr}");
    }
    assert_eq!(env.backend.count(), 2);
}
