//! `check`: the server certificate (dates, the names clients use), its chain
//! to CA_CRT, and the CRLs' dates.

use std::net::IpAddr;

use super::Report;
use crate::config::{Config, CrlStale};
use crate::tls::{ServerChain, TlsState};
use crate::x509::CertInfo;

pub(super) fn check_server_cert(
    r: &mut Report,
    config: &Config,
    cert: &CertInfo,
    hosts: Option<&[String]>,
) {
    let now = chrono::Utc::now();
    let days = cert.days_left(now);
    let subject = &cert.subject_oneline;
    if cert.not_before > now {
        r.fail(
            format!(
                "server certificate {subject} is not valid before {}",
                cert.not_before
            ),
            "check the server's clock, or issue a new certificate",
        );
    } else if days < 0 {
        r.fail(
            format!("The certificate({subject}) will be expired in {days} days: browsers refuse it"),
            "orca-catool issue_server_cert, then replace SERVER_CRT/SERVER_PEM and systemctl reload weborca-mtls-proxy",
        );
    } else if days <= i64::from(config.cert_warn_days) {
        r.warn(
            format!("server certificate {subject} expires in {days} days"),
            "issue a new one with orca-catool issue_server_cert before then",
        );
    } else {
        r.ok(format!(
            "server certificate {subject} is valid, {days} days left"
        ));
    }
    let hosts = match hosts {
        None => {
            r.warn(
                "the names clients use are not checked: no --host was given, and under --root this machine's names say nothing about the root's",
                "give --host NAME_OR_IP for each name clients type (https://NAME:8000)",
            );
            return;
        }
        Some([]) => this_machine(),
        Some(hosts) => hosts.to_vec(),
    };
    for host in hosts {
        if cert.covers_host(&host) {
            r.ok(format!("server certificate covers {host}"));
        } else {
            let sans: Vec<String> = cert
                .dns_names
                .iter()
                .cloned()
                .chain(cert.ip_addresses.iter().map(IpAddr::to_string))
                .collect();
            r.fail(
                format!("server certificate does not cover {host} (it names {})", sans.join(", ")),
                format!("clients must open https://NAME:8000 with a NAME the certificate names, or issue one with orca-catool issue_server_cert -c {host} (or -i for an address)"),
            );
        }
    }
}

/// This machine's host name and non-loopback addresses: what LAN clients type.
fn this_machine() -> Vec<String> {
    let mut hosts = Vec::new();
    if let Ok(name) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        hosts.push(name.trim().to_string());
    }
    if let Ok(ifs) = if_addrs::get_if_addrs() {
        for i in ifs {
            if !i.is_loopback() && !i.is_link_local() {
                hosts.push(i.ip().to_string());
            }
        }
    }
    hosts
}

/// Is the server certificate issued by a CA of CA_CRT (browsers that imported ca.crt trust it)?
pub(super) fn check_chain(r: &mut Report, tls: &TlsState) {
    let issuer = tls.server_cert.issuer_oneline.clone();
    if tls.server_chain == ServerChain::Verified {
        r.ok(format!(
            "server certificate is issued by the CA of CA_CRT ({issuer})"
        ));
    } else if tls.server_chain == ServerChain::WrongKey {
        r.fail(
            format!("server certificate names the CA of CA_CRT ({issuer}) as its issuer but is not signed by its key: it comes from another CA of that name (one made again?), and browsers that imported ca.crt refuse it"),
            "install the server certificate issued by the CA of CA_CRT (weborca-mtls-proxy install-cert ZIP), or set CA_CRT to the ca.crt that came with the server certificate",
        );
    } else if tls.ca_subjects.contains(&issuer) {
        r.ok(format!(
            "server certificate is issued by the CA of CA_CRT ({issuer}) by name; its signature could not be checked here (an algorithm or a spelling of the name this check does not know)"
        ));
    } else {
        r.warn(
            format!("server certificate is issued by {issuer}, not by the CA of CA_CRT ({})", tls.ca_subjects.join(", ")),
            "clients must trust that issuer too; with orca-catool, server and client certificates come from the same CA",
        );
    }
    for ca in &tls.ca_certs {
        let days = ca.days_left(chrono::Utc::now());
        if days < 0 {
            r.fail(
                format!("CA certificate {} has expired", ca.subject_oneline),
                "make a new CA and reissue the certificates",
            );
        }
    }
}

pub(super) fn check_crls(r: &mut Report, tls: &TlsState) {
    let now = chrono::Utc::now();
    let fix = "run orca-catool issue_crl and copy the new CRL there";
    for crl in &tls.crls {
        let shown = crl.path.display();
        match crl.next_update {
            Some(next) if next < now && tls.crl_stale == CrlStale::Refuse => r.fail(
                format!(
                    "CA_CRL {shown} is out of date (nextUpdate {next}); with CRL_STALE=refuse every client is refused"
                ),
                fix,
            ),
            Some(next) if next < now => r.warn(
                format!(
                    "CA_CRL {shown} is out of date (nextUpdate {next}); CRL_STALE=warn keeps using it"
                ),
                fix,
            ),
            next => r.ok(format!(
                "CA_CRL {shown} is signed by {} and current (nextUpdate {}), {} revoked",
                crl.issuer,
                next.map_or_else(|| "none".to_string(), |n| n.to_string()),
                crl.revoked
            )),
        }
    }
}
