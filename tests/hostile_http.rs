//! Malformed and hostile HTTP from a client with a valid certificate: each
//! shape is refused with the right status (or reset), never forwarded in a
//! form WebORCA could read differently, never a panic, and the proxy keeps
//! serving.

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::util::client::Client;
use crate::util::env::Env;
use crate::util::raw::{PATIENCE, RawAnswer, exchange, h2};

/// Sends hand-written bytes on a new TLS connection (HTTP/1.1) with user1's certificate.
async fn raw(env: &Env, request: &[u8]) -> RawAnswer {
    let tls = env
        .client(Some(&env.user1))
        .connect(env.addr)
        .await
        .unwrap();
    exchange(tls, request, true).await
}

/// A request head with `extra` header lines.
fn head(first: &str, extra: &str) -> Vec<u8> {
    format!("{first}\r\nHost: localhost\r\n{extra}\r\n").into_bytes()
}

#[tokio::test]
async fn hostile_http1_shapes_are_refused_and_never_reach_the_backend() {
    let env = Env::start().await;
    let big = "a".repeat(100 * 1024);
    let many: String = (0..150).map(|i| format!("X-H{i}: v\r\n")).collect();
    let key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        (
            "oversized header",
            head("GET / HTTP/1.1", &format!("X-Big: {big}\r\n")),
            431,
        ),
        ("too many headers", head("GET / HTTP/1.1", &many), 431),
        (
            "NUL in a header value",
            head("GET / HTTP/1.1", "X-Bad: a\0b\r\n"),
            400,
        ),
        (
            "space in a header name",
            head("GET / HTTP/1.1", "Bad Name: x\r\n"),
            400,
        ),
        (
            "non-ASCII header name",
            head("GET / HTTP/1.1", "X-\u{e9}: x\r\n"),
            400,
        ),
        (
            "obs-fold",
            head("GET / HTTP/1.1", "X-Folded: a\r\n b\r\n"),
            400,
        ),
        (
            "Transfer-Encoding with another coding",
            [
                head("POST / HTTP/1.1", "Transfer-Encoding: gzip, chunked\r\n"),
                b"0\r\n\r\n".to_vec(),
            ]
            .concat(),
            501,
        ),
        (
            "Transfer-Encoding not ending in chunked",
            head(
                "POST / HTTP/1.1",
                "Transfer-Encoding: chunked, identity\r\n",
            ),
            400,
        ),
        (
            "two different Content-Lengths",
            [
                head(
                    "POST / HTTP/1.1",
                    "Content-Length: 3\r\nContent-Length: 30\r\n",
                ),
                b"abc".to_vec(),
            ]
            .concat(),
            400,
        ),
        (
            "Content-Length list",
            [
                head("POST / HTTP/1.1", "Content-Length: 3, 3\r\n"),
                b"abc".to_vec(),
            ]
            .concat(),
            400,
        ),
        (
            "absolute-form for another host",
            head("GET http://evil.example/ HTTP/1.1", ""),
            400,
        ),
        (
            "CONNECT",
            b"CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n".to_vec(),
            405,
        ),
        (
            "two Host headers",
            head("GET / HTTP/1.1", "Host: evil.example\r\n"),
            400,
        ),
        (
            "Host with a path",
            b"GET / HTTP/1.1\r\nHost: localhost/evil\r\n\r\n".to_vec(),
            400,
        ),
        (
            "Host with user information",
            b"GET / HTTP/1.1\r\nHost: user@localhost\r\n\r\n".to_vec(),
            400,
        ),
        ("no Host", b"GET / HTTP/1.1\r\n\r\n".to_vec(), 400),
        (
            "WebSocket without a key",
            head(
                "GET /ws HTTP/1.1",
                "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n",
            ),
            400,
        ),
        (
            "WebSocket with a short key",
            head(
                "GET /ws HTTP/1.1",
                "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: c2hvcnQ=\r\n",
            ),
            400,
        ),
        (
            "WebSocket without a version",
            head(
                "GET /ws HTTP/1.1",
                &format!("Connection: Upgrade\r\nUpgrade: websocket\r\n{key}"),
            ),
            426,
        ),
        (
            "WebSocket by POST",
            head(
                "POST /ws HTTP/1.1",
                &format!(
                    "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n{key}Content-Length: 0\r\n"
                ),
            ),
            400,
        ),
        (
            "HTTP/1.0 with Transfer-Encoding",
            head("POST / HTTP/1.0", "Transfer-Encoding: chunked\r\n"),
            400,
        ),
        ("invalid method", head("G(T / HTTP/1.1", ""), 400),
        (
            "control character in the target",
            head("GET /a\x01b HTTP/1.1", ""),
            400,
        ),
    ];
    for (name, bytes, want) in &cases {
        let answer = raw(&env, bytes).await;
        assert_eq!(answer.status, Some(*want), "{name}: {answer:?}");
        assert!(answer.closed, "{name}: connection left open: {answer:?}");
        assert_eq!(answer.responses(), 1, "{name}: {answer:?}");
        assert_eq!(env.backend.count(), 0, "{name} reached the backend");
    }
    // ...and the proxy still serves.
    env.assert_serves_user1().await;
}

