//! `pilum scale simulate`: replay a JSONL file of signals through the pools' strategies and
//! guardrails on a virtual clock, offline, with no Pulumi calls. The decisions printed are the
//! ones the server would make for the same signals at the same times.
//!
//! One event per line: `{"at": 0, "pool": "web", "alarm": "HighCPU", "state": "ALARM",
//! "action": "up", "step": 2}` (levels: `ALARM`/`firing` raise, `OK`/`resolved` clear),
//! `{"at": 30, "pool": "web", "delta": -1}` or `{"at": 60, "pool": "web", "count": 4}`. Alarms
//! may carry `metric` and `threshold` for the `target-tracking` and `step` strategies.
//!
//! The virtual clock starts at `clock` (`--start`), so pools' `schedules:` open and close as
//! they would on the server: evaluated whenever a pool decides (on its events and ticks).

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::autoscale::decide::{self, Decision, Record};
use crate::autoscale::pool::{Action, Pools};
use crate::autoscale::schedule;
use crate::autoscale::signal::{Book, Change, Kind, MAX_MAGNITUDE, Signal, SourceKind};
use crate::autoscale::strategy::Strategy;

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

/// One simulated decision with the virtual time it happened at.
#[derive(Debug, serde::Serialize)]
pub struct SimDecision {
    /// Seconds since the start of the replay.
    #[serde(rename = "t")]
    pub at: f64,
    #[serde(flatten)]
    pub decision: Decision,
}

/// Replay `file`; `start` gives initial values per pool (default: the pool's `min`); `clock` is
/// the wall-clock time of `at: 0`; `tick` is how often pools re-decide between events, until
/// `until` seconds (default: one tick after the last event).
pub fn run(
    pools: &Pools,
    strategies: &std::collections::HashMap<String, Strategy>,
    file: &Path,
    start: &BTreeMap<String, i64>,
    clock: DateTime<Utc>,
    tick: f64,
    until: Option<f64>,
) -> Result<Vec<SimDecision>, String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read `{}`: {e}", file.display()))?;
    let mut events = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let ev: Event = serde_json::from_str(line).map_err(|e| {
            format!(
                "{}:{}: invalid event: {e}\nhelp: see `pilum scale simulate --help` for the format",
                file.display(),
                i + 1
            )
        })?;
        if pools.get(&ev.pool).is_none() {
            return Err(format!("{}:{}: unknown pool `{}`", file.display(), i + 1, ev.pool));
        }
        if !(ev.at.is_finite() && (0.0..=MAX_SECONDS).contains(&ev.at)) {
            return Err(format!(
                "{}:{}: `at` must be between 0 and {MAX_SECONDS} seconds, got {}",
                file.display(),
                i + 1,
                ev.at
            ));
        }
        events.push((i + 1, ev));
    }
    let horizon = until.unwrap_or(0.0).max(events.last().map_or(0.0, |e| e.1.at));
    if horizon / tick > MAX_TICKS {
        return Err(format!(
            "the replay would take {:.0} ticks (more than {MAX_TICKS:.0})\nhelp: use a longer `--tick` or a shorter `--until`",
            horizon / tick
        ));
    }
    events.sort_by(|a, b| a.1.at.total_cmp(&b.1.at));
    let at = |s: f64| clock + chrono::Duration::milliseconds((s * 1000.0) as i64);
    let mut records: BTreeMap<String, Record> = pools
        .pools
        .iter()
        .map(|p| (p.name.clone(), Record::new(&p.name, *start.get(&p.name).unwrap_or(&p.spec.min))))
        .collect();
    let mut books: BTreeMap<String, Book> = BTreeMap::new();
    let mut out = Vec::new();
    let end = until.unwrap_or_else(|| events.last().map_or(0.0, |e| e.1.at) + tick);
    let mut next_tick = tick;
    let mut idx = 0;
    loop {
        let next_event = events.get(idx).map(|e| e.1.at);
        let now_s = match next_event {
            Some(t) if t <= next_tick => t,
            _ if next_tick <= end => next_tick,
            _ => break,
        };
        let mut touched = Vec::new();
        while let Some((line, ev)) = events.get(idx).filter(|e| e.1.at == now_s) {
            let change = to_change(ev, at(now_s))
                .and_then(|c| c.check_bounds().map(|()| c).map_err(|e| e.to_string()))
                .map_err(|m| format!("{}:{line}: {m}", file.display()))?;
            books.entry(ev.pool.clone()).or_default().apply(change);
            touched.push(ev.pool.clone());
            idx += 1;
        }
        if now_s == next_tick {
            next_tick += tick;
            touched = pools.names().map(str::to_string).collect();
        }
        touched.sort();
        touched.dedup();
        for name in touched {
            let pool = pools.get(&name).expect("pool checked above");
            let book = books.entry(name.clone()).or_default();
            for change in schedule::changes(&pool.schedules, book, at(now_s)) {
                book.apply(change);
            }
            let (signals, seq) = book.take(true);
            book.consume(seq);
            if signals.is_empty() {
                continue;
            }
            let record = records.get_mut(&name).expect("record per pool");
            let now = at(now_s);
            let base = record.evaluation_base(&pool.spec, now);
            let ctx = decide::context(&name, &pool.spec, base, &signals, record);
            let strategy =
                strategies.get(&name).ok_or_else(|| format!("pool `{name}` has no strategy"))?;
            match strategy.decide(&ctx) {
                Ok(p) => {
                    let d = decide::settle(record, &pool.spec, base, &p, now, true);
                    if d.changed || !d.guardrails.is_empty() {
                        out.push(SimDecision { at: now_s, decision: d });
                    }
                }
                Err(e) => {
                    return Err(format!(
                        "pool `{name}` at {now_s}s: strategy `{}` failed: {e}",
                        strategy.name
                    ));
                }
            }
        }
    }
    Ok(out)
}

