//! The executor: runs a [`Plan`] phase by phase (barriers), each phase as a DAG on a pool of
//! `workers` threads, with retries (exponential backoff with jitter), timeouts and cancellation,
//! emitting [`Event`]s. What a task *does* is behind [`Runner`], so scheduling is tested with
//! fake runners and the real one runs recipe step functions.
//!
//! Failure rules: a failed task skips the rest of its service and every service depending on it,
//! with the reason. Other tasks of the phase finish. Unless `keep_going`, no later phase starts
//! after a failure. On cancellation running tasks are killed (by the runner, through the cancel
//! token) and everything not started is skipped.

use std::collections::{HashMap, VecDeque};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use rhai::Map;

use crate::backoff::{Backoff, Jitter};

/// The longest wait between two attempts of a step, however many retries are asked for.
pub(crate) const RETRY_DELAY_CAP: Duration = Duration::from_secs(600);

use super::event::{Counts, Event, Failure, Location, Sink, Summary, TaskRef, TaskStatus};
use super::plan::{Plan, Task};
use crate::sync::LockExt;

/// Shared cancellation (Ctrl-C): the process layer's token, which also kills the process
/// groups of running children.
pub(crate) use crate::process::CancelToken as Cancel;

#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub workers: usize,
    /// `--retries`: overrides every step's `retries` when given (0 = one attempt).
    pub retries: Option<u32>,
    /// Delay before the first retry; doubles each attempt (capped at [`RETRY_DELAY_CAP`]),
    /// plus up to 50% jitter.
    pub retry_delay: Duration,
    pub keep_going: bool,
    /// Timeout for steps that declare none.
    pub default_timeout: Option<Duration>,
}

/// How one attempt failed.
#[derive(Debug, Clone)]
pub(crate) struct TaskFailure {
    pub message: String,
    pub timed_out: bool,
    pub cancelled: bool,
    pub tail: Vec<String>,
    /// Where the step is written in the service's `pilum.yaml`, when the runner knows.
    pub at: Option<Location>,
}

impl TaskFailure {
    /// A plain failure with `message` and nothing else known.
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            timed_out: false,
            cancelled: false,
            tail: Vec::new(),
            at: None,
        }
    }
}

/// What the executor hands a runner for one attempt.
pub(crate) struct Attempt<'a> {
    pub plan: &'a Plan,
    pub task: &'a Task,
    pub label: &'a TaskRef,
    pub attempt: u32,
    /// Maps returned by earlier steps of this service (per region for regional tasks).
    pub outputs: Map,
    pub timeout: Option<Duration>,
    pub cancel: &'a Cancel,
}

pub(crate) trait Runner: Sync {
    /// Run one attempt; `Ok(Some(map))` records the step's outputs.
    fn run(&self, a: &Attempt<'_>) -> Result<Option<Map>, TaskFailure>;

    /// Before phase `phase` starts (other runners' barriers): `Err(why)` skips it and every
    /// later phase with that reason.
    fn phase_starting(&self, _phase: &str) -> Result<(), String> {
        Ok(())
    }

    /// Phase `phase` has ended; `ok` false: a task of it failed.
    fn phase_ended(&self, _phase: &str, _ok: bool) {}
}

#[derive(Debug, Clone, PartialEq)]
enum State {
    Pending,
    Done(TaskStatus),
    Skipped,
}

/// Outputs of finished steps: per service, step name → map (regional steps: region → map).
#[derive(Default)]
struct Outputs {
    base: HashMap<(usize, String), Map>,
    regional: HashMap<(usize, String), HashMap<String, Map>>,
}

impl Outputs {
    fn for_task(&self, plan: &Plan, t: &Task) -> Map {
        let mut m = Map::new();
        for st in &plan.services[t.service].steps {
            let key = (t.service, st.name.clone());
            if let Some(v) = self.base.get(&key) {
                m.insert(st.name.as_str().into(), v.clone().into());
            }
            if let Some(by_region) = self.regional.get(&key) {
                match &t.region {
                    Some(r) => {
                        if let Some(v) = by_region.get(r) {
                            m.insert(st.name.as_str().into(), v.clone().into());
                        }
                    }
                    None => {
                        let all: Map = by_region
                            .iter()
                            .map(|(r, v)| (r.as_str().into(), v.clone().into()))
                            .collect();
                        m.insert(st.name.as_str().into(), all.into());
                    }
                }
            }
        }
        m
    }
}

/// What the workers share, behind the scheduler's one lock.
struct Shared {
    state: Vec<State>,
    /// Per task: dependencies not finished yet.
    remaining: Vec<usize>,
    ready: VecDeque<usize>,
    running: usize,
    /// Why a service cannot continue (its own failure or a failed dependency).
    blocked: Vec<Option<String>>,
    /// Per service: the time its tasks took, summed (what `--shard` weighs it by next time).
    busy_ms: Vec<u64>,
}

pub(crate) fn task_ref(plan: &Plan, t: &Task) -> TaskRef {
    let s = &plan.services[t.service];
    TaskRef {
        id: t.id,
        service: s.name.clone(),
        step: s.steps[t.step].name.clone(),
        region: t.region.clone(),
        phase: plan.phases[t.phase].clone(),
        label: plan.label(t),
    }
}

/// Run the plan to the end (or cancellation) and return the summary (also emitted).
pub(crate) fn execute(
    plan: &Plan,
    runner: &dyn Runner,
    opts: &Options,
    sink: &dyn Sink,
    cancel: &Cancel,
) -> Summary {
    Scheduler::new(plan, runner, opts, sink, cancel).run()
}

/// One run: the phases in order, each on a pool of worker threads that take ready tasks,
/// attempt them (with retries), record their outcome and release or skip what waits on them.
struct Scheduler<'a> {
    plan: &'a Plan,
    runner: &'a dyn Runner,
    opts: &'a Options,
    sink: &'a dyn Sink,
    cancel: &'a Cancel,
    refs: Vec<TaskRef>,
    /// Per task: the tasks that depend on it.
    rdeps: Vec<Vec<usize>>,
    shared: Mutex<Shared>,
    /// Signalled when a task finishes (new ready tasks, or the phase may be over).
    wake: Condvar,
    outputs: Mutex<Outputs>,
    failures: Mutex<Vec<Failure>>,
}

