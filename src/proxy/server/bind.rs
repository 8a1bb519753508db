//! Binding the listeners: one socket per LISTEN address (IPv4 fallback when
//! IPv6 is off and LISTEN was not set), and MAX_CONNECTIONS fitted to the
//! file-descriptor limit.

#[allow(unused_imports)]
use super::*;

/// Binds every LISTEN address; where LISTEN was not set and IPv6 is off,
/// `[::]:8000` falls back to `0.0.0.0:8000`.
pub(super) fn bind_listen(listener: &Listener) -> Result<Vec<TcpListener>, String> {
    let mut listeners = Vec::new();
    for addr in &listener.listen {
        match bind_one(*addr) {
            Ok(l) => listeners.push(l),
            Err(e) if listener.listen_is_default && addr.is_ipv6() && ipv6_unavailable(&e) => {
                let v4 = SocketAddr::from(([0, 0, 0, 0], addr.port()));
                tracing::info!("IPv6 is off on this machine; listening on {v4} instead of {addr}");
                listeners.push(bind_one(v4).map_err(|e| bind_error(v4, &e))?);
            }
            Err(e) => return Err(bind_error(*addr, &e)),
        }
    }
    Ok(listeners)
}

pub(super) fn bind_error(addr: SocketAddr, e: &io::Error) -> String {
    format!(
        "LISTEN: cannot listen on {addr}: {e} (is another program, e.g. WebORCA itself, using the port?)"
    )
}

/// EAFNOSUPPORT (97) or EADDRNOTAVAIL (99) on Linux: the kernel has IPv6 off.
pub(super) fn ipv6_unavailable(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(97 | 99))
}

/// Binds one address; `[::]` is bound dual-stack so IPv4 clients reach it too.
pub(super) fn bind_one(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )?;
    if addr.is_ipv6() && addr.ip().is_unspecified() {
        socket.set_only_v6(false)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG as i32)?;
    TcpListener::from_std(socket.into())
}

/// The soft limit on open files (`ulimit -n`, systemd's LimitNOFILE), if known.
pub(super) fn open_files_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// MAX_CONNECTIONS lowered, if need be, so that every client connection plus
/// one backend connection each fits within the open-files limit: a flood then
/// waits in the accept queue instead of running the proxy out of descriptors.
pub(super) fn fitting_max_connections(wanted: usize, nofile: Option<usize>) -> usize {
    let Some(nofile) = nofile else {
        return wanted;
    };
    let fits = (nofile.saturating_sub(RESERVED_FDS) / 2).max(1);
    if wanted <= fits {
        return wanted;
    }
    tracing::warn!(
        "MAX_CONNECTIONS={wanted} needs about {} open files but the limit is {nofile}; accepting at most {fits} connections (raise LimitNOFILE in the unit, or lower MAX_CONNECTIONS)",
        wanted * 2 + RESERVED_FDS
    );
    fits
}
