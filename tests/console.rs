//! The operator console after real traffic: allowed requests, one client of
//! each refusal reason, a reload, a client certificate inside
//! CERT_WARN_DAYS and a CN that is HTML; then the page at `/` on
//! STATUS_LISTEN is parsed (scraper) and each fact is read from its table.
//! And the console on the main port: ADMIN_CN only, the reload button
//! same-origin only, nothing under its path ever forwarded.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use scraper::{ElementRef, Html, Selector};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::util::backend::Backend;
use crate::util::client::{Answer, Client};
use crate::util::env::Setup;
use crate::util::pki::{Ca, Leaf, write};
use crate::util::process::Proc;

pub const SCRIPT_CN: &str = "<script>alert(1)</script>";
pub const ADMIN: &str = "/.well-known/weborca-mtls-proxy/";
pub const RELOAD: &str = "/.well-known/weborca-mtls-proxy/reload";

/// A plain HTTP/1.0 GET to the status listener: (status code, body).
pub async fn status_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = Vec::new();
    tcp.read_to_end(&mut out).await.unwrap();
    let out = String::from_utf8(out).expect("UTF-8 page");
    let code = out[9..12].parse().unwrap();
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

fn sel(s: &str) -> Selector {
    Selector::parse(s).unwrap()
}

/// The text of an element, trimmed.
fn text(e: ElementRef<'_>) -> String {
    e.text().collect::<String>().trim().to_string()
}

/// The text of the first `css` below `e`.
fn cell(e: ElementRef<'_>, css: &str) -> String {
    text(
        e.select(&sel(css))
            .next()
            .unwrap_or_else(|| panic!("no {css} in {}", e.html())),
    )
}

fn classes(e: ElementRef<'_>) -> Vec<String> {
    e.value().classes().map(str::to_string).collect()
}

/// A test's proxy process and what it was started with.
pub struct Console {
    pub proc: Proc,
    pub addr: SocketAddr,
    pub status: SocketAddr,
    pub backend: Backend,
    pub ca: Ca,
    pub user1: Leaf,
    pub admin: Leaf,
    pub soon: Leaf,
    pub script: Leaf,
    pub revoked: Leaf,
    pub expired: Leaf,
    pub intruder: Leaf,
    pub stranger: Leaf,
    pub dir: tempfile::TempDir,
}

/// The proxy as a process (so SIGHUP and the reload button run the real
/// reloader), a server certificate inside CERT_WARN_DAYS, a CRL past its
/// nextUpdate (CRL_STALE=warn), ALLOW_CN, ADMIN_CN=clinic-admin, and an
/// `nft` that does not exist (the guard's state is then "unknown").
pub async fn start() -> Console {
    let backend = Backend::start().await;
    let mut setup = Setup::new();
    setup.server = setup.ca.server(&["localhost", "127.0.0.1"], 20);
    let ca = &setup.ca;
    let admin = ca.client("clinic-admin");
    let soon = ca.client_valid("soon-user", -1, 10);
    let script = ca.client(SCRIPT_CN);
    let revoked = ca.client("revoked-user");
    let expired = ca.client_valid("expired-user", -10, -1);
    let intruder = ca.client("intruder");
    let stranger = Ca::new("other-ca").client("stranger");
    let crl = write(setup.dir.path(), "ca.crl", &ca.stale_crl(&[revoked.serial]));
    setup.conf.push(format!("CA_CRL={}", crl.display()));
    setup.conf.push("STATUS_LISTEN=127.0.0.1:0".into());
    setup.conf.push(format!(
        "ALLOW_CN='user1,clinic-admin,soon-user,{SCRIPT_CN},revoked-user,expired-user,stranger'"
    ));
    setup.conf.push("ADMIN_CN=clinic-admin".into());
    let conf = setup.write_config(&backend.url());
    let nft = setup.dir.path().join("no-such-nft");
    let mut proc = Proc::start_with_env(&conf, &[], &[("NFT", nft.to_str().unwrap())]);
    let addr = proc.listening();
    let line = proc
        .wait_for("status on http://")
        .unwrap_or_else(|| panic!("no status line: {:#?}", proc.seen));
    let status = line
        .trim_start_matches("status on http://")
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let Setup { dir, ca, user1, .. } = setup;
    Console {
        proc,
        addr,
        status,
        backend,
        ca,
        user1,
        admin,
        soon,
        script,
        revoked,
        expired,
        intruder,
        stranger,
        dir,
    }
}

