//! One log line, text or JSON, read into what the audit report counts: a
//! request (the access line), a refused client, a certificate about to
//! expire, or any other line (start-up, reloads), which is readable but not
//! counted. A line that is neither a WebORCA-style text line nor a JSON
//! object with a `time` is unreadable ([`parse`] returns `None`).
//!
//! Both readers take fields they do not know and skip them, so a field added
//! to a line later (`rule=FILE:LINE`) does not make old readers fail.

use std::borrow::Cow;
use std::net::SocketAddr;

use chrono::{DateTime, NaiveDateTime};
use serde::Deserialize;

use crate::log::TIME_FORMAT;

/// A line read: when it was written (local time, as written) and what it says.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// the line's local time
    pub at: NaiveDateTime,
    /// what the line is about
    pub entry: Entry,
}

/// What a line says, as far as the report is concerned.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    /// one request (the access log)
    Access(Access),
    /// a client refused: its certificate, or a request that was not forwarded
    Refused(Refused),
    /// a client certificate inside the proxy's CERT_WARN_DAYS
    Expiring(Expiring),
    /// a line the report does not count
    Other,
}

/// One request of the access log.
#[derive(Debug, Clone, PartialEq)]
pub struct Access {
    /// the client's address and port
    pub addr: String,
    /// the certificate's CN, `-` without one
    pub cn: String,
    /// the certificate's serial, `-` without one
    pub serial: String,
    /// the request's method
    pub method: String,
    /// path and query as sent
    pub path: String,
    /// the answer's status
    pub status: u16,
}

/// A refused client.
#[derive(Debug, Clone, PartialEq)]
pub struct Refused {
    /// the client's address and port
    pub addr: String,
    /// the reason code (`missing`, `revoked`, …; `bad-request` for a request not forwarded)
    pub reason: String,
    /// the certificate's CN, when the line names it
    pub cn: Option<String>,
}

/// The proxy's warning about a client certificate that expires soon.
#[derive(Debug, Clone, PartialEq)]
pub struct Expiring {
    /// the certificate's CN
    pub cn: String,
    /// the certificate's serial
    pub serial: String,
    /// its notAfter, local time
    pub not_after: NaiveDateTime,
}

/// The reason a request refused before forwarding is counted under.
pub const BAD_REQUEST: &str = "bad-request";
/// The reason of a certificate refused as issued by a CA other than
/// CA_CRT's (the proxy's `unknown-ca`).
pub const UNKNOWN_CA: &str = "unknown-ca";

/// Reads one line (without its newline); `None` if it is unreadable.
pub fn parse(line: &str) -> Option<Line> {
    let line = line.strip_suffix('\r').unwrap_or(line);
    if line.starts_with('{') {
        json(line)
    } else {
        text(line)
    }
}

// --- text lines ------------------------------------------------------------

/// `[<N>]YYYY/MM/DD HH:MM:SS message key=value …`
fn text(line: &str) -> Option<Line> {
    let line = strip_priority(line);
    let stamp = line.get(..19)?;
    let at = NaiveDateTime::parse_from_str(stamp, TIME_FORMAT).ok()?;
    let rest = line.get(19..)?.strip_prefix(' ')?;
    Some(Line {
        at,
        entry: text_entry(rest)?,
    })
}

/// Under systemd each line starts with `<N>`, the syslog priority.
fn strip_priority(line: &str) -> &str {
    if let Some(rest) = line.strip_prefix('<')
        && let Some((n, after)) = rest.split_once('>')
        && !n.is_empty()
        && n.len() <= 3
        && n.bytes().all(|b| b.is_ascii_digit())
    {
        return after;
    }
    line
}

/// The message prefixes of the lines that refuse a client certificate.
const REFUSALS: &[&str] = &[
    "client certificate refused: ",
    "client certificate refused in the handshake: ",
    "client certificate of an open connection now refused",
    "websocket closed with 1008",
    "ACCESS_POLICY refused ",
    "operator console refused: ",
];
/// The message prefixes of the lines that refuse a request without judging
/// its certificate (a malformed request, an unsafe spelling of a path).
const NOT_FORWARDED: &[&str] = &[
    "request refused, not forwarded: ",
    "request refused with 400, not forwarded: ",
];
const EXPIRING: &str = "client certificate CN=";

fn text_entry(rest: &str) -> Option<Entry> {
    if let Some((first, after)) = rest.split_once(' ')
        && first.parse::<SocketAddr>().is_ok()
        && after.starts_with("cn=")
    {
        return access_text(first, after).map(Entry::Access);
    }
    if REFUSALS.iter().any(|p| rest.starts_with(p)) {
        let fields = trailing_fields(rest)?;
        return Some(Entry::Refused(Refused {
            addr: field(&fields, "peer")?,
            reason: field(&fields, "reason")?,
            cn: field(&fields, "cn"),
        }));
    }
    if NOT_FORWARDED.iter().any(|p| rest.starts_with(p)) {
        let fields = trailing_fields(rest)?;
        return Some(Entry::Refused(Refused {
            addr: field(&fields, "peer")?,
            reason: BAD_REQUEST.to_string(),
            cn: field(&fields, "cn"),
        }));
    }
    if rest.starts_with(EXPIRING) {
        return expiring(rest).map(Entry::Expiring);
    }
    Some(Entry::Other)
}

