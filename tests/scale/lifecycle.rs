//! Applying, retrying, dry runs, shutdown, recovery, hot reload and metrics.

use std::time::{Duration, Instant};

use super::*;

#[test]
fn lock_conflicts_are_retried_until_the_third_attempt_succeeds() {
    let t = project("", 3).file("up-lock", "2\n");
    let server = serve(&t, &[]);
    assert_eq!(server.post("/webhook/workers/delta", r#"{"delta": 1}"#).status, 202);
    // While it retries, readiness says why.
    let started = Instant::now();
    loop {
        let r = server.request("GET", "/readyz", &[], "");
        if r.status == 503 {
            assert!(r.body.contains("is locked, retrying"), "{}", r.body);
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "readyz never reported the lock");
        std::thread::sleep(Duration::from_millis(10));
    }
    let p = server.wait_pool("applied 4", |p| p["applied"] == 4);
    assert_eq!(p["lastResult"]["ok"], true);
    assert_eq!(ups(&t), 3);
    assert_eq!(server.request("GET", "/readyz", &[], "").status, 200);
    let metrics = server.request("GET", "/metrics", &[], "").body;
    assert!(metrics.contains("pilum_scale_lock_retries_total{pool=\"workers\"} 2"), "{metrics}");
}

#[test]
fn a_failed_up_keeps_applied_behind_and_converges_once_the_fault_clears() {
    let t = project("", 3).file("up-fail", "");
    let server = serve(&t, &[]);
    assert_eq!(server.post("/webhook/workers/delta", r#"{"delta": 2}"#).status, 202);
    server.wait_pool("a failed apply", |p| p["lastResult"]["ok"] == false);
    wait_for("a retry", 20, || ups(&t) >= 3);
    let p = server.pool();
    assert_eq!((p["desired"].clone(), p["applied"].clone()), (5.into(), 3.into()), "{p:#}");
    assert!(
        p["lastResult"]["message"].as_str().unwrap_or("").contains("provider returned 500"),
        "{p:#}"
    );
    // Backoff (300 ms doubling, +0-20 %), not a retry storm: the recorded start times of the
    // attempts are spaced by at least the backoff.
    let starts: Vec<u128> = t
        .timed_calls("pulumi")
        .into_iter()
        .filter(|(_, argv)| argv.first().is_some_and(|a| a == "up"))
        .map(|(ts, _)| ts)
        .collect();
    let gaps: Vec<u128> = starts.windows(2).map(|w| (w[1] - w[0]) / 1_000_000).collect();
    assert!(gaps[0] >= 290 && gaps[1] >= 590, "gaps between attempts (ms): {gaps:?}");
    std::fs::remove_file(t.path().join("up-fail")).expect("clear the fault");
    let p = server.wait_pool("convergence", |p| p["applied"] == 5);
    assert_eq!(p["appliedGeneration"], p["generation"]);
    assert_eq!(count_in(&t.path().join("applied.yaml")).as_deref(), Some("5"));
}

#[test]
fn dry_run_previews_the_new_value_and_leaves_the_stack_file_untouched() {
    let t = project("    max_step: 2\n", 3);
    let stack = t.path().join("infra/Pulumi.prod.yaml");
    let before = std::fs::read(&stack).expect("stack file");
    let server = serve(&t, &[]);
    let r = server.post("/scale/workers?dryRun=true", r#"{"delta": 5}"#);
    assert_eq!(r.status, 200, "{}\n{}", r.body, server.logs());
    let v = r.json();
    assert_eq!(v["current"], 3);
    assert_eq!(v["target"], 8);
    assert_eq!(v["clamped"], 5, "max_step 2 clamps 3+5 to 5: {v:#}");
    assert_eq!(v["changeSummary"]["update"], 1);
    assert_eq!(v["steps"][0]["op"], "update");
    assert_eq!(v["cooldownRemaining"]["up"], 0.0);
    assert_eq!(
        std::fs::read(&stack).expect("stack file"),
        before,
        "the stack file must be byte-identical"
    );
    // The preview saw the new value through a temporary --config-file.
    assert_eq!(count_in(&t.path().join("previewed.yaml")).as_deref(), Some("5"));
    let preview = t.calls("pulumi").into_iter().find(|c| c[0] == "preview").expect("preview call");
    assert!(
        preview.contains(&"--config-file".to_string())
            && !preview.iter().any(|a| a == "-c" || a == "--config")
    );
    assert_eq!(ups(&t), 0);
    assert_eq!(server.pool()["desired"], 3);
}

#[test]
fn sigterm_during_up_waits_for_it_refuses_new_webhooks_and_exits_zero() {
    let t = project("", 3).file("up-sleep", "5\n");
    let mut server = serve(&t, &[]);
    assert_eq!(server.post("/webhook/workers/delta", r#"{"delta": 1}"#).status, 202);
    let started = Instant::now();
    while ups(&t) == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "up never started:\n{}",
            server.logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let up_started = Instant::now();
    // A firing alert (level state) arrives while `up` runs; it must survive the shutdown.
    let alert = alert_without_pool();
    // A 202 means the alert is journalled and in the book.
    assert_eq!(server.post("/webhook/workers/prometheus?action=up&step=1", &alert).status, 202);
    server.terminate();
    wait_for("readiness to fail", 10, || server.request("GET", "/readyz", &[], "").status == 503);
    let r = server.post("/webhook/workers/delta", r#"{"delta": 1}"#);
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.headers.contains("retry-after:"));
    let ready = server.request("GET", "/readyz", &[], "");
    assert_eq!(ready.status, 503);
    let code = server.wait_exit(30);
    assert_eq!(code, 0, "{}", server.logs());
    assert!(up_started.elapsed() >= Duration::from_millis(4000), "exited before up finished");
    assert_eq!(count_in(&t.path().join("applied.yaml")).as_deref(), Some("4"), "up completed");
    let rec: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(t.path().join("state/workers.json")).expect("record"),
    )
    .expect("json");
    assert_eq!(rec["applied"], 4);
    let pending = std::fs::read_to_string(t.path().join("state/signals.json")).expect("signals");
    assert!(pending.contains("prometheus:c6e4d6b2a3f1e0d9"), "{pending}");
    // Never SIGKILL: the fake saw no interruption and finished.
    assert!(!server.logs().contains("killing"), "{}", server.logs());
}

#[test]
fn restart_with_applied_behind_desired_reapplies_exactly_once() {
    let t = project("", 3).file("up-fail", "");
    {
        let mut server = serve(&t, &["--retry-backoff", "1h"]);
        assert_eq!(server.post("/webhook/workers/delta", r#"{"delta": 2}"#).status, 202);
        server.wait_pool("a failed apply", |p| p["lastResult"]["ok"] == false);
        server.terminate();
        assert_eq!(server.wait_exit(20), 0);
    }
    assert_eq!(ups(&t), 1);
    std::fs::remove_file(t.path().join("up-fail")).expect("clear the fault");
    let server = serve(&t, &[]);
    let p = server.wait_pool("recovery", |p| p["applied"] == 5);
    assert_eq!(p["appliedGeneration"], p["generation"]);
    // Nothing is behind any more, so nothing else can be applied.
    assert_eq!(ups(&t), 2, "exactly one re-apply after the restart");
    assert!(server.logs().contains("recovering"), "{}", server.logs());
}

#[test]
fn an_edited_strategy_takes_effect_and_a_broken_edit_keeps_the_old_one() {
    let t = project("    strategy: strategies/fixed.rhai\n", 3)
        .file("strategies/fixed.rhai", "fn decide(ctx) { #{ desired: 4, reason: \"v1\" } }\n");
    let server = serve(&t, &[]);
    let target = |s: &Server| s.post("/scale/workers?dryRun=true", "").json()["clamped"].clone();
    assert_eq!(target(&server), 4);
    // Editors save by rename: write a temp file and move it over the script.
    let script = t.path().join("strategies/fixed.rhai");
    let tmp = t.path().join("strategies/.fixed.rhai.swp");
    std::fs::write(&tmp, "fn decide(ctx) { #{ desired: 6, reason: \"v2\" } }\n").expect("write");
    std::fs::rename(&tmp, &script).expect("rename");
    let started = Instant::now();
    while target(&server) != 6 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "edit not picked up:\n{}",
            server.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::fs::write(&script, "fn decide(ctx) { #{ desired: 7, reason: \"v3\" \n")
        .expect("write broken");
    let started = Instant::now();
    let detail = loop {
        let r = server.request("GET", "/readyz", &[], "");
        let v = r.json();
        if !v["reloadError"].is_null() {
            break v;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "broken edit not reported:\n{}",
            server.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let err = detail["reloadError"].as_str().expect("reload error text");
    assert!(err.contains("fixed.rhai") && err.contains("does not compile"), "{err}");
    assert_eq!(target(&server), 6, "the previous strategy keeps running");
    let metrics = server.request("GET", "/metrics", &[], "").body;
    assert!(metrics.contains("pilum_scale_reload_errors_total 1"), "{metrics}");
    assert!(server.logs().contains("reload rejected"));
}

#[test]
fn metrics_pass_promtool() {
    let t = project("", 3);
    let server = serve(&t, &[]);
    assert_eq!(server.post("/webhook/workers/delta", r#"{"delta": 1}"#).status, 202);
    server.wait_pool("applied 4", |p| p["applied"] == 4);
    let r = server.request("GET", "/metrics", &[], "");
    assert_eq!(r.status, 200);
    for name in [
        "pilum_scale_intents_total{pool=\"workers\",source=\"delta\",result=\"accepted\"} 1",
        "pilum_scale_updates_total{pool=\"workers\",result=\"success\"} 1",
        "pilum_scale_desired{pool=\"workers\"} 4",
        "pilum_scale_applied{pool=\"workers\"} 4",
        "pilum_scale_update_duration_seconds_bucket",
        "pilum_scale_cooldown_remaining_seconds{pool=\"workers\",direction=\"up\"}",
        "pilum_scale_queue_depth 0",
        "pilum_scale_last_success_timestamp_seconds{pool=\"workers\"}",
    ] {
        assert!(r.body.contains(name), "missing `{name}` in\n{}", r.body);
    }
    let mut child = std::process::Command::new(crate::common::tool("promtool", "prometheus"))
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start promtool");
    use std::io::Write;
    child.stdin.take().expect("stdin").write_all(r.body.as_bytes()).expect("write metrics");
    let out = child.wait_with_output().expect("promtool");
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        r.body
    );
}

#[test]
fn a_failing_strategy_skips_the_decision_and_never_scales() {
    let t = project("    strategy: strategies/broken.rhai\n", 3)
        .file("strategies/broken.rhai", "fn decide(ctx) { throw \"no data\"; }\n");
    let server = serve(&t, &[]);
    assert_eq!(server.post("/webhook/workers/delta", r#"{"delta": 2}"#).status, 202);
    let p = server.wait_pool("the strategy error", |p| !p["lastError"].is_null());
    assert!(p["lastError"].as_str().unwrap_or("").contains("no data"), "{p:#}");
    assert_eq!(p["desired"], 3);
    let metrics = server.request("GET", "/metrics", &[], "").body;
    assert!(metrics.contains("pilum_scale_strategy_errors_total{pool=\"workers\"} 1"), "{metrics}");
    // The decision failed before any change: nothing was woken to apply.
    assert_eq!(ups(&t), 0);
    assert!(
        audit(&t, "decision")
            .iter()
            .any(|d| d["error"].as_str().is_some_and(|e| e.contains("no data")))
    );
}

#[test]
fn corrupt_pending_signals_stop_the_start_and_are_kept() {
    let t = serve_once(project("", 3).file("state/signals.json", "{ not json"));
    let r = t.run();
    assert_eq!(r.status, 2, "{}", r.stderr);
    assert!(r.stderr.contains("pending signals"), "{}", r.stderr);
    assert!(r.stderr.contains("signals.json"), "{}", r.stderr);
    assert!(r.stderr.contains("help: move the file away"), "{}", r.stderr);
    let kept = std::fs::read_to_string(t.path().join("state/signals.json")).expect("still there");
    assert_eq!(kept, "{ not json", "the file must not be overwritten");
    assert_eq!(ups(&t), 0);
}
