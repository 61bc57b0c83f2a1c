//! Renderers: of orchestrator events (`render`: spinners, plain lines, NDJSON, GitHub Actions
//! annotations and the summary), of script events (`script`: `pilum run`), and aligned tables
//! (`table`). Every byte goes out through [`crate::output::Output`].

pub mod render;
pub mod script;
pub mod table;