impl<'a> Scheduler<'a> {
    fn new(
        plan: &'a Plan,
        runner: &'a dyn Runner,
        opts: &'a Options,
        sink: &'a dyn Sink,
        cancel: &'a Cancel,
    ) -> Self {
        let n = plan.tasks.len();
        let mut rdeps = vec![Vec::new(); n];
        for t in &plan.tasks {
            for &d in &t.deps {
                rdeps[d].push(t.id);
            }
        }
        Self {
            plan,
            runner,
            opts,
            sink,
            cancel,
            refs: plan.tasks.iter().map(|t| task_ref(plan, t)).collect(),
            rdeps,
            shared: Mutex::new(Shared {
                state: vec![State::Pending; n],
                remaining: plan.tasks.iter().map(|t| t.deps.len()).collect(),
                ready: VecDeque::new(),
                running: 0,
                blocked: vec![None; plan.services.len()],
                busy_ms: vec![0; plan.services.len()],
            }),
            wake: Condvar::new(),
            outputs: Mutex::new(Outputs::default()),
            failures: Mutex::new(Vec::new()),
        }
    }

    fn emit(&self, e: Event) {
        self.sink.event(&e);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.locked()
    }

    fn run(self) -> Summary {
        let start = Instant::now();
        let mut any_failed = false;
        let mut stopped: Option<String> = None;
        for p in 0..self.plan.phases.len() {
            let ids: Vec<usize> =
                self.plan.tasks.iter().filter(|t| t.phase == p).map(|t| t.id).collect();
            let runs = (!any_failed || self.opts.keep_going) && !self.cancel.is_cancelled();
            if stopped.is_none()
                && runs
                && let Err(why) = self.runner.phase_starting(&self.plan.phases[p])
            {
                stopped = Some(format!("not started: {why}"));
            }
            if !self.start_phase(&ids, any_failed, stopped.as_deref()) {
                any_failed |= stopped.is_some();
                continue;
            }
            self.emit(Event::PhaseStarted { phase: self.plan.phases[p].clone(), tasks: ids.len() });
            let workers = self.opts.workers.max(1).min(ids.len().max(1));
            std::thread::scope(|scope| {
                for _ in 0..workers {
                    scope.spawn(|| self.worker());
                }
            });
            let failed = self.finish_phase(&ids);
            self.runner.phase_ended(&self.plan.phases[p], !failed);
            any_failed |= failed;
        }
        self.summary(start, stopped)
    }

    /// Skip what cannot start (cancelled, an earlier phase failed, a barrier stopped the run, a
    /// blocked service) and queue
    /// the tasks without dependencies. False when nothing of the phase is left to run.
    fn start_phase(&self, ids: &[usize], any_failed: bool, stopped: Option<&str>) -> bool {
        let mut sh = self.lock();
        propagate_blocked(self.plan, &mut sh.blocked);
        for &id in ids {
            let t = &self.plan.tasks[id];
            let reason = if self.cancel.is_cancelled() {
                Some("interrupted".to_string())
            } else if let Some(why) = stopped {
                Some(why.to_string())
            } else if any_failed && !self.opts.keep_going {
                Some("not started: an earlier phase failed (use --keep-going to continue other services)".to_string())
            } else {
                sh.blocked[t.service].clone()
            };
            if let Some(r) = reason {
                sh.state[id] = State::Skipped;
                self.emit(Event::TaskSkipped { task: self.refs[id].clone(), reason: r });
            } else if sh.remaining[id] == 0 {
                sh.ready.push_back(id);
            }
        }
        !ids.iter().all(|&id| sh.state[id] == State::Skipped)
    }

