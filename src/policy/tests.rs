//! The rule file, the normaliser and the decision, without a network; the
//! normaliser's safety is also checked by property: it never panics, and a
//! path it accepts is decided as the backend would route its decoded form.

use std::path::Path;

use chrono::{DateTime, Utc};
use proptest::prelude::*;

use super::*;

fn cert(cn: &str, o: &[&str], ou: &[&str], serial: &str) -> CertInfo {
    CertInfo {
        subject_rfc4514: format!("CN={cn}"),
        issuer_rfc4514: "CN=ca".into(),
        subject_oneline: format!("/CN={cn}"),
        issuer_oneline: "/CN=ca".into(),
        common_name: Some(cn.to_string()),
        organizations: o.iter().map(|s| s.to_string()).collect(),
        organizational_units: ou.iter().map(|s| s.to_string()).collect(),
        serial_hex: serial.to_string(),
        not_before: DateTime::<Utc>::MIN_UTC,
        not_after: DateTime::<Utc>::MAX_UTC,
        sha256_hex: "ab".repeat(32),
        dns_names: Vec::new(),
        ip_addresses: Vec::new(),
    }
}

fn policy(text: &str) -> Policy {
    Policy::from_bytes(Path::new("p.rules"), text.as_bytes().to_vec()).expect("valid policy")
}

fn error(text: &str) -> PolicyError {
    Policy::from_bytes(Path::new("p.rules"), text.as_bytes().to_vec()).expect_err("invalid")
}

const EXAMPLE: &str = "\
# ORCA
/ws         cn:push-exchanger
/api01rv2   ou:api,cn:receipt-printer   GET,POST
/           any
";

#[test]
fn longest_whole_segment_prefix_decides() {
    let p = policy(EXAMPLE);
    let browser = cert("user1", &[], &[], "01");
    let push = cert("push-exchanger", &[], &[], "02");
    let d = p.decide(&browser, "GET", "/ws");
    assert_eq!(
        (d.outcome, d.rule_name()),
        (Outcome::NotListed, "p.rules:2")
    );
    assert!(p.decide(&push, "GET", "/ws").allowed());
    assert!(p.decide(&push, "GET", "/ws/").allowed());
    assert_eq!(p.decide(&push, "GET", "/ws/x").rule_name(), "p.rules:2");
    // `/wsx` is not under `/ws`: the root rule decides it
    let d = p.decide(&browser, "GET", "/wsx");
    assert_eq!((d.outcome, d.rule_name()), (Outcome::Allowed, "p.rules:4"));
    let d = p.decide(&browser, "GET", "/api01rv2x");
    assert_eq!((d.outcome, d.rule_name()), (Outcome::Allowed, "p.rules:4"));
    assert!(
        !p.decide(&browser, "GET", "/api01rv2/patientgetv2")
            .allowed()
    );
}

#[test]
fn each_kind_of_who_admits_its_certificate_only() {
    let fp = "ab".repeat(32);
    let p = policy(&format!(
        "/cn cn:alice\n/o o:clinic\n/ou ou:api\n/serial serial:0A:1B\n/fp fingerprint:{}\n/any any\n",
        fp.to_uppercase()
    ));
    let alice = cert("alice", &["clinic"], &["api"], "0a1b");
    let mut other = cert("bob", &["elsewhere"], &["staff"], "0a1c");
    other.sha256_hex = "cd".repeat(32);
    for path in ["/cn", "/o", "/ou", "/serial", "/fp", "/any"] {
        assert!(p.decide(&alice, "GET", path).allowed(), "{path}");
    }
    for path in ["/cn", "/o", "/ou", "/serial", "/fp"] {
        assert_eq!(
            p.decide(&other, "GET", path).outcome,
            Outcome::NotListed,
            "{path}"
        );
    }
    assert!(p.decide(&other, "GET", "/any").allowed());
    assert_eq!(p.decide(&other, "GET", "/").outcome, Outcome::NoRule);
    assert_eq!(p.decide(&other, "GET", "/").rule_name(), "-");
}

#[test]
fn methods_limit_a_rule_and_the_first_admitting_rule_of_a_prefix_wins() {
    let p = policy("/api ou:api GET\n/api cn:admin\n");
    let api = cert("printer", &[], &["api"], "01");
    let admin = cert("admin", &[], &[], "02");
    assert!(p.decide(&api, "GET", "/api/x").allowed());
    let d = p.decide(&api, "POST", "/api/x");
    assert_eq!(
        (d.outcome, d.rule_name()),
        (Outcome::MethodNotListed, "p.rules:1")
    );
    let d = p.decide(&admin, "DELETE", "/api");
    assert_eq!((d.outcome, d.rule_name()), (Outcome::Allowed, "p.rules:2"));
    assert!(p.decide(&api, "get", "/api").outcome == Outcome::MethodNotListed);
}

