//! Adapters: turn verified webhook payloads into signal changes. Pure functions of the payload,
//! the query and the pool; they never choose a pool (the path does) and never invent a
//! direction — without one from the query, the alarm's description or the pool's mapping, the
//! payload is refused (422), never treated as "+1". Every number is bounded on the way in
//! (steps, values, metrics, thresholds): out of bounds is 422 with the limit named.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::autoscale::pool::{Action, Directive, Pool};
use crate::autoscale::signal::{
    Change, Kind, MAX_MAGNITUDE, Signal, SourceKind, bounded, bounded_metric,
};
use crate::autoscale::strategy::Input;

/// A metric or threshold from a payload: finite and bounded, or 422 naming the field.
fn metric(field: &'static str, value: Option<f64>) -> Result<Option<f64>, Refused> {
    value.map(|v| bounded_metric(field, v).map_err(|e| Refused(422, e.to_string()))).transpose()
}

/// A refused payload: HTTP status and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refused(pub u16, pub String);

/// `action`, `step`, `value` from the query string.
pub(crate) fn query_directive(q: &HashMap<String, String>) -> Result<Option<Directive>, Refused> {
    let Some(action) = q.get("action") else {
        if q.contains_key("step") || q.contains_key("value") {
            return Err(Refused(400, "`step`/`value` given without `action`".into()));
        }
        return Ok(None);
    };
    parse_directive(action, q.get("step").map(String::as_str), q.get("value").map(String::as_str))
        .map(Some)
}

fn parse_directive(
    action: &str,
    step: Option<&str>,
    value: Option<&str>,
) -> Result<Directive, Refused> {
    let bad = |m: String| Refused(400, m);
    let action = Action::parse(action)
        .ok_or_else(|| bad(format!("unknown action `{action}` (use up, down or set)")))?;
    let int = |name: &str, v: Option<&str>| -> Result<Option<i64>, Refused> {
        v.map(|s| {
            s.trim()
                .parse::<i64>()
                .map_err(|_| bad(format!("`{name}` must be an integer, got `{s}`")))
        })
        .transpose()
    };
    let d = Directive { action, step: int("step", step)?, value: int("value", value)? };
    // Complete but out of bounds (or missing a part) is a well-formed request refused: 422.
    d.validate().map_err(|m| Refused(422, m))?;
    Ok(d)
}

/// A `pilum: action=up step=2` directive inside free text (CloudWatch `AlarmDescription`).
pub(crate) fn text_directive(text: &str) -> Result<Option<Directive>, Refused> {
    let Some(idx) = text.find("pilum:") else { return Ok(None) };
    let mut kv = HashMap::new();
    for part in text[idx + "pilum:".len()..].split_whitespace() {
        match part.split_once('=') {
            Some((k, v)) if ["action", "step", "value"].contains(&k) => {
                kv.insert(k.to_string(), v.trim_end_matches([',', ';', '.']).to_string());
            }
            _ => break,
        }
    }
    let action = kv
        .get("action")
        .ok_or_else(|| Refused(422, "`pilum:` directive without `action=`".into()))?;
    parse_directive(action, kv.get("step").map(String::as_str), kv.get("value").map(String::as_str))
        .map(Some)
        .map_err(|Refused(_, m)| Refused(422, format!("invalid `pilum:` directive: {m}")))
}

/// A CloudWatch alarm state-change message (inside the SNS `Message`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Alarm {
    pub alarm_name: String,
    pub alarm_description: Option<String>,
    pub new_state_value: String,
    pub new_state_reason: Option<String>,
    pub state_change_time: Option<String>,
    pub trigger: Option<Trigger>,
}

/// The part of an alarm's `Trigger` pilum uses.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Trigger {
    pub threshold: Option<f64>,
}

