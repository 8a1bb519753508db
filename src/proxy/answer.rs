//! The answers the proxy gives itself: refusal and error pages as responses,
//! and the status classes requests are counted under.

#[allow(unused_imports)]
use super::*;

pub(super) fn refused(
    refusal: &Refusal,
    ca_subjects: &[String],
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
    };
    page(&Page::CertRefused(page_data), html)
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
