//! The decision path of one pool on the server: the supervised decision loop (driven by the
//! shared [`Cadence`]), [`Scaler::decide_once`] (also used by dry runs with `commit = false`),
//! quarantine of signals that make the strategy fail, and the decision's audit record. The
//! steps of the decision itself (`decide::take`, `decide::propose`, `decide::settle`) are the
//! ones `simulate` runs.
//!
//! A committed decision takes the pool's signals (the intents stay in the book, frozen, until
//! the decision is recorded), runs the strategy on a blocking thread, settles the proposal with
//! the guardrails, records the sequence number it saw in the pool's record, writes the record
//! and only then drops the consumed intents — so a crash at any point neither loses an intent
//! nor applies one twice, and a restart does not decide again on what was already decided.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde::Serialize;

use crate::autoscale::audit::SignalRecord;
use crate::autoscale::cadence::{Cadence, Trigger};
use crate::autoscale::decide::{self, Decision, Record, Taken};
use crate::autoscale::metrics::{PoolLabel, PoolResult};
use crate::autoscale::pool::Pool;
use crate::autoscale::scaler::{PoolState, Scaler, lock, panic_message};
use crate::autoscale::signal::{Signal, SourceKind};
use crate::autoscale::strategy::Strategy;

/// The decision record in the audit log.
#[derive(Debug, Serialize)]
struct DecisionAudit<'a> {
    pool: &'a str,
    sources: Vec<&'a str>,
    /// Every request behind the signals (all merged keys), for tracing a request to this
    /// decision.
    idempotency_keys: Vec<&'a str>,
    requests: u64,
    /// The journal sequence number the decision saw (and consumed intents up to).
    consumed_seq: u64,
    trigger: &'static str,
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
        /// Composite pools: every key's value.
        #[serde(skip_serializing_if = "Option::is_none")]
        vector: Option<&'a std::collections::BTreeMap<String, i64>>,
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
        trigger: Trigger,
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
            trigger: match trigger {
                Trigger::Signal => "signal",
                Trigger::Tick => "tick",
            },
            signals: signals.iter().map(Signal::to_json).collect(),
            strategy: &strategy.name,
            script_hash: &strategy.hash,
            old,
            outcome,
        }
    }
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

    /// The loop: the shared [`Cadence`] on tokio's clock. A wake opens (or joins) a burst; the
    /// decision comes when the burst or the tick is due.
    async fn decision_loop(self: Arc<Self>, st: Arc<PoolState>) {
        let now = tokio::time::Instant::now();
        let mut cadence = Cadence::new(now, self.settings.debounce, self.settings.tick);
        loop {
            tokio::select! {
                _ = st.wake.notified() => {
                    cadence.wake(tokio::time::Instant::now());
                    continue;
                }
                _ = tokio::time::sleep_until(cadence.next()) => {}
                _ = self.stopped() => return,
            }
            let Some(trigger) = cadence.due(tokio::time::Instant::now()) else { continue };
            if self.fault("decide-panic") {
                panic!("test fault: decide-panic");
            }
            if trigger == Trigger::Tick {
                self.recheck_unknown(&st).await;
            }
            if let Ok(Some(_)) = self.decide_once(&st.name, None, trigger, true).await {
                cadence.decided(tokio::time::Instant::now());
            }
        }
    }

    /// The decision path. `extra` adds signals for this decision only (dry runs and `/scale`);
    /// with `commit = false` nothing is consumed or changed. `Ok(None)`: nothing to decide.
    pub(crate) async fn decide_once(
        self: &Arc<Self>,
        pool_name: &str,
        extra: Option<Vec<Signal>>,
        trigger: Trigger,
        commit: bool,
    ) -> Result<Option<Decision>, String> {
        let unknown = || format!("unknown pool `{pool_name}`");
        let st = self.state_of(pool_name).ok_or_else(unknown)?.clone();
        let pool = self.pool(pool_name).ok_or_else(unknown)?;
        let strategy = self
            .strategy(pool_name)
            .ok_or_else(|| format!("pool `{pool_name}` has no strategy"))?;
        if let Some(why) = self.not_deciding(&st) {
            return if commit { Ok(None) } else { Err(why) };
        }
        let now = Utc::now();
        if commit
            && trigger == Trigger::Tick
            && let Some(d) = self.fallback(&st, &pool, &strategy, now).await
        {
            return Ok(Some(d));
        }
        let Some(taken) = self.take(&st, &pool, now, trigger, extra.unwrap_or_default(), commit)
        else {
            return Ok(None);
        };
        let (proposed, taken) = propose(&st, &strategy, &pool, taken, commit).await?;
        if commit && !proposed.quarantined.is_empty() {
            self.quarantine(&st, proposed.quarantined.clone(), &proposed.quarantine_reason);
        }
        let Taken { seen, record, base, .. } = taken;
        let used = proposed.used;
        let values = proposed.values;
        let proposal = match proposed.proposal {
            Ok(p) => p,
            Err(e) => {
                self.failed(&st, &strategy, &record, &used, seen, trigger, &e, commit).await;
                return Err(format!("strategy `{}` failed: {e}", strategy.name));
            }
        };
        let settled = {
            let mut inner = lock(&st.inner);
            decide::settle_pool(&mut inner.record, &pool, base, &proposal, &values, now, commit)
        };
        let decision = match settled {
            Ok(d) => d,
            Err(e) => {
                self.failed(&st, &strategy, &record, &used, seen, trigger, &e, commit).await;
                return Err(e);
            }
        };
        if commit {
            {
                let mut inner = lock(&st.inner);
                inner.last_decision = Some(decision.clone());
                inner.last_error = None;
                inner.record.signals_seq = inner.record.signals_seq.max(seen);
            }
            self.commit(&st, &strategy, &used, seen, trigger, &decision).await;
        }
        Ok(Some(decision))
    }

    /// The signals this decision reads, taken from the pool's book (with `commit = false`, from
    /// a copy, so nothing is consumed); schedule changes are audited when committing. `None`:
    /// nothing to decide.
    fn take(
        &self,
        st: &PoolState,
        pool: &Pool,
        now: chrono::DateTime<Utc>,
        trigger: Trigger,
        extra: Vec<Signal>,
        commit: bool,
    ) -> Option<Taken> {
        let mut inner = lock(&st.inner);
        let inner = &mut *inner;
        if commit {
            let mut on_schedule =
                |c: &crate::autoscale::signal::Change| self.audit_schedule(&st.name, c);
            decide::take(
                pool,
                &mut inner.book,
                &inner.record,
                now,
                trigger,
                extra,
                true,
                &mut on_schedule,
            )
        } else {
            let mut book = inner.book.clone();
            decide::take(pool, &mut book, &inner.record, now, trigger, extra, false, &mut |_| true)
        }
    }

    /// The pool's `fallback`, when its sources have been silent too long: a decision of its own
    /// (audited with the source `fallback`), through the guardrails.
    async fn fallback(
        &self,
        st: &PoolState,
        pool: &Pool,
        strategy: &Strategy,
        now: chrono::DateTime<Utc>,
    ) -> Option<Decision> {
        let d = {
            let mut inner = lock(&st.inner);
            let heard = inner.book.heard_at;
            let proposal =
                decide::fallback_due(&pool.spec, &inner.record, heard, self.started, now)?;
            let base = inner.record.evaluation_base(&pool.spec, now);
            inner.record.fallback_since = Some(now);
            let d = decide::settle_pool(
                &mut inner.record,
                pool,
                base,
                &proposal,
                &Default::default(),
                now,
                true,
            )
            .ok()?;
            inner.last_decision = Some(d.clone());
            d
        };
        self.log.warn(
            "fallback",
            &[("pool", &st.name), ("value", &d.clamped.to_string()), ("reason", &d.reason)],
        );
        let fallback = [crate::autoscale::signal::Signal::new(
            crate::autoscale::signal::Kind::Intent,
            SourceKind::Fallback,
            "fallback",
            "fallback".into(),
            crate::autoscale::pool::Action::Set,
            0,
            Some(d.clamped),
            now,
        )];
        self.commit(st, strategy, &fallback, 0, Trigger::Tick, &d).await;
        Some(d)
    }

    /// Audit a schedule window opening or closing before it reaches the book; `false` (the
    /// audit queue is full) leaves it for the next decision.
    fn audit_schedule(&self, pool: &str, change: &crate::autoscale::signal::Change) -> bool {
        let key = change.key().to_string();
        let record = SignalRecord::of_change(pool, SourceKind::Schedule, key, change);
        if self.audit.record(record).is_err() {
            self.metrics.intent(pool, SourceKind::Schedule.as_str(), "overloaded");
            return false;
        }
        self.metrics.intent(pool, SourceKind::Schedule.as_str(), "accepted");
        self.log.info(
            "schedule",
            &[("pool", pool), ("change", &crate::autoscale::scaler::describe(change))],
        );
        true
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
        trigger: Trigger,
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
            DecisionAudit::new(
                &st.name,
                used,
                consumed_seq,
                trigger,
                strategy,
                record.desired,
                outcome,
            ),
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
        trigger: Trigger,
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
            vector: (!d.vector.is_empty()).then_some(&d.vector),
        };
        self.audit.write(
            "decision",
            DecisionAudit::new(&st.name, used, consumed_seq, trigger, strategy, d.old, outcome),
        );
        if d.changed || consumed_seq > 0 {
            self.persist(st).await;
        }
        lock(&st.inner).book.consume(consumed_seq);
        if !d.changed && !d.guardrails.is_empty() && d.proposed.is_some_and(|p| p != d.old) {
            self.notify(
                crate::notify::Kind::ScaleSkipped,
                &st.name,
                format!("pool `{}`: {} → {} held by {}", st.name, d.old, d.proposed.unwrap_or(d.old), d.guardrails.join(", ")),
                serde_json::json!({"from": d.old, "proposed": d.proposed, "guardrails": d.guardrails, "reason": d.reason}),
            );
        }
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

