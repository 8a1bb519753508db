//! The streaming count behind the report: lines go in one at a time and only
//! the figures stay, so memory grows with users × days (and the few distinct
//! reasons, addresses and API names), never with the size of the logs.
//!
//! Each table has a cap on its distinct keys; past it, new keys are counted
//! under [`OTHER`], so a scan from thousands of addresses cannot make the
//! report itself run out of memory.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};

use super::line::{Access, Entry, Expiring, Line, Refused, UNKNOWN_CA};

/// The key under which figures past a table's cap are counted.
pub const OTHER: &str = "(other)";
/// Client addresses kept per user and day.
const ADDRS_PER_DAY: usize = 16;
/// Distinct (reason, address) pairs kept in the refusals table.
const MAX_REFUSAL_KEYS: usize = 10_000;
/// Distinct API names kept.
const MAX_API_NAMES: usize = 2_000;
/// Distinct user-days kept: ten years of 50 users.
const MAX_USER_DAYS: usize = 200_000;
/// Refused connections remembered, to tell a refused request from WebORCA's own 403.
const MAX_RECENT_REFUSALS: usize = 4_096;
/// How long after a refusal a 403 (or 400) from the same address and port is
/// taken for its page: a refused connection gets its page at once and is
/// closed after it, but a slow client may take a while to be sent it. Longer
/// than that, the port has likely been used again by a new connection, whose
/// 403 is WebORCA's own (or a refusal of its own, logged again).
const REFUSAL_PAGE_WINDOW: chrono::TimeDelta = chrono::TimeDelta::minutes(2);
/// Unreadable lines named in the report (file and line number).
pub const UNREADABLE_SHOWN: usize = 20;

/// Which lines the report covers.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// `--since`: from this day on
    pub since: Option<NaiveDate>,
    /// `--until`: up to this day, inclusive
    pub until: Option<NaiveDate>,
    /// `--user`: only this CN
    pub user: Option<String>,
}

impl Filter {
    fn day_in(&self, day: NaiveDate) -> bool {
        self.since.is_none_or(|s| day >= s) && self.until.is_none_or(|u| day <= u)
    }

    fn user_in(&self, cn: Option<&str>) -> bool {
        self.user.as_deref().is_none_or(|u| cn == Some(u))
    }
}

/// Who made a request: the certificate's CN and serial, and whether the
/// certificate came from another CA than CA_CRT's. Any CA can issue a
/// certificate with a clinic user's CN and serial (orca-catool CAs all
/// number theirs from 01), so one refused as `unknown-ca` is counted apart,
/// never in the row of the user whose name it carries.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct User {
    /// the certificate's CN, `-` without one
    pub cn: String,
    /// the certificate's serial, `-` without one
    pub serial: String,
    /// refused as issued by a CA other than CA_CRT's (`unknown-ca`)
    pub foreign: bool,
}

impl User {
    /// The issuer column: `unknown-ca` for a certificate of another CA,
    /// `CA_CRT` for one of the clinic's CA, `-` without a certificate.
    pub fn ca(&self) -> &'static str {
        match (self.foreign, self.cn.as_str(), self.serial.as_str()) {
            (true, _, _) => UNKNOWN_CA,
            (false, "-", "-") => "-",
            (false, _, _) => "CA_CRT",
        }
    }
}

/// A certificate the proxy warned about: its CN and serial.
pub type Cert = (String, String);

/// One user's day.
#[derive(Debug, Clone)]
pub struct UserDay {
    /// requests
    pub requests: u64,
    /// of those, answered with a refusal page (certificate refused)
    pub refused: u64,
    /// the first request's time
    pub first: NaiveTime,
    /// the last request's time
    pub last: NaiveTime,
    /// the client addresses (IP), at most ADDRS_PER_DAY
    pub addrs: BTreeSet<String>,
    /// addresses past ADDRS_PER_DAY
    pub more_addrs: u64,
}

