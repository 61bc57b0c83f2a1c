//! The autoscaler: pools, signals, the per-pool decision loop, strategies (Rhai) and the Pulumi
//! actuator. See `docs/scaling.md` for the user-facing description.
//!
//! | file | owns |
//! |---|---|
//! | `pool.rs` | the pools file schema and validation (`pilum scale check`) |
//! | `strategy.rs` | compiling and calling strategy scripts |
//! | `signal.rs` | level signals and one-shot intents |
//! | `schedule.rs` | cron windows (`schedules:`) evaluated into level signals |
//! | `decide.rs` | desired-state records and guardrails |
//! | `actuator.rs` | Pulumi config writes, targeted `up`, previews |
//! | `scaler.rs` | the runtime: decision loops, apply lanes, recovery, reload |
//! | `audit.rs` | the JSONL audit log |
//! | `reload.rs` | file watching for hot reload |
//! | `simulate.rs` | offline replay |

pub mod actuator;
pub mod audit;
pub mod cli;
pub mod decide;
pub mod pool;
pub mod reload;
pub mod scaler;
pub mod schedule;
pub mod signal;
pub mod simulate;
pub mod strategy;
