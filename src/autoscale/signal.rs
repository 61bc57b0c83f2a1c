//! Signals: what adapters turn webhooks into. Alarms and alerts are *level* state (active until
//! cleared, keyed by alarm name or alert fingerprint); direct calls are one-shot *intents*
//! consumed by the next decision. Re-sent or duplicated notifications therefore change nothing.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::autoscale::pool::Action;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Active until cleared (an alarm in `ALARM`, a firing alert).
    Level,
    /// Consumed by the next decision (`/delta`, `/count`, direct calls).
    Intent,
}

/// Where a signal came from; a bounded set, used as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Hash, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    Cloudwatch,
    Prometheus,
    Delta,
    Count,
    Direct,
    /// A `schedules:` window of the pool.
    Schedule,
}

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cloudwatch => "cloudwatch",
            Self::Prometheus => "prometheus",
            Self::Delta => "delta",
            Self::Count => "count",
            Self::Direct => "direct",
            Self::Schedule => "schedule",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signal {
    pub kind: Kind,
    pub source: SourceKind,
    /// Alarm name, alert name, or `delta`/`count`.
    pub name: String,
    /// Level key (`cloudwatch:<alarm>`, `prometheus:<fingerprint>`) or the idempotency key.
    pub key: String,
    pub action: Action,
    pub step: i64,
    pub value: Option<i64>,
    /// The metric value that triggered it, when the payload carries one.
    pub metric: Option<f64>,
    pub since: DateTime<Utc>,
    /// How many requests were merged into this intent (see [`Book::apply`]).
    #[serde(default = "one")]
    pub merged: u32,
    /// The alarm's threshold, when the payload carries one (CloudWatch `Trigger.Threshold`,
    /// an alert's `threshold` annotation): step strategies measure the breach from it.
    #[serde(default)]
    pub threshold: Option<f64>,
}

fn one() -> u32 {
    1
}

impl Signal {
    /// The strategy's view of the signal.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "kind": self.kind,
            "source": self.source.as_str(),
            "name": self.name,
            "key": self.key,
            "action": self.action.as_str(),
            "step": self.step,
            "value": self.value,
            "metric": self.metric,
            "since": self.since.timestamp(),
            "merged": self.merged,
            "threshold": self.threshold,
        })
    }
}

/// A change to a pool's signals.
#[derive(Debug, Clone)]
pub enum Change {
    /// Raise (or refresh) a level.
    Raise(Signal),
    /// Clear a level; `then` is an optional intent to run (CloudWatch `on_ok`).
    Clear { key: String, then: Option<Signal> },
    /// Add a one-shot intent.
    Intent(Signal),
}

/// A pool's signals.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Book {
    pub levels: BTreeMap<String, Signal>,
    pub intents: Vec<Signal>,
}

impl Book {
    /// Apply a change; returns whether the book changed (a re-sent identical alert does not).
    pub fn apply(&mut self, change: Change) -> bool {
        match change {
            Change::Raise(s) => match self.levels.get(&s.key) {
                Some(old) if same_level(old, &s) => false,
                _ => {
                    self.levels.insert(s.key.clone(), s);
                    true
                }
            },
            Change::Clear { key, then } => {
                let cleared = self.levels.remove(&key).is_some();
                let queued = then.is_some();
                if let Some(t) = then {
                    self.intents.push(t);
                }
                cleared || queued
            }
            Change::Intent(s) => {
                self.push_intent(s);
                true
            }
        }
    }

    /// Queue an intent, merging it with a pending one from the same source so a burst of
    /// thousands of requests stays one small signal: deltas add up, a newer `set` replaces an
    /// older one. Every request is still in the audit log individually.
    fn push_intent(&mut self, s: Signal) {
        let signed = |x: &Signal| if x.action == Action::Down { -x.step } else { x.step };
        if let Some(last) =
            self.intents.iter_mut().rev().find(|p| p.source == s.source && p.name == s.name)
        {
            match (last.action, s.action) {
                (Action::Up | Action::Down, Action::Up | Action::Down) => {
                    let sum = signed(last).saturating_add(signed(&s));
                    last.action = if sum < 0 { Action::Down } else { Action::Up };
                    last.step = sum.abs();
                    last.merged = last.merged.saturating_add(s.merged);
                    return;
                }
                (Action::Set, Action::Set) => {
                    let merged = last.merged.saturating_add(s.merged);
                    *last = Signal { merged, ..s };
                    return;
                }
                _ => {}
            }
        }
        self.intents.push(s);
    }

    /// The signals a decision sees: active levels, then pending intents (which the decision
    /// consumes).
    pub fn take(&mut self) -> Vec<Signal> {
        let mut out: Vec<Signal> = self.levels.values().cloned().collect();
        out.append(&mut self.intents);
        out
    }

    pub fn is_empty(&self) -> bool {
        self.levels.is_empty() && self.intents.is_empty()
    }
}

/// Two raises of the same level that ask for the same thing are one state.
fn same_level(a: &Signal, b: &Signal) -> bool {
    a.action == b.action && a.step == b.step && a.value == b.value
}

#[cfg(test)]
mod tests {
    use super::*;

    fn level(key: &str, step: i64) -> Signal {
        Signal {
            kind: Kind::Level,
            source: SourceKind::Prometheus,
            name: "HighLoad".into(),
            key: key.into(),
            action: Action::Up,
            step,
            value: None,
            metric: None,
            since: Utc::now(),
            merged: 1,
            threshold: None,
        }
    }

    #[test]
    fn deltas_from_one_source_merge() {
        let mut b = Book::default();
        for step in [1, 1, 1] {
            let mut i = level("k", step);
            i.kind = Kind::Intent;
            i.source = SourceKind::Delta;
            b.apply(Change::Intent(i));
        }
        let mut down = level("k2", 5);
        down.kind = Kind::Intent;
        down.source = SourceKind::Delta;
        down.action = Action::Down;
        b.apply(Change::Intent(down));
        let taken = b.take();
        assert_eq!(taken.len(), 1);
        assert_eq!((taken[0].action, taken[0].step, taken[0].merged), (Action::Down, 2, 4));
    }

    #[test]
    fn duplicate_raises_do_not_change_the_book() {
        let mut b = Book::default();
        assert!(b.apply(Change::Raise(level("a", 1))));
        assert!(!b.apply(Change::Raise(level("a", 1))));
        assert!(b.apply(Change::Raise(level("a", 2))));
        assert!(b.apply(Change::Clear { key: "a".into(), then: None }));
        assert!(!b.apply(Change::Clear { key: "a".into(), then: None }));
    }

    #[test]
    fn take_keeps_levels_and_consumes_intents() {
        let mut b = Book::default();
        b.apply(Change::Raise(level("a", 1)));
        let mut i = level("k", 1);
        i.kind = Kind::Intent;
        b.apply(Change::Intent(i));
        assert_eq!(b.take().len(), 2);
        assert_eq!(b.take().len(), 1);
    }
}
