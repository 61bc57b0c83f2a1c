//! Signals: what adapters turn webhooks into. Alarms and alerts are *level* state (active until
//! cleared, keyed by alarm name or alert fingerprint); direct calls are one-shot *intents*
//! consumed by the next decision. Re-sent or duplicated notifications therefore change nothing.
//!
//! Every number a signal carries is bounded on the way in ([`MAX_MAGNITUDE`], [`MAX_METRIC`]):
//! adapters refuse larger ones with 422, so no request can make the core overflow. Accepted
//! changes get a sequence number from the durable signal journal (`state.rs`); a decision
//! consumes the intents up to a sequence number and records it, so a replay after a crash never
//! applies an intent twice.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::autoscale::pool::Action;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Kind {
    /// Active until cleared (an alarm in `ALARM`, a firing alert).
    Level,
    /// Consumed by the next decision (`/delta`, `/count`, direct calls).
    Intent,
}

/// Where a signal came from; a bounded set, used as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Hash, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub(crate) enum SourceKind {
    Cloudwatch,
    Prometheus,
    Delta,
    Count,
    Direct,
    /// A `schedules:` window of the pool.
    Schedule,
    /// The pool's `fallback` after its sources went silent.
    Fallback,
}

impl SourceKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Cloudwatch => "cloudwatch",
            Self::Prometheus => "prometheus",
            Self::Delta => "delta",
            Self::Count => "count",
            Self::Direct => "direct",
            Self::Schedule => "schedule",
            Self::Fallback => "fallback",
        }
    }
}

/// The largest step, delta or value a signal may carry (and the largest `min`/`max` a pool may
/// have): far above any real capacity, far below where arithmetic could overflow.
pub(crate) const MAX_MAGNITUDE: i64 = 1_000_000;

/// The largest metric or threshold magnitude accepted from a payload.
pub(crate) const MAX_METRIC: f64 = 1e15;

/// A number outside its bound; `Display` names the field and the limit.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum OutOfBounds {
    Int { field: &'static str, value: i64, min: i64, max: i64 },
    Metric { field: &'static str, value: f64 },
}

impl std::fmt::Display for OutOfBounds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Int { field, value, min, max } => {
                write!(f, "`{field}` must be between {min} and {max}, got {value}")
            }
            Self::Metric { field, value } => write!(
                f,
                "`{field}` must be a finite number of magnitude at most {MAX_METRIC:e}, got {value}"
            ),
        }
    }
}

/// Check that `value` is in `min..=max`.
pub(crate) fn bounded(
    field: &'static str,
    value: i64,
    min: i64,
    max: i64,
) -> Result<i64, OutOfBounds> {
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(OutOfBounds::Int { field, value, min, max })
    }
}

