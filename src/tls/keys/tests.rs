//! Unit tests of the key and certificate file readers (the parent module).

use super::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The passphrase of every generated file; the space is deliberate.
const PASS: &str = "orca-Pass 01";
const WRONG: &str = "orca-Pass 02";

/// Where the recorded `openssl` runs live, one folder per test.
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/keys");

/// A scratch directory and the `openssl` command (OpenSSL 3), replayed from
/// the committed recordings under tests/data/keys/<test>/ so the tests run
/// (and can fail) on machines without `openssl`. Each run is stored as
/// NNN/command, status, stdout, stderr and files/ (what it wrote). With
/// `KEY_FIXTURES_RECORD=1` the real `openssl` runs and the recordings are
/// rewritten; a test whose commands no longer match its recording fails with
/// a message saying so.
struct Tools {
    dir: tempfile::TempDir,
    /// this test's recordings
    fixtures: PathBuf,
    /// the index of the next `openssl` run
    step: std::cell::Cell<usize>,
    /// running the real `openssl` and recording
    record: bool,
}

/// The files of `dir` and their contents.
fn snapshot(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .expect("read scratch dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_file())
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            (name, std::fs::read(e.path()).expect("read scratch file"))
        })
        .collect()
}

impl Tools {
    fn new(test: &str) -> Tools {
        let fixtures = Path::new(FIXTURES).join(test);
        let record = std::env::var_os("KEY_FIXTURES_RECORD").is_some();
        if record {
            let _ = std::fs::remove_dir_all(&fixtures);
            std::fs::create_dir_all(&fixtures).expect("create fixture dir");
        }
        let dir = tempfile::tempdir().expect("tempdir");
        Tools {
            dir,
            fixtures,
            step: std::cell::Cell::new(0),
            record,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs `openssl` with `args` split on spaces, then `extra` (for
    /// arguments containing spaces), in the scratch directory; replayed from
    /// the recording unless recording.
    fn try_run(&self, args: &str, extra: &[&str]) -> Output {
        use std::os::unix::process::ExitStatusExt;
        let n = self.step.get();
        self.step.set(n + 1);
        let step = self.fixtures.join(format!("{n:03}"));
        let command: Vec<&str> = args
            .split_whitespace()
            .chain(extra.iter().copied())
            .collect();
        let command = command.join("\n");
        if self.record {
            let before = snapshot(self.dir.path());
            let out = Command::new("openssl")
                .args(args.split_whitespace())
                .args(extra)
                .current_dir(self.dir.path())
                .output()
                .expect("run openssl");
            let files = step.join("files");
            std::fs::create_dir_all(&files).expect("create fixture step");
            for (name, data) in snapshot(self.dir.path()) {
                if before.get(&name) != Some(&data) {
                    std::fs::write(files.join(name), data).expect("write fixture");
                }
            }
            let code = out.status.code().unwrap_or(-1);
            std::fs::write(step.join("command"), &command).expect("write fixture");
            std::fs::write(step.join("status"), code.to_string()).expect("write fixture");
            std::fs::write(step.join("stdout"), &out.stdout).expect("write fixture");
            std::fs::write(step.join("stderr"), &out.stderr).expect("write fixture");
            return out;
        }
        let recorded = std::fs::read_to_string(step.join("command")).unwrap_or_default();
        assert_eq!(
            recorded,
            command,
            "{}: openssl run {n} is not the recorded one; run with KEY_FIXTURES_RECORD=1 to record again",
            step.display()
        );
        // git keeps no empty folder: a run that wrote no file has no files/.
        let files = step.join("files");
        let written = if files.exists() {
            std::fs::read_dir(&files)
                .expect("read fixture files")
                .collect::<Vec<_>>()
        } else {
            Vec::new()
        };
        for entry in written {
            let entry = entry.expect("read fixture files");
            std::fs::copy(
                entry.path(),
                self.path(&entry.file_name().to_string_lossy()),
            )
            .expect("copy fixture file");
        }
        let read = |name: &str| std::fs::read(step.join(name)).expect("read fixture");
        let code: i32 = String::from_utf8_lossy(&read("status"))
            .trim()
            .parse()
            .expect("fixture status");
        Output {
            status: std::process::ExitStatus::from_raw((code & 0xff) << 8),
            stdout: read("stdout"),
            stderr: read("stderr"),
        }
    }

    fn run(&self, args: &str, extra: &[&str]) {
        let out = self.try_run(args, extra);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "openssl {args} {extra:?}: {err}");
    }

    /// Runs with `-passout pass:PASS` appended.
    fn run_pass(&self, args: &str) {
        self.run(args, &["-passout", &format!("pass:{PASS}")]);
    }

    fn try_run_pass(&self, args: &str) -> bool {
        let out = self.try_run(args, &["-passout", &format!("pass:{PASS}")]);
        out.status.success()
    }

    fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.path(name)).expect("read generated file")
    }

