//! Integration tests: each makes its own PKI, starts the real proxy (in-process
//! on port 0, or as a process) and talks to it through real TLS.

mod util;

mod audit;
mod backend_pool;
mod backend_trouble;
mod check;
mod client_matrix;
mod clients_revoked;
mod console;
mod crl_per_ca;
#[cfg(feature = "demo")]
mod demo;
mod forwarding;
mod guard_netns;
mod hardening;
mod hostile_backend;
mod hostile_flood;
mod hostile_http;
mod hostile_reload;
mod hostile_shutdown;
mod hostile_slow;
mod hostile_tls;
mod install_cert;
mod install_crl;
mod install_crl_list;
mod install_files;
mod install_new_set;
mod layers;
mod lifecycle;
mod newcomer;
mod open_connections;
mod plain_http;
mod policy;
mod real_clients;
mod refusals;
mod server_keys;
mod setup;
mod startup;
mod status;
mod systemd;
mod websocket;
mod workers;

mod api_clients;
mod browser;
mod console_browser;
mod firefox;
mod java_client;
mod push_client;
mod ruby_client;
mod tls_scan;
