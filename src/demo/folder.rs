//! The demo's folder: claimed only when new, empty or the demo's own (marked
//! by README-demo.txt), and its files written by rename, keys mode 600.

#[allow(unused_imports)]
use super::*;

/// Creates `dir` (mode 700: it holds keys) or checks that it is the demo's own
/// or empty, and marks it. Returns the absolute path.
pub(super) fn claim_folder(dir: &Path) -> Result<PathBuf, Failure> {
    let fix = "choose a new or empty folder with --dir, e.g. \
               `weborca-mtls-proxy demo --dir ./weborca-demo`";
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| {
            Failure::Runtime(format!(
                "demo: cannot create the folder {}: {e}; {fix}",
                dir.display()
            ))
        })?;
    let dir = fs::canonicalize(dir).map_err(|e| {
        Failure::Runtime(format!("demo: cannot open {}: {e}; {fix}", dir.display()))
    })?;
    let marker = dir.join(MARKER);
    if marker.exists() {
        return Ok(dir);
    }
    let foreign: Vec<String> = fs::read_dir(&dir)
        .map_err(|e| Failure::Runtime(format!("demo: cannot list {}: {e}; {fix}", dir.display())))?
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    if !foreign.is_empty() {
        let more = foreign.len().saturating_sub(FOREIGN_SHOWN);
        let mut shown = foreign.into_iter().take(FOREIGN_SHOWN).collect::<Vec<_>>();
        if more > 0 {
            shown.push(format!("and {more} more"));
        }
        return Err(Failure::Runtime(format!(
            "demo: {} already holds files the demo did not make ({}); the demo writes certificates \
             there and would overwrite them, so {fix}",
            dir.display(),
            shown.join(", ")
        )));
    }
    write_file(&marker, MARKER_TEXT.as_bytes(), false)?;
    Ok(dir)
}

/// How many names of a foreign folder's files the refusal lists.
pub(super) const FOREIGN_SHOWN: usize = 5;

/// What the marker file tells someone who finds the folder.
pub(super) const MARKER_TEXT: &str = "\
このフォルダは `weborca-mtls-proxy demo` が作ったデモ用です。認証局 (ca.crt, ca.key) と証明書は
試すためだけの使い捨てで、本番には使えません。本番では orca-catool で発行した証明書を使ってください。
不要になったらフォルダごと削除し、ブラウザにインポートした証明書 (user1 とデモ用 CA) も削除してください。

This folder was made by `weborca-mtls-proxy demo`. Its CA (ca.crt, ca.key) and certificates
are throwaway ones for trying the proxy out, not for production: use orca-catool's there.
When done, delete the folder, and remove the certificates imported into the browser
(user1 and the demo CA).
";

/// Writes a whole file through a temporary name, so a half-written file never
/// replaces a good one; `secret` files are created mode 600 from the start.
pub(super) fn write_file(path: &Path, bytes: &[u8], secret: bool) -> Result<(), Failure> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mode = if secret { 0o600 } else { 0o644 };
    write_then_rename(&tmp, path, bytes, mode).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        Failure::Runtime(format!(
            "demo: cannot write {}: {e}; make its folder writable or choose another with --dir",
            path.display()
        ))
    })
}

pub(super) fn write_then_rename(
    tmp: &Path,
    path: &Path,
    bytes: &[u8],
    mode: u32,
) -> std::io::Result<()> {
    // A leftover from an interrupted run would have whatever mode it was made with.
    let _ = fs::remove_file(tmp);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(tmp, path)
}
