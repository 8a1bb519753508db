//! A WebSocket after WebORCA's 101: the tunnel runs as a task of its own,
//! holds its backend slot, and closes with 1008 once the client certificate
//! is refused (a reload, or a certificate or CRL running out) or ACCESS_POLICY
//! no longer permits its path.

#[allow(unused_imports)]
use super::*;

impl Proxy {
    pub(super) fn spawn_tunnel(
        &self,
        conn: &Arc<ConnInfo>,
        client: hyper::upgrade::OnUpgrade,
        backend: hyper::upgrade::OnUpgrade,
        slot: OwnedSemaphorePermit,
        path: String,
    ) {
        let shutdown = self.shutdown.clone();
        let peer = conn.peer;
        let cn = Judgement::who(&conn.judgement.now()).0;
        let guard = conn.activity.begin();
        let access_log = self.access_log;
        let conn = conn.clone();
        let stats = self.stats.clone();
        self.tunnels.spawn(async move {
            let _guard = guard;
            let _slot = slot;
            let started = Instant::now();
            let (client, backend) = tokio::join!(client, backend);
            let (Ok(client), Ok(backend)) = (client, backend) else {
                tracing::debug!(%peer, "websocket upgrade did not complete");
                return;
            };
            let by_shutdown = shutdown.clone();
            let refused = CancellationToken::new();
            let permitted_in = std::sync::atomic::AtomicU64::new(u64::MAX);
            let may_carry = || tunnel_may_carry(&conn, &path, &permitted_in);
            let tunnel = crate::ws::tunnel(
                TokioIo::new(client),
                TokioIo::new(backend),
                shutdown,
                refused.clone(),
                &may_carry,
            );
            tokio::pin!(tunnel);
            // biased: the certificate is looked at before the tunnel carries
            // its first frame (a reload may have come while WebORCA answered 101)
            let (up, down) = tokio::select! {
                biased;
                () = tunnel_refused(&conn, &stats, &path) => {
                    refused.cancel();
                    tunnel.await
                }
                carried = &mut tunnel => {
                    // The tunnel closes with 1008 by itself when a frame
                    // finds the certificate refused before the clock's
                    // look above does (a certificate running out under
                    // traffic): told and counted all the same.
                    if !by_shutdown.is_cancelled() && refused_now(&conn, &stats, &path) {
                        refused.cancel();
                    }
                    carried
                }
            };
            let how = if refused.is_cancelled() {
                "closed (1008): client certificate now refused or not permitted"
            } else if by_shutdown.is_cancelled() {
                "closed by shutdown"
            } else {
                "closed"
            };
            let outcome = format!("{how}, {up} bytes up, {down} bytes down");
            if access_log {
                let secs = started.elapsed().as_secs_f64();
                tracing::info!(name: "websocket", target: "access", %peer, cn = %cn, duration_s = format_args!("{secs:.1}"), "websocket {outcome}");
            }
        });
    }
}

/// Returns once the tunnel's certificate is refused, or ACCESS_POLICY no
/// longer permits its `path`: after a reload that changed the verdict's inputs
/// (the policy among them), or when a certificate of the chain (or, with
/// CRL_STALE=refuse, the CRL) runs out. Logs the CN, serial and reason.
async fn tunnel_refused(conn: &ConnInfo, stats: &Stats, path: &str) {
    /// Longest sleep between two looks at the clock. Tokio's timers run on
    /// the monotonic clock, which stands still while the machine is
    /// suspended: a long sleep could wake well after the wall-clock moment
    /// the certificate ran out. So a window far ahead is looked at each minute.
    const LONGEST_WAIT: i64 = 60;
    // None once the server is gone: then only the clock can still refuse
    let mut changes = Some(conn.judgement.changes());
    loop {
        if refused_now(conn, stats, path) {
            return;
        }
        let judged = conn.judgement.now();
        let secs = judged
            .window
            .1
            .saturating_sub(crate::tls::judgement::unix_now())
            .saturating_add(1)
            .clamp(1, LONGEST_WAIT);
        let changed = async {
            match changes.as_mut() {
                Some(c) => c.changed().await.is_ok(),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            open = changed => {
                if !open {
                    changes = None;
                }
            }
            () = tokio::time::sleep(Duration::from_secs(secs.unsigned_abs())) => {}
        }
    }
}

/// Whether the tunnel's certificate is refused now, or ACCESS_POLICY no
/// longer permits its `path`; if so, logged (CN, serial, reason) and counted.
fn refused_now(conn: &ConnInfo, stats: &Stats, path: &str) -> bool {
    let judged = conn.judgement.now();
    match &judged.verdict {
        Err(r) => {
            let subject = r.info.as_ref().map_or("-", |i| i.subject_oneline.as_str());
            stats.refused(conn.peer, r.kind.as_str(), subject);
            if let Some(info) = &r.info {
                stats.seen_refused(&info.sha256_hex, r.kind.as_str());
            }
            let (cn, serial) = Judgement::who(&judged);
            tracing::info!(name: "refused", peer = %conn.peer, cn = %cn, serial = %serial, reason = r.kind.as_str(), "websocket closed with 1008: the client certificate is now refused: {}", log_safe(&r.detail));
            true
        }
        Ok(identity) => !tunnel_permitted(conn, judged.policy.as_deref(), identity, path, stats),
    }
}
