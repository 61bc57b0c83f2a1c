//! The scaler runtime: per-pool signal books and desired-state records, one supervised decision
//! loop per pool (`decision.rs`), one apply lane per stack (`apply.rs`), recovery on start and
//! draining on shutdown.
//!
//! Organisation: [`Scaler`] holds the shared state; [`Scaler::start`] opens the state directory,
//! recovers records and signals, and opens the journal; [`Scaler::spawn`] starts the lanes and
//! the supervisors of the decision loops; `apply_durable` is where accepted changes reach the
//! books; `reload` swaps pools and strategies after compiling them (a panic while reloading
//! keeps the old ones). Locks are held only for in-memory work; a poisoned lock (a panic while
//! it was held) is recovered, since every critical section leaves the state consistent.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use tokio::sync::{Notify, watch};

use crate::autoscale::actuator::{Pulumi, StackRef, is_pending_operations};
use crate::autoscale::audit::Audit;
use crate::autoscale::decide::{Decision, Record};
use crate::autoscale::ha::Ha;
use crate::autoscale::log::Log;
use crate::autoscale::metrics::{CooldownLabels, Metrics, PoolLabel};
use crate::autoscale::pool::{Pool, Pools};
use crate::autoscale::schedule;
use crate::autoscale::signal::{Book, Change, Signal};
use crate::autoscale::state::{Quarantined, StateDir};
use crate::autoscale::strategy::{self, Strategy};
use crate::sync::{LockExt, RwLockExt};

/// Runtime settings of the scaler (from `pilum scale serve` flags).
#[derive(Debug, Clone)]
pub(crate) struct Settings {
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
    /// Accepted signals waiting for the journal before requests get 503.
    pub queue: usize,
    /// Previews (`?dryRun=true`) allowed to wait per stack while one runs; more get 429.
    pub preview_queue: usize,
    /// Test-only fault injection (`--test-fault`): `decide-panic` or `reload-panic`.
    pub fault: Option<String>,
    /// `--ha`: shared state in Redis and a leader lease.
    pub ha: Option<crate::autoscale::ha::HaSettings>,
}

/// How many quarantined signals a pool keeps for `GET /pools/{pool}`.
const QUARANTINE_KEPT: usize = 50;

/// One pool's mutable state.
#[derive(Debug)]
pub(crate) struct PoolState {
    pub name: String,
    pub lane: String,
    pub inner: Mutex<PoolInner>,
    pub wake: Notify,
    /// Serialises writes of this pool's record file (taken before the record is copied).
    pub writing: tokio::sync::Mutex<()>,
}

#[derive(Debug)]
pub(crate) struct PoolInner {
    pub record: Record,
    pub book: Book,
    pub last_decision: Option<Decision>,
    pub last_error: Option<String>,
    /// Signals that made the strategy fail, newest last.
    pub quarantined: Vec<Quarantined>,
    /// Why the pool cannot decide right now (its decision loop crashed); webhooks get 503.
    pub down: Option<String>,
    /// Why the pool's current value is unknown (its config key is missing or unreadable, and
    /// no record says what it is). Nothing is decided or applied until it is known: the
    /// decision loop re-reads the key on every tick.
    pub unknown: Option<String>,
    /// The last drift check.
    pub drift: Option<crate::autoscale::drift::DriftState>,
    /// Drift policy `restore`: re-apply the desired value although it is not behind.
    pub restore: bool,
}

/// One apply lane (one stack).
#[derive(Debug)]
pub(crate) struct Lane {
    pub id: String,
    pub stack: StackRef,
    pub pools: Vec<String>,
    pub wake: Notify,
    /// Previews running or waiting on this stack.
    pub previews: tokio::sync::Semaphore,
    pub preview_waiting: AtomicU32,
    /// Held while an update runs on the stack: drift checks never run during one.
    pub stack_busy: tokio::sync::Mutex<()>,
}

