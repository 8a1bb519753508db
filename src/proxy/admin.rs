//! The operator console on the main TLS port, under
//! `/.well-known/weborca-mtls-proxy/`: answered by the proxy itself for a
//! certificate whose CN is in ADMIN_CN, refused (`not-permitted`) for every
//! other one, and never forwarded to WebORCA, whoever asks.
//!
//! The reload button is a form POST; it is taken only from the console's own
//! origin (Origin equal to `https://` and the request's Host, or, without an
//! Origin, `Sec-Fetch-Site: same-origin`) with a Host that names this server
//! (SNI or a server certificate name), so another web page open in the
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

/// Whether a request path is the console's, however it is spelled: its
/// first two segments, once percent-decoded (repeatedly, so `%252e` counts
/// too), with `\\` read as `/`, dot segments resolved and `;params` set
/// aside, start with `.well-known` and `weborca-mtls-proxy`, ignoring ASCII
/// case. The rule is deliberately wider than the one path the console
/// answers: WebORCA serves nothing there, and a spelling some backend or
/// framework might still read as the console (`weborca-mtls-proxy;x`,
/// trailing junk, `%2e`) must never be forwarded.
pub(super) fn is_admin_path(path: &str) -> bool {
    // Every request asks this: without a `%` the path must hold the words
    // themselves, and a plain scan answers most requests without allocating.
    let named = path
        .as_bytes()
        .windows(b"well-known".len())
        .any(|w| w.eq_ignore_ascii_case(b"well-known"));
    if !named && !path.contains('%') {
        return false;
    }
    let mut decoded = path.to_string();
    // Bounded: each round shortens the text, and a few rounds cover any
    // layering a backend would undo.
    for _ in 0..4 {
        let next = percent_decoded(&decoded);
        if next == decoded {
            break;
        }
        decoded = next;
    }
    let decoded = decoded.replace('\\', "/");
    let mut segments: Vec<&str> = Vec::new();
    for seg in decoded.split('/') {
        // `..;x` is `..` to a backend that drops path parameters.
        let bare = seg.split(';').next().unwrap_or(seg);
        match bare {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            _ => segments.push(bare),
        }
    }
    let starts = |seg: Option<&&str>, prefix: &str| {
        seg.and_then(|s| s.get(..prefix.len()))
            .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
    };
    let mut parts = admin_root().trim_start_matches('/').split('/');
    let (Some(first), Some(second)) = (parts.next(), parts.next()) else {
        return false;
    };
    starts(segments.first(), first) && starts(segments.get(1), second)
}

/// The host of a Host / :authority value, without its port or IPv6 brackets.
fn host_of(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    }
}

