//! `setup`: what it will do, decided before anything is written. WebORCA's
//! config is read with the proxy's own parser, the certificate part of `check`
//! runs on its files, and the four changes (guard script, WebORCA's drop-in,
//! proxy.conf, jma-receipt.conf) are made ready in the order they are written.

use std::path::{Path, PathBuf};

use super::fsutil::{Change, Root};
use super::holders;
use super::{DROP_IN_TEXT, SetupArgs, Stop, WEBORCA_DEFAULT_PORT, WEBORCA_DROP_IN, WEBORCA_UNIT};
use super::{guard, jma_conf, read_stop, read_weborca_conf, weborca_conf_change};

/// What setup will do, decided before anything is written.
pub(super) struct Plan {
    pub(super) port: u16,
    /// the guard's nft script
    pub(super) guard: Change,
    /// WebORCA's drop-in: it runs only with the guard
    pub(super) drop_in: Change,
    pub(super) proxy_conf: Change,
    /// WebORCA moved to plain HTTP on `port`
    pub(super) jma_conf: Change,
}

impl Plan {
    /// The changes in the order they are written: the guard's script and the
    /// drop-in that makes WebORCA require the guard first, jma-receipt.conf
    /// (WebORCA moved to plain HTTP) last, so that if a write fails half-way
    /// WebORCA is never left on plain HTTP without its guard.
    pub(super) fn changes(&self) -> [&Change; 4] {
        [&self.guard, &self.drop_in, &self.proxy_conf, &self.jma_conf]
    }
}

pub(super) fn plan(args: &SetupArgs, root: &Root, config_path: &Path) -> Result<Plan, Stop> {
    let port = args.backend_port;
    let jma_path = &args.weborca_conf;
    let (jma_bytes, jma_text, spelling) = read_weborca_conf(root, jma_path)?;
    // A damaged block would be added to, not replaced, on a rerun.
    jma_conf::check_block(&jma_text)
        .map_err(|(line, what)| super::rollback::damaged(jma_path, line, &what))?;
    // 1. The three keys and HTTP_PORT, with the proxy's own parser.
    let weborca = jma_conf::read(&jma_text, jma_path);
    // what `check -c jma-receipt.conf` would say of its lines too
    for w in &weborca.warnings {
        println!("warning: {w}");
    }
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
    let old_proxy = match std::fs::read(root.read_path(config_path)) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => {
            return Err(Stop::config(format!(
                "cannot read {}: {e}",
                config_path.display()
            )));
        }
    };
    let raw_proxy = crate::config::parse_raw(&old_proxy, config_path);
    // A rerun (jma-receipt.conf already set up) keeps the certificate files
    // proxy.conf names now: install-cert may have put a new set there since,
    // and jma-receipt.conf's commented lines name the set of before.
    let rerun = jma_conf::rollback(&jma_text) != jma_text;
    let in_proxy = |key: &str| {
        raw_proxy
            .entries
            .iter()
            .rev()
            .find(|e| e.key == key)
            .map(|e| e.value.clone())
            .filter(|v| rerun && !v.is_empty())
    };
    let folder = jma_path.parent().unwrap_or(Path::new("/"));
    let paths: Vec<PathBuf> = jma_conf::TLS_KEYS
        .iter()
        .zip(weborca.keys.iter().flatten())
        .map(|(key, (v, _))| match in_proxy(key) {
            Some(kept) => config_path.parent().unwrap_or(Path::new("/")).join(kept),
            None => folder.join(v),
        })
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
    let missing: Vec<String> = jma_conf::TLS_KEYS
        .iter()
        .zip(&paths)
        .filter(|(_, path)| !root.read_path(path).is_file())
        .map(|(key, path)| format!("{key} ...file does not exist: {}", path.display()))
        .collect();
    if !missing.is_empty() {
        return Err(Stop::config(format!(
            "{} (named in {}); put the files there or correct the keys",
            missing.join("; "),
            jma_path.display()
        )));
    }
    // 3 (decided now). proxy.conf with the keys; the others are kept.
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
    if in_proxy("SERVER_P12").is_some() {
        // a rerun after install-cert of a .p12: that stays what is served
        keys.retain(|(k, _)| !matches!(*k, "SERVER_CRT" | "SERVER_PEM"));
    } else if raw_proxy.entries.iter().any(|e| e.key == "SERVER_P12") {
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
        *p = root.read_path(p);
    }
    for p in &mut rooted.ca_crl {
        *p = root.read_path(p);
    }
    // Under --root, this machine's names are not the root's: only --host counts.
    let hosts = (args.root.is_none() || !args.host.is_empty()).then_some(&args.host[..]);
    // The service user as the system being set up knows it: under --root,
    // the root's passwd (as install-cert's --owner), not this machine's.
    let passwd = root.read_path(Path::new("/etc/passwd"));
    let lines = crate::check::certificates(&rooted, hosts, &passwd);
    let failed = lines.iter().any(|l| l.level == crate::check::Level::Fail);
    for l in &lines {
        println!("{l}");
    }
    if failed {
        return Err(Stop::config(
            "setup stopped before changing anything: fix the FAIL lines above, then run it again",
        ));
    }
    // 4. The port WebORCA moves to is free. Not under --root without
    // SYSTEMCTL: that prepares another system's files, and this machine's
    // ports say nothing about it.
    if super::systemctl_applies(&args.root)
        && let Some(taken) = port_taken(port, &jma_text, jma_path, args.root.is_some())
    {
        return Err(Stop::other(taken));
    }
    let new_jma = jma_conf::apply(&jma_text, jma_path, port);
    Ok(Plan {
        port,
        guard: Change::new(
            root,
            Path::new(guard::SCRIPT_PATH),
            guard::script(port).into_bytes(),
            0o644,
        )
        .map_err(|e| read_stop(Path::new(guard::SCRIPT_PATH), e))?,
        drop_in: Change::new(
            root,
            Path::new(WEBORCA_DROP_IN),
            DROP_IN_TEXT.as_bytes().to_vec(),
            0o644,
        )
        .map_err(|e| read_stop(Path::new(WEBORCA_DROP_IN), e))?,
        proxy_conf: Change::new(root, config_path, new_proxy.into_bytes(), 0o644)
            .map_err(|e| read_stop(config_path, e))?,
        jma_conf: weborca_conf_change(
            root,
            jma_path,
            &jma_bytes,
            jma_conf::encode(new_jma, spelling),
        )?,
    })
}

/// Why WebORCA cannot move to `port`, when another program listens there
/// ([`holders::refusal`]): it would keep WebORCA from listening after the
/// move, and would answer setup's own check that WebORCA answers. A rerun is
/// when jma-receipt.conf as it is (`jma_text`, setup's block included)
/// already names `port`; WebORCA's own listener is then told by its unit.
/// Under `--root` (with SYSTEMCTL) the units are stand-ins, not this
/// machine's: a rerun's listener is taken to be WebORCA.
fn port_taken(port: u16, jma_text: &str, jma_path: &Path, root: bool) -> Option<String> {
    let raw = crate::config::parse_raw(jma_text, jma_path);
    let weborca_on = raw
        .entries
        .iter()
        .rev()
        .find(|e| e.key == "HTTP_PORT")
        .map_or(Some(WEBORCA_DEFAULT_PORT), |e| e.value.parse::<u16>().ok());
    let rerun = weborca_on == Some(port);
    if rerun && root {
        return None;
    }
    holders::refusal(port, &holders::on_port(port), rerun, WEBORCA_UNIT)
}
