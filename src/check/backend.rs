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

/// Sends `HEAD /` to `addr`; the status line of the answer. A port that
/// answers as a TLS server does to plain HTTP ([`PlainAnswer::Tls`]) is an
/// error: it does not speak plain HTTP, whatever its status line says.
pub fn http_probe(addr: SocketAddr, host: &str) -> std::io::Result<String> {
    match plain_answer(addr, host)? {
        PlainAnswer::Http(status) => Ok(status),
        PlainAnswer::Tls(words) => Err(std::io::Error::other(format!(
            "it speaks TLS, not plain HTTP: to a plain-HTTP request it answers \"{words}\""
        ))),
    }
}

/// What a port answers a plain-HTTP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlainAnswer {
    /// an HTTP answer: its status line
    Http(String),
    /// the answer a TLS server gives on its port to plain HTTP (WebORCA,
    /// a Go server, says `HTTP/1.0 400 Bad Request` and "Client sent an
    /// HTTP request to an HTTPS server."): the words that tell it
    Tls(&'static str),
}

/// What TLS servers answer a plain-HTTP request on their port, besides a
/// 400 status line: Go's net/http (WebORCA), and nginx.
const TLS_SERVER_WORDS: &[&str] = &[
    "Client sent an HTTP request to an HTTPS server.",
    "The plain HTTP request was sent to HTTPS port",
];
/// How much of the answer is read: the status line, the head and the short
/// body a TLS server's 400 has.
const PLAIN_ANSWER_READ: usize = 4096;

/// Sends `HEAD /` to `addr` and reads the answer: its status line, or that
/// a TLS server answered.
pub fn plain_answer(addr: SocketAddr, host: &str) -> std::io::Result<PlainAnswer> {
    let mut tcp = TcpStream::connect_timeout(&addr, BACKEND_CHECK_TIMEOUT)?;
    tcp.set_read_timeout(Some(BACKEND_CHECK_TIMEOUT))?;
    tcp.write_all(
        format!("HEAD / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    )?;
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let n = match tcp.read(&mut buf) {
            Ok(n) => n,
            // a server that keeps the connection: what came is the answer
            Err(_) if !answer.is_empty() => break,
            Err(e) => return Err(e),
        };
        answer.extend_from_slice(&buf[..n]);
        // A 400 may be a TLS server's, whose words follow the head (Go
        // sends them with it and closes); any other status is enough.
        let head_done = answer.windows(4).any(|w| w == b"\r\n\r\n");
        let bad_request = answer.get(9..12) == Some(b"400".as_slice());
        if n == 0 || answer.len() >= PLAIN_ANSWER_READ || (head_done && !bad_request) {
            break;
        }
    }
    let text = String::from_utf8_lossy(&answer);
    let status = text.lines().next().unwrap_or("").to_string();
    if !status.starts_with("HTTP/") {
        return Err(std::io::Error::other("the answer is not HTTP"));
    }
    match TLS_SERVER_WORDS.iter().find(|w| text.contains(*w)) {
        Some(words) if status.contains(" 400 ") || status.ends_with(" 400") => {
            Ok(PlainAnswer::Tls(words))
        }
        _ => Ok(PlainAnswer::Http(status)),
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

    /// A listener on loopback that answers each connection with `answer`
    /// once it has read the request, then closes it.
    fn answering(answer: &'static [u8]) -> SocketAddr {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for mut conn in listener.incoming().flatten() {
                let _ = conn.read(&mut [0u8; 1024]);
                let _ = conn.write_all(answer);
            }
        });
        addr
    }

    #[test]
    fn a_tls_servers_answer_to_plain_http_is_told_from_plain_http() {
        // what Go's net/http (WebORCA) writes, in one write, before closing
        let go = answering(
            b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n",
        );
        assert_eq!(
            plain_answer(go, "localhost").unwrap(),
            PlainAnswer::Tls("Client sent an HTTP request to an HTTPS server.")
        );
        let e = http_probe(go, "localhost").unwrap_err().to_string();
        assert!(e.contains("it speaks TLS, not plain HTTP"), "{e}");
        // a plain-HTTP server's own 400 and 200 are plain HTTP
        let plain_400 = answering(
            b"HTTP/1.1 400 Bad Request\r\nContent-Length: 11\r\nConnection: close\r\n\r\nbad request",
        );
        assert_eq!(
            http_probe(plain_400, "localhost").unwrap(),
            "HTTP/1.1 400 Bad Request"
        );
        let plain_200 = answering(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(
            http_probe(plain_200, "localhost").unwrap(),
            "HTTP/1.1 200 OK"
        );
    }
}
