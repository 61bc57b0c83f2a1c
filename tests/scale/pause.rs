//! Pause and resume (token-protected, audited, visible; a paused pool records signals and
//! applies nothing) and the KEDA-like `fallback` for silent sources.

use super::*;

#[test]
fn a_paused_pool_records_signals_applies_nothing_and_resumes_with_them() {
    let t = project("", 3);
    let server = serve(&t, &[]);
    // Token-protected.
    let r = server.request("POST", "/pools/workers/pause", &[], r#"{"reason": "migration"}"#);
    assert_eq!(r.status, 401, "{}", r.body);
    let r = server.post("/pools/workers/pause", r#"{"reason": "db migration", "until": "1h"}"#);
    assert_eq!(r.status, 200, "{}", r.body);
    let p = server.pool();
    assert_eq!(p["paused"]["reason"], "db migration", "{p:#}");
    assert!(p["paused"]["until"].is_string(), "{p:#}");
    // Signals are recorded while paused, and nothing is decided or applied.
    assert_eq!(server.post("/webhook/workers/delta", r#"{"delta": 2}"#).status, 202);
    server.wait_pool("the delta recorded", |p| p["pendingIntents"] == 1);
    let metrics = server.request("GET", "/metrics", &[], "").body;
    assert!(metrics.contains("pilum_scale_paused{pool=\"workers\"} 1"), "{metrics}");
    assert_eq!(ups(&t), 0);
    // Resume: what was recorded is decided.
    let r = server.post("/pools/workers/resume", "");
    assert_eq!(r.status, 200, "{}", r.body);
    let p = server.wait_pool("the delta applied", |p| p["applied"] == 5);
    assert!(p["paused"].is_null(), "{p:#}");
    let events: Vec<String> = ["pause", "resume"]
        .iter()
        .flat_map(|e| audit(&t, e))
        .map(|v| v["event"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(events, vec!["pause", "resume"], "audited");
    assert_eq!(ups(&t), 1);
}

#[test]
fn a_pause_with_a_bad_until_is_refused() {
    let t = project("", 3);
    let server = serve(&t, &[]);
    let r = server.post("/pools/workers/pause", r#"{"reason": "x", "until": "soon"}"#);
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.json()["error"].as_str().unwrap_or("").contains("`until`"), "{}", r.body);
    let r = server.post("/pools/nope/pause", r#"{"reason": "x"}"#);
    assert_eq!(r.status, 404, "{}", r.body);
}

#[test]
fn fallback_goes_to_its_value_when_the_sources_are_silent() {
    let t = project("    fallback: { after: 1s, value: 6 }\n", 3);
    let server = serve(&t, &["--tick", "300ms"]);
    let p = server.wait_pool("the fallback value applied", |p| p["applied"] == 6);
    assert!(p["fallback"]["active"] == true, "{p:#}");
    let d = audit(&t, "decision");
    assert!(d.iter().any(|d| d["sources"] == serde_json::json!(["fallback"])), "{d:#?}");
}

#[test]
fn simulate_shows_the_fallback_after_silence() {
    let yaml = pools_yaml("    fallback: { after: 10m, value: 6 }\n");
    let r = Test::new()
        .file("pilum-scale.yaml", &yaml)
        .file("s.jsonl", "{\"at\": 0, \"pool\": \"workers\", \"delta\": 1}\n")
        .args(["--json", "scale", "simulate", "--signals", "s.jsonl", "--current", "workers=3"])
        .args(["--tick", "60s", "--until", "15m"])
        .run()
        .success();
    let ds: Vec<Value> =
        r.stdout.lines().map(|l| serde_json::from_str(l).expect("ndjson")).collect();
    let fallback = ds.iter().find(|d| d["reason"].as_str().unwrap_or("").contains("fallback"));
    let f = fallback.unwrap_or_else(|| panic!("no fallback decision: {ds:#?}"));
    assert_eq!(f["clamped"], 6, "{f}");
    assert!(f["t"].as_f64().unwrap_or(0.0) >= 600.0, "{f}");
}
