//! The edits to shell-style config files: jma-receipt.conf (the three TLS keys
//! commented out with a marked prefix, the `HTTP_PORT` block added at the end,
//! and both undone by rollback) and proxy.conf (keys set in place). Lines are
//! found with the proxy's own parser ([`crate::config::parse_raw`]); every other
//! byte, line ends (LF or CRLF) included, stays as it was.

use std::collections::BTreeSet;
use std::path::Path;

use crate::config::parse_raw;

/// How a file's bytes were read as text ([`decode`]), to be written back
/// the same way ([`encode`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spelling {
    /// UTF-8, as it is.
    Utf8,
    /// Other bytes (EUC-JP or Shift_JIS comments, as older ORCA files may
    /// have): one char per byte.
    Bytes,
}

/// `bytes` as text for the edits. A file that is not UTF-8 is read one char
/// per byte (U+0000–U+00FF), not with replacement characters: the edits add
/// and remove only ASCII, so every byte they do not touch is written back as
/// it was ("no other byte of the file changes").
pub fn decode(bytes: &[u8]) -> (String, Spelling) {
    match std::str::from_utf8(bytes) {
        Ok(text) => (text.to_string(), Spelling::Utf8),
        Err(_) => (
            bytes.iter().map(|&b| char::from(b)).collect(),
            Spelling::Bytes,
        ),
    }
}

/// `text` back to the bytes of a file read as `how`.
pub fn encode(text: String, how: Spelling) -> Vec<u8> {
    match how {
        Spelling::Utf8 => text.into_bytes(),
        // every char is one of the file's bytes, or ASCII an edit added
        Spelling::Bytes => text
            .chars()
            .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
            .collect(),
    }
}

/// Put in front of each line setup comments out.
pub const PREFIX: &str = "#weborca-mtls-proxy# ";
/// First line of the block setup adds.
pub const BEGIN: &str = "# >>> weborca-mtls-proxy";
/// Last line of the block setup adds.
pub const END: &str = "# <<< weborca-mtls-proxy";
/// WebORCA's own TLS keys, which move to proxy.conf.
pub const TLS_KEYS: [&str; 3] = ["SERVER_CRT", "SERVER_PEM", "CA_CRT"];

/// A line without its line end.
fn content(line: &str) -> &str {
    let l = line.strip_suffix('\n').unwrap_or(line);
    l.strip_suffix('\r').unwrap_or(l)
}

/// The line end the file uses (its first one), LF when it has none.
fn eol_of(text: &str) -> &'static str {
    match text.find('\n') {
        Some(i) if i > 0 && text.as_bytes()[i - 1] == b'\r' => "\r\n",
        _ => "\n",
    }
}

/// The marked block's first and last line index, when both markers are there in order.
fn block(lines: &[&str]) -> Option<(usize, usize)> {
    let begin = lines.iter().position(|l| content(l) == BEGIN)?;
    let end = lines[begin..].iter().position(|l| content(l) == END)? + begin;
    Some((begin, end))
}

/// Whether line `i` of `lines` is one setup wrote in the block `(begin, end)`:
/// the markers, and its `HTTP_PORT=` line. Any `HTTP_PORT=` line there counts
/// as setup's, wherever lines added by hand have moved it: kept, it would
/// leave WebORCA on the backend port after rollback.
fn written_by_setup(lines: &[&str], (begin, end): (usize, usize), i: usize) -> bool {
    let line = content(lines[i]).trim_start();
    let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
    i == begin || i == end || line.starts_with("HTTP_PORT=")
}

/// Where the marked block is damaged, as `(line, what is wrong and what to
/// do)`: a start marker without an end marker after it, an end marker
/// without a start before it, or a second block. Rollback cannot tell then
/// which lines are setup's, so nothing is changed (the caller names the file).
pub fn check_block(text: &str) -> Result<(), (usize, String)> {
    let mut open: Option<usize> = None;
    let mut blocks = 0;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let n = i + 1;
        match (content(line), open) {
            (BEGIN, Some(first)) => {
                return Err((
                    n,
                    format!(
                        "a second `{BEGIN}` while the one of line {first} has no `{END}` yet: remove the extra line, or put `{END}` after line {first}'s `HTTP_PORT=` line"
                    ),
                ));
            }
            (BEGIN, None) if blocks > 0 => {
                return Err((
                    n,
                    format!(
                        "a second block `{BEGIN}` … `{END}`: setup writes one; delete this one (keep what you added to it above it)"
                    ),
                ));
            }
            (BEGIN, None) => open = Some(n),
            (END, Some(_)) => {
                open = None;
                blocks += 1;
            }
            (END, None) => {
                return Err((
                    n,
                    format!(
                        "`{END}` has no `{BEGIN}` before it: put `{BEGIN}` back on the line above the block's `HTTP_PORT=` line, or delete this line and that `HTTP_PORT=` line by hand"
                    ),
                ));
            }
            _ => {}
        }
    }
    match open {
        Some(first) => Err((
            first,
            format!(
                "`{BEGIN}` has no `{END}` after it: put `{END}` on the line after the block's `HTTP_PORT=` line, or delete this line and that `HTTP_PORT=` line by hand"
            ),
        )),
        None => Ok(()),
    }
}

