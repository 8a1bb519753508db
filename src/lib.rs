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
pub mod body;
pub mod check;
pub mod config;
pub mod conn;
pub mod demo;
pub mod log;
pub mod metrics;
pub mod pages;
pub mod plain;
pub mod proxy;
pub mod reload;
pub mod server;
pub mod setup;
pub mod status;
pub mod tls;
pub mod ws;
pub mod x509;
