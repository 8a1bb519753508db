//! The verdict on an open connection, kept current while the connection lives.
//!
//! A connection is judged once after its handshake, but a certificate can stop
//! being acceptable while its connection stays open: it expires, its
//! intermediate expires, a new CRL revokes it, a new CA_CRT or ALLOW_CN no
//! longer admits it. So every request asks [`Judgement::now`] rather than
//! reading a verdict fixed at the handshake.
//!
//! Asking must cost next to nothing for the connections that still pass, so
//! the verdict is stored with two things to compare against:
//!
//! - the *judgement generation* of the TLS state it was taken under. A reload
//!   whose CA_CRT, CA_CRL, ALLOW_CN or CRL_STALE differ from the serving
//!   state's gets the next generation ([`Generations::next_for`]); a reload that
//!   only renews the server certificate keeps it. A stored verdict of an older
//!   generation is taken again, once, by the new verifier.
//! - the window in which it holds: from the latest notBefore to the earliest
//!   notAfter of every certificate the client presented (and, with
//!   `CRL_STALE=refuse`, the CRL's nextUpdate). Outside it the chain is
//!   judged again, which yields the `expired` (or `crl-stale`) answer.
//!
//! ACCESS_POLICY is among the inputs: a verdict carries the policy its
//! requests are decided by, so a reload that changes the rules is seen by the
//! next request of every open connection, and wakes the open tunnels.
//!
//! WebSocket tunnels cannot be asked per request, so they wait on
//! [`Judgement::changes`] and on the window's end instead (see `proxy`).

use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::pki_types::{CertificateDer, UnixTime};
use tokio::sync::watch;

use super::TlsState;
use super::verify::{Identity, Refusal};
use crate::policy::Policy;

/// The verdict on a client certificate chain.
pub type Verdict = Result<Identity, Box<Refusal>>;

/// Seconds since 1970, the unit certificate dates are compared in.
pub fn unix_now() -> i64 {
    i64::try_from(UnixTime::now().as_secs()).unwrap_or(i64::MAX)
}

/// When every certificate of `chain` is inside its validity period: the
/// latest notBefore and the earliest notAfter, in Unix seconds. A certificate
/// that cannot be read gives an empty window (it is judged again each time,
/// and the verifier refuses it).
pub fn chain_window(chain: &[CertificateDer<'_>]) -> (i64, i64) {
    use x509_parser::prelude::FromDer as _;
    let mut window = (i64::MIN, i64::MAX);
    for der in chain {
        match x509_parser::certificate::X509Certificate::from_der(der.as_ref()) {
            Ok((_, cert)) => {
                let v = cert.validity();
                window.0 = window.0.max(v.not_before.timestamp());
                window.1 = window.1.min(v.not_after.timestamp());
            }
            Err(_) => return (i64::MAX, i64::MIN),
        }
    }
    window
}

/// One verdict and what it holds for.
#[derive(Debug)]
pub struct Judged {
    /// the judgement generation of the TLS state it was taken under
    pub generation: u64,
    /// the verdict
    pub verdict: Verdict,
    /// Unix seconds from which and until which an accepting verdict holds
    pub window: (i64, i64),
    /// ACCESS_POLICY of that TLS state: its requests are decided by it (a
    /// changed policy is a new generation, so this is always the serving one)
    pub policy: Option<Arc<Policy>>,
}

impl Judged {
    /// Whether the verdict still holds at `now` under generation `generation`.
    fn holds(&self, generation: u64, now: i64) -> bool {
        self.generation == generation && self.window.0 <= now && now <= self.window.1
    }
}

/// The judgement generations handed out by the server, and the channel open
/// tunnels learn of a new one through.
#[derive(Debug)]
pub struct Generations {
    sender: watch::Sender<u64>,
}

impl Generations {
    /// Starts at generation 0 (the TLS state the server was started with).
    pub fn new() -> Generations {
        Generations {
            sender: watch::Sender::new(0),
        }
    }

    /// The generation a new TLS state gets: the serving state's own when the
    /// inputs of the verdict are the same, else the next one.
    pub fn next_for(&self, serving: &TlsState, new: &TlsState) -> u64 {
        if serving.judging_inputs == new.judging_inputs {
            serving.generation
        } else {
            serving.generation + 1
        }
    }

    /// Wakes the open tunnels when `generation` is a new one; call it once
    /// the state of that generation serves.
    pub fn announce(&self, generation: u64) {
        self.sender.send_if_modified(|g| {
            let changed = *g != generation;
            *g = generation;
            changed
        });
    }

    /// A receiver woken when the generation changes.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.sender.subscribe()
    }
}

impl Default for Generations {
    fn default() -> Self {
        Generations::new()
    }
}

/// The verdict on one connection's certificate chain, kept current.
#[derive(Debug)]
pub struct Judgement {
    /// the chain the client presented in its handshake (leaf first)
    chain: Vec<CertificateDer<'static>>,
    /// the latest verdict
    current: ArcSwap<Judged>,
    /// the TLS state now serving, whose verifier judges again; `None` for a
    /// verdict that never changes (see [`Judgement::fixed`])
    tls: Option<Arc<ArcSwap<TlsState>>>,
    /// woken by a reload that changed the verdict's inputs
    changes: watch::Receiver<u64>,
}

