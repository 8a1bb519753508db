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
        }
    }
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
    /// Plain `http://` sent to the TLS port without a Host header (400),
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
                "plain HTTP request on the TLS port, without a Host header",
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

// ---------------------------------------------------------------------------
// Certificate pages

fn cert_content(r: &CertRefusal<'_>) -> Content {
    let (ja, en) = match r.kind {
        CertErrorKind::Missing => (missing_ja(r), missing_en(r)),
        CertErrorKind::Expired => (expired_ja(r), expired_en(r)),
        CertErrorKind::NotYetValid => (not_yet_valid_ja(r), not_yet_valid_en(r)),
        CertErrorKind::UnknownCa => (unknown_ca_ja(r), unknown_ca_en(r)),
        CertErrorKind::Revoked => (revoked_ja(r), revoked_en(r)),
        CertErrorKind::NotAllowed => (not_allowed_ja(r), not_allowed_en(r)),
    };
    Content {
        status: StatusCode::FORBIDDEN,
        cert_error: Some(r.kind.as_str()),
        ja,
        en,
        facts: cert_facts(r),
    }
}

fn cert_facts(r: &CertRefusal<'_>) -> Vec<Fact> {
    let mut facts = vec![fact("理由コード", "Reason code", r.kind.as_str())];
    let optional = [
        ("サブジェクト", "Subject", r.subject.map(str::to_owned)),
        ("発行者", "Issuer", r.issuer.map(str::to_owned)),
        ("シリアル番号", "Serial", r.serial_hex.map(str::to_owned)),
        ("有効期間の開始", "Not before", r.not_before.map(both_times)),
        ("有効期間の終了", "Not after", r.not_after.map(both_times)),
    ];
    for (ja, en, value) in optional {
        facts.extend(value.map(|v| fact(ja, en, v)));
    }
    if !r.expected_ca.is_empty() {
        facts.push(Fact {
            ja: "受け付ける認証局",
            en: "Accepted CAs",
            values: r.expected_ca.to_vec(),
        });
    }
    facts.extend(r.detail.map(|d| fact("詳細", "Detail", d)));
    facts
}

/// `（CN=…、シリアル番号 0a1b）` after 「お使いの証明書」, or nothing.
fn cert_ref_ja(subject: Option<&str>, serial: Option<&str>) -> Line {
    match (subject, serial) {
        (None, None) => line(),
        (Some(s), None) => line().t("（").c(s).t("）"),
        (None, Some(n)) => line().t("（シリアル番号 ").c(n).t("）"),
        (Some(s), Some(n)) => line().t("（").c(s).t("、シリアル番号 ").c(n).t("）"),
    }
}

/// ` CN=… (serial 0a1b)` after "The certificate", or nothing.
fn cert_ref_en(subject: Option<&str>, serial: Option<&str>) -> Line {
    let mut l = line();
    if let Some(s) = subject {
        l = l.t(" ").c(s);
    }
    if let Some(n) = serial {
        l = l.t(" (serial ").c(n).t(")");
    }
    l
}

/// CA subjects as code spans joined by `sep`.
fn ca_list(cas: &[String], sep: &str) -> Line {
    let mut l = line();
    for (i, ca) in cas.iter().enumerate() {
        if i > 0 {
            l = l.t(sep);
        }
        l = l.c(ca.as_str());
    }
    l
}

const CHROME_PATH_JA: &str =
    "Chrome の「設定」→「プライバシーとセキュリティ」→「セキュリティ」→「デバイス証明書の管理」";
const CHROME_PATH_EN: &str =
    "In Chrome, open Settings → Privacy and security → Security → Manage device certificates";

fn restart_ja() -> Line {
    line().t("Chrome を完全に終了して（右上の「⋮」メニュー →「終了」）、もう一度起動します。")
}

fn restart_en() -> Line {
    line().t("Quit Chrome completely (⋮ menu → Exit) and start it again.")
}