    fn write(&self, name: &str, data: &[u8]) {
        std::fs::write(self.path(name), data).expect("write file");
    }

    /// Generates `rsa.pem` (2048) or `ec.pem` (P-256), unencrypted PKCS#8.
    fn key(&self, kind: &str) -> String {
        let opts = match kind {
            "rsa" => "-algorithm RSA -pkeyopt rsa_keygen_bits:2048",
            _ => "-algorithm EC -pkeyopt ec_paramgen_curve:P-256",
        };
        self.run(&format!("genpkey {opts} -out {kind}.pem"), &[]);
        format!("{kind}.pem")
    }

    /// The key's PKCS#1 (RSA) or SEC1 (EC) DER.
    fn traditional_der(&self, key: &str) -> Vec<u8> {
        self.run(
            &format!("pkey -in {key} -traditional -outform DER -out t.der"),
            &[],
        );
        self.read("t.der")
    }

    /// The key's unencrypted PKCS#8 DER.
    fn pkcs8_der(&self, key: &str) -> Vec<u8> {
        let args = format!("pkcs8 -topk8 -nocrypt -in {key} -outform DER -out p8.der");
        self.run(&args, &[]);
        self.read("p8.der")
    }

    fn cert_der(&self, pem: &str) -> Vec<u8> {
        self.run(&format!("x509 -in {pem} -outform DER -out c.der"), &[]);
        self.read("c.der")
    }
}

fn der_of(key: &PrivateKeyDer<'_>) -> (&'static str, Vec<u8>) {
    match key {
        PrivateKeyDer::Pkcs1(k) => ("pkcs1", k.secret_pkcs1_der().to_vec()),
        PrivateKeyDer::Sec1(k) => ("sec1", k.secret_sec1_der().to_vec()),
        PrivateKeyDer::Pkcs8(k) => ("pkcs8", k.secret_pkcs8_der().to_vec()),
        _ => ("other", Vec::new()),
    }
}

fn assert_wrong_passphrase<T: std::fmt::Debug>(result: Result<T, OpenError>, what: &str) {
    assert!(
        matches!(result, Err(OpenError::WrongPassphrase)),
        "{what}: expected WrongPassphrase, got {result:?}"
    );
}

fn assert_unsupported<T: std::fmt::Debug>(result: Result<T, OpenError>, name: &str) {
    match result {
        Err(OpenError::Unsupported(n)) => assert!(n.contains(name), "{n:?} should name {name}"),
        other => panic!("expected Unsupported({name}), got {other:?}"),
    }
}

fn assert_refused<T: std::fmt::Debug>(result: Result<T, OpenError>, what: &str) {
    assert!(
        matches!(
            result,
            Err(OpenError::Malformed(_) | OpenError::WrongPassphrase)
        ),
        "{what}: expected Malformed or WrongPassphrase, got {result:?}"
    );
}

/// Decrypts `file` with the right, a wrong and an empty passphrase.
fn check_pem(t: &Tools, file: &str, expected: (&str, &[u8])) {
    let pem = t.read(file);
    let key = decrypt_pem_key(&pem, PASS.as_bytes()).expect(file);
    assert_eq!(der_of(&key), (expected.0, expected.1.to_vec()), "{file}");
    assert_wrong_passphrase(decrypt_pem_key(&pem, WRONG.as_bytes()), file);
    assert_wrong_passphrase(decrypt_pem_key(&pem, b""), file);
}

#[test]
fn traditional_pem_with_each_cipher() {
    let t = Tools::new("traditional_pem_with_each_cipher");
    for (kind, form) in [("rsa", "pkcs1"), ("ec", "sec1")] {
        let key = t.key(kind);
        let expected = t.traditional_der(&key);
        for cipher in ["-aes128", "-aes192", "-aes256", "-des3"] {
            let out = format!("{kind}{cipher}.pem");
            t.run_pass(&format!("pkey -in {key} -traditional {cipher} -out {out}"));
            let text = String::from_utf8(t.read(&out)).expect("PEM text");
            assert!(text.contains("Proc-Type: 4,ENCRYPTED"), "{text}");
            check_pem(&t, &out, (form, &expected));
        }
    }
}