/// The shared scaler.
pub(crate) struct Scaler {
    pub settings: Settings,
    pools: RwLock<Arc<Pools>>,
    strategies: RwLock<HashMap<String, Strategy>>,
    /// Every pool's state; the set of pools is fixed for the server's life.
    pub states: Arc<BTreeMap<String, Arc<PoolState>>>,
    pub lanes: BTreeMap<String, Arc<Lane>>,
    pub state: Arc<StateDir>,
    pub audit: Audit,
    pub metrics: Arc<Metrics>,
    pub pulumi: Pulumi,
    pub log: Log,
    pub draining: AtomicBool,
    stop: watch::Sender<bool>,
    /// Reasons `/readyz` fails (stale locks, pending operations), keyed by lane.
    pub blocked: Mutex<BTreeMap<String, String>>,
    /// The last rejected reload, shown in `/readyz` detail.
    pub reload_error: Mutex<Option<String>>,
    /// Held by the journal writer while it applies a batch, and by snapshots while they copy
    /// the books: the value is the last sequence number applied.
    pub applied_seq: Arc<Mutex<u64>>,
    /// A one-shot test fault still to fire.
    pub(crate) fault: Mutex<Option<String>>,
    /// When this server started: `fallback` counts silence from here at the latest.
    pub started: chrono::DateTime<Utc>,
    /// ChatOps (set once at start when the pools file has `notify:`).
    pub chat: std::sync::OnceLock<crate::autoscale::chatops::Chat>,
    /// `--ha`: the shared state and the lease.
    pub ha: Option<Arc<Ha>>,
}

impl std::fmt::Debug for Scaler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scaler").field("pools", &self.states.keys()).finish()
    }
}

/// Lock `m`, recovering it if a panic poisoned it (see the module docs).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.locked()
}

fn read<T>(m: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    m.read_locked()
}

fn write<T>(m: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    m.write_locked()
}

/// The text of a panic payload.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// With `--ha` the leader's records in Redis are the truth, by pool; without, none.
async fn shared_records(ha: Option<&Ha>) -> Result<BTreeMap<String, Record>, String> {
    let Some(ha) = ha else { return Ok(BTreeMap::new()) };
    let records = ha
        .records()
        .await
        .map_err(|e| format!("cannot read the shared records from Redis: {e}"))?;
    Ok(records.into_iter().map(|r| (r.pool.clone(), r)).collect())
}

/// Every pool's record: the shared one, else the local one, else a new one from the stack's
/// current value (saved at once, so `pilum scale status --state-dir` has a row from the start).
/// A pool whose current value cannot be read starts at `min` and is returned in the second map
/// with the reason.
async fn load_records(
    pools: &Pools,
    state: &StateDir,
    mut shared: BTreeMap<String, Record>,
    pulumi: &Pulumi,
    log: &Log,
) -> Result<(BTreeMap<String, Record>, BTreeMap<String, String>), String> {
    let mut records = BTreeMap::new();
    let mut unknown = BTreeMap::new();
    for p in &pools.pools {
        let local = match shared.remove(&p.name) {
            Some(r) => Some(r),
            None => state.load_record(p).map_err(|e| e.to_string())?,
        };
        let record = match local {
            Some(r) => r,
            None => match initial_value(pulumi, p).await {
                Ok(v) => {
                    let r = Record::new(&p.name, v);
                    state.save_record(&r).map_err(|e| {
                        format!("cannot write the state record of pool `{}`: {e}", p.name)
                    })?;
                    r
                }
                Err(why) => {
                    log.error("current value unknown", &[("pool", &p.name), ("reason", &why)]);
                    unknown.insert(p.name.clone(), why);
                    Record::new(&p.name, p.spec.min)
                }
            },
        };
        records.insert(p.name.clone(), record);
    }
    Ok((records, unknown))
}

/// The pending signals from the last run's snapshot and journal (with `--ha`, the shared
/// stream holds them and is replayed instead), written back as a fresh snapshot so the journal
/// only ever holds what arrived since the last start.
fn recover_signals(
    state: &StateDir,
    pools: &Pools,
    records: &BTreeMap<String, Record>,
    ha: bool,
    log: &Log,
) -> Result<crate::autoscale::state::Recovered, String> {
    let mut recovered = state.recover(pools, records).map_err(|e| e.to_string())?;
    if ha {
        recovered.books.clear();
    }
    if recovered.torn > 0 || recovered.replayed > 0 || recovered.dropped > 0 {
        log.info(
            "recovered signals",
            &[
                ("replayed", &recovered.replayed.to_string()),
                ("torn_lines_skipped", &recovered.torn.to_string()),
                ("dropped_unknown_pools", &recovered.dropped.to_string()),
            ],
        );
    }
    state.save_snapshot(recovered.next_seq - 1, &recovered.books, true).map_err(|e| {
        format!("cannot write `{}`: {e}", state.path().join("signals.json").display())
    })?;
    Ok(recovered)
}

