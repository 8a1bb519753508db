//! ACCESS_POLICY: which client certificates may use which paths.
//!
//! The rule file ([`parse`]) lists path prefixes and who may use them. A
//! request's path is first brought to its one normal spelling
//! ([`normalize`]; unsafe spellings are refused with 400 before any rule),
//! then the rules of the longest prefix that matches it on whole segments
//! decide: the first of them whose WHO and METHODS both admit the request
//! allows it; if none does, or no prefix matches, it is refused.
//!
//! Deciding is a lookup: rules are kept in a map from prefix to its rules,
//! and the path's own prefixes are probed from the longest to `/`, so the
//! cost grows with the depth of the path, not with the number of rules; names
//! within a rule are hash sets.
//!
//! This layer knows text and certificate fields only: the proxy asks it, and
//! the TLS state carries it so that a changed policy re-judges open connections.

pub mod normalize;
pub mod parse;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub use normalize::{Unsafe, normalize};
pub use parse::{PolicyError, Rule, VALID_FORMS, Who};

use crate::x509::CertInfo;

/// The rules of one ACCESS_POLICY file, indexed for lookup.
#[derive(Debug, Clone)]
pub struct Policy {
    /// the file, as configured
    file: PathBuf,
    /// the file's bytes: a reload compares them to decide whether open
    /// connections must be judged again
    contents: Vec<u8>,
    /// every rule, in file order
    rules: Vec<Rule>,
    /// normal prefix → indices into `rules`, in file order
    by_prefix: HashMap<String, Vec<usize>>,
}

/// Whether a request may go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// the rule admits it
    Allowed,
    /// the rules of the deciding prefix do not list this certificate
    NotListed,
    /// a rule lists the certificate but not this method
    MethodNotListed,
    /// no rule's prefix matches the path
    NoRule,
}

/// The answer for one request, and the rule that gave it.
#[derive(Debug, Clone, Copy)]
pub struct Decision<'p> {
    /// allowed, or why not
    pub outcome: Outcome,
    /// the rule that allowed it; for a refusal the first rule of the deciding
    /// prefix (or the one that lists the certificate but not the method);
    /// `None` when no prefix matched
    pub rule: Option<&'p Rule>,
}

impl Decision<'_> {
    /// Whether the request may go on to the backend.
    pub fn allowed(&self) -> bool {
        self.outcome == Outcome::Allowed
    }

    /// `FILE:LINE` of the deciding rule, `-` when none matched: the access
    /// log's `rule=` field and the per-rule metric's label.
    pub fn rule_name(&self) -> &str {
        self.rule.map_or("-", |r| r.name.as_str())
    }

    /// One sentence saying why, for `check --as-cert` and the log.
    pub fn why(&self) -> String {
        let rule = |r: Option<&Rule>| r.map_or(String::new(), |r| format!(" `{}`", r.text));
        match self.outcome {
            Outcome::Allowed => format!("allowed by rule {}{}", self.rule_name(), rule(self.rule)),
            Outcome::NotListed => format!(
                "refused: the rules of the longest matching prefix (first: {}{}) do not name this certificate",
                self.rule_name(),
                rule(self.rule)
            ),
            Outcome::MethodNotListed => format!(
                "refused: rule {}{} names this certificate but not this method",
                self.rule_name(),
                rule(self.rule)
            ),
            Outcome::NoRule => "refused: no rule's prefix matches this path".to_string(),
        }
    }
}

/// A rule that can never decide a request, and why (for `check`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadRule {
    /// `FILE:LINE` of the rule that never decides
    pub rule: String,
    /// `FILE:LINE` of the earlier rule of the same prefix that always decides first
    pub covered_by: String,
}

impl Policy {
    /// Reads and parses the file; any error refuses the whole file.
    pub fn load(file: &Path) -> Result<Policy, PolicyError> {
        let contents = std::fs::read(file).map_err(|e| PolicyError {
            file: file.display().to_string(),
            line: 0,
            problem: format!(
                "cannot be read: {e}; fix the path in ACCESS_POLICY or the file's permissions"
            ),
        })?;
        Policy::from_bytes(file, contents)
    }

