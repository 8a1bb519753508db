//! The report as text: one section per table, Japanese headings with English.

use std::io::{self, Write};

use super::Report;
use super::tally::OTHER;

/// `HH:MM:SS`, the time columns.
pub const CLOCK: &str = "%H:%M:%S";
/// `YYYY-MM-DD HH:MM`, the date-and-time columns.
pub const STAMP: &str = "%Y-%m-%d %H:%M";

/// Writes the text report.
pub fn write(report: &Report<'_>, out: &mut dyn Write) -> io::Result<()> {
    let t = report.tally;
    writeln!(out, "アクセス記録の監査 / Access audit report")?;
    writeln!(out, "作成 / made: {}", report.now.format(STAMP))?;
    writeln!(
        out,
        "読んだ行 / lines read: {}  読めない行 / unreadable: {}",
        t.lines, t.unreadable
    )?;
    for at in &t.unreadable_at {
        writeln!(out, "  読めない行 / unreadable line: {at}")?;
    }
    for f in report.unopened {
        writeln!(out, "  読めないファイル / file not read: {f}")?;
    }
    writeln!(out, "\n== 利用者別・日別 / Per user and day ==")?;
    writeln!(
        out,
        "date        cn  serial  ca  requests  refused  first     last      addresses"
    )?;
    for ((day, user), d) in &t.users {
        let more = if d.more_addrs > 0 {
            format!(" +{}", d.more_addrs)
        } else {
            String::new()
        };
        writeln!(
            out,
            "{day}  {}  {}  {}  {}  {}  {}  {}  {}{more}",
            user.cn,
            user.serial,
            user.ca(),
            d.requests,
            d.refused,
            d.first.format(CLOCK),
            d.last.format(CLOCK),
            d.addrs.iter().cloned().collect::<Vec<_>>().join(",")
        )?;
    }
    writeln!(
        out,
        "\n== 拒否された接続（理由・アドレス別）/ Refused attempts by reason and address =="
    )?;
    for ((reason, addr), r) in &t.refused {
        let addr: &str = if addr == OTHER {
            "(その他 / other)"
        } else {
            addr
        };
        writeln!(
            out,
            "{reason}  {addr}  {}  {} – {}",
            r.count,
            r.first.format(STAMP),
            r.last.format(STAMP)
        )?;
    }
    writeln!(out, "\n== ORCA API の呼び出し / ORCA API calls by name ==")?;
    for (name, calls) in &t.api {
        writeln!(out, "{name}  {calls}")?;
    }
    writeln!(
        out,
        "\n== {} 日以内に期限が切れる証明書 / Certificates expiring within {} days ==",
        report.warn_days, report.warn_days
    )?;
    for ((cn, serial), not_after, left) in t.expiring_within(report.now, report.warn_days) {
        writeln!(
            out,
            "{cn}  {serial}  {}  残り {left} 日 / {left} days left",
            not_after.format(STAMP)
        )?;
    }
    Ok(())
}
