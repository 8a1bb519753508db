//! Revocation and expiry take effect on connections that are already open:
//! a kept-alive HTTP/1.1 connection, an HTTP/2 connection and a WebSocket
//! each lose their verdict when a reload revokes their certificate or when a
//! certificate of their chain expires, and the backend receives nothing
//! from them afterwards. Connections whose certificates still pass are
//! untouched, and a refused client's connection is closed after its page.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use time::OffsetDateTime;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::util::client::Client;
use crate::util::env::{Env, Setup};
use crate::util::kept::Kept;
use crate::util::lean::read_head;
use crate::util::pki::{Leaf, write};
use crate::util::raw::{PATIENCE, eventually, exchange};
use crate::util::ws::{close_code, echo, open};

/// A setup whose CA_CRL (ca.crl) revokes nobody yet, with a second client.
fn with_crl() -> (Setup, Leaf) {
    let mut s = Setup::new();
    let crl = write(s.dir.path(), "ca.crl", &s.ca.crl(&[]));
    s.conf.push(format!("CA_CRL={}", crl.display()));
    let user2 = s.ca.client("user2");
    (s, user2)
}

/// Replaces ca.crl of `front` with one revoking user1 and reloads, as SIGHUP does.
fn revoke_user1(front: &crate::util::raw::Front) {
    write(
        front.setup.dir.path(),
        "ca.crl",
        &front.setup.ca.crl(&[front.setup.user1.serial]),
    );
    front.reload().expect("reload");
}

/// Replaces ca.crl with one revoking `serials` and reloads, as SIGHUP does.
fn revoke(env: &Env, serials: &[u64]) {
    write(env.dir.path(), "ca.crl", &env.ca.crl(serials));
    env.reload().expect("reload");
}

fn h2_client(env: &Env, leaf: &Leaf) -> Client {
    Client::new(&env.ca.pem, Some(leaf), &[b"h2"])
}

/// Asserts a certificate page with reason `reason`.
fn assert_refused(a: &crate::util::client::Answer, reason: &str) {
    assert_eq!(a.status, 403, "{}", a.text());
    assert_eq!(
        a.header("x-client-cert-error"),
        Some(reason),
        "{}",
        a.text()
    );
}

async fn revoked_by_reload_on_an_open_connection(h2: bool) {
    let (s, user2) = with_crl();
    let env = s.start().await;
    let (c1, c2) = if h2 {
        (h2_client(&env, &env.user1), h2_client(&env, &user2))
    } else {
        (env.client(Some(&env.user1)), env.client(Some(&user2)))
    };
    let mut open1 = Kept::open(&c1, env.addr).await;
    let mut open2 = Kept::open(&c2, env.addr).await;
    assert!(matches!(open1, Kept::H2(..)) == h2);
    assert_eq!(open1.get("/before").await.unwrap().status, 200);
    assert_eq!(open2.get("/before").await.unwrap().status, 200);
    let forwarded = env.backend.count();
    assert_eq!(forwarded, 2);

    revoke(&env, &[env.user1.serial]);

    let page = open1
        .get("/after")
        .await
        .expect("an answer on the open connection");
    assert_refused(&page, "revoked");
    assert!(
        page.text().contains(&format!("{:02x}", env.user1.serial)),
        "the page names the serial: {}",
        page.text()
    );
    assert_eq!(
        env.backend.count(),
        forwarded,
        "nothing of the revoked client was forwarded"
    );
    assert_closes_after_pages(&mut open1, "revoked").await;
    assert_eq!(env.backend.count(), forwarded);
    // A connection whose certificate still passes is untouched.
    let ok = open2.get("/after").await.unwrap();
    assert_eq!(ok.status, 200);
    assert_eq!(env.backend.count(), forwarded + 1);
    assert_eq!(env.backend.last().target, "/after");
    // And a new connection of the revoked client is refused too.
    assert_refused(&c1.get(env.addr, "/new").await.unwrap(), "revoked");
    assert_eq!(env.backend.count(), forwarded + 1);
}

#[tokio::test]
async fn revoked_by_reload_on_an_open_http1_connection_gets_the_revoked_page() {
    revoked_by_reload_on_an_open_connection(false).await;
}

#[tokio::test]
async fn revoked_by_reload_on_an_open_http2_connection_gets_the_revoked_page() {
    revoked_by_reload_on_an_open_connection(true).await;
}