#[test]
fn traditional_ec_from_openssl_ec_with_parameters_block() {
    let t = Tools::new("traditional_ec_from_openssl_ec_with_parameters_block");
    let key = t.key("ec");
    t.run_pass(&format!("ec -in {key} -aes256 -out ec-enc.pem"));
    t.run("ecparam -name prime256v1 -out params.pem", &[]);
    // `openssl ecparam -genkey` style files put EC PARAMETERS first.
    let mut pem = t.read("params.pem");
    pem.extend_from_slice(&t.read("ec-enc.pem"));
    t.write("both.pem", &pem);
    check_pem(&t, "both.pem", ("sec1", &t.traditional_der(&key)));
}

#[test]
fn pkcs8_with_each_scheme() {
    let t = Tools::new("pkcs8_with_each_scheme");
    let schemes = [
        "-v2 aes-256-cbc -v2prf hmacWithSHA256",
        "-v2 des3",
        "-v2 aes-128-cbc -v2prf hmacWithSHA1",
        "-v2 aes-192-cbc -v2prf hmacWithSHA512",
        "-scrypt",
    ];
    for kind in ["rsa", "ec"] {
        let key = t.key(kind);
        let expected = t.pkcs8_der(&key);
        for (i, scheme) in schemes.iter().enumerate() {
            let out = format!("{kind}-{i}.p8.pem");
            t.run_pass(&format!("pkcs8 -topk8 -in {key} {scheme} -out {out}"));
            check_pem(&t, &out, ("pkcs8", &expected));
        }
    }
    // DER input is accepted too.
    let key = t.key("ec");
    t.run_pass(&format!(
        "pkcs8 -topk8 -in {key} -outform DER -out k.p8.der"
    ));
    check_pem(&t, "k.p8.der", ("pkcs8", &t.pkcs8_der(&key)));
}

#[test]
fn unsupported_schemes_are_named() {
    let t = Tools::new("unsupported_schemes_are_named");
    let key = t.key("rsa");
    let cases = [
        ("-v1 PBE-SHA1-3DES", "PKCS#12 PBE SHA1-3DES"),
        ("-v2 camellia-256-cbc", "Camellia-256-CBC"),
    ];
    for (scheme, name) in cases {
        t.run_pass(&format!("pkcs8 -topk8 -in {key} {scheme} -out u.pem"));
        assert_unsupported(decrypt_pem_key(&t.read("u.pem"), PASS.as_bytes()), name);
    }
    t.run_pass(&format!(
        "pkey -in {key} -traditional -camellia256 -out cam.pem"
    ));
    let cam = t.read("cam.pem");
    assert_unsupported(decrypt_pem_key(&cam, PASS.as_bytes()), "CAMELLIA-256-CBC");
    let des = String::from_utf8(cam).expect("text");
    let des = des.replace("CAMELLIA-256-CBC", "DES-CBC");
    assert_unsupported(decrypt_pem_key(des.as_bytes(), PASS.as_bytes()), "DES-CBC");
    // PBES1 needs OpenSSL's legacy provider to be written at all.
    let providers = "-provider legacy -provider default";
    if t.try_run_pass(&format!(
        "pkcs8 -topk8 -in {key} -v1 PBE-MD5-DES {providers} -out p1.pem"
    )) {
        let pem = t.read("p1.pem");
        assert_unsupported(decrypt_pem_key(&pem, PASS.as_bytes()), "PBES1 MD5-DES");
    } else {
        eprintln!("note: no OpenSSL legacy provider; PBES1 case skipped");
    }
}

