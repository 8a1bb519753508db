//! Start-up as WebORCA users know it: the log lines, their order, exit 78 on
//! anything the operator must fix, never a plain-HTTP fallback; and shutdown.

use crate::util::env::Setup;
use crate::util::openssl::openssl;
use crate::util::pki::write;
use crate::util::process::Proc;

fn started(setup: &Setup) -> (Proc, std::path::PathBuf) {
    let conf = setup.write_config("http://127.0.0.1:9");
    (Proc::start(&conf, &[]), conf)
}

#[tokio::test]
async fn logs_weborca_startup_lines_in_order() {
    // with an ACCESS_POLICY and a server certificate about to expire, whose
    // lines come after WebORCA's four, which stay together
    let mut setup = Setup::new();
    setup.server = setup.ca.server(&["localhost"], 10);
    let policy = write(setup.dir.path(), "access-policy", "/ any\n");
    setup
        .conf
        .push(format!("ACCESS_POLICY={}", policy.display()));
    let (mut p, _) = started(&setup);
    p.listening();
    let expected = [
        "CA_CRT ...file exists",
        "SERVER_CRT ...file exists",
        "SERVER_PEM ...file exists",
        "Server Mode: HTTPS",
    ];
    let first = p
        .seen
        .iter()
        .position(|l| l == expected[0])
        .unwrap_or_else(|| panic!("log: {:#?}", p.seen));
    assert_eq!(
        p.seen[first..first + expected.len()],
        expected,
        "log: {:#?}",
        p.seen
    );
    let after = &p.seen[first + expected.len()..];
    assert!(
        after[0].starts_with("ACCESS_POLICY ") && after[0].ends_with(": 1 rules"),
        "log: {:#?}",
        p.seen
    );
    assert!(
        after[1].starts_with("The certificate(/C=JP/O=orca/CN=localhost) will be expired in"),
        "log: {:#?}",
        p.seen
    );
    let listen = p.seen.last().unwrap();
    assert!(
        listen.contains("http://127.0.0.1:9") && listen.contains("/CN=test-ca"),
        "{listen}"
    );
}

fn exit_of(setup: &Setup, conf_extra: Option<&str>) -> (i32, Vec<String>) {
    let conf = setup.write_config("http://127.0.0.1:9");
    if let Some(text) = conf_extra {
        std::fs::write(&conf, text).unwrap();
    }
    Proc::start(&conf, &[]).exit()
}

#[tokio::test]
async fn missing_files_are_logged_and_exit_78() {
    let setup = Setup::new();
    let d = setup.dir.path().display().to_string();
    let text =
        format!("SERVER_CRT={d}/nope.crt\nSERVER_PEM={d}/nope.pem\nCA_CRT={d}/nope-ca.crt\n");
    let (code, lines) = exit_of(&setup, Some(&text));
    assert_eq!(code, 78, "{lines:#?}");
    for key in ["CA_CRT", "SERVER_CRT", "SERVER_PEM"] {
        assert!(
            lines.contains(&format!("{key} ...file does not exist")),
            "{key}: {lines:#?}"
        );
    }
    assert!(!lines.iter().any(|l| l.contains("Server Mode")));
}

#[tokio::test]
async fn no_tls_keys_means_no_start_and_no_plain_http() {
    let setup = Setup::new();
    let (code, lines) = exit_of(&setup, Some("LISTEN=127.0.0.1:0\nDBNAME=orca\n"));
    assert_eq!(code, 78, "{lines:#?}");
    assert!(lines.contains(&"CA_CRT ...none".to_string()), "{lines:#?}");
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("Server Mode") || l.contains("listening"))
    );
}

