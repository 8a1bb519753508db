//! WORKERS: the first thread accepts and each connection is served by the
//! least busy thread; a stop drains the requests in flight on every one of them.

use crate::util::backend::Backend;
use crate::util::client::Client;
use crate::util::env::Setup;
use crate::util::raw::start_proc;

/// Bytes each of the proxy's threads has written (to sockets and files), by
/// name: the thread that serves a connection writes its answers and its
/// requests to WebORCA, so this counts work done, not time taken.
fn thread_written(pid: u32) -> Vec<(String, u64)> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
        .filter_map(|t| {
            let name = std::fs::read_to_string(t.path().join("comm")).ok()?;
            let io = std::fs::read_to_string(t.path().join("io")).ok()?;
            let written = io
                .lines()
                .find_map(|l| l.strip_prefix("wchar:"))?
                .trim()
                .parse::<u64>()
                .ok()?;
            Some((name.trim().to_string(), written))
        })
        .collect()
}

/// Names of the proxy's threads.
fn thread_names(pid: u32) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
        .map(|n| n.trim().to_string())
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_worker_serves_and_a_stop_drains_them_all() {
    const WORKERS: usize = 3;
    const CLIENTS: usize = 24;
    let backend = Backend::start().await;
    let setup = Setup::new();
    let (p, addr) = start_proc(&setup, &backend.url(), &[&format!("WORKERS={WORKERS}")]);
    // Logged once every worker thread has started (named, about to serve).
    let mut p = p;
    let line = tokio::task::block_in_place(|| p.wait_for("serving connections on"))
        .expect("no threads line");
    assert!(line.contains(&format!("on {WORKERS} thread(s)")), "{line}");
    let names = thread_names(p.child.id());
    for n in 1..WORKERS {
        assert!(
            names.contains(&format!("worker-{n}")),
            "worker-{n} missing: {names:?}"
        );
    }
    assert!(!names.contains(&format!("worker-{WORKERS}")), "{names:?}");

    // Slow requests on many connections, spread over the threads; SIGTERM
    // while all are in flight: each one completes.
    let client = Client::h1(&setup.ca.pem, Some(&setup.user1));
    let mut slow = Vec::new();
    for _ in 0..CLIENTS {
        let client = client.clone();
        slow.push(tokio::spawn(async move { client.get(addr, "/slow").await }));
    }
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while backend.count() < CLIENTS && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(backend.count(), CLIENTS, "all requests reached WebORCA");
    p.signal("TERM");
    for s in slow {
        assert_eq!(s.await.unwrap().unwrap().status, 200);
    }
    let (code, lines) = tokio::task::block_in_place(|| p.exit());
    assert_eq!(code, 0, "{lines:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_worker_is_the_main_thread_alone() {
    let backend = Backend::start().await;
    let setup = Setup::new();
    let (mut p, addr) = start_proc(&setup, &backend.url(), &["WORKERS=1"]);
    let line = tokio::task::block_in_place(|| p.wait_for("serving connections on"))
        .expect("no threads line");
    assert!(line.contains("on 1 thread(s)"), "{line}");
    let names = thread_names(p.child.id());
    assert!(!names.iter().any(|n| n.starts_with("worker-")), "{names:?}");
    let client = Client::h1(&setup.ca.pem, Some(&setup.user1));
    assert_eq!(client.get(addr, "/").await.unwrap().status, 200);
}

/// Connections opened all at once (as a load generator or a browser opens
/// them) are spread over the threads, not left to whichever woke first:
/// each serving thread writes a fair share of the answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_opened_at_once_are_spread_over_the_threads() {
    const CONNS: usize = 8;
    const REQUESTS: usize = 150;
    let backend = Backend::start().await;
    let setup = Setup::new();
    let (p, addr) = start_proc(&setup, &backend.url(), &["WORKERS=2", "ACCESS_LOG=off"]);
    let pid = p.child.id();
    let client = Client::h1(&setup.ca.pem, Some(&setup.user1));
    let opened = futures_util::future::join_all(
        (0..CONNS).map(|_| crate::util::kept::Kept::open(&client, addr)),
    )
    .await;
    let before = thread_written(pid);
    let runs = opened.into_iter().map(|mut kept| async move {
        for _ in 0..REQUESTS {
            assert_eq!(kept.get("/").await.unwrap().status, 200);
        }
    });
    futures_util::future::join_all(runs).await;
    assert_eq!(backend.count(), CONNS * REQUESTS);
    let after = thread_written(pid);
    let used = |name: &str| {
        let of = |v: &[(String, u64)]| {
            v.iter()
                .filter(|(n, _)| n == name)
                .map(|(_, t)| *t)
                .sum::<u64>()
        };
        of(&after) - of(&before)
    };
    // the first thread is the process's own (its name is the program's, cut to 15)
    let first = used("weborca-mtls-pr");
    let worker = used("worker-1");
    let total = first + worker;
    assert!(total > 0, "nothing written: {after:?}");
    for (name, t) in [("the first thread", first), ("worker-1", worker)] {
        assert!(
            t * 4 >= total,
            "{name} served too little: {first} and {worker} bytes written by the first thread and worker-1"
        );
    }
}