/// Each pool's live state from its record and recovered book (taken out of `recovered`), with
/// its gauges set (not while its current value is unknown).
fn pool_states(
    pools: &Pools,
    mut records: BTreeMap<String, Record>,
    mut unknown: BTreeMap<String, String>,
    recovered: &mut crate::autoscale::state::Recovered,
    metrics: &Metrics,
) -> BTreeMap<String, Arc<PoolState>> {
    let mut states = BTreeMap::new();
    for p in &pools.pools {
        let record = records.remove(&p.name).expect("a record was made for every pool");
        let label = PoolLabel { pool: p.name.clone() };
        let unknown = unknown.remove(&p.name);
        if unknown.is_none() {
            metrics.desired.get_or_create(&label).set(record.desired);
            if let Some(a) = record.applied {
                metrics.applied.get_or_create(&label).set(a);
            }
        }
        let quarantined: Vec<Quarantined> =
            recovered.quarantined.iter().filter(|q| q.pool == p.name).cloned().collect();
        let inner = PoolInner {
            record,
            book: recovered.books.remove(&p.name).unwrap_or_default(),
            last_decision: None,
            last_error: None,
            quarantined,
            down: None,
            unknown,
            drift: None,
            restore: false,
        };
        let pool = PoolState {
            name: p.name.clone(),
            lane: p.stack_id(),
            inner: Mutex::new(inner),
            wake: Notify::new(),
            writing: tokio::sync::Mutex::new(()),
        };
        states.insert(p.name.clone(), Arc::new(pool));
    }
    states
}

/// One lane per stack, holding the pools that scale it (in the pools file's order).
fn lanes_of(pools: &Pools) -> BTreeMap<String, Arc<Lane>> {
    let mut by_stack: BTreeMap<String, (StackRef, Vec<String>)> = BTreeMap::new();
    for p in &pools.pools {
        let stack = StackRef { dir: p.project_dir.clone(), stack: p.spec.stack.clone() };
        by_stack.entry(p.stack_id()).or_insert_with(|| (stack, Vec::new())).1.push(p.name.clone());
    }
    by_stack
        .into_iter()
        .map(|(id, (stack, pools))| {
            let lane = Lane {
                id: id.clone(),
                stack,
                pools,
                wake: Notify::new(),
                previews: tokio::sync::Semaphore::new(1),
                preview_waiting: AtomicU32::new(0),
                stack_busy: tokio::sync::Mutex::new(()),
            };
            (id, Arc::new(lane))
        })
        .collect()
}

/// The pools' compiled strategies, by pool.
pub(crate) fn strategies_of(pools: &Pools) -> HashMap<String, Strategy> {
    pools.pools.iter().map(|p| (p.name.clone(), p.strategy.clone())).collect()
}

/// A schedule change for the log: `open office-hours (10)` or `close office-hours`.
pub(crate) fn describe(change: &Change) -> String {
    match change {
        Change::Raise(s) => format!("open {} ({})", s.name, s.value.unwrap_or_default()),
        Change::Clear { key, .. } => {
            format!("close {}", key.strip_prefix(schedule::KEY_PREFIX).unwrap_or(key))
        }
        Change::Intent(s) => s.name.clone(),
    }
}

