//! LOG_FORMAT=json: each event as one JSON object on one line, for journald,
//! Fluent Bit or Loki, which then need no regular expression to read it.
//!
//! The fields are those of the text line, by name: `time` (RFC 3339, local
//! time), `level`, `event` (the event's name: `access`, `refused`, … or `log`),
//! `msg` (the text of the line, as WebORCA's start-up lines have it), and each
//! field the event carries (`addr`, `cn`, `serial`, `method`, `path`,
//! `version`, `status`, `bytes`, `duration_ms`, `reason`, `subject`). A field
//! that is not named here keeps its own name (see [`JsonLine::other`]), so a
//! field added to an event appears in the JSON line with no change to this file.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use serde_json::Value;
use tracing::field::{Field, Visit};
use tracing::{Event, Level};

/// The time format of the `time` field: RFC 3339, local time with its offset.
pub const JSON_TIME_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.3f%:z";

/// One line of the JSON log.
#[derive(Debug, Default, Serialize)]
pub struct JsonLine {
    /// when the line was written, local time with its offset
    pub time: String,
    /// `error`, `warn`, `info`, `debug`, `trace`
    pub level: &'static str,
    /// the event's name (`access`, `refused`, `websocket`, `cert-expiring`,
    /// `request-refused`), or `log` for a line that has none
    pub event: &'static str,
    /// the text of the line; absent on `access` lines, whose fields say it all
    #[serde(skip_serializing_if = "Option::is_none")]
    pub msg: Option<String>,
    /// the client's address and port (the text line's `peer`)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub addr: Option<String>,
    /// the client certificate's CN
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cn: Option<String>,
    /// the client certificate's serial, hex
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// the request's method
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// the request's path and query, as sent
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// the HTTP version
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// the response's status
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u64>,
    /// the response body's bytes sent
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// how long the request took, milliseconds
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<f64>,
    /// why a client certificate was refused (the page's reason code)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// the refused certificate's subject
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// every other field of the event, by its own name
    #[serde(flatten)]
    pub other: BTreeMap<&'static str, Value>,
}

impl JsonLine {
    /// The line for `event`, written now.
    pub fn of(event: &Event<'_>) -> JsonLine {
        let meta = event.metadata();
        let mut line = JsonLine {
            time: chrono::Local::now().format(JSON_TIME_FORMAT).to_string(),
            level: level_name(*meta.level()),
            // tracing names an unnamed event `event file:line`
            event: if meta.name().starts_with("event ") {
                "log"
            } else {
                meta.name()
            },
            ..JsonLine::default()
        };
        event.record(&mut line);
        if line.event == "access" {
            line.msg = None;
        }
        line
    }

    fn set(&mut self, name: &'static str, value: Value) {
        let text = |v: Value| match v {
            Value::String(s) => s,
            other => other.to_string(),
        };
        let slot = match name {
            "message" => &mut self.msg,
            "peer" | "addr" => &mut self.addr,
            "cn" => &mut self.cn,
            "serial" => &mut self.serial,
            "method" => &mut self.method,
            "path" => &mut self.path,
            "version" => &mut self.version,
            "reason" => &mut self.reason,
            "subject" => &mut self.subject,
            "status" if value.is_u64() => {
                self.status = value.as_u64();
                return;
            }
            "bytes" if value.is_u64() => {
                self.bytes = value.as_u64();
                return;
            }
            "duration_ms" if value.is_number() => {
                self.duration_ms = value.as_f64();
                return;
            }
            _ => {
                self.other.insert(name, value);
                return;
            }
        };
        *slot = Some(text(value));
    }

    /// The line as JSON, without the newline.
    pub fn to_json(&self) -> String {
        // Serializing strings and numbers cannot fail; an empty object keeps
        // the line valid JSON if it ever did.
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_string())
    }
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::ERROR => "error",
        Level::WARN => "warn",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        Level::TRACE => "trace",
    }
}

impl Visit for JsonLine {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.set(field.name(), Value::String(value.to_string()));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // `%x` fields arrive here too, with Display as their Debug.
        self.set(field.name(), Value::String(format!("{value:?}")));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.set(field.name(), Value::from(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.set(field.name(), Value::from(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.set(field.name(), Value::from(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.set(field.name(), Value::from(value));
    }
}

#[cfg(test)]
#[path = "log_json_tests.rs"]
mod tests;
