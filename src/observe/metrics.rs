//! Prometheus metrics (prometheus-client): connections, handshakes,
//! client-certificate refusals by reason, requests by status class and
//! duration, backend errors by kind, reloads by result, and the expiry time of
//! every certificate and CRL in use. Served at `/metrics` by `status`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::tls::TlsState;

/// A label set of one label, named after its field: `reason="revoked"`.
macro_rules! one_label {
    ($name:ident, $field:ident) => {
        #[doc = concat!("The `", stringify!($field), "` label.")]
        #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
        pub struct $name {
            #[doc = concat!("the ", stringify!($field))]
            pub $field: String,
        }

        impl From<&str> for $name {
            fn from(v: &str) -> Self {
                $name {
                    $field: v.to_string(),
                }
            }
        }
    };
}

one_label!(Outcome, result);
one_label!(Reason, reason);
one_label!(Kind, kind);
one_label!(RuleName, rule);

/// Labels of a request counter: the status class (`2xx`) and the status
/// (`200`), so that a query may sum by either.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Status {
    /// `1xx` … `5xx`
    pub class: String,
    /// the status code, `200`
    pub code: String,
}

/// The statuses a request is counted under: all that HTTP's three digits
/// (and the http crate) allow, WebORCA's own answers passed through included.
const STATUS_CODES: std::ops::RangeInclusive<u16> = 100..=999;

/// Labels of a certificate's expiry gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CertLabels {
    /// `server`, `ca` or `crl`
    pub kind: String,
    /// subject (or CRL issuer), one-line form
    pub subject: String,
}

/// One unit of a gauge, given back when dropped (see [`Metrics::held`]).
pub struct Held<'a>(&'a Gauge);

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Every metric the proxy keeps.
pub struct Metrics {
    registry: Registry,
    /// client connections open now
    pub connections_open: Gauge,
    /// client connections accepted since start
    pub connections_total: Counter,
    /// TLS handshakes by result: ok, failed, timeout, aborted (the client left)
    pub handshakes: Family<Outcome, Counter>,
    /// connections cut because their client took nothing of a response (or
    /// sent nothing more of a request body) for IDLE_TIMEOUT
    pub stalled_clients: Counter,
    /// clients refused, by X-Client-Cert-Error reason
    pub refusals: Family<Reason, Counter>,
    /// requests decided by ACCESS_POLICY, by deciding rule (`FILE:LINE`, `-`
    /// when no rule matched), allowed and refused alike
    pub policy_rules: Family<RuleName, Counter>,
    /// requests answered, by status class (2xx…) and status
    pub requests: Family<Status, Counter>,
    /// time from request to response headers, seconds
    pub request_duration: Histogram,
    /// backend failures: connect, timeout, other
    pub backend_errors: Family<Kind, Counter>,
    /// requests waiting for a backend slot: MAX_CONNECTIONS are all in use
    pub backend_waiting: Gauge,
    /// reloads by result: ok, failed
    pub reloads: Family<Outcome, Counter>,
    /// not-after (or nextUpdate) of each certificate and CRL in use, Unix seconds
    pub expiry: Family<CertLabels, Gauge>,
    /// 1 while a CRL of CA_CRL is past its nextUpdate
    pub crl_stale: Gauge,
    /// 1 while that refuses every client (CRL_STALE=refuse)
    pub crl_stale_refusing: Gauge,
    /// `requests`' counter of each status (100…999), taken from the family
    /// on first use: a family lookup allocates its labels and hashes them
    /// (SipHash) under a lock, which every request would pay.
    request_codes: Box<[std::sync::OnceLock<Counter>]>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers all metrics under the `weborca_proxy_` prefix.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("weborca_proxy");
        let m = Metrics {
            registry: Registry::default(),
            connections_open: Gauge::default(),
            connections_total: Counter::default(),
            handshakes: Family::default(),
            stalled_clients: Counter::default(),
            refusals: Family::default(),
            policy_rules: Family::default(),
            requests: Family::default(),
            request_duration: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            backend_errors: Family::default(),
            backend_waiting: Gauge::default(),
            reloads: Family::default(),
            expiry: Family::default(),
            crl_stale: Gauge::default(),
            crl_stale_refusing: Gauge::default(),
            request_codes: STATUS_CODES.map(|_| std::sync::OnceLock::new()).collect(),
        };
        let r = &mut registry;
        r.register(
            "connections_open",
            "Client connections open",
            m.connections_open.clone(),
        );
        r.register(
            "connections",
            "Client connections accepted",
            m.connections_total.clone(),
        );
        r.register(
            "tls_handshakes",
            "TLS handshakes by result",
            m.handshakes.clone(),
        );
        r.register(
            "stalled_clients",
            "Connections cut because their client took nothing (or sent nothing more) for IDLE_TIMEOUT",
            m.stalled_clients.clone(),
        );
        r.register(
            "client_cert_refusals",
            "Clients refused by reason",
            m.refusals.clone(),
        );
        r.register(
            "access_policy_decisions",
            "Requests decided by ACCESS_POLICY, by deciding rule (FILE:LINE)",
            m.policy_rules.clone(),
        );
        r.register(
            "requests",
            "Requests answered by status class",
            m.requests.clone(),
        );
        r.register(
            "request_duration_seconds",
            "Time to the response headers",
            m.request_duration.clone(),
        );
        r.register(
            "backend_errors",
            "WebORCA failures by kind",
            m.backend_errors.clone(),
        );
        r.register(
            "backend_waiting",
            "Requests waiting for a backend connection (MAX_CONNECTIONS all in use)",
            m.backend_waiting.clone(),
        );
        r.register("reloads", "Reloads by result", m.reloads.clone());
        r.register(
            "cert_expiry_timestamp_seconds",
            "Expiry (CRL: nextUpdate) of each certificate and CRL in use",
            m.expiry.clone(),
        );
        r.register(
            "crl_stale",
            "1 while a CRL of CA_CRL is past its nextUpdate",
            m.crl_stale.clone(),
        );
        r.register(
            "crl_stale_refusing",
            "1 while an out-of-date CRL refuses every client (CRL_STALE=refuse)",
            m.crl_stale_refusing.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Sets the CRL state gauges for `tls` at `now` (staleness comes with the clock).
    pub fn set_crl_state(&self, tls: &TlsState, now: chrono::DateTime<chrono::Utc>) {
        let stale = tls.crls.iter().any(|c| crate::tls::crl::is_stale(c, now));
        let refusing = stale && tls.crl_stale == crate::config::CrlStale::Refuse;
        self.crl_stale.set(i64::from(stale));
        self.crl_stale_refusing.set(i64::from(refusing));
    }

    /// Raises `gauge` by one until the returned guard is dropped.
    pub fn held(gauge: &Gauge) -> Held<'_> {
        gauge.inc();
        Held(gauge)
    }

