//! The count: a refusal page is told from WebORCA's own 403, and the tables
//! stay within their caps.

use super::*;
use crate::audit::line::parse;

fn count(lines: &[String]) -> Tally {
    let mut tally = Tally::new(Filter::default());
    for l in lines {
        tally.add(parse(l), || "test".to_string());
    }
    tally
}

fn access(port: u32, cn: &str, path: &str, status: u16) -> String {
    format!(
        "2026/12/01 09:00:00 127.0.0.1:{port} cn={cn} serial=0a \"GET {path} HTTP/1.1\" {status} 10 1.0ms"
    )
}

#[test]
fn only_a_403_after_a_refusal_is_a_refused_request() {
    let tally = count(&[
        "2026/12/01 09:00:00 client certificate refused: revoked peer=127.0.0.1:5000 reason=\"revoked\" subject=\"/CN=u\"".to_string(),
        access(5000, "u", "/api01rv2/patientgetv2?id=1", 403),
        access(5001, "u", "/api01rv2/patientgetv2?id=2", 403),
        access(5002, "u", "/api01rv2/patientgetv2?id=3", 200),
    ]);
    let day = tally.users.values().next().unwrap();
    assert_eq!((day.requests, day.refused), (3, 1));
    // the refused call never reached WebORCA; WebORCA's own 403 did
    assert_eq!(tally.api["/api01rv2/patientgetv2"], 2);
}

#[test]
fn many_addresses_are_counted_under_other() {
    let lines: Vec<String> = (0..MAX_REFUSAL_KEYS + 5)
        .map(|i| {
            format!(
                "2026/12/01 09:00:00 client certificate refused in the handshake: x peer=10.{}.{}.{}:1 reason=\"missing\"",
                i >> 16,
                (i >> 8) & 255,
                i & 255
            )
        })
        .collect();
    let tally = count(&lines);
    assert_eq!(tally.refused.len(), MAX_REFUSAL_KEYS + 1);
    let other = &tally.refused[&("missing".to_string(), OTHER.to_string())];
    assert_eq!(other.count, 5);
    let total: u64 = tally.refused.values().map(|r| r.count).sum();
    assert_eq!(total, lines.len() as u64);
}

#[test]
fn api_names_are_the_orca_paths_without_query() {
    assert_eq!(
        api_name("/api01rv2/patientgetv2?id=1"),
        Some("/api01rv2/patientgetv2")
    );
    assert_eq!(
        api_name("/orca11/acceptmodv2?class=01"),
        Some("/orca11/acceptmodv2")
    );
    assert_eq!(api_name("/api21/medicalmodv2"), Some("/api21/medicalmodv2"));
    assert_eq!(api_name("/blobapi/1"), Some("/blobapi/1"));
    assert_eq!(api_name("/api01rv2"), Some("/api01rv2"));
    for other in [
        "/",
        "/ws",
        "/apix/y",
        "/orca/",
        "/index.html?api01rv2",
        "/api01rv2x",
        "/api01rv2x/patientgetv2",
        "/api01rv2;x/y",
        "/api01rv2%2fx",
        "/api01rv/x",
        "/api01rvx2/x",
        "/orca11x/y",
        "/blobapix/1",
    ] {
        assert_eq!(api_name(other), None, "{other}");
    }
}

#[test]
fn a_request_the_proxy_refused_is_no_api_call() {
    let tally = count(&[
        // an unsafe spelling: 400 from the proxy, logged before its access line
        "2026/12/01 09:00:00 request refused with 400, not forwarded: encoded slash peer=127.0.0.1:6000 cn=u path=\"/api01rv2%2fx\"".to_string(),
        access(6000, "u", "/api01rv2%2fpatientgetv2", 400),
        // ACCESS_POLICY's 403
        "2026/12/01 09:00:00 ACCESS_POLICY refused GET /api01rv2/patientgetv2: no rule peer=127.0.0.1:6001 cn=u reason=\"not-permitted\"".to_string(),
        access(6001, "u", "/api01rv2/patientgetv2", 403),
        // WebORCA's own 400 on a connection nothing refused: it reached WebORCA
        access(6002, "u", "/api01rv2/patientgetv2", 400),
        access(6003, "u", "/api01rv2x", 200),
    ]);
    assert_eq!(
        tally.api.iter().collect::<Vec<_>>(),
        [(&"/api01rv2/patientgetv2".to_string(), &1)]
    );
    let day = tally.users.values().next().unwrap();
    assert_eq!((day.requests, day.refused), (4, 2));
}

/// The regression of a certificate of another CA counted as a clinic user:
/// it carried user1's CN and serial (any CA can issue those, and every
/// orca-catool CA numbers from 01), so its refused request was added to
/// user1's row. It is a row of its own now; user1's own certificate,
/// refused as revoked, stays in user1's row.
#[test]
fn a_certificate_of_another_ca_is_not_counted_as_the_user_it_names() {
    let refusal = |port: u32, reason: &str| {
        format!(
            "2026/12/01 09:00:00 client certificate refused: {reason} peer=127.0.0.1:{port} cn=\"u\" serial=\"0a\" reason=\"{reason}\" subject=\"/CN=u\""
        )
    };
    let tally = count(&[
        access(7000, "u", "/api01rv2/patientgetv2?id=1", 200),
        refusal(7001, "unknown-ca"),
        access(7001, "u", "/api01rv2/patientgetv2?id=2", 403),
        refusal(7002, "revoked"),
        access(7002, "u", "/api01rv2/patientgetv2?id=3", 403),
    ]);
    let rows: Vec<_> = tally
        .users
        .iter()
        .map(|((_, user), d)| {
            (
                user.cn.as_str(),
                user.serial.as_str(),
                user.ca(),
                d.requests,
                d.refused,
            )
        })
        .collect();
    assert_eq!(
        rows,
        [("u", "0a", "CA_CRT", 2, 1), ("u", "0a", "unknown-ca", 1, 1),]
    );
}

/// A port is used again by a later connection: the mark of a refusal hours
/// before on that address and port does not make its 403 a refusal page
/// (nor the certificate one of another CA).
#[test]
fn a_refusal_long_ago_on_the_same_port_does_not_mark_a_later_403() {
    let at = |time: &str, line: String| line.replacen("09:00:00", time, 1);
    let tally = count(&[
        at(
            "09:00:00",
            "2026/12/01 09:00:00 client certificate refused: unknown-ca peer=127.0.0.1:7100 cn=\"u\" serial=\"0a\" reason=\"unknown-ca\" subject=\"/CN=u\"".to_string(),
        ),
        at("09:00:01", access(7100, "u", "/api01rv2/patientgetv2?id=1", 403)),
        at("14:00:00", access(7100, "u", "/api01rv2/patientgetv2?id=2", 403)),
    ]);
    let rows: Vec<_> = tally
        .users
        .iter()
        .map(|((_, user), d)| (user.ca(), d.requests, d.refused))
        .collect();
    assert_eq!(rows, [("CA_CRT", 1, 0), ("unknown-ca", 1, 1)]);
    // WebORCA's own 403 was an API call that reached it
    assert_eq!(tally.api["/api01rv2/patientgetv2"], 1);
}
