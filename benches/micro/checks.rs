//! `checks/*`: the per-request checks added by the revocation, policy and
//! console work, each of which must cost at most 2 % of a request:
//!
//! - the generation compare: an open connection asking whether its verdict is
//!   still current (`Judgement::now_and_news` on a live judgement whose
//!   generation and window still hold), made twice per forwarded request
//!   (`Proxy::handle`, and again once a backend slot is free);
//! - the body gate: each frame of a body streaming to or from WebORCA asks
//!   the same (`Judgement::holds_accepted`, gated.rs): once per request for
//!   a small answer in one frame;
//! - the rule lookup: conf/access-policy.example on a typical API call, as
//!   `Proxy::access` makes it (normal form, decision, the rule's name made
//!   log-safe and counted in `policy_rules`), and the decision alone;
//! - the console's rings: the chart count every answered request makes, and
//!   the refusal-ring push every refused client makes (on a full ring).
//!
//! Everything is reached through the crate's public API: no bench hook was
//! needed. After the criterion figures, each check's share of one request
//! through `Proxy::handle` is printed, both timed in this process one after
//! the other (criterion does not hand its estimates back to the bench).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use criterion::Criterion;
use rcgen::{CertificateParams, DnType, KeyPair};
use rustls::pki_types::UnixTime;
use weborca_mtls_proxy::metrics::Metrics;
use weborca_mtls_proxy::observe::console::rings::{Chart, REFUSALS_KEPT, RefusalRing};
use weborca_mtls_proxy::policy::{self, Policy};
use weborca_mtls_proxy::status::Stats;
use weborca_mtls_proxy::text::log_safe;
use weborca_mtls_proxy::tls::judgement::{Generations, Judgement};
use weborca_mtls_proxy::x509::CertInfo;

use crate::pki;

/// The ORCA rule set a clinic starts from.
const POLICY: &[u8] = include_bytes!("../../conf/access-policy.example");
/// An ORCA API call (patient information, API version 2) by an API client.
const API_PATH: &str = "/api01rv2/patientgetv2";
/// Generation compares per forwarded request (see the header).
const COMPARES_PER_REQUEST: f64 = 2.0;
/// The share each check may take of a request.
const TARGET_PCT: f64 = 2.0;
/// Rounds of the share table; its figures are their medians.
const ROUNDS: usize = 5;

/// The certificate of an API client such as the reception kiosk (`OU=api`).
fn api_client() -> CertInfo {
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(vec!["reception-kiosk".to_string()]).expect("params");
    params.distinguished_name = pki::dn("reception-kiosk");
    params
        .distinguished_name
        .push(DnType::OrganizationalUnitName, "api");
    let cert = params.self_signed(&key).expect("certificate");
    CertInfo::from_der(cert.der().as_ref()).expect("parses")
}

/// What the checks are run on.
struct Setup {
    judgement: Judgement,
    /// kept: the judgement's receiver would otherwise see a closed channel
    _generations: Generations,
    policy: Policy,
    client: CertInfo,
    stats: Stats,
    chart: Chart,
    refusals: RefusalRing,
}

fn setup(p: &pki::Pki) -> Setup {
    let serving = Arc::new(ArcSwap::from_pointee(crate::tls_state(p)));
    let tls = serving.load_full();
    let chain = p.client_chain.clone();
    let verdict = tls.verifier.check(&chain, UnixTime::now());
    assert!(verdict.is_ok(), "the client verifies");
    let generations = Generations::new();
    let judgement = Judgement::new(chain, verdict, &tls, serving, generations.subscribe());
    let policy = Policy::from_bytes(
        std::path::Path::new("conf/access-policy.example"),
        POLICY.to_vec(),
    )
    .expect("the example policy parses");
    let client = api_client();
    assert!(
        policy.decide(&client, "POST", API_PATH).allowed(),
        "the example admits an API client on {API_PATH}"
    );
    let refusals = RefusalRing::default();
    let peer = "192.168.1.20:50312".parse().expect("peer");
    for _ in 0..REFUSALS_KEPT {
        refusals.push(peer, "revoked", "/C=JP/O=orca/CN=user9");
    }
    Setup {
        judgement,
        _generations: generations,
        policy,
        client,
        stats: Stats::new(30),
        chart: Chart::default(),
        refusals,
    }
}

impl Setup {
    fn generation_compare(&self) -> bool {
        black_box(self.judgement.now_and_news()).1
    }

    fn body_frame_gate(&self) -> bool {
        black_box(self.judgement.holds_accepted())
    }

    /// As `Proxy::access`: normal form, decision, rule name counted.
    fn rule_lookup(&self, raw: &str) -> bool {
        let path = policy::normalize(black_box(raw)).expect("normal");
        let decision = self.policy.decide(&self.client, "POST", &path);
        let rule = log_safe(decision.rule_name());
        Metrics::count(&self.stats.metrics.policy_rules, &rule);
        decision.allowed()
    }

    fn decide(&self, path: &str) -> bool {
        self.policy
            .decide(&self.client, "POST", black_box(path))
            .allowed()
    }

