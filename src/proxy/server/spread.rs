//! Which thread serves a new connection: the one with the fewest open.
//!
//! The first thread accepts on every listening socket and hands each
//! connection to the least busy thread, itself included. Worker threads that
//! all accepted on the same sockets were left to the kernel's wake-ups: when
//! a client opens many connections at once (a load generator, a browser
//! opening six), the thread that woke first accepted them all while the
//! other sat idle — 32 of 32 keep-alive connections on one thread were seen
//! here, halving what two cores serve. A connection is counted from its
//! hand-over until it closes, so long-lived ones (WebSockets, browsers kept
//! alive) weigh what they cost. Handing over moves the socket between
//! runtimes once per connection (deregister, send, register): small beside
//! the TLS handshake that follows.

use std::sync::atomic::{AtomicUsize, Ordering};

#[allow(unused_imports)]
use super::*;

/// A connection accepted by the first thread for another to serve.
pub(super) struct Accepted {
    pub tcp: std::net::TcpStream,
    pub peer: SocketAddr,
    pub permit: OwnedSemaphorePermit,
}

/// The open connections of each thread (0 is the first) and the way to the
/// others.
pub(super) struct Spread {
    open: Vec<Arc<AtomicUsize>>,
    workers: Vec<tokio::sync::mpsc::UnboundedSender<Accepted>>,
}

/// Counts one open connection of a thread until dropped.
pub(super) struct Open(Arc<AtomicUsize>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Spread {
    /// The first thread alone.
    pub fn new() -> Spread {
        Spread {
            open: vec![Arc::new(AtomicUsize::new(0))],
            workers: Vec::new(),
        }
    }

    /// Adds a worker thread; what it is handed arrives on the receiver, and
    /// the counter is the one it drops its connections' [`Open`] on.
    pub fn add_worker(
        &mut self,
    ) -> (
        tokio::sync::mpsc::UnboundedReceiver<Accepted>,
        Arc<AtomicUsize>,
    ) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let open = Arc::new(AtomicUsize::new(0));
        self.open.push(open.clone());
        self.workers.push(tx);
        (rx, open)
    }

    /// Serves `tcp` on the thread with the fewest open connections: here
    /// (`serve_here`), or handed to a worker. A worker that is gone (it
    /// failed) leaves its connections to this thread.
    pub fn place(
        &self,
        tcp: TcpStream,
        peer: SocketAddr,
        permit: OwnedSemaphorePermit,
        serve_here: impl FnOnce(TcpStream, SocketAddr, OwnedSemaphorePermit, Open),
    ) {
        let least = (0..self.open.len())
            .min_by_key(|&i| self.open[i].load(Ordering::Relaxed))
            .unwrap_or(0);
        if least == 0 {
            return self.place_here(tcp, peer, permit, serve_here);
        }
        let std_tcp = match tcp.into_std() {
            Ok(t) => t,
            Err(e) => {
                tracing::debug!(%peer, "closed before it was served: {e}");
                return;
            }
        };
        self.open[least].fetch_add(1, Ordering::Relaxed);
        let handed = Accepted {
            tcp: std_tcp,
            peer,
            permit,
        };
        if let Err(back) = self.workers[least - 1].send(handed) {
            self.open[least].fetch_sub(1, Ordering::Relaxed);
            let Accepted { tcp, peer, permit } = back.0;
            match TcpStream::from_std(tcp) {
                Ok(tcp) => self.place_here(tcp, peer, permit, serve_here),
                Err(e) => tracing::warn!(%peer, "connection lost between threads: {e}"),
            }
        }
    }

    fn place_here(
        &self,
        tcp: TcpStream,
        peer: SocketAddr,
        permit: OwnedSemaphorePermit,
        serve_here: impl FnOnce(TcpStream, SocketAddr, OwnedSemaphorePermit, Open),
    ) {
        self.open[0].fetch_add(1, Ordering::Relaxed);
        serve_here(tcp, peer, permit, Open(self.open[0].clone()));
    }
}

/// The mark a worker keeps for a connection it was handed.
pub(super) fn counted(open: &Arc<AtomicUsize>) -> Open {
    Open(open.clone())
}
