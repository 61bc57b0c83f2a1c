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
pub const RETRY_DELAY_CAP: Duration = Duration::from_secs(600);

use super::event::{Counts, Event, Failure, Sink, Summary, TaskRef, TaskStatus};
use super::plan::{Plan, Task};

/// Shared cancellation (Ctrl-C): the process layer's token, which also kills the process
/// groups of running children.
pub use crate::process::CancelToken as Cancel;

#[derive(Debug, Clone)]
pub struct Options {
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
pub struct TaskFailure {
    pub message: String,
    pub timed_out: bool,
    pub cancelled: bool,
    pub tail: Vec<String>,
}

/// What the executor hands a runner for one attempt.
pub struct Attempt<'a> {
    pub plan: &'a Plan,
    pub task: &'a Task,
    pub label: &'a TaskRef,
    pub attempt: u32,
    /// Maps returned by earlier steps of this service (per region for regional tasks).
    pub outputs: Map,
    pub timeout: Option<Duration>,
    pub cancel: &'a Cancel,
}

pub trait Runner: Sync {
    /// Run one attempt; `Ok(Some(map))` records the step's outputs.
    fn run(&self, a: &Attempt<'_>) -> Result<Option<Map>, TaskFailure>;
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

struct Shared {
    state: Vec<State>,
    remaining: Vec<usize>,
    ready: VecDeque<usize>,
    running: usize,
    /// Why a service cannot continue (its own failure or a failed dependency).
    blocked: Vec<Option<String>>,
}

pub fn task_ref(plan: &Plan, t: &Task) -> TaskRef {
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

/// [`execute`] as a deploy runs it, from the CLI or a script: a run that changes things holds
/// the project's deploy lock (dry runs do not need it), and a run with tasks is appended to
/// `.pilum/history.jsonl` as `verb`. A history that cannot be written does not fail the run; its
/// error comes back next to the summary for the caller to warn about.
pub fn execute_recorded(
    root: &std::path::Path,
    verb: &str,
    plan: &Plan,
    runner: &dyn Runner,
    opts: &Options,
    sink: &dyn Sink,
    cancel: &Cancel,
) -> Result<(Summary, Option<std::io::Error>), crate::state::lock::LockError> {
    let _lock =
        if plan.dry_run { None } else { Some(crate::state::lock::DeployLock::acquire(root)?) };
    let summary = execute(plan, runner, opts, sink, cancel);
    let history = if !plan.dry_run && !plan.tasks.is_empty() {
        let entry = crate::state::history::Entry {
            command: verb,
            tag: &plan.tag,
            environment: plan.environment.as_deref(),
            complete: verb == "deploy" && covers_project(plan),
            summary: serde_json::to_value(&summary).unwrap_or_default(),
        };
        crate::state::history::append(root, &entry).err()
    } else {
        None
    };
    Ok((summary, history))
}

/// Whether `plan` deploys everything the project needed: every step of every service, picked
/// by a selection that leaves nothing out (all services, or `--only-changed`).
fn covers_project(plan: &Plan) -> bool {
    let steps: usize = plan
        .services
        .iter()
        .flat_map(|s| {
            s.steps.iter().map(|st| if st.per_region { s.regions.len().max(1) } else { 1 })
        })
        .sum();
    plan.tasks.len() == steps
        && plan.services.iter().all(|s| crate::service::select::covers_project(&s.reason))
}

/// Run the plan to the end (or cancellation) and return the summary (also emitted).
pub fn execute(
    plan: &Plan,
    runner: &dyn Runner,
    opts: &Options,
    sink: &dyn Sink,
    cancel: &Cancel,
) -> Summary {
    let start = Instant::now();
    let n = plan.tasks.len();
    let refs: Vec<TaskRef> = plan.tasks.iter().map(|t| task_ref(plan, t)).collect();
    let mut rdeps = vec![Vec::new(); n];
    for t in &plan.tasks {
        for &d in &t.deps {
            rdeps[d].push(t.id);
        }
    }
    let shared = Mutex::new(Shared {
        state: vec![State::Pending; n],
        remaining: plan.tasks.iter().map(|t| t.deps.len()).collect(),
        ready: VecDeque::new(),
        running: 0,
        blocked: vec![None; plan.services.len()],
    });
    let wake = Condvar::new();
    let outputs = Mutex::new(Outputs::default());
    let failures = Mutex::new(Vec::new());
    let mut any_failed = false;
    let emit = |e: Event| sink.event(&e);

    for (p, phase) in plan.phases.iter().enumerate() {
        let ids: Vec<usize> = plan.tasks.iter().filter(|t| t.phase == p).map(|t| t.id).collect();
        {
            let mut sh = shared.lock().expect("scheduler lock");
            propagate_blocked(plan, &mut sh.blocked);
            for &id in &ids {
                let t = &plan.tasks[id];
                let reason = if cancel.is_cancelled() {
                    Some("interrupted".to_string())
                } else if any_failed && !opts.keep_going {
                    Some("not started: an earlier phase failed (use --keep-going to continue other services)".to_string())
                } else {
                    sh.blocked[t.service].clone()
                };
                if let Some(r) = reason {
                    sh.state[id] = State::Skipped;
                    emit(Event::TaskSkipped { task: refs[id].clone(), reason: r });
                } else if sh.remaining[id] == 0 {
                    sh.ready.push_back(id);
                }
            }
            if ids.iter().all(|&id| sh.state[id] == State::Skipped) {
                continue;
            }
        }
        emit(Event::PhaseStarted { phase: phase.clone(), tasks: ids.len() });
        let workers = opts.workers.max(1).min(ids.len().max(1));
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| {
                    worker(
                        plan, runner, opts, cancel, &refs, &rdeps, &shared, &wake, &outputs,
                        &failures, &emit,
                    );
                });
            }
        });
        let mut sh = shared.lock().expect("scheduler lock");
        for &id in &ids {
            match sh.state[id] {
                State::Pending => {
                    sh.state[id] = State::Skipped;
                    let reason = if cancel.is_cancelled() {
                        "interrupted"
                    } else {
                        "not started: a task it waits for did not run"
                    };
                    emit(Event::TaskSkipped { task: refs[id].clone(), reason: reason.into() });
                }
                State::Done(s) if s != TaskStatus::Ok => any_failed = true,
                _ => {}
            }
        }
        sh.ready.clear();
    }

    let sh = shared.into_inner().expect("scheduler lock");
    let mut summary = Summary { interrupted: cancel.is_cancelled(), ..Summary::default() };
    summary.tasks.total = n;
    for st in &sh.state {
        match st {
            State::Done(TaskStatus::Ok) => summary.tasks.ok += 1,
            State::Done(_) => summary.tasks.failed += 1,
            State::Skipped | State::Pending => summary.tasks.skipped += 1,
        }
    }
    let mut services = Counts { total: plan.services.len(), ..Counts::default() };
    for (si, s) in plan.services.iter().enumerate() {
        let mine: Vec<&State> =
            plan.tasks.iter().filter(|t| t.service == si).map(|t| &sh.state[t.id]).collect();
        let status = if mine.iter().any(|s| matches!(s, State::Done(st) if *st != TaskStatus::Ok)) {
            services.failed += 1;
            "failed"
        } else if mine.iter().all(|s| **s == State::Done(TaskStatus::Ok)) {
            services.ok += 1;
            "ok"
        } else {
            services.skipped += 1;
            "skipped"
        };
        summary.service_status.push((s.name.clone(), status.to_string()));
    }
    summary.services = services;
    summary.failures = failures.into_inner().expect("failures lock");
    summary.ok = summary.tasks.failed == 0 && !summary.interrupted;
    summary.wall_ms = start.elapsed().as_millis() as u64;
    emit(Event::Summary(summary.clone()));
    summary
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

