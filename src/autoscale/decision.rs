//! The decision path of one pool: the supervised decision loop, [`Scaler::decide_once`]
//! (also used by dry runs with `commit = false`), quarantine of signals that make the strategy
//! fail, and the decision's audit record.
//!
//! A committed decision takes the pool's signals (the intents stay in the book, frozen, until
//! the decision is recorded), runs the strategy on a blocking thread, settles the proposal with
//! the guardrails, records the consumed sequence number in the pool's record, writes the record
//! and only then drops the consumed intents — so a crash at any point neither loses an intent
//! nor applies one twice.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde::Serialize;

use crate::autoscale::decide::{self, Decision, Record};
use crate::autoscale::metrics::{PoolLabel, PoolResult};
use crate::autoscale::pool::Pool;
use crate::autoscale::scaler::{PoolState, Scaler, lock, panic_message};
use crate::autoscale::schedule;
use crate::autoscale::signal::Signal;
use crate::autoscale::strategy::{Proposal, Strategy};

/// Isolating the signal that breaks a strategy runs it once per signal; beyond this many
/// signals the decision is skipped instead.
const ISOLATE_AT_MOST: usize = 64;

/// The decision record in the audit log.
#[derive(Debug, Serialize)]
struct DecisionAudit<'a> {
    pool: &'a str,
    sources: Vec<&'a str>,
    /// Every request behind the signals (all merged keys), for tracing a request to this
    /// decision.
    idempotency_keys: Vec<&'a str>,
    requests: u64,
    /// The journal sequence number the decision consumed intents up to.
    consumed_seq: u64,
    signals: Vec<serde_json::Value>,
    strategy: &'a str,
    script_hash: &'a str,
    old: i64,
    #[serde(flatten)]
    outcome: Outcome<'a>,
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Outcome<'a> {
    Decided {
        desired: Option<i64>,
        clamped: i64,
        changed: bool,
        reason: &'a str,
        guardrails: &'a [&'static str],
        generation: u64,
    },
    Failed {
        error: &'a str,
    },
}

impl<'a> DecisionAudit<'a> {
    fn new(
        pool: &'a str,
        signals: &'a [Signal],
        consumed_seq: u64,
        strategy: &'a Strategy,
        old: i64,
        outcome: Outcome<'a>,
    ) -> Self {
        let mut sources: Vec<&str> = signals.iter().map(|s| s.source.as_str()).collect();
        sources.sort_unstable();
        sources.dedup();
        Self {
            pool,
            sources,
            idempotency_keys: signals.iter().flat_map(Signal::keys).collect(),
            requests: signals.iter().map(|s| u64::from(s.merged)).sum(),
            consumed_seq,
            signals: signals.iter().map(Signal::to_json).collect(),
            strategy: &strategy.name,
            script_hash: &strategy.hash,
            old,
            outcome,
        }
    }
}

/// What the strategy made of the signals, after setting aside the ones that break it.
struct Proposed {
    proposal: Result<Proposal, String>,
    /// The signals the proposal was made from.
    used: Vec<Signal>,
}

