//! The backend guard: an nftables table that drops TCP to WebORCA's plain-HTTP
//! port arriving on any interface but `lo`, so a LAN machine cannot reach
//! WebORCA around the proxy. `guard print` writes the script; the guard unit
//! loads it (`nft -f`) and deletes the table when stopped; `check` asks `nft`
//! whether it is loaded (`check` turns that into its lines).

use crate::program::Program;

/// The nftables table (family `inet`: IPv4 and IPv6 in one).
pub const TABLE: &str = "weborca_mtls_proxy";
/// Where setup writes the script the guard unit loads.
pub const SCRIPT_PATH: &str = "/etc/weborca-mtls-proxy/guard.nft";
/// The guard's unit.
pub const UNIT: &str = "weborca-mtls-proxy-guard.service";

/// The complete `nft -f` script for backend `port`. It first creates the table
/// (a no-op when it exists) and deletes it, so loading it twice leaves one copy.
pub fn script(port: u16) -> String {
    format!(
        "#!/usr/sbin/nft -f
# weborca-mtls-proxy backend guard, written by `weborca-mtls-proxy setup`.
# WebORCA speaks plain HTTP on port {port} behind the proxy: only this machine
# (interface lo) may reach it; TCP to it from any other interface is dropped,
# IPv4 and IPv6. Loaded by weborca-mtls-proxy-guard.service, removed when it stops.
table inet {TABLE}
delete table inet {TABLE}
table inet {TABLE} {{
\tchain input {{
\t\ttype filter hook input priority 0; policy accept;
\t\tiifname != \"lo\" tcp dport {port} drop
\t}}
}}
"
    )
}

/// Whether the guard is in force for a port, as `nft` tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// the table is loaded and drops the port
    Loaded,
    /// the table is loaded but for other ports (the ones it names)
    OtherPort(Vec<u16>),
    /// no such table
    NotLoaded,
    /// `nft` could not tell (not installed, not root, …): what it said
    Unknown(String),
}

/// Asks `nft` (or `NFT`) about the table, for backend `port`.
pub fn state(port: u16) -> State {
    let nft = Program::nft();
    let out = std::process::Command::new(&nft.program)
        .args(["list", "table", "inet", TABLE])
        .output();
    let out = match out {
        Ok(o) => o,
        Err(e) => return State::Unknown(format!("cannot run {}: {e}", nft.program)),
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        let ports = dropped_ports(&stdout);
        if ports.contains(&port) {
            State::Loaded
        } else {
            State::OtherPort(ports)
        }
    } else if stderr.contains("No such file or directory") || stderr.contains("does not exist") {
        State::NotLoaded
    } else {
        State::Unknown(stderr.trim().to_string())
    }
}

/// The ports `nft list table` shows dropped from interfaces other than lo
/// by the guard's own rule (TCP, IPv4 and IPv6, one port), in a chain on the
/// input hook (a chain on another hook, `output` say, drops nothing that
/// arrives from the LAN) with no rule accepting before it; read from a
/// [`script`] too. Anything looser is not taken for the guard: setup and
/// `check` would otherwise call a plain-HTTP port closed that is open.
pub fn dropped_ports(listing: &str) -> Vec<u16> {
    let mut on_input = false;
    // a rule of the chain that accepts before the drop makes it moot
    let mut accepts = false;
    let mut ports = Vec::new();
    for l in listing.lines() {
        let l = l.trim();
        if l.starts_with("chain ") {
            on_input = false;
            accepts = false;
        }
        if let Some(rest) = l.strip_prefix("type filter hook ") {
            on_input = rest.split_whitespace().next() == Some("input");
            continue;
        }
        if !on_input {
            continue;
        }
        // Exactly the guard's own rule: TCP, every family of the inet table
        // (no `meta nfproto` narrowing it to IPv4 or IPv6), every interface
        // but lo. A rule that drops UDP, one family only or a port range
        // does not keep the LAN from WebORCA's plain HTTP.
        let words: Vec<&str> = l.split_whitespace().collect();
        match words.as_slice() {
            ["iifname", "!=", "\"lo\"", "tcp", "dport", port, "drop"] if !accepts => {
                if let Ok(port) = port.parse() {
                    ports.push(port);
                }
            }
            [.., "accept"] => accepts = true,
            _ => {}
        }
    }
    ports
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_names_the_table_and_port_and_is_reloadable() {
        let s = script(8001);
        assert!(
            s.contains("table inet weborca_mtls_proxy\ndelete table inet weborca_mtls_proxy\n")
        );
        assert!(s.contains("iifname != \"lo\" tcp dport 8001 drop"));
        assert_eq!(dropped_ports(&s), vec![8001]);
    }

    #[test]
    fn listing_is_read_for_ports() {
        let listing = "table inet weborca_mtls_proxy {\n\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n\t\tiifname != \"lo\" tcp dport 8001 drop\n\t}\n}\n";
        assert_eq!(dropped_ports(listing), vec![8001]);
        // the same rule on the output hook drops nothing from the LAN
        let output = listing.replace("hook input", "hook output");
        assert_eq!(dropped_ports(&output), Vec::<u16>::new());
        let two = "table inet weborca_mtls_proxy {\n\tchain out {\n\t\ttype filter hook output priority 0; policy accept;\n\t\tiifname != \"lo\" tcp dport 9 drop\n\t}\n\tchain input {\n\t\ttype filter hook input priority 0; policy accept;\n\t\tiifname != \"lo\" tcp dport 8001 drop\n\t}\n}\n";
        assert_eq!(dropped_ports(two), vec![8001]);
    }

    #[test]
    fn only_a_tcp_drop_for_both_families_counts() {
        let with = |rule: &str| {
            format!(
                "table inet weborca_mtls_proxy {{\n\tchain input {{\n\t\ttype filter hook input priority filter; policy accept;\n\t\t{rule}\n\t}}\n}}\n"
            )
        };
        let none = Vec::<u16>::new();
        assert_eq!(
            dropped_ports(&with("iifname != \"lo\" udp dport 8001 drop")),
            none,
            "UDP only"
        );
        assert_eq!(
            dropped_ports(&with(
                "meta nfproto ipv4 iifname != \"lo\" tcp dport 8001 drop"
            )),
            none,
            "IPv4 only"
        );
        assert_eq!(
            dropped_ports(&with("iifname != \"lo\" tcp dport 8001-8002 drop")),
            none,
            "a range is not read as the port"
        );
        assert_eq!(
            dropped_ports(&with(
                "iifname != \"lo\" tcp dport 8001 accept\n\t\tiifname != \"lo\" tcp dport 8001 drop"
            )),
            none,
            "accepted before the drop"
        );
        assert_eq!(
            dropped_ports(&with("iifname != \"lo\" tcp dport 8001 drop")),
            vec![8001]
        );
    }
}
