//! `cargo bench --bench micro`: criterion micro-benchmarks of the work the
//! proxy adds per request and per connection, through its public API.
//!
//! - `config/*`: parsing a config file (start-up and every reload).
//! - `x509/*`, `identity/*`: reading the client certificate's fields and
//!   formatting the identity headers (once per connection).
//! - `verify/*`: the verdict on a client chain. `cached` is what a returning
//!   client costs (the verifier's verdict cache); `uncached/crl=N` is a first
//!   visit — chain signature, dates and the CRL of N revoked serials — which
//!   must not grow with N like a scan of the list would; `crl-sha256/N`
//!   isolates the part that does grow (webpki re-verifies the CRL's signature,
//!   hashing the whole CRL, on every chain it checks).
//! - `request/*`: `check_request`, and one request through `Proxy::handle`
//!   (header rewriting, identity headers, access-log record, backend pool)
//!   over an in-memory HTTP/1.1 connection to a loopback backend, next to the
//!   same request sent straight to that backend: the difference is the
//!   proxy's own per-request work, without TLS.
//! - `policy/*`: ACCESS_POLICY: the path's normal form, and the decision with
//!   10 and 1,000 rules, which must cost the same (a lookup per path segment,
//!   not a scan of the rules).
//! - `checks/*`: the per-request checks of the revocation, policy and console
//!   work, each of which must cost at most 2 % of a request: the generation
//!   compare (an open connection asking whether its judgement is still
//!   current), the rule lookup (conf/access-policy.example on an API path, as
//!   `Proxy::access` does it) and the console's ring pushes. After them a
//!   table of each one's share of one request through `Proxy::handle` is
//!   printed, the request and the checks timed side by side in this process.
//!
//! Timings are printed, never asserted.

// Shared with the nginx comparison; some of its fields only that one reads.
#[path = "proxy/pki.rs"]
#[allow(dead_code)]
mod pki;

#[path = "micro/checks.rs"]
mod checks;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::{Request, Response, header};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{HandshakeKind, RootCertStore};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use weborca_mtls_proxy::config::{self, ClientCertErrors};
use weborca_mtls_proxy::conn::Activity;
use weborca_mtls_proxy::policy::{self, Policy};
use weborca_mtls_proxy::proxy::{self, ConnInfo, Proxy};
use weborca_mtls_proxy::status::Stats;
use weborca_mtls_proxy::tls::judgement::Judgement;
use weborca_mtls_proxy::tls::{ClientVerifier, Sessions, TlsState};
use weborca_mtls_proxy::x509::CertInfo;

/// CRL sizes the uncached verification is measured at.
const CRL_SIZES: [usize; 3] = [10, 1_000, 10_000];

fn quick() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50)
}

// ---------------------------------------------------------------------------
// config

/// A jma-receipt.conf-like file: WebORCA's own keys, comments, the proxy's keys.
fn big_conf() -> String {
    let mut s = String::from("# jma-receipt.conf\n");
    for i in 0..60 {
        s.push_str(&format!(
            "# comment line {i} about the database and the batch jobs\n"
        ));
        s.push_str(&format!("ORCA_SETTING_{i}=\"value {i}\"\n"));
    }
    s.push_str("DBHOST=localhost\nDBPORT=5432\nexport DBNAME=orca\n");
    s.push_str("CONFDIR=/opt/jma/weborca/conf\n");
    s.push_str("SERVER_CRT=${CONFDIR}/000002__JP_orca_192.168.1.100.crt\n");
    s.push_str("SERVER_PEM=${CONFDIR}/000002__JP_orca_192.168.1.100.pem\n");
    s.push_str("CA_CRT=$CONFDIR/ca.crt\nCA_CRL=$CONFDIR/ca.crl\n");
    s.push_str("ALLOW_CN=\"user1, user2, push-exchanger\"\nIDLE_TIMEOUT=2m\n");
    s
}

fn bench_config(c: &mut Criterion) {
    let example = include_str!("../conf/proxy.conf");
    let path = Path::new("/etc/weborca-mtls-proxy/proxy.conf");
    c.bench_function("config/parse conf/proxy.conf", |b| {
        b.iter(|| config::parse(std::hint::black_box(example), path).expect("example parses"))
    });
    let big = big_conf();
    c.bench_function("config/parse jma-receipt.conf-sized (130 lines)", |b| {
        b.iter(|| config::parse(std::hint::black_box(&big), path).expect("big conf parses"))
    });
}

// ---------------------------------------------------------------------------
// certificates and verification

struct Fixture {
    _dir: tempfile::TempDir,
    pki: pki::Pki,
}

fn fixture(alg: pki::Alg, revoked: usize) -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let pki = pki::make(dir.path(), alg, revoked);
    Fixture { _dir: dir, pki }
}

