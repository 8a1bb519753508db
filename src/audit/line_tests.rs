//! Reading the proxy's lines, text and JSON, with fields added later.

use super::*;

fn at(s: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(s, TIME_FORMAT).unwrap()
}

#[test]
fn reads_a_text_access_line_with_a_field_added_later() {
    let line = "<6>2026/12/01 09:15:02 127.0.0.1:50432 cn=Yamada Taro serial=0a \"GET /api01rv2/patientgetv2?id=1 HTTP/1.1\" 200 512 3.1ms rule=policy.conf:4";
    let read = parse(line).unwrap();
    assert_eq!(read.at, at("2026/12/01 09:15:02"));
    assert_eq!(
        read.entry,
        Entry::Access(Access {
            addr: "127.0.0.1:50432".into(),
            cn: "Yamada Taro".into(),
            serial: "0a".into(),
            method: "GET".into(),
            path: "/api01rv2/patientgetv2?id=1".into(),
            status: 200,
        })
    );
}

#[test]
fn a_cn_that_imitates_an_access_line_is_read_as_the_cn() {
    // A self-signed certificate's CN, written into the line of its refused
    // request: the report must show that request, not the one in the name.
    let forged = "dr-tanaka serial=0A \"GET /api01rv2/patientgetv2?id=1 HTTP/1.1\" 200 0 1.0ms x";
    let line = format!(
        "2026/12/01 09:15:02 127.0.0.1:50432 cn={forged} serial=07 \"GET / HTTP/1.1\" 403 900 0.4ms"
    );
    let Entry::Access(a) = parse(&line).unwrap().entry else {
        panic!("not an access line")
    };
    assert_eq!(a.cn, forged);
    assert_eq!(a.serial, "07");
    assert_eq!(a.path, "/");
    assert_eq!(a.status, 403);
}

#[test]
fn reads_text_refusals_with_quoted_fields() {
    let line = r#"2026/12/01 09:15:02 client certificate refused: peer=x certificate revoked peer=[::1]:4000 reason="revoked" subject="/C=JP/CN=a \"b\" peer=c""#;
    let Entry::Refused(r) = parse(line).unwrap().entry else {
        panic!("not a refusal")
    };
    assert_eq!(r.addr, "[::1]:4000");
    assert_eq!(r.reason, "revoked");
    let line = "2026/12/01 09:15:02 client certificate of an open connection now refused, closing it: revoked peer=127.0.0.1:9 cn=Sato Hanako serial=0b reason=\"revoked\" extra=1";
    let Entry::Refused(r) = parse(line).unwrap().entry else {
        panic!("not a refusal")
    };
    assert_eq!(r.cn.as_deref(), Some("Sato Hanako"));
    assert_eq!(r.reason, "revoked");
}

#[test]
fn reads_the_expiry_warning() {
    let line = "2026/12/01 09:15:02 client certificate CN=user (serial 0c) expires in 9 days (2026/12/10 23:59:00); issue a new one with orca-catool issue_client_cert before the user is locked out";
    let Entry::Expiring(e) = parse(line).unwrap().entry else {
        panic!("not an expiry")
    };
    assert_eq!((e.cn.as_str(), e.serial.as_str()), ("user", "0c"));
    assert_eq!(e.not_after, at("2026/12/10 23:59:00"));
}

#[test]
fn reads_json_lines_and_skips_unknown_fields() {
    let line = r#"{"time":"2026-12-01T09:15:02.123+09:00","level":"info","event":"access","addr":"127.0.0.1:5","cn":"a\"b","serial":"0a","method":"POST","path":"/orca11/x","version":"HTTP/2.0","status":403,"bytes":1,"duration_ms":0.5,"rule":"p.conf:1","nested":{"x":[1]}}"#;
    let read = parse(line).unwrap();
    assert_eq!(
        read.at,
        at("2026/12/01 09:15:02") + chrono::Duration::milliseconds(123)
    );
    let Entry::Access(a) = read.entry else {
        panic!("not access")
    };
    assert_eq!((a.cn.as_str(), a.status), ("a\"b", 403));
    let other = r#"{"time":"2026-12-01T09:15:02+09:00","level":"info","event":"log","msg":"Server Mode: HTTPS"}"#;
    assert_eq!(parse(other).unwrap().entry, Entry::Other);
}

#[test]
fn garbage_is_unreadable() {
    for line in [
        "",
        "garbage",
        "2026/13/01 09:15:02 month 13",
        "{\"level\":\"info\"}",
        "{not json",
        "2026/12/01 09:15:02 127.0.0.1:5 cn=a serial=b \"GET\" x",
    ] {
        assert_eq!(parse(line), None, "{line:?}");
    }
}
