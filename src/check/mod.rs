//! `weborca-mtls-proxy check`: WebORCA's troubleshooting list (seeds/004:
//! files missing, key with passphrase, wrong CN, expired certificate, …) as a
//! command. One line per check, `ok` / `warn` / `FAIL` with the fix; exit 0
//! only when nothing failed. It reads, never changes anything.
//!
//! This file runs the list and writes the report; the checks themselves are
//! in `files.rs` (the config's files), `certs.rs` (server certificate, chain,
//! CRLs) and `backend.rs` (WebORCA's answer, its port and the guard).

mod backend;
mod certs;
mod files;
mod policy;

use std::path::Path;

use crate::config::{Config, ConfigError};
use crate::load::{self, Failure, Steps};
use crate::policy::{Policy, PolicyError};
use crate::tls::{KeyError, Sessions, TlsState};

pub use backend::{Listening, PlainAnswer, http_probe, listening, listening_sockets, plain_answer};
use backend::{check_backend, check_backend_exposure};
use certs::{check_chain, check_crls, check_server_cert};
use files::{PASSWD, check_files};
pub use policy::as_cert;
use policy::check_policy;

/// How one check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// fine
    Ok,
    /// works, but should be looked at
    Warn,
    /// the proxy will not work (or not safely) like this
    Fail,
}

/// One line of the report.
#[derive(Debug, Clone)]
pub struct Line {
    /// the outcome
    pub level: Level,
    /// what was checked and found
    pub text: String,
    /// what to do, for warn and FAIL
    pub fix: Option<String>,
}

impl std::fmt::Display for Line {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tag = match self.level {
            Level::Ok => "ok  ",
            Level::Warn => "warn",
            Level::Fail => "FAIL",
        };
        write!(f, "{tag} {}", self.text)?;
        if let Some(fix) = &self.fix {
            write!(f, " — fix: {fix}")?;
        }
        Ok(())
    }
}

/// The report being written.
#[derive(Default)]
struct Report {
    lines: Vec<Line>,
}

impl Report {
    fn ok(&mut self, text: impl Into<String>) {
        self.lines.push(Line {
            level: Level::Ok,
            text: text.into(),
            fix: None,
        });
    }

    fn warn(&mut self, text: impl Into<String>, fix: impl Into<String>) {
        self.lines.push(Line {
            level: Level::Warn,
            text: text.into(),
            fix: Some(fix.into()),
        });
    }

    fn fail(&mut self, text: impl Into<String>, fix: impl Into<String>) {
        self.lines.push(Line {
            level: Level::Fail,
            text: text.into(),
            fix: Some(fix.into()),
        });
    }
}

/// Runs every check; `hosts` are the names clients use (empty: this machine's).
///
/// The config and TLS state are read by the same load as the server's
/// ([`load::load_from`]), reporting each step here instead of in the log.
pub fn run(config_path: &Path, hosts: &[String]) -> Vec<Line> {
    let mut steps = Checks {
        r: Report::default(),
        hosts: Some(hosts),
        passwd: Path::new(PASSWD),
    };
    let Ok(config) = load::read_config(config_path, &mut steps) else {
        return steps.r.lines;
    };
    steps.load(config.clone());
    let mut r = steps.r;
    check_backend(&mut r, &config);
    check_backend_exposure(&mut r, &config);
    r.lines
}

/// The certificate part of the list (files, permissions, key, dates, hosts,
/// chain, CRL), which `setup` runs before it changes anything. `hosts`:
/// the names clients use (empty: this machine's; `None`: not checked, said
/// in a warn line). `passwd`: where the service user is looked up (the
/// passwd file of the system being set up, under `--root` its own).
pub fn certificates(config: &Config, hosts: Option<&[String]>, passwd: &Path) -> Vec<Line> {
    let mut steps = Checks {
        r: Report::default(),
        hosts,
        passwd,
    };
    steps.load(config.clone());
    steps.r.lines
}

/// The load's steps, as lines of the report.
struct Checks<'a> {
    r: Report,
    /// The names clients use (empty: this machine's; `None`: not checked).
    hosts: Option<&'a [String]>,
    /// The passwd file the service user is looked up in.
    passwd: &'a Path,
}

impl Checks<'_> {
    /// The files, TLS and certificate steps of the load for `config`.
    fn load(&mut self, config: Config) {
        match Sessions::new() {
            // The outcome is in the report: a failed step has its FAIL line.
            Ok(sessions) => drop(load::load_from(config, &sessions, self)),
            Err(e) => {
                check_files(&mut self.r, &config, self.passwd);
                self.r.fail(
                    format!("TLS session setup failed: {e}"),
                    "report this: the TLS library could not start",
                );
            }
        }
    }
}

impl Steps for Checks<'_> {
    fn config_read(&mut self, path: &Path, warnings: &[String]) {
        self.r.ok(format!("config {} reads", path.display()));
        for w in warnings {
            self.r
                .warn(w.clone(), "correct the line in the config file");
        }
    }

    fn config_failed(&mut self, error: &ConfigError) {
        self.r.fail(
            error.to_string(),
            "correct the config file (see conf/proxy.conf for every key)",
        );
    }

    /// Never stops the load: a missing file has its FAIL line, and the TLS
    /// step says what that means for the certificates.
    fn files(&mut self, config: &Config) -> Result<(), Failure> {
        check_files(&mut self.r, config, self.passwd);
        Ok(())
    }

    fn tls_failed(&mut self, error: &KeyError) {
        match error {
            KeyError::PassphraseNeeded(e) => self.r.fail(
                format!("PASSWORD input was canceled: {}", e.problem),
                e.fix.clone(),
            ),
            KeyError::Other(e) => self.r.fail(
                format!("{} ({}): {}", e.key, e.path.display(), e.problem),
                e.fix.clone(),
            ),
        }
    }

    fn tls_loaded(&mut self, config: &Config, tls: &TlsState) {
        self.r
            .ok("server key matches the certificate; CA_CRT and CA_CRL load");
        check_server_cert(&mut self.r, config, &tls.server_cert, self.hosts);
        if !tls.server_auth {
            self.r.fail(
                format!(
                    "{} is not a server certificate: its extended key usage has no serverAuth, so browsers refuse it",
                    tls.server_cert.subject_oneline
                ),
                "use the server certificate orca-catool issue_server_cert made (not a client certificate) for SERVER_CRT/SERVER_PEM",
            );
        }
        check_chain(&mut self.r, tls);
        check_crls(&mut self.r, tls);
    }

    fn policy_loaded(&mut self, policy: Option<&Policy>) {
        if let Some(p) = policy {
            check_policy(&mut self.r, p);
        }
    }

    fn policy_failed(&mut self, error: &PolicyError) {
        self.r.fail(
            error.to_string(),
            "correct the line (see conf/access-policy.example); until then the running proxy keeps its old rules, and a start fails",
        );
    }
}

/// Prints the report; returns whether nothing failed.
pub fn print(lines: &[Line]) -> bool {
    for l in lines {
        println!("{l}");
    }
    let failed = lines.iter().filter(|l| l.level == Level::Fail).count();
    let warned = lines.iter().filter(|l| l.level == Level::Warn).count();
    println!("{} checks: {failed} failed, {warned} warnings", lines.len());
    failed == 0
}
