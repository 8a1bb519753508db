//! The log: WebORCA's line format (`2023/09/07 12:56:10 Server Mode: HTTPS`,
//! local time), to stderr and optionally appended to LOG_FILE, which is reopened
//! on SIGHUP so logrotate can move it away.
//!
//! Lines are written in batches by a background thread (see [`Queue`]), so
//! a slow disk never stalls a request; the queue blocks rather than drops,
//! because the access log is the clinic's audit trail. Under systemd (JOURNAL_STREAM
//! set) each line carries a `<N>` syslog priority prefix that journald strips.
//!
//! LOG_FORMAT=json writes each event as one JSON object instead (see
//! [`log_json`](super::log_json)); the format is read for every line, so a
//! reload switches it between two lines. JSON lines carry no `<N>` prefix: a
//! line in LOG_FILE stays one JSON object, and its `level` field says the rest.
//! An event named `access` is the access log's line: its text is its message
//! alone, and its fields are there for the JSON line.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

use crate::config::LogFormat;

use super::log_json::JsonLine;

/// The timestamp format WebORCA's log uses.
pub const TIME_FORMAT: &str = "%Y/%m/%d %H:%M:%S";

/// LOG_FORMAT=json is in force: read for each line, so a reload takes effect at once.
static JSON: AtomicBool = AtomicBool::new(false);

/// Sets LOG_FORMAT for the lines logged from now on.
pub fn set_format(format: LogFormat) {
    JSON.store(format == LogFormat::Json, Ordering::Relaxed);
}

/// The name of the access log's events: their text line is their message.
pub const ACCESS_EVENT: &str = "access";

/// Writes only the message of an event (the access line; its fields are for JSON).
struct MessageOnly<'a, 'w>(&'a mut Writer<'w>, std::fmt::Result);

impl Visit for MessageOnly<'_, '_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.1 = write!(self.0, "{value:?}");
        }
    }
}

/// The fields of a text line: the message, then ` key=value` each, a value
/// as [`Token`](crate::text::Token) writes it (quoted unless it is one word).
/// tracing-subscriber's own field formatter quotes a `&str` field and leaves
/// a `%value` bare, so a CN with blanks given as `%cn` could pass for other
/// fields; this one decides by the value, whichever way it was given.
pub struct TextFields;

impl<'w> FormatFields<'w> for TextFields {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(
        &self,
        writer: Writer<'w>,
        fields: R,
    ) -> std::fmt::Result {
        let mut visitor = TextVisitor {
            writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct TextVisitor<'w> {
    writer: Writer<'w>,
    first: bool,
    result: std::fmt::Result,
}

impl TextVisitor<'_> {
    fn write(&mut self, field: &Field, value: &str) {
        if self.result.is_err() {
            return;
        }
        let name = field.name();
        // the `log` crate's records (through tracing-log) carry where they
        // came from; the text line, as tracing's own formatter, leaves it out
        if name.starts_with("log.") {
            return;
        }
        let pad = if std::mem::take(&mut self.first) {
            ""
        } else {
            " "
        };
        self.result = if name == "message" {
            write!(self.writer, "{pad}{value}")
        } else {
            let name = name.strip_prefix("r#").unwrap_or(name);
            write!(self.writer, "{pad}{name}={}", crate::text::Token(value))
        };
    }
}

impl Visit for TextVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.write(field, value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.write(field, &format!("{value:?}"));
    }
}

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
        if JSON.load(Ordering::Relaxed) {
            return writeln!(writer, "{}", JsonLine::of(event).to_json());
        }
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
        if event.metadata().name() == ACCESS_EVENT {
            let mut message = MessageOnly(&mut writer, Ok(()));
            event.record(&mut message);
            message.1?;
        } else {
            ctx.format_fields(writer.by_ref(), event)?;
        }
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

/// Log lines waiting for the writer thread.
///
/// A logging thread appends its line and goes on; the writer thread wakes
/// when the queue goes from empty to not empty, lets lines gather for
/// [`BATCH_WINDOW`], and writes them all with one `write` per destination.
/// Under load (one access-log line per request) that is a wake-up and a write
/// every few milliseconds instead of one per request, and the request threads
/// never wait for a disk. The queue blocks rather than drops when it is full,
/// because the access log is the clinic's audit trail.
struct Queue {
    state: Mutex<Pending>,
    /// the writer waits here for lines, or for the end
    ready: Condvar,
    /// loggers wait here while the queue is full
    room: Condvar,
}

struct Pending {
    lines: Vec<u8>,
    /// the writer has stopped: lines go straight to stderr
    closed: bool,
}

/// How long the writer lets lines gather before writing them.
const BATCH_WINDOW: Duration = Duration::from_millis(10);
/// Loggers wait once this much is waiting to be written (a stalled disk).
const QUEUE_BYTES: usize = 4 << 20;
/// The writer keeps a buffer of about this size between batches.
const BATCH_BYTES: usize = 64 * 1024;

