//! `install-crl FILE`: a CRL from `orca-catool issue_crl` put in place like
//! the certificates of `install-cert`: it must be signed by the CA_CRT in use
//! and current; it is copied 0400 for the owner, CA_CRL is set after a backup,
//! the proxy is reloaded, and the command names the recently seen clients
//! (from `/status`) the CRL revokes.

use std::path::{Path, PathBuf};

use super::command::{self, DEFAULT_DIR, destination, hex, parse_pem_certs, read_config, reload};
use super::fsutil::{Change, Program, Root};
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

/// A serial as [`CertInfo::serial_hex`] writes it: leading zero bytes dropped, `00` for zero.
fn serial_hex(raw: &[u8]) -> String {
    let trimmed: Vec<u8> = raw.iter().copied().skip_while(|b| *b == 0).collect();
    if trimmed.is_empty() {
        "00".to_string()
    } else {
        hex(&trimmed)
    }
}

/// Runs `install-crl`.
pub fn install_crl(args: &CrlArgs, config_path: &Path) -> Result<(), Stop> {
    let args = &CrlArgs {
        no_reload: command::no_reload(args.no_reload, &args.root),
        ..args.clone()
    };
    let root = Root {
        dir: args.root.clone(),
    };
    let shown = args.file.display().to_string();
    let refuse = command::refusal(&shown);
    let data = std::fs::read(&args.file).map_err(|e| refuse(format!("cannot read: {e}")))?;
    let crls = crate::tls::load::parse_crls(&args.file, &data)
        .map_err(|e| refuse(format!("{}; {}", e.problem, e.fix)))?;
    let config_text = read_config(&root, config_path)?;
    let config = crate::config::parse(&config_text, config_path)
        .map_err(|e| refuse(format!("the config cannot be read: {e}")))?
        .config;
    let ca_path = config.ca_crt.clone().ok_or_else(|| {
        refuse(format!(
            "CA_CRT is not set in {}: the CRL's signature cannot be checked",
            config_path.display()
        ))
    })?;
    let ca_data = std::fs::read(root.path(&ca_path))
        .map_err(|e| refuse(format!("cannot read CA_CRT {}: {e}", ca_path.display())))?;
    let cas = parse_pem_certs("CA_CRT", &ca_data).map_err(refuse)?;
    let now = chrono::Utc::now();
    let mut revoked: Vec<String> = Vec::new();
    for crl in &crls {
        let info = crate::tls::crl::check(&args.file, crl, &cas)
            .map_err(|e| refuse(format!("{}; {}", e.problem, e.fix)))?;
        if info.next_update.is_some_and(|n| n < now) {
            return Err(refuse(format!(
                "the CRL is out of date (nextUpdate {}): make a new one with orca-catool issue_crl",
                info.next_update.unwrap_or_default()
            )));
        }
        if let Ok((_, parsed)) = x509_parser::parse_x509_crl(crl.as_ref()) {
            revoked.extend(
                parsed
                    .iter_revoked_certificates()
                    .map(|r| serial_hex(r.raw_serial())),
            );
        }
    }
    let name = args
        .file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "ca.crl".to_string());
    let owner = command::owner(&root, &args.owner, refuse)?;
    let dest = destination(&root, &args.dir, &name, &data).map_err(refuse)?;
    let target = args.dir.join(&name).display().to_string();
    let new_text = jma_conf::set_keys(&config_text, config_path, &[("CA_CRL", Some(&target))])
        .map_err(refuse)?;
    let loaded = crate::config::parse(&new_text, config_path)
        .map_err(|e| refuse(format!("the config would not work: {e}")))?;
    let change = Change::new(&root, config_path, new_text.into_bytes(), 0o644)
        .map_err(|e| Stop::other(format!("cannot read {}: {e}", config_path.display())))?;
    let systemctl = Program::systemctl();
    if args.dry_run {
        let shown: Vec<&Path> = dest.iter().map(PathBuf::as_path).collect();
        return command::dry_run("install-crl", &shown, &args.owner, &change, args.no_reload);
    }
    let copies: Vec<(&Path, &[u8])> = dest.iter().map(|d| (d.as_path(), &data[..])).collect();
    let keys = format!("CA_CRL={target}");
    command::write(
        &root,
        &copies,
        (owner, &args.owner),
        &change,
        config_path,
        &keys,
    )?;
    println!(
        "the CRL revokes {} serial(s){}",
        revoked.len(),
        if revoked.is_empty() {
            String::new()
        } else {
            format!(": {}", revoked.join(", "))
        }
    );
    if args.no_reload {
        println!("--no-reload: the proxy refuses them after: sudo systemctl reload {PROXY_UNIT}");
        return Ok(());
    }
    reload(&systemctl)?;
    match loaded.config.status_listen {
        None => println!("STATUS_LISTEN is not set: the recently seen clients cannot be listed"),
        Some(status) => match wire::seen_clients(status) {
            Err(e) => println!("the recently seen clients cannot be listed: {e}"),
            Ok(clients) => {
                let hit: Vec<String> = clients
                    .iter()
                    .filter(|(_, s)| revoked.contains(s))
                    .map(|(cn, s)| format!("CN={cn} (serial {s})"))
                    .collect();
                if hit.is_empty() {
                    println!(
                        "none of the {} recently seen client(s) is revoked",
                        clients.len()
                    );
                } else {
                    println!("recently seen clients now refused: {}", hit.join(", "));
                }
            }
        },
    }
    Ok(())
}
