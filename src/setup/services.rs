//! `setup`'s systemctl steps once the files are written: the guard first
//! (and confirmed in force), then WebORCA on its new port, then the proxy,
//! waited for until both answer; and the same steps as text for `--dry-run`.

use std::net::{Ipv4Addr, SocketAddr};

use super::fsutil::Program;
use super::plan::Plan;
use super::{PROXY_UNIT, START_WAIT, WEBORCA_UNIT, guard, wait_until};

/// The systemctl commands of setup, for `--dry-run` (those run depend on
/// what changed); `confirm`: whether nft is asked about the guard.
pub(super) fn setup_commands(plan: &Plan, confirm: bool) -> Vec<String> {
    let sc = Program::systemctl();
    let mut cmds = vec![
        sc.shown(&["daemon-reload"]),
        sc.shown(&["enable", "--now", guard::UNIT]),
    ];
    if plan.guard.is_change() {
        cmds.push(format!(
            "(if the guard was running: {}{})",
            if plan.jma_conf.is_change() {
                format!("{}; ", sc.shown(&["stop", WEBORCA_UNIT]))
            } else {
                String::new()
            },
            sc.shown(&["restart", guard::UNIT])
        ));
    }
    if confirm {
        cmds.push(Program::nft().shown(&["list", "table", "inet", guard::TABLE]));
    }
    cmds.push(sc.shown(&["restart", WEBORCA_UNIT]));
    cmds.push(sc.shown(&["enable", PROXY_UNIT]));
    cmds.push(sc.shown(&[
        if plan.proxy_conf.is_change() {
            "restart"
        } else {
            "start"
        },
        PROXY_UNIT,
    ]));
    cmds
}

fn run(args: &[&str]) -> Result<(), String> {
    let sc = Program::systemctl();
    println!("run: {}", sc.shown(args));
    sc.run(args).map(|_| ())
}

/// Why the guard did not come into force, whether this run started it
/// (so that putting things back stops and disables it again), and whether
/// it stopped a running WebORCA (so that it is started again).
pub(super) struct GuardFailed {
    /// what failed, with what the program said
    pub(super) message: String,
    /// `enable --now` ran while the guard was not active before
    pub(super) started: bool,
    /// WebORCA was running when this run stopped it, or restarted the
    /// guard it requires (which stops it first)
    pub(super) weborca_was_running: bool,
}

/// Brings the guard into force for the plan's port (systemd reads the new
/// units and drop-in first), and confirms that its table is loaded.
/// `confirm`: whether `nft` can be asked (not under `--root` without `NFT`).
pub(super) fn start_guard(plan: &Plan, confirm: bool) -> Result<(), GuardFailed> {
    let failed = |started: bool, weborca_was_running: bool| {
        move |message: String| GuardFailed {
            message,
            started,
            weborca_was_running,
        }
    };
    run(&["daemon-reload"]).map_err(failed(false, false))?;
    let sc = Program::systemctl();
    let was_active = sc.run(&["is-active", "--quiet", guard::UNIT]).is_ok();
    let started = !was_active;
    run(&["enable", "--now", guard::UNIT]).map_err(failed(started, false))?;
    // A guard that was running has the old script's table: it loads the new
    // one by a restart, which restarts WebORCA with it (the drop-in's
    // Requires=). If WebORCA is also moving (a new port), it is stopped
    // first: restarted now on its old port, it would serve plain HTTP there
    // with no guard for that port until it is moved. A guard that was not
    // running has just loaded the new script: no restart. Either way a
    // WebORCA that was running may be stopped from here on, and is started
    // again if the guard fails ([`restart_weborca`]).
    let mut weborca_was_running = false;
    if was_active && plan.guard.is_change() {
        weborca_was_running = sc.run(&["is-active", "--quiet", WEBORCA_UNIT]).is_ok();
        let failed = failed(started, weborca_was_running);
        if plan.jma_conf.is_change() {
            run(&["stop", WEBORCA_UNIT]).map_err(failed)?;
        }
        run(&["restart", guard::UNIT]).map_err(failed)?;
    }
    let failed = |started| failed(started, weborca_was_running);
    if !confirm {
        println!(
            "--root without NFT: the guard's table is not confirmed with nft (this machine's ruleset says nothing about the root's); the drop-in {} starts WebORCA there only with {} started",
            super::WEBORCA_DROP_IN,
            guard::UNIT
        );
        return Ok(());
    }
    match guard::state(plan.port) {
        guard::State::Loaded => {
            println!(
                "the guard drops port {} from other interfaces than lo",
                plan.port
            );
            Ok(())
        }
        other => Err(failed(started)(format!(
            "the guard is not in force for port {} ({other:?}); see journalctl -u {}",
            plan.port,
            guard::UNIT
        ))),
    }
}

