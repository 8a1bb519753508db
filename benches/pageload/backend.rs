//! The stand-in WebORCA for the page load: plain HTTP/1.1 on 127.0.0.1, in a
//! process of its own (this bench binary run again with [`ROLE_ENV`] set, as
//! benches/proxy/servers.rs starts it), so the browser's and the servers' CPU
//! do not share a runtime with it.
//!
//! - `GET` of the page or an asset (site.rs): the bytes, their content type,
//!   a long cache lifetime (it does not matter: every load has a fresh profile).
//! - `POST /api01rv2/…`: the body read, a JSON answer, `no-store`.
//! - anything else (the browser's `/favicon.ico`): 404.
//!
//! It exits when its stdin closes, i.e. when the bench process ends however it ends.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::{BufRead, Write};
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::site::{self, Resource};

/// Set (to anything) in the environment of the bench binary run as the
/// backend; the name benches/proxy/servers.rs looks for.
pub const ROLE_ENV: &str = "WEBORCA_BENCH_BACKEND";

/// Serves until stdin closes. Prints `listening on ADDR` on stdout once bound.
pub fn run() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("backend runtime");
    let site = Arc::new(site::build());
    let listener = rt
        .block_on(TcpListener::bind("127.0.0.1:0"))
        .expect("backend bind");
    let addr = listener.local_addr().expect("backend addr");
    println!("listening on {addr}");
    std::io::stdout().flush().expect("stdout");
    rt.spawn(accept_loop(listener, site));
    // The parent holds our stdin; EOF means it is gone.
    let mut line = String::new();
    while std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map(|n| n > 0)
        .unwrap_or(false)
    {
        line.clear();
    }
    rt.shutdown_background();
}

async fn accept_loop(listener: TcpListener, site: Arc<HashMap<String, Resource>>) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            // out of descriptors or the like: try again shortly rather than spin
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let site = site.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(req, site.clone()));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        });
    }
}

async fn handle(
    req: Request<Incoming>,
    site: Arc<HashMap<String, Resource>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_string();
    if req.method() == Method::POST && path.starts_with("/api01rv2/") {
        let target = req
            .uri()
            .path_and_query()
            .map_or(path.clone(), |p| p.to_string());
        // the request body is read as WebORCA would, then the answer sent
        let _ = req.into_body().collect().await;
        return Ok(answer(
            StatusCode::OK,
            "application/json; charset=utf-8",
            "no-store",
            site::api_answer(&target),
        ));
    }
    Ok(match site.get(&path) {
        Some(r) if req.method() == Method::GET => answer(
            StatusCode::OK,
            r.content_type,
            "public, max-age=86400",
            r.body.clone(),
        ),
        _ => answer(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "no-store",
            Bytes::from_static(b"not found\n"),
        ),
    })
}

fn answer(
    status: StatusCode,
    content_type: &'static str,
    cache: &'static str,
    body: Bytes,
) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    resp
}
