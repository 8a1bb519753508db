//! The worker threads (WORKERS): each a runtime of its own serving the
//! connections it is handed, so a request never hops between threads.

#[allow(unused_imports)]
use super::*;

/// Starts worker thread `n`: a single-threaded runtime of its own serving the
/// connections the first thread hands it (see `spread.rs`), each on that same
/// thread, with its own pool of backend connections.
///
/// One runtime per thread rather than one work-stealing runtime for all: a
/// request then never hops between threads (client connection, backend
/// connection and their timers all live on one), which at the request rates a
/// clinic sees halves the wake-ups per request. It is how nginx's worker
/// processes work.
pub(super) fn spawn_worker(
    n: usize,
    shared: &Shared,
    mut handed: tokio::sync::mpsc::UnboundedReceiver<Accepted>,
    open: Arc<std::sync::atomic::AtomicUsize>,
    started: tokio::sync::oneshot::Sender<()>,
) -> io::Result<std::thread::JoinHandle<()>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let shared = Arc::new(shared.for_worker());
    std::thread::Builder::new()
        .name(format!("worker-{n}"))
        .spawn(move || {
            // the thread is named and about to serve
            let _ = started.send(());
            runtime.block_on(async move {
                loop {
                    let got = tokio::select! {
                        got = handed.recv() => got,
                        _ = shared.shutdown.cancelled() => None,
                    };
                    let Some(Accepted { tcp, peer, permit }) = got else {
                        // Handed over as shutdown began: closed now rather
                        // than left waiting for the grace period to end.
                        handed.close();
                        while handed.try_recv().is_ok() {}
                        break;
                    };
                    let mark = counted(&open);
                    match TcpStream::from_std(tcp) {
                        Ok(tcp) => {
                            let s = shared.clone();
                            shared.conns.spawn(async move {
                                let _mark = mark;
                                serve_conn(s, tcp, peer, permit).await;
                            });
                        }
                        Err(e) => tracing::warn!(%peer, "worker thread {n}: cannot serve a connection: {e}"),
                    }
                }
                // Serve what this thread was handed until the proxy is
                // drained or SHUTDOWN_GRACE runs out, as the first thread does.
                let _ = tokio::time::timeout(shared.listener.shutdown_grace, async {
                    shared.conns.wait().await;
                    shared.tunnels.wait().await;
                })
                .await;
            });
        })
}
