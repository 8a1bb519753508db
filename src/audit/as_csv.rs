//! The report as CSV: one header row, one row per figure, the `section` column
//! saying which table a row belongs to (`summary`, `user-day`, `refused`,
//! `api`, `expiring`), so a spreadsheet can filter on it.

use std::borrow::Cow;
use std::io::{self, Write};

use serde::Serialize;

use super::Report;
use super::as_text::{CLOCK, STAMP};

/// One row; a column that does not apply to its section is empty.
#[derive(Debug, Default, Serialize)]
pub struct Row<'a> {
    /// `summary`, `user-day`, `refused`, `api` or `expiring`
    pub section: &'static str,
    /// the day (user-day)
    pub date: String,
    /// the certificate's CN (user-day, expiring)
    pub cn: Cow<'a, str>,
    /// the certificate's serial (user-day, expiring)
    pub serial: &'a str,
    /// whose certificate (user-day): `CA_CRT` the clinic's CA, `unknown-ca`
    /// another CA (a row apart, whatever CN and serial it carries), `-` none
    pub ca: &'static str,
    /// requests (user-day)
    pub requests: Option<u64>,
    /// requests answered with a refusal page (user-day)
    pub refused: Option<u64>,
    /// the first time (user-day: HH:MM:SS; refused: YYYY-MM-DD HH:MM)
    pub first: String,
    /// the last time, as `first`
    pub last: String,
    /// client addresses, `;`-separated (user-day); the address (refused)
    pub addresses: String,
    /// the refusal reason (refused)
    pub reason: &'a str,
    /// the API called (api); what a summary row counts (summary)
    pub name: Cow<'a, str>,
    /// attempts (refused), calls (api), lines (summary)
    pub count: Option<u64>,
    /// the certificate's notAfter (expiring)
    pub not_after: String,
    /// whole days left (expiring)
    pub days_left: Option<i64>,
}

/// Writes the CSV report.
pub fn write(report: &Report<'_>, out: &mut dyn Write) -> io::Result<()> {
    let t = report.tally;
    let mut csv = csv::Writer::from_writer(out);
    let summary = |name, count| Row {
        section: "summary",
        name: Cow::Borrowed(name),
        count: Some(count),
        ..Row::default()
    };
    let unopened = report.unopened.len() as u64;
    for row in [
        summary("lines", t.lines),
        summary("unreadable", t.unreadable),
        summary("files-not-read", unopened),
    ] {
        csv.serialize(row).map_err(io::Error::other)?;
    }
    for ((day, user), d) in &t.users {
        let addresses: Vec<&str> = d.addrs.iter().map(String::as_str).collect();
        csv.serialize(Row {
            section: "user-day",
            date: day.to_string(),
            cn: cell(&user.cn),
            serial: &user.serial,
            ca: user.ca(),
            requests: Some(d.requests),
            refused: Some(d.refused),
            first: d.first.format(CLOCK).to_string(),
            last: d.last.format(CLOCK).to_string(),
            addresses: addresses.join(";"),
            ..Row::default()
        })
        .map_err(io::Error::other)?;
    }
    for ((reason, addr), r) in &t.refused {
        csv.serialize(Row {
            section: "refused",
            reason,
            addresses: addr.clone(),
            count: Some(r.count),
            first: r.first.format(STAMP).to_string(),
            last: r.last.format(STAMP).to_string(),
            ..Row::default()
        })
        .map_err(io::Error::other)?;
    }
    for (name, calls) in &t.api {
        csv.serialize(Row {
            section: "api",
            name: cell(name),
            count: Some(*calls),
            ..Row::default()
        })
        .map_err(io::Error::other)?;
    }
    for ((cn, serial), not_after, left) in t.expiring_within(report.now, report.warn_days) {
        csv.serialize(Row {
            section: "expiring",
            cn: cell(cn),
            serial,
            not_after: not_after.format(STAMP).to_string(),
            days_left: Some(left),
            ..Row::default()
        })
        .map_err(io::Error::other)?;
    }
    csv.flush()
}

/// A value from a log line (a CN anyone can put in a certificate, an API
/// path) as a cell a spreadsheet shows as text: one starting like a formula
/// (`=`, `+`, `@`, a tab or CR, or `-` followed by more) gets a leading `'`,
/// so opening the report runs nothing (OWASP's CSV injection advice).
fn cell(value: &str) -> Cow<'_, str> {
    let formula = matches!(
        value.as_bytes(),
        [b'=' | b'+' | b'@' | b'\t' | b'\r', ..] | [b'-', _, ..]
    );
    if formula {
        Cow::Owned(format!("'{value}"))
    } else {
        Cow::Borrowed(value)
    }
}

#[cfg(test)]
mod cell_tests {
    use super::cell;

    #[test]
    fn formulas_are_shown_as_text() {
        assert_eq!(
            cell("=HYPERLINK(\"http://x\")"),
            "'=HYPERLINK(\"http://x\")"
        );
        assert_eq!(cell("+1"), "'+1");
        assert_eq!(cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(cell("-1+2"), "'-1+2");
        assert_eq!(cell("-"), "-");
        assert_eq!(cell("user1"), "user1");
        assert_eq!(cell("/api01rv2/patientgetv2"), "/api01rv2/patientgetv2");
    }
}
