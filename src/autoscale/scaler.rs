//! The scaler runtime: per-pool signal books and desired-state records, one decision loop per
//! pool, one apply lane per stack, recovery on start and draining on shutdown.
//!
//! Organisation: [`Scaler`] holds the shared state; `spawn_*` start its tasks; `ingest`
//! applies adapter changes; `decide_once` is the decision path (also used by dry runs with
//! `commit = false`); `apply_lane` writes config and runs `pulumi up` for every due pool of a
//! stack; `reload` swaps pools and strategies after compiling them.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::json;
use tokio::sync::Notify;

use crate::autoscale::actuator::{Pulumi, StackRef, is_pending_operations};
use crate::autoscale::audit::Audit;
use crate::autoscale::audit::SignalRecord;
use crate::autoscale::decide::{self, ApplyResult, Decision, Record};
use crate::autoscale::pool::{Pool, Pools};
use crate::autoscale::schedule;
use crate::autoscale::signal::{Book, Change, Signal, SourceKind};
use crate::autoscale::strategy::{self, Strategy};
use crate::backoff::{Backoff, Jitter};
use crate::server::log::Log;
use crate::server::metrics::{CooldownLabels, Metrics, PoolLabel, PoolResult};

/// Runtime settings of the scaler (from `pilum scale serve` flags).
#[derive(Debug, Clone)]
pub struct Settings {
    pub state_dir: PathBuf,
    /// How often every pool re-decides even without new signals (levels stay active).
    pub tick: Duration,
    /// How long a decision waits after a signal so a burst becomes one decision.
    pub debounce: Duration,
    /// Lock-conflict retry deadline for one `pulumi up`.
    pub lock_deadline: Duration,
    pub lock_backoff: Duration,
    /// First backoff after a failed apply; doubles up to `retry_max`.
    pub retry_backoff: Duration,
    pub retry_max: Duration,
    pub refresh_config: bool,
    /// Accepted signals waiting for the audit log before requests get 503.
    pub queue: usize,
}

/// One pool's mutable state.
#[derive(Debug)]
pub struct PoolState {
    pub name: String,
    pub lane: String,
    pub inner: Mutex<PoolInner>,
    pub wake: Notify,
}

#[derive(Debug)]
pub struct PoolInner {
    pub record: Record,
    pub book: Book,
    pub last_decision: Option<Decision>,
    pub last_error: Option<String>,
}

/// One apply lane (one stack).
#[derive(Debug)]
pub struct Lane {
    pub id: String,
    pub stack: StackRef,
    pub pools: Vec<String>,
    pub wake: Notify,
    pub busy: AtomicBool,
}

/// The shared scaler.
pub struct Scaler {
    pub settings: Settings,
    pools: RwLock<Arc<Pools>>,
    strategies: RwLock<HashMap<String, Strategy>>,
    pub states: BTreeMap<String, Arc<PoolState>>,
    pub lanes: BTreeMap<String, Arc<Lane>>,
    pub audit: Audit,
    pub metrics: Arc<Metrics>,
    pub pulumi: Pulumi,
    pub log: Log,
    pub draining: AtomicBool,
    /// Reasons `/readyz` fails (stale locks, pending operations), keyed by lane.
    pub blocked: Mutex<BTreeMap<String, String>>,
    /// The last rejected reload, shown in `/readyz` detail.
    pub reload_error: Mutex<Option<String>>,
    stop: Notify,
}

impl std::fmt::Debug for Scaler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scaler").field("pools", &self.states.keys()).finish()
    }
}

/// Compile every pool's strategy; errors carry their location.
pub fn compile_strategies(pools: &Pools) -> Result<HashMap<String, Strategy>, Vec<String>> {
    let base = pools.file.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut out = HashMap::new();
    let mut errors = Vec::new();
    for p in &pools.pools {
        match strategy::resolve(&base, &p.spec.strategy) {
            Ok(src) => match Strategy::load(&src, &p.spec.strategy, &base) {
                Ok(s) => {
                    out.insert(p.name.clone(), s);
                }
                Err(e) => errors.push(format!("pool `{}`: {e}", p.name)),
            },
            Err(e) => errors.push(format!("pool `{}`: {e}", p.name)),
        }
    }
    if errors.is_empty() { Ok(out) } else { Err(errors) }
}

