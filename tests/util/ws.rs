//! A WebSocket to the proxy's `/ws` over a real TLS client connection: opened
//! (or refused with the status of the answer), an echo through it, and the
//! code of the Close frame the proxy sends.

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::env::Env;
use super::pki::Leaf;
use super::raw::PATIENCE;

/// A WebSocket through the proxy.
pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

/// Upgrades `/ws` with `leaf`'s certificate and the request headers
/// `headers`; the status of the answer when the upgrade is refused.
pub async fn try_open_with(
    env: &Env,
    leaf: &Leaf,
    headers: &[(&'static str, &str)],
) -> Result<Ws, u16> {
    let tls = env.client(Some(leaf)).connect(env.addr).await.unwrap();
    let mut req = format!("wss://localhost:{}/ws", env.addr.port())
        .into_client_request()
        .unwrap();
    for (name, value) in headers {
        req.headers_mut().insert(*name, value.parse().unwrap());
    }
    match tokio_tungstenite::client_async(req, tls).await {
        Ok((ws, resp)) => {
            assert_eq!(resp.status(), 101);
            Ok(ws)
        }
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
        Err(e) => panic!("websocket handshake: {e}"),
    }
}

/// Upgrades `/ws` with `leaf`'s certificate; the status when refused.
pub async fn try_open(env: &Env, leaf: &Leaf) -> Result<Ws, u16> {
    try_open_with(env, leaf, &[]).await
}

/// Upgrades `/ws` with `leaf`'s certificate and `headers`, which must be allowed.
pub async fn open_with(env: &Env, leaf: &Leaf, headers: &[(&'static str, &str)]) -> Ws {
    try_open_with(env, leaf, headers)
        .await
        .unwrap_or_else(|status| panic!("websocket upgrade refused with {status}"))
}

/// Upgrades `/ws` with `leaf`'s certificate, which must be allowed.
pub async fn open(env: &Env, leaf: &Leaf) -> Ws {
    open_with(env, leaf, &[]).await
}

/// Sends `text` and asserts the backend's echo of it within PATIENCE.
pub async fn echo(ws: &mut Ws, text: &str) {
    ws.send(Message::text(text)).await.unwrap();
    let got = tokio::time::timeout(PATIENCE, ws.next()).await;
    assert_eq!(got.unwrap().unwrap().unwrap(), Message::text(text));
}

/// Reads until the proxy's Close frame; returns its code.
pub async fn close_code(ws: &mut Ws) -> Option<CloseCode> {
    let read = async {
        while let Some(msg) = ws.next().await {
            match msg {
                Ok(Message::Close(frame)) => return frame.map(|f| f.code),
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
        None
    };
    tokio::time::timeout(PATIENCE, read)
        .await
        .expect("no close within PATIENCE")
}
