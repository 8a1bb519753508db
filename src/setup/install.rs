//! `install-cert` and `install-crl` (filled in below).
