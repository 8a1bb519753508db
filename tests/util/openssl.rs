//! The `openssl` command, for the few tests that need key forms only it writes
//! (orca-catool's `.enc.pem` and legacy `.p12`). A missing `openssl` fails the
//! test loudly with the fix, never skips it.

use std::path::Path;
use std::process::Command;

/// What to do when `openssl` cannot be run.
const SETUP: &str = "these tests need the openssl command: install it \
                     (sudo apt-get install openssl) and run the tests again";

/// Runs `openssl ARGS` in `dir`; panics naming the fix when openssl is missing
/// and with its stderr when it fails.
pub fn openssl(args: &[&str], dir: &Path) {
    let out = match Command::new("openssl").args(args).current_dir(dir).output() {
        Ok(out) => out,
        Err(e) => panic!("cannot run openssl {args:?}: {e}; {SETUP}"),
    };
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
