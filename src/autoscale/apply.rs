//! Apply lanes: one per stack. A lane writes the due pools' keys with one `pulumi config
//! set-all`, runs one targeted `pulumi up` for all of them (retrying only Pulumi's lock texts),
//! records the result in every pool's record, and backs off after a failure so a broken stack
//! is retried, not stormed. On shutdown a lane finishes the update it is running and stops.

use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use serde_json::json;

use crate::autoscale::actuator::{Failure, is_pending_operations};
use crate::autoscale::decide::ApplyResult;
use crate::autoscale::metrics::{PoolLabel, PoolResult};
use crate::autoscale::pool::Pool;
use crate::autoscale::scaler::{Lane, Scaler, lock};
use crate::backoff::{Backoff, Jitter};

/// One `pulumi up` for a lane: every key of every due pool in one `config set-all`, every
/// target in one `up`, and the update's message.
struct Update {
    pairs: Vec<(String, i64)>,
    targets: Vec<String>,
    message: String,
}

impl Update {
    fn of(due: &[Due]) -> Self {
        let pairs = due
            .iter()
            .flat_map(|d| {
                std::iter::once((d.pool.spec.key.clone(), d.desired))
                    .chain(d.also.iter().map(|(k, v)| (k.clone(), *v)))
            })
            .collect();
        let mut targets: Vec<String> = due
            .iter()
            .flat_map(|d| {
                let keys = d.pool.keys.iter().flat_map(|k| k.spec.targets.iter());
                d.pool.spec.targets.iter().chain(keys).cloned()
            })
            .collect();
        targets.sort();
        targets.dedup();
        let message = format!(
            "pilum: {}",
            due.iter()
                .map(|d| {
                    let from = d.applied.map_or("?".into(), |a| a.to_string());
                    format!("{} {from}→{} ({})", d.pool.name, d.desired, d.reason)
                })
                .collect::<Vec<_>>()
                .join("; ")
        );
        Self { pairs, targets, message }
    }
}

/// A pool due for an apply: its configuration and the generation and value to apply.
struct Due {
    pool: Pool,
    generation: u64,
    desired: i64,
    /// Composite pools: the other keys' values, applied with `desired` as one vector.
    also: std::collections::BTreeMap<String, i64>,
    applied: Option<i64>,
    reason: String,
}