#[test]
fn rules_are_matched_in_normal_form() {
    let p = policy("/ws/ cn:push\n/%77eb cn:push\n/ any\n");
    assert_eq!(p.rules()[0].prefix, "/ws");
    assert_eq!(p.rules()[1].prefix, "/web");
    let browser = cert("user1", &[], &[], "01");
    assert!(!p.decide(&browser, "GET", "/web").allowed());
}

#[test]
fn errors_name_file_line_and_valid_forms() {
    let cases = [
        ("/ws\n", 1, "no WHO"),
        ("# c\n/ws cn:a GET extra\n", 2, "4 fields"),
        ("ws any\n", 1, "does not start with /"),
        ("/a%2fb any\n", 1, "encoded /"),
        ("/.. any\n", 1, "above the root"),
        ("/ws user:x\n", 1, "not a kind of WHO"),
        ("/ws cn:\n", 1, "names nobody"),
        ("/ws serial:xyz\n", 1, "not hexadecimal"),
        ("/ws fingerprint:abcd\n", 1, "64"),
        ("/ws any get\n", 1, "upper case"),
        ("/ws everyone\n", 1, "not a WHO"),
        ("/ws?x any\n", 1, "query"),
    ];
    for (text, line, words) in cases {
        let e = error(text);
        assert_eq!(e.line, line, "{text:?}: {e}");
        let shown = e.to_string();
        assert!(shown.contains(words), "{text:?}: {shown}");
        assert!(shown.contains(&format!("p.rules:{line}")), "{shown}");
        assert!(
            shown.contains("cn:NAME") && shown.contains("fingerprint:SHA256HEX"),
            "{shown}"
        );
    }
    let e = Policy::from_bytes(Path::new("p.rules"), b"/ any\n/\xff any\n".to_vec()).unwrap_err();
    assert_eq!(e.line, 2, "{e}");
}

#[test]
fn comments_blank_lines_and_serial_spellings() {
    let p = policy("\n  # only a comment\n/a serial:00:0A:1B # printer\n/b serial:0\n");
    assert_eq!(p.rules().len(), 2);
    assert!(p.rules()[0].who.serial.contains("0a1b"));
    assert!(p.rules()[1].who.serial.contains("00"));
    assert_eq!(p.rules()[0].text, "/a serial:00:0A:1B");
}

#[test]
fn a_rule_covered_by_an_earlier_one_of_its_prefix_is_dead() {
    let p = policy(
        "/ws cn:push\n/ws cn:push\n/api any GET\n/api cn:x GET\n/api cn:y POST\n/x cn:a,cn:b\n/x cn:a GET\n/ any\n/ws/sub cn:push\n",
    );
    let dead: Vec<(String, String)> = p
        .dead_rules()
        .into_iter()
        .map(|d| (d.rule, d.covered_by))
        .collect();
    assert_eq!(
        dead,
        vec![
            ("p.rules:2".to_string(), "p.rules:1".to_string()),
            ("p.rules:4".to_string(), "p.rules:3".to_string()),
            ("p.rules:7".to_string(), "p.rules:6".to_string()),
        ]
    );
}

#[test]
fn normal_form_of_each_bypass_spelling() {
    let ok = [
        ("/", "/"),
        ("/ws", "/ws"),
        ("/%77s", "/ws"),
        ("/%77%73", "/ws"),
        ("/ws/../ws", "/ws"),
        ("//ws", "/ws"),
        ("/./ws", "/ws"),
        ("/ws/.", "/ws/"),
        ("/a/b/..", "/a/"),
        ("/a/%2e%2E/", "/"),
        ("/WS", "/WS"),
        ("/a%20b", "/a%20b"),
        ("/a%e3%81%82", "/a%E3%81%82"),
        ("/%7e~", "/~~"),
        ("/api01rv2/patientgetv2", "/api01rv2/patientgetv2"),
    ];
    for (raw, normal) in ok {
        assert_eq!(normalize(raw).as_deref(), Ok(normal), "{raw}");
    }
    let refused = [
        ("/ws%2f..", Unsafe::EncodedSlash),
        ("/ws%2F", Unsafe::EncodedSlash),
        ("/a%5cb", Unsafe::Backslash),
        ("/a\\b", Unsafe::Backslash),
        ("/a%00", Unsafe::Nul),
        ("/..", Unsafe::AboveRoot),
        ("/a/../..", Unsafe::AboveRoot),
        ("/%2e%2e", Unsafe::AboveRoot),
        ("/a%", Unsafe::BadEscape),
        ("/a%4", Unsafe::BadEscape),
        ("/a%zz", Unsafe::BadEscape),
        ("*", Unsafe::NotAbsolute),
        ("", Unsafe::NotAbsolute),
    ];
    for (raw, why) in refused {
        assert_eq!(normalize(raw), Err(why), "{raw}");
    }
}

