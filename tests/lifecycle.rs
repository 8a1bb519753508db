//! Certificates changed without downtime: SIGHUP, files replaced on disk, and
//! broken new sets that must not replace the working one.

use futures_util::{SinkExt, StreamExt};
use std::net::SocketAddr;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::util::backend::Backend;
use crate::util::client::Client;
use crate::util::env::Setup;
use crate::util::pki::write;
use crate::util::process::Proc;

/// The serial of the certificate the server presents to a new connection
/// (a fresh client each time: a resumed session would show the old one).
async fn served_serial(client: &Client, addr: SocketAddr) -> Vec<u8> {
    let mut config = (*client.config).clone();
    config.resumption = rustls::client::Resumption::disabled();
    let fresh = Client {
        config: std::sync::Arc::new(config),
    };
    let tls = fresh.connect(addr).await.unwrap();
    let der = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
    cert.raw_serial().to_vec()
}

async fn started(
    setup: &Setup,
    backend: &Backend,
    extra: &[&str],
) -> (Proc, SocketAddr, std::path::PathBuf) {
    let conf = setup.write_config(&backend.url());
    let mut text = std::fs::read_to_string(&conf).unwrap();
    for e in extra {
        text.push_str(e);
        text.push('\n');
    }
    std::fs::write(&conf, text).unwrap();
    let mut p = Proc::start(&conf, &[]);
    let addr = p.listening();
    (p, addr, conf)
}

#[tokio::test]
async fn sighup_swaps_the_certificate_and_keeps_open_websockets() {
    let backend = Backend::start().await;
    let setup = Setup::new();
    let (mut p, addr, _) = started(&setup, &backend, &[]).await;
    let client = Client::h1(&setup.ca.pem, Some(&setup.user1));
    assert_eq!(
        served_serial(&client, addr).await,
        vec![setup.server.serial as u8]
    );
    // a WebSocket opened before the reload
    let tls = client.connect(addr).await.unwrap();
    let req = format!("wss://localhost:{}/ws", addr.port())
        .into_client_request()
        .unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(req, tls).await.unwrap();
    // new server certificate on disk, then SIGHUP
    let renewed = setup.ca.server(&["localhost", "127.0.0.1"], 3650);
    write(
        setup.dir.path(),
        "000002__JP_orca_localhost.crt",
        &renewed.pem,
    );
    write(
        setup.dir.path(),
        "000002__JP_orca_localhost.pem",
        &renewed.key_pem,
    );
    p.signal("HUP");
    p.wait_for("reload: ok")
        .unwrap_or_else(|| panic!("{:#?}", p.seen));
    assert_eq!(
        served_serial(&client, addr).await,
        vec![renewed.serial as u8]
    );
    ws.send(Message::text("after reload")).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::text("after reload")
    );
}

#[tokio::test]
async fn reload_with_broken_key_keeps_serving_the_old_certificate() {
    let backend = Backend::start().await;
    let setup = Setup::new();
    let (mut p, addr, _) = started(&setup, &backend, &[]).await;
    let client = Client::h1(&setup.ca.pem, Some(&setup.user1));
    let other = setup.ca.server(&["localhost"], 30);
    write(
        setup.dir.path(),
        "000002__JP_orca_localhost.pem",
        &other.key_pem,
    );
    p.signal("HUP");
    let line = p
        .wait_for("reload refused")
        .unwrap_or_else(|| panic!("{:#?}", p.seen));
    assert!(
        line.contains("SERVER_PEM") && line.contains("000002__JP_orca_localhost.pem"),
        "{line}"
    );
    assert_eq!(
        served_serial(&client, addr).await,
        vec![setup.server.serial as u8]
    );
    assert_eq!(client.get(addr, "/").await.unwrap().status, 200);
}

#[tokio::test]
async fn crl_replaced_by_rename_revokes_without_a_signal() {
    let backend = Backend::start().await;
    let setup = Setup::new();
    let crl = write(setup.dir.path(), "ca.crl", &setup.ca.crl(&[]));
    let crl_line = format!("CA_CRL={}", crl.display());
    let (mut p, addr, _) =
        started(&setup, &backend, &[&crl_line, "CERT_WATCH_INTERVAL=200ms"]).await;
    let client = Client::h1(&setup.ca.pem, Some(&setup.user1));
    assert_eq!(client.get(addr, "/").await.unwrap().status, 200);
    // like `cp new.crl ca.crl.tmp && mv ca.crl.tmp ca.crl`
    let tmp = write(
        setup.dir.path(),
        "ca.crl.tmp",
        &setup.ca.crl(&[setup.user1.serial]),
    );
    std::fs::rename(&tmp, &crl).unwrap();
    p.wait_for("reload: ok")
        .unwrap_or_else(|| panic!("{:#?}", p.seen));
    let answer = client.get(addr, "/").await.unwrap();
    assert_eq!(answer.status, 403);
    assert_eq!(answer.header("x-client-cert-error"), Some("revoked"));
}

