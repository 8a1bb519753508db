//! Malformed TLS and certificates: random bytes, truncated ClientHellos,
//! a client chain of 20 certificates, certificates with absurd field sizes,
//! a CRL not signed by the CA — no panic, a clear log line, and the service
//! continues.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::util::client::Client;
use crate::util::env::{Env, Setup};
use crate::util::lean::Lean;
use crate::util::pki::{Ca, write};
use crate::util::process::Proc;
use crate::util::raw::{PATIENCE, Rng, start_proc};

/// A certificate chain and the leaf's key.
struct Chain {
    certs: Vec<CertificateDer<'static>>,
    key: KeyPair,
}

fn dn(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, "JP");
    dn.push(DnType::CommonName, cn);
    dn
}

/// A client leaf under `depth` intermediates below `ca`, sent leaf first.
fn deep_chain(ca: &Ca, depth: usize) -> Chain {
    let mut certs = Vec::new();
    let mut issuer: &Issuer<'static, KeyPair> = &ca.issuer;
    let mut owned: Vec<Issuer<'static, KeyPair>> = Vec::new();
    for i in 0..depth {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = dn(&format!("intermediate {i}"));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.signed_by(&key, issuer).unwrap();
        certs.push(cert.der().clone());
        owned.push(Issuer::new(params, key));
        issuer = owned.last().unwrap();
    }
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = dn("deep");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let leaf = params.signed_by(&key, issuer).unwrap();
    certs.push(leaf.der().clone());
    certs.reverse();
    Chain { certs, key }
}

/// A client certificate from `ca` with absurd fields: a huge CN (with
/// control characters, an attempt at forging a log line), a hundred and
/// fifty SANs and a large private extension; some 28 KB of DER. (rustls puts
/// the client's chain into its TLS 1.3 session tickets, and a rustls client
/// cannot read a ticket above 64 KB: much bigger and the client breaks.)
fn absurd(ca: &Ca, cn_prefix: &str) -> Chain {
    let key = KeyPair::generate().unwrap();
    let sans: Vec<String> = (0..150)
        .map(|i| format!("host-{i:04}.{}.example", "x".repeat(40)))
        .collect();
    let mut params = CertificateParams::new(sans).unwrap();
    params.distinguished_name = dn(&format!("{cn_prefix}{}", "C".repeat(6000)));
    params
        .distinguished_name
        .push(DnType::OrganizationName, "o".repeat(2000));
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params
        .custom_extensions
        .push(CustomExtension::from_oid_content(
            &[1, 3, 6, 1, 4, 1, 99999, 1],
            vec![0x04, 0x82, 0x1f, 0x40]
                .into_iter()
                .chain(std::iter::repeat_n(0x41, 8000))
                .collect(),
        ));
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    Chain {
        certs: vec![cert.der().clone()],
        key,
    }
}

/// A client trusting the test CA and showing `chain`.
fn client_showing(ca_pem: &str, chain: &Chain) -> Client {
    let mut roots = RootCertStore::empty();
    use rustls::pki_types::pem::PemObject;
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let key = PrivateKeyDer::from_pem_slice(chain.key.serialize_pem().as_bytes()).unwrap();
    let mut config = ClientConfig::builder()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain.certs.clone(), key)
        .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Client {
        config: Arc::new(config),
    }
}

#[tokio::test]
async fn client_chain_of_twenty_certificates_is_refused() {
    let env = Env::start().await;
    let chain = deep_chain(&env.ca, 19);
    assert_eq!(chain.certs.len(), 20);
    let answer = client_showing(&env.ca.pem, &chain)
        .get(env.addr, "/")
        .await
        .unwrap();
    assert_eq!(answer.status, 403);
    assert_eq!(answer.header("x-client-cert-error"), Some("unknown-ca"));
    assert_eq!(env.backend.count(), 0);
    // In handshake mode the same chain is a TLS alert.
    let mut setup = Setup::new();
    setup.conf.push("CLIENT_CERT_ERRORS=handshake".into());
    let strict = setup.start().await;
    let chain = deep_chain(&strict.ca, 19);
    let refused = client_showing(&strict.ca.pem, &chain)
        .get(strict.addr, "/")
        .await;
    assert!(refused.is_err(), "{refused:?}");
    assert_eq!(strict.backend.count(), 0);
    strict.assert_serves_user1().await;
}

#[tokio::test]
async fn certificates_with_absurd_field_sizes_are_judged_without_panic() {
    let env = Env::start().await;
    // From a stranger's CA: refused with the page, nothing forwarded.
    let stranger = Ca::new("stranger-ca");
    let answer = client_showing(&env.ca.pem, &absurd(&stranger, "x"))
        .get(env.addr, "/")
        .await
        .unwrap();
    assert_eq!(answer.status, 403);
    assert_eq!(answer.header("x-client-cert-error"), Some("unknown-ca"));
    assert_eq!(env.backend.count(), 0);
    // From the clinic's CA: served, the identity headers carry it all.
    let answer = client_showing(&env.ca.pem, &absurd(&env.ca, "big"))
        .get(env.addr, "/")
        .await
        .unwrap();
    assert_eq!(
        answer.status,
        200,
        "{}",
        answer.text().get(..300).unwrap_or("")
    );
    let seen = env.backend.last();
    let dn = seen.one("x-ssl-client-s-dn").expect("subject header");
    assert!(dn.len() > 8000 && dn.contains("CN=bigCCCC"), "{}", dn.len());
    env.assert_serves_user1().await;
}

