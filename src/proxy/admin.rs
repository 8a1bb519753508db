//! The operator console on the main TLS port, under
//! `/.well-known/weborca-mtls-proxy/`: answered by the proxy itself for a
//! certificate whose CN is in ADMIN_CN, refused (`not-permitted`) for every
//! other one, and never forwarded to WebORCA, whoever asks.
//!
//! The reload button is a form POST; it is taken only from the console's own
//! origin (Origin equal to `https://` and the request's Host, or, without an
//! Origin, `Sec-Fetch-Site: same-origin`), so another web page open in the
//! administrator's browser cannot make it reload.

#[allow(unused_imports)]
use super::*;

use crate::observe::console::{self, ADMIN_PATH, Place, RELOAD_PATH};

/// The admin path without its trailing slash.
fn admin_root() -> &'static str {
    ADMIN_PATH.trim_end_matches('/')
}

/// `%XX` decoded (any byte; invalid escapes kept as written), so
/// `/.well-known/weborca%2Dmtls-proxy/` is seen for what a backend would read.
fn percent_decoded(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).and_then(|b| hex(*b)),
                bytes.get(i + 2).and_then(|b| hex(*b)),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The path as a backend would resolve it: percent-decoded, `\` read as `/`,
/// empty and `.` segments dropped, `..` taking one back.
fn normalised(path: &str) -> String {
    let decoded = percent_decoded(path).replace('\\', "/");
    let mut segments: Vec<&str> = Vec::new();
    for seg in decoded.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut out = String::from("/");
    out.push_str(&segments.join("/"));
    if decoded.ends_with('/') && !segments.is_empty() {
        out.push('/');
    }
    out
}

/// Whether a request path is the console's, however it is spelled.
pub(super) fn is_admin_path(path: &str) -> bool {
    let n = normalised(path);
    let root = admin_root();
    n == root
        || n.strip_prefix(root)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// Whether a POST comes from the console's own page.
fn same_origin(req: &Request<Incoming>) -> bool {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()));
    match req.headers().get(header::ORIGIN).map(|o| o.to_str()) {
        Some(Ok(origin)) => {
            host.is_some_and(|h| origin.eq_ignore_ascii_case(&format!("https://{h}")))
        }
        Some(Err(_)) => false,
        None => req
            .headers()
            .get("sec-fetch-site")
            .is_some_and(|v| v.as_bytes() == b"same-origin"),
    }
}

fn html_response(
    status: StatusCode,
    markup: maud::Markup,
) -> Response<Either<Incoming, Full<Bytes>>> {
    let mut resp = Response::new(Either::Right(Full::new(Bytes::from(markup.into_string()))));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(console::CSP),
    );
    resp
}

fn plain(status: StatusCode, text: &'static str) -> Response<Either<Incoming, Full<Bytes>>> {
    let mut resp = Response::new(Either::Right(Full::new(Bytes::from_static(
        text.as_bytes(),
    ))));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

impl Proxy {
    /// Answers a request under the admin path from a verified certificate.
    pub(super) async fn admin(
        &self,
        conn: &ConnInfo,
        identity: &Identity,
        req: Request<Incoming>,
        html: bool,
    ) -> Response<Either<Incoming, Full<Bytes>>> {
        let path = normalised(req.uri().path());
        if !self.stats.console.is_admin(identity.cn()) {
            tracing::info!(peer = %conn.peer, cn = %log_safe(identity.cn()), reason = "not-permitted", "operator console refused: CN not in ADMIN_CN");
            self.stats
                .refused(conn.peer, "not-permitted", &identity.info.subject_oneline);
            return not_permitted(
                &path,
                &identity.info.subject_oneline,
                Some("ADMIN_CN"),
                html,
            );
        }
        let page = |result| {
            let view = match conn.judgement.serving() {
                Some(tls) => crate::status::console_view(&self.stats, &tls, &self.backend_url),
                None => return plain(StatusCode::SERVICE_UNAVAILABLE, "no TLS state\n"),
            };
            html_response(
                StatusCode::OK,
                console::render(&view, &Place::Admin(result)),
            )
        };
        match (req.method(), path.as_str()) {
            (&Method::GET | &Method::HEAD, p) if p == ADMIN_PATH => page(None),
            (&Method::GET | &Method::HEAD, p) if p == admin_root() => {
                let mut resp = plain(StatusCode::MOVED_PERMANENTLY, "moved\n");
                resp.headers_mut()
                    .insert(header::LOCATION, HeaderValue::from_static(ADMIN_PATH));
                resp
            }
            (&Method::POST, RELOAD_PATH) => {
                if !same_origin(&req) {
                    tracing::warn!(peer = %conn.peer, cn = %log_safe(identity.cn()), "console reload refused: not from the console's own page (Origin / Sec-Fetch-Site)");
                    return plain(
                        StatusCode::FORBIDDEN,
                        "リロードは運用画面からのみ受け付けます。\nA reload is taken only from the console's own page (same origin).\n",
                    );
                }
                let Some(hook) = self.stats.console.reload_hook() else {
                    return page(Some((
                        false,
                        "reload is not available in this process".into(),
                    )));
                };
                let why = format!("console reload button, CN={}", log_safe(identity.cn()));
                let ok = hook(why).await;
                let message = self.stats.last_reload().map(|(_, m)| m).unwrap_or_default();
                page(Some((ok, message)))
            }
            (&Method::GET | &Method::HEAD, _) => plain(StatusCode::NOT_FOUND, "not found\n"),
            _ => plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_of_the_admin_path_is_caught() {
        for p in [
            "/.well-known/weborca-mtls-proxy",
            "/.well-known/weborca-mtls-proxy/",
            "/.well-known/weborca-mtls-proxy/reload",
            "//.well-known//weborca-mtls-proxy/",
            "/x/../.well-known/weborca-mtls-proxy/",
            "/.well-known/./weborca-mtls-proxy/x",
            "/.well-known/weborca%2Dmtls-proxy/",
            "/%2ewell-known/weborca-mtls-proxy/",
            "/.well-known%2Fweborca-mtls-proxy/",
            "\\.well-known\\weborca-mtls-proxy\\",
        ] {
            assert!(is_admin_path(p), "{p}");
        }
        for p in [
            "/",
            "/.well-known/weborca-mtls-proxyx",
            "/.well-known/other/",
            "/api01rv2/patientgetv2",
            "/weborca-mtls-proxy/",
        ] {
            assert!(!is_admin_path(p), "{p}");
        }
    }

    #[test]
    fn the_path_is_normalised_like_a_backend_would() {
        assert_eq!(normalised("/a//b/./c/../d/"), "/a/b/d/");
        assert_eq!(normalised("/../../x"), "/x");
        assert_eq!(normalised("/%41%zz"), "/A%zz");
    }
}
