//! Collects the repetitions' figures and prints the one table: medians with
//! min–max for this proxy, nginx and nginx with buffering off, the ratios,
//! and whether each target is met.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The server columns of the table.
pub const PROXY: &str = "proxy";
pub const NGINX: &str = "nginx";
pub const NGINX_NOBUF: &str = "nginx-nobuf";
/// The reference row (no server in front).
pub const CEILING: &str = "ceiling";

/// A target on the proxy/nginx ratio, or on the proxy's own figure.
#[derive(Clone, Copy, Debug)]
pub enum Target {
    /// proxy / nginx ≥ x
    RatioAtLeast(f64),
    /// proxy / nginx ≤ x
    RatioAtMost(f64),
    /// proxy / nginx ≥ x, and proxy / nginx-nobuf ≥ y
    RatioBoth(f64, f64),
    /// the proxy's own figure ≤ x
    AbsAtMost(f64),
}

/// One row of the table.
pub struct Row {
    /// the key figures are recorded under
    pub key: &'static str,
    /// what the row says
    pub label: String,
    pub target: Option<Target>,
}

/// Figures by (row key, server), one per repetition.
#[derive(Default)]
pub struct Results {
    values: BTreeMap<(String, String), Vec<f64>>,
}

impl Results {
    pub fn add(&mut self, key: &str, server: &str, value: f64) {
        eprintln!("    {key:<22} {server:<12} {value:>12.3}");
        self.values
            .entry((key.to_string(), server.to_string()))
            .or_default()
            .push(value);
    }

    /// The latest figure recorded under (key, server).
    pub fn last(&self, key: &str, server: &str) -> Option<f64> {
        self.get(key, server).and_then(|v| v.last().copied())
    }

    fn get(&self, key: &str, server: &str) -> Option<&Vec<f64>> {
        self.values.get(&(key.to_string(), server.to_string()))
    }

    fn median(&self, key: &str, server: &str) -> Option<f64> {
        self.get(key, server).map(|v| median(v))
    }

    /// The markdown table.
    pub fn table(&self, rows: &[Row]) -> String {
        let mut out = String::new();
        out.push_str("| figure | proxy | nginx | nginx, buffering off | proxy / nginx | proxy / nginx-nobuf | target | met |\n");
        out.push_str("|---|---|---|---|---|---|---|---|\n");
        for row in rows {
            let cell = |server: &str| {
                self.get(row.key, server)
                    .map(|v| spread(v))
                    .unwrap_or_else(|| "–".into())
            };
            // what a transfer added to RSS is often a few KiB against zero:
            // a ratio of two such figures says nothing
            let comparable = !row.key.ends_with("_rise");
            let ratio =
                |server: &str| match (self.median(row.key, PROXY), self.median(row.key, server)) {
                    (Some(p), Some(n)) if comparable && n > 0.0 => Some(p / n),
                    _ => None,
                };
            let (r1, r2) = (ratio(NGINX), ratio(NGINX_NOBUF));
            let fmt_ratio = |r: Option<f64>| r.map_or("–".to_string(), |r| format!("{r:.2}×"));
            let proxy = self.median(row.key, PROXY);
            let (target, met) = match row.target {
                None => ("".to_string(), ""),
                Some(Target::RatioAtLeast(x)) => (format!("≥ {x}×"), verdict(r1.map(|r| r >= x))),
                Some(Target::RatioAtMost(x)) => (format!("≤ {x}×"), verdict(r1.map(|r| r <= x))),
                Some(Target::RatioBoth(x, y)) => (
                    format!("≥ {x}× / ≥ {y}×"),
                    verdict(r1.zip(r2).map(|(a, b)| a >= x && b >= y)),
                ),
                Some(Target::AbsAtMost(x)) => (format!("≤ {x}"), verdict(proxy.map(|p| p <= x))),
            };
            let proxy_cell = if self.get(row.key, CEILING).is_some() {
                cell(CEILING)
            } else {
                cell(PROXY)
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                row.label,
                proxy_cell,
                cell(NGINX),
                cell(NGINX_NOBUF),
                fmt_ratio(r1),
                fmt_ratio(r2),
                target,
                met
            );
        }
        out
    }

    /// Every repetition's figure, for the record.
    pub fn raw(&self) -> String {
        let mut out = String::new();
        for ((key, server), v) in &self.values {
            let list: Vec<String> = v.iter().map(|x| fmt_num(*x)).collect();
            let _ = writeln!(out, "{key:<22} {server:<12} {}", list.join("  "));
        }
        out
    }
}

fn verdict(ok: Option<bool>) -> &'static str {
    match ok {
        Some(true) => "yes",
        Some(false) => "**no**",
        None => "?",
    }
}

pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// `median (min–max)`.
fn spread(v: &[f64]) -> String {
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if v.len() == 1 {
        return fmt_num(v[0]);
    }
    format!("{} ({}–{})", fmt_num(median(v)), fmt_num(min), fmt_num(max))
}

/// Three significant figures, no exponent.
fn fmt_num(x: f64) -> String {
    let a = x.abs();
    if a >= 100.0 {
        format!("{x:.0}")
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else if a >= 1.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.3}")
    }
}
