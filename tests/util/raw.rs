//! Low-level tools for the hostile-conditions tests: hand-written HTTP/1.1
//! and HTTP/2 bytes over TLS, a seeded random generator, the proxy process's
//! file descriptors and memory, and the open-files limit.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::env::Setup;
use super::process::Proc;

/// Upper bound for any single wait in these tests; never a measured timing.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// What came back for a hand-written HTTP/1.1 request.
pub struct RawAnswer {
    /// the status of the first response, if one came
    pub status: Option<u16>,
    /// everything read until the proxy closed the connection (or PATIENCE ran out)
    pub text: String,
    /// whether the proxy closed the connection
    pub closed: bool,
}

impl std::fmt::Debug for RawAnswer {
    /// The status, whether closed, and the start of the text (answers can be huge).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let start: String = self.text.chars().take(400).collect();
        write!(
            f,
            "status {:?}, closed {}, {} bytes: {start:?}",
            self.status,
            self.closed,
            self.text.len()
        )
    }
}

impl RawAnswer {
    /// How many responses the bytes hold (status lines at a line start).
    pub fn responses(&self) -> usize {
        usize::from(self.text.starts_with("HTTP/1.1 ")) + self.text.matches("\nHTTP/1.1 ").count()
    }
}

/// Writes `request` and reads until the proxy closes the connection, or
/// until the first response is complete when `keep_reading` is false.
pub async fn exchange<S>(mut io: S, request: &[u8], keep_reading: bool) -> RawAnswer
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // A write may fail if the proxy closed early; what it answered still counts.
    let _ = io.write_all(request).await;
    let _ = io.flush().await;
    let mut data = Vec::new();
    let mut closed = false;
    let read_all = async {
        let mut chunk = [0u8; 16384];
        loop {
            match io.read(&mut chunk).await {
                Ok(0) | Err(_) => {
                    closed = true;
                    return;
                }
                Ok(n) => data.extend_from_slice(&chunk[..n]),
            }
            if !keep_reading && response_complete(&data) {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(PATIENCE, read_all).await;
    let text = String::from_utf8_lossy(&data).into_owned();
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|t| t.get(..3))
        .and_then(|s| s.parse().ok());
    RawAnswer {
        status,
        text,
        closed,
    }
}

/// Whether `data` holds a whole response with a Content-Length body.
fn response_complete(data: &[u8]) -> bool {
    let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&data[..end]).to_ascii_lowercase();
    let len = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    data.len() >= end + 4 + len
}

/// A seeded xorshift generator: the same bytes on every run.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// The soft open-files limit of this process (`ulimit -n`).
pub fn nofile_limit() -> usize {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    line.split_whitespace().nth(3).unwrap().parse().unwrap()
}

/// Open file descriptors of process `pid`.
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Resident memory of process `pid`, KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Writes the setup's config (pointing at `backend_url`, plus `extra` lines)
/// and starts the proxy as a process; returns it with its address.
pub fn start_proc(setup: &Setup, backend_url: &str, extra: &[&str]) -> (Proc, SocketAddr) {
    let conf = setup.write_config(backend_url);
    append(&conf, extra);
    let mut p = Proc::start(&conf, &[]);
    let addr = p.listening();
    (p, addr)
}

/// Appends lines to a file.
pub fn append(path: &Path, lines: &[&str]) {
    let mut text = std::fs::read_to_string(path).unwrap();
    for l in lines {
        text.push_str(l);
        text.push('\n');
    }
    std::fs::write(path, text).unwrap();
}