#[test]
fn unencrypted_and_mixed_pem() {
    let t = Tools::new("unencrypted_and_mixed_pem");
    let key = t.key("rsa");
    let trad = t.traditional_der(&key);
    t.run(&format!("pkey -in {key} -traditional -out plain.pem"), &[]);
    let plain = decrypt_pem_key(&t.read("plain.pem"), b"ignored").expect("plain");
    assert_eq!(der_of(&plain), ("pkcs1", trad.clone()));
    let plain = decrypt_pem_key(&t.read(&key), b"ignored").expect("plain pkcs8");
    assert_eq!(der_of(&plain), ("pkcs8", t.pkcs8_der(&key)));
    // A certificate before the key, CRLF line ends.
    t.run(
        &format!("req -x509 -new -key {key} -subj /CN=x -days 1 -out c.pem"),
        &[],
    );
    t.run_pass(&format!("pkey -in {key} -traditional -aes256 -out enc.pem"));
    let mut both = t.read("c.pem");
    both.extend_from_slice(&t.read("enc.pem"));
    let crlf = String::from_utf8(both).expect("text").replace('\n', "\r\n");
    t.write("crlf.pem", crlf.as_bytes());
    check_pem(&t, "crlf.pem", ("pkcs1", &trad));
    let cert_only = decrypt_pem_key(&t.read("c.pem"), b"x");
    assert!(matches!(cert_only, Err(OpenError::Malformed(_))));
}

/// Root and intermediate CA, `leaf.pem` for `key` signed by the
/// intermediate, and `chain.pem` with the root first (the wrong order, on
/// purpose). Returns the DER of leaf, intermediate, root.
fn make_chain(t: &Tools, key: &str) -> Vec<Vec<u8>> {
    let ca_ext = "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n";
    t.write("ca.ext", ca_ext.as_bytes());
    let ec = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";
    let root = format!("req -x509 -new {ec} -keyout root.key -days 2 -out root.pem");
    t.run(&root, &["-subj", "/CN=Test Root CA"]);
    let inter = format!("req -new {ec} -keyout inter.key -out inter.csr");
    t.run(&inter, &["-subj", "/CN=Test Intermediate CA"]);
    let sign = "x509 -req -days 2 -in inter.csr -CA root.pem -CAkey root.key";
    t.run(
        &format!("{sign} -set_serial 2 -extfile ca.ext -out inter.pem"),
        &[],
    );
    t.run(
        &format!("req -new -key {key} -out leaf.csr -subj /CN=orca.example.jp"),
        &[],
    );
    let sign = "x509 -req -days 2 -in leaf.csr -CA inter.pem -CAkey inter.key";
    t.run(&format!("{sign} -set_serial 3 -out leaf.pem"), &[]);
    let mut chain = t.read("root.pem");
    chain.extend_from_slice(&t.read("inter.pem"));
    t.write("chain.pem", &chain);
    ["leaf.pem", "inter.pem", "root.pem"]
        .map(|c| t.cert_der(c))
        .to_vec()
}

/// Opens `file` with the right passphrase (chain order, key) and wrong ones.
fn check_p12(t: &Tools, file: &str, key: &str, expected_chain: &[Vec<u8>]) {
    let der = t.read(file);
    let (chain, private) = open_p12(&der, PASS).expect(file);
    let chain: Vec<Vec<u8>> = chain.iter().map(|c| c.as_ref().to_vec()).collect();
    assert_eq!(chain, expected_chain, "{file}: chain order");
    assert_eq!(der_of(&private), ("pkcs8", t.pkcs8_der(key)), "{file}: key");
    assert_wrong_passphrase(open_p12(&der, WRONG), file);
    assert_wrong_passphrase(open_p12(&der, ""), file);
}

/// pbeWithSHAAnd40BitRC2-CBC, DER-encoded, as `-legacy` uses for certificates.
const RC2_40_OID: [u8; 12] = [
    0x06, 0x0a, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x01, 0x06,
];
/// pbeWithSHAAnd3-KeyTripleDES-CBC, DER-encoded.
const TDES_OID: [u8; 12] = [
    0x06, 0x0a, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x01, 0x03,
];

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn p12_modern_and_legacy() {
    let t = Tools::new("p12_modern_and_legacy");
    for kind in ["rsa", "ec"] {
        let key = t.key(kind);
        let expected = make_chain(&t, &key);
        let export = format!("pkcs12 -export -inkey {key} -in leaf.pem -certfile chain.pem");
        t.run_pass(&format!("{export} -out modern.p12"));
        check_p12(&t, "modern.p12", &key, &expected);
        let tdes = "-keypbe PBE-SHA1-3DES -certpbe PBE-SHA1-3DES -macalg sha1";
        t.run_pass(&format!("{export} {tdes} -out 3des.p12"));
        assert!(contains(&t.read("3des.p12"), &TDES_OID));
        check_p12(&t, "3des.p12", &key, &expected);
        if !t.try_run_pass(&format!("{export} -legacy -out legacy.p12")) {
            eprintln!("note: no OpenSSL legacy provider; RC2 PKCS#12 case skipped");
            continue;
        }
        let der = t.read("legacy.p12");
        assert!(contains(&der, &RC2_40_OID), "-legacy: RC2-40 certificates");
        assert!(contains(&der, &TDES_OID), "-legacy: 3DES key");
        check_p12(&t, "legacy.p12", &key, &expected);
    }
}

