//! The demo's proxy.conf (loopback only) and its port: checked free before
//! anything starts, with another port suggested when it is taken.

#[allow(unused_imports)]
use super::*;

/// The LISTEN addresses: loopback only, since a demo must not open the clinic's LAN.
pub(super) fn listen_addrs(port: u16) -> Vec<String> {
    let mut addrs = vec![format!("127.0.0.1:{port}")];
    // Port 0 would give ::1 another ephemeral port than 127.0.0.1, and a
    // machine with IPv6 off has no ::1 to bind.
    if port != 0 && StdListener::bind((Ipv6Addr::LOCALHOST, 0)).is_ok() {
        addrs.push(format!("[::1]:{port}"));
    }
    addrs
}

/// Writes proxy.conf in jma-receipt.conf style; rewritten on every start, as the
/// stand-in's port changes.
pub(super) fn write_config(
    files: &DemoFiles,
    port: u16,
    stand_in: SocketAddr,
) -> Result<(), Failure> {
    let text = format!(
        "# Written by `weborca-mtls-proxy demo` at each start; edits are overwritten.\n\
         # The keys of WebORCA's /opt/jma/weborca/conf/jma-receipt.conf, naming this folder's\n\
         # files (a relative name is read from the folder this file is in).\n\
         SERVER_CRT={SERVER_STEM}.crt\n\
         SERVER_PEM={SERVER_STEM}.pem\n\
         CA_CRT={CA_CRT}\n\
         # Loopback only: the demo is not reachable from the clinic's LAN.\n\
         LISTEN={}\n\
         # The demo's stand-in for WebORCA; in production, where WebORCA listens in plain HTTP.\n\
         BACKEND_URL=http://{stand_in}\n",
        listen_addrs(port).join(",")
    );
    write_file(&files.conf, text.as_bytes(), false)
}

/// The port to suggest instead of `port`.
pub(super) fn other_port(port: u16) -> u16 {
    if port == OTHER_PORT {
        OTHER_PORT + 1
    } else {
        OTHER_PORT
    }
}

/// Fails early, before any key is made, when the port is taken.
pub(super) fn check_port(port: u16) -> Result<(), Failure> {
    if port == 0 {
        return Ok(());
    }
    let Err(e) = StdListener::bind((std::net::Ipv4Addr::LOCALHOST, port)) else {
        return Ok(());
    };
    let why = match e.kind() {
        ErrorKind::AddrInUse => " (WebORCA itself, or a demo already running?)",
        ErrorKind::PermissionDenied => " (ports below 1024 need root)",
        _ => "",
    };
    Err(Failure::Runtime(format!(
        "demo: cannot listen on 127.0.0.1:{port}: {e}{why}; start the demo on another port: \
         weborca-mtls-proxy demo --port {}",
        other_port(port)
    )))
}

/// The start-up's runtime failures are mostly a port taken on ::1 (127.0.0.1 was
/// checked): they get the `--port` advice.
pub(super) fn with_port_hint(failure: Failure, port: u16) -> Failure {
    match failure {
        Failure::Runtime(m) => Failure::Runtime(format!(
            "{m}; if the port is taken, start the demo on another: weborca-mtls-proxy demo --port {}",
            other_port(port)
        )),
        config => config,
    }
}