#[tokio::test]
async fn smuggling_shapes_hyper_resolves_reach_the_backend_unambiguous() {
    // Content-Length beside Transfer-Encoding: hyper reads the chunks, drops
    // Content-Length and closes the connection after answering (RFC 9112
    // §6.1), so what follows the chunks is never read as a request.
    let env = Env::start().await;
    let answer = raw(
        &env,
        &[
            head(
                "POST /a HTTP/1.1",
                "Content-Length: 44\r\nTransfer-Encoding: chunked\r\n",
            ),
            b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec(),
        ]
        .concat(),
    )
    .await;
    assert_eq!(answer.status, Some(200), "{answer:?}");
    assert_eq!(answer.responses(), 1, "{answer:?}");
    assert!(answer.closed, "{answer:?}");
    assert_eq!(env.backend.count(), 1);
    let seen = env.backend.last();
    assert_eq!(seen.target, "/a");
    assert_eq!(seen.body_len, 0);
    assert!(seen.one("content-length").is_none(), "{seen:?}");
    // Two equal Content-Lengths: one reaches the backend.
    let answer = raw(
        &env,
        &[
            head(
                "POST /b HTTP/1.1",
                "Content-Length: 3\r\nContent-Length: 3\r\nConnection: close\r\n",
            ),
            b"abc".to_vec(),
        ]
        .concat(),
    )
    .await;
    assert_eq!(answer.status, Some(200), "{answer:?}");
    let seen = env.backend.last();
    assert_eq!(seen.target, "/b");
    assert_eq!(seen.header("content-length"), vec!["3"]);
    assert_eq!(seen.body_len, 3);
}

#[tokio::test]
async fn absolute_form_for_this_host_is_forwarded_in_origin_form() {
    let env = Env::start().await;
    let answer = raw(
        &env,
        b"GET https://localhost/api01rv2/system01lstv2?class=02 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(answer.status, Some(200), "{answer:?}");
    let seen = env.backend.last();
    assert_eq!(seen.target, "/api01rv2/system01lstv2?class=02");
    assert_eq!(seen.one("host"), Some("localhost"));
}

#[tokio::test]
async fn upgrade_header_without_connection_upgrade_is_not_a_websocket() {
    // Upgrade is hop-by-hop: without `Connection: upgrade` the request goes on
    // as a plain GET. The stand-in answers /ws with a key by 101 anyway: a
    // 101 the proxy did not ask for is a 502, never relayed.
    let env = Env::start().await;
    let answer = raw(
        &env,
        &head(
            "GET /ws HTTP/1.1",
            "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nConnection: close\r\n",
        ),
    )
    .await;
    assert_eq!(answer.status, Some(502), "{answer:?}");
    let seen = env.backend.last();
    assert!(seen.one("upgrade").is_none(), "{seen:?}");
}

#[tokio::test]
async fn identity_headers_in_any_spelling_are_stripped() {
    // Regression: `X_SSL_Client_Verify` (underscores) and X-Forwarded-* other
    // than For/Proto/Host reached the backend; CGI-style frameworks read
    // `X_SSL_Client_Verify` as X-SSL-Client-Verify.
    let env = Env::start().await;
    let answer = raw(
        &env,
        &head(
            "GET / HTTP/1.1",
            "X_SSL_Client_Verify: SUCCESS\r\nx_ssl_client_s_dn: CN=admin\r\nX-Forwarded-Port: 1\r\nX-Forwarded-Prefix: /admin\r\nX_Forwarded_For: 10.0.0.1\r\nX-Real-IP: 10.0.0.1\r\nClient_Cert: :AAAA:\r\nConnection: close\r\n",
        ),
    )
    .await;
    assert_eq!(answer.status, Some(200), "{answer:?}");
    let seen = env.backend.last();
    let names: Vec<&str> = seen.headers.iter().map(|(n, _)| n.as_str()).collect();
    for bad in [
        "x_ssl_client_verify",
        "x_ssl_client_s_dn",
        "x-forwarded-port",
        "x-forwarded-prefix",
        "x_forwarded_for",
        "x-real-ip",
        "client_cert",
    ] {
        assert!(
            !names.contains(&bad),
            "{bad} reached the backend: {names:?}"
        );
    }
    assert_eq!(seen.one("x-ssl-client-s-dn"), Some("CN=user1,O=orca,C=JP"));
    assert_eq!(seen.one("x-forwarded-for"), Some("127.0.0.1"));
}

/// An HTTP/2 connection by hand, after the server's SETTINGS.
async fn h2_raw(env: &Env) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    use tokio::io::AsyncWriteExt;
    let client = Client::new(&env.ca.pem, Some(&env.user1), &[b"h2"]);
    let mut tls = client.connect(env.addr).await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    tls.write_all(&h2::start()).await.unwrap();
    loop {
        let f = h2::read(&mut tls).await.expect("server settings");
        if f.ty == h2::SETTINGS && f.flags & h2::ACK == 0 {
            break;
        }
    }
    tls.write_all(&h2::frame(h2::SETTINGS, h2::ACK, 0, &[]))
        .await
        .unwrap();
    tls
}

