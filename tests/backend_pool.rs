//! The proxy's own pool of backend connections: what WebORCA sees of it,
//! counted in TCP connections the stand-in backend accepted.

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

use crate::util::env::Env;
use crate::util::kept::Kept;

fn request(method: Method, path: &str, body: &'static [u8]) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost")
        .body(Full::new(Bytes::from_static(body)))
        .unwrap()
}

/// `n` GETs of `/` on `kept`, one after the other, each answered by the backend.
async fn gets(kept: &mut Kept, n: usize) {
    for i in 0..n {
        let answer = kept.get("/").await.unwrap();
        assert_eq!(answer.status, 200, "GET {i} of {n}");
        assert_eq!(answer.json()["method"], "GET");
    }
}

#[tokio::test]
async fn one_backend_connection_carries_a_client_connections_requests() {
    let env = Env::start().await;
    let mut kept = Kept::open(&env.client(Some(&env.user1)), env.addr).await;
    // every way an answer can end: a length, none at all (HEAD, 204), chunks
    let sent = [
        (Method::GET, "/", &b""[..], 200),
        (Method::HEAD, "/", b"", 200),
        (Method::GET, "/nothing", b"", 204),
        (Method::POST, "/api01rv2/patientgetv2", b"<data/>", 200),
        (Method::GET, "/big?n=300000", b"", 200),
        (Method::OPTIONS, "/", b"", 200),
        (Method::GET, "/", b"", 200),
    ];
    for (i, (method, path, body, status)) in sent.iter().enumerate() {
        let answer = kept
            .send(request(method.clone(), path, body))
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        assert_eq!(answer.status, *status, "{method} {path}");
        if *path == "/big?n=300000" {
            assert_eq!(answer.body.len(), 300_000, "the chunked answer is whole");
        }
        assert_eq!(
            env.backend.count(),
            i + 1,
            "{method} {path} reached WebORCA"
        );
    }
    assert_eq!(
        env.backend.connections(),
        1,
        "every request went over the one kept-alive backend connection"
    );
}

#[tokio::test]
async fn a_connection_the_backend_closes_is_not_used_again() {
    let env = Env::start().await;
    let mut kept = Kept::open(&env.client(Some(&env.user1)), env.addr).await;
    let closing = kept.get("/close").await.unwrap();
    assert_eq!(
        (closing.status.as_u16(), &closing.body[..]),
        (200, &b"closing"[..])
    );
    gets(&mut kept, 3).await;
    assert_eq!(env.backend.count(), 4);
    assert_eq!(
        env.backend.connections(),
        2,
        "a new connection after the closed one, then kept"
    );
}

#[tokio::test]
async fn an_answer_cut_short_by_the_client_leaves_the_pool_working() {
    let env = Env::start().await;
    let client = env.client(Some(&env.user1));
    // A download the client abandons after its first bytes: that backend
    // connection is mid-answer and must not be given to the next request.
    let tls = client.connect(env.addr).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .expect("handshake");
    let conn = tokio::spawn(conn);
    let resp = sender
        .send_request(request(Method::GET, "/big?n=200000000", b""))
        .await
        .expect("response head");
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let first = body.frame().await.expect("a first frame").expect("data");
    assert!(first.data_ref().is_some_and(|d| !d.is_empty()));
    drop(body);
    drop(sender);
    conn.abort();
    let mut kept = Kept::open(&client, env.addr).await;
    gets(&mut kept, 5).await;
    assert_eq!(env.backend.count(), 6);
    assert_eq!(
        env.backend.connections(),
        2,
        "the abandoned download's connection was dropped, the new one kept"
    );
}

#[tokio::test]
async fn concurrent_requests_then_sequential_ones_reuse_what_was_opened() {
    let env = Env::start().await;
    let client = crate::util::client::Client::new(&env.ca.pem, Some(&env.user1), &[b"h2"]);
    let mut kept = Kept::open(&client, env.addr).await;
    assert!(matches!(kept, Kept::H2(..)), "ALPN chose HTTP/2");
    let mut streams = Vec::new();
    for i in 0..4 {
        let mut k = match &kept {
            Kept::H2(s, port) => Kept::H2(s.clone(), *port),
            Kept::H1(_) => unreachable!(),
        };
        streams.push(tokio::spawn(
            async move { k.get(&format!("/slow?{i}")).await },
        ));
    }
    for s in streams {
        assert_eq!(s.await.unwrap().unwrap().status, 200);
    }
    let opened = env.backend.connections();
    assert!(
        (1..=4).contains(&opened),
        "4 requests at once opened {opened} backend connections"
    );
    gets(&mut kept, 20).await;
    assert_eq!(env.backend.count(), 24);
    assert_eq!(
        env.backend.connections(),
        opened,
        "sequential requests took the idle connections"
    );
}
