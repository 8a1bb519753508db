//! The operator console in headless Chromium, driven over the DevTools
//! protocol: on STATUS_LISTEN; on the main port with the administrator's
//! `.p12` imported (the reload button clicked, its result read); refused for
//! a user's `.p12`. Screenshots go to `target/artefacts/console-*.png`.

use crate::browser::{BROWSER, Browser};
use crate::console::{ADMIN, SCRIPT_CN};
use crate::util::cdp::Chromium;
use crate::util::real::{artefacts, catool_files};

#[tokio::test]
async fn chromium_shows_the_console_and_reloads_from_its_button() {
    let _one = BROWSER.lock().await;
    let mut c = crate::console::start().await;
    // traffic for the page to show: two users and a refused stranger
    for leaf in [&c.user1, &c.soon, &c.script] {
        assert_eq!(
            c.client(Some(leaf)).get(c.addr, "/").await.unwrap().status,
            200
        );
    }
    assert_eq!(
        c.client(Some(&c.revoked))
            .get(c.addr, "/")
            .await
            .unwrap()
            .status,
        403
    );
    assert_eq!(c.client(None).get(c.addr, "/").await.unwrap().status, 403);
    let forwarded = c.backend.count();

    let admin_home = Browser::new(&c.ca.pem).await;
    let files = catool_files(c.dir.path(), 7, &c.admin, &c.ca.pem).await;
    admin_home.import_p12(&files).await;
    admin_home.auto_select(c.addr.port());
    let mut chromium = Chromium::start(admin_home.home.path(), &admin_home.policy()).await;

    // STATUS_LISTEN, through the loopback address as an SSH forward gives it
    chromium
        .open(&format!("http://127.0.0.1:{}/", c.status.port()))
        .await;
    let shot = chromium
        .screenshot(&artefacts().join("console-1-status-listen.png"))
        .await;
    assert!(shot.exists());
    chromium
        .screenshot_scaled(&artefacts().join("console-readme.png"), 0.6)
        .await;
    assert_eq!(
        chromium
            .eval("document.querySelectorAll('#clients tr.client').length")
            .await,
        3
    );
    assert_eq!(chromium.eval("document.scripts.length").await, 0);
    let cns = chromium
        .eval("[...document.querySelectorAll('#clients td.cn')].map(e => e.textContent).join('|')")
        .await;
    assert!(cns.as_str().unwrap().contains(SCRIPT_CN), "{cns}");
    assert_eq!(
        chromium
            .eval("document.querySelectorAll('#refusals tr.refusal').length")
            .await,
        2
    );

    // the main port with the administrator's certificate
    let url = format!("https://127.0.0.1:{}{ADMIN}", c.addr.port());
    chromium.open(&url).await;
    chromium
        .screenshot(&artefacts().join("console-2-admin.png"))
        .await;
    assert_eq!(
        chromium
            .eval("document.querySelector('#reload-form') !== null")
            .await,
        true,
        "no reload button"
    );
    chromium.click("#reload-form button").await;
    chromium
        .screenshot(&artefacts().join("console-3-after-reload.png"))
        .await;
    let result = chromium
        .eval("(() => { const r = document.querySelector('#reload-result'); return r ? r.className + ' ' + r.textContent : 'none'; })()")
        .await;
    let result = result.as_str().unwrap();
    assert!(result.contains("ok"), "{result}");
    assert!(
        result.contains("console reload button, CN=clinic-admin"),
        "{result}"
    );
    c.proc
        .wait_for("reload (console reload button, CN=clinic-admin)")
        .unwrap_or_else(|| panic!("the click reloaded nothing: {:#?}", c.proc.seen));
    drop(chromium);

    // a user's certificate: not permitted
    let user_home = Browser::new(&c.ca.pem).await;
    let files = catool_files(c.dir.path(), 8, &c.user1, &c.ca.pem).await;
    user_home.import_p12(&files).await;
    user_home.auto_select(c.addr.port());
    let mut chromium = Chromium::start(user_home.home.path(), &user_home.policy()).await;
    chromium.open(&url).await;
    chromium
        .screenshot(&artefacts().join("console-4-not-permitted.png"))
        .await;
    let body = chromium.eval("document.body.innerText").await;
    let body = body.as_str().unwrap();
    assert!(body.contains("not-permitted"), "{body}");
    assert!(body.contains("CN=user1"), "{body}");
    assert_eq!(
        chromium
            .eval("document.querySelector('#reload-form') === null")
            .await,
        true
    );
    // the browser may ask WebORCA for /favicon.ico; nothing of the console's path
    let seen: Vec<String> = c
        .backend
        .seen
        .lock()
        .unwrap()
        .iter()
        .skip(forwarded)
        .map(|s| s.target.clone())
        .collect();
    assert!(
        seen.iter().all(|t| !t.contains("weborca-mtls-proxy")),
        "the console's path reached WebORCA: {seen:?}"
    );
}