#[tokio::test]
async fn http2_rapid_reset_gets_goaway_and_the_proxy_keeps_serving() {
    use tokio::io::AsyncWriteExt;
    let env = Env::start().await;
    let mut tls = h2_raw(&env).await;
    const STREAMS: u32 = 5000;
    let mut burst = Vec::new();
    for i in 0..STREAMS {
        let id = 1 + 2 * i;
        burst.extend(h2::get(id, "/"));
        burst.extend(h2::rst(id, 0x8)); // CANCEL
    }
    // The proxy may close before taking it all: a failed write is expected.
    let _ = tls.write_all(&burst).await;
    let goaway = tokio::time::timeout(PATIENCE, async {
        while let Some(f) = h2::read(&mut tls).await {
            if f.ty == h2::GOAWAY {
                return Some(f);
            }
        }
        None
    })
    .await
    .expect("the proxy answers the burst");
    let goaway = goaway.expect("GOAWAY before the connection ends");
    assert_eq!(goaway.error_code(), Some(h2::ENHANCE_YOUR_CALM));
    let forwarded = env.backend.count();
    assert!(
        forwarded < STREAMS as usize / 10,
        "{forwarded} of {STREAMS} reset streams were forwarded"
    );
    env.assert_serves_user1().await;
}

#[tokio::test]
async fn http2_streams_beyond_the_limit_are_refused() {
    use tokio::io::AsyncWriteExt;
    let env = Env::start().await;
    let mut tls = h2_raw(&env).await;
    const STREAMS: u32 = 200;
    const LIMIT: usize = 128; // server.rs H2_MAX_STREAMS
    let mut burst = Vec::new();
    for i in 0..STREAMS {
        burst.extend(h2::get(1 + 2 * i, "/slow")); // the stand-in answers /slow after 3 s
    }
    tls.write_all(&burst).await.unwrap();
    let refused = tokio::time::timeout(PATIENCE, async {
        let mut refused = 0;
        while let Some(f) = h2::read(&mut tls).await {
            if f.ty == h2::RST_STREAM && f.error_code() == Some(h2::REFUSED_STREAM) {
                refused += 1;
                if refused == STREAMS as usize - LIMIT {
                    break;
                }
            }
            assert_ne!(f.ty, h2::GOAWAY, "{f:?}");
        }
        refused
    })
    .await
    .expect("refusals arrive");
    assert_eq!(refused, STREAMS as usize - LIMIT);
    assert!(env.backend.count() <= LIMIT, "{}", env.backend.count());
}

/// One request over HTTP/2 with hyper's client; the status, or the error.
async fn h2_send(env: &Env, req: Request<Full<Bytes>>) -> Result<u16, String> {
    let client = Client::new(&env.ca.pem, Some(&env.user1), &[b"h2"]);
    let tls = client.connect(env.addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    let resp = tokio::time::timeout(PATIENCE, sender.send_request(req))
        .await
        .expect("an answer");
    resp.map(|r| r.status().as_u16()).map_err(|e| e.to_string())
}

#[tokio::test]
async fn hostile_http2_requests_are_refused() {
    let env = Env::start().await;
    let big = Request::get(format!("https://localhost:{}/", env.addr.port()))
        .header("x-big", "a".repeat(100 * 1024))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let status = h2_send(&env, big).await;
    assert!(
        status == Ok(431) || status.is_err(),
        "oversized HTTP/2 headers: {status:?}"
    );
    let connect = Request::connect(format!("evil.example:{}", env.addr.port()))
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(h2_send(&env, connect).await, Ok(405));
    let mismatch = Request::get(format!("https://localhost:{}/", env.addr.port()))
        .header("host", "evil.example")
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(h2_send(&env, mismatch).await, Ok(400));
    assert_eq!(env.backend.count(), 0);
    let fine = Request::get(format!("https://localhost:{}/", env.addr.port()))
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(h2_send(&env, fine).await, Ok(200));
}
