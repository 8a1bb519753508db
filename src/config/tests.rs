//! Unit tests of the config parser (the parent module).

use super::*;

const PATH: &str = "/etc/weborca-mtls-proxy/proxy.conf";
/// The three lines from WebORCA's guide (seeds/004).
const GUIDE_TLS: &str = "\
SERVER_CRT=/opt/jma/weborca/conf/000002__JP_orca_192.168.1.100.crt
SERVER_PEM=/opt/jma/weborca/conf/000002__JP_orca_192.168.1.100.pem
CA_CRT=/opt/jma/weborca/conf/ca.crt
";

fn path() -> &'static Path {
    Path::new(PATH)
}

fn raw(text: &str) -> RawConfig {
    parse_raw(text, path())
}

/// The value of `key` after the raw stage (last assignment wins).
fn raw_value(text: &str, key: &str) -> Option<String> {
    raw(text)
        .entries
        .into_iter()
        .rev()
        .find(|entry| entry.key == key)
        .map(|entry| entry.value)
}

/// Parses `extra` after the guide's three TLS lines.
fn ok(extra: &str) -> Loaded {
    match parse(&format!("{GUIDE_TLS}{extra}"), path()) {
        Ok(loaded) => loaded,
        Err(error) => panic!("config refused: {error}"),
    }
}

fn config(extra: &str) -> Config {
    ok(extra).config
}

fn refused(text: &str) -> ConfigError {
    match parse(text, path()) {
        Ok(loaded) => panic!("config accepted: {loaded:?}"),
        Err(error) => error,
    }
}

/// The message for `extra` after the guide's TLS lines (which take lines 1-3).
fn refusal(extra: &str) -> String {
    refused(&format!("{GUIDE_TLS}{extra}")).to_string()
}

/// Checks that `message` is an Invalid message for a value on line 4 (after the
/// guide's TLS lines) whose "expected" part starts with `expected`.
fn assert_invalid(message: &str, key: &str, value: &str, expected: &str) {
    let start = format!("{key}: invalid value \"{value}\" in {PATH} line 4: expected {expected}");
    assert!(message.starts_with(&start), "{message}");
}

/// The single warning the raw stage gives for `line`.
fn ignored_reason(line: &str) -> String {
    let raw = raw(line);
    assert!(
        raw.entries.is_empty(),
        "{line:?} was assigned: {:?}",
        raw.entries
    );
    assert_eq!(raw.warnings.len(), 1, "{line:?}: {:?}", raw.warnings);
    raw.warnings.concat()
}

fn assert_ignored(line: &str, reason: &str) {
    let expected = format!(
        "{PATH} line 1: ignored, not a plain KEY=VALUE assignment ({reason}): {}",
        line.trim_matches([' ', '\t'])
    );
    assert_eq!(ignored_reason(line), expected);
}

// --- raw syntax -------------------------------------------------------------------

#[test]
fn blank_lines_and_comments_are_skipped() {
    let raw = raw("\n   \n# comment\n   # indented comment\n\t#tab\nA=1\n");
    assert_eq!(
        raw.entries,
        vec![RawEntry {
            key: "A".into(),
            value: "1".into(),
            line: 6
        }]
    );
    assert!(raw.warnings.is_empty());
}

#[test]
fn export_prefix_and_leading_blanks_are_accepted() {
    assert_eq!(raw_value("export A=1", "A").as_deref(), Some("1"));
    assert_eq!(raw_value("  export\tA=2", "A").as_deref(), Some("2"));
    assert_eq!(raw_value("\tA=3", "A").as_deref(), Some("3"));
    // `exportA=1` is just a key named exportA.
    assert_eq!(raw_value("exportA=1", "exportA").as_deref(), Some("1"));
}

#[test]
fn trailing_comment_after_value_is_dropped() {
    assert_eq!(
        raw_value("A=value # comment", "A").as_deref(),
        Some("value")
    );
    assert_eq!(
        raw_value("A=value\t#comment", "A").as_deref(),
        Some("value")
    );
    assert_eq!(raw_value("A=\"x y\" # c", "A").as_deref(), Some("x y"));
    assert_eq!(raw_value("A= # only a comment", "A").as_deref(), Some(""));
    assert_eq!(raw_value("A=value   ", "A").as_deref(), Some("value"));
}

#[test]
fn hash_inside_a_word_is_literal() {
    assert_eq!(raw_value("A=a#b", "A").as_deref(), Some("a#b"));
    assert_eq!(raw_value("A=#x", "A").as_deref(), Some("#x"));
    assert_eq!(raw_value("A=\"x\"#y", "A").as_deref(), Some("x#y"));
}

#[test]
fn empty_value_assigns_empty_string() {
    assert_eq!(raw_value("A=", "A").as_deref(), Some(""));
    assert_eq!(raw_value("A=''", "A").as_deref(), Some(""));
    assert_eq!(raw_value("A=\"\"", "A").as_deref(), Some(""));
}

#[test]
fn double_quotes_keep_blanks_hash_and_operators() {
    assert_eq!(
        raw_value("A=\"a b # c ; d | e & f < g > (h)\"", "A").as_deref(),
        Some("a b # c ; d | e & f < g > (h)")
    );
}

