//! WebORCA failing under the proxy: closing or resetting mid-request or
//! mid-response, hanging, restarting under load. Only the requests in flight
//! at the failure fail, each with a 502/504 or a cut connection, none hangs,
//! the pool recovers without a proxy restart; a bodiless GET is sent again
//! once, a POST that may have reached WebORCA never.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use tokio::time::Instant;

use crate::util::client::{Answer, Client};
use crate::util::env::Setup;
use crate::util::lean::{Fault, Lean, Scripted};
use crate::util::raw::{Front, PATIENCE};

fn get(path: &str) -> Request<Full<Bytes>> {
    Request::get(path)
        .header("host", "localhost")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

fn post(path: &str, body: &'static str) -> Request<Full<Bytes>> {
    Request::post(path)
        .header("host", "localhost")
        .header("content-type", "application/xml")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap()
}

/// One request on a new connection, bounded: a hang fails the test.
async fn send(
    client: &Client,
    addr: std::net::SocketAddr,
    req: Request<Full<Bytes>>,
) -> Result<Answer, String> {
    tokio::time::timeout(PATIENCE, client.send(addr, req))
        .await
        .expect("the request hung")
}

async fn proxied(fault: Fault, extra: &[&str]) -> (Front, Scripted) {
    let backend = Scripted::start(fault).await;
    let mut setup = Setup::new();
    setup.conf.extend(extra.iter().map(|s| s.to_string()));
    (Front::start(setup, &backend.url()).await, backend)
}

#[tokio::test]
async fn backend_closing_or_resetting_before_answering_gives_502() {
    for fault in [Fault::CloseBeforeAnswer, Fault::Reset] {
        let (front, backend) = proxied(fault, &[]).await;
        let client = front.client();
        let a = send(
            &client,
            front.addr,
            post("/api01rv2/patientmodv2?class=01", "<data/>"),
        )
        .await
        .unwrap();
        assert_eq!(a.status, 502, "{fault:?}: {}", a.text());
        assert!(a.text().contains("WebORCA"));
        let a = send(&client, front.addr, get("/api01rv2/system01lstv2"))
            .await
            .unwrap();
        assert_eq!(a.status, 502, "{fault:?}");
        // The POST reached WebORCA once and was not replayed; the GET was sent again once.
        assert_eq!(backend.count("POST "), 1, "{fault:?}");
        assert_eq!(backend.count("GET "), 2, "{fault:?}");
    }
}

#[tokio::test]
async fn backend_breaking_off_a_response_cuts_the_client_connection() {
    let (front, backend) = proxied(Fault::PartialThenClose, &[]).await;
    // HTTP/1.1: the head (200, 100000 bytes announced) went out; the body
    // stops short and the connection is cut, so it cannot pass for complete.
    let h1 = send(&front.client(), front.addr, get("/big")).await;
    let e = h1.expect_err("a truncated body reads as an error");
    assert!(e.starts_with("body"), "{e}");
    let h2 = send(
        &front.h2_client(),
        front.addr,
        get(&format!("https://localhost:{}/big", front.addr.port())),
    )
    .await;
    assert!(h2.is_err(), "{h2:?}");
    assert!(backend.count("GET /big") >= 2);
}

#[tokio::test]
async fn hanging_backend_gives_504_and_a_stalled_body_is_cut() {
    let (front, _backend) = proxied(Fault::Hang, &["BACKEND_TIMEOUT=1s"]).await;
    let client = front.client();
    let hung: Vec<_> = (0..10)
        .map(|i| {
            let client = client.clone();
            let addr = front.addr;
            tokio::spawn(async move {
                let req = if i % 2 == 0 {
                    get("/hang")
                } else {
                    post("/hang", "x=1")
                };
                send(&client, addr, req).await
            })
        })
        .collect();
    for h in hung {
        let a = h.await.unwrap().unwrap();
        assert_eq!(a.status, 504, "{}", a.text());
    }
    // Headers and part of the body, then nothing: cut after BACKEND_TIMEOUT
    // instead of leaving the client waiting forever.
    let (front, _backend) = proxied(Fault::PartialThenHang, &["BACKEND_TIMEOUT=1s"]).await;
    let e = send(&front.client(), front.addr, get("/stall"))
        .await
        .expect_err("a stalled body ends in an error");
    assert!(e.starts_with("body"), "{e}");
    // counted as WebORCA's timeout, like one before the head
    let metrics = front.handle.stats().metrics.encode();
    assert!(
        metrics.lines().any(|l| l.contains("backend_errors_total")
            && l.contains("kind=\"timeout\"")
            && l.ends_with(" 1")),
        "{metrics}"
    );
}

#[tokio::test]
async fn post_that_reached_the_backend_is_never_replayed_but_a_get_is_once() {
    // The backend answers the first request of each connection and drops the
    // second one after reading it, like WebORCA dying mid-request; which
    // request lands second depends on the proxy's pool, so this goes on until
    // both a GET and a POST were dropped.
    let (front, backend) = proxied(Fault::DropSecondRequest, &[]).await;
    let tls = front.client().connect(front.addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    let mut posts_refused = 0;
    let mut i = 0;
    while i < 200 {
        i += 1;
        let dropped = backend.dropped.lock().unwrap().clone();
        let get_dropped = dropped.iter().any(|l| l.starts_with("GET "));
        let post_dropped = dropped.iter().any(|l| l.starts_with("POST "));
        if get_dropped && post_dropped {
            break;
        }
        let (req, is_post) = if get_dropped {
            (
                post(&format!("/api01rv2/acceptmodv2?n={i}"), "<data/>"),
                true,
            )
        } else {
            (get(&format!("/api01rv2/system01lstv2?n={i}")), false)
        };
        let resp = tokio::time::timeout(PATIENCE, sender.send_request(req))
            .await
            .expect("hung")
            .unwrap();
        let status = resp.status().as_u16();
        let _ = http_body_util::BodyExt::collect(resp.into_body()).await;
        let line = if is_post {
            format!("POST /api01rv2/acceptmodv2?n={i} ")
        } else {
            format!("GET /api01rv2/system01lstv2?n={i} ")
        };
        let seen = backend.count(&line);
        let was_dropped = backend
            .dropped
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.starts_with(&line));
        if is_post {
            assert_eq!(seen, 1, "POST n={i} was sent {seen} times");
            if was_dropped {
                assert_eq!(status, 502);
                posts_refused += 1;
            } else {
                assert_eq!(status, 200);
            }
        } else {
            // A dropped GET is sent again once, on a new connection, and answered.
            assert_eq!(status, 200, "GET n={i}");
            assert_eq!(seen, if was_dropped { 2 } else { 1 }, "GET n={i}");
        }
    }
    assert!(posts_refused >= 1, "no POST was ever dropped in {i} rounds");
}

/// What one request of the restart test saw.
struct Outcome {
    started: Instant,
    result: Result<u16, String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_restart_under_load_fails_only_requests_in_flight() {
    const WORKERS: usize = 8;
    let mut backend = Lean::start().await;
    let addr = backend.addr;
    let stats = backend.stats.clone();
    let front = Front::start(Setup::new(), &backend.url()).await;
    let stop = Arc::new(AtomicBool::new(false));
    let outcomes = Arc::new(Mutex::new(Vec::<Outcome>::new()));
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let client = if w % 4 == 3 {
                front.h2_client()
            } else {
                front.client()
            };
            let (stop, outcomes, proxy) = (stop.clone(), outcomes.clone(), front.addr);
            tokio::spawn(async move {
                let tls = client.connect(proxy).await.unwrap();
                let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
                let io = hyper_util::rt::TokioIo::new(tls);
                let mut h1 = None;
                let mut h2s = None;
                if h2 {
                    let (s, c) = hyper::client::conn::http2::handshake(
                        hyper_util::rt::TokioExecutor::new(),
                        io,
                    )
                    .await
                    .unwrap();
                    tokio::spawn(c);
                    h2s = Some(s);
                } else {
                    let (s, c) = hyper::client::conn::http1::handshake(io).await.unwrap();
                    tokio::spawn(c);
                    h1 = Some(s);
                }
                while !stop.load(Ordering::SeqCst) {
                    let uri = if h2 {
                        format!("https://localhost:{}/delay?ms=20", proxy.port())
                    } else {
                        "/delay?ms=20".to_string()
                    };
                    let req = Request::get(uri)
                        .header("host", "localhost")
                        .body(Full::new(Bytes::new()))
                        .unwrap();
                    let started = Instant::now();
                    let sent = async {
                        let resp = match (&mut h1, &mut h2s) {
                            (Some(s), _) => s.send_request(req).await,
                            (_, Some(s)) => s.send_request(req).await,
                            _ => unreachable!(),
                        }
                        .map_err(|e| format!("request: {e}"))?;
                        let status = resp.status().as_u16();
                        http_body_util::BodyExt::collect(resp.into_body())
                            .await
                            .map_err(|e| format!("body: {e}"))?;
                        Ok::<u16, String>(status)
                    };
                    let result = tokio::time::timeout(PATIENCE, sent)
                        .await
                        .unwrap_or_else(|_| Err("hung".into()));
                    let broken = result.is_err();
                    outcomes.lock().unwrap().push(Outcome { started, result });
                    if broken {
                        return; // the client connection itself must never break
                    }
                }
            })
        })
        .collect();
    let served = |n: usize| {
        let outcomes = outcomes.clone();
        move || {
            outcomes
                .lock()
                .unwrap()
                .iter()
                .filter(|o| o.result == Ok(200))
                .count()
                >= n
        }
    };
    assert!(
        crate::util::raw::eventually(served(100)).await,
        "no load before the restart"
    );
    // WebORCA restarts: every connection dropped, then listening again.
    backend.stop().await;
    let backend = Lean::start_on(addr, stats).await;
    let up = Instant::now();
    let after = outcomes.lock().unwrap().len();
    assert!(
        crate::util::raw::eventually(served(after + 200)).await,
        "no load after the restart"
    );
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.await.unwrap();
    }
    let outcomes = outcomes.lock().unwrap();
    for o in outcomes.iter() {
        match &o.result {
            Ok(200) => {}
            Ok(502 | 504) => assert!(o.started < up, "a request sent after the restart failed"),
            other => panic!("request failed other than by 502/504: {other:?}"),
        }
    }
    assert!(backend.requests() > 300);
}

