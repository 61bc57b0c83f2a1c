//! Renderers: of orchestrator events (`render`: plain lines, NDJSON and the summary, with the
//! terminal view in `progress` and GitHub Actions groups, annotations and step summary in
//! `github`), of script events (`script`: `pilum run`), and aligned tables (`table`). Every
//! byte goes out through [`crate::output::Output`], except the pictures of `report` (HTML and
//! SVG files: the run report, the dependency graph), which the app layer writes.

pub(crate) mod github;
pub(crate) mod progress;
pub(crate) mod render;
pub(crate) mod report;
pub(crate) mod script;
pub(crate) mod table;