#[tokio::test]
async fn a_reload_with_the_same_ca_and_crl_leaves_open_connections_alone() {
    let (s, _) = with_crl();
    let env = s.start().await;
    let mut open = Kept::open(&env.client(Some(&env.user1)), env.addr).await;
    assert_eq!(open.get("/").await.unwrap().status, 200);
    let before = env.handle.tls().generation;
    env.reload().unwrap();
    assert_eq!(
        env.handle.tls().generation,
        before,
        "nothing a verdict depends on changed"
    );
    assert_eq!(open.get("/").await.unwrap().status, 200);
    revoke(&env, &[]); // a new CRL file, even revoking nobody, is a new input
    assert_eq!(env.handle.tls().generation, before + 1);
    assert_eq!(open.get("/").await.unwrap().status, 200);
    assert_eq!(env.backend.count(), 3);
}

/// Sleeps until `t` has passed by a second (certificate dates have seconds).
async fn sleep_past(t: OffsetDateTime) {
    let left = (t - OffsetDateTime::now_utc()).whole_milliseconds().max(0) as u64;
    tokio::time::sleep(Duration::from_millis(left + 1_200)).await;
}

#[tokio::test]
async fn a_certificate_that_expires_while_its_connections_are_open_is_refused_on_them() {
    let s = Setup::new();
    let not_after = OffsetDateTime::now_utc() + time::Duration::seconds(4);
    let brief = s.ca.client_until("brief", not_after);
    let env = s.start().await;
    let mut h1 = Kept::open(&env.client(Some(&brief)), env.addr).await;
    let mut h2 = Kept::open(&h2_client(&env, &brief), env.addr).await;
    let mut ws = open(&env, &brief).await;
    assert_eq!(h1.get("/").await.unwrap().status, 200);
    assert_eq!(h2.get("/").await.unwrap().status, 200);
    echo(&mut ws, "while valid").await;
    let forwarded = env.backend.count();

    sleep_past(not_after).await;

    // sent before the proxy's Close can have been read
    ws.send(Message::text("after expiry")).await.unwrap();
    assert_refused(&h1.get("/late").await.unwrap(), "expired");
    assert_refused(&h2.get("/late").await.unwrap(), "expired");
    assert_eq!(close_code(&mut ws).await, Some(CloseCode::Policy));
    env.backend.ws_ended(1).await;
    assert_eq!(
        env.backend.count(),
        forwarded,
        "nothing forwarded after notAfter"
    );
    assert!(
        !env.backend
            .ws_received
            .lock()
            .unwrap()
            .iter()
            .any(|m| m == "after expiry"),
        "a WebSocket message went up after notAfter"
    );
}

#[tokio::test]
async fn a_websocket_closed_by_its_own_frame_at_expiry_is_logged_and_counted() {
    // The tunnel's watcher looks at the clock a whole second after notAfter,
    // from the fraction of a second it started at; a frame WebORCA pushes
    // before that finds the certificate expired itself and closes the
    // tunnel. That close is a refusal all the same: counted (and logged).
    let s = Setup::new();
    let not_after = OffsetDateTime::now_utc() + time::Duration::seconds(4);
    let brief = s.ca.client_until("brief", not_after);
    let env = s.start().await;
    // start the tunnel late in a second, so the watcher wakes late in one
    let frac = OffsetDateTime::now_utc().nanosecond() as u64 / 1_000_000;
    tokio::time::sleep(Duration::from_millis((1_800 - frac) % 1_000)).await;
    let mut ws = open(&env, &brief).await;
    echo(&mut ws, "while valid").await;
    // WebORCA pushes a message 1.2 s after notAfter (its dates have seconds)
    let push_at = not_after + time::Duration::milliseconds(1_200);
    let wait = (push_at - OffsetDateTime::now_utc()).whole_milliseconds();
    ws.send(Message::text(format!("later:{wait}:pushed")))
        .await
        .unwrap();
    assert_eq!(close_code(&mut ws).await, Some(CloseCode::Policy));
    // the client's Close in answer goes out as a browser's does, at once
    let _ = ws.next().await;
    env.backend.ws_ended(1).await;
    let expired = "weborca_proxy_client_cert_refusals_total{reason=\"expired\"} 1";
    let counted = || {
        let metrics = env.handle.stats().metrics.encode();
        metrics.lines().any(|l| l == expired)
    };
    assert!(
        eventually(counted).await,
        "the expiry close was not counted"
    );
}

#[tokio::test]
async fn websocket_of_a_revoked_certificate_is_closed_with_1008_and_others_survive() {
    let (s, user2) = with_crl();
    let env = s.start().await;
    let mut revoked = open(&env, &env.user1).await;
    let mut kept = open(&env, &user2).await;
    echo(&mut revoked, "one").await;
    echo(&mut kept, "one").await;

    revoke(&env, &[env.user1.serial]);

    // sent before the proxy's Close can have been read
    revoked
        .send(Message::text("after revocation"))
        .await
        .unwrap();
    assert_eq!(close_code(&mut revoked).await, Some(CloseCode::Policy));
    env.backend.ws_ended(1).await;
    // The other tunnel opened before the reload still echoes.
    echo(&mut kept, "two").await;
    let received = env.backend.ws_received.lock().unwrap().clone();
    assert!(
        !received.iter().any(|m| m == "after revocation"),
        "the revoked tunnel carried a message: {received:?}"
    );
    assert_eq!(received.iter().filter(|m| *m == "two").count(), 1);
}

