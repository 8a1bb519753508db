//! `install-crl FILE`: a CRL from `orca-catool issue_crl` put in place like
//! the certificates of `install-cert`: it must be signed by the CA_CRT in use,
//! current, and not older than the installed CRL of its CA (`crl_list`); it is
//! copied 0400 for the owner, the CA_CRL entry of its CA is replaced (or it is
//! added) after a backup once the new set loads (`preload`), the proxy is
//! reloaded, and the command names the recently seen clients (from `/status`)
//! the CRL revokes (`crl_hits`: those of the CRL's own CA only).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::command::{
    self, DEFAULT_DIR, InstallArgs, RELOAD_WAIT, destination, parse_pem_certs, read_config,
    read_regular, reload,
};
use super::crl_hits::{self, Revokes};
use super::crl_list::{self, Crl, Verdict};
use super::fsutil::Root;
use super::{PROXY_UNIT, Stop, jma_conf, wire};

/// The options of `install-crl`.
#[derive(Debug, Clone, clap::Args)]
pub struct CrlArgs {
    /// the CRL from orca-catool issue_crl, PEM or DER
    pub file: PathBuf,
    /// folder the CRL is copied to
    #[arg(long, default_value = DEFAULT_DIR)]
    pub dir: PathBuf,
    /// owner of the copied file
    #[arg(long, default_value = "orca")]
    pub owner: String,
    /// --no-reload, --dry-run, --root
    #[command(flatten)]
    pub install: InstallArgs,
}

/// Runs `install-crl`.
pub fn install_crl(args: &CrlArgs, config_path: &Path) -> Result<(), Stop> {
    let run = command::prepare(&args.file, &args.install);
    let (root, refuse, shown) = (&run.root, run.refuse(), &run.shown);
    let data = std::fs::read(&args.file).map_err(|e| refuse(format!("cannot read: {e}")))?;
    let crls = crate::tls::load::parse_crls(&args.file, &data)
        .map_err(|e| refuse(format!("{}; {}", e.problem, e.fix)))?;
    let config_text = read_config(root, config_path)?;
    let config = crate::config::parse(&config_text, config_path)
        .map_err(|e| refuse(format!("the config cannot be read: {e}")))?
        .config;
    let ca_path = config.ca_crt.clone().ok_or_else(|| {
        refuse(format!(
            "CA_CRT is not set in {}: the CRL's signature cannot be checked",
            config_path.display()
        ))
    })?;
    let ca_data = read_regular(&root.path(&ca_path), &ca_path)
        .map_err(|e| refuse(format!("CA_CRT: {e}")))?
        .ok_or_else(|| refuse(format!("CA_CRT {} does not exist", ca_path.display())))?;
    let cas = parse_pem_certs("CA_CRT", &ca_data).map_err(refuse)?;
    let now = chrono::Utc::now();
    let mut revokes: Vec<Revokes> = Vec::new();
    let mut facts = Vec::new();
    for crl in &crls {
        let info = crate::tls::crl::check(&args.file, crl, &cas)
            .map_err(|e| refuse(format!("{}; {}", e.problem, e.fix)))?;
        // a few minutes' difference between clocks is not a future CRL
        if info.this_update > now + chrono::Duration::minutes(5) {
            return Err(refuse(format!(
                "the CRL is not current yet (thisUpdate {}): check the clock of this machine and of the one that made it, or make a new one with orca-catool issue_crl",
                info.this_update
            )));
        }
        if info.next_update.is_some_and(|n| n < now) {
            return Err(refuse(format!(
                "the CRL is out of date (nextUpdate {}): make a new one with orca-catool issue_crl",
                info.next_update.unwrap_or_default()
            )));
        }
        let unparsed = || refuse("the CRL cannot be parsed".to_string());
        revokes.push(Revokes::of(crl.as_ref(), &cas).ok_or_else(unparsed)?);
        facts.push(Crl::of(crl).ok_or_else(unparsed)?);
    }
    let revoked: Vec<&str> = revokes
        .iter()
        .flat_map(|r| r.serials().iter().map(String::as_str))
        .collect();
    let entries = crl_list::entries(root, &config_text, config_path);
    if let Verdict::Installed(paths) =
        crl_list::judge(&facts, shown, &entries, &cas).map_err(refuse)?
    {
        let paths: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        println!(
            "{shown}: already installed as {}; nothing was changed",
            paths.join(", ")
        );
        return Ok(());
    }
    let name = args
        .file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "ca.crl".to_string());
    let owner = command::owner(root, &args.owner, refuse)?;
    let (name, dest) = crl_destination(root, &args.dir, &name, &data, &facts).map_err(refuse)?;
    let target = args.dir.join(&name);
    // Only the entry of this CRL's CA is replaced: the CRLs of the other CAs
    // in CA_CRT (another of the same name too) stay, or their clients would
    // no longer be checked.
    let (list, replaced) = crl_list::replace(&entries, &facts, &target, &cas).map_err(refuse)?;
    let value = list.join(",");
    let new_text = jma_conf::set_keys(&config_text, config_path, &[("CA_CRL", Some(&value))])
        .map_err(refuse)?;
    let copies: Vec<(&Path, &[u8])> = dest.iter().map(|d| (d.as_path(), &data[..])).collect();
    let (loaded, change) = command::checked_change(root, config_path, new_text, &copies, refuse)?;
    let shown_of = |old_ca: bool| {
        let paths: Vec<String> = replaced
            .iter()
            .filter(|r| r.old_ca == old_ca)
            .map(|r| r.path.display().to_string())
            .collect();
        paths.join(", ")
    };
    let (same_ca, old_ca) = (shown_of(false), shown_of(true));
    if run.dry_run {
        let replaced: Vec<String> = replaced
            .iter()
            .map(|r| r.path.display().to_string())
            .collect();
        if !replaced.is_empty() {
            println!(
                "--dry-run: the new CRL would replace {} in CA_CRL",
                replaced.join(", ")
            );
        }
        let shown: Vec<&Path> = dest.iter().map(PathBuf::as_path).collect();
        return command::dry_run("install-crl", &shown, &args.owner, &change, run.no_reload);
    }
    let keys = format!("CA_CRL={value}");
    command::write(
        root,
        &copies,
        (owner, &args.owner),
        &change,
        config_path,
        &keys,
    )?;
    if !same_ca.is_empty() {
        println!(
            "the new CRL replaces {same_ca} in CA_CRL (the CRL of the same CA); the CRLs of other CAs are kept"
        );
    }
    if !old_ca.is_empty() {
        println!(
            "the new CRL also replaces {old_ca} in CA_CRL: a CRL of its CA's name that no CA of CA_CRT signed (an old CA's), which the proxy refuses"
        );
    }
    println!(
        "the CRL revokes {} serial(s){}",
        revoked.len(),
        if revoked.is_empty() {
            String::new()
        } else {
            format!(": {}", revoked.join(", "))
        }
    );
    if run.no_reload {
        println!("--no-reload: the proxy refuses them after: sudo systemctl reload {PROXY_UNIT}");
        return Ok(());
    }
    reload()?;
    let Some(status) = loaded.config.status_listen else {
        println!(
            "STATUS_LISTEN is not set: that the proxy now uses the new CRL cannot be confirmed here, nor the recently seen clients listed; look for \"reloaded\" in journalctl -u {PROXY_UNIT}"
        );
        return Ok(());
    };
    confirm_served(status, &target, &facts)?;
    match wire::seen_clients(status) {
        Err(e) => println!("the recently seen clients cannot be listed: {e}"),
        Ok(clients) => {
            for line in crl_hits::report(&clients, &revokes) {
                println!("{line}");
            }
        }
    }
    Ok(())
}