    fn chart_count(&self) {
        self.chart.request();
    }

    fn refusal_push(&self) {
        let peer = "192.168.1.20:50312".parse().expect("peer");
        self.refusals
            .push(peer, black_box("revoked"), "/C=JP/O=orca/CN=user9");
    }
}

pub fn bench_checks(c: &mut Criterion) {
    let f = crate::fixture(pki::Alg::Rsa2048, 10);
    let s = setup(&f.pki);
    c.bench_function(
        "checks/generation compare (Judgement::now_and_news, verdict current)",
        |b| b.iter(|| s.generation_compare()),
    );
    c.bench_function(
        "checks/body frame gate (Judgement::holds_accepted, each frame)",
        |b| b.iter(|| s.body_frame_gate()),
    );
    c.bench_function(
        "checks/rule lookup, conf/access-policy.example, POST /api01rv2/patientgetv2 (as Proxy::access)",
        |b| b.iter(|| s.rule_lookup(API_PATH)),
    );
    c.bench_function("checks/rule lookup, decision alone (Policy::decide)", |b| {
        b.iter(|| s.decide(API_PATH))
    });
    c.bench_function(
        "checks/console chart count (Chart::request, every request)",
        |b| b.iter(|| s.chart_count()),
    );
    c.bench_function(
        "checks/console refusal ring push (full ring, every refusal)",
        |b| b.iter(|| s.refusal_push()),
    );
    if wants_shares() {
        shares(&f.pki, &s);
    }
}

/// The share table runs with no filter, or a filter naming `checks`.
fn wants_shares() -> bool {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    filters.is_empty()
        || filters
            .iter()
            .any(|f| f.contains("checks") || "checks/share".contains(f.as_str()))
}

/// Nanoseconds per call of `f`: the median of [`ROUNDS`] rounds of `each`.
fn ns_per_call(each: Duration, mut f: impl FnMut()) -> f64 {
    let mut rounds: Vec<f64> = (0..ROUNDS)
        .map(|_| {
            let t = Instant::now();
            let mut n = 0u64;
            while t.elapsed() < each {
                for _ in 0..1000 {
                    f();
                }
                n += 1000;
            }
            t.elapsed().as_nanos() as f64 / n as f64
        })
        .collect();
    rounds.sort_by(f64::total_cmp);
    rounds[ROUNDS / 2]
}

/// Each check's share of one request through `Proxy::handle`, and of the
/// proxy's own part of it (the request minus the same one straight to the backend).
fn shares(p: &pki::Pki, s: &Setup) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let backend = rt.block_on(crate::backend());
    let mut proxied = rt.block_on(crate::through_proxy(backend, p, false));
    let mut direct = rt.block_on(async {
        crate::client_over(
            tokio::net::TcpStream::connect(backend)
                .await
                .expect("connect"),
        )
        .await
    });
    let request_ns = |send: &mut crate::Sender| {
        let mut rounds: Vec<f64> = (0..ROUNDS)
            .map(|_| {
                rt.block_on(async {
                    let t = Instant::now();
                    let mut n = 0u32;
                    while t.elapsed() < Duration::from_millis(400) {
                        crate::one(send).await;
                        n += 1;
                    }
                    t.elapsed().as_nanos() as f64 / f64::from(n)
                })
            })
            .collect();
        rounds.sort_by(f64::total_cmp);
        rounds[ROUNDS / 2]
    };
    let through = request_ns(&mut proxied);
    let straight = request_ns(&mut direct);
    let own = (through - straight).max(1.0);
    let each = Duration::from_millis(200);
    let checks = [
        (
            "generation compare × 2 per request",
            COMPARES_PER_REQUEST
                * ns_per_call(each, || {
                    s.generation_compare();
                }),
        ),
        (
            "body frame gate × 1 (a one-frame answer)",
            ns_per_call(each, || {
                s.body_frame_gate();
            }),
        ),
        (
            "rule lookup (as Proxy::access), POST /api01rv2/patientgetv2",
            ns_per_call(each, || {
                s.rule_lookup(API_PATH);
            }),
        ),
        ("console chart count", ns_per_call(each, || s.chart_count())),
        (
            "console refusal ring push (refused requests only)",
            ns_per_call(each, || s.refusal_push()),
        ),
    ];
    println!(
        "\nchecks/share: one request through Proxy::handle (ACCESS_LOG=off) {:.2} µs, straight to the backend {:.2} µs, the proxy's own part {:.2} µs (medians of {ROUNDS} rounds)",
        through / 1e3,
        straight / 1e3,
        own / 1e3
    );
    println!(
        "| check | ns per request | share of the request | share of the proxy's own part | ≤ {TARGET_PCT} % |"
    );
    println!("|---|---:|---:|---:|---|");
    for (what, ns) in checks {
        let (of_request, of_own) = (100.0 * ns / through, 100.0 * ns / own);
        println!(
            "| {what} | {ns:.1} | {of_request:.2} % | {of_own:.2} % | {} |",
            if of_request <= TARGET_PCT {
                "yes"
            } else {
                "**no**"
            }
        );
    }
}
