//! Connection floods: beyond MAX_CONNECTIONS new connections wait in the
//! kernel's accept queue (README: "further connections wait in the kernel's
//! accept queue"); the proxy's descriptors and memory stay bounded, it serves
//! again as soon as the flood stops, and the unit's LimitNOFILE covers the
//! default MAX_CONNECTIONS. An HTTP/2 stream flood cannot open more backend
//! sockets than MAX_CONNECTIONS either.

use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use tokio::net::TcpStream;

use crate::util::env::Setup;
use crate::util::lean::Lean;
use crate::util::raw::{
    Front, PATIENCE, eventually, metric, nofile_limit, open_fds, rss_kib, start_proc, status_addr,
};

const OPEN: &str = "weborca_proxy_connections_open";
/// Generous ceiling for the proxy's memory under the flood; it uses a few MiB.
const RSS_CEILING_KIB: u64 = 256 * 1024;

/// Polls the status listener until `name` has `want`; returns the last value.
async fn wait_metric(status: std::net::SocketAddr, name: &str, want: f64) -> Option<f64> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let v = metric(status, name).await;
        if v == Some(want) || tokio::time::Instant::now() > deadline {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flood_beyond_max_connections_queues_and_service_resumes_when_it_stops() {
    // The flood costs this process one descriptor per connection; MAX_CONNECTIONS
    // is sized to the open-files limit so the test fits any `ulimit -n`.
    let max = 64.min(nofile_limit().saturating_sub(200) / 5).max(4);
    let flood = 4 * max;
    let backend = Lean::start().await;
    let setup = Setup::new();
    let max_line = format!("MAX_CONNECTIONS={max}");
    let (mut p, addr) = start_proc(
        &setup,
        &backend.url(),
        &[
            &max_line,
            "HANDSHAKE_TIMEOUT=60s",
            "STATUS_LISTEN=127.0.0.1:0",
        ],
    );
    let status = status_addr(&mut p);
    let pid = p.child.id();
    let client = setup.user1.clone();
    let client = crate::util::client::Client::h1(&setup.ca.pem, Some(&client));
    assert_eq!(client.get(addr, "/").await.unwrap().status, 200);
    assert_eq!(wait_metric(status, OPEN, 0.0).await, Some(0.0));
    let fds_before = open_fds(pid);

    // The flood: connections that never send a byte, four times the limit.
    let mut held = Vec::new();
    for _ in 0..flood {
        held.push(TcpStream::connect(addr).await.expect("queued, not refused"));
    }
    assert_eq!(
        wait_metric(status, OPEN, max as f64).await,
        Some(max as f64),
        "the proxy holds exactly MAX_CONNECTIONS"
    );
    p.wait_for(&format!("MAX_CONNECTIONS ({max}) reached"))
        .unwrap_or_else(|| panic!("{:#?}", p.seen));
    // A normal client now waits in the queue behind the flood.
    let queued = {
        let client = client.clone();
        tokio::spawn(async move { client.get(addr, "/").await })
    };
    let fds_flooded = open_fds(pid);
    assert!(
        fds_flooded <= fds_before + max + 8,
        "descriptors: {fds_before} before, {fds_flooded} flooded, MAX_CONNECTIONS {max}"
    );
    let rss = rss_kib(pid);
    eprintln!(
        "flood of {flood} with MAX_CONNECTIONS={max}: {fds_before} -> {fds_flooded} descriptors, {rss} KiB resident"
    );
    assert!(
        rss < RSS_CEILING_KIB,
        "resident memory {rss} KiB under the flood"
    );
    assert_eq!(metric(status, OPEN).await, Some(max as f64));
    assert!(!queued.is_finished(), "served beyond MAX_CONNECTIONS");

    // The flood stops: the queued client is served, everything drains.
    drop(held);
    let answer = tokio::time::timeout(PATIENCE, queued)
        .await
        .expect("the queued client is served once the flood stops")
        .unwrap()
        .unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(wait_metric(status, OPEN, 0.0).await, Some(0.0));
    assert_eq!(client.get(addr, "/").await.unwrap().status, 200);
    // Flood connections still in the kernel's queue are accepted and closed
    // after the count of open connections first reads 0: wait for them.
    // (+2: the idle backend connections the two requests above may have added.)
    assert!(
        eventually(|| open_fds(pid) <= fds_before + 2).await,
        "descriptors left behind: {} (was {fds_before})",
        open_fds(pid)
    );
    assert!(p.child.try_wait().unwrap().is_none(), "the proxy died");
}

#[tokio::test]
async fn http2_stream_flood_opens_at_most_max_connections_backend_sockets() {
    const MAX: usize = 8;
    const STREAMS: usize = 100;
    let backend = Lean::start().await;
    let mut setup = Setup::new();
    setup.conf.push(format!("MAX_CONNECTIONS={MAX}"));
    setup.conf.push("BACKEND_TIMEOUT=2s".into());
    let front = Front::start(setup, &backend.url()).await;
    let tls = front.h2_client().connect(front.addr).await.unwrap();
    let (sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let streams: Vec<_> = (0..STREAMS)
        .map(|_| {
            let mut sender = sender.clone();
            let req = Request::get(format!("https://localhost:{}/hang", front.addr.port()))
                .body(Full::new(Bytes::new()))
                .unwrap();
            tokio::spawn(async move { sender.send_request(req).await.map(|r| r.status()) })
        })
        .collect();
    // The first MAX streams reach WebORCA and hang there; all the others wait
    // for a slot (the backend_waiting gauge). Then the most backend sockets
    // ever open at once is read, before BACKEND_TIMEOUT frees any slot (a
    // freed slot's new socket and the old one's close can cross at the backend).
    let stats = front.handle.stats();
    let waiting = || stats.metrics.backend_waiting.get();
    assert!(
        eventually(|| waiting() == (STREAMS - MAX) as i64).await,
        "{} streams waited for a backend slot, not {}",
        waiting(),
        STREAMS - MAX
    );
    let conns = || {
        backend
            .stats
            .max_conns
            .load(std::sync::atomic::Ordering::SeqCst)
    };
    assert!(
        eventually(|| conns() >= MAX).await,
        "{} backend sockets",
        conns()
    );
    let most = conns();
    assert!(
        most <= MAX,
        "{most} backend sockets for MAX_CONNECTIONS={MAX}"
    );
    // Every stream is answered when BACKEND_TIMEOUT runs out, waiting or not.
    for s in streams {
        let status = tokio::time::timeout(PATIENCE, s)
            .await
            .expect("every stream is answered")
            .unwrap()
            .unwrap();
        assert_eq!(status, 504);
    }
    // and the proxy serves normally afterwards
    let ok = front.client().get(front.addr, "/").await.unwrap();
    assert_eq!(ok.status, 200);
}

#[test]
fn systemd_limit_nofile_covers_the_default_max_connections() {
    const UNIT: &str = include_str!("../systemd/weborca-mtls-proxy.service");
    /// What the proxy keeps aside besides two descriptors per connection (server.rs RESERVED_FDS).
    const RESERVED: usize = 512;
    let limit: usize = UNIT
        .lines()
        .find_map(|l| l.strip_prefix("LimitNOFILE="))
        .expect("the unit sets LimitNOFILE")
        .trim()
        .parse()
        .unwrap();
    let setup = Setup::new();
    let conf = setup.write_config("http://127.0.0.1:8001");
    let max = weborca_mtls_proxy::config::load(&conf)
        .unwrap()
        .config
        .max_connections;
    assert!(
        limit >= 2 * max + RESERVED,
        "LimitNOFILE={limit} cannot hold MAX_CONNECTIONS={max} client and backend connections"
    );
}