    /// After the phase's workers stopped: skip what never started; true when a task failed.
    fn finish_phase(&self, ids: &[usize]) -> bool {
        let mut failed = false;
        let mut sh = self.lock();
        for &id in ids {
            match sh.state[id] {
                State::Pending => {
                    sh.state[id] = State::Skipped;
                    let reason = if self.cancel.is_cancelled() {
                        "interrupted"
                    } else {
                        "not started: a task it waits for did not run"
                    };
                    self.emit(Event::TaskSkipped {
                        task: self.refs[id].clone(),
                        reason: reason.into(),
                    });
                }
                State::Done(s) if s != TaskStatus::Ok => failed = true,
                _ => {}
            }
        }
        sh.ready.clear();
        failed
    }

    /// Take ready tasks until the phase is done (nothing ready, nothing running) or cancelled.
    fn worker(&self) {
        while let Some(id) = self.next() {
            let started = Instant::now();
            let (result, attempts) = self.attempt(id);
            self.finish(id, result, attempts, started.elapsed());
        }
    }

    /// The next ready task, waiting while others run; `None` when the phase is over.
    fn next(&self) -> Option<usize> {
        let mut sh = self.lock();
        loop {
            if self.cancel.is_cancelled() {
                self.wake.notify_all();
                return None;
            }
            if let Some(id) = sh.ready.pop_front() {
                sh.running += 1;
                return Some(id);
            }
            if sh.running == 0 {
                self.wake.notify_all();
                return None;
            }
            sh = self.wake.wait_timeout(sh, Duration::from_millis(50)).expect("scheduler lock").0;
        }
    }

    /// Run a task's attempts: retried after the backoff delay until it succeeds, the tries
    /// are used up, or the run is cancelled. Returns the outcome and the attempts made.
    fn attempt(&self, id: usize) -> (Result<Option<Map>, TaskFailure>, u32) {
        let t = &self.plan.tasks[id];
        let step = self.plan.step(t);
        let tries = 1 + self.opts.retries.unwrap_or(step.retries.unwrap_or(0));
        let timeout = step.timeout.or(self.opts.default_timeout);
        let mut attempt = 1;
        loop {
            self.emit(Event::TaskStarted { task: self.refs[id].clone(), attempt });
            let outputs = self.outputs.locked().for_task(self.plan, t);
            let a = Attempt {
                plan: self.plan,
                task: t,
                label: &self.refs[id],
                attempt,
                outputs,
                timeout,
                cancel: self.cancel,
            };
            match self.runner.run(&a) {
                Ok(v) => return (Ok(v), attempt),
                Err(f) if f.cancelled || self.cancel.is_cancelled() || attempt >= tries => {
                    return (Err(f), attempt);
                }
                Err(f) => {
                    let delay = retry_delay(self.opts.retry_delay, attempt);
                    self.emit(Event::TaskRetried {
                        task: self.refs[id].clone(),
                        attempt,
                        delay_ms: delay.as_millis() as u64,
                        error: f.message.clone(),
                    });
                    if !self.cancel.sleep(delay) {
                        let interrupted =
                            TaskFailure { cancelled: true, ..TaskFailure::new("interrupted") };
                        return (Err(interrupted), attempt);
                    }
                    attempt += 1;
                }
            }
        }
    }