/// A schedule change for the log: `open office-hours (10)` or `close office-hours`.
fn describe(change: &Change) -> String {
    match change {
        Change::Raise(s) => format!("open {} ({})", s.name, s.value.unwrap_or_default()),
        Change::Clear { key, .. } => {
            format!("close {}", key.strip_prefix(schedule::KEY_PREFIX).unwrap_or(key))
        }
        Change::Intent(s) => s.name.clone(),
    }
}

fn record_path(dir: &Path, pool: &str) -> PathBuf {
    dir.join(format!("{pool}.json"))
}

fn signals_path(dir: &Path) -> PathBuf {
    dir.join("signals.json")
}

/// Write `bytes` to `path` atomically (temp file + rename), so a crash never leaves half a
/// record.
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut tmp, bytes)?;
    tmp.persist(path).map(|_| ()).map_err(|e| e.error)
}

/// Load every persisted record in a state dir (for `pilum scale status` without a server).
pub fn read_records(dir: &Path) -> Vec<Record> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "json")
                && p.file_name().is_some_and(|n| n != "signals.json")
                && let Ok(text) = std::fs::read_to_string(&p)
                && let Ok(r) = serde_json::from_str::<Record>(&text)
            {
                out.push(r);
            }
        }
    }
    out.sort_by(|a, b| a.pool.cmp(&b.pool));
    out
}