impl Scaler {
    /// Build the scaler: lock the state directory, read or create every pool's record, recover
    /// pending signals, open the journal.
    pub(crate) async fn start(
        pools: Pools,
        settings: Settings,
        metrics: Arc<Metrics>,
        log: Log,
    ) -> Result<Arc<Self>, String> {
        let state = Arc::new(StateDir::open(&settings.state_dir).map_err(|e| e.to_string())?);
        let ha = match &settings.ha {
            Some(h) => Some(Arc::new(Ha::connect(h).await?)),
            None => None,
        };
        let shared = shared_records(ha.as_deref()).await?;
        let pulumi = Pulumi::default();
        let mut blocked = BTreeMap::new();
        refresh_configs(&pools, &settings, &pulumi, &log, &mut blocked).await?;
        let (records, unknown) = load_records(&pools, &state, shared, &pulumi, &log).await?;
        let mut recovered = recover_signals(&state, &pools, &records, ha.is_some(), &log)?;
        let states = Arc::new(pool_states(&pools, records, unknown, &mut recovered, &metrics));
        let applied_seq = Arc::new(Mutex::new(recovered.next_seq - 1));
        let audit =
            open_audit(&state, &settings, recovered.next_seq, states.clone(), applied_seq.clone())?;
        for q in &recovered.quarantined {
            audit.write(
                "quarantine",
                json!({"pool": q.pool, "signal": q.signal, "reason": q.reason, "at": "start"}),
            );
            log.warn("signal quarantined at start", &[("pool", &q.pool), ("reason", &q.reason)]);
        }
        metrics.reload_ok.set(1);
        metrics.leader.set(i64::from(ha.is_none()));
        let strategies = strategies_of(&pools);
        let fault = settings.fault.clone();
        Ok(Arc::new(Self {
            settings,
            lanes: lanes_of(&pools),
            pools: RwLock::new(Arc::new(pools)),
            strategies: RwLock::new(strategies),
            states,
            state,
            audit,
            metrics,
            pulumi,
            log,
            draining: AtomicBool::new(false),
            stop: watch::channel(false).0,
            blocked: Mutex::new(blocked),
            reload_error: Mutex::new(None),
            applied_seq,
            fault: Mutex::new(fault),
            started: Utc::now(),
            chat: std::sync::OnceLock::new(),
            ha,
        }))
    }

    /// Apply one accepted change to its pool's book (the journal's writer, and with `--ha`
    /// the stream's reader); an intent a recorded decision consumed is skipped.
    pub(crate) fn ingest(&self, pool: &str, seq: u64, change: Change) {
        ingest(&self.states, &self.applied_seq, pool, seq, change);
    }

    pub(crate) fn pools(&self) -> Arc<Pools> {
        read(&self.pools).clone()
    }

    pub(crate) fn pool(&self, name: &str) -> Option<Pool> {
        self.pools().get(name).cloned()
    }

    pub(crate) fn strategy(&self, pool: &str) -> Option<Strategy> {
        read(&self.strategies).get(pool).cloned()
    }

    /// The state of a configured pool. Every pool in the file has one (the set is fixed).
    pub(crate) fn state_of(&self, pool: &str) -> Option<&Arc<PoolState>> {
        self.states.get(pool)
    }

    /// Resolves once shutdown has begun.
    pub(crate) async fn stopped(&self) {
        let mut rx = self.stop.subscribe();
        let _ = rx.wait_for(|stop| *stop).await;
    }

    /// Whether a one-shot test fault named `what` is armed; disarms it.
    pub(crate) fn fault(&self, what: &str) -> bool {
        let mut f = lock(&self.fault);
        if f.as_deref() == Some(what) {
            *f = None;
            return true;
        }
        false
    }

    /// Start the apply lanes and the supervised decision loops; pools whose applied generation
    /// is behind are re-applied once (recovery). The handles are awaited on shutdown.
    pub(crate) fn spawn(self: &Arc<Self>) -> tokio::task::JoinSet<()> {
        let mut tasks = tokio::task::JoinSet::new();
        for lane in self.lanes.values() {
            let me = self.clone();
            let lane = lane.clone();
            tasks.spawn(async move { me.apply_lane(lane).await });
        }
        for st in self.states.values() {
            let me = self.clone();
            let st = st.clone();
            tasks.spawn(async move { me.supervise(st).await });
        }
        if self.ha.is_some() {
            let me = self.clone();
            tasks.spawn(async move { me.lease_loop().await });
            let me = self.clone();
            tasks.spawn(async move { me.tail_loop().await });
        }
        for st in self.states.values() {
            if self.pool(&st.name).is_some_and(|p| p.spec.drift.is_some()) {
                let me = self.clone();
                let st = st.clone();
                tasks.spawn(async move { me.drift_loop(st).await });
            }
        }
        for st in self.states.values() {
            let inner = lock(&st.inner);
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
            // What arrived after the last recorded decision is decided now, and a window open
            // at start raises its level now, not a tick later. Levels a recorded decision saw
            // wait for the tick, as they would have without the restart.
            let windows = self.pool(&st.name).is_some_and(|p| {
                !schedule::changes(&p.schedules, &inner.book, Utc::now()).is_empty()
            });
            if windows || inner.book.has_news(inner.record.signals_seq) {
                st.wake.notify_one();
            }
        }
        tasks
    }

