//! `check` and ACCESS_POLICY: the file reads (or FAILs naming file and
//! line), rules that can never decide, prefixes written other than they
//! match; and `check --as-cert FILE --path P`, which says which rule decides.
//!
//! A rule never decides when an earlier rule of the same prefix admits every
//! certificate and method it admits: the first admitting rule of the longest
//! matching prefix decides, so the later one is never reached. (A rule of a
//! shorter prefix always decides something: at least its prefix itself.)

use std::path::Path;

use super::{Checks, Line, Report};
use crate::load;
use crate::policy::{self, Policy};
use crate::x509::CertInfo;

/// The policy's lines: it reads, and rules that can never decide (an earlier
/// rule of the same prefix admits every certificate and method they admit),
/// prefixes written other than they match, and a file without rules.
pub(super) fn check_policy(r: &mut Report, p: &Policy) {
    let file = p.file().display();
    r.ok(format!(
        "ACCESS_POLICY {file} reads: {} rules",
        p.rules().len()
    ));
    if p.rules().is_empty() {
        r.warn(
            format!("ACCESS_POLICY {file} has no rules: every request is refused (not-permitted)"),
            "add rules (see conf/access-policy.example), or unset ACCESS_POLICY to let every verified certificate use every path",
        );
    }
    for dead in p.dead_rules() {
        r.warn(
            format!(
                "ACCESS_POLICY rule {} never decides: rule {} (same prefix, earlier) admits every certificate and method it admits",
                dead.rule, dead.covered_by
            ),
            "remove the line, or merge its names into the earlier rule",
        );
    }
    for rule in p.rules() {
        if rule.written_prefix.trim_end_matches('/') != rule.prefix
            && rule.written_prefix != rule.prefix
        {
            r.warn(
                format!(
                    "ACCESS_POLICY rule {}: prefix `{}` matches as `{}` (paths are normalised before matching)",
                    rule.name, rule.written_prefix, rule.prefix
                ),
                format!("write it as {}", rule.prefix),
            );
        }
    }
}

/// `check --as-cert FILE --path P [--method M]`: which rule would decide
/// for the certificate in `cert_file` (PEM or DER) asking `method` on `path`,
/// and why. The last line is `ok` when allowed, `FAIL` when refused, so the
/// exit code answers the question.
pub fn as_cert(config_path: &Path, cert_file: &Path, path: &str, method: &str) -> Vec<Line> {
    let mut steps = Checks {
        r: Report::default(),
        hosts: Some(&[]),
        passwd: Path::new(super::PASSWD),
    };
    let Ok(config) = load::read_config(config_path, &mut steps) else {
        return steps.r.lines;
    };
    let Ok(policy) = load::load_policy(&config, &mut steps) else {
        return steps.r.lines;
    };
    let mut r = steps.r;
    let cert = match read_cert(cert_file) {
        Ok(c) => c,
        Err(e) => {
            r.fail(
                format!("--as-cert {}: {e}", cert_file.display()),
                "give a client certificate file, PEM (.crt) or DER",
            );
            return r.lines;
        }
    };
    let who = format!("{} (serial {})", cert.subject_oneline, cert.serial_hex);
    let Some(policy) = policy else {
        r.ok(format!(
            "ACCESS_POLICY is not set: {method} {path} is allowed for {who}, as every path for every verified certificate"
        ));
        return r.lines;
    };
    let raw = path.split('?').next().unwrap_or(path);
    let normal = match policy::normalize(raw) {
        Ok(n) => n,
        Err(why) => {
            r.fail(
                format!("{method} {path}: refused with 400 before any rule: the path has {why}"),
                "a client must spell the path without it",
            );
            return r.lines;
        }
    };
    if normal != raw {
        r.ok(format!("{path} is matched as {normal}"));
    }
    let decision = policy.decide(&cert, method, &normal);
    let text = format!("{method} {normal} for {who}: {}", decision.why());
    if decision.allowed() {
        r.ok(text);
    } else {
        r.fail(
            text,
            format!(
                "if it should be allowed, add a rule for {normal} naming this certificate to {}",
                policy.file().display()
            ),
        );
    }
    r.lines
}

/// A certificate file, PEM (first certificate) or DER.
fn read_cert(file: &Path) -> Result<CertInfo, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let bytes = std::fs::read(file).map_err(|e| format!("cannot be read: {e}"))?;
    let der = match CertificateDer::from_pem_slice(&bytes) {
        Ok(der) => der.to_vec(),
        Err(_) => bytes,
    };
    CertInfo::from_der(&der).map_err(|e| e.to_string())
}
