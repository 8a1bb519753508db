//! JSON log lines: valid JSON with the text line's fields by name, whatever a
//! certificate's CN holds.

use std::sync::{Arc, Mutex};

use serde_json::Value;
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

use super::JsonLine;

/// Keeps each event's JSON line.
struct Capture(Arc<Mutex<Vec<String>>>);

impl<S: Subscriber> Layer<S> for Capture {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        self.0.lock().unwrap().push(JsonLine::of(event).to_json());
    }
}

fn lines_of(log: impl FnOnce()) -> Vec<Value> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let subscriber = tracing_subscriber::registry().with(Capture(lines.clone()));
    tracing::subscriber::with_default(subscriber, log);
    let lines = lines.lock().unwrap();
    lines
        .iter()
        .map(|l| {
            assert!(!l.contains('\n'), "one line: {l:?}");
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))
        })
        .collect()
}

#[test]
fn access_line_is_json_with_the_text_lines_fields() {
    let cn = "Dr. \"Yamada\"\n2024/01/01 00:00:00 FORGED\u{1}\t<b>";
    let peer: std::net::SocketAddr = "192.0.2.7:50123".parse().unwrap();
    let lines = lines_of(|| {
        tracing::info!(
            name: "access",
            target: "access",
            addr = %peer,
            cn = cn,
            serial = "0a1b",
            method = "GET",
            path = "/api01rv2/patientgetv2?id=1",
            version = ?http::Version::HTTP_11,
            status = 200u64,
            bytes = 1234u64,
            duration_ms = 4.5,
            rule = "policy.conf:12",
            "the text line"
        );
    });
    let line = &lines[0];
    assert_eq!(line["event"], "access");
    assert_eq!(line["level"], "info");
    assert_eq!(line["addr"], "192.0.2.7:50123");
    assert_eq!(line["cn"], cn, "the CN comes back exactly");
    assert_eq!(line["serial"], "0a1b");
    assert_eq!(line["method"], "GET");
    assert_eq!(line["path"], "/api01rv2/patientgetv2?id=1");
    assert_eq!(line["version"], "HTTP/1.1");
    assert_eq!(line["status"], 200);
    assert_eq!(line["bytes"], 1234);
    assert_eq!(line["duration_ms"], 4.5);
    // A field this file does not know keeps its name.
    assert_eq!(line["rule"], "policy.conf:12");
    assert!(line.get("msg").is_none(), "{line}");
    let time = line["time"].as_str().unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(time).is_ok(),
        "time {time:?} is RFC 3339"
    );
}

#[test]
fn other_lines_keep_their_text_in_msg() {
    let lines = lines_of(|| {
        tracing::info!("CA_CRT ...file exists");
        tracing::warn!(name: "refused", peer = "[::1]:4000", reason = "revoked", subject = "/CN=\"x\"", "client certificate refused: revoked");
    });
    assert_eq!(lines[0]["msg"], "CA_CRT ...file exists");
    assert_eq!(lines[0]["event"], "log");
    assert_eq!(lines[1]["event"], "refused");
    assert_eq!(lines[1]["level"], "warn");
    assert_eq!(lines[1]["addr"], "[::1]:4000");
    assert_eq!(lines[1]["reason"], "revoked");
    assert_eq!(lines[1]["subject"], "/CN=\"x\"");
    assert_eq!(lines[1]["msg"], "client certificate refused: revoked");
}