fn to_change(ev: &Event, now: DateTime<Utc>) -> Result<Change, String> {
    let mk = |kind, source, name: &str, key: String, action, step, value| {
        Signal::new(kind, source, name, key, action, step, value, now)
    };
    if let Some(d) = ev.delta {
        crate::autoscale::signal::bounded("delta", d, -MAX_MAGNITUDE, MAX_MAGNITUDE)
            .map_err(|e| e.to_string())?;
        let action = if d >= 0 { Action::Up } else { Action::Down };
        return Ok(Change::Intent(mk(
            Kind::Intent,
            SourceKind::Delta,
            "delta",
            String::new(),
            action,
            d.abs(),
            None,
        )));
    }
    if let Some(n) = ev.count {
        return Ok(Change::Intent(mk(
            Kind::Intent,
            SourceKind::Count,
            "count",
            String::new(),
            Action::Set,
            0,
            Some(n),
        )));
    }
    let alarm =
        ev.alarm.as_deref().ok_or("an event needs `alarm` + `state`, `delta` or `count`")?;
    let key = format!("sim:{alarm}");
    match ev.state.as_deref().unwrap_or("ALARM") {
        "ALARM" | "firing" => {
            let action = ev
                .action
                .as_deref()
                .and_then(Action::parse)
                .ok_or_else(|| format!("alarm `{alarm}` needs `action` (up, down or set)"))?;
            let mut s = mk(
                Kind::Level,
                SourceKind::Cloudwatch,
                alarm,
                key,
                action,
                ev.step.unwrap_or(0),
                ev.value,
            );
            s.metric = ev.metric;
            s.threshold = ev.threshold;
            Ok(Change::Raise(s))
        }
        "OK" | "resolved" => Ok(Change::Clear { key, then: None }),
        other => Err(format!("unknown state `{other}` (use ALARM/OK or firing/resolved)")),
    }
}
