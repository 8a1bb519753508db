//! What the system-changing commands (`setup`, `install-cert`, `install-crl`)
//! share: paths taken under `--root`, planned file changes shown as unified
//! diffs and written by rename after a backup, and the external programs
//! (`systemctl`, `nft`) they run, which `SYSTEMCTL` and `NFT` may replace.

use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Suffix of the copy kept of a file before it is changed.
pub const BACKUP_SUFFIX: &str = ".before-weborca-mtls-proxy";

/// Where system paths are: `/` normally, `--root DIR` for packaging and tests.
#[derive(Debug, Clone, Default)]
pub struct Root {
    /// the `--root` folder, if one was given
    pub dir: Option<PathBuf>,
}

impl Root {
    /// The real location of the system path `p` (absolute paths are taken
    /// under the root, resolved as inside a chroot: see [`in_root`]).
    pub fn path(&self, p: &Path) -> PathBuf {
        match &self.dir {
            None => p.to_path_buf(),
            Some(dir) => in_root(dir, p, false),
        }
    }

    /// As [`Root::path`], for a file that is only read: a link there is
    /// followed too, within the root, as a chroot would (so a root's
    /// `/etc/passwd -> /etc/passwd.real`, or an absolute link to a
    /// certificate, is read from the root, never from this machine).
    pub fn read_path(&self, p: &Path) -> PathBuf {
        match &self.dir {
            None => p.to_path_buf(),
            Some(dir) => in_root(dir, p, true),
        }
    }
}

/// Where a path resolving into a loop of links is sent: a name no file can
/// have (a NUL byte), so that every attempt to read, write or create it fails
/// at once, and no folder is made for it.
const LINK_LOOP: &str = "symbolic-link-loop\0";

/// `p` under `dir` as a chroot to `dir` sees it, so that nothing given under
/// `--root` reaches outside it: `..` stops at `dir`, and a symbolic link
/// among the parent folders is followed within `dir` (an absolute target is
/// taken under it, a relative one from the link's folder). The last
/// component is followed the same way only with `follow_last` (a file that
/// is only read); otherwise the commands refuse a link there themselves.
/// Written here because the kernel's own way (`openat2` with
/// `RESOLVE_IN_ROOT`) works on descriptors, and these commands on paths.
fn in_root(dir: &Path, p: &Path, follow_last: bool) -> PathBuf {
    use std::collections::VecDeque;
    use std::ffi::OsString;
    use std::path::Component;
    /// more links than a path may go through (Linux's MAXSYMLINKS)
    const MAX_LINKS: usize = 40;
    /// `Some(name)`, or `None` for `..`; the root and `.` are dropped
    fn parts(p: &Path) -> impl Iterator<Item = Option<OsString>> + '_ {
        p.components().filter_map(|c| match c {
            Component::Normal(name) => Some(Some(name.to_os_string())),
            Component::ParentDir => Some(None),
            Component::RootDir | Component::Prefix(_) | Component::CurDir => None,
        })
    }
    let mut pending: VecDeque<Option<OsString>> = parts(p).collect();
    let mut resolved: Vec<OsString> = Vec::new();
    let mut links = 0;
    while let Some(part) = pending.pop_front() {
        let Some(name) = part else {
            resolved.pop();
            continue;
        };
        resolved.push(name);
        if pending.is_empty() && !follow_last {
            break;
        }
        let here: PathBuf = resolved.iter().collect();
        let Ok(target) = std::fs::read_link(dir.join(&here)) else {
            continue;
        };
        links += 1;
        if links > MAX_LINKS {
            let mut name = std::ffi::OsString::from(LINK_LOOP);
            name.push(p.file_name().unwrap_or_default());
            return dir.join(name);
        }
        resolved.pop();
        if target.is_absolute() {
            resolved.clear();
        }
        for part in parts(&target).collect::<Vec<_>>().into_iter().rev() {
            pending.push_front(part);
        }
    }
    resolved
        .iter()
        .fold(dir.to_path_buf(), |path, part| path.join(part))
}

