//! The deploy orchestrator: a plan (services × steps, grouped into phases) and its execution
//! with barriers, a DAG, workers, retries, timeouts and cancellation, emitting events. `runner`
//! is the real task runner (recipe step functions); the wiring from configuration to a plan
//! and a rendered run is the app layer's (`crate::commands`).

pub(crate) mod event;
pub(crate) mod execute;
pub(crate) mod plan;
pub(crate) mod runner;