impl Queue {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn push(&self, line: &[u8]) {
        let mut pending = self.lock();
        while pending.lines.len() >= QUEUE_BYTES && !pending.closed {
            pending = self
                .room
                .wait(pending)
                .unwrap_or_else(PoisonError::into_inner);
        }
        if pending.closed {
            drop(pending);
            let _ = io::stderr().write_all(line);
            return;
        }
        let wake = pending.lines.is_empty();
        pending.lines.extend_from_slice(line);
        drop(pending);
        if wake {
            self.ready.notify_one();
        }
    }

    /// The writer thread: batches to stderr and LOG_FILE until closed and empty.
    fn write_out(&self, file: &Mutex<Option<File>>) {
        let mut batch = Vec::with_capacity(BATCH_BYTES);
        loop {
            let mut pending = self.lock();
            while pending.lines.is_empty() && !pending.closed {
                pending = self
                    .ready
                    .wait(pending)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            if pending.lines.is_empty() {
                return; // closed, and everything written
            }
            if !pending.closed {
                drop(pending);
                std::thread::sleep(BATCH_WINDOW);
                pending = self.lock();
            }
            std::mem::swap(&mut pending.lines, &mut batch);
            drop(pending);
            self.room.notify_all();
            // LOG_FILE first: whoever sees a line on stderr (the journal)
            // finds it in the file too.
            if let Some(f) = file.lock().unwrap_or_else(PoisonError::into_inner).as_mut() {
                // A full disk must not stop the proxy; stderr still has the lines.
                let _ = f.write_all(&without_priorities(&batch));
            }
            let _ = io::stderr().write_all(&batch);
            batch.clear();
            batch.shrink_to(BATCH_BYTES);
        }
    }

    fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
        self.room.notify_all();
    }
}

/// What the formatter writes each line to.
#[derive(Clone)]
struct QueueWriter(Arc<Queue>);

/// One line's writer: the formatter writes a whole line at once.
struct LineWriter<'a>(&'a Queue);

impl Write for LineWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.push(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for QueueWriter {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter(&self.0)
    }
}

/// Keeps the log running; reopens LOG_FILE on request.
pub struct LogHandle {
    file: Arc<Mutex<Option<File>>>,
    path: Mutex<Option<PathBuf>>,
    queue: Arc<Queue>,
    writer: Option<std::thread::JoinHandle<()>>,
}

impl Drop for LogHandle {
    /// Writes out every line logged so far.
    fn drop(&mut self) {
        self.queue.close();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
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

/// Whether stderr is the journal's stream: systemd names that stream in
/// JOURNAL_STREAM (`DEVICE:INODE`), which a child of the service inherits
/// even when its stderr goes elsewhere (a shell, a pipe).
fn stderr_is_the_journal() -> bool {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let Some(named) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(fd) = io::stderr().as_fd().try_clone_to_owned() else {
        return false;
    };
    let Ok(meta) = File::from(fd).metadata() else {
        return false;
    };
    named.to_str() == Some(&format!("{}:{}", meta.dev(), meta.ino()))
}

/// `batch` without the `<N>` priority that begins each text line for the
/// journal: LOG_FILE holds the lines as WebORCA writes them. (JSON lines
/// begin with `{`, text lines with the date.)
fn without_priorities(batch: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let prefixed = |line: &[u8]| matches!(line, [b'<', d, b'>', ..] if d.is_ascii_digit());
    if !batch.split_inclusive(|b| *b == b'\n').any(prefixed) {
        return batch.into();
    }
    let mut out = Vec::with_capacity(batch.len());
    for line in batch.split_inclusive(|b| *b == b'\n') {
        out.extend_from_slice(if prefixed(line) { &line[3..] } else { line });
    }
    out.into()
}

/// Installs the global logger. `RUST_LOG` may raise or lower the level (default info).
pub fn init(log_file: Option<&Path>) -> io::Result<LogHandle> {
    let file = Arc::new(Mutex::new(log_file.map(open_append).transpose()?));
    let queue = Arc::new(Queue {
        state: Mutex::new(Pending {
            lines: Vec::with_capacity(BATCH_BYTES),
            closed: false,
        }),
        ready: Condvar::new(),
        room: Condvar::new(),
    });
    let writer = std::thread::Builder::new()
        .name("log-writer".into())
        .spawn({
            let (queue, file) = (queue.clone(), file.clone());
            move || queue.write_out(&file)
        })?;
    let journald = stderr_is_the_journal();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,hyper=warn,rustls=warn"));
    let _ = tracing_subscriber::fmt()
        // plain text: the log goes to files and the journal, never colour codes
        .with_ansi(false)
        .with_env_filter(filter)
        .with_writer(QueueWriter(queue.clone()))
        .fmt_fields(TextFields)
        .event_format(WeborcaFormat { journald })
        .try_init();
    Ok(LogHandle {
        file,
        path: Mutex::new(log_file.map(Path::to_path_buf)),
        queue,
        writer: Some(writer),
    })
}
