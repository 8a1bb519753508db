//! The WebSocket tunnel after a `/ws` upgrade: bytes pass through unchanged
//! both ways, but the proxy follows the frame boundaries of the stream going
//! to the client, so that on shutdown it can end the tunnel the way
//! push-exchanger expects — a Close frame (1001 "going away") at a frame
//! boundary — rather than a bare TCP close that clients report as an error.
//! A tunnel whose client certificate is refused after it opened ends with
//! 1008 (policy violation), and from that moment nothing more is carried
//! either way: not what the client sends, and not the rest of a frame
//! WebORCA was sending (a refusal inside a frame ends the tunnel without a
//! Close).

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// A server Close frame: FIN + opcode 8, unmasked, 2-byte payload 1001 (going away).
const CLOSE_GOING_AWAY: [u8; 4] = [0x88, 0x02, 0x03, 0xE9];
/// A server Close frame with 1008 (policy violation): the client certificate
/// is now refused (revoked, expired, no longer allowed).
const CLOSE_POLICY: [u8; 4] = [0x88, 0x02, 0x03, 0xF0];
/// How long shutdown waits for the frame in flight to finish, and then for the client's reply.
const CLOSE_WAIT: Duration = Duration::from_secs(2);
/// Read buffer of each direction.
const BUF: usize = 16 * 1024;

/// Where the byte stream stands in the WebSocket framing (RFC 6455 §5.2).
#[derive(Debug, Default)]
pub struct FrameTracker {
    /// bytes of a frame header read so far
    header: Vec<u8>,
    /// payload bytes of the current frame still to come
    remaining: u64,
}

impl FrameTracker {
    /// Follows `bytes` through the framing.
    pub fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.remaining > 0 {
                let n = usize::try_from(self.remaining)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                self.remaining -= n as u64;
                bytes = &bytes[n..];
                continue;
            }
            self.header.push(bytes[0]);
            bytes = &bytes[1..];
            if let Some(len) = self.payload_len() {
                self.remaining = len;
                self.header.clear();
            }
        }
    }

    /// The payload length once the header is complete.
    fn payload_len(&self) -> Option<u64> {
        let h = &self.header;
        let b1 = *h.get(1)?;
        let mask = if b1 & 0x80 != 0 { 4 } else { 0 };
        let (ext, len) = match b1 & 0x7f {
            126 => (2, u64::from(u16::from_be_bytes([*h.get(2)?, *h.get(3)?]))),
            127 => {
                let b: [u8; 8] = h.get(2..10)?.try_into().ok()?;
                (8, u64::from_be_bytes(b))
            }
            n => (0, u64::from(n)),
        };
        (h.len() == 2 + ext + mask).then_some(len)
    }

    /// Whether the next byte starts a new frame.
    pub fn at_boundary(&self) -> bool {
        self.remaining == 0 && self.header.is_empty()
    }
}

/// Carries backend → client, tracking frames; on `shutdown` ends at a frame
/// boundary with a Close frame (1001), the frame in flight finished first.
/// A refusal (`refused`, or `may_carry` no longer allowing: a reload seen
/// here first) stops WebORCA's bytes at once: at a frame boundary the tunnel
/// ends with a 1008 Close; inside a frame it ends without one, since the rest
/// of that frame is WebORCA's (and anything in its place would reach the
/// client's application as part of WebORCA's message). Returns the bytes
/// carried from WebORCA.
async fn down<R, W>(
    mut from: R,
    mut to: W,
    shutdown: CancellationToken,
    refused: CancellationToken,
    may_carry: &(dyn Fn() -> bool + Sync),
) -> u64
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut tracker = FrameTracker::default();
    let mut buf = vec![0u8; BUF];
    let mut total = 0u64;
    let mut stopping = false;
    let deadline = tokio::time::sleep(Duration::MAX);
    tokio::pin!(deadline);
    let stop = async {
        tokio::select! {
            () = shutdown.cancelled() => {}
            () = refused.cancelled() => {}
        }
    };
    tokio::pin!(stop);
    // Set once a refusal is seen: nothing more of WebORCA's goes to the client.
    let mut refusing = false;
    loop {
        if refusing {
            if tracker.at_boundary() {
                let _ = tokio::time::timeout(CLOSE_WAIT, to.write_all(&CLOSE_POLICY)).await;
            }
            break;
        }
        if stopping && tracker.at_boundary() {
            let _ = to.write_all(&CLOSE_GOING_AWAY).await;
            break;
        }
        // `biased`: a refusal is seen before any further bytes of WebORCA's
        // are read.
        tokio::select! {
            biased;
            () = &mut stop, if !stopping => {
                stopping = true;
                refusing = refused.is_cancelled();
                deadline.as_mut().reset(tokio::time::Instant::now() + CLOSE_WAIT);
            }
            _ = &mut deadline, if stopping => break,
            read = from.read(&mut buf) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if refused.is_cancelled() || !may_carry() {
                        // read after the refusal: dropped, never written
                        refusing = true;
                        continue;
                    }
                    if to.write_all(&buf[..n]).await.is_err() {
                        return total;
                    }
                    tracker.feed(&buf[..n]);
                    total += n as u64;
                }
            },
        }
    }
    // bounded: a client that reads nothing more must not hold the tunnel
    let _ = tokio::time::timeout(CLOSE_WAIT, to.shutdown()).await;
    total
}

