//! Drift auto-refresh: per pool with `drift:`, a jittered periodic `pulumi refresh
//! --preview-only --json --target …` that compares the stack's state with the cloud, never
//! while the stack is being updated (it takes the lane's stack lock, or skips) and never inside
//! a cooldown, a pause or while the current value is unknown. What a drift does is the pool's
//! policy:
//!
//! - `report`: metric, audit record, status;
//! - `refresh`: `pulumi refresh --yes --skip-preview --target …` (the state follows the cloud);
//! - `restore`: re-apply the desired value (the lane runs `config set-all` + `up` again);
//! - `adopt`: a hand change of the scaled property (`property`) within the pool's bounds
//!   becomes the current value (record and stack config), with no `up`.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::autoscale::actuator::StackRef;
use crate::autoscale::decide::HistoryEntry;
use crate::autoscale::metrics::{PoolLabel, PoolResult};
use crate::autoscale::scaler::{PoolState, Scaler, lock};

/// What to do about drift.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Policy {
    #[default]
    Report,
    Refresh,
    Restore,
    Adopt,
}

impl Policy {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Report => "report",
            Self::Refresh => "refresh",
            Self::Restore => "restore",
            Self::Adopt => "adopt",
        }
    }
}

/// `drift: { every: 10m, policy: adopt, property: desiredCapacity }`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct DriftSpec {
    /// How often to check (jittered by ±10 %).
    #[serde(deserialize_with = "crate::duration::deserialize")]
    pub every: Duration,
    #[serde(default)]
    pub policy: Policy,
    /// The output (or input) of the target resource holding the scaled value: what `adopt`
    /// reads the hand-changed value from.
    #[serde(default)]
    pub property: Option<String>,
}

/// The last check, for `GET /pools/{pool}` and the status page.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct DriftState {
    pub checked_at: chrono::DateTime<Utc>,
    pub drifted: bool,
    pub policy: &'static str,
    /// What was done about it (or why the check was skipped).
    pub action: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub live: Option<i64>,
}

/// What a refresh preview says: the drifted resources and, when found, the live value.
pub(crate) fn parse_preview(v: &Value, property: Option<&str>) -> (Vec<String>, Option<i64>) {
    let mut drifted = Vec::new();
    let mut live = None;
    for s in v["steps"].as_array().into_iter().flatten() {
        let op = s["op"].as_str().unwrap_or("same");
        if op == "same" || op == "read" {
            continue;
        }
        drifted.push(s["urn"].as_str().unwrap_or("?").to_string());
        if let Some(p) = property {
            let state = &s["newState"];
            let found = state["outputs"].get(p).or_else(|| state["inputs"].get(p));
            live = live.or_else(|| match found {
                Some(Value::Number(n)) => n.as_i64(),
                Some(Value::String(t)) => t.trim().parse().ok(),
                _ => None,
            });
        }
    }
    let summary_drift = v["changeSummary"]
        .as_object()
        .is_some_and(|m| m.iter().any(|(k, n)| k != "same" && n.as_u64().unwrap_or(0) > 0));
    if drifted.is_empty() && summary_drift {
        drifted.push("(see changeSummary)".into());
    }
    (drifted, live)
}

