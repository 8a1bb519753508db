//! The backend guard for real: two network namespaces joined by a veth pair
//! (a server and a LAN machine, addresses only inside them), a stand-in WebORCA
//! on every interface of the server, the real proxy in front of it, and the
//! generated guard loaded with the real `nft` inside the server's namespace.
//! Needs root, `ip` and `nft`; skips (saying so) only when the kernel has no
//! nf_tables.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::util::pki::{Ca, write};
use crate::util::process::{Proc, bin, free_port};

/// The two namespaces; deleted on drop, also when the test fails.
struct Net {
    srv: String,
    lan: String,
    children: Vec<Child>,
}

impl Drop for Net {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in [&self.srv, &self.lan] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn sh(args: &[&str]) -> Output {
    Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

fn ok(args: &[&str]) -> String {
    let out = sh(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Net {
    fn exec(&self, ns: &str, args: &[&str]) -> Output {
        let mut all = vec!["ip", "netns", "exec", ns];
        all.extend_from_slice(args);
        sh(&all)
    }

    /// Whether a TCP connection from the LAN namespace to `addr` is accepted within 2 s.
    fn lan_connects(&self, host: &str, port: u16) -> bool {
        // bash's /dev/tcp: a plain connect, bounded by timeout.
        let probe = format!("exec 3<>/dev/tcp/{host}/{port}");
        self.exec(&self.lan, &["timeout", "2", "bash", "-c", &probe])
            .status
            .success()
    }
}

/// Whether `nft` works in a fresh namespace; None with the reason when the kernel lacks nf_tables.
fn nftables_missing(net: &Net) -> Option<String> {
    let out = net.exec(&net.srv, &["nft", "list", "tables"]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    if out.status.success() {
        None
    } else if err.contains("not supported") || err.contains("Protocol not") {
        Some(err)
    } else {
        panic!("nft list tables failed: {err}");
    }
}

#[test]
fn guard_drops_the_backend_port_from_the_lan_but_not_loopback_or_the_proxy() {
    assert!(
        std::fs::read_to_string("/proc/self/status")
            .unwrap()
            .lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0")),
        "this test makes network namespaces: run it as root (CI does)"
    );
    for tool in ["ip", "nft", "python3", "curl"] {
        assert!(
            sh(&["sh", "-c", &format!("command -v {tool}")])
                .status
                .success(),
            "{tool} is needed (apt-get install -y iproute2 nftables python3 curl)"
        );
    }
    let id = std::process::id() % 200 + 20;
    let net = Net {
        srv: format!("wmp-srv-{}", std::process::id()),
        lan: format!("wmp-lan-{}", std::process::id()),
        children: Vec::new(),
    };
    let (srv_if, lan_if) = (format!("wmps{id}"), format!("wmpl{id}"));
    let (srv_ip, lan_ip) = (format!("10.231.{id}.1"), format!("10.231.{id}.2"));
    let (srv_ip6, lan_ip6) = (format!("fd00:231:{id}::1"), format!("fd00:231:{id}::2"));
    ok(&["ip", "netns", "add", &net.srv]);
    ok(&["ip", "netns", "add", &net.lan]);
    if let Some(why) = nftables_missing(&net) {
        crate::util::real::notice(format_args!(
            "guard_drops_the_backend_port… SKIPPED: the kernel lacks nf_tables: {why}"
        ));
        return;
    }
    // made inside the namespaces: the machine's own never sees the pair
    ok(&[
        "ip", "-n", &net.srv, "link", "add", &srv_if, "type", "veth", "peer", "name", &lan_if,
        "netns", &net.lan,
    ]);
    for (ns, dev, v4, v6) in [
        (&net.srv, &srv_if, &srv_ip, &srv_ip6),
        (&net.lan, &lan_if, &lan_ip, &lan_ip6),
    ] {
        ok(&[
            "ip",
            "-n",
            ns,
            "addr",
            "add",
            &format!("{v4}/24"),
            "dev",
            dev,
        ]);
        ok(&[
            "ip",
            "-n",
            ns,
            "addr",
            "add",
            &format!("{v6}/64"),
            "dev",
            dev,
            "nodad",
        ]);
        ok(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        ok(&["ip", "-n", ns, "link", "set", dev, "up"]);
    }
    let mut net = net;

    // A stand-in WebORCA on every interface (dual stack), as WebORCA listens.
    let port = free_port();
    let backend = Command::new("ip")
        .args([
            "netns",
            "exec",
            &net.srv,
            "python3",
            "-m",
            "http.server",
            &port.to_string(),
            "--bind",
            "::",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    net.children.push(backend);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !net.lan_connects(&srv_ip, port) {
        assert!(
            Instant::now() < deadline,
            "the stand-in WebORCA never listened"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The bypass: without the guard, the LAN reaches WebORCA, IPv4 and IPv6.
    assert!(net.lan_connects(&srv_ip, port));
    assert!(net.lan_connects(&srv_ip6, port));

    // The real proxy in front of it, on every interface of the server.
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test-ca");
    let server = ca.server(&["localhost", &srv_ip], 3650);
    let user = ca.client("user1");
    let d = dir.path();
    write(d, "s.crt", &server.pem);
    write(d, "s.pem", &server.key_pem);
    write(d, "ca.crt", &ca.pem);
    write(d, "u.crt", &user.pem);
    write(d, "u.pem", &user.key_pem);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(d.join("s.pem"), std::fs::Permissions::from_mode(0o400)).unwrap();
    let conf = write(
        d,
        "proxy.conf",
        &format!(
            "SERVER_CRT={d}/s.crt\nSERVER_PEM={d}/s.pem\nCA_CRT={d}/ca.crt\nLISTEN=0.0.0.0:0\nBACKEND_URL=http://127.0.0.1:{port}\n",
            d = d.display()
        ),
    );
    let mut child = Command::new("ip")
        .args(["netns", "exec", &net.srv, bin(), "-c"])
        .arg(&conf)
        .env_remove("NOTIFY_SOCKET")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut proxy = Proc {
        child,
        lines: rx,
        seen: Vec::new(),
    };
    let proxy_port = proxy.listening().port();
    let curl_proxy = |net: &Net| {
        let url = format!("https://{srv_ip}:{proxy_port}/");
        let out = net.exec(
            &net.lan,
            &[
                "curl",
                "-sS",
                "-m",
                "5",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--cacert",
                &d.join("ca.crt").display().to_string(),
                "--cert",
                &d.join("u.crt").display().to_string(),
                "--key",
                &d.join("u.pem").display().to_string(),
                &url,
            ],
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(curl_proxy(&net), "200");

    // check, without the guard: FAIL, WebORCA is reachable from the LAN.
    let check = |net: &Net| {
        let out = net.exec(
            &net.srv,
            &[
                bin(),
                "check",
                "-c",
                &conf.display().to_string(),
                "--host",
                &srv_ip,
            ],
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let report = check(&net);
    assert!(
        report.lines().any(|l| l.starts_with("FAIL")
            && l.contains(&format!("port {port} (WebORCA) listens on"))
            && l.contains("backend guard not loaded")),
        "{report}"
    );

    // The guard, loaded twice (safe to reload), as the guard unit does.
    let script = d.join("guard.nft");
    let printed = ok(&[bin(), "guard", "print", "--port", &port.to_string()]);
    std::fs::write(&script, printed).unwrap();
    let script_s = script.display().to_string();
    for _ in 0..2 {
        let out = net.exec(&net.srv, &["nft", "-f", &script_s]);
        assert!(
            out.status.success(),
            "nft -f: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let listing = String::from_utf8_lossy(&net.exec(&net.srv, &["nft", "list", "ruleset"]).stdout)
        .into_owned();
    assert_eq!(
        listing.matches(&format!("tcp dport {port} drop")).count(),
        1,
        "{listing}"
    );

    assert!(
        !net.lan_connects(&srv_ip, port),
        "the LAN still reaches WebORCA over IPv4"
    );
    assert!(
        !net.lan_connects(&srv_ip6, port),
        "the LAN still reaches WebORCA over IPv6"
    );
    let local = net.exec(
        &net.srv,
        &[
            "curl",
            "-sS",
            "-m",
            "5",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("http://127.0.0.1:{port}/"),
        ],
    );
    assert_eq!(
        String::from_utf8_lossy(&local.stdout),
        "200",
        "loopback must still reach WebORCA"
    );
    assert_eq!(
        curl_proxy(&net),
        "200",
        "the proxy must still answer the LAN"
    );
    let report = check(&net);
    assert!(
        report.lines().any(|l| l.starts_with("ok")
            && l.contains("only this machine reaches it")
            && l.contains("backend guard loaded")),
        "{report}"
    );
    assert!(!report.contains(&format!("FAIL port {port}")), "{report}");

    // Unloaded (what stopping the guard unit does): the bypass is back.
    ok(&[
        "ip",
        "netns",
        "exec",
        &net.srv,
        "nft",
        "delete",
        "table",
        "inet",
        "weborca_mtls_proxy",
    ]);
    assert!(net.lan_connects(&srv_ip, port));
    assert!(net.lan_connects(&srv_ip6, port));
    drop(proxy);
}
