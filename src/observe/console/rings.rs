//! The console's memory: fixed-size rings, so a flood of refusals or a year
//! of uptime costs no more than the first day. The last
//! [`REFUSALS_KEPT`] refusals, and requests and refusals per ten minutes over
//! 24 hours ([`BUCKETS`] buckets).
//!
//! Each ring is one small `Mutex` held only to copy a few words in or out,
//! never across an await, so the request path pays an uncontended lock.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Mutex, PoisonError};

use chrono::{DateTime, Utc};

use crate::tls::judgement::unix_now;

/// Refusals the console lists.
pub const REFUSALS_KEPT: usize = 100;
/// Seconds per chart bucket.
pub const BUCKET_SECS: i64 = 600;
/// Buckets in 24 hours.
pub const BUCKETS: usize = 144;
/// Longest subject kept per refusal: a certificate with absurd field sizes
/// must not turn the ring into megabytes.
const SUBJECT_CHARS: usize = 300;

/// One refused client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// when
    pub at: DateTime<Utc>,
    /// the client's address
    pub peer: SocketAddr,
    /// the `X-Client-Cert-Error` reason
    pub reason: String,
    /// the certificate's subject (one-line form), `-` without one
    pub subject: String,
}

/// The last [`REFUSALS_KEPT`] refusals, oldest first.
#[derive(Debug, Default)]
pub struct RefusalRing {
    ring: Mutex<VecDeque<Refusal>>,
}

impl RefusalRing {
    /// Remembers a refusal, forgetting the oldest beyond [`REFUSALS_KEPT`].
    pub fn push(&self, peer: SocketAddr, reason: &str, subject: &str) {
        let subject: String = subject.chars().take(SUBJECT_CHARS).collect();
        let refusal = Refusal {
            at: Utc::now(),
            peer,
            reason: reason.to_string(),
            subject,
        };
        let mut ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
        if ring.len() >= REFUSALS_KEPT {
            ring.pop_front();
        }
        ring.push_back(refusal);
    }

    /// The refusals kept, newest first.
    pub fn newest_first(&self) -> Vec<Refusal> {
        let ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
        ring.iter().rev().cloned().collect()
    }
}

/// Requests and refusals of one ten-minute slot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bucket {
    /// the slot: Unix seconds / [`BUCKET_SECS`]
    pub slot: i64,
    /// requests answered
    pub requests: u64,
    /// clients refused
    pub refusals: u64,
}

/// Requests and refusals per ten minutes, the last 24 hours. A bucket is
/// reused when its slot comes round again, so memory never grows.
#[derive(Debug)]
pub struct Chart {
    buckets: Mutex<[Bucket; BUCKETS]>,
}

impl Default for Chart {
    fn default() -> Self {
        Chart {
            buckets: Mutex::new([Bucket::default(); BUCKETS]),
        }
    }
}

impl Chart {
    fn add(&self, now: i64, requests: u64, refusals: u64) {
        let slot = now.div_euclid(BUCKET_SECS);
        let index = slot.rem_euclid(BUCKETS as i64) as usize;
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        let b = &mut buckets[index];
        if b.slot != slot {
            *b = Bucket {
                slot,
                requests: 0,
                refusals: 0,
            };
        }
        b.requests += requests;
        b.refusals += refusals;
    }

    /// Counts one request answered now.
    pub fn request(&self) {
        self.add(unix_now(), 1, 0);
    }

    /// Counts one refusal now.
    pub fn refusal(&self) {
        self.add(unix_now(), 0, 1);
    }

    /// The [`BUCKETS`] slots ending with the one holding `now`, oldest first;
    /// slots nothing happened in are zero.
    pub fn last_day(&self, now: i64) -> Vec<Bucket> {
        let newest = now.div_euclid(BUCKET_SECS);
        let buckets = *self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        (0..BUCKETS as i64)
            .map(|back| newest - (BUCKETS as i64 - 1) + back)
            .map(|slot| {
                let b = buckets[slot.rem_euclid(BUCKETS as i64) as usize];
                if b.slot == slot {
                    b
                } else {
                    Bucket {
                        slot,
                        ..Bucket::default()
                    }
                }
            })
            .collect()
    }

    #[cfg(test)]
    fn add_at(&self, now: i64, requests: u64, refusals: u64) {
        self.add(now, requests, refusals);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_ring_keeps_the_last_hundred() {
        let ring = RefusalRing::default();
        let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
        for n in 0..250 {
            ring.push(peer, "missing", &format!("/CN=u{n}"));
        }
        let kept = ring.newest_first();
        assert_eq!(kept.len(), REFUSALS_KEPT);
        assert_eq!(kept[0].subject, "/CN=u249");
        assert_eq!(kept[REFUSALS_KEPT - 1].subject, "/CN=u150");
        ring.push(peer, "revoked", &"x".repeat(10_000));
        assert_eq!(ring.newest_first()[0].subject.len(), SUBJECT_CHARS);
    }

    #[test]
    fn the_chart_reuses_buckets_a_day_later() {
        let chart = Chart::default();
        let t0 = 1_700_000_000 / BUCKET_SECS * BUCKET_SECS;
        chart.add_at(t0, 3, 1);
        chart.add_at(t0 + BUCKET_SECS, 2, 0);
        let day = chart.last_day(t0 + BUCKET_SECS);
        assert_eq!(day.len(), BUCKETS);
        assert_eq!(
            (day[BUCKETS - 2].requests, day[BUCKETS - 2].refusals),
            (3, 1)
        );
        assert_eq!(day[BUCKETS - 1].requests, 2);
        assert_eq!(day.iter().map(|b| b.requests).sum::<u64>(), 5);
        // 24 h later the first slot's bucket is reused, its old counts gone
        let later = t0 + BUCKET_SECS * BUCKETS as i64;
        chart.add_at(later, 7, 0);
        let day = chart.last_day(later);
        assert_eq!(day[BUCKETS - 1].requests, 7);
        assert_eq!(day.iter().map(|b| b.requests).sum::<u64>(), 9);
    }
}