#[test]
fn double_quote_escapes_follow_the_shell() {
    assert_eq!(raw_value(r#"A="q\"q""#, "A").as_deref(), Some("q\"q"));
    assert_eq!(raw_value(r#"A="b\\s""#, "A").as_deref(), Some("b\\s"));
    assert_eq!(raw_value(r#"A="\$HOME""#, "A").as_deref(), Some("$HOME"));
    assert_eq!(raw_value(r#"A="\`id\`""#, "A").as_deref(), Some("`id`"));
    // Other backslashes stay.
    assert_eq!(
        raw_value(r#"A="C:\dir\n""#, "A").as_deref(),
        Some("C:\\dir\\n")
    );
}

#[test]
fn single_quotes_are_literal() {
    assert_eq!(
        raw_value(r#"A='$B ${C} $(id) `id` \ " # ;'"#, "A").as_deref(),
        Some(r#"$B ${C} $(id) `id` \ " # ;"#)
    );
    assert!(raw(r#"A='$(touch x)'"#).warnings.is_empty());
}

#[test]
fn quoted_and_unquoted_parts_concatenate() {
    assert_eq!(raw_value(r#"A="a"b'c'"#, "A").as_deref(), Some("abc"));
    assert_eq!(raw_value(r#"A='it'\''s'"#, "A").as_deref(), Some("it's"));
    assert_eq!(
        raw_value(r#"A=/opt/"my dir"/x"#, "A").as_deref(),
        Some("/opt/my dir/x")
    );
}

#[test]
fn unquoted_backslash_escapes_next_character() {
    assert_eq!(raw_value(r"A=a\ b", "A").as_deref(), Some("a b"));
    assert_eq!(raw_value(r"A=a\;b", "A").as_deref(), Some("a;b"));
    assert_eq!(raw_value(r"A=\$B", "A").as_deref(), Some("$B"));
}

#[test]
fn variables_set_earlier_expand() {
    let text = "DIR=/opt/jma/weborca/conf\nA=$DIR/a.crt\nB=${DIR}/b.crt\nC=\"$DIR/c d\"\n\
                    D=${DIR}x\nE=$DIRx\nF='$DIR'\nG=\"${DIR}\"";
    let raw = raw(text);
    let value = |key: &str| {
        raw.entries
            .iter()
            .find(|entry| entry.key == key)
            .map(|entry| entry.value.as_str())
    };
    assert_eq!(value("A"), Some("/opt/jma/weborca/conf/a.crt"));
    assert_eq!(value("B"), Some("/opt/jma/weborca/conf/b.crt"));
    assert_eq!(value("C"), Some("/opt/jma/weborca/conf/c d"));
    assert_eq!(value("D"), Some("/opt/jma/weborca/confx"));
    assert_eq!(value("E"), Some(""), "$DIRx names the variable DIRx");
    assert_eq!(value("F"), Some("$DIR"));
    assert_eq!(value("G"), Some("/opt/jma/weborca/conf"));
    assert_eq!(raw.warnings.len(), 1, "{:?}", raw.warnings);
}

#[test]
fn expansion_uses_the_value_at_that_line() {
    let text = "A=1\nB=$A\nA=2\nC=$A";
    assert_eq!(raw_value(text, "B").as_deref(), Some("1"));
    assert_eq!(raw_value(text, "C").as_deref(), Some("2"));
}

#[test]
fn expanded_text_is_not_parsed_again() {
    let text = "A='$(id); rm x'\nB=$A";
    let raw = raw(text);
    assert_eq!(raw_value(text, "B").as_deref(), Some("$(id); rm x"));
    assert!(raw.warnings.is_empty());
}

#[test]
fn unset_variable_expands_empty_with_warning() {
    let raw = raw("# first\nA=x${NOPE}y$NOPE");
    assert_eq!(raw.entries[0].value, "xy");
    assert_eq!(
        raw.warnings,
        vec![format!(
            "{PATH} line 2: $NOPE is not set earlier in this file, so it expands to an \
                 empty string (the environment is not read)"
        )]
    );
}

#[test]
fn environment_variables_are_not_read() {
    let raw = raw("A=$HOME/x\nB=$PATH");
    assert_eq!(raw.entries[0].value, "/x");
    assert_eq!(raw.entries[1].value, "");
    assert_eq!(raw.warnings.len(), 2);
    assert!(raw.warnings[0].contains("line 1: $HOME is not set"));
    assert!(raw.warnings[1].contains("line 2: $PATH is not set"));
}

#[test]
fn variable_set_later_is_unset_earlier() {
    let raw = raw("A=$B\nB=1");
    assert_eq!(raw.entries[0].value, "");
    assert!(raw.warnings[0].contains("line 1: $B is not set earlier"));
}

#[test]
fn dollar_that_starts_no_expansion_is_literal() {
    assert_eq!(raw_value("A=cost$", "A").as_deref(), Some("cost$"));
    assert_eq!(raw_value("A=a$/b", "A").as_deref(), Some("a$/b"));
    assert_eq!(raw_value("A=\"a$ b\"", "A").as_deref(), Some("a$ b"));
    assert_eq!(raw_value("A=\"x$\"", "A").as_deref(), Some("x$"));
}

#[test]
fn command_substitution_is_never_run() {
    let marker = std::env::temp_dir().join(format!(
        "weborca-mtls-proxy-config-pwned-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&marker);
    let m = marker.display();
    let text = format!(
        "X=$(touch {m})\nY=`touch {m}`\nZ=\"$(touch {m})\"\nW=\"`touch {m}`\"\n\
             V=a$(touch {m})\nexport SERVER_CRT=$(touch {m})"
    );
    let raw = raw(&text);
    assert!(!marker.exists(), "a command was run");
    assert!(raw.entries.is_empty(), "{:?}", raw.entries);
    assert_eq!(raw.warnings.len(), 6);
    for (index, warning) in raw.warnings.iter().enumerate() {
        let prefix = format!(
            "{PATH} line {}: ignored, not a plain KEY=VALUE assignment (command \
                 substitution is never run): ",
            index + 1
        );
        assert!(warning.starts_with(&prefix), "{warning}");
        assert!(warning.contains(&format!("touch {m}")), "{warning}");
    }
}

#[test]
fn ignored_line_warning_has_the_documented_form() {
    let raw = parse_raw("\n\n\n\n\n\nFOO=$(id)\n", Path::new("/etc/x/proxy.conf"));
    assert_eq!(
        raw.warnings,
        vec![
            "/etc/x/proxy.conf line 7: ignored, not a plain KEY=VALUE assignment \
                 (command substitution is never run): FOO=$(id)"
                .to_string()
        ]
    );
}

#[test]
fn shell_operators_in_unquoted_values_are_ignored() {
    for (line, op) in [
        ("A=1; rm -rf /", ';'),
        ("A=1;B=2", ';'),
        ("A=x && echo y", '&'),
        ("A=x&", '&'),
        ("A=x ; echo y", ';'),
        ("A=\"x\" | cat", '|'),
        ("A= > /tmp/y", '>'),
        ("A=x | cat", '|'),
        ("A=x>/tmp/y", '>'),
        ("A=x</tmp/y", '<'),
        ("A=(1 2)", '('),
        ("A=x)", ')'),
    ] {
        let reason =
            format!("shell operator '{op}' is never run; quote the value if '{op}' is part of it");
        assert_ignored(line, &reason);
    }
}

#[test]
fn shell_commands_and_control_flow_are_ignored() {
    for line in [
        "if [ -f /x ]; then",
        "fi",
        "f() { A=1; }",
        "source /etc/other.conf",
        ". /etc/other.conf",
        "echo hello",
        "export",
        "export A",
        "A",
    ] {
        assert_ignored(line, "shell commands are never run");
    }
}

#[test]
fn other_unsupported_forms_are_ignored_with_their_reason() {
    let bad_key = "a key is letters, digits and '_' and does not start with a digit";
    let unterminated = |q: char| format!("unterminated {q} quote; a value cannot span lines");
    let expansion = "only $NAME and ${NAME} expansions are supported";
    let special = "special parameters like $1 or $? are not supported";
    let extra = "text after the value would run as a command in shell; quote values with spaces";
    let cases: &[(&str, &[&str])] = &[
        (&unterminated('"'), &["A=\"abc", "A=\"abc\\", "A=x\"y"]),
        (&unterminated('\''), &["A='abc", "A=x'y"]),
        (
            "no spaces are allowed around '=' in shell",
            &["A = 1", "A =1", "A= 1", "A= B=1"],
        ),
        (
            bad_key,
            &["1A=x", "A-B=x", "A+=x", "A[0]=x", "=x", "\u{3000}A=1"],
        ),
        (
            "command substitution is never run",
            &["A=x $(id)", "A= `id`", "A=x y$(id)"],
        ),
        ("only one assignment per line is supported", &["A=1 B=2"]),
        (extra, &["A=b c", "A=\"b\" c"]),
        (
            expansion,
            &["A=${B:-x}", "A=${#B}", "A=${B", "A=${}", "A=\"${B/x/y}\""],
        ),
        (special, &["A=$1", "A=$?", "A=\"$$\"", "A=$@", "A=$#"]),
        (
            "arithmetic expansion is not supported",
            &["A=$((1+2))", "A=$[1+2]"],
        ),
        (
            "'~' is not expanded; write the full path",
            &["A=~/x", "A=~orca/x"],
        ),
        (
            "continuing a line with a trailing backslash is not supported",
            &["A=x\\"],
        ),
        (
            "$'...' and $\"...\" quoting is not supported",
            &["A=$'x'", "A=$\"x\""],
        ),
    ];
    for (reason, lines) in cases {
        for line in *lines {
            assert_ignored(line, reason);
        }
    }
}

#[test]
fn values_cannot_grow_without_bound() {
    let mut text = String::from("A=xxxxxxxxxxxxxxxx\n");
    for _ in 0..40 {
        text.push_str("A=$A$A\n");
    }
    let raw = raw(&text);
    assert!(
        raw.entries
            .iter()
            .all(|entry| entry.value.len() <= MAX_VALUE_BYTES)
    );
    assert_eq!(
        raw.warnings.len(),
        40 - 12,
        "2^12 * 16 bytes is the largest that fits"
    );
    assert!(raw.warnings[0].contains("(the value is longer than 65536 bytes): A=$A$A"));
    let long = format!("A={}", "x".repeat(MAX_VALUE_BYTES + 1));
    assert!(ignored_reason(&long).contains("longer than 65536 bytes"));
}

#[test]
fn ignored_line_assigns_nothing() {
    let raw = raw("A=1\nA=$(id)\nB=$A");
    assert_eq!(raw_value("A=1\nA=$(id)\nB=$A", "B").as_deref(), Some("1"));
    assert_eq!(raw.entries.len(), 2);
    assert_eq!(raw.warnings.len(), 1);
}

#[test]
fn literal_special_characters_outside_operators_are_kept() {
    assert_eq!(raw_value("A=*.crt", "A").as_deref(), Some("*.crt"));
    assert_eq!(raw_value("A={a,b}", "A").as_deref(), Some("{a,b}"));
    assert_eq!(raw_value("A=a=b", "A").as_deref(), Some("a=b"));
    assert_eq!(raw_value("A=x~y", "A").as_deref(), Some("x~y"));
    assert_eq!(raw_value("A=hi!", "A").as_deref(), Some("hi!"));
}

#[test]
fn crlf_line_endings_and_bom_are_accepted() {
    let raw = raw("\u{feff}A=1\r\nB=\"2\"\r\n# c\r\n");
    assert_eq!(raw.entries.len(), 2);
    assert_eq!(raw.entries[0].value, "1");
    assert_eq!(raw.entries[1].value, "2");
    assert!(raw.warnings.is_empty());
}

#[test]
fn non_ascii_values_are_kept() {
    assert_eq!(
        raw_value("A=/opt/証明書/サーバ.crt # コメント", "A").as_deref(),
        Some("/opt/証明書/サーバ.crt")
    );
}

#[test]
fn control_characters_in_ignored_lines_are_escaped_in_warnings() {
    let warning = ignored_reason("A=x\u{1b}[31m y");
    assert!(warning.contains("\\u{1b}[31m"), "{warning}");
    assert!(!warning.contains('\u{1b}'));
}

#[test]
fn long_ignored_lines_are_cut_in_warnings() {
    let line = format!("A=x {}", "y".repeat(10_000));
    let warning = ignored_reason(&line);
    assert!(warning.len() < 600, "{}", warning.len());
    assert!(warning.ends_with('…'));
}

#[test]
fn an_unreadable_line_setting_a_key_of_the_proxy_is_refused() {
    for (line, key) in [
        ("CA_CRL=/a.pem /b.pem", "CA_CRL"),
        ("ALLOW_CN=user1 user2", "ALLOW_CN"),
        ("ACCESS_POLICY = /etc/p.conf", "ACCESS_POLICY"),
        (
            "export CLIENT_CERT_ERRORS=$(echo handshake)",
            "CLIENT_CERT_ERRORS",
        ),
        ("LISTEN=127.0.0.1:8000; true", "LISTEN"),
    ] {
        let error = parse(&format!("{GUIDE_TLS}{line}\n"), path())
            .err()
            .unwrap_or_else(|| panic!("{line:?} was passed over"));
        let text = error.to_string();
        assert!(
            matches!(error, ConfigError::Invalid { key: k, line: 4, .. } if k == key),
            "{text}"
        );
        assert!(text.contains(PATH) && text.contains("quotes"), "{text}");
    }
    // a later line that can be read is the one that counts, as in the shell
    let loaded = ok("ALLOW_CN=user1 user2\nALLOW_CN=\"user1,user2\"\n");
    assert_eq!(loaded.config.allow_cn.as_ref().map(Vec::len), Some(2));
    // an earlier readable one does not make the later unreadable one harmless
    assert!(parse(&format!("{GUIDE_TLS}ALLOW_CN=a\nALLOW_CN=a b\n"), path()).is_err());
    // an unreadable line of another key before it does not hide it
    let hidden = format!("{GUIDE_TLS}DBHOST=$(hostname)\nCA_CRL=/a.pem /b.pem\n");
    assert!(
        matches!(
            parse(&hidden, path()),
            Err(ConfigError::Invalid {
                key: "CA_CRL",
                line: 5,
                ..
            })
        ),
        "a CA_CRL after an unreadable DBHOST was passed over"
    );
    // WebORCA's own keys and other unknown ones stay warnings
    let loaded = ok("DBHOST=$(hostname)\nPGOPTS=-c x\n");
    assert_eq!(loaded.warnings.len(), 2, "{:?}", loaded.warnings);
}

// --- unknown keys and repeats ---------------------------------------------------

#[test]
fn typo_of_a_known_key_gets_did_you_mean() {
    let loaded = ok("SERVER_CRTT=/x.crt\n");
    assert_eq!(
        loaded.warnings,
        vec![format!(
            "SERVER_CRTT: unknown key, did you mean SERVER_CRT? ({PATH} line 4)"
        )]
    );
}

#[test]
fn did_you_mean_covers_common_slips() {
    for (typo, meant) in [
        ("CA_CERT", "CA_CRT"),
        ("server_crt", "SERVER_CRT"),
        ("Listen", "LISTEN"),
        ("LISTN", "LISTEN"),
        ("LOGFILE", "LOG_FILE"),
        ("BACKEND_URI", "BACKEND_URL"),
        ("ALLOW_CNS", "ALLOW_CN"),
        ("MAX_CONNECTION", "MAX_CONNECTIONS"),
        ("SERVER_PEN", "SERVER_PEM"),
    ] {
        let warnings = ok(&format!("{typo}=1\n")).warnings;
        let expected = format!("{typo}: unknown key, did you mean {meant}? ({PATH} line 4)");
        assert_eq!(warnings, vec![expected]);
    }
}

#[test]
fn unrelated_unknown_keys_are_silent() {
    let keys = [
        "DBHOST",
        "DBNAME",
        "DBUSER",
        "DBPASS",
        "DBPORT",
        "DBENCODING",
        "HTTP_PORT",
        "PORT",
        "LOGDIR",
        "USERDIR",
        "ORCAUSER",
        "ORCAGROUP",
        "REDIRECTLOG",
        "A",
        "CA",
        "LOG",
        "SERVER",
        "TIMEOUT",
        "SERVER_CRT_OLD",
    ];
    let text: String = keys.iter().map(|key| format!("{key}=x\n")).collect();
    assert_eq!(ok(&text).warnings, Vec::<String>::new());
}

#[test]
fn suggestion_needs_distance_two_or_less() {
    assert_eq!(suggest("SERVER_CRTTT"), Some("SERVER_CRT"));
    assert_eq!(suggest("SERVER_CRTTTT"), None);
    assert_eq!(suggest("LSN"), None, "short keys are never compared");
}

#[test]
fn edit_distance_is_levenshtein() {
    assert_eq!(edit_distance("", ""), 0);
    assert_eq!(edit_distance("abc", ""), 3);
    assert_eq!(edit_distance("", "abc"), 3);
    assert_eq!(edit_distance("kitten", "sitting"), 3);
    assert_eq!(edit_distance("CA_CRT", "CA_CRL"), 1);
    assert_eq!(edit_distance("SERVER_PEM", "SERVER_P12"), 2);
}

#[test]
fn repeated_known_key_last_wins_with_warning() {
    let loaded = ok("ACCESS_LOG=off\nACCESS_LOG=on\n");
    assert!(loaded.config.access_log);
    assert_eq!(
        loaded.warnings,
        vec![format!(
            "ACCESS_LOG: set on line 4 and again on line 5 of {PATH}; the value on line 5 \
                 is used"
        )]
    );
}

#[test]
fn repeated_key_set_empty_last_is_unset() {
    let loaded = ok("LOG_FILE=/var/log/x.log\nLOG_FILE=\n");
    assert_eq!(loaded.config.log_file, None);
    assert_eq!(loaded.warnings.len(), 1);
}

#[test]
fn repeated_unknown_key_is_silent() {
    assert!(ok("DBHOST=a\nDBHOST=b\n").warnings.is_empty());
}

#[test]
fn ignored_line_warnings_reach_the_loaded_config() {
    let loaded = ok("DBHOST=$(hostname)\n");
    assert_eq!(loaded.warnings.len(), 1);
    assert!(loaded.warnings[0].starts_with(&format!("{PATH} line 4: ignored")));
}

// --- typed config -----------------------------------------------------------------

#[test]
fn defaults_apply_when_only_the_guide_keys_are_set() {
    let config = config("");
    let expected = Config {
        path: PathBuf::from(PATH),
        server_crt: Some("/opt/jma/weborca/conf/000002__JP_orca_192.168.1.100.crt".into()),
        server_pem: Some("/opt/jma/weborca/conf/000002__JP_orca_192.168.1.100.pem".into()),
        ca_crt: Some("/opt/jma/weborca/conf/ca.crt".into()),
        server_p12: None,
        server_pass_file: None,
        ca_crl: vec![],
        listen: vec!["[::]:8000".parse().unwrap()],
        listen_is_default: true,
        backend: parse_backend_url(DEFAULT_BACKEND_URL).unwrap(),
        status_listen: None,
        status_listen_force: false,
        log_file: None,
        access_log: true,
        log_format: LogFormat::Text,
        cert_warn_days: 30,
        client_cert_errors: ClientCertErrors::Page,
        crl_stale: CrlStale::Warn,
        allow_cn: None,
        admin_cn: None,
        access_policy: None,
        forward_client_cert: true,
        handshake_timeout: Duration::from_secs(10),
        header_timeout: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(90),
        backend_connect_timeout: Duration::from_secs(5),
        backend_timeout: Duration::from_secs(300),
        shutdown_grace: Duration::from_secs(30),
        max_connections: 2048,
        cert_watch_interval: Duration::from_secs(30),
        workers: None,
    };
    assert_eq!(config, expected);
}

#[test]
fn default_backend_matches_its_url() {
    let backend = default_backend();
    assert_eq!(parse_backend_url(DEFAULT_BACKEND_URL), Ok(backend.clone()));
    assert_eq!(backend.authority, "127.0.0.1:8001");
}

#[test]
fn realistic_jma_receipt_conf_is_read() {
    let text = r#"# jma-receipt.conf
# データベース設定
DBNAME=orca
DBUSER=orca
DBPASS=""
DBHOST=localhost
DBPORT=5432
DBENCODING="UTF-8"
export HTTP_PORT=8000   # WebORCA's own port
LOGDIR=/opt/jma/weborca/log
REDIRECTLOG=on

# SSLクライアント認証
SERVER_CRT=/opt/jma/weborca/conf/000002__JP_orca_192.168.1.100.crt
SERVER_PEM=/opt/jma/weborca/conf/000002__JP_orca_192.168.1.100.pem
CA_CRT=/opt/jma/weborca/conf/ca.crt
"#;
    let loaded = parse(text, Path::new("/opt/jma/weborca/conf/jma-receipt.conf")).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let config = loaded.config;
    assert_eq!(
        config.server_crt.as_deref(),
        Some(Path::new(
            "/opt/jma/weborca/conf/000002__JP_orca_192.168.1.100.crt"
        ))
    );
    assert_eq!(
        config.server_pem.as_deref(),
        Some(Path::new(
            "/opt/jma/weborca/conf/000002__JP_orca_192.168.1.100.pem"
        ))
    );
    assert_eq!(
        config.ca_crt.as_deref(),
        Some(Path::new("/opt/jma/weborca/conf/ca.crt"))
    );
    assert!(config.listen_is_default);
}

#[test]
fn every_key_is_read_from_a_full_config() {
    let config = parse(
        r#"SERVER_P12=server.p12
SERVER_PASS_FILE=server.pass
CA_CRT=ca.crt
CA_CRL="a.crl, /var/lib/crl/b.crl"
LISTEN=0.0.0.0:8443,[::1]:18000
BACKEND_URL=http://orca.local:8001/
STATUS_LISTEN=127.0.0.1:9000
LOG_FILE=/var/log/weborca-mtls-proxy.log
ACCESS_LOG=off
CERT_WARN_DAYS=60
CLIENT_CERT_ERRORS=handshake
ALLOW_CN="user1, user2"
FORWARD_CLIENT_CERT=no
HANDSHAKE_TIMEOUT=5
HEADER_TIMEOUT=10s
IDLE_TIMEOUT=2m
BACKEND_CONNECT_TIMEOUT=500ms
BACKEND_TIMEOUT=1h
SHUTDOWN_GRACE=45s
MAX_CONNECTIONS=100
CERT_WATCH_INTERVAL=1m
"#,
        Path::new("/etc/weborca-mtls-proxy/proxy.conf"),
    )
    .unwrap()
    .config;
    let dir = Path::new("/etc/weborca-mtls-proxy");
    assert_eq!(config.server_p12, Some(dir.join("server.p12")));
    assert_eq!(config.server_pass_file, Some(dir.join("server.pass")));
    assert_eq!(config.ca_crt, Some(dir.join("ca.crt")));
    assert_eq!(
        config.ca_crl,
        vec![dir.join("a.crl"), PathBuf::from("/var/lib/crl/b.crl")]
    );
    assert_eq!(
        config.listen,
        vec![
            "0.0.0.0:8443".parse().unwrap(),
            "[::1]:18000".parse().unwrap()
        ]
    );
    assert!(!config.listen_is_default);
    assert_eq!(config.backend.url, "http://orca.local:8001");
    assert_eq!(config.backend.authority, "orca.local:8001");
    assert_eq!(
        config.status_listen,
        Some("127.0.0.1:9000".parse().unwrap())
    );
    assert_eq!(
        config.log_file,
        Some(PathBuf::from("/var/log/weborca-mtls-proxy.log"))
    );
    assert!(!config.access_log);
    assert_eq!(config.cert_warn_days, 60);
    assert_eq!(config.client_cert_errors, ClientCertErrors::Handshake);
    assert_eq!(
        config.allow_cn,
        Some(vec!["user1".to_string(), "user2".to_string()])
    );
    assert!(!config.forward_client_cert);
    assert_eq!(config.handshake_timeout, Duration::from_secs(5));
    assert_eq!(config.header_timeout, Duration::from_secs(10));
    assert_eq!(config.idle_timeout, Duration::from_secs(120));
    assert_eq!(config.backend_connect_timeout, Duration::from_millis(500));
    assert_eq!(config.backend_timeout, Duration::from_secs(3600));
    assert_eq!(config.shutdown_grace, Duration::from_secs(45));
    assert_eq!(config.max_connections, 100);
    assert_eq!(config.cert_watch_interval, Duration::from_secs(60));
}

#[test]
fn relative_paths_resolve_against_the_config_folder() {
    let text = "SERVER_CRT=server.crt\nSERVER_PEM=./keys/server.pem\nCA_CRT=../ca.crt\n\
                    LOG_FILE=proxy.log";
    let config = parse(text, Path::new("/etc/proxy/proxy.conf"))
        .unwrap()
        .config;
    assert_eq!(
        config.server_crt,
        Some(PathBuf::from("/etc/proxy/server.crt"))
    );
    assert_eq!(
        config.server_pem,
        Some(PathBuf::from("/etc/proxy/./keys/server.pem"))
    );
    assert_eq!(config.ca_crt, Some(PathBuf::from("/etc/proxy/../ca.crt")));
    assert_eq!(config.log_file, Some(PathBuf::from("/etc/proxy/proxy.log")));
    // A config named without a folder keeps paths relative to the working directory,
    // which is where that config is.
    let config = parse(text, Path::new("proxy.conf")).unwrap().config;
    assert_eq!(config.server_crt, Some(PathBuf::from("server.crt")));
    assert_eq!(config.path, PathBuf::from("proxy.conf"));
}

#[test]
fn paths_keep_spaces_and_expansion() {
    let text = "CONF=/opt/jma/weborca/conf\nSERVER_CRT=\"$CONF/my server.crt\"\n\
                    SERVER_PEM=${CONF}/s.pem\nCA_CRT=$CONF/ca.crt";
    let config = parse(text, path()).unwrap().config;
    assert_eq!(
        config.server_crt,
        Some(PathBuf::from("/opt/jma/weborca/conf/my server.crt"))
    );
    assert_eq!(
        config.server_pem,
        Some(PathBuf::from("/opt/jma/weborca/conf/s.pem"))
    );
    assert_eq!(
        config.ca_crt,
        Some(PathBuf::from("/opt/jma/weborca/conf/ca.crt"))
    );
}

#[test]
fn empty_value_means_unset() {
    let config = config(
        "LISTEN=\nBACKEND_URL=\nSTATUS_LISTEN=\nLOG_FILE=\nACCESS_LOG=\nCERT_WARN_DAYS=\n\
             ALLOW_CN=\nCA_CRL=\nHANDSHAKE_TIMEOUT=\"\"\nMAX_CONNECTIONS=' '\nSERVER_P12=\n",
    );
    assert_eq!(config, self::config(""));
}

#[test]
fn no_tls_keys_refuses_to_start() {
    let error = refused("DBNAME=orca\nLISTEN=[::]:8000\n");
    assert!(matches!(error, ConfigError::NoTls { .. }));
    assert_eq!(
        error.to_string(),
        format!(
            "no server certificate in {PATH}: this proxy never falls back to plain HTTP; \
                 set SERVER_CRT, SERVER_PEM and CA_CRT as in WebORCA's jma-receipt.conf (or \
                 SERVER_P12 instead of SERVER_CRT and SERVER_PEM)"
        )
    );
    assert!(matches!(refused(""), ConfigError::NoTls { .. }));
    assert!(matches!(
        refused("SERVER_CRT=\nSERVER_PEM=\nCA_CRT=\n"),
        ConfigError::NoTls { .. }
    ));
}

#[test]
fn tls_keys_behind_command_substitution_are_refused_by_name() {
    let error = refused("SERVER_CRT=$(ls /x.crt)\nSERVER_PEM=`ls /x.pem`\nCA_CRT=$(ls)\n");
    assert!(
        matches!(
            error,
            ConfigError::Invalid {
                key: "SERVER_CRT",
                line: 1,
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn missing_ca_crt_is_named() {
    let error = refused("SERVER_CRT=/s.crt\nSERVER_PEM=/s.pem\n");
    assert!(matches!(error, ConfigError::Missing { key: "CA_CRT", .. }));
    let message = error.to_string();
    assert!(
        message.starts_with(&format!("CA_CRT is not set in {PATH}: set CA_CRT")),
        "{message}"
    );
    assert!(
        message.contains("CA_CRT=/opt/jma/weborca/conf/ca.crt"),
        "{message}"
    );
    let error = refused("SERVER_P12=/s.p12\n");
    assert!(matches!(error, ConfigError::Missing { key: "CA_CRT", .. }));
}

#[test]
fn server_crt_without_pem_is_named() {
    let error = refused("SERVER_CRT=/s.crt\nCA_CRT=/ca.crt\n");
    assert!(matches!(
        error,
        ConfigError::Missing {
            key: "SERVER_PEM",
            ..
        }
    ));
    let message = error.to_string();
    assert!(
        message.starts_with(&format!(
            "SERVER_PEM is not set in {PATH}: SERVER_CRT needs its private key"
        )),
        "{message}"
    );
}

#[test]
fn server_pem_without_crt_is_named() {
    let error = refused("SERVER_PEM=/s.pem\nCA_CRT=/ca.crt\n");
    assert!(matches!(
        error,
        ConfigError::Missing {
            key: "SERVER_CRT",
            ..
        }
    ));
    assert!(error.to_string().starts_with(&format!(
        "SERVER_CRT is not set in {PATH}: SERVER_PEM needs its certificate"
    )));
}

#[test]
fn ca_crt_alone_asks_for_a_server_certificate() {
    let error = refused("CA_CRT=/ca.crt\n");
    assert!(matches!(
        error,
        ConfigError::Missing {
            key: "SERVER_CRT",
            ..
        }
    ));
    assert!(error.to_string().contains("or SERVER_P12"));
}

#[test]
fn p12_with_crt_or_pem_conflicts() {
    let error =
        refused("SERVER_CRT=/s.crt\nSERVER_PEM=/s.pem\nCA_CRT=/ca.crt\nSERVER_P12=/s.p12\n");
    assert_eq!(
        error.to_string(),
        format!(
            "SERVER_P12 (line 4) and SERVER_CRT (line 1) are both set in {PATH}: use either \
                 SERVER_P12 alone or SERVER_CRT with SERVER_PEM, and remove the other"
        )
    );
    let error = refused("SERVER_P12=/s.p12\nSERVER_PEM=/s.pem\nCA_CRT=/ca.crt\n");
    assert!(matches!(
        error,
        ConfigError::Conflict {
            key: "SERVER_P12",
            other: "SERVER_PEM",
            line: 1,
            other_line: 2,
            ..
        }
    ));
}

#[test]
fn p12_with_ca_is_enough() {
    let config = parse(
        "SERVER_P12=/s.p12\nSERVER_PASS_FILE=/s.pass\nCA_CRT=/ca.crt\n",
        path(),
    )
    .unwrap()
    .config;
    assert_eq!(config.server_p12, Some(PathBuf::from("/s.p12")));
    assert_eq!(config.server_pass_file, Some(PathBuf::from("/s.pass")));
    assert_eq!(config.server_crt, None);
}

#[test]
fn invalid_value_names_key_file_line_value_and_form() {
    let text = format!("{GUIDE_TLS}\n\n\n\n\n\n\n\nHANDSHAKE_TIMEOUT=abc\n");
    let error = refused(&text);
    assert_eq!(
        error.to_string(),
        "HANDSHAKE_TIMEOUT: invalid value \"abc\" in /etc/weborca-mtls-proxy/proxy.conf line \
             12: expected seconds like 30, 30s, 5m or 500ms"
    );
    let ConfigError::Invalid {
        key, line, value, ..
    } = error
    else {
        panic!("not Invalid: {error:?}");
    };
    assert_eq!(
        (key, line, value.as_str()),
        ("HANDSHAKE_TIMEOUT", 12, "abc")
    );
}

#[test]
fn booleans_accept_on_off_and_friends() {
    for key in ["ACCESS_LOG", "FORWARD_CLIENT_CERT"] {
        for (value, expected) in [
            ("on", true),
            ("ON", true),
            ("yes", true),
            ("True", true),
            ("1", true),
            ("off", false),
            ("Off", false),
            ("no", false),
            ("FALSE", false),
            ("0", false),
            ("\" on \"", true),
        ] {
            let config = config(&format!("{key}={value}\n"));
            let actual = if key == "ACCESS_LOG" {
                config.access_log
            } else {
                config.forward_client_cert
            };
            assert_eq!(actual, expected, "{key}={value}");
        }
        for bad in ["enabled", "2", "o", "onn"] {
            let message = refusal(&format!("{key}={bad}\n"));
            assert_eq!(
                message,
                format!(
                    "{key}: invalid value \"{bad}\" in {PATH} line 4: expected on or off \
                         (also yes/no, true/false, 1/0)"
                )
            );
        }
    }
}

#[test]
fn durations_accept_seconds_and_units() {
    for (value, expected) in [
        ("30", Duration::from_secs(30)),
        ("30s", Duration::from_secs(30)),
        ("30S", Duration::from_secs(30)),
        ("5m", Duration::from_secs(300)),
        ("1h", Duration::from_secs(3600)),
        ("24h", Duration::from_secs(86_400)),
        ("86400", Duration::from_secs(86_400)),
        ("500ms", Duration::from_millis(500)),
        ("1ms", Duration::from_millis(1)),
    ] {
        assert_eq!(parse_duration(value), Ok(expected), "{value}");
    }
}

#[test]
fn durations_refuse_zero_too_long_and_garbage() {
    let form = "seconds like 30, 30s, 5m or 500ms";
    for bad in ["abc", "", "s", "-5", "+5"] {
        assert_eq!(parse_duration(bad), Err(form.to_string()), "{bad}");
    }
    for bad in ["1.5s", "5 m", "5d", "10sec", "30s0"] {
        assert_eq!(
            parse_duration(bad),
            Err(format!("{form} (units: ms, s, m, h)")),
            "{bad}"
        );
    }
    for zero in ["0", "0s", "0ms", "00"] {
        let error = parse_duration(zero).unwrap_err();
        assert!(
            error.starts_with("a duration above zero"),
            "{zero}: {error}"
        );
    }
    for long in [
        "86401",
        "25h",
        "1441m",
        "86400001ms",
        "99999999999999999999999",
        "18446744073709551615h",
    ] {
        assert_eq!(
            parse_duration(long),
            Err("at most 24h (86400 seconds)".to_string()),
            "{long}"
        );
    }
}

#[test]
fn every_duration_key_is_validated() {
    for key in [
        "HANDSHAKE_TIMEOUT",
        "HEADER_TIMEOUT",
        "IDLE_TIMEOUT",
        "BACKEND_CONNECT_TIMEOUT",
        "BACKEND_TIMEOUT",
        "SHUTDOWN_GRACE",
        "CERT_WATCH_INTERVAL",
    ] {
        let message = refusal(&format!("{key}=0\n"));
        assert!(
            message.starts_with(&format!(
                "{key}: invalid value \"0\" in {PATH} line 4: expected a duration above zero"
            )),
            "{message}"
        );
        let config = config(&format!("{key}=7s\n"));
        let all = [
            config.handshake_timeout,
            config.header_timeout,
            config.idle_timeout,
            config.backend_connect_timeout,
            config.backend_timeout,
            config.shutdown_grace,
            config.cert_watch_interval,
        ];
        assert_eq!(
            all.iter().filter(|d| **d == Duration::from_secs(7)).count(),
            1,
            "{key}"
        );
    }
}

#[test]
fn cert_warn_days_range() {
    assert_eq!(config("CERT_WARN_DAYS=0\n").cert_warn_days, 0);
    assert_eq!(config("CERT_WARN_DAYS=3650\n").cert_warn_days, 3650);
    assert_eq!(config("CERT_WARN_DAYS=\"14\"\n").cert_warn_days, 14);
    for bad in ["3651", "-1", "+5", "ten", "1e3", "99999999999999999999999"] {
        let message = refusal(&format!("CERT_WARN_DAYS={bad}\n"));
        let expected = "expected a number of days from 0 to 3650, like 30 (0 warns only \
                            about expired certificates)";
        assert!(message.ends_with(expected), "{message}");
    }
}

#[test]
fn workers_auto_or_a_count() {
    assert_eq!(config("").workers, None);
    assert_eq!(config("WORKERS=auto\n").workers, None);
    assert_eq!(config("WORKERS=AUTO\n").workers, None);
    assert_eq!(config("WORKERS=1\n").workers, Some(1));
    assert_eq!(config("WORKERS=256\n").worker_count(), 256);
    assert!(config("").worker_count() >= 1);
    for bad in ["0", "257", "-1", "two", "1.5"] {
        let message = refusal(&format!("WORKERS={bad}\n"));
        assert!(message.contains("WORKERS"), "{message}");
        assert!(message.contains("auto"), "{message}");
    }
}

#[test]
fn max_connections_range() {
    assert_eq!(config("MAX_CONNECTIONS=1\n").max_connections, 1);
    assert_eq!(
        config("MAX_CONNECTIONS=1000000\n").max_connections,
        1_000_000
    );
    for bad in ["0", "1000001", "-3", "many", "2k"] {
        let message = refusal(&format!("MAX_CONNECTIONS={bad}\n"));
        assert!(
            message.ends_with("expected a number of connections from 1 to 1000000, like 2048"),
            "{message}"
        );
    }
}

#[test]
fn client_cert_errors_values() {
    assert_eq!(
        config("CLIENT_CERT_ERRORS=page\n").client_cert_errors,
        ClientCertErrors::Page
    );
    assert_eq!(
        config("CLIENT_CERT_ERRORS=HANDSHAKE\n").client_cert_errors,
        ClientCertErrors::Handshake
    );
    let message = refusal("CLIENT_CERT_ERRORS=tls\n");
    assert_invalid(&message, "CLIENT_CERT_ERRORS", "tls", "page (a 403 page");
}

#[test]
fn crl_stale_values() {
    assert_eq!(config("").crl_stale, CrlStale::Warn);
    assert_eq!(config("CRL_STALE=Refuse\n").crl_stale, CrlStale::Refuse);
    let message = refusal("CRL_STALE=block\n");
    assert_invalid(&message, "CRL_STALE", "block", "warn (log");
}

#[test]
fn allow_cn_list_is_trimmed_and_deduplicated() {
    assert_eq!(
        config("ALLOW_CN=\" user1 ,user2,user1, 受付端末 \"\n").allow_cn,
        Some(vec![
            "user1".to_string(),
            "user2".to_string(),
            "受付端末".to_string()
        ])
    );
    assert_eq!(
        config("ALLOW_CN=one\n").allow_cn,
        Some(vec!["one".to_string()])
    );
    for bad in ["a,,b", "a,", ",a", "' , '"] {
        let message = refusal(&format!("ALLOW_CN={bad}\n"));
        assert!(message.contains("with no empty entry"), "{message}");
    }
}

#[test]
fn ca_crl_list() {
    let config = config("CA_CRL=crl/a.crl,/abs/b.crl\n");
    let dir = Path::new("/etc/weborca-mtls-proxy");
    assert_eq!(
        config.ca_crl,
        vec![dir.join("crl/a.crl"), PathBuf::from("/abs/b.crl")]
    );
    let message = refusal("CA_CRL=a.crl,\n");
    assert!(
        message.starts_with(&format!(
            "CA_CRL: invalid value \"a.crl,\" in {PATH} line 4: expected CRL files"
        )),
        "{message}"
    );
}

#[test]
fn listen_accepts_socket_addresses() {
    let config =
        config("LISTEN='[::]:8000, 0.0.0.0:8000 ,127.0.0.1:18000,127.0.0.1:0,127.0.0.1:0'\n");
    let expected: Vec<SocketAddr> = [
        "[::]:8000",
        "0.0.0.0:8000",
        "127.0.0.1:18000",
        "127.0.0.1:0",
        "127.0.0.1:0",
    ]
    .iter()
    .map(|addr| addr.parse().unwrap())
    .collect();
    assert_eq!(config.listen, expected);
    assert!(!config.listen_is_default);
}

#[test]
fn listen_refuses_bad_entries() {
    let cases: &[(&str, &str)] = &[
        (
            "8000",
            "; \"8000\" is a port alone, write [::]:8000 or 0.0.0.0:8000",
        ),
        (
            "localhost:8000",
            "; \"localhost:8000\": host names are not resolved, give an IP address",
        ),
        (
            "::1:8000",
            "; \"::1:8000\": an IPv6 address needs brackets, like [::1]:8000",
        ),
        ("0.0.0.0", "; \"0.0.0.0\" is not an IP address and port"),
        (
            "0.0.0.0:99999",
            "; \"0.0.0.0:99999\" is not an IP address and port",
        ),
        ("0.0.0.0:8000,,[::]:8001", ", with no empty entry"),
        (
            "0.0.0.0:8000,0.0.0.0:8000",
            ", each once; 0.0.0.0:8000 is listed twice",
        ),
    ];
    for (value, why) in cases {
        let expected = format!(
            "LISTEN: invalid value \"{value}\" in {PATH} line 4: expected socket addresses \
                 like [::]:8000, 0.0.0.0:8000 or 127.0.0.1:18000, comma separated{why}"
        );
        assert_eq!(refusal(&format!("LISTEN='{value}'\n")), expected);
    }
}

#[test]
fn backend_url_forms() {
    let cases: &[(&str, &str, u16)] = &[
        ("http://127.0.0.1:8001", "127.0.0.1", 8001),
        ("http://127.0.0.1:8001/", "127.0.0.1", 8001),
        ("http://localhost", "localhost", 80),
        ("HTTP://Orca-Server.local/", "Orca-Server.local", 80),
        ("http://[::1]:8001", "[::1]", 8001),
        ("http://[::1]/", "[::1]", 80),
        ("http://orca_backend:08080", "orca_backend", 8080),
    ];
    for &(value, host, port) in cases {
        let expected = BackendUrl {
            url: value.trim_end_matches('/').to_string(),
            host: host.to_string(),
            port,
            authority: format!("{host}:{port}"),
        };
        assert_eq!(parse_backend_url(value), Ok(expected.clone()), "{value}");
        assert_eq!(config(&format!("BACKEND_URL={value}\n")).backend, expected);
    }
}

#[test]
fn backend_url_refusals_say_why() {
    let port = "the port is a number from 1 to 65535";
    let scheme = "(http://, a host and an optional port)";
    let cases: &[(&str, &[&str])] = &[
        (
            "https to the backend is not supported",
            &["https://127.0.0.1:8001", "HTTPS://x"],
        ),
        (scheme, &["127.0.0.1:8001", "ftp://x", "http:/x", "http"]),
        (
            "without a path",
            &["http://127.0.0.1:8001/api", "http://127.0.0.1:8001//"],
        ),
        (
            "without a query",
            &["http://127.0.0.1:8001?x=1", "http://127.0.0.1:8001/?x"],
        ),
        (
            "without a fragment",
            &["http://127.0.0.1:8001#top", "http://x/#"],
        ),
        (
            "without user:password@",
            &["http://user:pw@127.0.0.1:8001", "http://@x"],
        ),
        ("the host is missing", &["http://", "http://:8001"]),
        (
            port,
            &[
                "http://x:",
                "http://x:0",
                "http://x:65536",
                "http://x:+80",
                "http://x:a",
                "http://[::1]:",
            ],
        ),
        (
            "an IPv6 address needs brackets",
            &["http://::1:8001", "http://fe80::1"],
        ),
        ("lacks its closing ]", &["http://[::1:8001"]),
        ("[nope] is not an IPv6 address", &["http://[nope]:8001"]),
        (
            "only :port may follow [::1]",
            &["http://[::1]x", "http://[::1]8001"],
        ),
        (
            "is not a host name or IP address",
            &["http://999.1.1.1", "http://ho st", "http://サーバ"],
        ),
    ];
    for (why, values) in cases {
        for value in *values {
            let message = refusal(&format!("BACKEND_URL='{value}'\n"));
            let prefix = format!(
                "BACKEND_URL: invalid value \"{value}\" in {PATH} line 4: expected an http:// \
                     URL like http://127.0.0.1:8001"
            );
            assert!(message.starts_with(&prefix), "{message}");
            assert!(message.contains(why), "{value}: {message}");
        }
    }
}

#[test]
fn backend_pointing_at_the_proxy_itself_is_refused() {
    let message = refusal("BACKEND_URL=http://127.0.0.1:8000\n");
    let expected = "the address where WebORCA listens in plain HTTP, not this proxy's own \
                        LISTEN address [::]:8000";
    assert_invalid(&message, "BACKEND_URL", "http://127.0.0.1:8000", expected);
    assert!(refusal("BACKEND_URL=http://localhost:8000\n").starts_with("BACKEND_URL:"));
    assert!(
        refusal("LISTEN=192.168.1.100:8443\nBACKEND_URL=http://192.168.1.100:8443\n")
            .starts_with("BACKEND_URL:")
    );
    let message = refusal("LISTEN=127.0.0.1:8001\n");
    let expected = "addresses on a port other than 8001";
    assert_invalid(&message, "LISTEN", "127.0.0.1:8001", expected);
    // Another address on the same port is a different socket.
    assert_eq!(config("LISTEN=192.168.1.100:8001\n").listen.len(), 1);
    assert_eq!(config("BACKEND_URL=http://orca:8000\n").backend.port, 8000);
}

#[test]
fn status_listen_must_be_loopback() {
    assert_eq!(
        config("STATUS_LISTEN=127.0.0.1:9000\n").status_listen,
        Some("127.0.0.1:9000".parse().unwrap())
    );
    assert_eq!(
        config("STATUS_LISTEN=[::1]:9000\n").status_listen,
        Some("[::1]:9000".parse().unwrap())
    );
    assert!(
        config("STATUS_LISTEN=[::ffff:127.0.0.1]:9000\n")
            .status_listen
            .is_some()
    );
    let message = refusal("STATUS_LISTEN=0.0.0.0:9000\n");
    let expected = "a loopback address like 127.0.0.1:9000 or [::1]:9000, because /status \
                        and /metrics answer without a client certificate";
    assert_invalid(&message, "STATUS_LISTEN", "0.0.0.0:9000", expected);
    assert!(
        message.ends_with("also set STATUS_LISTEN_FORCE=on"),
        "{message}"
    );
    let message = refusal("STATUS_LISTEN=localhost:9000\n");
    assert!(message.contains("host names are not resolved"), "{message}");
}

#[test]
fn status_listen_force_allows_other_addresses_with_a_warning() {
    let loaded = ok("STATUS_LISTEN=0.0.0.0:9000\nSTATUS_LISTEN_FORCE=on\n");
    assert_eq!(
        loaded.config.status_listen,
        Some("0.0.0.0:9000".parse().unwrap())
    );
    assert_eq!(
        loaded.warnings,
        vec![format!(
            "STATUS_LISTEN: 0.0.0.0:9000 is not a loopback address, so /healthz, /readyz, \
                 /status and /metrics are reachable without a client certificate \
                 (STATUS_LISTEN_FORCE=on, {PATH} line 4)"
        )]
    );
    let message = refusal("STATUS_LISTEN=0.0.0.0:9000\nSTATUS_LISTEN_FORCE=maybe\n");
    assert!(
        message.starts_with("STATUS_LISTEN_FORCE: invalid value \"maybe\""),
        "{message}"
    );
    assert!(
        refusal("STATUS_LISTEN=0.0.0.0:9000\nSTATUS_LISTEN_FORCE=off\n")
            .starts_with("STATUS_LISTEN:")
    );
}

#[test]
fn status_listen_force_alone_warns() {
    let loaded = ok("STATUS_LISTEN_FORCE=yes\n");
    assert_eq!(
        loaded.warnings,
        vec![format!(
            "STATUS_LISTEN_FORCE: has no effect without STATUS_LISTEN ({PATH} line 4)"
        )]
    );
    assert!(ok("STATUS_LISTEN_FORCE=off\n").warnings.is_empty());
}

#[test]
fn status_listen_cannot_share_a_listen_address() {
    let message = refusal("LISTEN=127.0.0.1:18000\nSTATUS_LISTEN=127.0.0.1:18000\n");
    assert!(
        message.ends_with(
            "expected an address not also in LISTEN; 127.0.0.1:18000 already serves the proxy"
        ),
        "{message}"
    );
    assert!(
        config("LISTEN=127.0.0.1:0\nSTATUS_LISTEN=127.0.0.1:0\n")
            .status_listen
            .is_some()
    );
}

#[test]
fn replacement_character_in_a_known_key_is_refused() {
    let message = refusal("LOG_FILE=/var/log/\u{fffd}.log\n");
    assert!(message.starts_with("LOG_FILE: invalid value"), "{message}");
    assert!(
        message.ends_with(
            "expected text in UTF-8; the file is not valid UTF-8 here, save it as UTF-8"
        )
    );
    let message = refusal("SERVER_PASS_FILE=\"/x\0y\"\n");
    assert_invalid(
        &message,
        "SERVER_PASS_FILE",
        "/x\\u{0}y",
        "text without NUL characters",
    );
    // Elsewhere it is harmless.
    assert!(ok("# \u{fffd}\nDBPASS=\u{fffd}\n").warnings.is_empty());
}

#[test]
fn invalid_value_with_control_characters_is_escaped() {
    let message = refusal("ACCESS_LOG=\"o\u{7}n\"\n");
    assert!(message.contains("invalid value \"o\\u{7}n\""), "{message}");
}

// --- load -------------------------------------------------------------------------

/// A fresh folder under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "weborca-mtls-proxy-config-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn load_reads_a_file_and_resolves_against_its_folder() {
    let dir = TempDir::new("load");
    let file = dir.0.join("proxy.conf");
    std::fs::write(
        &file,
        "SERVER_CRT=s.crt\nSERVER_PEM=s.pem\nCA_CRT=ca.crt\nLISTN=x\n",
    )
    .unwrap();
    let loaded = load(&file).unwrap();
    assert_eq!(loaded.config.path, file);
    assert_eq!(loaded.config.ca_crt, Some(dir.0.join("ca.crt")));
    assert_eq!(loaded.warnings.len(), 1);
}

#[test]
fn load_of_a_missing_file_says_to_check_the_path() {
    let dir = TempDir::new("missing");
    let file = dir.0.join("nope.conf");
    let error = load(&file).unwrap_err();
    assert!(matches!(error, ConfigError::Read { .. }));
    let message = error.to_string();
    assert!(
        message.starts_with(&format!("cannot read config file {}: ", file.display())),
        "{message}"
    );
    let hint = "; check the path given with -c/--config (default \
                    /etc/weborca-mtls-proxy/proxy.conf)";
    assert!(message.ends_with(hint), "{message}");
}

#[test]
fn load_of_a_folder_says_to_give_the_file() {
    let dir = TempDir::new("folder");
    let message = load(&dir.0).unwrap_err().to_string();
    assert!(
        message.ends_with("give the config file itself, not its folder, with -c/--config"),
        "{message}"
    );
}

#[test]
fn load_refuses_huge_files() {
    let dir = TempDir::new("huge");
    let file = dir.0.join("big.conf");
    let size = usize::try_from(MAX_CONFIG_BYTES).unwrap() + 1;
    std::fs::write(&file, vec![b'#'; size]).unwrap();
    let message = load(&file).unwrap_err().to_string();
    assert!(message.contains("larger than 1048576 bytes"), "{message}");
}

#[test]
fn load_tolerates_non_utf8_comments() {
    let dir = TempDir::new("eucjp");
    let file = dir.0.join("jma-receipt.conf");
    let mut bytes = b"# \xa5\xc7\xa1\xbc\xa5\xbf\n".to_vec(); // EUC-JP comment
    bytes.extend_from_slice(GUIDE_TLS.as_bytes());
    std::fs::write(&file, &bytes).unwrap();
    assert!(load(&file).unwrap().warnings.is_empty());
    bytes.extend_from_slice(b"LOG_FILE=/var/log/\xa5\xc7.log\n");
    std::fs::write(&file, &bytes).unwrap();
    assert!(
        load(&file)
            .unwrap_err()
            .to_string()
            .starts_with("LOG_FILE: invalid value")
    );
}

// --- robustness ---------------------------------------------------------------------

#[test]
fn arbitrary_input_never_panics() {
    let pieces = [
        "A",
        "=",
        "\"",
        "'",
        "\\",
        "$",
        "{",
        "}",
        "(",
        ")",
        "`",
        "#",
        " ",
        "\t",
        "\n",
        "\r",
        ";",
        "|",
        "&",
        "~",
        "export ",
        "SERVER_CRT",
        "LISTEN",
        "BACKEND_URL",
        ":",
        "[",
        "]",
        "http://",
        "0",
        "9",
        "s",
        "ms",
        "é",
        "\u{feff}",
        "\u{fffd}",
        ",",
        "/",
        "@",
        "?",
    ];
    // A small deterministic generator, so a failure can be reproduced.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..20_000 {
        let mut text = String::new();
        for _ in 0..(state % 40) {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let index = usize::try_from((state >> 33) % pieces.len() as u64).unwrap();
            text.push_str(pieces[index]);
        }
        let _ = parse(&text, path());
        let _ = parse(&format!("{GUIDE_TLS}{text}"), path());
    }
}

#[test]
fn value_parsers_never_panic_on_odd_input() {
    for value in [
        "",
        " ",
        "é",
        "[",
        "]",
        ":",
        "[:",
        "http://[",
        "http://[]",
        "http://é",
        "9".repeat(400).as_str(),
        "\u{0}",
    ] {
        let _ = parse_backend_url(value);
        let _ = parse_listen(value);
        let _ = parse_duration(value);
        let _ = parse_bool(value);
        for key in KNOWN_KEYS {
            let _ = parse(&format!("{GUIDE_TLS}{key}={value}\n"), path());
        }
        let _ = suggest(value);
    }
}
