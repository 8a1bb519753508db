//! Stage 1 of the config reader: shell-style text → raw `KEY=VALUE` entries,
//! understanding only plain assignments and never executing anything.

#[allow(unused_imports)]
use super::*;

/// Why a line was skipped; shown in parentheses in the warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Unsupported {
    CommandSubstitution,
    Arithmetic,
    Operator(char),
    Unterminated(char),
    NotAssignment,
    SpaceAroundEquals,
    BadKey,
    ExtraWords,
    MultipleAssignments,
    Modifier,
    SpecialParameter,
    Continuation,
    Tilde,
    AnsiQuote,
    TooLong,
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CommandSubstitution => f.write_str("command substitution is never run"),
            Self::Arithmetic => f.write_str("arithmetic expansion is not supported"),
            Self::Operator(c) => write!(
                f,
                "shell operator '{c}' is never run; quote the value if '{c}' is part of it"
            ),
            Self::Unterminated(q) => write!(f, "unterminated {q} quote; a value cannot span lines"),
            Self::NotAssignment => f.write_str("shell commands are never run"),
            Self::SpaceAroundEquals => f.write_str("no spaces are allowed around '=' in shell"),
            Self::BadKey => {
                f.write_str("a key is letters, digits and '_' and does not start with a digit")
            }
            Self::ExtraWords => f.write_str(
                "text after the value would run as a command in shell; quote values with spaces",
            ),
            Self::MultipleAssignments => f.write_str("only one assignment per line is supported"),
            Self::Modifier => f.write_str("only $NAME and ${NAME} expansions are supported"),
            Self::SpecialParameter => {
                f.write_str("special parameters like $1 or $? are not supported")
            }
            Self::Continuation => {
                f.write_str("continuing a line with a trailing backslash is not supported")
            }
            Self::Tilde => f.write_str("'~' is not expanded; write the full path"),
            Self::AnsiQuote => f.write_str("$'...' and $\"...\" quoting is not supported"),
            Self::TooLong => write!(f, "the value is longer than {MAX_VALUE_BYTES} bytes"),
        }
    }
}

/// A value being built, with the names of unset variables it referred to.
#[derive(Default)]
pub(super) struct Word {
    text: String,
    unset: Vec<String>,
}

/// A successfully parsed assignment line.
pub(super) struct Assignment<'a> {
    key: &'a str,
    word: Word,
}

/// Reads a line left to right without indexing, so no input can make it panic.
pub(super) struct Scanner<'a> {
    rest: &'a str,
}

impl<'a> Scanner<'a> {
    pub(super) fn peek(&self) -> Option<char> {
        self.rest.chars().next()
    }

    pub(super) fn bump(&mut self) -> Option<char> {
        let mut chars = self.rest.chars();
        let c = chars.next()?;
        self.rest = chars.as_str();
        Some(c)
    }

    pub(super) fn eat(&mut self, c: char) -> bool {
        match self.rest.strip_prefix(c) {
            Some(rest) => {
                self.rest = rest;
                true
            }
            None => false,
        }
    }

    /// Takes a shell name (`[A-Za-z_][A-Za-z0-9_]*`) if one starts here.
    pub(super) fn take_name(&mut self) -> Option<&'a str> {
        if !self
            .peek()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        {
            return None;
        }
        let end = self
            .rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(self.rest.len());
        let (name, rest) = self.rest.split_at_checked(end)?;
        self.rest = rest;
        Some(name)
    }
}

/// The shell's blanks: what separates words on a line.
pub(super) fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// Parses the text of a config file into assignments, as `source` would make them,
/// without running anything. Never fails: lines it cannot take are skipped with a warning.
pub fn parse_raw(text: &str, path: &Path) -> RawConfig {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut raw = RawConfig::default();
    // Every key assigned so far, known or not, for `$VAR` expansion.
    let mut vars: HashMap<String, String> = HashMap::new();
    for (index, line) in text.split('\n').enumerate() {
        let number = index.saturating_add(1);
        let line = line.strip_suffix('\r').unwrap_or(line);
        match parse_line(line, &vars) {
            Ok(None) => {}
            Ok(Some(Assignment { key, word })) => {
                for name in word.unset {
                    raw.warnings.push(format!(
                        "{} line {number}: ${name} is not set earlier in this file, so it \
                         expands to an empty string (the environment is not read)",
                        path.display()
                    ));
                }
                vars.insert(key.to_string(), word.text.clone());
                raw.entries.push(RawEntry {
                    key: key.to_string(),
                    value: word.text,
                    line: number,
                });
            }
            Err(reason) => {
                raw.warnings.push(format!(
                    "{} line {number}: ignored, not a plain KEY=VALUE assignment ({reason}): {}",
                    path.display(),
                    printable(line.trim_matches(is_blank))
                ));
                if let Some((key, text)) = named_assignment(line) {
                    raw.unreadable.push(Unreadable {
                        key: key.to_string(),
                        line: number,
                        text: text.to_string(),
                        reason: reason.to_string(),
                    });
                }
            }
        }
    }
    raw
}

