//! Renderers of orchestrator events: spinners (TTY), plain lines (CI), NDJSON (`--json`), GitHub
//! Actions annotations and the summary; plus [`output::Output`], the one place human text is
//! printed (colour, `NO_COLOR`, `-q`, secret redaction).

pub mod output;
pub mod render;
pub mod table;
