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

/// Why the guard did not come into force, and whether this run started it
/// (so that putting things back stops and disables it again).
pub(super) struct GuardFailed {
    /// what failed, with what the program said
    pub(super) message: String,
    /// `enable --now` ran while the guard was not active before
    pub(super) started: bool,
}

/// Brings the guard into force for the plan's port (systemd reads the new
/// units and drop-in first), and confirms that its table is loaded.
/// `confirm`: whether `nft` can be asked (not under `--root` without `NFT`).
pub(super) fn start_guard(plan: &Plan, confirm: bool) -> Result<(), GuardFailed> {
    let failed = |started: bool| move |message: String| GuardFailed { message, started };
    run(&["daemon-reload"]).map_err(failed(false))?;
    let was_active = Program::systemctl()
        .run(&["is-active", "--quiet", guard::UNIT])
        .is_ok();
    let started = !was_active;
    run(&["enable", "--now", guard::UNIT]).map_err(failed(started))?;
    // A guard that was running has the old script's table: it loads the new
    // one by a restart, which restarts WebORCA with it (the drop-in's
    // Requires=). If WebORCA is also moving (a new port), it is stopped
    // first: restarted now on its old port, it would serve plain HTTP there
    // with no guard for that port until it is moved. A guard that was not
    // running has just loaded the new script: no restart.
    if was_active && plan.guard.is_change() {
        if plan.jma_conf.is_change() {
            run(&["stop", WEBORCA_UNIT]).map_err(failed(started))?;
        }
        run(&["restart", guard::UNIT]).map_err(failed(started))?;
    }
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
/// `daemon-reload`, so that systemd forgets the drop-in, then (only then:
/// with the drop-in still known, stopping the guard would stop WebORCA) the
/// guard stopped and disabled again when this run started it. What was
/// done, and what failed.
pub(super) fn undo_guard(started: bool) -> Vec<String> {
    let mut said = Vec::new();
    let mut step = |args: &[&str], done: &str| match run(args) {
        Ok(()) => said.push(done.to_string()),
        Err(e) => said.push(format!("{e} (run it by hand)")),
    };
    step(
        &["daemon-reload"],
        "systemd has reloaded the units without the drop-in",
    );
    if started {
        step(
            &["disable", "--now", guard::UNIT],
            "the guard is stopped and disabled again",
        );
    }
    said
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
