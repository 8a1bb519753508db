//! Loading the set `install-cert` / `install-crl` would leave, before anything
//! is written: the config as it would be after the change, with the files it
//! names taken under `--root`, goes through the proxy's own load
//! ([`crate::load::load_from`]). A set the proxy would refuse on reload (and
//! keep serving the old one) is refused here instead, with the load's reason.
//!
//! The files the command would copy are not in place yet: they are staged in
//! a private folder (mode 0700, files 0600, removed when done) and the config
//! is pointed at them, since the load reads files by path.

use std::path::{Path, PathBuf};

use super::fsutil::{Root, write_new};
use crate::config::{Config, ConfigError};
use crate::load::{Failure, Steps};
use crate::tls::{KeyError, TlsState};

/// The load's steps, said by nobody: the command prints the one reason.
struct Quiet;

impl Steps for Quiet {
    fn config_read(&mut self, _: &Path, _: &[String]) {}
    fn config_failed(&mut self, _: &ConfigError) {}
    /// A missing file fails the TLS load right after, naming the key and file.
    fn files(&mut self, _: &Config) -> Result<(), Failure> {
        Ok(())
    }
    fn tls_failed(&mut self, _: &KeyError) {}
    fn tls_loaded(&mut self, _: &Config, _: &TlsState) {}
}

/// The private folder of staged copies, removed on drop.
struct Staging(PathBuf);

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Loads `config` (as it would be after the change) the way the proxy does,
/// with `copies` (system path, content) standing in for files not written yet.
/// The load's reason when it fails, in the paths the operator knows.
pub(super) fn check_loads(
    root: &Root,
    config: &Config,
    copies: &[(&Path, &[u8])],
) -> Result<(), String> {
    let staging = Staging(std::env::temp_dir().join(format!(
        "weborca-mtls-proxy-check-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    )));
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&staging.0)
            .map_err(|e| format!("cannot create {}: {e}", staging.0.display()))?;
    }
    // (staged real path, system path), to put the system paths back in messages.
    let mut shown: Vec<(String, String)> = Vec::new();
    let mut staged: Vec<(&Path, PathBuf)> = Vec::new();
    for (i, (system, data)) in copies.iter().enumerate() {
        let name = system
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let real = staging.0.join(format!("{i}-{name}"));
        write_new(&real, data, 0o600, None)
            .map_err(|e| format!("cannot stage {}: {e}", real.display()))?;
        shown.push((real.display().to_string(), system.display().to_string()));
        staged.push((system, real));
    }
    let place = |p: &mut PathBuf| {
        *p = match staged.iter().find(|(s, _)| *s == p.as_path()) {
            Some((_, real)) => real.clone(),
            None => root.read_path(p),
        };
    };
    let mut rooted = config.clone();
    for p in [
        &mut rooted.server_crt,
        &mut rooted.server_pem,
        &mut rooted.server_p12,
        &mut rooted.server_pass_file,
        &mut rooted.ca_crt,
    ]
    .into_iter()
    .flatten()
    {
        place(p);
    }
    rooted.ca_crl.iter_mut().for_each(place);
    let sessions =
        crate::tls::Sessions::new().map_err(|e| format!("cannot prepare TLS sessions: {e}"))?;
    match crate::load::load_from(rooted, &sessions, &mut Quiet) {
        Ok(_) => Ok(()),
        Err(f) => {
            let mut m = f.message().to_string();
            for (real, system) in &shown {
                m = m.replace(real, system);
            }
            if let Some(dir) = &root.dir {
                m = m.replace(&dir.display().to_string(), "");
            }
            Err(m)
        }
    }
}