#[tokio::test]
async fn an_upload_answered_before_its_body_was_read_never_reaches_weborca_as_requests() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // WebORCA answers a POST from its head alone (401) and keeps the
    // connection. The body, sent by the client after that answer, holds a
    // request of its own with a forged identity header: sent on, it would
    // be read by WebORCA as a request that no check of the proxy ever saw.
    let (front, backend) = proxied(Fault::AnswerBeforeBody, &[]).await;
    let smuggled = "GET /smuggled HTTP/1.1\r\nHost: localhost\r\nX-SSL-Client-CN: doctor\r\nContent-Length: 0\r\n\r\n";
    let mut tls = front.client().connect(front.addr).await.unwrap();
    let head = format!(
        "POST /api01rv2/acceptmodv2 HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\r\n",
        smuggled.len()
    );
    tls.write_all(head.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(PATIENCE, async {
        while !String::from_utf8_lossy(&got).contains("HTTP/1.1 401") {
            let mut chunk = [0u8; 4096];
            let n = tls.read(&mut chunk).await.unwrap();
            assert!(
                n > 0,
                "closed before the answer: {:?}",
                String::from_utf8_lossy(&got)
            );
            got.extend_from_slice(&chunk[..n]);
        }
    })
    .await
    .expect("no 401 from the proxy");
    tls.write_all(smuggled.as_bytes()).await.unwrap();
    tls.flush().await.unwrap();
    // The next client, on a connection of its own (a TLS handshake later
    // than the body's bytes), is answered by WebORCA as usual.
    let after = send(&front.client(), front.addr, get("/after"))
        .await
        .unwrap();
    assert_eq!(after.status, 200);
    let seen = backend.seen.lock().unwrap().clone();
    assert_eq!(backend.count("POST /api01rv2/acceptmodv2 "), 1, "{seen:#?}");
    assert_eq!(backend.count("GET /after "), 1, "{seen:#?}");
    assert_eq!(backend.count("GET /smuggled"), 0, "{seen:#?}");
    assert!(
        !seen
            .iter()
            .any(|h| h.to_ascii_lowercase().contains("doctor")),
        "{seen:#?}"
    );
    // The proxy answered `Expect: 100-continue` itself.
    assert!(
        !seen[0].to_ascii_lowercase().contains("expect:"),
        "{:?}",
        seen[0]
    );
}
