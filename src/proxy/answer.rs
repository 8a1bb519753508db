//! The answers the proxy gives itself: refusal and error pages as responses
//! (a refused client's page closes its connection; WebORCA down or slow is
//! logged and counted), and the status classes requests are counted under.

#[allow(unused_imports)]
use super::*;

pub(super) fn refused(
    refusal: &Refusal,
    ca_subjects: &[String],
    browser: pages::Browser,
    html: bool,
) -> Response<Either<Incoming, Full<Bytes>>> {
    let info = refusal.info.as_ref();
    let page_data = CertRefusal {
        kind: refusal.kind,
        subject: info.map(|i| i.subject_oneline.as_str()),
        issuer: info.map(|i| i.issuer_oneline.as_str()),
        serial_hex: info.map(|i| i.serial_hex.as_str()),
        not_before: info.map(|i| i.not_before),
        not_after: info.map(|i| i.not_after),
        expected_ca: ca_subjects,
        detail: Some(&refusal.detail),
        path: None,
        browser,
        expired_ca: refusal
            .expired_ca
            .as_ref()
            .map(|ca| (ca.subject_oneline.as_str(), ca.not_after)),
    };
    page(&Page::CertRefused(page_data), html)
}

/// The 403 `not-permitted` page for the certificate `subject` (one-line form)
/// asking for `path`: ACCESS_POLICY refused the request, or a path only some
/// certificates may use (the console) was asked for by another. Only this
/// request is refused; the connection stays open for paths that are allowed.
/// `rule` names what decided (`FILE:LINE`), shown in the technical box.
pub fn not_permitted(
    path: &str,
    subject: &str,
    rule: Option<&str>,
    html: bool,
) -> Response<Either<Incoming, Full<Bytes>>> {
    page(&pages::not_permitted(path, subject, rule), html)
}

/// Renders an error page as a response.
pub fn page(page: &Page<'_>, html: bool) -> Response<Either<Incoming, Full<Bytes>>> {
    let rendered = pages::render(page, html);
    let mut builder = Response::builder()
        .status(rendered.status)
        .header(header::CONTENT_TYPE, rendered.content_type)
        .header(header::CACHE_CONTROL, "no-store");
    if let Some(code) = rendered.cert_error {
        builder = builder.header("x-client-cert-error", code);
    }
    builder
        .body(Either::Right(Full::new(rendered.body)))
        .unwrap_or_else(|_| simple(StatusCode::INTERNAL_SERVER_ERROR))
}

pub(super) fn simple(status: StatusCode) -> Response<Either<Incoming, Full<Bytes>>> {
    let mut resp = Response::new(Either::Right(Full::new(Bytes::from(status.to_string()))));
    *resp.status_mut() = status;
    resp
}

impl Proxy {
    /// The page for a refused client; the connection is closed after it, so a
    /// client without a certificate holds no MAX_CONNECTIONS slot and a
    /// browser that has just imported its `.p12` gets a fresh handshake.
    pub(super) fn refused(
        &self,
        conn: &ConnInfo,
        refusal: &Refusal,
        version: Version,
        html: bool,
    ) -> Response<Either<Incoming, Full<Bytes>>> {
        // the connection's browser, told at the start of its first request
        let browser = conn.browser.get().copied().unwrap_or_default();
        let mut resp = refused(refusal, &conn.ca_subjects, browser, html);
        if version <= Version::HTTP_11 {
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        resp.extensions_mut().insert(CloseAfter);
        resp
    }

    pub(super) fn backend_down(
        &self,
        kind: &str,
        detail: &str,
        html: bool,
    ) -> Response<Either<Incoming, Full<Bytes>>> {
        self.stats.backend_failed(kind, detail);
        tracing::warn!(backend = %self.backend_url, "WebORCA is not answering: {detail}");
        page(
            &Page::BackendDown {
                backend: &self.backend_url,
                detail,
            },
            html,
        )
    }

    pub(super) fn backend_slow(&self, html: bool) -> Response<Either<Incoming, Full<Bytes>>> {
        let secs = self.backend_timeout.as_secs();
        self.stats.backend_failed(
            "timeout",
            &format!("no answer within BACKEND_TIMEOUT ({secs} s)"),
        );
        tracing::warn!(backend = %self.backend_url, "WebORCA did not answer within BACKEND_TIMEOUT ({secs} s)");
        page(
            &Page::BackendTimeout {
                backend: &self.backend_url,
                timeout_secs: secs,
            },
            html,
        )
    }
}

/// Marks a response after which the connection is closed (a refusal page).
#[derive(Clone, Copy)]
pub(super) struct CloseAfter;

/// Counts and logs, once, that an open connection's certificate is now refused.
pub(super) fn refused_on_open_connection(
    stats: &Stats,
    conn: &ConnInfo,
    judged: &Judged,
    refusal: &Refusal,
) {
    let subject = refusal
        .info
        .as_ref()
        .map_or("-", |i| i.subject_oneline.as_str());
    stats.refused(conn.peer, refusal.kind.as_str(), subject);
    if let Some(info) = &refusal.info {
        stats.seen_refused(&info.sha256_hex, refusal.kind.as_str());
    }
    let (cn, serial) = Judgement::who(judged);
    tracing::info!(name: "refused", peer = %conn.peer, cn = %cn, serial = %serial, reason = refusal.kind.as_str(), "client certificate of an open connection now refused, closing it: {}", log_safe(&refusal.detail));
}