#[tokio::test]
async fn an_intermediate_that_expires_while_its_leaf_is_valid_refuses_the_chain() {
    let s = Setup::new();
    let not_after = OffsetDateTime::now_utc() + time::Duration::seconds(4);
    let intermediate = s.ca.intermediate("clinic sub-CA", not_after);
    let leaf = intermediate.client("via-intermediate");
    let env = s.start().await;
    let client = env.client(Some(&leaf));
    let mut open = Kept::open(&client, env.addr).await;
    assert_eq!(open.get("/").await.unwrap().status, 200);
    // A second connection is accepted from the verdict cache.
    assert_eq!(client.get(env.addr, "/cached").await.unwrap().status, 200);
    let forwarded = env.backend.count();

    sleep_past(not_after).await;

    assert_refused(&client.get(env.addr, "/new").await.unwrap(), "expired");
    assert_refused(&open.get("/open").await.unwrap(), "expired");
    assert_eq!(
        env.backend.count(),
        forwarded,
        "nothing forwarded after the intermediate expired"
    );
}

#[tokio::test]
async fn page_mode_closes_a_refused_http1_connection_after_the_page() {
    let env = Env::start().await;
    let tls = env.client(None).connect(env.addr).await.unwrap();
    let request = b"GET / HTTP/1.1\r\nHost: localhost\r\nAccept: text/html\r\n\r\n";
    let answer = exchange(tls, request, true).await;
    assert_eq!(answer.status, Some(403), "{answer:?}");
    assert!(answer.closed, "the connection stayed open: {answer:?}");
    assert_eq!(answer.responses(), 1);
    assert!(
        answer
            .text
            .to_ascii_lowercase()
            .contains("\r\nconnection: close\r\n"),
        "{answer:?}"
    );
    assert_eq!(env.backend.count(), 0);
}

#[tokio::test]
async fn page_mode_sends_goaway_to_a_refused_http2_connection_after_the_page() {
    use crate::util::raw::h2;
    use tokio::io::AsyncWriteExt;
    let env = Env::start().await;
    let client = Client::new(&env.ca.pem, None, &[b"h2"]);
    let mut tls = client.connect(env.addr).await.unwrap();
    let mut out = h2::start();
    out.extend(h2::get(1, "/"));
    tls.write_all(&out).await.unwrap();
    let (mut headers, mut goaway) = (false, false);
    // GOAWAY may come before the page's frames; the page's stream still ends.
    let read = async {
        while let Some(f) = h2::read(&mut tls).await {
            headers |= f.ty == h2::HEADERS && f.stream == 1;
            goaway |= f.ty == h2::GOAWAY;
            if headers && goaway {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(PATIENCE, read).await;
    assert!(headers, "no answer to the request");
    assert!(goaway, "no GOAWAY after the page");
    // The hyper client sees the same: the page, then no further stream.
    let mut kept = Kept::open(&client, env.addr).await;
    assert_refused(&kept.get("/").await.unwrap(), "missing");
    assert!(eventually(|| env.backend.count() == 0).await);
    assert_closes_after_pages(&mut kept, "missing").await;
    assert_eq!(env.backend.count(), 0);
}

/// The refused connection is closed after its page (GOAWAY / Connection:
/// close). An HTTP/2 stream the client opened before the GOAWAY reached it
/// (hyper's graceful GOAWAY lets streams opened within a round trip in) is
/// answered with the page again, never forwarded; within a few it is closed.
async fn assert_closes_after_pages(kept: &mut Kept, reason: &str) {
    for _ in 0..3 {
        match kept.get("/again").await {
            Err(_) => return,
            Ok(again) => assert_refused(&again, reason),
        }
    }
    panic!("the refused connection stays open");
}

#[tokio::test]
async fn an_upload_under_way_stops_reaching_weborca_when_its_certificate_is_revoked() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // A backend that keeps every byte it receives and says when the first
    // chunk of the upload has arrived.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend = format!("http://{}", listener.local_addr().unwrap());
    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
    let (first_tx, first_rx) = tokio::sync::oneshot::channel();
    let kept = received.clone();
    let backend_task = tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut first_tx = Some(first_tx);
        let mut chunk = [0u8; 4096];
        loop {
            let n = match tcp.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let mut all = kept.lock().unwrap();
            all.extend_from_slice(&chunk[..n]);
            if String::from_utf8_lossy(&all).contains("FIRST-PART")
                && let Some(tx) = first_tx.take()
            {
                let _ = tx.send(());
            }
        }
    });
    let (s, _) = with_crl();
    let front = crate::util::raw::Front::start(s, &backend).await;
    let mut tls = front.client().connect(front.addr).await.unwrap();
    tls.write_all(
        b"POST /api01rv2/acceptmodv2 HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n\
          a\r\nFIRST-PART\r\n",
    )
    .await
    .unwrap();
    tls.flush().await.unwrap();
    tokio::time::timeout(PATIENCE, first_rx)
        .await
        .expect("the first chunk never reached the backend")
        .unwrap();
    // Revoked while the body is still coming.
    revoke_user1(&front);
    let _ = tls.write_all(b"b\r\nSECOND-PART\r\n0\r\n\r\n").await;
    let _ = tls.flush().await;
    // The proxy answers the refusal and closes the backend connection.
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(PATIENCE, tls.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("x-client-cert-error: revoked"),
        "{answer}"
    );
    tokio::time::timeout(PATIENCE, backend_task)
        .await
        .expect("the backend connection was left open")
        .unwrap();
    let received = String::from_utf8_lossy(&received.lock().unwrap()).into_owned();
    assert!(received.contains("FIRST-PART"), "{received}");
    assert!(
        !received.contains("SECOND-PART"),
        "a revoked client's body reached WebORCA: {received}"
    );
}

