//! Every reason a client is refused: the page (default) or the TLS alert
//! (`CLIENT_CERT_ERRORS=handshake`), and in every case nothing reaches WebORCA.

use bytes::Bytes;
use http::Request;
use http_body_util::Full;

use crate::util::client::Client;
use crate::util::env::{Env, Setup};
use crate::util::pki::{Ca, Leaf};

/// The certificates a refusal test needs, made before the proxy starts.
struct Cases {
    expired: Leaf,
    not_yet_valid: Leaf,
    foreign: Leaf,
    foreign_ca_pem: String,
    revoked: Leaf,
    not_allowed: Leaf,
    /// accepted until a test revokes it
    revoked_later: Leaf,
}

fn setup(extra: &[&str]) -> (Setup, Cases) {
    let mut s = Setup::new();
    let foreign_ca = Ca::new("other-clinic-ca");
    let cases = Cases {
        expired: s.ca.client_valid("expired-user", -400, -2),
        not_yet_valid: s.ca.client_valid("future-user", 5, 400),
        foreign: foreign_ca.client("intruder"),
        foreign_ca_pem: foreign_ca.pem.clone(),
        revoked: s.ca.client("revoked-user"),
        not_allowed: s.ca.client("guest"),
        revoked_later: s.ca.client("user1"),
    };
    let crl = s.ca.crl(&[cases.revoked.serial]);
    let crl_path = crate::util::pki::write(s.dir.path(), "ca.crl", &crl);
    s.conf.push(format!("CA_CRL={}", crl_path.display()));
    s.conf
        .push("ALLOW_CN=\"user1, expired-user, future-user, intruder, revoked-user\"".into());
    for e in extra {
        s.conf.push(e.to_string());
    }
    (s, cases)
}

async fn refused_page(env: &Env, cert: Option<&Leaf>, reason: &str) -> String {
    let before = env.backend.count();
    let answer = env.client(cert).get(env.addr, "/").await.unwrap();
    assert_eq!(answer.status, 403, "{reason}: {}", answer.text());
    assert_eq!(answer.header("x-client-cert-error"), Some(reason));
    assert!(
        answer
            .header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    let text = answer.text();
    let ja = text.find("証明書").expect("Japanese text");
    let en = text.find("certificate").expect("English text");
    assert!(ja < en, "Japanese comes first");
    assert!(
        text.contains(reason),
        "the page names the reason code {reason}"
    );
    assert_eq!(
        env.backend.count(),
        before,
        "{reason}: a refused client reached the backend"
    );
    text
}

#[tokio::test]
async fn refuses_missing_certificate_with_import_steps() {
    let (s, _) = setup(&[]);
    let env = s.start().await;
    let page = refused_page(&env, None, "missing").await;
    assert!(page.contains(".p12"));
    assert!(page.contains("デバイス証明書の管理"));
}

/// User-Agents as the browsers send them (Firefox ESR 140, Edge and Chrome 131 on Windows).
const FIREFOX_UA: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:140.0) Gecko/20100101 Firefox/140.0";
const EDGE_UA: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0";
const CHROME_UA: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";

/// What a refusal page says to the reader: all of it but the technical box.
fn words_of(page: &str) -> String {
    let tech = page
        .find("<section class=\"tech\">")
        .expect("a technical box");
    let tech_end = tech + page[tech..].find("</section>").expect("its end");
    format!("{}{}", &page[..tech], &page[tech_end..])
}

/// The words a browser's pages must have and must not have.
struct BrowserWords {
    ua: &'static str,
    /// on the page for no certificate (importing the .p12 and ca.crt)
    missing: &'static [&'static str],
    /// on every certificate page (quitting the browser so it asks again)
    everywhere: &'static [&'static str],
    /// on none of its pages' steps
    lacks: &'static [&'static str],
}

const BROWSERS: [BrowserWords; 3] = [
    BrowserWords {
        ua: FIREFOX_UA,
        missing: &[
            "Firefox の「設定」",
            "「あなたの証明書」タブ",
            "「認証局証明書」タブ",
            "In Firefox, open Settings",
            "Authorities tab",
        ],
        everywhere: &[
            "「次回からは確認しない」",
            "「認証の決定」タブ",
            "Firefox を完全に終了",
            "Authentication Decisions tab",
            "Quit Firefox completely",
        ],
        lacks: &["Chrome", "デバイス証明書の管理", "Edge"],
    },
    BrowserWords {
        ua: EDGE_UA,
        missing: &[
            "Edge の「設定」",
            "「プライバシー、検索、サービス」",
            "In Edge, open Settings",
        ],
        everywhere: &["Microsoft Edge を閉じる", "Quit Edge completely"],
        lacks: &["Chrome", "デバイス証明書の管理", "Firefox"],
    },
    BrowserWords {
        ua: CHROME_UA,
        missing: &[
            "Chrome の「設定」",
            "デバイス証明書の管理",
            "In Chrome, open Settings",
        ],
        everywhere: &["Chrome を完全に終了", "Quit Chrome completely"],
        lacks: &["Firefox", "Edge"],
    },
];

