//! Plain `http://` sent to the TLS port (seeds/004: 「http」ではなく「https」で
//! 接続をおこなってください). Instead of a dead connection the client gets a
//! redirect to the same URL with `https://`, or a 400 page saying what to do
//! when there is no Host to redirect to. Nothing is forwarded: no certificate.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpStream;

use crate::config::Config;
use crate::pages::{self, Page};

/// Serves the redirect on one plain-HTTP connection, then closes it.
pub async fn redirect(tcp: TcpStream, peer: SocketAddr, config: &Config) {
    tracing::info!(%peer, "plain http:// request on the TLS port; answering with a redirect to https://");
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_timeout)
        .keep_alive(false);
    let conn = builder.serve_connection(TokioIo::new(tcp), service_fn(answer));
    let _ = tokio::time::timeout(config.header_timeout, conn).await;
}

async fn answer(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(https_redirect(&req).unwrap_or_else(|| no_host(&req)))
}

/// `https://{Host}{path}`: 301 for GET/HEAD, 308 for the rest so a client that
/// follows it repeats its method.
fn https_redirect<B>(req: &Request<B>) -> Option<Response<Full<Bytes>>> {
    let host = req.headers().get(header::HOST)?.to_str().ok()?;
    // Only a well-formed authority may become part of the Location header.
    let authority: http::uri::Authority = host.parse().ok()?;
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
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
