//! Local state kept under `.pilum/` at the project root: the deploy lock (one run that changes
//! things at a time per project) and the deploy history (one JSON line per run).

pub mod guard;
pub mod history;
pub mod lock;
