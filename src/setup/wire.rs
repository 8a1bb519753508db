//! What the running proxy shows, read over the network after a reload: the
//! certificate it serves (a TLS handshake stopped as soon as the server's
//! certificate is seen, so the server never judges a client certificate),
//! and the recently seen clients and the CRLs in use from the status
//! listener's `/status`.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

const TIMEOUT: Duration = Duration::from_secs(5);

/// Where to connect to reach a listen address from this machine (an unspecified
/// address is reached on loopback).
pub fn local(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::from((Ipv4Addr::LOCALHOST, addr.port()))
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::from((Ipv6Addr::LOCALHOST, addr.port()))
        }
        _ => addr,
    }
}

/// The handshake of [`served_cert`] is stopped here, by the probe itself.
const SEEN: &str = "the server's certificate is recorded; the handshake stops here";

/// How long the probe waits for the server to close after it hung up.
const DRAIN_WAIT: Duration = Duration::from_secs(1);

/// How much of what the server still sends is read after the probe hangs
/// up, before it closes the connection itself.
const DRAIN_LIMIT: u64 = 64 << 10;

/// Records the server's certificate and then stops the handshake (an error
/// of its own, [`SEEN`]): only the certificate is wanted here. Accepting it
/// would make the client answer the server's CertificateRequest with no
/// certificate, and the proxy would log and count the probe as a client
/// refused as `missing` (the console's refusals, the metrics, the audit).
#[derive(Debug)]
struct Recorder {
    seen: Mutex<Option<CertificateDer<'static>>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Ok(mut seen) = self.seen.lock() {
            *seen = Some(end_entity.clone().into_owned());
        }
        Err(rustls::Error::General(SEEN.to_string()))
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The leaf certificate (DER) the server at `addr` presents. Compared whole
/// by the caller: a serial alone says nothing, since every orca-catool CA
/// numbers its certificates from 01.
///
/// The client hangs up right after the server's certificate, before it
/// would send its own Certificate message: to the proxy that is a client
/// that left during the handshake (a debug line), not a refused one.
pub fn served_cert(addr: SocketAddr) -> Result<CertificateDer<'static>, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let recorder = Arc::new(Recorder {
        seen: Mutex::new(None),
        provider: provider.clone(),
    });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(recorder.clone())
        .with_no_client_auth();
    let name = ServerName::IpAddress(addr.ip().into());
    let mut conn =
        rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
    let mut tcp = TcpStream::connect_timeout(&addr, TIMEOUT)
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    tcp.set_read_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    tcp.set_write_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    let shaken = until_certificate(&mut conn, &mut tcp);
    hang_up(tcp);
    let seen = recorder.seen.lock().ok().and_then(|s| s.clone());
    seen.ok_or_else(|| match shaken {
        Err(e) => format!("{addr} presented no certificate: the TLS handshake failed: {e}"),
        Ok(()) => format!("{addr} presented no certificate"),
    })
}

/// Runs the client's side of the handshake until the recorder has stopped
/// it (or the server ended it). Unlike `complete_io`, nothing is written
/// once rustls has failed: the alert it queues for the recorder's stop
/// would reach the server as this client's verdict on its certificate.
fn until_certificate(
    conn: &mut rustls::ClientConnection,
    tcp: &mut TcpStream,
) -> Result<(), String> {
    loop {
        while conn.wants_write() {
            conn.write_tls(tcp).map_err(|e| e.to_string())?;
        }
        if !conn.is_handshaking() {
            // cannot happen with the recorder's stop; said rather than looped on
            return Err("the handshake ended without the server's certificate".to_string());
        }
        match conn.read_tls(tcp) {
            Ok(0) => return Err("the server closed the connection".to_string()),
            Ok(_) => {}
            Err(e) => return Err(e.to_string()),
        }
        match conn.process_new_packets() {
            Ok(_) => {}
            Err(rustls::Error::General(e)) if e == SEEN => return Ok(()),
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// Closes the probe's connection the way a client that hangs up does: its
/// end of the stream first, then what the server still sends is read until
/// the server closes too (bounded), so that the server reads an end of
/// stream rather than a reset (closing with bytes unread sends one).
fn hang_up(tcp: TcpStream) {
    let _ = tcp.shutdown(std::net::Shutdown::Write);
    let _ = tcp.set_read_timeout(Some(DRAIN_WAIT));
    let _ = std::io::copy(&mut (&tcp).take(DRAIN_LIMIT), &mut std::io::sink());
}

/// A certificate as the messages name it: subject, issuer, serial and
/// SHA-256 fingerprint (what tells two certificates of two CAs apart).
pub fn describe(der: &[u8]) -> String {
    use sha2::Digest;
    let fingerprint: String = sha2::Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    match crate::x509::CertInfo::from_der(der) {
        Ok(i) => format!(
            "{} issued by {}, serial {}, SHA-256 {fingerprint}",
            i.subject_oneline, i.issuer_oneline, i.serial_hex
        ),
        Err(e) => format!(
            "an unreadable certificate ({}), SHA-256 {fingerprint}",
            e.message()
        ),
    }
}

/// A recently seen client as `/status` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// its CN
    pub cn: String,
    /// its serial, hex
    pub serial: String,
    /// its issuer, one-line form; `None` from a proxy older than the field
    pub issuer: Option<String>,
    /// the SHA-256 of the CA_CRT certificate its chain ends at; `None` when
    /// the proxy does not know it (or is older than the field)
    pub ca_sha256: Option<String>,
}

/// The recently seen clients from `http://STATUS/status`.
pub fn seen_clients(status: SocketAddr) -> Result<Vec<Seen>, String> {
    let value = status_json(status)?;
    Ok(value["clients"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|c| {
                    let s = |k: &str| c[k].as_str().map(str::to_string);
                    Seen {
                        cn: s("cn").unwrap_or_default(),
                        serial: s("serial").unwrap_or_default(),
                        issuer: s("issuer"),
                        ca_sha256: s("ca_sha256"),
                    }
                })
                .collect()
        })
        .unwrap_or_default())
}

/// The CRLs the proxy checks clients against now (file, thisUpdate as a
/// Unix time), from `http://STATUS/status`.
pub fn served_crls(status: SocketAddr) -> Result<Vec<(String, i64)>, String> {
    let value = status_json(status)?;
    Ok(value["crls"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|c| {
                    let at = chrono::DateTime::parse_from_rfc3339(c["this_update"].as_str()?);
                    Some((c["path"].as_str()?.to_string(), at.ok()?.timestamp()))
                })
                .collect()
        })
        .unwrap_or_default())
}

/// `http://STATUS/status`, parsed.
fn status_json(status: SocketAddr) -> Result<serde_json::Value, String> {
    let mut tcp = TcpStream::connect_timeout(&local(status), TIMEOUT)
        .map_err(|e| format!("cannot connect to STATUS_LISTEN {status}: {e}"))?;
    tcp.set_read_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    tcp.write_all(format!("GET /status HTTP/1.0\r\nHost: {status}\r\n\r\n").as_bytes())
        .map_err(|e| e.to_string())?;
    let mut body = Vec::new();
    tcp.take(8 << 20)
        .read_to_end(&mut body)
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&body);
    let json = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    serde_json::from_str(json).map_err(|e| format!("/status is not JSON: {e}"))
}