/// Asserts that `page` (refused for `reason`) speaks of `b`'s browser only.
fn assert_words(b: &BrowserWords, reason: &str, page: &str) {
    let words = words_of(page);
    let has = b
        .everywhere
        .iter()
        .chain(if reason == "missing" { b.missing } else { &[] });
    for word in has {
        assert!(
            words.contains(word),
            "{}, {reason}: no {word:?} in {words}",
            b.ua
        );
    }
    for word in b.lacks {
        assert!(
            !words.contains(word),
            "{}, {reason}: {word:?} in {words}",
            b.ua
        );
    }
}

#[tokio::test]
async fn the_steps_on_a_refusal_page_name_the_menus_of_the_browser_that_asked() {
    let (s, c) = setup(&[]);
    let env = s.start().await;
    for b in &BROWSERS {
        for (cert, reason) in [
            (None, "missing"),
            (Some(&c.foreign), "unknown-ca"),
            (Some(&c.revoked), "revoked"),
            (Some(&c.expired), "expired"),
            (Some(&c.not_allowed), "not-allowed"),
        ] {
            let req = Request::get("/")
                .header("host", "localhost")
                .header("accept", "text/html")
                .header("user-agent", b.ua)
                .body(Full::new(Bytes::new()))
                .unwrap();
            let answer = env.client(cert).send(env.addr, req).await.unwrap();
            assert_eq!(answer.status, 403, "{reason}: {}", answer.text());
            assert_eq!(answer.header("x-client-cert-error"), Some(reason));
            assert_words(b, reason, &answer.text());
        }
    }
    assert_eq!(
        env.backend.count(),
        0,
        "a refused client reached the backend"
    );
}

#[tokio::test]
async fn an_open_http2_connection_keeps_the_browser_of_its_first_request() {
    let (s, c) = setup(&[]);
    let env = s.start().await;
    let client = crate::util::client::Client::new(&env.ca.pem, Some(&c.revoked_later), &[b"h2"]);
    let mut open = crate::util::kept::Kept::open(&client, env.addr).await;
    assert!(matches!(open, crate::util::kept::Kept::H2(..)));
    let first = Request::get("/")
        .header("host", "localhost")
        .header("user-agent", FIREFOX_UA)
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(open.send(first).await.unwrap().status, 200);
    let forwarded = env.backend.count();
    // revoked while the connection is open; the next request has no User-Agent
    let crl = env.ca.crl(&[c.revoked.serial, c.revoked_later.serial]);
    crate::util::pki::write(env.dir.path(), "ca.crl", &crl);
    env.reload().expect("reload");
    let answer = open.get("/later").await.unwrap();
    assert_eq!(answer.status, 403, "{}", answer.text());
    assert_eq!(answer.header("x-client-cert-error"), Some("revoked"));
    assert_words(&BROWSERS[0], "revoked", &answer.text());
    assert_eq!(
        env.backend.count(),
        forwarded,
        "the refused request reached the backend"
    );
}

#[tokio::test]
async fn refuses_expired_certificate_naming_its_dates() {
    let (s, c) = setup(&[]);
    let env = s.start().await;
    let page = refused_page(&env, Some(&c.expired), "expired").await;
    assert!(page.contains("expired-user"));
    let not_after = x509_parser::parse_x509_certificate(c.expired.der.as_ref())
        .unwrap()
        .1
        .validity()
        .not_after
        .to_datetime();
    let date = format!(
        "{:04}-{:02}-{:02}",
        not_after.year(),
        not_after.month() as u8,
        not_after.day()
    );
    assert!(page.contains(&date), "page names the expiry date {date}");
}

/// The expired page says the CA `ca` expired, and when.
fn assert_names_expired_ca(page: &str, ca: &str, not_after: time::OffsetDateTime) {
    assert!(
        page.contains("証明書を発行した認証局の有効期限が切れています"),
        "the Japanese title says the CA expired"
    );
    assert!(page.contains(ca), "names the expired CA {ca}");
    let date = not_after.date().to_string();
    assert!(page.contains(&date), "names the CA's expiry date {date}");
}