/// What a CloudWatch notification means for the pool.
#[derive(Debug, Clone)]
pub(crate) enum AlarmOutcome {
    Change(Change),
    /// `INSUFFICIENT_DATA`, or `OK` for an alarm with nothing to clear: recorded only.
    RecordOnly(&'static str),
}

/// The first datapoint in `NewStateReason` (`… [91.5 (07/01/26 18:00:00)] …`).
fn datapoint(reason: &str) -> Option<f64> {
    let start = reason.find('[')? + 1;
    reason[start..].split_whitespace().next()?.trim_end_matches(',').parse().ok()
}

fn parse_time(text: Option<&str>) -> DateTime<Utc> {
    text.and_then(|t| {
        DateTime::parse_from_rfc3339(t)
            .or_else(|_| DateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.3f%z"))
            .ok()
    })
    .map_or_else(Utc::now, |t| t.with_timezone(&Utc))
}

fn signal(kind: Kind, source: SourceKind, name: &str, key: String, d: Directive) -> Signal {
    Signal::new(kind, source, name, key, d.action, d.step.unwrap_or(0), d.value, Utc::now())
}

/// Interpret an alarm: `ALARM` raises the level, `OK` clears it (then `on_ok`), anything else
/// is recorded only.
pub(crate) fn cloudwatch(
    alarm: &Alarm,
    query: Option<Directive>,
    pool: &Pool,
) -> Result<AlarmOutcome, Refused> {
    let key = format!("cloudwatch:{}", alarm.alarm_name);
    match alarm.new_state_value.as_str() {
        "ALARM" => {
            let directive = match query {
                Some(d) => d,
                None => match text_directive(alarm.alarm_description.as_deref().unwrap_or(""))? {
                    Some(d) => d,
                    None => pool.spec.alarms.get(&alarm.alarm_name).copied().ok_or_else(|| {
                        Refused(
                            422,
                            format!(
                                "alarm `{}` has no direction: add `?action=up&step=1` to the subscription URL, \
                                 `pilum: action=up step=1` to the alarm description, or an `alarms:` mapping to pool `{}`",
                                alarm.alarm_name, pool.name
                            ),
                        )
                    })?,
                },
            };
            let mut s =
                signal(Kind::Level, SourceKind::Cloudwatch, &alarm.alarm_name, key, directive);
            s.metric =
                metric("NewStateReason", alarm.new_state_reason.as_deref().and_then(datapoint))?;
            s.threshold =
                metric("Trigger.Threshold", alarm.trigger.as_ref().and_then(|t| t.threshold))?;
            s.since = parse_time(alarm.state_change_time.as_deref());
            Ok(AlarmOutcome::Change(Change::Raise(s)))
        }
        "OK" => {
            let then = pool.spec.on_ok.map(|d| {
                signal(
                    Kind::Intent,
                    SourceKind::Cloudwatch,
                    &alarm.alarm_name,
                    format!("{key}:ok"),
                    d,
                )
            });
            Ok(AlarmOutcome::Change(Change::Clear { key, then }))
        }
        "INSUFFICIENT_DATA" => Ok(AlarmOutcome::RecordOnly("insufficient_data")),
        other => Err(Refused(400, format!("unknown alarm state `{other}`"))),
    }
}

/// An Alertmanager webhook notification (payload version 4).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Notification {
    pub version: String,
    #[serde(default)]
    pub group_key: String,
    pub alerts: Vec<Alert>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Alert {
    pub status: String,
    #[serde(default)]
    pub labels: HashMap<String, String>,
    #[serde(default)]
    pub annotations: HashMap<String, String>,
    pub starts_at: Option<String>,
    #[serde(default)]
    pub fingerprint: String,
}

/// Interpret a notification: each alert is a level keyed by its fingerprint. The pool comes
/// from the path; an alert whose `pool` label names another pool rejects the whole payload.
pub(crate) fn alertmanager(
    n: &Notification,
    query: Option<Directive>,
    pool: &Pool,
) -> Result<Vec<Change>, Refused> {
    if n.version != "4" {
        return Err(Refused(
            400,
            format!("unsupported Alertmanager payload version `{}` (expected `4`)", n.version),
        ));
    }
    let mut out = Vec::new();
    for a in &n.alerts {
        if let Some(label) = a.labels.get("pool")
            && label != &pool.name
        {
            return Err(Refused(
                409,
                format!(
                    "alert has `pool` label `{label}` but was sent to pool `{}`; the path decides the pool",
                    pool.name
                ),
            ));
        }
        let name = a.labels.get("alertname").cloned().unwrap_or_else(|| "alert".into());
        let fp = if a.fingerprint.is_empty() {
            let mut labels: Vec<_> = a.labels.iter().collect();
            labels.sort();
            format!("{labels:?}")
        } else {
            a.fingerprint.clone()
        };
        let key = format!("prometheus:{fp}");
        match a.status.as_str() {
            "firing" => {
                let from_annotations = match a.annotations.get("pilum_action") {
                    Some(action) => Some(
                        parse_directive(
                            action,
                            a.annotations.get("pilum_step").map(String::as_str),
                            a.annotations.get("pilum_value").map(String::as_str),
                        )
                        .map_err(|Refused(_, m)| Refused(422, format!("alert `{name}`: {m}")))?,
                    ),
                    None => None,
                };
                let d = from_annotations.or(query).or_else(|| pool.spec.alarms.get(&name).copied()).ok_or_else(|| {
                    Refused(
                        422,
                        format!(
                            "alert `{name}` has no direction: add `pilum_action`/`pilum_step` annotations, \
                             `?action=up&step=1` to the receiver URL, or an `alarms:` mapping to pool `{}`",
                            pool.name
                        ),
                    )
                })?;
                let mut s = signal(Kind::Level, SourceKind::Prometheus, &name, key, d);
                // Unparsable text (a templated `91.5%`) is ignored; a number must be bounded.
                s.metric =
                    metric("value", a.annotations.get("value").and_then(|v| v.parse().ok()))?;
                s.threshold = metric(
                    "threshold",
                    a.annotations.get("threshold").and_then(|v| v.parse().ok()),
                )?;
                s.since = parse_time(a.starts_at.as_deref());
                out.push(Change::Raise(s));
            }
            "resolved" => out.push(Change::Clear { key, then: None }),
            other => return Err(Refused(400, format!("unknown alert status `{other}`"))),
        }
    }
    Ok(out)
}

/// The intent of a direct call (`/delta`, `/count`, `/scale`): `delta` between -1,000,000 and
/// 1,000,000 and not 0 (a request for no change is refused, not ignored), `value` between 0
/// and 1,000,000 (a negative count is refused, not clamped; above the pool's `max` it is
/// clamped by the guardrails like any proposal). `None` when neither is given.
pub(crate) fn direct(
    source: SourceKind,
    key: &str,
    delta: Option<i64>,
    value: Option<i64>,
) -> Result<Option<Signal>, Refused> {
    let refuse = |e: crate::autoscale::signal::OutOfBounds| Refused(422, e.to_string());
    let intent = |action, step, value| {
        Signal::new(
            Kind::Intent,
            source,
            source.as_str(),
            key.to_string(),
            action,
            step,
            value,
            Utc::now(),
        )
    };
    if let Some(d) = delta {
        bounded("delta", d, -MAX_MAGNITUDE, MAX_MAGNITUDE).map_err(refuse)?;
        if d == 0 {
            return Err(Refused(422, "`delta` must not be 0".into()));
        }
        let action = if d > 0 { Action::Up } else { Action::Down };
        return Ok(Some(intent(action, d.abs(), None)));
    }
    if let Some(n) = value {
        bounded("value", n, 0, MAX_MAGNITUDE).map_err(refuse)?;
        return Ok(Some(intent(Action::Set, 0, Some(n))));
    }
    Ok(None)
}

/// The input kind a signal is (what its pool's strategy must accept).
pub(crate) fn input_of(s: &Signal) -> Input {
    match s.source {
        SourceKind::Cloudwatch | SourceKind::Prometheus => match s.kind {
            // `on_ok` intents ride on an alarm.
            Kind::Level | Kind::Intent => Input::Alarms,
        },
        SourceKind::Schedule => Input::Schedules,
        SourceKind::Fallback => Input::Count,
        SourceKind::Delta | SourceKind::Count | SourceKind::Direct => {
            if s.action == Action::Set {
                Input::Count
            } else {
                Input::Delta
            }
        }
    }
}

/// Refuse an input the pool's strategy ignores: 422 naming the strategy and what it takes.
pub(crate) fn check_input(pool: &Pool, input: Input) -> Result<(), Refused> {
    if pool.strategy.accepts(input) {
        return Ok(());
    }
    Err(Refused(
        422,
        format!(
            "pool `{}` uses strategy `{}`, which ignores {}; it acts on: {}",
            pool.name,
            pool.strategy.name,
            input.route(),
            pool.strategy.describe_inputs()
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool() -> Pool {
        let src = "pools:\n  worker-pool:\n    project: p\n    stack: s\n    key: p:k\n    targets: [urn:pulumi:x]\n    min: 1\n    max: 9\n    alarms:\n      Mapped: { action: down, step: 1 }\n";
        crate::autoscale::pool::parse(std::path::Path::new("/x/p.yaml"), src)
            .expect("pools")
            .pools
            .remove(0)
    }

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR")))
            .expect("fixture")
    }

    #[test]
    fn description_directive_and_datapoint() {
        let alarm: Alarm =
            serde_json::from_str(&fixture("cloudwatch-alarm-message.json")).expect("alarm");
        let AlarmOutcome::Change(Change::Raise(s)) = cloudwatch(&alarm, None, &pool()).expect("ok")
        else {
            panic!("expected a raise")
        };
        assert_eq!((s.action, s.step, s.metric), (Action::Up, 2, Some(91.5)));
        assert_eq!(s.threshold, Some(80.0));
        let q = Directive { action: Action::Down, step: Some(2), value: None };
        let AlarmOutcome::Change(Change::Raise(s)) =
            cloudwatch(&alarm, Some(q), &pool()).expect("ok")
        else {
            panic!("expected a raise")
        };
        assert_eq!((s.action, s.step), (Action::Down, 2));
    }

    #[test]
    fn no_direction_is_422_never_plus_one() {
        let mut alarm: Alarm =
            serde_json::from_str(&fixture("cloudwatch-alarm-message.json")).expect("alarm");
        alarm.alarm_description = None;
        assert_eq!(cloudwatch(&alarm, None, &pool()).unwrap_err().0, 422);
        alarm.alarm_name = "Mapped".into();
        assert!(cloudwatch(&alarm, None, &pool()).is_ok());
    }

    #[test]
    fn alertmanager_levels_and_pool_label() {
        let n: Notification =
            serde_json::from_str(&fixture("alertmanager-v4-firing.json")).expect("n");
        let q = Some(Directive { action: Action::Up, step: Some(1), value: None });
        let changes = alertmanager(&n, q, &pool()).expect("ok");
        assert_eq!(changes.len(), 2);
        assert_eq!(alertmanager(&n, None, &pool()).unwrap_err().0, 422);
        let mut other = n.clone();
        other.alerts[0].labels.insert("pool".into(), "other".into());
        assert_eq!(alertmanager(&other, q, &pool()).unwrap_err().0, 409);
        let r: Notification =
            serde_json::from_str(&fixture("alertmanager-v4-resolved.json")).expect("n");
        assert!(
            alertmanager(&r, None, &pool())
                .expect("ok")
                .iter()
                .all(|c| matches!(c, Change::Clear { .. }))
        );
    }

    #[test]
    fn ok_clears_and_runs_on_ok_only_when_configured() {
        let mut alarm: Alarm =
            serde_json::from_str(&fixture("cloudwatch-alarm-message.json")).expect("alarm");
        alarm.new_state_value = "OK".into();
        let mut p = pool();
        let AlarmOutcome::Change(Change::Clear { key, then }) =
            cloudwatch(&alarm, None, &p).expect("ok")
        else {
            panic!("expected a clear")
        };
        assert_eq!((key.as_str(), then.is_none()), ("cloudwatch:HighCPU", true));
        p.spec.on_ok = Some(Directive { action: Action::Down, step: Some(1), value: None });
        let AlarmOutcome::Change(Change::Clear { then: Some(t), .. }) =
            cloudwatch(&alarm, None, &p).expect("ok")
        else {
            panic!("expected a clear with on_ok")
        };
        assert_eq!((t.kind, t.action, t.step), (Kind::Intent, Action::Down, 1));
        alarm.new_state_value = "INSUFFICIENT_DATA".into();
        assert!(matches!(cloudwatch(&alarm, None, &p), Ok(AlarmOutcome::RecordOnly(_))));
    }

    #[test]
    fn text_directives() {
        let d = text_directive("High CPU. pilum: action=set value=7").expect("ok").expect("some");
        assert_eq!((d.action, d.value), (Action::Set, Some(7)));
        assert!(text_directive("nothing here").expect("ok").is_none());
        assert_eq!(text_directive("pilum: action=sideways").unwrap_err().0, 422);
    }

    #[test]
    fn numbers_out_of_bounds_are_422_with_the_limit() {
        let n: Notification =
            serde_json::from_str(&fixture("alertmanager-v4-firing.json")).expect("n");
        let mut huge = n.clone();
        huge.alerts[0].labels.remove("pool");
        huge.alerts[0].annotations.insert("pilum_action".into(), "up".into());
        huge.alerts[0].annotations.insert("pilum_step".into(), "9223372036854775807".into());
        let e = alertmanager(&huge, None, &pool()).unwrap_err();
        assert_eq!(e.0, 422, "{e:?}");
        assert!(e.1.contains("between 1 and 1000000"), "{e:?}");
        let mut inf = n.clone();
        inf.alerts[0].labels.remove("pool");
        inf.alerts[0].annotations.insert("value".into(), "inf".into());
        let q = Some(Directive { action: Action::Up, step: Some(1), value: None });
        let e = alertmanager(&inf, q, &pool()).unwrap_err();
        assert!(e.1.contains("`value` must be a finite number"), "{e:?}");
        let mut alarm: Alarm =
            serde_json::from_str(&fixture("cloudwatch-alarm-message.json")).expect("alarm");
        alarm.new_state_reason = Some("Threshold Crossed: [1e999 (x)]".into());
        assert_eq!(cloudwatch(&alarm, None, &pool()).unwrap_err().0, 422);
        let e = parse_directive("up", Some("9223372036854775807"), None).unwrap_err();
        assert_eq!(e.0, 422);
        assert_eq!(parse_directive("set", None, Some("-5")).unwrap_err().0, 422);
    }

    /// The committed payloads that once got through (or could panic) are refused.
    #[test]
    fn the_corpus_is_refused() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/corpus/alertmanager");
        let q = Some(Directive { action: Action::Up, step: Some(1), value: None });
        for entry in std::fs::read_dir(&dir).expect("corpus dir") {
            let path = entry.expect("entry").path();
            let text = std::fs::read_to_string(&path).expect("corpus file");
            let refused = match serde_json::from_str::<Notification>(&text) {
                Err(e) => e.line() > 0,
                Ok(n) => alertmanager(&n, q, &pool()).is_err_and(|r| (400..500).contains(&r.0)),
            };
            assert!(refused, "{} was not refused", path.display());
        }
    }

    mod props {
        use proptest::prelude::*;

        use crate::autoscale::adapters::{
            Alarm, AlarmOutcome, Notification, alertmanager, cloudwatch,
        };
        use crate::autoscale::pool::{Action, Directive};

        /// Number-like text, from the ordinary to the hostile.
        fn number() -> impl Strategy<Value = String> {
            prop_oneof![
                any::<i64>().prop_map(|n| n.to_string()),
                any::<f64>().prop_map(|f| f.to_string()),
                Just("inf".to_string()),
                Just("NaN".to_string()),
                Just("1e999".to_string()),
                Just("-0".to_string()),
                "[0-9.eE+-]{0,12}",
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

            /// Whatever the annotations and query say, an Alertmanager payload is refused with
            /// a 4xx and a message, or becomes changes whose numbers are all in bounds.
            #[test]
            fn alertmanager_payloads_are_bounded_or_refused(
                action in prop_oneof![Just("up"), Just("down"), Just("set"), Just("sideways")],
                step in number(),
                value in number(),
                metric in number(),
                status in prop_oneof![Just("firing"), Just("resolved"), Just("odd")],
                query_step in proptest::option::of(any::<i64>()),
            ) {
                let payload = serde_json::json!({
                    "version": "4", "groupKey": "g",
                    "alerts": [{"status": status, "labels": {"alertname": "High"}, "fingerprint": "f",
                                "annotations": {"pilum_action": action, "pilum_step": step, "pilum_value": value, "value": metric, "threshold": metric}}]
                });
                let n: Notification = serde_json::from_value(payload).expect("well-formed");
                let q = query_step.map(|s| Directive { action: Action::Up, step: Some(s), value: None });
                match alertmanager(&n, q, &super::pool()) {
                    Ok(changes) => {
                        for c in changes {
                            prop_assert!(c.check_bounds().is_ok(), "{c:?}");
                        }
                    }
                    Err(r) => prop_assert!((400..500).contains(&r.0) && !r.1.is_empty(), "{r:?}"),
                }
            }

            /// The same for CloudWatch alarms: the datapoint, threshold and description
            /// directive are bounded or the alarm is refused.
            #[test]
            fn cloudwatch_alarms_are_bounded_or_refused(
                datapoint in number(),
                threshold in any::<f64>(),
                step in number(),
                state in prop_oneof![Just("ALARM"), Just("OK"), Just("INSUFFICIENT_DATA"), Just("odd")],
            ) {
                let alarm = Alarm {
                    alarm_name: "High".into(),
                    alarm_description: Some(format!("pilum: action=up step={step}")),
                    new_state_value: state.into(),
                    new_state_reason: Some(format!("Threshold Crossed: [{datapoint} (01/01/26 00:00:00)]")),
                    state_change_time: Some("2026-01-01T00:00:00.000+0000".into()),
                    trigger: Some(super::Trigger { threshold: Some(threshold) }),
                };
                match cloudwatch(&alarm, None, &super::pool()) {
                    Ok(AlarmOutcome::Change(c)) => prop_assert!(c.check_bounds().is_ok(), "{c:?}"),
                    Ok(AlarmOutcome::RecordOnly(_)) => {}
                    Err(r) => prop_assert!((400..500).contains(&r.0) && !r.1.is_empty(), "{r:?}"),
                }
            }
        }
    }
}