/// The lines inside the marked block that setup did not write (added by
/// hand since), as (line number, line): rollback keeps them.
pub fn added_in_block(text: &str) -> Vec<(usize, String)> {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let Some(marked) = block(&lines) else {
        return Vec::new();
    };
    (marked.0..=marked.1)
        .filter(|&i| !written_by_setup(&lines, marked, i))
        .map(|i| (i + 1, content(lines[i]).to_string()))
        .collect()
}

/// Undoes [`apply`]: removes the marked block and the prefixes; everything else
/// (edits made since, too, and lines added inside the block, which stay
/// where the block was) is kept.
pub fn rollback(text: &str) -> String {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let marked = block(&lines);
    let mut out = String::with_capacity(text.len());
    for (i, line) in lines.iter().enumerate() {
        if let Some((begin, end)) = marked
            && (begin..=end).contains(&i)
        {
            if !written_by_setup(&lines, (begin, end), i) {
                out.push_str(line);
                continue;
            }
            // The END line without a line end means the file had none before
            // setup, which then added one in front of BEGIN: take it off again.
            if i == end && i + 1 == lines.len() && !line.ends_with('\n') {
                let trimmed = out
                    .strip_suffix("\r\n")
                    .or_else(|| out.strip_suffix('\n'))
                    .map(str::len);
                if let Some(len) = trimmed {
                    out.truncate(len);
                }
            }
            continue;
        }
        out.push_str(line.strip_prefix(PREFIX).unwrap_or(line));
    }
    out
}

/// What setup needs from jma-receipt.conf, read as WebORCA would see it
/// without setup's edits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebOrcaConf {
    /// SERVER_CRT, SERVER_PEM, CA_CRT in that order, each with its line, if set
    pub keys: [Option<(String, usize)>; 3],
    /// HTTP_PORT, if set, with its line
    pub http_port: Option<(String, usize)>,
    /// the lines the parser passed over, each naming file and line
    pub warnings: Vec<String>,
}

/// Reads the keys from `text` as it was before setup (see [`rollback`]).
pub fn read(text: &str, path: &Path) -> WebOrcaConf {
    let raw = parse_raw(&rollback(text), path);
    let last = |key: &str| {
        raw.entries
            .iter()
            .rev()
            .find(|e| e.key == key)
            .map(|e| (e.value.clone(), e.line))
    };
    WebOrcaConf {
        keys: TLS_KEYS.map(last),
        http_port: last("HTTP_PORT"),
        warnings: raw.warnings.clone(),
    }
}

/// jma-receipt.conf after setup for backend `port`: the TLS keys' lines commented
/// out with [`PREFIX`], the `HTTP_PORT` block at the end. Applying it to its own
/// result gives the same text.
pub fn apply(text: &str, path: &Path, port: u16) -> String {
    let base = rollback(text);
    let raw = parse_raw(&base, path);
    let tls_lines: BTreeSet<usize> = raw
        .entries
        .iter()
        .filter(|e| TLS_KEYS.contains(&e.key.as_str()))
        .map(|e| e.line)
        .collect();
    let eol = eol_of(&base);
    let mut out = String::with_capacity(base.len() + 100);
    for (i, line) in base.split_inclusive('\n').enumerate() {
        if tls_lines.contains(&(i + 1)) {
            out.push_str(PREFIX);
        }
        out.push_str(line);
    }
    if out.is_empty() || out.ends_with('\n') {
        out.push_str(&format!("{BEGIN}{eol}HTTP_PORT={port}{eol}{END}{eol}"));
    } else {
        // No line end at the end of the file: add one, and leave none after the block,
        // which tells rollback to take it off again.
        out.push_str(&format!("{eol}{BEGIN}{eol}HTTP_PORT={port}{eol}{END}"));
    }
    out
}

