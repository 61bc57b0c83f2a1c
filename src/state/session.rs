//! One run's use of the state backend, between the plan and the executor: the deploy locks of
//! its services (taken at once before anything runs, waited for before a service's first task,
//! confirmed before each step, released after the service's last task), its deploy records
//! (one per service × target × environment × region, written when the service ends, before its
//! lock is released) and, at the end, its run-history entry.
//!
//! It wraps the executor's [`Runner`] (to wait for and check a service's lock before each
//! attempt, and to keep what each step returned) and its [`Sink`] (to see when a service's last
//! task has ended), so the orchestrator knows nothing of state.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rhai::Map;

use super::cache::{Artefact, Live, StepOutput};
use super::inputs::Hashes;
use super::lock::{self, Holder, LockKey, Locks, Observer, Status};
use super::record::{self, Origin, Outcome, Record};
use super::{Backend, Batch};
use crate::orchestrator::event::{Event, Sink, TaskStatus};
use crate::orchestrator::execute::{Attempt, Runner, TaskFailure};
use crate::orchestrator::plan::Plan;
use crate::sync::LockExt;

/// How long a waiting task sleeps between looks at its service's lock.
const WAIT_POLL: Duration = Duration::from_millis(50);

/// What one service's tasks did so far.
#[derive(Default)]
struct Progress {
    /// Tasks without an end yet.
    left: usize,
    started: Option<String>,
    failed: Option<String>,
    cancelled: bool,
    ran: usize,
    /// Per task id: what the step returned.
    outputs: HashMap<usize, Map>,
}

/// The state side of one run.
pub(crate) struct Session {
    backend: Arc<dyn Backend>,
    locks: Option<Locks>,
    /// Per planned service: its key's index in `locks` (services with nothing to run take no
    /// lock).
    key_of: Vec<Option<usize>>,
    plan: Arc<Plan>,
    origin: Origin,
    run: String,
    command: String,
    hashes: Option<Vec<Hashes>>,
    /// Services whose build and push are reused from the cache: their artefact.
    reused: HashMap<usize, Artefact>,
    observer: Arc<dyn Observer>,
    progress: Mutex<Vec<Progress>>,
    barrier: Option<Shards>,
}

/// `--barrier`: this shard's place among the CI run's shards.
#[derive(Debug, Clone)]
pub(crate) struct BarrierPlan {
    /// What every shard of the run names (`--barrier ID`).
    pub id: String,
    /// 1-based.
    pub shard: usize,
    pub total: usize,
    /// The liveness lease.
    pub ttl: Duration,
    /// Every phase of the whole (unsharded) plan, in order: what every shard crosses.
    pub phases: Vec<String>,
}

struct Shards {
    plan: BarrierPlan,
    /// Phases this shard has arrived at, and how many of `plan.phases` it has waited for.
    arrived: Mutex<(std::collections::HashSet<String>, usize)>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    heartbeat: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// The lock key of a planned service.
pub(crate) fn lock_key(plan: &Plan, s: usize) -> LockKey {
    let ps = &plan.services[s];
    LockKey {
        service: ps.name.clone(),
        environment: plan.environment.clone(),
        target: ps.recipe.decl.name.clone(),
    }
}

/// What [`Session::start`] needs besides the plan.
pub(crate) struct Start {
    pub backend: Arc<dyn Backend>,
    pub origin: Origin,
    /// `deploy`, `build`, …
    pub command: String,
    /// Take the deploy locks (not for dry runs); `None`: none.
    pub locks: Option<lock::Options>,
    pub observer: Arc<dyn Observer>,
    pub hashes: Option<Vec<Hashes>>,
    pub reused: HashMap<usize, Artefact>,
    /// `--barrier` (the backend must have barriers: [`Backend::barriers`]).
    pub barrier: Option<BarrierPlan>,
}

impl Session {
    /// Take the locks of every planned service (refused at once, or queued, as `start.locks`
    /// says).
    pub(crate) fn start(plan: Arc<Plan>, start: Start) -> Result<Session, lock::AcquireError> {
        let run = record::new_id();
        let mut progress: Vec<Progress> =
            plan.services.iter().map(|_| Progress::default()).collect();
        for t in &plan.tasks {
            progress[t.service].left += 1;
        }
        let mut key_of = vec![None; plan.services.len()];
        let mut keys = Vec::new();
        for (s, p) in progress.iter().enumerate() {
            if p.left > 0 {
                key_of[s] = Some(keys.len());
                keys.push(lock_key(&plan, s));
            }
        }
        let locks = match start.locks {
            Some(opts) if !keys.is_empty() => {
                let me = Holder::new(&start.origin, &run, &start.command);
                Some(Locks::acquire(start.backend.clone(), me, keys, opts, start.observer.clone())?)
            }
            _ => None,
        };
        let barrier = start.barrier.map(|plan| {
            let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let heartbeat = heartbeat(start.backend.clone(), plan.clone(), stop.clone());
            Shards { plan, arrived: Mutex::default(), stop, heartbeat: Mutex::new(heartbeat) }
        });
        Ok(Session {
            barrier,
            backend: start.backend,
            locks,
            key_of,
            plan,
            origin: start.origin,
            run,
            command: start.command,
            hashes: start.hashes,
            reused: start.reused,
            observer: start.observer,
            progress: Mutex::new(progress),
        })
    }