/// rustls' WebPKI verifier built as `TlsState::build` builds it.
fn webpki_verifier(p: &pki::Pki) -> Arc<dyn rustls::server::danger::ClientCertVerifier> {
    let mut roots = RootCertStore::empty();
    roots.add(p.ca_der.clone()).expect("root");
    let crl_pem = std::fs::read(&p.crl).expect("crl");
    let crl = CertificateRevocationListDer::from_pem_slice(&crl_pem).expect("crl pem");
    WebPkiClientVerifier::builder(Arc::new(roots))
        .with_crls([crl])
        .allow_unknown_revocation_status()
        .build()
        .expect("verifier")
}

/// The production TLS state, loaded from the PKI's files by a parsed config.
fn tls_state(p: &pki::Pki) -> TlsState {
    let text = format!(
        "SERVER_CRT={}\nSERVER_PEM={}\nCA_CRT={}\nCA_CRL={}\n",
        p.server_crt.display(),
        p.server_key.display(),
        p.ca_crt.display(),
        p.crl.display()
    );
    let loaded = config::parse(&text, &p.ca_crt.with_file_name("proxy.conf")).expect("config");
    TlsState::load(&loaded.config, &Sessions::new().expect("sessions")).expect("tls state")
}

fn bench_certs(c: &mut Criterion) {
    for alg in [pki::Alg::Rsa2048, pki::Alg::EcdsaP256] {
        let f = fixture(alg, 10);
        let leaf = f.pki.client_chain[0].clone();
        c.bench_function(&format!("x509/CertInfo::from_der {}", alg.label()), |b| {
            b.iter(|| CertInfo::from_der(std::hint::black_box(leaf.as_ref())).expect("parses"))
        });
        // In `handshake` mode a full handshake was judged by rustls already:
        // judge() only reads the fields and formats the identity headers.
        let formatter =
            ClientVerifier::new(webpki_verifier(&f.pki), ClientCertErrors::Handshake, None);
        let chain = f.pki.client_chain.clone();
        c.bench_function(&format!("identity/fields + headers {}", alg.label()), |b| {
            b.iter(|| {
                formatter
                    .judge(
                        Some(std::hint::black_box(&chain)),
                        Some(HandshakeKind::Full),
                    )
                    .expect("identity")
            })
        });
    }
}

fn bench_verify(c: &mut Criterion) {
    let now = UnixTime::now();
    for &n in &CRL_SIZES {
        let f = fixture(pki::Alg::Rsa2048, n);
        let chain: Vec<CertificateDer<'static>> = f.pki.client_chain.clone();
        let inner = webpki_verifier(&f.pki);
        if n == CRL_SIZES[CRL_SIZES.len() - 1] {
            let state = tls_state(&f.pki);
            state.verifier.check(&chain, now).expect("user verifies");
            c.bench_function(
                &format!("verify/check cached (returning client), crl={n}"),
                |b| {
                    b.iter(|| {
                        state
                            .verifier
                            .check(std::hint::black_box(&chain), now)
                            .expect("ok")
                    })
                },
            );
            let revoked = f.pki.revoked_chain.clone();
            c.bench_function(
                &format!("verify/check revoked client (never cached), crl={n}"),
                |b| {
                    b.iter(|| {
                        state
                            .verifier
                            .check(std::hint::black_box(&revoked), now)
                            .expect_err("revoked")
                    })
                },
            );
        }
        c.bench_function(
            &format!("verify/check uncached (first visit), RSA-2048, crl={n}"),
            |b| {
                b.iter_batched(
                    || ClientVerifier::new(inner.clone(), ClientCertErrors::Page, None),
                    |v| v.check(&chain, now).expect("user verifies"),
                    BatchSize::SmallInput,
                )
            },
        );
        let crl_pem = std::fs::read(&f.pki.crl).expect("crl");
        let crl = CertificateRevocationListDer::from_pem_slice(&crl_pem).expect("crl pem");
        c.bench_function(
            &format!("verify/crl-sha256 ({} bytes), crl={n}", crl.len()),
            |b| {
                use sha2::Digest as _;
                b.iter(|| sha2::Sha256::digest(std::hint::black_box(crl.as_ref())))
            },
        );
    }
}

// ---------------------------------------------------------------------------
// one request through the proxy

/// A browser-like request head.
fn browser_get() -> Request<Empty<Bytes>> {
    Request::get("/api01rv2/patientgetv2?id=1&format=json")
        .header(header::HOST, "192.168.1.100:8000")
        .header(
            header::USER_AGENT,
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36",
        )
        .header(
            header::ACCEPT,
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        )
        .header(header::ACCEPT_LANGUAGE, "ja,en-US;q=0.9,en;q=0.8")
        .header(header::ACCEPT_ENCODING, "gzip, deflate, br")
        .header(
            header::COOKIE,
            "session=0123456789abcdef0123456789abcdef; theme=light",
        )
        .header(header::AUTHORIZATION, "Basic b3JtYXN0ZXI6b3JtYXN0ZXI=")
        .header(header::CONNECTION, "keep-alive")
        .header("x-forwarded-for", "10.0.0.1")
        .header("x-ssl-client-verify", "SUCCESS")
        .body(Empty::new())
        .expect("request")
}