    /// Record a finished task: its outputs, its failure, its event; then release the tasks
    /// waiting on it, or skip them (transitively, within the phase) when it failed.
    fn finish(
        &self,
        id: usize,
        result: Result<Option<Map>, TaskFailure>,
        attempts: u32,
        took: Duration,
    ) {
        let t = &self.plan.tasks[id];
        let status = match &result {
            Ok(_) => TaskStatus::Ok,
            Err(f) if f.cancelled => TaskStatus::Cancelled,
            Err(f) if f.timed_out => TaskStatus::TimedOut,
            Err(_) => TaskStatus::Failed,
        };
        let (error, tail, at) = match result {
            Ok(Some(map)) => {
                let mut o = self.outputs.locked();
                let key = (t.service, self.plan.step(t).name.clone());
                match &t.region {
                    Some(r) => {
                        o.regional.entry(key).or_default().insert(r.clone(), map);
                    }
                    None => {
                        o.base.insert(key, map);
                    }
                }
                (None, Vec::new(), None)
            }
            Ok(None) => (None, Vec::new(), None),
            Err(f) => {
                if status != TaskStatus::Cancelled {
                    self.failures.locked().push(Failure {
                        task: self.refs[id].label.clone(),
                        error: f.message.clone(),
                        at: f.at.clone(),
                    });
                }
                (Some(f.message), f.tail, f.at)
            }
        };
        self.emit(Event::TaskFinished {
            task: self.refs[id].clone(),
            status,
            attempts,
            duration_ms: took.as_millis() as u64,
            error,
            at,
            tail,
        });
        let mut sh = self.lock();
        sh.running -= 1;
        sh.state[id] = State::Done(status);
        sh.busy_ms[t.service] = sh.busy_ms[t.service]
            .saturating_add(u64::try_from(took.as_millis()).unwrap_or(u64::MAX));
        if status == TaskStatus::Ok {
            for &r in &self.rdeps[id] {
                sh.remaining[r] -= 1;
                if sh.remaining[r] == 0 && sh.state[r] == State::Pending {
                    sh.ready.push_back(r);
                }
            }
        } else {
            self.skip_dependents(&mut sh, id, status);
        }
        drop(sh);
        self.wake.notify_all();
    }

    /// Block the failed task's service and skip everything in this phase that waits on it.
    fn skip_dependents(&self, sh: &mut Shared, id: usize, status: TaskStatus) {
        let t = &self.plan.tasks[id];
        let svc = &self.plan.services[t.service].name;
        let why = if status == TaskStatus::Cancelled {
            "interrupted".to_string()
        } else {
            format!("`{}` failed", self.refs[id].label)
        };
        if sh.blocked[t.service].is_none() {
            sh.blocked[t.service] = Some(why.clone());
        }
        let mut stack = self.rdeps[id].clone();
        while let Some(r) = stack.pop() {
            if sh.state[r] != State::Pending {
                continue;
            }
            sh.state[r] = State::Skipped;
            let rs = self.plan.tasks[r].service;
            let reason = if rs == t.service {
                why.clone()
            } else {
                format!("depends on `{svc}`, which failed")
            };
            if sh.blocked[rs].is_none() {
                sh.blocked[rs] = Some(reason.clone());
            }
            self.emit(Event::TaskSkipped { task: self.refs[r].clone(), reason });
            stack.extend(self.rdeps[r].iter().copied());
        }
    }

    /// Count what happened, per task and per service; emit and return the summary.
    /// `stopped`: why a barrier stopped the run (a failure of the run, listed as one).
    fn summary(self, start: Instant, stopped: Option<String>) -> Summary {
        let plan = self.plan;
        let sh = crate::sync::into_value(self.shared);
        let mut summary = Summary {
            interrupted: self.cancel.is_cancelled(),
            dry_run: plan.dry_run,
            ..Summary::default()
        };
        summary.tasks.total = plan.tasks.len();
        for st in &sh.state {
            match st {
                State::Done(TaskStatus::Ok) => summary.tasks.ok += 1,
                State::Done(TaskStatus::Cancelled) => summary.tasks.interrupted += 1,
                State::Done(_) => summary.tasks.failed += 1,
                State::Skipped | State::Pending => summary.tasks.skipped += 1,
            }
        }
        let mut services = Counts { total: plan.services.len(), ..Counts::default() };
        for (si, s) in plan.services.iter().enumerate() {
            let mine: Vec<&State> =
                plan.tasks.iter().filter(|t| t.service == si).map(|t| &sh.state[t.id]).collect();
            let failed = |st: &TaskStatus| !matches!(st, TaskStatus::Ok | TaskStatus::Cancelled);
            let status = if mine.iter().any(|s| matches!(s, State::Done(st) if failed(st))) {
                services.failed += 1;
                "failed"
            } else if mine.iter().any(|s| **s == State::Done(TaskStatus::Cancelled)) {
                services.interrupted += 1;
                "interrupted"
            } else if mine.iter().all(|s| **s == State::Done(TaskStatus::Ok)) {
                services.ok += 1;
                "ok"
            } else {
                services.skipped += 1;
                "skipped"
            };
            summary.service_status.push((s.name.clone(), status.to_string()));
            if status == "ok" {
                summary.service_ms.insert(s.name.clone(), sh.busy_ms[si]);
            }
        }
        summary.services = services;
        summary.failures = crate::sync::into_value(self.failures);
        summary.ok = summary.tasks.failed == 0 && !summary.interrupted && stopped.is_none();
        if let Some(why) = stopped {
            summary.failures.push(Failure { task: "barrier".into(), error: why, at: None });
        }
        summary.wall_ms = start.elapsed().as_millis() as u64;
        self.sink.event(&Event::Summary(summary.clone()));
        summary
    }
}

