//! `weborca-mtls-proxy audit`: the access report for the periodic review that
//! the MHLW guideline for the security of medical information systems
//! (医療情報システムの安全管理に関するガイドライン) asks of a clinic.
//!
//! It reads the proxy's log, text and JSON lines alike ([`line`]), from
//! LOG_FILE and its rotated copies (`.1`, `.2.gz`, …, gzip found by its
//! magic bytes) or the files named, oldest first, and counts as it goes
//! ([`tally`]): per user (CN, serial and, for a certificate refused as
//! `unknown-ca`, another CA) and day, refused attempts by reason
//! and address, ORCA API calls by name, and the client certificates the
//! proxy warned about. The report is text, CSV or one HTML file
//! ([`as_text`], [`as_csv`], [`as_html`]). A line it cannot read is
//! counted and named in the report, never fatal; a file it cannot open is
//! named too.

pub mod as_csv;
pub mod as_html;
pub mod as_text;
pub mod line;
pub mod tally;

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use chrono::{NaiveDate, NaiveDateTime};
use flate2::read::MultiGzDecoder;

use crate::config::{self, DEFAULT_CERT_WARN_DAYS};
use tally::{Filter, Tally};

/// The exit code for a config that cannot be read (EX_CONFIG).
const EXIT_CONFIG: u8 = 78;
/// A longer line is not one the proxy wrote: it is counted unreadable, and
/// never held whole in memory.
const MAX_LINE: usize = 256 * 1024;
/// Rotated copies looked for: logrotate's `rotate 52` weekly is a year.
const MAX_ROTATED: usize = 1_000;

/// The report's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// readable text, Japanese first
    Text,
    /// one table with one header row, the `section` column telling the tables apart
    Csv,
    /// one self-contained HTML file with a chart, for printing
    Html,
}

/// `audit`'s arguments (`-c` is the global config option).
#[derive(Debug, Clone, clap::Args)]
pub struct AuditArgs {
    /// from this day on (YYYY-MM-DD, local time)
    #[arg(long, value_parser = parse_day)]
    pub since: Option<NaiveDate>,
    /// up to and including this day (YYYY-MM-DD, local time)
    #[arg(long, value_parser = parse_day)]
    pub until: Option<NaiveDate>,
    /// only the requests and refusals of this certificate CN
    #[arg(long)]
    pub user: Option<String>,
    /// text, csv or html
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// log files, text or JSON, plain or .gz (default: LOG_FILE and its rotated copies)
    pub files: Vec<PathBuf>,
}

fn parse_day(s: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|_| format!("{s:?} is not a day; write it as YYYY-MM-DD (2026-04-01)"))
}

/// Why the report could not be made, and the exit code.
#[derive(Debug)]
pub struct AuditError {
    /// what went wrong, naming the key or file and the fix
    pub message: String,
    /// the process's exit code
    pub code: u8,
}

/// What the report says besides the tally: when and how it was made.
pub struct Report<'a> {
    /// the figures
    pub tally: &'a Tally,
    /// when the report was made (local time)
    pub now: NaiveDateTime,
    /// CERT_WARN_DAYS
    pub warn_days: u32,
    /// files that could not be read, with why
    pub unopened: &'a [String],
}

/// Reads the logs and writes the report to `out`.
pub fn run(args: &AuditArgs, config_path: &Path, out: &mut dyn Write) -> Result<(), AuditError> {
    let (files, warn_days) = inputs(args, config_path)?;
    let mut tally = Tally::new(Filter {
        since: args.since,
        until: args.until,
        user: args.user.clone(),
    });
    let mut unopened = Vec::new();
    for file in &files {
        if let Err(e) = read_file(file, &mut tally) {
            unopened.push(format!("{}: {e}", file.display()));
        }
    }
    if unopened.len() == files.len() {
        return Err(AuditError {
            message: format!("audit: no log file could be read: {}", unopened.join("; ")),
            code: 1,
        });
    }
    let report = Report {
        tally: &tally,
        now: chrono::Local::now().naive_local(),
        warn_days,
        unopened: &unopened,
    };
    let written = match args.format {
        Format::Text => as_text::write(&report, out),
        Format::Csv => as_csv::write(&report, out),
        Format::Html => as_html::write(&report, out),
    };
    match written.and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        // `audit | head` is not a failure
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(AuditError {
            message: format!("audit: cannot write the report: {e}"),
            code: 1,
        }),
    }
}

