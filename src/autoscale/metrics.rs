//! Prometheus metrics (`pilum_scale_*`). Labels are bounded: pool names come from the pools
//! file, sources and results are fixed enums — never request data.

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::AtomicU64;

use crate::sync::RwLockExt;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct IntentLabels {
    pub pool: String,
    pub source: String,
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct PoolResult {
    pub pool: String,
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct PoolLabel {
    pub pool: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct CooldownLabels {
    pub pool: String,
    pub direction: String,
}

/// A pool's `intents` counters by (source, result).
type IntentCounters = HashMap<(&'static str, &'static str), Counter>;

/// Every metric the scaler exports.
#[derive(Debug)]
pub(crate) struct Metrics {
    pub intents: Family<IntentLabels, Counter>,
    pub updates: Family<PoolResult, Counter>,
    pub decisions: Family<PoolResult, Counter>,
    pub update_duration: Family<PoolLabel, Histogram, fn() -> Histogram>,
    pub desired: Family<PoolLabel, Gauge>,
    pub applied: Family<PoolLabel, Gauge>,
    pub cooldown: Family<CooldownLabels, Gauge<f64, AtomicU64>>,
    pub lock_retries: Family<PoolLabel, Counter>,
    pub strategy_errors: Family<PoolLabel, Counter>,
    pub queue_depth: Gauge,
    pub last_success: Family<PoolLabel, Gauge<f64, AtomicU64>>,
    pub reload_errors: Counter,
    pub reload_ok: Gauge,
    pub quarantined: Family<PoolLabel, Counter>,
    pub loop_restarts: Family<PoolLabel, Counter>,
    pub paused: Family<PoolLabel, Gauge>,
    pub drift: Family<PoolLabel, Gauge>,
    pub drift_checks: Family<PoolResult, Counter>,
    pub audit_errors: Counter,
    /// 1 while this replica leads (a single server always does).
    pub leader: Gauge,
    /// Times this replica took or lost the lease (`--ha`).
    pub leader_changes: Counter,
    /// `intents` counters by pool, then (source, result): the request path increments them
    /// without allocating label sets.
    intent_cache: RwLock<HashMap<String, IntentCounters>>,
}

fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.5, 2.0, 12))
}

impl Metrics {
    pub(crate) fn new() -> Self {
        Self {
            update_duration: Family::new_with_constructor(duration_histogram),
            intents: Family::default(),
            updates: Family::default(),
            decisions: Family::default(),
            desired: Family::default(),
            applied: Family::default(),
            cooldown: Family::default(),
            lock_retries: Family::default(),
            strategy_errors: Family::default(),
            queue_depth: Gauge::default(),
            last_success: Family::default(),
            reload_errors: Counter::default(),
            reload_ok: Gauge::default(),
            quarantined: Family::default(),
            loop_restarts: Family::default(),
            paused: Family::default(),
            drift: Family::default(),
            drift_checks: Family::default(),
            audit_errors: Counter::default(),
            leader: Gauge::default(),
            leader_changes: Counter::default(),
            intent_cache: RwLock::new(HashMap::new()),
        }
    }

    /// Count a received signal. `pool` must be a configured pool name or `unknown` (labels
    /// stay bounded).
    pub(crate) fn intent(&self, pool: &str, source: &'static str, result: &'static str) {
        if let Some(c) =
            self.intent_cache.read_locked().get(pool).and_then(|m| m.get(&(source, result)))
        {
            c.inc();
            return;
        }
        let labels =
            IntentLabels { pool: pool.into(), source: source.into(), result: result.into() };
        let counter = self.intents.get_or_create(&labels).clone();
        counter.inc();
        self.intent_cache
            .write_locked()
            .entry(pool.to_string())
            .or_default()
            .insert((source, result), counter);
    }

