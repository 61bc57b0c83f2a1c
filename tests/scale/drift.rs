//! Drift auto-refresh against the fake `pulumi`'s drift knob (`$PILUM_FAKE_DIR/drift`).

use super::*;

fn drifting(policy: &str, cooldowns: &str) -> Test {
    let extra =
        format!("    drift: {{ every: 300ms, policy: {policy}, property: desiredCapacity }}\n");
    let t = project(&extra, 3);
    let yaml = std::fs::read_to_string(t.path().join("pilum-scale.yaml"))
        .expect("pools")
        .replace("cooldown_up: 1h\n    cooldown_down: 1h\n", cooldowns);
    t.file("pilum-scale.yaml", &yaml).file("drift", "6")
}

const NO_COOLDOWNS: &str = "cooldown_up: 0\n    cooldown_down: 0\n";

fn refreshes(t: &Test, preview_only: bool) -> usize {
    t.calls("pulumi")
        .iter()
        .filter(|c| c.first().is_some_and(|a| a == "refresh"))
        .filter(|c| c.iter().any(|a| a == "--preview-only") == preview_only)
        .count()
}

#[test]
fn report_shows_drift_in_status_metrics_and_audit() {
    let t = drifting("report", NO_COOLDOWNS);
    let server = serve(&t, &[]);
    let p = server.wait_pool("drift reported", |p| p["drift"]["drifted"] == true);
    assert_eq!(p["drift"]["policy"], "report", "{p:#}");
    assert_eq!(p["drift"]["live"], 6, "{p:#}");
    assert_eq!(p["desired"], 3, "report changes nothing: {p:#}");
    let calls = t.calls("pulumi");
    let check = calls.iter().find(|c| c.first().is_some_and(|a| a == "refresh")).expect("a check");
    assert!(check.iter().any(|a| a == "--json") && check.iter().any(|a| a == URN), "{check:?}");
    let metrics = server.request("GET", "/metrics", &[], "").body;
    assert!(metrics.contains("pilum_scale_drift{pool=\"workers\"} 1"), "{metrics}");
    assert!(audit(&t, "drift").iter().any(|d| d["drift"]["drifted"] == true));
    let page = server.request("GET", &format!("/?token={TOKEN}"), &[], "").body;
    assert!(page.contains("class=\"drift\""), "{page}");
    assert_eq!(ups(&t), 0);
}

#[test]
fn adopt_takes_a_hand_change_within_bounds_as_current() {
    let t = drifting("adopt", NO_COOLDOWNS);
    let server = serve(&t, &[]);
    let p = server.wait_pool("adopted", |p| p["desired"] == 6);
    assert_eq!(
        (p["applied"].clone(), p["generation"].clone(), p["appliedGeneration"].clone()),
        (6.into(), 1.into(), 1.into()),
        "{p:#}"
    );
    assert_eq!(count_in(&t.path().join("infra/Pulumi.prod.yaml")).as_deref(), Some("6"));
    assert_eq!(ups(&t), 0, "adopting needs no update");
}

#[test]
fn restore_reapplies_and_refresh_refreshes() {
    let t = drifting("restore", NO_COOLDOWNS);
    let server = serve(&t, &[]);
    wait_for("a restoring up", 20, || ups(&t) >= 1);
    let p = server.pool();
    assert_eq!(p["desired"], 3, "{p:#}");
    drop(server);
    let t = drifting("refresh", NO_COOLDOWNS);
    let _server = serve(&t, &[]);
    wait_for("a refresh --yes", 20, || t.path().join("refreshed").exists());
    assert!(refreshes(&t, false) >= 1);
}

#[test]
fn no_check_runs_inside_a_cooldown() {
    let t = drifting("report", "cooldown_up: 1h\n    cooldown_down: 1h\n");
    let server = serve(&t, &[]);
    // Before any change there is no cooldown: the first check runs.
    server.wait_pool("a first check", |p| p["drift"]["drifted"] == true);
    assert_eq!(server.post("/webhook/workers/delta", r#"{"delta": 1}"#).status, 202);
    server.wait_pool("applied 4", |p| p["applied"] == 4);
    server.wait_pool("a skipped check", |p| {
        p["drift"]["action"].as_str().is_some_and(|a| a.contains("inside a cooldown"))
    });
    let before = refreshes(&t, true);
    let metrics = server.request("GET", "/metrics", &[], "").body;
    assert!(
        metrics.contains("pilum_scale_drift_checks_total{pool=\"workers\",result=\"skipped\"}"),
        "{metrics}"
    );
    server.wait_pool("another skipped check", |p| {
        p["drift"]["checked_at"] != Value::Null
            && p["drift"]["action"].as_str().is_some_and(|a| a.contains("cooldown"))
    });
    assert_eq!(refreshes(&t, true), before, "no refresh preview inside the cooldown");
}
