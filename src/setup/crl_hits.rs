//! Which of the recently seen clients (from `/status`) a new CRL refuses,
//! for `install-crl`'s last lines. A CRL revokes serials of the
//! certificates its own CA issued, and every orca-catool CA numbers them
//! from 01: with two CAs in CA_CRT (a clinic moving from one to the next,
//! often under one name) the other CA's client of the same serial is not
//! refused, and naming it would send the operator after the wrong user. So
//! a client is hit only when its chain ends at the CA_CRT certificate that
//! signed the CRL (told by `/status`'s `ca_sha256`, the CRL's signer by its
//! key), its issuer is the CRL's, and its serial is in the CRL.

use rustls::pki_types::CertificateDer;

use super::PROXY_UNIT;
use super::wire::Seen;

/// What one CRL of the file revokes, and whose.
#[derive(Debug, Clone)]
pub(super) struct Revokes {
    /// the CRL's issuer, one-line form (a client's `issuer` in `/status`)
    issuer: String,
    /// the SHA-256 fingerprints of the CA_CRT certificates whose key signed
    /// it: one CA, though CA_CRT may hold two certificates of it
    signers: Vec<String>,
    /// the revoked serials, hex as `/status` writes them
    serials: Vec<String>,
}

impl Revokes {
    /// What `crl` (DER, signed by one of `cas`) revokes; `None` when it
    /// cannot be parsed.
    pub(super) fn of(crl: &[u8], cas: &[CertificateDer<'_>]) -> Option<Revokes> {
        use sha2::Digest as _;
        let (_, parsed) = x509_parser::parse_x509_crl(crl).ok()?;
        let signers = crate::tls::crl::signers(crl, cas)
            .into_iter()
            .map(|i| super::command::hex(&sha2::Sha256::digest(cas[i].as_ref())))
            .collect();
        Some(Revokes {
            issuer: crate::x509::oneline(parsed.issuer()),
            signers,
            serials: parsed
                .iter_revoked_certificates()
                .map(|r| serial_hex(r.raw_serial()))
                .collect(),
        })
    }

    /// The revoked serials.
    pub(super) fn serials(&self) -> &[String] {
        &self.serials
    }
}

/// A serial as [`crate::x509::CertInfo::serial_hex`] writes it: leading
/// zero bytes dropped, `00` for zero.
fn serial_hex(raw: &[u8]) -> String {
    let trimmed: Vec<u8> = raw.iter().copied().skip_while(|b| *b == 0).collect();
    if trimmed.is_empty() {
        "00".to_string()
    } else {
        super::command::hex(&trimmed)
    }
}

/// What the new CRLs mean for one recently seen client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Effect {
    /// its serial is not revoked by any of them
    Untouched,
    /// a CRL of its own CA revokes it: the proxy now refuses it
    Refused,
    /// its serial is revoked, but by another CA than its own: not refused
    OtherCa,
    /// its serial is revoked, and `/status` does not say its CA (a proxy
    /// older than this command, or a chain that ends at no CA_CRT
    /// certificate): refused only if it is of the CRL's CA
    Unknown,
}

/// What `crls` mean for `client`.
pub(super) fn effect(client: &Seen, crls: &[Revokes]) -> Effect {
    let mut effect = Effect::Untouched;
    for crl in crls.iter().filter(|c| c.serials.contains(&client.serial)) {
        let (Some(issuer), Some(ca)) = (&client.issuer, &client.ca_sha256) else {
            effect = Effect::Unknown;
            continue;
        };
        if *issuer == crl.issuer && crl.signers.contains(ca) {
            return Effect::Refused;
        }
        if effect == Effect::Untouched {
            effect = Effect::OtherCa;
        }
    }
    effect
}

/// The lines `install-crl` ends with, about `clients` (from `/status`) and
/// the installed `crls`.
pub(super) fn report(clients: &[Seen], crls: &[Revokes]) -> Vec<String> {
    let named = |wanted: Effect| -> Vec<String> {
        clients
            .iter()
            .filter(|c| effect(c, crls) == wanted)
            .map(|c| format!("CN={} (serial {})", c.cn, c.serial))
            .collect()
    };
    let (refused, other, unknown) = (
        named(Effect::Refused),
        named(Effect::OtherCa),
        named(Effect::Unknown),
    );
    let mut lines = Vec::new();
    if !refused.is_empty() {
        lines.push(format!(
            "recently seen clients now refused: {}",
            refused.join(", ")
        ));
    } else if unknown.is_empty() {
        lines.push(format!(
            "none of the {} recently seen client(s) is revoked",
            clients.len()
        ));
    }
    if !other.is_empty() {
        lines.push(format!(
            "not refused by this CRL, of a revoked serial but issued by another CA of CA_CRT than the CRL's (each CA numbers its certificates from 01): {}",
            other.join(", ")
        ));
    }
    if !unknown.is_empty() {
        lines.push(format!(
            "refused if issued by the CRL's CA, which /status does not say of them (a running proxy older than this command; after sudo systemctl restart {PROXY_UNIT} it does): {}",
            unknown.join(", ")
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(cn: &str, issuer: Option<&str>, ca: Option<&str>) -> Seen {
        Seen {
            cn: cn.to_string(),
            serial: "0a".to_string(),
            issuer: issuer.map(str::to_string),
            ca_sha256: ca.map(str::to_string),
        }
    }

    fn crl_of(ca: &str) -> Revokes {
        Revokes {
            issuer: "/CN=ca".to_string(),
            signers: vec![ca.to_string()],
            serials: vec!["0a".to_string()],
        }
    }

    #[test]
    fn a_revoked_serial_hits_only_the_client_of_the_crls_own_ca() {
        let a = seen("userA", Some("/CN=ca"), Some("aa"));
        let b = seen("userB", Some("/CN=ca"), Some("bb"));
        let crls = [crl_of("bb")];
        assert_eq!(effect(&b, &crls), Effect::Refused);
        assert_eq!(effect(&a, &crls), Effect::OtherCa);
        let lines = report(&[a.clone(), b.clone()], &crls);
        assert_eq!(
            lines[0],
            "recently seen clients now refused: CN=userB (serial 0a)"
        );
        assert!(lines[1].ends_with(": CN=userA (serial 0a)"), "{lines:?}");
        assert_eq!(effect(&a, &[crl_of("aa")]), Effect::Refused);
        let mut other_serial = b.clone();
        other_serial.serial = "0b".to_string();
        assert_eq!(effect(&other_serial, &crls), Effect::Untouched);
    }

    #[test]
    fn a_client_issued_below_the_crls_ca_is_not_hit_by_its_serial() {
        // its chain ends at the CRL's CA, but an intermediate issued it
        let below = seen("userI", Some("/CN=intermediate"), Some("bb"));
        assert_eq!(effect(&below, &[crl_of("bb")]), Effect::OtherCa);
    }

    #[test]
    fn a_client_whose_ca_status_does_not_say_is_named_as_unknown() {
        let old = seen("userO", None, None);
        assert_eq!(effect(&old, &[crl_of("bb")]), Effect::Unknown);
        let lines = report(std::slice::from_ref(&old), &[crl_of("bb")]);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].starts_with("refused if issued by"), "{lines:?}");
    }
}