/// After [`start_guard`] failed and the caller removed the files it wrote:
/// `daemon-reload`, so that systemd forgets the drop-in (when
/// `drop_in_removed`: this run made it, and it is gone), then (only then:
/// with the drop-in still known, stopping the guard would stop WebORCA) the
/// guard stopped and disabled again when this run started it. What was
/// done, and what failed.
pub(super) fn undo_guard(started: bool, drop_in_removed: bool) -> Vec<String> {
    let mut said = Vec::new();
    let mut step = |args: &[&str], done: &str| match run(args) {
        Ok(()) => said.push(done.to_string()),
        Err(e) => said.push(format!("{e} (run it by hand)")),
    };
    step(
        &["daemon-reload"],
        if drop_in_removed {
            "systemd has reloaded the units without the drop-in"
        } else {
            "systemd has reloaded the units"
        },
    );
    if started {
        step(
            &["disable", "--now", guard::UNIT],
            "the guard is stopped and disabled again",
        );
    }
    said
}

/// After [`undo_guard`], when this run stopped a running WebORCA (to move
/// it, or by restarting the guard) and it is not running now: the guard
/// restarted first, to load its old script (put back by then), confirmed
/// with nft for the old script's port when `confirm`, and only then
/// WebORCA, on its old port, as it was before the run (its drop-in requires
/// the guard, and in plain HTTP it must not run without it). `Ok`: what was
/// done; `Err`: that WebORCA is stopped, why, and the command that starts
/// it. `None` when there was nothing to start.
pub(super) fn restart_weborca(
    plan: &Plan,
    failed: &GuardFailed,
    confirm: bool,
) -> Option<Result<String, String>> {
    let sc = Program::systemctl();
    if !failed.weborca_was_running || sc.run(&["is-active", "--quiet", WEBORCA_UNIT]).is_ok() {
        return None;
    }
    let old_script = String::from_utf8_lossy(plan.guard.old.as_deref().unwrap_or_default());
    let old_ports = guard::dropped_ports(&old_script);
    let guarded = run(&["restart", guard::UNIT]).and_then(|()| {
        let unconfirmed: Vec<u16> = old_ports
            .iter()
            .copied()
            .filter(|p| confirm && guard::state(*p) != guard::State::Loaded)
            .collect();
        match (old_ports.is_empty(), unconfirmed.is_empty()) {
            (false, true) => Ok(()),
            (true, _) => Err(format!(
                "{} named no port before this run",
                plan.guard.shown.display()
            )),
            (false, false) => Err(format!(
                "the guard is not in force for port {unconfirmed:?} with its old script"
            )),
        }
    });
    Some(match guarded.and_then(|()| run(&["start", WEBORCA_UNIT])) {
        Ok(()) => Ok(format!(
            "WebORCA, which this run had stopped, is started again on its port {} behind the guard as it was",
            old_ports
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )),
        Err(e) => Err(format!(
            "WebORCA IS STOPPED: this run stopped it to move it, and it could not be started again: {e}. Once the guard is in force (journalctl -u {}), start WebORCA with: sudo systemctl start {WEBORCA_UNIT}",
            guard::UNIT
        )),
    })
}

/// With the guard in force: WebORCA on its new port, then the proxy, waited
/// for until both answer.
pub(super) fn start_services(plan: &Plan) -> Result<(), String> {
    let sc = Program::systemctl();
    let backend = SocketAddr::from((Ipv4Addr::LOCALHOST, plan.port));
    // moved (jma-receipt.conf), or bound to the guard anew (the drop-in)
    if plan.jma_conf.is_change()
        || plan.drop_in.is_change()
        || crate::check::http_probe(backend, &backend.to_string()).is_err()
    {
        run(&["restart", WEBORCA_UNIT])?;
    }
    run(&["enable", PROXY_UNIT])?;
    run(&[
        if plan.proxy_conf.is_change() {
            "restart"
        } else {
            "start"
        },
        PROXY_UNIT,
    ])?;
    wait_until(START_WAIT, || {
        let active = sc.run(&["is-active", PROXY_UNIT]).is_ok();
        let answers = crate::check::http_probe(backend, &backend.to_string());
        match (active, answers) {
            (true, Ok(_)) => Ok(()),
            (false, _) => Err(format!(
                "{PROXY_UNIT} is not active; see journalctl -u {PROXY_UNIT}"
            )),
            (true, Err(e)) => Err(format!(
                "WebORCA does not answer plain HTTP on {backend} ({e}); see journalctl -u {WEBORCA_UNIT}"
            )),
        }
    })
}
