//! Running the proxy as a program: the start-up sequence with WebORCA's log
//! lines, the signals (SIGHUP reload, SIGTERM/SIGINT drain), and the mapping of
//! failures to exit codes (78 for anything the operator must fix in the
//! config or certificates).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::config::Config;
use crate::load::{self, Loaded};
use crate::log::LogHandle;
use crate::observe::console::GuardView;
use crate::reload::Reloader;
use crate::server::{Handle, Server};
use crate::status::Stats;
use crate::tls::Sessions;

pub use crate::load::{EXIT_CONFIG, Failure, check_files, load_config, load_tls, warn_expiring};

/// Runs the proxy from the config file at `path` until SIGTERM/SIGINT.
pub async fn run(path: PathBuf, log: Arc<LogHandle>) -> Result<(), Failure> {
    let config = load_config(&path)?;
    let started = start(config, &log)?;
    serve(started, path, log).await;
    Ok(())
}

/// A proxy through the start-up sequence: files checked, TLS loaded, ports bound.
pub struct Started {
    /// the bound proxy, not yet serving
    server: Server,
    /// session resumption state, kept across reloads
    sessions: Sessions,
    /// the config it started with, which the reloader keeps to compare
    config: Config,
    /// installed before the ports are bound
    signals: Signals,
}

impl Started {
    /// The bound addresses, with the real port where LISTEN asked for port 0.
    pub fn local_addrs(&self) -> Vec<std::net::SocketAddr> {
        self.server.local_addrs()
    }
}

/// The start-up sequence after the config is read, with WebORCA's log lines:
/// LOG_FILE, `KEY ...file exists`, TLS, `Server Mode: HTTPS`, expiry warnings,
/// bind, one `listening on` line per address (and the status address).
/// Must be called inside a tokio runtime.
pub fn start(config: Config, log: &LogHandle) -> Result<Started, Failure> {
    if let Some(file) = &config.logging().log_file {
        log.reopen(Some(file))
            .map_err(|e| Failure::Config(format!("LOG_FILE ({}): cannot open for appending: {e}; create its directory or make it writable by the service user", file.display())))?;
    }
    crate::log::set_format(config.log_format);
    let sessions =
        Sessions::new().map_err(|e| Failure::Runtime(format!("TLS session setup failed: {e}")))?;
    let Loaded { config, tls } = load::load_from(config, &sessions, &mut load::Start)?;
    let ca = tls.ca_subjects.join(", ");
    let parts = config.server_parts();
    let backend = parts.backend.url.url.clone();
    let sig = Signals::install()?;
    let admins = config.admin_cn.clone();
    let server = Server::bind(parts, tls).map_err(Failure::Runtime)?;
    server
        .handle()
        .stats()
        .console
        .set_admins(admins.as_deref());
    for addr in server.local_addrs() {
        tracing::info!(
            "listening on {addr}, forwarding to {backend}, client certificates from CA {ca}"
        );
    }
    if let Some(addr) = server.status_addr() {
        tracing::info!("status on http://{addr}/status (also /healthz, /readyz, /metrics)");
    }
    Ok(Started {
        server,
        sessions,
        config,
        signals: sig,
    })
}

/// Serves until SIGTERM/SIGINT, then drains; SIGHUP (and changed files) reload from `path`.
pub async fn serve(started: Started, path: PathBuf, log: Arc<LogHandle>) {
    let Started {
        server,
        sessions,
        config,
        signals: sig,
    } = started;
    notify(&[
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status("serving"),
    ]);
    let handle = server.handle();
    let backend_port = config.backend.port;
    let reloader = Reloader::new(handle.clone(), path, log, sessions, config);
    // Weak: the console lives in the server's state, which the reloader
    // holds; a strong reference would keep both (and the log writer the
    // reloader holds, so the last lines would never be flushed) past the end.
    let button = Arc::downgrade(&reloader);
    handle.stats().console.set_reload(Arc::new(move |why| {
        let reloader = button.upgrade();
        Box::pin(async move {
            let Some(reloader) = reloader else {
                return false;
            };
            notify(&[sd_notify::NotifyState::Reloading]);
            let ok = reloader.reload(&why).await;
            notify(&[sd_notify::NotifyState::Ready]);
            ok
        })
    }));
    tokio::spawn(watch_guard(handle.stats(), backend_port));
    tokio::spawn(reloader.clone().watch());
    tokio::spawn(reloader.clone().expiry_checks());
    tokio::spawn(signals(sig, handle, reloader));
    server.run().await;
    tracing::info!("stopped");
}

