//! The TLS matrix of the real clients: RSA-2048 and ECDSA P-256 server keys,
//! TLS 1.2 and TLS 1.3 each forced on the client, and a resumed connection.
//! Java (HttpClient, one SSLContext) and Ruby (Net::HTTP, which offers its
//! last session again) make three connections: a full handshake, a second
//! one that may resume, and, after user1's certificate is revoked by a CRL
//! reload, a third that may resume too and must be refused as `revoked`:
//! a resumed session is judged again, never waved through. Firefox loads the
//! page once per cell. What each client did is written to
//! `target/artefacts/clients.txt`.

use std::fmt::Write as _;

use rcgen::KeyPair;
use serde_json::Value;
use tokio::process::Command;

use crate::util::env::{Env, Setup};
use crate::util::firefox::Firefox;
use crate::util::pki::write;
use crate::util::real::{Stepped, artefacts, catool_files, java, ruby};

const DN: &str = "CN=user1,O=orca,C=JP";

/// A proxy whose server key is `key`, with an empty CRL in CA_CRL.
async fn proxy(key: KeyPair) -> Env {
    let mut setup = Setup::new();
    setup.server = setup
        .ca
        .server_with_key(&["localhost", "127.0.0.1"], 3650, key);
    let crl = write(setup.dir.path(), "ca.crl", &setup.ca.crl(&[]));
    setup.conf.push(format!("CA_CRL={}", crl.display()));
    setup.start().await
}

/// Runs a client making three connections: reads two reports, revokes user1
/// and reloads, lets the client make its last connection, reads its report.
async fn three_connections(env: &Env, cmd: &mut Command) -> Vec<Value> {
    let mut client = Stepped::spawn(cmd);
    let mut reports = vec![client.next().await, client.next().await];
    write(env.dir.path(), "ca.crl", &env.ca.crl(&[env.user1.serial]));
    env.reload().expect("reload with user1 revoked");
    client.go_on().await;
    reports.push(client.next().await);
    client.finish().await;
    reports
}

/// Checks the three reports of one client and says whether it resumed.
fn judge(
    env: &Env,
    who: &str,
    tls: &str,
    r: &[Value],
    resumed: impl Fn(&Value, &Value) -> bool,
) -> String {
    for (i, r) in r[..2].iter().enumerate() {
        assert_eq!(r["status"], 200, "{who} {tls} connection {i}: {r}");
        assert_eq!(r["tls"]["protocol"], tls, "{who}: {r}");
        let echoed: Value = serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
        let dn: Vec<&str> = echoed["headers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| h[0] == "x-ssl-client-s-dn")
            .map(|h| h[1].as_str().unwrap())
            .collect();
        assert_eq!(dn, [DN], "{who} {tls} connection {i}: {r}");
    }
    assert_eq!(
        (&r[2]["status"], &r[2]["cert_error"]),
        (&Value::from(403), &Value::from("revoked")),
        "{who} {tls}: after the CRL reload the revoked certificate was let through: {}",
        r[2]
    );
    assert_eq!(
        env.backend.count(),
        2,
        "{who} {tls}: only the two allowed requests reach WebORCA"
    );
    let second = resumed(&r[0], &r[1]);
    let third = resumed(&r[0], &r[2]);
    format!(
        "resumed: {}; after revocation: {}, refused as revoked",
        if second { "yes" } else { "no" },
        if third {
            "resumed, re-judged"
        } else {
            "full handshake"
        }
    )
}

/// The server key of one row of the matrix.
#[derive(Clone, Copy)]
enum ServerKey {
    Rsa2048,
    EcdsaP256,
}

impl ServerKey {
    fn name(self) -> &'static str {
        match self {
            ServerKey::Rsa2048 => "RSA-2048",
            ServerKey::EcdsaP256 => "ECDSA-P256",
        }
    }

    fn generate(self) -> KeyPair {
        match self {
            ServerKey::Rsa2048 => {
                KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).expect("RSA-2048 key")
            }
            ServerKey::EcdsaP256 => KeyPair::generate().expect("P-256 key"),
        }
    }
}

/// One TLS version, as each client spells it.
struct Version {
    /// as JSSE and OpenSSL report it
    name: &'static str,
    ruby: &'static str,
    /// Firefox's security.tls.version.min/max
    firefox: u8,
}

const VERSIONS: [Version; 2] = [
    Version {
        name: "TLSv1.2",
        ruby: "TLS1_2",
        firefox: 3,
    },
    Version {
        name: "TLSv1.3",
        ruby: "TLS1_3",
        firefox: 4,
    },
];

