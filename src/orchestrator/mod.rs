//! The deploy orchestrator: build a plan (services × steps) and run it with barriers, a DAG,
//! workers, retries, timeouts and cancellation, emitting events. `pipeline` turns configuration
//! into a valid plan; `commands` are the CLI entry points.

pub mod commands;
pub mod event;
pub mod execute;
pub mod pipeline;
pub mod plan;