impl Scaler {
    /// Run a pool's decision loop, restarting it after a panic. While it is down the pool is
    /// not ready (`/readyz`), its webhooks get 503, and the reason shows in its status.
    pub(crate) async fn supervise(self: Arc<Self>, st: Arc<PoolState>) {
        let mut crashes = 0u32;
        loop {
            let me = self.clone();
            let pool = st.clone();
            let run = tokio::spawn(async move { me.decision_loop(pool).await }).await;
            let Err(e) = run else { return };
            if !e.is_panic() {
                return;
            }
            crashes = crashes.saturating_add(1);
            let reason = format!(
                "the decision loop of pool `{}` crashed: {} (this is a bug; please report it); restarting",
                st.name,
                panic_message(&*e.into_panic())
            );
            self.log.error("decision loop crashed", &[("pool", &st.name), ("error", &reason)]);
            self.metrics.loop_restarts.get_or_create(&PoolLabel { pool: st.name.clone() }).inc();
            lock(&st.inner).down = Some(reason);
            let delay = crate::backoff::Backoff::new(Duration::from_secs(1))
                .cap(Duration::from_secs(30))
                .jitter(crate::backoff::Jitter::Up(0.2))
                .delay(crashes);
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = self.stopped() => return,
            }
            lock(&st.inner).down = None;
            // Whatever arrived while it was down is decided at once.
            st.wake.notify_one();
        }
    }

    async fn decision_loop(self: Arc<Self>, st: Arc<PoolState>) {
        loop {
            tokio::select! {
                _ = st.wake.notified() => {
                    // Let the rest of a burst arrive: many signals, one decision.
                    tokio::select! {
                        _ = tokio::time::sleep(self.settings.debounce) => {}
                        _ = self.stopped() => return,
                    }
                }
                _ = tokio::time::sleep(self.settings.tick) => {}
                _ = self.stopped() => return,
            }
            if self.fault("decide-panic") {
                panic!("test fault: decide-panic");
            }
            let _ = self.decide_once(&st.name, None, true).await;
        }
    }

    /// The decision path. `extra` adds signals for this decision only (dry runs and `/scale`);
    /// with `commit = false` nothing is consumed or changed.
    pub async fn decide_once(
        self: &Arc<Self>,
        pool_name: &str,
        extra: Option<Vec<Signal>>,
        commit: bool,
    ) -> Result<Option<Decision>, String> {
        let unknown = || format!("unknown pool `{pool_name}`");
        let st = self.state_of(pool_name).ok_or_else(unknown)?.clone();
        let pool = self.pool(pool_name).ok_or_else(unknown)?;
        let strategy = self
            .strategy(pool_name)
            .ok_or_else(|| format!("pool `{pool_name}` has no strategy"))?;
        let now = Utc::now();
        if commit {
            self.evaluate_schedules(&st, now);
        }
        let (mut signals, consumed_seq, record) = self.take_signals(&st, &pool, now, commit);
        signals.extend(extra.unwrap_or_default());
        if signals.is_empty() && commit {
            lock(&st.inner).book.deciding = None;
            return Ok(None);
        }
        let base = record.evaluation_base(&pool.spec, now);
        let Proposed { proposal, used } =
            self.propose(&st, &pool, &strategy, &record, base, signals, commit).await;
        let proposal = match proposal {
            Ok(p) => p,
            Err(e) => {
                self.failed(&st, &strategy, &record, &used, consumed_seq, &e, commit).await;
                return Err(format!("strategy `{}` failed: {e}", strategy.name));
            }
        };
        let decision = {
            let mut inner = lock(&st.inner);
            let d = decide::settle(&mut inner.record, &pool.spec, base, &proposal, now, commit);
            if commit {
                inner.last_decision = Some(d.clone());
                inner.last_error = None;
                inner.record.signals_seq = inner.record.signals_seq.max(consumed_seq);
            }
            d
        };
        if commit {
            self.commit(&st, &strategy, &used, consumed_seq, &decision).await;
        }
        Ok(Some(decision))
    }

    /// The signals a decision sees and the record it starts from. A dry run sees the schedule
    /// windows as they are now without recording the change.
    fn take_signals(
        &self,
        st: &PoolState,
        pool: &Pool,
        now: chrono::DateTime<Utc>,
        commit: bool,
    ) -> (Vec<Signal>, u64, Record) {
        let mut inner = lock(&st.inner);
        let (signals, seq) = if commit {
            inner.book.take(true)
        } else {
            let mut b = inner.book.clone();
            for change in schedule::changes(&pool.schedules, &b, now) {
                b.apply(change);
            }
            b.take(false)
        };
        (signals, seq, inner.record.clone())
    }

    /// Run the strategy; when it fails on several signals, find the ones that make it fail
    /// alone, quarantine them (committed decisions only) and decide on the rest. A strategy
    /// that also fails without any signal is broken, not poisoned: nothing is quarantined.
    #[allow(clippy::too_many_arguments, reason = "the decision's inputs, passed through")]
    async fn propose(
        &self,
        st: &PoolState,
        pool: &Pool,
        strategy: &Strategy,
        record: &Record,
        base: i64,
        signals: Vec<Signal>,
        commit: bool,
    ) -> Proposed {
        let first = run_strategy(strategy, &pool.name, pool, base, &signals, record).await;
        if first.is_ok() || !commit || signals.len() > ISOLATE_AT_MOST {
            return Proposed { proposal: first, used: signals };
        }
        if run_strategy(strategy, &pool.name, pool, base, &[], record).await.is_err() {
            return Proposed { proposal: first, used: signals };
        }
        let mut good = Vec::new();
        let mut bad = Vec::new();
        let mut reason = String::new();
        for s in signals {
            match run_strategy(strategy, &pool.name, pool, base, std::slice::from_ref(&s), record)
                .await
            {
                Ok(_) => good.push(s),
                Err(e) => {
                    reason = e;
                    bad.push(s);
                }
            }
        }
        if bad.is_empty() {
            // Only the combination fails: nothing to single out.
            return Proposed { proposal: first, used: good };
        }
        self.quarantine(st, bad, &format!("strategy `{}` failed on it: {reason}", strategy.name));
        let proposal = run_strategy(strategy, &pool.name, pool, base, &good, record).await;
        Proposed { proposal, used: good }
    }

    /// A decision whose strategy failed: counted, logged and, when committed, audited; the
    /// consumed intents are recorded as consumed (the failure is in the audit log).
    #[allow(clippy::too_many_arguments, reason = "the decision's inputs, passed through")]
    async fn failed(
        &self,
        st: &PoolState,
        strategy: &Strategy,
        record: &Record,
        used: &[Signal],
        consumed_seq: u64,
        error: &str,
        commit: bool,
    ) {
        let label = PoolLabel { pool: st.name.clone() };
        self.metrics.strategy_errors.get_or_create(&label).inc();
        self.metrics
            .decisions
            .get_or_create(&PoolResult { pool: st.name.clone(), result: "error".into() })
            .inc();
        self.log.warn("strategy failed; decision skipped", &[("pool", &st.name), ("error", error)]);
        if !commit {
            return;
        }
        let outcome = Outcome::Failed { error };
        self.audit.write(
            "decision",
            DecisionAudit::new(&st.name, used, consumed_seq, strategy, record.desired, outcome),
        );
        {
            let mut inner = lock(&st.inner);
            inner.last_error = Some(error.to_string());
            inner.record.signals_seq = inner.record.signals_seq.max(consumed_seq);
        }
        self.persist(st).await;
        lock(&st.inner).book.consume(consumed_seq);
    }

    /// Record a committed decision: metrics, audit, the record file, then drop the consumed
    /// intents and wake the lane when the value changed.
    async fn commit(
        &self,
        st: &PoolState,
        strategy: &Strategy,
        used: &[Signal],
        consumed_seq: u64,
        d: &Decision,
    ) {
        let result = if d.changed { "changed" } else { "unchanged" };
        self.metrics
            .decisions
            .get_or_create(&PoolResult { pool: st.name.clone(), result: result.into() })
            .inc();
        self.metrics.desired.get_or_create(&PoolLabel { pool: st.name.clone() }).set(d.clamped);
        let outcome = Outcome::Decided {
            desired: d.proposed,
            clamped: d.clamped,
            changed: d.changed,
            reason: &d.reason,
            guardrails: &d.guardrails,
            generation: d.generation,
        };
        self.audit.write(
            "decision",
            DecisionAudit::new(&st.name, used, consumed_seq, strategy, d.old, outcome),
        );
        if d.changed || consumed_seq > 0 {
            self.persist(st).await;
        }
        lock(&st.inner).book.consume(consumed_seq);
        if d.changed {
            self.log.info(
                "decision",
                &[
                    ("pool", &st.name),
                    ("from", &d.old.to_string()),
                    ("to", &d.clamped.to_string()),
                    ("reason", &d.reason),
                ],
            );
            if let Some(lane) = self.lanes.get(&st.lane) {
                lane.wake.notify_one();
            }
        }
    }
}

