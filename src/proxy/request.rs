//! What a request must be before it may reach WebORCA: the method, Host,
//! target, body framing and WebSocket handshake checks ([`check_request`]).

#[allow(unused_imports)]
use super::*;

use std::sync::OnceLock;

/// A request the proxy answers itself because WebORCA might read it differently.
#[derive(Debug, PartialEq, Eq)]
pub struct Malformed {
    /// the answer's status
    pub status: StatusCode,
    /// what is wrong, for the log and the answer's text
    pub why: &'static str,
}

impl Malformed {
    pub(super) fn new(status: StatusCode, why: &'static str) -> Malformed {
        Malformed { status, why }
    }

    /// The answer; an HTTP/1.x connection is closed after it, since the
    /// request's end (and so the next request's start) is in doubt.
    pub(super) fn response(&self, version: Version) -> Response<Either<Incoming, Full<Bytes>>> {
        let text = format!("{}: {}\n", self.status, self.why);
        let mut resp = Response::new(Either::Right(Full::new(Bytes::from(text))));
        *resp.status_mut() = self.status;
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if self.status == StatusCode::UPGRADE_REQUIRED {
            h.insert("sec-websocket-version", HeaderValue::from_static("13"));
        }
        if version <= Version::HTTP_11 {
            h.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    }
}

/// What [`check_request`] learnt of a request it let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checked {
    /// an HTTP/1.1 WebSocket handshake (checked, see [`check_websocket`])
    pub upgrade: bool,
}

/// The first valid Host a connection sent. A connection's requests nearly
/// always name the same host, so a later Host that is the same bytes is
/// known valid without being parsed again.
#[derive(Debug, Default)]
pub struct HostSeen(OnceLock<HeaderValue>);

impl HostSeen {
    /// [`valid_host`], remembering the first valid one.
    pub(super) fn valid<'v>(&self, value: &'v HeaderValue) -> Option<&'v str> {
        if self.0.get() == Some(value) {
            // the same bytes as a Host that passed: visible ASCII
            return value.to_str().ok();
        }
        let text = valid_host(value)?;
        let _ = self.0.set(value.clone());
        Some(text)
    }
}

/// Refuses what must not reach WebORCA: methods a reverse proxy does not
/// serve, Host confusion, ambiguous body framing (request smuggling) and
/// WebSocket handshakes WebORCA would have to reject anyway.
pub fn check_request<B>(req: &Request<B>) -> Result<Checked, Malformed> {
    check_on(req, &HostSeen::default())
}

/// [`check_request`] for a request of a connection that has sent the
/// valid Host `seen` before.
pub(super) fn check_on<B>(req: &Request<B>, seen: &HostSeen) -> Result<Checked, Malformed> {
    use StatusCode as S;
    if req.method() == Method::CONNECT {
        return Err(Malformed::new(
            S::METHOD_NOT_ALLOWED,
            "CONNECT is not served: this is not a forward proxy",
        ));
    }
    let headers = req.headers();
    let mut hosts = headers.get_all(header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(Malformed::new(S::BAD_REQUEST, "more than one Host header"));
    }
    let host = match host {
        Some(h) => Some(
            seen.valid(h)
                .ok_or(Malformed::new(S::BAD_REQUEST, "invalid Host header"))?,
        ),
        None => None,
    };
    // HTTP/1.0 need not send Host (RFC 9112 §3.2); it is forwarded with the
    // connection's server name instead (see `outbound`).
    if host.is_none() && req.uri().authority().is_none() && req.version() >= Version::HTTP_11 {
        return Err(Malformed::new(S::BAD_REQUEST, "no Host header"));
    }
    check_target(req)?;
    if let Some(authority) = req.uri().authority() {
        // HTTP/1.1 absolute-form, or HTTP/2's :authority
        if authority.as_str().contains('@') {
            return Err(Malformed::new(
                S::BAD_REQUEST,
                "user information in the request target",
            ));
        }
        if host.is_some_and(|h| !same_host(h, authority)) {
            return Err(Malformed::new(
                S::BAD_REQUEST,
                "the Host header names another host than the request target",
            ));
        }
    }
    if req.version() <= Version::HTTP_11 {
        check_framing(headers)?;
    }
    let upgrade = is_websocket_upgrade(headers);
    if upgrade {
        check_websocket(req)?;
    }
    Ok(Checked { upgrade })
}

