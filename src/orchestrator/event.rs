//! Events the executor emits. Every renderer (spinners, plain lines, NDJSON, GitHub Actions)
//! consumes the same stream; none of them changes what runs.

use serde::Serialize;

/// Which task an event is about.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct TaskRef {
    pub id: usize,
    pub service: String,
    pub step: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub phase: String,
    /// `service/step[@region]`.
    pub label: String,
}

/// Where a task is written in the user's files: the step in the service's `pilum.yaml` (the
/// file relative to the project root, 1-based line and column).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Location {
    pub file: String,
    pub line: usize,
    pub col: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum TaskStatus {
    Ok,
    Failed,
    TimedOut,
    Cancelled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Stream {
    Stdout,
    Stderr,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub(crate) enum Event {
    Plan {
        plan: serde_json::Value,
    },
    PhaseStarted {
        phase: String,
        tasks: usize,
    },
    TaskStarted {
        task: TaskRef,
        attempt: u32,
    },
    TaskOutput {
        task: TaskRef,
        stream: Stream,
        line: String,
    },
    /// A script's `print`, `debug` or `log::…` (`level`: print, debug, info, warn, error).
    TaskLog {
        task: TaskRef,
        level: String,
        message: String,
    },
    /// A mutating call recorded instead of executed under `--dry-run`.
    TaskDryRun {
        task: TaskRef,
        call: String,
        detail: String,
    },
    TaskRetried {
        task: TaskRef,
        attempt: u32,
        delay_ms: u64,
        error: String,
    },
    TaskFinished {
        task: TaskRef,
        status: TaskStatus,
        attempts: u32,
        duration_ms: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        /// Where the failed step is written in the service's `pilum.yaml`.
        #[serde(skip_serializing_if = "Option::is_none")]
        at: Option<Location>,
        /// The last lines the task printed, kept for failures.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        tail: Vec<String>,
    },
    TaskSkipped {
        task: TaskRef,
        reason: String,
    },
    Summary(Summary),
}

/// The end of a run. Services and tasks are counted separately.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Summary {
    pub ok: bool,
    pub interrupted: bool,
    /// A dry run: the steps recorded their mutating calls instead of making them.
    pub dry_run: bool,
    pub services: Counts,
    pub tasks: Counts,
    pub wall_ms: u64,
    /// The tasks that failed or timed out (interrupted ones are counted, not listed).
    pub failures: Vec<Failure>,
    /// Per service: `ok`, `failed`, `interrupted` or `skipped`.
    pub service_status: Vec<(String, String)>,
    /// Per service whose every task succeeded: its tasks' durations summed, in ms. The run
    /// history keeps it, and `--shard` balances by it.
    pub service_ms: std::collections::BTreeMap<String, u64>,
}

impl Summary {
    /// `ok`, `interrupted` or `failed`: the word a summary line and the step summary lead with.
    pub(crate) fn status(&self) -> &'static str {
        if self.ok {
            "ok"
        } else if self.interrupted {
            "interrupted"
        } else {
            "failed"
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Counts {
    pub total: usize,
    pub ok: usize,
    pub failed: usize,
    /// Stopped by Ctrl-C while running.
    pub interrupted: usize,
    pub skipped: usize,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Failure {
    pub task: String,
    pub error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at: Option<Location>,
}

/// A consumer of events. Called from worker threads.
pub(crate) trait Sink: Sync {
    fn event(&self, e: &Event);
}
