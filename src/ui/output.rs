//! `Output`: how pilum prints for humans. Every human-facing line goes through here so colour,
//! `NO_COLOR`, `--quiet`, `--json` and secret redaction are decided in one place.

use std::io::Write;

use console::{Style, Term};

use crate::cli::{ColorChoice, GlobalArgs};

/// Printing settings derived from the global flags.
#[derive(Debug, Clone)]
pub struct Output {
    pub quiet: bool,
    pub verbose: u8,
    pub json: bool,
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
        let _ = writeln!(err, "{prefix}: {message}");
    }

    /// Print a warning to stderr (suppressed by `-q`).
    pub fn warn(&self, message: &str) {
        if self.quiet {
            return;
        }
        let prefix = Style::new().yellow().bold().apply_to("warning");
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{prefix}: {message}");
    }

    /// Print an informational line to stderr (suppressed by `-q` and `--json`).
    pub fn info(&self, message: &str) {
        if self.quiet || self.json {
            return;
        }
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{message}");
    }
}