    /// The run's id (its records and history entry carry it).
    pub(crate) fn run_id(&self) -> &str {
        &self.run
    }

    fn progress(&self) -> std::sync::MutexGuard<'_, Vec<Progress>> {
        self.progress.locked()
    }

    /// The executor's runner, checking the service's lock before each attempt (and, with
    /// `--barrier`, crossing the shards' barriers between phases).
    pub(crate) fn runner<'a>(
        &'a self,
        inner: &'a dyn Runner,
        cancel: &crate::process::CancelToken,
    ) -> impl Runner + 'a {
        Guarded { session: self, inner, cancel: cancel.clone() }
    }

    /// The executor's sink, ending services as their last task ends.
    pub(crate) fn sink<'a>(&'a self, inner: &'a dyn Sink) -> impl Sink + 'a {
        Ending { session: self, inner }
    }

    /// Before an attempt of a task of service `s`: wait for its lock, then confirm it.
    fn admit(&self, s: usize, a: &Attempt<'_>) -> Result<Option<u64>, TaskFailure> {
        let (Some(locks), Some(s)) = (&self.locks, self.key_of[s]) else { return Ok(None) };
        // Bounded by `--lock-wait`: the lock thread turns a wait that ran out into `GaveUp`.
        while locks.status(s) == Status::Waiting {
            if a.cancel.is_cancelled() {
                let mut f = TaskFailure::new("interrupted while waiting for the deploy lock");
                f.cancelled = true;
                return Err(f);
            }
            std::thread::sleep(WAIT_POLL);
        }
        locks.check(s).map(Some).map_err(TaskFailure::new)
    }

    /// The records of service `s`, which has ended.
    fn records(&self, s: usize, p: &Progress) -> Vec<Record> {
        let ps = &self.plan.services[s];
        let outcome = if p.failed.is_some() {
            Outcome::Failed
        } else if p.cancelled {
            Outcome::Interrupted
        } else if p.ran == 0 {
            Outcome::Skipped
        } else {
            Outcome::Ok
        };
        let now = record::now();
        let regions: Vec<Option<String>> = if ps.regions.is_empty() {
            vec![None]
        } else {
            ps.regions.iter().cloned().map(Some).collect()
        };
        let (lock, fence) = match (&self.locks, self.key_of[s]) {
            (Some(l), Some(k)) => {
                let fence = match l.status(k) {
                    Status::Held { fence } => Some(fence),
                    _ => None,
                };
                (Some(l.key(k).to_string()), fence)
            }
            _ => (None, None),
        };
        let commit = self.plan.commit.as_ref();
        regions
            .into_iter()
            .map(|region| {
                let (revision, url) = self.returned(s, region.as_deref(), p);
                Record {
                    environment: self.plan.environment.clone(),
                    region,
                    recipe: ps.recipe.file.display().to_string(),
                    version: self
                        .reused
                        .get(&s)
                        .map_or_else(|| self.plan.tag.clone(), |a| a.version.clone()),
                    commit: commit.map(|c| c.sha.clone()),
                    dirty: commit.is_some_and(super::super::orchestrator::plan::Commit::dirty),
                    input_hash: self.hashes.as_ref().map(|h| h[s].input.clone()),
                    revision,
                    url,
                    started: p.started.clone().unwrap_or_else(|| now.clone()),
                    ended: now.clone(),
                    error: p.failed.as_deref().map(record::first_line),
                    cached: self.reused.get(&s).map(|a| a.run.clone()),
                    lock: lock.clone(),
                    fence,
                    ..Record::new(
                        &self.origin,
                        &self.run,
                        &self.command,
                        &ps.name,
                        &ps.recipe.decl.name,
                        outcome,
                    )
                }
            })
            .collect()
    }

    /// The `revision` and `url` the service's deploy-phase steps returned for `region` (the
    /// last step that returned one wins; a step for all regions counts for each).
    fn returned(
        &self,
        s: usize,
        region: Option<&str>,
        p: &Progress,
    ) -> (Option<String>, Option<String>) {
        let (mut revision, mut url) = (None, None);
        for t in self.plan.tasks.iter().filter(|t| t.service == s) {
            if self.plan.phases[t.phase] != "deploy"
                || (t.region.is_some() && t.region.as_deref() != region)
            {
                continue;
            }
            let Some(m) = p.outputs.get(&t.id) else { continue };
            let get = |k: &str| {
                m.get(k).filter(|v| !v.is_unit()).map(|v| record::redacted(&v.to_string()))
            };
            revision = get("revision").or(revision);
            url = get("url").or(url);
        }
        (revision, url)
    }

    /// The cache entries of service `s`, which has ended well.
    fn cache_entries(&self, s: usize, p: &Progress, batch: &mut Batch) {
        let Some(hashes) = &self.hashes else { return };
        let ps = &self.plan.services[s];
        let build_phases = ["build", "push"];
        let ran_build =
            self.plan.tasks.iter().any(|t| {
                t.service == s && build_phases.contains(&self.plan.phases[t.phase].as_str())
            });
        if ran_build
            && !self.reused.contains_key(&s)
            && (self.command == "deploy" || self.command == "publish")
        {
            let outputs = self
                .plan
                .tasks
                .iter()
                .filter(|t| {
                    t.service == s && build_phases.contains(&self.plan.phases[t.phase].as_str())
                })
                .filter_map(|t| {
                    let m = p.outputs.get(&t.id)?;
                    Some(StepOutput {
                        step: ps.steps[t.step].name.clone(),
                        region: t.region.clone(),
                        value: crate::script::value::to_json(&m.clone().into()).unwrap_or_default(),
                    })
                })
                .collect();
            batch.artefacts.push(Artefact {
                service: ps.name.clone(),
                target: ps.recipe.decl.name.clone(),
                hash: hashes[s].input.clone(),
                version: self.plan.tag.clone(),
                commit: self.plan.commit.as_ref().map(|c| c.sha.clone()),
                run: self.run.clone(),
                time: record::now(),
                outputs,
            });
        }
        let deployed =
            self.plan.tasks.iter().any(|t| t.service == s && self.plan.phases[t.phase] == "deploy");
        if deployed && self.command == "deploy" {
            batch.lives.push(Live {
                service: ps.name.clone(),
                environment: self.plan.environment.clone(),
                target: ps.recipe.decl.name.clone(),
                hash: hashes[s].release.clone(),
                version: self
                    .reused
                    .get(&s)
                    .map_or_else(|| self.plan.tag.clone(), |a| a.version.clone()),
                commit: self.plan.commit.as_ref().map(|c| c.sha.clone()),
                run: self.run.clone(),
                time: record::now(),
            });
        }
    }

    /// Service `s` has ended: write its records (and cache entries), then release its lock.
    fn end(&self, s: usize, p: &Progress) {
        let mut batch = Batch { records: self.records(s, p), ..Batch::default() };
        if p.failed.is_none() && !p.cancelled && p.ran > 0 {
            self.cache_entries(s, p, &mut batch);
        }
        match (&self.locks, self.key_of[s]) {
            (Some(l), Some(k)) => l.finish(k, batch),
            (Some(l), None) => l.write(batch),
            (None, _) => {
                let _ = self.backend.write(&batch);
            }
        }
    }

    fn barrier(&self, b: &Shards) -> Option<super::barrier::Barrier<'_>> {
        Some(super::barrier::Barrier {
            store: self.backend.barriers()?,
            run: b.plan.id.clone(),
            shard: b.plan.shard,
            total: b.plan.total,
            ttl: b.plan.ttl,
            patience: super::barrier::PATIENCE,
        })
    }

    /// Before this shard's phase `phase`: wait for every shard to end each phase before it
    /// (arriving first at those this shard has no task in).
    fn barrier_before(
        &self,
        phase: &str,
        cancel: &crate::process::CancelToken,
    ) -> Result<(), String> {
        let Some(b) = &self.barrier else { return Ok(()) };
        let Some(barrier) = self.barrier(b) else { return Ok(()) };
        let upto = b.plan.phases.iter().position(|p| p == phase).unwrap_or(b.plan.phases.len());
        let mut arrived = b.arrived.locked();
        while arrived.1 < upto {
            let q = b.plan.phases[arrived.1].clone();
            if arrived.0.insert(q.clone()) {
                barrier.arrive(&q, true).map_err(|e| e.to_string())?;
            }
            let waiting = |shards: &[usize]| {
                let list: Vec<String> =
                    shards.iter().map(|n| format!("{n}/{}", b.plan.total)).collect();
                self.observer.warn(&format!(
                    "waiting at the barrier before phase {phase}: shard(s) {} have not ended phase {q}",
                    list.join(", ")
                ));
            };
            barrier.wait(&q, &|| cancel.is_cancelled(), &waiting).map_err(|e| e.to_string())?;
            arrived.1 += 1;
        }
        Ok(())
    }

    /// This shard's phase `phase` has ended.
    fn barrier_after(&self, phase: &str, ok: bool) {
        let Some(b) = &self.barrier else { return };
        let Some(barrier) = self.barrier(b) else { return };
        let mut arrived = b.arrived.locked();
        if arrived.0.insert(phase.to_string())
            && let Err(e) = barrier.arrive(phase, ok)
        {
            self.observer.warn(&e.to_string());
        }
    }

    /// The run has ended: write its history entry (`run`), after every service's records, and
    /// release what is still held.
    pub(crate) fn finish(&self, run: Option<serde_json::Value>) -> Result<(), super::StateError> {
        if let Some(b) = &self.barrier {
            // The phases it never reached: the others need not wait for it there.
            if let Some(barrier) = self.barrier(b) {
                let mut arrived = b.arrived.locked();
                for q in &b.plan.phases {
                    if arrived.0.insert(q.clone()) {
                        let _ = barrier.arrive(q, true);
                    }
                }
            }
            b.stop.store(true, std::sync::atomic::Ordering::SeqCst);
            if let Some(h) = b.heartbeat.locked().take() {
                let _ = h.join();
            }
        }
        let batch = Batch { run, ..Batch::default() };
        match &self.locks {
            Some(l) => {
                l.write(batch);
                l.close();
                Ok(())
            }
            None if batch.is_empty() => Ok(()),
            None => self.backend.write(&batch),
        }
    }
}