#[tokio::test]
async fn an_expired_intermediate_is_named_rather_than_the_valid_certificate_it_issued() {
    let s = Setup::new();
    let not_after = time::OffsetDateTime::now_utc() - time::Duration::days(2);
    let intermediate = s.ca.intermediate("clinic sub-CA", not_after);
    let leaf = intermediate.client("via-old-sub-ca");
    let env = s.start().await;
    let page = refused_page(&env, Some(&leaf), "expired").await;
    assert!(page.contains("via-old-sub-ca"), "names the certificate");
    assert_names_expired_ca(&page, "clinic sub-CA", not_after);
    assert!(
        page.contains("The CA that issued the client certificate has expired"),
        "the English title says the CA expired"
    );
    assert!(
        !page.contains("証明書の有効期限が切れています"),
        "does not say the certificate itself expired"
    );
}

#[tokio::test]
async fn a_certificate_whose_ca_in_ca_crt_has_expired_is_refused_naming_that_ca() {
    // CA_CRT holds the root and an intermediate that has expired: every
    // certificate of CA_CRT is a trust anchor to WebPKI, which never judges
    // an anchor's dates, so its leaves were let in.
    let mut s = Setup::new();
    let not_after = time::OffsetDateTime::now_utc() - time::Duration::days(2);
    let old = s.ca.intermediate("clinic sub-CA", not_after);
    let leaf = old.client("under-expired-anchor");
    // and a CA made again under the same name, still valid: its leaves are
    // accepted although the expired one has the same subject
    let renewed = s.ca.intermediate(
        "clinic sub-CA",
        time::OffsetDateTime::now_utc() + time::Duration::days(365),
    );
    let good = renewed.client("under-renewed-anchor");
    let bundle = s.dir.path().join("bundle.crt");
    std::fs::write(&bundle, format!("{}{}{}", s.ca.pem, old.pem, renewed.pem)).unwrap();
    s.conf.push(format!("CA_CRT={}", bundle.display()));
    let env = s.start().await;
    let page = refused_page(&env, Some(&leaf), "expired").await;
    assert_names_expired_ca(&page, "clinic sub-CA", not_after);
    let before = env.backend.count();
    let answer = env
        .client(Some(&good))
        .get(env.addr, "/renewed")
        .await
        .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(env.backend.count(), before + 1);
}

#[tokio::test]
async fn an_expired_certificate_of_another_ca_is_refused_as_unknown_ca() {
    // Made by anyone: the clinic CA's name on another key, a clinic user's
    // CN, dates in the past. Its dates are not what is wrong with it.
    let s = Setup::new();
    let forger = Ca::new("test-ca");
    let forged = forger.client_until(
        "user1",
        time::OffsetDateTime::now_utc() - time::Duration::hours(1),
    );
    let env = s.start().await;
    let page = refused_page(&env, Some(&forged), "unknown-ca").await;
    assert!(
        !page.contains("有効期限が切れています"),
        "not told it expired"
    );
}

#[tokio::test]
async fn refuses_not_yet_valid_certificate() {
    let (s, c) = setup(&[]);
    let env = s.start().await;
    let page = refused_page(&env, Some(&c.not_yet_valid), "not-yet-valid").await;
    assert!(page.contains("future-user"));
}

#[tokio::test]
async fn refuses_certificate_from_another_ca_naming_both_cas() {
    let (s, c) = setup(&[]);
    let env = s.start().await;
    let page = refused_page(&env, Some(&c.foreign), "unknown-ca").await;
    assert!(page.contains("other-clinic-ca"), "names the issuer");
    assert!(page.contains("test-ca"), "names the expected CA");
    let _ = c.foreign_ca_pem;
}

#[tokio::test]
async fn refuses_revoked_certificate_naming_its_serial() {
    let (s, c) = setup(&[]);
    let env = s.start().await;
    let page = refused_page(&env, Some(&c.revoked), "revoked").await;
    assert!(page.contains("revoked-user"));
    // labelled, as the English line prints it: a bare "06" is in any date
    let serial = format!("(serial <code>{:02x}</code>)", c.revoked.serial);
    assert!(page.contains(&serial), "{serial}: {page}");
}

#[tokio::test]
async fn refuses_cn_outside_allow_cn() {
    let (s, c) = setup(&[]);
    let env = s.start().await;
    let page = refused_page(&env, Some(&c.not_allowed), "not-allowed").await;
    assert!(page.contains("guest"));
    // and a listed CN passes
    env.assert_serves_user1().await;
}

