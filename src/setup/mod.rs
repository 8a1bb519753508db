//! `weborca-mtls-proxy setup` and `setup --rollback`: move WebORCA from its own
//! TLS to plain HTTP on a loopback-guarded port behind the proxy, and back, in
//! one step each (SPEC "Setup and rollback"). Everything is read and checked
//! first; only then are the files written (by rename, after a backup) and the
//! services restarted. [`jma_conf`] holds the text edits, [`guard`] the nftables
//! guard, [`install`] `install-cert`, [`install_crl`] `install-crl`, [`fsutil`] what they share.

pub mod fsutil;
pub use crate::guard;
pub mod install;
pub mod install_crl;
pub mod jma_conf;
pub mod wire;

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fsutil::{Change, Program, Root};

/// WebORCA's config file.
pub const DEFAULT_WEBORCA_CONF: &str = "/opt/jma/weborca/conf/jma-receipt.conf";
/// WebORCA's unit.
pub const WEBORCA_UNIT: &str = "jma-receipt-weborca.service";
/// The proxy's unit.
pub const PROXY_UNIT: &str = "weborca-mtls-proxy.service";
/// A drop-in for WebORCA's unit: it starts only with the guard in force.
pub const WEBORCA_DROP_IN: &str =
    "/etc/systemd/system/jma-receipt-weborca.service.d/weborca-mtls-proxy-guard.conf";
/// What the drop-in says.
const DROP_IN_TEXT: &str = "# Written by `weborca-mtls-proxy setup`, removed by `setup --rollback`:\n\
# WebORCA speaks plain HTTP behind the proxy, so it runs only while the\n\
# backend guard keeps its port from the LAN.\n\
[Unit]\n\
Requires=weborca-mtls-proxy-guard.service\n\
After=weborca-mtls-proxy-guard.service\n";
/// The port WebORCA listens on when HTTP_PORT is not set.
const WEBORCA_DEFAULT_PORT: u16 = 8000;
/// How long setup waits for the proxy and WebORCA after starting them.
const START_WAIT: Duration = Duration::from_secs(60);

/// The options of `setup`.
#[derive(Debug, Clone, clap::Args)]
pub struct SetupArgs {
    /// WebORCA's config file
    #[arg(long, default_value = DEFAULT_WEBORCA_CONF)]
    pub weborca_conf: PathBuf,
    /// the loopback port WebORCA moves to, in plain HTTP
    #[arg(long, default_value_t = 8001)]
    pub backend_port: u16,
    /// a host name or address clients use to reach this server (repeatable)
    #[arg(long)]
    pub host: Vec<String>,
    /// undo setup: WebORCA back on its own port with its own TLS
    #[arg(long)]
    pub rollback: bool,
    /// print the changes (unified diffs) and commands, change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// write the files but run no systemctl
    #[arg(long)]
    pub no_restart: bool,
    /// take every path under this folder (packaging, tests)
    #[arg(long)]
    pub root: Option<PathBuf>,
}

/// Why a command stopped: the message (naming the file and the fix) and the exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stop {
    /// what went wrong and what to do
    pub message: String,
    /// 78 (EX_CONFIG) for a config or certificate problem, 1 otherwise
    pub code: u8,
}

impl Stop {
    /// A config or certificate problem (exit 78).
    pub fn config(message: impl Into<String>) -> Stop {
        Stop {
            message: message.into(),
            code: 78,
        }
    }
    /// Any other problem (exit 1).
    pub fn other(message: impl Into<String>) -> Stop {
        Stop {
            message: message.into(),
            code: 1,
        }
    }
}

/// Refuses to change the real system without root.
pub fn require_root(command: &str, root: &Option<PathBuf>, dry_run: bool) -> Result<(), Stop> {
    if root.is_none() && !dry_run && fsutil::effective_uid() != Some(0) {
        return Err(Stop::other(format!(
            "{command} changes system files and services and needs root: run `sudo weborca-mtls-proxy {command} …` (or see what it would do with --dry-run)"
        )));
    }
    Ok(())
}