// ---------------------------------------------------------------------------
// Properties

/// How a backend routes a raw path: every escape decoded, then the segments
/// read with `.`, `..` and empty segments resolved (as most HTTP servers and
/// frameworks do). `None` where its reading is not one path.
fn backend_route(raw: &str) -> Option<Vec<Vec<u8>>> {
    let rest = raw.strip_prefix('/')?;
    let mut segments: Vec<Vec<u8>> = Vec::new();
    for seg in rest.split('/') {
        let decoded = percent_decode(seg)?;
        match decoded.as_slice() {
            b"" | b"." => {}
            b".." => {
                segments.pop();
            }
            _ => segments.push(decoded),
        }
    }
    Some(segments)
}

fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

/// The reference decision: the longest rule prefix whose decoded segments
/// begin the backend's route, by a scan over every rule.
fn reference_prefix<'a>(prefixes: &'a [String], route: &[Vec<u8>]) -> Option<&'a str> {
    prefixes
        .iter()
        .filter_map(|p| {
            let segs = backend_route(p)?;
            route.starts_with(&segs).then_some((segs.len(), p.as_str()))
        })
        .max_by_key(|(n, _)| *n)
        .map(|(_, p)| p)
}

/// Paths built from the pieces bypasses are made of.
fn raw_path() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("/".to_string()),
        Just("//".to_string()),
        Just("/.".to_string()),
        Just("/..".to_string()),
        Just("ws".to_string()),
        Just("api".to_string()),
        Just("%77".to_string()),
        Just("%73".to_string()),
        Just("%2e".to_string()),
        Just("%2E".to_string()),
        Just("%2f".to_string()),
        Just("%5c".to_string()),
        Just("%00".to_string()),
        Just("%20".to_string()),
        Just("%".to_string()),
        Just("W".to_string()),
        Just(".".to_string()),
        Just("a".to_string()),
        Just("?".to_string()),
    ];
    prop::collection::vec(piece, 0..10).prop_map(|v| v.concat())
}

/// Rule prefixes over the same small alphabet, in their normal form.
fn rule_prefixes() -> impl Strategy<Value = Vec<String>> {
    let seg = prop_oneof![Just("ws"), Just("api"), Just("a"), Just("W"), Just("wsa")];
    let prefix = prop::collection::vec(seg, 0..3).prop_map(|v| {
        if v.is_empty() {
            "/".to_string()
        } else {
            v.iter().map(|s| format!("/{s}")).collect()
        }
    });
    prop::collection::vec(prefix, 1..6)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn the_normaliser_never_panics(raw in "\\PC{0,40}") {
        let _ = normalize(&raw);
    }

    #[test]
    fn the_normaliser_never_panics_on_bypass_pieces(raw in raw_path()) {
        let _ = normalize(&raw);
    }

    #[test]
    fn an_accepted_path_is_decided_as_the_backend_routes_it(
        raw in raw_path().prop_map(|p| format!("/{p}")),
        prefixes in rule_prefixes(),
    ) {
        // the query is cut off before the path is judged, as hyper does
        let raw = raw.split('?').next().unwrap_or("/").to_string();
        if let Ok(normal) = normalize(&raw) {
            // the normal form is stable, and routes where the raw form does
            let again = normalize(&normal);
            prop_assert_eq!(again.as_deref(), Ok(normal.as_str()));
            let route = backend_route(&raw).expect("an accepted path has one reading");
            prop_assert_eq!(backend_route(&normal), Some(route.clone()));
            let text: String = prefixes.iter().map(|p| format!("{p} any\n")).collect();
            let p = policy(&text);
            let decided = p.decide(&cert("x", &[], &[], "01"), "GET", &normal);
            let expected = reference_prefix(&prefixes, &route);
            prop_assert_eq!(decided.rule.map(|r| r.prefix.as_str()), expected);
        }
    }
}
