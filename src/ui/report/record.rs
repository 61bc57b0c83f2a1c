//! The data of a run report. [`Recorder`] is one more sink of orchestrator events: it stamps
//! each event with the time since the plan was made and keeps what the pictures need — the
//! plan's services and tasks, each task's attempts, end or skip, and the last lines of its
//! output — as a [`Run`]. A `Run` is also the file saved under `.pilum/runs/` (JSON, versioned
//! by `format`) that `pilum report` renders again, so the live report and a later one come from
//! the same data. Recording changes nothing that runs.
//!
//! Every string is masked (`crate::redact`) and stripped of terminal escapes when it is kept,
//! and masked again by [`Recorder::finish`], for secrets registered after it was kept.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::orchestrator::event::{Counts, Event, Sink, Summary, TaskStatus};
use crate::orchestrator::plan::Plan;
use crate::sync::LockExt;

/// The version of the saved format; a file with another is refused with a clear error.
pub(crate) const FORMAT: u32 = 1;
/// Output lines kept per task (the last ones).
const TAIL_LINES: usize = 8;
/// Characters kept per output line, error or command.
const LINE_CHARS: usize = 240;
const ERROR_CHARS: usize = 2000;
/// Bytes of an output line kept until it is cleaned (escape codes still in).
const RAW_BYTES: usize = 4 * LINE_CHARS;

/// One run, as recorded.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Run {
    pub format: u32,
    /// `deploy`, `build`, `publish`, `push`.
    pub command: String,
    /// When the plan was made (RFC 3339, UTC); every `us` counts from there.
    pub started: String,
    pub tag: String,
    pub commit: Option<String>,
    pub dirty: bool,
    pub environment: Option<String>,
    pub dry_run: bool,
    pub phases: Vec<String>,
    pub services: Vec<Service>,
    pub tasks: Vec<Task>,
    /// What happened, in order, each at its time.
    pub events: Vec<Mark>,
    /// The executor's summary; absent when the run never finished.
    pub summary: Option<Totals>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Service {
    pub name: String,
    /// Why it was selected (`changed: …`, `depends on changed …`, `all services`, …).
    pub reason: String,
    /// Indices into [`Run::services`].
    pub depends_on: Vec<usize>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Task {
    pub id: usize,
    /// Index into [`Run::services`].
    pub service: usize,
    pub step: String,
    pub region: Option<String>,
    /// Index into [`Run::phases`].
    pub phase: usize,
    /// `service/step[@region]`.
    pub label: String,
    /// Tasks it waited for within its phase.
    pub after: Vec<usize>,
    /// What it runs: the command of a `shell` step, else the recipe's step function.
    pub command: Option<String>,
    /// The last lines it printed.
    pub output: Vec<String>,
}

/// A moment of the run; `us`: microseconds since the plan was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub(crate) enum Mark {
    /// The barrier before `phase` (index into [`Run::phases`]) opened.
    Phase {
        us: u64,
        phase: usize,
    },
    Started {
        us: u64,
        task: usize,
        attempt: u32,
    },
    /// Attempt `attempt` failed with `error`; the next starts after `delay_ms`.
    Retried {
        us: u64,
        task: usize,
        attempt: u32,
        delay_ms: u64,
        error: String,
    },
    Finished {
        us: u64,
        task: usize,
        status: Status,
        attempts: u32,
        duration_ms: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        /// `file:line` of the step in the service's `pilum.yaml`, for a failure.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at: Option<String>,
    },
    Skipped {
        us: u64,
        task: usize,
        reason: String,
    },
    /// The run ended.
    End {
        us: u64,
    },
}

