//! What the proxy tells its operator while it runs: the WebORCA-style log
//! ([`log`], its JSON lines in [`log_json`]), the Prometheus counters
//! ([`metrics`]) and the status endpoints with the shared runtime counters
//! they read ([`status`]), and the operator console page ([`console`]).

pub mod console;
pub mod log;
pub mod log_json;
pub mod metrics;
pub mod status;
