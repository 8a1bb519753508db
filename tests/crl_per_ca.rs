//! Two CAs of one name in CA_CRT, each with its own CRL in CA_CRL: a clinic
//! moving from one orca-catool CA to the next keeps both, and orca-catool's
//! CAs of one clinic often share a name. A CRL names its CA by name only, so
//! each client must be judged by the CRL its own CA's key signed: a client
//! revoked by its CA is refused, one that is not is served, and the serials
//! both CAs number from 1 revoked by the other CA mean nothing to it. In the
//! page mode (default) and in the handshake mode, and whichever CRL comes
//! first in CA_CRL.

use std::path::PathBuf;

use crate::util::client::Client;
use crate::util::env::Setup;
use crate::util::pki::{Ca, Leaf, write};

/// The clients of the two CAs: `a1` and `b1` are revoked by neither CRL,
/// `a2` by A's and `b2` by B's. `a1` has `b2`'s serial and `b1` has `a2`'s,
/// so the other CA's CRL would refuse each of them.
struct Clients {
    a1: Leaf,
    a2: Leaf,
    b1: Leaf,
    b2: Leaf,
}

/// A setup whose CA_CRT holds the setup's CA (A) and another CA of its name
/// (B), with CA_CRL naming A's CRL and B's (`a_first`) or B's and A's.
fn two_cas_of_one_name(a_first: bool, extra: &[&str]) -> (Setup, Clients) {
    let mut s = Setup::new();
    let b = Ca::new("test-ca");
    let clients = Clients {
        a1: s.ca.client_numbered("userA1", 10),
        a2: s.ca.client_numbered("userA2", 11),
        b1: b.client_numbered("userB1", 11),
        b2: b.client_numbered("userB2", 10),
    };
    let d = s.dir.path().to_path_buf();
    let both = write(&d, "both-cas.crt", &format!("{}{}", s.ca.pem, b.pem));
    let crl_a = write(&d, "a.crl", &s.ca.crl(&[clients.a2.serial]));
    let crl_b = write(&d, "b.crl", &b.crl(&[clients.b2.serial]));
    let list: [&PathBuf; 2] = if a_first {
        [&crl_a, &crl_b]
    } else {
        [&crl_b, &crl_a]
    };
    s.conf.push(format!("CA_CRT={}", both.display()));
    s.conf.push(format!(
        "CA_CRL={},{}",
        list[0].display(),
        list[1].display()
    ));
    s.conf.extend(extra.iter().map(|e| e.to_string()));
    (s, clients)
}

/// What each client is to be told: served (`None`) or refused as revoked.
fn expected(c: &Clients) -> [(&Leaf, Option<&'static str>); 4] {
    [
        (&c.a1, None),
        (&c.a2, Some("revoked")),
        (&c.b1, None),
        (&c.b2, Some("revoked")),
    ]
}

#[tokio::test]
async fn two_cas_of_one_name_each_refuse_the_clients_their_own_crl_revokes_with_the_page() {
    let mut wrong = Vec::new();
    for a_first in [true, false] {
        let (s, c) = two_cas_of_one_name(a_first, &[]);
        let env = s.start().await;
        let first = if a_first {
            "A's CRL first"
        } else {
            "B's CRL first"
        };
        for (leaf, refused) in expected(&c) {
            let before = env.backend.count();
            let answer = env.client(Some(leaf)).get(env.addr, "/").await.unwrap();
            let told = (
                answer.status.as_u16(),
                answer.header("x-client-cert-error").map(str::to_string),
            );
            let meant = match refused {
                None => (200, None),
                Some(reason) => (403, Some(reason.to_string())),
            };
            if told != meant {
                wrong.push(format!("{first}, {}: {told:?}, not {meant:?}", leaf.cn));
            }
            let reached = env.backend.count() - before;
            if reached != usize::from(refused.is_none()) {
                wrong.push(format!(
                    "{first}, {}: {reached} request(s) reached WebORCA",
                    leaf.cn
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[tokio::test]
async fn two_cas_of_one_name_each_refuse_the_clients_their_own_crl_revokes_in_the_handshake() {
    let mut wrong = Vec::new();
    for a_first in [true, false] {
        let (s, c) = two_cas_of_one_name(a_first, &["CLIENT_CERT_ERRORS=handshake"]);
        let env = s.start().await;
        let first = if a_first {
            "A's CRL first"
        } else {
            "B's CRL first"
        };
        for (leaf, refused) in expected(&c) {
            let before = env.backend.count();
            let told = crate::refusals::alert_of(&Client::h1(&env.ca.pem, Some(leaf)), &env).await;
            let ok = match refused {
                None => told.starts_with("answered \"HTTP/1.1 200"),
                Some(_) => told.contains("received fatal alert: CertificateRevoked"),
            };
            if !ok {
                wrong.push(format!("{first}, {}: {told}", leaf.cn));
            }
            let reached = env.backend.count() - before;
            if reached != usize::from(refused.is_none()) {
                wrong.push(format!(
                    "{first}, {}: {reached} request(s) reached WebORCA",
                    leaf.cn
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}
