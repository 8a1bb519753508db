//! `install-cert ZIP`: put an orca-catool server certificate zip in place
//! (SPEC "Installing certificates"; `install-crl` is in `install_crl`). Every
//! check runs before anything is written; files are created mode 0400 for the
//! service user and never replace a different file of the same name; the
//! config is changed by rename after a backup; then the proxy is reloaded and
//! the result confirmed on the wire.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use sha2::Digest;

use super::fsutil::{self, Change, Program, Root};
use super::{PROXY_UNIT, Stop, jma_conf, wire};
use crate::x509::CertInfo;

/// Where WebORCA keeps its certificates.
pub const DEFAULT_DIR: &str = "/opt/jma/weborca/conf";
/// A member of an orca-catool zip is a few kilobytes; anything far larger is not one.
const MAX_ENTRY_BYTES: u64 = 1 << 20;
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

/// The members of the zip that are used, by role.
struct ZipCert {
    stem: String,
    crt: Vec<u8>,
    pem: Vec<u8>,
    ca: Vec<u8>,
}

/// Reads the zip, refusing anything an orca-catool server certificate zip does not hold.
fn read_zip(path: &Path) -> Result<ZipCert, Stop> {
    let shown = path.display();
    let refuse = |why: String| Stop::config(format!("{shown}: {why}; nothing was installed"));
    let file = std::fs::File::open(path).map_err(|e| refuse(format!("cannot open: {e}")))?;
    let mut archive = zip::ZipArchive::new(file).map_err(|e| {
        refuse(format!(
            "not a zip file ({e}); give the .zip orca-catool issue_server_cert made"
        ))
    })?;
    // (folder, file name, content)
    let mut members: Vec<(Option<String>, String, Vec<u8>)> = Vec::new();
    let mut folders: Vec<String> = Vec::new();
    for i in 0..archive.len() {
        let mut entry = archive
            .by_index(i)
            .map_err(|e| refuse(format!("entry {i} cannot be read: {e}")))?;
        let name = entry.name().to_string();
        let fix = "use the zip exactly as orca-catool made it";
        if name.starts_with('/')
            || name.contains('\\')
            || name.split('/').any(|p| p == ".." || p == ".")
            || entry.enclosed_name().is_none()
        {
            return Err(refuse(format!(
                "entry {name:?} has an absolute path or `..`; {fix}"
            )));
        }
        if entry.is_symlink() {
            return Err(refuse(format!("entry {name:?} is a link; {fix}")));
        }
        let parts: Vec<&str> = name.trim_end_matches('/').split('/').collect();
        if entry.is_dir() {
            if parts.len() != 1 {
                return Err(refuse(format!("entry {name:?} is a nested folder; {fix}")));
            }
            folders.push(parts[0].to_string());
            continue;
        }
        if !entry.is_file() || parts.len() > 2 || parts.iter().any(|p| p.is_empty()) {
            return Err(refuse(format!(
                "entry {name:?} is not a file of an orca-catool zip; {fix}"
            )));
        }
        if entry.size() > MAX_ENTRY_BYTES {
            return Err(refuse(format!(
                "entry {name:?} is {} bytes, too large for a certificate file",
                entry.size()
            )));
        }
        let mut data = Vec::new();
        entry
            .by_ref()
            .take(MAX_ENTRY_BYTES + 1)
            .read_to_end(&mut data)
            .map_err(|e| refuse(format!("entry {name:?} cannot be read: {e}")))?;
        let (folder, file) = match parts.as_slice() {
            [f] => (None, f.to_string()),
            [d, f] => (Some(d.to_string()), f.to_string()),
            _ => return Err(refuse(format!("entry {name:?} is nested too deep; {fix}"))),
        };
        members.push((folder, file, data));
    }
    let certs: Vec<&String> = members
        .iter()
        .map(|(_, f, _)| f)
        .filter(|f| f.ends_with(".crt") && *f != "ca.crt")
        .collect();
    let [crt_name] = certs.as_slice() else {
        return Err(refuse(format!(
            "expected one NNNNNN__JP_orca_<CN>.crt besides ca.crt, found {}",
            certs.len()
        )));
    };
    let stem = crt_name.trim_end_matches(".crt").to_string();
    let allowed: Vec<String> = [".crt", ".pem", ".enc.pem", ".p12", ".pass"]
        .iter()
        .map(|s| format!("{stem}{s}"))
        .chain(["ca.crt".to_string()])
        .collect();
    for d in &folders {
        if *d != stem {
            return Err(refuse(format!(
                "folder {d:?} is not {stem:?}, the certificate's name"
            )));
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for (folder, file, _) in &members {
        if folder.as_ref().is_some_and(|d| *d != stem) {
            return Err(refuse(format!(
                "entry {:?} is in folder {folder:?}, not {stem:?}",
                file
            )));
        }
        if !allowed.contains(file) {
            return Err(refuse(format!(
                "entry {file:?} is not one of {}",
                allowed.join(", ")
            )));
        }
        if !seen.insert(file.clone()) {
            return Err(refuse(format!("entry {file:?} is there twice")));
        }
    }
    let take = |name: &str| {
        members
            .iter()
            .find(|(_, f, _)| f == name)
            .map(|(_, _, d)| d.clone())
            .ok_or_else(|| refuse(format!("{name} is missing from the zip")))
    };
    Ok(ZipCert {
        crt: take(&format!("{stem}.crt"))?,
        pem: take(&format!("{stem}.pem"))?,
        ca: take("ca.crt")?,
        stem,
    })
}

pub(super) fn parse_pem_certs(
    what: &str,
    data: &[u8],
) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<_> = crate::tls::load::parse_certs("SERVER_CRT", Path::new(what), data)
        .map_err(|e| format!("{what} is not a certificate: {}", e.problem))?;
    if certs.is_empty() {
        return Err(format!("{what} holds no certificate"));
    }
    Ok(certs)
}

/// Checks the certificate, key and CA of the zip; the certificate's info on success.
fn check_cert(z: &ZipCert, hosts: &[String]) -> Result<CertInfo, String> {
    let crt_name = format!("{}.crt", z.stem);
    let pem_name = format!("{}.pem", z.stem);
    let chain = parse_pem_certs(&crt_name, &z.crt)?;
    let cas = parse_pem_certs("ca.crt", &z.ca)?;
    let leaf_der = &chain[0];
    let info = CertInfo::from_der(leaf_der.as_ref())
        .map_err(|e| format!("{crt_name}: {}", e.message()))?;
    let (_, leaf) = x509_parser::parse_x509_certificate(leaf_der.as_ref())
        .map_err(|e| format!("{crt_name}: {e}"))?;
    if let Ok(Some(eku)) = leaf.extended_key_usage()
        && !eku.value.server_auth
        && !eku.value.any
    {
        return Err(format!(
            "{crt_name} is a client certificate (no serverAuth): use the zip of orca-catool issue_server_cert, not issue_client_cert"
        ));
    }
    if info.dns_names.is_empty()
        && info.ip_addresses.is_empty()
        && info.common_name.as_deref().is_none_or(str::is_empty)
    {
        return Err(format!(
            "{crt_name} names no host (no SAN, no CN): it is not a server certificate"
        ));
    }
    let now = chrono::Utc::now();
    if info.not_after < now {
        return Err(format!(
            "{crt_name} expired on {}: issue a new one with orca-catool issue_server_cert",
            info.not_after
        ));
    }
    if info.not_before > now {
        return Err(format!(
            "{crt_name} is not valid before {}: check this machine's clock",
            info.not_before
        ));
    }
    // The key: no passphrase, and the one of this certificate.
    if std::str::from_utf8(&z.pem).is_ok_and(|t| t.contains("ENCRYPTED")) {
        return Err(format!(
            "{pem_name} is protected by a passphrase: the zip's .pem must be the one without"
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(&z.pem)
        .map_err(|e| format!("{pem_name} holds no usable private key: {e}"))?;
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| format!("{pem_name}: unsupported private key: {e}"))?;
    rustls::sign::CertifiedKey::new(chain.clone(), signing)
        .keys_match()
        .map_err(|e| {
            format!("{pem_name} does not match {crt_name} ({e}): use the key issued with it")
        })?;
    // The chain: signed by the zip's CA.
    let signed = cas.iter().any(|ca| {
        x509_parser::parse_x509_certificate(ca.as_ref()).is_ok_and(|(_, ca)| {
            ca.subject().as_raw() == leaf.issuer().as_raw()
                && leaf.verify_signature(Some(ca.public_key())).is_ok()
        })
    });
    if !signed {
        return Err(format!(
            "{crt_name} (issued by {}) does not chain to the zip's ca.crt: the zip mixes files of two CAs",
            info.issuer_oneline
        ));
    }
    for host in hosts {
        if !info.covers_host(host) {
            let names: Vec<String> = info
                .dns_names
                .iter()
                .cloned()
                .chain(info.ip_addresses.iter().map(|i| i.to_string()))
                .collect();
            return Err(format!(
                "{crt_name} does not cover {host} (it names {}): issue one with orca-catool issue_server_cert for that name",
                names.join(", ")
            ));
        }
    }
    Ok(info)
}

/// The destination of a file, or None when the same content is already there.
pub(super) fn destination(
    root: &Root,
    dir: &Path,
    name: &str,
    data: &[u8],
) -> Result<Option<PathBuf>, String> {
    let shown = dir.join(name);
    match std::fs::read(root.path(&shown)) {
        Ok(old) if old == data => Ok(None),
        Ok(_) => Err(format!(
            "{} already exists with other content and is never overwritten: move it away first",
            shown.display()
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Some(shown)),
        Err(e) => Err(format!("cannot read {}: {e}", shown.display())),
    }
}

/// Copies `data` to system path `dest`, mode 0400, owned by `owner`; never over an existing file.
pub(super) fn copy_in(
    root: &Root,
    dest: &Path,
    data: &[u8],
    owner: (u32, u32),
) -> Result<(), Stop> {
    let real = root.path(dest);
    if let Some(dir) = real.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| Stop::other(format!("cannot create {}: {e}", dir.display())))?;
    }
    let tmp = fsutil::temp_beside(&real);
    let result = fsutil::write_new(&tmp, data, 0o400, Some(owner))
        // A hard link fails when the name exists: no file is ever replaced.
        .and_then(|()| std::fs::hard_link(&tmp, &real));
    let _ = std::fs::remove_file(&tmp);
    result.map_err(|e| Stop::other(format!("cannot write {}: {e}", dest.display())))
}

/// The config now, its text ("" when there is none).
pub(super) fn read_config(root: &Root, config_path: &Path) -> Result<String, Stop> {
    match std::fs::read(root.path(config_path)) {
        Ok(b) => Ok(String::from_utf8_lossy(&b).into_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(Stop::config(format!(
            "cannot read {}: {e}",
            config_path.display()
        ))),
    }
}

/// Runs `install-cert`.
pub fn install_cert(args: &CertArgs, config_path: &Path) -> Result<(), Stop> {
    if !args.no_reload && !super::systemctl_applies(&args.root) {
        println!(
            "--root without SYSTEMCTL: the proxy is not reloaded (systemctl would act on this machine, not on the root)"
        );
        let args = CertArgs {
            no_reload: true,
            ..args.clone()
        };
        return install_cert(&args, config_path);
    }
    let root = Root {
        dir: args.root.clone(),
    };
    let zip_shown = args.zip.display().to_string();
    let refuse = |why: String| Stop::config(format!("{zip_shown}: {why}; nothing was installed"));
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
    let owner = fsutil::lookup_user(&root, &args.owner).ok_or_else(|| {
        refuse(format!(
            "user {} does not exist on this machine: give the user WebORCA runs as with --owner",
            args.owner
        ))
    })?;
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
        println!("--dry-run: nothing is changed. install-cert would:");
        for (d, _) in &copies {
            println!("copy {} (owner {}, mode 0400)", d.display(), args.owner);
        }
        if change.is_change() {
            print!("{}", change.diff());
        }
        if !args.no_reload {
            println!("run: {}", systemctl.shown(&["reload", PROXY_UNIT]));
        }
        return Ok(());
    }
    for (dest, data) in &copies {
        copy_in(&root, dest, data, owner)?;
        println!(
            "copied {} (owner {}, mode 0400)",
            dest.display(),
            args.owner
        );
    }
    if change.is_change() {
        change
            .apply()
            .map_err(|e| Stop::other(format!("cannot write {}: {e}", config_path.display())))?;
        println!(
            "set SERVER_CRT, SERVER_PEM, CA_CRT in {} (the old one is kept as {}{})",
            config_path.display(),
            config_path.display(),
            fsutil::BACKUP_SUFFIX
        );
    }
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

pub(super) fn reload(systemctl: &Program) -> Result<(), Stop> {
    println!("run: {}", systemctl.shown(&["reload", PROXY_UNIT]));
    systemctl
        .run(&["reload", PROXY_UNIT])
        .map(drop)
        .map_err(|e| {
            Stop::other(format!(
                "{e}; the files are in place, reload by hand: sudo systemctl reload {PROXY_UNIT}"
            ))
        })
}

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