    /// Why `pool` cannot take signals now (its decision loop is down, or its current value is
    /// unknown), if it cannot.
    pub(crate) fn unavailable(&self, pool: &str) -> Option<String> {
        self.states.get(pool).and_then(|st| {
            let inner = lock(&st.inner);
            inner.down.clone().or_else(|| inner.unknown.clone())
        })
    }

    /// Send a ChatOps event (never waits; nothing without `notify:`).
    pub(crate) fn notify(
        &self,
        kind: crate::notify::Kind,
        pool: &str,
        title: String,
        details: serde_json::Value,
    ) {
        if let Some(chat) = self.chat.get() {
            chat.send(kind, pool, title, details);
        }
    }

    /// Why `st` cannot decide now, if it cannot: its current value is unknown, or it is paused.
    /// A pause whose `until` has passed ends here (at the first decision after it).
    pub(crate) fn not_deciding(&self, st: &PoolState) -> Option<String> {
        if let Some(ha) = &self.ha
            && !ha.leading()
        {
            return Some(format!("this replica (`{}`) is a follower: the leader decides", ha.id));
        }
        let mut inner = lock(&st.inner);
        if let Some(why) = &inner.unknown {
            return Some(why.clone());
        }
        let now = Utc::now();
        match &inner.record.paused {
            Some(p) if p.over(now) => {
                inner.record.paused = None;
                drop(inner);
                self.resumed(st, "the pause's `until` passed");
                None
            }
            Some(p) => Some(format!("pool `{}` is paused: {}", st.name, p.reason)),
            None => None,
        }
    }

    /// Pause a pool: signals are still recorded, nothing is decided or applied until
    /// [`Scaler::resume`] (or `until`). Audited; the record is written.
    pub(crate) async fn pause(
        &self,
        pool: &str,
        reason: String,
        until: Option<chrono::DateTime<Utc>>,
    ) -> Option<()> {
        let st = self.state_of(pool)?;
        let pause = crate::autoscale::decide::Pause { reason, since: Utc::now(), until };
        self.audit
            .write("pause", json!({"pool": pool, "reason": pause.reason, "until": pause.until}));
        self.notify(
            crate::notify::Kind::PoolPaused,
            pool,
            format!("pool `{pool}` paused: {}", pause.reason),
            json!({"reason": pause.reason, "until": pause.until}),
        );
        self.log.info("paused", &[("pool", pool), ("reason", &pause.reason)]);
        lock(&st.inner).record.paused = Some(pause);
        self.metrics.paused.get_or_create(&PoolLabel { pool: pool.to_string() }).set(1);
        self.persist(st).await;
        Some(())
    }

    /// Resume a paused pool: what was recorded meanwhile is decided at once.
    pub(crate) async fn resume(&self, pool: &str) -> Option<bool> {
        let st = self.state_of(pool)?;
        let was = lock(&st.inner).record.paused.take().is_some();
        if was {
            self.resumed(st, "resumed");
            self.persist(st).await;
        }
        Some(was)
    }

    fn resumed(&self, st: &PoolState, why: &str) {
        self.audit.write("resume", json!({"pool": st.name, "why": why}));
        self.notify(
            crate::notify::Kind::PoolResumed,
            &st.name,
            format!("pool `{}` resumed ({why})", st.name),
            json!({"why": why}),
        );
        self.log.info("resumed", &[("pool", &st.name), ("why", why)]);
        self.metrics.paused.get_or_create(&PoolLabel { pool: st.name.clone() }).set(0);
        st.wake.notify_one();
        if let Some(lane) = self.lanes.get(&st.lane) {
            lane.wake.notify_one();
        }
    }

