//! `install-cert ZIP`: put an orca-catool server certificate zip in place
//! (SPEC "Installing certificates"; `install-crl` is in `install_crl`). Every
//! check runs before anything is written; files are created mode 0400 for the
//! service user and never replace a different file of the same name; the
//! config is changed by rename after a backup; then the proxy is reloaded and
//! the result confirmed on the wire.
//!
//! Before anything is written the new set is loaded as the proxy would load it
//! (`../preload.rs`); `--new-ca` takes the old CA's CRLs out of CA_CRL.
//! This file decides what is written and writes it; `archive.rs` reads the
//! zip, `checks.rs` checks the new set, `../command.rs` holds what
//! `install-crl` shares.

mod archive;
mod checks;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sha2::Digest;

pub use super::command::DEFAULT_DIR;
use super::command::{
    self, InstallArgs, destination, hex, parse_pem_certs, read_config, read_regular, reload,
};
use super::{PROXY_UNIT, Stop, crl_list, jma_conf, wire};
use crate::x509::CertInfo;
use archive::read_zip;
use checks::check_cert;

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
    /// --no-reload, --dry-run, --root
    #[command(flatten)]
    pub install: InstallArgs,
}

/// Runs `install-cert`.
/// The file the config's last non-empty `key` names (relative to the
/// config's folder). Read raw: a config without a server certificate yet
/// does not validate.
fn file_named(config_text: &str, config_path: &Path, key: &str) -> Option<PathBuf> {
    crate::config::parse_raw(config_text, config_path)
        .entries
        .iter()
        .rev()
        .find(|e| e.key == key && !e.value.is_empty())
        .map(|e| {
            config_path
                .parent()
                .unwrap_or(Path::new("/"))
                .join(&e.value)
        })
}

/// Without `--host`, the names clients use are not given: the names the
/// certificate in use covers stand for them, and each one the new
/// certificate does not cover is warned about (clients opening it would be
/// refused by their browser).
fn warn_names_dropped(
    root: &crate::setup::fsutil::Root,
    config_text: &str,
    config_path: &Path,
    new: &CertInfo,
) {
    let Some(current) = file_named(config_text, config_path, "SERVER_CRT") else {
        return;
    };
    let Ok(Some(pem)) = read_regular(&root.path(&current), &current) else {
        return;
    };
    let Some(old) = parse_pem_certs("SERVER_CRT", &pem)
        .ok()
        .and_then(|c| c.first().and_then(|c| CertInfo::from_der(c.as_ref()).ok()))
    else {
        return;
    };
    let names = old
        .dns_names
        .iter()
        .cloned()
        .chain(old.ip_addresses.iter().map(|ip| ip.to_string()));
    for name in names.filter(|n| !new.covers_host(n)) {
        println!(
            "warning: the new certificate does not name {name}, which the one in use ({}) names: clients that open https://{name}:8000 would be refused by their browser; pass --host {name} to require it",
            current.display()
        );
    }
}

