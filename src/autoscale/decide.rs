//! The decision: a pool's persisted desired-state [`Record`] and the guardrails the core (never
//! the strategy) applies to a proposal — `max_step`, `min`/`max` and the cooldowns.
//!
//! Cooldowns follow AWS step scaling: scale-down waits for `cooldown_down` after any change;
//! during a scale-up cooldown the strategy is evaluated from the value *before* that scale-up,
//! so a still-firing alarm asks for the same target again (no change) while a larger step
//! proceeds by the difference.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::autoscale::cadence::Trigger;
use crate::autoscale::pool::{Pool, PoolSpec};
use crate::autoscale::schedule;
use crate::autoscale::signal::{Book, Change, Signal};
use crate::autoscale::strategy::{Proposal, Strategy};

/// How many past decisions a record keeps (and strategies see as `history`).
const HISTORY: usize = 20;

/// A pool's desired state, persisted in `--state-dir/<pool>.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct Record {
    pub pool: String,
    pub desired: i64,
    /// Composite pools: the other keys' desired values, part of the same generation.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub also: BTreeMap<String, i64>,
    /// Composite pools: the other keys' values the last successful `pulumi up` applied.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub applied_also: BTreeMap<String, i64>,
    /// Bumped on every change of `desired`.
    pub generation: u64,
    /// The last value `pulumi up` applied successfully.
    pub applied: Option<i64>,
    pub applied_generation: u64,
    pub last_result: Option<ApplyResult>,
    pub last_up: Option<DateTime<Utc>>,
    pub last_down: Option<DateTime<Utc>>,
    /// The value before the first scale-up of the current up-cooldown.
    pub up_base: Option<i64>,
    #[serde(default)]
    pub history: Vec<HistoryEntry>,
    /// The journal sequence number up to which this pool's intents were consumed by recorded
    /// decisions: a replay after a crash skips them.
    #[serde(default)]
    pub signals_seq: u64,
    /// Set by `POST /pools/{pool}/pause`: signals are recorded, nothing is decided or applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<Pause>,
    /// Since when the pool runs at its `fallback` value because its sources went silent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_since: Option<DateTime<Utc>>,
    /// With `--ha`: the fencing token of the leader that wrote this record.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub fence: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Why and until when a pool is paused.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct Pause {
    pub reason: String,
    pub since: DateTime<Utc>,
    /// When it resumes by itself (at the first tick after it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<Utc>>,
}

