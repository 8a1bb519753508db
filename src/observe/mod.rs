//! What the proxy tells its operator while it runs: the WebORCA-style log
//! ([`log`], its JSON lines in [`log_json`]), the Prometheus counters
//! ([`metrics`]) and the status endpoints with the shared runtime counters
//! they read ([`status`]), and the operator console page ([`console`]);
//! [`stalled`] bounds how long a client may leave an answer unread, on the
//! status listener and on the proxy's own.

pub mod console;
pub mod log;
pub mod log_json;
pub mod metrics;
pub mod stalled;
pub mod status;
