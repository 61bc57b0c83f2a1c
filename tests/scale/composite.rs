//! Composite scaling: one decision drives several config keys, each with its own bounds, and
//! the vector is applied, retried and converges as one.

use super::*;

const URN_DB: &str = "urn:pulumi:prod::infra::aws:rds/instance:Instance::db";

/// A strategy that sums the intents and returns a second value for the `queue` key.
const TWO_VALUES: &str = r#"
fn decide(ctx) {
    let d = 0;
    for s in ctx.signals {
        if s.kind == "intent" { d += if s.action == "up" { s.step } else { -s.step }; }
    }
    if d == 0 { return (); }
    #{ delta: d, values: #{ queue: d * 3 }, reason: "intents" }
}
"#;

fn composite() -> Test {
    let keys = format!(
        "    strategy: strategies/two.rhai\n    keys:\n      infra:db: {{ expr: \"value * 10 + 20\", min: 50, max: 80, targets: [\"{URN_DB}\"] }}\n      infra:queue: {{ from: queue, min: 0, max: 10 }}\n"
    );
    project(&keys, 3).file("strategies/two.rhai", TWO_VALUES)
}

fn value_in(path: &Path, key: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()?.lines().find_map(|l| {
        l.trim().strip_prefix(&format!("{key}:")).map(|v| v.trim().trim_matches('"').to_string())
    })
}

#[test]
fn one_decision_sets_every_key_in_one_set_all_and_one_up() {
    let t = composite();
    let server = serve(&t, &[]);
    assert_eq!(server.post("/webhook/workers/delta", r#"{"delta": 2}"#).status, 202);
    let p = server.wait_pool("the vector applied", |p| p["applied"] == 5);
    // db = 5 * 10 + 20 = 70 (within 50–80); queue = 2 * 3 = 6 from the strategy.
    let want = serde_json::json!({"infra:count": 5, "infra:db": 70, "infra:queue": 6});
    assert_eq!(p["vector"], want, "{p:#}");
    assert_eq!(p["appliedVector"], want, "{p:#}");
    let calls = t.calls("pulumi");
    let set_all: Vec<_> =
        calls.iter().filter(|c| c.get(1).is_some_and(|a| a == "set-all")).collect();
    assert_eq!(set_all.len(), 1, "{calls:?}");
    for kv in ["infra:count=5", "infra:db=70", "infra:queue=6"] {
        assert!(set_all[0].iter().any(|a| a == kv), "{kv} in {:?}", set_all[0]);
    }
    let ups: Vec<_> = calls.iter().filter(|c| c.first().is_some_and(|a| a == "up")).collect();
    assert_eq!(ups.len(), 1, "{calls:?}");
    assert!(ups[0].iter().any(|a| a == URN) && ups[0].iter().any(|a| a == URN_DB), "{:?}", ups[0]);
    let stack = t.path().join("infra/Pulumi.prod.yaml");
    assert_eq!(value_in(&stack, "infra:db").as_deref(), Some("70"));
    let d = audit(&t, "decision");
    assert!(d.iter().any(|d| d["vector"] == want), "{d:#?}");
    // Each key keeps its own bounds: db is clamped at 80 when the pool goes to 7 (+4 from the
    // value before the up-cooldown, 3).
    assert_eq!(server.post("/webhook/workers/delta", r#"{"delta": 4}"#).status, 202);
    let p = server.wait_pool("the second vector applied", |p| p["applied"] == 7);
    assert_eq!(p["vector"]["infra:db"], 80, "{p:#}");
    assert_eq!(p["vector"]["infra:queue"], 10, "clamped to its max: {p:#}");
}

#[test]
fn a_failed_up_keeps_the_whole_vector_pending_until_it_converges() {
    let t = composite().file("up-fail", "");
    let server = serve(&t, &["--retry-backoff", "200ms", "--retry-max", "200ms"]);
    assert_eq!(server.post("/webhook/workers/delta", r#"{"delta": 1}"#).status, 202);
    let p = server.wait_pool("a failed apply", |p| p["lastResult"]["ok"] == false);
    assert_eq!(p["appliedVector"], serde_json::json!({"infra:count": 3}), "nothing applied: {p:#}");
    std::fs::remove_file(t.path().join("up-fail")).expect("clear the fault");
    let p = server.wait_pool("converged", |p| p["applied"] == 4);
    assert_eq!(p["appliedVector"], p["vector"], "{p:#}");
    assert_eq!(p["vector"]["infra:db"], 60, "{p:#}");
}

#[test]
fn dry_run_and_simulate_show_the_vector() {
    let t = composite();
    let server = serve(&t, &[]);
    let r = server.post("/scale/workers?dryRun=true", r#"{"delta": 1}"#);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["vector"]["infra:db"], 60, "{}", r.body);
    let previewed = t.path().join("previewed.yaml");
    assert_eq!(value_in(&previewed, "infra:db").as_deref(), Some("60"));
    assert_eq!(value_in(&t.path().join("infra/Pulumi.prod.yaml"), "infra:db"), None, "untouched");
    drop(server);
    let r = t
        .file("s.jsonl", "{\"at\": 0, \"pool\": \"workers\", \"delta\": 2}\n")
        .args(["--json", "scale", "simulate", "--signals", "s.jsonl", "--current", "workers=3"])
        .run()
        .success();
    let d: Value =
        serde_json::from_str(r.stdout.lines().next().expect("a decision")).expect("json");
    assert_eq!(
        d["vector"],
        serde_json::json!({"infra:count": 5, "infra:db": 70, "infra:queue": 6}),
        "{d}"
    );
}

#[test]
fn check_reports_bad_keys() {
    let yaml = pools_yaml(
        "    keys:\n      infra:db: { expr: \"value *\", from: q, min: 9, max: 1 }\n      infra:count: { from: q, min: 0, max: 1 }\n",
    );
    let r = Test::new().file("pilum-scale.yaml", &yaml).args(["scale", "check"]).run().code(2);
    for needle in [
        "exactly one of `expr` and `from`",
        "has bounds [9, 1]",
        "does not compile",
        "the pool's own `key`",
    ] {
        assert!(r.stderr.contains(needle), "{needle}: {}", r.stderr);
    }
}