/// Whether `systemctl` acts on the system being changed: not under `--root`
/// unless `SYSTEMCTL` names a program for it (a stand-in, or one that enters the root).
pub fn systemctl_applies(root: &Option<PathBuf>) -> bool {
    root.is_none() || std::env::var_os("SYSTEMCTL").is_some_and(|v| !v.is_empty())
}

/// Runs `setup` (or `setup --rollback`) with the proxy's config at `config_path`.
pub fn run(args: &SetupArgs, config_path: &Path) -> Result<(), Stop> {
    require_root("setup", &args.root, args.dry_run)?;
    if !args.no_restart && !systemctl_applies(&args.root) {
        println!(
            "--root without SYSTEMCTL: no systemctl is run (it would act on this machine, not on the root)"
        );
        let args = SetupArgs {
            no_restart: true,
            ..args.clone()
        };
        return run(&args, config_path);
    }
    let root = Root {
        dir: args.root.clone(),
    };
    if args.rollback {
        return rollback(args, &root);
    }
    let plan = plan(args, &root, config_path)?;
    if args.dry_run {
        return dry_run(&plan.changes, &setup_commands(&plan), args.no_restart);
    }
    let changed: Vec<&Change> = plan.changes.iter().filter(|c| c.is_change()).collect();
    fsutil::apply_all(&changed)
        .map_err(|m| Stop::other(format!("{m}; nothing else was changed")))?;
    for c in &changed {
        println!(
            "changed {} (the old one is kept as {}{})",
            c.shown.display(),
            c.shown.display(),
            fsutil::BACKUP_SUFFIX
        );
    }
    if plan.changes.iter().all(|c| !c.is_change()) {
        println!("nothing to change: WebORCA is already set up behind the proxy");
    }
    if !args.no_restart {
        start_services(&plan).map_err(|m| {
            Stop::other(format!(
                "{m}\nThe files were changed; undo everything with: sudo weborca-mtls-proxy setup --rollback"
            ))
        })?;
        println!(
            "the proxy is ready and WebORCA answers on 127.0.0.1:{}",
            plan.port
        );
    } else {
        println!(
            "--no-restart: no service was restarted; to start: sudo systemctl daemon-reload && sudo systemctl enable --now {} && sudo systemctl restart {WEBORCA_UNIT} && sudo systemctl enable --now {PROXY_UNIT}",
            guard::UNIT
        );
    }
    println!("to go back to WebORCA's own TLS: sudo weborca-mtls-proxy setup --rollback");
    Ok(())
}

/// What setup will do, decided before anything is written.
struct Plan {
    port: u16,
    /// proxy.conf, jma-receipt.conf, guard.nft, WebORCA's drop-in
    changes: Vec<Change>,
}

fn read_text(root: &Root, shown: &Path, what: &str, fix: &str) -> Result<String, Stop> {
    std::fs::read(root.path(shown))
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .map_err(|e| {
            Stop::config(format!(
                "cannot read {what} {}: {e}; {fix}",
                shown.display()
            ))
        })
}