impl Console {
    pub fn client(&self, leaf: Option<&Leaf>) -> Client {
        Client::h1(&self.ca.pem, leaf)
    }

    /// The console page on STATUS_LISTEN, once the guard has been looked at
    /// (the program looks at start-up, off the request path).
    pub async fn page(&self) -> Html {
        for _ in 0..100 {
            let (code, body) = status_get(self.status, "/").await;
            assert_eq!(code, 200, "{body}");
            let doc = Html::parse_document(&body);
            let guard = doc.select(&sel("#guard td.detail")).next().map(text);
            if guard.is_some_and(|g| !g.contains("not looked at yet")) {
                return doc;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("the guard was never looked at");
    }
}

async fn post(client: &Client, addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Answer {
    let mut req = http::Request::post(path);
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req = req.header("host", "localhost");
    }
    let mut req = req
        .header("accept", "text/html")
        .header("content-type", "application/x-www-form-urlencoded");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    client
        .send(addr, req.body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap()
}

#[tokio::test]
async fn the_console_shows_each_fact_of_real_traffic() {
    let mut c = start().await;
    // allowed: user1 three times, the expiring and the HTML-named client once
    for leaf in [&c.user1, &c.user1, &c.user1, &c.soon, &c.script] {
        let a = c.client(Some(leaf)).get(c.addr, "/").await.unwrap();
        assert_eq!(a.status, 200, "{}: {}", leaf.cn, a.text());
    }
    // one client of each refusal reason
    let refused: [(Option<&Leaf>, &str); 5] = [
        (None, "missing"),
        (Some(&c.stranger), "unknown-ca"),
        (Some(&c.revoked), "revoked"),
        (Some(&c.expired), "expired"),
        (Some(&c.intruder), "not-allowed"),
    ];
    for (leaf, reason) in refused {
        let a = c.client(leaf).get(c.addr, "/").await.unwrap();
        assert_eq!(a.status, 403);
        assert_eq!(a.header("x-client-cert-error"), Some(reason));
    }
    assert_eq!(
        c.backend.count(),
        5,
        "only the allowed requests reach WebORCA"
    );
    c.proc.signal("HUP");
    c.proc
        .wait_for("reload: ok")
        .unwrap_or_else(|| panic!("no reload: {:#?}", c.proc.seen));

    let doc = c.page().await;
    // the page refreshes itself and needs no script: the HTML CN is text
    let refresh = doc.select(&sel("meta[http-equiv=refresh]")).next().unwrap();
    assert_eq!(refresh.value().attr("content"), Some("30"));
    assert_eq!(doc.select(&sel("script")).count(), 0, "a script element");
    assert_eq!(doc.root_element().value().attr("lang"), Some("ja"));

    // certificates: server inside CERT_WARN_DAYS (amber), CA, CRL past nextUpdate (red)
    let certs: Vec<_> = doc.select(&sel("#certs tr.cert")).collect();
    let kind = |k: &str| {
        *certs
            .iter()
            .find(|r| r.value().attr("data-kind") == Some(k))
            .unwrap_or_else(|| panic!("no {k} row"))
    };
    let server = kind("server");
    assert_eq!(cell(server, "td.subject"), "/C=JP/O=orca/CN=localhost");
    assert_eq!(cell(server, "td.days"), "19");
    assert!(
        classes(server).contains(&"warn".into()),
        "{}",
        server.html()
    );
    let ca = kind("ca");
    assert_eq!(cell(ca, "td.subject"), "/C=JP/O=orca/CN=test-ca");
    assert!(classes(ca).contains(&"ok".into()));
    let crl = kind("crl");
    assert!(cell(crl, "td.days").parse::<i64>().unwrap() < 0);
    assert!(classes(crl).contains(&"expired".into()), "{}", crl.html());

    // WebORCA answers; nft is missing: the guard is unknown, the port loopback only
    let backend = doc.select(&sel("#backend")).next().unwrap();
    assert!(classes(backend).contains(&"ok".into()));
    assert!(cell(backend, "td.detail").contains(&c.backend.url()));
    let guard = doc.select(&sel("#guard")).next().unwrap();
    assert_eq!(cell(guard, "td.state .code"), "unknown");
    assert_eq!(cell(guard, "td.state"), "不明 / unknown", "Japanese first");
    assert!(cell(guard, "td.detail").contains("no-such-nft"));
    assert!(cell(guard, ".exposure").contains("loopback only"));

    // the reload
    let reload = doc.select(&sel("#reload")).next().unwrap();
    assert_eq!(cell(reload, ".result .code"), "ok");
    assert!(cell(reload, ".message").starts_with("SIGHUP"));

    // clients seen: by CN
    let clients: BTreeMap<String, ElementRef<'_>> = doc
        .select(&sel("#clients tr.client"))
        .map(|r| (cell(r, "td.cn"), r))
        .collect();
    assert_eq!(
        clients.keys().cloned().collect::<Vec<_>>(),
        [SCRIPT_CN, "soon-user", "user1"],
        "only verified clients are listed"
    );
    let user1 = clients["user1"];
    assert_eq!(cell(user1, "td.serial"), format!("{:02x}", c.user1.serial));
    assert_eq!(cell(user1, "td.requests"), "3");
    assert!(cell(user1, "td.address").starts_with("127.0.0.1:"));
    assert!(cell(user1, "td.days").parse::<i64>().unwrap() > 300);
    assert!(classes(user1).contains(&"ok".into()));
    let soon = clients["soon-user"];
    assert_eq!(cell(soon, "td.days"), "9");
    assert!(classes(soon).contains(&"warn".into()), "{}", soon.html());
    assert_eq!(cell(clients[SCRIPT_CN], "td.requests"), "1");
    assert_eq!(cell(clients[SCRIPT_CN], "td.cn"), SCRIPT_CN);

    // refusals: each reason once, with the address and the subject
    let refusals: BTreeMap<String, ElementRef<'_>> = doc
        .select(&sel("#refusals tr.refusal"))
        .map(|r| (cell(r, "td.reason .code"), r))
        .collect();
    assert_eq!(
        refusals.keys().map(String::as_str).collect::<Vec<_>>(),
        ["expired", "missing", "not-allowed", "revoked", "unknown-ca"]
    );
    assert_eq!(doc.select(&sel("#refusals tr.refusal")).count(), 5);
    assert_eq!(cell(refusals["revoked"], "td.reason"), "失効済み / revoked");
    assert_eq!(cell(refusals["missing"], "td.subject"), "-");
    assert_eq!(
        cell(refusals["revoked"], "td.subject"),
        "/C=JP/O=orca/CN=revoked-user"
    );
    assert_eq!(
        cell(refusals["unknown-ca"], "td.subject"),
        "/C=JP/O=orca/CN=stranger"
    );
    for r in refusals.values() {
        assert!(cell(*r, "td.address").starts_with("127.0.0.1:"));
    }

    // the chart: ten requests answered (five forwarded, five refusal pages), five refusals
    let sum = |css: &str| -> u64 {
        doc.select(&sel(css))
            .map(|r| {
                r.value()
                    .attr("data-count")
                    .unwrap()
                    .parse::<u64>()
                    .unwrap()
            })
            .sum()
    };
    assert_eq!(doc.select(&sel("svg#chart")).count(), 1);
    assert_eq!(sum("svg#chart rect.requests"), 10);
    assert_eq!(sum("svg#chart rect.refusals"), 5);
}

#[tokio::test]
async fn the_console_on_the_main_port_is_for_admin_cn_only_and_never_forwarded() {
    let mut c = start().await;
    let admin = c.client(Some(&c.admin));
    let user = c.client(Some(&c.user1));
    let page = admin.get(c.addr, ADMIN).await.unwrap();
    assert_eq!(page.status, 200, "{}", page.text());
    assert!(
        page.header("content-security-policy")
            .is_some_and(|p| p.contains("default-src 'none'")),
        "{:?}",
        page.headers
    );
    let doc = Html::parse_document(&page.text());
    assert_eq!(doc.select(&sel("#certs tr.cert")).count(), 3);
    let form = doc.select(&sel("form#reload-form")).next().unwrap();
    assert_eq!(form.value().attr("method"), Some("post"));
    assert_eq!(form.value().attr("action"), Some(RELOAD));
    assert_eq!(doc.select(&sel("script")).count(), 0);
    // without the slash: to the console
    let bare = admin
        .get(c.addr, ADMIN.trim_end_matches('/'))
        .await
        .unwrap();
    assert_eq!(bare.status, 301);
    assert_eq!(bare.header("location"), Some(ADMIN));

    // every other certificate: not-permitted, however the path is spelled
    for path in [
        ADMIN,
        RELOAD,
        "/.well-known//weborca-mtls-proxy/",
        "/x/../.well-known/weborca-mtls-proxy/",
        "/.well-known/weborca%2Dmtls-proxy/",
    ] {
        let a = user.get(c.addr, path).await.unwrap();
        assert_eq!(a.status, 403, "{path}");
        assert_eq!(
            a.header("x-client-cert-error"),
            Some("not-permitted"),
            "{path}"
        );
        let refused = Html::parse_document(&a.text());
        assert!(text(refused.root_element()).contains("/C=JP/O=orca/CN=user1"));
    }
    let a = post(&user, c.addr, RELOAD, &[("origin", "https://localhost")]).await;
    assert_eq!(a.status, 403);
    assert_eq!(a.header("x-client-cert-error"), Some("not-permitted"));

    // the reload button: refused from another origin or without one
    for headers in [
        &[][..],
        &[("origin", "https://evil.example")][..],
        &[("sec-fetch-site", "cross-site")][..],
        &[("origin", "null"), ("sec-fetch-site", "same-origin")][..],
    ] {
        let a = post(&admin, c.addr, RELOAD, headers).await;
        assert_eq!(a.status, 403, "{headers:?}: {}", a.text());
    }
    // an Origin equal to a Host that is not this server's name (DNS
    // rebinding): the Host is the client's to write, so it proves nothing
    for headers in [
        &[("host", "evil.example"), ("origin", "https://evil.example")][..],
        &[
            ("host", "evil.example:8443"),
            ("origin", "https://evil.example:8443"),
        ][..],
        &[("host", "evil.example"), ("sec-fetch-site", "same-origin")][..],
    ] {
        let a = post(&admin, c.addr, RELOAD, headers).await;
        assert_eq!(a.status, 403, "{headers:?}: {}", a.text());
        assert!(
            a.text().contains("the Host is this server's name"),
            "{headers:?}: {}",
            a.text()
        );
    }
    assert!(
        !c.proc.seen.iter().any(|l| l.contains("reload (console")),
        "a refused press reloaded"
    );
    // from the console's own origin: the same reload as SIGHUP, its result shown
    let by_ip = c.addr.to_string();
    let by_ip_origin = format!("https://{by_ip}");
    for headers in [
        &[("origin", "https://localhost")][..],
        &[("sec-fetch-site", "same-origin")][..],
        // an address the server certificate names, with its port
        &[("host", by_ip.as_str()), ("origin", by_ip_origin.as_str())][..],
    ] {
        let a = post(&admin, c.addr, RELOAD, headers).await;
        assert_eq!(a.status, 200, "{headers:?}: {}", a.text());
        let doc = Html::parse_document(&a.text());
        let result = doc.select(&sel("#reload-result")).next().unwrap();
        assert!(classes(result).contains(&"ok".into()), "{}", result.html());
        assert!(cell(result, ".message").contains("console reload button, CN=clinic-admin"));
        c.proc
            .wait_for("reload (console reload button, CN=clinic-admin)")
            .unwrap_or_else(|| panic!("no reload logged: {:#?}", c.proc.seen));
    }
    assert_eq!(
        c.backend.count(),
        0,
        "nothing under the console's path reached WebORCA"
    );
    // the rest of the site still is WebORCA's
    assert_eq!(user.get(c.addr, "/").await.unwrap().status, 200);
    assert_eq!(c.backend.count(), 1);
    // the refused openings are on the console: five GETs and one POST by user1
    let doc = c.page().await;
    let rows: Vec<(String, String)> = doc
        .select(&sel("#refusals tr.refusal"))
        .map(|r| (cell(r, "td.reason .code"), cell(r, "td.subject")))
        .collect();
    assert_eq!(
        rows,
        vec![
            (
                "not-permitted".to_string(),
                "/C=JP/O=orca/CN=user1".to_string()
            );
            6
        ]
    );
    // WebORCA stops a moment after it answered (above): the admin's page
    // says so at once, as STATUS_LISTEN's does
    std::mem::replace(&mut c.backend, Backend::start().await)
        .stop()
        .await;
    let page = admin.get(c.addr, ADMIN).await.unwrap();
    let doc = Html::parse_document(&page.text());
    let backend = doc.select(&sel("#backend")).next().unwrap();
    assert!(
        classes(backend).contains(&"bad".into()),
        "{}",
        backend.html()
    );
}

#[tokio::test]
async fn variant_spellings_of_the_console_path_never_reach_weborca() {
    let c = start().await;
    let admin = c.client(Some(&c.admin));
    let user = c.client(Some(&c.user1));
    let spellings = [
        "/.well-known/weborca-mtls-proxy;x/",
        "/.well-known/weborca-mtls-proxy;x",
        "/.well-known;x/weborca-mtls-proxy/",
        "/.well-known/weborca-mtls-proxyjunk/",
        "/.well-known/weborca-mtls-proxy.json",
        "/%2ewell-known/weborca-mtls-proxy%3bx/",
        "/%252ewell-known/weborca-mtls-proxy/",
        "/.WELL-KNOWN/WebORCA-mTLS-Proxy/",
        "/x/..;/.well-known/weborca-mtls-proxy/reload",
        "/.well-known/weborca-mtls-proxy%00/",
    ];
    for path in spellings {
        let a = user.get(c.addr, path).await.unwrap();
        assert_eq!(a.status, 403, "{path}: {}", a.text());
        assert_eq!(
            a.header("x-client-cert-error"),
            Some("not-permitted"),
            "{path}"
        );
        let a = admin.get(c.addr, path).await.unwrap();
        assert!(
            [200, 301, 404].contains(&a.status.as_u16()),
            "{path}: {} {}",
            a.status,
            a.text()
        );
        let a = post(&user, c.addr, path, &[("origin", "https://localhost")]).await;
        assert_eq!(a.status, 403, "{path}: {}", a.text());
    }
    assert_eq!(
        c.backend.count(),
        0,
        "a spelling of the console's path reached WebORCA"
    );
    // the check is not so wide that WebORCA's own paths are kept from it
    for path in ["/.well-known/other", "/weborca-mtls-proxy/", "/api01rv2/x"] {
        assert_eq!(user.get(c.addr, path).await.unwrap().status, 200, "{path}");
    }
    assert_eq!(c.backend.count(), 3);
}

#[tokio::test]
async fn a_broken_reload_from_the_button_shows_its_failure() {
    let mut c = start().await;
    let conf = c.dir.path().join("proxy.conf");
    let text = std::fs::read_to_string(&conf).unwrap();
    std::fs::write(&conf, format!("{text}CERT_WARN_DAYS=soon\n")).unwrap();
    let admin = c.client(Some(&c.admin));
    let a = post(&admin, c.addr, RELOAD, &[("origin", "https://localhost")]).await;
    assert_eq!(a.status, 200);
    let doc = Html::parse_document(&a.text());
    let result = doc.select(&sel("#reload-result")).next().unwrap();
    assert!(classes(result).contains(&"bad".into()), "{}", result.html());
    assert!(cell(result, ".message").contains("CERT_WARN_DAYS"));
    c.proc.wait_for("reload refused").unwrap();
    let (_, body) = status_get(c.status, "/").await;
    let doc = Html::parse_document(&body);
    let reload = doc.select(&sel("#reload")).next().unwrap();
    assert_eq!(cell(reload, ".result .code"), "failed");
}

#[tokio::test]
async fn an_error_of_weborca_that_has_since_recovered_is_shown_as_the_last_one() {
    let mut c = start().await;
    let client = c.client(Some(&c.user1));
    // WebORCA goes away: the request fails, and the console names why
    let stand_in = std::mem::replace(&mut c.backend, Backend::start().await);
    let port = stand_in.addr;
    stand_in.stop().await;
    let a = client.get(c.addr, "/api01rv2/system01lstv2").await.unwrap();
    assert_eq!(a.status, 502);
    let doc = c.page().await;
    let row = doc.select(&sel("#backend")).next().unwrap();
    assert!(
        cell(row, "td.state").contains("not answering"),
        "{}",
        text(row)
    );
    assert!(
        !cell(row, "td.detail").contains("last error"),
        "{}",
        text(row)
    );
    // ... and comes back on its port: answering, the error said to be past
    c.backend = Backend::start_on(port).await;
    let a = client.get(c.addr, "/api01rv2/system01lstv2").await.unwrap();
    assert_eq!(a.status, 200);
    let doc = c.page().await;
    let row = doc.select(&sel("#backend")).next().unwrap();
    assert!(
        !cell(row, "td.state").contains("not answering"),
        "{}",
        text(row)
    );
    assert!(
        cell(row, "td.detail").contains("直近のエラー / last error: "),
        "{}",
        text(row)
    );
}
