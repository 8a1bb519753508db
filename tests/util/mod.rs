//! Shared test helpers: PKIs, a stand-in WebORCA, TLS clients, and a proxy
//! started in-process on port 0.

#![allow(dead_code)]

pub mod backend;
pub mod cdp;
pub mod chromium;
pub mod client;
pub mod env;
pub mod fakeroot;
pub mod firefox;
pub mod kept;
pub mod lean;
pub mod logged;
pub mod openssl;
pub mod pki;
pub mod process;
pub mod push;
pub mod raw;
pub mod real;
pub mod ws;
pub mod zips;