/// The signals the proxy answers to, installed before it reports itself ready
/// (a SIGHUP arriving earlier would otherwise kill it).
struct Signals {
    hup: Signal,
    term: Signal,
    int: Signal,
}

impl Signals {
    fn install() -> Result<Signals, Failure> {
        let install = |kind| {
            signal(kind)
                .map_err(|e| Failure::Runtime(format!("cannot install signal handlers: {e}")))
        };
        Ok(Signals {
            hup: install(SignalKind::hangup())?,
            term: install(SignalKind::terminate())?,
            int: install(SignalKind::interrupt())?,
        })
    }
}

async fn signals(mut sig: Signals, handle: Handle, reloader: Arc<Reloader>) {
    let Signals { hup, term, int } = &mut sig;
    loop {
        tokio::select! {
            _ = hup.recv() => {
                notify(&[sd_notify::NotifyState::Reloading]);
                reloader.reload("SIGHUP").await;
                notify(&[sd_notify::NotifyState::Ready]);
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    tracing::info!("shutting down: no new connections, finishing requests in flight");
    notify(&[sd_notify::NotifyState::Stopping]);
    handle.shutdown();
}

/// Tells systemd (Type=notify) where the service is; a no-op outside systemd.
fn notify(state: &[sd_notify::NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(state) {
        tracing::warn!("cannot notify systemd (NOTIFY_SOCKET): {e}");
    }
}

/// How often the console's view of the backend guard is renewed.
const GUARD_LOOK_EVERY: Duration = Duration::from_secs(60);
/// Longest wait for `nft` and the socket tables: the console shows the last
/// answer and never waits for a slow command.
const GUARD_LOOK_LIMIT: Duration = Duration::from_secs(5);

/// Looks at the backend guard (`nft list table`) and where the backend port
/// listens (the kernel's socket tables, as `check` does) now and every
/// minute, off the runtime, and gives the console what it saw.
async fn watch_guard(stats: Arc<Stats>, port: u16) {
    let mut every = tokio::time::interval(GUARD_LOOK_EVERY);
    loop {
        every.tick().await;
        let look = tokio::task::spawn_blocking(move || look_at_guard(port));
        let view = match tokio::time::timeout(GUARD_LOOK_LIMIT, look).await {
            Ok(Ok(view)) => view,
            Ok(Err(e)) => guard_unknown(port, format!("the look at the guard failed: {e}")),
            Err(_) => guard_unknown(
                port,
                format!("nft did not answer within {} s", GUARD_LOOK_LIMIT.as_secs()),
            ),
        };
        stats.console.set_guard(view);
    }
}

fn guard_unknown(port: u16, detail: String) -> GuardView {
    GuardView {
        loaded: None,
        detail,
        exposed: Vec::new(),
        port,
        at: chrono::Utc::now(),
    }
}

fn look_at_guard(port: u16) -> GuardView {
    use crate::guard::State;
    let exposed = crate::check::listening_sockets()
        .into_iter()
        .filter(|(ip, p)| *p == port && !ip.is_loopback())
        .map(|(ip, _)| ip.to_string())
        .collect();
    let table = crate::guard::TABLE;
    let (loaded, detail) = match crate::guard::state(port) {
        State::Loaded => (
            Some(true),
            format!("nftables table inet {table} drops port {port} from every interface but lo"),
        ),
        State::OtherPort(ports) => (
            Some(false),
            format!("nftables table inet {table} is loaded for port(s) {ports:?}, not {port}"),
        ),
        State::NotLoaded => (Some(false), format!("no nftables table inet {table}")),
        State::Unknown(why) => (
            None,
            format!("nft cannot tell: {}", crate::text::log_safe(&why)),
        ),
    };
    GuardView {
        loaded,
        detail,
        exposed,
        port,
        at: chrono::Utc::now(),
    }
}
