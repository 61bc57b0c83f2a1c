//! The renderer of script events (`pilum run`, `pilum api`): [`Output`] as a [`Sink`]. Prints go
//! to stdout, logs to stderr, command output only with `-v`, dry-run records to stdout; one
//! NDJSON event per line with `--json`.

use crate::output::Output;
use crate::script::{Event, LogLevel, Sink};

/// `[label] text`, the label dimmed; plain text for an unlabelled (top-level) script.
fn labelled(label: &str, text: &str, stderr: bool) -> String {
    if label.is_empty() {
        return text.to_string();
    }
    let style = if stderr { Output::err_style() } else { Output::style() };
    format!("{} {text}", style.dim().apply_to(format!("[{label}]")))
}

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
            Event::Print(text) => self.stdout_line(&labelled(label, text, false)),
            Event::Debug(text) => {
                if self.verbose > 0 {
                    self.info(&labelled(label, &format!("debug: {text}"), true));
                }
            }
            Event::Log { level: LogLevel::Info, message } => {
                self.info(&labelled(label, message, true));
            }
            Event::Log { level: LogLevel::Warn, message } => {
                self.warn(&labelled(label, message, true));
            }
            Event::Log { level: LogLevel::Error, message } => {
                self.error(&labelled(label, message, true));
            }
            Event::Line { line, .. } => {
                if self.verbose > 0 && !self.quiet {
                    let bar = Output::err_style().dim().apply_to("|");
                    self.info(&labelled(label, &format!("{bar} {line}"), true));
                }
            }
            Event::DryRun { call, detail } => {
                let tag = Output::style().cyan().apply_to("dry-run");
                self.stdout_line(&labelled(label, &format!("{tag} {call}: {detail}"), false));
            }
        }
    }
}