async fn backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let _ = tcp.set_nodelay(true);
            tokio::spawn(async move {
                let svc = service_fn(|_req: Request<Incoming>| async {
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(
                        b"{\"Api_Result\":\"00\"}",
                    ))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    addr
}

type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

async fn client_over<IO>(io: IO) -> Sender
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .expect("client handshake");
    tokio::spawn(conn);
    send
}

/// A client connected to `Proxy::handle` through an in-memory pipe.
async fn through_proxy(backend: SocketAddr, p: &pki::Pki, access_log: bool) -> Sender {
    let text = format!(
        "SERVER_CRT=/x.crt\nSERVER_PEM=/x.pem\nCA_CRT=/ca.crt\nBACKEND_URL=http://{backend}\nACCESS_LOG={}\n",
        if access_log { "on" } else { "off" }
    );
    let config = config::parse(&text, Path::new("/bench/proxy.conf"))
        .expect("config")
        .config;
    let proxy = Arc::new(
        Proxy::new(
            &config.backend_part(),
            config.limits(),
            &config.logging(),
            TaskTracker::new(),
            CancellationToken::new(),
            Arc::new(Stats::new(30)),
        )
        .expect("proxy"),
    );
    let verifier = ClientVerifier::new(webpki_verifier(p), ClientCertErrors::Page, None);
    let identity = verifier
        .check(&p.client_chain, UnixTime::now())
        .expect("identity");
    let peer = "192.168.1.20:50312".parse().expect("peer");
    let conn = Arc::new(ConnInfo {
        peer,
        judgement: Judgement::fixed(Ok(identity)),
        ca_subjects: Arc::from(vec!["/C=JP/O=orca/CN=bench CA".to_string()]),
        activity: Activity::new(),
        client: None,
        close: CancellationToken::new(),
        default_host: None,
        forwarded_for: ConnInfo::forwarded_for(peer),
        browser: std::sync::OnceLock::new(),
        host_seen: Default::default(),
    });
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    tokio::spawn(async move {
        let svc = service_fn(move |req| proxy.clone().handle(conn.clone(), req));
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(server_io), svc)
            .await;
    });
    client_over(client_io).await
}

async fn one(send: &mut Sender) {
    send.ready().await.expect("ready");
    let resp = send.send_request(browser_get()).await.expect("response");
    assert_eq!(resp.status(), 200);
    resp.into_body().collect().await.expect("body");
}

fn bench_request(c: &mut Criterion) {
    let req = browser_get();
    c.bench_function("request/check_request (browser GET, 10 headers)", |b| {
        b.iter(|| proxy::check_request(std::hint::black_box(&req)).expect("fine"))
    });
    // The access log writes through tracing; a subscriber formatting into a
    // sink stands in for the proxy's log writer.
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::sink)
        .try_init();
    let f = fixture(pki::Alg::Rsa2048, 10);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let backend_addr = rt.block_on(backend());
    let mut direct = rt.block_on(async {
        client_over(
            tokio::net::TcpStream::connect(backend_addr)
                .await
                .expect("connect"),
        )
        .await
    });
    let mut proxied = rt.block_on(through_proxy(backend_addr, &f.pki, false));
    let mut proxied_log = rt.block_on(through_proxy(backend_addr, &f.pki, true));
    let mut run = |name: &str, send: &mut Sender| {
        c.bench_function(name, |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let t = Instant::now();
                    for _ in 0..iters {
                        one(send).await;
                    }
                    t.elapsed()
                })
            })
        });
    };
    run("request/straight to the backend (baseline)", &mut direct);
    run(
        "request/through Proxy::handle, ACCESS_LOG=off",
        &mut proxied,
    );
    run(
        "request/through Proxy::handle, ACCESS_LOG=on",
        &mut proxied_log,
    );
}

/// A policy of `n` rules: `/api{i}/v2` for `cn:client{i}`, then `/ any`.
fn policy_of(n: usize) -> Policy {
    let mut text = String::new();
    for i in 0..n {
        text.push_str(&format!("/api{i}/v2 cn:client{i},ou:api GET,POST\n"));
    }
    text.push_str("/ any\n");
    Policy::from_bytes(Path::new("bench.rules"), text.into_bytes()).expect("valid policy")
}

fn bench_policy(c: &mut Criterion) {
    let f = fixture(pki::Alg::EcdsaP256, 10);
    let leaf = CertInfo::from_der(f.pki.client_chain[0].as_ref()).expect("parses");
    let raw = "/api7/./v2//patientgetv2/%6Cist";
    c.bench_function("policy/normalize", |b| {
        b.iter(|| policy::normalize(std::hint::black_box(raw)).expect("normal"))
    });
    let path = policy::normalize(raw).expect("normal");
    for n in [10, 1_000] {
        let p = policy_of(n);
        c.bench_function(&format!("policy/decide rules={n}"), |b| {
            b.iter(|| {
                p.decide(&leaf, "POST", std::hint::black_box(&path))
                    .rule_name()
                    .len()
            })
        });
    }
}

criterion_group! {
    name = micro;
    config = quick();
    targets = bench_config, bench_certs, bench_verify, bench_request, bench_policy, checks::bench_checks
}
criterion_main!(micro);