/// The key an unreadable line sets and what follows its `=`: `KEY=…` or
/// `KEY = …` (after an `export`); `None` for a line that assigns nothing.
fn named_assignment(line: &str) -> Option<(&str, &str)> {
    let mut scanner = Scanner {
        rest: strip_export(line.trim_start_matches(is_blank)),
    };
    let key = scanner.take_name()?;
    let rest = scanner
        .rest
        .trim_start_matches(is_blank)
        .strip_prefix('=')?;
    Some((key, rest.trim_matches(is_blank)))
}

/// One line: `Ok(None)` for blank and comment lines, the assignment, or why it was skipped.
pub(super) fn parse_line<'a>(
    line: &'a str,
    vars: &HashMap<String, String>,
) -> Result<Option<Assignment<'a>>, Unsupported> {
    let body = line.trim_start_matches(is_blank);
    if body.is_empty() || body.starts_with('#') {
        return Ok(None);
    }
    let mut scanner = Scanner {
        rest: strip_export(body),
    };
    let key = parse_key(&mut scanner)?;
    // `KEY= value` assigns an empty KEY and runs `value` as a command.
    let spaced = scanner.peek().is_some_and(is_blank);
    let mut word = Word::default();
    parse_word(&mut scanner, vars, &mut word)?;
    match check_after_value(scanner.rest) {
        Err(Unsupported::ExtraWords | Unsupported::MultipleAssignments) if spaced => {
            Err(Unsupported::SpaceAroundEquals)
        }
        Err(reason) => Err(reason),
        Ok(()) => Ok(Some(Assignment { key, word })),
    }
}

/// `export KEY=VALUE` assigns like `KEY=VALUE`; exporting makes no difference here.
pub(super) fn strip_export(body: &str) -> &str {
    match body.strip_prefix("export") {
        Some(rest) if rest.starts_with(is_blank) => rest.trim_start_matches(is_blank),
        _ => body,
    }
}

/// The key and its `=`, or why this is not an assignment.
pub(super) fn parse_key<'a>(scanner: &mut Scanner<'a>) -> Result<&'a str, Unsupported> {
    let first_word = scanner.rest.split(is_blank).next().unwrap_or_default();
    match scanner.take_name() {
        Some(key) if scanner.eat('=') => Ok(key),
        Some(_) if scanner.rest.trim_start_matches(is_blank).starts_with('=') => {
            Err(Unsupported::SpaceAroundEquals)
        }
        _ if first_word.contains('=') => Err(Unsupported::BadKey),
        _ => Err(Unsupported::NotAssignment),
    }
}

/// After the value only blanks and a `#` comment may follow.
pub(super) fn check_after_value(rest: &str) -> Result<(), Unsupported> {
    let rest = rest.trim_start_matches(is_blank);
    if rest.is_empty() || rest.starts_with('#') {
        return Ok(());
    }
    // Name what makes the rest dangerous before calling it merely extra words.
    if rest.contains('`') || rest.contains("$(") {
        return Err(Unsupported::CommandSubstitution);
    }
    if let Some(op) = rest.chars().next().filter(|c| ";|&<>()".contains(*c)) {
        return Err(Unsupported::Operator(op));
    }
    let mut next = Scanner { rest };
    if next.take_name().is_some() && next.eat('=') {
        Err(Unsupported::MultipleAssignments)
    } else {
        Err(Unsupported::ExtraWords)
    }
}