fn plan(args: &SetupArgs, root: &Root, config_path: &Path) -> Result<Plan, Stop> {
    let port = args.backend_port;
    let jma_path = &args.weborca_conf;
    let jma_text = read_text(
        root,
        jma_path,
        "WebORCA's config",
        "give its path with --weborca-conf",
    )?;
    // 1. The three keys and HTTP_PORT, with the proxy's own parser.
    let weborca = jma_conf::read(&jma_text, jma_path);
    let missing: Vec<&str> = jma_conf::TLS_KEYS
        .iter()
        .zip(&weborca.keys)
        .filter(|(_, v)| v.as_ref().is_none_or(|(v, _)| v.is_empty()))
        .map(|(k, _)| *k)
        .collect();
    if !missing.is_empty() {
        return Err(Stop::config(format!(
            "{} not set in {}: setup moves WebORCA's own TLS (SERVER_CRT, SERVER_PEM, CA_CRT, as in WebORCA's SSL client-auth guide) to the proxy; set them there first, or write {} by hand (README, \"Putting it in front of WebORCA\")",
            missing.join(", "),
            jma_path.display(),
            config_path.display()
        )));
    }
    let folder = jma_path.parent().unwrap_or(Path::new("/"));
    let paths: Vec<PathBuf> = weborca
        .keys
        .iter()
        .flatten()
        .map(|(v, _)| folder.join(v))
        .collect();
    let listen_port = match &weborca.http_port {
        None => WEBORCA_DEFAULT_PORT,
        Some((v, line)) => v.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| {
            Stop::config(format!(
                "HTTP_PORT: invalid value {v:?} in {} line {line}: expected a port number",
                jma_path.display()
            ))
        })?,
    };
    if listen_port == port {
        return Err(Stop::config(format!(
            "HTTP_PORT in {} is {port}, the port WebORCA is to move to: choose another with --backend-port",
            jma_path.display()
        )));
    }
    for (key, path) in jma_conf::TLS_KEYS.iter().zip(&paths) {
        if !root.path(path).is_file() {
            return Err(Stop::config(format!(
                "{key} ...file does not exist: {} (named in {}); put the file there or correct {key}",
                path.display(),
                jma_path.display()
            )));
        }
    }
    // 3 (decided now). proxy.conf with the keys; the others are kept.
    let old_proxy = match std::fs::read(root.path(config_path)) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => {
            return Err(Stop::config(format!(
                "cannot read {}: {e}",
                config_path.display()
            )));
        }
    };
    let backend_url = format!("http://127.0.0.1:{port}");
    let listen = format!("[::]:{listen_port}");
    let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    let mut keys: Vec<(&str, Option<&str>)> = vec![
        ("SERVER_CRT", Some(&shown[0])),
        ("SERVER_PEM", Some(&shown[1])),
        ("CA_CRT", Some(&shown[2])),
        ("BACKEND_URL", Some(&backend_url)),
    ];
    if listen_port != WEBORCA_DEFAULT_PORT {
        // Clients keep the address they know: the proxy takes WebORCA's old port.
        keys.push(("LISTEN", Some(&listen)));
    }
    let raw_proxy = crate::config::parse_raw(&old_proxy, config_path);
    if raw_proxy.entries.iter().any(|e| e.key == "SERVER_P12") {
        keys.push(("SERVER_P12", None));
    }
    let new_proxy = jma_conf::set_keys(&old_proxy, config_path, &keys)
        .map_err(|e| Stop::config(format!("{}: {e}", config_path.display())))?;
    let loaded = crate::config::parse(&new_proxy, config_path).map_err(|e| {
        Stop::config(format!(
            "the new {} would not work: {e}",
            config_path.display()
        ))
    })?;
    // 2. The certificate part of `check`, on the files as they are under the root.
    let mut rooted = loaded.config.clone();
    for p in [
        &mut rooted.server_crt,
        &mut rooted.server_pem,
        &mut rooted.ca_crt,
        &mut rooted.server_pass_file,
    ]
    .into_iter()
    .flatten()
    {
        *p = root.path(p);
    }
    for p in &mut rooted.ca_crl {
        *p = root.path(p);
    }
    let lines = crate::check::certificates(&rooted, &args.host);
    let failed = lines.iter().any(|l| l.level == crate::check::Level::Fail);
    for l in &lines {
        println!("{l}");
    }
    if failed {
        return Err(Stop::config(
            "setup stopped before changing anything: fix the FAIL lines above, then run it again",
        ));
    }
    let new_jma = jma_conf::apply(&jma_text, jma_path, port);
    // The guard's script and the drop-in that makes WebORCA require the guard come
    // first, jma-receipt.conf (WebORCA moved to plain HTTP) last: if a write fails
    // half-way, WebORCA is never left on plain HTTP without its guard.
    let changes = vec![
        Change::new(
            root,
            Path::new(guard::SCRIPT_PATH),
            guard::script(port).into_bytes(),
            0o644,
        )
        .map_err(|e| read_stop(Path::new(guard::SCRIPT_PATH), e))?,
        Change::new(
            root,
            Path::new(WEBORCA_DROP_IN),
            DROP_IN_TEXT.as_bytes().to_vec(),
            0o644,
        )
        .map_err(|e| read_stop(Path::new(WEBORCA_DROP_IN), e))?,
        Change::new(root, config_path, new_proxy.into_bytes(), 0o644)
            .map_err(|e| read_stop(config_path, e))?,
        Change::new(root, jma_path, new_jma.into_bytes(), 0o644)
            .map_err(|e| read_stop(jma_path, e))?,
    ];
    Ok(Plan { port, changes })
}