/// Check that a metric or threshold is finite and at most [`MAX_METRIC`] in magnitude.
pub(crate) fn bounded_metric(field: &'static str, value: f64) -> Result<f64, OutOfBounds> {
    if value.is_finite() && value.abs() <= MAX_METRIC {
        Ok(value)
    } else {
        Err(OutOfBounds::Metric { field, value })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Signal {
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
    /// The journal sequence number of the (latest) request behind this signal.
    #[serde(default)]
    pub seq: u64,
    /// Every idempotency key merged into this intent after the first (`key`), so each accepted
    /// request can be traced to the decision that consumed it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub more_keys: Vec<String>,
}

fn one() -> u32 {
    1
}

impl Signal {
    /// A signal with no metric, threshold or sequence number yet.
    #[allow(clippy::too_many_arguments, reason = "a plain constructor of a plain record")]
    pub(crate) fn new(
        kind: Kind,
        source: SourceKind,
        name: &str,
        key: String,
        action: Action,
        step: i64,
        value: Option<i64>,
        since: DateTime<Utc>,
    ) -> Self {
        Self {
            kind,
            source,
            name: name.to_string(),
            key,
            action,
            step,
            value,
            metric: None,
            since,
            merged: 1,
            threshold: None,
            seq: 0,
            more_keys: Vec::new(),
        }
    }

    /// Check every number against its bound (signals read back from disk, or built by code
    /// that did not check them).
    pub(crate) fn check_bounds(&self) -> Result<(), OutOfBounds> {
        bounded("step", self.step, 0, MAX_MAGNITUDE)?;
        if let Some(v) = self.value {
            bounded("value", v, 0, MAX_MAGNITUDE)?;
        }
        if let Some(m) = self.metric {
            bounded_metric("metric", m)?;
        }
        if let Some(t) = self.threshold {
            bounded_metric("threshold", t)?;
        }
        Ok(())
    }

    /// Every idempotency key behind this signal.
    pub(crate) fn keys(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.key.as_str()).chain(self.more_keys.iter().map(String::as_str))
    }

    /// The strategy's view of the signal. `seen` is the sequence number the pool's last
    /// recorded decision saw: a signal is `fresh` when that decision did not see it (an intent,
    /// a level raised since, or one with a new metric); a level still firing is not.
    pub(crate) fn to_ctx(&self, seen: u64) -> serde_json::Value {
        let mut v = self.to_json();
        v["fresh"] = (self.kind == Kind::Intent || self.seq > seen).into();
        v
    }

    /// The signal as shown in status and audit records.
    pub(crate) fn to_json(&self) -> serde_json::Value {
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Change {
    /// Raise (or refresh) a level.
    Raise(Signal),
    /// Clear a level; `then` is an optional intent to run (CloudWatch `on_ok`).
    Clear { key: String, then: Option<Signal> },
    /// Add a one-shot intent.
    Intent(Signal),
}

impl Change {
    /// Set the journal sequence number on the signals this change carries.
    pub(crate) fn set_seq(&mut self, seq: u64) {
        match self {
            Self::Raise(s) | Self::Intent(s) | Self::Clear { then: Some(s), .. } => s.seq = seq,
            Self::Clear { then: None, .. } => {}
        }
    }

    /// The level key a change concerns, or the intent's idempotency key.
    pub(crate) fn key(&self) -> &str {
        match self {
            Self::Raise(s) | Self::Intent(s) => &s.key,
            Self::Clear { key, .. } => key,
        }
    }

    /// Check the numbers of the signals this change carries.
    pub(crate) fn check_bounds(&self) -> Result<(), OutOfBounds> {
        match self {
            Self::Raise(s) | Self::Intent(s) | Self::Clear { then: Some(s), .. } => {
                s.check_bounds()
            }
            Self::Clear { then: None, .. } => Ok(()),
        }
    }
}

/// A pool's signals.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Book {
    pub levels: BTreeMap<String, Signal>,
    pub intents: Vec<Signal>,
    /// The sequence number of the latest change that changed the book (a raise, a clear, an
    /// intent, a new metric on an active level). A decision records the number it saw
    /// (`Record::signals_seq`): a book whose `changed_seq` is not above it has nothing new.
    #[serde(default)]
    pub changed_seq: u64,
    /// When a signal source was last heard from with data (any accepted webhook, repeats
    /// included; not `INSUFFICIENT_DATA`): what `fallback` measures silence from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heard_at: Option<DateTime<Utc>>,
    /// While a decision is running: the highest intent sequence number it took. Intents up to
    /// it stay in the book (and in snapshots) until the decision is recorded, and no new
    /// request merges into them.
    #[serde(skip)]
    pub deciding: Option<u64>,
}

impl Book {
    /// Apply the change accepted as `seq` (0 for changes nobody requested, such as schedule
    /// windows); returns whether it should wake the decision loop. A re-sent identical alert
    /// changes nothing. A new `metric` or `threshold` on an active level is kept (the next
    /// decision uses it) but wakes nothing by itself: re-sent alerts with a moving value
    /// cannot start a decision each.
    pub(crate) fn apply(&mut self, seq: u64, change: Change) -> bool {
        let (changed, wake) = match change {
            Change::Raise(s) => match self.levels.get_mut(&s.key) {
                Some(old) if same_level(old, &s) => {
                    if old.metric == s.metric && old.threshold == s.threshold {
                        (false, false)
                    } else {
                        old.metric = s.metric;
                        old.threshold = s.threshold;
                        old.seq = old.seq.max(s.seq);
                        (true, false)
                    }
                }
                _ => {
                    self.levels.insert(s.key.clone(), s);
                    (true, true)
                }
            },
            Change::Clear { key, then } => {
                let cleared = self.levels.remove(&key).is_some();
                let queued = then.is_some();
                if let Some(t) = then {
                    self.intents.push(t);
                }
                (cleared || queued, cleared || queued)
            }
            Change::Intent(s) => {
                self.push_intent(s);
                (true, true)
            }
        };
        if changed {
            self.changed_seq = self.changed_seq.max(seq);
        }
        wake
    }

    /// Whether the book holds a change no recorded decision has seen (see `changed_seq`). A
    /// pending intent is news by definition: a recorded decision consumes what it took.
    pub(crate) fn has_news(&self, seen: u64) -> bool {
        self.changed_seq > seen || !self.intents.is_empty()
    }

    /// Queue an intent, merging it with a pending one from the same source so a burst of
    /// thousands of requests stays one small signal: deltas add up, a newer `set` replaces an
    /// older one. Every request is still in the audit log individually.
    fn push_intent(&mut self, s: Signal) {
        let signed = |x: &Signal| if x.action == Action::Down { -x.step } else { x.step };
        let frozen = self.deciding;
        if let Some(last) = self
            .intents
            .iter_mut()
            .rev()
            .find(|p| p.source == s.source && p.name == s.name)
            .filter(|p| frozen.is_none_or(|f| p.seq > f))
        {
            match (last.action, s.action) {
                (Action::Up | Action::Down, Action::Up | Action::Down) => {
                    // Bounded like one request: a burst can never step further than one
                    // request could.
                    let sum = signed(last)
                        .saturating_add(signed(&s))
                        .clamp(-MAX_MAGNITUDE, MAX_MAGNITUDE);
                    last.action = if sum < 0 { Action::Down } else { Action::Up };
                    last.step = sum.abs();
                    Self::merge_meta(last, s);
                    return;
                }
                (Action::Set, Action::Set) => {
                    last.value = s.value;
                    last.since = s.since;
                    Self::merge_meta(last, s);
                    return;
                }
                _ => {}
            }
        }
        self.intents.push(s);
    }

    fn merge_meta(last: &mut Signal, s: Signal) {
        last.merged = last.merged.saturating_add(s.merged);
        last.seq = last.seq.max(s.seq);
        last.more_keys.push(s.key);
        last.more_keys.extend(s.more_keys);
    }

    /// The signals a decision sees: active levels, then pending intents. With `commit`, the
    /// intents are marked as being decided (see [`Book::consume`]); the highest sequence
    /// number seen (of the intents taken and of the book's latest change) is returned with
    /// them: the decision records it as seen.
    pub(crate) fn take(&mut self, commit: bool) -> (Vec<Signal>, u64) {
        let mut out: Vec<Signal> = self.levels.values().cloned().collect();
        out.extend(self.intents.iter().cloned());
        let seq = self.intents.iter().map(|s| s.seq).max().unwrap_or(0).max(self.changed_seq);
        if commit {
            self.deciding = Some(seq);
        }
        (out, seq)
    }

    /// The decision that took intents up to `seq` is recorded: drop them.
    pub(crate) fn consume(&mut self, seq: u64) {
        self.intents.retain(|s| s.seq > seq);
        self.deciding = None;
    }

    /// Drop intents a recorded decision already consumed (after a restart). Intents without a
    /// sequence number (saved by an older version) are pending by definition and kept.
    pub(crate) fn forget_consumed(&mut self, seq: u64) {
        self.intents.retain(|s| s.seq == 0 || s.seq > seq);
    }

    pub(crate) fn is_empty(&self) -> bool {
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
        Signal::new(
            Kind::Level,
            SourceKind::Prometheus,
            "HighLoad",
            key.into(),
            Action::Up,
            step,
            None,
            Utc::now(),
        )
    }

    #[test]
    fn deltas_from_one_source_merge() {
        let mut b = Book::default();
        for step in [1, 1, 1] {
            let mut i = level("k", step);
            i.kind = Kind::Intent;
            i.source = SourceKind::Delta;
            b.apply(0, Change::Intent(i));
        }
        let mut down = level("k2", 5);
        down.kind = Kind::Intent;
        down.source = SourceKind::Delta;
        down.action = Action::Down;
        b.apply(0, Change::Intent(down));
        let (taken, _) = b.take(false);
        assert_eq!(taken.len(), 1);
        assert_eq!((taken[0].action, taken[0].step, taken[0].merged), (Action::Down, 2, 4));
        assert_eq!(taken[0].keys().count(), 4, "every request's key is kept");
    }

    #[test]
    fn a_huge_burst_stays_bounded() {
        let mut b = Book::default();
        for _ in 0..3 {
            let mut i = level("k", MAX_MAGNITUDE);
            i.kind = Kind::Intent;
            b.apply(0, Change::Intent(i));
        }
        assert_eq!(b.take(false).0[0].step, MAX_MAGNITUDE);
    }

    #[test]
    fn intents_being_decided_are_kept_apart_until_consumed() {
        let mut b = Book::default();
        let intent = |seq| {
            let mut i = level("k", 1);
            i.kind = Kind::Intent;
            i.seq = seq;
            Change::Intent(i)
        };
        b.apply(1, intent(1));
        let (_, upto) = b.take(true);
        assert_eq!(upto, 1);
        // Arrives while the decision runs: not merged into the intent being decided.
        b.apply(2, intent(2));
        assert_eq!(b.intents.len(), 2);
        b.consume(upto);
        assert_eq!(b.intents.len(), 1);
        assert_eq!(b.intents[0].seq, 2);
    }

    #[test]
    fn bounds_name_the_field_and_the_limit() {
        let e = bounded("delta", i64::MAX, -MAX_MAGNITUDE, MAX_MAGNITUDE).unwrap_err();
        assert_eq!(
            e.to_string(),
            "`delta` must be between -1000000 and 1000000, got 9223372036854775807"
        );
        assert!(bounded_metric("metric", f64::INFINITY).is_err());
        assert!(bounded_metric("metric", 91.5).is_ok());
    }

    #[test]
    fn duplicate_raises_do_not_change_the_book() {
        let mut b = Book::default();
        assert!(b.apply(1, Change::Raise(level("a", 1))));
        assert!(!b.apply(2, Change::Raise(level("a", 1))));
        assert_eq!(b.changed_seq, 1, "a repeat is not a change");
        let mut hotter = level("a", 1);
        hotter.metric = Some(97.0);
        hotter.seq = 3;
        assert!(!b.apply(3, Change::Raise(hotter)), "a new metric wakes nothing");
        assert_eq!((b.changed_seq, b.levels["a"].metric), (3, Some(97.0)), "but is kept");
        assert!(b.apply(4, Change::Raise(level("a", 2))));
        assert!(b.apply(5, Change::Clear { key: "a".into(), then: None }));
        assert!(!b.apply(6, Change::Clear { key: "a".into(), then: None }));
        assert!(b.has_news(4) && !b.has_news(5));
    }

    #[test]
    fn take_keeps_levels_and_consumes_intents() {
        let mut b = Book::default();
        b.apply(1, Change::Raise(level("a", 1)));
        let mut i = level("k", 1);
        i.kind = Kind::Intent;
        b.apply(0, Change::Intent(i));
        let (taken, seq) = b.take(true);
        assert_eq!(taken.len(), 2);
        b.consume(seq);
        assert_eq!(b.take(true).0.len(), 1);
    }
}
