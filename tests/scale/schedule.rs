//! Schedules: `scale check` errors, `simulate` across a window boundary on its virtual clock,
//! and a real server whose window covers "now" raising the value to its floor on startup.

use super::*;

/// A pool with one schedule; `fields` are its YAML flow-map fields.
fn with_schedule(fields: &str) -> String {
    pools_yaml(&format!("    strategy: schedule-floor\n    schedules:\n      - {{ {fields} }}\n"))
}

fn check(pools: &str) -> crate::common::Run {
    Test::new().file("pilum-scale.yaml", pools).args(["scale", "check"]).run()
}

/// Assert that `text` contains every one of `parts`.
fn has_all(text: &str, parts: &[&str]) {
    for part in parts {
        assert!(text.contains(part), "missing {part:?} in:\n{text}");
    }
}

#[test]
fn check_accepts_schedules() {
    let r = check(&with_schedule(
        r#"name: office, start: "0 8 * * 1-5", end: "0 18 * * 1-5", timezone: Europe/Paris, value: 5"#,
    ))
    .success();
    assert!(r.stdout.contains("1 pool(s): workers"), "{}", r.stdout);
}

#[test]
fn check_locates_a_bad_cron_expression() {
    let r = check(&with_schedule(
        r#"name: office, start: "0 25 * * 1-5", end: "0 18 * * 1-5", value: 5"#,
    ))
    .code(2);
    // Line 14 is the schedule; the column points at `start`.
    has_all(
        &r.stderr,
        &[
            "pool `workers`: schedule `office` has an invalid `start` cron expression `0 25 * * 1-5`",
            "pilum-scale.yaml:14:25",
            "help: use 5 fields: minute hour day-of-month month day-of-week",
            "14 |       - { name: office",
        ],
    );
}

#[test]
fn check_reports_an_unknown_timezone_with_a_suggestion() {
    let src = pools_yaml(concat!(
        "    schedules:\n",
        "      - name: office\n",
        "        start: \"0 8 * * *\"\n",
        "        end: \"0 18 * * *\"\n",
        "        value: 5\n",
        "      - name: night\n",
        "        start: \"0 22 * * *\"\n",
        "        end: \"0 6 * * *\"\n",
        "        timezone: Europe/Pari\n",
        "        value: 2\n",
    ));
    let r = check(&src).code(2);
    has_all(
        &r.stderr,
        &[
            "pool `workers`: schedule `night` has an unknown time zone `Europe/Pari`\n",
            "pilum-scale.yaml:20:9",
            "did you mean `Europe/Paris`?",
            "help: use an IANA time zone name",
        ],
    );
}

