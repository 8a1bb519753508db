//! The report as one self-contained HTML file for printing: Japanese first
//! with English in the headings, a chart of requests and refused attempts per
//! day as inline SVG, no script and nothing loaded from elsewhere. Every value
//! (a CN is whatever the certificate says) is escaped by the template engine.

use std::io::{self, Write};

use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::Report;
use super::as_text::{CLOCK, STAMP};
use super::tally::{Day, OTHER};

const STYLE: &str = "body{font-family:sans-serif;margin:2em;color:#222}\
table{border-collapse:collapse;margin:.5em 0 1.5em}\
th,td{border:1px solid #999;padding:.2em .5em;text-align:left}\
td.n{text-align:right}th{background:#eee}\
h2 span,h1 span{font-weight:normal;font-size:.8em;color:#555}\
svg .req{fill:#3568a8}svg .ref{fill:#c0392b}svg text{font-size:11px}\
@media print{body{margin:0}h2{break-after:avoid}table{break-inside:auto}}";

/// Chart size, in SVG units.
const CHART_W: f64 = 720.0;
const CHART_H: f64 = 200.0;
const AXIS: f64 = 30.0;

/// Writes the HTML report.
pub fn write(report: &Report<'_>, out: &mut dyn Write) -> io::Result<()> {
    out.write_all(page(report).into_string().as_bytes())
}

/// The issuing-CA cell: words for the code of [`User::ca`](super::tally::User::ca).
fn ca_words(code: &str) -> &'static str {
    match code {
        "CA_CRT" => "院内の CA / the clinic's CA (CA_CRT)",
        "-" => "-",
        _ => "他の CA（拒否）/ another CA (unknown-ca, refused)",
    }
}

fn heading(ja: &str, en: &str) -> Markup {
    html! { h2 { (ja) " " span lang="en" { "/ " (en) } } }
}

fn page(report: &Report<'_>) -> Markup {
    let t = report.tally;
    let expiring = t.expiring_within(report.now, report.warn_days);
    html! {
        (DOCTYPE)
        html lang="ja" {
            head {
                meta charset="utf-8";
                title { "アクセス記録の監査 / Access audit report" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                h1 { "アクセス記録の監査 " span lang="en" { "/ Access audit report" } }
                p {
                    "作成 / made: " (report.now.format(STAMP))
                    " · 読んだ行 / lines read: " (t.lines)
                    " · 読めない行 / unreadable lines: " (t.unreadable)
                }
                @if !t.unreadable_at.is_empty() || !report.unopened.is_empty() {
                    ul {
                        @for at in &t.unreadable_at { li { "読めない行 / unreadable line: " (at) } }
                        @for f in report.unopened { li { "読めないファイル / file not read: " (f) } }
                    }
                }
                (heading("日別の要求と拒否", "Requests and refused attempts per day"))
                (chart(&t.days))
                (heading("利用者別・日別", "Per user and day"))
                table {
                    tr { th { "日付 / date" } th { "CN" } th { "シリアル / serial" } th { "発行 CA / issuing CA" } th { "要求 / requests" }
                         th { "拒否 / refused" } th { "最初 / first" } th { "最後 / last" } th { "アドレス / addresses" } }
                    @for ((day, user), d) in &t.users {
                        tr {
                            td { (day) } td { (user.cn) } td { (user.serial) }
                            td { (ca_words(user.ca())) }
                            td.n { (d.requests) } td.n { (d.refused) }
                            td { (d.first.format(CLOCK)) } td { (d.last.format(CLOCK)) }
                            td {
                                (d.addrs.iter().cloned().collect::<Vec<_>>().join(", "))
                                @if d.more_addrs > 0 { " +" (d.more_addrs) }
                            }
                        }
                    }
                }
                (heading("拒否された接続（理由・アドレス別）", "Refused attempts by reason and address"))
                table {
                    tr { th { "理由 / reason" } th { "アドレス / address" } th { "回数 / attempts" } th { "最初 / first" } th { "最後 / last" } }
                    @for ((reason, addr), r) in &t.refused {
                        tr {
                            td { (reason) }
                            td { @if addr == OTHER { "その他 / other" } @else { (addr) } }
                            td.n { (r.count) } td { (r.first.format(STAMP)) } td { (r.last.format(STAMP)) }
                        }
                    }
                }
                (heading("ORCA API の呼び出し", "ORCA API calls by name"))
                table {
                    tr { th { "API" } th { "回数 / calls" } }
                    @for (name, calls) in &t.api { tr { td { (name) } td.n { (calls) } } }
                }
                (heading(&format!("{} 日以内に期限が切れる証明書", report.warn_days),
                         &format!("Certificates expiring within {} days", report.warn_days)))
                table {
                    tr { th { "CN" } th { "シリアル / serial" } th { "有効期限 / not after" } th { "残り日数 / days left" } }
                    @for ((cn, serial), not_after, left) in &expiring {
                        tr { td { (cn) } td { (serial) } td { (not_after.format(STAMP)) } td.n { (left) } }
                    }
                }
            }
        }
    }
}

/// Bars per day: requests and refused attempts side by side, scaled to the
/// busiest day.
fn chart(days: &std::collections::BTreeMap<chrono::NaiveDate, Day>) -> Markup {
    let max = days
        .values()
        .map(|d| d.requests.max(d.refused))
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let slot = (CHART_W - AXIS) / days.len().max(1) as f64;
    let bar = (slot / 2.0 - 1.0).max(0.5);
    let plot = CHART_H - AXIS;
    let height = |n: u64| n as f64 / max * (plot - 10.0);
    let label_every = (days.len() / 12).max(1);
    html! {
        svg xmlns="http://www.w3.org/2000/svg" width=(CHART_W) height=(CHART_H)
            viewBox=(format!("0 0 {CHART_W} {CHART_H}")) role="img"
            aria-label="日別の要求（青）と拒否（赤） / requests (blue) and refused attempts (red) per day" {
            title { "日別の要求（青）と拒否（赤） / requests (blue) and refused attempts (red) per day" }
            line x1=(AXIS) y1=(plot) x2=(CHART_W) y2=(plot) stroke="#555" {}
            text x="2" y="12" { (max as u64) }
            text x="2" y=(plot) { "0" }
            @for (i, (day, d)) in days.iter().enumerate() {
                @let x = AXIS + i as f64 * slot;
                rect.req x=(x) y=(plot - height(d.requests)) width=(bar) height=(height(d.requests)) {
                    title { (day) ": " (d.requests) " 要求 / requests" }
                }
                rect.ref x=(x + bar + 1.0) y=(plot - height(d.refused)) width=(bar) height=(height(d.refused)) {
                    title { (day) ": " (d.refused) " 拒否 / refused" }
                }
                @if i % label_every == 0 {
                    text x=(x) y=(CHART_H - 12.0) { (day.format("%m-%d")) }
                }
            }
        }
    }
}
