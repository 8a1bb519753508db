//! Who listens on the port WebORCA is to move to: the listening sockets on
//! it (the kernel's tables), and the process holding each one (its pid, its
//! name and the systemd unit it runs in, from its cgroup), read with
//! `procfs`. setup moves WebORCA only to a port that is free, or that
//! WebORCA's own unit already holds (a rerun).

use std::collections::HashMap;
use std::net::SocketAddr;

/// A listening socket on the port, and what holds it when that can be seen
/// (as root every process can; otherwise only this user's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Listener {
    pub(super) addr: SocketAddr,
    pub(super) holder: Option<Holder>,
}

/// The process that holds a listening socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Holder {
    pub(super) pid: i32,
    /// its name (`/proc/PID/stat`)
    pub(super) name: String,
    /// the systemd unit whose cgroup it runs in (`jma-receipt-weborca.service`)
    pub(super) unit: Option<String>,
}

impl std::fmt::Display for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.addr)?;
        if let Some(h) = &self.holder {
            write!(f, " by {} (PID {}", h.name, h.pid)?;
            if let Some(unit) = &h.unit {
                write!(f, ", {unit}")?;
            }
            write!(f, ")")?;
        }
        Ok(())
    }
}

/// The sockets listening on `port` (any address), each with its holder.
pub(super) fn on_port(port: u16) -> Vec<Listener> {
    let sockets: Vec<crate::check::Listening> = crate::check::listening()
        .into_iter()
        .filter(|l| l.addr.1 == port)
        .collect();
    if sockets.is_empty() {
        return Vec::new();
    }
    // every socket's holder is looked up: sockets on one address
    // (SO_REUSEPORT, or IPv4 beside IPv4-mapped IPv6) may be held by
    // different programs
    let holders = holders_of(&sockets.iter().map(|l| l.inode).collect::<Vec<_>>());
    let mut listeners: Vec<Listener> = sockets
        .into_iter()
        .map(|l| Listener {
            addr: SocketAddr::new(l.addr.0, l.addr.1),
            holder: holders.get(&l.inode).cloned(),
        })
        .collect();
    // one line for each address and program is enough
    listeners.sort_by_key(|l| (l.addr, l.holder.as_ref().map(|h| h.pid)));
    listeners.dedup_by_key(|l| (l.addr, l.holder.as_ref().map(|h| h.pid)));
    listeners
}

/// The processes holding the sockets `inodes`, by inode: every process's
/// descriptors are looked through (those that cannot be read are passed by).
fn holders_of(inodes: &[u64]) -> HashMap<u64, Holder> {
    let mut found = HashMap::new();
    let Ok(processes) = procfs::process::all_processes() else {
        return found;
    };
    for process in processes.flatten() {
        let Ok(fds) = process.fd() else { continue };
        for fd in fds.flatten() {
            if let procfs::process::FDTarget::Socket(inode) = fd.target
                && inodes.contains(&inode)
                && !found.contains_key(&inode)
            {
                found.insert(inode, holder(&process));
            }
        }
        if found.len() == inodes.len() {
            break;
        }
    }
    found
}

fn holder(process: &procfs::process::Process) -> Holder {
    let name = process.stat().map(|s| s.comm).unwrap_or_default();
    let unit = process.cgroups().ok().and_then(|groups| {
        // the unified hierarchy (0), else systemd's own (v1, name=systemd)
        let group = groups
            .0
            .iter()
            .find(|g| g.hierarchy == 0 && g.controllers.is_empty())
            .or_else(|| {
                groups
                    .0
                    .iter()
                    .find(|g| g.controllers.iter().any(|c| c == "name=systemd"))
            })?;
        unit_of(&group.pathname)
    });
    Holder {
        pid: process.pid(),
        name,
        unit,
    }
}

/// The system service a cgroup path belongs to: `/system.slice/x.service`
/// (or a group under it) → `x.service`. Only the system manager's services
/// count: a user's own `systemd-run --user --unit=x` is under `user.slice`,
/// and is nobody's system unit.
fn unit_of(path: &str) -> Option<String> {
    path.strip_prefix("/system.slice/")?
        .split('/')
        .next()
        .filter(|unit| unit.ends_with(".service"))
        .map(str::to_string)
}