/// Java: HttpClient, a new client per connection, one SSLContext.
async fn java_cell(key: ServerKey, v: &Version) -> String {
    let env = proxy(key.generate()).await;
    let files = catool_files(env.dir.path(), 3, &env.user1, &env.ca.pem).await;
    let pass = env.path("000003__JP_orca_user1.pass");
    let url = format!(
        "https://localhost:{}/api01rv2/system01lstv2",
        env.addr.port()
    );
    let mut cmd = java("resume").await;
    cmd.arg(&url)
        .arg(env.path("ca.crt"))
        .arg(&files.p12)
        .arg(&pass)
        .arg(v.name)
        .arg("3");
    let r = three_connections(&env, &mut cmd).await;
    // JSSE keeps the session object of a resumed handshake, so its creation
    // time (checked against -Djavax.net.debug: "Resuming session")
    let line = judge(&env, "java", v.name, &r, |a, b| {
        a["tls"]["created"] == b["tls"]["created"]
    });
    let cipher = r[0]["tls"]["cipher"].as_str().unwrap_or("?");
    format!("java    {:<10} {} {cipher:<40} {line}", key.name(), v.name)
}

/// Ruby: Net::HTTP, the same object for each connection.
async fn ruby_cell(key: ServerKey, v: &Version) -> String {
    let env = proxy(key.generate()).await;
    let files = catool_files(env.dir.path(), 3, &env.user1, &env.ca.pem).await;
    let url = format!(
        "https://localhost:{}/api01rv2/patientlst2v2?class=01",
        env.addr.port()
    );
    let mut cmd = ruby("orca_api.rb");
    cmd.arg(&url)
        .arg(env.path("ca.crt"))
        .arg("pem")
        .arg(&files.crt)
        .arg(&files.pem)
        .arg(v.ruby)
        .arg("3");
    let r = three_connections(&env, &mut cmd).await;
    let line = judge(&env, "ruby", v.name, &r, |_, b| b["tls"]["resumed"] == true);
    let cipher = r[0]["tls"]["cipher"].as_str().unwrap_or("?");
    format!("ruby    {:<10} {} {cipher:<40} {line}", key.name(), v.name)
}

/// Firefox: the page through the proxy with the version forced by prefs.
async fn firefox_cell(key: ServerKey, v: &Version) -> String {
    let env = proxy(key.generate()).await;
    let files = catool_files(env.dir.path(), 3, &env.user1, &env.ca.pem).await;
    let prefs = format!(
        "user_pref(\"security.tls.version.min\", {ff});\nuser_pref(\"security.tls.version.max\", {ff});\n",
        ff = v.firefox
    );
    let firefox = Firefox::new(&env.ca.pem, &prefs).await;
    firefox.import_p12(&files).await;
    let url = format!("https://localhost:{}/?matrix", env.addr.port());
    firefox
        .screenshot(&url, &format!("firefox-matrix-{}-{}", key.name(), v.name))
        .await;
    let seen = env.backend.seen.lock().unwrap().clone();
    assert!(
        seen.iter().any(|s| s.target == "/?matrix"),
        "firefox {} {}: the page did not reach WebORCA",
        key.name(),
        v.name
    );
    assert!(
        seen.iter().all(|s| s.one("x-ssl-client-s-dn") == Some(DN)),
        "{seen:#?}"
    );
    format!(
        "firefox {:<10} {} {:<40} page loaded as user1; resumption not observable with --screenshot",
        key.name(),
        v.name,
        "-"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn java_ruby_and_firefox_with_rsa_and_ecdsa_keys_tls12_and_tls13_and_resumption() {
    let mut table = String::from(
        "# Real clients against the proxy: server key x TLS version, whether a\n\
         # second connection resumed the TLS session, and how a third one fared\n\
         # after the client's certificate was revoked (tests/client_matrix.rs)\n",
    );
    for key in [ServerKey::Rsa2048, ServerKey::EcdsaP256] {
        for v in &VERSIONS {
            // the three clients at once, each against its own proxy
            let (java, ruby, firefox) =
                tokio::join!(java_cell(key, v), ruby_cell(key, v), firefox_cell(key, v));
            for line in [java, ruby, firefox] {
                writeln!(table, "{line}").unwrap();
            }
        }
    }
    // the proxy resumes: at least one client resumed in each version
    for v in &VERSIONS {
        assert!(
            table
                .lines()
                .any(|l| l.contains(v.name) && l.contains("resumed: yes")),
            "no client resumed a {} session:\n{table}",
            v.name
        );
    }
    let path = artefacts().join("clients.txt");
    std::fs::write(&path, &table).unwrap();
    eprintln!("{}:\n{table}", path.display());
}