    /// A pool whose current value is unknown reads its config key again (on every tick); once
    /// the key holds a value the pool starts from it.
    pub(crate) async fn recheck_unknown(&self, st: &PoolState) {
        if lock(&st.inner).unknown.is_none() {
            return;
        }
        let Some(pool) = self.pool(&st.name) else { return };
        match initial_value(&self.pulumi, &pool).await {
            Ok(v) => {
                {
                    let mut inner = lock(&st.inner);
                    inner.record = Record::new(&st.name, v);
                    inner.unknown = None;
                }
                let label = PoolLabel { pool: st.name.clone() };
                self.metrics.desired.get_or_create(&label).set(v);
                self.metrics.applied.get_or_create(&label).set(v);
                self.log
                    .info("current value known", &[("pool", &st.name), ("value", &v.to_string())]);
                self.persist(st).await;
                st.wake.notify_one();
            }
            Err(why) => lock(&st.inner).unknown = Some(why),
        }
    }

    /// Set signals aside that make the strategy fail: out of the book, audited, listed in the
    /// pool's status.
    pub(crate) fn quarantine(&self, st: &PoolState, signals: Vec<Signal>, reason: &str) {
        let mut inner = lock(&st.inner);
        for s in signals {
            inner.book.levels.remove(&s.key);
            inner.book.intents.retain(|i| !(i.seq == s.seq && i.key == s.key));
            self.audit.write("quarantine", json!({"pool": st.name, "signal": s, "reason": reason}));
            self.metrics.quarantined.get_or_create(&PoolLabel { pool: st.name.clone() }).inc();
            self.log.warn(
                "signal quarantined",
                &[("pool", &st.name), ("key", &s.key), ("reason", reason)],
            );
            inner.quarantined.push(Quarantined {
                pool: st.name.clone(),
                signal: s,
                reason: reason.to_string(),
            });
        }
        let excess = inner.quarantined.len().saturating_sub(QUARANTINE_KEPT);
        inner.quarantined.drain(..excess);
    }

    /// Write a pool's record file off the async workers and outside the pool lock. Writes of one
    /// pool are serialised and each copies the record when it starts, so the newest state wins.
    pub(crate) async fn persist(&self, st: &PoolState) {
        let _writing = st.writing.lock().await;
        let token = self.ha.as_ref().and_then(|ha| ha.token());
        if let Some(t) = token {
            lock(&st.inner).record.fence = t;
        }
        let record = lock(&st.inner).record.clone();
        if let (Some(ha), Some(_)) = (&self.ha, token)
            && let Err(e) = ha.save_record(&record).await
        {
            self.log
                .error("cannot write the shared record", &[("pool", &record.pool), ("error", &e)]);
        }
        let state = self.state.clone();
        let pool = record.pool.clone();
        let result = tokio::task::spawn_blocking(move || state.save_record(&record)).await;
        let error = match result {
            Ok(Ok(())) => return,
            Ok(Err(e)) => e.to_string(),
            Err(e) => format!("the writer task failed: {e}"),
        };
        self.audit.health().errors.fetch_add(1, Ordering::Relaxed);
        self.log.error("cannot persist state record", &[("pool", &pool), ("error", &error)]);
    }

    /// Persist every pool's pending signals (on shutdown) so a restart continues from them; the
    /// journal keeps its entries, which the snapshot's sequence number tells a restart to skip.
    pub(crate) fn persist_signals(&self) {
        let applied = lock(&self.applied_seq);
        let books: BTreeMap<String, Book> =
            self.states.iter().map(|(n, st)| (n.clone(), lock(&st.inner).book.clone())).collect();
        if let Err(e) = self.state.save_snapshot(*applied, &books, false) {
            self.log.error("cannot persist signals", &[("error", &e.to_string())]);
        }
    }