    /// Render the text exposition format.
    pub(crate) fn render(&self) -> String {
        let mut r = Registry::default();
        r.register(
            "pilum_scale_intents",
            "Signals received, by pool, source and result",
            self.intents.clone(),
        );
        r.register(
            "pilum_scale_updates",
            "Pulumi updates run, by pool and result",
            self.updates.clone(),
        );
        r.register(
            "pilum_scale_decisions",
            "Decisions made, by pool and result",
            self.decisions.clone(),
        );
        r.register_with_unit(
            "pilum_scale_update_duration",
            "Duration of pulumi up runs",
            prometheus_client::registry::Unit::Seconds,
            self.update_duration.clone(),
        );
        r.register("pilum_scale_desired", "Desired value per pool", self.desired.clone());
        r.register("pilum_scale_applied", "Last applied value per pool", self.applied.clone());
        r.register_with_unit(
            "pilum_scale_cooldown_remaining",
            "Cooldown left per pool and direction",
            prometheus_client::registry::Unit::Seconds,
            self.cooldown.clone(),
        );
        r.register(
            "pilum_scale_lock_retries",
            "Retries after a Pulumi stack lock conflict",
            self.lock_retries.clone(),
        );
        r.register(
            "pilum_scale_strategy_errors",
            "Strategy failures (decision skipped)",
            self.strategy_errors.clone(),
        );
        r.register(
            "pilum_scale_queue_depth",
            "Signals waiting in the ingest queue",
            self.queue_depth.clone(),
        );
        r.register(
            "pilum_scale_last_success_timestamp_seconds",
            "Unix time of the last successful update per pool",
            self.last_success.clone(),
        );
        r.register(
            "pilum_scale_leader",
            "1 while this replica holds the leader lease (a server without --ha always does)",
            self.leader.clone(),
        );
        r.register(
            "pilum_scale_leader_changes",
            "Times this replica took or lost the leader lease",
            self.leader_changes.clone(),
        );
        r.register(
            "pilum_scale_reload_errors",
            "Rejected hot reloads of pools or strategies",
            self.reload_errors.clone(),
        );
        r.register(
            "pilum_scale_config_reload_ok",
            "1 when the last reload succeeded",
            self.reload_ok.clone(),
        );
        r.register(
            "pilum_scale_quarantined_signals",
            "Signals set aside because the strategy failed on them",
            self.quarantined.clone(),
        );
        r.register(
            "pilum_scale_decision_loop_restarts",
            "Decision loops restarted after a crash",
            self.loop_restarts.clone(),
        );
        r.register("pilum_scale_paused", "1 while a pool is paused", self.paused.clone());
        r.register(
            "pilum_scale_drift",
            "1 when the last drift check found drift",
            self.drift.clone(),
        );
        r.register(
            "pilum_scale_drift_checks",
            "Drift checks by pool and result (clean, drift, skipped, error)",
            self.drift_checks.clone(),
        );
        r.register(
            "pilum_scale_audit_write_errors",
            "Failed writes of the audit log, the signal journal or a state record",
            self.audit_errors.clone(),
        );
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &r);
        to_classic_text(&out)
    }
}

/// Convert OpenMetrics text to the classic Prometheus text format (0.0.4) that every scraper
/// and `promtool check metrics` read: counter families are named with their `_total` suffix,
/// and the OpenMetrics-only `# UNIT` and `# EOF` lines are dropped.
pub(crate) fn to_classic_text(open: &str) -> String {
    let counters: std::collections::HashSet<&str> = open
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(open.len());
    for line in open.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        let rewritten = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters.contains(name).then(|| format!("{prefix}{name}_total {tail}"))
        });
        out.push_str(rewritten.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_text_names_counters_with_total() {
        let m = Metrics::new();
        m.intent("p", "delta", "accepted");
        let text = m.render();
        assert!(text.contains("# TYPE pilum_scale_intents_total counter"), "{text}");
        assert!(
            text.contains(
                "pilum_scale_intents_total{pool=\"p\",source=\"delta\",result=\"accepted\"} 1"
            ),
            "{text}"
        );
        assert!(!text.contains("# EOF") && !text.contains("# UNIT"));
    }
}
