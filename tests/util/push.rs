//! Drives a push client (Python, Java or Ruby, under tests/py and
//! tests/clients) that speaks the line protocol of tests/py/push_client.py:
//! commands on stdin (`subscribe`, `wait_close`, `close`), one JSON report
//! per line on stdout (`connected`, `sent`, `recv`, `closed`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use super::backend::Backend;
use super::env::Setup;
use super::pki::write;
use super::process::Proc;
use super::real::{CatoolFiles, catool_files, java, repo, ruby, venv_python};

/// A running push client.
pub struct PushClient {
    pub child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl PushClient {
    /// Starts `cmd` with piped stdin/stdout (stderr shown in the test output).
    pub fn spawn(cmd: &mut Command) -> PushClient {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("start the push client {:?}: {e}", cmd.as_std()));
        PushClient {
            stdin: child.stdin.take().unwrap(),
            stdout: BufReader::new(child.stdout.take().unwrap()).lines(),
            child,
        }
    }

    /// The next report.
    pub async fn report(&mut self) -> Value {
        let line = tokio::time::timeout(Duration::from_secs(30), self.stdout.next_line())
            .await
            .expect("the push client reports within 30 s")
            .expect("read the push client")
            .unwrap_or_else(|| panic!("the push client ended: {:?}", self.child.try_wait()));
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
    }

    /// Sends one command line.
    pub async fn command(&mut self, cmd: &str) {
        self.stdin
            .write_all(format!("{cmd}\n").as_bytes())
            .await
            .unwrap();
        self.stdin.flush().await.unwrap();
    }

    /// The `connected` report: a 101 with no subprotocol, as push-exchanger asks.
    pub async fn connected(&mut self) {
        let hello = self.report().await;
        assert_eq!(hello["connected"]["status"], 101, "{hello}");
        assert_eq!(hello["connected"]["subprotocol"], Value::Null, "{hello}");
    }

    /// Subscribes to every event; returns the two answers.
    pub async fn subscribe(&mut self) -> (Value, Value) {
        self.command("subscribe").await;
        let sent = self.report().await;
        let req_id = sent["sent"]["req.id"]
            .as_str()
            .unwrap_or_else(|| panic!("{sent}"));
        assert_eq!(sent["sent"]["command"], "subscribe");
        assert_eq!(sent["sent"]["event"], "*");
        assert_eq!(req_id.len(), 36, "{sent}");
        let subscribed = self.message().await;
        let event = self.message().await;
        assert_eq!(subscribed["command"], "subscribed", "{subscribed}");
        assert_eq!(event["command"], "event", "{event}");
        (subscribed, event)
    }

    /// The next message, which must be one.
    pub async fn message(&mut self) -> Value {
        let r = self.report().await;
        let text = r["recv"]
            .as_str()
            .unwrap_or_else(|| panic!("expected a message, got {r}"));
        serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
    }

    /// Closes from the client side (1000) and checks the close was answered
    /// with a Close frame and the client exited 0.
    pub async fn close_cleanly(mut self) {
        self.command("close").await;
        let end = self.report().await;
        let closed = &end["closed"];
        assert_eq!(closed["clean"], true, "not a clean close: {end}");
        assert_eq!(closed["code"], 1000, "{end}");
        let status = tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .expect("the push client exits after its close")
            .unwrap();
        assert!(status.success(), "the push client exited with {status}");
    }
}

/// The proxy as a process (SIGHUP reloads) in front of a stand-in, and
/// user1's orca-catool files: where each push client runs.
pub struct PushProxy {
    pub backend: Backend,
    pub setup: Setup,
    pub proxy: Proc,
    pub addr: SocketAddr,
    pub files: CatoolFiles,
}

impl PushProxy {
    pub async fn start() -> PushProxy {
        let mut setup = Setup::new();
        setup.conf.push("IDLE_TIMEOUT=1s".into());
        Self::start_with(setup).await
    }

    /// The proxy process with the default IDLE_TIMEOUT and an empty CRL in
    /// CA_CRL (`ca.crl`), so [`PushProxy::revoke_user1`] can revoke by a
    /// reload.
    pub async fn start_with_crl() -> PushProxy {
        let mut setup = Setup::new();
        let crl = write(setup.dir.path(), "ca.crl", &setup.ca.crl(&[]));
        setup.conf.push(format!("CA_CRL={}", crl.display()));
        Self::start_with(setup).await
    }

    async fn start_with(setup: Setup) -> PushProxy {
        let backend = Backend::start().await;
        let conf = setup.write_config(&backend.url());
        let mut proxy = Proc::start(&conf, &[]);
        let addr = proxy.listening();
        let files = catool_files(setup.dir.path(), 3, &setup.user1, &setup.ca.pem).await;
        PushProxy {
            backend,
            setup,
            proxy,
            addr,
            files,
        }
    }

