//! `pilum scale simulate`: replay a JSONL file of signals through the pools offline, on a
//! virtual clock, with no Pulumi calls. It runs the server's own code: events go through the
//! same adapters as webhooks (so a pool's `alarms:` mapping and `on_ok` apply, and an input the
//! strategy ignores is refused as the server answers 422), decisions come when the shared
//! [`Cadence`] says (a burst is one decision after `--debounce`; ticks re-decide with the
//! active levels), and each decision is the server's `take` → `propose` → `settle`.
//!
//! One event per line: `{"at": 0, "pool": "web", "alarm": "HighCPU", "state": "ALARM",
//! "action": "up", "step": 2}` (CloudWatch states `ALARM`, `OK`, `INSUFFICIENT_DATA`, or
//! Alertmanager's `firing`/`resolved`), `{"at": 30, "pool": "web", "delta": -1}` or
//! `{"at": 60, "pool": "web", "count": 4}`. Alarms may carry `metric` and `threshold`; without
//! `action` the pool's `alarms:` mapping gives the direction, as on the server.
//!
//! The virtual clock starts at `clock` (`--start`), so pools' `schedules:` open and close as
//! they would on the server.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::autoscale::adapters::{self, AlarmOutcome, Refused};
use crate::autoscale::cadence::{Cadence, Virtual};
use crate::autoscale::decide::{self, Decision, Record};
use crate::autoscale::pool::{Pool, Pools};
use crate::autoscale::signal::{Book, Change, SourceKind};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Event {
    at: f64,
    pool: String,
    #[serde(default)]
    alarm: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    action: Option<String>,
    #[serde(default)]
    step: Option<i64>,
    #[serde(default)]
    value: Option<i64>,
    #[serde(default)]
    delta: Option<i64>,
    #[serde(default)]
    count: Option<i64>,
    #[serde(default)]
    metric: Option<f64>,
    #[serde(default)]
    threshold: Option<f64>,
}

/// The latest event time accepted (the longest duration pilum accepts anywhere).
const MAX_SECONDS: f64 = 366.0 * 86_400.0;

/// The most ticks one replay may run: bounded work whatever the flags say.
const MAX_TICKS: f64 = 1e6;

/// One line of the replay's output, at its virtual time.
#[derive(Debug, serde::Serialize)]
#[serde(untagged)]
pub(crate) enum SimEvent {
    /// A decision that changed the value or was held back by a guardrail.
    Decision {
        /// Seconds since the start of the replay.
        t: f64,
        #[serde(flatten)]
        decision: Decision,
    },
    /// An event the server would refuse (4xx): shown, not dropped.
    Rejected { t: f64, pool: String, line: usize, rejected: String },
    /// A decision skipped because the strategy failed (as the server skips it).
    Failed { t: f64, pool: String, error: String },
}

/// The replay's settings.
#[derive(Debug, Clone)]
pub(crate) struct Replay {
    /// Wall-clock time of `at: 0`.
    pub clock: DateTime<Utc>,
    pub tick: Duration,
    pub debounce: Duration,
    /// Replay until this long after the start (default: one tick after the last event).
    pub until: Option<Duration>,
}

struct Sim<'a> {
    pool: &'a Pool,
    book: Book,
    record: Record,
    cadence: Cadence<Virtual>,
}

