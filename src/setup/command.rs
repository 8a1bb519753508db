//! What `install-cert` and `install-crl` share: their last options and the
//! opening they make of them (no reload under `--root` without SYSTEMCTL, the
//! refusal that says nothing was installed), the owner of the copied files,
//! reading certificates and the config, the check that the new set loads, and
//! the writing itself (files copied 0400 and never over another file, the
//! config changed after a backup, the proxy reloaded).

use std::path::{Path, PathBuf};

use rustls::pki_types::CertificateDer;

use super::fsutil::{self, Change, Program, Root};
pub(super) use super::nofollow::read_regular;
use super::{PROXY_UNIT, Stop, preload};
use crate::config::Loaded;

/// How long the proxy may take, after the reload, to serve what was installed.
pub const RELOAD_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Where WebORCA keeps its certificates.
pub const DEFAULT_DIR: &str = "/opt/jma/weborca/conf";

/// The options `install-cert` and `install-crl` end with.
#[derive(Debug, Clone, clap::Args)]
pub struct InstallArgs {
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

/// What an install command runs with, made from its [`InstallArgs`] and its
/// input (the zip or the CRL given).
pub(super) struct Prepared {
    /// where every system path is taken
    pub(super) root: Root,
    /// `--no-reload`, or forced by `--root` without SYSTEMCTL
    pub(super) no_reload: bool,
    /// `--dry-run`
    pub(super) dry_run: bool,
    /// the input as the messages name it
    pub(super) shown: String,
}

impl Prepared {
    /// Refuses the input: a config error that says nothing was installed.
    pub(super) fn refuse(&self) -> impl Fn(String) -> Stop + Copy + '_ {
        refusal(&self.shown)
    }
}

/// The opening of `install-cert` and `install-crl` for `input`.
pub(super) fn prepare(input: &Path, args: &InstallArgs) -> Prepared {
    Prepared {
        root: Root {
            dir: args.root.clone(),
        },
        no_reload: no_reload(args.no_reload, &args.root),
        dry_run: args.dry_run,
        shown: input.display().to_string(),
    }
}