/// One key of the three unset: WebORCA's lines for all three (`...none` for
/// it, what the others name), then what to set, exit 78.
#[tokio::test]
async fn an_unset_key_is_logged_as_none_with_the_others_then_exit_78() {
    let setup = Setup::new();
    let conf = setup.write_config("http://127.0.0.1:9");
    let full = std::fs::read_to_string(&conf).unwrap();
    let d = setup.dir.path().display().to_string();
    let cases = [
        (
            "CA_CRT",
            [
                "CA_CRT ...none",
                "SERVER_CRT ...file exists",
                "SERVER_PEM ...file exists",
            ],
        ),
        (
            "SERVER_PEM",
            [
                "CA_CRT ...file exists",
                "SERVER_CRT ...file exists",
                "SERVER_PEM ...none",
            ],
        ),
    ];
    for (unset, expected) in cases {
        let text: String = full
            .lines()
            .filter(|l| !l.starts_with(&format!("{unset}=")))
            .map(|l| format!("{l}\n"))
            .collect();
        // and a set path that is missing is said as such
        let text = text.replace("SERVER_CRT=", &format!("SERVER_CRT={d}/gone.crt\n#"));
        std::fs::write(&conf, &text).unwrap();
        let (code, lines) = Proc::start(&conf, &[]).exit();
        assert_eq!(code, 78, "{unset}: {lines:#?}");
        let file_lines: Vec<&str> = lines
            .iter()
            .map(String::as_str)
            .filter(|l| l.contains(" ...") && !l.contains(" is not set"))
            .collect();
        let expected: Vec<String> = expected
            .iter()
            .map(|l| {
                l.replace(
                    "SERVER_CRT ...file exists",
                    "SERVER_CRT ...file does not exist",
                )
            })
            .collect();
        assert_eq!(file_lines, expected, "{unset}: {lines:#?}");
        assert!(
            lines
                .iter()
                .any(|l| l.contains(&format!("{unset} is not set in"))),
            "{unset}: {lines:#?}"
        );
    }
}

#[tokio::test]
async fn encrypted_key_without_passphrase_says_password_input_was_canceled() {
    let setup = Setup::new();
    let conf = setup.write_config("http://127.0.0.1:9");
    // encrypt the key the way orca-catool's .enc.pem is made
    openssl(
        &[
            "pkey",
            "-aes256",
            "-passout",
            "pass:secret",
            "-traditional",
            "-in",
            "000002__JP_orca_localhost.pem",
            "-out",
            "000002__JP_orca_localhost.enc.pem",
        ],
        setup.dir.path(),
    );
    let text = std::fs::read_to_string(&conf)
        .unwrap()
        .replace("localhost.pem", "localhost.enc.pem");
    std::fs::write(&conf, text).unwrap();
    let (code, lines) = Proc::start(&conf, &[]).exit();
    assert_eq!(code, 78, "{lines:#?}");
    let i = lines
        .iter()
        .position(|l| l == "PASSWORD input was canceled")
        .expect("WebORCA's line");
    let fix = &lines[i + 1];
    assert!(
        fix.contains("SERVER_PEM") && fix.contains(".enc.pem"),
        "{fix}"
    );
}

#[tokio::test]
async fn bad_certificate_material_names_key_and_file_and_exits_78() {
    type Breakage = Box<dyn Fn(&Setup)>;
    let cases: Vec<(&str, Breakage)> = vec![
        (
            "SERVER_PEM",
            Box::new(|s: &Setup| {
                let other = s.ca.server(&["localhost"], 30);
                write(
                    s.dir.path(),
                    "000002__JP_orca_localhost.pem",
                    &other.key_pem,
                );
            }),
        ),
        (
            "SERVER_CRT",
            Box::new(|s: &Setup| {
                write(
                    s.dir.path(),
                    "000002__JP_orca_localhost.crt",
                    "-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n",
                );
            }),
        ),
        (
            "SERVER_PEM",
            Box::new(|s: &Setup| {
                write(
                    s.dir.path(),
                    "000002__JP_orca_localhost.pem",
                    "not a key at all\n",
                );
            }),
        ),
        (
            "CA_CRT",
            Box::new(|s: &Setup| {
                // a directory where a file should be: exists, but cannot be read as a file
                let p = s.dir.path().join("ca.crt");
                std::fs::remove_file(&p).unwrap();
                std::fs::create_dir(&p).unwrap();
            }),
        ),
    ];
    for (key, breakit) in cases {
        let setup = Setup::new();
        let conf = setup.write_config("http://127.0.0.1:9");
        breakit(&setup);
        let (code, lines) = Proc::start(&conf, &[]).exit();
        assert_eq!(code, 78, "{key}: {lines:#?}");
        let last = lines.last().unwrap();
        assert!(
            last.contains(key) && last.contains(&setup.dir.path().display().to_string()),
            "{key}: {last}"
        );
    }
}

