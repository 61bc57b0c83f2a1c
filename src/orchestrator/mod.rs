//! The deploy orchestrator: build a plan (services × steps) and run it with barriers, a DAG,
//! workers, retries, timeouts and cancellation, emitting events.

pub mod event;
pub mod execute;
pub mod plan;

pub use event::{Event, Sink, Summary};
pub use execute::{Attempt, Cancel, Options, Runner, TaskFailure, execute};
pub use plan::{Plan, PlannedService, StepFilter};