fn read_stop(path: &Path, e: std::io::Error) -> Stop {
    Stop::other(format!("cannot read {}: {e}", path.display()))
}

/// The systemctl commands of setup, for `--dry-run` (those run depend on what changed).
fn setup_commands(plan: &Plan) -> Vec<String> {
    let sc = Program::systemctl();
    let mut cmds = vec![
        sc.shown(&["daemon-reload"]),
        sc.shown(&["enable", "--now", guard::UNIT]),
    ];
    if plan.changes[2].is_change() {
        cmds.push(sc.shown(&["restart", guard::UNIT]));
    }
    cmds.push(Program::nft().shown(&["list", "table", "inet", guard::TABLE]));
    cmds.push(sc.shown(&["restart", WEBORCA_UNIT]));
    cmds.push(sc.shown(&["enable", PROXY_UNIT]));
    cmds.push(sc.shown(&[
        if plan.changes[0].is_change() {
            "restart"
        } else {
            "start"
        },
        PROXY_UNIT,
    ]));
    cmds
}

fn dry_run(changes: &[Change], commands: &[String], no_restart: bool) -> Result<(), Stop> {
    println!("--dry-run: nothing is changed. setup would:");
    for c in changes.iter().filter(|c| c.is_change()) {
        print!("{}", c.diff());
    }
    if changes.iter().all(|c| !c.is_change()) {
        println!("(no file changes)");
    }
    if !no_restart {
        for c in commands {
            println!("run: {c}");
        }
    }
    Ok(())
}

fn start_services(plan: &Plan) -> Result<(), String> {
    let sc = Program::systemctl();
    let run = |args: &[&str]| -> Result<(), String> {
        println!("run: {}", sc.shown(args));
        sc.run(args).map(|_| ())
    };
    run(&["daemon-reload"])?;
    run(&["enable", "--now", guard::UNIT])?;
    if plan.changes[2].is_change() {
        run(&["restart", guard::UNIT])?;
    }
    match guard::state(plan.port) {
        guard::State::Loaded => println!(
            "the guard drops port {} from other interfaces than lo",
            plan.port
        ),
        other => {
            return Err(format!(
                "the guard is not in force for port {} ({other:?}); WebORCA was not restarted; see journalctl -u {}",
                plan.port,
                guard::UNIT
            ));
        }
    }
    let backend = SocketAddr::from((Ipv4Addr::LOCALHOST, plan.port));
    if plan.changes[1].is_change()
        || crate::check::http_probe(backend, &backend.to_string()).is_err()
    {
        run(&["restart", WEBORCA_UNIT])?;
    }
    run(&["enable", PROXY_UNIT])?;
    run(&[
        if plan.changes[0].is_change() {
            "restart"
        } else {
            "start"
        },
        PROXY_UNIT,
    ])?;
    wait_until(START_WAIT, || {
        let active = sc.run(&["is-active", PROXY_UNIT]).is_ok();
        let answers = crate::check::http_probe(backend, &backend.to_string()).is_ok();
        match (active, answers) {
            (true, true) => Ok(()),
            (false, _) => Err(format!(
                "{PROXY_UNIT} is not active; see journalctl -u {PROXY_UNIT}"
            )),
            (true, false) => Err(format!(
                "WebORCA does not answer plain HTTP on {backend}; see journalctl -u {WEBORCA_UNIT}"
            )),
        }
    })
}

