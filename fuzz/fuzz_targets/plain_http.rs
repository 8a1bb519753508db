//! The first look at a connection and the plain-HTTP answer: arbitrary bytes
//! sent to the TLS port by a client speaking http://. The answer is a
//! redirect to https:// on the same host, a 4xx, or nothing — never a panic,
//! never a Location that could split the response.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use weborca_mtls_proxy::plain::{self, FirstByte};

fuzz_target!(|data: &[u8]| {
    if let Some(&first) = data.first() {
        let kind = plain::sniff(first);
        assert_eq!(kind == FirstByte::Tls, first == 0x16);
        assert_eq!(kind == FirstByte::PlainHttp, first.is_ascii_uppercase());
    }
    // Paused time: a head that never completes meets its timeout at once.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    let answer = rt.block_on(async {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let serving = tokio::spawn(plain::serve(server, Duration::from_millis(100)));
        let _ = client.write_all(data).await;
        let mut answer = Vec::new();
        let _ = client.read_to_end(&mut answer).await;
        let _ = serving.await;
        answer
    });
    check(&answer);
});

/// A response, if any, is one well-formed head whose Location is https://.
fn check(answer: &[u8]) {
    if answer.is_empty() {
        return;
    }
    let end = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete response head");
    let head = std::str::from_utf8(&answer[..end]).expect("an ASCII head");
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| {
            l.strip_prefix("HTTP/1.1 ")
                .or_else(|| l.strip_prefix("HTTP/1.0 "))
        })
        .and_then(|l| l.get(..3))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    assert!(
        matches!(status, 301 | 308 | 400..=499 | 501 | 505),
        "status {status}"
    );
    for line in lines {
        let (name, value) = line.split_once(": ").expect("a header line");
        if name.eq_ignore_ascii_case("location") {
            assert!(matches!(status, 301 | 308));
            assert!(value.starts_with("https://"), "{value}");
            assert!(!value.contains(['\r', '\n', ' ']), "{value:?}");
        }
    }
}