/// The steps for getting a fresh certificate into Chrome (expired, revoked).
fn reissue_steps_ja(old: &str) -> Vec<Line> {
    vec![
        line()
            .t("管理者に、新しい証明書の発行を依頼してください。（管理者の方へ: ")
            .c("orca-catool issue_client_cert")
            .t(" で発行できます）"),
        line()
            .t("受け取った zip ファイルを展開し、")
            .t(CHROME_PATH_JA)
            .t("→「インポート」から新しい ")
            .c(".p12")
            .t(" ファイルを取り込みます。パスフレーズは ")
            .c(".pass")
            .t(" ファイルに書かれています。"),
        line().t(format!(
            "{old}古い証明書は、同じ画面で削除しておくと選び間違いを防げます。"
        )),
        restart_ja().t("WebORCA を開き、証明書の選択画面で新しい証明書を選んで「OK」を押します。"),
    ]
}

fn reissue_steps_en(old: &str) -> Vec<Line> {
    vec![
        line()
            .t("Ask the administrator to issue a new certificate (")
            .c("orca-catool issue_client_cert")
            .t(")."),
        line()
            .t("Unzip it. ")
            .t(CHROME_PATH_EN)
            .t(", click Import and choose the new ")
            .c(".p12")
            .t(" file; the passphrase is in the ")
            .c(".pass")
            .t(" file."),
        line().t(format!(
            "Remove the {old} certificate there as well, so it cannot be chosen by mistake."
        )),
        restart_en().t(" Open WebORCA and choose the new certificate when asked."),
    ]
}

fn missing_ja(r: &CertRefusal<'_>) -> Text {
    let mut note = line().t(
        "証明書の選択画面が出ない場合は、お持ちの証明書の有効期限が切れている（またはまだ有効期間が始まっていない）か、この医療機関の認証局（CA）で発行されたものではない可能性があります。Chrome は有効期限切れの証明書を選択画面に出しません。",
    );
    if !r.expected_ca.is_empty() {
        note = note
            .t("このサーバーで使えるのは、")
            .append(ca_list(r.expected_ca, "、"))
            .t(" が発行した証明書です。");
    }
    Text {
        title: "証明書が確認できませんでした".into(),
        lead: vec![
            line().t("このパソコンのブラウザから、WebORCA を使うための証明書（クライアント証明書）が送られてこなかったため、接続をお断りしました。"),
            line().t("証明書がまだブラウザに取り込まれていないか、証明書を選ぶ画面で選ばれなかったことが考えられます。"),
        ],
        steps: vec![
            line().t("管理者から証明書の zip ファイル（").c("NNNNNN__JP_orca_（名前）.zip").t(" という名前です）を受け取り、展開（解凍）します。"),
            line().t("展開したフォルダーにある ").c(".pass").t(" ファイルをメモ帳で開き、パスフレーズを確認します。"),
            line().t(CHROME_PATH_JA).t("を開き、「インポート」から ").c(".p12").t(" ファイルを選んで、パスフレーズを入力します。"),
            line().t("同じ手順で ").c("ca.crt").t(" もインポートします。"),
            restart_ja(),
            line().c("https://（サーバー名）:8000").t(" を開きます。証明書の選択画面が出たら、インポートした証明書を選んで「OK」を押します。"),
        ],
        notes: vec![note.t("有効期限は「デバイス証明書の管理」で確認できます。切れている場合は新しい証明書の発行を管理者に依頼してください。")],
    }
}

fn missing_en(r: &CertRefusal<'_>) -> Text {
    let mut note = line().t("If the browser never asks for a certificate, the installed certificate may have expired (or not be valid yet) — Chrome does not offer expired certificates at all — or it was not issued by a CA this server accepts: Chrome only offers certificates from the CAs the server names in its TLS CertificateRequest. Check the certificate's validity dates in Chrome's certificate manager.");
    if !r.expected_ca.is_empty() {
        note = note
            .t(" Accepted: ")
            .append(ca_list(r.expected_ca, "; "))
            .t(".");
    }
    Text {
        title: "No client certificate was presented".into(),
        lead: vec![line().t("The browser did not send a client certificate, so the proxy refused the connection before it reached WebORCA. Either no certificate has been imported into this browser yet, or none was chosen when the browser asked.")],
        steps: vec![
            line().t("Get the certificate zip file (").c("NNNNNN__JP_orca_(name).zip").t(") from the administrator and unzip it."),
            line().t("Open the ").c(".pass").t(" file in a text editor to read the passphrase."),
            line().t(CHROME_PATH_EN).t(", click Import, choose the ").c(".p12").t(" file and enter the passphrase."),
            line().t("Import ").c("ca.crt").t(" the same way."),
            restart_en(),
            line().t("Open ").c("https://(server):8000").t(" and choose the certificate when the browser asks."),
        ],
        notes: vec![note],
    }
}

