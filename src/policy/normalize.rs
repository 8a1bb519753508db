//! The one spelling of a request path that ACCESS_POLICY rules are matched
//! against, and the spellings refused because no one spelling is safe.
//!
//! A backend may decode `%77` to `w`, resolve `/ws/../ws`, or collapse `//ws`;
//! a rule matched against the raw target would then be bypassed by spelling
//! `/ws` differently. So the path is brought to one form first:
//!
//! - percent-encoded unreserved characters (RFC 3986 §2.3: `A-Z a-z 0-9 - . _ ~`)
//!   are decoded; every other escape is kept, its hex digits upper-cased, and a
//!   byte outside printable ASCII is escaped;
//! - `.` segments are dropped, `..` removes the segment before it;
//! - repeated `/` are one.
//!
//! Refused ([`Unsafe`], answered 400 before any rule): an encoded `/` (the
//! backend could split there or not), a `\` literal or encoded (some servers
//! read it as `/`), an encoded NUL, `..` above the root, a `%` not followed by
//! two hex digits, and a path that does not start with `/`.
//! Matching stays case-sensitive, and the query is not part of the path.

use std::fmt;

/// Why a path has no safe single spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsafe {
    /// `%2F`: a `/` the backend may or may not split at
    EncodedSlash,
    /// `\` or `%5C`: read as `/` by some servers
    Backslash,
    /// `%00`
    Nul,
    /// `..` that would climb above `/`
    AboveRoot,
    /// `%` not followed by two hex digits
    BadEscape,
    /// not an absolute path (`*`, empty)
    NotAbsolute,
}

impl Unsafe {
    /// Short words for the log and the 400 answer.
    pub fn as_str(self) -> &'static str {
        match self {
            Unsafe::EncodedSlash => "an encoded / (%2F) in the path",
            Unsafe::Backslash => "a \\ (or %5C) in the path",
            Unsafe::Nul => "an encoded NUL (%00) in the path",
            Unsafe::AboveRoot => "a .. segment above the root",
            Unsafe::BadEscape => "a % not followed by two hex digits",
            Unsafe::NotAbsolute => "a path that does not start with /",
        }
    }
}

impl fmt::Display for Unsafe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// RFC 3986 §2.3 unreserved characters: decoding them never changes meaning.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

fn push_escaped(out: &mut String, b: u8) {
    out.push('%');
    out.push(char::from(HEX_UPPER[usize::from(b >> 4)]));
    out.push(char::from(HEX_UPPER[usize::from(b & 0x0f)]));
}

/// One segment in its normal spelling, or why it has none.
fn segment(raw: &str, out: &mut String) -> Result<(), Unsafe> {
    let bytes = raw.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).copied().and_then(hex_value),
                bytes.get(i + 2).copied().and_then(hex_value),
            ) else {
                return Err(Unsafe::BadEscape);
            };
            let decoded = hi << 4 | lo;
            match decoded {
                b'/' => return Err(Unsafe::EncodedSlash),
                b'\\' => return Err(Unsafe::Backslash),
                0 => return Err(Unsafe::Nul),
                d if is_unreserved(d) => out.push(char::from(d)),
                d => push_escaped(out, d),
            }
            i += 3;
            continue;
        }
        match b {
            b'\\' => return Err(Unsafe::Backslash),
            0 => return Err(Unsafe::Nul),
            0x21..=0x7e => out.push(char::from(b)),
            // Controls, blanks and non-ASCII (which hyper does not let
            // through anyway) are escaped, so the form stays printable ASCII.
            _ => push_escaped(out, b),
        }
        i += 1;
    }
    Ok(())
}

/// The normal spelling of `path` (the path of a request target, without the
/// query), or why it is refused. `/` stays `/`; a trailing `/` is kept, since
/// `/ws/` and `/ws` may be different resources to the backend.
pub fn normalize(path: &str) -> Result<String, Unsafe> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err(Unsafe::NotAbsolute);
    };
    let mut segments: Vec<String> = Vec::new();
    let mut trailing = false;
    for raw in rest.split('/') {
        let mut seg = String::with_capacity(raw.len());
        segment(raw, &mut seg)?;
        trailing = false;
        match seg.as_str() {
            "" => trailing = true,
            "." => trailing = true,
            ".." => {
                if segments.pop().is_none() {
                    return Err(Unsafe::AboveRoot);
                }
                trailing = true;
            }
            _ => segments.push(seg),
        }
    }
    let mut out = String::with_capacity(path.len());
    for seg in &segments {
        out.push('/');
        out.push_str(seg);
    }
    if out.is_empty() || trailing {
        out.push('/');
    }
    Ok(out)
}
