//! Running under systemd: the unit file (verified, hardened, systemd 249
//! directives only) and the sd_notify messages of Type=notify.

use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::Duration;

use crate::util::env::Setup;
use crate::util::process::{Proc, bin};

const UNIT: &str = include_str!("../systemd/weborca-mtls-proxy.service");

/// Every directive the unit may use: all known to systemd 249 (Ubuntu 22.04).
const KNOWN_TO_SYSTEMD_249: &[&str] = &[
    "Description",
    "Documentation",
    "After",
    "Wants",
    "Type",
    "NotifyAccess",
    "ExecStart",
    "ExecReload",
    "Restart",
    "RestartSec",
    "RestartPreventExitStatus",
    "TimeoutStopSec",
    "User",
    "Group",
    "LimitNOFILE",
    "CapabilityBoundingSet",
    "AmbientCapabilities",
    "NoNewPrivileges",
    "ProtectSystem",
    "ProtectHome",
    "PrivateTmp",
    "PrivateDevices",
    "ReadOnlyPaths",
    "LogsDirectory",
    "LogsDirectoryMode",
    "UMask",
    "ProtectKernelTunables",
    "ProtectKernelModules",
    "ProtectKernelLogs",
    "ProtectControlGroups",
    "ProtectClock",
    "ProtectHostname",
    "ProtectProc",
    "ProcSubset",
    "RestrictNamespaces",
    "RestrictRealtime",
    "RestrictSUIDSGID",
    "LockPersonality",
    "MemoryDenyWriteExecute",
    "RemoveIPC",
    "PrivateUsers",
    "KeyringMode",
    "DevicePolicy",
    "RestrictAddressFamilies",
    "SystemCallArchitectures",
    "SystemCallFilter",
    "SystemCallErrorNumber",
    "WantedBy",
];

fn directives() -> Vec<(&'static str, &'static str)> {
    UNIT.lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with('[') && l.contains('='))
        .filter_map(|l| l.split_once('='))
        .collect()
}

#[test]
fn unit_uses_only_systemd_249_directives_and_the_promised_settings() {
    for (key, _) in directives() {
        assert!(
            KNOWN_TO_SYSTEMD_249.contains(&key),
            "{key} is not known to systemd 249"
        );
    }
    let has = |k: &str, v: &str| directives().iter().any(|(a, b)| *a == k && *b == v);
    assert!(has("Type", "notify"));
    assert!(has("RestartPreventExitStatus", "78"));
    assert!(has("Restart", "on-failure"));
    assert!(has("User", "orca") && has("Group", "orca"));
    assert!(has("ExecReload", "/bin/kill -HUP $MAINPID"));
    assert!(has("ProtectSystem", "strict"));
}

#[test]
fn unit_verifies_and_scores_2_or_lower_where_systemd_analyze_exists() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        crate::util::real::notice(format_args!(
            "unit_verifies_and_scores_2_or_lower_where_systemd_analyze_exists SKIPPED: systemd-analyze not installed"
        ));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let unit = dir.path().join("weborca-mtls-proxy.service");
    std::fs::write(&unit, UNIT.replace("/usr/bin/weborca-mtls-proxy", bin())).unwrap();
    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    assert!(
        verify.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    let security = Command::new("systemd-analyze")
        .args(["security", "--offline=true"])
        .arg(&unit)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&security.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("{text}"));
    let score: f64 = line
        .split(':')
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(score <= 2.0, "{line}");
}

#[tokio::test]
async fn notifies_ready_reloading_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let setup = Setup::new();
    let conf = setup.write_config("http://127.0.0.1:9");
    let mut p = Proc::start_with_env(
        &conf,
        &[],
        &[("NOTIFY_SOCKET", sock_path.to_str().unwrap())],
    );
    p.listening();
    let mut buf = [0u8; 512];
    let mut next = || {
        let n = sock.recv(&mut buf).expect("a notification");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    assert!(next().contains("READY=1"));
    p.signal("HUP");
    assert!(next().contains("RELOADING=1"));
    assert!(next().contains("READY=1"));
    p.signal("TERM");
    assert!(next().contains("STOPPING=1"));
    assert_eq!(p.exit().0, 0);
}
