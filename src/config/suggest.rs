//! Did-you-mean for mistyped keys, from [`KNOWN_KEYS`](super::KNOWN_KEYS).

#[allow(unused_imports)]
use super::*;

/// The known key an unknown key was probably meant to be. Compared in upper case, since
/// `server_crt=` is as likely a slip as `SERVER_CRTT=`.
pub(super) fn suggest(key: &str) -> Option<&'static str> {
    if key.len() < SUGGEST_MIN_KEY_LEN {
        return None;
    }
    let upper = key.to_ascii_uppercase();
    KNOWN_KEYS
        .iter()
        // Keys differing in length by more than the limit cannot be close enough.
        .filter(|known| known.len().abs_diff(upper.len()) <= SUGGEST_MAX_DISTANCE)
        .map(|known| (edit_distance(&upper, known), *known))
        .filter(|(distance, _)| *distance <= SUGGEST_MAX_DISTANCE)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, known)| known)
}

/// Levenshtein distance (insertions, deletions, substitutions), in characters.
pub(super) fn edit_distance(a: &str, b: &str) -> usize {
    strsim::levenshtein(a, b)
}
