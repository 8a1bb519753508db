//! WORKERS: each worker thread accepts on the same port and serves what it
//! accepted; a stop drains the requests in flight on every one of them.

use crate::util::backend::Backend;
use crate::util::client::Client;
use crate::util::env::Setup;
use crate::util::raw::start_proc;

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
    // The worker threads start just after the `listening on` lines, and no
    // line marks them: look until they are there (bounded).
    let expected: Vec<String> = (1..WORKERS).map(|n| format!("worker-{n}")).collect();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut names = thread_names(p.child.id());
    while !expected.iter().all(|e| names.contains(e)) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
        names = thread_names(p.child.id());
    }
    for n in 1..WORKERS {
        assert!(
            names.contains(&format!("worker-{n}")),
            "worker-{n} missing: {names:?}"
        );
    }
    assert!(!names.contains(&format!("worker-{WORKERS}")), "{names:?}");

    // Slow requests on many connections, spread by the kernel over the
    // workers; SIGTERM while all are in flight: each one completes.
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

#[tokio::test]
async fn one_worker_is_the_main_thread_alone() {
    let backend = Backend::start().await;
    let setup = Setup::new();
    let (p, addr) = start_proc(&setup, &backend.url(), &["WORKERS=1"]);
    let names = thread_names(p.child.id());
    assert!(!names.iter().any(|n| n.starts_with("worker-")), "{names:?}");
    let client = Client::h1(&setup.ca.pem, Some(&setup.user1));
    assert_eq!(client.get(addr, "/").await.unwrap().status, 200);
}
