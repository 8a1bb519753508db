//! `check`: WebORCA answers at BACKEND_URL, and its port is not reachable
//! from the LAN (listening on loopback only, or the backend guard loaded).

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use super::{Level, Line, Report};
use crate::config::Config;
use crate::guard::{self, SCRIPT_PATH, TABLE, UNIT};

/// How long the backend may take to answer the check.
const BACKEND_CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// WebORCA answers plain HTTP at BACKEND_URL.
pub(super) fn check_backend(r: &mut Report, config: &Config) {
    let url = &config.backend.url;
    let fix =
        "start WebORCA in plain HTTP on that port (HTTP_PORT=8001 in its service environment)";
    let addr = match config
        .backend
        .authority
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
    {
        Some(a) => a,
        None => {
            return r.fail(
                format!(
                    "BACKEND_URL {url}: cannot resolve {}",
                    config.backend.authority
                ),
                fix,
            );
        }
    };
    match http_probe(addr, &config.backend.authority) {
        Ok(status) => r.ok(format!("WebORCA answers at {url} ({status})")),
        Err(e) => r.fail(format!("WebORCA does not answer at {url}: {e}"), fix),
    }
}

/// Sends `HEAD /` to `addr`; the status line of the answer.
pub fn http_probe(addr: SocketAddr, host: &str) -> std::io::Result<String> {
    let mut tcp = TcpStream::connect_timeout(&addr, BACKEND_CHECK_TIMEOUT)?;
    tcp.set_read_timeout(Some(BACKEND_CHECK_TIMEOUT))?;
    tcp.write_all(
        format!("HEAD / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    )?;
    let mut buf = [0u8; 64];
    let n = tcp.read(&mut buf)?;
    let head = String::from_utf8_lossy(&buf[..n]);
    let status = head.lines().next().unwrap_or("").to_string();
    if status.starts_with("HTTP/") {
        Ok(status)
    } else {
        Err(std::io::Error::other("the answer is not HTTP"))
    }
}

/// The backend port must not be reachable from the LAN: that would bypass the
/// proxy, unless the backend guard drops it there.
pub(super) fn check_backend_exposure(r: &mut Report, config: &Config) {
    let port = config.backend.port;
    let exposed: Vec<IpAddr> = listening_sockets()
        .into_iter()
        .filter(|(ip, p)| *p == port && !ip.is_loopback())
        .map(|(ip, _)| ip)
        .collect();
    let guard = crate::guard::state(port);
    r.lines.extend(exposure(port, &guard, &exposed));
}

/// Listening TCP sockets from the kernel's tables (/proc/net/tcp, /proc/net/tcp6).
pub fn listening_sockets() -> Vec<(IpAddr, u16)> {
    listening().into_iter().map(|l| l.addr).collect()
}

/// A listening TCP socket: where it listens, and its inode (which names it
/// among a process's descriptors, `/proc/PID/fd/N` → `socket:[INODE]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listening {
    pub addr: (IpAddr, u16),
    pub inode: u64,
}

/// [`listening_sockets`] with their inodes.
pub fn listening() -> Vec<Listening> {
    let mut out = Vec::new();
    for (file, v6) in [("/proc/net/tcp", false), ("/proc/net/tcp6", true)] {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // field 3 is the state: 0A = LISTEN; field 9 the inode
            if fields.get(3) != Some(&"0A") {
                continue;
            }
            let inode = fields.get(9).and_then(|i| i.parse().ok()).unwrap_or(0);
            if let Some(addr) = fields.get(1).and_then(|l| parse_proc_addr(l, v6)) {
                out.push(Listening { addr, inode });
            }
        }
    }
    out
}

/// `0100007F:1F41` (IPv4, little-endian words) or 32 hex digits (IPv6) and a port.
fn parse_proc_addr(s: &str, v6: bool) -> Option<(IpAddr, u16)> {
    let (ip, port) = s.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let words: Vec<u32> = (0..ip.len() / 8)
        .map(|i| {
            ip.get(i * 8..i * 8 + 8)
                .and_then(|w| u32::from_str_radix(w, 16).ok())
        })
        .collect::<Option<_>>()?;
    let bytes: Vec<u8> = words
        .iter()
        .flat_map(|w| w.swap_bytes().to_be_bytes())
        .collect();
    let ip = if v6 {
        let b: [u8; 16] = bytes.try_into().ok()?;
        let v6 = std::net::Ipv6Addr::from(b);
        v6.to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6))
    } else {
        let b: [u8; 4] = bytes.try_into().ok()?;
        IpAddr::V4(b.into())
    };
    Some((ip, port))
}

/// The `check` lines about the backend port: where it listens and whether the
/// guard is in force. Listening on a non-loopback address without the guard FAILs.
fn exposure(port: u16, state: &guard::State, exposed: &[IpAddr]) -> Vec<Line> {
    let line = |level, text: String, fix: Option<String>| Line { level, text, fix };
    let mut lines = Vec::new();
    let guard_text = match state {
        guard::State::Loaded => format!(
            "backend guard loaded: nftables table inet {TABLE} drops port {port} from every interface but lo"
        ),
        guard::State::OtherPort(ports) => {
            format!("backend guard loaded for port(s) {ports:?}, not for port {port}")
        }
        guard::State::NotLoaded => {
            format!("backend guard not loaded (no nftables table inet {TABLE})")
        }
        guard::State::Unknown(why) => format!("backend guard state unknown: {why}"),
    };
    let guard_fix = format!(
        "sudo weborca-mtls-proxy setup (or: weborca-mtls-proxy guard print --port {port} > {SCRIPT_PATH}; sudo systemctl enable --now {UNIT})"
    );
    if exposed.is_empty() {
        lines.push(line(
            Level::Ok,
            format!("port {port} (WebORCA) listens on loopback only"),
            None,
        ));
        match state {
            guard::State::Loaded => lines.push(line(Level::Ok, guard_text, None)),
            _ => lines.push(line(Level::Warn, format!("{guard_text}: should WebORCA listen on every interface again, LAN clients could reach it"), Some(guard_fix))),
        }
        return lines;
    }
    let on: Vec<String> = exposed
        .iter()
        .map(|ip| {
            if ip.is_unspecified() {
                format!("{ip} (every address)")
            } else {
                ip.to_string()
            }
        })
        .collect();
    let on = on.join(", ");
    if *state == guard::State::Loaded {
        lines.push(line(Level::Ok, format!("port {port} (WebORCA) listens on {on}, but only this machine reaches it: {guard_text}"), None));
    } else {
        lines.push(line(
            Level::Fail,
            format!("port {port} (WebORCA) listens on {on} and {guard_text}: LAN clients can reach WebORCA without a certificate"),
            Some(format!(
                "{guard_fix}; or make WebORCA listen on 127.0.0.1 only"
            )),
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_addresses_parse() {
        assert_eq!(
            parse_proc_addr("0100007F:1F41", false),
            Some(("127.0.0.1".parse().unwrap(), 8001))
        );
        assert_eq!(
            parse_proc_addr("00000000:1F40", false),
            Some(("0.0.0.0".parse().unwrap(), 8000))
        );
        assert_eq!(
            parse_proc_addr("00000000000000000000000001000000:1F41", true),
            Some(("::1".parse().unwrap(), 8001))
        );
        assert_eq!(
            parse_proc_addr("0000000000000000FFFF00000100007F:0050", true),
            Some(("127.0.0.1".parse().unwrap(), 80))
        );
        assert_eq!(parse_proc_addr("garbage", false), None);
    }
}