/// Why a reload POST is not taken, or `None` when it comes from the
/// console's own page: its Origin is `https://` and the Host (or, without an
/// Origin, `Sec-Fetch-Site: same-origin`), and that Host names this server —
/// the connection's SNI name (or the address it came to) or a name the
/// server certificate covers. A Host is the client's to write, so an Origin
/// equal to it alone proves nothing: a page at `https://evil.example` whose
/// name is pointed at this server (DNS rebinding) would send both.
fn refused_origin(req: &Request<Incoming>, conn: &ConnInfo) -> Option<&'static str> {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()));
    let same = match req.headers().get(header::ORIGIN).map(|o| o.to_str()) {
        Some(Ok(origin)) => {
            host.is_some_and(|h| origin.eq_ignore_ascii_case(&format!("https://{h}")))
        }
        Some(Err(_)) => false,
        None => req
            .headers()
            .get("sec-fetch-site")
            .is_some_and(|v| v.as_bytes() == b"same-origin"),
    };
    if !same {
        return Some(
            "リロードは運用画面からのみ受け付けます。\nA reload is taken only from the console's own page (same origin).\n",
        );
    }
    let Some(host) = host.map(host_of).filter(|h| !h.is_empty()) else {
        return Some(
            "Host がないため、リロードをお断りしました。\nA reload needs a Host naming this server.\n",
        );
    };
    let sni = conn
        .default_host
        .as_ref()
        .and_then(|v| v.to_str().ok())
        .map(host_of);
    let covered = conn
        .judgement
        .serving()
        .is_some_and(|tls| tls.server_cert.covers_host(host));
    if sni.is_some_and(|s| s.eq_ignore_ascii_case(host)) || covered {
        return None;
    }
    Some(
        "Host がこのサーバーの名前（SNI・サーバー証明書の名前）ではないため、リロードをお断りしました。\n\
         A reload is taken only when the Host is this server's name: the TLS server name (SNI) \
         or a name the server certificate (SERVER_CRT) covers. Open the console at that name.\n",
    )
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
        if !self
            .stats
            .console
            .is_admin(identity.info.common_name.as_deref())
        {
            tracing::info!(name: "refused", peer = %conn.peer, cn = %log_safe(identity.cn()), serial = %log_safe(&identity.info.serial_hex), reason = "not-permitted", "operator console refused: CN not in ADMIN_CN");
            self.stats
                .refused(conn.peer, "not-permitted", &identity.info.subject_oneline);
            return not_permitted(
                &path,
                &identity.info.subject_oneline,
                Some("ADMIN_CN"),
                html,
            );
        }
        if path == ADMIN_PATH || path == RELOAD_PATH {
            // WebORCA's state as of now, as on STATUS_LISTEN's console
            let limit = std::time::Duration::from_secs(1);
            crate::status::probe_backend(&self.stats, self.backend_authority.as_str(), limit).await;
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
                if let Some(why) = refused_origin(&req, conn) {
                    tracing::warn!(peer = %conn.peer, cn = %log_safe(identity.cn()), "console reload refused: not from the console's own page at this server's name (Origin / Sec-Fetch-Site / Host)");
                    return plain(StatusCode::FORBIDDEN, why);
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
            (&Method::GET | &Method::HEAD, _) => plain(
                StatusCode::NOT_FOUND,
                "このページはありません / not found\n",
            ),
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
            "/.well-known/weborca-mtls-proxy;x/",
            "/.well-known/weborca-mtls-proxyx",
            "/.well-known;a/weborca-mtls-proxy;b/reload",
            "/.WELL-KNOWN/WebORCA-mTLS-Proxy/",
            "/%2e%77ell-known/weborca-mtls-proxy%3bx",
            "/%252ewell-known/weborca-mtls-proxy/",
            "/x/..;/.well-known/weborca-mtls-proxy/",
            "/.well-known/weborca-mtls-proxy%00",
        ] {
            assert!(is_admin_path(p), "{p}");
        }
        for p in [
            "/",
            "/.well-known/other/",
            "/.well-known/",
            "/weborca-mtls-proxy/.well-known/",
            "/api01rv2/patientgetv2",
            "/weborca-mtls-proxy/",
        ] {
            assert!(!is_admin_path(p), "{p}");
        }
    }

    /// A certificate whose subject has an O and no CN.
    fn cn_less() -> crate::x509::CertInfo {
        use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "orca");
        params.distinguished_name = dn;
        let key = KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("cert");
        crate::x509::CertInfo::from_der(cert.der()).expect("parses")
    }

    #[test]
    fn a_certificate_without_cn_is_never_admin_nor_a_cn_rule() {
        let info = cn_less();
        assert_eq!(info.common_name, None);
        let console = crate::observe::console::Console::default();
        // `-` is what the logs show for a CN-less certificate
        console.set_admins(Some(&["-".to_string(), String::new()]));
        assert!(!console.is_admin(info.common_name.as_deref()));
        assert!(console.is_admin(Some("-")), "the list itself was taken");
        let policy = crate::policy::Policy::from_bytes(
            std::path::Path::new("p.rules"),
            b"/ cn:-\n".to_vec(),
        )
        .expect("valid policy");
        assert!(!policy.decide(&info, "GET", "/").allowed());
    }

    #[test]
    fn the_path_is_normalised_like_a_backend_would() {
        assert_eq!(normalised("/a//b/./c/../d/"), "/a/b/d/");
        assert_eq!(normalised("/../../x"), "/x");
        assert_eq!(normalised("/%41%zz"), "/A%zz");
    }
}