/// The value: unquoted text, quoted parts and expansions up to the first unquoted blank.
pub(super) fn parse_word(
    scanner: &mut Scanner<'_>,
    vars: &HashMap<String, String>,
    word: &mut Word,
) -> Result<(), Unsupported> {
    // The shell would turn a leading `~` into $HOME; a literal `~` path would surprise.
    if scanner.peek() == Some('~') {
        return Err(Unsupported::Tilde);
    }
    while let Some(c) = scanner.peek() {
        if is_blank(c) {
            break;
        }
        scanner.bump();
        match c {
            '\'' => single_quoted(scanner, word)?,
            '"' => double_quoted(scanner, vars, word)?,
            '\\' => match scanner.bump() {
                Some(escaped) => word.text.push(escaped),
                None => return Err(Unsupported::Continuation),
            },
            '$' => expand(scanner, vars, word, false)?,
            '`' => return Err(Unsupported::CommandSubstitution),
            ';' | '|' | '&' | '<' | '>' | '(' | ')' => return Err(Unsupported::Operator(c)),
            _ => word.text.push(c),
        }
    }
    if word.text.len() > MAX_VALUE_BYTES {
        return Err(Unsupported::TooLong);
    }
    Ok(())
}

/// After an opening `'`: everything is literal up to the next `'`.
pub(super) fn single_quoted(scanner: &mut Scanner<'_>, word: &mut Word) -> Result<(), Unsupported> {
    let (inside, rest) = scanner
        .rest
        .split_once('\'')
        .ok_or(Unsupported::Unterminated('\''))?;
    word.text.push_str(inside);
    scanner.rest = rest;
    Ok(())
}

/// After an opening `"`: `\"`, `\\`, `\$` and `` \` `` escape, `$VAR` expands, and a
/// backtick would be command substitution.
pub(super) fn double_quoted(
    scanner: &mut Scanner<'_>,
    vars: &HashMap<String, String>,
    word: &mut Word,
) -> Result<(), Unsupported> {
    loop {
        match scanner.bump() {
            None => return Err(Unsupported::Unterminated('"')),
            Some('"') => return Ok(()),
            Some('\\') => match scanner.peek() {
                Some(c @ ('"' | '\\' | '$' | '`')) => {
                    scanner.bump();
                    word.text.push(c);
                }
                // Any other backslash stays, as in the shell (`"a\b"` is `a\b`).
                Some(_) => word.text.push('\\'),
                None => return Err(Unsupported::Unterminated('"')),
            },
            Some('`') => return Err(Unsupported::CommandSubstitution),
            Some('$') => expand(scanner, vars, word, true)?,
            Some(c) => word.text.push(c),
        }
    }
}

/// After a `$`: `$NAME` and `${NAME}` expand to keys set earlier in the file; every other
/// expansion is refused, and a `$` that starts none stays literal, as in the shell.
pub(super) fn expand(
    scanner: &mut Scanner<'_>,
    vars: &HashMap<String, String>,
    word: &mut Word,
    in_double_quotes: bool,
) -> Result<(), Unsupported> {
    let name = match scanner.peek() {
        Some('(') if scanner.rest.starts_with("((") => return Err(Unsupported::Arithmetic),
        Some('(') => return Err(Unsupported::CommandSubstitution),
        Some('[') => return Err(Unsupported::Arithmetic),
        Some('{') => {
            scanner.bump();
            let name = scanner.take_name().ok_or(Unsupported::Modifier)?;
            if !scanner.eat('}') {
                return Err(Unsupported::Modifier);
            }
            name
        }
        Some(c) if c.is_ascii_digit() || "@*#?-$!".contains(c) => {
            return Err(Unsupported::SpecialParameter);
        }
        Some('\'' | '"') if !in_double_quotes => return Err(Unsupported::AnsiQuote),
        _ => match scanner.take_name() {
            Some(name) => name,
            None => {
                word.text.push('$');
                return Ok(());
            }
        },
    };
    match vars.get(name) {
        Some(value) if word.text.len().saturating_add(value.len()) > MAX_VALUE_BYTES => {
            return Err(Unsupported::TooLong);
        }
        Some(value) => word.text.push_str(value),
        None if !word.unset.iter().any(|seen| seen == name) => word.unset.push(name.to_string()),
        None => {}
    }
    Ok(())
}