pub fn install_cert(args: &CertArgs, config_path: &Path) -> Result<(), Stop> {
    let run = command::prepare(&args.zip, &args.install);
    let (root, refuse) = (&run.root, run.refuse());
    let z = read_zip(&args.zip)?;
    let info = check_cert(&z, &args.host).map_err(refuse)?;
    let config_text = read_config(root, config_path)?;
    // The CA in use, when the config names one that can be read.
    let current = file_named(&config_text, config_path, "CA_CRT");
    let mut ca_name = "ca.crt".to_string();
    let new_certs = parse_pem_certs("ca.crt", &z.ca).map_err(refuse)?;
    let mut ca_changed = false;
    let old_ca = match &current {
        Some(ca_path) => read_regular(&root.path(ca_path), ca_path)
            .map_err(|e| refuse(format!("CA_CRT: {e}")))?
            .map(|old| (ca_path, old)),
        None => None,
    };
    if let Some((ca_path, old)) = &old_ca {
        let old_certs = parse_pem_certs("CA_CRT", old).unwrap_or_default();
        if old_certs != new_certs {
            let old_subject = old_certs
                .first()
                .and_then(|c| CertInfo::from_der(c.as_ref()).ok())
                .map(|i| i.subject_oneline)
                .unwrap_or_default();
            let new_subject = CertInfo::from_der(new_certs[0].as_ref())
                .map(|i| i.subject_oneline)
                .unwrap_or_default();
            // Two CAs of one name (orca-catool's CAs of one clinic often
            // are) are told apart by their fingerprints.
            let fingerprint = |der: &[u8]| hex(&sha2::Sha256::digest(der));
            if !args.new_ca {
                let (new_named, old_named) = if old_subject == new_subject {
                    (
                        format!("{new_subject}, SHA-256 {}", fingerprint(&new_certs[0])),
                        format!(
                            "{old_subject} of the same name, SHA-256 {}",
                            old_certs.first().map_or(String::new(), |c| fingerprint(c))
                        ),
                    )
                } else {
                    (new_subject, old_subject)
                };
                return Err(refuse(format!(
                    "its ca.crt ({new_named}) is not the CA_CRT in use ({}, {old_named}): every client certificate of the old CA would be refused; pass --new-ca if that is what you want",
                    ca_path.display()
                )));
            }
            let replaced = if old_subject == new_subject {
                format!(
                    "the old CA of the same name (SHA-256 {}; the new one's is {})",
                    old_certs.first().map_or(String::new(), |c| fingerprint(c)),
                    fingerprint(&new_certs[0])
                )
            } else {
                old_subject
            };
            println!(
                "--new-ca: the new CA {new_subject} replaces {replaced}; every client certificate of the old CA will be refused"
            );
            ca_changed = true;
            // named by the certificate's fingerprint (what the line above
            // and `openssl x509 -fingerprint -sha256` show), not the file's
            let hash = hex(&sha2::Sha256::digest(&new_certs[0])[..6]);
            if std::fs::symlink_metadata(root.path(&args.dir.join("ca.crt"))).is_ok() {
                ca_name = format!("ca-{hash}.crt");
            }
        }
    }
    if args.host.is_empty() {
        warn_names_dropped(root, &config_text, config_path, &info);
    }
    let owner = command::owner(root, &args.owner, refuse)?;
    let files = [
        (format!("{}.crt", z.stem), &z.crt),
        (format!("{}.pem", z.stem), &z.pem),
        (ca_name, &z.ca),
    ];
    let mut copies = Vec::new();
    let mut targets = Vec::new();
    for (i, (name, data)) in files.iter().enumerate() {
        let dest = destination(root, &args.dir, name, data).map_err(refuse)?;
        targets.push(args.dir.join(name).display().to_string());
        match dest {
            Some(d) => copies.push((d, *data)),
            // The same key already there is used as it is: it must be as
            // private as the copy install-cert would have made.
            None if i == 1 => {
                key_kept_private(root, &args.dir.join(name), owner).map_err(refuse)?
            }
            None => {}
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
    // A new CA: the old CA's CRLs would make the proxy refuse the whole set
    // (a CRL not signed by CA_CRT), so they leave CA_CRL.
    let (crl_list, removed) = if ca_changed {
        let entries = crl_list::entries(root, &config_text, config_path);
        crl_list::without_other_cas(&entries, &new_certs)
    } else {
        (Vec::new(), Vec::new())
    };
    let crl_value = crl_list.join(",");
    if !removed.is_empty() {
        // Emptied rather than commented out: in jma-receipt.conf the comment
        // prefix is setup's, and `setup --rollback` would bring the line back.
        keys.push(("CA_CRL", Some(crl_value.as_str())));
    }
    let new_text = jma_conf::set_keys(&config_text, config_path, &keys).map_err(refuse)?;
    let copies: Vec<(&Path, &[u8])> = copies.iter().map(|(d, b)| (d.as_path(), &b[..])).collect();
    let (loaded, change) = command::checked_change(root, config_path, new_text, &copies, refuse)?;
    let removed: Vec<String> = removed
        .iter()
        .map(|(p, issuer)| format!("{} (the CRL of {issuer})", p.display()))
        .collect();
    let removed_line = format!(
        "removed from CA_CRL: {}; the clients of the new CA are not checked against a CRL until you install its CRL with: sudo weborca-mtls-proxy install-crl FILE",
        removed.join(", ")
    );
    if run.dry_run {
        if !removed.is_empty() {
            println!("--new-ca: would be {removed_line}");
        }
        let shown: Vec<&Path> = copies.iter().map(|(d, _)| *d).collect();
        return command::dry_run("install-cert", &shown, &args.owner, &change, run.no_reload);
    }
    let keys = if removed.is_empty() {
        "SERVER_CRT, SERVER_PEM, CA_CRT"
    } else {
        "SERVER_CRT, SERVER_PEM, CA_CRT, CA_CRL"
    };
    command::write(
        root,
        &copies,
        (owner, &args.owner),
        &change,
        config_path,
        keys,
    )?;
    if !removed.is_empty() {
        println!("--new-ca: {removed_line}");
    }
    if run.no_reload {
        println!(
            "--no-reload: the proxy serves the new certificate after: sudo systemctl reload {PROXY_UNIT}"
        );
        return Ok(());
    }
    reload()?;
    let Some(listen) = loaded.config.listen.first().copied() else {
        return Ok(());
    };
    let addr = wire::local(listen);
    // The whole leaf is compared, not its serial: every orca-catool CA
    // numbers from 01, so the old certificate of another CA may share it.
    let new_leaf = parse_pem_certs("the new certificate", &z.crt).map_err(refuse)?[0].clone();
    let start = Instant::now();
    loop {
        let served = wire::served_cert(addr);
        if served
            .as_ref()
            .is_ok_and(|d| d.as_ref() == new_leaf.as_ref())
        {
            println!(
                "the proxy at {addr} serves the new certificate {} (serial {})",
                info.subject_oneline, info.serial_hex
            );
            return Ok(());
        }
        if start.elapsed() > command::RELOAD_WAIT {
            let now = match served {
                Ok(d) => format!("it serves {}", wire::describe(d.as_ref())),
                Err(e) => e,
            };
            return Err(Stop::other(format!(
                "after the reload the proxy at {addr} does not serve the new certificate {} ({now}); see journalctl -u {PROXY_UNIT}",
                wire::describe(new_leaf.as_ref())
            )));
        }
        // SIGHUP reloads asynchronously and nothing outside the proxy signals when it is done.
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A private key found already in place (the same bytes as the zip's) is
/// refused when users other than its owner can read it, or when it does not
/// belong to `--owner` (the user the proxy runs as, who must read it): what a
/// fresh copy (0400, the owner) would not be.
fn key_kept_private(
    root: &super::fsutil::Root,
    shown: &Path,
    owner: (u32, u32),
) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(root.path(shown))
        .map_err(|e| format!("cannot read {}: {e}", shown.display()))?;
    let mode = m.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "{} is already there with the same key, but mode {mode:04o} lets other users read it: sudo chmod 0400 {}, then run install-cert again",
            shown.display(),
            shown.display()
        ));
    }
    if m.uid() != owner.0 {
        return Err(format!(
            "{} is already there with the same key, but belongs to uid {}, not to the --owner user (uid {}) the proxy runs as: sudo chown {}:{} {}, then run install-cert again",
            shown.display(),
            m.uid(),
            owner.0,
            owner.0,
            owner.1,
            shown.display()
        ));
    }
    Ok(())
}