#[test]
fn check_reports_a_missing_value_and_an_unknown_key() {
    let r = check(&with_schedule(r#"name: office, start: "0 8 * * *", end: "0 18 * * *""#)).code(2);
    has_all(
        &r.stderr,
        &["missing field `value`", "pilum-scale.yaml:14:", "help: add `value` to the schedule"],
    );
    let r = check(&with_schedule(
        r#"name: office, start: "0 8 * * *", end: "0 18 * * *", value: 3, timezon: UTC"#,
    ))
    .code(2);
    has_all(&r.stderr, &["unknown field `timezon`", "did you mean `timezone`?"]);
    let r = Test::new()
        .file(
            "pilum-scale.yaml",
            &with_schedule(r#"name: office, start: "0 8 * *", end: "0 18 * * *", value: 3"#),
        )
        .args(["--json", "scale", "check"])
        .run()
        .code(2);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).expect("json");
    assert!(v["errors"][0]["message"].as_str().unwrap_or("").contains("`start`"), "{v}");
}

#[test]
fn simulate_applies_the_floor_inside_the_window_and_lets_go_after_it() {
    // 2026-11-18 is a Wednesday; the window is 08:00–09:00 Paris (07:00–08:00 UTC). The
    // replay starts at 06:50 UTC with a down alarm firing the whole time under `incremental`.
    let pools = pools_yaml(concat!(
        "    schedules:\n",
        "      - { name: morning, start: \"0 8 * * 1-5\", end: \"0 9 * * 1-5\", timezone: Europe/Paris, value: 6 }\n",
    ))
    .replace("cooldown_up: 1h", "cooldown_up: 0")
    .replace("cooldown_down: 1h", "cooldown_down: 60s");
    let t = Test::new().fake("pulumi", "exit 1").file("pilum-scale.yaml", &pools).file(
        "signals.jsonl",
        "{\"at\": 0, \"pool\": \"workers\", \"alarm\": \"LowCPU\", \"state\": \"ALARM\", \"action\": \"down\", \"step\": 1}\n",
    );
    let t = t.args([
        "--json",
        "scale",
        "simulate",
        "--signals",
        "signals.jsonl",
        "--current",
        "workers=3",
        "--tick",
        "60s",
        "--until",
        "4500s",
        "--start",
        "2026-11-18T06:50:00Z",
        "--debounce",
        "0",
    ]);
    let r = t.run().success();
    let ds: Vec<serde_json::Value> =
        r.stdout.lines().map(|l| serde_json::from_str(l).expect("ndjson")).collect();
    let changes: Vec<(f64, i64, i64)> = ds
        .iter()
        .filter(|d| d["changed"] == true)
        .map(|d| {
            (
                d["t"].as_f64().unwrap_or(-1.0),
                d["old"].as_i64().unwrap_or(-1),
                d["clamped"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    // Before the window: down to min (1). At 07:00 UTC (t=600) the floor lifts it to 6 and holds
    // it against the down alarm; at 08:00 UTC (t=4200) the window closes and the alarm steps
    // it down again, one step per cooldown.
    assert_eq!(
        changes,
        vec![
            (0.0, 3, 2),
            (60.0, 2, 1),
            (600.0, 1, 6),
            (4200.0, 6, 5),
            (4260.0, 5, 4),
            (4320.0, 4, 3),
            (4380.0, 3, 2),
            (4440.0, 2, 1)
        ],
        "{}",
        r.stdout
    );
    let lift = ds.iter().find(|d| d["t"] == 600.0).expect("decision at 600s");
    assert!(lift["reason"].as_str().unwrap_or("").contains("schedule"), "{lift}");
    assert!(t.calls("pulumi").is_empty());
    let bad = Test::new()
        .file("pilum-scale.yaml", &pools)
        .file("s.jsonl", "")
        .args(["scale", "simulate", "--signals", "s.jsonl", "--start", "yesterday"])
        .run()
        .code(2);
    assert!(bad.stderr.contains("`--start yesterday`"), "{}", bad.stderr);
}

#[test]
fn server_raises_to_the_floor_of_a_window_open_at_startup() {
    // Opens every minute and closes only on January 1st at midnight: open at any test time.
    let t = project(
        concat!(
            "    strategy: schedule-floor\n",
            "    schedules:\n",
            "      - { name: always, start: \"* * * * *\", end: \"0 0 1 1 *\", timezone: Europe/Paris, value: 7 }\n",
        ),
        3,
    );
    let server = serve(&t, &[]);
    let p = server.wait_pool("the floor applied", |p| p["applied"] == 7);
    assert_eq!(p["desired"], 7, "{p:#}");
    let signals = p["signals"].as_array().cloned().unwrap_or_default();
    assert_eq!(signals.len(), 1, "{p:#}");
    assert_eq!(
        (signals[0]["source"].as_str(), signals[0]["value"].as_i64()),
        (Some("schedule"), Some(7))
    );
    assert_eq!(count_in(&t.path().join("infra/Pulumi.prod.yaml")).as_deref(), Some("7"));
    assert_eq!(ups(&t), 1);
    let raised = audit(&t, "signal");
    assert!(
        raised.iter().any(|s| s["source"] == "schedule"
            && s["change"] == "raise"
            && s["level"] == "schedule:always"),
        "{raised:?}"
    );
    let decision = audit(&t, "decision");
    assert!(
        decision.iter().any(|d| d["sources"] == serde_json::json!(["schedule"])),
        "{decision:?}"
    );
    let metrics = server.request("GET", "/metrics", &[], "").body;
    assert!(metrics.contains("source=\"schedule\""), "{metrics}");
}