    /// SIGHUP, and the proxy's word that the reload went through.
    fn reload(&mut self) {
        self.proxy.signal("HUP");
        let reloaded = tokio::task::block_in_place(|| self.proxy.wait_for("reload: ok"));
        assert!(reloaded.is_some(), "no reload: {:#?}", self.proxy.seen);
    }

    /// user1's push client in Python (tests/py/push_client.py, PEM files).
    pub fn python_client(&self) -> PushClient {
        PushClient::spawn(
            Command::new(venv_python())
                .arg(repo().join("tests/py/push_client.py"))
                .arg(self.url())
                .arg("--ca")
                .arg(self.ca())
                .arg("--cert")
                .arg(&self.files.crt)
                .arg("--key")
                .arg(&self.files.pem)
                .args(["--user", "ormaster:ormaster123", "--tenant", "1"])
                .args(["--timeout", "15"]),
        )
    }

    /// user1's push client in Java (the .p12 and its passphrase file).
    pub async fn java_client(&self) -> PushClient {
        let pass = self.setup.dir.path().join("000003__JP_orca_user1.pass");
        let mut cmd = java("ws").await;
        cmd.arg(self.url())
            .arg(self.ca())
            .arg(&self.files.p12)
            .arg(&pass)
            .arg("1");
        PushClient::spawn(&mut cmd)
    }

    /// user1's push client in Ruby (PEM files).
    pub fn ruby_client(&self) -> PushClient {
        let mut cmd = ruby("push_client.rb");
        cmd.arg(self.url())
            .arg(self.ca())
            .arg(&self.files.crt)
            .arg(&self.files.pem)
            .arg("1");
        PushClient::spawn(&mut cmd)
    }

    /// Revokes user1 in `ca.crl` and reloads (SIGHUP) while its
    /// connections are open.
    pub fn revoke_user1(&mut self) {
        let crl = self.setup.ca.crl(&[self.setup.user1.serial]);
        write(self.setup.dir.path(), "ca.crl", &crl);
        self.reload();
    }

    /// The peer (client address) of the access-log line for `target`.
    pub fn access_peer(&mut self, target: &str) -> String {
        let needle = format!(" {target} ");
        // the line may already have been read while waiting for another one
        let seen = self
            .proxy
            .seen
            .iter()
            .find(|l| l.contains(&needle))
            .cloned();
        let line = seen
            .or_else(|| tokio::task::block_in_place(|| self.proxy.wait_for(&needle)))
            .unwrap_or_else(|| panic!("no access line for {target}: {:#?}", self.proxy.seen));
        line.split_whitespace()
            .find(|w| w.parse::<SocketAddr>().is_ok())
            .unwrap_or_else(|| panic!("no peer in {line}"))
            .to_string()
    }

    /// `wss://127.0.0.1:PORT/ws`
    pub fn url(&self) -> String {
        format!("wss://127.0.0.1:{}/ws", self.addr.port())
    }

    /// The clinic's `ca.crt`.
    pub fn ca(&self) -> PathBuf {
        self.setup.dir.path().join("ca.crt")
    }

    /// WebORCA saw one `/ws` upgrade with push-exchanger's headers, as user1.
    pub fn check_upgrade_seen(&self) {
        assert_eq!(self.backend.count(), 1, "one WebSocket, never reconnected");
        let seen = self.backend.last();
        assert_eq!(seen.target, "/ws");
        assert_eq!(seen.one("x-ginbee-tenant-id"), Some("1"));
        assert_eq!(
            seen.one("authorization"),
            Some("Basic b3JtYXN0ZXI6b3JtYXN0ZXIxMjM=")
        );
        assert_eq!(seen.one("sec-websocket-protocol"), None);
        assert_eq!(seen.one("x-ssl-client-s-dn"), Some("CN=user1,O=orca,C=JP"));
    }

    /// A renewed server certificate and SIGHUP, then a quiet period longer
    /// than IDLE_TIMEOUT (1 s): `ws` keeps working on the same connection
    /// after each (push connections wait for events for hours; the idle
    /// timeout is for plain requests).
    pub async fn reload_and_quiet(&mut self, ws: &mut PushClient) {
        let renewed = self.setup.ca.server(&["localhost", "127.0.0.1"], 3650);
        let dir = self.setup.dir.path();
        write(dir, "000002__JP_orca_localhost.crt", &renewed.pem);
        write(dir, "000002__JP_orca_localhost.pem", &renewed.key_pem);
        self.reload();
        ws.subscribe().await;
        // the quiet period is what is tested: there is no event to wait for
        tokio::time::sleep(Duration::from_millis(2500)).await;
        ws.subscribe().await;
        self.check_upgrade_seen();
    }
}