#[tokio::test]
async fn crl_not_signed_by_the_ca_is_refused_and_the_old_one_kept() {
    let mut setup = Setup::new();
    let user2 = setup.ca.client("user2");
    let crl = write(setup.dir.path(), "ca.crl", &setup.ca.crl(&[user2.serial]));
    setup.conf.push(format!("CA_CRL={}", crl.display()));
    let env = setup.start().await;
    let revoked = env.client(Some(&user2)).get(env.addr, "/").await.unwrap();
    assert_eq!(revoked.header("x-client-cert-error"), Some("revoked"));
    // A stranger's CRL revoking nobody must neither load nor lift the revocation.
    write(env.dir.path(), "ca.crl", &Ca::new("stranger-ca").crl(&[]));
    let e = env.reload().expect_err("a CRL from another CA is refused");
    assert!(e.contains("CA_CRL") && e.contains("stranger-ca"), "{e}");
    let still = env.client(Some(&user2)).get(env.addr, "/").await.unwrap();
    assert_eq!(still.status, 403);
    assert_eq!(still.header("x-client-cert-error"), Some("revoked"));
    env.assert_serves_user1().await;
}

/// The first flight of a real TLS client.
fn client_hello() -> Vec<u8> {
    let mut roots = RootCertStore::empty();
    roots.add(Ca::new("any").der).unwrap();
    let config = ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut conn =
        rustls::ClientConnection::new(Arc::new(config), ServerName::try_from("localhost").unwrap())
            .unwrap();
    let mut hello = Vec::new();
    conn.write_tls(&mut hello).unwrap();
    hello
}

/// Writes `bytes`, optionally half-closes, and waits for the proxy to close.
async fn send_and_wait_close(addr: std::net::SocketAddr, bytes: &[u8], half_close: bool) {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let _ = tcp.write_all(bytes).await;
    if half_close {
        let _ = tcp.shutdown().await;
    }
    let mut buf = vec![0u8; 4096];
    tokio::time::timeout(PATIENCE, async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .expect("the proxy closes the connection");
}

/// Whether a line containing `needle` was logged (already or within the wait).
fn logged(p: &mut Proc, needle: &str) -> bool {
    p.seen.iter().any(|l| l.contains(needle)) || p.wait_for(needle).is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_truncated_handshakes_are_logged_and_service_continues() {
    let backend = Lean::start().await;
    let setup = Setup::new();
    let (mut p, addr) = start_proc(
        &setup,
        &backend.url(),
        &["HANDSHAKE_TIMEOUT=1s", "HEADER_TIMEOUT=1s"],
    );
    let mut rng = Rng::new(0x05ee_d0f0_badb_17e5);
    let mut garbage = Vec::new();
    for i in 0..60u8 {
        let len = 1 + rng.below(4096) as usize;
        let mut bytes = rng.bytes(len);
        bytes[0] = match i % 3 {
            0 => 0x16,            // looks like TLS
            1 => b'A' + i % 26,   // looks like HTTP
            _ => 0x80 | bytes[0], // neither
        };
        garbage.push((bytes, i % 2 == 0));
    }
    let hello = client_hello();
    assert_eq!(hello[0], 0x16);
    let half = hello[..hello.len() / 2].to_vec();
    garbage.push((half.clone(), true)); // truncated, then the client leaves
    garbage.push((half, false)); // truncated, then silence
    let sent: Vec<_> = garbage
        .into_iter()
        .map(|(bytes, half_close)| {
            tokio::spawn(async move { send_and_wait_close(addr, &bytes, half_close).await })
        })
        .collect();
    for s in sent {
        s.await.unwrap();
    }
    // A stranger's certificate whose CN tries to forge an access-log line.
    let stranger = Ca::new("stranger-ca");
    let forger = absurd(&stranger, "x\n2024/01/01 00:00:00 FORGED line\n");
    let answer = client_showing(&setup.ca.pem, &forger)
        .get(addr, "/")
        .await
        .unwrap();
    assert_eq!(answer.status, 403);
    let ok = Client::h1(&setup.ca.pem, Some(&setup.user1))
        .get(addr, "/")
        .await
        .unwrap();
    assert_eq!(ok.status, 200);
    for needle in [
        "TLS handshake failed",
        "closed: neither TLS nor HTTP",
        "TLS handshake not finished within HANDSHAKE_TIMEOUT",
        "client certificate refused: invalid peer certificate: UnknownIssuer",
        "cn=user1",
    ] {
        assert!(
            logged(&mut p, needle),
            "no line with {needle:?}: {:#?}",
            p.seen
        );
    }
    assert!(p.child.try_wait().unwrap().is_none(), "the proxy died");
    assert_eq!(backend.requests(), 1);
    p.signal("TERM");
    let (code, lines) = p.exit();
    assert_eq!(code, 0, "{lines:#?}");
    assert!(!lines.iter().any(|l| l.contains("panicked")), "{lines:#?}");
    assert!(
        !lines.iter().any(|l| l.starts_with("FORGED")),
        "a certificate forged a log line: {lines:#?}"
    );
    let refused_line = lines
        .iter()
        // quoted, as a CN with blanks is (its `\` written `\\` inside the quotes)
        .find(|l| l.contains(r#"cn="x\\x0a2024/01/01 00:00:00 FORGED"#))
        .unwrap_or_else(|| panic!("access-log line of the forger: {lines:#?}"));
    assert!(refused_line.len() < 2000, "{} bytes", refused_line.len());
}
