//! Graceful shutdown under load: SIGTERM while clients keep sending. Every
//! request the proxy took up (WebORCA saw it) completes, new connections are
//! refused once the listener is closed, and the process exits 0 within
//! SHUTDOWN_GRACE.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::time::Instant;

use crate::util::client::{Answer, Client};
use crate::util::env::Setup;
use crate::util::lean::Lean;
use crate::util::raw::{PATIENCE, eventually, start_proc};

/// One request's fate.
struct Fate {
    id: String,
    result: Result<(u16, Bytes), String>,
    finished: Instant,
}

/// Sends requests on one connection after another until connecting fails.
async fn worker(
    client: Client,
    addr: std::net::SocketAddr,
    name: String,
    stop: Arc<AtomicBool>,
    fates: Arc<Mutex<Vec<Fate>>>,
) {
    let mut n = 0;
    while !stop.load(Ordering::SeqCst) {
        let Ok(tls) = client.connect(addr).await else {
            return; // refused: the listener is closed
        };
        let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
        let io = TokioIo::new(tls);
        let (mut h1s, mut h2s) = (None, None);
        if h2 {
            let Ok((s, c)) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await
            else {
                continue;
            };
            tokio::spawn(c);
            h2s = Some(s);
        } else {
            let Ok((s, c)) = hyper::client::conn::http1::handshake(io).await else {
                continue;
            };
            tokio::spawn(c);
            h1s = Some(s);
        }
        while !stop.load(Ordering::SeqCst) {
            n += 1;
            let id = format!("{name}-{n}");
            let path = format!("/delay?ms=200&id={id}");
            let uri = if h2 {
                format!("https://localhost:{}{path}", addr.port())
            } else {
                path
            };
            let req = Request::get(uri)
                .header("host", "localhost")
                .body(Full::new(Bytes::new()))
                .unwrap();
            let sent = async {
                let resp = match (&mut h1s, &mut h2s) {
                    (Some(s), _) => s.send_request(req).await,
                    (_, Some(s)) => s.send_request(req).await,
                    _ => unreachable!(),
                }
                .map_err(|e| format!("request: {e}"))?;
                let answer = Answer::read(resp).await?;
                Ok((answer.status.as_u16(), answer.body))
            };
            let result = tokio::time::timeout(PATIENCE, sent)
                .await
                .unwrap_or_else(|_| Err("hung".into()));
            let broken = result.is_err();
            fates.lock().unwrap().push(Fate {
                id,
                result,
                finished: Instant::now(),
            });
            if broken {
                break; // the proxy closed this connection; try a new one
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_completes_accepted_requests_refuses_new_ones_and_exits_0() {
    let backend = Lean::start().await;
    let setup = Setup::new();
    let (mut p, addr) = start_proc(&setup, &backend.url(), &["SHUTDOWN_GRACE=10s"]);
    let stop = Arc::new(AtomicBool::new(false));
    let fates = Arc::new(Mutex::new(Vec::new()));
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let alpn: &[&[u8]] = if w < 6 { &[b"http/1.1"] } else { &[b"h2"] };
            let client = Client::new(&setup.ca.pem, Some(&setup.user1), alpn);
            tokio::spawn(worker(
                client,
                addr,
                format!("w{w}"),
                stop.clone(),
                fates.clone(),
            ))
        })
        .collect();
    let done = || fates.lock().unwrap().len();
    assert!(eventually(|| done() >= 40).await, "no load");
    let in_flight_before = backend.stats.in_flight.load(Ordering::SeqCst);
    p.signal("TERM");
    let signalled = Instant::now();
    let stopped = tokio::task::block_in_place(|| p.wait_for("stopped accepting connections"));
    assert!(stopped.is_some(), "{:#?}", p.seen);
    let refused = tokio::net::TcpStream::connect(addr).await;
    assert!(
        refused.is_err(),
        "a new connection was accepted after the listener closed"
    );
    let (code, lines) = tokio::task::block_in_place(|| p.exit());
    assert_eq!(code, 0, "{lines:#?}");
    assert!(
        signalled.elapsed() < std::time::Duration::from_secs(10) + PATIENCE,
        "exit took longer than SHUTDOWN_GRACE"
    );
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("SHUTDOWN_GRACE") && l.contains("ran out")),
        "{lines:#?}"
    );
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        tokio::time::timeout(PATIENCE, w)
            .await
            .expect("workers end")
            .unwrap();
    }
    let seen = backend.stats.ids.lock().unwrap().clone();
    let fates = fates.lock().unwrap();
    let completed_after_signal = AtomicUsize::new(0);
    for f in fates.iter() {
        match &f.result {
            Ok((200, body)) => {
                assert_eq!(&body[..], b"ok 0", "{}", f.id);
                if f.finished > signalled {
                    completed_after_signal.fetch_add(1, Ordering::SeqCst);
                }
            }
            Ok((status, _)) => panic!("{}: status {status}", f.id),
            Err(e) => assert!(
                !seen.contains(&f.id),
                "{} reached WebORCA but failed at the client: {e}",
                f.id
            ),
        }
    }
    // Every request WebORCA saw was answered in full at the client.
    for id in &seen {
        let fate = fates.iter().find(|f| &f.id == id);
        assert!(
            matches!(
                fate,
                Some(Fate {
                    result: Ok((200, _)),
                    ..
                })
            ),
            "{id} was taken up but not completed"
        );
    }
    assert!(
        completed_after_signal.load(Ordering::SeqCst) > 0,
        "no request was in flight at the signal ({in_flight_before} at the backend just before)"
    );
}
