//! `weborca-mtls-proxy demo` as a newcomer runs it: the binary with `--dir` in
//! a temporary folder, driven by the very curl commands it prints, a WebSocket
//! client on `/ws`, a second run that must reuse the certificates, and the
//! files themselves (the .p12 as OpenSSL 3 reads it, modes, names).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use weborca_mtls_proxy::demo;
use weborca_mtls_proxy::x509::CertInfo;

use crate::util::client::Client;
use crate::util::pki::Leaf;
use crate::util::process::{bin, free_port, unstamp};

/// How long any one step may take: a line to appear, curl to answer, the process to exit.
const STEP: Duration = Duration::from_secs(30);

const SERVER: &str = "000002__JP_orca_localhost";
const USER: &str = "000003__JP_orca_user1";
/// Every file the demo makes, whose bytes a second run must leave alone.
const MADE: [&str; 9] = [
    "ca.crt",
    "ca.key",
    "000002__JP_orca_localhost.crt",
    "000002__JP_orca_localhost.pem",
    "000003__JP_orca_user1.crt",
    "000003__JP_orca_user1.pem",
    "000003__JP_orca_user1.p12",
    "000003__JP_orca_user1.pass",
    "README-demo.txt",
];

/// A running `demo` process; killed if a test ends without stopping it.
struct Demo {
    child: Child,
    /// stderr: the log, timestamps removed
    log_rx: mpsc::Receiver<String>,
    /// stdout: the printed instructions
    out_rx: mpsc::Receiver<String>,
    log: Vec<String>,
    printed: Vec<String>,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn lines(stream: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

impl Demo {
    /// Starts `demo --dir DIR --port PORT` and waits until it has printed what to try.
    fn start(dir: &Path, port: u16) -> Demo {
        let mut child = Command::new(bin())
            .arg("demo")
            .arg("--dir")
            .arg(dir)
            .arg("--port")
            .arg(port.to_string())
            .env("RUST_LOG", "info")
            .env_remove("JOURNAL_STREAM")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn demo");
        let log_rx = lines(child.stderr.take().unwrap());
        let out_rx = lines(child.stdout.take().unwrap());
        let mut demo = Demo {
            child,
            log_rx,
            out_rx,
            log: Vec::new(),
            printed: Vec::new(),
        };
        demo.wait_printed("Ctrl-C");
        demo
    }

    /// Reads stdout until a line contains `needle` (the instructions come once the proxy listens).
    fn wait_printed(&mut self, needle: &str) {
        loop {
            match self.out_rx.recv_timeout(STEP) {
                Ok(line) => {
                    let done = line.contains(needle);
                    self.printed.push(line);
                    if done {
                        return;
                    }
                }
                Err(_) => {
                    let log = self.drain_log();
                    panic!(
                        "demo never printed {needle:?}; stdout {:#?}, log {log:#?}",
                        self.printed
                    )
                }
            }
        }
    }

    /// Reads the log until a line contains `needle`; returns it.
    fn wait_log(&mut self, needle: &str) -> String {
        if let Some(line) = self.log.iter().find(|l| l.contains(needle)) {
            return line.clone();
        }
        loop {
            match self.log_rx.recv_timeout(STEP) {
                Ok(line) => {
                    let line = unstamp(&line);
                    self.log.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!("no log line with {needle:?}; log {:#?}", self.log),
            }
        }
    }

    fn drain_log(&mut self) -> Vec<String> {
        while let Ok(line) = self.log_rx.recv_timeout(Duration::from_millis(200)) {
            self.log.push(unstamp(&line));
        }
        self.log.clone()
    }

    /// Every `listening on ADDR` address, read after `Server Mode: HTTPS`.
    fn listening(&mut self) -> Vec<SocketAddr> {
        self.wait_log("Server Mode: HTTPS");
        self.wait_log("listening on ");
        // The instructions are printed after every address is bound and logged.
        self.drain_log()
            .iter()
            .filter_map(|l| l.strip_prefix("listening on "))
            .map(|l| l.split(',').next().unwrap().parse().unwrap())
            .collect()
    }

    /// The printed `curl …` commands, in order: PEM, .p12, no certificate.
    fn curl_commands(&self) -> Vec<Vec<String>> {
        self.printed
            .iter()
            .map(|l| l.trim())
            .filter(|l| l.starts_with("curl "))
            .map(|l| {
                assert!(!l.contains('\''), "a temp path needs no quoting: {l}");
                l.split_whitespace().skip(1).map(str::to_string).collect()
            })
            .collect()
    }

    /// Sends `signal` (`INT` as Ctrl-C does, `TERM` as systemd does); returns the
    /// exit code and the whole log.
    fn stop(mut self, signal: &str) -> (i32, Vec<String>) {
        let sent = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(sent.success());
        self.wait_log("stopped");
        let status = self.child.wait().unwrap();
        (status.code().unwrap_or(-1), self.drain_log())
    }
}

/// Runs curl with `args`, pinning localhost to 127.0.0.1 (where a `--port 0` demo listens).
fn curl(port: u16, extra: &[&str], args: &[String]) -> Output {
    let output = Command::new("curl")
        .args(["-sS", "--max-time", "20"])
        .arg("--resolve")
        .arg(format!("localhost:{port}:127.0.0.1"))
        .args(extra)
        .args(args)
        .output()
        .expect("curl runs");
    assert!(
        output.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn text(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn files(dir: &Path) -> HashMap<&'static str, Vec<u8>> {
    MADE.iter()
        .map(|name| (*name, std::fs::read(dir.join(name)).unwrap()))
        .collect()
}

fn cert_info(path: &Path) -> CertInfo {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let der = CertificateDer::from_pem_file(path).unwrap();
    CertInfo::from_der(&der).unwrap()
}

/// A port free at the moment: bound on 127.0.0.1:0, then released.
#[test]
fn demo_serves_the_stand_in_to_the_printed_curl_commands_and_403_without_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let mut demo = Demo::start(dir.path(), 0);
    let addrs = demo.listening();
    assert_eq!(addrs.len(), 1, "{addrs:?}");
    assert!(addrs[0].ip().is_loopback(), "{addrs:?}");
    let port = addrs[0].port();
    for line in [
        "CA_CRT ...file exists",
        "SERVER_CRT ...file exists",
        "SERVER_PEM ...file exists",
    ] {
        demo.wait_log(line);
    }
    let commands = demo.curl_commands();
    assert_eq!(commands.len(), 3, "{:#?}", demo.printed);
    let url = format!("https://localhost:{port}/");
    assert!(
        commands.iter().all(|c| c.last() == Some(&url)),
        "{commands:?}"
    );

    let p12 = text(&curl(port, &[], &commands[1]));
    assert!(p12.contains("これはデモ用の WebORCA の代わりです"), "{p12}");
    assert!(
        p12.contains("This is the demo stand-in for WebORCA"),
        "{p12}"
    );
    assert!(p12.contains("CN=user1,O=orca,C=JP"), "{p12}");

    let pem = text(&curl(port, &["-H", "Accept: text/html"], &commands[0]));
    assert!(
        pem.contains("<h1>これはデモ用の WebORCA の代わりです</h1>"),
        "{pem}"
    );
    assert!(pem.contains("<code>CN=user1,O=orca,C=JP</code>"), "{pem}");

    let refused = text(&curl(port, &["-i"], &commands[2])).to_ascii_lowercase();
    assert!(refused.starts_with("http/2 403"), "{refused}");
    assert!(
        refused.contains("x-client-cert-error: missing"),
        "{refused}"
    );

    let (code, log) = demo.stop("TERM");
    assert_eq!(code, 0, "{log:#?}");
}

#[test]
fn demo_stand_in_echoes_api_calls_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let mut demo = Demo::start(dir.path(), 0);
    let port = demo.listening()[0].port();
    let mut p12 = demo.curl_commands()[1].clone();
    p12.pop();
    p12.push(format!(
        "https://localhost:{port}/api01rv2/patientgetv2?id=1"
    ));
    let answer = curl(port, &["--data-binary", "<data>1</data>"], &p12);
    let echo: serde_json::Value = serde_json::from_slice(&answer.stdout).unwrap();
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["path"], "/api01rv2/patientgetv2");
    assert_eq!(echo["query"], "id=1");
    assert_eq!(echo["body_bytes"], 14);
    assert_eq!(echo["headers"]["x-ssl-client-s-dn"], "CN=user1,O=orca,C=JP");
    assert_eq!(echo["headers"]["x-ssl-client-serial"], "03");
}

/// A client showing user1's certificate from the demo's folder.
fn demo_client(dir: &Path) -> Client {
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
    let pem = read(&format!("{USER}.crt"));
    let der = rustls::pki_types::pem::PemObject::from_pem_slice(pem.as_bytes()).unwrap();
    let leaf = Leaf {
        pem,
        key_pem: read(&format!("{USER}.pem")),
        der,
        serial: 3,
        cn: "user1".into(),
        chain: Vec::new(),
    };
    Client::h1(&read("ca.crt"), Some(&leaf))
}

#[tokio::test]
async fn demo_websocket_echoes_and_confirms_push_subscribe() {
    let dir = tempfile::tempdir().unwrap();
    let mut demo = Demo::start(dir.path(), 0);
    let addr = demo.listening()[0];
    let client = demo_client(dir.path());
    let tls = tokio::time::timeout(STEP, client.connect(addr))
        .await
        .unwrap()
        .unwrap();
    let mut req = format!("wss://localhost:{}/ws", addr.port())
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("X-GINBEE-TENANT-ID", "1".parse().unwrap());
    let (mut ws, resp) = tokio::time::timeout(STEP, tokio_tungstenite::client_async(req, tls))
        .await
        .unwrap()
        .expect("websocket handshake");
    assert_eq!(resp.status(), 101);
    ws.send(Message::text(
        r#"{"command":"subscribe","req.id":"7","event":"*"}"#,
    ))
    .await
    .unwrap();
    let reply = tokio::time::timeout(STEP, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let reply: serde_json::Value = serde_json::from_str(reply.to_text().unwrap()).unwrap();
    assert_eq!(reply["command"], "subscribed");
    assert_eq!(reply["req.id"], "7");

    ws.send(Message::text("こんにちは")).await.unwrap();
    let echoed = tokio::time::timeout(STEP, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(echoed, Message::text("こんにちは"));
    ws.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    let echoed = tokio::time::timeout(STEP, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(echoed, Message::binary(vec![1u8, 2, 3]));
    ws.close(None).await.unwrap();
}

#[test]
fn demo_second_run_reuses_the_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let first = Demo::start(dir.path(), 0);
    let before = files(dir.path());
    let (code, log) = first.stop("INT");
    assert_eq!(code, 0, "{log:#?}");

    // The second run on a fixed port: 127.0.0.1 and, where IPv6 is on, ::1.
    let port = free_port();
    let mut second = Demo::start(dir.path(), port);
    second.wait_log("demo: reusing the certificates in");
    let addrs = second.listening();
    assert!(
        addrs
            .iter()
            .all(|a| a.ip().is_loopback() && a.port() == port),
        "{addrs:?}"
    );
    assert!(addrs.iter().any(|a| a.is_ipv4()), "{addrs:?}");
    let after = files(dir.path());
    for name in MADE {
        assert!(before[name] == after[name], "{name} was made anew");
    }
    let pass = String::from_utf8(after["000003__JP_orca_user1.pass"].clone()).unwrap();
    assert!(second.printed.iter().any(|l| l.contains(pass.trim())));
    let page = text(&curl(port, &[], &second.curl_commands()[1]));
    assert!(page.contains("CN=user1,O=orca,C=JP"), "{page}");
}

#[test]
fn demo_p12_opens_in_openssl_with_pbes2_aes256_and_the_ca() {
    let dir = tempfile::tempdir().unwrap();
    let made = demo::prepare(dir.path()).expect("prepare");
    assert!(!made.reused);
    let pass = std::fs::read_to_string(&made.user_pass).unwrap();
    assert_eq!(pass.trim(), made.passphrase);
    assert_eq!(made.passphrase.len(), 16);
    assert!(made.passphrase.bytes().all(|b| b.is_ascii_alphanumeric()));
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(["pkcs12", "-in"])
            .arg(&made.user_p12)
            .args(["-passin", &format!("pass:{}", made.passphrase)])
            .args(args)
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    };
    let info = openssl(&["-info", "-nokeys", "-noout"]);
    assert!(info.contains("MAC: sha256"), "{info}");
    assert!(info.contains("PBES2, PBKDF2, AES-256-CBC"), "{info}");
    assert!(!info.to_ascii_lowercase().contains("rc2"), "{info}");
    let certs = openssl(&["-nokeys"]);
    assert!(
        certs.contains("subject=C = JP, O = orca, CN = user1"),
        "{certs}"
    );
    assert!(
        certs.contains("subject=C = JP, O = orca, CN = weborca-mtls-proxy demo CA"),
        "{certs}"
    );
    let key = openssl(&["-nocerts", "-nodes"]);
    assert!(key.contains("BEGIN PRIVATE KEY"), "{key}");
}

#[test]
fn demo_files_have_orca_catool_names_modes_and_names_in_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let made = demo::prepare(dir.path()).expect("prepare");
    for (path, mode) in [
        (&made.ca_key, 0o600),
        (&made.server_pem, 0o600),
        (&made.user_pem, 0o600),
        (&made.user_p12, 0o600),
        (&made.user_pass, 0o600),
        (&made.ca_crt, 0o644),
        (&made.server_crt, 0o644),
    ] {
        let meta = std::fs::metadata(path).unwrap();
        assert_eq!(
            meta.permissions().mode() & 0o777,
            mode,
            "{}",
            path.display()
        );
    }
    assert_eq!(made.server_crt, made.dir.join(format!("{SERVER}.crt")));
    let server = cert_info(&made.server_crt);
    assert_eq!(server.serial_hex, "02");
    assert_eq!(server.dns_names, ["localhost"]);
    assert_eq!(server.ip_addresses.len(), 2);
    assert!(server.covers_host("127.0.0.1") && server.covers_host("::1"));
    let user = cert_info(&made.user_crt);
    assert_eq!(user.subject_oneline, "/C=JP/O=orca/CN=user1");
    assert_eq!(user.serial_hex, "03");
    let ca = cert_info(&made.ca_crt);
    assert_eq!(user.issuer_rfc4514, ca.subject_rfc4514);
    assert!(
        ca.subject_oneline
            .starts_with("/C=JP/O=orca/CN=weborca-mtls-proxy demo CA")
    );
}

#[test]
fn demo_remakes_only_a_missing_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let first = demo::prepare(dir.path()).expect("prepare");
    let before = files(dir.path());
    std::fs::remove_file(&first.user_p12).unwrap();
    let second = demo::prepare(dir.path()).expect("prepare again");
    assert!(!second.reused);
    let after = files(dir.path());
    for name in ["ca.crt", "ca.key", "000002__JP_orca_localhost.crt"] {
        assert!(before[name] == after[name], "{name} was made anew");
    }
    assert!(before["000003__JP_orca_user1.crt"] != after["000003__JP_orca_user1.crt"]);
    let third = demo::prepare(dir.path()).expect("prepare a third time");
    assert!(third.reused);
    assert_eq!(third.passphrase, second.passphrase);
}

#[test]
fn demo_refuses_a_folder_holding_other_files() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("jma-receipt.conf");
    std::fs::write(&conf, "SERVER_CRT=/opt/jma/weborca/conf/x.crt\n").unwrap();
    let refused = demo::prepare(dir.path()).expect_err("a folder with other files");
    assert!(
        refused.message().contains("jma-receipt.conf"),
        "{}",
        refused.message()
    );
    assert!(refused.message().contains("--dir"), "{}", refused.message());
    let names: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(names, [conf]);
}

#[tokio::test]
async fn demo_on_a_port_in_use_says_to_choose_another_with_port() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let run = tokio::process::Command::new(bin())
        .args(["demo", "--port", &port.to_string(), "--dir"])
        .arg(dir.path().join("demo"))
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(STEP, run)
        .await
        .expect("the demo gives up at once")
        .expect("demo runs");
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(log.contains(&format!("127.0.0.1:{port}")), "{log}");
    assert!(log.contains("--port"), "{log}");
    assert!(out.stdout.is_empty());
    // Nothing is made before the port is known to be free.
    assert!(!dir.path().join("demo").exists());
}
