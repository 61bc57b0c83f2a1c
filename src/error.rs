//! The top-level error type. Each subsystem owns its own error enum (data, not prose); this one
//! wraps them and decides the exit code. All wording lives in `Display` impls; `run` prints the
//! error exactly once. A configuration error keeps its located problems ([`Diagnostic`]s) next to
//! the rendered text, so `--json` and CI annotations can give each one's file, line and column.

use std::fmt;

use crate::diagnostic::{Diagnostic, render_all};

/// Exit codes shared by every command.
pub(crate) mod exit {
    pub(crate) const OK: i32 = 0;
    /// A task, script or command failed.
    pub(crate) const FAILURE: i32 = 1;
    /// Configuration or usage error: nothing ran.
    pub(crate) const USAGE: i32 = 2;
    /// Interrupted by Ctrl-C / SIGINT.
    pub(crate) const INTERRUPTED: i32 = 130;
}

/// An error that ends a command. `code` is the process exit code.
#[derive(Debug)]
pub(crate) struct Error {
    pub code: i32,
    pub message: String,
    /// The located problems `message` renders, when it is a configuration error.
    pub diagnostics: Vec<Diagnostic>,
}

impl Error {
    pub(crate) fn usage(message: impl fmt::Display) -> Self {
        Self { code: exit::USAGE, message: message.to_string(), diagnostics: Vec::new() }
    }

    pub(crate) fn failure(message: impl fmt::Display) -> Self {
        Self { code: exit::FAILURE, message: message.to_string(), diagnostics: Vec::new() }
    }

    /// A configuration error made of located problems (exit 2), rendered all at once.
    pub(crate) fn located(diagnostics: Vec<Diagnostic>) -> Self {
        Self { code: exit::USAGE, message: render_all(&diagnostics), diagnostics }
    }

    /// An error that was already reported (e.g. a deploy summary); exits without printing.
    pub(crate) fn silent(code: i32) -> Self {
        Self { code, message: String::new(), diagnostics: Vec::new() }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;
