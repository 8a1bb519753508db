//! A certificate revoked while each real client holds a connection: the CRL
//! in CA_CRL is rewritten with user1's serial and the proxy reloads (SIGHUP).
//! The client's next request on the same open connection gets the `revoked`
//! answer, and an open push WebSocket is closed with 1008 (policy
//! violation); nothing more reaches WebORCA.

use serde_json::Value;

use crate::util::push::{PushClient, PushProxy};
use crate::util::real::{Stepped, java, ruby};

/// One request, a revocation, a second request on the same connection.
async fn request_after_revocation(
    run: &mut PushProxy,
    cmd: &mut tokio::process::Command,
) -> (Value, Value) {
    let mut client = Stepped::spawn(cmd);
    let first = client.next().await;
    assert_eq!(first["status"], 200, "before the revocation: {first}");
    let allowed = run.backend.count();
    run.revoke_user1();
    client.go_on().await;
    let second = client.next().await;
    client.finish().await;
    assert_eq!(second["status"], 403, "after the revocation: {second}");
    assert_eq!(second["cert_error"], "revoked", "{second}");
    assert_eq!(
        run.backend.count(),
        allowed,
        "a request of the revoked certificate reached WebORCA"
    );
    (first, second)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn java_keep_alive_request_after_revocation_gets_revoked_over_http1() {
    // HTTP/1.1 only: JDK 17's HttpClient fails every stream of a connection on
    // any GOAWAY, also one that follows the page, so over HTTP/2 it may report
    // "GOAWAY received" instead of the page (the Rust client's HTTP/2 case is
    // in open_connections.rs).
    for version in ["HTTP_1_1"] {
        let mut run = PushProxy::start_with_crl().await;
        let pass = run.setup.dir.path().join("000003__JP_orca_user1.pass");
        let url = format!(
            "https://localhost:{}/api01rv2/system01lstv2",
            run.addr.port()
        );
        let mut cmd = java("twice").await;
        cmd.arg(&url)
            .arg(run.ca())
            .arg(&run.files.p12)
            .arg(&pass)
            .arg(version);
        let (first, second) = request_after_revocation(&mut run, &mut cmd).await;
        assert_eq!(first["version"], version);
        assert_eq!(second["version"], version);
        // one connection: both requests came from the same client port
        let a = run.access_peer("/api01rv2/system01lstv2?req=0");
        let b = run.access_peer("/api01rv2/system01lstv2?req=1");
        assert_eq!(
            a, b,
            "{version}: the second request came on a new connection"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ruby_keep_alive_request_after_revocation_gets_revoked() {
    let mut run = PushProxy::start_with_crl().await;
    let url = format!(
        "https://localhost:{}/api01rv2/patientlst2v2?class=01",
        run.addr.port()
    );
    let mut cmd = ruby("orca_api.rb");
    cmd.arg(&url)
        .arg(run.ca())
        .arg("pem")
        .arg(&run.files.crt)
        .arg(&run.files.pem)
        .arg("any")
        .arg("keepalive");
    let (first, second) = request_after_revocation(&mut run, &mut cmd).await;
    assert_eq!(
        first["local_port"], second["local_port"],
        "not one connection"
    );
}

/// Subscribes, revokes user1, and expects the proxy to close with 1008.
async fn push_closed_on_revocation(mut run: PushProxy, mut ws: PushClient) {
    ws.connected().await;
    ws.subscribe().await;
    run.revoke_user1();
    ws.command("wait_close").await;
    let end = ws.report().await;
    assert_eq!(
        end["closed"]["code"], 1008,
        "the push WebSocket of a revoked certificate was not closed with 1008: {end}"
    );
    assert_eq!(run.backend.count(), 1, "no new connection reached WebORCA");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn java_websocket_is_closed_with_1008_on_revocation() {
    let run = PushProxy::start_with_crl().await;
    let ws = run.java_client().await;
    push_closed_on_revocation(run, ws).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ruby_push_client_is_closed_with_1008_on_revocation() {
    let run = PushProxy::start_with_crl().await;
    let ws = run.ruby_client();
    push_closed_on_revocation(run, ws).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_push_client_is_closed_with_1008_on_revocation() {
    let run = PushProxy::start_with_crl().await;
    let ws = run.python_client();
    push_closed_on_revocation(run, ws).await;
}
