//! The answers a client gets when something is wrong.
//!
//! This module owns the error pages that replace Chrome's unhelpful
//! "このサイトにアクセスできません": a refused client certificate, WebORCA
//! down or too slow, and plain HTTP on the TLS port. Each page is written
//! for a clinic receptionist first (Japanese, concrete steps) and for the
//! vendor's engineer below (English, technical box). The same content is
//! rendered as self-contained HTML (inline CSS, no scripts, no external
//! resources) or as plain text for API clients and curl.
//!
//! Every page is built once as a small content model and then rendered, so
//! the HTML and text versions cannot drift apart, and every inserted value
//! goes through one escaping function on the HTML path.

use bytes::Bytes;
use chrono::{DateTime, FixedOffset, Utc};
use http::{HeaderValue, StatusCode};

mod backend;
mod browser;
mod cert;
mod cert_words;
mod render;

use backend::*;
use cert::*;
use cert_words::*;
use render::*;

pub use browser::Browser;
pub use render::escape_html;

/// Kept here too: the pages were its first home.
pub use crate::tls::verify::CertErrorKind;

/// Details shown on a certificate-refused page; everything except `kind`
/// is optional and simply left out when absent.
#[derive(Debug, Clone, Copy)]
pub struct CertRefusal<'a> {
    /// Why the certificate was refused.
    pub kind: CertErrorKind,
    /// Client certificate subject (one-line or RFC 4514, shown as given).
    pub subject: Option<&'a str>,
    /// Client certificate issuer.
    pub issuer: Option<&'a str>,
    /// Client certificate serial, hex.
    pub serial_hex: Option<&'a str>,
    /// Start of the certificate's validity.
    pub not_before: Option<DateTime<Utc>>,
    /// End of the certificate's validity.
    pub not_after: Option<DateTime<Utc>>,
    /// Subjects of the accepted CAs (from CA_CRT).
    pub expected_ca: &'a [String],
    /// Technical reason text.
    pub detail: Option<&'a str>,
    /// The path asked for, on a `not-permitted` page.
    pub path: Option<&'a str>,
    /// The browser whose menus the steps name.
    pub browser: Browser,
    /// On an `expired` page whose certificate is itself within its dates:
    /// the intermediate CA certificate that expired, its subject and end.
    pub expired_ca: Option<(&'a str, DateTime<Utc>)>,
}

impl<'a> CertRefusal<'a> {
    /// A refusal with no details; fill in fields with struct update syntax.
    pub fn new(kind: CertErrorKind) -> Self {
        CertRefusal {
            kind,
            subject: None,
            issuer: None,
            serial_hex: None,
            not_before: None,
            not_after: None,
            expected_ca: &[],
            detail: None,
            path: None,
            browser: Browser::Chrome,
            expired_ca: None,
        }
    }
}

/// The `not-permitted` page: ACCESS_POLICY (or the console's admin check)
/// does not let the certificate `subject` use `path`. `detail` is the rule
/// that decided, when there is one.
pub fn not_permitted<'a>(path: &'a str, subject: &'a str, detail: Option<&'a str>) -> Page<'a> {
    Page::CertRefused(CertRefusal {
        subject: Some(subject),
        path: Some(path),
        detail,
        ..CertRefusal::new(CertErrorKind::NotPermitted)
    })
}

/// Which answer to give.
#[derive(Debug, Clone, Copy)]
pub enum Page<'a> {
    /// The client certificate was missing or refused (403).
    CertRefused(CertRefusal<'a>),
    /// Backend refused the connection or is unreachable (502);
    /// `backend` is e.g. `http://127.0.0.1:8001`.
    BackendDown { backend: &'a str, detail: &'a str },
    /// Backend did not answer in time (504); timeout in seconds.
    BackendTimeout { backend: &'a str, timeout_secs: u64 },
    /// Plain `http://` sent to the TLS port without a usable Host header (400),
    /// so there is nothing to redirect to.
    PlainHttpNoHost,
}

/// A finished answer, ready to be put into an HTTP response.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// Response status.
    pub status: StatusCode,
    /// Value of the Content-Type header.
    pub content_type: &'static str,
    /// Response body (UTF-8).
    pub body: Bytes,
    /// Value of the `X-Client-Cert-Error` header, for certificate pages.
    pub cert_error: Option<&'static str>,
}

const HTML_TYPE: &str = "text/html; charset=utf-8";
const TEXT_TYPE: &str = "text/plain; charset=utf-8";

