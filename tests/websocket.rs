//! The push WebSocket (`wss://host:8000/ws`) as push-exchanger uses it.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use crate::util::env::{Env, Setup};
use crate::util::ws::{Ws, open_with};

/// The push WebSocket as push-exchanger opens it: tenant and Basic auth headers.
async fn open_ws(env: &Env) -> Ws {
    let headers = [
        ("X-GINBEE-TENANT-ID", "1"),
        ("Authorization", "Basic b3JtYXN0ZXI6b3JtYXN0ZXI="),
    ];
    open_with(env, &env.user1, &headers).await
}

#[tokio::test]
async fn push_client_subscribes_and_receives_events_with_identity() {
    let env = Env::start().await;
    let mut ws = open_ws(&env).await;
    ws.send(Message::text(
        r#"{"command":"subscribe","req.id":"1","event":"*"}"#,
    ))
    .await
    .unwrap();
    let first = ws.next().await.unwrap().unwrap();
    assert!(first.to_text().unwrap().contains("subscribed"));
    let second = ws.next().await.unwrap().unwrap();
    assert!(second.to_text().unwrap().contains("event"));
    let seen = env.backend.last();
    assert_eq!(seen.target, "/ws");
    assert_eq!(seen.one("x-ginbee-tenant-id"), Some("1"));
    assert_eq!(
        seen.one("authorization"),
        Some("Basic b3JtYXN0ZXI6b3JtYXN0ZXI=")
    );
    assert_eq!(seen.one("x-ssl-client-s-dn"), Some("CN=user1,O=orca,C=JP"));
    assert!(seen.one("sec-websocket-protocol").is_none());
    ws.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::binary(vec![1u8, 2, 3])
    );
    ws.close(None).await.unwrap();
}

#[tokio::test]
async fn websocket_outlives_the_request_idle_timeout() {
    let mut setup = Setup::new();
    setup.conf.push("IDLE_TIMEOUT=1s".into());
    let env = setup.start().await;
    let mut ws = open_ws(&env).await;
    // A plain keep-alive connection is closed after IDLE_TIMEOUT...
    let tls = env
        .client(Some(&env.user1))
        .connect(env.addr)
        .await
        .unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .unwrap();
    let conn_task = tokio::spawn(conn);
    let req = http::Request::get("/")
        .header("host", "localhost")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    assert_eq!(sender.send_request(req).await.unwrap().status(), 200);
    tokio::time::timeout(Duration::from_secs(10), conn_task)
        .await
        .expect("idle keep-alive connection closed")
        .unwrap()
        .unwrap();
    // ...while the WebSocket, quiet for longer than that, still works.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    ws.send(Message::text("still there?")).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::text("still there?")
    );
}

#[tokio::test]
async fn websocket_is_closed_cleanly_on_shutdown() {
    let env = Env::start().await;
    let mut ws = open_ws(&env).await;
    ws.send(Message::text("hello")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("hello"));
    env.handle.shutdown();
    let end = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .expect("the tunnel ends on shutdown");
    match end {
        Some(Ok(Message::Close(Some(frame)))) => {
            assert_eq!(
                frame.code,
                tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode::Away
            )
        }
        other => panic!("expected a Close frame (1001 going away), got {other:?}"),
    }
    let drained = tokio::time::timeout(Duration::from_secs(10), env.task)
        .await
        .unwrap()
        .unwrap();
    assert!(drained);
}