/// The `--no-reload` to run with: under `--root` without SYSTEMCTL the proxy
/// is not reloaded, since systemctl would act on this machine, not on the root.
fn no_reload(no_reload: bool, root: &Option<PathBuf>) -> bool {
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
        let passwd = root.read_path(Path::new("/etc/passwd"));
        refuse(format!(
            "user {owner} is not in {}: give the user WebORCA runs as with --owner",
            passwd.display()
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
/// that sets `keys` (after a backup). When a copy or the config fails, the
/// files this run copied are removed again and named: only those, since a
/// destination is one where no file was ([`destination`]) and [`copy_in`]
/// never writes over one. (Removing afterwards, rather than testing first
/// whether the config can be written: a test can pass and the write still
/// fail, the disk full or the folder changed in between.)
pub(super) fn write(
    root: &Root,
    copies: &[(&Path, &[u8])],
    owner: ((u32, u32), &str),
    change: &Change,
    config_path: &Path,
    keys: &str,
) -> Result<(), Stop> {
    let mut copied: Vec<&Path> = Vec::new();
    for (dest, data) in copies {
        if let Err(e) = copy_in(root, dest, data, owner.0) {
            return Err(remove_copied(root, &copied, e));
        }
        copied.push(dest);
        println!("copied {} (owner {}, mode 0400)", dest.display(), owner.1);
    }
    if change.is_change() {
        let kept = change.apply().map_err(|e| {
            remove_copied(
                root,
                &copied,
                Stop::other(format!("cannot write {}: {e}", config_path.display())),
            )
        })?;
        match kept {
            Some(k) => println!(
                "set {keys} in {} (the old one is kept as {})",
                config_path.display(),
                change.shown_kept(&k).display()
            ),
            None => println!("set {keys} in {}", config_path.display()),
        }
    }
    Ok(())
}

/// `stop`, after the files of `copied` (created by this run) are removed
/// again: its message says which were removed, and which could not be.
fn remove_copied(root: &Root, copied: &[&Path], stop: Stop) -> Stop {
    if copied.is_empty() {
        return Stop {
            message: format!("{}; nothing was installed", stop.message),
            ..stop
        };
    }
    let (mut removed, mut left) = (Vec::new(), Vec::new());
    for shown in copied.iter().rev() {
        match std::fs::remove_file(root.path(shown)) {
            Ok(()) => removed.push(shown.display().to_string()),
            Err(e) => left.push(format!("{} ({e}: remove it by hand)", shown.display())),
        }
    }
    let mut message = stop.message;
    if !removed.is_empty() {
        message.push_str(&format!(
            "; removed the files this run had copied: {}",
            removed.join(", ")
        ));
    }
    if left.is_empty() {
        message.push_str("; nothing was installed");
    } else {
        message.push_str(&format!("; NOT removed: {}", left.join(", ")));
    }
    Stop { message, ..stop }
}

/// The config `new_text` as the proxy would load it, checked with the files
/// `copies` in place (`preload`), and the change that writes it.
pub(super) fn checked_change(
    root: &Root,
    config_path: &Path,
    new_text: String,
    copies: &[(&Path, &[u8])],
    refuse: impl Fn(String) -> Stop,
) -> Result<(Loaded, Change), Stop> {
    let loaded = crate::config::parse(&new_text, config_path)
        .map_err(|e| refuse(format!("the config would not work: {e}")))?;
    preload::check_loads(root, &loaded.config, copies)
        .map_err(|e| refuse(format!("the new set would not load: {e}")))?;
    let change = Change::new(root, config_path, new_text.into_bytes(), 0o644)
        .map_err(|e| Stop::other(format!("cannot read {}: {e}", config_path.display())))?;
    Ok((loaded, change))
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
    match read_regular(&root.path(&shown), &shown)? {
        Some(old) if old == data => Ok(None),
        Some(_) => Err(format!(
            "{} already exists with other content and is never overwritten (orca-catool numbers every CA's files from 000001, so a new CA's may be named like the ones in use): install into a folder of its own with --dir {}, or move the old file away first",
            shown.display(),
            dir.with_file_name(format!(
                "{}-new",
                dir.file_name()
                    .map_or("conf".into(), |n| n.to_string_lossy())
            ))
            .display()
        )),
        None => Ok(Some(shown)),
    }
}

/// Copies `data` to system path `dest`, mode 0400, owned by `owner`; never over an existing file.
fn copy_in(root: &Root, dest: &Path, data: &[u8], owner: (u32, u32)) -> Result<(), Stop> {
    let real = root.path(dest);
    if let Some(dir) = real.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| Stop::other(format!("cannot create {}: {e}", dir.display())))?;
    }
    super::backup::create(&real, data, 0o400, Some(owner))
        .map_err(|e| Stop::other(format!("cannot write {}: {e}", dest.display())))
}

/// The config now, its text ("" when there is none); a link is refused.
pub(super) fn read_config(root: &Root, config_path: &Path) -> Result<String, Stop> {
    match read_regular(&root.path(config_path), config_path) {
        Ok(b) => Ok(String::from_utf8_lossy(&b.unwrap_or_default()).into_owned()),
        Err(e) => Err(Stop::config(format!("{e}; nothing was installed"))),
    }
}

/// `systemctl reload` of the proxy; on failure, says the files are in place.
pub(super) fn reload() -> Result<(), Stop> {
    let systemctl = Program::systemctl();
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The regression of a config that cannot be written after the copies
    /// were made: the copies made by this run go again and are named; a file
    /// that was there before stays. (A folder under a regular file cannot be
    /// made even by root, whom a read-only folder would not stop.)
    #[test]
    fn a_config_that_cannot_be_written_takes_this_runs_copies_away_again() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root {
            dir: Some(dir.path().to_path_buf()),
        };
        let conf_dir = dir.path().join("conf");
        std::fs::create_dir_all(&conf_dir).unwrap();
        std::fs::write(conf_dir.join("ca.crt"), "there before\n").unwrap();
        std::fs::write(dir.path().join("etc"), "a file, not a folder\n").unwrap();
        let (crt, pem) = (Path::new("/conf/new.crt"), Path::new("/conf/new.pem"));
        let copies: [(&Path, &[u8]); 2] = [(crt, b"crt"), (pem, b"pem")];
        let config = Path::new("/etc/proxy.conf");
        let change = Change {
            shown: config.to_path_buf(),
            path: root.path(config),
            old: None,
            new: b"SERVER_CRT=/conf/new.crt\n".to_vec(),
            mode: 0o644,
        };
        let (uid, gid) = {
            use std::os::unix::fs::MetadataExt;
            let m = std::fs::metadata(dir.path()).unwrap();
            (m.uid(), m.gid())
        };
        let stop = write(
            &root,
            &copies,
            ((uid, gid), "orca"),
            &change,
            config,
            "SERVER_CRT",
        )
        .unwrap_err();
        assert_eq!(stop.code, 1);
        assert!(
            stop.message.starts_with("cannot write /etc/proxy.conf: ")
                && stop.message.contains(
                    "removed the files this run had copied: /conf/new.pem, /conf/new.crt; nothing was installed"
                ),
            "{}",
            stop.message
        );
        assert!(!conf_dir.join("new.crt").exists() && !conf_dir.join("new.pem").exists());
        assert_eq!(
            std::fs::read_to_string(conf_dir.join("ca.crt")).unwrap(),
            "there before\n"
        );
    }
}
