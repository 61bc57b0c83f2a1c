//! The scaler in production: one burst is one decision (server and `simulate` alike), a
//! restart does not step again, an unknown current value is never acted on, inputs a strategy
//! ignores are refused, and every error is JSON.

use super::*;

/// A pool that steps on every decision: no up-cooldown, one tick an hour.
fn eager(extra: &str) -> Test {
    let t = project(extra, 3);
    let yaml = std::fs::read_to_string(t.path().join("pilum-scale.yaml"))
        .expect("pools")
        .replace("cooldown_up: 1h", "cooldown_up: 0");
    t.file("pilum-scale.yaml", &yaml)
}

/// The decisions in the audit log that changed the value, as (old, new).
fn changes(t: &Test) -> Vec<(i64, i64)> {
    audit(t, "decision")
        .iter()
        .filter(|d| d["changed"] == true)
        .map(|d| (d["old"].as_i64().unwrap_or(-1), d["clamped"].as_i64().unwrap_or(-1)))
        .collect()
}

#[test]
fn one_burst_of_alerts_is_one_decision_even_without_an_up_cooldown() {
    let t = eager("");
    let server = serve(&t, &["--debounce", "300ms", "--tick", "1h"]);
    let alert = alert_without_pool();
    // One notification with two alerts of one alarm, then the same again 50 ms later.
    for _ in 0..2 {
        let r = server.post("/webhook/workers/prometheus?action=up&step=1", &alert);
        assert_eq!(r.status, 202, "{}", r.body);
        std::thread::sleep(Duration::from_millis(50));
    }
    server.wait_pool("applied 4", |p| p["applied"] == 4);
    // Resolve the alerts, then a delta: had the burst stepped twice, the delta would go 5 → 6.
    resolve_then_delta(&server);
    assert_eq!(changes(&t), vec![(3, 4), (4, 5)], "{:#?}", audit(&t, "decision"));
}