fn expired_ja(r: &CertRefusal<'_>) -> Text {
    let when = match r.not_after {
        Some(at) => format!("は、{}（日本時間）に有効期限が切れたため", jst(at)),
        None => "は有効期限が切れているため".to_owned(),
    };
    let mut notes = Vec::new();
    if let (Some(from), Some(to)) = (r.not_before, r.not_after) {
        notes.push(line().t(format!(
            "この証明書の有効期間: {} 〜 {}（日本時間）",
            jst(from),
            jst(to)
        )));
    }
    Text {
        title: "証明書の有効期限が切れています".into(),
        lead: vec![
            line()
                .t("お使いの証明書")
                .append(cert_ref_ja(r.subject, None))
                .t(when)
                .t("、WebORCA に接続できません。"),
        ],
        steps: reissue_steps_ja("期限切れの"),
        notes,
    }
}

fn expired_en(r: &CertRefusal<'_>) -> Text {
    let when = match r.not_after {
        Some(at) => format!(" expired at {} ({} JST)", iso_utc(at), jst(at)),
        None => " has expired".to_owned(),
    };
    Text {
        title: "The client certificate has expired".into(),
        lead: vec![
            line()
                .t("The certificate")
                .append(cert_ref_en(r.subject, None))
                .t(when)
                .t(", so the connection was refused."),
        ],
        steps: reissue_steps_en("expired"),
        notes: vec![
            line()
                .t("Expiry is judged by the proxy server's clock. If the dates look wrong, check the server's time (")
                .c("timedatectl")
                .t(")."),
        ],
    }
}

fn not_yet_valid_ja(r: &CertRefusal<'_>) -> Text {
    let when = match r.not_before {
        Some(at) => format!("は {}（日本時間）から使える証明書のため", jst(at)),
        None => "は有効期間がまだ始まっていないため".to_owned(),
    };
    Text {
        title: "証明書の有効期間がまだ始まっていません".into(),
        lead: vec![
            line()
                .t("お使いの証明書")
                .append(cert_ref_ja(r.subject, None))
                .t(when)
                .t("、まだ WebORCA に接続できません。"),
        ],
        steps: vec![
            line().t("発行されたばかりの証明書の場合は、有効期間の開始時刻を過ぎてから、もう一度ページを開いてください。"),
            line()
                .t("開始時刻を過ぎても同じ画面が出る場合は、管理者に連絡してください。（管理者の方へ: サーバーと、証明書を発行したパソコンの時計が正しいか確認し、必要なら ")
                .c("orca-catool issue_client_cert")
                .t(" で発行し直してください）"),
        ],
        notes: Vec::new(),
    }
}

fn not_yet_valid_en(r: &CertRefusal<'_>) -> Text {
    let when = match r.not_before {
        Some(at) => format!(" only becomes valid at {} ({} JST)", iso_utc(at), jst(at)),
        None => " is not valid yet".to_owned(),
    };
    Text {
        title: "The client certificate is not valid yet".into(),
        lead: vec![
            line()
                .t("The certificate")
                .append(cert_ref_en(r.subject, None))
                .t(when)
                .t(", so the connection was refused."),
        ],
        steps: vec![
            line().t("If the certificate was issued just now, wait until its start time and try again."),
            line()
                .t("Otherwise check the clocks: validity is judged by the proxy server's clock, and the start time comes from the clock of the machine that issued the certificate. Fix the wrong one (")
                .c("timedatectl")
                .t("), or issue a new certificate with ")
                .c("orca-catool issue_client_cert")
                .t("."),
        ],
        notes: Vec::new(),
    }
}

