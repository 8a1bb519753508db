//! What the tests with real client programs share: where the programs are
//! (and a failure naming the setup script when they are not), bounded runs,
//! `.p12` files made like orca-catool's, and the artefacts folder.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use tokio::process::Command;

use super::pki::{Leaf, write};

/// How to get the real clients onto a machine.
pub const SETUP_HINT: &str = "run `scripts/test --setup-only` as root (`scripts/test`, the test command, does it before `cargo test`): it installs chromium, chromium-driver, firefox-esr, libnss3-tools, curl, openssl, openjdk-17-jdk-headless, ruby, ruby-websocket and the Python venv target/test-venv with websockets and sslyze";

/// The repository (not CARGO_TARGET_DIR: the venv and artefacts live in its `target/`).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `target/artefacts/` of the repository: screenshots and scan reports.
pub fn artefacts() -> PathBuf {
    let dir = repo().join("target").join("artefacts");
    std::fs::create_dir_all(&dir).expect("create target/artefacts");
    dir
}

/// The Python of the test venv, with websockets and sslyze.
pub fn venv_python() -> PathBuf {
    let py = repo().join("target/test-venv/bin/python");
    assert!(py.exists(), "{} is missing: {SETUP_HINT}", py.display());
    py
}

/// Fails the test, naming the setup script, unless `program` is on PATH.
pub fn require(program: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
        .unwrap_or(false);
    assert!(found, "`{program}` is not installed: {SETUP_HINT}");
}