/// `ADDR cn=CN serial=SERIAL "METHOD PATH VERSION" STATUS BYTES MSms[ more…]`.
fn access_text(addr: &str, after: &str) -> Option<Access> {
    let (who, request) = after.rsplit_once(" \"")?;
    let (cn_part, serial_part) = who.rsplit_once(" serial=")?;
    let cn = cn_part.strip_prefix("cn=")?;
    // a CN with blanks or quotes is written quoted (`text::Token`)
    let cn = match cn.starts_with('"') {
        true => match unquote(cn)? {
            (cn, "") => cn,
            _ => return None,
        },
        false => cn.to_string(),
    };
    let serial = serial_part.split(' ').next()?;
    // The path never holds a `"` (the http crate refuses it in a URI).
    let (quoted, tail) = request.split_once("\" ")?;
    let (method, rest) = quoted.split_once(' ')?;
    let (path, _version) = rest.rsplit_once(' ')?;
    let status = tail.split(' ').next()?.parse().ok()?;
    Some(Access {
        addr: addr.to_string(),
        cn,
        serial: serial.to_string(),
        method: method.to_string(),
        path: path.to_string(),
        status,
    })
}

/// `client certificate CN=X (serial Y) expires in N days (YYYY/MM/DD HH:MM:SS); …`
fn expiring(rest: &str) -> Option<Expiring> {
    let body = rest.strip_prefix(EXPIRING)?;
    let cut = body.find(") expires in ")?;
    let (cn, serial) = body[..cut].rsplit_once(" (serial ")?;
    let after = &body[cut..];
    let open = after.find(" days (")? + " days (".len();
    let stamp = after.get(open..open + 19)?;
    Some(Expiring {
        cn: cn.to_string(),
        serial: serial.to_string(),
        not_after: NaiveDateTime::parse_from_str(stamp, TIME_FORMAT).ok()?,
    })
}

/// The `key=value` fields after a message: the first ` peer=` from which the
/// rest of the line reads as fields (a message may hold ` peer=` itself).
fn trailing_fields(rest: &str) -> Option<Vec<(&str, String)>> {
    rest.match_indices(" peer=")
        .find_map(|(i, _)| fields(&rest[i + 1..]))
}

fn field(fields: &[(&str, String)], name: &str) -> Option<String> {
    fields
        .iter()
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.clone())
}

/// `key=value key="quoted \"value\"" …` to the end, or `None`. An unquoted
/// value runs to the next ` key=` (a `%cn` field may hold spaces).
fn fields(mut s: &str) -> Option<Vec<(&str, String)>> {
    let mut out = Vec::new();
    while !s.is_empty() {
        let eq = s.find('=')?;
        let key = &s[..eq];
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
            return None;
        }
        let value = &s[eq + 1..];
        let (value, rest) = if value.starts_with('"') {
            unquote(value)?
        } else {
            let end = next_key(value).unwrap_or(value.len());
            (value[..end].to_string(), &value[end..])
        };
        if out.iter().any(|(k, _)| *k == key) {
            return None; // a second ` peer=`: the first was inside the message
        }
        out.push((key, value));
        s = match rest.strip_prefix(' ') {
            Some(r) => r,
            None if rest.is_empty() => rest,
            None => return None,
        };
    }
    Some(out)
}

/// Where the next ` key=` starts in `s`.
fn next_key(s: &str) -> Option<usize> {
    s.match_indices(' ').map(|(i, _)| i).find(|&i| {
        let after = &s[i + 1..];
        after.find('=').is_some_and(|eq| {
            eq > 0
                && after[..eq]
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_')
        })
    })
}

/// A Rust `{:?}` string at the start of `s`: its value and what follows it.
fn unquote(s: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = s.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, &s[i + 1..])),
            '\\' => match chars.next()?.1 {
                'n' => out.push('\n'),
                'r' => out.push('\r'),
                't' => out.push('\t'),
                '0' => out.push('\0'),
                'u' => {
                    let (j, _) = chars.next().filter(|(_, c)| *c == '{')?;
                    let close = s[j..].find('}')? + j;
                    let code = u32::from_str_radix(&s[j + 1..close], 16).ok()?;
                    out.push(char::from_u32(code)?);
                    while chars.next().is_some_and(|(k, _)| k < close) {}
                }
                other => out.push(other),
            },
            c => out.push(c),
        }
    }
    None
}

// --- JSON lines ------------------------------------------------------------

/// The fields of a JSON line the report reads; any other is skipped.
#[derive(Deserialize)]
struct JsonIn<'a> {
    #[serde(borrow)]
    time: Cow<'a, str>,
    #[serde(borrow, default)]
    event: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    msg: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    addr: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    cn: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    serial: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    method: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    path: Option<Cow<'a, str>>,
    #[serde(default)]
    status: Option<u16>,
    #[serde(borrow, default)]
    reason: Option<Cow<'a, str>>,
}

fn json(line: &str) -> Option<Line> {
    let j: JsonIn<'_> = serde_json::from_str(line).ok()?;
    let at = DateTime::parse_from_rfc3339(&j.time).ok()?.naive_local();
    let own = |v: Option<Cow<'_, str>>| v.map(Cow::into_owned);
    let entry = match j.event.as_deref() {
        Some("access") => Entry::Access(Access {
            addr: own(j.addr)?,
            cn: own(j.cn)?,
            serial: own(j.serial)?,
            method: own(j.method)?,
            path: own(j.path)?,
            status: j.status?,
        }),
        Some("refused") => Entry::Refused(Refused {
            addr: own(j.addr)?,
            reason: own(j.reason)?,
            cn: own(j.cn),
        }),
        Some("request-refused") => Entry::Refused(Refused {
            addr: own(j.addr)?,
            reason: BAD_REQUEST.to_string(),
            cn: own(j.cn),
        }),
        Some("cert-expiring") => Entry::Expiring(expiring(j.msg.as_deref()?)?),
        _ => Entry::Other,
    };
    Some(Line { at, entry })
}

#[cfg(test)]
#[path = "line_tests.rs"]
mod tests;
