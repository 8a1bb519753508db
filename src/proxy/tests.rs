//! Unit tests of the forwarder (the parent module).

use super::*;

#[test]
fn hop_by_hop_and_connection_named_headers_are_removed() {
    let mut h = HeaderMap::new();
    h.insert(
        "connection",
        HeaderValue::from_static("keep-alive, X-Secret"),
    );
    h.insert("x-secret", HeaderValue::from_static("1"));
    h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
    h.insert("te", HeaderValue::from_static("trailers"));
    h.insert(
        "authorization",
        HeaderValue::from_static("Basic dXNlcjpwYXNz"),
    );
    strip_hop_by_hop(&mut h);
    assert_eq!(h.len(), 1);
    assert!(h.contains_key("authorization"));
}

fn req(lines: &[(&str, &str)], method: &str, uri: &str, version: Version) -> Request<()> {
    let mut b = Request::builder().method(method).uri(uri).version(version);
    for (n, v) in lines {
        b = b.header(*n, *v);
    }
    b.body(()).unwrap()
}

#[test]
fn requests_that_could_be_read_two_ways_are_refused() {
    let h1 = Version::HTTP_11;
    let host = ("host", "localhost");
    let status = |r: &Request<()>| check_request(r).err().map(|m| m.status.as_u16());
    assert_eq!(status(&req(&[host], "GET", "/", h1)), None);
    assert_eq!(
        status(&req(&[host], "CONNECT", "localhost:443", h1)),
        Some(405)
    );
    assert_eq!(status(&req(&[], "GET", "/", h1)), Some(400));
    assert_eq!(status(&req(&[], "GET", "/", Version::HTTP_10)), None);
    assert_eq!(status(&req(&[host], "GET", "*", h1)), Some(400));
    assert_eq!(status(&req(&[host], "OPTIONS", "*", h1)), None);
    assert_eq!(
        status(&req(&[host, ("host", "b")], "GET", "/", h1)),
        Some(400)
    );
    assert_eq!(status(&req(&[("host", "a/b")], "GET", "/", h1)), Some(400));
    assert_eq!(status(&req(&[host], "GET", "http://evil/", h1)), Some(400));
    assert_eq!(
        status(&req(&[host], "GET", "https://localhost:8000/", h1)),
        None
    );
    assert_eq!(
        status(&req(
            &[("host", "localhost:1")],
            "GET",
            "https://localhost:2/",
            h1
        )),
        Some(400)
    );
    let cl_te = [
        host,
        ("content-length", "3"),
        ("transfer-encoding", "chunked"),
    ];
    assert_eq!(status(&req(&cl_te, "POST", "/", h1)), Some(400));
    let gzip = [host, ("transfer-encoding", "gzip, chunked")];
    assert_eq!(status(&req(&gzip, "POST", "/", h1)), Some(501));
    let two = [host, ("content-length", "3"), ("content-length", "3")];
    assert_eq!(status(&req(&two, "POST", "/", h1)), Some(400));
    let ws = [
        host,
        ("connection", "upgrade"),
        ("upgrade", "websocket"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];
    assert_eq!(status(&req(&ws, "GET", "/ws", h1)), None);
    assert_eq!(status(&req(&ws, "POST", "/ws", h1)), Some(400));
    assert_eq!(status(&req(&ws[..4], "GET", "/ws", h1)), Some(400));
    assert_eq!(status(&req(&ws[..3], "GET", "/ws", h1)), Some(426));
}

#[test]
fn a_connection_s_host_is_parsed_again_unless_it_is_the_one_that_passed() {
    let h1 = Version::HTTP_11;
    let seen = HostSeen::default();
    let status = |host: &str| {
        check_on(&req(&[("host", host)], "GET", "/", h1), &seen)
            .err()
            .map(|m| m.status.as_u16())
    };
    // an invalid one first is not remembered
    assert_eq!(status("a/b"), Some(400));
    assert_eq!(status("localhost:8000"), None);
    assert_eq!(status("localhost:8000"), None, "the same again");
    // any other bytes are checked in full
    for bad in [
        "a/b",
        "localhost:8000@evil",
        "localhost:8000 ",
        "[::1",
        "localhost:abc",
        "localhost:",
    ] {
        assert_eq!(status(bad), Some(400), "{bad:?}");
    }
    assert_eq!(status("other:8000"), None);
    assert_eq!(status("[::1]:8000"), None);
    assert_eq!(status("192.168.1.10"), None);
    assert_eq!(status("localhost:8000"), None);
}

#[test]
fn check_request_tells_a_websocket_handshake() {
    let h1 = Version::HTTP_11;
    let ws = [
        ("host", "localhost"),
        ("connection", "Upgrade"),
        ("upgrade", "websocket"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];
    let upgrade =
        |lines: &[(&str, &str)]| check_request(&req(lines, "GET", "/ws", h1)).map(|c| c.upgrade);
    assert_eq!(upgrade(&ws), Ok(true));
    assert_eq!(upgrade(&ws[..1]), Ok(false));
}

#[test]
fn client_sent_identity_headers_are_recognised_in_any_spelling() {
    for name in [
        "x-ssl-client-verify",
        "x_ssl_client_verify",
        "x-ssl-client-anything",
        "client_cert",
        "x-forwarded-port",
        "x_forwarded_for",
        "forwarded",
        "x-real-ip",
        "remote-user",
        "x_remote_user",
        "x-authenticated-user",
        "x-tls-client-cert",
        "x-mtls-client-cert",
        "cert-subject",
        "x-cert-subject",
        "x-client-cert",
        "x_client_dn",
        "ssl-client-cert",
        "ssl_client_s_dn",
        "x-forwarded-client-cert",
        "client-cert-chain",
        "client_cert_chain",
        "x-amzn-mtls-clientcert",
        "x_amzn_mtls_clientcert_leaf",
        "ssl-client",
        "ssl_client",
        "x-ssl-client",
        "x-ssl",
        "x-client",
        "x-forwarded",
        "x-amzn-mtls",
    ] {
        assert!(is_ours(&HeaderName::from_static(name)), "{name}");
    }
    for name in [
        "authorization",
        "cookie",
        "x-ginbee-tenant-id",
        "x_custom",
        "ssl",
        "x-sslx",
        "ssl-clientx",
    ] {
        assert!(!is_ours(&HeaderName::from_static(name)), "{name}");
    }
}

#[test]
fn websocket_upgrade_needs_both_headers() {
    let mut h = HeaderMap::new();
    h.insert(
        "connection",
        HeaderValue::from_static("keep-alive, Upgrade"),
    );
    assert!(!is_websocket_upgrade(&h));
    h.insert("upgrade", HeaderValue::from_static("WebSocket"));
    assert!(is_websocket_upgrade(&h));
    h.insert("upgrade", HeaderValue::from_static("h2c"));
    assert!(!is_websocket_upgrade(&h));
}
