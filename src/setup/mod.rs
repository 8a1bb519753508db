//! `weborca-mtls-proxy setup` and `setup --rollback`: move WebORCA from its own
//! TLS to plain HTTP on a loopback-guarded port behind the proxy, and back, in
//! one step each (SPEC "Setup and rollback"). Everything is read and checked
//! first; only then are the files written (by rename, after a backup) and the
//! services restarted. This file holds the options, [`Stop`] and the run;
//! `plan.rs` decides the changes, `services.rs` runs systemctl, `rollback.rs`
//! undoes it all. [`jma_conf`] holds the text edits, [`guard`] the nftables
//! guard, [`install`] `install-cert`, [`install_crl`] `install-crl`,
//! `command.rs` what those two share, [`fsutil`] what every command shares;
//! `crl_hits.rs` which seen clients a new CRL refuses.

mod backup;
mod command;
mod crl_hits;
mod crl_list;
pub mod fsutil;
mod holders;
pub use crate::guard;
pub mod install;
pub mod install_crl;
pub mod jma_conf;
mod nofollow;
mod plan;
mod preload;
mod rollback;
mod services;
pub mod wire;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fsutil::{Change, Root};
use plan::plan;
use rollback::rollback;
use services::{restart_weborca, setup_commands, start_guard, start_services, undo_guard};

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

/// Whether `--root` names a system that is not running here: a root other
/// than this machine's `/`, with neither SYSTEMCTL nor NFT named for it (a
/// program named for it says that it runs). Only there may jma-receipt.conf
/// move before the guard is confirmed: a running systemd would restart
/// WebORCA with its unit as it knows it, without the drop-in, until a
/// `daemon-reload`.
fn offline_root(root: &Option<PathBuf>) -> bool {
    let named = |var: &str| std::env::var_os(var).is_some_and(|v| !v.is_empty());
    root.as_deref()
        .is_some_and(|r| std::fs::canonicalize(r).map_or(true, |r| r != Path::new("/")))
        && !named("SYSTEMCTL")
        && !named("NFT")
}

/// Whether `nft` says anything about the system setup acts on: always
/// without `--root`; under `--root` only when `NFT` names a program for it
/// (this machine's ruleset says nothing about the root's).
pub fn nft_applies(root: &Option<PathBuf>) -> bool {
    root.is_none() || std::env::var_os("NFT").is_some_and(|v| !v.is_empty())
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
        return rollback(args, &root, config_path);
    }
    let plan = plan(args, &root, config_path)?;
    if args.dry_run {
        let commands = setup_commands(&plan, nft_applies(&args.root));
        return dry_run(&plan.changes(), &[], &commands, args.no_restart);
    }
    // WebORCA moves to plain HTTP (jma-receipt.conf) only once the guard
    // that keeps that port from the LAN is in force: a WebORCA restart in
    // between (a crash, an update) would otherwise serve it to the LAN.
    let [guard_script, drop_in, proxy_conf, jma] = plan.changes();
    // The drop-in's folder, when this run makes it: taken away again with
    // the drop-in if the guard fails.
    let drop_in_dir = drop_in
        .path
        .parent()
        .filter(|d| !d.exists())
        .map(Path::to_path_buf);
    let written = write_changes(
        &[guard_script, drop_in, proxy_conf],
        "nothing else was changed",
    )?;
    if args.no_restart {
        if offline_root(&args.root) {
            // Another system's files, which no program here can ask about.
            // Its systemd reads the drop-in when it starts, before WebORCA,
            // and the drop-in's Requires= starts WebORCA only with the guard.
            write_changes(&[jma], "nothing else was changed")?;
            println!(
                "--root without NFT: WebORCA is moved to port {} in the root; there, {WEBORCA_DROP_IN} lets it start only once {} has loaded the guard",
                plan.port,
                guard::UNIT
            );
        } else if nft_applies(&args.root) && matches!(guard::state(plan.port), guard::State::Loaded)
        {
            write_changes(&[jma], "nothing else was changed")?;
            println!(
                "--no-restart: no service was restarted; to move WebORCA and start the proxy: sudo systemctl daemon-reload && sudo systemctl restart {WEBORCA_UNIT} && sudo systemctl enable --now {PROXY_UNIT}"
            );
        } else if jma.is_change() {
            println!(
                "--no-restart: {} is left as it is: WebORCA must not move to plain HTTP on port {} before the guard is in force. Start the guard (sudo systemctl daemon-reload && sudo systemctl enable --now {}), then run setup --no-restart again to move WebORCA, or run setup without --no-restart to do it all",
                jma.shown.display(),
                plan.port,
                guard::UNIT
            );
        }
    } else {
        let undo = "\nThe files were changed; undo everything with: sudo weborca-mtls-proxy setup --rollback";
        // The guard did not come into force: WebORCA stays where it is, and
        // what this run wrote goes (SPEC: "stopping at the first problem with
        // nothing changed"). The drop-in above all: left in place, its
        // Requires= would keep WebORCA from starting at its next restart.
        if let Err(failed) = start_guard(&plan, nft_applies(&args.root)) {
            let (mut said, all_back) = undo_written(&written);
            if let Some(dir) = &drop_in_dir {
                // only when empty: nothing else is ever removed
                let _ = std::fs::remove_dir(dir);
            }
            let drop_in_removed = written
                .iter()
                .any(|(c, _)| c.shown == drop_in.shown && c.old.is_none());
            said.extend(undo_guard(failed.started, drop_in_removed));
            // A WebORCA this run stopped runs again as it was, or the
            // operator is told, first of all, that it is stopped.
            let stopped = match restart_weborca(&plan, &failed, nft_applies(&args.root)) {
                Some(Ok(done)) => {
                    said.push(done);
                    String::new()
                }
                Some(Err(stopped)) => format!("\n{stopped}"),
                None => String::new(),
            };
            let after = if all_back {
                String::new()
            } else {
                "\nNot everything could be put back; undo the rest with: sudo weborca-mtls-proxy setup --rollback".to_string()
            };
            return Err(Stop::other(format!(
                "{}; WebORCA was not moved ({} is as it was); setup put back what it had written: {}{stopped}{after}\nFix the guard (journalctl -u {}), then run setup again",
                failed.message,
                jma.shown.display(),
                said.join("; "),
                guard::UNIT
            )));
        }
        write_changes(
            &[jma],
            &format!(
                "WebORCA was not moved; the guard, its drop-in and proxy.conf are in place{undo}"
            ),
        )?;
        start_services(&plan).map_err(|m| Stop::other(format!("{m}{undo}")))?;
        println!(
            "the proxy is ready and WebORCA answers on 127.0.0.1:{}",
            plan.port
        );
    }
    if plan.changes().iter().all(|c| !c.is_change()) {
        println!("nothing to change: WebORCA is already set up behind the proxy");
    }
    println!("to go back to WebORCA's own TLS: sudo weborca-mtls-proxy setup --rollback");
    Ok(())
}

