//! A fake root for the system-changing commands (`--root`): WebORCA's conf
//! folder with an orca-catool-like PKI, /etc/weborca-mtls-proxy, and stand-ins
//! for `systemctl` (records each call, starts or stops the guard, and starts
//! or stops a stand-in WebORCA that listens where jma-receipt.conf says) and
//! `nft` (lists the guard's table once systemctl started it), named through
//! SYSTEMCTL and NFT; and what the tests of
//! `install-cert` and `install-crl` all start from (a proxy.conf, `orca` as
//! this user, the command run with `--no-reload`, its output as text).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;

use super::pki::{Ca, Leaf};
use super::process::bin;
use super::zips::passwd_with_orca;

/// WebORCA's conf folder, as a system path.
pub const CONF_DIR: &str = "/opt/jma/weborca/conf";
/// jma-receipt.conf, as a system path.
pub const JMA_CONF: &str = "/opt/jma/weborca/conf/jma-receipt.conf";
/// proxy.conf, as a system path.
pub const PROXY_CONF: &str = "/etc/weborca-mtls-proxy/proxy.conf";
/// The server certificate's file names, orca-catool style.
pub const CRT: &str = "000002__JP_orca_localhost.crt";
pub const KEY: &str = "000002__JP_orca_localhost.pem";

/// The lines of a proxy.conf that name the root's server certificate, key and CA.
pub fn pki_conf() -> String {
    format!("SERVER_CRT={CONF_DIR}/{CRT}\nSERVER_PEM={CONF_DIR}/{KEY}\nCA_CRT={CONF_DIR}/ca.crt\n")
}

/// What a command printed, stdout then stderr.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A stand-in systemctl in `dir` that appends its arguments to `dir`/calls
/// and reloads process `pid` the way the unit's ExecReload does (SIGHUP).
pub fn reloading_systemctl(dir: &Path, pid: u32) -> PathBuf {
    let path = dir.join("systemctl");
    script(
        &path,
        &format!(
            "#!/bin/sh\necho \"$*\" >> '{}'\n[ \"$1\" = reload ] && kill -HUP {pid}\nexit 0\n",
            dir.join("calls").display()
        ),
    );
    path
}

pub struct FakeRoot {
    pub dir: TempDir,
    pub ca: Ca,
    pub server: Leaf,
    /// where the stand-in systemctl appends its arguments, one call a line
    pub calls: PathBuf,
    bin_dir: TempDir,
}