fn unknown_ca_ja(r: &CertRefusal<'_>) -> Text {
    let first = match r.issuer {
        Some(issuer) => line()
            .t("選ばれた証明書")
            .append(cert_ref_ja(r.subject, None))
            .t("は ")
            .c(issuer)
            .t(" が発行したもので、このサーバーでは使えません。"),
        None => line().t(
            "選ばれた証明書は、このサーバーが受け付ける認証局（CA）が発行したものではありません。",
        ),
    };
    let mut choose = line()
        .t("WebORCA を開き、証明書の選択画面で、この医療機関の証明書を選んで「OK」を押します。");
    if !r.expected_ca.is_empty() {
        choose = choose
            .t("発行元が ")
            .append(ca_list(r.expected_ca, "、"))
            .t(" の証明書です。");
    }
    Text {
        title: "この医療機関の証明書ではありません".into(),
        lead: vec![
            first,
            line().t("証明書を選ぶ画面で、別の証明書（ほかのシステム用など）を選んだ可能性があります。"),
        ],
        steps: vec![
            restart_ja().t("Chrome は一度選んだ証明書を覚えているため、再起動しないと選択画面が出ません。"),
            choose,
            line().t("一覧に該当する証明書がない場合は、管理者から証明書の zip ファイルを受け取り、インポートしてください。"),
        ],
        notes: Vec::new(),
    }
}

fn unknown_ca_en(r: &CertRefusal<'_>) -> Text {
    let mut lead = line()
        .t("The chosen certificate")
        .append(cert_ref_en(r.subject, None));
    lead = match r.issuer {
        Some(issuer) => lead.t(" was issued by ").c(issuer).t(", which"),
        None => lead.t(" was issued by a CA that"),
    };
    let mut choose = line().t("Open WebORCA and choose the clinic's certificate when asked");
    choose = if r.expected_ca.is_empty() {
        choose.t(".")
    } else {
        choose
            .t(" (issuer: ")
            .append(ca_list(r.expected_ca, "; "))
            .t(").")
    };
    Text {
        title: "The certificate was issued by a CA this server does not accept".into(),
        lead: vec![lead.t(" is not accepted here. Most likely a certificate for another system was chosen in the browser's prompt, or it comes from another CA.")],
        steps: vec![
            restart_en().t(" Chrome remembers the chosen certificate until it restarts."),
            choose,
            line().t("If there is no such certificate, get one from the administrator and import it."),
        ],
        notes: vec![line().t("If the issuer shown is in fact the clinic's CA, the proxy's CA_CRT may be out of date (for example after the CA was re-created).")],
    }
}

fn revoked_ja(r: &CertRefusal<'_>) -> Text {
    Text {
        title: "この証明書は失効しています".into(),
        lead: vec![
            line()
                .t("お使いの証明書")
                .append(cert_ref_ja(r.subject, r.serial_hex))
                .t("は、管理者によって失効（利用停止）の手続きがされているため、使えません。"),
        ],
        steps: reissue_steps_ja("失効した"),
        notes: vec![line().t("失効の手続きに心当たりがない場合も、管理者にご確認ください。")],
    }
}

fn revoked_en(r: &CertRefusal<'_>) -> Text {
    Text {
        title: "This certificate has been revoked".into(),
        lead: vec![
            line()
                .t("The certificate")
                .append(cert_ref_en(r.subject, r.serial_hex))
                .t(" has been revoked by the administrator (it is on the CRL) and can no longer be used."),
        ],
        steps: reissue_steps_en("revoked"),
        notes: Vec::new(),
    }
}

fn not_allowed_ja(r: &CertRefusal<'_>) -> Text {
    Text {
        title: "この証明書ではこのサーバーを利用できません".into(),
        lead: vec![
            line()
                .t("証明書")
                .append(cert_ref_ja(r.subject, None))
                .t("は正しく発行された有効なものですが、このサーバーの利用は許可されていません。"),
        ],
        steps: vec![
            line().t("管理者に、この証明書でこのサーバーを使えるようにしてもらうか、このサーバー用の証明書を発行してもらってください。"),
            restart_ja().t("このサーバー用の証明書を別にお持ちの場合は、証明書の選択画面でその証明書を選んでください。"),
        ],
        notes: Vec::new(),
    }
}

