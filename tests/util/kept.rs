//! A kept-open client connection (HTTP/1.1 keep-alive or HTTP/2, by ALPN)
//! that sends one request after another on the same TLS session: what a
//! browser that never idles out does.

use std::net::SocketAddr;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};

use super::client::{Answer, Client};

/// One open connection to the proxy.
pub enum Kept {
    H1(http1::SendRequest<Full<Bytes>>),
    H2(http2::SendRequest<Full<Bytes>>, u16),
}

impl Kept {
    /// Connects with `client`; HTTP/2 when ALPN chose it.
    pub async fn open(client: &Client, addr: SocketAddr) -> Kept {
        let tls = client.connect(addr).await.expect("TLS connect");
        let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
        let io = TokioIo::new(tls);
        if h2 {
            let (sender, conn) = http2::handshake(TokioExecutor::new(), io)
                .await
                .expect("h2 handshake");
            tokio::spawn(conn);
            Kept::H2(sender, addr.port())
        } else {
            let (sender, conn) = http1::handshake(io).await.expect("h1 handshake");
            tokio::spawn(conn);
            Kept::H1(sender)
        }
    }

    /// GET `path` (Accept: text/html) on this connection.
    pub async fn get(&mut self, path: &str) -> Result<Answer, String> {
        let req = Request::get(path)
            .header("host", "localhost")
            .header("accept", "text/html")
            .body(Full::new(Bytes::new()))
            .unwrap();
        self.send(req).await
    }

    /// Sends `req` on this connection (over HTTP/2 its path is made absolute).
    pub async fn send(&mut self, mut req: Request<Full<Bytes>>) -> Result<Answer, String> {
        let resp = match self {
            Kept::H1(s) => {
                s.ready().await.map_err(|e| format!("closed: {e}"))?;
                s.send_request(req).await
            }
            Kept::H2(s, port) => {
                let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
                *req.uri_mut() = format!("https://localhost:{port}{target}").parse().unwrap();
                s.ready().await.map_err(|e| format!("closed: {e}"))?;
                s.send_request(req).await
            }
        }
        .map_err(|e| format!("request: {e}"))?;
        Answer::read(resp).await
    }
}