/// Renew this shard's liveness lease every third of its TTL until `stop`.
fn heartbeat(
    backend: Arc<dyn Backend>,
    plan: BarrierPlan,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> Option<std::thread::JoinHandle<()>> {
    let every = (plan.ttl / 3).max(Duration::from_millis(50));
    std::thread::Builder::new()
        .name("pilum-barrier".into())
        .spawn(move || {
            let tick = Duration::from_millis(20).min(every);
            let mut last: Option<std::time::Instant> = None;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                if last.is_none_or(|t| t.elapsed() >= every) {
                    if let Some(store) = backend.barriers() {
                        let _ = store.alive(&plan.id, plan.shard, plan.ttl);
                    }
                    last = Some(std::time::Instant::now());
                }
                std::thread::sleep(tick);
            }
        })
        .ok()
}

struct Guarded<'a> {
    session: &'a Session,
    inner: &'a dyn Runner,
    cancel: crate::process::CancelToken,
}

impl Runner for Guarded<'_> {
    fn run(&self, a: &Attempt<'_>) -> Result<Option<Map>, TaskFailure> {
        let s = a.task.service;
        self.session.admit(s, a)?;
        {
            let mut p = self.session.progress();
            p[s].started.get_or_insert_with(record::now);
        }
        let r = match self.session.reused.get(&s) {
            // The recorded outputs of the build and push steps it did not run.
            Some(artefact) => {
                let mut outputs = super::cache::outputs(artefact, a.task.region.as_deref());
                outputs.extend(a.outputs.clone());
                let attempt = Attempt {
                    plan: a.plan,
                    task: a.task,
                    label: a.label,
                    attempt: a.attempt,
                    outputs,
                    timeout: a.timeout,
                    cancel: a.cancel,
                };
                self.inner.run(&attempt)
            }
            None => self.inner.run(a),
        };
        if let Ok(Some(m)) = &r {
            self.session.progress()[s].outputs.insert(a.task.id, m.clone());
        }
        r
    }

    fn phase_starting(&self, phase: &str) -> Result<(), String> {
        self.session.barrier_before(phase, &self.cancel)
    }

    fn phase_ended(&self, phase: &str, ok: bool) {
        self.session.barrier_after(phase, ok);
    }
}

struct Ending<'a> {
    session: &'a Session,
    inner: &'a dyn Sink,
}

impl Sink for Ending<'_> {
    fn event(&self, e: &Event) {
        self.inner.event(e);
        let (id, status, error) = match e {
            Event::TaskFinished { task, status, error, .. } => {
                (task.id, Some(*status), error.clone())
            }
            Event::TaskSkipped { task, reason } => {
                (task.id, None, (reason == "interrupted").then(|| reason.clone()))
            }
            _ => return,
        };
        let s = self.session.plan.tasks[id].service;
        let ended = {
            let mut all = self.session.progress();
            let p = &mut all[s];
            match (status, error) {
                (Some(TaskStatus::Ok), _) => p.ran += 1,
                (Some(TaskStatus::Cancelled), _) | (None, Some(_)) => p.cancelled = true,
                (Some(_), e) => {
                    p.ran += 1;
                    if p.failed.is_none() {
                        p.failed = Some(e.unwrap_or_else(|| "failed".into()));
                    }
                }
                (None, None) => {}
            }
            p.left = p.left.saturating_sub(1);
            (p.left == 0).then(|| std::mem::take(p))
        };
        if let Some(p) = ended {
            self.session.end(s, &p);
        }
    }
}