impl Run {
    /// Whether every index in the run points where it should (a file read back may have been
    /// edited): task ids are their positions, services, phases and waits exist. The first
    /// problem, in words.
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.format != FORMAT {
            return Err(format!(
                "it has format {} (this pilum reads format {FORMAT})",
                self.format
            ));
        }
        let n = self.tasks.len();
        for (k, t) in self.tasks.iter().enumerate() {
            if t.id != k {
                return Err(format!("task {k} has id {}", t.id));
            }
            if t.service >= self.services.len() || t.phase >= self.phases.len() {
                return Err(format!(
                    "task `{}` names a service or phase that is not there",
                    t.label
                ));
            }
            if t.after.iter().any(|&a| a >= n) {
                return Err(format!("task `{}` waits for a task that is not there", t.label));
            }
        }
        if self.services.iter().any(|s| s.depends_on.iter().any(|&d| d >= self.services.len())) {
            return Err("a service depends on a service that is not there".into());
        }
        Ok(())
    }
}

impl Mark {
    pub(crate) fn us(&self) -> u64 {
        match self {
            Mark::Phase { us, .. }
            | Mark::Started { us, .. }
            | Mark::Retried { us, .. }
            | Mark::Finished { us, .. }
            | Mark::Skipped { us, .. }
            | Mark::End { us } => *us,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Status {
    Ok,
    Failed,
    TimedOut,
    Cancelled,
}

impl From<TaskStatus> for Status {
    fn from(s: TaskStatus) -> Self {
        match s {
            TaskStatus::Ok => Status::Ok,
            TaskStatus::Failed => Status::Failed,
            TaskStatus::TimedOut => Status::TimedOut,
            TaskStatus::Cancelled => Status::Cancelled,
        }
    }
}

/// The executor's end-of-run counts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Totals {
    /// `ok`, `interrupted` or `failed` ([`Summary::status`]).
    pub status: String,
    pub wall_ms: u64,
    pub services: Tally,
    pub tasks: Tally,
    /// Per service: `ok`, `failed`, `interrupted` or `skipped`.
    pub service_status: Vec<(String, String)>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Tally {
    pub total: usize,
    pub ok: usize,
    pub failed: usize,
    pub interrupted: usize,
    pub skipped: usize,
}

impl From<&Counts> for Tally {
    fn from(c: &Counts) -> Self {
        Tally {
            total: c.total,
            ok: c.ok,
            failed: c.failed,
            interrupted: c.interrupted,
            skipped: c.skipped,
        }
    }
}

impl From<&Summary> for Totals {
    fn from(s: &Summary) -> Self {
        Totals {
            status: s.status().to_string(),
            wall_ms: s.wall_ms,
            services: (&s.services).into(),
            tasks: (&s.tasks).into(),
            service_status: s.service_status.clone(),
        }
    }
}

/// Records a run from its events (see the module documentation).
pub(crate) struct Recorder {
    /// When the plan event arrived.
    origin: OnceLock<Instant>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    run: Run,
    /// Output kept per task id.
    tails: Vec<VecDeque<String>>,
    /// What each task runs, from [`Recorder::planned`].
    commands: Vec<Option<String>>,
}

impl Recorder {
    /// A recorder for a run of `command` (`deploy`, `build`, …).
    pub(crate) fn new(command: &str) -> Self {
        let run = Run { format: FORMAT, command: command.to_string(), ..Run::default() };
        Self { origin: OnceLock::new(), state: Mutex::new(State { run, ..State::default() }) }
    }

    /// Note what each task of the plan runs (the plan event does not say): the command of a
    /// step that declares one (the `shell` recipe), else `recipe::function`.
    pub(crate) fn planned(&self, plan: &Plan) {
        let commands = plan
            .tasks
            .iter()
            .map(|t| {
                let step = plan.step(t);
                let recipe = &plan.services[t.service].recipe.decl.name;
                Some(match step.decl.get("command").and_then(|c| c.clone().into_string().ok()) {
                    Some(c) => clean(&c, LINE_CHARS),
                    None => format!("{recipe}::{}", step.run),
                })
            })
            .collect();
        self.lock().commands = commands;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.locked()
    }

    fn now(&self) -> u64 {
        self.origin.get().map_or(0, |o| o.elapsed().as_micros() as u64)
    }

    /// The run so far, with its output tails and commands filled in, every string masked
    /// again. Call it once the run is over; recording may go on (a later call sees more).
    pub(crate) fn finish(&self) -> Run {
        let us = self.now();
        let st = self.lock();
        let mut run = st.run.clone();
        for t in &mut run.tasks {
            if let Some(tail) = st.tails.get(t.id) {
                t.output = tail.iter().map(|l| clean(l, LINE_CHARS)).collect();
            }
            if let Some(Some(c)) = st.commands.get(t.id) {
                t.command = Some(c.clone());
            }
        }
        if run.summary.is_some() && !matches!(run.events.last(), Some(Mark::End { .. })) {
            run.events.push(Mark::End { us });
        }
        mask(&mut run);
        run
    }

    fn plan(&self, st: &mut State, plan: &serde_json::Value) {
        let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
        let run = &mut st.run;
        run.started = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        run.tag = text(&plan["tag"]);
        run.commit = plan["commit"].as_str().map(str::to_string);
        run.dirty = plan["dirty"] == true;
        run.environment = plan["environment"].as_str().map(str::to_string);
        run.dry_run = plan["dry_run"] == true;
        let list = |v: &serde_json::Value| v.as_array().cloned().unwrap_or_default();
        run.phases = list(&plan["phases"]).iter().map(text).collect();
        let services = list(&plan["services"]);
        let index: HashMap<String, usize> =
            services.iter().enumerate().map(|(i, s)| (text(&s["name"]), i)).collect();
        let phase: HashMap<&str, usize> =
            run.phases.iter().enumerate().map(|(i, p)| (p.as_str(), i)).collect();
        run.services = services
            .iter()
            .map(|s| Service {
                name: clean(&text(&s["name"]), LINE_CHARS),
                reason: clean(&text(&s["reason"]), LINE_CHARS),
                depends_on: list(&s["depends_on"])
                    .iter()
                    .filter_map(|d| index.get(d.as_str()?).copied())
                    .collect(),
            })
            .collect();
        run.tasks = list(&plan["tasks"])
            .iter()
            .enumerate()
            .map(|(k, t)| {
                let service = index.get(&text(&t["service"])).copied().unwrap_or_default();
                let after: Vec<usize> = list(&t["after"])
                    .iter()
                    .filter_map(serde_json::Value::as_u64)
                    .map(|a| a as usize)
                    .collect();
                let step = text(&t["step"]);
                let region = t["region"].as_str().map(str::to_string);
                let label = match &region {
                    Some(r) => format!("{}/{step}@{r}", text(&t["service"])),
                    None => format!("{}/{step}", text(&t["service"])),
                };
                Task {
                    id: k,
                    service,
                    step,
                    region,
                    phase: phase.get(t["phase"].as_str().unwrap_or_default()).copied().unwrap_or(0),
                    label: clean(&label, LINE_CHARS),
                    after: after.into_iter().filter(|&a| a < k).collect(),
                    command: None,
                    output: Vec::new(),
                }
            })
            .collect();
        st.tails = vec![VecDeque::new(); st.run.tasks.len()];
    }

    /// Keep an output line, masked, escape codes still in (most are dropped again);
    /// [`Recorder::finish`] cleans the few that stay.
    fn keep(st: &mut State, task: usize, line: &str) {
        if let Some(t) = st.tails.get_mut(task) {
            let mut kept = if t.len() == TAIL_LINES {
                t.pop_front().unwrap_or_default()
            } else {
                String::new()
            };
            kept.clear();
            // Masked before it is cut, so that no part of a secret survives the cut.
            let line = crate::redact::redact(line);
            kept.push_str(&line[..floor(&line, RAW_BYTES)]);
            t.push_back(kept);
        }
    }
}

impl Sink for Recorder {
    fn event(&self, e: &Event) {
        if matches!(e, Event::Plan { .. }) {
            let _ = self.origin.set(Instant::now());
        }
        let us = self.now();
        let mut st = self.lock();
        let mark = match e {
            Event::Plan { plan } => {
                self.plan(&mut st, plan);
                return;
            }
            Event::PhaseStarted { phase, .. } => {
                let Some(p) = st.run.phases.iter().position(|x| x == phase) else { return };
                Mark::Phase { us, phase: p }
            }
            Event::TaskStarted { task, attempt } => {
                Mark::Started { us, task: task.id, attempt: *attempt }
            }
            Event::TaskOutput { task, line, .. } => {
                Self::keep(&mut st, task.id, line);
                return;
            }
            Event::TaskLog { task, level, message } => {
                let tag = match level.as_str() {
                    "warn" => "warning: ",
                    "error" => "error: ",
                    "debug" => "debug: ",
                    _ => "",
                };
                for l in message.lines() {
                    Self::keep(&mut st, task.id, &format!("{tag}{l}"));
                }
                return;
            }
            Event::TaskDryRun { task, call, detail } => {
                Self::keep(&mut st, task.id, &format!("would run {call} {detail}"));
                return;
            }
            Event::TaskRetried { task, attempt, delay_ms, error } => Mark::Retried {
                us,
                task: task.id,
                attempt: *attempt,
                delay_ms: *delay_ms,
                error: clean(error, ERROR_CHARS),
            },
            Event::TaskFinished { task, status, attempts, duration_ms, error, at, tail } => {
                // A failure's own tail is longer than what the output events left here.
                if !tail.is_empty()
                    && let Some(t) = st.tails.get_mut(task.id)
                {
                    t.clear();
                }
                for l in tail.iter().rev().take(TAIL_LINES).rev() {
                    Self::keep(&mut st, task.id, l);
                }
                Mark::Finished {
                    us,
                    task: task.id,
                    status: (*status).into(),
                    attempts: *attempts,
                    duration_ms: *duration_ms,
                    error: error.as_deref().map(|e| clean(e, ERROR_CHARS)),
                    at: at.as_ref().map(|a| format!("{}:{}", clean(&a.file, LINE_CHARS), a.line)),
                }
            }
            Event::TaskSkipped { task, reason } => {
                Mark::Skipped { us, task: task.id, reason: clean(reason, ERROR_CHARS) }
            }
            Event::Summary(s) => {
                st.run.summary = Some(s.into());
                Mark::End { us }
            }
        };
        st.run.events.push(mark);
    }
}

/// The largest char boundary of `s` at or below `max`.
fn floor(s: &str, max: usize) -> usize {
    if s.len() <= max {
        return s.len();
    }
    (0..=max).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0)
}

/// A string as kept: terminal escapes stripped, secrets masked, at most `max` characters.
fn clean(s: &str, max: usize) -> String {
    let plain = console::strip_ansi_codes(s);
    super::markup::cut(&crate::redact::redact(&plain), max).into_owned()
}

/// Mask every string of a run again.
fn mask(run: &mut Run) {
    let m = |s: &mut String| {
        if let std::borrow::Cow::Owned(o) = crate::redact::redact(s) {
            *s = o;
        }
    };
    let mo = |s: &mut Option<String>| {
        if let Some(s) = s {
            m(s);
        }
    };
    m(&mut run.tag);
    mo(&mut run.environment);
    for s in &mut run.services {
        m(&mut s.name);
        m(&mut s.reason);
    }
    for t in &mut run.tasks {
        m(&mut t.label);
        m(&mut t.step);
        mo(&mut t.region);
        mo(&mut t.command);
        t.output.iter_mut().for_each(m);
    }
    for e in &mut run.events {
        match e {
            Mark::Retried { error, .. } | Mark::Skipped { reason: error, .. } => m(error),
            Mark::Finished { error, at, .. } => {
                mo(error);
                mo(at);
            }
            _ => {}
        }
    }
    if let Some(t) = &mut run.summary {
        for (name, _) in &mut t.service_status {
            m(name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::orchestrator::event::TaskRef;

    fn task(id: usize, service: &str, step: &str) -> TaskRef {
        TaskRef {
            id,
            service: service.into(),
            step: step.into(),
            region: None,
            phase: step.into(),
            label: format!("{service}/{step}"),
        }
    }

    fn plan_event() -> Event {
        Event::Plan {
            plan: serde_json::json!({
                "tag": "v1", "commit": null, "dirty": false, "environment": null, "dry_run": false,
                "phases": ["build", "deploy"],
                "services": [
                    {"name": "db", "reason": "all services", "depends_on": []},
                    {"name": "api", "reason": "all services", "depends_on": ["db"]},
                ],
                "tasks": [
                    {"id": 0, "service": "db", "step": "build", "phase": "build", "after": []},
                    {"id": 1, "service": "api", "step": "build", "phase": "build", "after": [0]},
                    {"id": 2, "service": "api", "step": "deploy", "phase": "deploy", "after": []},
                ],
            }),
        }
    }

    #[test]
    fn records_the_plan_and_the_moments_in_order() {
        let r = Recorder::new("deploy");
        r.event(&plan_event());
        r.event(&Event::PhaseStarted { phase: "build".into(), tasks: 2 });
        r.event(&Event::TaskStarted { task: task(0, "db", "build"), attempt: 1 });
        r.event(&Event::TaskOutput {
            task: task(0, "db", "build"),
            stream: crate::orchestrator::event::Stream::Stdout,
            line: "\u{1b}[31mred\u{1b}[0m".into(),
        });
        r.event(&Event::TaskFinished {
            task: task(0, "db", "build"),
            status: TaskStatus::Ok,
            attempts: 1,
            duration_ms: 3,
            error: None,
            at: None,
            tail: Vec::new(),
        });
        r.event(&Event::TaskSkipped { task: task(2, "api", "deploy"), reason: "x".into() });
        let run = r.finish();
        assert_eq!(run.phases, ["build", "deploy"]);
        assert_eq!(run.services[1].depends_on, [0]);
        assert_eq!(run.tasks[1].after, [0]);
        assert_eq!(run.tasks[2].phase, 1);
        assert_eq!(run.tasks[0].output, ["red"]);
        assert!(matches!(run.events[0], Mark::Phase { phase: 0, .. }));
        assert!(run.events.windows(2).all(|w| w[0].us() <= w[1].us()));
        assert_eq!(run.events.len(), 4);
        let back: Run = serde_json::from_str(&serde_json::to_string(&run).unwrap()).unwrap();
        assert_eq!(back, run);
        assert_eq!(run.check(), Ok(()));
        let mut broken = run.clone();
        broken.tasks[1].after = vec![7];
        assert!(broken.check().unwrap_err().contains("api/build"));
    }

    #[test]
    fn output_is_bounded_and_masked() {
        crate::redact::register("recorder-secret-value");
        let r = Recorder::new("deploy");
        r.event(&plan_event());
        for i in 0..100 {
            r.event(&Event::TaskOutput {
                task: task(1, "api", "build"),
                stream: crate::orchestrator::event::Stream::Stderr,
                line: format!("{i} recorder-secret-value {}", "x".repeat(1000)),
            });
        }
        let run = r.finish();
        let out = &run.tasks[1].output;
        assert_eq!(out.len(), TAIL_LINES);
        assert!(out[0].starts_with("92 *** "), "{}", out[0]);
        assert!(out.iter().all(|l| l.chars().count() <= LINE_CHARS));
        // A secret across the raw cut, behind escape codes that leave room for it once removed.
        r.event(&Event::TaskOutput {
            task: task(0, "db", "build"),
            stream: crate::orchestrator::event::Stream::Stdout,
            line: format!("{}recorder-secret-value", "\u{1b}[0m".repeat(RAW_BYTES / 4 - 4)),
        });
        let out = &r.finish().tasks[0].output;
        assert_eq!(out.last().map(String::as_str), Some("***"));
    }
}
