//! Renderers: of orchestrator events (`render`: plain lines, NDJSON and the summary, with the
//! terminal view in `progress` and GitHub Actions groups, annotations and step summary in
//! `github`), of script events (`script`: `pilum run`), and aligned tables (`table`). Every
//! byte goes out through [`crate::output::Output`].

pub mod github;
pub mod progress;
pub mod render;
pub mod script;
pub mod table;
