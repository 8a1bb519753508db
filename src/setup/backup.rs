//! The copies kept of a file before a command changes it. The first original
//! is kept for good as `FILE.before-weborca-mtls-proxy` (never overwritten, so
//! the file as it was before the proxy came is always there); a later change
//! keeps the file as it was just before under
//! `FILE.before-weborca-mtls-proxy.YYYYMMDD-HHMMSS` (local time), unless that
//! content is already the original copy. No copy ever replaces another file.

use std::path::{Path, PathBuf};

use super::fsutil::{BACKUP_SUFFIX, temp_beside, with_suffix, write_new};
use super::nofollow::read_regular;

/// Keeps `old` (the content of `path` now) as described above, with `mode` and
/// `owner`; the path that holds it.
pub fn keep(
    path: &Path,
    old: &[u8],
    mode: u32,
    owner: Option<(u32, u32)>,
) -> std::io::Result<PathBuf> {
    let first = with_suffix(path, BACKUP_SUFFIX);
    let kept = read_regular(&first, &first).map_err(std::io::Error::other)?;
    match kept {
        None => {
            create(&first, old, mode, owner)?;
            return Ok(first);
        }
        Some(k) if k == old => return Ok(first),
        Some(_) => {}
    }
    let stamp = chrono::Local::now().format("%Y%m%d-%H%M%S").to_string();
    for n in 0..100u32 {
        let suffix = if n == 0 {
            format!("{BACKUP_SUFFIX}.{stamp}")
        } else {
            format!("{BACKUP_SUFFIX}.{stamp}-{n}")
        };
        let name = with_suffix(path, &suffix);
        match create(&name, old, mode, owner) {
            Ok(()) => return Ok(name),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other(format!(
        "no free name for a copy of {} beside it",
        path.display()
    )))
}

/// Creates `path` with `data`, whole or not at all, failing when the name exists.
pub fn create(
    path: &Path,
    data: &[u8],
    mode: u32,
    owner: Option<(u32, u32)>,
) -> std::io::Result<()> {
    let tmp = temp_beside(path);
    let result = write_new(&tmp, data, mode, owner)
        // A hard link fails when the name exists (a link too): nothing is replaced.
        .and_then(|()| std::fs::hard_link(&tmp, path));
    let _ = std::fs::remove_file(&tmp);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_original_stays_and_later_runs_get_their_own_copy() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.conf");
        let first = keep(&f, b"1", 0o644, None).unwrap();
        assert_eq!(first, with_suffix(&f, BACKUP_SUFFIX));
        assert_eq!(keep(&f, b"1", 0o644, None).unwrap(), first, "same content");
        let second = keep(&f, b"2", 0o644, None).unwrap();
        let third = keep(&f, b"3", 0o644, None).unwrap();
        assert_ne!(second, third, "never the same name twice");
        assert_eq!(std::fs::read(&first).unwrap(), b"1");
        assert_eq!(std::fs::read(&second).unwrap(), b"2");
        assert_eq!(std::fs::read(&third).unwrap(), b"3");
    }
}
