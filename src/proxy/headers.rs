//! Where a header is rewritten on its way through: hop-by-hop headers and
//! the proxy's own identity headers stripped, HTTP/2 cookies joined.

#[allow(unused_imports)]
use super::*;

/// Hop-by-hop headers (RFC 9110 §7.6.1, plus the legacy `keep-alive` and
/// `proxy-connection`), never forwarded in either direction.
pub(super) const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authenticate",
];

/// HTTP/2 lets a client split `cookie` into several fields; an HTTP/1.1
/// backend expects one header, joined with `; ` (RFC 9113 §8.2.3).
pub(super) fn join_cookies(headers: &mut HeaderMap) {
    let mut values = headers.get_all(header::COOKIE).iter();
    let (Some(first), Some(_)) = (values.next(), values.next()) else {
        return;
    };
    let mut joined = first.as_bytes().to_vec();
    for v in headers.get_all(header::COOKIE).iter().skip(1) {
        joined.extend_from_slice(b"; ");
        joined.extend_from_slice(v.as_bytes());
    }
    if let Ok(v) = HeaderValue::from_bytes(&joined) {
        headers.insert(header::COOKIE, v);
    }
}

/// Whether a client-sent header claims to be one only the proxy may set: the
/// identity headers, `Forwarded`, `X-Forwarded-*`, `X-Real-IP`, any
/// `X-SSL-*` (also HAProxy's `X-SSL-Cert`), and the other spellings of a
/// client identity some backend or framework trusts (`X-Client-*`,
/// `SSL-Client-*`, each family's bare name (`SSL-Client`, `X-SSL`), `X-Forwarded-Client-Cert`, `Client-Cert-Chain`,
/// `X-Amzn-Mtls-*`, IIS ARR's `X-ARR-ClientCert`, `X-Tls-Client-*`,
/// `X-Mtls-*`, `X-Cert-*`, `Cert-Subject`, and the user names
/// `Remote-User`, `X-Remote-User`, `X-Authenticated-User`) — also
/// spelled with `_` for `-`, which CGI-style backends read as the same variable.
pub(super) fn is_ours(name: &HeaderName) -> bool {
    /// Prefixes of header names only the proxy may set.
    const OURS: [&str; 8] = [
        "x-ssl-",
        "x-forwarded-",
        "x-client-",
        "ssl-client-",
        "x-amzn-mtls-",
        "x-tls-client-",
        "x-mtls-",
        "x-cert-",
    ];
    /// Single names a backend or its framework may take a user from.
    const NAMES: [&str; 7] = [
        "forwarded",
        "x-real-ip",
        "x-arr-clientcert",
        "remote-user",
        "x-remote-user",
        "x-authenticated-user",
        "cert-subject",
    ];
    let raw = name.as_str();
    // Every name below starts with one of these letters (a HeaderName is
    // lower case): the common headers are told apart by their first byte.
    if !matches!(
        raw.as_bytes().first(),
        Some(b'x' | b's' | b'c' | b'f' | b'r')
    ) {
        return false;
    }
    let name: std::borrow::Cow<'_, str> = if raw.contains('_') {
        raw.replace('_', "-").into()
    } else {
        raw.into()
    };
    let name = name.as_ref();
    IDENTITY_HEADERS.contains(&name)
        // the bare names too (`SSL-Client`, `X-SSL`): a backend reading a
        // prefix family may read the family's own name as well
        || OURS
            .iter()
            .any(|p| name.starts_with(p) || name == p.trim_end_matches('-'))
        || NAMES.contains(&name)
}

/// Is this an HTTP/1.1 WebSocket handshake (`Connection: upgrade`, `Upgrade: websocket`)?
pub(super) fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    let connection_upgrade = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    let upgrade_websocket = headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("websocket"))
        });
    connection_upgrade && upgrade_websocket
}

/// Removes hop-by-hop headers, including those the `Connection` header names.
pub(super) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages carry none: one look at each name, with no hashing or
    // parsing of the eight names, before anything is removed.
    if !headers.keys().any(|n| HOP_BY_HOP.contains(&n.as_str())) {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// Cleans a backend response; a 101 keeps the headers that complete the upgrade.
pub(super) fn strip_response_headers(headers: &mut HeaderMap, switching: bool) {
    if headers.contains_key(header::TRANSFER_ENCODING) {
        // hyper decoded the chunks; a Content-Length beside them means nothing.
        headers.remove(header::CONTENT_LENGTH);
    }
    let upgrade = headers.get(header::UPGRADE).cloned();
    strip_hop_by_hop(headers);
    if switching {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        if let Some(u) = upgrade {
            headers.insert(header::UPGRADE, u);
        }
    }
}
