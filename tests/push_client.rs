//! A push client written like push-exchanger (Python websockets, client
//! certificate from PEM files, `X-GINBEE-TENANT-ID` and Basic auth, no
//! subprotocol) on `wss://…/ws`, through a certificate reload, a quiet period
//! longer than IDLE_TIMEOUT, and the proxy's shutdown.

use crate::util::push::PushProxy;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_exchanger_like_client_survives_reload_and_quiet_and_sees_a_clean_close() {
    let mut run = PushProxy::start().await;
    let mut ws = run.python_client();

    // connected, as push-exchanger connects
    ws.connected().await;
    ws.subscribe().await;
    run.check_upgrade_seen();

    // a renewed server certificate, SIGHUP, then quiet for longer than
    // IDLE_TIMEOUT: the open push connection stays
    run.reload_and_quiet(&mut ws).await;

    // the proxy stops: the client sees the connection closed, cleanly
    ws.command("wait_close").await;
    run.proxy.signal("TERM");
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
    let (code, lines) = tokio::task::block_in_place(|| run.proxy.exit());
    assert_eq!(code, 0, "{lines:#?}");
}
