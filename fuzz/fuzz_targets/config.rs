//! The jma-receipt.conf-style parser on arbitrary text: it must never panic
//! (and, per its contract, never run anything: it has no way to).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use weborca_mtls_proxy::config;

fuzz_target!(|data: &[u8]| {
    // The loader replaces invalid UTF-8 the same way.
    let text = String::from_utf8_lossy(data);
    let path = Path::new("/etc/weborca-mtls-proxy/proxy.conf");
    let raw = config::parse_raw(&text, path);
    for entry in &raw.entries {
        assert!(entry.line >= 1, "line numbers start at 1");
    }
    if let Ok(loaded) = config::parse(&text, path) {
        assert_eq!(loaded.config.path, path);
        assert!(loaded.config.max_connections >= 1);
    }
});