/// Waits until the running proxy checks clients against the new CRL (its
/// file and thisUpdate in `/status`). A reload can fail in the proxy (a file
/// it cannot read as its own user) or not have happened yet, and "clients now
/// refused" must never be said of a CRL that is not in use.
fn confirm_served(status: SocketAddr, target: &Path, facts: &[Crl]) -> Result<(), Stop> {
    let path = target.display().to_string();
    let start = Instant::now();
    loop {
        let served = wire::served_crls(status);
        let taken = served.as_ref().is_ok_and(|crls| {
            facts
                .iter()
                .all(|f| crls.contains(&(path.clone(), f.this_update())))
        });
        if taken {
            println!("the proxy now checks clients against {path}");
            return Ok(());
        }
        if start.elapsed() > RELOAD_WAIT {
            let now = match served {
                Ok(crls) if crls.is_empty() => "it uses no CRL".to_string(),
                Ok(crls) => {
                    let files: Vec<&str> = crls.iter().map(|(p, _)| p.as_str()).collect();
                    format!("it uses {}", files.join(", "))
                }
                Err(e) => e,
            };
            return Err(Stop::other(format!(
                "CA_CRL is set to {path}, but after the reload the proxy does not use it ({now}), so the CRL's clients are not refused yet; see journalctl -u {PROXY_UNIT}, fix what it names and run: sudo systemctl reload {PROXY_UNIT}"
            )));
        }
        // SIGHUP reloads asynchronously and nothing outside the proxy signals when it is done.
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Where the CRL is copied in `dir`: under its own name, or — when a file of
/// that name with other content is there, which is what every run of
/// `orca-catool issue_crl` leaves, as it writes the same name each time —
/// under the name with the CRL's number added (`crl.pem` → `crl-6.pem`), so
/// the monthly update needs no renaming and no file is ever overwritten.
fn crl_destination(
    root: &Root,
    dir: &Path,
    name: &str,
    data: &[u8],
    facts: &[Crl],
) -> Result<(String, Option<PathBuf>), String> {
    let taken = match destination(root, dir, name, data) {
        Ok(dest) => return Ok((name.to_string(), dest)),
        Err(taken) => taken,
    };
    let Some(tag) = facts.iter().map(Crl::name_tag).next() else {
        return Err(taken);
    };
    let path = Path::new(name);
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy())
        .unwrap_or_default();
    let numbered = match path.extension() {
        Some(ext) => format!("{stem}-{tag}.{}", ext.to_string_lossy()),
        None => format!("{stem}-{tag}"),
    };
    match destination(root, dir, &numbered, data) {
        Ok(dest) => Ok((numbered, dest)),
        Err(_) => Err(taken),
    }
}
