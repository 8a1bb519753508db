//! weborca-mtls-proxy: the mutual-TLS door in front of WebORCA.
//!
//! Layers, lowest first; each uses only those before it (`tests/layers.rs`):
//! - [`text`], [`x509`], [`policy`], [`config`]: sanitising, certificate fields,
//!   ACCESS_POLICY (rules and path normal form), and the
//!   jma-receipt.conf-style file (a key is declared by a row of
//!   [`config::KEYS`] and a field of [`config::Config`], its value form in
//!   `config/values.rs`; [`config::parts`] cuts it by part).
//! - [`tls`]: a certificate or key is loaded in [`tls::load`] and
//!   [`tls::keys`]; a client is judged in [`tls::verify`] (its verdict and
//!   `CertErrorKind` in `tls/verify/verdict.rs`), and judged again on open
//!   connections in [`tls::judgement`].
//! - [`pages`] (refusal and error pages) and [`observe`] (log, metrics, status).
//! - [`proxy`]: [`proxy::server`] accepts and runs the handshake,
//!   [`proxy::conn`] holds what is known of a connection, [`proxy`] forwards
//!   (a header is rewritten in `proxy/headers.rs`), [`proxy::ws`] tunnels WebSockets.
//! - [`load`]: the one load path shared by start-up, [`reload`] and [`check`].
//! - [`app`]: start-up, signals, exit codes; `demo` (cargo feature `demo`).
#![forbid(unsafe_code)]

pub mod app;
pub mod check;
pub mod config;
#[cfg(feature = "demo")]
pub mod demo;
pub mod guard;
pub mod load;
pub mod observe;
pub mod pages;
pub mod policy;
pub mod program;
pub mod proxy;
pub mod reload;
pub mod setup;
pub mod text;
pub mod tls;
pub mod x509;

// The modules' former top-level paths, kept so `crate::server`,
// `weborca_mtls_proxy::status`… still name the same items.
pub use observe::{log, metrics, status};
pub use proxy::{body, conn, plain, server, ws};
