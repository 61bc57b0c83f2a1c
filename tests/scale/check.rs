//! `pilum scale check`, `simulate` and `status`: offline commands.

use super::*;

fn check(pools: &str) -> crate::common::Run {
    Test::new().file("pilum-scale.yaml", pools).args(["scale", "check"]).run()
}

#[test]
fn check_accepts_a_good_file_and_the_shipped_example() {
    let r = check(&pools_yaml("")).success();
    assert!(r.stdout.contains("1 pool(s): workers"), "{}", r.stdout);
    let example = format!("{}/examples/scaling/pilum-scale.yaml", env!("CARGO_MANIFEST_DIR"));
    Test::new().args(["scale", "check", "--config", &example]).run().success();
}

#[test]
fn check_reports_an_unknown_key_with_location_and_suggestion() {
    let r = check(&pools_yaml("    cooldwon_up: 30s\n")).code(2);
    assert!(
        r.stderr.contains("error: pool `workers` has an unknown field `cooldwon_up`\n"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("--> "), "{}", r.stderr);
    assert!(r.stderr.contains("pilum-scale.yaml:12:5\n"), "{}", r.stderr);
    assert!(r.stderr.contains("did you mean `cooldown_up`?"), "{}", r.stderr);
    assert!(r.stderr.contains("12 |     cooldwon_up: 30s"), "{}", r.stderr);
}

#[test]
fn check_reports_missing_bounds_and_min_above_max() {
    let r = check(&pools_yaml("").replace("    max: 10\n", "")).code(2);
    assert!(r.stderr.contains("missing field `max`"), "{}", r.stderr);
    assert!(r.stderr.contains("pilum-scale.yaml:3:3"), "{}", r.stderr);
    assert!(r.stderr.contains("help: every pool needs both `min` and `max`"), "{}", r.stderr);
    let r = check(&pools_yaml("").replace("min: 1", "min: 12")).code(2);
    assert!(
        r.stderr.contains("pool `workers` has `min` (12) greater than `max` (10)"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("pilum-scale.yaml:8:5"), "{}", r.stderr);
}

#[test]
fn check_names_the_range_of_a_number_out_of_it() {
    let r = check(&pools_yaml("    max_step: 0\n")).code(2);
    assert!(
        r.stderr.contains("error: pool `workers` has `max_step` 0, outside [1, 1000000]\n"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("pilum-scale.yaml:12:5"), "{}", r.stderr);
    assert!(
        r.stderr.contains("help: use a step between 1 and 1000000, or remove it"),
        "{}",
        r.stderr
    );
    let r = Test::new()
        .file("pilum-scale.yaml", &pools_yaml("").replace("max: 10", "max: 2000000"))
        .args(["--json", "scale", "check"])
        .run()
        .code(2);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).expect("json");
    assert_eq!(v["errors"][0]["message"], "pool `workers` has `max` 2000000, outside [0, 1000000]");
    assert_eq!(v["errors"][0]["help"], "use a `max` between 0 and 1000000");
    assert_eq!(
        (v["errors"][0]["line"].clone(), v["errors"][0]["column"].clone()),
        (9.into(), 5.into())
    );
}

#[test]
fn check_reports_a_strategy_that_does_not_compile() {
    let r = Test::new()
        .file("pilum-scale.yaml", &pools_yaml("    strategy: strategies/bad.rhai\n"))
        .file("strategies/bad.rhai", "fn decide(ctx) {\n    let x = ;\n}\n")
        .args(["scale", "check"])
        .run()
        .code(2);
    assert!(r.stderr.contains("strategies/bad.rhai:2:"), "{}", r.stderr);
    assert!(r.stderr.contains("does not compile"), "{}", r.stderr);
    let r = check(&pools_yaml("    strategy: incremantal\n")).code(2);
    assert!(r.stderr.contains("did you mean `incremental`?"), "{}", r.stderr);
    let r = Test::new()
        .file("pilum-scale.yaml", &pools_yaml(""))
        .args(["--json", "scale", "check", "--config", "missing.yaml"])
        .run()
        .code(2);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).expect("json");
    assert_eq!(v["ok"], false);
    assert!(v["errors"][0]["message"].as_str().unwrap_or("").contains("cannot read"));
}

#[test]
fn check_rejects_malformed_yaml_without_panicking() {
    let r = check("pools:\n  workers: [unclosed\n").code(2);
    // The file ends inside the `[`: the error points at it (a line that exists), with the
    // source line, as for `pilum.yaml`.
    assert!(r.stderr.contains("pilum-scale.yaml:2:12"), "{}", r.stderr);
    assert!(r.stderr.contains("  workers: [unclosed"), "{}", r.stderr);
    assert!(!r.stderr.contains("panicked"));
}

#[test]
fn simulate_replays_signals_offline_through_the_guardrails() {
    let t = Test::new()
        .fake("pulumi", "exit 1")
        .file("pilum-scale.yaml", &pools_yaml("    max_step: 2\n").replace("cooldown_up: 1h", "cooldown_up: 60s").replace("cooldown_down: 1h", "cooldown_down: 120s"))
        .file(
            "signals.jsonl",
            concat!(
                "{\"at\": 0, \"pool\": \"workers\", \"alarm\": \"HighCPU\", \"state\": \"ALARM\", \"action\": \"up\", \"step\": 3}\n",
                "{\"at\": 10, \"pool\": \"workers\", \"delta\": 1}\n",
                "{\"at\": 70, \"pool\": \"workers\", \"alarm\": \"HighCPU\", \"state\": \"OK\"}\n",
                "{\"at\": 80, \"pool\": \"workers\", \"alarm\": \"LowCPU\", \"state\": \"ALARM\", \"action\": \"down\", \"step\": 1}\n",
            ),
        )
        .args(["--json", "scale", "simulate", "--signals", "signals.jsonl", "--current", "workers=4", "--tick", "30s", "--until", "300s"]);
    let r = t.run().success();
    let ds: Vec<serde_json::Value> =
        r.stdout.lines().map(|l| serde_json::from_str(l).expect("ndjson")).collect();
    // 0.2s (the alarm at 0s, decided after the server's default 200 ms debounce): 4 → 6
    // (step 3 clamped to max_step 2).
    assert_eq!(
        (ds[0]["t"].clone(), ds[0]["old"].clone(), ds[0]["clamped"].clone()),
        (0.2.into(), 4.into(), 6.into())
    );
    assert!(ds[0]["guardrails"].to_string().contains("max_step"));
    // 10s: a +1 during the up-cooldown is evaluated from 4 and does not add (4+2 max) … held.
    assert!(ds.iter().all(|d| d["clamped"].as_i64().unwrap_or(0) <= 10));
    // The down alarm waits for the down cooldown (120s after the last change at 60s+).
    let first_down =
        ds.iter().find(|d| d["clamped"].as_i64() < d["old"].as_i64()).expect("a scale-down");
    assert!(first_down["t"].as_f64().unwrap_or(0.0) >= 120.0, "{first_down}");
    assert!(t.calls("pulumi").is_empty(), "simulate never calls pulumi");
}

#[test]
fn status_reads_the_state_dir() {
    let t = project("", 3).file("up-fail", "");
    {
        let mut server = serve(&t, &["--retry-backoff", "1h"]);
        assert_eq!(server.post("/webhook/workers/delta", r#"{"delta": 2}"#).status, 202);
        server.wait_pool("a failed apply", |p| p["lastResult"]["ok"] == false);
        server.terminate();
        assert_eq!(server.wait_exit(20), 0);
    }
    let r = status_of(&t, &[]);
    assert!(r.stdout.contains("workers"), "{}", r.stdout);
    assert!(r.stdout.contains("failed:"), "{}", r.stdout);
    let r = status_of(&t, &["--json"]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).expect("json");
    assert_eq!(
        (v["pools"][0]["desired"].clone(), v["pools"][0]["applied"].clone()),
        (5.into(), 3.into())
    );
}

#[test]
fn rules_can_come_from_a_stack_output() {
    let rules = serde_json::json!({
        "pools": {"workers": {"project": ".", "stack": "prod", "key": "infra:count",
                              "targets": [URN], "min": 1, "max": 4}}
    });
    let t = Test::new()
        .file("infra/output.json", &serde_json::to_string(&rules.to_string()).expect("json string"))
        .fake("pulumi", "case \"$1 $2\" in \"stack output\") cat \"$PILUM_FAKE_DIR/infra/output.json\";; *) exit 1;; esac");
    let dir = t.path().to_path_buf();
    let t = t.env("PILUM_FAKE_DIR", &dir).args([
        "scale",
        "check",
        "--rules-from-output",
        "scaling",
        "--rules-stack",
        "prod",
        "--rules-project",
        "infra",
    ]);
    let r = t.run().success();
    assert!(r.stdout.contains("1 pool(s): workers"), "{}", r.stdout);
    let call = &t.calls("pulumi")[0];
    assert_eq!(&call[..4], ["stack", "output", "scaling", "--json"]);
    assert!(call.windows(2).any(|w| w[0] == "--stack" && w[1] == "prod"), "{call:?}");
}

#[test]
fn dash_c_makes_paths_relative_to_the_project() {
    let t = Test::new()
        .file("deploy/pilum-scale.yaml", &pools_yaml(""))
        .args(["-C", "deploy", "scale", "check"]);
    let r = t.run().success();
    assert!(r.stdout.contains("1 pool(s): workers"), "{}", r.stdout);
}
