//! The chains a verifier has already accepted, so a returning client (a
//! resumed session, a keep-alive reconnect) costs a hash lookup instead of
//! the chain and CRL signature checks.

use rustls::pki_types::{CertificateDer, UnixTime};

use super::Identity;

/// How many verified chains a verifier remembers.
const VERDICT_CACHE_SIZE: usize = 4096;
/// Longest time a cached verdict is used before the chain is verified again,
/// so that nothing accepted once is remembered without bound.
const VERDICT_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// Chains this verifier has already accepted, by SHA-256 of the whole chain.
///
/// A verifier is built with one CA_CRT and one CA_CRL and is replaced whole on
/// reload, so a chain it accepted stays acceptable for its lifetime except by
/// the clock: an entry is used only while *every* certificate of the chain is
/// inside its validity period (an expired intermediate is refused like an
/// expired leaf), and for at most VERDICT_MAX_AGE. This turns the
/// per-connection chain and CRL signature checks of returning clients
/// (resumed sessions, keep-alive reconnects) into a hash lookup. Refusals are
/// not remembered.
#[derive(Debug, Default)]
pub(super) struct VerdictCache {
    map: std::sync::Mutex<std::collections::HashMap<[u8; 32], CachedVerdict>>,
}

/// One accepted chain.
#[derive(Debug)]
struct CachedVerdict {
    identity: Identity,
    /// where every certificate of the chain is valid (Unix seconds)
    window: (i64, i64),
    /// when the chain was verified
    at: std::time::Instant,
}

impl VerdictCache {
    pub(super) fn key(chain: &[CertificateDer<'_>]) -> [u8; 32] {
        use sha2::Digest as _;
        let mut h = sha2::Sha256::new();
        for c in chain {
            h.update((c.len() as u64).to_be_bytes());
            h.update(c.as_ref());
        }
        h.finalize().into()
    }

    pub(super) fn get(&self, key: &[u8; 32], now: UnixTime) -> Option<Identity> {
        let map = self
            .map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = map.get(key)?;
        let now = i64::try_from(now.as_secs()).ok()?;
        let valid = entry.window.0 <= now && now <= entry.window.1;
        let fresh = entry.at.elapsed() < VERDICT_MAX_AGE;
        (valid && fresh).then(|| entry.identity.clone())
    }

    pub(super) fn put(&self, key: [u8; 32], id: &Identity, window: (i64, i64)) {
        let mut map = self
            .map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= VERDICT_CACHE_SIZE {
            map.retain(|_, e| e.at.elapsed() < VERDICT_MAX_AGE);
            if map.len() >= VERDICT_CACHE_SIZE {
                map.clear(); // rare; a full re-verification is only a few signature checks
            }
        }
        let entry = CachedVerdict {
            identity: id.clone(),
            window,
            at: std::time::Instant::now(),
        };
        map.insert(key, entry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::x509::CertInfo;

    fn cert(days: (i64, i64)) -> CertificateDer<'static> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["user1".to_string()]).unwrap();
        let now = rcgen::date_time_ymd(2026, 1, 1);
        params.not_before = now + std::time::Duration::from_secs((days.0 * 86_400) as u64);
        params.not_after = now + std::time::Duration::from_secs((days.1 * 86_400) as u64);
        params.self_signed(&key).unwrap().der().clone()
    }

    #[test]
    fn cached_verdict_is_used_only_inside_the_validity_period() {
        let der = cert((0, 10));
        let info = CertInfo::from_der(der.as_ref()).unwrap();
        let cache = VerdictCache::default();
        let key = VerdictCache::key(std::slice::from_ref(&der));
        let window = crate::tls::judgement::chain_window(std::slice::from_ref(&der));
        cache.put(
            key,
            &Identity::new(info.clone(), der.as_ref(), None),
            window,
        );
        let at = |t: chrono::DateTime<chrono::Utc>| {
            UnixTime::since_unix_epoch(std::time::Duration::from_secs(t.timestamp() as u64))
        };
        assert!(
            cache
                .get(&key, at(info.not_before + chrono::Duration::days(1)))
                .is_some()
        );
        assert!(
            cache
                .get(&key, at(info.not_after + chrono::Duration::seconds(1)))
                .is_none(),
            "expired since"
        );
        assert!(
            cache
                .get(&key, at(info.not_before - chrono::Duration::seconds(1)))
                .is_none()
        );
        let other = VerdictCache::key(&[der.clone(), der.clone()]);
        assert!(
            cache.get(&other, at(info.not_before)).is_none(),
            "another chain is another key"
        );
    }
}