/// Replay `file`; `start` gives initial values per pool (default: the pool's `min`).
pub(crate) fn run(
    pools: &Pools,
    file: &Path,
    start: &BTreeMap<String, i64>,
    replay: &Replay,
) -> Result<Vec<SimEvent>, String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read `{}`: {e}", file.display()))?;
    let mut events = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let at = |m: String| format!("{}:{}: {m}", file.display(), i + 1);
        let ev: Event = serde_json::from_str(line).map_err(|e| {
            at(format!(
                "invalid event: {e}\nhelp: see `pilum scale simulate --help` for the format"
            ))
        })?;
        if pools.get(&ev.pool).is_none() {
            return Err(at(format!("unknown pool `{}`", ev.pool)));
        }
        if !(ev.at.is_finite() && (0.0..=MAX_SECONDS).contains(&ev.at)) {
            return Err(at(format!(
                "`at` must be between 0 and {MAX_SECONDS} seconds, got {}",
                ev.at
            )));
        }
        events.push((i + 1, ev));
    }
    events.sort_by(|a, b| a.1.at.total_cmp(&b.1.at));
    let tick = replay.tick.as_secs_f64().max(0.001);
    let last = events.last().map_or(0.0, |e| e.1.at);
    let end = replay.until.map_or(last + tick, |u| u.as_secs_f64().max(last));
    if end / tick > MAX_TICKS {
        return Err(format!(
            "the replay would take {:.0} ticks (more than {MAX_TICKS:.0})\nhelp: use a longer `--tick` or a shorter `--until`",
            end / tick
        ));
    }
    let secs = |t: Virtual| t.0.as_secs_f64();
    let virt = |s: f64| Virtual(Duration::from_secs_f64(s));
    let wall = |t: Virtual| {
        replay.clock + chrono::Duration::from_std(t.0).unwrap_or(chrono::Duration::zero())
    };
    let mut sims: Vec<Sim<'_>> = pools
        .pools
        .iter()
        .map(|p| Sim {
            pool: p,
            book: Book::default(),
            record: Record::new(&p.name, *start.get(&p.name).unwrap_or(&p.spec.min)),
            cadence: Cadence::new(Virtual::default(), replay.debounce, replay.tick),
        })
        .collect();
    // As on the server, a window open at the start is decided at once.
    for sim in &mut sims {
        if !crate::autoscale::schedule::changes(&sim.pool.schedules, &sim.book, replay.clock)
            .is_empty()
        {
            sim.cadence.wake(Virtual::default());
        }
    }
    let end = virt(end);
    let mut out = Vec::new();
    let mut seq = 0u64;
    let mut idx = 0;
    loop {
        let next_event = events.get(idx).map(|e| virt(e.1.at));
        let next_due = sims.iter().map(|s| s.cadence.next()).min().unwrap_or(end);
        match next_event {
            Some(te) if te <= next_due => {
                while let Some((line, ev)) = events.get(idx).filter(|e| virt(e.1.at) == te) {
                    idx += 1;
                    let sim = sims.iter_mut().find(|s| s.pool.name == ev.pool).expect("checked");
                    match to_change(ev, *line, sim.pool, wall(te)) {
                        Ok(Some(change)) => {
                            seq += 1;
                            let mut change = change;
                            change.set_seq(seq);
                            sim.book.heard_at = Some(wall(te));
                            if sim.book.apply(seq, change) {
                                sim.cadence.wake(te);
                            }
                        }
                        Ok(None) => {}
                        Err(Refused(_, m)) => out.push(SimEvent::Rejected {
                            t: secs(te),
                            pool: ev.pool.clone(),
                            line: *line,
                            rejected: m,
                        }),
                    }
                }
            }
            _ if next_due <= end => {
                for sim in &mut sims {
                    let Some(trigger) = sim.cadence.due(next_due) else { continue };
                    if let Some(e) =
                        decide_one(sim, trigger, wall(next_due), secs(next_due), replay.clock)
                    {
                        sim.cadence.decided(next_due);
                        if let Some(e) = e {
                            out.push(e);
                        }
                    }
                }
            }
            _ => break,
        }
    }
    Ok(out)
}

