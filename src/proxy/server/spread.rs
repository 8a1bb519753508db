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
        // A worker that is gone keeps a count of 0 and would be picked for
        // every connection, each then coming back here the long way.
        let least = (0..self.open.len())
            .filter(|&i| i == 0 || !self.workers[i - 1].is_closed())
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` accepted loopback connections, each with a permit.
    async fn accepted(n: usize) -> Vec<(TcpStream, SocketAddr, OwnedSemaphorePermit)> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let permits = Arc::new(tokio::sync::Semaphore::new(n));
        let mut out = Vec::new();
        let mut clients = Vec::new();
        for _ in 0..n {
            clients.push(TcpStream::connect(addr).await.unwrap());
            let (tcp, peer) = listener.accept().await.unwrap();
            out.push((tcp, peer, permits.clone().try_acquire_owned().unwrap()));
        }
        out
    }

    #[tokio::test]
    async fn connections_go_to_live_workers_and_never_to_a_gone_one() {
        let mut spread = Spread::new();
        let (mut live, _) = spread.add_worker();
        let (gone, _) = spread.add_worker();
        drop(gone);
        let mut here = Vec::new();
        for (tcp, peer, permit) in accepted(6).await {
            spread.place(tcp, peer, permit, |tcp, _, _, open| here.push((tcp, open)));
        }
        let mut handed = 0;
        while live.try_recv().is_ok() {
            handed += 1;
        }
        // the two live threads take turns; the gone worker (a count of 0
        // throughout) would otherwise have been picked for every connection
        // after the second, each then coming back to this thread
        assert_eq!((here.len(), handed), (3, 3));
        assert_eq!(spread.open[1].load(Ordering::Relaxed), 3);
        assert_eq!(spread.open[2].load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn with_every_worker_gone_the_first_thread_serves_all() {
        let mut spread = Spread::new();
        for _ in 0..2 {
            drop(spread.add_worker());
        }
        let mut here = Vec::new();
        for (tcp, peer, permit) in accepted(4).await {
            spread.place(tcp, peer, permit, |tcp, _, _, open| here.push((tcp, open)));
        }
        assert_eq!(here.len(), 4);
        assert_eq!(spread.open[0].load(Ordering::Relaxed), 4);
        drop(here);
        assert_eq!(spread.open[0].load(Ordering::Relaxed), 0);
    }
}
