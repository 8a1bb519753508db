//! `setup` and `setup --rollback` against a fake root (`--root`), with a
//! stand-in systemctl that records its calls, a stand-in nft and a stand-in
//! WebORCA: jma-receipt.conf byte for byte before, after and back, idempotence,
//! `--dry-run` and refusals changing nothing.

use std::net::TcpListener;

use crate::util::fakeroot::{CONF_DIR, CRT, FakeRoot, JMA_CONF, KEY, PROXY_CONF, text};
use crate::util::process::{bin, free_port};

/// A jma-receipt.conf as clinics have them: comments, `export`, CRLF line ends,
/// unrelated keys, and WebORCA's own port.
fn weborca_conf(own_port: u16) -> String {
    format!(
        "# jma-receipt.conf\r\nDBNAME=orca\r\nexport DBHOST=localhost # the database\r\n\r\n# SSL (WebORCA client certificates)\r\nexport SERVER_CRT={CONF_DIR}/{CRT}\r\nSERVER_PEM=\"{CONF_DIR}/{KEY}\"\r\nCA_CRT='{CONF_DIR}/ca.crt'  # the clinic CA\r\nHTTP_PORT={own_port}\r\nLANG=ja_JP.UTF-8\r\n"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn setup_then_rollback_changes_jma_receipt_conf_byte_for_byte_and_back() {
    // WebORCA's new port: the stand-in systemctl starts the stand-in WebORCA there
    let port = free_port().to_string();
    // WebORCA's own TLS port, answering again after rollback.
    let own = TcpListener::bind("127.0.0.1:0").unwrap();
    let own_port = own.local_addr().unwrap().port();
    let root = FakeRoot::new();
    let original = weborca_conf(own_port);
    std::fs::write(root.real(JMA_CONF), &original).unwrap();
    let proxy_before = "# proxy\nSERVER_CRT=/old.crt\nACCESS_LOG=off\n";
    std::fs::write(root.real(PROXY_CONF), proxy_before).unwrap();
    let args = ["setup", "--backend-port", &port, "--host", "localhost"];

    let out = root.run(&args);
    assert!(out.status.success(), "{}", text(&out));
    let expected = format!(
        "# jma-receipt.conf\r\nDBNAME=orca\r\nexport DBHOST=localhost # the database\r\n\r\n# SSL (WebORCA client certificates)\r\n#weborca-mtls-proxy# export SERVER_CRT={CONF_DIR}/{CRT}\r\n#weborca-mtls-proxy# SERVER_PEM=\"{CONF_DIR}/{KEY}\"\r\n#weborca-mtls-proxy# CA_CRT='{CONF_DIR}/ca.crt'  # the clinic CA\r\nHTTP_PORT={own_port}\r\nLANG=ja_JP.UTF-8\r\n# >>> weborca-mtls-proxy\r\nHTTP_PORT={port}\r\n# <<< weborca-mtls-proxy\r\n"
    );
    assert_eq!(String::from_utf8(root.read(JMA_CONF)).unwrap(), expected);
    let backup = format!("{JMA_CONF}.before-weborca-mtls-proxy");
    assert_eq!(root.read(&backup), original.as_bytes());
    let proxy = String::from_utf8(root.read(PROXY_CONF)).unwrap();
    assert_eq!(
        proxy,
        format!(
            "# proxy\nSERVER_CRT={CONF_DIR}/{CRT}\nACCESS_LOG=off\nSERVER_PEM={CONF_DIR}/{KEY}\nCA_CRT={CONF_DIR}/ca.crt\nBACKEND_URL=http://127.0.0.1:{port}\nLISTEN=[::]:{own_port}\n"
        )
    );
    // The guard file is what `guard print` prints for the port, named or
    // read from the proxy.conf setup wrote (its BACKEND_URL)
    let printed = std::process::Command::new(bin())
        .args(["guard", "print", "--port", &port])
        .output()
        .unwrap();
    assert_eq!(
        root.read("/etc/weborca-mtls-proxy/guard.nft"),
        printed.stdout
    );
    let from_conf = std::process::Command::new(bin())
        .args(["guard", "print", "-c"])
        .arg(root.real(PROXY_CONF))
        .output()
        .unwrap();
    assert_eq!(
        from_conf.stdout,
        printed.stdout,
        "{}",
        String::from_utf8_lossy(&from_conf.stderr)
    );
    let missing = std::process::Command::new(bin())
        .args(["guard", "print", "-c", "/nonexistent/proxy.conf"])
        .output()
        .unwrap();
    assert_eq!(
        missing.status.code(),
        Some(78),
        "a config named but unreadable"
    );
    assert!(missing.stdout.is_empty());
    let zero = std::process::Command::new(bin())
        .args(["guard", "print", "--port", "0"])
        .output()
        .unwrap();
    assert!(!zero.status.success() && zero.stdout.is_empty());
    // WebORCA runs only with the guard.
    let drop_in = "/etc/systemd/system/jma-receipt-weborca.service.d/weborca-mtls-proxy-guard.conf";
    let drop_in_text = String::from_utf8(root.read(drop_in)).unwrap();
    assert!(
        drop_in_text.contains(
            "Requires=weborca-mtls-proxy-guard.service\nAfter=weborca-mtls-proxy-guard.service\n"
        ),
        "{drop_in_text}"
    );
    let mut calls = root.take_calls();
    // is-active is asked again until the stand-in WebORCA answers
    calls.dedup_by(|a, b| a == b && a.starts_with("is-active"));
    assert_eq!(
        calls,
        [
            "daemon-reload",
            "is-active --quiet weborca-mtls-proxy-guard.service",
            "enable --now weborca-mtls-proxy-guard.service",
            "restart jma-receipt-weborca.service",
            "enable weborca-mtls-proxy.service",
            "restart weborca-mtls-proxy.service",
            "is-active weborca-mtls-proxy.service",
        ]
    );
    assert!(text(&out).contains("setup --rollback"), "{}", text(&out));

    // Twice: nothing changes, nothing is restarted.
    let snapshot = root.snapshot();
    let out = root.run(&args);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("nothing to change"), "{}", text(&out));
    assert_eq!(root.snapshot(), snapshot);
    let calls = root.take_calls();
    assert!(!calls.iter().any(|c| c.starts_with("restart")), "{calls:?}");

    // A rerun that changes proxy.conf alone restarts the proxy alone, and
    // keeps the server certificate proxy.conf names now (install-cert may
    // have put a new one there since).
    let proxy_now = String::from_utf8(root.read(PROXY_CONF)).unwrap();
    let (old_crt, new_crt) = (format!("{CONF_DIR}/{CRT}"), format!("{CONF_DIR}/new.crt"));
    std::fs::copy(root.real(&old_crt), root.real(&new_crt)).unwrap();
    let installed = proxy_now.replace(
        &format!("SERVER_CRT={old_crt}"),
        &format!("SERVER_CRT={new_crt}"),
    );
    assert_ne!(installed, proxy_now);
    let broken = installed.replace(
        &format!("BACKEND_URL=http://127.0.0.1:{port}"),
        "BACKEND_URL=http://127.0.0.1:1",
    );
    assert_ne!(broken, installed);
    std::fs::write(root.real(PROXY_CONF), broken).unwrap();
    let out = root.run(&args);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8(root.read(PROXY_CONF)).unwrap(), installed);
    let calls = root.take_calls();
    assert!(
        calls.contains(&"restart weborca-mtls-proxy.service".to_string()),
        "the proxy must take its new config: {calls:?}"
    );
    assert!(
        !calls
            .iter()
            .any(|c| c.starts_with("restart") && c != "restart weborca-mtls-proxy.service"),
        "only the proxy is restarted: {calls:?}"
    );

    // WebORCA moved to another port: it is stopped before the guard for the
    // new port replaces the old one (restarted on its old port meanwhile, it
    // would serve plain HTTP there unguarded).
    // WebORCA's new port: the stand-in systemctl starts the stand-in WebORCA there
    let port2 = free_port().to_string();
    let out = root.run(&["setup", "--backend-port", &port2, "--host", "localhost"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8(root.read(JMA_CONF))
            .unwrap()
            .contains(&format!("HTTP_PORT={port2}\r\n"))
    );
    let calls = root.take_calls();
    let at = |c: &str| {
        calls
            .iter()
            .position(|x| x == c)
            .unwrap_or_else(|| panic!("no {c}: {calls:?}"))
    };
    assert!(
        at("stop jma-receipt-weborca.service") < at("restart weborca-mtls-proxy-guard.service"),
        "{calls:?}"
    );
    assert!(
        at("restart weborca-mtls-proxy-guard.service") < at("restart jma-receipt-weborca.service"),
        "{calls:?}"
    );

    // An edit made since setup survives rollback.
    let edited = String::from_utf8(root.read(JMA_CONF))
        .unwrap()
        .replace("DBNAME=orca", "DBNAME=orca2");
    std::fs::write(root.real(JMA_CONF), &edited).unwrap();
    // What the proxy enforced and WebORCA's own TLS will not is said first.
    let mut proxy_conf = String::from_utf8(root.read(PROXY_CONF)).unwrap();
    proxy_conf.push_str("ALLOW_CN=user1\n");
    std::fs::write(root.real(PROXY_CONF), proxy_conf).unwrap();
    // The port is WebORCA's again: the stand-in WebORCA serves TLS there.
    drop(own);
    let out = root.run(&["setup", "--rollback"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(&format!(
            "WebORCA answers on its own port {own_port} again, with its own TLS"
        )),
        "{}",
        text(&out)
    );
    for warning in [
        "WARNING: ALLOW_CN in /etc/weborca-mtls-proxy/proxy.conf (user1): WebORCA's own TLS accepts every certificate its CA issued",
        &format!("WARNING: SERVER_CRT: WebORCA goes back to {CONF_DIR}/{CRT}"),
    ] {
        assert!(text(&out).contains(warning), "{warning}: {}", text(&out));
    }
    assert!(!text(&out).contains("WARNING: CA_CRT"), "{}", text(&out));
    assert_eq!(
        String::from_utf8(root.read(JMA_CONF)).unwrap(),
        original.replace("DBNAME=orca", "DBNAME=orca2")
    );
    assert_eq!(
        root.take_calls(),
        [
            "disable --now weborca-mtls-proxy.service",
            "daemon-reload",
            "restart jma-receipt-weborca.service",
            "disable --now weborca-mtls-proxy-guard.service",
        ]
    );
    assert!(!root.real(drop_in).exists(), "rollback removes the drop-in");
}

#[tokio::test(flavor = "multi_thread")]
async fn setup_dry_run_prints_diffs_and_commands_and_changes_nothing() {
    // WebORCA's new port: the stand-in systemctl starts the stand-in WebORCA there
    let port = free_port().to_string();
    let root = FakeRoot::new();
    // with a line the parser passes over, which setup names as check does
    let conf = weborca_conf(8000).replace("\r\n", "\n") + "PGOPTS=$(cat /etc/pgopts)\n";
    std::fs::write(root.real(JMA_CONF), conf).unwrap();
    let before = root.snapshot();
    let out = root.run(&[
        "setup",
        "--dry-run",
        "--backend-port",
        &port,
        "--host",
        "localhost",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let t = text(&out);
    assert!(
        t.contains("warning: ") && t.contains("line 11: ignored, not a plain KEY=VALUE assignment"),
        "{t}"
    );
    let needles: [String; 11] = [
        format!("--- {JMA_CONF}"),
        format!("+++ {JMA_CONF}"),
        format!("-export SERVER_CRT={CONF_DIR}/{CRT}"),
        format!("+#weborca-mtls-proxy# export SERVER_CRT={CONF_DIR}/{CRT}"),
        format!("+HTTP_PORT={port}"),
        "--- /dev/null".to_string(),
        format!("+++ {PROXY_CONF}"),
        format!("+BACKEND_URL=http://127.0.0.1:{port}"),
        format!("tcp dport {port} drop"),
        "restart jma-receipt-weborca.service".to_string(),
        "enable --now weborca-mtls-proxy-guard.service".to_string(),
    ];
    for needle in &needles {
        assert!(t.contains(needle), "{needle}: {t}");
    }
    assert!(!t.contains("LISTEN="), "port 8000 needs no LISTEN: {t}");
    assert_eq!(root.snapshot(), before);
    assert!(root.take_calls().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn setup_no_restart_moves_weborca_only_once_the_guard_is_in_force() {
    // WebORCA's new port: the stand-in systemctl starts the stand-in WebORCA there
    let port = free_port().to_string();
    let root = FakeRoot::new();
    let original = weborca_conf(8000);
    std::fs::write(root.real(JMA_CONF), &original).unwrap();
    let args = [
        "setup",
        "--no-restart",
        "--backend-port",
        &port,
        "--host",
        "localhost",
    ];
    // The guard is not in force yet: everything but jma-receipt.conf.
    let out = root.run(&args);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8(root.read(JMA_CONF)).unwrap(), original);
    assert!(
        text(&out).contains("is left as it is: WebORCA must not move to plain HTTP"),
        "{}",
        text(&out)
    );
    assert!(root.real("/etc/weborca-mtls-proxy/guard.nft").is_file());
    assert!(!root.read(PROXY_CONF).is_empty());
    assert!(root.take_calls().is_empty());

    // The operator starts the guard as told; the second run moves WebORCA.
    let started = std::process::Command::new(root.systemctl())
        .args(["enable", "--now", "weborca-mtls-proxy-guard.service"])
        .status()
        .unwrap();
    assert!(started.success());
    root.take_calls();
    let out = root.run(&args);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8(root.read(JMA_CONF))
            .unwrap()
            .contains(&format!("HTTP_PORT={port}\r\n"))
    );
    assert!(root.take_calls().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn setup_leaves_weborca_where_it_is_when_the_guard_does_not_come_into_force() {
    // WebORCA's new port: the stand-in systemctl starts the stand-in WebORCA there
    let port = free_port().to_string();
    // WebORCA's own TLS port, which rollback waits for
    let own = TcpListener::bind("127.0.0.1:0").unwrap();
    let root = FakeRoot::new();
    let original = weborca_conf(own.local_addr().unwrap().port());
    std::fs::write(root.real(JMA_CONF), &original).unwrap();
    // nft sees no guard table, whatever systemctl says
    std::fs::write(
        root.nft(),
        "#!/bin/sh\necho 'Error: No such file or directory; did you mean table inet filter?' >&2\nexit 1\n",
    )
    .unwrap();
    let out = root.run(&["setup", "--backend-port", &port, "--host", "localhost"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("WebORCA was not moved"),
        "{}",
        text(&out)
    );
    assert_eq!(String::from_utf8(root.read(JMA_CONF)).unwrap(), original);
    let calls = root.take_calls();
    assert!(
        !calls
            .iter()
            .any(|c| c.contains("jma-receipt-weborca") || c.contains("weborca-mtls-proxy.service")),
        "{calls:?}"
    );
    // and rollback puts the rest back, with WebORCA (the stand-in, in TLS)
    // on its own port
    drop(own);
    let started = std::process::Command::new(root.systemctl())
        .args(["start", "jma-receipt-weborca.service"])
        .status()
        .unwrap();
    assert!(started.success());
    let out = root.run(&["setup", "--rollback"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8(root.read(JMA_CONF)).unwrap(), original);
}

/// The regression of a guard that fails to start (its unit exits 1 and
/// prints nothing): setup had left the drop-in (`Requires=` the guard) and
/// proxy.conf written, so WebORCA would not have started at its next
/// restart. Now every file it wrote is put back, systemd reloaded without
/// the drop-in, the guard stopped and disabled again, and the message says
/// so, and that the command printed nothing.
#[test]
fn setup_puts_back_what_it_wrote_when_the_guard_fails_to_start() {
    let port = free_port().to_string();
    let root = FakeRoot::new();
    std::fs::write(root.real(JMA_CONF), weborca_conf(free_port())).unwrap();
    std::fs::write(root.real(PROXY_CONF), "# proxy\nACCESS_LOG=off\n").unwrap();
    let real = root.systemctl().with_file_name("systemctl-real");
    std::fs::copy(root.systemctl(), &real).unwrap();
    std::fs::write(
        root.systemctl(),
        format!(
            "#!/bin/sh\ncase \"$*\" in 'enable --now weborca-mtls-proxy-guard.service'|'start weborca-mtls-proxy-guard.service') echo \"$*\" >> '{}'; exit 1 ;; esac\nexec '{}' \"$@\"\n",
            root.calls.display(),
            real.display()
        ),
    )
    .unwrap();
    let before = root.snapshot();
    let out = root.run(&["setup", "--backend-port", &port, "--host", "localhost"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    let drop_in = "/etc/systemd/system/jma-receipt-weborca.service.d/weborca-mtls-proxy-guard.conf";
    assert!(
        t.contains("enable --now weborca-mtls-proxy-guard.service failed (exit status: 1): it printed nothing")
            && t.contains("WebORCA was not moved")
            && t.contains(&format!("removed {drop_in}"))
            && t.contains("removed /etc/weborca-mtls-proxy/guard.nft")
            && t.contains(&format!("put back {PROXY_CONF} as it was"))
            && t.contains("the guard is stopped and disabled again")
            && !t.contains("setup --rollback"),
        "{t}"
    );
    // Every file as it was; only the copy kept of proxy.conf is new.
    let after: Vec<_> = root
        .snapshot()
        .into_iter()
        .filter(|(p, _)| !p.to_string_lossy().ends_with(".before-weborca-mtls-proxy"))
        .collect();
    assert_eq!(after, before);
    assert!(
        !root
            .real("/etc/systemd/system/jma-receipt-weborca.service.d")
            .exists(),
        "the drop-in's folder, made by this run, goes too"
    );
    let calls = root.take_calls();
    let failed = calls
        .iter()
        .position(|c| c == "enable --now weborca-mtls-proxy-guard.service")
        .expect("the guard was started");
    assert_eq!(
        calls[failed + 1..],
        [
            "daemon-reload",
            "disable --now weborca-mtls-proxy-guard.service"
        ],
        "{calls:?}"
    );
}

/// The regression of a rerun for a new port whose guard fails to restart:
/// setup had stopped WebORCA to move it and left it stopped, and its
/// message did not say so. Now WebORCA is started again where it was, once
/// the guard is back in force with its old script; and when even that
/// fails, the message says first that WebORCA is stopped and how to start it.
#[test]
fn setup_rerun_starts_weborca_again_when_the_guard_fails_to_restart() {
    let (port1, port2) = (free_port(), free_port());
    let root = FakeRoot::new();
    std::fs::write(root.real(JMA_CONF), weborca_conf(free_port())).unwrap();
    let first = root.run(&[
        "setup",
        "--backend-port",
        &port1.to_string(),
        "--host",
        "localhost",
    ]);
    assert!(first.status.success(), "{}", text(&first));
    let backend1: std::net::SocketAddr = ([127, 0, 0, 1], port1).into();
    let probe = || weborca_mtls_proxy::check::http_probe(backend1, "localhost");
    // the stand-in WebORCA listens a moment after systemctl has started it
    let answers = || {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while probe().is_err() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        probe().is_ok()
    };
    assert!(answers(), "WebORCA runs behind the guard on {port1}");
    let jma_before = root.read(JMA_CONF);
    let guard_before = root.read("/etc/weborca-mtls-proxy/guard.nft");
    // A guard whose restart fails, with the new script only (`only_new`)
    // or with any: its table is gone then, as after a failed ExecStart.
    let real = root.systemctl().with_file_name("systemctl-real");
    std::fs::copy(root.systemctl(), &real).unwrap();
    let failing_restart = |only_new: bool| {
        let condition = if only_new {
            format!(
                "grep -q 'dport {port2} ' '{}'",
                root.real("/etc/weborca-mtls-proxy/guard.nft").display()
            )
        } else {
            "true".to_string()
        };
        std::fs::write(
            root.systemctl(),
            format!(
                "#!/bin/sh\nif [ \"$*\" = 'restart weborca-mtls-proxy-guard.service' ] && {condition}; then echo \"$*\" >> '{}'; rm -f '{}'; echo 'Job for weborca-mtls-proxy-guard.service failed because the control process exited with error code.' >&2; exit 1; fi\nexec '{}' \"$@\"\n",
                root.calls.display(),
                root.guard_table().display(),
                real.display()
            ),
        )
        .unwrap();
    };
    let rerun = || {
        root.take_calls();
        root.run(&[
            "setup",
            "--backend-port",
            &port2.to_string(),
            "--host",
            "localhost",
        ])
    };

    // The new script fails, the old one loads: WebORCA runs again as it was.
    failing_restart(true);
    let out = rerun();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("WebORCA was not moved")
            && t.contains(&format!(
                "WebORCA, which this run had stopped, is started again on its port {port1} behind the guard as it was"
            ))
            && !t.contains("WebORCA IS STOPPED"),
        "{t}"
    );
    assert_eq!(root.read(JMA_CONF), jma_before);
    assert_eq!(root.read("/etc/weborca-mtls-proxy/guard.nft"), guard_before);
    assert!(answers(), "WebORCA answers on {port1} again: {t}");
    let calls = root.take_calls();
    let stop = calls
        .iter()
        .position(|c| c == "stop jma-receipt-weborca.service")
        .unwrap_or_else(|| panic!("WebORCA was stopped to move it: {calls:?}"));
    assert_eq!(
        calls[stop..],
        [
            "stop jma-receipt-weborca.service",
            "restart weborca-mtls-proxy-guard.service",
            "daemon-reload",
            "is-active --quiet jma-receipt-weborca.service",
            "restart weborca-mtls-proxy-guard.service",
            "start jma-receipt-weborca.service",
        ],
        "the guard in force again before WebORCA starts: {calls:?}"
    );

    // No script loads: WebORCA stays stopped (never unguarded), and the
    // message says so first, with the command that starts it.
    failing_restart(false);
    let out = rerun();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains(
            "WebORCA IS STOPPED: this run stopped it to move it, and it could not be started again"
        ) && t.contains("start WebORCA with: sudo systemctl start jma-receipt-weborca.service")
            && !t.contains("is started again"),
        "{t}"
    );
    assert!(probe().is_err(), "WebORCA is stopped, as the message says");
    let calls = root.take_calls();
    assert!(
        !calls.contains(&"start jma-receipt-weborca.service".to_string()),
        "WebORCA is not started without its guard: {calls:?}"
    );
}

#[test]
fn setup_refuses_with_nothing_changed_when_another_program_listens_on_the_backend_port() {
    // Another program on the port WebORCA is to move to (it would keep WebORCA
    // from listening, and answer setup's check that WebORCA answers).
    let stranger = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = stranger.local_addr().unwrap().port().to_string();
    let root = FakeRoot::new();
    std::fs::write(root.real(JMA_CONF), weborca_conf(8000)).unwrap();
    let before = root.snapshot();
    for extra in [&[][..], &["--dry-run"], &["--no-restart"]] {
        let mut args = vec!["setup", "--backend-port", &port, "--host", "localhost"];
        args.extend_from_slice(extra);
        let out = root.run(&args);
        assert_eq!(out.status.code(), Some(1), "{extra:?}: {}", text(&out));
        let t = text(&out);
        for needle in [
            format!(
                "--backend-port {port}: another program already listens on port {port} (127.0.0.1:{port} by "
            ),
            // the program is named: this test process holds the socket
            format!("(PID {}", std::process::id()),
            "nothing was changed".to_string(),
            format!("sudo ss -ltnp 'sport = :{port}'"),
        ] {
            assert!(t.contains(&needle), "{extra:?}: {needle}: {t}");
        }
        assert_eq!(root.snapshot(), before, "{extra:?}");
        assert!(root.take_calls().is_empty(), "{extra:?}");
    }
    // Once it is gone, the same setup goes through.
    drop(stranger);
    let out = root.run(&["setup", "--backend-port", &port, "--host", "localhost"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("WebORCA answers on 127.0.0.1:{port}")),
        "{}",
        text(&out)
    );
}

#[test]
fn setup_refuses_with_nothing_changed_when_a_key_or_file_is_missing_or_a_check_fails() {
    let root = FakeRoot::new();
    // No CA_CRT.
    let conf = weborca_conf(8000).replace("CA_CRT=", "#CA_CRT=");
    std::fs::write(root.real(JMA_CONF), &conf).unwrap();
    let before = root.snapshot();
    let out = root.run(&["setup", "--host", "localhost"]);
    assert_eq!(out.status.code(), Some(78), "{}", text(&out));
    assert!(
        text(&out).contains("CA_CRT not set in /opt/jma/weborca/conf/jma-receipt.conf"),
        "{}",
        text(&out)
    );
    assert_eq!(root.snapshot(), before);

    // Two files that are not there: both are named.
    std::fs::write(
        root.real(JMA_CONF),
        weborca_conf(8000)
            .replace(CRT, "gone.crt")
            .replace("ca.crt", "gone-ca.crt"),
    )
    .unwrap();
    let before = root.snapshot();
    let out = root.run(&["setup", "--host", "localhost"]);
    assert_eq!(out.status.code(), Some(78), "{}", text(&out));
    for named in [
        format!("SERVER_CRT ...file does not exist: {CONF_DIR}/gone.crt"),
        format!("CA_CRT ...file does not exist: {CONF_DIR}/gone-ca.crt"),
    ] {
        assert!(text(&out).contains(&named), "{named}: {}", text(&out));
    }
    assert!(
        !text(&out).contains("SERVER_PEM ...file does not exist"),
        "{}",
        text(&out)
    );
    assert_eq!(root.snapshot(), before);

    // A host the certificate does not cover: the check FAILs.
    std::fs::write(root.real(JMA_CONF), weborca_conf(8000)).unwrap();
    let before = root.snapshot();
    let out = root.run(&["setup", "--host", "orca.example"]);
    assert_eq!(out.status.code(), Some(78), "{}", text(&out));
    let t = text(&out);
    assert!(
        t.contains("FAIL server certificate does not cover orca.example"),
        "{t}"
    );
    assert!(t.contains("setup stopped before changing anything"), "{t}");
    assert_eq!(root.snapshot(), before);

    // A key readable by others: the check FAILs too.
    use std::os::unix::fs::PermissionsExt;
    let key = root.real(&format!("{CONF_DIR}/{KEY}"));
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let before = root.snapshot();
    let out = root.run(&["setup", "--host", "localhost"]);
    assert_eq!(out.status.code(), Some(78), "{}", text(&out));
    assert!(
        text(&out).contains("readable by group or others"),
        "{}",
        text(&out)
    );
    assert_eq!(root.snapshot(), before);
    assert!(root.take_calls().is_empty());
}

#[test]
fn setup_without_root_says_root_is_needed() {
    // As an unprivileged user (setpriv, from util-linux): no --root, no --dry-run.
    let is_root = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"));
    let mut cmd = if is_root {
        let mut c = std::process::Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", bin()]);
        c
    } else {
        std::process::Command::new(bin())
    };
    let out = cmd.arg("setup").output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("needs root") && t.contains("--dry-run"), "{t}");
}

/// `--root` with neither SYSTEMCTL nor NFT prepares another system: every
/// file is written, jma-receipt.conf too (the root's systemd reads the
/// drop-in, which starts WebORCA only with the guard), no name of this
/// machine is asked of the certificate, and rollback (its dry run naming the
/// drop-in it removes) puts every file back.
#[test]
fn setup_under_root_alone_writes_every_file_and_rollback_takes_them_back() {
    let root = FakeRoot::new();
    let original = weborca_conf(8000);
    std::fs::write(root.real(JMA_CONF), &original).unwrap();
    let out = root.run_bare(&["setup"]);
    assert!(out.status.success(), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("the names clients use are not checked"), "{t}");
    assert!(!t.contains("FAIL"), "{t}");
    let moved = String::from_utf8(root.read(JMA_CONF)).unwrap();
    assert!(
        moved.contains("#weborca-mtls-proxy# export SERVER_CRT=")
            && moved.ends_with(
                "# >>> weborca-mtls-proxy\r\nHTTP_PORT=8001\r\n# <<< weborca-mtls-proxy\r\n"
            ),
        "{moved}"
    );
    let backup = format!("{JMA_CONF}.before-weborca-mtls-proxy");
    assert_eq!(root.read(&backup), original.as_bytes());
    let drop_in = "/etc/systemd/system/jma-receipt-weborca.service.d/weborca-mtls-proxy-guard.conf";
    assert!(
        String::from_utf8(root.read(drop_in))
            .unwrap()
            .contains("Requires=weborca-mtls-proxy-guard.service"),
    );
    assert!(root.real("/etc/weborca-mtls-proxy/guard.nft").is_file());
    assert!(
        String::from_utf8(root.read(PROXY_CONF))
            .unwrap()
            .contains("BACKEND_URL=http://127.0.0.1:8001\n")
    );
    assert!(root.take_calls().is_empty(), "no systemctl ran");

    // The second run changes nothing.
    let after = root.snapshot();
    let out = root.run_bare(&["setup"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(root.snapshot(), after);

    let before_rollback = root.snapshot();
    let out = root.run_bare(&["setup", "--rollback", "--dry-run"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("remove {drop_in}")),
        "{}",
        text(&out)
    );
    assert_eq!(root.snapshot(), before_rollback);

    let out = root.run_bare(&["setup", "--rollback"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(root.read(JMA_CONF), original.as_bytes());
    assert!(!root.real(drop_in).exists());
    assert!(root.take_calls().is_empty(), "no systemctl ran");
}

/// The regression of a rollback that reported success on a damaged block
/// and left `HTTP_PORT=8001` in force: a missing end or start marker is
/// refused with nothing changed, naming the file and the line; a line the
/// operator added inside the block is kept (with a note naming it), not dropped.
#[test]
fn setup_rollback_refuses_a_damaged_block_and_keeps_lines_added_inside_it() {
    let root = FakeRoot::new();
    let original = weborca_conf(8000);
    std::fs::write(root.real(JMA_CONF), &original).unwrap();
    let out = root.run_bare(&["setup"]);
    assert!(out.status.success(), "{}", text(&out));
    let moved = String::from_utf8(root.read(JMA_CONF)).unwrap();
    let block_line = moved.lines().count() - 2; // `# >>> …`, 1-based
    for (damage, line, needle) in [
        (
            "# <<< weborca-mtls-proxy\r\n",
            block_line,
            "`# >>> weborca-mtls-proxy` has no `# <<< weborca-mtls-proxy` after it",
        ),
        (
            "# >>> weborca-mtls-proxy\r\n",
            block_line + 1,
            "`# <<< weborca-mtls-proxy` has no `# >>> weborca-mtls-proxy` before it",
        ),
    ] {
        std::fs::write(root.real(JMA_CONF), moved.replace(damage, "")).unwrap();
        let before = root.snapshot();
        for args in [&["setup", "--rollback"][..], &["setup"][..]] {
            let out = root.run_bare(args);
            let t = text(&out);
            assert_eq!(out.status.code(), Some(78), "{args:?}: {t}");
            assert!(
                t.contains(&format!(
                    "{JMA_CONF} line {line}: the block setup added is damaged"
                )) && t.contains(needle)
                    && t.contains("Nothing was changed"),
                "{args:?}: {t}"
            );
            assert_eq!(root.snapshot(), before, "{args:?}");
        }
    }
    // A line of the operator's inside the block stays.
    let edited = moved.replace(
        "HTTP_PORT=8001\r\n",
        "HTTP_PORT=8001\r\nJAVA_OPTS=-Xmx2g\r\n",
    );
    std::fs::write(root.real(JMA_CONF), &edited).unwrap();
    let out = root.run_bare(&["setup", "--rollback"]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains(&format!(
            "note: {JMA_CONF} line {} (JAVA_OPTS=-Xmx2g) is inside setup's block but setup did not write it: it is kept",
            block_line + 2
        )),
        "{t}"
    );
    assert_eq!(
        String::from_utf8(root.read(JMA_CONF)).unwrap(),
        format!("{original}JAVA_OPTS=-Xmx2g\r\n")
    );
}

/// The regression of setup under `--root` looking the service user (orca)
/// up in this machine's /etc/passwd: the root's own decides. An orca there
/// that cannot read the key (another uid, key mode 0400) stops setup with
/// nothing changed; an orca there that owns the files is found, whatever
/// this machine's passwd says.
#[test]
fn setup_under_root_checks_the_service_user_of_the_roots_passwd() {
    let root = FakeRoot::new();
    std::fs::write(root.real(JMA_CONF), weborca_conf(8000)).unwrap();
    std::fs::write(
        root.real("/etc/passwd"),
        "root:x:0:0::/root:/bin/sh\norca:x:4242:4242::/home/orca:/bin/sh\n",
    )
    .unwrap();
    let before = root.snapshot();
    let out = root.run_bare(&["setup"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(78), "{t}");
    assert!(
        t.contains(&format!(
            "SERVER_PEM {}",
            root.real(&format!("{CONF_DIR}/{KEY}")).display()
        )) && t.contains("is not readable by user orca (owner uid")
            && !t.contains("does not exist"),
        "{t}"
    );
    assert_eq!(root.snapshot(), before);

    crate::util::zips::passwd_with_orca(root.dir.path());
    let out = root.run_bare(&["setup", "--dry-run"]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains("exists and is readable by orca") && !t.contains("does not exist"),
        "{t}"
    );
}

/// A listener standing for WebORCA's own port, which writes `answer(first
/// bytes read)` to each connection (and keeps the stand-in WebORCA from
/// binding there); its port.
fn own_port_answering(answer: fn(&[u8]) -> &'static [u8]) -> u16 {
    use std::io::{Read, Write};
    let own = TcpListener::bind("127.0.0.1:0").unwrap();
    let own_port = own.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut conn in own.incoming().flatten() {
            let mut first = [0u8; 1024];
            let Ok(n) = conn.read(&mut first) else {
                continue;
            };
            let _ = conn.write_all(answer(&first[..n]));
        }
    });
    own_port
}

/// Setup, then `setup --rollback`, in a fake root whose WebORCA had its
/// own TLS on `own_port`: the rollback's output.
fn set_up_and_roll_back(own_port: u16) -> std::process::Output {
    let port = free_port().to_string();
    let root = FakeRoot::new();
    std::fs::write(root.real(JMA_CONF), weborca_conf(own_port)).unwrap();
    let out = root.run(&["setup", "--backend-port", &port, "--host", "localhost"]);
    assert!(out.status.success(), "{}", text(&out));
    root.run(&["setup", "--rollback"])
}

/// The regression of a rollback that called a TCP connect "its own TLS":
/// when WebORCA's own port answers plain HTTP (its SSL keys not in force),
/// rollback exits 1 with an error naming jma-receipt.conf's keys and the
/// restart, instead of claiming success.
#[test]
fn setup_rollback_fails_when_weborca_answers_plain_http_on_its_own_port() {
    // WebORCA's own port, answering plain HTTP (400 to a TLS ClientHello, as
    // an HTTP server does); it keeps the stand-in WebORCA from binding there.
    let own_port = own_port_answering(|_| {
        b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    });
    let out = set_up_and_roll_back(own_port);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains(&format!(
            "ERROR: WebORCA answers on port {own_port} in plain HTTP, without TLS"
        )) && t.contains(&format!(
            "SERVER_CRT, SERVER_PEM and CA_CRT are set (not commented out) in {JMA_CONF}"
        )) && t.contains("sudo systemctl restart jma-receipt-weborca.service")
            && !t.contains("with its own TLS"),
        "{t}"
    );
}

/// The regression of a rollback that took a TLS server for plain HTTP:
/// WebORCA is a Go server, and Go answers a plain-HTTP request on its TLS
/// port with `HTTP/1.0 400 Bad Request` and "Client sent an HTTP request to
/// an HTTPS server.". When the handshake with it failed, rollback read that
/// answer as plain HTTP and said every LAN machine reached WebORCA without
/// a certificate. It now says that the port speaks TLS, quotes the
/// handshake's error, and names jma-receipt.conf's keys and the restart.
#[test]
fn setup_rollback_tells_a_tls_port_whose_handshake_fails_from_plain_http() {
    // WebORCA's own port, answering as a Go TLS server that cannot agree on
    // a handshake with the client: a handshake_failure alert to a
    // ClientHello, Go's own 400 to a plain-HTTP request.
    let own_port = own_port_answering(|first| {
        if first.first() == Some(&0x16) {
            // alert record: fatal (2), handshake_failure (40)
            &[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28]
        } else {
            b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"
        }
    });
    let out = set_up_and_roll_back(own_port);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains(&format!(
            "WebORCA speaks TLS on its own port {own_port} again (to a plain-HTTP request it answers \"Client sent an HTTP request to an HTTPS server.\"), so it is not open in plain HTTP"
        )) && t.contains("the TLS handshake failed")
            && t.contains("HandshakeFailure")
            && t.contains(&format!("SERVER_CRT, SERVER_PEM and CA_CRT in {JMA_CONF}"))
            && t.contains("sudo systemctl restart jma-receipt-weborca.service")
            && !t.contains("in plain HTTP, without TLS")
            && !t.contains("with its own TLS"),
        "{t}"
    );
}

/// `--root` with a SYSTEMCTL but no NFT: the guard cannot be asked about
/// (this machine's ruleset is not the root's), so setup says so and goes on
/// once `daemon-reload` has given the root's systemd the drop-in, which starts
/// WebORCA there only with the guard; with `--no-restart` (no daemon-reload)
/// WebORCA is not moved.
#[tokio::test(flavor = "multi_thread")]
async fn setup_under_root_with_systemctl_but_no_nft_does_not_ask_this_machines_nft() {
    // WebORCA's new port: the stand-in systemctl starts the stand-in WebORCA there
    let port = free_port().to_string();
    let root = FakeRoot::new();
    let original = weborca_conf(8000);
    std::fs::write(root.real(JMA_CONF), &original).unwrap();
    // --no-restart: no daemon-reload, so the root's running systemd does not
    // know the drop-in yet; WebORCA stays where it is
    let out = root.run_with(
        &[
            "setup",
            "--no-restart",
            "--backend-port",
            &port,
            "--host",
            "localhost",
        ],
        ["systemctl"],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(root.read(JMA_CONF), original.as_bytes());
    assert!(
        text(&out).contains("is left as it is: WebORCA must not move to plain HTTP"),
        "{}",
        text(&out)
    );
    assert!(root.take_calls().is_empty());
    let out = root.run_with(
        &["setup", "--backend-port", &port, "--host", "localhost"],
        ["systemctl"],
    );
    assert!(out.status.success(), "{}", text(&out));
    let t = text(&out);
    assert!(
        t.contains("the guard's table is not confirmed with nft"),
        "{t}"
    );
    assert!(
        String::from_utf8(root.read(JMA_CONF))
            .unwrap()
            .contains(&format!("HTTP_PORT={port}\r\n"))
    );
    let calls = root.take_calls();
    assert!(
        calls
            .iter()
            .any(|c| c.contains("restart jma-receipt-weborca.service")),
        "{calls:?}"
    );
}

/// A jma-receipt.conf with an EUC-JP comment (not UTF-8): setup changes only
/// its own lines, every other byte stays, and rollback gives the file back
/// byte for byte.
#[test]
fn setup_keeps_the_bytes_of_a_jma_receipt_conf_that_is_not_utf8() {
    let root = FakeRoot::new();
    // 「証明書の設定」 in EUC-JP
    let comment: &[u8] = &[
        0xbe, 0xda, 0xcc, 0xc0, 0xbd, 0xf1, 0xa4, 0xce, 0xc0, 0xdf, 0xc4, 0xea,
    ];
    let mut original = b"# ".to_vec();
    original.extend_from_slice(comment);
    original.extend_from_slice(b"\n");
    original.extend_from_slice(weborca_conf(8000).replace("\r\n", "\n").as_bytes());
    std::fs::write(root.real(JMA_CONF), &original).unwrap();
    let out = root.run_bare(&["setup"]);
    assert!(out.status.success(), "{}", text(&out));
    let moved = root.read(JMA_CONF);
    assert!(
        moved.starts_with(&original[..2 + comment.len() + 1]),
        "{moved:?}"
    );
    assert!(
        moved
            .windows(b"#weborca-mtls-proxy# export SERVER_CRT=".len())
            .any(|w| w == b"#weborca-mtls-proxy# export SERVER_CRT="),
        "{}",
        String::from_utf8_lossy(&moved)
    );
    assert!(
        !moved.windows(3).any(|w| w == "\u{fffd}".as_bytes()),
        "no replacement characters"
    );
    let out = root.run_bare(&["setup", "--rollback"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(root.read(JMA_CONF), original);
}
