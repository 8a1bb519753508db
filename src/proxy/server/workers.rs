//! The worker threads (WORKERS): each a runtime of its own accepting on the
//! same listening sockets, so a request never hops between threads.

#[allow(unused_imports)]
use super::*;

/// Starts worker thread `n`: a single-threaded runtime of its own accepting on
/// the same listening sockets (duplicated descriptors) as the others, and
/// serving the connections it accepts on that same thread, with its own pool
/// of backend connections.
///
/// One runtime per thread rather than one work-stealing runtime for all: a
/// request then never hops between threads (client connection, backend
/// connection and their timers all live on one), which at the request rates a
/// clinic sees halves the wake-ups per request. It is how nginx's worker
/// processes work, and the kernel wakes whichever worker is free to accept.
pub(super) fn spawn_worker(
    n: usize,
    shared: &Shared,
    listeners: &[TcpListener],
) -> io::Result<std::thread::JoinHandle<()>> {
    let fds = listeners
        .iter()
        .map(|l| {
            use std::os::fd::AsFd;
            l.as_fd()
                .try_clone_to_owned()
                .map(std::net::TcpListener::from)
        })
        .collect::<io::Result<Vec<_>>>()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let shared = Arc::new(shared.for_worker());
    std::thread::Builder::new()
        .name(format!("worker-{n}"))
        .spawn(move || {
            runtime.block_on(async move {
                let mut accept_loops = Vec::new();
                for fd in fds {
                    match TcpListener::from_std(fd) {
                        Ok(l) => accept_loops.push(tokio::spawn(accept_loop(shared.clone(), l))),
                        Err(e) => tracing::warn!("worker thread {n}: cannot listen: {e}"),
                    }
                }
                shared.shutdown.cancelled().await;
                for l in accept_loops {
                    let _ = l.await;
                }
                // Serve what this thread accepted until the proxy is drained
                // or SHUTDOWN_GRACE runs out, as the first thread does.
                let _ = tokio::time::timeout(shared.listener.shutdown_grace, async {
                    shared.conns.wait().await;
                    shared.tunnels.wait().await;
                })
                .await;
            });
        })
}
