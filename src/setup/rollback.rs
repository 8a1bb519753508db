//! `setup --rollback`: WebORCA's own TLS back in jma-receipt.conf (after a
//! backup), the drop-in removed, the proxy and the guard stopped, and WebORCA
//! waited for on its own port.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use super::fsutil::{Change, Program, Root};
use super::{PROXY_UNIT, START_WAIT, SetupArgs, Stop, WEBORCA_DEFAULT_PORT, WEBORCA_DROP_IN};
use super::{WEBORCA_UNIT, dry_run, guard, jma_conf, read_text, wait_until};

pub(super) fn rollback(args: &SetupArgs, root: &Root) -> Result<(), Stop> {
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
        return dry_run(&[&change], &shown, args.no_restart);
    }
    if change.is_change() {
        let kept = change
            .apply()
            .map_err(|e| Stop::other(format!("cannot write {}: {e}", jma_path.display())))?;
        println!(
            "restored WebORCA's own TLS in {} (the set-up one is kept as {})",
            jma_path.display(),
            kept.map(|k| change.shown_kept(&k).display().to_string())
                .unwrap_or_default()
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
