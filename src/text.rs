//! Text that came from outside — certificate fields, config values, damaged
//! files — made fit for one log or message line: control characters made
//! visible (a CN chosen by a stranger must not forge a log line or steer the
//! operator's terminal) and long text cut. The one sanitiser; each caller
//! picks how controls look and how long a value may be.

/// How a control character is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Controls {
    /// Rust's escape (`\n`, `\u{1b}`), for config messages
    Escape,
    /// each UTF-8 byte as `\xHH`, for the access log
    Hex,
    /// one replacement character
    Replace(char),
    /// left as they are (the text is known to hold none that matter)
    Keep,
}

/// `text` with its controls written as `controls` says, cut after
/// `max_chars` characters; `cut_mark` is appended only when something was cut.
pub fn one_line(text: &str, max_chars: usize, controls: Controls, cut_mark: &str) -> String {
    let mut out = String::with_capacity(text.len().min(max_chars));
    for (i, c) in text.chars().enumerate() {
        if i == max_chars {
            out.push_str(cut_mark);
            break;
        }
        if !c.is_control() {
            out.push(c);
            continue;
        }
        match controls {
            Controls::Escape => out.extend(c.escape_default()),
            Controls::Hex => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("\\x{b:02x}"));
                }
            }
            Controls::Replace(r) => out.push(r),
            Controls::Keep => out.push(c),
        }
    }
    out
}

/// Longest certificate value (CN, serial, subject) written to a log line.
pub const LOG_VALUE_CHARS: usize = 300;

/// A value from a certificate made safe for one log line: control characters
/// as `\xHH`, cut to LOG_VALUE_CHARS. A CN is chosen by whoever made the
/// certificate, also a refused stranger, and must not forge audit-log lines.
pub fn log_safe(value: &str) -> String {
    one_line(value, LOG_VALUE_CHARS, Controls::Hex, "…")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_and_cuts() {
        assert_eq!(one_line("a\nb", 10, Controls::Escape, "…"), "a\\nb");
        assert_eq!(one_line("a\nb", 10, Controls::Hex, "…"), "a\\x0ab");
        assert_eq!(one_line("a\nb", 10, Controls::Replace('?'), ""), "a?b");
        assert_eq!(one_line("a\nb", 10, Controls::Keep, ""), "a\nb");
        assert_eq!(one_line("abcdef", 3, Controls::Keep, "…"), "abc…");
        assert_eq!(one_line("abc", 3, Controls::Keep, "…"), "abc");
        assert_eq!(one_line("日本語です", 2, Controls::Hex, ""), "日本");
    }
}