fn script(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

impl Drop for FakeRoot {
    /// Stops the stand-in WebORCA the stand-in systemctl started, if any.
    fn drop(&mut self) {
        let _ = Command::new(self.systemctl())
            .args(["stop", "jma-receipt-weborca.service"])
            .status();
    }
}

impl FakeRoot {
    /// A root holding the PKI files (key mode 400) and no jma-receipt.conf yet.
    pub fn new() -> FakeRoot {
        let root = Self::empty();
        root.put_pki();
        root
    }

    /// A root holding the PKI files and `conf` as proxy.conf, with `orca` as
    /// this user (so the copied files can be given to it).
    pub fn with_conf(conf: &str) -> FakeRoot {
        let root = Self::new();
        passwd_with_orca(root.dir.path());
        std::fs::write(root.real(PROXY_CONF), conf).unwrap();
        root
    }

    /// A root with the folders and stand-ins but no certificates.
    pub fn empty() -> FakeRoot {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new("test-ca");
        let server = ca.server(&["localhost", "127.0.0.1"], 3650);
        let root = FakeRoot {
            calls: dir.path().join("systemctl-calls"),
            dir,
            ca,
            server,
            bin_dir: tempfile::tempdir().unwrap(),
        };
        std::fs::create_dir_all(root.real("/etc/weborca-mtls-proxy")).unwrap();
        std::fs::create_dir_all(root.real(CONF_DIR)).unwrap();
        std::fs::write(&root.calls, "").unwrap();
        // The guard's table is "loaded" (a copy of its script) only once
        // systemctl has started the guard's unit, as the real one does.
        let loaded = root.guard_table();
        let guard_script = root.real("/etc/weborca-mtls-proxy/guard.nft");
        // WebORCA's unit: the stand-in WebORCA of the end-to-end test, started
        // with jma-receipt.conf as its environment (so it listens where that
        // file says, plain HTTP once setup moved it, TLS with the root's
        // files once rollback moved it back), on 127.0.0.1 only. A
        // shell stays its parent and reaps it (whatever this machine's PID 1
        // does with orphans); its pid comes back through a FIFO (waited for
        // 10 s at most), so it is in the pid file before systemctl returns;
        // only a process that is the stand-in is ever killed by that file.
        super::real::require("python3");
        let pid = root.bin_dir.path().join("weborca.pid");
        script(
            &root.bin_dir.path().join("systemctl"),
            &format!(
                "#!/bin/sh\necho \"$*\" >> '{calls}'\n\
                 weborca_stop() {{ [ -f '{pid}' ] || return 0; p=$(cat '{pid}'); rm -f '{pid}'; case $(tr '\\0' ' ' < /proc/$p/cmdline 2>/dev/null) in *weborca-stand-in.py*) kill \"$p\" && timeout 10 tail --pid=\"$p\" -s 0.02 -f /dev/null ;; esac; return 0; }}\n\
                 case \"$*\" in\n\
                 'enable --now weborca-mtls-proxy-guard.service'|'start weborca-mtls-proxy-guard.service'|'restart weborca-mtls-proxy-guard.service') exec cp '{script}' '{loaded}' ;;\n\
                 'disable --now weborca-mtls-proxy-guard.service'|'stop weborca-mtls-proxy-guard.service') rm -f '{loaded}' ;;\n\
                 'is-active --quiet weborca-mtls-proxy-guard.service') exec test -e '{loaded}' ;;\n\
                 'start jma-receipt-weborca.service'|'restart jma-receipt-weborca.service') weborca_stop; rm -f '{fifo}'; mkfifo '{fifo}'; (set -a; . '{jma}'; set +a; STAND_IN_BIND=127.0.0.1 STAND_IN_ROOT='{root_dir}' python3 '{stand_in}' </dev/null >>'{log}' 2>&1 & echo $! > '{fifo}'; wait) </dev/null >/dev/null 2>&1 & p=$(timeout 10 sh -c 'read p < \"$0\" && echo \"$p\"' '{fifo}'); rm -f '{fifo}'; echo \"$p\" > '{pid}' ;;\n\
                 'stop jma-receipt-weborca.service') weborca_stop ;;\n\
                 'is-active --quiet jma-receipt-weborca.service') exec test -f '{pid}' ;;\n\
                 esac\nexit 0\n",
                calls = root.calls.display(),
                script = guard_script.display(),
                loaded = loaded.display(),
                pid = pid.display(),
                jma = root.real(JMA_CONF).display(),
                root_dir = root.dir.path().display(),
                stand_in = concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/packaging/e2e/weborca-stand-in.py"
                ),
                log = root.bin_dir.path().join("weborca.log").display(),
                fifo = root.bin_dir.path().join("weborca.fifo").display(),
            ),
        );
        script(
            &root.bin_dir.path().join("nft"),
            &format!(
                "#!/bin/sh\n# list table inet weborca_mtls_proxy: the guard as systemctl loaded it\nexec cat '{}'\n",
                loaded.display()
            ),
        );
        root
    }

    /// The stand-in systemctl.
    pub fn systemctl(&self) -> PathBuf {
        self.bin_dir.path().join("systemctl")
    }

    /// The stand-in nft.
    pub fn nft(&self) -> PathBuf {
        self.bin_dir.path().join("nft")
    }

    /// The file that stands for the guard's table: present (a copy of the
    /// guard's script) while the stand-in systemctl has the guard loaded.
    pub fn guard_table(&self) -> PathBuf {
        self.bin_dir.path().join("guard-table-loaded")
    }

    /// Writes the server certificate, key (mode 400) and ca.crt into the conf folder.
    pub fn put_pki(&self) {
        let conf = self.real(CONF_DIR);
        std::fs::create_dir_all(&conf).unwrap();
        let _ = std::fs::remove_file(conf.join(KEY));
        std::fs::write(conf.join(CRT), &self.server.pem).unwrap();
        std::fs::write(conf.join(KEY), &self.server.key_pem).unwrap();
        std::fs::set_permissions(conf.join(KEY), std::fs::Permissions::from_mode(0o400)).unwrap();
        std::fs::write(conf.join("ca.crt"), &self.ca.pem).unwrap();
    }

    /// The real path of system path `p`.
    pub fn real(&self, p: &str) -> PathBuf {
        self.dir.path().join(p.trim_start_matches('/'))
    }

    /// Reads a file of the root as bytes.
    pub fn read(&self, p: &str) -> Vec<u8> {
        std::fs::read(self.real(p)).unwrap_or_else(|e| panic!("{p}: {e}"))
    }

    /// The systemctl calls recorded so far, and forgets them.
    pub fn take_calls(&self) -> Vec<String> {
        let text = std::fs::read_to_string(&self.calls).unwrap();
        std::fs::write(&self.calls, "").unwrap();
        text.lines().map(str::to_string).collect()
    }

    /// Runs the binary with `args`, the stand-ins and `--root` appended.
    pub fn run(&self, args: &[&str]) -> Output {
        self.run_with(args, ["systemctl", "nft"])
    }

    /// Runs the binary with `args` and `--root` appended, and no stand-in
    /// named (neither SYSTEMCTL nor NFT): as when preparing another
    /// system's files.
    pub fn run_bare(&self, args: &[&str]) -> Output {
        self.run_with(args, [])
    }

    /// Runs the binary with `args` and `--root` appended, with the stand-ins
    /// `named` ("systemctl", "nft") in SYSTEMCTL and NFT and the others unset.
    pub fn run_with<const N: usize>(&self, args: &[&str], named: [&str; N]) -> Output {
        let mut cmd = Command::new(bin());
        for program in ["systemctl", "nft"] {
            let var = program.to_uppercase();
            if named.contains(&program) {
                cmd.env(var, self.bin_dir.path().join(program));
            } else {
                cmd.env_remove(var);
            }
        }
        let out = cmd
            .args(args)
            .arg("--root")
            .arg(self.dir.path())
            .output()
            .unwrap();
        eprintln!(
            "$ {args:?}\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if !out.status.success()
            && let Ok(log) = std::fs::read_to_string(self.bin_dir.path().join("weborca.log"))
        {
            eprintln!("the stand-in WebORCA's output:\n{log}");
        }
        out
    }

    /// Runs `command` (`install-cert` or `install-crl`) on `input` with
    /// proxy.conf and `--no-reload`, then `extra`.
    pub fn install(&self, command: &str, input: &Path, extra: &[&str]) -> Output {
        let input = input.display().to_string();
        let mut args = vec![command, &input, "-c", PROXY_CONF, "--no-reload"];
        args.extend_from_slice(extra);
        self.run(&args)
    }

    /// Every file under the root with its bytes (to prove nothing changed).
    pub fn snapshot(&self) -> Vec<(PathBuf, Vec<u8>)> {
        let mut out = Vec::new();
        let mut stack = vec![self.dir.path().to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else if p != self.calls {
                    out.push((p.clone(), std::fs::read(&p).unwrap()));
                }
            }
        }
        out.sort();
        out
    }
}