/// Request targets WebORCA could read otherwise than the proxy: bytes outside
/// ASCII (HTTP/2 lets them through where HTTP/1.1 parsers refuse them) and
/// the asterisk form with any method but OPTIONS (RFC 9112 §3.2.4).
pub(super) fn check_target<B>(req: &Request<B>) -> Result<(), Malformed> {
    let target = req.uri().path_and_query().map_or("", |p| p.as_str());
    if !target.is_ascii() || target.bytes().any(|b| b.is_ascii_control()) {
        return Err(Malformed::new(
            StatusCode::BAD_REQUEST,
            "bytes outside printable ASCII in the request target",
        ));
    }
    if req.uri().path() == "*" && req.method() != Method::OPTIONS {
        return Err(Malformed::new(
            StatusCode::BAD_REQUEST,
            "the request target * is only for OPTIONS",
        ));
    }
    Ok(())
}

/// Whether a Host header and a request target's authority name the same
/// host: equal, or the same host name where one leaves the port out (clients
/// that send both commonly write `Host: name` beside `:authority: name:8000`).
pub(super) fn same_host(host: &str, authority: &http::uri::Authority) -> bool {
    if host.eq_ignore_ascii_case(authority.as_str()) {
        return true;
    }
    let Ok(h) = host.parse::<http::uri::Authority>() else {
        return false;
    };
    h.host().eq_ignore_ascii_case(authority.host())
        && (h.port().is_none() || authority.port().is_none())
}

/// A Host value that is `host[:port]` and nothing else (the port a number).
pub(super) fn valid_host(value: &HeaderValue) -> Option<&str> {
    let text = value.to_str().ok()?;
    let authority: http::uri::Authority = text.parse().ok()?;
    let canonical = match authority.port_u16() {
        Some(port) => format!("{}:{port}", authority.host()),
        None => authority.host().to_string(),
    };
    (canonical == text && !text.is_empty()).then_some(text)
}

/// HTTP/1.x body framing that two parsers could read two ways (RFC 9112 §6.1, §6.3).
pub(super) fn check_framing(headers: &HeaderMap) -> Result<(), Malformed> {
    use StatusCode as S;
    let lengths: Vec<&HeaderValue> = headers.get_all(header::CONTENT_LENGTH).iter().collect();
    if lengths.len() > 1 || lengths.iter().any(|v| v.as_bytes().contains(&b',')) {
        return Err(Malformed::new(
            S::BAD_REQUEST,
            "more than one Content-Length",
        ));
    }
    let codings: Vec<String> = headers
        .get_all(header::TRANSFER_ENCODING)
        .iter()
        .flat_map(|v| {
            String::from_utf8_lossy(v.as_bytes())
                .split(',')
                .map(|t| t.trim().to_ascii_lowercase())
                .collect::<Vec<_>>()
        })
        .collect();
    if codings.is_empty() {
        return Ok(());
    }
    if !lengths.is_empty() {
        return Err(Malformed::new(
            S::BAD_REQUEST,
            "both Content-Length and Transfer-Encoding",
        ));
    }
    if codings != ["chunked"] {
        return Err(Malformed::new(
            S::NOT_IMPLEMENTED,
            "a transfer coding other than chunked",
        ));
    }
    Ok(())
}

/// An RFC 6455 opening handshake: GET over HTTP/1.1, a 16-byte key, version 13.
pub(super) fn check_websocket<B>(req: &Request<B>) -> Result<(), Malformed> {
    use StatusCode as S;
    if req.method() != Method::GET || req.version() != Version::HTTP_11 {
        return Err(Malformed::new(
            S::BAD_REQUEST,
            "a WebSocket handshake must be an HTTP/1.1 GET",
        ));
    }
    let headers = req.headers();
    let version_13 = headers
        .get_all("sec-websocket-version")
        .iter()
        .any(|v| v.as_bytes() == b"13");
    if !version_13 {
        return Err(Malformed::new(
            S::UPGRADE_REQUIRED,
            "a WebSocket handshake needs Sec-WebSocket-Version: 13",
        ));
    }
    let mut keys = headers.get_all("sec-websocket-key").iter();
    let key_ok = match (keys.next(), keys.next()) {
        (Some(key), None) => {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD
                .decode(key.as_bytes())
                .is_ok_and(|k| k.len() == 16)
        }
        _ => false,
    };
    if !key_ok {
        return Err(Malformed::new(
            S::BAD_REQUEST,
            "a WebSocket handshake needs one Sec-WebSocket-Key of 16 bytes in base64",
        ));
    }
    Ok(())
}
