//! Local state kept under `.pilum/` at the project root: the deploy lock (one run that changes
//! things at a time per project), the deploy history (one JSON line per run) and the saved
//! runs the run report is drawn from (`runs/`).

pub mod guard;
pub mod history;
pub mod lock;
pub mod runs;
