//! orca-catool-like server certificate zips, built in the test (also broken
//! ones: zip-slip names, symlinks, strangers), and a passwd for `--owner`.

use std::io::Write;
use std::path::{Path, PathBuf};

use zip::write::SimpleFileOptions;

use super::pki::Leaf;

/// One zip member: a file with content, or a symlink to a target.
pub enum Member<'a> {
    File(&'a str, &'a [u8]),
    Link(&'a str, &'a str),
    Dir(&'a str),
}

/// Writes a zip of `members` to `path`.
pub fn write_zip(path: &Path, members: &[Member]) -> PathBuf {
    let file = std::fs::File::create(path).unwrap();
    let mut z = zip::ZipWriter::new(file);
    let opts = SimpleFileOptions::default();
    for m in members {
        match m {
            Member::File(name, data) => {
                z.start_file(*name, opts).unwrap();
                z.write_all(data).unwrap();
            }
            Member::Link(name, target) => z.add_symlink(*name, *target, opts).unwrap(),
            Member::Dir(name) => z.add_directory(*name, opts).unwrap(),
        }
    }
    z.finish().unwrap();
    path.to_path_buf()
}

/// The zip orca-catool makes for `server` (issued by the CA in `ca_pem`):
/// a folder named like the certificate with .crt, .pem, .pass and ca.crt.
pub fn catool_zip(dir: &Path, stem: &str, server: &Leaf, ca_pem: &str) -> PathBuf {
    let crt = format!("{stem}/{stem}.crt");
    let pem = format!("{stem}/{stem}.pem");
    let pass = format!("{stem}/{stem}.pass");
    let ca = format!("{stem}/ca.crt");
    write_zip(
        &dir.join(format!("{stem}.zip")),
        &[
            Member::Dir(&format!("{stem}/")),
            Member::File(&crt, server.pem.as_bytes()),
            Member::File(&pem, server.key_pem.as_bytes()),
            Member::File(&pass, b"not-used\n"),
            Member::File(&ca, ca_pem.as_bytes()),
        ],
    )
}

/// This process's user name and ids, from /etc/passwd.
pub fn current_user() -> (String, u32, u32) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let id = |key: &str| -> u32 {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .unwrap()
            .split_whitespace()
            .nth(2)
            .unwrap()
            .parse()
            .unwrap()
    };
    let (uid, gid) = (id("Uid:"), id("Gid:"));
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let name = passwd
        .lines()
        .find(|l| l.split(':').nth(2) == Some(&uid.to_string()))
        .and_then(|l| l.split(':').next())
        .expect("this user is in /etc/passwd")
        .to_string();
    (name, uid, gid)
}

/// A passwd under `root` in which `orca` is this process's user (so chown works).
pub fn passwd_with_orca(root: &Path) -> (u32, u32) {
    let (_, uid, gid) = current_user();
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(
        root.join("etc/passwd"),
        format!("root:x:0:0::/root:/bin/sh\norca:x:{uid}:{gid}::/home/orca:/bin/sh\n"),
    )
    .unwrap();
    (uid, gid)
}