/// Refused attempts from one address for one reason.
#[derive(Debug, Clone)]
pub struct RefusedFrom {
    /// attempts
    pub count: u64,
    /// the first attempt
    pub first: NaiveDateTime,
    /// the last attempt
    pub last: NaiveDateTime,
}

/// Requests and refusals of one day, for the chart.
#[derive(Debug, Clone, Copy, Default)]
pub struct Day {
    /// requests
    pub requests: u64,
    /// refused attempts
    pub refused: u64,
}

/// Everything counted so far.
#[derive(Debug, Default)]
pub struct Tally {
    /// which lines count
    pub filter: Filter,
    /// per day and user
    pub users: BTreeMap<(NaiveDate, User), UserDay>,
    /// refused attempts by reason and address (IP)
    pub refused: BTreeMap<(String, String), RefusedFrom>,
    /// ORCA API calls forwarded, by name (the path without its query)
    pub api: BTreeMap<String, u64>,
    /// client certificates the proxy warned about, with their notAfter
    pub expiring: BTreeMap<Cert, NaiveDateTime>,
    /// per day, for the chart
    pub days: BTreeMap<NaiveDate, Day>,
    /// lines read
    pub lines: u64,
    /// lines that could not be read
    pub unreadable: u64,
    /// where the first unreadable lines are (`file:line`)
    pub unreadable_at: Vec<String>,
    /// the files read, in order
    pub files: Vec<String>,
    /// addresses (with port) of connections refused lately, with the reason
    /// and the time
    recent_refusals: HashMap<String, (String, NaiveDateTime)>,
}

impl Tally {
    /// An empty tally for the lines `filter` lets through.
    pub fn new(filter: Filter) -> Tally {
        Tally {
            filter,
            ..Tally::default()
        }
    }

    /// Counts one line; `None` is an unreadable line at `at` (`file:line`).
    pub fn add(&mut self, line: Option<Line>, at: impl FnOnce() -> String) {
        self.lines += 1;
        let Some(line) = line else {
            self.unreadable += 1;
            if self.unreadable_at.len() < UNREADABLE_SHOWN {
                self.unreadable_at.push(at());
            }
            return;
        };
        if !self.filter.day_in(line.at.date()) {
            return;
        }
        match line.entry {
            Entry::Access(a) => self.access(line.at, a),
            Entry::Refused(r) => self.refusal(line.at, r),
            Entry::Expiring(e) => self.expiry(e),
            Entry::Other => {}
        }
    }

    fn access(&mut self, at: NaiveDateTime, a: Access) {
        // A 403 (or a 400 for an unsafe path) on a connection just refused is
        // the proxy's answer, not WebORCA's: the request never reached it.
        let refusal = match a.status {
            400 | 403 => self
                .recent_refusals
                .get(&a.addr)
                .filter(|(_, when)| (at - *when).abs() <= REFUSAL_PAGE_WINDOW)
                .map(|(reason, _)| reason),
            _ => None,
        };
        let refused = refusal.is_some();
        let foreign = refusal.is_some_and(|reason| reason == UNKNOWN_CA);
        if !self.filter.user_in(Some(&a.cn)) {
            return;
        }
        self.days.entry(at.date()).or_default().requests += 1;
        // A refused call never reached WebORCA: not an API call.
        if !refused && let Some(name) = api_name(&a.path) {
            let name = capped(&self.api, name.to_string(), MAX_API_NAMES);
            *self.api.entry(name).or_default() += 1;
        }
        let user = User {
            cn: a.cn,
            serial: a.serial,
            foreign,
        };
        let key = (at.date(), user);
        if !self.users.contains_key(&key) && self.users.len() >= MAX_USER_DAYS {
            return;
        }
        let day = self.users.entry(key).or_insert_with(|| UserDay {
            requests: 0,
            refused: 0,
            first: at.time(),
            last: at.time(),
            addrs: BTreeSet::new(),
            more_addrs: 0,
        });
        day.requests += 1;
        day.refused += u64::from(refused);
        day.first = day.first.min(at.time());
        day.last = day.last.max(at.time());
        let ip = ip_of(&a.addr);
        if day.addrs.len() < ADDRS_PER_DAY || day.addrs.contains(&ip) {
            day.addrs.insert(ip);
        } else {
            day.more_addrs += 1;
        }
    }

