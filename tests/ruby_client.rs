//! Ruby as the orca-api gem and push-exchanger use it: `Net::HTTP` with
//! `cert`, `key` and `ca_file` from orca-catool's PEM files, and from the
//! `.p12` through `OpenSSL::PKCS12` (tests/clients/orca_api.rb), an API call
//! with a JSON body; a push client on the websocket library
//! (tests/clients/push_client.rb) that subscribes, receives the pushed
//! event, survives a reload and a quiet period, and closes cleanly.

use sha2::{Digest, Sha256};

use crate::util::backend::hex;
use crate::util::env::Env;
use crate::util::push::PushProxy;
use crate::util::real::{bounded, catool_files, json_lines, ruby};

#[tokio::test]
async fn ruby_net_http_with_pem_and_with_p12_posts_json() {
    let env = Env::start().await;
    let files = catool_files(env.dir.path(), 3, &env.user1, &env.ca.pem).await;
    let pass = env.path("000003__JP_orca_user1.pass");
    let url = format!(
        "https://localhost:{}/api01rv2/patientlst2v2?class=01&format=json",
        env.addr.port()
    );
    for (kind, a, b) in [("pem", &files.crt, &files.pem), ("p12", &files.p12, &pass)] {
        let before = env.backend.count();
        let mut cmd = ruby("orca_api.rb");
        cmd.arg(&url)
            .arg(env.path("ca.crt"))
            .arg(kind)
            .arg(a)
            .arg(b);
        let answer = &json_lines(&bounded(60, &mut cmd).await)[0];
        assert_eq!(answer["status"], 200, "{kind}: {answer}");
        assert_eq!(env.backend.count(), before + 1);
        let seen = env.backend.last();
        assert_eq!(seen.method, "POST");
        assert_eq!(
            seen.target,
            "/api01rv2/patientlst2v2?class=01&format=json&conn=0"
        );
        assert_eq!(seen.one("content-type"), Some("application/json"));
        assert_eq!(
            seen.one("authorization"),
            Some("Basic b3JtYXN0ZXI6b3JtYXN0ZXIxMjM=")
        );
        assert_eq!(seen.body_sha256, answer["sent_sha256"], "the body changed");
        assert_eq!(seen.one("x-ssl-client-s-dn"), Some("CN=user1,O=orca,C=JP"));
        let echoed: serde_json::Value =
            serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
        assert_eq!(echoed["body_sha256"], seen.body_sha256);
        assert_ne!(seen.body_sha256, hex(&Sha256::digest(b"")), "no body sent");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ruby_push_client_subscribes_survives_a_reload_and_closes_cleanly() {
    let mut run = PushProxy::start().await;
    let mut ws = run.ruby_client();
    ws.connected().await;
    let (_, event) = ws.subscribe().await;
    assert_eq!(event["data"]["event"], "patient_infomation", "{event}");
    run.check_upgrade_seen();
    run.reload_and_quiet(&mut ws).await;
    ws.close_cleanly().await;
}