    /// The status of one pool (for `GET /pools/{pool}`).
    pub(crate) fn status(&self, name: &str) -> Option<serde_json::Value> {
        let st = self.states.get(name)?;
        let pool = self.pool(name)?;
        let strategy = self.strategy(name);
        let inner = lock(&st.inner);
        let (up, down) = inner.record.cooldowns(&pool.spec, Utc::now());
        let known = inner.unknown.is_none();
        Some(json!({
            "pool": name,
            "stack": pool.spec.stack,
            "key": pool.spec.key,
            "min": pool.spec.min,
            "max": pool.spec.max,
            "desired": known.then_some(inner.record.desired),
            "applied": if known { inner.record.applied } else { None },
            "unknown": inner.unknown,
            "vector": (!pool.keys.is_empty()).then(|| {
                let mut v = inner.record.also.clone();
                v.insert(pool.spec.key.clone(), inner.record.desired);
                v
            }),
            "appliedVector": (!pool.keys.is_empty()).then(|| {
                let mut v = inner.record.applied_also.clone();
                if let Some(a) = inner.record.applied { v.insert(pool.spec.key.clone(), a); }
                v
            }),
            "generation": inner.record.generation,
            "appliedGeneration": inner.record.applied_generation,
            "cooldowns": {"up": up, "down": down},
            "signals": inner.book.levels.values().map(Signal::to_json).collect::<Vec<_>>(),
            "pendingIntents": inner.book.intents.len(),
            "lastResult": inner.record.last_result,
            "history": inner.record.history.iter().rev().take(5).rev().collect::<Vec<_>>(),
            "lastDecision": inner.last_decision,
            "lastError": inner.last_error,
            "quarantined": inner.quarantined.iter().map(|q| json!({"signal": q.signal.to_json(), "reason": q.reason})).collect::<Vec<_>>(),
            "down": inner.down,
            "paused": inner.record.paused,
            "fallback": pool.spec.fallback.as_ref().map(|f| json!({
                "after": crate::duration::format(f.after),
                "value": f.value,
                "active": inner.record.fallback_since.is_some_and(|s| inner.book.heard_at.is_none_or(|h| s >= h)),
                "since": inner.record.fallback_since,
            })),
            "heardAt": inner.book.heard_at,
            "drift": inner.drift,
            "strategy": strategy.map(|s| json!({"name": s.name, "hash": s.hash})),
        }))
    }

    /// Refresh the gauges that depend on the clock (cooldown remaining) before a scrape.
    pub(crate) fn refresh_gauges(&self) {
        let pools = self.pools();
        let now = Utc::now();
        for (name, st) in self.states.iter() {
            if let Some(p) = pools.get(name) {
                let (up, down) = lock(&st.inner).record.cooldowns(&p.spec, now);
                for (direction, v) in [("up", up), ("down", down)] {
                    self.metrics
                        .cooldown
                        .get_or_create(&CooldownLabels {
                            pool: name.clone(),
                            direction: direction.into(),
                        })
                        .set(v);
                }
            }
        }
        self.metrics.queue_depth.set(self.audit.depth() as i64);
        let errors = self.audit.health().errors.load(Ordering::Relaxed);
        self.metrics.audit_errors.inc_by(errors.saturating_sub(self.metrics.audit_errors.get()));
    }

    /// Reload the pools file and strategies: compile and validate first, swap only on success.
    /// Adding or removing pools, or moving one to another stack, needs a restart. A panic while
    /// reloading is reported like any rejected reload and keeps the previous version.
    pub(crate) fn reload(&self) -> Result<(), String> {
        let file = self.pools().file.clone();
        let attempt = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            if self.fault("reload-panic") {
                panic!("test fault: reload-panic");
            }
            self.load_for_reload(&file)
        }));
        let result = attempt.unwrap_or_else(|payload| {
            Err(format!(
                "reload panicked: {} (this is a bug; please report it)",
                panic_message(&*payload)
            ))
        });
        match result {
            Ok(pools) => {
                let strategies = strategies_of(&pools);
                let hashes: Vec<String> =
                    strategies.iter().map(|(p, s)| format!("{p}={}", s.hash)).collect();
                *write(&self.pools) = Arc::new(pools);
                *write(&self.strategies) = strategies;
                *lock(&self.reload_error) = None;
                self.metrics.reload_ok.set(1);
                self.log.info("reloaded", &[("strategies", &hashes.join(","))]);
                Ok(())
            }
            Err(e) => {
                self.metrics.reload_errors.inc();
                self.metrics.reload_ok.set(0);
                *lock(&self.reload_error) = Some(e.clone());
                self.log.error("reload rejected; keeping the previous version", &[("error", &e)]);
                Err(e)
            }
        }
    }

    fn load_for_reload(&self, file: &Path) -> Result<Pools, String> {
        let pools = crate::autoscale::pool::load(file)
            .map_err(|errs| crate::diagnostic::render_all(&errs))?;
        let same_shape = pools.pools.len() == self.states.len()
            && pools
                .pools
                .iter()
                .all(|p| self.states.get(&p.name).is_some_and(|s| s.lane == p.stack_id()));
        if !same_shape {
            return Err("adding, removing or moving pools to another stack needs a restart".into());
        }
        Ok(pools)
    }

    /// The files hot reload watches: the pools file and every strategy script.
    pub(crate) fn watched_files(&self) -> Vec<PathBuf> {
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

    /// Start draining: `/readyz` fails, webhooks get 503, decision loops stop, lanes finish
    /// the update they are running and stop.
    pub(crate) fn begin_drain(&self) {
        self.draining.store(true, Ordering::SeqCst);
        let _ = self.stop.send(true);
    }
}