/// Clear both alerts of the fixture, then `/delta` +1 and wait for it to be applied.
fn resolve_then_delta(server: &Server) {
    let resolved = alert_without_pool().replace("\"firing\"", "\"resolved\"");
    let r = server.post("/webhook/workers/prometheus?action=up&step=1", &resolved);
    assert_eq!(r.status, 202, "{}", r.body);
    server.wait_pool("the alerts cleared", |p| p["signals"].as_array().is_some_and(Vec::is_empty));
    assert_eq!(server.post("/webhook/workers/delta", r#"{"delta": 1}"#).status, 202);
    server.wait_pool("the delta applied", |p| p["applied"] != 4 && p["applied"] == p["desired"]);
}

#[test]
fn a_restart_does_not_step_again_on_a_level_already_decided() {
    let t = eager("");
    {
        let mut server = serve(&t, &["--tick", "1h"]);
        let r = server.post("/webhook/workers/prometheus?action=up&step=1", &alert_without_pool());
        assert_eq!(r.status, 202, "{}", r.body);
        server.wait_pool("applied 4", |p| p["applied"] == 4);
        server.terminate();
        assert_eq!(server.wait_exit(20), 0);
    }
    let server = serve(&t, &["--tick", "1h"]);
    let p = server.pool();
    assert_eq!(p["signals"].as_array().map(Vec::len), Some(2), "the levels are still active");
    // No decision at start on levels already decided: the next change is the delta's.
    resolve_then_delta(&server);
    assert_eq!(changes(&t), vec![(3, 4), (4, 5)], "{:#?}", audit(&t, "decision"));
}

fn simulate(t: Test, signals: &str, extra: &[&str]) -> Vec<Value> {
    let r = t
        .file("signals.jsonl", signals)
        .args(["--json", "scale", "simulate", "--signals", "signals.jsonl"])
        .args(extra)
        .run()
        .success();
    r.stdout.lines().map(|l| serde_json::from_str(l).expect("ndjson")).collect()
}

#[test]
fn simulate_decides_a_repeated_alarm_once_and_uses_the_alarms_mapping() {
    let yaml = pools_yaml("    alarms:\n      HighCPU: { action: up, step: 2 }\n")
        .replace("cooldown_up: 1h", "cooldown_up: 0");
    let alarm =
        "{\"at\": AT, \"pool\": \"workers\", \"alarm\": \"HighCPU\", \"state\": \"ALARM\"}\n";
    let lines: String = ["0", "1", "2"].iter().map(|at| alarm.replace("AT", at)).collect();
    let t = Test::new().file("pilum-scale.yaml", &yaml);
    let ds = simulate(t, &lines, &["--current", "workers=4", "--tick", "1h", "--until", "10s"]);
    let changed: Vec<_> = ds.iter().filter(|d| d["changed"] == true).collect();
    assert_eq!(changed.len(), 1, "three identical alarms are one state: {ds:#?}");
    assert_eq!((changed[0]["old"].clone(), changed[0]["clamped"].clone()), (4.into(), 6.into()));
}

#[test]
fn simulate_uses_a_new_metric_on_a_firing_alarm_at_the_next_decision() {
    let yaml = pools_yaml("    strategy: target-tracking\n    params: { target: 70 }\n")
        .replace("cooldown_up: 1h", "cooldown_up: 0")
        .replace("cooldown_down: 1h", "cooldown_down: 0");
    let ev = |at: u32, metric: u32| {
        format!(
            "{{\"at\": {at}, \"pool\": \"workers\", \"alarm\": \"CPU\", \"state\": \"ALARM\", \"action\": \"up\", \"step\": 1, \"metric\": {metric}}}\n"
        )
    };
    let t = Test::new().file("pilum-scale.yaml", &yaml);
    let lines = format!("{}{}", ev(0, 140), ev(100, 35));
    let ds = simulate(t, &lines, &["--current", "workers=4", "--tick", "60s", "--until", "300s"]);
    let changed: Vec<(i64, i64)> = ds
        .iter()
        .filter(|d| d["changed"] == true)
        .map(|d| (d["old"].as_i64().unwrap_or(-1), d["clamped"].as_i64().unwrap_or(-1)))
        .collect();
    // 140 % of target doubles 4 → 8; the still-firing alarm does not compound on the ticks;
    // the new metric (35 %) halves it at the next tick.
    assert_eq!(changed, vec![(4, 8), (8, 4)], "{ds:#?}");
}

#[test]
fn inputs_a_strategy_ignores_are_refused_naming_it() {
    let t = project("    strategy: target-tracking\n    params: { target: 70 }\n", 3);
    let server = serve(&t, &[]);
    for (path, body) in [
        ("/webhook/workers/delta", r#"{"delta": 1}"#),
        ("/webhook/workers/count", r#"{"value": 4}"#),
    ] {
        let r = server.post(path, body);
        assert_eq!(r.status, 422, "{path}: {}", r.body);
        let e = r.json()["error"].as_str().unwrap_or("").to_string();
        assert!(e.contains("strategy `target-tracking`") && e.contains("alarms, schedules"), "{e}");
    }
    let check = Test::new()
        .file(
            "pilum-scale.yaml",
            &std::fs::read_to_string(t.path().join("pilum-scale.yaml")).expect("pools"),
        )
        .args(["scale", "check"])
        .run()
        .success();
    assert!(
        check.stdout.contains("workers: strategy `target-tracking` acts on: alarms, schedules"),
        "{}",
        check.stdout
    );
    let ds = simulate(
        Test::new().file(
            "pilum-scale.yaml",
            &std::fs::read_to_string(t.path().join("pilum-scale.yaml")).expect("pools"),
        ),
        "{\"at\": 5, \"pool\": \"workers\", \"delta\": 2}\n",
        &["--current", "workers=4"],
    );
    assert_eq!(ds.len(), 1, "{ds:#?}");
    assert_eq!(ds[0]["line"], 1);
    assert!(ds[0]["rejected"].as_str().unwrap_or("").contains("`target-tracking`"), "{ds:#?}");
}

#[test]
fn an_unknown_current_value_is_never_acted_on_until_it_is_known() {
    // A stack file without the key (a never-deployed stack, or one just refreshed).
    let t = project("", 3).file("infra/Pulumi.prod.yaml", "config:\n  infra:other: \"1\"\n");
    let server = serve(&t, &["--tick", "300ms"]);
    let r = server.request("GET", "/readyz", &[], "");
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.body.contains("current value of pool `workers` is unknown"), "{}", r.body);
    let r = server.post("/webhook/workers/delta", r#"{"delta": 1}"#);
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.headers.contains("retry-after"), "{}", r.headers);
    assert!(
        r.json()["error"].as_str().unwrap_or("").contains("pulumi config set infra:count"),
        "{}",
        r.body
    );
    assert_eq!(server.pool()["desired"], Value::Null);
    // Once the key holds a value, the pool starts from it.
    t.write("infra/Pulumi.prod.yaml", "config:\n  infra:count: \"7\"\n");
    server.wait_pool("the value known", |p| p["desired"] == 7);
    wait_for("ready", 20, || server.request("GET", "/readyz", &[], "").status == 200);
    assert_eq!(server.post("/webhook/workers/delta", r#"{"delta": -1}"#).status, 202);
    server.wait_pool("applied 6", |p| p["applied"] == 6);
    assert_eq!(ups(&t), 1, "nothing was applied from a guessed value");
}

#[test]
fn every_error_is_json_including_a_body_over_the_limit() {
    let t = project("", 3);
    let server = serve(&t, &["--max-body", "64"]);
    let r = server
        .post("/webhook/workers/delta", &format!(r#"{{"delta": 1, "x": "{}"}}"#, "y".repeat(200)));
    assert_eq!(r.status, 413, "{}", r.body);
    assert!(r.json()["error"].as_str().unwrap_or("").contains("`--max-body`"), "{}", r.body);
    let r = server.request("GET", "/nowhere", &[], "");
    assert_eq!(r.status, 404);
    let r = server.request("PUT", "/pools", &[], "");
    assert_eq!(r.status, 405);
    assert!(r.json()["error"].is_string(), "{}", r.body);
}

#[test]
fn status_aligns_its_columns_and_lists_a_pool_before_its_first_change() {
    let t = project("", 3);
    {
        let mut server = serve(&t, &[]);
        server.terminate();
        assert_eq!(server.wait_exit(20), 0);
    }
    let r = status_of(&t, &[]);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", r.stdout);
    assert_eq!(lines[0].matches("applied").count(), 2, "`applied` and `applied gen`: {}", lines[0]);
    assert!(lines[0].contains("applied gen"), "{}", lines[0]);
    // Right-aligned numbers end where their header ends.
    let end = |l: &str, word: &str| l.find(word).map(|i| i + word.len());
    assert_eq!(end(lines[0], "desired"), end(lines[1], "3"), "{}", r.stdout);
    assert!(lines[1].starts_with("workers "), "{}", r.stdout);
}