/// The wait before retry number `attempt` (1-based): `base` doubling each attempt, capped at
/// [`RETRY_DELAY_CAP`], plus up to 50% jitter.
fn retry_delay(base: Duration, attempt: u32) -> Duration {
    Backoff::new(base).cap(RETRY_DELAY_CAP).jitter(Jitter::Up(0.5)).delay(attempt)
}

/// A service whose dependency is blocked is blocked too.
fn propagate_blocked(plan: &Plan, blocked: &mut [Option<String>]) {
    loop {
        let mut changed = false;
        for (si, s) in plan.services.iter().enumerate() {
            if blocked[si].is_some() {
                continue;
            }
            if let Some(&d) = s.depends_on.iter().find(|&&d| blocked[d].is_some()) {
                blocked[si] = Some(format!(
                    "depends on `{}`, which failed or was skipped",
                    plan.services[d].name
                ));
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::orchestrator::plan::{PlannedService, StepFilter};
    use crate::recipe::catalog::Recipe;
    use crate::recipe::declaration::{Step, StepDir};
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn step(name: &str, per_region: bool, retries: Option<u32>) -> Step {
        Step {
            name: name.into(),
            tags: vec![name.into()],
            run: name.into(),
            timeout: None,
            retries,
            dir: StepDir::Service,
            per_region,
            decl: Map::new(),
        }
    }

    fn svc(name: &str, deps: &[usize], steps: Vec<Step>, regions: &[&str]) -> PlannedService {
        PlannedService {
            name: name.into(),
            dir: name.into(),
            recipe: Recipe::for_tests(steps.clone()),
            fields: Map::new(),
            steps,
            reason: "test".into(),
            regions: regions.iter().map(std::string::ToString::to_string).collect(),
            depends_on: deps.to_vec(),
            project_index: 0,
            tag: None,
        }
    }

    fn three() -> Vec<Step> {
        vec![step("build", false, None), step("push", false, None), step("deploy", false, None)]
    }

    /// Records (label, start, end) and fails the labels in `fail`.
    struct Fake {
        log: Mutex<Vec<(String, Instant, Instant)>>,
        fail: Vec<String>,
        sleep: Duration,
        running: AtomicUsize,
        max_running: AtomicUsize,
        attempts: Mutex<HashMap<String, Vec<Instant>>>,
    }

    impl Fake {
        fn new(fail: &[&str], sleep_ms: u64) -> Self {
            Self {
                log: Mutex::new(Vec::new()),
                fail: fail.iter().map(std::string::ToString::to_string).collect(),
                sleep: Duration::from_millis(sleep_ms),
                running: AtomicUsize::new(0),
                max_running: AtomicUsize::new(0),
                attempts: Mutex::new(HashMap::new()),
            }
        }
        fn span(&self, label: &str) -> (Instant, Instant) {
            let log = self.log.locked();
            let e = log
                .iter()
                .find(|(l, _, _)| l == label)
                .unwrap_or_else(|| panic!("{label} did not run"));
            (e.1, e.2)
        }
        fn ran(&self, label: &str) -> bool {
            self.log.locked().iter().any(|(l, _, _)| l == label)
        }
    }

    impl Runner for Fake {
        fn run(&self, a: &Attempt<'_>) -> Result<Option<Map>, TaskFailure> {
            let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
            self.max_running.fetch_max(now, Ordering::SeqCst);
            let start = Instant::now();
            self.attempts.locked().entry(a.label.label.clone()).or_default().push(start);
            std::thread::sleep(self.sleep);
            self.running.fetch_sub(1, Ordering::SeqCst);
            self.log.locked().push((a.label.label.clone(), start, Instant::now()));
            if self.fail.contains(&a.label.label) {
                return Err(TaskFailure::new("boom"));
            }
            let mut m = Map::new();
            m.insert("region".into(), a.task.region.clone().unwrap_or_default().into());
            m.insert("seen".into(), a.outputs.clone().into());
            Ok(Some(m))
        }
    }

    struct Collect(Mutex<Vec<Event>>);
    impl Sink for Collect {
        fn event(&self, e: &Event) {
            self.0.locked().push(e.clone());
        }
    }

    fn opts(workers: usize) -> Options {
        Options {
            workers,
            retries: None,
            retry_delay: Duration::from_millis(20),
            keep_going: false,
            default_timeout: None,
        }
    }

    fn run(services: Vec<PlannedService>, fake: &Fake, o: &Options) -> (Summary, Vec<Event>) {
        let plan = Plan::build(services, &StepFilter::default(), "t1".into(), None, false);
        let sink = Collect(Mutex::new(Vec::new()));
        let s = execute(&plan, fake, o, &sink, &Cancel::new());
        (s, sink.0.into_inner().unwrap())
    }

    #[test]
    fn barrier_dag_and_worker_limit() {
        let fake = Fake::new(&[], 15);
        let services = vec![
            svc("a", &[], three(), &[]),
            svc("b", &[0], three(), &[]),
            svc("c", &[], three(), &[]),
            svc("d", &[], three(), &[]),
        ];
        let (s, _) = run(services, &fake, &opts(2));
        assert!(s.ok);
        assert_eq!(s.tasks.ok, 12);
        let last_build =
            ["a", "b", "c", "d"].iter().map(|n| fake.span(&format!("{n}/build")).1).max().unwrap();
        let first_push =
            ["a", "b", "c", "d"].iter().map(|n| fake.span(&format!("{n}/push")).0).min().unwrap();
        assert!(first_push >= last_build, "a push started before every build finished");
        for p in ["build", "push", "deploy"] {
            assert!(
                fake.span(&format!("b/{p}")).0 >= fake.span(&format!("a/{p}")).1,
                "b/{p} ran before its dependency a"
            );
        }
        assert_eq!(fake.max_running.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn failure_skips_dependents_and_later_phases() {
        let fake = Fake::new(&["a/build"], 5);
        let services = vec![
            svc("a", &[], three(), &[]),
            svc("b", &[0], three(), &[]),
            svc("c", &[], three(), &[]),
        ];
        let (s, events) = run(services.clone(), &fake, &opts(2));
        assert!(!s.ok);
        assert!(fake.ran("c/build") && !fake.ran("c/push") && !fake.ran("b/build"));
        assert_eq!((s.tasks.failed, s.tasks.ok, s.tasks.skipped), (1, 1, 7));
        assert_eq!((s.services.failed, s.services.ok, s.services.skipped), (1, 0, 2));
        let skipped_b = events.iter().find_map(|e| match e {
            Event::TaskSkipped { task, reason } if task.label == "b/build" => Some(reason.clone()),
            _ => None,
        });
        assert!(skipped_b.unwrap().contains("`a`"));

        let fake = Fake::new(&["a/build"], 5);
        let (s, _) = run(services, &fake, &Options { keep_going: true, ..opts(2) });
        assert!(fake.ran("c/deploy") && !fake.ran("b/build") && !fake.ran("a/push"));
        assert_eq!((s.tasks.failed, s.tasks.ok, s.tasks.skipped), (1, 3, 5));
    }

    #[test]
    fn retries_with_growing_delays_and_zero_means_one_try() {
        let fake = Fake::new(&["a/build"], 0);
        let steps = vec![step("build", false, Some(3))];
        let (s, events) = run(vec![svc("a", &[], steps.clone(), &[])], &fake, &opts(1));
        assert!(!s.ok);
        let times = fake.attempts.locked()["a/build"].clone();
        assert_eq!(times.len(), 4);
        let delays: Vec<u64> = events
            .iter()
            .filter_map(|e| match e {
                Event::TaskRetried { delay_ms, .. } => Some(*delay_ms),
                _ => None,
            })
            .collect();
        assert_eq!(delays.len(), 3);
        // The doubling schedule from 20ms plus at most 50% jitter; each attempt waits its delay.
        for (i, d) in delays.iter().enumerate() {
            let scheduled = 20 << i;
            assert!((scheduled..=scheduled * 3 / 2).contains(d), "retry {}: {d}ms", i + 1);
        }
        for (w, d) in times.windows(2).zip(&delays) {
            assert!(w[1] - w[0] >= Duration::from_millis(*d), "{:?} < {d}ms", w[1] - w[0]);
        }

        let fake = Fake::new(&["a/build"], 0);
        run(vec![svc("a", &[], steps, &[])], &fake, &Options { retries: Some(0), ..opts(1) });
        assert_eq!(fake.attempts.locked()["a/build"].len(), 1);
    }

    #[test]
    fn per_region_steps_get_their_own_outputs() {
        let fake = Fake::new(&[], 0);
        let steps =
            vec![step("build", false, None), step("push", true, None), step("deploy", true, None)];
        let (s, events) = run(vec![svc("a", &[], steps, &["eu", "us"])], &fake, &opts(2));
        assert!(s.ok);
        assert_eq!(s.tasks.total, 5);
        for r in ["eu", "us"] {
            assert!(fake.ran(&format!("a/push@{r}")) && fake.ran(&format!("a/deploy@{r}")));
        }
        assert_eq!(
            events
                .iter()
                .filter(|e| matches!(e, Event::TaskStarted { task, .. } if task.step == "build"))
                .count(),
            1
        );
    }

    #[test]
    fn regional_outputs_flow_to_the_same_region() {
        struct Check;
        impl Runner for Check {
            fn run(&self, a: &Attempt<'_>) -> Result<Option<Map>, TaskFailure> {
                let r = a.task.region.clone().unwrap_or_default();
                if a.label.step == "deploy" {
                    let push = a
                        .outputs
                        .get("push")
                        .and_then(|p| p.read_lock::<Map>().map(|m| m.clone()))
                        .unwrap();
                    let image = push.get("image").unwrap().to_string();
                    assert_eq!(image, format!("img-{r}"));
                    assert!(a.outputs.contains_key("build"));
                }
                let mut m = Map::new();
                m.insert("image".into(), format!("img-{r}").into());
                Ok(Some(m))
            }
        }
        let steps =
            vec![step("build", false, None), step("push", true, None), step("deploy", true, None)];
        let plan = Plan::build(
            vec![svc("a", &[], steps, &["eu", "us", "asia"])],
            &StepFilter::default(),
            "t".into(),
            None,
            false,
        );
        let sink = Collect(Mutex::new(Vec::new()));
        let s = execute(&plan, &Check, &opts(2), &sink, &Cancel::new());
        assert!(s.ok, "{:?}", s.failures);
    }

    /// Invariants of the executor over random plans: services with random steps in the
    /// standard and custom phases (some per region), a random dependency DAG in a random
    /// order, random failing tasks and retries, any worker count, with and without
    /// `keep_going`. Times are a global sequence of start and end marks, never clocks.
    mod props {
        use super::*;
        use proptest::prelude::*;
        use std::collections::HashSet;

        const PHASES: &[&str] = &["build", "push", "deploy", "smoke"];

        /// A service: its steps as (phase, per region, retries) and the earlier services it
        /// depends on.
        #[derive(Debug, Clone)]
        struct Spec {
            steps: Vec<(usize, bool, u32)>,
            deps: Vec<usize>,
            regions: usize,
        }

        fn specs() -> impl Strategy<Value = Vec<Spec>> {
            (1usize..7).prop_flat_map(|n| {
                let one = |i: usize| {
                    (
                        prop::collection::vec((0..PHASES.len(), any::<bool>(), 0u32..3), 1..4),
                        prop::collection::vec(0..i.max(1), 0..3),
                        0usize..3,
                    )
                        .prop_map(move |(steps, deps, regions)| Spec {
                            steps,
                            deps: if i == 0 { Vec::new() } else { deps },
                            regions,
                        })
                };
                let all: Vec<_> = (0..n).map(one).collect();
                (all, Just((0..n).collect::<Vec<usize>>()).prop_shuffle())
                    .prop_map(|(specs, order)| shuffle(specs, &order))
            })
        }

        /// Put service `i` at position `order[i]`, dependencies renumbered: the DAG stays a
        /// DAG, the plan sees it in any order.
        fn shuffle(specs: Vec<Spec>, order: &[usize]) -> Vec<Spec> {
            let mut out = vec![None; specs.len()];
            for (i, mut s) in specs.into_iter().enumerate() {
                s.deps =
                    s.deps.iter().map(|&d| order[d]).collect::<HashSet<_>>().into_iter().collect();
                s.deps.sort_unstable();
                out[order[i]] = Some(s);
            }
            out.into_iter().map(|s| s.expect("a permutation")).collect()
        }

        fn plan(specs: &[Spec]) -> Plan {
            let services = specs
                .iter()
                .enumerate()
                .map(|(i, sp)| {
                    let steps: Vec<Step> = sp
                        .steps
                        .iter()
                        .enumerate()
                        .map(|(k, &(phase, per_region, retries))| Step {
                            name: format!("s{k}"),
                            tags: vec![PHASES[phase].to_string()],
                            run: format!("s{k}"),
                            timeout: None,
                            retries: Some(retries),
                            dir: StepDir::Service,
                            per_region,
                            decl: Map::new(),
                        })
                        .collect();
                    let regions: Vec<String> = (0..sp.regions).map(|r| format!("r{r}")).collect();
                    let regions: Vec<&str> = regions.iter().map(String::as_str).collect();
                    svc(&format!("svc{i}"), &sp.deps, steps, &regions)
                })
                .collect();
            Plan::build(services, &StepFilter::default(), "t".into(), None, false)
        }

        /// Marks every attempt's start and end on one sequence; fails the tasks in `fail`
        /// every time and those in `flaky` on their first attempt.
        struct Marks {
            seq: AtomicUsize,
            marks: Mutex<Vec<(usize, bool, usize)>>,
            running: AtomicUsize,
            max_running: AtomicUsize,
            fail: HashSet<usize>,
            flaky: HashSet<usize>,
        }

        impl Runner for Marks {
            fn run(&self, a: &Attempt<'_>) -> Result<Option<Map>, TaskFailure> {
                let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
                self.max_running.fetch_max(now, Ordering::SeqCst);
                let start = self.seq.fetch_add(1, Ordering::SeqCst);
                self.marks.locked().push((a.task.id, true, start));
                std::thread::yield_now();
                let failed = self.fail.contains(&a.task.id)
                    || (a.attempt == 1 && self.flaky.contains(&a.task.id));
                self.running.fetch_sub(1, Ordering::SeqCst);
                let end = self.seq.fetch_add(1, Ordering::SeqCst);
                self.marks.locked().push((a.task.id, false, end));
                if failed {
                    return Err(TaskFailure::new("boom"));
                }
                Ok(None)
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

            #[test]
            fn barriers_dag_order_worker_bound_and_one_end_per_task(
                specs in specs(),
                workers in 1usize..5,
                keep_going in any::<bool>(),
                fail in prop::collection::hash_set(0usize..40, 0..4),
                flaky in prop::collection::hash_set(0usize..40, 0..4),
            ) {
                let plan = plan(&specs);
                let n = plan.tasks.len();
                let runner = Marks {
                    seq: AtomicUsize::new(0),
                    marks: Mutex::new(Vec::new()),
                    running: AtomicUsize::new(0),
                    max_running: AtomicUsize::new(0),
                    fail: fail.into_iter().filter(|&t| t < n).collect(),
                    flaky: flaky.into_iter().filter(|&t| t < n).collect(),
                };
                let o = Options {
                    workers,
                    retries: None,
                    retry_delay: Duration::ZERO,
                    keep_going,
                    default_timeout: None,
                };
                let sink = Collect(Mutex::new(Vec::new()));
                let summary = execute(&plan, &runner, &o, &sink, &Cancel::new());
                let events = sink.0.into_inner().unwrap();
                let marks = runner.marks.into_inner().unwrap();

                // The worker bound is never exceeded.
                prop_assert!(runner.max_running.load(Ordering::SeqCst) <= workers);

                // Every task ends exactly once: finished (if it ran) or skipped (if not).
                let mut ends = vec![0; n];
                let mut status = vec![None; n];
                for e in &events {
                    match e {
                        Event::TaskFinished { task, status: s, attempts, .. } => {
                            ends[task.id] += 1;
                            status[task.id] = Some(*s);
                            let tried = marks.iter().filter(|m| m.0 == task.id && m.1).count();
                            prop_assert_eq!(tried, *attempts as usize);
                        }
                        Event::TaskSkipped { task, .. } => {
                            ends[task.id] += 1;
                            prop_assert!(!marks.iter().any(|m| m.0 == task.id), "a skipped task ran");
                        }
                        _ => {}
                    }
                }
                prop_assert!(ends.iter().all(|&e| e == 1), "ends per task: {:?}", ends);

                let first_start = |t: usize| marks.iter().filter(|m| m.0 == t && m.1).map(|m| m.2).min();
                let last_end = |t: usize| marks.iter().filter(|m| m.0 == t && !m.1).map(|m| m.2).max();
                for t in &plan.tasks {
                    let Some(start) = first_start(t.id) else { continue };
                    // DAG order: a task starts after each of its dependencies succeeded.
                    for &d in &t.deps {
                        prop_assert_eq!(status[d], Some(TaskStatus::Ok), "{} ran after a dependency that did not succeed", t.id);
                        prop_assert!(last_end(d).is_some_and(|e| e < start), "{} started before its dependency {} ended", t.id, d);
                    }
                    // Barriers: nothing of a phase starts before every task of the phases before
                    // it ended.
                    for u in plan.tasks.iter().filter(|u| u.phase < t.phase) {
                        if let Some(end) = last_end(u.id) {
                            prop_assert!(end < start, "{} (phase {}) started before {} (phase {}) ended", t.id, t.phase, u.id, u.phase);
                        }
                    }
                    // Without `keep_going`, no phase starts after one with a failure.
                    if !keep_going {
                        let earlier_failed = plan.tasks.iter().any(|u| {
                            u.phase < t.phase && status[u.id].is_some_and(|s| s != TaskStatus::Ok)
                        });
                        prop_assert!(!earlier_failed, "{} ran after an earlier phase failed", t.id);
                    }
                }

                // The summary counts what happened.
                let ok = status.iter().filter(|s| **s == Some(TaskStatus::Ok)).count();
                let failed = status.iter().filter(|s| s.is_some_and(|s| s != TaskStatus::Ok)).count();
                prop_assert_eq!((summary.tasks.total, summary.tasks.ok, summary.tasks.failed), (n, ok, failed));
                prop_assert_eq!(summary.tasks.skipped, n - ok - failed);
                prop_assert_eq!(summary.ok, failed == 0);
            }
        }
    }
}
