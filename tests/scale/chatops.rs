//! ChatOps: the scaler's events through the Rhai notifiers, to loopback receivers — one that
//! answers and one that hangs, which must never delay a decision or an apply.

use crate::common::receiver::{Receiver, Reply};

use super::*;

fn events(r: &Receiver) -> Vec<Value> {
    r.requests().iter().filter_map(|q| serde_json::from_slice(&q.body).ok()).collect()
}

fn with_notifiers(ok: &Receiver, stuck: &Receiver) -> Test {
    let t = project("", 3);
    let yaml = std::fs::read_to_string(t.path().join("pilum-scale.yaml")).expect("pools").replace(
        "cooldown_up: 1h\n    cooldown_down: 1h\n",
        "cooldown_up: 0\n    cooldown_down: 0\n",
    );
    let notify = format!(
        "notify:\n  - {{ notifier: webhook, url: \"{}/\", events: [\"*\"] }}\n  - {{ notifier: webhook, name: stuck, url: \"{}/\" }}\n",
        ok.url, stuck.url
    );
    t.file("pilum-scale.yaml", &format!("{notify}{yaml}"))
}

#[test]
fn events_reach_the_notifiers_coalesced_and_a_hanging_one_delays_nothing() {
    let (ok, stuck) = (Receiver::ok(), Receiver::start(|_, _| Reply::Hang));
    let t = with_notifiers(&ok, &stuck);
    let server = serve(&t, &["--notify-coalesce", "100ms", "--notify-interval", "500ms"]);
    assert_eq!(server.post("/webhook/workers/delta", r#"{"delta": 2}"#).status, 202);
    // Applied while the stuck receiver holds its connection.
    server.wait_pool("applied 5", |p| p["applied"] == 5);
    wait_for("scale_succeeded delivered", 20, || {
        events(&ok)
            .iter()
            .any(|e| e["event"] == "scale_succeeded" && e["scale"]["pool"] == "workers")
    });
    let e = events(&ok).into_iter().find(|e| e["event"] == "scale_succeeded").expect("event");
    assert_eq!(
        (e["scale"]["to"].clone(), e["run"]["command"].clone()),
        (5.into(), "scale".into()),
        "{e:#}"
    );
    // The hanging receiver got it too, and holds that connection from here on.
    stuck.wait_for(1, Duration::from_secs(20));
    // A burst of pauses and resumes is coalesced per pool: fewer notifications than events.
    for _ in 0..5 {
        assert_eq!(server.post("/pools/workers/pause", r#"{"reason": "drill"}"#).status, 200);
        assert_eq!(server.post("/pools/workers/resume", "").status, 200);
    }
    wait_for("pool_resumed delivered", 20, || {
        events(&ok).iter().any(|e| e["event"] == "pool_resumed")
    });
    let paused: Vec<Value> =
        events(&ok).into_iter().filter(|e| e["event"] == "pool_paused").collect();
    assert!(!paused.is_empty() && paused.len() < 5, "coalesced: {paused:#?}");
    assert!(
        paused.iter().any(|e| e["scale"]["coalesced"].as_u64().unwrap_or(0) > 1),
        "{paused:#?}"
    );
    // The scaler still decides at once, the hanging receiver notwithstanding.
    assert_eq!(server.post("/webhook/workers/delta", r#"{"delta": -1}"#).status, 202);
    server.wait_pool("applied 4", |p| p["applied"] == 4);
}

#[test]
fn check_refuses_a_deploy_event_and_an_unknown_notifier() {
    let yaml = format!(
        "notify:\n  - {{ notifier: slak, url: \"https://hooks.example.com/x\" }}\n  - {{ notifier: webhook, url: \"https://hooks.example.com/y\", events: [run_failed] }}\n{}",
        pools_yaml("")
    );
    let r = Test::new().file("pilum-scale.yaml", &yaml).args(["scale", "check"]).run().code(2);
    assert!(r.stderr.contains("did you mean `slack`"), "{}", r.stderr);
    assert!(r.stderr.contains("`run_failed` is a deploy event"), "{}", r.stderr);
}

#[test]
fn a_failure_a_guardrail_skip_and_drift_are_sent() {
    let ok = Receiver::ok();
    let extra = "    drift: { every: 300ms, policy: report, property: desiredCapacity }\n";
    let t = project(extra, 10);
    let yaml = std::fs::read_to_string(t.path().join("pilum-scale.yaml")).expect("pools").replace(
        "cooldown_up: 1h\n    cooldown_down: 1h\n",
        "cooldown_up: 0\n    cooldown_down: 0\n",
    );
    let notify = format!("notify:\n  - {{ notifier: webhook, url: \"{}/\" }}\n", ok.url);
    let t = t.file("pilum-scale.yaml", &format!("{notify}{yaml}")).file("drift", "6");
    let server = serve(
        &t,
        &["--notify-coalesce", "50ms", "--notify-interval", "100ms", "--lock-deadline", "1s"],
    );
    // At `max` already: the guardrail holds all of +2 back.
    assert_eq!(server.post("/webhook/workers/delta", r#"{"delta": 2}"#).status, 202);
    wait_for("scale_skipped", 20, || events(&ok).iter().any(|e| e["event"] == "scale_skipped"));
    let skipped = events(&ok).into_iter().find(|e| e["event"] == "scale_skipped").expect("event");
    assert!(skipped["scale"]["guardrails"].to_string().contains("max"), "{skipped:#}");
    wait_for("drift_detected", 20, || events(&ok).iter().any(|e| e["event"] == "drift_detected"));
    std::fs::remove_file(t.path().join("drift")).expect("end the drift");
    let t = t.file("up-fail", "");
    assert_eq!(server.post("/webhook/workers/delta", r#"{"delta": -1}"#).status, 202);
    wait_for("scale_failed", 20, || events(&ok).iter().any(|e| e["event"] == "scale_failed"));
    let failed = events(&ok).into_iter().find(|e| e["event"] == "scale_failed").expect("event");
    assert_eq!(
        (failed["scale"]["to"].clone(), failed["status"].clone()),
        (9.into(), "failed".into()),
        "{failed:#}"
    );
    // The retry meets a stack lock that outlasts `--lock-deadline`.
    let t = t.file("up-lock", "1000\n");
    std::fs::remove_file(t.path().join("up-fail")).expect("clear the fault");
    wait_for("lock_retries_exhausted", 30, || {
        events(&ok).iter().any(|e| e["event"] == "lock_retries_exhausted")
    });
}