    /// Counts one occurrence under the label value `value`.
    pub fn count<L>(family: &Family<L, Counter>, value: &str)
    where
        L: for<'a> From<&'a str>
            + Clone
            + std::hash::Hash
            + Eq
            + EncodeLabelSet
            + std::fmt::Debug
            + Send
            + Sync
            + 'static,
    {
        family.get_or_create(&L::from(value)).inc();
    }

    /// Counts one request answered with `status` in `requests`, by its
    /// class and code.
    pub fn count_request(&self, status: u16) {
        let status = status.clamp(*STATUS_CODES.start(), *STATUS_CODES.end());
        self.request_codes[usize::from(status - STATUS_CODES.start())]
            .get_or_init(|| {
                let labels = Status {
                    class: format!("{}xx", status / 100),
                    code: status.to_string(),
                };
                self.requests.get_or_create(&labels).clone()
            })
            .inc();
    }

    /// Sets the expiry gauges to the certificates of `tls` (old ones removed).
    pub fn set_expiry(&self, tls: &TlsState) {
        self.expiry.clear();
        let set = |kind: &str, subject: &str, t: i64| {
            let labels = CertLabels {
                kind: kind.into(),
                subject: subject.into(),
            };
            self.expiry.get_or_create(&labels).set(t);
        };
        set(
            "server",
            &tls.server_cert.subject_oneline,
            tls.server_cert.not_after.timestamp(),
        );
        for ca in &tls.ca_certs {
            set("ca", &ca.subject_oneline, ca.not_after.timestamp());
        }
        for crl in &tls.crls {
            if let Some(next) = crl.next_update {
                set("crl", &crl.issuer, next.timestamp());
            }
        }
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    /// The metrics in Prometheus' classic text format (`text/plain;
    /// version=0.0.4`), made from the OpenMetrics text, which
    /// prometheus-client alone writes: the two differ only in that a
    /// counter's `# HELP` and `# TYPE` name it with its `_total` (OpenMetrics
    /// names the family without it), and that `# UNIT` and `# EOF` are not
    /// part of the classic format.
    pub fn encode_classic(&self) -> String {
        classic(&self.encode())
    }
}

/// OpenMetrics text as Prometheus' classic text (see [`Metrics::encode_classic`]).
fn classic(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len() + 64 * counters.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| line.strip_prefix(p).map(|rest| (p, rest)));
        match meta.and_then(|(p, rest)| rest.split_once(' ').map(|(n, tail)| (p, n, tail))) {
            Some((p, name, tail)) if counters.contains(name) => {
                out.push_str(&format!("{p}{name}_total {tail}\n"));
            }
            _ => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_classic_text_names_a_counter_with_its_samples_name() {
        let open = "# HELP a_conn Connections.\n# TYPE a_conn counter\n# UNIT a_conn x\n\
                    a_conn_total 3\n# HELP b Open.\n# TYPE b gauge\nb 1\n# EOF\n";
        assert_eq!(
            classic(open),
            "# HELP a_conn_total Connections.\n# TYPE a_conn_total counter\na_conn_total 3\n\
             # HELP b Open.\n# TYPE b gauge\nb 1\n"
        );
    }

    #[test]
    fn requests_are_counted_by_class_and_code() {
        let m = Metrics::new();
        for status in [200, 200, 404, 799, 0, u16::MAX] {
            m.count_request(status);
        }
        let text = m.encode();
        for line in [
            "weborca_proxy_requests_total{class=\"2xx\",code=\"200\"} 2",
            "weborca_proxy_requests_total{class=\"4xx\",code=\"404\"} 1",
            "weborca_proxy_requests_total{class=\"7xx\",code=\"799\"} 1",
            // outside HTTP's three digits: at the nearest end
            "weborca_proxy_requests_total{class=\"1xx\",code=\"100\"} 1",
            "weborca_proxy_requests_total{class=\"9xx\",code=\"999\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
    }
}