impl Scaler {
    /// Build the scaler: compile strategies, load records (reading the current config value
    /// for pools without one) and persisted signals.
    pub async fn start(
        pools: Pools,
        settings: Settings,
        metrics: Arc<Metrics>,
        log: Log,
    ) -> Result<Arc<Self>, String> {
        let strategies = compile_strategies(&pools).map_err(|e| e.join("\n"))?;
        std::fs::create_dir_all(&settings.state_dir).map_err(|e| {
            format!("cannot create state dir `{}`: {e}", settings.state_dir.display())
        })?;
        let audit =
            Audit::open(&settings.state_dir.join("audit.jsonl"), settings.queue).map_err(|e| {
                format!("cannot open audit log in `{}`: {e}", settings.state_dir.display())
            })?;
        let pulumi = Pulumi::default();
        // Pending signals persisted at shutdown. A file that cannot be read or parsed stops the
        // start: dropping it silently would lose alerts, and the next shutdown would overwrite it.
        let signals_file = signals_path(&settings.state_dir);
        let mut saved_signals: BTreeMap<String, Book> =
            match std::fs::read_to_string(&signals_file) {
                Ok(text) => serde_json::from_str(&text).map_err(|e| {
                    format!(
                        "pending signals `{}` are corrupt: {e}\nhelp: move the file away to start without them",
                        signals_file.display()
                    )
                })?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
                Err(e) => return Err(format!("cannot read `{}`: {e}", signals_file.display())),
            };
        let mut lanes: BTreeMap<String, (StackRef, Vec<String>)> = BTreeMap::new();
        let mut states = BTreeMap::new();
        let mut blocked = BTreeMap::new();
        let mut refreshed = std::collections::HashSet::new();
        for p in &pools.pools {
            let stack = StackRef { dir: p.project_dir.clone(), stack: p.spec.stack.clone() };
            lanes
                .entry(p.stack_id())
                .or_insert_with(|| (stack.clone(), Vec::new()))
                .1
                .push(p.name.clone());
            if settings.refresh_config && refreshed.insert(p.stack_id()) {
                log.info("config refresh", &[("stack", &p.spec.stack)]);
                if let Err(f) = pulumi.config_refresh(&stack).await {
                    let reason =
                        format!("`pulumi config refresh` failed for stack `{}`: {f}", p.spec.stack);
                    if f.lock || is_pending_operations(&f.tail) {
                        blocked.insert(p.stack_id(), reason);
                    } else {
                        return Err(reason);
                    }
                }
            }
            let record = match std::fs::read_to_string(record_path(&settings.state_dir, &p.name)) {
                Ok(text) => serde_json::from_str::<Record>(&text).map_err(|e| {
                    format!(
                        "state record `{}` is corrupt: {e}\nhelp: move it away to start this pool from the current config",
                        record_path(&settings.state_dir, &p.name).display()
                    )
                })?,
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(format!(
                        "cannot read `{}`: {e}",
                        record_path(&settings.state_dir, &p.name).display()
                    ));
                }
                Err(_) => {
                    let current = pulumi
                        .config_get(&stack, &p.spec.key)
                        .await
                        .map_err(|f| format!("cannot read `{}` for pool `{}`: {f}", p.spec.key, p.name))?;
                    let value = match current {
                        Some(v) => v.trim().parse::<i64>().map_err(|_| {
                            format!("pool `{}`: config `{}` is `{v}`, not an integer", p.name, p.spec.key)
                        })?,
                        None => p.spec.min,
                    };
                    Record::new(&p.name, value)
                }
            };
            metrics.desired.get_or_create(&PoolLabel { pool: p.name.clone() }).set(record.desired);
            if let Some(a) = record.applied {
                metrics.applied.get_or_create(&PoolLabel { pool: p.name.clone() }).set(a);
            }
            let book = saved_signals.remove(&p.name).unwrap_or_default();
            states.insert(
                p.name.clone(),
                Arc::new(PoolState {
                    name: p.name.clone(),
                    lane: p.stack_id(),
                    inner: Mutex::new(PoolInner {
                        record,
                        book,
                        last_decision: None,
                        last_error: None,
                    }),
                    wake: Notify::new(),
                }),
            );
        }
        let lanes = lanes
            .into_iter()
            .map(|(id, (stack, pools))| {
                (
                    id.clone(),
                    Arc::new(Lane {
                        id,
                        stack,
                        pools,
                        wake: Notify::new(),
                        busy: AtomicBool::new(false),
                    }),
                )
            })
            .collect();
        metrics.reload_ok.set(1);
        Ok(Arc::new(Self {
            settings,
            pools: RwLock::new(Arc::new(pools)),
            strategies: RwLock::new(strategies),
            states,
            lanes,
            audit,
            metrics,
            pulumi,
            log,
            draining: AtomicBool::new(false),
            blocked: Mutex::new(blocked),
            reload_error: Mutex::new(None),
            stop: Notify::new(),
        }))
    }

    pub fn pools(&self) -> Arc<Pools> {
        self.pools.read().expect("pools lock").clone()
    }

    pub fn pool(&self, name: &str) -> Option<Pool> {
        self.pools().get(name).cloned()
    }

    fn strategy(&self, pool: &str) -> Option<Strategy> {
        self.strategies.read().expect("strategies lock").get(pool).cloned()
    }

    /// Start the decision loops and apply lanes; pools whose applied generation is behind are
    /// re-applied once on start (recovery).
    pub fn spawn(self: &Arc<Self>) -> Vec<tokio::task::JoinHandle<()>> {
        let mut handles = Vec::new();
        for lane in self.lanes.values() {
            let me = self.clone();
            let lane = lane.clone();
            handles.push(tokio::spawn(async move { me.apply_lane(lane).await }));
        }
        for st in self.states.values() {
            let me = self.clone();
            let st = st.clone();
            handles.push(tokio::spawn(async move { me.decision_loop(st).await }));
        }
        for st in self.states.values() {
            let inner = st.inner.lock().expect("pool lock");
            if inner.record.behind() {
                self.log.info(
                    "recovering",
                    &[
                        ("pool", &st.name),
                        ("desired", &inner.record.desired.to_string()),
                        ("applied", &inner.record.applied.map_or("-".into(), |a| a.to_string())),
                    ],
                );
                if let Some(lane) = self.lanes.get(&st.lane) {
                    lane.wake.notify_one();
                }
            }
            drop(inner);
            // A window open at start raises its level now, not a tick later.
            self.evaluate_schedules(st, Utc::now());
            if !st.inner.lock().expect("pool lock").book.is_empty() {
                st.wake.notify_one();
            }
        }
        handles
    }

    /// Apply an adapter's change to a pool (called by the ingest task).
    pub fn ingest(&self, pool: &str, change: Change) {
        let Some(st) = self.states.get(pool) else { return };
        let changed = st.inner.lock().expect("pool lock").book.apply(change);
        if changed {
            st.wake.notify_one();
        }
    }

    /// Bring a pool's schedule levels in line with the clock. Windows opening or closing change
    /// the book like an alarm raising or clearing, and are audited and counted the same way.
    /// Called at start and by every committed decision (ticks, signals, `/scale`), which then
    /// decides on the result, so nothing is woken here.
    pub fn evaluate_schedules(&self, st: &PoolState, now: chrono::DateTime<Utc>) {
        let Some(pool) = self.pool(&st.name) else { return };
        let mut inner = st.inner.lock().expect("pool lock");
        for change in schedule::changes(&pool.schedules, &inner.book, now) {
            let key = match &change {
                Change::Raise(s) => s.key.clone(),
                Change::Clear { key, .. } | Change::Intent(Signal { key, .. }) => key.clone(),
            };
            let record = SignalRecord::of_change(&st.name, SourceKind::Schedule, key, &change);
            if self.audit.try_signal(record).is_err() {
                // The audit queue is full: leave the book alone so the next tick retries.
                self.metrics.intent(&st.name, SourceKind::Schedule.as_str(), "overloaded");
                continue;
            }
            self.metrics.intent(&st.name, SourceKind::Schedule.as_str(), "accepted");
            self.log.info("schedule", &[("pool", &st.name), ("change", &describe(&change))]);
            inner.book.apply(change);
        }
    }

    async fn decision_loop(self: Arc<Self>, st: Arc<PoolState>) {
        loop {
            tokio::select! {
                _ = st.wake.notified() => {
                    // Let the rest of a burst arrive: many signals, one decision.
                    tokio::time::sleep(self.settings.debounce).await;
                }
                _ = tokio::time::sleep(self.settings.tick) => {}
                _ = self.stop.notified() => return,
            }
            if self.draining.load(Ordering::SeqCst) {
                return;
            }
            let _ = self.decide_once(&st.name, None, true).await;
        }
    }

    /// The decision path. `extra` adds signals for this decision only (dry runs); with
    /// `commit = false` nothing is consumed or changed.
    pub async fn decide_once(
        self: &Arc<Self>,
        pool_name: &str,
        extra: Option<Vec<Signal>>,
        commit: bool,
    ) -> Result<Option<Decision>, String> {
        let st = self
            .states
            .get(pool_name)
            .ok_or_else(|| format!("unknown pool `{pool_name}`"))?
            .clone();
        let pool = self.pool(pool_name).ok_or_else(|| format!("unknown pool `{pool_name}`"))?;
        let strategy = self
            .strategy(pool_name)
            .ok_or_else(|| format!("pool `{pool_name}` has no strategy"))?;
        let now = Utc::now();
        if commit {
            self.evaluate_schedules(&st, now);
        }
        let (signals, record) = {
            let mut inner = st.inner.lock().expect("pool lock");
            let mut signals = if commit {
                inner.book.take()
            } else {
                // A dry run sees the windows as they are now without recording the change.
                let mut b = inner.book.clone();
                for change in schedule::changes(&pool.schedules, &b, now) {
                    b.apply(change);
                }
                b.take()
            };
            signals.extend(extra.unwrap_or_default());
            (signals, inner.record.clone())
        };
        if signals.is_empty() && commit {
            return Ok(None);
        }
        let base = record.evaluation_base(&pool.spec, now);
        let ctx = decide::context(pool_name, &pool.spec, base, &signals, &record);
        let strat = strategy.clone();
        let proposal = tokio::task::spawn_blocking(move || strat.decide(&ctx))
            .await
            .map_err(|e| format!("strategy task failed: {e}"))?;
        let signal_snapshot: Vec<_> = signals.iter().map(Signal::to_json).collect();
        let keys: Vec<&str> = signals.iter().map(|s| s.key.as_str()).collect();
        let mut sources: Vec<&str> = signals.iter().map(|s| s.source.as_str()).collect();
        sources.sort_unstable();
        sources.dedup();
        let proposal = match proposal {
            Ok(p) => p,
            Err(e) => {
                self.metrics
                    .strategy_errors
                    .get_or_create(&PoolLabel { pool: pool_name.into() })
                    .inc();
                self.metrics
                    .decisions
                    .get_or_create(&PoolResult { pool: pool_name.into(), result: "error".into() })
                    .inc();
                self.log.warn(
                    "strategy failed; decision skipped",
                    &[("pool", pool_name), ("error", &e)],
                );
                if commit {
                    self.audit.write(
                        "decision",
                        json!({
                            "pool": pool_name, "sources": sources, "idempotency_keys": keys,
                            "signals": signal_snapshot, "strategy": strategy.name, "script_hash": strategy.hash,
                            "old": record.desired, "error": e,
                        }),
                    );
                    st.inner.lock().expect("pool lock").last_error = Some(e.clone());
                }
                return Err(format!("strategy `{}` failed: {e}", strategy.name));
            }
        };
        let decision = {
            let mut inner = st.inner.lock().expect("pool lock");
            let d = decide::settle(&mut inner.record, &pool.spec, base, &proposal, now, commit);
            if commit {
                inner.last_decision = Some(d.clone());
                inner.last_error = None;
                if d.changed {
                    self.persist_record(&inner.record);
                }
            }
            d
        };
        if commit {
            let result = if decision.changed { "changed" } else { "unchanged" };
            self.metrics
                .decisions
                .get_or_create(&PoolResult { pool: pool_name.into(), result: result.into() })
                .inc();
            self.metrics
                .desired
                .get_or_create(&PoolLabel { pool: pool_name.into() })
                .set(decision.clamped);
            self.audit.write(
                "decision",
                json!({
                    "pool": pool_name, "sources": sources, "idempotency_keys": keys,
                    "signals": signal_snapshot, "strategy": strategy.name, "script_hash": strategy.hash,
                    "old": decision.old, "desired": decision.proposed, "clamped": decision.clamped,
                    "changed": decision.changed, "reason": decision.reason, "guardrails": decision.guardrails,
                    "generation": decision.generation,
                }),
            );
            if decision.changed {
                self.log.info(
                    "decision",
                    &[
                        ("pool", pool_name),
                        ("from", &decision.old.to_string()),
                        ("to", &decision.clamped.to_string()),
                        ("reason", &decision.reason),
                    ],
                );
                if let Some(lane) = self.lanes.get(&st.lane) {
                    lane.wake.notify_one();
                }
            }
        }
        Ok(Some(decision))
    }

    fn persist_record(&self, record: &Record) {
        let path = record_path(&self.settings.state_dir, &record.pool);
        match serde_json::to_vec_pretty(record) {
            Ok(bytes) => {
                if let Err(e) = write_atomic(&path, &bytes) {
                    self.log.error(
                        "cannot persist state record",
                        &[("path", &path.display().to_string()), ("error", &e.to_string())],
                    );
                }
            }
            Err(e) => self.log.error("cannot serialise state record", &[("error", &e.to_string())]),
        }
    }

    /// Persist every pool's pending signals (on shutdown) so a restart continues from them.
    pub fn persist_signals(&self) {
        let books: BTreeMap<&str, Book> = self
            .states
            .iter()
            .map(|(n, st)| (n.as_str(), st.inner.lock().expect("pool lock").book.clone()))
            .filter(|(_, b)| !b.is_empty())
            .collect();
        let path = signals_path(&self.settings.state_dir);
        match serde_json::to_vec_pretty(&books) {
            Ok(bytes) => {
                if let Err(e) = write_atomic(&path, &bytes) {
                    self.log.error("cannot persist signals", &[("error", &e.to_string())]);
                }
            }
            Err(e) => self.log.error("cannot serialise signals", &[("error", &e.to_string())]),
        }
        for st in self.states.values() {
            self.persist_record(&st.inner.lock().expect("pool lock").record);
        }
    }

    async fn apply_lane(self: Arc<Self>, lane: Arc<Lane>) {
        let mut failures = 0u32;
        let mut retry_at: Option<tokio::time::Instant> = None;
        loop {
            let sleep_retry = async {
                match retry_at {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = lane.wake.notified() => {}
                _ = sleep_retry => { retry_at = None; }
                _ = self.stop.notified() => return,
            }
            if self.draining.load(Ordering::SeqCst) {
                return;
            }
            if retry_at.is_some_and(|t| t > tokio::time::Instant::now()) {
                // A failure is backing off; a new decision joins the retry instead of storming.
                continue;
            }
            lane.busy.store(true, Ordering::SeqCst);
            let ok = self.apply_due(&lane).await;
            lane.busy.store(false, Ordering::SeqCst);
            match ok {
                None => {}
                Some(true) => {
                    failures = 0;
                    retry_at = None;
                    // Decisions made while `up` ran may be due already.
                    if lane
                        .pools
                        .iter()
                        .any(|p| self.states[p].inner.lock().expect("pool lock").record.behind())
                    {
                        lane.wake.notify_one();
                    }
                }
                Some(false) => {
                    failures += 1;
                    let delay = Backoff::new(self.settings.retry_backoff)
                        .cap(self.settings.retry_max)
                        .jitter(Jitter::Up(0.2))
                        .delay(failures);
                    retry_at = Some(tokio::time::Instant::now() + delay);
                }
            }
        }
    }

    /// Apply every due pool of a lane in one `pulumi up`. None when nothing was due.
    async fn apply_due(&self, lane: &Lane) -> Option<bool> {
        let pools = self.pools();
        let mut due = Vec::new();
        for name in &lane.pools {
            let inner = self.states[name].inner.lock().expect("pool lock");
            if inner.record.behind()
                && let Some(p) = pools.get(name)
            {
                due.push((
                    p.clone(),
                    inner.record.generation,
                    inner.record.desired,
                    inner.record.applied,
                ));
            }
        }
        if due.is_empty() {
            return None;
        }
        let started = Instant::now();
        let pairs: Vec<(String, i64)> =
            due.iter().map(|(p, _, d, _)| (p.spec.key.clone(), *d)).collect();
        let mut targets: Vec<String> =
            due.iter().flat_map(|(p, ..)| p.spec.targets.iter().cloned()).collect();
        targets.sort();
        targets.dedup();
        let message = format!(
            "pilum: {}",
            due.iter()
                .map(|(p, _, d, a)| {
                    let reason = self.states[&p.name]
                        .inner
                        .lock()
                        .expect("pool lock")
                        .record
                        .history
                        .last()
                        .map(|h| h.reason.clone())
                        .unwrap_or_else(|| "recovery".into());
                    format!(
                        "{} {}→{} ({reason})",
                        p.name,
                        a.map_or("?".into(), |a| a.to_string()),
                        d
                    )
                })
                .collect::<Vec<_>>()
                .join("; ")
        );
        let names: Vec<&str> = due.iter().map(|(p, ..)| p.name.as_str()).collect();
        self.log.info("applying", &[("pools", &names.join(",")), ("stack", &lane.stack.stack)]);
        let mut retries = 0;
        let result = match self.pulumi.config_set_all(&lane.stack, &pairs, None).await {
            Err(f) => Err(f),
            Ok(()) => {
                let (r, n) = self
                    .pulumi
                    .up_with_lock_retry(
                        &lane.stack,
                        &targets,
                        &message,
                        self.settings.lock_deadline,
                        self.settings.lock_backoff,
                        |f| {
                            let reason =
                                format!("stack `{}` is locked, retrying: {f}", lane.stack.stack);
                            self.blocked
                                .lock()
                                .expect("blocked lock")
                                .insert(lane.id.clone(), reason);
                        },
                    )
                    .await;
                retries = n;
                r
            }
        };
        let elapsed = started.elapsed().as_secs_f64();
        let now = Utc::now();
        let ok = result.is_ok();
        let (text, result_label) = match &result {
            Ok(()) => ("ok".to_string(), "success"),
            Err(f) if f.lock => (f.to_string(), "locked"),
            Err(f) => (f.to_string(), "failure"),
        };
        {
            let mut blocked = self.blocked.lock().expect("blocked lock");
            match &result {
                Err(f) if f.lock || is_pending_operations(&f.tail) => {
                    blocked.insert(lane.id.clone(), format!("stack `{}`: {f}", lane.stack.stack));
                }
                _ => {
                    blocked.remove(&lane.id);
                }
            }
        }
        for (p, generation, desired, _) in &due {
            let label = PoolLabel { pool: p.name.clone() };
            self.metrics
                .updates
                .get_or_create(&PoolResult { pool: p.name.clone(), result: result_label.into() })
                .inc();
            self.metrics.update_duration.get_or_create(&label).observe(elapsed);
            for _ in 0..retries {
                self.metrics.lock_retries.get_or_create(&label).inc();
            }
            let mut inner = self.states[&p.name].inner.lock().expect("pool lock");
            if ok {
                inner.record.applied = Some(*desired);
                inner.record.applied_generation = inner.record.applied_generation.max(*generation);
                self.metrics.applied.get_or_create(&label).set(*desired);
                self.metrics
                    .last_success
                    .get_or_create(&label)
                    .set(now.timestamp_millis() as f64 / 1000.0);
            }
            inner.record.last_result =
                Some(ApplyResult { at: now, ok, generation: *generation, message: text.clone() });
            self.persist_record(&inner.record);
            self.audit.write(
                "apply",
                json!({
                    "pool": p.name, "generation": generation, "value": desired, "targets": p.spec.targets,
                    "result": result_label, "message": text, "duration_seconds": elapsed, "lock_retries": retries,
                    "up_message": message,
                }),
            );
        }
        if ok {
            self.log.info(
                "applied",
                &[("pools", &names.join(",")), ("seconds", &format!("{elapsed:.2}"))],
            );
        } else {
            self.log.warn(
                "apply failed; will retry with backoff",
                &[("pools", &names.join(",")), ("error", &text)],
            );
        }
        Some(ok)
    }

    /// A dry run: the real decision path without committing, then a preview with the new
    /// value through a temporary config file.
    pub async fn dry_run(
        self: &Arc<Self>,
        pool_name: &str,
        extra: Vec<Signal>,
    ) -> Result<serde_json::Value, (u16, String)> {
        let pool = self.pool(pool_name).ok_or((404, format!("unknown pool `{pool_name}`")))?;
        let decision = self
            .decide_once(pool_name, Some(extra), false)
            .await
            .map_err(|e| (422, e))?
            .ok_or((422, "nothing to decide".to_string()))?;
        let stack = StackRef { dir: pool.project_dir.clone(), stack: pool.spec.stack.clone() };
        let preview = self
            .pulumi
            .preview_with(&stack, &[(pool.spec.key.clone(), decision.clamped)], &pool.spec.targets)
            .await
            .map_err(|f| (502, format!("preview failed: {f}")))?;
        Ok(json!({
            "pool": pool_name,
            "dryRun": true,
            "current": decision.old,
            "target": decision.proposed,
            "clamped": decision.clamped,
            "changed": decision.changed,
            "reason": decision.reason,
            "guardrails": decision.guardrails,
            "cooldownRemaining": {"up": decision.cooldown_up_remaining, "down": decision.cooldown_down_remaining},
            "changeSummary": preview.get("changeSummary").cloned().unwrap_or(json!({})),
            "steps": preview.get("steps").cloned().unwrap_or(json!([])),
        }))
    }

    /// The status of one pool (for `GET /pools/{pool}`).
    pub fn status(&self, name: &str) -> Option<serde_json::Value> {
        let st = self.states.get(name)?;
        let pool = self.pool(name)?;
        let inner = st.inner.lock().expect("pool lock");
        let (up, down) = inner.record.cooldowns(&pool.spec, Utc::now());
        let strategy = self.strategy(name);
        Some(json!({
            "pool": name,
            "stack": pool.spec.stack,
            "key": pool.spec.key,
            "min": pool.spec.min,
            "max": pool.spec.max,
            "desired": inner.record.desired,
            "applied": inner.record.applied,
            "generation": inner.record.generation,
            "appliedGeneration": inner.record.applied_generation,
            "cooldowns": {"up": up, "down": down},
            "signals": inner.book.levels.values().map(Signal::to_json).collect::<Vec<_>>(),
            "pendingIntents": inner.book.intents.len(),
            "lastResult": inner.record.last_result,
            "lastDecision": inner.last_decision,
            "lastError": inner.last_error,
            "strategy": strategy.map(|s| json!({"name": s.name, "hash": s.hash})),
        }))
    }

    /// Refresh the gauges that depend on the clock (cooldown remaining) before a scrape.
    pub fn refresh_gauges(&self) {
        let pools = self.pools();
        let now = Utc::now();
        for (name, st) in &self.states {
            if let Some(p) = pools.get(name) {
                let (up, down) = st.inner.lock().expect("pool lock").record.cooldowns(&p.spec, now);
                self.metrics
                    .cooldown
                    .get_or_create(&CooldownLabels { pool: name.clone(), direction: "up".into() })
                    .set(up);
                self.metrics
                    .cooldown
                    .get_or_create(&CooldownLabels { pool: name.clone(), direction: "down".into() })
                    .set(down);
            }
        }
        self.metrics.queue_depth.set(self.audit.depth() as i64);
    }

    /// Reload the pools file and strategies: compile and validate first, swap only on success.
    /// Adding or removing pools, or moving one to another stack, needs a restart.
    pub fn reload(&self) -> Result<(), String> {
        let file = self.pools().file.clone();
        let result = crate::autoscale::pool::load(&file)
            .map_err(|errs| errs.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))
            .and_then(|pools| {
                let same_shape = pools.pools.len() == self.states.len()
                    && pools
                        .pools
                        .iter()
                        .all(|p| self.states.get(&p.name).is_some_and(|s| s.lane == p.stack_id()));
                if !same_shape {
                    return Err(
                        "adding, removing or moving pools to another stack needs a restart"
                            .to_string(),
                    );
                }
                let strategies = compile_strategies(&pools).map_err(|e| e.join("\n"))?;
                Ok((pools, strategies))
            });
        match result {
            Ok((pools, strategies)) => {
                let hashes: Vec<String> =
                    strategies.iter().map(|(p, s)| format!("{p}={}", s.hash)).collect();
                *self.pools.write().expect("pools lock") = Arc::new(pools);
                *self.strategies.write().expect("strategies lock") = strategies;
                *self.reload_error.lock().expect("reload lock") = None;
                self.metrics.reload_ok.set(1);
                self.log.info("reloaded", &[("strategies", &hashes.join(","))]);
                Ok(())
            }
            Err(e) => {
                self.metrics.reload_errors.inc();
                self.metrics.reload_ok.set(0);
                *self.reload_error.lock().expect("reload lock") = Some(e.clone());
                self.log.error("reload rejected; keeping the previous version", &[("error", &e)]);
                Err(e)
            }
        }
    }

    /// The files hot reload watches: the pools file and every strategy script.
    pub fn watched_files(&self) -> Vec<PathBuf> {
        let pools = self.pools();
        let base = pools.file.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut out = vec![pools.file.clone()];
        for p in &pools.pools {
            if let Ok(strategy::Source::File(f)) = strategy::resolve(&base, &p.spec.strategy) {
                out.push(f);
            }
        }
        out
    }

    /// Start draining: `/readyz` fails, webhooks get 503, no new `up` starts.
    pub fn begin_drain(&self) {
        self.draining.store(true, Ordering::SeqCst);
        self.stop.notify_waiters();
    }

    /// Whether any lane is running an update.
    pub fn busy(&self) -> bool {
        self.lanes.values().any(|l| l.busy.load(Ordering::SeqCst))
    }
}