#[tokio::test]
async fn api_clients_get_the_page_as_plain_text() {
    let (s, _) = setup(&[]);
    let env = s.start().await;
    let req = Request::get("/api01rv2/patientgetv2?id=1")
        .header("host", "localhost")
        .header("accept", "application/json")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let answer = env.client(None).send(env.addr, req).await.unwrap();
    assert_eq!(answer.status, 403);
    assert!(
        answer
            .header("content-type")
            .unwrap()
            .starts_with("text/plain")
    );
    assert!(!answer.text().contains("<html"));
    assert!(answer.text().contains("証明書"));
    assert_eq!(env.backend.count(), 0);
}

/// In handshake mode the refusal is a TLS alert: the connection never carries a request.
async fn refused_in_handshake(env: &Env, cert: Option<&Leaf>, what: &str) {
    let client = Client::h1(&env.ca.pem, cert);
    let outcome = match client.connect(env.addr).await {
        Err(e) => Err(e.to_string()),
        Ok(tls) => {
            // TLS 1.3: the server's verdict arrives after the client's Finished.
            let req = Request::get("/")
                .header("host", "localhost")
                .body(Full::new(Bytes::new()))
                .unwrap();
            crate::util::client::send_on(tls, req)
                .await
                .map(|a| a.status)
        }
    };
    assert!(
        outcome.is_err(),
        "{what}: expected a TLS alert, got {outcome:?}"
    );
    assert_eq!(
        env.backend.count(),
        0,
        "{what}: a refused client reached the backend"
    );
}

/// Each reason's own TLS alert, as a client reads it.
#[tokio::test]
async fn handshake_mode_names_each_reason_in_its_alert() {
    let (s, c) = setup(&["CLIENT_CERT_ERRORS=handshake"]);
    let env = s.start().await;
    for (cert, alert) in [
        (None, "CertificateRequired"),
        (Some(&c.expired), "CertificateExpired"),
        (Some(&c.not_yet_valid), "CertificateExpired"),
        (Some(&c.foreign), "UnknownCA"),
        (Some(&c.revoked), "CertificateRevoked"),
        (Some(&c.not_allowed), "AccessDenied"),
    ] {
        let client = Client::h1(&env.ca.pem, cert);
        let told = alert_of(&client, &env).await;
        assert!(
            told.contains(&format!("received fatal alert: {alert}")),
            "{alert}: {told}"
        );
    }
    assert_eq!(env.backend.count(), 0);
}

#[tokio::test]
async fn handshake_mode_refuses_every_reason_with_a_tls_alert() {
    let (s, c) = setup(&["CLIENT_CERT_ERRORS=handshake"]);
    let env = s.start().await;
    refused_in_handshake(&env, None, "missing").await;
    refused_in_handshake(&env, Some(&c.expired), "expired").await;
    refused_in_handshake(&env, Some(&c.not_yet_valid), "not-yet-valid").await;
    refused_in_handshake(&env, Some(&c.foreign), "unknown-ca").await;
    refused_in_handshake(&env, Some(&c.revoked), "revoked").await;
    refused_in_handshake(&env, Some(&c.not_allowed), "not-allowed").await;
    env.assert_serves_user1().await;
    assert_eq!(env.backend.count(), 1);
}

/// In handshake mode a client that would resume its session is not let past
/// the verifier: after its certificate is revoked it gets the
/// `certificate_revoked` alert, not a dropped connection (nor a 403 page).
#[tokio::test]
async fn handshake_mode_answers_a_client_that_would_resume_with_the_alert() {
    let (s, c) = setup(&["CLIENT_CERT_ERRORS=handshake"]);
    let env = s.start().await;
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(env.ca.der.clone()).unwrap();
        use rustls::pki_types::pem::PemObject;
        let key =
            rustls::pki_types::PrivateKeyDer::from_pem_slice(c.revoked_later.key_pem.as_bytes())
                .unwrap();
        // one config, so that its session store offers the first session again
        let config = rustls::ClientConfig::builder_with_protocol_versions(&[version])
            .with_root_certificates(roots)
            .with_client_auth_cert(vec![c.revoked_later.der.clone()], key)
            .unwrap();
        let client = Client {
            config: std::sync::Arc::new(config),
        };
        let crl = env.ca.crl(&[c.revoked.serial]);
        crate::util::pki::write(env.dir.path(), "ca.crl", &crl);
        env.reload().expect("reload");
        let first = client.get(env.addr, "/").await.unwrap();
        assert_eq!(first.status, 200, "{version:?}");
        let forwarded = env.backend.count();
        let crl = env.ca.crl(&[c.revoked.serial, c.revoked_later.serial]);
        crate::util::pki::write(env.dir.path(), "ca.crl", &crl);
        env.reload().expect("reload");
        let error = alert_of(&client, &env).await;
        assert!(
            error.contains("CertificateRevoked"),
            "{version:?}: expected the certificate_revoked alert, got {error}"
        );
        assert_eq!(env.backend.count(), forwarded, "{version:?}");
    }
}