/// `--refresh-config`: `pulumi config refresh` once per stack. A lock or pending operations
/// block the stack (readiness reports it); any other failure stops the start.
async fn refresh_configs(
    pools: &Pools,
    settings: &Settings,
    pulumi: &Pulumi,
    log: &Log,
    blocked: &mut BTreeMap<String, String>,
) -> Result<(), String> {
    if !settings.refresh_config {
        return Ok(());
    }
    let mut refreshed = std::collections::HashSet::new();
    for p in &pools.pools {
        if !refreshed.insert(p.stack_id()) {
            continue;
        }
        log.info("config refresh", &[("stack", &p.spec.stack)]);
        let stack = StackRef { dir: p.project_dir.clone(), stack: p.spec.stack.clone() };
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
    Ok(())
}

/// The value a pool without a record starts from: its config key. A key that is not set or
/// cannot be read is an error saying what to run: the scaler never guesses a current value
/// (starting from `min` could shrink a real pool).
async fn initial_value(pulumi: &Pulumi, p: &Pool) -> Result<i64, String> {
    let stack = StackRef { dir: p.project_dir.clone(), stack: p.spec.stack.clone() };
    let set_it = format!(
        "help: set it with `pulumi config set {key} <current value> --stack {stack} --cwd {dir}` (or deploy the stack and run `pulumi config refresh`); the server reads it again on every tick",
        key = p.spec.key,
        stack = p.spec.stack,
        dir = p.project_dir.display()
    );
    let current = pulumi.config_get(&stack, &p.spec.key).await.map_err(|f| {
        format!(
            "the current value of pool `{}` is unknown: cannot read `{}`: {f}\n{set_it}",
            p.name, p.spec.key
        )
    })?;
    match current {
        Some(v) => v.trim().parse::<i64>().map_err(|_| {
            format!(
                "the current value of pool `{}` is unknown: config `{}` is `{v}`, not an integer\n{set_it}",
                p.name, p.spec.key
            )
        }),
        None => Err(format!(
            "the current value of pool `{}` is unknown: config key `{}` is not set on stack `{}`\n{set_it}",
            p.name, p.spec.key, p.spec.stack
        )),
    }
}

/// Open the journal and audit log; durable changes are applied to the books in order, under
/// the `applied_seq` lock, by the writer thread.
fn ingest(
    states: &BTreeMap<String, Arc<PoolState>>,
    applied_seq: &Mutex<u64>,
    pool: &str,
    seq: u64,
    change: Change,
) {
    let mut applied = lock(applied_seq);
    if let Some(st) = states.get(pool) {
        let mut inner = lock(&st.inner);
        if matches!(change, Change::Intent(_)) && seq <= inner.record.signals_seq {
            return;
        }
        inner.book.heard_at = Some(Utc::now());
        let changed = inner.book.apply(seq, change);
        drop(inner);
        if changed {
            st.wake.notify_one();
        }
    }
    *applied = (*applied).max(seq);
}

fn open_audit(
    state: &StateDir,
    settings: &Settings,
    next_seq: u64,
    states: Arc<BTreeMap<String, Arc<PoolState>>>,
    applied_seq: Arc<Mutex<u64>>,
) -> Result<Audit, String> {
    let apply = move |pool: &str, seq: u64, change: Change| {
        ingest(&states, &applied_seq, pool, seq, change);
    };
    Audit::open(
        &state.audit_path(),
        &state.journal_path(),
        next_seq,
        settings.queue,
        Box::new(apply),
    )
    .map_err(|e| {
        format!("cannot open the audit log and journal in `{}`: {e}", state.path().display())
    })
}
