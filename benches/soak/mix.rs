//! The mixed load: one task per stream of traffic, each paced at a modest
//! rate (the soak is about staying healthy, not about throughput), each
//! running until the stop token is cancelled, each counting every request in
//! the [`Tally`] instead of failing on it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::ClientConfig;
use tokio::time::{Interval, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::certs::Certs;
use crate::client::{self, Fail, Resume};
use crate::tally::{Kind, Outcome, Tally};

/// Keep-alive HTTP/1.1: connections, and requests per second on each.
pub const H1_CONNS: usize = 8;
pub const H1_RATE_PER_CONN: f64 = 30.0;
/// Keep-alive HTTP/2: connections, streams sent together on each, how often.
pub const H2_CONNS: usize = 2;
pub const H2_STREAMS: usize = 4;
pub const H2_EVERY: Duration = Duration::from_millis(100);
/// A new connection per request: full handshakes, and resumption offered
/// (alternately TLS 1.3 tickets and TLS 1.2 session IDs).
pub const FULL_EVERY: Duration = Duration::from_millis(333);
pub const RESUMED_EVERY: Duration = Duration::from_millis(333);
/// One upload every so often, cycling through these sizes (MiB).
pub const UPLOAD_EVERY: Duration = Duration::from_secs(5);
pub const UPLOAD_MIB: [u64; 4] = [8, 16, 32, 64];
/// One download every so often, cycling through these sizes (MiB).
pub const DOWNLOAD_EVERY: Duration = Duration::from_secs(5);
pub const DOWNLOAD_MIB: [u64; 3] = [1, 8, 32];
/// WebSockets held open all along, each echoing a message this often.
pub const WS_HELD: usize = 50;
pub const WS_MESSAGE_EVERY: Duration = Duration::from_secs(10);
/// Pause between the held WebSockets' first openings, and before reopening a dropped one.
const WS_OPEN_STAGGER: Duration = Duration::from_millis(40);
const WS_REOPEN_DELAY: Duration = Duration::from_millis(500);
/// A WebSocket opened, echoed once and closed, this often.
pub const WS_CHURN_EVERY: Duration = Duration::from_millis(500);
/// Each kind of refused client tries this often (alternately a full and a
/// resumed handshake).
pub const REFUSED_EVERY: Duration = Duration::from_secs(1);

/// The path refused clients ask for: the backend counts it, so the soak
/// knows if one ever got through.
pub const PROBE_PATH: &str = "/refused-probe";
/// The start of the backend's answer to `GET /`.
const SMALL_PREFIX: &[u8] = br#"{"Api_Result":"00""#;

/// The client configs, made once.
pub struct Configs {
    /// user1, HTTP/1.1, no resumption
    pub h1: Arc<ClientConfig>,
    /// user1, HTTP/2
    pub h2: Arc<ClientConfig>,
    /// user1, resumption by TLS 1.3 tickets, and by TLS 1.2 session IDs
    pub tickets: Arc<ClientConfig>,
    pub tls12: Arc<ClientConfig>,
    /// each refused kind, with resumption off and with tickets
    pub refused: Vec<(Kind, [Arc<ClientConfig>; 2])>,
    /// the client the reloads revoke while it holds connections open
    pub revokee: Arc<ClientConfig>,
}

impl Configs {
    pub fn new(certs: &Certs) -> Configs {
        let ca = &certs.ca_der;
        let h1: &[&[u8]] = &[b"http/1.1"];
        let refused = |kind, who| {
            (
                kind,
                [
                    client::config(ca, who, h1, Resume::Off),
                    client::config(ca, who, h1, Resume::Tickets),
                ],
            )
        };
        Configs {
            h1: client::config(ca, Some(&certs.user), h1, Resume::Off),
            h2: client::config(ca, Some(&certs.user), &[b"h2"], Resume::Off),
            tickets: client::config(ca, Some(&certs.user), h1, Resume::Tickets),
            tls12: client::config(ca, Some(&certs.user), h1, Resume::Tls12Ids),
            revokee: client::config(ca, Some(&certs.revokee), h1, Resume::Off),
            refused: vec![
                refused(Kind::NoCert, None),
                refused(Kind::ForeignCa, Some(&certs.foreign)),
                refused(Kind::Expired, Some(&certs.expired)),
                refused(Kind::Revoked, Some(&certs.revoked)),
            ],
        }
    }
}

/// What every load task shares.
pub struct Ctx {
    pub addr: SocketAddr,
    pub tally: Arc<Tally>,
    pub stop: CancellationToken,
    pub configs: Configs,
}

/// Ticks every `every`, the first after `phase`; a tick that is late delays the next.
fn pacer(every: Duration, phase: Duration) -> Interval {
    let mut iv = tokio::time::interval_at(tokio::time::Instant::now() + phase, every);
    iv.set_missed_tick_behavior(MissedTickBehavior::Delay);
    iv
}

/// The next tick, or false once the soak stops.
async fn tick(pace: &mut Interval, stop: &CancellationToken) -> bool {
    tokio::select! {
        _ = stop.cancelled() => false,
        _ = pace.tick() => true,
    }
}

/// A 200 with the backend's small answer is a success; anything else a failure.
fn judge_small(answer: &client::Answer) -> Result<(), Fail> {
    if answer.status != http::StatusCode::OK {
        return Err(answer.fail());
    }
    if !answer.body.starts_with(SMALL_PREFIX) {
        return Err(Fail::Io(format!(
            "200 with an unexpected body {:?}",
            String::from_utf8_lossy(&answer.body[..answer.body.len().min(60)])
        )));
    }
    Ok(())
}

/// Records one request of `kind` started at `started`.
fn record(tally: &Tally, kind: Kind, started: Instant, result: Result<(), Fail>) {
    match result {
        Ok(()) => tally.ok(kind),
        Err(f) => {
            tally.failed(kind, started, &f);
        }
    }
}

/// Keep-alive HTTP/1.1 on one connection, reconnecting when it breaks.
pub async fn keep_alive_h1(ctx: Arc<Ctx>, n: usize) {
    let every = Duration::from_secs_f64(1.0 / H1_RATE_PER_CONN);
    let mut pace = pacer(every, every.mul_f64(n as f64 / H1_CONNS as f64));
    let mut conn: Option<client::H1> = None;
    while tick(&mut pace, &ctx.stop).await {
        let started = Instant::now();
        let send = match conn.as_mut() {
            Some(send) => send,
            None => match client::connect(ctx.addr, &ctx.configs.h1).await {
                Ok(c) => match client::h1(c).await {
                    Ok(send) => conn.insert(send),
                    Err(f) => {
                        ctx.tally.failed(Kind::KeepAliveH1, started, &f);
                        continue;
                    }
                },
                Err(f) => {
                    ctx.tally.failed(Kind::KeepAliveH1, started, &f);
                    continue;
                }
            },
        };
        let result = client::get_h1(send, ctx.addr, "/").await;
        if result.is_err() {
            conn = None; // broken: the next tick reconnects
        }
        record(
            &ctx.tally,
            Kind::KeepAliveH1,
            started,
            result.and_then(|a| judge_small(&a)),
        );
    }
}

/// Keep-alive HTTP/2: [`H2_STREAMS`] requests in flight together on one connection.
pub async fn keep_alive_h2(ctx: Arc<Ctx>, n: usize) {
    let mut pace = pacer(H2_EVERY, H2_EVERY.mul_f64(n as f64 / H2_CONNS as f64));
    let mut conn: Option<client::H2> = None;
    while tick(&mut pace, &ctx.stop).await {
        let started = Instant::now();
        let send = match conn.as_ref() {
            Some(send) => send.clone(),
            None => {
                let opened = match client::connect(ctx.addr, &ctx.configs.h2).await {
                    Ok(c) => client::h2(c).await,
                    Err(f) => Err(f),
                };
                match opened {
                    Ok(send) => conn.insert(send).clone(),
                    Err(f) => {
                        ctx.tally.failed(Kind::KeepAliveH2, started, &f);
                        continue;
                    }
                }
            }
        };
        let streams = (0..H2_STREAMS).map(|_| {
            let mut send = send.clone();
            let addr = ctx.addr;
            async move { client::get_h2(&mut send, addr, "/").await }
        });
        for result in futures_util::future::join_all(streams).await {
            if matches!(result, Err(Fail::Io(_) | Fail::Tls(_))) {
                conn = None;
            }
            record(
                &ctx.tally,
                Kind::KeepAliveH2,
                started,
                result.and_then(|a| judge_small(&a)),
            );
        }
    }
}

/// A new connection per `GET /`, cycling through `configs`.
pub async fn new_conns(
    ctx: Arc<Ctx>,
    kind: Kind,
    configs: Vec<Arc<ClientConfig>>,
    every: Duration,
) {
    let mut pace = pacer(every, Duration::ZERO);
    let mut i = 0usize;
    while tick(&mut pace, &ctx.stop).await {
        let config = &configs[i % configs.len()];
        i += 1;
        let started = Instant::now();
        let result = match client::one_shot(ctx.addr, config, "/").await {
            Ok((answer, resumed)) => {
                if resumed {
                    ctx.tally.resumed(kind);
                }
                judge_small(&answer)
            }
            Err(f) => Err(f),
        };
        record(&ctx.tally, kind, started, result);
    }
}

/// An upload every [`UPLOAD_EVERY`]; the backend must have received every byte.
pub async fn uploads(ctx: Arc<Ctx>) {
    let mut pace = pacer(UPLOAD_EVERY, UPLOAD_EVERY / 2);
    let mut i = 0usize;
    while tick(&mut pace, &ctx.stop).await {
        let bytes = UPLOAD_MIB[i % UPLOAD_MIB.len()] << 20;
        i += 1;
        let started = Instant::now();
        let result = client::upload(ctx.addr, &ctx.configs.h1, bytes)
            .await
            .and_then(|a| {
                let expected = format!("{{\"received\":{bytes}}}");
                if a.status != http::StatusCode::OK {
                    Err(a.fail())
                } else if a.body != expected.as_bytes() {
                    Err(Fail::Io(format!(
                        "upload of {bytes} answered {:?}",
                        String::from_utf8_lossy(&a.body)
                    )))
                } else {
                    Ok(())
                }
            });
        record(&ctx.tally, Kind::Upload, started, result);
    }
}

/// A download every [`DOWNLOAD_EVERY`]; every byte must arrive.
pub async fn downloads(ctx: Arc<Ctx>) {
    let mut pace = pacer(DOWNLOAD_EVERY, Duration::ZERO);
    let mut i = 0usize;
    while tick(&mut pace, &ctx.stop).await {
        let bytes = DOWNLOAD_MIB[i % DOWNLOAD_MIB.len()] << 20;
        i += 1;
        let started = Instant::now();
        let result = client::download(ctx.addr, &ctx.configs.h1, bytes)
            .await
            .and_then(|a| {
                if a.status != http::StatusCode::OK {
                    Err(a.fail())
                } else if a.len != bytes {
                    Err(Fail::Io(format!("download got {} of {bytes} bytes", a.len)))
                } else {
                    Ok(())
                }
            });
        record(&ctx.tally, Kind::Download, started, result);
    }
}

/// How one held WebSocket fared.
#[derive(Clone, Copy, Debug, Default)]
pub struct Held {
    /// dropped by a backend restart (expected: the backend held its other end)
    pub dropped_by_restart: u64,
    /// dropped at any other time: an error
    pub dropped_otherwise: u64,
    pub reopened: u64,
    /// open at the end, and its last echo and Close handshake went through
    pub open_at_end: bool,
}

/// One of the WebSockets held open the whole time: a message echoed every
/// [`WS_MESSAGE_EVERY`]; when it drops, it is reopened.
pub async fn ws_held(ctx: Arc<Ctx>, n: usize) -> Held {
    let mut held = Held::default();
    let stagger = WS_OPEN_STAGGER.mul_f64(n as f64);
    tokio::select! {
        _ = ctx.stop.cancelled() => return held,
        _ = tokio::time::sleep(stagger) => {}
    }
    let phase = WS_MESSAGE_EVERY.mul_f64(n as f64 / WS_HELD as f64);
    let mut pace = pacer(WS_MESSAGE_EVERY, phase);
    let mut ws: Option<client::Ws> = None;
    let mut opened_once = false;
    let mut seq = 0u64;
    while !ctx.stop.is_cancelled() {
        let Some(open) = ws.as_mut() else {
            let started = Instant::now();
            match client::ws_open(ctx.addr, &ctx.configs.h1).await {
                Ok(w) => {
                    if opened_once {
                        held.reopened += 1;
                        ctx.tally.ok(Kind::WsHeld);
                    }
                    opened_once = true;
                    ws = Some(w);
                }
                Err(f) => {
                    ctx.tally.failed(Kind::WsHeld, started, &f);
                    tokio::select! {
                        _ = ctx.stop.cancelled() => {}
                        _ = tokio::time::sleep(WS_REOPEN_DELAY) => {}
                    }
                }
            }
            continue;
        };
        tokio::select! {
            _ = ctx.stop.cancelled() => {}
            why = client::ws_closed(open) => {
                // the proxy ended it: only a backend restart may do that
                let outcome = ctx.tally.failed(Kind::WsHeld, Instant::now(), &why);
                if outcome == Outcome::BackendRestart {
                    held.dropped_by_restart += 1;
                } else {
                    held.dropped_otherwise += 1;
                }
                ws = None;
            }
            _ = pace.tick() => {
                seq += 1;
                let started = Instant::now();
                match client::ws_echo(open, &format!("held {n} message {seq}")).await {
                    Ok(()) => ctx.tally.ok(Kind::WsHeld),
                    Err(f) => {
                        let outcome = ctx.tally.failed(Kind::WsHeld, started, &f);
                        if outcome == Outcome::BackendRestart {
                            held.dropped_by_restart += 1;
                        } else {
                            held.dropped_otherwise += 1;
                        }
                        ws = None;
                    }
                }
            }
        }
    }
    if let Some(mut open) = ws {
        let last = client::ws_echo(&mut open, &format!("held {n} last message")).await;
        let closed = match last {
            Ok(()) => client::ws_close(open).await,
            Err(f) => Err(f),
        };
        match closed {
            Ok(()) => {
                ctx.tally.ok(Kind::WsHeld);
                held.open_at_end = true;
            }
            Err(f) => ctx.tally.error(
                Kind::WsHeld,
                &format!("held WebSocket {n} at the end: {}", f.describe()),
            ),
        }
    }
    held
}

/// WebSockets opened, echoed once and closed, one every [`WS_CHURN_EVERY`].
pub async fn ws_churn(ctx: Arc<Ctx>) {
    let mut pace = pacer(WS_CHURN_EVERY, WS_CHURN_EVERY / 3);
    let mut seq = 0u64;
    while tick(&mut pace, &ctx.stop).await {
        seq += 1;
        let started = Instant::now();
        let result = async {
            let mut ws = client::ws_open(ctx.addr, &ctx.configs.h1).await?;
            client::ws_echo(&mut ws, &format!("churn {seq}")).await?;
            client::ws_close(ws).await
        }
        .await;
        record(&ctx.tally, Kind::WsChurn, started, result);
    }
}

/// One kind of refused client asking for [`PROBE_PATH`] on a new connection
/// every [`REFUSED_EVERY`], alternately with a full and a resumed handshake.
/// The 403 page with the right X-Client-Cert-Error, or a TLS refusal, is
/// the expected answer; a 2xx is a security failure.
pub async fn refused(ctx: Arc<Ctx>, kind: Kind, configs: [Arc<ClientConfig>; 2], phase: Duration) {
    let expected = kind.refusal().unwrap_or("?");
    let mut pace = pacer(REFUSED_EVERY, phase);
    let mut i = 0usize;
    while tick(&mut pace, &ctx.stop).await {
        let config = &configs[i % 2];
        i += 1;
        let started = Instant::now();
        match client::one_shot(ctx.addr, config, PROBE_PATH).await {
            Ok((answer, resumed)) => {
                if resumed {
                    ctx.tally.resumed(kind);
                }
                if answer.status.is_success() {
                    ctx.tally
                        .let_in(kind, &format!("answered {}", answer.status));
                } else if answer.status == http::StatusCode::FORBIDDEN
                    && answer.cert_error.as_deref() == Some(expected)
                {
                    ctx.tally.refused(kind, false);
                } else {
                    ctx.tally.error(
                        kind,
                        &format!(
                            "expected 403 with X-Client-Cert-Error: {expected}, got {}",
                            answer.fail().describe()
                        ),
                    );
                }
            }
            Err(Fail::Tls(_)) => ctx.tally.refused(kind, true),
            Err(f) => {
                ctx.tally.failed(kind, started, &f);
            }
        }
    }
}