/// Carries client → backend until the client stops (bounded after
/// shutdown); stops at once when the client is `refused`, and before any
/// write that `may_carry` no longer allows (a reload seen here before the
/// task that cancels `refused` has run).
async fn up<R, W>(
    mut from: R,
    mut to: W,
    shutdown: CancellationToken,
    refused: CancellationToken,
    may_carry: &(dyn Fn() -> bool + Sync),
) -> u64
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut total = 0u64;
    let mut buf = vec![0u8; BUF];
    let grace = async {
        shutdown.cancelled().await;
        // let the client answer our Close, then stop waiting
        tokio::time::sleep(CLOSE_WAIT).await;
    };
    tokio::pin!(grace);
    loop {
        // `biased`: a refusal is seen before any further client bytes are
        // read, so none of them reaches the backend after it.
        tokio::select! {
            biased;
            () = refused.cancelled() => return total,
            () = &mut grace => break,
            read = from.read(&mut buf) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if refused.is_cancelled()
                        || !may_carry()
                        || to.write_all(&buf[..n]).await.is_err()
                    {
                        return total;
                    }
                    total += n as u64;
                }
            },
        }
    }
    let _ = tokio::time::timeout(CLOSE_WAIT, to.shutdown()).await;
    total
}

/// Runs the tunnel until both directions end; returns (bytes up, bytes down).
/// `shutdown` ends it with 1001, `refused` with 1008; the client's bytes are
/// carried only while `may_carry` says so.
pub async fn tunnel<C, B>(
    client: C,
    backend: B,
    shutdown: CancellationToken,
    refused: CancellationToken,
    may_carry: &(dyn Fn() -> bool + Sync),
) -> (u64, u64)
where
    C: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let (client_rd, client_wr) = tokio::io::split(client);
    let (backend_rd, backend_wr) = tokio::io::split(backend);
    tokio::join!(
        up(
            client_rd,
            backend_wr,
            shutdown.clone(),
            refused.clone(),
            may_carry
        ),
        down(backend_rd, client_wr, shutdown, refused, may_carry)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(len: usize, masked: bool) -> Vec<u8> {
        let mut f = vec![0x82];
        let m = if masked { 0x80 } else { 0 };
        match len {
            0..=125 => f.push(m | len as u8),
            126..=65535 => {
                f.push(m | 126);
                f.extend((len as u16).to_be_bytes());
            }
            _ => {
                f.push(m | 127);
                f.extend((len as u64).to_be_bytes());
            }
        }
        if masked {
            f.extend([1, 2, 3, 4]);
        }
        f.extend(std::iter::repeat_n(7u8, len));
        f
    }

    #[test]
    fn frame_boundaries_are_found_whatever_the_chunking() {
        let mut stream = Vec::new();
        for (len, masked) in [
            (0, false),
            (5, true),
            (125, false),
            (126, false),
            (70_000, true),
            (3, false),
        ] {
            stream.extend(frame(len, masked));
        }
        for chunk in [1, 2, 3, 7, 1000, stream.len()] {
            let mut t = FrameTracker::default();
            for piece in stream.chunks(chunk) {
                t.feed(piece);
            }
            assert!(t.at_boundary(), "chunk {chunk}");
        }
        let mut t = FrameTracker::default();
        t.feed(&stream[..stream.len() - 1]);
        assert!(!t.at_boundary());
        let mut t = FrameTracker::default();
        t.feed(&[0x82, 126, 0x01]);
        assert!(!t.at_boundary(), "inside an extended length");
    }

    #[tokio::test]
    async fn shutdown_ends_with_a_close_frame_after_the_frame_in_flight() {
        let (client, mut client_peer) = tokio::io::duplex(1 << 16);
        let (backend, mut backend_peer) = tokio::io::duplex(1 << 16);
        let stop = CancellationToken::new();
        let task = tokio::spawn(tunnel(
            client,
            backend,
            stop.clone(),
            CancellationToken::new(),
            &always,
        ));
        let f = frame(10, false);
        backend_peer.write_all(&f[..5]).await.unwrap();
        let mut got = vec![0u8; 5];
        client_peer.read_exact(&mut got).await.unwrap();
        stop.cancel();
        backend_peer.write_all(&f[5..]).await.unwrap();
        let mut rest = Vec::new();
        client_peer.read_to_end(&mut rest).await.unwrap();
        assert_eq!(&rest[..rest.len() - 4], &f[5..]);
        assert_eq!(&rest[rest.len() - 4..], &CLOSE_GOING_AWAY);
        drop(client_peer);
        let (_, down) = task.await.unwrap();
        assert_eq!(down, f.len() as u64);
    }

    #[tokio::test]
    async fn a_refused_tunnel_carries_nothing_more_up_and_closes_with_1008() {
        let (client, mut client_peer) = tokio::io::duplex(1 << 16);
        let (backend, mut backend_peer) = tokio::io::duplex(1 << 16);
        let refused = CancellationToken::new();
        let task = tokio::spawn(tunnel(
            client,
            backend,
            CancellationToken::new(),
            refused.clone(),
            &always,
        ));
        client_peer.write_all(b"before").await.unwrap();
        let mut got = [0u8; 6];
        backend_peer.read_exact(&mut got).await.unwrap();
        refused.cancel();
        let mut rest = [0u8; 4];
        client_peer.read_exact(&mut rest).await.unwrap();
        assert_eq!(rest, CLOSE_POLICY);
        let _ = client_peer.write_all(b"after").await;
        drop(client_peer);
        drop(backend_peer.write_all(b"").await);
        let (up, _) = task.await.unwrap();
        assert_eq!(up, 6, "nothing after the refusal went up");
    }

    fn always() -> bool {
        true
    }

    /// WebORCA has sent the head and `sent` bytes of a frame of `len` when
    /// the tunnel is refused (by `refused`, or by `may_carry` turning false);
    /// it then sends the rest, all `S`. What the client receives after the
    /// bytes it had.
    async fn refused_mid_frame(len: usize, sent: usize, by_token: bool) -> Vec<u8> {
        use std::sync::atomic::{AtomicBool, Ordering};
        let (client, mut client_peer) = tokio::io::duplex(1 << 20);
        let (backend, mut backend_peer) = tokio::io::duplex(1 << 20);
        let refused = CancellationToken::new();
        let allowed = AtomicBool::new(true);
        let may_carry = || allowed.load(Ordering::SeqCst);
        let mut f = frame(len, false);
        let head = f.len() - len;
        f[head..].fill(b'S');
        let allowed = &allowed;
        let token = refused.clone();
        let drive = async move {
            backend_peer.write_all(&f[..head + sent]).await.unwrap();
            let mut got = vec![0u8; head + sent];
            client_peer.read_exact(&mut got).await.unwrap();
            if by_token {
                token.cancel();
            } else {
                allowed.store(false, Ordering::SeqCst);
            }
            let _ = backend_peer.write_all(&f[head + sent..]).await;
            let mut rest = Vec::new();
            let _ = client_peer.read_to_end(&mut rest).await;
            drop(backend_peer);
            rest
        };
        let (_, rest) = tokio::join!(
            tunnel(
                client,
                backend,
                CancellationToken::new(),
                refused,
                &may_carry
            ),
            drive
        );
        rest
    }

    #[tokio::test]
    async fn a_refusal_mid_frame_ends_the_tunnel_without_the_rest_of_weborcas_frame() {
        for (len, by_token) in [(1000, true), (1000, false), (70_000, true)] {
            let rest = refused_mid_frame(len, 10, by_token).await;
            let leaked = rest.iter().filter(|b| **b == b'S').count();
            assert_eq!(
                leaked, 0,
                "WebORCA's bytes after the refusal ({len}, {by_token})"
            );
            assert!(rest.is_empty(), "{} bytes after the refusal", rest.len());
        }
    }

    #[tokio::test]
    async fn client_bytes_stop_going_up_once_they_may_no_longer_be_carried() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let (client, mut client_peer) = tokio::io::duplex(1 << 16);
        let (backend, mut backend_peer) = tokio::io::duplex(1 << 16);
        let allowed = AtomicBool::new(true);
        let may_carry = || allowed.load(Ordering::SeqCst);
        let allowed = &allowed;
        let drive = async move {
            client_peer.write_all(b"before").await.unwrap();
            let mut got = [0u8; 6];
            backend_peer.read_exact(&mut got).await.unwrap();
            // a reload refused the certificate; the task that would cancel
            // the tunnel has not run yet
            allowed.store(false, Ordering::SeqCst);
            client_peer.write_all(b"after").await.unwrap();
            drop(client_peer);
            backend_peer.shutdown().await.unwrap();
            let mut rest = Vec::new();
            backend_peer.read_to_end(&mut rest).await.unwrap();
            rest
        };
        let ((up, _), rest) = tokio::join!(
            tunnel(
                client,
                backend,
                CancellationToken::new(),
                CancellationToken::new(),
                &may_carry,
            ),
            drive
        );
        assert_eq!(rest, b"", "bytes went up after they were no longer allowed");
        assert_eq!(up, 6);
    }
}
