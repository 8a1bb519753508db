//! What `install-cert` and `install-crl` share: no reload under `--root`
//! without SYSTEMCTL, the refusal that says nothing was installed, the owner
//! of the copied files, reading certificates and the config, and the writing
//! itself (files copied 0400 and never over another file, the config changed
//! after a backup, the proxy reloaded).

use std::path::{Path, PathBuf};

use rustls::pki_types::CertificateDer;

use super::fsutil::{self, Change, Program, Root};
use super::{PROXY_UNIT, Stop};

/// Where WebORCA keeps its certificates.
pub const DEFAULT_DIR: &str = "/opt/jma/weborca/conf";

/// The `--no-reload` to run with: under `--root` without SYSTEMCTL the proxy
/// is not reloaded, since systemctl would act on this machine, not on the root.
pub(super) fn no_reload(no_reload: bool, root: &Option<PathBuf>) -> bool {
    if !no_reload && !super::systemctl_applies(root) {
        println!(
            "--root without SYSTEMCTL: the proxy is not reloaded (systemctl would act on this machine, not on the root)"
        );
        return true;
    }
    no_reload
}

/// Refuses the input `shown` (the zip or the CRL given): a config error that
/// says nothing was installed.
pub(super) fn refusal(shown: &str) -> impl Fn(String) -> Stop + Copy + '_ {
    move |why| Stop::config(format!("{shown}: {why}; nothing was installed"))
}

/// uid and gid of `--owner`, refused when the user does not exist.
pub(super) fn owner(
    root: &Root,
    owner: &str,
    refuse: impl Fn(String) -> Stop,
) -> Result<(u32, u32), Stop> {
    fsutil::lookup_user(root, owner).ok_or_else(|| {
        refuse(format!(
            "user {owner} does not exist on this machine: give the user WebORCA runs as with --owner"
        ))
    })
}

/// `--dry-run`: the files `command` would copy, the config's diff and the reload.
pub(super) fn dry_run(
    command: &str,
    copies: &[&Path],
    owner: &str,
    change: &Change,
    no_reload: bool,
) -> Result<(), Stop> {
    println!("--dry-run: nothing is changed. {command} would:");
    for d in copies {
        println!("copy {} (owner {owner}, mode 0400)", d.display());
    }
    if change.is_change() {
        print!("{}", change.diff());
    }
    if !no_reload {
        println!(
            "run: {}",
            Program::systemctl().shown(&["reload", PROXY_UNIT])
        );
    }
    Ok(())
}

/// Copies the files in (owner `owner`, mode 0400), then writes the config
/// that sets `keys` (after a backup); the config is left alone when a copy fails.
pub(super) fn write(
    root: &Root,
    copies: &[(&Path, &[u8])],
    owner: ((u32, u32), &str),
    change: &Change,
    config_path: &Path,
    keys: &str,
) -> Result<(), Stop> {
    for (dest, data) in copies {
        copy_in(root, dest, data, owner.0)?;
        println!("copied {} (owner {}, mode 0400)", dest.display(), owner.1);
    }
    if change.is_change() {
        change
            .apply()
            .map_err(|e| Stop::other(format!("cannot write {}: {e}", config_path.display())))?;
        println!(
            "set {keys} in {} (the old one is kept as {}{})",
            config_path.display(),
            config_path.display(),
            fsutil::BACKUP_SUFFIX
        );
    }
    Ok(())
}

/// The PEM certificates of `what` (a file of the zip, or CA_CRT); none is an error.
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
fn copy_in(root: &Root, dest: &Path, data: &[u8], owner: (u32, u32)) -> Result<(), Stop> {
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

/// `systemctl reload` of the proxy; on failure, says the files are in place.
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

/// Lower-case hex, two digits a byte.
pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
