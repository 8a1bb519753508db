//! A push client written like push-exchanger (Python websockets, client
//! certificate from PEM files, `X-GINBEE-TENANT-ID` and Basic auth, no
//! subprotocol) on `wss://…/ws`, through a certificate reload, a quiet period
//! longer than IDLE_TIMEOUT, and the proxy's shutdown.

use std::time::Duration;

use tokio::process::Command;

use crate::util::backend::Backend;
use crate::util::env::Setup;
use crate::util::pki::write;
use crate::util::process::Proc;
use crate::util::push::PushClient;
use crate::util::real::{catool_files, repo, venv_python};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_exchanger_like_client_survives_reload_and_quiet_and_sees_a_clean_close() {
    let python = venv_python();
    let backend = Backend::start().await;
    let mut setup = Setup::new();
    setup.conf.push("IDLE_TIMEOUT=1s".into());
    let conf = setup.write_config(&backend.url());
    let mut proxy = Proc::start(&conf, &[]);
    let addr = proxy.listening();
    let files = catool_files(setup.dir.path(), 3, &setup.user1, &setup.ca.pem).await;

    let mut ws = PushClient::spawn(
        Command::new(python)
            .arg(repo().join("tests/py/push_client.py"))
            .arg(format!("wss://127.0.0.1:{}/ws", addr.port()))
            .arg("--ca")
            .arg(setup.dir.path().join("ca.crt"))
            .arg("--cert")
            .arg(&files.crt)
            .arg("--key")
            .arg(&files.pem)
            .args(["--user", "ormaster:ormaster123", "--tenant", "1"])
            .args(["--timeout", "15"]),
    );

    // connected, as push-exchanger connects
    ws.connected().await;
    ws.subscribe().await;
    let seen = backend.last();
    assert_eq!(seen.target, "/ws");
    assert_eq!(seen.one("x-ginbee-tenant-id"), Some("1"));
    assert_eq!(
        seen.one("authorization"),
        Some("Basic b3JtYXN0ZXI6b3JtYXN0ZXIxMjM=")
    );
    assert_eq!(seen.one("sec-websocket-protocol"), None);
    assert_eq!(seen.one("x-ssl-client-s-dn"), Some("CN=user1,O=orca,C=JP"));

    // a renewed server certificate, SIGHUP: the open push connection stays
    let renewed = setup.ca.server(&["localhost", "127.0.0.1"], 3650);
    write(
        setup.dir.path(),
        "000002__JP_orca_localhost.crt",
        &renewed.pem,
    );
    write(
        setup.dir.path(),
        "000002__JP_orca_localhost.pem",
        &renewed.key_pem,
    );
    proxy.signal("HUP");
    let reloaded = tokio::task::block_in_place(|| proxy.wait_for("reload: ok"));
    assert!(reloaded.is_some(), "no reload: {:#?}", proxy.seen);
    ws.subscribe().await;

    // quiet for longer than IDLE_TIMEOUT (1 s): push connections wait for
    // events for hours, the idle timeout is for plain requests
    tokio::time::sleep(Duration::from_millis(2500)).await;
    ws.subscribe().await;
    assert_eq!(backend.count(), 1, "one WebSocket, never reconnected");

    // the proxy stops: the client sees the connection closed, cleanly
    ws.command("wait_close").await;
    proxy.signal("TERM");
    let end = ws.report().await;
    let closed = &end["closed"];
    assert!(closed.is_object(), "the connection did not end: {end}");
    assert!(
        closed["clean"] == true && matches!(closed["code"].as_u64(), Some(1000 | 1001)),
        "On shutdown the push client saw no WebSocket close (a Close frame 1001 'going away', \
         or 1000): {closed}. The proxy ends the tunnel with only a TLS close_notify and TCP FIN \
         (src/proxy.rs spawn_tunnel: client.shutdown() on the shutdown token), so websockets \
         reports code 1006, 'no close frame received', which push-exchanger treats as a \
         dropped connection, not a server going away."
    );
    let (code, lines) = tokio::task::block_in_place(|| proxy.exit());
    assert_eq!(code, 0, "{lines:#?}");
}