/// A value as the shell and the proxy's parser read it back unchanged.
pub fn shell_value(value: &str) -> Result<String, String> {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_./:@,+-=[]%".contains(c);
    if !value.is_empty() && value.chars().all(plain) {
        Ok(value.to_string())
    } else if value.contains('\'') || value.chars().any(char::is_control) {
        Err(format!(
            "the value {value:?} holds a quote or control character; rename the file"
        ))
    } else {
        Ok(format!("'{value}'"))
    }
}

/// `text` with each key set: every line assigning it is replaced by `KEY=VALUE`
/// (a `None` value comments the lines out with [`PREFIX`]); a key not yet in the
/// file is added at its end. Other lines are kept byte for byte.
pub fn set_keys(text: &str, path: &Path, keys: &[(&str, Option<&str>)]) -> Result<String, String> {
    let raw = parse_raw(text, path);
    let eol = eol_of(text);
    let mut out = String::with_capacity(text.len() + 200);
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let assigned = raw
            .entries
            .iter()
            .find(|e| e.line == i + 1)
            .and_then(|e| keys.iter().find(|(k, _)| *k == e.key));
        match assigned {
            Some((key, Some(value))) => {
                let end = &line[content(line).len()..];
                out.push_str(&format!("{key}={}{end}", shell_value(value)?));
            }
            Some((_, None)) => {
                out.push_str(PREFIX);
                out.push_str(line);
            }
            None => out.push_str(line),
        }
    }
    for (key, value) in keys {
        let Some(value) = value else { continue };
        if !raw.entries.iter().any(|e| e.key == *key) {
            if !out.is_empty() && !out.ends_with('\n') {
                out.push_str(eol);
            }
            out.push_str(&format!("{key}={}{eol}", shell_value(value)?));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: &str = "/opt/jma/weborca/conf/jma-receipt.conf";

    #[test]
    fn a_file_that_is_not_utf8_keeps_every_other_byte() {
        // an EUC-JP comment (「証明書」), and a Shift_JIS one (「設定」)
        let mut original: Vec<u8> = b"# ".to_vec();
        original.extend_from_slice(&[0xbe, 0xda, 0xcc, 0xc0, 0xbd, 0xf1]);
        original
            .extend_from_slice(b"\r\nSERVER_CRT=/a.crt\r\nSERVER_PEM=/a.pem\r\nCA_CRT=/ca.crt # ");
        original.extend_from_slice(&[0x90, 0xdd, 0x92, 0xe8]);
        original.extend_from_slice(b"\r\n");
        let (text, how) = decode(&original);
        assert_eq!(how, Spelling::Bytes);
        let conf = read(&text, Path::new("/j.conf"));
        assert_eq!(
            conf.keys[2].as_ref().map(|(v, _)| v.as_str()),
            Some("/ca.crt")
        );
        let moved = encode(apply(&text, Path::new("/j.conf"), 8001), how);
        let mut expected: Vec<u8> = b"# ".to_vec();
        expected.extend_from_slice(&[0xbe, 0xda, 0xcc, 0xc0, 0xbd, 0xf1]);
        expected.extend_from_slice(b"\r\n#weborca-mtls-proxy# SERVER_CRT=/a.crt\r\n#weborca-mtls-proxy# SERVER_PEM=/a.pem\r\n#weborca-mtls-proxy# CA_CRT=/ca.crt # ");
        expected.extend_from_slice(&[0x90, 0xdd, 0x92, 0xe8]);
        expected.extend_from_slice(
            b"\r\n# >>> weborca-mtls-proxy\r\nHTTP_PORT=8001\r\n# <<< weborca-mtls-proxy\r\n",
        );
        assert_eq!(moved, expected);
        let (moved_text, how) = decode(&moved);
        assert_eq!(encode(rollback(&moved_text), how), original);
    }

    #[test]
    fn apply_and_rollback_keep_every_other_byte() {
        let original = "# WebORCA\r\nDBHOST=localhost\r\nexport SERVER_CRT=/c/s.crt # server\r\n  SERVER_PEM=\"/c/s.pem\"\r\nCA_CRT='/c/ca.crt'\r\nHTTP_PORT=8000\r\n";
        let set = apply(original, Path::new(P), 8001);
        assert_eq!(
            set,
            "# WebORCA\r\nDBHOST=localhost\r\n#weborca-mtls-proxy# export SERVER_CRT=/c/s.crt # server\r\n#weborca-mtls-proxy#   SERVER_PEM=\"/c/s.pem\"\r\n#weborca-mtls-proxy# CA_CRT='/c/ca.crt'\r\nHTTP_PORT=8000\r\n# >>> weborca-mtls-proxy\r\nHTTP_PORT=8001\r\n# <<< weborca-mtls-proxy\r\n"
        );
        assert_eq!(apply(&set, Path::new(P), 8001), set);
        assert_eq!(rollback(&set), original);
        let read = read(&set, Path::new(P));
        assert_eq!(read.keys[0], Some(("/c/s.crt".to_string(), 3)));
        assert_eq!(read.http_port, Some(("8000".to_string(), 6)));
    }

    #[test]
    fn a_file_without_a_final_line_end_comes_back_without_one() {
        let original = "SERVER_CRT=/a\nSERVER_PEM=/b\nCA_CRT=/c";
        let set = apply(original, Path::new(P), 8001);
        assert!(
            set.ends_with("\n# >>> weborca-mtls-proxy\nHTTP_PORT=8001\n# <<< weborca-mtls-proxy")
        );
        assert_eq!(rollback(&set), original);
        assert_eq!(apply(&set, Path::new(P), 8001), set);
    }

    #[test]
    fn rollback_keeps_edits_made_since() {
        let set = apply("SERVER_CRT=/a\nX=1\n", Path::new(P), 8001);
        let edited = set.replace("X=1", "X=2") + "Y=3\n";
        assert_eq!(rollback(&edited), "SERVER_CRT=/a\nX=2\nY=3\n");
    }

    #[test]
    fn a_damaged_block_is_named_by_its_line() {
        let set = apply("SERVER_CRT=/a\nX=1\n", Path::new(P), 8001);
        assert_eq!(check_block(&set), Ok(()));
        let no_end = set.replace(&format!("{END}\n"), "");
        assert!(
            matches!(check_block(&no_end), Err((3, m)) if m.contains("has no `# <<< weborca-mtls-proxy` after it"))
        );
        let no_begin = set.replace(&format!("{BEGIN}\n"), "");
        assert!(
            matches!(check_block(&no_begin), Err((4, m)) if m.contains("has no `# >>> weborca-mtls-proxy` before it"))
        );
        assert!(
            matches!(check_block(&format!("{set}{set}")), Err((8, m)) if m.contains("a second block"))
        );
    }

    #[test]
    fn rollback_keeps_lines_added_inside_the_block() {
        let set = apply("SERVER_CRT=/a\n", Path::new(P), 8001);
        let edited = set.replace("HTTP_PORT=8001\n", "HTTP_PORT=8001\nMY_KEY=1\n");
        assert_eq!(added_in_block(&edited), [(4, "MY_KEY=1".to_string())]);
        assert_eq!(rollback(&edited), "SERVER_CRT=/a\nMY_KEY=1\n");
        assert!(added_in_block(&set).is_empty());
        // a line added above setup's HTTP_PORT= line does not make that one the operator's
        let above = set.replace(
            "# >>> weborca-mtls-proxy\n",
            "# >>> weborca-mtls-proxy\nMY_KEY=1\n",
        );
        assert_eq!(added_in_block(&above), [(3, "MY_KEY=1".to_string())]);
        assert_eq!(rollback(&above), "SERVER_CRT=/a\nMY_KEY=1\n");
    }

    #[test]
    fn set_keys_replaces_in_place_and_appends() {
        let text = "# proxy\nSERVER_CRT=/old.crt\nLISTEN=[::]:8000\nSERVER_P12=/x.p12\n";
        let out = set_keys(
            text,
            Path::new("/etc/p.conf"),
            &[
                ("SERVER_CRT", Some("/new dir/s.crt")),
                ("SERVER_P12", None),
                ("CA_CRT", Some("/ca.crt")),
            ],
        )
        .unwrap();
        assert_eq!(
            out,
            "# proxy\nSERVER_CRT='/new dir/s.crt'\nLISTEN=[::]:8000\n#weborca-mtls-proxy# SERVER_P12=/x.p12\nCA_CRT=/ca.crt\n"
        );
        assert!(shell_value("it's").is_err());
    }
}