/// Run the strategy on `taken` off the async workers. A task that fails (a panic outside the
/// strategy's own isolation) frees the book for the next decision when committing.
async fn propose(
    st: &PoolState,
    strategy: &Strategy,
    pool: &Pool,
    taken: Taken,
    commit: bool,
) -> Result<(decide::Proposed, Taken), String> {
    let (strategy, pool) = (strategy.clone(), pool.clone());
    let proposed = tokio::task::spawn_blocking(move || {
        let p = decide::propose(&strategy, &pool, &taken, commit);
        (p, taken)
    })
    .await;
    proposed.map_err(|e| {
        if commit {
            lock(&st.inner).book.deciding = None;
        }
        format!("strategy task failed: {e}")
    })
}

impl Scaler {
    /// A dry run: the real decision path without committing, then a preview with the new
    /// value through a temporary config file. Previews of one stack run one at a time with at
    /// most `--preview-queue` waiting; more are refused with 429.
    pub(crate) async fn dry_run(
        self: &Arc<Self>,
        pool_name: &str,
        extra: Vec<Signal>,
    ) -> Result<serde_json::Value, (u16, String)> {
        use std::sync::atomic::Ordering;
        let pool = self.pool(pool_name).ok_or((404, format!("unknown pool `{pool_name}`")))?;
        let decision = self
            .decide_once(pool_name, Some(extra), Trigger::Tick, false)
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
            let pairs: Vec<(String, i64)> = if decision.vector.is_empty() {
                vec![(pool.spec.key.clone(), decision.clamped)]
            } else {
                decision.vector.iter().map(|(k, v)| (k.clone(), *v)).collect()
            };
            let mut targets = pool.spec.targets.clone();
            targets.extend(pool.keys.iter().flat_map(|k| k.spec.targets.iter().cloned()));
            let result = self.pulumi.preview_with(&stack, &pairs, &targets).await;
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
            "vector": (!decision.vector.is_empty()).then_some(&decision.vector),
            "guardrails": decision.guardrails,
            "cooldownRemaining": {"up": decision.cooldown_up_remaining, "down": decision.cooldown_down_remaining},
            "changeSummary": preview.get("changeSummary").cloned().unwrap_or(serde_json::json!({})),
            "steps": preview.get("steps").cloned().unwrap_or(serde_json::json!([])),
        }))
    }
}
