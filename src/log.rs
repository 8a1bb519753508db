//! The log: WebORCA's line format (`2023/09/07 12:56:10 Server Mode: HTTPS`,
//! local time), to stderr and optionally appended to LOG_FILE, which is reopened
//! on SIGHUP so logrotate can move it away.
//!
//! Lines are written by a background thread (`tracing-appender`), so a slow
//! disk never stalls a request; the queue blocks rather than drops, because
//! the access log is the clinic's audit trail. Under systemd (JOURNAL_STREAM
//! set) each line carries a `<N>` syslog priority prefix that journald strips.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use tracing::{Event, Level, Subscriber};
use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// The timestamp format WebORCA's log uses.
pub const TIME_FORMAT: &str = "%Y/%m/%d %H:%M:%S";

/// Formats one event as `YYYY/MM/DD HH:MM:SS message key=value …`.
pub struct WeborcaFormat {
    /// prefix `<N>` syslog priorities for journald
    journald: bool,
}

impl<S, N> FormatEvent<S, N> for WeborcaFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        if self.journald {
            let prio = match *event.metadata().level() {
                Level::ERROR => 3,
                Level::WARN => 4,
                Level::INFO => 6,
                _ => 7,
            };
            write!(writer, "<{prio}>")?;
        }
        write!(writer, "{} ", chrono::Local::now().format(TIME_FORMAT))?;
        ctx.format_fields(writer.by_ref(), event)?;
        // The connection's span fields (peer, cn) say who a line is about.
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                if let Some(fields) = span.extensions().get::<FormattedFields<N>>()
                    && !fields.is_empty()
                {
                    write!(writer, " {fields}")?;
                }
            }
        }
        writeln!(writer)
    }
}

/// Where log lines go: stderr always, LOG_FILE too when set.
#[derive(Clone)]
struct Sink {
    file: Arc<Mutex<Option<File>>>,
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let _ = io::stderr().write_all(buf);
        let mut file = self.file.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(f) = file.as_mut() {
            // A full disk must not stop the proxy; stderr still has the line.
            let _ = f.write_all(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

/// Keeps the log running; reopens LOG_FILE on request.
pub struct LogHandle {
    file: Arc<Mutex<Option<File>>>,
    path: Mutex<Option<PathBuf>>,
    _guard: WorkerGuard,
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

impl LogHandle {
    /// Reopens LOG_FILE (after logrotate moved it), or switches to a new path.
    pub fn reopen(&self, path: Option<&Path>) -> io::Result<()> {
        let new = path.map(open_append).transpose()?;
        *self.file.lock().unwrap_or_else(PoisonError::into_inner) = new;
        *self.path.lock().unwrap_or_else(PoisonError::into_inner) = path.map(Path::to_path_buf);
        Ok(())
    }

    /// The LOG_FILE currently written to.
    pub fn path(&self) -> Option<PathBuf> {
        self.path
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Installs the global logger. `RUST_LOG` may raise or lower the level (default info).
pub fn init(log_file: Option<&Path>) -> io::Result<LogHandle> {
    let file = Arc::new(Mutex::new(log_file.map(open_append).transpose()?));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("log-writer")
        .finish(Sink { file: file.clone() });
    let journald = std::env::var_os("JOURNAL_STREAM").is_some();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,hyper=warn,rustls=warn"));
    let _ = tracing_subscriber::fmt()
        // plain text: the log goes to files and the journal, never colour codes
        .with_ansi(false)
        .with_env_filter(filter)
        .with_writer(writer)
        .event_format(WeborcaFormat { journald })
        .try_init();
    Ok(LogHandle {
        file,
        path: Mutex::new(log_file.map(Path::to_path_buf)),
        _guard: guard,
    })
}