/// Writes those of `changes` that change something (all or none of them)
/// and says what was written and where the old content is kept.
/// `after_failure` says what stands when a write fails (the failed set is
/// put back whole). Returns the changes written, each with its kept copy.
fn write_changes<'a>(
    changes: &[&'a Change],
    after_failure: &str,
) -> Result<Vec<(&'a Change, Option<PathBuf>)>, Stop> {
    let changed: Vec<&Change> = changes.iter().copied().filter(|c| c.is_change()).collect();
    let kept =
        fsutil::apply_all(&changed).map_err(|m| Stop::other(format!("{m}; {after_failure}")))?;
    for (c, k) in changed.iter().zip(&kept) {
        match k {
            Some(k) => println!(
                "changed {} (the old one is kept as {})",
                c.shown.display(),
                c.shown_kept(k).display()
            ),
            None => println!("created {}", c.shown.display()),
        }
    }
    Ok(changed.into_iter().zip(kept).collect())
}

/// Puts back the files [`write_changes`] wrote (last first): a file that
/// did not exist is removed, another gets its old content again. What was
/// done for each, and whether every one is back. The copies kept stay (they
/// hold the file as it was).
fn undo_written(written: &[(&Change, Option<PathBuf>)]) -> (Vec<String>, bool) {
    let mut all_back = true;
    let said = written
        .iter()
        .rev()
        .map(|(c, kept)| match (c.undo(), &c.old) {
            (Ok(()), None) => format!("removed {}", c.shown.display()),
            (Ok(()), Some(_)) => format!("put back {} as it was", c.shown.display()),
            (Err(e), _) => {
                all_back = false;
                format!(
                    "{} NOT put back ({e}; {})",
                    c.shown.display(),
                    match kept {
                        Some(k) => format!("its old content is in {}", c.shown_kept(k).display()),
                        None => "it did not exist before: remove it".to_string(),
                    }
                )
            }
        })
        .collect();
    (said, all_back)
}

/// WebORCA's config at `shown`: its bytes, and those bytes as text for the
/// edits ([`jma_conf::decode`]).
fn read_weborca_conf(
    root: &Root,
    shown: &Path,
) -> Result<(Vec<u8>, String, jma_conf::Spelling), Stop> {
    let bytes = std::fs::read(root.read_path(shown)).map_err(|e| {
        Stop::config(format!(
            "cannot read WebORCA's config {}: {e}; give its path with --weborca-conf",
            shown.display()
        ))
    })?;
    let (text, how) = jma_conf::decode(&bytes);
    Ok((bytes, text, how))
}

/// The change of WebORCA's config at `shown` to `new`, planned from `read`
/// (what [`read_weborca_conf`] read): refused when the file changed since,
/// so that no edit made in between is overwritten unseen.
fn weborca_conf_change(
    root: &Root,
    shown: &Path,
    read: &[u8],
    new: Vec<u8>,
) -> Result<Change, Stop> {
    let change = Change::new(root, shown, new, 0o644).map_err(|e| read_stop(shown, e))?;
    if change.old.as_deref() != Some(read) {
        return Err(Stop::other(format!(
            "{} changed while setup read it (edited, or replaced by a link): run setup again; nothing was changed",
            shown.display()
        )));
    }
    Ok(change)
}

fn read_stop(path: &Path, e: std::io::Error) -> Stop {
    Stop::other(format!("cannot read {}: {e}", path.display()))
}

/// Prints what would change: each file's diff, each file removed, and
/// (unless `no_restart`) each command.
fn dry_run(
    changes: &[&Change],
    removed: &[&str],
    commands: &[String],
    no_restart: bool,
) -> Result<(), Stop> {
    println!("--dry-run: nothing is changed. setup would:");
    for c in changes.iter().filter(|c| c.is_change()) {
        print!("{}", c.diff());
    }
    for r in removed {
        println!("remove {r}");
    }
    if changes.iter().all(|c| !c.is_change()) && removed.is_empty() {
        println!("(no file changes)");
    }
    if !no_restart {
        for c in commands {
            println!("run: {c}");
        }
    }
    Ok(())
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