/// Retries `probe` (every 250 ms, no readiness signal exists across services)
/// until it succeeds or `limit` passes; then its last error.
fn wait_until(
    limit: Duration,
    mut probe: impl FnMut() -> Result<(), String>,
) -> Result<(), String> {
    let start = Instant::now();
    loop {
        match probe() {
            Ok(()) => return Ok(()),
            Err(e) if start.elapsed() >= limit => {
                return Err(format!("after {} s: {e}", limit.as_secs()));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(250)),
        }
    }
}

fn rollback(args: &SetupArgs, root: &Root) -> Result<(), Stop> {
    let jma_path = &args.weborca_conf;
    let text = read_text(
        root,
        jma_path,
        "WebORCA's config",
        "give its path with --weborca-conf",
    )?;
    let restored = jma_conf::rollback(&text);
    let weborca = jma_conf::read(&restored, jma_path);
    let own_port = weborca
        .http_port
        .and_then(|(v, _)| v.parse::<u16>().ok())
        .unwrap_or(WEBORCA_DEFAULT_PORT);
    let change = Change::new(root, jma_path, restored.into_bytes(), 0o644)
        .map_err(|e| Stop::other(format!("cannot read {}: {e}", jma_path.display())))?;
    let sc = Program::systemctl();
    let drop_in = root.path(Path::new(WEBORCA_DROP_IN));
    let has_drop_in = drop_in.exists();
    let mut commands: Vec<Vec<&str>> = vec![vec!["disable", "--now", PROXY_UNIT]];
    if has_drop_in {
        // Without the drop-in first, stopping the guard would stop WebORCA too.
        commands.push(vec!["daemon-reload"]);
    }
    if change.is_change() || has_drop_in {
        commands.push(vec!["restart", WEBORCA_UNIT]);
    }
    commands.push(vec!["disable", "--now", guard::UNIT]);
    if args.dry_run {
        let mut shown: Vec<String> = commands.iter().map(|c| sc.shown(c)).collect();
        if has_drop_in {
            shown.insert(0, format!("remove {WEBORCA_DROP_IN}"));
        }
        return dry_run(std::slice::from_ref(&change), &shown, args.no_restart);
    }
    if change.is_change() {
        change
            .apply()
            .map_err(|e| Stop::other(format!("cannot write {}: {e}", jma_path.display())))?;
        println!(
            "restored WebORCA's own TLS in {} (the set-up one is kept as {}{})",
            jma_path.display(),
            jma_path.display(),
            fsutil::BACKUP_SUFFIX
        );
    } else {
        println!("{} holds no setup changes", jma_path.display());
    }
    if has_drop_in {
        std::fs::remove_file(&drop_in)
            .map_err(|e| Stop::other(format!("cannot remove {WEBORCA_DROP_IN}: {e}")))?;
        println!("removed {WEBORCA_DROP_IN} (WebORCA no longer needs the guard)");
    }
    if args.no_restart {
        println!(
            "--no-restart: no service was restarted; to finish: sudo systemctl disable --now {PROXY_UNIT} && sudo systemctl daemon-reload && sudo systemctl restart {WEBORCA_UNIT} && sudo systemctl disable --now {}",
            guard::UNIT
        );
        return Ok(());
    }
    for c in &commands {
        println!("run: {}", sc.shown(c));
        sc.run(c).map_err(Stop::other)?;
    }
    let own = SocketAddr::from((Ipv4Addr::LOCALHOST, own_port));
    wait_until(START_WAIT, || {
        TcpStream::connect_timeout(&own, Duration::from_secs(2))
            .map(drop)
            .map_err(|e| format!("WebORCA does not answer on port {own_port}: {e}; see journalctl -u {WEBORCA_UNIT}"))
    })
    .map_err(Stop::other)?;
    println!("WebORCA answers on its own port {own_port} again, with its own TLS");
    Ok(())
}