/// One file to be written, with what it holds now.
#[derive(Debug, Clone)]
pub struct Change {
    /// the system path, for messages and diffs
    pub shown: PathBuf,
    /// the real path (under the root)
    pub path: PathBuf,
    /// its content now, `None` when it does not exist
    pub old: Option<Vec<u8>>,
    /// its content after the change
    pub new: Vec<u8>,
    /// the mode of a new file (an existing file keeps its own)
    pub mode: u32,
}

impl Change {
    /// A change of the file at system path `shown` to `new`; reads what is there now.
    pub fn new(root: &Root, shown: &Path, new: Vec<u8>, mode: u32) -> std::io::Result<Change> {
        let path = root.path(shown);
        // A link would be replaced by a file on rename while its target was
        // read and backed up: refused, not followed.
        let old = super::nofollow::read_regular(&path, shown).map_err(std::io::Error::other)?;
        // The copy `apply` keeps is checked now, so a link planted at its name
        // stops the command before anything is written, not half-way.
        let first = with_suffix(&path, BACKUP_SUFFIX);
        super::nofollow::read_regular(&first, &with_suffix(shown, BACKUP_SUFFIX))
            .map_err(std::io::Error::other)?;
        Ok(Change {
            shown: shown.to_path_buf(),
            path,
            old,
            new,
            mode,
        })
    }

    /// Whether writing would change anything.
    pub fn is_change(&self) -> bool {
        self.old.as_deref() != Some(self.new.as_slice())
    }

    /// The change as a unified diff (`--dry-run`).
    pub fn diff(&self) -> String {
        let old = self
            .old
            .as_deref()
            .map(String::from_utf8_lossy)
            .unwrap_or_default();
        let new = String::from_utf8_lossy(&self.new);
        let shown = self.shown.display().to_string();
        let from = if self.old.is_some() {
            shown.clone()
        } else {
            "/dev/null".to_string()
        };
        similar::TextDiff::from_lines(old.as_ref(), new.as_ref())
            .unified_diff()
            .context_radius(3)
            .header(&from, &shown)
            .to_string()
    }

    /// Keeps a copy of the file ([`super::backup::keep`]: the first original as
    /// `FILE.before-weborca-mtls-proxy`, later ones timestamped), then writes the new
    /// content to a temporary file beside it and renames it over the file, so that a
    /// reader sees the old or the new file, never half of one. Returns where the old
    /// content is kept (`None` when there was no file).
    pub fn apply(&self) -> std::io::Result<Option<PathBuf>> {
        let dir = self.path.parent().unwrap_or(Path::new("/"));
        std::fs::create_dir_all(dir)?;
        let (mode, owner) = match std::fs::metadata(&self.path) {
            Ok(m) => (m.mode() & 0o7777, Some((m.uid(), m.gid()))),
            Err(_) => (self.mode, None),
        };
        let kept = match &self.old {
            Some(old) => Some(super::backup::keep(&self.path, old, mode, owner)?),
            None => None,
        };
        write_replace(&self.path, &self.new, mode, owner)?;
        Ok(kept)
    }

    /// The system path (as the operator knows it) of a copy `apply` kept at `real`.
    pub fn shown_kept(&self, real: &Path) -> PathBuf {
        match real.file_name() {
            Some(name) => self.shown.with_file_name(name),
            None => real.to_path_buf(),
        }
    }

    /// Puts back what was there before `apply` (removes a file that did not exist),
    /// when a later step of the same command failed.
    pub fn undo(&self) -> std::io::Result<()> {
        match &self.old {
            None => std::fs::remove_file(&self.path),
            Some(old) => {
                let m = std::fs::metadata(&self.path)?;
                write_replace(&self.path, old, m.mode() & 0o7777, Some((m.uid(), m.gid())))
            }
        }
    }
}