impl Scaler {
    /// The drift loop of one pool; ends on shutdown.
    pub(crate) async fn drift_loop(self: Arc<Self>, st: Arc<PoolState>) {
        loop {
            let Some(spec) = self.pool(&st.name).and_then(|p| p.spec.drift.clone()) else { return };
            let jitter = 0.9 + fastrand::f64() * 0.2;
            let wait = spec.every.mul_f64(jitter);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.stopped() => return,
            }
            if self.ha.as_ref().is_none_or(|ha| ha.leading()) {
                self.check_drift(&st, &spec).await;
            }
        }
    }

    async fn check_drift(&self, st: &PoolState, spec: &DriftSpec) {
        let Some(pool) = self.pool(&st.name) else { return };
        let Some(lane) = self.lanes.get(&st.lane) else { return };
        let now = Utc::now();
        let skip = {
            let inner = lock(&st.inner);
            let (up, down) = inner.record.cooldowns(&pool.spec, now);
            if inner.unknown.is_some() {
                Some("the current value is unknown")
            } else if inner.record.paused.is_some() {
                Some("the pool is paused")
            } else if up > 0.0 || down > 0.0 {
                Some("inside a cooldown")
            } else if inner.record.behind() {
                Some("an apply is pending")
            } else {
                None
            }
        };
        let result = |r: &str| PoolResult { pool: st.name.clone(), result: r.into() };
        if let Some(why) = skip {
            self.metrics.drift_checks.get_or_create(&result("skipped")).inc();
            self.note_drift(st, spec, false, format!("skipped: {why}"), Vec::new(), None);
            return;
        }
        // Never during an apply: the lane holds this while it updates the stack.
        let Ok(_stack) = lane.stack_busy.try_lock() else {
            self.metrics.drift_checks.get_or_create(&result("skipped")).inc();
            self.note_drift(
                st,
                spec,
                false,
                "skipped: an apply is running".into(),
                Vec::new(),
                None,
            );
            return;
        };
        let stack = StackRef { dir: pool.project_dir.clone(), stack: pool.spec.stack.clone() };
        let preview = match self.pulumi.refresh_preview(&stack, &pool.spec.targets).await {
            Ok(v) => v,
            Err(f) => {
                self.metrics.drift_checks.get_or_create(&result("error")).inc();
                self.log
                    .warn("drift check failed", &[("pool", &st.name), ("error", &f.to_string())]);
                self.note_drift(st, spec, false, format!("check failed: {f}"), Vec::new(), None);
                return;
            }
        };
        let (resources, live) = parse_preview(&preview, spec.property.as_deref());
        if resources.is_empty() {
            self.metrics.drift_checks.get_or_create(&result("clean")).inc();
            self.metrics.drift.get_or_create(&PoolLabel { pool: st.name.clone() }).set(0);
            self.note_drift(st, spec, false, "none".into(), Vec::new(), live);
            return;
        }
        self.metrics.drift_checks.get_or_create(&result("drift")).inc();
        self.metrics.drift.get_or_create(&PoolLabel { pool: st.name.clone() }).set(1);
        self.log.warn("drift detected", &[("pool", &st.name), ("policy", spec.policy.as_str())]);
        self.notify(
            crate::notify::Kind::DriftDetected,
            &st.name,
            format!("pool `{}`: drift detected ({})", st.name, spec.policy.as_str()),
            json!({"resources": resources, "live": live, "policy": spec.policy.as_str()}),
        );
        let action = match spec.policy {
            Policy::Report => "reported".to_string(),
            Policy::Refresh => match self.pulumi.refresh(&stack, &pool.spec.targets).await {
                Ok(()) => "refreshed the state".into(),
                Err(f) => format!("refresh failed: {f}"),
            },
            Policy::Restore => {
                lock(&st.inner).restore = true;
                lane.wake.notify_one();
                "re-applying the desired value".into()
            }
            Policy::Adopt => self.adopt(st, &pool, &stack, live).await,
        };
        self.note_drift(st, spec, true, action, resources, live);
    }

    /// `adopt`: take a hand change within the bounds as the current value.
    async fn adopt(
        &self,
        st: &PoolState,
        pool: &crate::autoscale::pool::Pool,
        stack: &StackRef,
        live: Option<i64>,
    ) -> String {
        let Some(v) = live else {
            return "not adopted: the live value of `property` was not found".into();
        };
        if !(pool.spec.min..=pool.spec.max).contains(&v) {
            return format!(
                "not adopted: the live value {v} is outside [{}, {}]",
                pool.spec.min, pool.spec.max
            );
        }
        if let Err(f) = self.pulumi.config_set_all(stack, &[(pool.spec.key.clone(), v)], None).await
        {
            return format!("not adopted: {f}");
        }
        {
            let mut inner = lock(&st.inner);
            let r = &mut inner.record;
            let from = r.desired;
            r.desired = v;
            r.applied = Some(v);
            r.generation = r.generation.saturating_add(1);
            r.applied_generation = r.generation;
            r.history.push(HistoryEntry {
                at: Utc::now(),
                from,
                to: v,
                reason: "adopted a change made outside pilum".into(),
            });
        }
        let label = PoolLabel { pool: st.name.clone() };
        self.metrics.desired.get_or_create(&label).set(v);
        self.metrics.applied.get_or_create(&label).set(v);
        self.persist(st).await;
        format!("adopted {v} as the current value")
    }

    fn note_drift(
        &self,
        st: &PoolState,
        spec: &DriftSpec,
        drifted: bool,
        action: String,
        resources: Vec<String>,
        live: Option<i64>,
    ) {
        let state = DriftState {
            checked_at: Utc::now(),
            drifted,
            policy: spec.policy.as_str(),
            action,
            resources,
            live,
        };
        if drifted || !state.action.starts_with("skipped") {
            self.audit.write("drift", json!({"pool": st.name, "drift": state}));
        }
        lock(&st.inner).drift = Some(state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_preview_names_the_drifted_resources_and_the_live_value() {
        let v = json!({"steps": [
            {"op": "same", "urn": "urn:a"},
            {"op": "update", "urn": "urn:b", "newState": {"outputs": {"desiredCapacity": 6}}}
        ], "changeSummary": {"same": 1, "update": 1}});
        assert_eq!(
            parse_preview(&v, Some("desiredCapacity")),
            (vec!["urn:b".to_string()], Some(6))
        );
        let clean =
            json!({"steps": [{"op": "same", "urn": "urn:a"}], "changeSummary": {"same": 1}});
        assert_eq!(parse_preview(&clean, None), (Vec::new(), None));
    }
}