impl Judgement {
    /// The verdict taken after the handshake under `tls`.
    pub fn new(
        chain: Vec<CertificateDer<'static>>,
        verdict: Verdict,
        tls: &TlsState,
        serving: Arc<ArcSwap<TlsState>>,
        changes: watch::Receiver<u64>,
    ) -> Judgement {
        let window = window_of(&chain, &verdict, tls);
        let judged = Judged {
            generation: tls.generation,
            verdict,
            window,
            policy: tls.policy.clone(),
        };
        Judgement {
            chain,
            current: ArcSwap::from_pointee(judged),
            tls: Some(serving),
            changes,
        }
    }

    /// A verdict that is never taken again: for driving the proxy without a
    /// listener (benchmarks).
    pub fn fixed(verdict: Verdict) -> Judgement {
        Judgement::fixed_with_policy(verdict, None)
    }

    /// [`Judgement::fixed`], its requests decided by `policy`.
    pub fn fixed_with_policy(verdict: Verdict, policy: Option<Arc<Policy>>) -> Judgement {
        let judged = Judged {
            generation: 0,
            verdict,
            window: (i64::MIN, i64::MAX),
            policy,
        };
        Judgement {
            chain: Vec::new(),
            current: ArcSwap::from_pointee(judged),
            tls: None,
            changes: watch::channel(0).1,
        }
    }

    /// The verdict that holds now: the stored one while its generation is the
    /// serving one and the dates allow, else the chain judged again.
    pub fn now(&self) -> Arc<Judged> {
        self.now_and_news().0
    }

    /// Whether the stored verdict is an acceptance that still holds: the
    /// check of a body's every frame, without taking a reference to the
    /// verdict. `false` means "judge again" ([`Judgement::now_and_news`]).
    pub fn holds_accepted(&self) -> bool {
        let current = self.current.load();
        if current.verdict.is_err() {
            return false;
        }
        match &self.tls {
            None => true,
            Some(serving) => current.holds(serving.load().generation, unix_now()),
        }
    }

    /// [`Judgement::now`], and whether this very call turned an accepting
    /// verdict into a refusal (for the one log line that says so).
    pub fn now_and_news(&self) -> (Arc<Judged>, bool) {
        let old = self.current.load_full();
        let Some(serving) = &self.tls else {
            return (old, false);
        };
        let tls = serving.load();
        if old.holds(tls.generation, unix_now()) {
            return (old, false);
        }
        let was_accepted = old.verdict.is_ok();
        let verdict = tls.verifier.check(&self.chain, UnixTime::now());
        let window = window_of(&self.chain, &verdict, &tls);
        let judged = Arc::new(Judged {
            generation: tls.generation,
            verdict,
            window,
            policy: tls.policy.clone(),
        });
        // Several streams may judge at once; one of them tells the news.
        let previous = self.current.compare_and_swap(&old, judged.clone());
        let swapped = Arc::ptr_eq(&previous, &old);
        let news = swapped && was_accepted && judged.verdict.is_err();
        (judged, news)
    }

    /// The client certificate's CN and serial for logs (escaped), `-` when unknown.
    pub fn who(judged: &Judged) -> (String, String) {
        let info = match &judged.verdict {
            Ok(id) => Some(&id.info),
            Err(r) => r.info.as_ref(),
        };
        let cn = info.and_then(|i| i.common_name.as_deref()).unwrap_or("-");
        let serial = info.map_or("-", |i| i.serial_hex.as_str());
        (crate::text::log_safe(cn), crate::text::log_safe(serial))
    }

    /// The TLS state now serving (`None` for a fixed verdict): what the
    /// operator console on the main port shows.
    pub fn serving(&self) -> Option<Arc<TlsState>> {
        self.tls.as_ref().map(|t| t.load_full())
    }

    /// A receiver woken when a reload changes the verdict's inputs.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.clone()
    }
}

/// How long a verdict holds: an acceptance for as long as the whole chain
/// (and a CRL that must be current) is; a refusal until the next generation.
fn window_of(chain: &[CertificateDer<'_>], verdict: &Verdict, tls: &TlsState) -> (i64, i64) {
    if verdict.is_err() {
        return (i64::MIN, i64::MAX);
    }
    let (from, until) = tls.verifier.window(chain);
    let until = match tls.verifier.crl_deadline() {
        Some(deadline) => until.min(deadline),
        None => until,
    };
    (from, until)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(from: i64, to: i64) -> CertificateDer<'static> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["user1".to_string()]).unwrap();
        params.not_before = time::OffsetDateTime::from_unix_timestamp(from).unwrap();
        params.not_after = time::OffsetDateTime::from_unix_timestamp(to).unwrap();
        params.self_signed(&key).unwrap().der().clone()
    }

    #[test]
    fn the_window_is_where_every_certificate_of_the_chain_is_valid() {
        let base = 1_800_000_000;
        let leaf = cert(base, base + 1000);
        let intermediate = cert(base - 500, base + 100);
        assert_eq!(
            chain_window(std::slice::from_ref(&leaf)),
            (base, base + 1000)
        );
        assert_eq!(chain_window(&[leaf, intermediate]), (base, base + 100));
        let broken = CertificateDer::from(vec![0x30, 0x03, 0x01, 0x01, 0xff]);
        let (from, until) = chain_window(&[broken]);
        assert!(from > until, "an unreadable certificate never holds");
    }

    #[test]
    fn a_verdict_holds_only_in_its_generation_and_window() {
        let j = Judged {
            generation: 3,
            verdict: Err(Box::new(Refusal::missing())),
            window: (10, 20),
            policy: None,
        };
        assert!(j.holds(3, 10) && j.holds(3, 20));
        assert!(!j.holds(4, 15), "a reload changed the inputs");
        assert!(!j.holds(3, 21), "past notAfter");
        assert!(!j.holds(3, 9), "before notBefore");
    }
}