impl Scaler {
    /// A dry run: the real decision path without committing, then a preview with the new
    /// value through a temporary config file. Previews of one stack run one at a time with at
    /// most `--preview-queue` waiting; more are refused with 429.
    pub async fn dry_run(
        self: &Arc<Self>,
        pool_name: &str,
        extra: Vec<Signal>,
    ) -> Result<serde_json::Value, (u16, String)> {
        use std::sync::atomic::Ordering;
        let pool = self.pool(pool_name).ok_or((404, format!("unknown pool `{pool_name}`")))?;
        let decision = self
            .decide_once(pool_name, Some(extra), false)
            .await
            .map_err(|e| (422, e))?
            .ok_or((422, "nothing to decide".to_string()))?;
        let lane = self
            .state_of(pool_name)
            .and_then(|st| self.lanes.get(&st.lane))
            .ok_or((404, format!("unknown pool `{pool_name}`")))?;
        let limit =
            u32::try_from(self.settings.preview_queue).unwrap_or(u32::MAX).saturating_add(1);
        if lane.preview_waiting.fetch_add(1, Ordering::SeqCst) >= limit {
            lane.preview_waiting.fetch_sub(1, Ordering::SeqCst);
            return Err((
                429,
                format!(
                    "too many previews of stack `{}` at once ({} running or waiting); retry later",
                    pool.spec.stack, limit
                ),
            ));
        }
        // Counted out again however this ends, including a request timed out while waiting.
        struct Waiting<'a>(&'a std::sync::atomic::AtomicU32);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        let _waiting = Waiting(&lane.preview_waiting);
        let preview = {
            let _permit = lane.previews.acquire().await;
            let stack = crate::autoscale::actuator::StackRef {
                dir: pool.project_dir.clone(),
                stack: pool.spec.stack.clone(),
            };
            let result = self
                .pulumi
                .preview_with(
                    &stack,
                    &[(pool.spec.key.clone(), decision.clamped)],
                    &pool.spec.targets,
                )
                .await;
            result.map_err(|f| (502, format!("preview failed: {f}")))?
        };
        Ok(serde_json::json!({
            "pool": pool_name,
            "dryRun": true,
            "current": decision.old,
            "target": decision.proposed,
            "clamped": decision.clamped,
            "changed": decision.changed,
            "reason": decision.reason,
            "guardrails": decision.guardrails,
            "cooldownRemaining": {"up": decision.cooldown_up_remaining, "down": decision.cooldown_down_remaining},
            "changeSummary": preview.get("changeSummary").cloned().unwrap_or(serde_json::json!({})),
            "steps": preview.get("steps").cloned().unwrap_or(serde_json::json!([])),
        }))
    }
}

/// Call the strategy on a blocking thread (Rhai must not run on an async worker).
async fn run_strategy(
    strategy: &Strategy,
    name: &str,
    pool: &Pool,
    base: i64,
    signals: &[Signal],
    record: &Record,
) -> Result<Proposal, String> {
    let ctx = decide::context(name, &pool.spec, base, signals, record);
    let strategy = strategy.clone();
    tokio::task::spawn_blocking(move || strategy.decide(&ctx))
        .await
        .unwrap_or_else(|e| Err(format!("strategy task failed: {e}")))
}
