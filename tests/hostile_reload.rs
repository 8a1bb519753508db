//! Reload under load, the one long test (60 s): 500 requests a second offered
//! through keep-alive HTTP/1.1, HTTP/2 and a new TLS connection per request,
//! a SIGHUP every 2 s alternating two valid certificate sets with every fifth
//! set broken, and the CRL replaced every 5 s (revoking one client, then
//! nobody). Nothing fails except that client's requests while it is revoked,
//! and every WebSocket opened before the load survives.
//!
//! `HOSTILE_RELOAD_SECS` shortens the run for local iteration; CI runs the 60 s.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::util::client::Client;
use crate::util::env::Setup;
use crate::util::lean::Lean;
use crate::util::pki::{Leaf, write};
use crate::util::process::Proc;
use crate::util::raw::{PATIENCE, wait_any};

const LOAD_SECS: u64 = 60;
const RELOAD_EVERY: Duration = Duration::from_secs(2);
const CRL_EVERY: Duration = Duration::from_secs(5);
const WEBSOCKETS: usize = 10;

/// What the load generator counts.
#[derive(Default)]
struct Tally {
    ok: Mutex<u64>,
    failures: Mutex<Vec<String>>,
    revoked: Mutex<u64>,
    revokee_ok: Mutex<u64>,
    /// the revokee's answers cut because a CRL revoking it came while they
    /// were sent (at most one a revoking CRL: it sends one at a time)
    revokee_cut: Mutex<u64>,
}

/// How one worker talks to the proxy.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    KeepAlive,
    Http2,
    NewConnection,
    /// a new connection per request, with the client the CRL revokes now and then
    Revokee,
}

fn write_atomically(dir: &Path, name: &str, text: &str) {
    let tmp = write(dir, &format!("{name}.tmp"), text);
    std::fs::rename(tmp, dir.join(name)).unwrap();
}

/// The config naming certificate `crt` and key `key` (both in `dir`).
fn config(dir: &Path, crt: &str, key: &str, backend: &str) -> String {
    let d = dir.display();
    format!(
        "SERVER_CRT={d}/{crt}\nSERVER_PEM={d}/{key}\nCA_CRT={d}/ca.crt\nCA_CRL={d}/ca.crl\nLISTEN=127.0.0.1:0\nBACKEND_URL={backend}\nCERT_WATCH_INTERVAL=1h\n"
    )
}

/// One request through a kept connection; the status, or why it failed.
async fn one(
    h1: &mut Option<hyper::client::conn::http1::SendRequest<Full<Bytes>>>,
    h2: &mut Option<hyper::client::conn::http2::SendRequest<Full<Bytes>>>,
    port: u16,
) -> Result<u16, String> {
    let uri = if h2.is_some() {
        format!("https://localhost:{port}/")
    } else {
        "/".into()
    };
    let req = Request::get(uri)
        .header("host", "localhost")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = match (h1, h2) {
        (Some(s), _) => s.send_request(req).await,
        (_, Some(s)) => s.send_request(req).await,
        _ => unreachable!(),
    }
    .map_err(|e| format!("request: {e}"))?;
    let status = resp.status().as_u16();
    resp.into_body()
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?;
    Ok(status)
}

/// Sends `rate` requests a second until `stop`, counting into `tally`.
async fn worker(
    kind: Kind,
    client: Client,
    addr: std::net::SocketAddr,
    rate: u32,
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1) / rate);
    tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let (mut h1, mut h2) = (None, None);
    let fail = |why: String| {
        tally
            .failures
            .lock()
            .unwrap()
            .push(format!("{kind:?}: {why}"))
    };
    while !stop.load(Ordering::SeqCst) {
        tick.tick().await;
        if kind == Kind::NewConnection || kind == Kind::Revokee {
            let req = Request::get("/")
                .header("host", "localhost")
                .body(Full::new(Bytes::new()))
                .unwrap();
            match tokio::time::timeout(PATIENCE, client.send(addr, req)).await {
                Ok(Ok(a)) if a.status == 200 => {
                    *if kind == Kind::Revokee {
                        &tally.revokee_ok
                    } else {
                        &tally.ok
                    }
                    .lock()
                    .unwrap() += 1
                }
                Ok(Ok(a))
                    if kind == Kind::Revokee
                        && a.status == 403
                        && a.header("x-client-cert-error") == Some("revoked") =>
                {
                    *tally.revoked.lock().unwrap() += 1
                }
                Ok(Ok(a)) => fail(format!("status {}", a.status)),
                Ok(Err(e)) if kind == Kind::Revokee => {
                    eprintln!("the revokee's answer was cut: {e}");
                    *tally.revokee_cut.lock().unwrap() += 1
                }
                Ok(Err(e)) => fail(e),
                Err(_) => fail("hung".into()),
            }
            continue;
        }
        if h1.is_none() && h2.is_none() {
            let tls = match client.connect(addr).await {
                Ok(t) => t,
                Err(e) => {
                    fail(format!("connect: {e}"));
                    continue;
                }
            };
            let io = TokioIo::new(tls);
            if kind == Kind::Http2 {
                let (s, c) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                    .await
                    .unwrap();
                tokio::spawn(c);
                h2 = Some(s);
            } else {
                let (s, c) = hyper::client::conn::http1::handshake(io).await.unwrap();
                tokio::spawn(c);
                h1 = Some(s);
            }
        }
        match tokio::time::timeout(PATIENCE, one(&mut h1, &mut h2, addr.port())).await {
            Ok(Ok(200)) => *tally.ok.lock().unwrap() += 1,
            Ok(Ok(status)) => fail(format!("status {status}")),
            Ok(Err(e)) => {
                fail(e);
                (h1, h2) = (None, None);
            }
            Err(_) => {
                fail("hung".into());
                (h1, h2) = (None, None);
            }
        }
    }
}