fn not_allowed_en(r: &CertRefusal<'_>) -> Text {
    Text {
        title: "This certificate is not allowed on this server".into(),
        lead: vec![
            line()
                .t("The certificate")
                .append(cert_ref_en(r.subject, None))
                .t(" is valid and issued by an accepted CA, but it is not permitted to use this server."),
        ],
        steps: vec![
            line()
                .t("To allow it, add its common name to ")
                .c("ALLOW_CN")
                .t(" in the proxy configuration, or issue a certificate with a permitted name."),
            restart_en().t(" If the user has another certificate for this server, choose that one when asked."),
        ],
        notes: Vec::new(),
    }
}

// ---------------------------------------------------------------------------
// Backend and protocol pages

fn backend_down_ja() -> Text {
    Text {
        title: "WebORCA が応答していません".into(),
        lead: vec![line().t("このページを表示している中継用のサーバーは動いていますが、その先の WebORCA に接続できませんでした。WebORCA が起動中・再起動中か、停止している可能性があります。")],
        steps: vec![
            line().t("1〜2 分ほど待ってから、ページを再読み込み（F5 キー）してください。"),
            line().t("何度試しても同じ画面が出る場合は、管理者またはサポート窓口に連絡し、下の「技術情報」の内容を伝えてください。"),
        ],
        notes: Vec::new(),
    }
}

fn backend_down_en(backend: &str, detail: &str) -> Text {
    Text {
        title: "WebORCA is not answering".into(),
        lead: vec![
            line()
                .t("The TLS proxy is running but could not connect to WebORCA at ")
                .c(backend)
                .t(": ")
                .t(detail),
        ],
        steps: vec![
            line()
                .t("Check that WebORCA is running and listening on ")
                .c(backend)
                .t(" (service status, its log, ")
                .c("ss -ltnp")
                .t(")."),
            line().t("If WebORCA was just restarted, wait until it has finished starting; the next request will go through."),
        ],
        notes: Vec::new(),
    }
}

fn timeout_ja(secs: u64) -> Text {
    Text {
        title: "WebORCA の応答に時間がかかっています".into(),
        lead: vec![line().t(format!("WebORCA から {secs} 秒以内に応答がなかったため、待つのをやめました。WebORCA が混み合っているか、時間のかかる処理をしている可能性があります。"))],
        steps: vec![
            line().t("直前に登録や更新をしていた場合は、すぐにやり直さず、まずその内容が WebORCA に反映されているか確認してください。処理そのものは終わっていることがあります。"),
            line().t("少し待ってから、もう一度操作してください。"),
            line().t("何度も起きる場合は、管理者またはサポート窓口に連絡し、下の「技術情報」の内容を伝えてください。"),
        ],
        notes: Vec::new(),
    }
}

fn timeout_en(backend: &str, secs: u64) -> Text {
    Text {
        title: "WebORCA took too long to answer".into(),
        lead: vec![
            line()
                .t("WebORCA at ")
                .c(backend)
                .t(format!(" did not answer within {secs} s, so the proxy gave up. The request may still have completed on WebORCA's side.")),
        ],
        steps: vec![
            line().t("Before repeating a request that changes data, check whether it has already taken effect."),
            line().t(format!("If this happens often, look at WebORCA's load and logs, or raise the proxy's backend timeout (currently {secs} s).")),
        ],
        notes: Vec::new(),
    }
}

fn plain_http_ja() -> Text {
    Text {
        title: "https:// で開いてください".into(),
        lead: vec![line().t("このサーバーは暗号化された接続（https://）専用です。http:// で始まるアドレスで開かれたため、表示できませんでした。")],
        steps: vec![
            line().t("アドレスバーに ").c("https://（サーバー名）:8000").t(" と入力して開き直してください（「http」ではなく「https」です）。"),
            line().t("ブックマークやデスクトップのショートカットから開いた場合は、そのアドレスも https:// に直しておくと、次から同じ画面が出ません。"),
        ],
        notes: Vec::new(),
    }
}

fn plain_http_en() -> Text {
    Text {
        title: "This port only speaks HTTPS".into(),
        lead: vec![line().t("A plain HTTP request without a Host header arrived on the TLS port, so the proxy cannot even redirect it.")],
        steps: vec![
            line().t("Use ").c("https://(server):8000").t("."),
            line().t("Fix bookmarks, shortcuts or client settings that still use http://."),
        ],
        notes: Vec::new(),
    }
}

