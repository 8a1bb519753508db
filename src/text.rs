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

/// Whether `c` steers how a line looks rather than being part of it: the
/// control characters, and the line/paragraph separators and bidirectional
/// marks and overrides (Unicode format characters that `char::is_control`
/// does not cover), with which a name could reorder or split what the
/// operator reads.
fn steers(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}'
                | '\u{2029}'
                | '\u{200e}'
                | '\u{200f}'
                | '\u{061c}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
        )
}

/// `text` with its controls written as `controls` says, cut after
/// `max_chars` characters; `cut_mark` is appended only when something was cut.
/// In [`Controls::Hex`] a backslash is written `\x5c` too, so that a name
/// holding the four characters `\x0a` cannot pass for an escaped newline.
pub fn one_line(text: &str, max_chars: usize, controls: Controls, cut_mark: &str) -> String {
    let mut out = String::with_capacity(text.len().min(max_chars));
    for (i, c) in text.chars().enumerate() {
        if i == max_chars {
            out.push_str(cut_mark);
            break;
        }
        let escape = steers(c) || (c == '\\' && controls == Controls::Hex);
        if !escape {
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

/// A value for a text log line's `key=value`: as it is when it is one word
/// (no blank, no `"`), else in double quotes (`cn="Yamada Taro"`, inner `"`
/// and `\\` escaped), so
/// that a CN holding ` serial=99` or `"GET /x"` cannot pass for another
/// field or for a request. A reader splits fields on blanks outside quotes.
pub struct Token<'a>(pub &'a str);

impl std::fmt::Display for Token<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let plain = !self.0.is_empty()
            && !self
                .0
                .chars()
                .any(|c| c == '"' || c.is_whitespace() || steers(c));
        if plain {
            return f.write_str(self.0);
        }
        f.write_str("\"")?;
        for c in self.0.chars() {
            if c == '"' || c == '\\' {
                f.write_str("\\")?;
            }
            if steers(c) {
                // a value not made safe before: never a line break or a
                // reordering mark in the line (`\u{a}` reads back in audit)
                write!(f, "\\u{{{:x}}}", u32::from(c))?;
            } else {
                write!(f, "{c}")?;
            }
        }
        f.write_str("\"")
    }
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

    #[test]
    fn a_log_token_is_quoted_unless_it_is_one_word() {
        let t = |s: &str| Token(s).to_string();
        assert_eq!(t("user1"), "user1");
        assert_eq!(t("山田"), "山田");
        assert_eq!(t(r"x\x0ay"), r"x\x0ay", "one word, escapes and all");
        assert_eq!(t(""), "\"\"");
        assert_eq!(t("Yamada Taro"), "\"Yamada Taro\"");
        assert_eq!(t("山田\u{3000}太郎"), "\"山田\u{3000}太郎\"");
        assert_eq!(
            t("a\nb"),
            r#""a\u{a}b""#,
            "a raw line break never ends the line"
        );
        assert_eq!(
            t(r#"x serial=99 "GET /x" \"#),
            r#""x serial=99 \"GET /x\" \\""#
        );
    }

    #[test]
    fn separators_bidi_and_backslashes() {
        assert_eq!(log_safe("a\u{2028}b"), "a\\xe2\\x80\\xa8b");
        assert_eq!(log_safe("x\u{202e}y"), "x\\xe2\\x80\\xaey");
        assert_eq!(log_safe("\u{2066}z"), "\\xe2\\x81\\xa6z");
        // A literal `\x0a` in a name is not an escaped newline.
        assert_eq!(log_safe("a\\x0ab"), "a\\x5cx0ab");
        assert_eq!(one_line("a\\b", 9, Controls::Escape, ""), "a\\b");
        assert_eq!(
            one_line("a\u{2029}b", 9, Controls::Escape, ""),
            "a\\u{2029}b"
        );
    }
}

/// A PEM reading error in words: the crate's own message shows the marker
/// or line it stopped at as a list of byte values (`[45, 45, …]`).
pub fn pem_error(e: &rustls_pki_types::pem::Error) -> String {
    use rustls_pki_types::pem::Error;
    let shown = |bytes: &[u8]| one_line(&String::from_utf8_lossy(bytes), 80, Controls::Hex, "…");
    match e {
        Error::MissingSectionEnd { end_marker } => format!(
            "the file ends before its \"-----END {}-----\" line (cut short?)",
            shown(end_marker)
        ),
        Error::IllegalSectionStart { line } => {
            format!("a damaged \"-----BEGIN\" line: \"{}\"", shown(line))
        }
        Error::Base64Decode(why) => format!("damaged base64 between the PEM lines ({why})"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod pem_tests {
    #[test]
    fn a_cut_pem_file_is_told_in_words() {
        use rustls_pki_types::CertificateRevocationListDer;
        use rustls_pki_types::pem::PemObject as _;
        let cut = b"-----BEGIN X509 CRL-----\nMIIB\n";
        let e = CertificateRevocationListDer::pem_slice_iter(cut)
            .collect::<Result<Vec<_>, _>>()
            .unwrap_err();
        assert_eq!(
            super::pem_error(&e),
            "the file ends before its \"-----END X509 CRL-----\" line (cut short?)"
        );
    }
}
