//! Plain `http://` sent to the TLS port.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::util::env::Env;

async fn raw(env: &Env, request: &str) -> String {
    let mut tcp = TcpStream::connect(env.addr).await.unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tcp.read_to_end(&mut out).await.unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn plain_http_is_redirected_to_https() {
    let env = Env::start().await;
    let host = format!("127.0.0.1:{}", env.addr.port());
    let resp = raw(
        &env,
        &format!("GET /api01rv2/system01lstv2?class=02 HTTP/1.1\r\nHost: {host}\r\n\r\n"),
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 301"), "{resp}");
    let location = format!("location: https://{host}/api01rv2/system01lstv2?class=02\r\n");
    assert!(resp.to_ascii_lowercase().contains(&location), "{resp}");
    let post = raw(
        &env,
        &format!("POST /api HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\n\r\n"),
    )
    .await;
    assert!(post.starts_with("HTTP/1.1 308"), "{post}");
    assert_eq!(env.backend.count(), 0);
}

#[tokio::test]
async fn plain_http_without_host_gets_an_explanation() {
    let env = Env::start().await;
    let resp = raw(&env, "GET / HTTP/1.0\r\n\r\n").await;
    assert!(
        resp.starts_with("HTTP/1.0 400") || resp.starts_with("HTTP/1.1 400"),
        "{resp}"
    );
    assert!(resp.contains("https://"), "{resp}");
    assert_eq!(env.backend.count(), 0);
}

#[tokio::test]
async fn a_redirect_is_only_to_a_url_that_reads_back() {
    let env = Env::start().await;
    let host = format!("localhost:{}", env.addr.port());
    let location = |resp: &str| {
        resp.lines().find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("location: ")
                .map(str::to_string)
        })
    };
    // `OPTIONS *` names no path: the root
    let star = raw(&env, &format!("OPTIONS * HTTP/1.1\r\nHost: {host}\r\n\r\n")).await;
    assert!(star.starts_with("HTTP/1.1 308"), "{star}");
    assert_eq!(location(&star), Some(format!("https://{host}/")), "{star}");
    // a raw UTF-8 path is percent-encoded, and the text names the URL too
    let mut tcp = TcpStream::connect(env.addr).await.unwrap();
    let head = format!("GET /患者?x=1 HTTP/1.1\r\nHost: {host}\r\n\r\n");
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tcp.read_to_end(&mut out).await.unwrap();
    let utf8 = String::from_utf8_lossy(&out).into_owned();
    let expected = format!("https://{host}/%E6%82%A3%E8%80%85?x=1");
    assert_eq!(
        location(&utf8).map(|l| l.to_ascii_uppercase()),
        Some(expected.to_ascii_uppercase()),
        "{utf8}"
    );
    assert!(
        utf8.contains(&format!("Use https:// : {expected}")),
        "{utf8}"
    );
    // a Host that is not one host:port gets the explanation, not a redirect
    for bad in ["localhost:abc", "localhost:8000/evil", "a b"] {
        let resp = raw(&env, &format!("GET / HTTP/1.1\r\nHost: {bad}\r\n\r\n")).await;
        assert!(resp.starts_with("HTTP/1.1 400"), "{bad}: {resp}");
        assert!(location(&resp).is_none(), "{bad}: {resp}");
    }
    assert_eq!(env.backend.count(), 0);
}

#[tokio::test]
async fn garbage_bytes_are_dropped_and_service_continues() {
    let env = Env::start().await;
    let mut tcp = TcpStream::connect(env.addr).await.unwrap();
    tcp.write_all(&[0x00, 0xff, 0x13, 0x37]).await.unwrap();
    let mut out = Vec::new();
    let _ = tcp.read_to_end(&mut out).await;
    assert!(out.is_empty());
    env.assert_serves_user1().await;
}