/// What a client that sends a request on a new connection is told: the
/// error (a TLS alert shows as `received fatal alert: …`), or what came.
pub(crate) async fn alert_of(client: &Client, env: &Env) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tls = match client.connect(env.addr).await {
        Err(e) => return e.to_string(),
        Ok(tls) => tls,
    };
    // TLS 1.3: the verdict on the client's certificate comes after its Finished.
    if let Err(e) = tls
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
    {
        return e.to_string();
    }
    let mut buf = vec![0; 4096];
    match tls.read(&mut buf).await {
        Err(e) => e.to_string(),
        Ok(0) => "closed with no alert".to_string(),
        Ok(n) => format!("answered {:?}", String::from_utf8_lossy(&buf[..n])),
    }
}

/// A certificate this TLS stack cannot take a handshake signature from (an
/// X.509 v1 one here; an RSA key under 2048 bits is the verifier's unit test)
/// is refused in the handshake in either mode; its line says
/// `unsupported-cert`, not `no-key`, which would have the operator suspect a
/// stolen certificate.
#[tokio::test]
async fn a_certificate_the_tls_stack_cannot_use_is_named_unsupported_not_no_key() {
    crate::util::real::require("curl");
    crate::util::real::require("openssl");
    let backend = crate::util::backend::Backend::start().await;
    let setup = Setup::new();
    let d = setup.dir.path();
    let ssl = |args: &[&str]| crate::util::openssl::openssl(args, d);
    ssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "oca.key",
        "-out",
        "oca.crt",
        "-days",
        "30",
        "-subj",
        "/CN=openssl-clinic-ca",
    ]);
    // no extensions: OpenSSL makes an X.509 v1 certificate
    ssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "v1.key",
        "-out",
        "v1.csr",
        "-subj",
        "/CN=v1-user",
    ]);
    ssl(&[
        "x509",
        "-req",
        "-in",
        "v1.csr",
        "-CA",
        "oca.crt",
        "-CAkey",
        "oca.key",
        "-set_serial",
        "0x2040",
        "-days",
        "30",
        "-out",
        "v1.crt",
    ]);
    let conf = setup.write_config(&backend.url());
    let mut text = std::fs::read_to_string(&conf).unwrap();
    text.push_str(&format!("CA_CRT={}\n", d.join("oca.crt").display()));
    std::fs::write(&conf, text).unwrap();
    let mut proxy = crate::util::process::Proc::start(&conf, &[]);
    let addr = proxy.listening();
    let out = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "20", "--cacert"])
        .arg(d.join("ca.crt"))
        .arg("--cert")
        .arg(d.join("v1.crt"))
        .arg("--key")
        .arg(d.join("v1.key"))
        .arg(format!("https://127.0.0.1:{}/", addr.port()))
        .output()
        .unwrap();
    assert!(!out.status.success(), "a v1 certificate was let in");
    let line = proxy
        .wait_for("client certificate refused in the handshake")
        .unwrap_or_else(|| panic!("no refusal line: {:#?}", proxy.seen));
    assert!(line.contains("cn=v1-user"), "{line}");
    assert!(line.contains("reason=unsupported-cert"), "{line}");
    assert_eq!(backend.count(), 0);
}

/// The clinic's own server certificate shown as a client's (its CA is the
/// accepted one, its purpose is not a client's): the page does not say its
/// CA is not accepted.
#[tokio::test]
async fn a_clinic_certificate_that_is_not_a_client_certificate_gets_a_page_that_says_so() {
    let setup = Setup::new();
    let server = setup.server.clone();
    let env = setup.start().await;
    let answer = env.client(Some(&server)).get(env.addr, "/").await.unwrap();
    assert_eq!(answer.status, 403);
    assert_eq!(answer.header("x-client-cert-error"), Some("unknown-ca"));
    let page = answer.text();
    assert!(page.contains("cannot be used to sign in"), "{page}");
    assert!(!page.contains("is not accepted here"), "{page}");
    assert_eq!(env.backend.count(), 0);
}
