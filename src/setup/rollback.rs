//! `setup --rollback`: WebORCA's own TLS back in jma-receipt.conf (after a
//! backup), the drop-in removed, the proxy and the guard stopped, and WebORCA
//! waited for on its own port until it answers a TLS handshake (plain HTTP
//! there is an error).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;

use super::fsutil::{Program, Root};
use super::{PROXY_UNIT, START_WAIT, SetupArgs, Stop, WEBORCA_DEFAULT_PORT, WEBORCA_DROP_IN};
use super::{
    WEBORCA_UNIT, dry_run, guard, jma_conf, read_weborca_conf, wait_until, weborca_conf_change,
    wire,
};
use crate::check::PlainAnswer;

pub(super) fn rollback(args: &SetupArgs, root: &Root, config_path: &Path) -> Result<(), Stop> {
    let jma_path = &args.weborca_conf;
    let (bytes, text, spelling) = read_weborca_conf(root, jma_path)?;
    // A damaged block (a marker missing): which lines are setup's cannot be
    // told, and going on would leave HTTP_PORT=PORT in force while saying
    // WebORCA is back on its own port.
    jma_conf::check_block(&text).map_err(|(line, what)| damaged(jma_path, line, &what))?;
    for (line, added) in jma_conf::added_in_block(&text) {
        println!(
            "note: {} line {line} ({added}) is inside setup's block but setup did not write it: it is kept, where the block was",
            jma_path.display()
        );
    }
    let restored = jma_conf::rollback(&text);
    let weborca = jma_conf::read(&restored, jma_path);
    let own_port = weborca
        .http_port
        .as_ref()
        .and_then(|(v, _)| v.parse::<u16>().ok())
        .unwrap_or(WEBORCA_DEFAULT_PORT);
    for warning in lost_protections(root, config_path, &weborca, jma_path) {
        println!("WARNING: {warning}");
    }
    let change = weborca_conf_change(root, jma_path, &bytes, jma_conf::encode(restored, spelling))?;
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
        let shown: Vec<String> = commands.iter().map(|c| sc.shown(c)).collect();
        let removed: &[&str] = if has_drop_in { &[WEBORCA_DROP_IN] } else { &[] };
        return dry_run(&[&change], removed, &shown, args.no_restart);
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
    // "With its own TLS" is what a TLS handshake shows (the certificate is
    // only recorded, not verified: the question is whether it speaks TLS),
    // not a TCP connect. A port that answers plain HTTP instead is no
    // rollback: every LAN machine would reach WebORCA without a certificate.
    // One that answers a plain-HTTP request as a TLS server does (Go's
    // `400` "Client sent an HTTP request to an HTTPS server.") speaks TLS:
    // its handshake is tried once more (the port may have opened between
    // the two), and failing again, it is said to fail, not to be plain HTTP.
    let mut answered = None;
    wait_until(START_WAIT, || match wire::served_cert(own) {
        Ok(_) => Ok(()),
        Err(e) => match crate::check::plain_answer(own, &own.to_string()) {
            Ok(PlainAnswer::Tls(words)) => {
                if let Err(again) = wire::served_cert(own) {
                    answered = Some((PlainAnswer::Tls(words), again));
                }
                Ok(())
            }
            Ok(answer) => {
                answered = Some((answer, e));
                Ok(())
            }
            Err(_) => Err(format!(
                "WebORCA does not answer TLS on port {own_port}: {e}; see journalctl -u {WEBORCA_UNIT}"
            )),
        },
    })
    .map_err(Stop::other)?;
    match answered {
        None => {}
        Some((PlainAnswer::Http(_), _)) => {
            return Err(Stop::other(format!(
                "ERROR: WebORCA answers on port {own_port} in plain HTTP, without TLS: every machine on the LAN reaches it without a client certificate. Check that SERVER_CRT, SERVER_PEM and CA_CRT are set (not commented out) in {} and name files WebORCA can read, then: sudo systemctl restart {WEBORCA_UNIT} (or put the proxy back in front with: sudo weborca-mtls-proxy setup)",
                jma_path.display()
            )));
        }
        Some((PlainAnswer::Tls(words), e)) => {
            return Err(Stop::other(format!(
                "WebORCA speaks TLS on its own port {own_port} again (to a plain-HTTP request it answers \"{words}\"), so it is not open in plain HTTP; but a TLS handshake with it failed: {e}. Its TLS is SERVER_CRT, SERVER_PEM and CA_CRT in {}: check that SERVER_CRT is the server certificate and SERVER_PEM its key (RSA 2048 to 4096 bits or ECDSA P-256/P-384), both readable by WebORCA, then: sudo systemctl restart {WEBORCA_UNIT}; see journalctl -u {WEBORCA_UNIT}",
                jma_path.display()
            )));
        }
    }
    println!("WebORCA answers on its own port {own_port} again, with its own TLS");
    Ok(())
}

/// The refusal of a jma-receipt.conf whose marked block is damaged
/// ([`jma_conf::check_block`]): the file, the line, what to mend by hand.
pub(super) fn damaged(jma_path: &Path, line: usize, what: &str) -> Stop {
    Stop::config(format!(
        "{} line {line}: the block setup added is damaged: {what}; then run the command again. Nothing was changed",
        jma_path.display()
    ))
}

/// What the proxy enforces now that WebORCA's own TLS will not: said before
/// rollback goes on (it is the way back in an emergency, so it is not
/// refused), so that the operator knows who gets in afterwards.
fn lost_protections(
    root: &Root,
    config_path: &Path,
    restored: &jma_conf::WebOrcaConf,
    jma_path: &Path,
) -> Vec<String> {
    let Ok(bytes) = std::fs::read(root.read_path(config_path)) else {
        return Vec::new();
    };
    let text = String::from_utf8_lossy(&bytes);
    let Ok(loaded) = crate::config::parse(&text, config_path) else {
        return Vec::new();
    };
    let c = &loaded.config;
    let shown = |paths: &[std::path::PathBuf]| {
        paths
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut lost = Vec::new();
    if !c.ca_crl.is_empty() {
        lost.push(format!(
            "CA_CRL in {} ({}): WebORCA's own TLS checks no CRL, so every certificate revoked there is accepted again after rollback",
            config_path.display(),
            shown(&c.ca_crl)
        ));
    }
    if let Some(cns) = &c.allow_cn {
        lost.push(format!(
            "ALLOW_CN in {} ({}): WebORCA's own TLS accepts every certificate its CA issued",
            config_path.display(),
            cns.join(",")
        ));
    }
    if let Some(policy) = &c.access_policy {
        lost.push(format!(
            "ACCESS_POLICY in {} ({}): WebORCA's own TLS lets every certificate use every path",
            config_path.display(),
            policy.display()
        ));
    }
    // install-cert may have put a newer set in proxy.conf than the one
    // jma-receipt.conf's commented lines bring back
    let folder = jma_path.parent().unwrap_or(Path::new("/"));
    let now = [&c.server_crt, &c.server_pem, &c.ca_crt];
    for ((key, old), now) in jma_conf::TLS_KEYS.iter().zip(&restored.keys).zip(now) {
        if let (Some((old, _)), Some(now)) = (old, now)
            && folder.join(old) != *now
        {
            lost.push(format!(
                "{key}: WebORCA goes back to {} (from {}), while the proxy uses {}; to keep the newer one, set {key} to it in {} after rollback",
                folder.join(old).display(),
                jma_path.display(),
                now.display(),
                jma_path.display()
            ));
        }
    }
    lost
}
