//! The external programs the system-changing commands run (`systemctl`,
//! `nft`), each overridable by an environment variable (`SYSTEMCTL`, `NFT`)
//! so packaging and tests can put stand-ins in their place.

use std::process::Command;

/// An external program the commands run, named by an environment variable.
#[derive(Debug, Clone)]
pub struct Program {
    /// the program to run
    pub program: String,
}

impl Program {
    /// `systemctl`, or what `SYSTEMCTL` names.
    pub fn systemctl() -> Program {
        Self::from_env("SYSTEMCTL", "systemctl")
    }

    /// `nft`, or what `NFT` names.
    pub fn nft() -> Program {
        Self::from_env("NFT", "nft")
    }

    fn from_env(var: &str, default: &str) -> Program {
        let program = std::env::var(var)
            .ok()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| default.to_string());
        Program { program }
    }

    /// The command line, for messages and `--dry-run`.
    pub fn shown(&self, args: &[&str]) -> String {
        let mut s = self.program.clone();
        for a in args {
            s.push(' ');
            s.push_str(a);
        }
        s
    }

    /// Runs it; an error (not started, or a non-zero exit) says what it
    /// printed (stderr, else stdout), or that it printed nothing.
    pub fn run(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new(&self.program)
            .args(args)
            .output()
            .map_err(|e| format!("cannot run {}: {e}", self.shown(args)))?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() {
            return Ok(stdout);
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let said = [stderr.trim(), stdout.trim()]
            .into_iter()
            .find(|s| !s.is_empty())
            .map_or_else(
                || "it printed nothing (see journalctl for the unit)".to_string(),
                |s| format!("it said: {s}"),
            );
        Err(format!(
            "{} failed ({}): {said}",
            self.shown(args),
            out.status
        ))
    }
}
