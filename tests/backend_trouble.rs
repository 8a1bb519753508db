//! WebORCA down or slow: a clear 502/504 page, and recovery once it is back.

use crate::util::backend::Backend;
use crate::util::env::Setup;

#[tokio::test]
async fn backend_down_gives_502_naming_the_address_then_recovers() {
    let backend = Backend::start().await;
    let addr = backend.addr;
    let env = Setup::new().start_with_backend(backend).await;
    let client = env.client(Some(&env.user1));
    assert_eq!(client.get(env.addr, "/").await.unwrap().status, 200);
    let env = {
        let mut env = env;
        // stop WebORCA: its listener goes away
        let stopped = std::mem::replace(&mut env.backend, Backend::start().await);
        drop(stopped);
        env
    };
    // the replacement listens elsewhere; the proxy still points at the old port
    let down = client.get(env.addr, "/").await.unwrap();
    assert_eq!(down.status, 502, "{}", down.text());
    let text = down.text();
    assert!(text.contains("WebORCA"));
    assert!(
        text.contains(&addr.to_string()),
        "names where it tried: {text}"
    );
    // WebORCA comes back on its port
    let back = Backend::start_on(addr).await;
    let again = client.get(env.addr, "/").await.unwrap();
    assert_eq!(again.status, 200);
    assert_eq!(back.count(), 1);
}

#[tokio::test]
async fn slow_backend_gives_504() {
    let mut setup = Setup::new();
    setup.conf.push("BACKEND_TIMEOUT=1s".into());
    let env = setup.start().await;
    let answer = env
        .client(Some(&env.user1))
        .get(env.addr, "/slow")
        .await
        .unwrap();
    assert_eq!(answer.status, 504, "{}", answer.text());
    assert!(answer.text().contains("WebORCA"));
    // and the next request is served normally
    assert_eq!(
        env.client(Some(&env.user1))
            .get(env.addr, "/")
            .await
            .unwrap()
            .status,
        200
    );
}