/// Applies `changes` in order; when one fails, the ones already written are put
/// back (last first), so a failed command leaves the files as it found them.
/// Returns, for each change, where its old content is kept.
pub fn apply_all(changes: &[&Change]) -> Result<Vec<Option<PathBuf>>, String> {
    let mut kept: Vec<Option<PathBuf>> = Vec::new();
    for c in changes {
        let e = match c.apply() {
            Ok(k) => {
                kept.push(k);
                continue;
            }
            Err(e) => e,
        };
        let mut undone = Vec::new();
        for (d, k) in changes.iter().zip(&kept).rev() {
            match d.undo() {
                Ok(()) => undone.push(d.shown.display().to_string()),
                Err(u) => undone.push(format!(
                    "{} NOT put back ({u}; its old content is in {})",
                    d.shown.display(),
                    k.as_deref()
                        .map(|k| d.shown_kept(k).display().to_string())
                        .unwrap_or_else(|| "no file: it did not exist".to_string())
                )),
            }
        }
        let undone = if undone.is_empty() {
            String::new()
        } else {
            format!("; put back: {}", undone.join(", "))
        };
        return Err(format!("cannot write {}: {e}{undone}", c.shown.display()));
    }
    Ok(kept)
}

/// `path` with `suffix` added to its file name.
pub fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

