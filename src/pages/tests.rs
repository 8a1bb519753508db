//! Unit tests of the refusal and error pages (the parent module).

use super::*;

fn utc(s: &str) -> DateTime<Utc> {
    s.parse().expect("test date")
}

fn cas() -> Vec<String> {
    vec!["CN=ORCA CA,O=orca,C=JP".to_owned()]
}

fn refusal<'a>(kind: CertErrorKind, cas: &'a [String]) -> CertRefusal<'a> {
    CertRefusal {
        subject: Some("CN=user1,O=orca,C=JP"),
        issuer: Some("CN=Other CA,O=elsewhere"),
        serial_hex: Some("0a1b"),
        not_before: Some(utc("2025-04-01T00:00:00Z")),
        not_after: Some(utc("2026-03-31T15:00:00Z")),
        expected_ca: cas,
        detail: Some("certificate expired"),
        ..CertRefusal::new(kind)
    }
}

const KINDS: [CertErrorKind; 8] = [
    CertErrorKind::Missing,
    CertErrorKind::Expired,
    CertErrorKind::NotYetValid,
    CertErrorKind::UnknownCa,
    CertErrorKind::Revoked,
    CertErrorKind::NotAllowed,
    CertErrorKind::CrlStale,
    CertErrorKind::NotPermitted,
];

fn all_pages(cas: &[String]) -> Vec<Page<'_>> {
    let mut pages: Vec<Page<'_>> = KINDS
        .iter()
        .map(|&k| Page::CertRefused(refusal(k, cas)))
        .collect();
    pages.push(Page::BackendDown {
        backend: "http://127.0.0.1:8001",
        detail: "connection refused",
    });
    pages.push(Page::BackendTimeout {
        backend: "http://127.0.0.1:8001",
        timeout_secs: 30,
    });
    pages.push(Page::PlainHttpNoHost);
    pages
}

fn body(r: &Rendered) -> &str {
    std::str::from_utf8(&r.body).expect("utf-8 body")
}

#[test]
fn reason_codes() {
    let codes: Vec<&str> = KINDS.iter().map(|k| k.as_str()).collect();
    assert_eq!(
        codes,
        [
            "missing",
            "expired",
            "not-yet-valid",
            "unknown-ca",
            "revoked",
            "not-allowed",
            "crl-stale",
            "not-permitted"
        ]
    );
    assert_eq!(CertErrorKind::UnknownCa.to_string(), "unknown-ca");
}

#[test]
fn status_content_type_and_header() {
    let cas = cas();
    for page in all_pages(&cas) {
        for html in [true, false] {
            let r = render(&page, html);
            let (status, cert_error) = match page {
                Page::CertRefused(c) => (403, Some(c.kind.as_str())),
                Page::BackendDown { .. } => (502, None),
                Page::BackendTimeout { .. } => (504, None),
                Page::PlainHttpNoHost => (400, None),
            };
            assert_eq!(r.status.as_u16(), status);
            assert_eq!(r.cert_error, cert_error);
            let expected_type = if html { HTML_TYPE } else { TEXT_TYPE };
            assert_eq!(r.content_type, expected_type);
            if let Some(code) = cert_error {
                assert!(body(&r).contains(code), "reason code {code} on page");
            }
        }
    }
}

#[test]
fn html_is_self_contained_japanese_first() {
    let cas = cas();
    for page in all_pages(&cas) {
        let r = render(&page, true);
        let b = body(&r);
        assert!(b.starts_with("<!doctype html>\n<html lang=\"ja\">"));
        assert!(b.contains("<meta charset=\"utf-8\">"));
        assert!(b.contains("name=\"viewport\""));
        assert!(b.contains("\"Hiragino Sans\",") && b.contains("\"Noto Sans JP\""));
        assert!(b.contains("\"Meiryo\""));
        for banned in ["<script", "src=", "href=", "url(", "@import", "<link"] {
            assert!(!b.contains(banned), "{banned} in page");
        }
        let ja = b.find("対処方法").expect("Japanese steps");
        let en = b.find("What to do").expect("English steps");
        assert!(ja < en, "Japanese before English");
        assert!(b.find("<h1>").expect("h1") < b.find("lang=\"en\"").expect("en"));
        assert!(b.contains("技術情報"));
    }
}