#[tokio::test]
async fn config_syntax_errors_exit_78_naming_key_file_and_line() {
    let setup = Setup::new();
    let conf = setup.write_config("http://127.0.0.1:9");
    let mut text = std::fs::read_to_string(&conf).unwrap();
    text.push_str("HANDSHAKE_TIMEOUT=soon\n");
    std::fs::write(&conf, &text).unwrap();
    let (code, lines) = Proc::start(&conf, &[]).exit();
    assert_eq!(code, 78);
    let last = lines.last().unwrap();
    assert!(
        last.contains("HANDSHAKE_TIMEOUT")
            && last.contains("soon")
            && last.contains("proxy.conf")
            && last.contains("line 7"),
        "{last}"
    );
}

#[tokio::test]
async fn expiring_server_certificate_is_warned_in_weborca_words() {
    let mut setup = Setup::new();
    setup.server = setup.ca.server(&["localhost"], 10);
    let (mut p, _) = started(&setup);
    p.listening();
    let line = p.seen.iter().position(|l| {
        l.starts_with("The certificate(/C=JP/O=orca/CN=localhost) will be expired in")
    });
    let i = line.unwrap_or_else(|| panic!("{:#?}", p.seen));
    assert_eq!(
        p.seen[i],
        "The certificate(/C=JP/O=orca/CN=localhost) will be expired in 9 days."
    );
    assert_eq!(p.seen[i + 1], "Please update the certificate.");
}

#[tokio::test]
async fn sigterm_finishes_requests_in_flight_and_exits_0() {
    let backend = crate::util::backend::Backend::start().await;
    let setup = Setup::new();
    let conf = setup.write_config(&backend.url());
    let mut p = Proc::start(&conf, &[]);
    let addr = p.listening();
    let client = crate::util::client::Client::h1(&setup.ca.pem, Some(&setup.user1));
    let slow = tokio::spawn({
        let client = client.clone();
        async move { client.get(addr, "/slow").await }
    });
    // the slow request has reached the backend before the signal
    assert!(
        crate::util::raw::eventually(|| backend.count() > 0).await,
        "the slow request never reached the backend"
    );
    p.signal("TERM");
    let answer = slow.await.unwrap().unwrap();
    assert_eq!(answer.status, 200);
    let (code, lines) = p.exit();
    assert_eq!(code, 0, "{lines:#?}");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "no new connections after shutdown"
    );
}

#[tokio::test]
async fn expired_server_certificate_is_warned_with_negative_days() {
    let mut setup = Setup::new();
    // expired one day (and a moment) ago: floor of -1.00… days is -2
    setup.server = setup.ca.server_between(
        &["localhost"],
        (-400, -1),
        rcgen::KeyPair::generate().unwrap(),
    );
    let (mut p, _) = started(&setup);
    p.listening();
    let i = p
        .seen
        .iter()
        .position(|l| l.starts_with("The certificate(/C=JP/O=orca/CN=localhost)"))
        .unwrap_or_else(|| panic!("{:#?}", p.seen));
    assert_eq!(
        p.seen[i],
        "The certificate(/C=JP/O=orca/CN=localhost) will be expired in -2 days."
    );
    assert_eq!(p.seen[i + 1], "Please update the certificate.");
}