#[tokio::test]
async fn crl_not_signed_by_the_ca_is_refused() {
    let backend = Backend::start().await;
    let setup = Setup::new();
    let crl = write(setup.dir.path(), "ca.crl", &setup.ca.crl(&[]));
    let crl_line = format!("CA_CRL={}", crl.display());
    let (mut p, addr, _) = started(&setup, &backend, &[&crl_line]).await;
    // a CRL from another CA (revoking user1's serial) must not be taken
    let stranger = crate::util::pki::Ca::new("stranger-ca");
    write(
        setup.dir.path(),
        "ca.crl",
        &stranger.crl(&[setup.user1.serial]),
    );
    p.signal("HUP");
    let line = p
        .wait_for("reload refused")
        .unwrap_or_else(|| panic!("{:#?}", p.seen));
    assert!(
        line.contains("CA_CRL") && line.contains("stranger-ca"),
        "{line}"
    );
    let client = Client::h1(&setup.ca.pem, Some(&setup.user1));
    assert_eq!(client.get(addr, "/").await.unwrap().status, 200);
    // and at start-up the same CRL stops the proxy with exit 78
    drop(p);
    let conf = setup.dir.path().join("proxy.conf");
    let (code, lines) = Proc::start(&conf, &[]).exit();
    assert_eq!(code, 78, "{lines:#?}");
}

#[tokio::test]
async fn listen_change_is_reported_as_needing_a_restart() {
    let backend = Backend::start().await;
    let setup = Setup::new();
    let (mut p, addr, conf) = started(&setup, &backend, &[]).await;
    let text = std::fs::read_to_string(&conf).unwrap() + "LISTEN=127.0.0.1:1\n";
    std::fs::write(&conf, text).unwrap();
    p.signal("HUP");
    let line = p
        .wait_for("LISTEN changed")
        .unwrap_or_else(|| panic!("{:#?}", p.seen));
    assert!(line.contains("restart"), "{line}");
    p.wait_for("reload: ok").unwrap();
    let client = Client::h1(&setup.ca.pem, Some(&setup.user1));
    assert_eq!(client.get(addr, "/").await.unwrap().status, 200);
}

#[tokio::test]
async fn log_file_is_appended_and_reopened_on_sighup() {
    let backend = Backend::start().await;
    let setup = Setup::new();
    let log = setup.dir.path().join("proxy.log");
    let line = format!("LOG_FILE={}", log.display());
    let (mut p, _addr, _) = started(&setup, &backend, &[&line]).await;
    let first = std::fs::read_to_string(&log).unwrap();
    assert!(first.contains("Server Mode: HTTPS"), "{first}");
    // logrotate moves the file away, then reloads
    std::fs::rename(&log, setup.dir.path().join("proxy.log.1")).unwrap();
    p.signal("HUP");
    p.wait_for("reload: ok").unwrap();
    p.signal("HUP");
    p.wait_for("reload: ok").unwrap();
    let reopened = std::fs::read_to_string(&log).unwrap();
    assert!(reopened.contains("reload"), "{reopened}");
}

/// Under systemd (stderr is the stream JOURNAL_STREAM names) each text line
/// on stderr carries the `<N>` priority journald reads, and LOG_FILE has the
/// lines as WebORCA writes them; a JOURNAL_STREAM inherited with stderr
/// going elsewhere adds no prefix.
#[test]
fn the_journal_priority_goes_to_the_journal_only() {
    use std::io::{BufRead, BufReader};
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let setup = Setup::new();
    let conf = setup.write_config("http://127.0.0.1:9");
    let log = setup.dir.path().join("proxy.log");
    let mut text = std::fs::read_to_string(&conf).unwrap();
    text.push_str(&format!("LOG_FILE={}\n", log.display()));
    std::fs::write(&conf, text).unwrap();
    for journal in [true, false] {
        let _ = std::fs::remove_file(&log);
        let (reader, writer) = std::io::pipe().unwrap();
        let meta = std::fs::File::from(writer.as_fd().try_clone_to_owned().unwrap())
            .metadata()
            .unwrap();
        let stream = if journal {
            format!("{}:{}", meta.dev(), meta.ino())
        } else {
            format!("{}:{}", meta.dev(), meta.ino() + 1)
        };
        let mut child = std::process::Command::new(crate::util::process::bin())
            .arg("-c")
            .arg(&conf)
            .env("RUST_LOG", "info")
            .env("NFT", "false")
            .env_remove("NOTIFY_SOCKET")
            .env("JOURNAL_STREAM", &stream)
            .stdout(std::process::Stdio::null())
            .stderr(writer)
            .spawn()
            .unwrap();
        let mut stderr = Vec::new();
        for line in BufReader::new(reader).lines() {
            let line = line.unwrap();
            let done = line.contains("listening on");
            stderr.push(line);
            if done {
                break;
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        let prefixed = |l: &String| l.starts_with("<6>2") || l.starts_with("<4>2");
        assert!(!stderr.is_empty());
        if journal {
            assert!(stderr.iter().all(prefixed), "{stderr:#?}");
        } else {
            assert!(!stderr.iter().any(|l| l.starts_with('<')), "{stderr:#?}");
        }
        let file = std::fs::read_to_string(&log).unwrap();
        assert!(file.contains("Server Mode: HTTPS"), "{file}");
        for line in file.lines() {
            crate::util::process::unstamp(line);
        }
    }
}