    /// Parses `contents` as if read from `file`.
    pub fn from_bytes(file: &Path, contents: Vec<u8>) -> Result<Policy, PolicyError> {
        let text = std::str::from_utf8(&contents).map_err(|e| {
            let line = contents[..e.valid_up_to()]
                .iter()
                .filter(|b| **b == b'\n')
                .count()
                + 1;
            PolicyError {
                file: file.display().to_string(),
                line,
                problem: "not UTF-8 text; save the file as UTF-8".to_string(),
            }
        })?;
        let rules = parse::parse(file, text)?;
        let mut by_prefix: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, rule) in rules.iter().enumerate() {
            by_prefix.entry(rule.prefix.clone()).or_default().push(i);
        }
        Ok(Policy {
            file: file.to_path_buf(),
            contents,
            rules,
            by_prefix,
        })
    }

    /// The file the rules came from.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// The file's bytes as read.
    pub fn contents(&self) -> &[u8] {
        &self.contents
    }

    /// Every rule, in file order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The decision for `cert` asking `method` on `path`, a path already in
    /// normal form ([`normalize`]).
    pub fn decide<'p>(&'p self, cert: &CertInfo, method: &str, path: &str) -> Decision<'p> {
        let Some(indices) = self.longest_prefix(path) else {
            return Decision {
                outcome: Outcome::NoRule,
                rule: None,
            };
        };
        let mut method_refused = None;
        for &i in indices {
            let rule = &self.rules[i];
            if !admits(&rule.who, cert) {
                continue;
            }
            if rule.methods.as_ref().is_none_or(|m| m.contains(method)) {
                return Decision {
                    outcome: Outcome::Allowed,
                    rule: Some(rule),
                };
            }
            method_refused.get_or_insert(rule);
        }
        match method_refused {
            Some(rule) => Decision {
                outcome: Outcome::MethodNotListed,
                rule: Some(rule),
            },
            None => Decision {
                outcome: Outcome::NotListed,
                rule: indices.first().map(|&i| &self.rules[i]),
            },
        }
    }

    /// The rules of the longest prefix of `path` that has any, on whole
    /// segments: `/a/b/` probes `/a/b`, `/a`, then `/`.
    fn longest_prefix(&self, path: &str) -> Option<&[usize]> {
        let mut probe = path.trim_end_matches('/');
        loop {
            if probe.is_empty() {
                return self.by_prefix.get("/").map(Vec::as_slice);
            }
            if let Some(found) = self.by_prefix.get(probe) {
                return Some(found);
            }
            let cut = probe.rfind('/')?;
            probe = &probe[..cut];
        }
    }

    /// Rules that can never decide: an earlier rule of the same prefix admits
    /// every certificate and method they admit, so it always decides first.
    /// (A rule of a shorter prefix always decides something: its prefix itself.)
    pub fn dead_rules(&self) -> Vec<DeadRule> {
        let mut dead = Vec::new();
        for indices in self.by_prefix.values() {
            for (n, &i) in indices.iter().enumerate() {
                let later = &self.rules[i];
                let cover = indices[..n]
                    .iter()
                    .map(|&e| &self.rules[e])
                    .find(|earlier| {
                        later.who.covered_by(&earlier.who)
                            && match (&later.methods, &earlier.methods) {
                                (_, None) => true,
                                (None, Some(_)) => false,
                                (Some(l), Some(e)) => l.is_subset(e),
                            }
                    });
                if let Some(earlier) = cover {
                    dead.push(DeadRule {
                        rule: later.name.clone(),
                        covered_by: earlier.name.clone(),
                    });
                }
            }
        }
        dead.sort_by_key(|d| {
            self.rules
                .iter()
                .position(|r| r.name == d.rule)
                .unwrap_or(usize::MAX)
        });
        dead
    }
}

/// Whether `who` names `cert`.
fn admits(who: &Who, cert: &CertInfo) -> bool {
    who.any
        || cert
            .common_name
            .as_ref()
            .is_some_and(|cn| who.cn.contains(cn))
        || cert.organizations.iter().any(|o| who.o.contains(o))
        || cert
            .organizational_units
            .iter()
            .any(|ou| who.ou.contains(ou))
        || who.serial.contains(&cert.serial_hex)
        || who.fingerprint.contains(&cert.sha256_hex)
}

#[cfg(test)]
mod tests;
