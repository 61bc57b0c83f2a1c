//! `Output`: how pilum prints for humans. Every human-facing line goes through here so colour,
//! `NO_COLOR`, `--quiet`, `--json` and secret redaction are decided in one place.

use std::io::Write;

use console::{Style, Term};

use crate::cli::{ColorChoice, GlobalArgs};
use crate::redact::redact;
use crate::script::{Event, LogLevel, Sink};

/// Printing settings derived from the global flags.
#[derive(Debug, Clone)]
pub struct Output {
    pub quiet: bool,
    pub verbose: u8,
    pub json: bool,
    #[allow(dead_code, reason = "for renderers that style without `console`")]
    pub color: bool,
}

impl Output {
    pub fn from_global(g: &GlobalArgs) -> Self {
        let color = match g.color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                    && Term::stderr().features().colors_supported()
            }
        };
        console::set_colors_enabled(color);
        console::set_colors_enabled_stderr(color);
        Self { quiet: g.quiet, verbose: g.verbose, json: g.json, color }
    }

    /// Print an error (always, even with `-q`). Multi-line messages keep their layout; the
    /// first line gets the `error:` prefix.
    pub fn error(&self, message: &str) {
        let prefix = Style::new().red().bold().apply_to("error");
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{prefix}: {}", redact(message));
    }

    /// Print a warning to stderr (suppressed by `-q`).
    pub fn warn(&self, message: &str) {
        if self.quiet {
            return;
        }
        let prefix = Style::new().yellow().bold().apply_to("warning");
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{prefix}: {}", redact(message));
    }

    /// Print a progress/info line to stderr (suppressed by `-q` and `--json`).
    pub fn info(&self, message: &str) {
        if self.quiet || self.json {
            return;
        }
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{}", redact(message));
    }

    /// Print a line of program output to stdout (the script's `print`), secrets masked.
    pub fn stdout_line(&self, text: &str) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", redact(text));
    }

    /// Print one JSON value as a line on stdout (`--json`), secrets masked in the serialized
    /// text so no field can leak one.
    pub fn json_line(&self, value: &serde_json::Value) {
        let text = value.to_string();
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", redact(&text));
    }

    fn labelled(label: &str, text: &str) -> String {
        if label.is_empty() {
            text.to_string()
        } else {
            format!("{} {text}", Style::new().dim().apply_to(format!("[{label}]")))
        }
    }
}

/// `Output` as the sink of script events (`pilum run`): prints go to stdout, logs to stderr,
/// command output only with `-v`, dry-run records to stdout; NDJSON events with `--json`.
impl Sink for Output {
    fn event(&self, label: &str, event: Event<'_>) {
        if self.json {
            let v = match event {
                Event::Print(text) => {
                    serde_json::json!({"event": "print", "label": label, "text": text})
                }
                Event::Debug(text) => {
                    serde_json::json!({"event": "debug", "label": label, "text": text})
                }
                Event::Log { level, message } => {
                    serde_json::json!({"event": "log", "label": label, "level": level.as_str(), "message": message})
                }
                Event::Line { stream, line } => {
                    if self.verbose == 0 {
                        return;
                    }
                    serde_json::json!({"event": "output", "label": label, "stream": stream.as_str(), "line": line})
                }
                Event::DryRun { call, detail } => {
                    serde_json::json!({"event": "dry_run", "label": label, "call": call, "detail": detail})
                }
            };
            self.json_line(&v);
            return;
        }
        match event {
            Event::Print(text) => self.stdout_line(&Self::labelled(label, text)),
            Event::Debug(text) => {
                if self.verbose > 0 {
                    self.info(&Self::labelled(label, &format!("debug: {text}")));
                }
            }
            Event::Log { level: LogLevel::Info, message } => {
                self.info(&Self::labelled(label, message))
            }
            Event::Log { level: LogLevel::Warn, message } => {
                self.warn(&Self::labelled(label, message))
            }
            Event::Log { level: LogLevel::Error, message } => {
                let prefix = Style::new().red().bold().apply_to("error");
                let mut err = std::io::stderr().lock();
                let _ = writeln!(err, "{prefix}: {}", redact(&Self::labelled(label, message)));
            }
            Event::Line { line, .. } => {
                if self.verbose > 0 && !self.quiet {
                    let bar = Style::new().dim().apply_to("|");
                    self.info(&Self::labelled(label, &format!("{bar} {line}")));
                }
            }
            Event::DryRun { call, detail } => {
                let tag = Style::new().cyan().apply_to("dry-run");
                self.stdout_line(&Self::labelled(label, &format!("{tag} {call}: {detail}")));
            }
        }
    }
}
