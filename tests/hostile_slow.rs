//! Slow and silent clients: connections that send nothing are closed by
//! HANDSHAKE_TIMEOUT, clients that trickle their request head by HEADER_TIMEOUT,
//! HTTP/2 connections that only answer pings by IDLE_TIMEOUT, clients that
//! take nothing of a response (never read, or keep the HTTP/2 window shut) by
//! IDLE_TIMEOUT too, freeing their WebORCA connection — while a normal
//! client keeps being served.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use weborca_mtls_proxy::metrics::Outcome;

use crate::util::client::Client;
use crate::util::env::Setup;
use crate::util::raw::{PATIENCE, eventually, nofile_limit};

const SILENT: usize = 500;
const TRICKLING: usize = 200;
/// Longest a normal request may take while the attack runs: generous, never measured.
const NORMAL_LATENCY_BOUND: Duration = Duration::from_secs(5);

/// Waits until the proxy closes `tcp` (EOF or reset); false if PATIENCE ran out.
async fn closed_by_proxy(mut tcp: TcpStream) -> bool {
    let mut buf = [0u8; 64];
    tokio::time::timeout(PATIENCE, async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

/// Sends a request head a byte a second; returns whether the proxy closed the
/// connection before the head was complete (it would take a minute).
async fn trickle(client: Client, addr: SocketAddr) -> bool {
    let tls = client
        .connect(addr)
        .await
        .expect("TLS handshake of a trickling client");
    let (mut rd, mut wr) = tokio::io::split(tls);
    let head = b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Slow: one byte a second\r\n\r\n";
    let writer = async {
        for b in head {
            if wr.write_all(&[*b]).await.is_err() || wr.flush().await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        // The whole head went out: the proxy never cut it. Wait for the answer.
        std::future::pending::<()>().await
    };
    let reader = async {
        let mut buf = [0u8; 1024];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(PATIENCE, async {
        tokio::select! {
            _ = writer => {}
            _ = reader => {}
        }
    })
    .await
    .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_trickling_clients_are_cut_while_a_normal_client_is_served() {
    // Each attacking connection costs this process two descriptors (both
    // ends); with a low `ulimit -n` the attack is scaled down to fit.
    let budget = nofile_limit().saturating_sub(300) / 2;
    let (silent_n, trickling_n) = if budget >= SILENT + TRICKLING {
        (SILENT, TRICKLING)
    } else {
        crate::util::real::notice(format_args!(
            "hostile_slow: ulimit -n {}: attack scaled down",
            nofile_limit()
        ));
        (budget * 5 / 7, budget * 2 / 7)
    };
    let mut setup = Setup::new();
    setup.conf.push("HANDSHAKE_TIMEOUT=2s".into());
    setup.conf.push("HEADER_TIMEOUT=2s".into());
    let env = setup.start().await;
    let (client, addr) = (env.client(Some(&env.user1)), env.addr);
    let metrics_timeouts = || {
        env.handle
            .stats()
            .metrics
            .handshakes
            .get_or_create(&Outcome::from("timeout"))
            .get()
    };

    // The normal client: a new connection and a request, again and again,
    // until the attack is over.
    let attack_over = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicUsize::new(0));
    let normal = {
        let (client, over, served) = (client.clone(), attack_over.clone(), served.clone());
        tokio::spawn(async move {
            while !over.load(Ordering::SeqCst) {
                let answer = tokio::time::timeout(NORMAL_LATENCY_BOUND, client.get(addr, "/"))
                    .await
                    .expect("a normal request waited too long during the attack")
                    .expect("a normal request failed during the attack");
                assert_eq!(answer.status, 200);
                served.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };

    let mut silent = Vec::new();
    for _ in 0..silent_n {
        silent.push(TcpStream::connect(addr).await.unwrap());
    }
    let silent: Vec<_> = silent
        .into_iter()
        .map(|tcp| tokio::spawn(closed_by_proxy(tcp)))
        .collect();
    let tricklers: Vec<_> = (0..trickling_n)
        .map(|_| tokio::spawn(trickle(client.clone(), addr)))
        .collect();

    for (i, s) in silent.into_iter().enumerate() {
        assert!(s.await.unwrap(), "silent connection {i} was never closed");
    }
    for (i, t) in tricklers.into_iter().enumerate() {
        assert!(
            t.await.unwrap(),
            "trickling client {i} was not cut by HEADER_TIMEOUT"
        );
    }
    assert!(
        metrics_timeouts() >= silent_n as u64,
        "closed by HANDSHAKE_TIMEOUT: {}",
        metrics_timeouts()
    );
    attack_over.store(true, Ordering::SeqCst);
    normal.await.unwrap();
    assert!(
        served.load(Ordering::SeqCst) >= 3,
        "the normal client was barely served"
    );
    // Every attacking connection is gone from the proxy.
    let open = || env.handle.stats().metrics.connections_open.get();
    assert!(
        eventually(|| open() == 0).await,
        "{} connections still open",
        open()
    );
}

#[tokio::test]
async fn http2_connection_kept_warm_only_by_pings_is_closed_after_idle_timeout() {
    // Regression: the idle clock counted bytes, so the server's own HTTP/2
    // keep-alive PINGs (sent every IDLE_TIMEOUT) and the client's answers kept
    // a connection without requests open, holding a MAX_CONNECTIONS slot.
    let mut setup = Setup::new();
    setup.conf.push("IDLE_TIMEOUT=1s".into());
    let env = setup.start().await;
    let client = Client::new(&env.ca.pem, Some(&env.user1), &[b"h2"]);
    let tls = client.connect(env.addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
            .timer(hyper_util::rt::TokioTimer::new())
            .keep_alive_interval(Duration::from_millis(300))
            .keep_alive_while_idle(true)
            .handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .unwrap();
    let conn = tokio::spawn(conn);
    let req = http::Request::get(format!("https://localhost:{}/", env.addr.port()))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    assert_eq!(sender.send_request(req).await.unwrap().status(), 200);
    let ended = tokio::time::timeout(PATIENCE, conn).await;
    assert!(
        ended.is_ok(),
        "the pinging idle HTTP/2 connection was never closed"
    );
}

/// A response far larger than what the socket buffers and hyper's buffer
/// hold on either side, so that a client that reads nothing stalls it.
const HUGE: u64 = 1 << 30;

/// Waits until the client asking for `/big` has its WebORCA connection,
/// then until the proxy has let it go (the client took nothing of the answer
/// for IDLE_TIMEOUT): the backend's connection counter, not the proxy's word.
async fn weborca_connection_freed(env: &crate::util::env::Env) {
    assert!(
        eventually(|| env.backend.count() == 1 && env.backend.open() == 1).await,
        "the request for /big never reached WebORCA"
    );
    assert!(
        eventually(|| env.backend.open() == 0).await,
        "the WebORCA connection of a client that reads nothing was held past IDLE_TIMEOUT"
    );
    assert_stalls_counted(env, 1).await;
}

/// The proxy with `conf` and a connection of user1's that has sent `head`
/// (with the body bytes after it, if any, flushed).
async fn sent(
    conf: &[&str],
    head: &[u8],
) -> (
    crate::util::env::Env,
    tokio_rustls::client::TlsStream<TcpStream>,
) {
    let mut setup = Setup::new();
    setup.conf.extend(conf.iter().map(|c| c.to_string()));
    let env = setup.start().await;
    let mut tls = env
        .client(Some(&env.user1))
        .connect(env.addr)
        .await
        .unwrap();
    tls.write_all(head).await.unwrap();
    tls.flush().await.unwrap();
    (env, tls)
}

/// `/metrics` counts `n` connections cut for a stalled client.
async fn assert_stalls_counted(env: &crate::util::env::Env, n: u64) {
    let status = env.status.expect("STATUS_LISTEN");
    let (_, metrics) = crate::console::status_get(status, "/metrics").await;
    let line = format!("weborca_proxy_stalled_clients_total {n}");
    assert!(
        metrics.lines().any(|l| l == line),
        "no {line} in /metrics:\n{metrics}"
    );
}

#[tokio::test]
async fn an_http1_client_that_reads_nothing_of_an_answer_is_cut_after_idle_timeout() {
    let head = format!("GET /big?n={HUGE} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let (env, mut tls) = sent(
        &["IDLE_TIMEOUT=1s", "STATUS_LISTEN=127.0.0.1:0"],
        head.as_bytes(),
    )
    .await;
    weborca_connection_freed(&env).await;
    // at most what had reached this side before the cut, then a reset: not
    // the rest of the proxy's send buffer trickling out and a clean end
    let mut got = 0u64;
    let mut buf = vec![0u8; 1 << 16];
    let read_all = async {
        loop {
            match tls.read(&mut buf).await {
                Ok(0) => return None,
                Err(e) => return Some(e.kind()),
                Ok(n) => got += n as u64,
            }
        }
    };
    let ended = tokio::time::timeout(PATIENCE, read_all).await;
    assert_eq!(
        ended,
        Ok(Some(std::io::ErrorKind::ConnectionReset)),
        "the stalled connection was not reset"
    );
    assert!(got < HUGE, "{got} bytes of {HUGE} arrived");
    // the proxy serves on
    env.assert_serves_user1().await;
}

#[tokio::test]
async fn an_http2_client_that_keeps_its_window_shut_is_cut_after_idle_timeout() {
    let mut setup = Setup::new();
    setup.conf.push("IDLE_TIMEOUT=1s".into());
    setup.conf.push("STATUS_LISTEN=127.0.0.1:0".into());
    let env = setup.start().await;
    let client = Client::new(&env.ca.pem, Some(&env.user1), &[b"h2"]);
    let tls = client.connect(env.addr).await.unwrap();
    // a stream window of 0: the proxy may send the head, never a byte of body
    let (mut sender, conn) =
        hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
            .initial_stream_window_size(0)
            .handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .unwrap();
    let conn = tokio::spawn(conn);
    let req = http::Request::get(format!(
        "https://localhost:{}/big?n={HUGE}",
        env.addr.port()
    ))
    .body(http_body_util::Empty::<bytes::Bytes>::new())
    .unwrap();
    let answer = tokio::spawn(async move { sender.send_request(req).await });
    weborca_connection_freed(&env).await;
    let ended = tokio::time::timeout(PATIENCE, conn).await;
    assert!(
        ended.is_ok(),
        "the stalled HTTP/2 connection was not closed"
    );
    // the head may have come before the cut; no body did
    if let Ok(Ok(resp)) = answer.await {
        use http_body_util::BodyExt;
        assert!(
            resp.into_body().collect().await.is_err(),
            "a cut answer looked whole"
        );
    }
    env.assert_serves_user1().await;
}

#[tokio::test]
async fn a_client_reading_slowly_is_not_cut() {
    // Regression: the kernel wakes a writer blocked on a slow reader only
    // when a third of the (autotuned, megabytes) send buffer is free, so a
    // client reading 300 KiB/s seemed to take nothing for seconds and was cut;
    // and hyper asks a response body for more only every few hundred KiB a
    // slow reader takes, so the socket's writes are what count.
    let head = format!("GET /big?n={HUGE} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let (env, mut tls) = sent(&["IDLE_TIMEOUT=1s"], head.as_bytes()).await;
    // 64 KiB each 200 ms, for five times IDLE_TIMEOUT: the pace is the point
    let mut buf = vec![0u8; 1 << 16];
    let mut got = 0u64;
    for _ in 0..25 {
        let mut chunk = 0;
        while chunk < buf.len() {
            match tokio::time::timeout(PATIENCE, tls.read(&mut buf[chunk..])).await {
                Ok(Ok(n)) if n > 0 => chunk += n,
                other => panic!("a slow reader was cut after {got} bytes: {other:?}"),
            }
        }
        got += chunk as u64;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        env.backend.open(),
        1,
        "its WebORCA connection is still there"
    );
}

#[tokio::test]
async fn a_client_that_stops_sending_its_upload_is_cut_after_idle_timeout() {
    // Regression: it held its WebORCA connection until BACKEND_TIMEOUT (300 s
    // by default), and the 504 then blamed WebORCA.
    let mut request =
        b"POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10000000\r\n\r\n".to_vec();
    request.extend_from_slice(&vec![b'x'; 1 << 20]);
    let (env, _tls) = sent(&["IDLE_TIMEOUT=1s", "STATUS_LISTEN=127.0.0.1:0"], &request).await;
    assert!(
        eventually(|| env.backend.open() == 1).await,
        "the upload never reached WebORCA"
    );
    assert!(
        eventually(|| env.backend.open() == 0).await,
        "the WebORCA connection of a stalled upload was held past IDLE_TIMEOUT"
    );
    // the stand-in notes what it got before the connection went
    assert!(
        env.backend.last().body_len < 10_000_000,
        "the cut upload arrived whole"
    );
    assert_stalls_counted(&env, 1).await;
    env.assert_serves_user1().await;
}

#[tokio::test]
async fn a_connection_closed_before_a_byte_is_an_aborted_handshake() {
    // a monitoring port check: counted among the handshakes, never a refusal
    let env = Setup::new().start().await;
    for _ in 0..3 {
        drop(TcpStream::connect(env.addr).await.unwrap());
    }
    let aborted = || {
        env.handle
            .stats()
            .metrics
            .encode()
            .lines()
            .any(|l| l.contains("tls_handshakes_total{result=\"aborted\"} 3"))
    };
    assert!(
        eventually(aborted).await,
        "{}",
        env.handle.stats().metrics.encode()
    );
    assert!(
        !env.handle
            .stats()
            .metrics
            .encode()
            .contains("client_cert_refusals_total{"),
        "a port check counted as a refusal"
    );
    env.assert_serves_user1().await;
}

#[tokio::test]
async fn a_steady_upload_longer_than_backend_timeout_is_answered() {
    // Regression: BACKEND_TIMEOUT counted from the request's start, so an
    // upload that took longer than it ended in a 504 blaming WebORCA.
    const CHUNK: usize = 16 * 1024;
    const CHUNKS: usize = 10;
    let head = format!(
        "POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n",
        CHUNK * CHUNKS
    );
    let (env, mut tls) = sent(&["BACKEND_TIMEOUT=1s"], head.as_bytes()).await;
    // 3 s in all, a chunk each 300 ms: the pace is the point
    for _ in 0..CHUNKS {
        tls.write_all(&[b'x'; CHUNK]).await.unwrap();
        tls.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(PATIENCE, tls.read(&mut buf))
            .await
            .expect("an answer")
            .unwrap();
        assert!(n > 0, "closed without an answer");
        answer.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&answer);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(env.backend.last().body_len, (CHUNK * CHUNKS) as u64);
}
