//! The deploy orchestrator: a plan (services × steps, grouped into phases) and its execution
//! with barriers, a DAG, workers, retries, timeouts and cancellation, emitting events. `runner`
//! is the real task runner (recipe step functions); the wiring from configuration to a plan
//! and a rendered run is the app layer's (`crate::commands`).

pub mod event;
pub mod execute;
pub mod plan;
pub mod runner;