#[allow(clippy::too_many_arguments)]
fn worker(
    plan: &Plan,
    runner: &dyn Runner,
    opts: &Options,
    cancel: &Cancel,
    refs: &[TaskRef],
    rdeps: &[Vec<usize>],
    shared: &Mutex<Shared>,
    wake: &Condvar,
    outputs: &Mutex<Outputs>,
    failures: &Mutex<Vec<Failure>>,
    emit: &dyn Fn(Event),
) {
    loop {
        let id = {
            let mut sh = shared.lock().expect("scheduler lock");
            loop {
                if cancel.is_cancelled() {
                    wake.notify_all();
                    return;
                }
                if let Some(id) = sh.ready.pop_front() {
                    sh.running += 1;
                    break id;
                }
                if sh.running == 0 {
                    wake.notify_all();
                    return;
                }
                sh = wake.wait_timeout(sh, Duration::from_millis(50)).expect("scheduler lock").0;
            }
        };
        let t = &plan.tasks[id];
        let step = plan.step(t);
        let tries = 1 + opts.retries.unwrap_or(step.retries.unwrap_or(0));
        let timeout = step.timeout.or(opts.default_timeout);
        let started = Instant::now();
        let mut attempt = 1;
        let result = loop {
            emit(Event::TaskStarted { task: refs[id].clone(), attempt });
            let outs = outputs.lock().expect("outputs lock").for_task(plan, t);
            let a = Attempt {
                plan,
                task: t,
                label: &refs[id],
                attempt,
                outputs: outs,
                timeout,
                cancel,
            };
            match runner.run(&a) {
                Ok(v) => break Ok(v),
                Err(f) if f.cancelled || cancel.is_cancelled() || attempt >= tries => break Err(f),
                Err(f) => {
                    let delay = Backoff::new(opts.retry_delay)
                        .cap(RETRY_DELAY_CAP)
                        .jitter(Jitter::Up(0.5))
                        .delay(attempt);
                    emit(Event::TaskRetried {
                        task: refs[id].clone(),
                        attempt,
                        delay_ms: delay.as_millis() as u64,
                        error: f.message.clone(),
                    });
                    if !cancel.sleep(delay) {
                        break Err(TaskFailure {
                            message: "interrupted".into(),
                            timed_out: false,
                            cancelled: true,
                            tail: Vec::new(),
                        });
                    }
                    attempt += 1;
                }
            }
        };
        let duration_ms = started.elapsed().as_millis() as u64;
        let status = match &result {
            Ok(_) => TaskStatus::Ok,
            Err(f) if f.cancelled => TaskStatus::Cancelled,
            Err(f) if f.timed_out => TaskStatus::TimedOut,
            Err(_) => TaskStatus::Failed,
        };
        if let Ok(Some(map)) = &result {
            let mut o = outputs.lock().expect("outputs lock");
            let key = (t.service, step.name.clone());
            match &t.region {
                Some(r) => {
                    o.regional.entry(key).or_default().insert(r.clone(), map.clone());
                }
                None => {
                    o.base.insert(key, map.clone());
                }
            }
        }
        let (error, tail) = match &result {
            Ok(_) => (None, Vec::new()),
            Err(f) => (Some(f.message.clone()), f.tail.clone()),
        };
        if let Some(e) = &error {
            failures
                .lock()
                .expect("failures lock")
                .push(Failure { task: refs[id].label.clone(), error: e.clone() });
        }
        emit(Event::TaskFinished {
            task: refs[id].clone(),
            status,
            attempts: attempt,
            duration_ms,
            error,
            tail,
        });
        let mut sh = shared.lock().expect("scheduler lock");
        sh.running -= 1;
        sh.state[id] = State::Done(status);
        if status == TaskStatus::Ok {
            for &r in &rdeps[id] {
                sh.remaining[r] -= 1;
                if sh.remaining[r] == 0 && sh.state[r] == State::Pending {
                    sh.ready.push_back(r);
                }
            }
        } else {
            let svc = &plan.services[t.service].name;
            let why = if status == TaskStatus::Cancelled {
                "interrupted".to_string()
            } else {
                format!("`{}` failed", refs[id].label)
            };
            if sh.blocked[t.service].is_none() {
                sh.blocked[t.service] = Some(why.clone());
            }
            // Skip everything in this phase that waits on the failed task, transitively.
            let mut stack = rdeps[id].clone();
            while let Some(r) = stack.pop() {
                if sh.state[r] != State::Pending {
                    continue;
                }
                sh.state[r] = State::Skipped;
                let rs = plan.tasks[r].service;
                let reason = if rs == t.service {
                    why.clone()
                } else {
                    format!("depends on `{svc}`, which failed")
                };
                if sh.blocked[rs].is_none() {
                    sh.blocked[rs] = Some(reason.clone());
                }
                emit(Event::TaskSkipped { task: refs[r].clone(), reason });
                stack.extend(rdeps[r].iter().copied());
            }
        }
        drop(sh);
        wake.notify_all();
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
            regions: regions.iter().map(|s| s.to_string()).collect(),
            depends_on: deps.to_vec(),
            project_index: 0,
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
                fail: fail.iter().map(|s| s.to_string()).collect(),
                sleep: Duration::from_millis(sleep_ms),
                running: AtomicUsize::new(0),
                max_running: AtomicUsize::new(0),
                attempts: Mutex::new(HashMap::new()),
            }
        }
        fn span(&self, label: &str) -> (Instant, Instant) {
            let log = self.log.lock().unwrap();
            let e = log
                .iter()
                .find(|(l, _, _)| l == label)
                .unwrap_or_else(|| panic!("{label} did not run"));
            (e.1, e.2)
        }
        fn ran(&self, label: &str) -> bool {
            self.log.lock().unwrap().iter().any(|(l, _, _)| l == label)
        }
    }

    impl Runner for Fake {
        fn run(&self, a: &Attempt<'_>) -> Result<Option<Map>, TaskFailure> {
            let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
            self.max_running.fetch_max(now, Ordering::SeqCst);
            let start = Instant::now();
            self.attempts.lock().unwrap().entry(a.label.label.clone()).or_default().push(start);
            std::thread::sleep(self.sleep);
            self.running.fetch_sub(1, Ordering::SeqCst);
            self.log.lock().unwrap().push((a.label.label.clone(), start, Instant::now()));
            if self.fail.contains(&a.label.label) {
                return Err(TaskFailure {
                    message: "boom".into(),
                    timed_out: false,
                    cancelled: false,
                    tail: vec![],
                });
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
            self.0.lock().unwrap().push(e.clone());
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
        let times = fake.attempts.lock().unwrap()["a/build"].clone();
        assert_eq!(times.len(), 4);
        let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps[1] > gaps[0] && gaps[2] > gaps[1], "{gaps:?}");
        assert_eq!(events.iter().filter(|e| matches!(e, Event::TaskRetried { .. })).count(), 3);

        let fake = Fake::new(&["a/build"], 0);
        run(vec![svc("a", &[], steps, &[])], &fake, &Options { retries: Some(0), ..opts(1) });
        assert_eq!(fake.attempts.lock().unwrap()["a/build"].len(), 1);
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
}