/// Renders `page`. `html` = whether the client's Accept header asks for
/// HTML (see [`wants_html`]); other clients get the same text as
/// `text/plain; charset=utf-8`.
pub fn render(page: &Page<'_>, html: bool) -> Rendered {
    let content = build(page);
    let (content_type, body) = if html {
        (HTML_TYPE, to_html(&content))
    } else {
        (TEXT_TYPE, to_text(&content))
    };
    Rendered {
        status: content.status,
        content_type,
        body: Bytes::from(body),
        cert_error: content.cert_error,
    }
}

/// Does this Accept header value ask for HTML? True when it lists
/// `text/html` with a non-zero quality; browsers always do, curl and API
/// clients normally do not.
pub fn wants_html(accept: Option<&HeaderValue>) -> bool {
    let Some(accept) = accept else {
        return false;
    };
    let accept = String::from_utf8_lossy(accept.as_bytes());
    accept.split(',').any(|range| {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim();
        media.eq_ignore_ascii_case("text/html") && !parts.any(is_zero_quality)
    })
}

/// `q=0`, `q=0.0`, `q=0.000`: the client explicitly refuses the type.
fn is_zero_quality(param: &str) -> bool {
    let Some((name, value)) = param.split_once('=') else {
        return false;
    };
    if !name.trim().eq_ignore_ascii_case("q") {
        return false;
    }
    let value = value.trim();
    let (int, frac) = value.split_once('.').unwrap_or((value, ""));
    int == "0" && frac.bytes().all(|b| b == b'0')
}

// ---------------------------------------------------------------------------
// Content model

/// A piece of running text; `Code` is for file names, commands, addresses
/// and certificate names, which are shown in a monospace box in HTML.
enum Inline {
    Text(String),
    Code(String),
}

/// One paragraph or list item.
#[derive(Default)]
struct Line(Vec<Inline>);

impl Line {
    fn t(mut self, text: impl Into<String>) -> Self {
        self.0.push(Inline::Text(text.into()));
        self
    }

    fn c(mut self, code: impl Into<String>) -> Self {
        self.0.push(Inline::Code(code.into()));
        self
    }

    fn append(mut self, other: Line) -> Self {
        self.0.extend(other.0);
        self
    }
}

fn line() -> Line {
    Line::default()
}

/// One language's part of a page.
struct Text {
    title: String,
    lead: Vec<Line>,
    steps: Vec<Line>,
    notes: Vec<Line>,
}

/// One row of the technical box, labelled in both languages.
struct Fact {
    ja: &'static str,
    en: &'static str,
    values: Vec<String>,
}

fn fact(ja: &'static str, en: &'static str, value: impl Into<String>) -> Fact {
    Fact {
        ja,
        en,
        values: vec![value.into()],
    }
}

struct Content {
    status: StatusCode,
    cert_error: Option<&'static str>,
    ja: Text,
    en: Text,
    facts: Vec<Fact>,
}

fn build(page: &Page<'_>) -> Content {
    match *page {
        Page::CertRefused(ref refusal) => cert_content(refusal),
        Page::BackendDown { backend, detail } => Content {
            status: StatusCode::BAD_GATEWAY,
            cert_error: None,
            ja: backend_down_ja(),
            en: backend_down_en(backend, detail),
            facts: vec![
                fact("接続先", "Backend", backend),
                fact("詳細", "Detail", detail),
            ],
        },
        Page::BackendTimeout {
            backend,
            timeout_secs,
        } => Content {
            status: StatusCode::GATEWAY_TIMEOUT,
            cert_error: None,
            ja: timeout_ja(timeout_secs),
            en: timeout_en(backend, timeout_secs),
            facts: vec![
                fact("接続先", "Backend", backend),
                fact(
                    "待ち時間の上限",
                    "Timeout",
                    format!("{timeout_secs} 秒 / {timeout_secs} s"),
                ),
            ],
        },
        Page::PlainHttpNoHost => Content {
            status: StatusCode::BAD_REQUEST,
            cert_error: None,
            ja: plain_http_ja(),
            en: plain_http_en(),
            facts: vec![fact(
                "理由",
                "Reason",
                "plain HTTP request on the TLS port, without a Host header naming one host:port",
            )],
        },
    }
}

// ---------------------------------------------------------------------------
// Dates: receptionists read Japan time, engineers read UTC.

const JST_OFFSET_SECS: i32 = 9 * 3600;

fn jst(at: DateTime<Utc>) -> String {
    // Japan has no daylight saving time, so a fixed +09:00 is exact.
    match FixedOffset::east_opt(JST_OFFSET_SECS) {
        Some(offset) => at
            .with_timezone(&offset)
            .format("%Y/%m/%d %H:%M")
            .to_string(),
        None => at.format("%Y/%m/%d %H:%M UTC").to_string(),
    }
}

fn iso_utc(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn both_times(at: DateTime<Utc>) -> String {
    format!("{} JST ({})", jst(at), iso_utc(at))
}

#[cfg(test)]
mod tests;