impl Scaler {
    pub(crate) async fn apply_lane(self: Arc<Self>, lane: Arc<Lane>) {
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
                _ = self.stopped() => return,
            }
            if self.draining.load(std::sync::atomic::Ordering::SeqCst) {
                return;
            }
            if retry_at.is_some_and(|t| t > tokio::time::Instant::now()) {
                // A failure is backing off; a new decision joins the retry instead of storming.
                continue;
            }
            match self.apply_due(&lane).await {
                None => {}
                Some(true) => {
                    failures = 0;
                    retry_at = None;
                    // Decisions made while `up` ran may be due already.
                    if lane
                        .pools
                        .iter()
                        .any(|p| self.state_of(p).is_some_and(|st| lock(&st.inner).record.behind()))
                    {
                        lane.wake.notify_one();
                    }
                }
                Some(false) => {
                    failures = failures.saturating_add(1);
                    let delay = Backoff::new(self.settings.retry_backoff)
                        .cap(self.settings.retry_max)
                        .jitter(Jitter::Up(0.2))
                        .delay(failures);
                    retry_at = Some(tokio::time::Instant::now() + delay);
                }
            }
        }
    }

    /// The pools of a lane whose applied generation is behind.
    fn due(&self, lane: &Lane) -> Vec<Due> {
        let pools = self.pools();
        let mut due = Vec::new();
        for name in &lane.pools {
            let (Some(st), Some(pool)) = (self.state_of(name), pools.get(name)) else { continue };
            let inner = lock(&st.inner);
            let due_now = inner.record.behind() || inner.restore;
            if due_now && inner.record.paused.is_none() && inner.unknown.is_none() {
                let reason = inner
                    .record
                    .history
                    .last()
                    .map_or_else(|| "recovery".to_string(), |h| h.reason.clone());
                due.push(Due {
                    pool: pool.clone(),
                    generation: inner.record.generation,
                    desired: inner.record.desired,
                    also: inner.record.also.clone(),
                    applied: inner.record.applied,
                    reason,
                });
            }
        }
        due
    }

    /// Apply every due pool of a lane in one `pulumi up`. None when nothing was due.
    async fn apply_due(&self, lane: &Lane) -> Option<bool> {
        let due = self.due(lane);
        if due.is_empty() {
            return None;
        }
        // `--ha`: only the lease holder applies, and it checks its token with Redis first.
        if let Some(ha) = &self.ha
            && let Err(why) = ha.confirm().await
        {
            self.log.info("not applying", &[("lane", &lane.id), ("reason", &why)]);
            return None;
        }
        // Drift checks wait for (or skip) a running update of the stack.
        let _busy = lane.stack_busy.lock().await;
        let started = Instant::now();
        let Update { pairs, targets, message } = Update::of(&due);
        let names: Vec<&str> = due.iter().map(|d| d.pool.name.as_str()).collect();
        self.log.info("applying", &[("pools", &names.join(",")), ("stack", &lane.stack.stack)]);
        let (result, retries) = self.run_update(lane, &pairs, &targets, &message).await;
        let elapsed = started.elapsed().as_secs_f64();
        let ok = result.is_ok();
        self.note_blocked(lane, &result);
        self.record_results(&due, &result, retries, elapsed, &message).await;
        if ok {
            self.log.info(
                "applied",
                &[("pools", &names.join(",")), ("seconds", &format!("{elapsed:.2}"))],
            );
        } else {
            let text = result.err().map(|f| f.to_string()).unwrap_or_default();
            self.log.warn(
                "apply failed; will retry with backoff",
                &[("pools", &names.join(",")), ("error", &text)],
            );
        }
        Some(ok)
    }

    /// `config set-all` then `up` with lock retries. Returns the result and the retry count.
    async fn run_update(
        &self,
        lane: &Lane,
        pairs: &[(String, i64)],
        targets: &[String],
        message: &str,
    ) -> (Result<(), Failure>, u32) {
        if let Err(f) = self.pulumi.config_set_all(&lane.stack, pairs, None).await {
            return (Err(f), 0);
        }
        let on_lock = |f: &Failure| {
            let reason = format!("stack `{}` is locked, retrying: {f}", lane.stack.stack);
            lock(&self.blocked).insert(lane.id.clone(), reason);
        };
        self.pulumi
            .up_with_lock_retry(
                &lane.stack,
                targets,
                message,
                self.settings.lock_deadline,
                self.settings.lock_backoff,
                on_lock,
            )
            .await
    }

    /// A lock that outlived the deadline, or pending operations, make the lane not ready.
    fn note_blocked(&self, lane: &Lane, result: &Result<(), Failure>) {
        let mut blocked = lock(&self.blocked);
        match result {
            Err(f) if f.lock || is_pending_operations(&f.tail) => {
                blocked.insert(lane.id.clone(), format!("stack `{}`: {f}", lane.stack.stack));
            }
            _ => {
                blocked.remove(&lane.id);
            }
        }
    }

    /// Record one update's result in every due pool: metrics, record, audit.
    async fn record_results(
        &self,
        due: &[Due],
        result: &Result<(), Failure>,
        retries: u32,
        elapsed: f64,
        up_message: &str,
    ) {
        let now = Utc::now();
        let ok = result.is_ok();
        let (text, result_label) = match result {
            Ok(()) => ("ok".to_string(), "success"),
            Err(f) if f.lock => (f.to_string(), "locked"),
            Err(f) => (f.to_string(), "failure"),
        };
        for d in due {
            let name = &d.pool.name;
            let label = PoolLabel { pool: name.clone() };
            self.metrics
                .updates
                .get_or_create(&PoolResult { pool: name.clone(), result: result_label.into() })
                .inc();
            self.metrics.update_duration.get_or_create(&label).observe(elapsed);
            self.metrics.lock_retries.get_or_create(&label).inc_by(u64::from(retries));
            let Some(st) = self.state_of(name) else { continue };
            {
                let mut inner = lock(&st.inner);
                if ok {
                    inner.record.applied = Some(d.desired);
                    inner.record.applied_also = d.also.clone();
                    inner.restore = false;
                    inner.record.applied_generation =
                        inner.record.applied_generation.max(d.generation);
                    self.metrics.applied.get_or_create(&label).set(d.desired);
                    self.metrics
                        .last_success
                        .get_or_create(&label)
                        .set(now.timestamp_millis() as f64 / 1000.0);
                }
                inner.record.last_result = Some(ApplyResult {
                    at: now,
                    ok,
                    generation: d.generation,
                    message: text.clone(),
                });
            }
            self.persist(st).await;
            let (kind, title) = match result {
                Ok(()) => (
                    crate::notify::Kind::ScaleSucceeded,
                    format!("pool `{name}` scaled to {} ({})", d.desired, d.reason),
                ),
                Err(f) if f.lock => (
                    crate::notify::Kind::LockRetriesExhausted,
                    format!(
                        "pool `{name}`: the stack stayed locked; gave up after {retries} retries"
                    ),
                ),
                Err(_) => (
                    crate::notify::Kind::ScaleFailed,
                    format!("pool `{name}`: applying {} failed", d.desired),
                ),
            };
            self.notify(
                kind,
                name,
                title,
                json!({"from": d.applied, "to": d.desired, "vector": d.also, "generation": d.generation, "reason": d.reason, "result": text, "lock_retries": retries}),
            );
            self.audit.write(
                "apply",
                json!({
                    "pool": name, "generation": d.generation, "value": d.desired, "vector": d.also, "targets": d.pool.spec.targets,
                    "result": result_label, "message": text, "duration_seconds": elapsed, "lock_retries": retries,
                    "up_message": up_message,
                }),
            );
        }
    }
}
