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
async fn garbage_bytes_are_dropped_and_service_continues() {
    let env = Env::start().await;
    let mut tcp = TcpStream::connect(env.addr).await.unwrap();
    tcp.write_all(&[0x00, 0xff, 0x13, 0x37]).await.unwrap();
    let mut out = Vec::new();
    let _ = tcp.read_to_end(&mut out).await;
    assert!(out.is_empty());
    env.assert_serves_user1().await;
}