impl Pause {
    /// Whether the pause is over at `now`.
    pub(crate) fn over(&self, now: DateTime<Utc>) -> bool {
        self.until.is_some_and(|u| u <= now)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct ApplyResult {
    pub at: DateTime<Utc>,
    pub ok: bool,
    pub generation: u64,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct HistoryEntry {
    pub at: DateTime<Utc>,
    pub from: i64,
    pub to: i64,
    pub reason: String,
}

impl Record {
    /// A fresh record for a pool whose config currently holds `current` (already applied).
    pub(crate) fn new(pool: &str, current: i64) -> Self {
        Self {
            pool: pool.to_string(),
            desired: current,
            also: BTreeMap::new(),
            applied_also: BTreeMap::new(),
            generation: 0,
            applied: Some(current),
            applied_generation: 0,
            last_result: None,
            last_up: None,
            last_down: None,
            up_base: None,
            history: Vec::new(),
            signals_seq: 0,
            paused: None,
            fallback_since: None,
            fence: 0,
        }
    }

    /// The first value outside the pool's bounds, as `(field, value, min, max)`: `desired`
    /// and `up_base` must be within `min..=max`, `applied` between 0 and
    /// [`MAX_MAGNITUDE`](crate::autoscale::signal::MAX_MAGNITUDE), and the applied generation
    /// cannot be ahead of the generation.
    pub(crate) fn out_of_bounds(&self, spec: &PoolSpec) -> Option<(&'static str, i64, i64, i64)> {
        let max = crate::autoscale::signal::MAX_MAGNITUDE;
        let in_pool = |v: i64| (spec.min..=spec.max).contains(&v);
        if !in_pool(self.desired) {
            return Some(("desired", self.desired, spec.min, spec.max));
        }
        if let Some(a) = self.applied
            && !(0..=max).contains(&a)
        {
            return Some(("applied", a, 0, max));
        }
        if let Some(b) = self.up_base
            && !(0..=max).contains(&b)
        {
            return Some(("up_base", b, 0, max));
        }
        if self.applied_generation > self.generation {
            let g = i64::try_from(self.applied_generation).unwrap_or(i64::MAX);
            return Some((
                "applied_generation",
                g,
                0,
                i64::try_from(self.generation).unwrap_or(i64::MAX),
            ));
        }
        None
    }

    /// Config and infrastructure disagree: an apply is due.
    pub(crate) fn behind(&self) -> bool {
        self.applied_generation < self.generation
    }

    fn last_change(&self) -> Option<DateTime<Utc>> {
        self.last_up.max(self.last_down)
    }

    /// Seconds left in each cooldown at `now`: (up, down).
    pub(crate) fn cooldowns(&self, spec: &PoolSpec, now: DateTime<Utc>) -> (f64, f64) {
        // Checked: a cooldown is at most `duration::MAX`, but a record's times come from disk.
        let left = |since: Option<DateTime<Utc>>, d: Duration| {
            since.map_or(0.0, |t| {
                let d = chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
                let Some(end) = t.checked_add_signed(d) else { return f64::MAX };
                (end.signed_duration_since(now).num_milliseconds().max(0) as f64) / 1000.0
            })
        };
        (left(self.last_up, spec.cooldown_up), left(self.last_change(), spec.cooldown_down))
    }

    /// The value the strategy should start from at `now` (see the module docs).
    pub(crate) fn evaluation_base(&self, spec: &PoolSpec, now: DateTime<Utc>) -> i64 {
        if self.cooldowns(spec, now).0 > 0.0 {
            self.up_base.unwrap_or(self.desired)
        } else {
            self.desired
        }
    }
}

/// The outcome of one decision, for the audit log, the response and the status.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Decision {
    pub at: DateTime<Utc>,
    pub pool: String,
    /// `desired` before the decision.
    pub old: i64,
    /// What the strategy asked for, as an absolute value (None when it held).
    pub proposed: Option<i64>,
    /// The value after guardrails.
    pub clamped: i64,
    pub changed: bool,
    pub reason: String,
    pub guardrails: Vec<&'static str>,
    pub generation: u64,
    pub cooldown_up_remaining: f64,
    pub cooldown_down_remaining: f64,
    /// Composite pools: every key's value after this decision (the pool's own key included).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub vector: BTreeMap<String, i64>,
}

/// [`settle`] for a pool, composite or not: the pool's own value through the guardrails, then
/// each of its other `keys` — its expression of that value, or the strategy's `values` entry
/// (kept when absent) — clamped to the key's bounds. A change of any key is a change: one
/// generation for the whole vector, so it is applied, retried and converges as one.
#[allow(clippy::too_many_arguments, reason = "the decision's inputs, passed through")]
pub(crate) fn settle_pool(
    record: &mut Record,
    pool: &Pool,
    base: i64,
    proposal: &Proposal,
    values: &BTreeMap<String, i64>,
    now: DateTime<Utc>,
    commit: bool,
) -> Result<Decision, String> {
    if pool.keys.is_empty() {
        return Ok(settle(record, &pool.spec, base, proposal, now, commit));
    }
    // On a copy: an expression that fails leaves the record as it was.
    let before = record.clone();
    let mut next = record.clone();
    let original = record;
    let record = &mut next;
    let mut d = settle(record, &pool.spec, base, proposal, now, commit);
    let params = serde_json::Value::Object(pool.spec.params.clone());
    let mut also = BTreeMap::new();
    for k in &pool.keys {
        let raw = match (&k.expr, &k.spec.from) {
            (Some(e), _) => Some(e.eval(d.clamped, &params)?),
            (None, Some(from)) => {
                values.get(from).copied().or_else(|| before.also.get(&k.key).copied())
            }
            (None, None) => None,
        };
        if let Some(v) = raw {
            also.insert(k.key.clone(), v.clamp(k.spec.min, k.spec.max));
        }
    }
    let extra_changed = also != before.also;
    if extra_changed && !d.changed {
        d.changed = true;
        if commit {
            record.generation = record.generation.saturating_add(1);
            record.history.push(HistoryEntry {
                at: now,
                from: before.desired,
                to: d.clamped,
                reason: d.reason.clone(),
            });
            if record.history.len() > HISTORY {
                record.history.remove(0);
            }
            d.generation = record.generation;
        }
    }
    if commit {
        record.also = also.clone();
    }
    d.vector = also;
    d.vector.insert(pool.spec.key.clone(), d.clamped);
    *original = next;
    Ok(d)
}

/// Apply guardrails to a proposal and update the record. `base` is the value the strategy was
/// evaluated from ([`Record::evaluation_base`] at the same `now`). With `commit = false`
/// (dry runs) the record is left untouched.
pub(crate) fn settle(
    record: &mut Record,
    spec: &PoolSpec,
    base: i64,
    proposal: &Proposal,
    now: DateTime<Utc>,
    commit: bool,
) -> Decision {
    let old = record.desired;
    let (up_left, down_left) = record.cooldowns(spec, now);
    let mut guardrails = Vec::new();
    let (proposed, reason) = match proposal {
        Proposal::Hold => (None, "strategy held".to_string()),
        Proposal::Desired { value, reason } => (Some(*value), reason.clone()),
        Proposal::Delta { delta, reason } => (Some(base.saturating_add(*delta)), reason.clone()),
    };
    // Saturating throughout: the proposal comes from a script and may be anything.
    let mut target = proposed.unwrap_or(old);
    if proposed.is_some()
        && let Some(step) = spec.max_step
        && target.abs_diff(base) > step.unsigned_abs()
    {
        target = if target > base { base.saturating_add(step) } else { base.saturating_sub(step) };
        guardrails.push("max_step");
    }
    if target > spec.max {
        target = spec.max;
        guardrails.push("max");
    }
    if target < spec.min {
        target = spec.min;
        guardrails.push("min");
    }
    if target > old && up_left > 0.0 {
        guardrails.push("cooldown_up_difference");
    }
    if target < old && down_left > 0.0 {
        target = old;
        guardrails.push("cooldown_down");
    }
    if proposed.is_some() && target == old && up_left > 0.0 && proposed > Some(old) {
        guardrails.push("cooldown_up");
    }
    let changed = target != old;
    let mut decision = Decision {
        at: now,
        pool: record.pool.clone(),
        old,
        proposed,
        clamped: target,
        changed,
        reason,
        guardrails,
        generation: record.generation,
        cooldown_up_remaining: up_left,
        cooldown_down_remaining: down_left,
        vector: BTreeMap::new(),
    };
    if changed && commit {
        if target > old {
            if up_left <= 0.0 {
                record.up_base = Some(old);
            }
            record.last_up = Some(now);
        } else {
            record.up_base = None;
            record.last_down = Some(now);
        }
        record.desired = target;
        record.generation = record.generation.saturating_add(1);
        record.history.push(HistoryEntry {
            at: now,
            from: old,
            to: target,
            reason: decision.reason.clone(),
        });
        if record.history.len() > HISTORY {
            record.history.remove(0);
        }
        decision.generation = record.generation;
        let (u, d) = record.cooldowns(spec, now);
        decision.cooldown_up_remaining = u;
        decision.cooldown_down_remaining = d;
    }
    decision
}

/// The strategy's `ctx` argument.
pub(crate) fn context(
    name: &str,
    spec: &PoolSpec,
    current: i64,
    signals: &[Signal],
    record: &Record,
) -> serde_json::Value {
    serde_json::json!({
        "pool": {
            "name": name,
            "min": spec.min,
            "max": spec.max,
            "max_step": spec.max_step,
            "params": spec.params,
        },
        "current": current,
        "signals": signals.iter().map(|s| s.to_ctx(record.signals_seq)).collect::<Vec<_>>(),
        // The highest value of the open schedule windows: the built-ins keep at least this.
        "schedule_floor": signals
            .iter()
            .filter(|s| s.source == crate::autoscale::signal::SourceKind::Schedule)
            .filter_map(|s| s.value)
            .max(),
        "history": record.history.iter().map(|h| serde_json::json!({
            "at": h.at.timestamp(), "from": h.from, "to": h.to, "reason": h.reason,
        })).collect::<Vec<_>>(),
    })
}

/// The pool's `fallback`, when it is due at `now`: its sources (every accepted webhook, repeats
/// included; not `INSUFFICIENT_DATA`) have been silent for longer than `after`, counted from
/// the last one heard or from `start` (the server's start, the replay's start). The proposal
/// goes through the guardrails like any other. `None` while data flows, or once the pool runs
/// on its fallback (it is proposed once per silence).
pub(crate) fn fallback_due(
    spec: &PoolSpec,
    record: &Record,
    heard: Option<DateTime<Utc>>,
    start: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<Proposal> {
    let f = spec.fallback.as_ref()?;
    let last = heard.map_or(start, |h| h.max(start));
    let after = chrono::Duration::from_std(f.after).unwrap_or(chrono::Duration::MAX);
    let silent = now.signed_duration_since(last) > after;
    if !silent || record.fallback_since.is_some_and(|s| s >= last) {
        return None;
    }
    Some(Proposal::Desired {
        value: f.value,
        reason: format!("fallback: no data for {}", crate::duration::format(f.after)),
    })
}

/// Isolating the signal that breaks a strategy runs it once per signal; beyond this many
/// signals the decision is skipped instead.
const ISOLATE_AT_MOST: usize = 64;

/// What a decision starts from, taken from a pool's book and record.
#[derive(Debug)]
pub(crate) struct Taken {
    pub signals: Vec<Signal>,
    /// The sequence number the decision saw (recorded as `signals_seq` once it is recorded).
    pub seen: u64,
    pub record: Record,
    /// The value the strategy starts from ([`Record::evaluation_base`]).
    pub base: i64,
}

/// The first step of every decision, the server's and `simulate`'s alike (under the pool's
/// lock): open and close schedule windows (`on_schedule` hears each change first; `false`
/// leaves it for the next decision), then take the signals if there is anything to decide —
/// for a burst, a change no recorded decision saw (so a wake that arrived while the previous
/// decision ran is merged into it), for a tick, any signal (a still-firing level asks again).
/// `extra` signals (`/scale`, dry runs) always count as new. `None`: nothing to decide (a dry
/// run, `commit = false`, always decides).
#[allow(clippy::too_many_arguments, reason = "the decision's inputs, passed through")]
pub(crate) fn take(
    pool: &Pool,
    book: &mut Book,
    record: &Record,
    now: DateTime<Utc>,
    trigger: Trigger,
    extra: Vec<Signal>,
    commit: bool,
    on_schedule: &mut dyn FnMut(&Change) -> bool,
) -> Option<Taken> {
    let mut opened_or_closed = false;
    for change in schedule::changes(&pool.schedules, book, now) {
        if on_schedule(&change) {
            opened_or_closed = true;
            book.apply(0, change);
        }
    }
    let news = book.has_news(record.signals_seq) || opened_or_closed || !extra.is_empty();
    if trigger == Trigger::Signal && !news {
        return None;
    }
    let (mut signals, seen) = book.take(commit);
    signals.extend(extra);
    // A dry run asks what the strategy makes of the pool as it is, signals or not.
    if signals.is_empty() && commit {
        book.deciding = None;
        return None;
    }
    let base = record.evaluation_base(&pool.spec, now);
    Some(Taken { signals, seen, record: record.clone(), base })
}

/// What the strategy made of the signals, after setting aside the ones that break it.
#[derive(Debug)]
pub(crate) struct Proposed {
    pub proposal: Result<Proposal, String>,
    /// What a composite pool's `from` keys may take (the strategy's `values`).
    pub values: BTreeMap<String, i64>,
    /// The signals the proposal was made from.
    pub used: Vec<Signal>,
    /// Signals that made the strategy fail alone, and why (only when `isolate`).
    pub quarantined: Vec<Signal>,
    pub quarantine_reason: String,
}

/// The second step (no lock held; runs the strategy, so call it off the async workers): run
/// the strategy; when it fails on several signals and `isolate` is set, find the ones that
/// make it fail alone and decide on the rest. A strategy that also fails without any signal is
/// broken, not poisoned: nothing is set aside.
pub(crate) fn propose(strategy: &Strategy, pool: &Pool, taken: &Taken, isolate: bool) -> Proposed {
    let run = |signals: &[Signal]| {
        strategy.decide_values(&context(&pool.name, &pool.spec, taken.base, signals, &taken.record))
    };
    let signals = &taken.signals;
    let first = run(signals);
    let whole = |r: Result<(Proposal, BTreeMap<String, i64>), String>| Proposed {
        values: r.as_ref().map(|(_, v)| v.clone()).unwrap_or_default(),
        proposal: r.map(|(p, _)| p),
        used: signals.clone(),
        quarantined: Vec::new(),
        quarantine_reason: String::new(),
    };
    if first.is_ok() || !isolate || signals.len() > ISOLATE_AT_MOST || run(&[]).is_err() {
        return whole(first);
    }
    let mut good = Vec::new();
    let mut bad = Vec::new();
    let mut reason = String::new();
    for s in signals {
        match run(std::slice::from_ref(s)) {
            Ok(_) => good.push(s.clone()),
            Err(e) => {
                reason = e;
                bad.push(s.clone());
            }
        }
    }
    if bad.is_empty() {
        // Only the combination fails: nothing to single out.
        return Proposed { used: good, ..whole(first) };
    }
    let rest = run(&good);
    Proposed {
        values: rest.as_ref().map(|(_, v)| v.clone()).unwrap_or_default(),
        proposal: rest.map(|(p, _)| p),
        used: good,
        quarantined: bad,
        quarantine_reason: format!("strategy `{}` failed on it: {reason}", strategy.name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> PoolSpec {
        serde_yaml::from_str(
            "project: p\nstack: s\nkey: p:k\ntargets: [urn:pulumi:x]\nmin: 1\nmax: 10\nmax_step: 3\ncooldown_up: 60s\ncooldown_down: 300s\n",
        )
        .expect("spec")
    }

    fn delta(d: i64) -> Proposal {
        Proposal::Delta { delta: d, reason: "t".into() }
    }

    #[test]
    fn clamps_step_and_bounds() {
        let s = spec();
        let now = Utc::now();
        let mut r = Record::new("p", 5);
        let d = settle(&mut r, &s, 5, &delta(100), now, true);
        assert_eq!(d.clamped, 8);
        assert_eq!(d.guardrails, vec!["max_step"]);
        assert_eq!(r.generation, 1);
        let mut r = Record::new("p", 9);
        let d = settle(&mut r, &s, 9, &delta(3), now, true);
        assert_eq!((d.clamped, d.guardrails.clone()), (10, vec!["max"]));
        let mut r = Record::new("p", 2);
        let d = settle(&mut r, &s, 2, &delta(-3), now, true);
        assert_eq!(d.clamped, 1);
    }

    #[test]
    fn up_cooldown_allows_only_a_larger_step_by_the_difference() {
        let s = spec();
        let t0 = Utc::now();
        let mut r = Record::new("p", 5);
        let b = r.evaluation_base(&s, t0);
        settle(&mut r, &s, b, &delta(2), t0, true);
        assert_eq!(r.desired, 7);
        let t1 = t0 + chrono::Duration::seconds(10);
        let base = r.evaluation_base(&s, t1);
        assert_eq!(base, 5);
        let d = settle(&mut r, &s, base, &delta(2), t1, true);
        assert!(!d.changed);
        let d = settle(&mut r, &s, base, &delta(3), t1, true);
        assert_eq!(d.clamped, 8);
        assert_eq!(r.desired, 8);
        // After the cooldown, a still-firing alarm steps again from the new value.
        let t2 = t1 + chrono::Duration::seconds(61);
        assert_eq!(r.evaluation_base(&s, t2), 8);
    }

    #[test]
    fn scale_down_waits_for_its_cooldown() {
        let s = spec();
        let t0 = Utc::now();
        let mut r = Record::new("p", 5);
        settle(&mut r, &s, 5, &delta(1), t0, true);
        let t1 = t0 + chrono::Duration::seconds(100);
        let b = r.evaluation_base(&s, t1);
        let d = settle(&mut r, &s, b, &delta(-2), t1, true);
        assert!(!d.changed);
        assert_eq!(d.guardrails, vec!["cooldown_down"]);
        let t2 = t0 + chrono::Duration::seconds(301);
        let b = r.evaluation_base(&s, t2);
        let d = settle(&mut r, &s, b, &delta(-2), t2, true);
        assert_eq!(d.clamped, 4);
    }

    #[test]
    fn dry_run_does_not_touch_the_record() {
        let s = spec();
        let mut r = Record::new("p", 5);
        let before = r.clone();
        let d = settle(&mut r, &s, 5, &delta(1), Utc::now(), false);
        assert_eq!(d.clamped, 6);
        assert_eq!(r, before);
    }

    #[test]
    fn extreme_proposals_saturate_instead_of_overflowing() {
        let s = spec();
        let now = Utc::now();
        for p in [
            delta(i64::MAX),
            delta(i64::MIN),
            Proposal::Desired { value: i64::MIN, reason: "x".into() },
            Proposal::Desired { value: i64::MAX, reason: "x".into() },
        ] {
            let mut r = Record::new("p", 5);
            let d = settle(&mut r, &s, 5, &p, now, true);
            assert!((1..=10).contains(&d.clamped), "{p:?} gave {}", d.clamped);
        }
    }

    #[test]
    fn records_out_of_bounds_are_named() {
        let s = spec();
        let mut r = Record::new("p", 5);
        assert_eq!(r.out_of_bounds(&s), None);
        r.desired = 99_999;
        assert_eq!(r.out_of_bounds(&s), Some(("desired", 99_999, 1, 10)));
        r.desired = 5;
        r.applied = Some(-5);
        assert_eq!(r.out_of_bounds(&s).map(|b| b.0), Some("applied"));
    }
}
