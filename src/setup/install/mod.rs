//! `install-cert ZIP`: put an orca-catool server certificate zip in place
//! (SPEC "Installing certificates"; `install-crl` is in `install_crl`). Every
//! check runs before anything is written; files are created mode 0400 for the
//! service user and never replace a different file of the same name; the
//! config is changed by rename after a backup; then the proxy is reloaded and
//! the result confirmed on the wire.
//!
//! This file decides what is written and writes it; `archive.rs` reads the
//! zip, `checks.rs` checks the new set, `../command.rs` holds what
//! `install-crl` shares.

mod archive;
mod checks;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sha2::Digest;

pub use super::command::DEFAULT_DIR;
use super::command::{self, destination, hex, parse_pem_certs, read_config, reload};
use super::fsutil::{Change, Program, Root};
use super::{PROXY_UNIT, Stop, jma_conf, wire};
use crate::x509::CertInfo;
use archive::read_zip;
use checks::check_cert;

/// How long the new certificate may take to be served after the reload.
const RELOAD_WAIT: Duration = Duration::from_secs(30);

/// The options of `install-cert`.
#[derive(Debug, Clone, clap::Args)]
pub struct CertArgs {
    /// the orca-catool server certificate zip (NNNNNN__JP_orca_<CN>.zip)
    pub zip: PathBuf,
    /// folder the certificate, key and ca.crt are copied to
    #[arg(long, default_value = DEFAULT_DIR)]
    pub dir: PathBuf,
    /// owner of the copied files (the user WebORCA and the proxy run as)
    #[arg(long, default_value = "orca")]
    pub owner: String,
    /// a host name or address the certificate must cover (repeatable)
    #[arg(long)]
    pub host: Vec<String>,
    /// accept a ca.crt other than the CA_CRT in use (every client certificate of the old CA is then refused)
    #[arg(long)]
    pub new_ca: bool,
    /// do not reload the proxy
    #[arg(long)]
    pub no_reload: bool,
    /// print what would be done, change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// take every path under this folder (packaging, tests)
    #[arg(long)]
    pub root: Option<PathBuf>,
}

/// Runs `install-cert`.
pub fn install_cert(args: &CertArgs, config_path: &Path) -> Result<(), Stop> {
    let args = &CertArgs {
        no_reload: command::no_reload(args.no_reload, &args.root),
        ..args.clone()
    };
    let root = Root {
        dir: args.root.clone(),
    };
    let zip_shown = args.zip.display().to_string();
    let refuse = command::refusal(&zip_shown);
    let z = read_zip(&args.zip)?;
    let info = check_cert(&z, &args.host).map_err(refuse)?;
    let config_text = read_config(&root, config_path)?;
    // The CA in use, when the config names one that can be read.
    // Read raw: a config without a server certificate yet does not validate.
    let current = crate::config::parse_raw(&config_text, config_path)
        .entries
        .iter()
        .rev()
        .find(|e| e.key == "CA_CRT" && !e.value.is_empty())
        .map(|e| {
            config_path
                .parent()
                .unwrap_or(Path::new("/"))
                .join(&e.value)
        });
    let mut ca_name = "ca.crt".to_string();
    if let Some(ca_path) = &current
        && let Ok(old) = std::fs::read(root.path(ca_path))
    {
        let old_certs = parse_pem_certs("CA_CRT", &old).unwrap_or_default();
        let new_certs = parse_pem_certs("ca.crt", &z.ca).map_err(refuse)?;
        if old_certs != new_certs {
            let old_subject = old_certs
                .first()
                .and_then(|c| CertInfo::from_der(c.as_ref()).ok())
                .map(|i| i.subject_oneline)
                .unwrap_or_default();
            let new_subject = CertInfo::from_der(new_certs[0].as_ref())
                .map(|i| i.subject_oneline)
                .unwrap_or_default();
            if !args.new_ca {
                return Err(refuse(format!(
                    "its ca.crt ({new_subject}) is not the CA_CRT in use ({}, {old_subject}): every client certificate of the old CA would be refused; pass --new-ca if that is what you want",
                    ca_path.display()
                )));
            }
            println!(
                "--new-ca: the new CA {new_subject} replaces {old_subject}; every client certificate of the old CA will be refused"
            );
            let hash = hex(&sha2::Sha256::digest(&z.ca)[..6]);
            if root.path(&args.dir.join("ca.crt")).exists() {
                ca_name = format!("ca-{hash}.crt");
            }
        }
    }
    let owner = command::owner(&root, &args.owner, refuse)?;
    let files = [
        (format!("{}.crt", z.stem), &z.crt),
        (format!("{}.pem", z.stem), &z.pem),
        (ca_name, &z.ca),
    ];
    let mut copies = Vec::new();
    let mut targets = Vec::new();
    for (name, data) in &files {
        let dest = destination(&root, &args.dir, name, data).map_err(refuse)?;
        targets.push(args.dir.join(name).display().to_string());
        if let Some(d) = dest {
            copies.push((d, *data));
        }
    }
    let raw = crate::config::parse_raw(&config_text, config_path);
    let mut keys: Vec<(&str, Option<&str>)> = vec![
        ("SERVER_CRT", Some(&targets[0])),
        ("SERVER_PEM", Some(&targets[1])),
        ("CA_CRT", Some(&targets[2])),
    ];
    if raw.entries.iter().any(|e| e.key == "SERVER_P12") {
        keys.push(("SERVER_P12", None));
    }
    let new_text = jma_conf::set_keys(&config_text, config_path, &keys).map_err(refuse)?;
    let loaded = crate::config::parse(&new_text, config_path)
        .map_err(|e| refuse(format!("the config would not work: {e}")))?;
    let change = Change::new(&root, config_path, new_text.into_bytes(), 0o644)
        .map_err(|e| Stop::other(format!("cannot read {}: {e}", config_path.display())))?;
    let systemctl = Program::systemctl();
    if args.dry_run {
        let shown: Vec<&Path> = copies.iter().map(|(d, _)| d.as_path()).collect();
        return command::dry_run("install-cert", &shown, &args.owner, &change, args.no_reload);
    }
    let copies: Vec<(&Path, &[u8])> = copies.iter().map(|(d, b)| (d.as_path(), &b[..])).collect();
    let keys = "SERVER_CRT, SERVER_PEM, CA_CRT";
    command::write(
        &root,
        &copies,
        (owner, &args.owner),
        &change,
        config_path,
        keys,
    )?;
    if args.no_reload {
        println!(
            "--no-reload: the proxy serves the new certificate after: sudo systemctl reload {PROXY_UNIT}"
        );
        return Ok(());
    }
    reload(&systemctl)?;
    let Some(listen) = loaded.config.listen.first().copied() else {
        return Ok(());
    };
    let addr = wire::local(listen);
    let start = Instant::now();
    loop {
        let served = wire::served_serial(addr);
        if served.as_deref() == Ok(info.serial_hex.as_str()) {
            println!(
                "the proxy at {addr} serves the new certificate {} (serial {})",
                info.subject_oneline, info.serial_hex
            );
            return Ok(());
        }
        if start.elapsed() > RELOAD_WAIT {
            let now = served.unwrap_or_else(|e| e);
            return Err(Stop::other(format!(
                "after the reload the proxy at {addr} does not serve serial {} ({now}); see journalctl -u {PROXY_UNIT}",
                info.serial_hex
            )));
        }
        // SIGHUP reloads asynchronously and nothing outside the proxy signals when it is done.
        std::thread::sleep(Duration::from_millis(200));
    }
}