/// Why WebORCA cannot move to `port`, from who listens there: nobody may,
/// unless `rerun` (jma-receipt.conf already moved WebORCA there) and every
/// listener whose holder can be seen runs in WebORCA's own unit `weborca`.
/// `None`: the port may be used.
pub(super) fn refusal(
    port: u16,
    listeners: &[Listener],
    rerun: bool,
    weborca: &str,
) -> Option<String> {
    let strangers: Vec<&Listener> = listeners
        .iter()
        .filter(|l| {
            !rerun
                || l.holder
                    .as_ref()
                    .is_some_and(|h| h.unit.as_deref() != Some(weborca))
        })
        .collect();
    if strangers.is_empty() {
        return None;
    }
    let shown: Vec<String> = strangers.iter().map(ToString::to_string).collect();
    let whose = if rerun {
        format!(", not {weborca}")
    } else {
        String::new()
    };
    Some(format!(
        "--backend-port {port}: another program already listens on port {port} ({}{whose}), so WebORCA could not listen there after the move, and setup's check that WebORCA answers would reach that program; nothing was changed. See which program it is with: sudo ss -ltnp 'sport = :{port}'; stop it, or choose a free port with --backend-port",
        shown.join("; ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_holder_of_a_listening_socket_is_found_with_its_unit() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let found = on_port(port);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].addr, listener.local_addr().unwrap());
        let holder = found[0].holder.as_ref().expect("this process holds it");
        assert_eq!(holder.pid, std::process::id() as i32);
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
        // the unified hierarchy's line, else systemd's own (cgroup v1)
        let own_unit = own
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .or_else(|| {
                own.lines()
                    .find_map(|l| l.split_once(":name=systemd:").map(|(_, p)| p))
            })
            .and_then(unit_of);
        assert_eq!(holder.unit, own_unit, "{own}");
        drop(listener);
        assert!(on_port(port).is_empty());
    }

    #[test]
    fn units_are_read_from_cgroup_paths() {
        let of = |p: &str| unit_of(p);
        assert_eq!(
            of("/system.slice/jma-receipt-weborca.service").as_deref(),
            Some("jma-receipt-weborca.service")
        );
        assert_eq!(
            of("/system.slice/nginx.service/worker").as_deref(),
            Some("nginx.service")
        );
        assert_eq!(of("/user.slice/user-1000.slice/session-2.scope"), None);
        assert_eq!(
            of(
                "/user.slice/user-1000.slice/user@1000.service/app.slice/jma-receipt-weborca.service"
            ),
            None,
            "a user's own unit of that name is not WebORCA's"
        );
        assert_eq!(of("/"), None);
    }

    #[test]
    fn only_weborca_itself_may_hold_the_port_on_a_rerun() {
        let weborca = "jma-receipt-weborca.service";
        let at = |unit: Option<&str>, pid| Listener {
            addr: "[::]:8001".parse().unwrap(),
            holder: Some(Holder {
                pid,
                name: "x".into(),
                unit: unit.map(str::to_string),
            }),
        };
        let unseen = Listener {
            addr: "0.0.0.0:8001".parse().unwrap(),
            holder: None,
        };
        // first run: any listener refuses, seen or not
        for l in [at(Some(weborca), 7), at(None, 8), unseen.clone()] {
            let why = refusal(8001, std::slice::from_ref(&l), false, weborca).expect("refused");
            assert!(
                why.contains("another program already listens on port 8001"),
                "{why}"
            );
        }
        assert_eq!(refusal(8001, &[], false, weborca), None);
        // rerun: WebORCA's own unit (or a holder not seen) is WebORCA
        assert_eq!(
            refusal(8001, &[at(Some(weborca), 7), unseen], true, weborca),
            None
        );
        let why = refusal(8001, &[at(Some("nginx.service"), 9)], true, weborca).expect("refused");
        assert!(
            why.contains("[::]:8001 by x (PID 9, nginx.service), not jma-receipt-weborca.service"),
            "{why}"
        );
        assert!(refusal(8001, &[at(None, 10)], true, weborca).is_some());
    }
}