    fn refusal(&mut self, at: NaiveDateTime, r: Refused) {
        if self.recent_refusals.len() >= MAX_RECENT_REFUSALS {
            self.recent_refusals.clear();
        }
        self.recent_refusals
            .insert(r.addr.clone(), (r.reason.clone(), at));
        if !self.filter.user_in(r.cn.as_deref()) {
            return;
        }
        self.days.entry(at.date()).or_default().refused += 1;
        let key = (r.reason, ip_of(&r.addr));
        let key = if self.refused.contains_key(&key) || self.refused.len() < MAX_REFUSAL_KEYS {
            key
        } else {
            (key.0, OTHER.to_string())
        };
        let entry = self.refused.entry(key).or_insert(RefusedFrom {
            count: 0,
            first: at,
            last: at,
        });
        entry.count += 1;
        entry.first = entry.first.min(at);
        entry.last = entry.last.max(at);
    }

    fn expiry(&mut self, e: Expiring) {
        if self.filter.user_in(Some(&e.cn)) && self.expiring.len() < MAX_USER_DAYS {
            self.expiring.insert((e.cn, e.serial), e.not_after);
        }
    }

    /// The certificates warned about whose notAfter is within `warn_days` of
    /// `now` (or past), with their whole days left.
    pub fn expiring_within(
        &self,
        now: NaiveDateTime,
        warn_days: u32,
    ) -> Vec<(&Cert, NaiveDateTime, i64)> {
        self.expiring
            .iter()
            .map(|(user, not_after)| {
                let left = (*not_after - now).num_seconds().div_euclid(86_400);
                (user, *not_after, left)
            })
            .filter(|(_, _, left)| *left <= i64::from(warn_days))
            .collect()
    }
}

/// `name` itself while the table has room or holds it, else [`OTHER`].
fn capped<V>(table: &BTreeMap<String, V>, name: String, cap: usize) -> String {
    if table.len() < cap || table.contains_key(&name) {
        name
    } else {
        OTHER.to_string()
    }
}

/// The IP of `addr:port` (an IPv4-mapped IPv6 address as IPv4), or `addr` as written.
pub fn ip_of(addr: &str) -> String {
    match addr.parse::<SocketAddr>() {
        Ok(a) => a.ip().to_canonical().to_string(),
        Err(_) => addr.to_string(),
    }
}

/// The ORCA API a path calls, without its query: `/api01rv2/…`, `/orcaNN/…`,
/// `/apiNN/…`, `/blobapi/…`; `None` for the web screens and anything else.
/// The first segment must be one of those names whole (`api` or `orca`,
/// digits, optionally `rv` and digits): `/api01rv2x` or `/api01rv2;x/y` is
/// no API WebORCA answers, and counting it would show calls that never were.
pub fn api_name(path: &str) -> Option<&str> {
    let path = path.split(['?', '#']).next().unwrap_or(path);
    let first = path.strip_prefix('/')?.split('/').next()?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let numbered = |prefix: &str| {
        first.strip_prefix(prefix).is_some_and(|rest| {
            let (number, version) = match rest.split_once("rv") {
                Some((n, v)) => (n, Some(v)),
                None => (rest, None),
            };
            digits(number) && version.is_none_or(digits)
        })
    };
    (first == "blobapi" || numbered("api") || numbered("orca")).then_some(path)
}

#[cfg(test)]
#[path = "tally_tests.rs"]
mod tests;
