//! The `openssl` command, for the few tests that need key forms only it writes
//! (orca-catool's `.enc.pem` and legacy `.p12`). A missing `openssl` fails the
//! test loudly with the fix, never skips it.

use std::path::Path;
use std::process::Command;

use crate::util::real::SETUP_HINT;

/// Runs `openssl ARGS` in `dir`; panics naming the fix when openssl is missing
/// and with its stderr when it fails.
pub fn openssl(args: &[&str], dir: &Path) {
    let out = match Command::new("openssl").args(args).current_dir(dir).output() {
        Ok(out) => out,
        Err(e) => panic!("cannot run openssl {args:?}: {e}; {SETUP_HINT}"),
    };
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