/// Writes `data` to a temporary file in the folder of `path` with `mode` (and owner),
/// flushes it to disk and renames it to `path`.
pub fn write_replace(
    path: &Path,
    data: &[u8],
    mode: u32,
    owner: Option<(u32, u32)>,
) -> std::io::Result<()> {
    let tmp = temp_beside(path);
    let result = (|| {
        write_new(&tmp, data, mode, owner)?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Creates `path` (which must not exist) with `data`, `mode` and owner, synced.
pub fn write_new(
    path: &Path,
    data: &[u8],
    mode: u32,
    owner: Option<(u32, u32)>,
) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(data)?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::fchown(&f, Some(uid), Some(gid))?;
    }
    // After chown, which clears set-id bits; the mode is the one asked for.
    f.set_permissions(std::fs::Permissions::from_mode(mode))?;
    f.sync_all()
}

/// A temporary name in the folder of `path`, so the rename stays on one file system.
pub fn temp_beside(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let unique = format!(
        ".{name}.tmp-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0)
    );
    path.with_file_name(unique)
}

pub use crate::program::Program;

/// The effective user id of this process, from /proc/self/status.
pub fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// uid and gid of `user` from the passwd file under `root`.
pub fn lookup_user(root: &Root, user: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string(root.read_path(Path::new("/etc/passwd"))).ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.first() == Some(&user) && f.len() > 3 {
            Some((f[2].parse().ok()?, f[3].parse().ok()?))
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_takes_absolute_paths_under_it() {
        let root = Root {
            dir: Some(PathBuf::from("/tmp/r")),
        };
        assert_eq!(
            root.path(Path::new("/etc/x.conf")),
            PathBuf::from("/tmp/r/etc/x.conf")
        );
        assert_eq!(
            Root::default().path(Path::new("/etc/x.conf")),
            PathBuf::from("/etc/x.conf")
        );
    }

    #[test]
    fn paths_under_the_root_never_leave_it() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let root = Root {
            dir: Some(d.to_path_buf()),
        };
        let under = |p: &str| root.path(Path::new(p));
        std::fs::create_dir_all(d.join("usr/lib")).unwrap();
        std::fs::create_dir_all(d.join("opt/real")).unwrap();
        // merged /usr, an absolute link, a link to the host's own folder
        std::os::unix::fs::symlink("usr/lib", d.join("lib")).unwrap();
        std::os::unix::fs::symlink("/opt/real", d.join("opt/jma")).unwrap();
        std::os::unix::fs::symlink("/etc", d.join("etc")).unwrap();
        std::os::unix::fs::symlink("../../..", d.join("opt/real/up")).unwrap();
        assert_eq!(under("/../../srv/passwd"), d.join("srv/passwd"));
        assert_eq!(under("/opt/../../x"), d.join("x"));
        assert_eq!(under("/lib/x.so"), d.join("usr/lib/x.so"));
        assert_eq!(under("/opt/jma/conf/a.crt"), d.join("opt/real/conf/a.crt"));
        assert_eq!(under("/opt/jma/up/etc2/f"), d.join("etc2/f"));
        // the last component is not followed
        assert_eq!(under("/opt/jma"), d.join("opt/jma"));
        // root/etc -> /etc is root/etc again: a loop, never the host's /etc
        for p in ["/etc/passwd", "/../etc/passwd", "/etc/sub/new.conf"] {
            let looped = under(p);
            assert!(looped.starts_with(d), "{looped:?}");
            assert!(std::fs::read(&looped).is_err());
            // nor can it be made: no folder, no file
            assert!(std::fs::create_dir_all(&looped).is_err(), "{p}");
            assert!(std::fs::write(&looped, "x").is_err(), "{p}");
        }
        let c = Change::new(&root, Path::new("/etc/new.conf"), b"x".to_vec(), 0o644);
        assert!(
            c.is_err() || c.unwrap().apply().is_err(),
            "a write through the loop"
        );
        assert_eq!(
            std::fs::read_dir(d).unwrap().count(),
            4,
            "nothing was made in the root"
        );
    }

    #[test]
    fn a_file_that_is_only_read_is_followed_within_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let root = Root {
            dir: Some(d.to_path_buf()),
        };
        std::fs::create_dir_all(d.join("etc")).unwrap();
        std::fs::create_dir_all(d.join("opt/real")).unwrap();
        std::fs::write(d.join("etc/passwd.real"), "orca:x:1000:1000::/:/bin/sh\n").unwrap();
        // absolute links that name this machine's files, outside the root
        std::os::unix::fs::symlink("/etc/passwd.real", d.join("etc/passwd")).unwrap();
        std::os::unix::fs::symlink("/opt/real/a.crt", d.join("etc/a.crt")).unwrap();
        std::os::unix::fs::symlink("../../../../../etc/hostname", d.join("opt/up")).unwrap();
        std::os::unix::fs::symlink("loop2", d.join("etc/loop1")).unwrap();
        std::os::unix::fs::symlink("loop1", d.join("etc/loop2")).unwrap();
        let read = |p: &str| root.read_path(Path::new(p));
        assert_eq!(read("/etc/passwd"), d.join("etc/passwd.real"));
        assert_eq!(read("/etc/a.crt"), d.join("opt/real/a.crt"));
        assert_eq!(read("/opt/up"), d.join("etc/hostname"));
        assert!(std::fs::read(read("/etc/loop1")).is_err());
        assert!(read("/etc/loop1").starts_with(d));
        // a file to be written keeps its link, which the commands refuse
        assert_eq!(root.path(Path::new("/etc/passwd")), d.join("etc/passwd"));
        assert_eq!(
            Root::default().read_path(Path::new("/etc/x")),
            PathBuf::from("/etc/x")
        );
    }

    #[test]
    fn apply_keeps_a_backup_and_the_mode() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root {
            dir: Some(dir.path().to_path_buf()),
        };
        let real = dir.path().join("etc/a.conf");
        std::fs::create_dir_all(real.parent().unwrap()).unwrap();
        std::fs::write(&real, "A=1\n").unwrap();
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o640)).unwrap();
        let c = Change::new(&root, Path::new("/etc/a.conf"), b"A=2\n".to_vec(), 0o644).unwrap();
        assert!(c.is_change());
        assert!(c.diff().contains("-A=1\n+A=2\n"), "{}", c.diff());
        c.apply().unwrap();
        assert_eq!(std::fs::read_to_string(&real).unwrap(), "A=2\n");
        let backup = with_suffix(&real, BACKUP_SUFFIX);
        assert_eq!(std::fs::read_to_string(&backup).unwrap(), "A=1\n");
        let mode = std::fs::metadata(&real).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o640);
    }
}
