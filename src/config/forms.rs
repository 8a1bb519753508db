//! The value parsers a row of the key table names (`path`, `paths`, `list`, `flag`,
//! `duration`, `count`, `words`, …): each turns one setting into the value of
//! its [`Config`](super::Config) field, or says what would be valid (the text
//! after "expected" in the error). The text parsers behind them are in
//! `values.rs`.

use std::fmt::Display;

#[allow(unused_imports)]
use super::*;

/// One setting as a row's parser sees it.
pub(super) struct Value<'a> {
    /// the value as written (after quote removal and `$VAR` expansion)
    pub(super) raw: &'a str,
    /// the config file's folder, against which relative paths are resolved
    pub(super) dir: &'a Path,
}

impl Value<'_> {
    /// The value without surrounding blanks: what every form but a path reads.
    fn text(&self) -> &str {
        self.raw.trim()
    }

    fn resolve(&self, path: &str) -> PathBuf {
        self.dir.join(path)
    }
}

/// A file, resolved against the config file's folder when relative; the value
/// is taken as written, since a path may end in a blank.
pub(super) fn path(value: &Value<'_>) -> Result<PathBuf, String> {
    Ok(value.resolve(value.raw))
}

/// Files separated by commas, each resolved as by [`path`]; `expected` is the error.
pub(super) fn paths(expected: &'static str) -> impl Fn(&Value<'_>) -> Result<Vec<PathBuf>, String> {
    move |value| {
        let files = parse_list(value.text()).ok_or_else(|| expected.to_string())?;
        Ok(files.iter().map(|file| value.resolve(file)).collect())
    }
}

/// Names separated by commas, each once; `expected` is the error.
pub(super) fn list(expected: &'static str) -> impl Fn(&Value<'_>) -> Result<Vec<String>, String> {
    move |value| parse_list(value.text()).ok_or_else(|| expected.to_string())
}

/// `on`/`off` (also yes/no, true/false, 1/0).
pub(super) fn flag(value: &Value<'_>) -> Result<bool, String> {
    parse_bool(value.text())
}

/// `30`, `30s`, `5m`, `500ms`…, above zero and at most 24h.
pub(super) fn duration(value: &Value<'_>) -> Result<Duration, String> {
    parse_duration(value.text())
}

/// A whole number of `what` from `min` to `max`; the error reads "a number of
/// {what} from {min} to {max}, like {example}".
pub(super) fn count<T>(
    min: T,
    max: T,
    what: &'static str,
    example: &'static str,
) -> impl Fn(&Value<'_>) -> Result<T, String>
where
    T: Copy + Display + TryFrom<u64> + TryInto<u64>,
{
    move |value| {
        let low = min.try_into().unwrap_or(0);
        let high = max.try_into().unwrap_or(u64::MAX);
        parse_in_range(value.text(), low, high)
            .and_then(|n| T::try_from(n).ok())
            .ok_or_else(|| format!("a number of {what} from {min} to {max}, like {example}"))
    }
}

/// `auto` (`None`: one per CPU core) or what `count` reads.
pub(super) fn auto_or<T>(
    count: impl Fn(&Value<'_>) -> Result<T, String>,
) -> impl Fn(&Value<'_>) -> Result<Option<T>, String> {
    move |value| {
        if value.text().eq_ignore_ascii_case("auto") {
            return Ok(None);
        }
        count(value)
            .map(Some)
            .map_err(|expected| format!("auto (one per CPU core) or {expected}"))
    }
}

/// One of `words` (any case), each standing for its value; `expected` is the error.
pub(super) fn words<T: Copy>(
    words: &'static [(&'static str, T)],
    expected: &'static str,
) -> impl Fn(&Value<'_>) -> Result<T, String> {
    move |value| {
        words
            .iter()
            .find(|(word, _)| word.eq_ignore_ascii_case(value.text()))
            .map(|(_, meant)| *meant)
            .ok_or_else(|| expected.to_string())
    }
}

/// Socket addresses separated by commas, each once (port 0 excepted).
pub(super) fn socket_addrs(value: &Value<'_>) -> Result<Vec<SocketAddr>, String> {
    parse_listen(value.text())
}

/// One IP address and port.
pub(super) fn socket_addr(value: &Value<'_>) -> Result<SocketAddr, String> {
    parse_socket_addr(value.text())
        .map_err(|why| format!("a socket address like 127.0.0.1:9000; {why}"))
}

/// `http://host[:port][/]`.
pub(super) fn http_url(value: &Value<'_>) -> Result<BackendUrl, String> {
    parse_backend_url(value.text())
}

/// What a field of a key unset by default holds when the key is not set:
/// `None`, or an empty list.
pub(super) trait Unset<T> {
    /// The field's value from the key's parsed value, if the key was set.
    fn from_setting(value: Option<T>) -> Self;
}

impl<T> Unset<T> for Option<T> {
    fn from_setting(value: Option<T>) -> Self {
        value
    }
}

impl<T> Unset<Vec<T>> for Vec<T> {
    fn from_setting(value: Option<Vec<T>>) -> Self {
        value.unwrap_or_default()
    }
}
