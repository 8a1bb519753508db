//! Plain `http://` sent to the TLS port (seeds/004: 「http」ではなく「https」で
//! 接続をおこなってください). Instead of a dead connection the client gets a
//! redirect to the same URL with `https://`, or a 400 page saying what to do
//! when there is no Host to redirect to. Nothing is forwarded: no certificate.
//!
//! [`sniff`] is the listener's first look at a connection: the first byte of a
//! TLS handshake record, or an upper-case letter starting an HTTP method.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::pages::{self, Page};

/// The first byte of a TLS handshake record.
const TLS_HANDSHAKE: u8 = 0x16;
/// What a path keeps of itself in a Location: visible ASCII.
const NOT_ASCII_VISIBLE: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS.add(b' ');

/// Largest request head answered: a redirect needs only the request line and Host.
const MAX_HEAD_BYTES: usize = 16 * 1024;

/// What the first byte of a connection says it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstByte {
    /// a TLS handshake record
    Tls,
    /// an upper-case letter: the start of an HTTP method
    PlainHttp,
    /// anything else: closed without an answer
    Other,
}

/// Tells TLS from plain HTTP by the connection's first byte.
pub fn sniff(first: u8) -> FirstByte {
    match first {
        TLS_HANDSHAKE => FirstByte::Tls,
        b'A'..=b'Z' => FirstByte::PlainHttp,
        _ => FirstByte::Other,
    }
}

/// Serves the redirect on one plain-HTTP connection within HEADER_TIMEOUT, then closes it.
pub async fn redirect(tcp: TcpStream, peer: SocketAddr, header_timeout: Duration) {
    tracing::info!(%peer, "plain http:// request on the TLS port; answering with a redirect to https://");
    serve(tcp, header_timeout).await;
}

/// Answers one request on a plain-HTTP stream within `timeout`, then closes it.
/// Anything that is not HTTP gets hyper's 400 or nothing; never a panic.
pub async fn serve<I>(io: I, timeout: Duration)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(timeout)
        .max_buf_size(MAX_HEAD_BYTES)
        .keep_alive(false);
    let conn = builder.serve_connection(TokioIo::new(io), service_fn(answer));
    let _ = tokio::time::timeout(timeout, conn).await;
}

async fn answer(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(https_redirect(&req).unwrap_or_else(|| no_host(&req)))
}

/// `https://{Host}{path}`: 301 for GET/HEAD, 308 for the rest so a client that
/// follows it repeats its method.
fn https_redirect<B>(req: &Request<B>) -> Option<Response<Full<Bytes>>> {
    let mut hosts = req.headers().get_all(header::HOST).iter();
    let host = hosts.next()?.to_str().ok()?;
    if hosts.next().is_some() {
        return None; // two Hosts: no way to tell which one is meant
    }
    // Only a well-formed host[:port] (a number for the port) may become
    // part of the Location header.
    let authority: http::uri::Authority = host.parse().ok()?;
    let canonical = match authority.port_u16() {
        Some(port) => format!("{}:{port}", authority.host()),
        None => authority.host().to_string(),
    };
    if canonical != host {
        return None;
    }
    // `OPTIONS *` names no path: the server's root
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .filter(|p| p.starts_with('/'))
        .unwrap_or("/");
    // bytes outside ASCII (a raw UTF-8 path) are percent-encoded, as a
    // Location must be ASCII to be read back
    let path = percent_encoding::percent_encode(path.as_bytes(), NOT_ASCII_VISIBLE);
    let location = format!("https://{authority}{path}");
    let location = HeaderValue::from_str(&location).ok()?;
    let status = if req.method() == Method::GET || req.method() == Method::HEAD {
        StatusCode::MOVED_PERMANENTLY
    } else {
        StatusCode::PERMANENT_REDIRECT
    };
    let text = format!(
        "https:// で接続してください。 Use https:// : {}\n",
        location.to_str().unwrap_or("")
    );
    Response::builder()
        .status(status)
        .header(header::LOCATION, location)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .header(header::CONNECTION, "close")
        .body(Full::new(Bytes::from(text)))
        .ok()
}

fn no_host<B>(req: &Request<B>) -> Response<Full<Bytes>> {
    let html = pages::wants_html(req.headers().get(header::ACCEPT));
    let rendered = pages::render(&Page::PlainHttpNoHost, html);
    let mut resp = Response::new(Full::new(rendered.body));
    *resp.status_mut() = rendered.status;
    if let Ok(ct) = HeaderValue::from_str(rendered.content_type) {
        resp.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}