#[test]
fn p12_odd_contents() {
    let t = Tools::new("p12_odd_contents");
    let key = t.key("ec");
    let expected = make_chain(&t, &key);
    let export = format!("pkcs12 -export -inkey {key} -in leaf.pem");
    // No MAC: a wrong passphrase shows only in what decrypts.
    t.run_pass(&format!(
        "{export} -certfile chain.pem -nomac -out nomac.p12"
    ));
    check_p12(&t, "nomac.p12", &key, &expected);
    t.run_pass(&format!("{export} -out leaf.p12"));
    let (chain, _) = open_p12(&t.read("leaf.p12"), PASS).expect("leaf only");
    assert_eq!(chain.len(), 1);
    t.run_pass("pkcs12 -export -nokeys -in leaf.pem -out nokey.p12");
    let no_key = open_p12(&t.read("nokey.p12"), PASS);
    assert!(matches!(no_key, Err(OpenError::Malformed(_))), "{no_key:?}");
    t.run_pass(&format!(
        "pkcs12 -export -nocerts -inkey {key} -out nocert.p12"
    ));
    let no_cert = open_p12(&t.read("nocert.p12"), PASS);
    assert!(
        matches!(no_cert, Err(OpenError::Malformed(_))),
        "{no_cert:?}"
    );
}

/// Writes a PKCS#12 file with `p12-keystore` itself: a key and the given
/// certificates, in the given order (the first gets the localKeyId).
fn keystore_p12(key_pkcs8: &[u8], certs: &[&Vec<u8>]) -> Vec<u8> {
    let key = p12_keystore::PrivateKey::from_der(key_pkcs8).expect("key");
    let certs = certs
        .iter()
        .map(|c| p12_keystore::Certificate::from_der(c).expect("cert"));
    let chain = p12_keystore::PrivateKeyChain::new("id-1", key, certs);
    let mut store = p12_keystore::KeyStore::new();
    let entry = p12_keystore::KeyStoreEntry::PrivateKeyChain(chain);
    store.add_entry("server", entry);
    store.writer(PASS).write().expect("write p12")
}

#[test]
fn p12_leaf_found_by_public_key() {
    let t = Tools::new("p12_leaf_found_by_public_key");
    let key = t.key("rsa");
    let expected = make_chain(&t, &key);
    let [leaf, inter, root] = [&expected[0], &expected[1], &expected[2]];
    let p8 = t.pkcs8_der(&key);
    // Root first, with the localKeyId: only the public key tells the leaf.
    let der = keystore_p12(&p8, &[root, inter, leaf]);
    let (chain, private) = open_p12(&der, PASS).expect("open");
    let chain: Vec<Vec<u8>> = chain.iter().map(|c| c.as_ref().to_vec()).collect();
    assert_eq!(chain, expected);
    assert_eq!(der_of(&private), ("pkcs8", p8.clone()));
    // A key with certificates that are not its own.
    let der = keystore_p12(&p8, &[root, inter]);
    assert!(matches!(open_p12(&der, PASS), Err(OpenError::Malformed(_))));
}

/// A small deterministic generator, so failures reproduce.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[0]
        })
        .collect()
}

#[test]
fn truncated_and_damaged_pem() {
    let t = Tools::new("truncated_and_damaged_pem");
    let key = t.key("ec");
    t.run_pass(&format!(
        "pkey -in {key} -traditional -aes128 -out trad.pem"
    ));
    t.run_pass(&format!(
        "pkcs8 -topk8 -in {key} -v2 aes-256-cbc -out p8.pem"
    ));
    for file in ["trad.pem", "p8.pem"] {
        let pem = t.read(file);
        let end = String::from_utf8_lossy(&pem).find("-----END").expect("END");
        for len in 0..end {
            let cut = pem.get(..len).unwrap_or_default();
            assert_refused(decrypt_pem_key(cut, PASS.as_bytes()), file);
        }
        for i in (0..pem.len()).step_by(3) {
            let mut bad = pem.clone();
            if let Some(b) = bad.get_mut(i) {
                *b ^= 0x21;
            }
            // Any answer but a panic: a damaged header may read as unsupported.
            let _ = decrypt_pem_key(&bad, PASS.as_bytes());
        }
    }
}