/// Polls `check` every 20 ms until it holds or PATIENCE runs out; returns whether it held.
pub async fn eventually(mut check: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while tokio::time::Instant::now() < deadline {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    check()
}

/// HTTP/2 by hand: just enough framing to do what a well-behaved client never would.
pub mod h2 {
    use tokio::io::{AsyncRead, AsyncReadExt};

    pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    pub const DATA: u8 = 0x0;
    pub const HEADERS: u8 = 0x1;
    pub const RST_STREAM: u8 = 0x3;
    pub const SETTINGS: u8 = 0x4;
    pub const GOAWAY: u8 = 0x7;
    pub const END_STREAM: u8 = 0x1;
    pub const END_HEADERS: u8 = 0x4;
    pub const ACK: u8 = 0x1;
    pub const REFUSED_STREAM: u32 = 0x7;
    pub const ENHANCE_YOUR_CALM: u32 = 0xb;

    /// One frame.
    pub fn frame(ty: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, ty, flags];
        f.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    /// The client preface and an empty SETTINGS frame.
    pub fn start() -> Vec<u8> {
        let mut b = PREFACE.to_vec();
        b.extend(frame(SETTINGS, 0, 0, &[]));
        b
    }

    /// An HPACK integer with an `n`-bit prefix (RFC 7541 §5.1).
    fn integer(out: &mut Vec<u8>, first: u8, n: u32, mut v: usize) {
        let max = (1usize << n) - 1;
        if v < max {
            out.push(first | v as u8);
            return;
        }
        out.push(first | max as u8);
        v -= max;
        while v >= 128 {
            out.push((v % 128 + 128) as u8);
            v /= 128;
        }
        out.push(v as u8);
    }

    /// A header block of literals without indexing (no Huffman).
    pub fn block(fields: &[(&str, &str)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, value) in fields {
            out.push(0x00);
            integer(&mut out, 0, 7, name.len());
            out.extend_from_slice(name.as_bytes());
            integer(&mut out, 0, 7, value.len());
            out.extend_from_slice(value.as_bytes());
        }
        out
    }

    /// A GET of `path` on `stream`, ending the stream.
    pub fn get(stream: u32, path: &str) -> Vec<u8> {
        let fields = [
            (":method", "GET"),
            (":scheme", "https"),
            (":authority", "localhost"),
            (":path", path),
        ];
        frame(HEADERS, END_HEADERS | END_STREAM, stream, &block(&fields))
    }

    pub fn rst(stream: u32, code: u32) -> Vec<u8> {
        frame(RST_STREAM, 0, stream, &code.to_be_bytes())
    }

    /// A frame read back.
    #[derive(Debug)]
    pub struct Frame {
        pub ty: u8,
        pub flags: u8,
        pub stream: u32,
        pub payload: Vec<u8>,
    }

    impl Frame {
        /// The error code of RST_STREAM or GOAWAY.
        pub fn error_code(&self) -> Option<u32> {
            let at = match self.ty {
                RST_STREAM => 0,
                GOAWAY => 4,
                _ => return None,
            };
            let b = self.payload.get(at..at + 4)?;
            Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        }
    }

    /// Reads one frame; `None` at the end of the connection.
    pub async fn read<R: AsyncRead + Unpin>(r: &mut R) -> Option<Frame> {
        let mut head = [0u8; 9];
        r.read_exact(&mut head).await.ok()?;
        let len = (head[0] as usize) << 16 | (head[1] as usize) << 8 | head[2] as usize;
        let mut payload = vec![0u8; len];
        r.read_exact(&mut payload).await.ok()?;
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        Some(Frame {
            ty: head[3],
            flags: head[4],
            stream,
            payload,
        })
    }
}

/// The real proxy in-process on 127.0.0.1:0 in front of any backend URL
/// (`env::Env` is tied to the recording stand-in).
pub struct Front {
    pub setup: Setup,
    pub addr: SocketAddr,
    pub handle: weborca_mtls_proxy::server::Handle,
    pub conf_path: std::path::PathBuf,
    pub sessions: weborca_mtls_proxy::tls::Sessions,
    pub task: tokio::task::JoinHandle<bool>,
}

impl Front {
    /// Reloads config and certificates from disk, as SIGHUP does.
    pub fn reload(&self) -> Result<(), String> {
        super::env::reload(&self.conf_path, &self.sessions, &self.handle)
    }

    pub async fn start(setup: Setup, backend_url: &str) -> Front {
        use weborca_mtls_proxy::server::Server;
        use weborca_mtls_proxy::tls::Sessions;
        let conf_path = setup.write_config(backend_url);
        let config = weborca_mtls_proxy::config::load(&conf_path)
            .expect("config")
            .config;
        let sessions = Sessions::new().unwrap();
        // the server's own load, as start and reload do: ACCESS_POLICY too
        let loaded = weborca_mtls_proxy::load::load_from(
            config,
            &sessions,
            &mut weborca_mtls_proxy::load::Log,
        )
        .map_err(|f| f.message().to_string())
        .expect("load");
        let (config, tls) = (loaded.config, loaded.tls);
        let server = Server::bind(config.server_parts(), tls).expect("bind");
        let addr = server.local_addrs()[0];
        let handle = server.handle();
        let task = tokio::spawn(server.run());
        Front {
            setup,
            addr,
            handle,
            conf_path,
            sessions,
            task,
        }
    }

    /// An HTTP/1.1 client showing user1's certificate.
    pub fn client(&self) -> super::client::Client {
        super::client::Client::h1(&self.setup.ca.pem, Some(&self.setup.user1))
    }

    /// An HTTP/2 client showing user1's certificate.
    pub fn h2_client(&self) -> super::client::Client {
        super::client::Client::new(&self.setup.ca.pem, Some(&self.setup.user1), &[b"h2"])
    }
}

/// A value from the status listener's `/metrics` (the line `name value`).
pub async fn metric(status: SocketAddr, name: &str) -> Option<f64> {
    let mut tcp = tokio::net::TcpStream::connect(status).await.ok()?;
    tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .ok()?;
    let mut text = String::new();
    tcp.read_to_string(&mut text).await.ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// The status listener's address from the proxy's `status on http://…` line.
pub fn status_addr(p: &mut Proc) -> SocketAddr {
    let line = p.wait_for("status on http://").expect("status line");
    let rest = line.split("status on http://").nth(1).unwrap();
    rest.split('/').next().unwrap().parse().unwrap()
}

/// Reads the process's log until a line contains one of `needles`; returns
/// it, or `None` after PATIENCE of silence. Blocking: call it through
/// `tokio::task::block_in_place` from async code.
pub fn wait_any(p: &mut Proc, needles: &[&str]) -> Option<String> {
    loop {
        let line = p.lines.recv_timeout(PATIENCE).ok()?;
        let text = super::process::unstamp(&line);
        p.seen.push(text.clone());
        if needles.iter().any(|n| text.contains(n)) {
            return Some(text);
        }
    }
}
