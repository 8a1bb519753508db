//! Reading a file the system-changing commands compare or replace without
//! following a symbolic link: a link planted in the conf folder (the name a
//! new certificate is copied to, CA_CRT, a CRL of CA_CRL, the config) must not
//! make a command compare or trust some other file. The name is looked at with
//! `symlink_metadata` and the file opened is checked to be that same inode, so
//! a link swapped in between is caught too (std has no portable O_NOFOLLOW).

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The content of the regular file at `real` (`shown` in messages); `None` when
/// nothing is there. A symbolic link or anything but a regular file is an error
/// naming `shown`, never followed.
pub fn read_regular(real: &Path, shown: &Path) -> Result<Option<Vec<u8>>, String> {
    let meta = match std::fs::symlink_metadata(real) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", shown.display())),
    };
    if meta.file_type().is_symlink() {
        let target = std::fs::read_link(real)
            .map(|t| t.display().to_string())
            .unwrap_or_else(|_| "?".to_string());
        return Err(format!(
            "{} is a symbolic link (to {target}); a file is expected there and links are never followed: put the file itself there, or give its real path",
            shown.display()
        ));
    }
    if !meta.is_file() {
        return Err(format!("{} is not a regular file", shown.display()));
    }
    let mut file =
        std::fs::File::open(real).map_err(|e| format!("cannot read {}: {e}", shown.display()))?;
    let opened = file
        .metadata()
        .map_err(|e| format!("cannot read {}: {e}", shown.display()))?;
    if (opened.dev(), opened.ino()) != (meta.dev(), meta.ino()) {
        return Err(format!(
            "{} changed while it was read (replaced by another file or a link): run the command again",
            shown.display()
        ));
    }
    let mut data = Vec::new();
    file.read_to_end(&mut data)
        .map_err(|e| format!("cannot read {}: {e}", shown.display()))?;
    Ok(Some(data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_is_refused_a_file_is_read_nothing_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.crt");
        std::fs::write(&file, "A").unwrap();
        let link = dir.path().join("b.crt");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert_eq!(read_regular(&file, &file).unwrap(), Some(b"A".to_vec()));
        let err = read_regular(&link, Path::new("/conf/b.crt")).unwrap_err();
        assert!(err.starts_with("/conf/b.crt is a symbolic link"), "{err}");
        assert_eq!(read_regular(&dir.path().join("none"), &file).unwrap(), None);
        assert!(read_regular(dir.path(), dir.path()).is_err());
    }
}
