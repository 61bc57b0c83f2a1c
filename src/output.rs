//! `Output`: every byte pilum writes on stdout and stderr goes through here, so colour,
//! `NO_COLOR`, `--quiet`, `--json` and secret redaction are decided in one place.
//!
//! Colour is decided per stream: `pilum list > out.txt` from a terminal writes no escape codes
//! into the file while its warnings on the terminal stay coloured. Text styled for stderr uses
//! [`Output::err_style`] (console's `for_stderr`), text for stdout [`Output::style`].
//!
//! Every method masks registered secrets (`crate::redact`) in the final text, JSON included, so
//! no caller has to remember to.

use std::borrow::Cow;
use std::io::Write;

use console::{Style, Term};
use serde::Serialize;

use crate::cli::{ColorChoice, GlobalArgs};
use crate::redact::redact;

/// Printing settings derived from the global flags.
#[derive(Debug, Clone)]
pub(crate) struct Output {
    pub quiet: bool,
    pub verbose: u8,
    pub json: bool,
}

/// Whether a stream gets colour: `--color`, then `NO_COLOR`, then whether it is a terminal
/// that supports colour.
fn colour(choice: ColorChoice, term: &Term) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                && term.features().colors_supported()
        }
    }
}

impl Output {
    pub(crate) fn from_global(g: &GlobalArgs) -> Self {
        console::set_colors_enabled(colour(g.color, &Term::stdout()));
        console::set_colors_enabled_stderr(colour(g.color, &Term::stderr()));
        Self { quiet: g.quiet, verbose: g.verbose, json: g.json }
    }

    /// A style for text printed on stdout (coloured only when stdout gets colour).
    pub(crate) fn style() -> Style {
        Style::new()
    }

    /// A style for text printed on stderr (coloured only when stderr gets colour).
    pub(crate) fn err_style() -> Style {
        Style::new().for_stderr()
    }

    /// Mask registered secrets, for text that leaves pilum another way (a progress bar, a
    /// file such as the GitHub step summary).
    pub(crate) fn clean(text: &str) -> Cow<'_, str> {
        redact(text)
    }

    /// Print an error (always, even with `-q`). Multi-line messages keep their layout; the
    /// first line gets the `error:` prefix.
    pub(crate) fn error(&self, message: &str) {
        let prefix = Self::err_style().red().bold().apply_to("error");
        self.stderr_line(&format!("{prefix}: {message}"));
    }

    /// Print a warning to stderr (suppressed by `-q`).
    pub(crate) fn warn(&self, message: &str) {
        if self.quiet {
            return;
        }
        let prefix = Self::err_style().yellow().bold().apply_to("warning");
        self.stderr_line(&format!("{prefix}: {message}"));
    }

    /// Print a progress/info line to stderr (suppressed by `-q` and `--json`).
    pub(crate) fn info(&self, message: &str) {
        if self.quiet || self.json {
            return;
        }
        self.stderr_line(message);
    }

    /// Print a line on stderr as it is (no prefix, not suppressed), secrets masked.
    pub(crate) fn stderr_line(&self, text: &str) {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{}", redact(text));
    }

    /// Print text on stderr without a newline (a prompt), secrets masked.
    pub(crate) fn stderr_text(&self, text: &str) {
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "{}", redact(text));
        let _ = err.flush();
    }

    /// Print a line of program output to stdout (the script's `print`), secrets masked.
    pub(crate) fn stdout_line(&self, text: &str) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", redact(text));
    }

    /// Print one JSON value as a line on stdout (`--json`), secrets masked in the serialized
    /// text so no field can leak one.
    pub(crate) fn json_line(&self, value: &impl Serialize) {
        match serde_json::to_string(value) {
            Ok(text) => self.stdout_line(&text),
            Err(e) => self.error(&format!(
                "cannot serialize a JSON line: {e}\nhelp: this is a bug in pilum; please report it"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_and_always_ignore_the_terminal() {
        assert!(!colour(ColorChoice::Never, &Term::stdout()));
        assert!(colour(ColorChoice::Always, &Term::stdout()));
    }
}
