//! weborca-mtls-proxy: the mutual-TLS door in front of WebORCA.
//!
//! A connection arrives at [`server`], which tells TLS from plain HTTP
//! ([`plain`] answers the latter with a redirect), runs the handshake with the
//! current [`tls::TlsState`] and judges the client certificate
//! ([`tls::verify`]). Each request then goes to [`proxy`]: a refused client
//! gets its page from [`pages`], a verified one is forwarded to WebORCA with
//! its identity. [`config`] reads the jma-receipt.conf-style file, [`app`]
//! runs the start-up sequence and the signals, [`log`] writes WebORCA-style
//! lines, [`x509`] reads certificate fields.
#![forbid(unsafe_code)]

pub mod app;
pub mod check;
pub mod config;
#[cfg(feature = "demo")]
pub mod demo;
pub mod load;
pub mod observe;
pub mod pages;
pub mod proxy;
pub mod reload;
pub mod text;
pub mod tls;
pub mod x509;

// The modules' former top-level paths, kept so `crate::server`,
// `weborca_mtls_proxy::status`… still name the same items.
pub use observe::{log, metrics, status};
pub use proxy::{body, conn, plain, server, ws};