#[test]
fn truncated_and_damaged_p12() {
    let t = Tools::new("truncated_and_damaged_p12");
    let key = t.key("ec");
    make_chain(&t, &key);
    let export = format!("pkcs12 -export -inkey {key} -in leaf.pem -certfile chain.pem");
    t.run_pass(&format!("{export} -out k.p12"));
    let p12 = t.read("k.p12");
    for len in (0..p12.len()).step_by(5) {
        let cut = p12.get(..len).unwrap_or_default();
        assert_refused(open_p12(cut, PASS), "truncated p12");
    }
    for i in (0..p12.len()).step_by(7) {
        let mut bad = p12.clone();
        if let Some(b) = bad.get_mut(i) {
            *b ^= 0x5a;
        }
        assert!(
            open_p12(&bad, PASS).is_err(),
            "byte {i} flipped, still opened"
        );
    }
}

#[test]
fn pure_garbage() {
    let wrappers = [
        (
            "RSA PRIVATE KEY",
            "Proc-Type: 4,ENCRYPTED\nDEK-Info: AES-256-CBC,00112233445566778899AABBCCDDEEFF\n\n",
        ),
        (
            "EC PRIVATE KEY",
            "Proc-Type: 4,ENCRYPTED\nDEK-Info: DES-EDE3-CBC,0011223344556677\n\n",
        ),
        (
            "EC PRIVATE KEY",
            "Proc-Type: 4,ENCRYPTED\nDEK-Info: DES-EDE3-CBC,00112233\n\n",
        ),
        ("EC PRIVATE KEY", "Proc-Type: 4,ENCRYPTED\n\n"),
        ("ENCRYPTED PRIVATE KEY", ""),
        ("PRIVATE KEY", ""),
    ];
    for seed in 1..200u64 {
        let len = usize::try_from(seed * 13 % 700).unwrap_or(0);
        let mut data = noise(seed, len);
        assert_refused(open_p12(&data, PASS), "noise as p12");
        let _ = decrypt_pem_key(&data, PASS.as_bytes());
        if let Some(b) = data.first_mut() {
            *b = 0x30;
        }
        let _ = decrypt_pem_key(&data, PASS.as_bytes());
        let body = base64::engine::general_purpose::STANDARD.encode(&data);
        for (label, headers) in wrappers {
            let pem = format!("-----BEGIN {label}-----\n{headers}{body}\n-----END {label}-----\n");
            assert_refused(decrypt_pem_key(pem.as_bytes(), PASS.as_bytes()), label);
        }
    }
}

#[test]
fn pass_file_first_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("server.pass");
    for (content, expected) in [
        (&b"secret\n"[..], Some("secret")),
        (b"secret\r\nsecond line\n", Some("secret")),
        (b"no newline", Some("no newline")),
        (b" spaced pass \n", Some(" spaced pass ")),
        (b"", None),
        (b"\n", None),
        (b"\r\nsecret\n", None),
        (b"\xff\xfe\n", None),
    ] {
        std::fs::write(&path, content).expect("write");
        let got = read_pass_file(&path).ok().map(|p| p.as_str().to_owned());
        assert_eq!(got.as_deref(), expected, "{content:?}");
    }
    assert!(read_pass_file(&dir.path().join("missing")).is_err());
}

#[test]
fn evp_bytes_to_key_matches_openssl() {
    let t = Tools::new("evp_bytes_to_key_matches_openssl");
    // `openssl enc -P` prints the key EVP_BytesToKey derives.
    let args = "enc -aes-256-cbc -md md5 -pass pass:abc -S 0102030405060708 -P";
    let out = t.try_run(args, &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    let key_hex = text.lines().find_map(|l| l.strip_prefix("key="));
    let key = evp_bytes_to_key_md5(b"abc", &[1, 2, 3, 4, 5, 6, 7, 8], 32);
    assert_eq!(
        Some(key.to_vec()),
        key_hex.and_then(|h| hex_decode(h.trim()))
    );
}

#[test]
fn messages_are_lowercase_without_period() {
    for e in [
        OpenError::WrongPassphrase,
        OpenError::Unsupported("RC4".into()),
        OpenError::Malformed("truncated".into()),
    ] {
        let text = e.to_string();
        assert!(text.starts_with(|c: char| c.is_lowercase()), "{text}");
        assert!(!text.ends_with('.'), "{text}");
    }
}
