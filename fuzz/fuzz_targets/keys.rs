//! Private keys: encrypted PEM/PKCS#8 and PKCS#12 with a passphrase. The first
//! byte gives the passphrase's length, the next bytes the passphrase, the
//! rest is the file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weborca_mtls_proxy::tls::keys;

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(n % 32).min(rest.len());
    let (pass, file) = rest.split_at(n);
    let _ = keys::decrypt_pem_key(file, pass);
    let _ = keys::open_p12(file, &String::from_utf8_lossy(pass));
});
