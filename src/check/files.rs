//! `check`: the files the config names are there, readable by the service
//! user, and the keys private.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::Report;
use crate::config::Config;

/// The user WebORCA and the proxy's unit run as.
const SERVICE_USER: &str = "orca";

/// This machine's passwd file.
pub(super) const PASSWD: &str = "/etc/passwd";

/// Every file named by the config: there, readable by the service user
/// (looked up in `passwd`), keys private.
pub(super) fn check_files(r: &mut Report, config: &Config, passwd: &Path) {
    let user = service_user(passwd);
    if user.is_none() {
        let place = if passwd == Path::new(PASSWD) {
            "on this machine".to_string()
        } else {
            format!("in {}", passwd.display())
        };
        r.warn(
            format!("user {SERVICE_USER} does not exist {place}"),
            "the unit runs as orca (WebORCA's user); install WebORCA or edit User= in the unit",
        );
    }
    let mut files: Vec<(&str, &Path, bool)> = Vec::new();
    let singles = [
        ("CA_CRT", &config.ca_crt, false),
        ("SERVER_CRT", &config.server_crt, false),
        ("SERVER_PEM", &config.server_pem, true),
        ("SERVER_P12", &config.server_p12, true),
        ("SERVER_PASS_FILE", &config.server_pass_file, true),
    ];
    for (key, path, secret) in singles {
        if let Some(p) = path {
            files.push((key, p, secret));
        }
    }
    for p in &config.ca_crl {
        files.push(("CA_CRL", p, false));
    }
    if let Some(p) = &config.access_policy {
        files.push(("ACCESS_POLICY", p, false));
    }
    for (key, path, secret) in files {
        if key != "ACCESS_POLICY" {
            check_file(r, key, path, secret, user);
        }
        if let Some(hidden) = hidden_from_the_unit(path) {
            r.warn(
                format!("{key} {} is under {hidden}, which the systemd unit hides from the proxy ({})", path.display(), if hidden.contains("tmp") { "PrivateTmp=yes" } else { "ProtectHome=yes" }),
                format!("move it to /etc/weborca-mtls-proxy or WebORCA's conf folder and set {key} to the new path"),
            );
        }
    }
}

/// The folder of `path` that the unit's sandbox (ProtectHome=yes,
/// PrivateTmp=yes) hides from the proxy under systemd, if any: `check` run by
/// hand sees the file, the service would not.
fn hidden_from_the_unit(path: &Path) -> Option<&'static str> {
    ["/home", "/root", "/run/user", "/tmp", "/var/tmp"]
        .into_iter()
        .find(|dir| path.starts_with(dir))
}

fn check_file(r: &mut Report, key: &str, path: &Path, secret: bool, user: Option<(u32, u32)>) {
    let shown = path.display();
    let meta = match std::fs::metadata(path) {
        Ok(m) if m.is_file() => m,
        Ok(_) => {
            return r.fail(
                format!("{key} {shown} is not a file"),
                format!("point {key} at the file itself"),
            );
        }
        Err(e) => {
            return r.fail(
                format!("{key} {shown}: {e}"),
                format!("copy the file from orca-catool's zip there, or correct {key}"),
            );
        }
    };
    if let Err(e) = std::fs::File::open(path) {
        return r.fail(
            format!("{key} {shown} cannot be read: {e}"),
            "chown orca:orca and chmod 400 the file",
        );
    }
    let mode = meta.mode() & 0o777;
    match user {
        Some((uid, gid)) if !readable_by(&meta, uid, gid) => r.fail(
            format!("{key} {shown} is not readable by user {SERVICE_USER} (owner uid {}, mode {mode:03o})", meta.uid()),
            format!("sudo chown {SERVICE_USER}:{SERVICE_USER} {shown}; sudo chmod 400 {shown}"),
        ),
        None => r.ok(format!("{key} {shown} exists and is readable")),
        Some(_) => r.ok(format!("{key} {shown} exists and is readable by {SERVICE_USER}")),
    }
    if secret && mode & 0o077 != 0 {
        r.fail(
            format!("{key} {shown} is readable by group or others (mode {mode:03o}): anyone on the server could copy the key"),
            format!("sudo chmod 400 {shown}"),
        );
    }
}

fn readable_by(meta: &std::fs::Metadata, uid: u32, gid: u32) -> bool {
    let mode = meta.mode();
    (meta.uid() == uid && mode & 0o400 != 0)
        || (meta.gid() == gid && mode & 0o040 != 0)
        || mode & 0o004 != 0
}

/// uid and gid of the service user, from the passwd file at `passwd`.
fn service_user(passwd: &Path) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string(passwd).ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.first() == Some(&SERVICE_USER) && f.len() > 3)
            .then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))?
    })
}
