//! `install-cert`: reading the orca-catool server certificate zip, refusing
//! anything such a zip does not hold (absolute paths, `..`, links, nested
//! folders, unknown or doubled members, oversized entries).

use std::io::Read;
use std::path::Path;

use super::Stop;
use crate::setup::command::refusal;

/// A member of an orca-catool zip is a few kilobytes; anything far larger is not one.
const MAX_ENTRY_BYTES: u64 = 1 << 20;

/// The members of the zip that are used, by role.
pub(super) struct ZipCert {
    pub(super) stem: String,
    pub(super) crt: Vec<u8>,
    pub(super) pem: Vec<u8>,
    pub(super) ca: Vec<u8>,
}

/// Reads the zip, refusing anything an orca-catool server certificate zip does not hold.
pub(super) fn read_zip(path: &Path) -> Result<ZipCert, Stop> {
    let shown = path.display().to_string();
    let refuse = refusal(&shown);
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
                "entry {:?} is in folder {:?}, not {stem:?}",
                file,
                folder.as_deref().unwrap_or_default()
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