#[tokio::test]
async fn a_download_under_way_stops_when_its_certificate_is_revoked() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // A backend that answers with a long body in two parts, the second only
    // when told, and says when its connection is closed.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend = format!("http://{}", listener.local_addr().unwrap());
    let (second_tx, second_rx) = tokio::sync::oneshot::channel::<()>();
    let backend_task = tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        read_head(&mut tcp, &mut Vec::new())
            .await
            .expect("request head cut");
        tcp.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\nFIRST-PART")
            .await
            .unwrap();
        second_rx.await.unwrap();
        let _ = tcp.write_all(b"SECOND-PART").await;
        // the proxy closes this connection: the rest is never read
        loop {
            match tcp.read(&mut [0u8; 1]).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    });
    let (s, _) = with_crl();
    let front = crate::util::raw::Front::start(s, &backend).await;
    let mut tls = front.client().connect(front.addr).await.unwrap();
    tls.write_all(b"GET /receipt.pdf HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    tls.flush().await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("FIRST-PART") {
        let n = tokio::time::timeout(PATIENCE, tls.read(&mut buf))
            .await
            .expect("the first part never came")
            .unwrap();
        assert!(n > 0, "closed before the first part: {got:?}");
        got.extend_from_slice(&buf[..n]);
    }
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"));
    // Revoked while the answer is still coming.
    revoke_user1(&front);
    second_tx.send(()).unwrap();
    // The proxy cuts the client's connection without the rest.
    let mut rest = Vec::new();
    tokio::time::timeout(PATIENCE, async {
        loop {
            match tls.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => rest.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .expect("the revoked client's download was not cut");
    let rest = String::from_utf8_lossy(&rest).into_owned();
    assert!(
        !rest.contains("SECOND-PART"),
        "WebORCA's answer reached a revoked client: {rest}"
    );
    tokio::time::timeout(PATIENCE, backend_task)
        .await
        .expect("the backend connection was left open")
        .unwrap();
}

#[tokio::test]
async fn an_answer_that_comes_after_a_revocation_is_not_passed_on_not_even_its_head() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // A backend that holds its answer (all head: a 204) until told.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend = format!("http://{}", listener.local_addr().unwrap());
    let (asked_tx, asked_rx) = tokio::sync::oneshot::channel::<()>();
    let (answer_tx, answer_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        read_head(&mut tcp, &mut Vec::new())
            .await
            .expect("request head cut");
        asked_tx.send(()).unwrap();
        answer_rx.await.unwrap();
        let _ = tcp
            .write_all(b"HTTP/1.1 204 No Content\r\nX-Patient: 00042\r\n\r\n")
            .await;
        let _ = tcp.read(&mut [0u8; 1]).await;
    });
    let (s, _) = with_crl();
    let front = crate::util::raw::Front::start(s, &backend).await;
    let mut tls = front.client().connect(front.addr).await.unwrap();
    tls.write_all(b"GET /api01rv2/patientgetv2?id=42 HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    tls.flush().await.unwrap();
    tokio::time::timeout(PATIENCE, asked_rx)
        .await
        .expect("the request never reached the backend")
        .unwrap();
    // Revoked while WebORCA works on the answer.
    revoke_user1(&front);
    answer_tx.send(()).unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(PATIENCE, tls.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("x-client-cert-error: revoked"),
        "{answer}"
    );
    assert!(
        !answer.to_ascii_lowercase().contains("x-patient"),
        "WebORCA's answer reached a revoked client: {answer}"
    );
}
