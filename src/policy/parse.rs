//! Reading the ACCESS_POLICY file: one rule per line, `#` comments, fields
//! separated by blanks: `PREFIX WHO[,WHO…] [METHOD[,METHOD…]]`.
//!
//! Every error names the file, the line and the valid forms, and the whole
//! file is refused on the first one (a reload then keeps the old policy).

use std::collections::HashSet;
use std::fmt;
use std::path::Path;

use super::normalize::normalize;

/// The forms a line may take, for every error message.
pub const VALID_FORMS: &str = "a rule is `PREFIX WHO[,WHO...] [METHOD[,METHOD...]]`: PREFIX a path starting with / \
(e.g. /api01rv2); WHO `any`, `cn:NAME`, `o:NAME`, `ou:NAME`, `serial:HEX` or `fingerprint:SHA256HEX`, \
comma separated without blanks; METHODS optional, upper case, comma separated (GET,POST)";

/// Why the policy file cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    /// the file, as configured
    pub file: String,
    /// 1-based line, 0 when the file as a whole is the problem
    pub line: usize,
    /// what is wrong
    pub problem: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "ACCESS_POLICY {}: {}", self.file, self.problem)
        } else {
            write!(
                f,
                "ACCESS_POLICY {}:{}: {}; {VALID_FORMS}",
                self.file, self.line, self.problem
            )
        }
    }
}

impl std::error::Error for PolicyError {}

/// Who a rule lets in: `any`, or certificates with one of these names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Who {
    /// `any`: every verified certificate
    pub any: bool,
    /// `cn:` names
    pub cn: HashSet<String>,
    /// `o:` names
    pub o: HashSet<String>,
    /// `ou:` names
    pub ou: HashSet<String>,
    /// `serial:`, as [`crate::x509::CertInfo::serial_hex`] spells serials
    pub serial: HashSet<String>,
    /// `fingerprint:`, SHA-256 lowercase hex without separators
    pub fingerprint: HashSet<String>,
}

impl Who {
    /// Whether every certificate this one lets in is let in by `other` too.
    pub fn covered_by(&self, other: &Who) -> bool {
        other.any
            || (!self.any
                && self.cn.is_subset(&other.cn)
                && self.o.is_subset(&other.o)
                && self.ou.is_subset(&other.ou)
                && self.serial.is_subset(&other.serial)
                && self.fingerprint.is_subset(&other.fingerprint))
    }
}

/// One line of the file, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// `FILE:LINE`, the rule's name in logs and metrics
    pub name: String,
    /// the line number, 1-based
    pub line: usize,
    /// the line as written (without its comment), for `check`
    pub text: String,
    /// the prefix as written
    pub written_prefix: String,
    /// the prefix in normal form, without a trailing `/` (except `/` itself)
    pub prefix: String,
    /// who it lets in
    pub who: Who,
    /// the methods it lets in; `None` for every method
    pub methods: Option<HashSet<String>>,
}

/// Parses the whole file `text`, read from `file`.
pub fn parse(file: &Path, text: &str) -> Result<Vec<Rule>, PolicyError> {
    let shown = file.display().to_string();
    let mut rules = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let err = |problem: String| PolicyError {
            file: shown.clone(),
            line,
            problem,
        };
        let code = raw.split('#').next().unwrap_or("").trim();
        if code.is_empty() {
            continue;
        }
        let fields: Vec<&str> = code.split_whitespace().collect();
        let (written_prefix, who, methods) = match fields.as_slice() {
            [p, w] => (*p, *w, None),
            [p, w, m] => (*p, *w, Some(*m)),
            [_] => return Err(err(format!("`{code}` has a prefix but no WHO"))),
            _ => {
                return Err(err(format!(
                    "`{code}` has {} fields, at most 3 (is there a blank inside WHO or METHODS?)",
                    fields.len()
                )));
            }
        };
        let prefix = prefix_of(written_prefix).map_err(err)?;
        let who = who_of(who).map_err(err)?;
        let methods = methods.map(methods_of).transpose().map_err(err)?;
        rules.push(Rule {
            name: format!("{shown}:{line}"),
            line,
            text: fields.join(" "),
            written_prefix: written_prefix.to_string(),
            prefix,
            who,
            methods,
        });
    }
    Ok(rules)
}

/// The prefix in the form paths are matched in.
fn prefix_of(written: &str) -> Result<String, String> {
    if written.contains('?') {
        return Err(format!(
            "prefix `{written}` has a query (?); rules match the path only"
        ));
    }
    let normal = normalize(written)
        .map_err(|why| format!("prefix `{written}` cannot be used: it has {why}"))?;
    let trimmed = normal.trim_end_matches('/');
    Ok(if trimmed.is_empty() {
        "/".to_string()
    } else {
        trimmed.to_string()
    })
}

/// `any` or `kind:value` items, comma separated.
fn who_of(field: &str) -> Result<Who, String> {
    let mut who = Who::default();
    for item in field.split(',') {
        if item == "any" {
            who.any = true;
            continue;
        }
        let Some((kind, value)) = item.split_once(':') else {
            return Err(format!("`{item}` is not a WHO"));
        };
        if value.is_empty() {
            return Err(format!("`{item}` names nobody (empty after `{kind}:`)"));
        }
        match kind {
            "cn" => who.cn.insert(value.to_string()),
            "o" => who.o.insert(value.to_string()),
            "ou" => who.ou.insert(value.to_string()),
            "serial" => who.serial.insert(serial_of(value)?),
            "fingerprint" => who.fingerprint.insert(fingerprint_of(value)?),
            _ => return Err(format!("`{kind}:` is not a kind of WHO")),
        };
    }
    Ok(who)
}

/// Hex digits, `:` separators allowed, any case.
fn hex_digits(value: &str, what: &str) -> Result<String, String> {
    let digits: String = value.chars().filter(|c| *c != ':').collect();
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!("{what} `{value}` is not hexadecimal"));
    }
    Ok(digits.to_ascii_lowercase())
}

/// A serial as `CertInfo::serial_hex` spells it: lowercase whole bytes,
/// leading zero bytes dropped, `00` for zero. `serial:0A1B`, `0a:1b` and
/// `a1b` are the same serial.
fn serial_of(value: &str) -> Result<String, String> {
    let mut digits = hex_digits(value, "serial")?;
    if digits.len() % 2 == 1 {
        digits.insert(0, '0');
    }
    while digits.len() > 2 && digits.starts_with("00") {
        digits.drain(..2);
    }
    Ok(digits)
}

/// 64 hex digits (SHA-256 of the DER certificate, e.g. `openssl x509 -fingerprint -sha256`).
fn fingerprint_of(value: &str) -> Result<String, String> {
    let digits = hex_digits(value, "fingerprint")?;
    if digits.len() != 64 {
        return Err(format!(
            "fingerprint `{value}` has {} hex digits, a SHA-256 fingerprint has 64",
            digits.len()
        ));
    }
    Ok(digits)
}

/// Upper-case method tokens, comma separated.
fn methods_of(field: &str) -> Result<HashSet<String>, String> {
    let mut methods = HashSet::new();
    for m in field.split(',') {
        if m.is_empty() || !m.bytes().all(|b| b.is_ascii_uppercase() || b == b'-') {
            return Err(format!(
                "`{m}` is not a method (methods are upper case, e.g. GET,POST)"
            ));
        }
        methods.insert(m.to_string());
    }
    Ok(methods)
}