// ---------------------------------------------------------------------------
// Rendering

fn status_line(status: StatusCode) -> String {
    match status.canonical_reason() {
        Some(reason) => format!("{} {reason}", status.as_u16()),
        None => status.as_u16().to_string(),
    }
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape_html(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

fn line_html(l: &Line, out: &mut String) {
    for part in &l.0 {
        match part {
            Inline::Text(t) => escape_html(t, out),
            Inline::Code(c) => {
                out.push_str("<code>");
                escape_html(c, out);
                out.push_str("</code>");
            }
        }
    }
}

fn line_text(l: &Line) -> String {
    l.0.iter()
        .map(|part| match part {
            Inline::Text(t) | Inline::Code(t) => t.as_str(),
        })
        .collect()
}

/// Labels that differ between the two language parts.
struct Labels {
    eyebrow: &'static str,
    steps: &'static str,
}

const JA: Labels = Labels {
    eyebrow: "WebORCA 接続エラー",
    steps: "対処方法",
};
const EN: Labels = Labels {
    eyebrow: "In English",
    steps: "What to do",
};

fn to_html(content: &Content) -> String {
    let mut out = String::with_capacity(8 * 1024);
    out.push_str("<!doctype html>\n<html lang=\"ja\">\n<head>\n<meta charset=\"utf-8\">\n");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    out.push_str("<meta name=\"robots\" content=\"noindex\">\n<title>");
    escape_html(&content.ja.title, &mut out);
    out.push_str(" – WebORCA</title>\n<style>");
    out.push_str(CSS);
    out.push_str("</style>\n</head>\n<body>\n<main>\n");
    let code = status_line(content.status);
    text_html(&content.ja, &JA, &code, "ja", &mut out);
    facts_html(content, &mut out);
    text_html(&content.en, &EN, &code, "en", &mut out);
    out.push_str("<p class=\"foot\">weborca-mtls-proxy</p>\n</main>\n</body>\n</html>\n");
    out
}

fn text_html(text: &Text, labels: &Labels, code: &str, lang: &str, out: &mut String) {
    let (open, close) = if lang == "ja" {
        ("<h1>", "</h1>")
    } else {
        ("<h2 class=\"title\">", "</h2>")
    };
    out.push_str(&format!(
        "<section class=\"card {lang}\" lang=\"{lang}\">\n<p class=\"eyebrow\">"
    ));
    escape_html(&format!("{} · {code}", labels.eyebrow), out);
    out.push_str(&format!("</p>\n{open}"));
    escape_html(&text.title, out);
    out.push_str(&format!("{close}\n"));
    for l in &text.lead {
        out.push_str("<p>");
        line_html(l, out);
        out.push_str("</p>\n");
    }
    if !text.steps.is_empty() {
        // Japanese part: h1 title, h2 steps; English part sits under h2.
        let level = if lang == "ja" { "h2" } else { "h3" };
        out.push_str(&format!("<{level} class=\"steps\">"));
        escape_html(labels.steps, out);
        out.push_str(&format!("</{level}>\n<ol>\n"));
        for step in &text.steps {
            out.push_str("<li>");
            line_html(step, out);
            out.push_str("</li>\n");
        }
        out.push_str("</ol>\n");
    }
    for note in &text.notes {
        out.push_str("<p class=\"note\">");
        line_html(note, out);
        out.push_str("</p>\n");
    }
    out.push_str("</section>\n");
}

fn facts_html(content: &Content, out: &mut String) {
    out.push_str("<section class=\"tech\">\n<h2>技術情報 <span lang=\"en\">/ Technical details</span></h2>\n<dl>\n");
    let status = fact(
        "HTTP ステータス",
        "HTTP status",
        status_line(content.status),
    );
    for f in std::iter::once(&status).chain(&content.facts) {
        out.push_str("<dt>");
        escape_html(f.ja, out);
        out.push_str(" <span lang=\"en\">/ ");
        escape_html(f.en, out);
        out.push_str("</span></dt>\n<dd>");
        for (i, value) in f.values.iter().enumerate() {
            if i > 0 {
                out.push_str("<br>");
            }
            escape_html(value, out);
        }
        out.push_str("</dd>\n");
    }
    out.push_str("</dl>\n</section>\n");
}

fn to_text(content: &Content) -> String {
    let mut out = String::with_capacity(4 * 1024);
    text_plain(&content.ja, &JA, &mut out);
    out.push_str("--- 技術情報 / Technical details ---\n");
    let status = fact(
        "HTTP ステータス",
        "HTTP status",
        status_line(content.status),
    );
    for f in std::iter::once(&status).chain(&content.facts) {
        out.push_str(&format!("{} / {}:", f.ja, f.en));
        match f.values.as_slice() {
            [one] => out.push_str(&format!(" {one}\n")),
            many => many
                .iter()
                .for_each(|v| out.push_str(&format!("\n    {v}"))),
        }
        if f.values.len() != 1 {
            out.push('\n');
        }
    }
    out.push_str("\n========================================\n\n");
    text_plain(&content.en, &EN, &mut out);
    out
}

fn text_plain(text: &Text, labels: &Labels, out: &mut String) {
    out.push_str(&format!("[WebORCA] {}\n\n", text.title));
    for l in &text.lead {
        out.push_str(&line_text(l));
        out.push_str("\n\n");
    }
    if !text.steps.is_empty() {
        out.push_str(&format!("{}:\n", labels.steps));
        for (i, step) in text.steps.iter().enumerate() {
            out.push_str(&format!("  {}. {}\n", i + 1, line_text(step)));
        }
        out.push('\n');
    }
    for note in &text.notes {
        out.push_str(&format!("* {}\n\n", line_text(note)));
    }
}

/// Calm, readable on a phone and on a reception PC; system fonts only.
const CSS: &str = r#"
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;background:#f3f5f7;color:#1f2933;font:16px/1.8 system-ui,-apple-system,"Hiragino Sans","Hiragino Kaku Gothic ProN","Noto Sans JP","Meiryo","Yu Gothic UI",sans-serif}
main{max-width:46rem;margin:0 auto;padding:1.5rem 1rem 2.5rem}
.card[lang=ja]{word-break:auto-phrase}
.card{background:#fff;border:1px solid #dde3e9;border-top:4px solid #d9822b;border-radius:10px;padding:1.25rem 1.5rem 1rem;margin:0 0 1.25rem}
.card.en{border-top-color:#9aa5b1}
.eyebrow{margin:0 0 .25rem;font-size:.8rem;letter-spacing:.04em;color:#616e7c}
h1,.title{margin:0 0 .75rem;line-height:1.45;font-weight:700}
h1{font-size:1.5rem}
.title{font-size:1.25rem}
.steps{margin:1.25rem 0 .25rem;font-size:1.05rem}
p{margin:.5rem 0}
ol{margin:.25rem 0 .75rem;padding-left:1.5rem}
li{margin:.45rem 0;padding-left:.2rem}
code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"BIZ UDGothic",monospace;font-size:.9em;background:#f0f4f8;border:1px solid #d9e2ec;border-radius:4px;padding:.05em .35em;overflow-wrap:anywhere}
.note{background:#fff8eb;border:1px solid #f7d9a8;border-radius:8px;padding:.6rem .9rem}
.tech{background:#f8fafc;border:1px solid #dde3e9;border-radius:10px;padding:.9rem 1.25rem;margin:0 0 1.25rem;font-size:.85rem;line-height:1.6}
.tech h2{margin:0 0 .5rem;font-size:.95rem}
.tech dl{display:grid;grid-template-columns:max-content 1fr;gap:.3rem 1rem;margin:0}
.tech dt{color:#52606d}
.tech dd{margin:0;font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;overflow-wrap:anywhere}
.foot{text-align:center;font-size:.75rem;color:#9aa5b1}
@media (max-width:560px){main{padding:1rem .6rem 2rem}.card{padding:1rem 1rem .75rem}h1{font-size:1.3rem}.tech dl{grid-template-columns:1fr}.tech dd{margin-bottom:.4rem}}
"#;

#[cfg(test)]
mod tests;
