//! The accept loop of one listening socket, within MAX_CONNECTIONS: beyond
//! it new connections wait in the kernel's accept queue. Each connection is
//! served by the least busy thread (`spread.rs`).

#[allow(unused_imports)]
use super::*;

/// Waits for a MAX_CONNECTIONS slot, saying so (at most every LIMIT_LOG_EVERY)
/// when the proxy is full.
pub(super) async fn connection_slot(shared: &Arc<Shared>) -> Option<OwnedSemaphorePermit> {
    if let Ok(p) = shared.limit.clone().try_acquire_owned() {
        return Some(p);
    }
    if !shared.limit_logged.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            "MAX_CONNECTIONS ({}) reached: new connections wait in the accept queue until one closes",
            shared.listener.max_connections
        );
        let shared = shared.clone();
        tokio::spawn(async move {
            tokio::time::sleep(LIMIT_LOG_EVERY).await;
            shared.limit_logged.store(false, Ordering::Relaxed);
        });
    }
    tokio::select! {
        p = shared.limit.clone().acquire_owned() => p.ok(),
        _ = shared.shutdown.cancelled() => None,
    }
}

/// The most a client connection's socket holds unsent (TCP_NOTSENT_LOWAT):
/// enough to keep a fast link busy, small enough that a slow reader's
/// progress is seen (every 64 KiB it takes).
const SEND_BACKLOG: u32 = 128 * 1024;

/// Accepts on `listener` and places each connection on the least busy thread.
pub(super) async fn accept_loop(shared: Arc<Shared>, listener: TcpListener, spread: Arc<Spread>) {
    loop {
        let Some(permit) = connection_slot(&shared).await else {
            return;
        };
        // Shutdown first: a connection accepted after it would only wait,
        // unserved, for the grace period to end.
        let accepted = tokio::select! {
            biased;
            _ = shared.shutdown.cancelled() => return,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((tcp, peer)) => {
                let _ = tcp.set_nodelay(true);
                // Best effort, like Nagle's: without it the kernel wakes a
                // writer blocked on a slow reader only once a third of the
                // send buffer (autotuned up to 4 MiB) is free, and the client
                // would seem to take nothing for that long (conn.rs: such a
                // client is cut after IDLE_TIMEOUT). With at most
                // SEND_BACKLOG unsent, the writer wakes each time the client
                // has taken about half of it.
                let _ = socket2::SockRef::from(&tcp).set_tcp_notsent_lowat(SEND_BACKLOG);
                spread.place(tcp, peer, permit, |tcp, peer, permit, open| {
                    let s = shared.clone();
                    shared.conns.spawn(async move {
                        let _open = open;
                        serve_conn(s, tcp, peer, permit).await;
                    });
                });
            }
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
            }
        }
    }
}