/// The files to read, oldest first, and CERT_WARN_DAYS.
fn inputs(args: &AuditArgs, config_path: &Path) -> Result<(Vec<PathBuf>, u32), AuditError> {
    let loaded = config::load(config_path);
    if !args.files.is_empty() {
        // Files named: the config only lends CERT_WARN_DAYS, if it can be read.
        let days = loaded.map_or(DEFAULT_CERT_WARN_DAYS, |l| l.config.cert_warn_days);
        return Ok((args.files.clone(), days));
    }
    let config = loaded
        .map_err(|e| AuditError {
            message: format!("{e}\naudit: name the log files to read (weborca-mtls-proxy audit FILE…), or fix the config"),
            code: EXIT_CONFIG,
        })?
        .config;
    let Some(log_file) = config.log_file else {
        return Err(AuditError {
            message: format!(
                "LOG_FILE is not set in {}: the proxy logs to stderr only (the journal); set LOG_FILE, or name the files to read (journalctl -u weborca-mtls-proxy -o cat > proxy.log)",
                config_path.display()
            ),
            code: EXIT_CONFIG,
        });
    };
    Ok((with_rotated(&log_file), config.cert_warn_days))
}

/// `path` and its rotated copies, oldest first: `….N.gz` … `.2.gz`, `.1`, `path`.
pub fn with_rotated(path: &Path) -> Vec<PathBuf> {
    let mut files = vec![path.to_path_buf()];
    for n in 1..=MAX_ROTATED {
        let plain = PathBuf::from(format!("{}.{n}", path.display()));
        let gz = PathBuf::from(format!("{}.{n}.gz", path.display()));
        match (plain.exists(), gz.exists()) {
            (false, false) => break,
            (p, g) => {
                if g {
                    files.push(gz);
                }
                if p {
                    files.push(plain);
                }
            }
        }
    }
    files.reverse();
    files
}

/// Opens `path`, through gzip when it starts with gzip's magic bytes.
fn open(path: &Path) -> io::Result<Box<dyn BufRead>> {
    let mut file = BufReader::with_capacity(256 * 1024, File::open(path)?);
    let gzip = file.fill_buf()?.starts_with(&[0x1f, 0x8b]);
    Ok(if gzip {
        Box::new(BufReader::with_capacity(
            256 * 1024,
            MultiGzDecoder::new(file),
        ))
    } else {
        Box::new(file)
    })
}

/// Counts every line of `path`. An error opening it is returned; one while
/// reading (a cut .gz) is counted as an unreadable line and ends the file.
fn read_file(path: &Path, tally: &mut Tally) -> io::Result<()> {
    let mut reader = open(path)?;
    let name = path.display().to_string();
    tally.files.push(name.clone());
    let mut buf = Vec::with_capacity(1024);
    let mut number = 0u64;
    loop {
        buf.clear();
        number += 1;
        let read = match (&mut reader)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut buf)
        {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) => {
                tally.add(None, || format!("{name}:{number}: {e}"));
                return Ok(());
            }
        };
        if read > MAX_LINE && buf.last() != Some(&b'\n') {
            tally.add(None, || {
                format!("{name}:{number}: longer than {MAX_LINE} bytes")
            });
            if skip_line(&mut reader).is_err() {
                return Ok(());
            }
            continue;
        }
        let text = buf.strip_suffix(b"\n").unwrap_or(&buf);
        let parsed = std::str::from_utf8(text).ok().and_then(line::parse);
        tally.add(parsed, || format!("{name}:{number}"));
    }
}

/// Reads to the end of the line without keeping it.
fn skip_line(reader: &mut dyn BufRead) -> io::Result<()> {
    loop {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            return Ok(());
        }
        if let Some(i) = chunk.iter().position(|&b| b == b'\n') {
            reader.consume(i + 1);
            return Ok(());
        }
        let n = chunk.len();
        reader.consume(n);
    }
}
