//! One client connection from its first byte: plain-HTTP redirect or TLS
//! handshake (with its log line and metrics), then HTTP/1.1 or HTTP/2.

#[allow(unused_imports)]
use super::*;

/// Waits for the first byte without consuming it.
pub(super) async fn first_byte(tcp: &TcpStream) -> Option<u8> {
    let mut buf = [0u8; 1];
    match tcp.peek(&mut buf).await {
        Ok(1) => Some(buf[0]),
        _ => None,
    }
}

pub(super) async fn serve_conn(
    shared: Arc<Shared>,
    tcp: TcpStream,
    peer: SocketAddr,
    _permit: OwnedSemaphorePermit,
) {
    let metrics = &shared.stats.metrics;
    metrics.connections_total.inc();
    let _open = Metrics::held(&metrics.connections_open);
    let timeout = shared.listener.handshake_timeout;
    // One deadline for the first byte and the handshake together, so a client
    // cannot stretch the two into twice HANDSHAKE_TIMEOUT.
    let deadline = Instant::now() + timeout;
    let first = match tokio::time::timeout_at(deadline, first_byte(&tcp)).await {
        Ok(Some(b)) => b,
        Ok(None) => {
            // a port check: connected, then closed without a byte
            Metrics::count(&metrics.handshakes, "aborted");
            tracing::debug!(%peer, "closed by the client before it sent anything");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "closed: nothing sent within HANDSHAKE_TIMEOUT");
            Metrics::count(&metrics.handshakes, "timeout");
            return;
        }
    };
    match plain::sniff(first) {
        FirstByte::Tls => {}
        FirstByte::PlainHttp => {
            return plain::redirect(tcp, peer, shared.listener.header_timeout).await;
        }
        FirstByte::Other => {
            Metrics::count(&metrics.handshakes, "failed");
            tracing::info!(%peer, "closed: neither TLS nor HTTP (first byte {first:#04x})");
            return;
        }
    }
    let tls_state = shared.tls.load_full();
    let activity = Activity::new();
    let local = tcp.local_addr().ok();
    let acceptor = TlsAcceptor::from(tls_state.server_config.clone());
    let tcp = Cuttable::new(tcp, activity.clone());
    let handshake = tokio::time::timeout_at(deadline, acceptor.accept(tcp));
    let (accepted, refused_cert) = crate::tls::verify::named(handshake).await;
    let stream = match accepted {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            handshake_failed(&shared, peer, &e, refused_cert.as_ref());
            return;
        }
        Err(_) => {
            Metrics::count(&metrics.handshakes, "timeout");
            let secs = timeout.as_secs();
            tracing::info!(%peer, "TLS handshake not finished within HANDSHAKE_TIMEOUT ({secs} s)");
            return;
        }
    };
    Metrics::count(&metrics.handshakes, "ok");
    activity.touch(); // IDLE_TIMEOUT counts from here
    let (_, session) = stream.get_ref();
    let verdict = tls_state
        .verifier
        .judge(session.peer_certificates(), session.handshake_kind());
    let h2 = session.alpn_protocol() == Some(b"h2");
    let client = match &verdict {
        Ok(identity) => Some(shared.stats.client_seen(identity, peer)),
        Err(r) => {
            let seen = r.info.as_ref().map_or("-", |i| i.subject_oneline.as_str());
            shared.stats.refused(peer, r.kind.as_str(), seen);
            if let Some(info) = &r.info {
                shared.stats.seen_refused(&info.sha256_hex, r.kind.as_str());
            }
            let info = r.info.as_ref();
            let subject =
                info.map_or_else(|| "-".to_string(), |i| log_safe(&clip(&i.subject_oneline)));
            // the CN and serial too, so that the audit finds a user's refusals
            let cn = log_safe(info.and_then(|i| i.common_name.as_deref()).unwrap_or("-"));
            let serial = log_safe(info.map_or("-", |i| i.serial_hex.as_str()));
            tracing::info!(name: "refused", %peer, cn = cn.as_str(), serial = serial.as_str(), reason = r.kind.as_str(), subject = subject.as_str(), "client certificate refused: {}", log_safe(&r.detail));
            if tls_state.verifier.mode() == ClientCertErrors::Handshake
                && r.kind != CertErrorKind::CrlStale
            {
                return; // a resumed session judged after the handshake: no page in this mode
            }
            None
        }
    };
    let ca_subjects = tls_state.ca_subjects.clone();
    let chain = session
        .peer_certificates()
        .map(<[_]>::to_vec)
        .unwrap_or_default();
    let default_host = crate::proxy::default_host(session.server_name(), local);
    let judgement = Judgement::new(
        chain,
        verdict,
        &tls_state,
        shared.tls.clone(),
        shared.generations.subscribe(),
    );
    let conn = Arc::new(ConnInfo {
        peer,
        judgement,
        client,
        ca_subjects,
        activity,
        // a child of the shutdown: the connection's watchdog waits on one
        // token, not two, each time the connection wakes
        close: shared.shutdown.child_token(),
        default_host,
        forwarded_for: ConnInfo::forwarded_for(peer),
        browser: std::sync::OnceLock::new(),
        host_seen: Default::default(),
    });
    drop(tls_state);
    serve_http(&shared, stream, conn, h2).await;
}

/// Longest certificate subject written to a log line: a certificate with absurd
/// field sizes must not turn one refusal into kilobytes of log.
pub(super) const LOG_SUBJECT_CHARS: usize = 300;