/// One decision of a simulated pool, the server's steps in the server's order. `None`:
/// nothing to decide; `Some(None)`: decided, nothing worth printing.
fn decide_one(
    sim: &mut Sim<'_>,
    trigger: crate::autoscale::cadence::Trigger,
    now: DateTime<Utc>,
    t: f64,
    start: DateTime<Utc>,
) -> Option<Option<SimEvent>> {
    let pool = sim.pool;
    if trigger == crate::autoscale::cadence::Trigger::Tick
        && let Some(p) =
            decide::fallback_due(&pool.spec, &sim.record, sim.book.heard_at, start, now)
    {
        sim.record.fallback_since = Some(now);
        let base = sim.record.evaluation_base(&pool.spec, now);
        return Some(Some(
            match decide::settle_pool(
                &mut sim.record,
                pool,
                base,
                &p,
                &Default::default(),
                now,
                true,
            ) {
                Ok(d) => SimEvent::Decision { t, decision: d },
                Err(error) => SimEvent::Failed { t, pool: pool.name.clone(), error },
            },
        ));
    }
    let taken = decide::take(
        pool,
        &mut sim.book,
        &sim.record,
        now,
        trigger,
        Vec::new(),
        true,
        &mut |_| true,
    )?;
    let proposed = decide::propose(&pool.strategy, pool, &taken, true);
    for s in &proposed.quarantined {
        sim.book.levels.remove(&s.key);
        sim.book.intents.retain(|i| !(i.seq == s.seq && i.key == s.key));
    }
    sim.record.signals_seq = sim.record.signals_seq.max(taken.seen);
    sim.book.consume(taken.seen);
    match proposed.proposal {
        Ok(p) => match decide::settle_pool(
            &mut sim.record,
            pool,
            taken.base,
            &p,
            &proposed.values,
            now,
            true,
        ) {
            Ok(d) => {
                let shown = d.changed || !d.guardrails.is_empty();
                Some(shown.then_some(SimEvent::Decision { t, decision: d }))
            }
            Err(error) => Some(Some(SimEvent::Failed { t, pool: pool.name.clone(), error })),
        },
        Err(e) => Some(Some(SimEvent::Failed {
            t,
            pool: pool.name.clone(),
            error: format!("strategy `{}` failed: {e}", pool.strategy.name),
        })),
    }
}

/// An event as the server's adapters see the webhook it stands for. `Ok(None)`: recorded only
/// (`INSUFFICIENT_DATA`); `Err`: what the server would answer 4xx with.
fn to_change(
    ev: &Event,
    line: usize,
    pool: &Pool,
    now: DateTime<Utc>,
) -> Result<Option<Change>, Refused> {
    let key = format!("sim-{line}");
    let checked = |s: Option<crate::autoscale::signal::Signal>| {
        let s = s.ok_or_else(|| Refused(400, "no `delta` or `count`".into()))?;
        adapters::check_input(pool, adapters::input_of(&s))?;
        Ok(Some(Change::Intent(s)))
    };
    if ev.delta.is_some() {
        return checked(adapters::direct(SourceKind::Delta, &key, ev.delta, None)?);
    }
    if ev.count.is_some() {
        return checked(adapters::direct(SourceKind::Count, &key, None, ev.count)?);
    }
    let alarm = ev.alarm.clone().ok_or_else(|| {
        Refused(400, "an event needs `alarm` + `state`, `delta` or `count`".into())
    })?;
    adapters::check_input(pool, crate::autoscale::strategy::Input::Alarms)?;
    let mut query = HashMap::new();
    for (k, v) in [
        ("action", ev.action.clone()),
        ("step", ev.step.map(|n| n.to_string())),
        ("value", ev.value.map(|n| n.to_string())),
    ] {
        if let Some(v) = v {
            query.insert(k.to_string(), v);
        }
    }
    let directive = adapters::query_directive(&query)?;
    let state = ev.state.clone().unwrap_or_else(|| "ALARM".into());
    if state == "firing" || state == "resolved" {
        let mut annotations = HashMap::new();
        if let Some(m) = ev.metric {
            annotations.insert("value".into(), m.to_string());
        }
        if let Some(t) = ev.threshold {
            annotations.insert("threshold".into(), t.to_string());
        }
        let n = adapters::Notification {
            version: "4".into(),
            group_key: "simulate".into(),
            alerts: vec![adapters::Alert {
                status: state,
                labels: HashMap::from([("alertname".to_string(), alarm.clone())]),
                annotations,
                starts_at: Some(now.to_rfc3339()),
                fingerprint: format!("sim-{alarm}"),
            }],
        };
        return Ok(adapters::alertmanager(&n, directive, pool)?.into_iter().next());
    }
    let a = adapters::Alarm {
        alarm_name: alarm,
        alarm_description: None,
        new_state_value: state,
        new_state_reason: ev.metric.map(|m| format!("Threshold Crossed: [{m} (simulated)]")),
        state_change_time: Some(now.to_rfc3339()),
        trigger: Some(adapters::Trigger { threshold: ev.threshold }),
    };
    match adapters::cloudwatch(&a, directive, pool)? {
        AlarmOutcome::Change(c) => Ok(Some(c)),
        AlarmOutcome::RecordOnly(_) => Ok(None),
    }
}