/// The serial of the certificate a fresh handshake (no resumption) is shown.
async fn served_serial(ca_pem: &str, user: &Leaf, addr: std::net::SocketAddr) -> u8 {
    let mut config = (*Client::h1(ca_pem, Some(user)).config).clone();
    config.resumption = rustls::client::Resumption::disabled();
    let client = Client {
        config: Arc::new(config),
    };
    let tls = client.connect(addr).await.unwrap();
    let der = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
    *cert.raw_serial().last().unwrap()
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

async fn open_ws(client: &Client, addr: std::net::SocketAddr) -> Ws {
    let tls = client.connect(addr).await.unwrap();
    let req = format!("wss://localhost:{}/ws", addr.port())
        .into_client_request()
        .unwrap();
    tokio_tungstenite::client_async(req, tls).await.unwrap().0
}

async fn echo(ws: &mut Ws, text: &str) -> Result<(), String> {
    ws.send(Message::text(text))
        .await
        .map_err(|e| e.to_string())?;
    match tokio::time::timeout(PATIENCE, ws.next()).await {
        Ok(Some(Ok(m))) if m == Message::text(text) => Ok(()),
        other => Err(format!("{other:?}")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_under_load_fails_nothing_but_revoked_clients_and_keeps_websockets() {
    let secs: u64 = std::env::var("HOSTILE_RELOAD_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(LOAD_SECS);
    let backend = Lean::start().await;
    let setup = Setup::new();
    let dir = setup.dir.path().to_path_buf();
    let set_b = setup.ca.server(&["localhost", "127.0.0.1"], 3650);
    let revokee = setup.ca.client("revokee");
    write(&dir, "a.crt", &setup.server.pem);
    write(&dir, "a.pem", &setup.server.key_pem);
    write(&dir, "b.crt", &set_b.pem);
    write(&dir, "b.pem", &set_b.key_pem);
    write(&dir, "ca.crt", &setup.ca.pem);
    write(&dir, "ca.crl", &setup.ca.crl(&[]));
    let url = backend.url();
    let conf = write(&dir, "proxy.conf", &config(&dir, "a.crt", "a.pem", &url));
    let mut p = Proc::start(&conf, &[]);
    let addr = p.listening();
    let user1 = Client::h1(&setup.ca.pem, Some(&setup.user1));

    let mut sockets = Vec::new();
    for _ in 0..WEBSOCKETS {
        sockets.push(open_ws(&user1, addr).await);
    }
    for ws in &mut sockets {
        echo(ws, "before").await.unwrap();
    }

    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let h2 = Client::new(&setup.ca.pem, Some(&setup.user1), &[b"h2"]);
    let mut fresh = (*user1.config).clone();
    fresh.resumption = rustls::client::Resumption::disabled();
    let fresh = Client {
        config: Arc::new(fresh),
    };
    let revokee_client = Client::h1(&setup.ca.pem, Some(&revokee));
    let plan: Vec<(Kind, &Client, u32)> = vec![
        (Kind::KeepAlive, &user1, 50),
        (Kind::KeepAlive, &user1, 50),
        (Kind::KeepAlive, &user1, 50),
        (Kind::KeepAlive, &user1, 50),
        (Kind::KeepAlive, &user1, 50),
        (Kind::KeepAlive, &user1, 50),
        (Kind::KeepAlive, &user1, 50),
        (Kind::KeepAlive, &user1, 50),
        (Kind::Http2, &h2, 50),
        (Kind::Http2, &h2, 50),
        (Kind::NewConnection, &user1, 30),
        (Kind::NewConnection, &fresh, 30),
        (Kind::NewConnection, &fresh, 30),
        (Kind::Revokee, &revokee_client, 20),
    ];
    let workers: Vec<_> = plan
        .into_iter()
        .map(|(kind, client, rate)| {
            tokio::spawn(worker(
                kind,
                client.clone(),
                addr,
                rate,
                stop.clone(),
                tally.clone(),
            ))
        })
        .collect();

    // The operator's side: SIGHUP every 2 s, a new CRL every 5 s.
    let start = Instant::now();
    let end = start + Duration::from_secs(secs);
    let (mut next_hup, mut next_crl) = (start + RELOAD_EVERY, start + CRL_EVERY);
    let (mut hups, mut valid, mut crls) = (0u32, 0u32, 0u32);
    let (mut refused, mut swapped) = (0u32, 0u32);
    // The SIGHUPs after which no request had been served since the one before.
    let (mut served_before, mut unserved) = (0u64, Vec::new());
    while next_hup.min(next_crl) < end {
        if next_crl <= next_hup {
            tokio::time::sleep_until(next_crl).await;
            next_crl += CRL_EVERY;
            crls += 1;
            let revoked: &[u64] = if crls % 2 == 1 {
                &[revokee.serial]
            } else {
                &[]
            };
            write_atomically(&dir, "ca.crl", &setup.ca.crl(revoked));
            for (i, ws) in sockets.iter_mut().enumerate() {
                let said = format!("crl {crls} socket {i}");
                echo(ws, &said)
                    .await
                    .unwrap_or_else(|e| panic!("{said}: {e}"));
            }
            continue;
        }
        tokio::time::sleep_until(next_hup).await;
        next_hup += RELOAD_EVERY;
        hups += 1;
        let broken = hups % 5 == 0;
        let text = if broken {
            config(&dir, "a.crt", "b.pem", &url) // a key that does not match
        } else {
            valid += 1;
            let set = if valid % 2 == 1 { "b" } else { "a" };
            config(&dir, &format!("{set}.crt"), &format!("{set}.pem"), &url)
        };
        write_atomically(&dir, "proxy.conf", &text);
        p.signal("HUP");
        let outcome = tokio::task::block_in_place(|| {
            wait_any(&mut p, &["reload (SIGHUP)"])?;
            wait_any(&mut p, &["reload: ok", "reload refused"])
        })
        .unwrap_or_else(|| panic!("no reload outcome for SIGHUP {hups}"));
        let served = *tally.ok.lock().unwrap();
        if served == served_before {
            unserved.push(hups);
        }
        served_before = served;
        if broken {
            assert!(
                outcome.contains("reload refused"),
                "SIGHUP {hups}: {outcome}"
            );
            refused += 1;
        } else {
            assert!(outcome.contains("reload: ok"), "SIGHUP {hups}: {outcome}");
            let want = if valid % 2 == 1 {
                set_b.serial
            } else {
                setup.server.serial
            };
            assert_eq!(
                served_serial(&setup.ca.pem, &setup.user1, addr).await,
                want as u8
            );
            swapped += 1;
        }
    }
    tokio::time::sleep_until(end).await;
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        tokio::time::timeout(PATIENCE, w)
            .await
            .expect("worker ends")
            .unwrap();
    }
    for (i, ws) in sockets.iter_mut().enumerate() {
        echo(ws, "after")
            .await
            .unwrap_or_else(|e| panic!("socket {i}: {e}"));
    }

    let failures = tally.failures.lock().unwrap();
    assert!(
        failures.is_empty(),
        "{} failed requests, first: {:#?}",
        failures.len(),
        &failures[..failures.len().min(10)]
    );
    let ok = *tally.ok.lock().unwrap();
    let (revoked, revokee_ok) = (
        *tally.revoked.lock().unwrap(),
        *tally.revokee_ok.lock().unwrap(),
    );
    let cut = *tally.revokee_cut.lock().unwrap();
    let revoking_crls = u64::from(crls).div_ceil(2);
    assert!(
        cut <= revoking_crls,
        "{cut} of the revokee's answers were cut, but only {revoking_crls} CRLs revoked it"
    );
    let total = ok + revoked + revokee_ok;
    eprintln!(
        "{total} requests in {secs} s ({revoked} refused as revoked), {hups} SIGHUPs, {crls} CRLs"
    );
    // What is checked is that the load ran through every reload, not how
    // fast a shared machine served it: requests were answered between each
    // SIGHUP and the one before.
    assert!(
        unserved.is_empty(),
        "no request was served before SIGHUPs {unserved:?} ({total} requests in {secs} s)"
    );
    assert_eq!(hups as u64, (secs * 1000 - 1) / 2000, "SIGHUPs sent");
    assert_eq!(refused, hups / 5);
    assert_eq!(swapped, hups - hups / 5);
    if secs >= 10 {
        assert!(revoked > 0, "the revoking CRL never took effect");
        assert!(revokee_ok > 0, "the client was never served");
    }
    p.signal("TERM");
    let (code, lines) = tokio::task::block_in_place(|| p.exit());
    assert_eq!(code, 0);
    assert!(!lines.iter().any(|l| l.contains("panicked")));
}
