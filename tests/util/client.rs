//! A real TLS client (tokio-rustls + hyper) that presents a client
//! certificate, speaks HTTP/1.1 or HTTP/2, and can resume sessions.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::pki::Leaf;

/// A client configuration: which CA it trusts, which certificate it shows.
#[derive(Clone)]
pub struct Client {
    pub config: Arc<ClientConfig>,
}

/// An answer read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    /// Reads the answer `resp` whole.
    pub async fn read(resp: http::Response<hyper::body::Incoming>) -> Result<Answer, String> {
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("body: {e}"))?
            .to_bytes();
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl Client {
    /// A client trusting `ca_pem`, showing `cert` (or nothing), offering `alpn`.
    pub fn new(ca_pem: &str, cert: Option<&Leaf>, alpn: &[&[u8]]) -> Client {
        let mut roots = RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots.add(c.unwrap()).unwrap();
        }
        let builder = ClientConfig::builder().with_root_certificates(roots);
        let mut config = match cert {
            Some(leaf) => {
                let mut chain = vec![leaf.der.clone()];
                chain.extend(leaf.chain.iter().cloned());
                let key = PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap();
                builder.with_client_auth_cert(chain, key).unwrap()
            }
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Client {
            config: Arc::new(config),
        }
    }

    /// A client showing `cert` but signing with the key of `key_of`: someone
    /// else's certificate without its key. (rustls checks that a client's
    /// key matches its certificate, so the pair goes in through a resolver.)
    pub fn impostor(ca_pem: &str, cert: &Leaf, key_of: &Leaf) -> Client {
        #[derive(Debug)]
        struct Always(Arc<rustls::sign::CertifiedKey>);
        impl rustls::client::ResolvesClientCert for Always {
            fn resolve(
                &self,
                _: &[&[u8]],
                _: &[rustls::SignatureScheme],
            ) -> Option<Arc<rustls::sign::CertifiedKey>> {
                Some(self.0.clone())
            }
            fn has_certs(&self) -> bool {
                true
            }
        }
        let mut roots = RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots.add(c.unwrap()).unwrap();
        }
        let key = PrivateKeyDer::from_pem_slice(key_of.key_pem.as_bytes()).unwrap();
        let signing = rustls::crypto::aws_lc_rs::sign::any_supported_type(&key).unwrap();
        let certified = rustls::sign::CertifiedKey::new(vec![cert.der.clone()], signing);
        let mut config = ClientConfig::builder()
            .with_root_certificates(roots)
            .with_client_cert_resolver(Arc::new(Always(Arc::new(certified))));
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Client {
            config: Arc::new(config),
        }
    }

    /// HTTP/1.1 only.
    pub fn h1(ca_pem: &str, cert: Option<&Leaf>) -> Client {
        Self::new(ca_pem, cert, &[b"http/1.1"])
    }

    /// TLS to `addr` as `localhost`.
    pub async fn connect(&self, addr: SocketAddr) -> std::io::Result<TlsStream<TcpStream>> {
        let tcp = TcpStream::connect(addr).await?;
        let name = ServerName::try_from("localhost").unwrap();
        TlsConnector::from(self.config.clone())
            .connect(name, tcp)
            .await
    }

    /// One request on a new connection (HTTP/2 when ALPN chose it).
    pub async fn send(
        &self,
        addr: SocketAddr,
        req: Request<Full<Bytes>>,
    ) -> Result<Answer, String> {
        let tls = self
            .connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        send_on(tls, req).await
    }

    /// GET `path` with `Accept: text/html`.
    pub async fn get(&self, addr: SocketAddr, path: &str) -> Result<Answer, String> {
        let req = Request::get(path)
            .header("host", "localhost")
            .header("accept", "text/html")
            .body(Full::new(Bytes::new()))
            .unwrap();
        self.send(addr, req).await
    }
}

/// Sends one request on an established TLS stream.
pub async fn send_on(
    tls: TlsStream<TcpStream>,
    req: Request<Full<Bytes>>,
) -> Result<Answer, String> {
    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    let io = TokioIo::new(tls);
    let resp = if h2 {
        let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .map_err(|e| format!("h2: {e}"))?;
        tokio::spawn(conn);
        sender
            .send_request(req)
            .await
            .map_err(|e| format!("request: {e}"))?
    } else {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| format!("h1: {e}"))?;
        tokio::spawn(conn);
        sender
            .send_request(req)
            .await
            .map_err(|e| format!("request: {e}"))?
    };
    Answer::read(resp).await
}
