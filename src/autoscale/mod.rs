//! The autoscaler: pools, signals, the per-pool decision loop, strategies (Rhai) and the Pulumi
//! actuator. See `docs/scaling.md` for the user-facing description.
//!
//! | file | owns |
//! |---|---|
//! | `adapters.rs` | webhook payloads (CloudWatch, Alertmanager, direct calls) into signal changes |
//! | `pool.rs` | the pools file schema and validation (`pilum scale check`) |
//! | `locate.rs` | positions of values in the pools file, by path |
//! | `strategy.rs` | compiling and calling strategy scripts |
//! | `signal.rs` | level signals and one-shot intents, and the bounds on their numbers |
//! | `schedule.rs` | cron windows (`schedules:`) evaluated into level signals |
//! | `ha.rs` | `--ha`: the shared state in Redis, the leader lease and its fencing token |
//! | `chatops.rs` | the scaler's events to the notifier runner: coalesced per pool, rate-limited, never waiting |
//! | `cadence.rs` | when a pool decides: bursts (debounce) and ticks, on any clock |
//! | `decide.rs` | desired-state records, guardrails, and the steps of one decision (shared with `simulate`) |
//! | `actuator.rs` | Pulumi config writes, targeted `up`, previews |
//! | `scaler.rs` | the runtime: shared state, start, reload, status, drain |
//! | `decision.rs` | the supervised decision loop, one decision, quarantine, dry runs |
//! | `drift.rs` | drift auto-refresh: periodic refresh previews and the drift policies |
//! | `apply.rs` | apply lanes: one `pulumi up` per stack for every due pool |
//! | `state.rs` | the state directory: its lock, records, the signals snapshot and recovery |
//! | `audit.rs` | the JSONL audit log (a writer thread) and the facade over the journal |
//! | `journal.rs` | the durable signal journal: leader/follower group commit in the request handlers |
//! | `reload.rs` | file watching for hot reload |
//! | `simulate.rs` | offline replay |
//! | `log.rs`, `metrics.rs` | the server log and the Prometheus metrics |
//!
//! `autoscale` never imports `server`: the server (HTTP, adapters, the `scale` commands) sits
//! above it.

pub(crate) mod actuator;
pub(crate) mod adapters;
pub(crate) mod apply;
pub(crate) mod audit;
pub(crate) mod cadence;
pub(crate) mod chatops;
pub(crate) mod decide;
pub(crate) mod decision;
pub(crate) mod drift;
pub(crate) mod ha;
pub(crate) mod journal;
pub(crate) mod locate;
pub(crate) mod log;
pub(crate) mod metrics;
pub(crate) mod pool;
pub(crate) mod reload;
pub(crate) mod scaler;
pub(crate) mod schedule;
pub(crate) mod signal;
pub(crate) mod simulate;
pub(crate) mod state;
pub(crate) mod strategy;