#[test]
fn plain_text_carries_the_same_information_without_tags() {
    let cas = cas();
    for page in all_pages(&cas) {
        let r = render(&page, false);
        let b = body(&r);
        assert!(
            !b.contains('<') && !b.contains('>'),
            "tag-like text in: {b}"
        );
        assert!(!b.contains("&amp;") && !b.contains("&lt;"));
        let ja = b.find("対処方法").expect("Japanese steps");
        assert!(ja < b.find("What to do").expect("English steps"));
        // every step of the HTML version is present as text
        let html = render(&page, true);
        assert_eq!(
            body(&html).matches("<li>").count(),
            b.lines().filter(|l| is_numbered_step(l)).count()
        );
    }
}

fn is_numbered_step(l: &str) -> bool {
    l.starts_with("  ")
        && l.trim_start()
            .split_once(". ")
            .is_some_and(|(n, _)| n.parse::<u32>().is_ok())
}

#[test]
fn hostile_values_are_escaped() {
    let hostile = "CN=<script>alert('x')</script>&\"";
    let cas = vec![hostile.to_owned()];
    let refusal = CertRefusal {
        subject: Some(hostile),
        issuer: Some(hostile),
        serial_hex: Some(hostile),
        expected_ca: &cas,
        detail: Some(hostile),
        ..CertRefusal::new(CertErrorKind::UnknownCa)
    };
    let pages = [
        Page::CertRefused(refusal),
        Page::CertRefused(CertRefusal {
            kind: CertErrorKind::Missing,
            ..refusal
        }),
        Page::CertRefused(CertRefusal {
            kind: CertErrorKind::Revoked,
            ..refusal
        }),
        Page::BackendDown {
            backend: hostile,
            detail: hostile,
        },
        Page::BackendTimeout {
            backend: hostile,
            timeout_secs: 5,
        },
    ];
    for page in pages {
        let r = render(&page, true);
        let b = body(&r);
        assert!(!b.contains("<script"), "unescaped value in {b}");
        assert!(b.contains("CN=&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"));
        // plain text shows the value verbatim: it is not interpreted
        let text = render(&page, false);
        assert!(body(&text).contains(hostile));
    }
}

#[test]
fn certificate_details_are_shown() {
    let cas = cas();
    let text = |k| {
        String::from_utf8(
            render(&Page::CertRefused(refusal(k, &cas)), false)
                .body
                .to_vec(),
        )
        .expect("utf-8")
    };

    let missing = text(CertErrorKind::Missing);
    for needle in [
        "NNNNNN__JP_orca_",
        ".pass",
        ".p12",
        "ca.crt",
        "デバイス証明書の管理",
        "プライバシーとセキュリティ",
        ":8000",
        "CN=ORCA CA,O=orca,C=JP",
        "Manage device certificates",
    ] {
        assert!(missing.contains(needle), "missing page lacks {needle}");
    }

    let expired = text(CertErrorKind::Expired);
    for needle in [
        "有効期限",
        "CN=user1,O=orca,C=JP",
        "2026/04/01 00:00",
        "2026-03-31T15:00:00Z",
        "orca-catool issue_client_cert",
        "2025/04/01 09:00",
    ] {
        assert!(expired.contains(needle), "expired page lacks {needle}");
    }

    let nyv = text(CertErrorKind::NotYetValid);
    for needle in ["2025/04/01 09:00", "2025-04-01T00:00:00Z", "時計", "clock"] {
        assert!(nyv.contains(needle), "not-yet-valid page lacks {needle}");
    }

    // a certificate naming an accepted CA as issuer is not told that CA
    // is not accepted
    let same_name = String::from_utf8(
        render(
            &Page::CertRefused(CertRefusal {
                issuer: Some(cas[0].as_str()),
                ..refusal(CertErrorKind::UnknownCa, &cas)
            }),
            false,
        )
        .body
        .to_vec(),
    )
    .expect("utf-8");
    for needle in [
        "ログインできません",
        "issue_client_cert",
        "cannot be used to sign in",
    ] {
        assert!(same_name.contains(needle), "same-name page lacks {needle}");
    }
    assert!(!same_name.contains("is not accepted here"), "{same_name}");

    let unknown = text(CertErrorKind::UnknownCa);
    for needle in [
        "CN=Other CA,O=elsewhere",
        "CN=ORCA CA,O=orca,C=JP",
        "再起動",
        "restart",
    ] {
        assert!(unknown.contains(needle), "unknown-ca page lacks {needle}");
    }

    let revoked = text(CertErrorKind::Revoked);
    for needle in ["失効", "0a1b", "CN=user1,O=orca,C=JP", "revoked"] {
        assert!(revoked.contains(needle), "revoked page lacks {needle}");
    }

    let not_allowed = text(CertErrorKind::NotAllowed);
    for needle in ["許可", "ALLOW_CN", "CN=user1,O=orca,C=JP"] {
        assert!(
            not_allowed.contains(needle),
            "not-allowed page lacks {needle}"
        );
    }
}

