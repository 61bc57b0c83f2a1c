//! The server's log: one line per event on stderr, human (`event key=value …`) or JSON
//! (`--log-format json`). Callers pass only fields that are safe to show; tokens and request
//! bodies are never logged.

use std::io::Write;
use std::sync::OnceLock;

/// The log of this process, once `serve` installed it.
static CURRENT: OnceLock<Log> = OnceLock::new();

/// The installed log (human lines until `serve` installs its own): for code that runs inside
/// the server without a handle on it, such as strategy output.
pub(crate) fn current() -> Log {
    CURRENT.get().copied().unwrap_or(Log { format: Format::Human, quiet: false })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Human,
    Json,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Log {
    pub format: Format,
    pub quiet: bool,
}

impl Log {
    /// Make this the log [`current`] returns (the first call wins).
    pub(crate) fn install(self) {
        let _ = CURRENT.set(self);
    }

    fn emit(&self, level: &str, event: &str, fields: &[(&str, &str)]) {
        if self.quiet && level == "info" {
            return;
        }
        let mut err = std::io::stderr().lock();
        match self.format {
            Format::Json => {
                let mut obj = serde_json::Map::new();
                obj.insert(
                    "time".into(),
                    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true).into(),
                );
                obj.insert("level".into(), level.into());
                obj.insert("event".into(), event.into());
                for (k, v) in fields {
                    obj.insert((*k).into(), (*v).into());
                }
                let _ = writeln!(err, "{}", serde_json::Value::Object(obj));
            }
            Format::Human => {
                let mut line = format!("{level}: {event}");
                for (k, v) in fields {
                    if v.contains(char::is_whitespace) || v.is_empty() {
                        line.push_str(&format!(" {k}={v:?}"));
                    } else {
                        line.push_str(&format!(" {k}={v}"));
                    }
                }
                let _ = writeln!(err, "{line}");
            }
        }
    }

    pub(crate) fn info(&self, event: &str, fields: &[(&str, &str)]) {
        self.emit("info", event, fields);
    }

    pub(crate) fn warn(&self, event: &str, fields: &[(&str, &str)]) {
        self.emit("warn", event, fields);
    }

    pub(crate) fn error(&self, event: &str, fields: &[(&str, &str)]) {
        self.emit("error", event, fields);
    }
}