/// Runs `program args…` under `timeout` (the whole process group is killed
/// when the time is up), with a tokio timeout behind it as a second guard.
pub async fn bounded(secs: u64, cmd: &mut Command) -> Output {
    let std = cmd.as_std();
    let program = std.get_program().to_owned();
    let mut wrapped = Command::new("timeout");
    wrapped
        .arg("--kill-after=5")
        .arg(secs.to_string())
        .arg(&program)
        .args(std.get_args());
    for (k, v) in std.get_envs() {
        match v {
            Some(v) => wrapped.env(k, v),
            None => wrapped.env_remove(k),
        };
    }
    if let Some(dir) = std.get_current_dir() {
        wrapped.current_dir(dir);
    }
    wrapped
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(secs + 10), wrapped.output())
        .await
        .unwrap_or_else(|_| panic!("{program:?} did not end within {secs}s"))
        .unwrap_or_else(|e| panic!("{program:?} could not start: {e}"));
    assert_ne!(
        out.status.code(),
        Some(124),
        "{program:?} hung and was killed after {secs}s; stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The files of one orca-catool certificate: PEM certificate, key, `.p12`
/// (modern AES, OpenSSL 3's default, with the CA inside) and `.pass`.
pub struct CatoolFiles {
    pub crt: PathBuf,
    pub pem: PathBuf,
    pub p12: PathBuf,
    pub pass: String,
}

/// Writes `NNNNNN__JP_orca_<name>.{crt,pem,p12,pass}` for `leaf` into `dir`.
pub async fn catool_files(dir: &Path, number: u32, leaf: &Leaf, ca_pem: &str) -> CatoolFiles {
    let base = format!("{number:06}__JP_orca_{}", leaf.cn);
    let crt = write(dir, &format!("{base}.crt"), &leaf.pem);
    let pem = write(dir, &format!("{base}.pem"), &leaf.key_pem);
    let ca = write(dir, &format!("{base}.ca.crt"), ca_pem);
    // orca-catool-like random passphrase, letters and digits
    let pass: String = {
        use sha2::Digest;
        let seed = format!("{}{:?}", leaf.serial, std::time::SystemTime::now());
        super::backend::hex(&sha2::Sha256::digest(seed.as_bytes()))[..16].to_string()
    };
    let pass_file = write(dir, &format!("{base}.pass"), &pass);
    let p12 = dir.join(format!("{base}.p12"));
    let out = bounded(
        30,
        Command::new("openssl")
            .args(["pkcs12", "-export", "-name", &leaf.cn, "-in"])
            .arg(&crt)
            .arg("-inkey")
            .arg(&pem)
            .arg("-certfile")
            .arg(&ca)
            .arg("-passout")
            .arg(format!("file:{}", pass_file.display()))
            .arg("-out")
            .arg(&p12),
    )
    .await;
    assert!(
        out.status.success(),
        "openssl pkcs12 -export: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    CatoolFiles {
        crt,
        pem,
        p12,
        pass,
    }
}

/// The Java clients (tests/clients/OrcaClient.java), compiled by `javac`
/// once per test process; returns the class folder for `java -cp`.
pub async fn java_classes() -> PathBuf {
    static CLASSES: tokio::sync::OnceCell<tempfile::TempDir> = tokio::sync::OnceCell::const_new();
    let dir = CLASSES
        .get_or_init(|| async {
            require("javac");
            let dir = tempfile::tempdir().unwrap();
            let out = bounded(
                120,
                Command::new("javac")
                    .arg("-d")
                    .arg(dir.path())
                    .arg(repo().join("tests/clients/OrcaClient.java")),
            )
            .await;
            assert!(
                out.status.success(),
                "javac tests/clients/OrcaClient.java: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            dir
        })
        .await;
    dir.path().to_path_buf()
}

/// A `java` command running the compiled OrcaClient.
pub async fn java(mode: &str) -> Command {
    require("java");
    let classes = java_classes().await;
    let mut cmd = Command::new("java");
    cmd.arg("-cp").arg(classes).arg("OrcaClient").arg(mode);
    cmd
}

/// A `ruby` command running tests/clients/`script`.
pub fn ruby(script: &str) -> Command {
    require("ruby");
    let mut cmd = Command::new("ruby");
    cmd.arg(repo().join("tests/clients").join(script));
    cmd
}

/// Every JSON line a client reported, failing with its stderr unless it exited 0.
pub fn json_lines(out: &Output) -> Vec<serde_json::Value> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the client failed ({}): {stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// A client that reports one JSON line per request and waits for a line on
/// stdin at set points (the test changes the server meanwhile).
pub struct Stepped {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    what: String,
}

impl Stepped {
    pub fn spawn(cmd: &mut Command) -> Stepped {
        use tokio::io::AsyncBufReadExt;
        let what = format!("{:?}", cmd.as_std());
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        Stepped {
            stdin: child.stdin.take().unwrap(),
            lines: tokio::io::BufReader::new(child.stdout.take().unwrap()).lines(),
            child,
            what,
        }
    }

    /// The next report; fails with the client's stderr if it ended.
    pub async fn next(&mut self) -> serde_json::Value {
        let line = tokio::time::timeout(Duration::from_secs(60), self.lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("{} reports within 60 s", self.what))
            .unwrap();
        let Some(line) = line else {
            use tokio::io::AsyncReadExt;
            let mut err = String::new();
            if let Some(mut e) = self.child.stderr.take() {
                let _ = e.read_to_string(&mut err).await;
            }
            panic!("{} ended early: {err}", self.what);
        };
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
    }

    /// Lets the client go on past its wait.
    pub async fn go_on(&mut self) {
        use tokio::io::AsyncWriteExt;
        self.stdin.write_all(b"\n").await.unwrap();
        self.stdin.flush().await.unwrap();
    }

    /// Waits for a successful exit.
    pub async fn finish(mut self) {
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("{} exits", self.what))
            .unwrap();
        assert!(status.success(), "{}: {status}", self.what);
    }
}

/// Runs the NSS tool `cmd` (certutil, pk12util) on the database in `dir`,
/// which must succeed.
pub async fn nss(dir: &Path, cmd: &mut Command) {
    let out = bounded(30, cmd.arg("-d").arg(format!("sql:{}", dir.display()))).await;
    assert!(
        out.status.success(),
        "{:?}: {}{}",
        cmd.as_std(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A new NSS database in `dir` (created) that trusts `ca_pem` as the clinic
/// CA, the CA file written into `home`.
pub async fn nss_trusting(dir: &Path, home: &Path, ca_pem: &str) {
    std::fs::create_dir_all(dir).unwrap();
    nss(
        dir,
        Command::new("certutil").args(["-N", "--empty-password"]),
    )
    .await;
    let ca = write(home, "ca.crt", ca_pem);
    nss(
        dir,
        Command::new("certutil")
            .args(["-A", "-n", "clinic CA", "-t", "C,,", "-i"])
            .arg(ca),
    )
    .await;
}

/// `pk12util -i X.p12 -W PASS` into the NSS database in `dir`, as a user
/// imports orca-catool's zip.
pub async fn import_p12(dir: &Path, files: &CatoolFiles) {
    nss(
        dir,
        Command::new("pk12util")
            .arg("-i")
            .arg(&files.p12)
            .args(["-W", &files.pass]),
    )
    .await;
}

/// Says, where the test run's output shows it whether the test passes or not,
/// that a test skips or narrows what it checks, and why. (libtest keeps a
/// passing test's `println!`/`eprintln!` to itself; a direct write to the
/// process's stderr is not captured.)
pub fn notice(what: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "NOTICE: {what}");
}