#[test]
fn minimal_refusals_still_read_well() {
    for kind in KINDS {
        let r = render(&Page::CertRefused(CertRefusal::new(kind)), false);
        let b = body(&r);
        assert!(
            !b.contains("（）") && !b.contains("()"),
            "empty brackets: {b}"
        );
        assert!(b.contains(kind.as_str()));
        assert!(!b.contains("Subject"), "absent facts are left out");
    }
}

#[test]
fn backend_and_plain_http_pages() {
    let down = render(
        &Page::BackendDown {
            backend: "http://127.0.0.1:8001",
            detail: "connection refused",
        },
        false,
    );
    let b = body(&down);
    assert!(b.contains("WebORCA が応答していません"));
    assert!(b.contains("http://127.0.0.1:8001") && b.contains("connection refused"));
    assert!(b.contains("502 Bad Gateway"));

    let slow = render(
        &Page::BackendTimeout {
            backend: "http://127.0.0.1:8001",
            timeout_secs: 30,
        },
        false,
    );
    assert!(body(&slow).contains("30 秒") && body(&slow).contains("30 s"));

    let plain = render(&Page::PlainHttpNoHost, true);
    assert!(body(&plain).contains("https://（サーバー名）:8000"));
    assert!(body(&plain).contains("https://(server):8000"));
}

#[test]
fn accept_header_detection() {
    let check = |v: &str| wants_html(Some(&HeaderValue::from_str(v).expect("header")));
    assert!(check(
        "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    ));
    assert!(check("TEXT/HTML"));
    assert!(check("application/json, text/html;q=0.5"));
    assert!(!check("*/*"));
    assert!(!check("application/json"));
    assert!(!check("text/html;q=0"));
    assert!(!check("text/html; q=0.000"));
    assert!(check("text/html;q=0.001"));
    assert!(!check("text/htmlx"));
    assert!(!wants_html(None));
    let obs = HeaderValue::from_bytes(b"text/html, \xff").expect("obs-text");
    assert!(wants_html(Some(&obs)));
}

#[test]
fn jst_dates() {
    assert_eq!(jst(utc("2026-03-31T15:00:00Z")), "2026/04/01 00:00");
    assert_eq!(iso_utc(utc("2026-03-31T15:00:00Z")), "2026-03-31T15:00:00Z");
}

#[test]
fn not_permitted_names_the_path_and_subject_japanese_first() {
    let page = not_permitted("/ws", "/O=orca/CN=user1", Some("policy:3"));
    for html in [true, false] {
        let r = render(&page, html);
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        assert_eq!(r.cert_error, Some("not-permitted"));
        let text = body(&r);
        for words in ["/ws", "/O=orca/CN=user1", "policy:3", "ACCESS_POLICY"] {
            assert!(text.contains(words), "{words} missing in {text}");
        }
        let ja = text.find("許可されていません").expect("Japanese text");
        let en = text.find("not permitted to use").expect("English text");
        assert!(ja < en, "Japanese first");
    }
    let r = render(&not_permitted("/<script>", "/CN=<b>", None), true);
    assert!(!body(&r).contains("<script>") && !body(&r).contains("<b>"));
}