/// `s` cut to LOG_SUBJECT_CHARS, on a character boundary.
pub(super) fn clip(s: &str) -> String {
    crate::text::one_line(s, LOG_SUBJECT_CHARS, crate::text::Controls::Keep, "")
}

/// The reason of a client that showed a certificate without its key.
const NO_KEY: &str = "no-key";
/// The reason of a certificate this TLS stack cannot verify a handshake
/// signature with (X.509 v1, an unknown critical extension, a short RSA key).
const UNSUPPORTED: &str = "unsupported-cert";

/// Whether a handshake ended because the client left it (closed or reset
/// the connection) rather than for a fault either side named: what a client
/// that only wanted the server's certificate does (install-cert's
/// confirmation, monitoring probes, a scanner), and what a client that
/// could not finish its handshake because it had no certificate never does
/// (it says so with a Certificate message of its own).
fn left_by_client(e: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        e.kind(),
        ErrorKind::UnexpectedEof
            | ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
            | ErrorKind::BrokenPipe
    )
}

/// Logs and counts a failed handshake; in `handshake` mode this is where
/// client certificates are refused (`cert`: the refused one, named). A
/// client that left the handshake is no refusal: it is counted as
/// `aborted` and logged at debug level only.
pub(super) fn handshake_failed(
    shared: &Shared,
    peer: SocketAddr,
    e: &std::io::Error,
    cert: Option<&crate::tls::verify::RefusedCert>,
) {
    let metrics = &shared.stats.metrics;
    if left_by_client(e) {
        Metrics::count(&metrics.handshakes, "aborted");
        tracing::debug!(%peer, "TLS handshake left by the client before it finished: {e}");
        return;
    }
    Metrics::count(&metrics.handshakes, "failed");
    let reason = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .and_then(|tls| match tls {
            rustls::Error::NoCertificatesPresented => Some(CertErrorKind::Missing),
            rustls::Error::InvalidCertificate(_) => Some(crate::tls::verify::classify(tls)),
            _ => None,
        });
    match reason {
        Some(kind) => {
            // no page can tell this one (the handshake failed in either
            // mode), so it has a reason of its own in the log and metrics
            let reason = match cert {
                Some(c) if c.no_key => NO_KEY,
                Some(c) if c.unsupported => UNSUPPORTED,
                _ => kind.as_str(),
            };
            let subject = cert.map_or("-", |c| c.subject.as_str());
            shared.stats.refused(peer, reason, subject);
            let cn = log_safe(cert.map_or("-", |c| c.cn.as_str()));
            let serial = log_safe(cert.map_or("-", |c| c.serial.as_str()));
            let subject = log_safe(&clip(subject));
            tracing::info!(name: "refused", %peer, cn = cn.as_str(), serial = serial.as_str(), reason, subject = subject.as_str(), "client certificate refused in the handshake: {e}");
        }
        None => tracing::info!(%peer, "TLS handshake failed: {e}"),
    }
}

pub(super) async fn serve_http<S>(shared: &Shared, stream: S, conn: Arc<ConnInfo>, h2: bool)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let proxy = shared.proxy.clone();
    let activity = conn.activity.clone();
    let peer = conn.peer;
    // cancelled by a refusal or by the shutdown (a child of its token)
    let close = conn.close.clone();
    let service = service_fn(move |req| proxy.clone().handle(conn.clone(), req));
    let io = TokioIo::new(stream);
    let watchdog = Watchdog::new(close.cancelled(), &activity, shared.listener.idle_timeout);
    let served = if h2 {
        let serving = shared.h2.serve_connection(io, service);
        watched(serving, |c| c.graceful_shutdown(), watchdog).await
    } else {
        let serving = shared.h1.serve_connection(io, service).with_upgrades();
        watched(serving, |c| c.graceful_shutdown(), watchdog).await
    };
    match served {
        Ok(Some(Finish::Cut)) => {
            shared.stats.metrics.stalled_clients.inc();
            let secs = shared.listener.idle_timeout.as_secs_f64();
            tracing::info!(peer = %peer, "connection cut: the client took nothing of a response, or sent nothing more of a request body, for IDLE_TIMEOUT ({secs} s); its WebORCA connection is freed");
        }
        Ok(_) => {}
        Err(e) => tracing::debug!(peer = %peer, "connection ended: {e}"),
    }
}

/// Serves a connection until it ends, shutting it down gracefully when the
/// watchdog says so: the shutdown, a refused client that got its page, or
/// IDLE_TIMEOUT. HTTP/2 gets GOAWAY (a page's stream still finishes),
/// HTTP/1.1 closes after the response. A client that takes nothing of its
/// responses for IDLE_TIMEOUT (also while finishing) is cut: the connection
/// is dropped with what was in flight, and `Finish::Cut` says so.
async fn watched<F, E>(
    serving: F,
    mut graceful: impl FnMut(std::pin::Pin<&mut F>),
    mut watchdog: Watchdog<'_>,
) -> Result<Option<Finish>, E>
where
    F: std::future::Future<Output = Result<(), E>>,
{
    tokio::pin!(serving);
    std::future::poll_fn(|cx| {
        loop {
            if let Poll::Ready(r) = serving.as_mut().poll(cx) {
                return Poll::Ready(r.map(|()| None));
            }
            match watchdog.poll_finish(cx) {
                None => return Poll::Pending,
                Some(Finish::Cut) => return Poll::Ready(Ok(Some(Finish::Cut))),
                // polled again so that the shutdown starts
                Some(Finish::Graceful) => graceful(serving.as_mut()),
            }
        }
    })
    .await
}
