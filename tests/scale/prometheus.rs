//! Alertmanager webhooks: alerts are level state; duplicates are harmless; the path decides
//! the pool.

use super::*;

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR")))
        .expect("fixture")
}

#[test]
fn the_same_notification_five_times_makes_one_change() {
    let t = project("", 3).file("infra/.keep", "");
    // The fixture's `pool` label is `worker-pool`: the pool in the path must match it.
    let yaml = std::fs::read_to_string(t.path().join("pilum-scale.yaml"))
        .expect("pools")
        .replace("  workers:", "  worker-pool:");
    std::fs::write(t.path().join("pilum-scale.yaml"), yaml).expect("write pools");
    let server = serve(&t, &[]);
    let firing = fixture("alertmanager-v4-firing.json");
    for _ in 0..5 {
        let r = server.post("/webhook/worker-pool/prometheus?action=up&step=1", &firing);
        assert_eq!(r.status, 202, "{}", r.body);
    }
    let mut p = Value::Null;
    wait_for("applied 4", 20, || {
        p = server.get_json("/pools/worker-pool");
        p["applied"] == 4
    });
    // The five notifications were accepted (and applied to the book) before that: the state
    // is final.
    let p2 = server.get_json("/pools/worker-pool");
    assert_eq!(
        (p["applied"].clone(), p2["desired"].clone()),
        (4.into(), 4.into()),
        "{p2:#}\n{}",
        server.logs()
    );
    assert_eq!(p2["signals"].as_array().map(Vec::len), Some(2), "two firing alerts are two levels");
    assert_eq!(ups(&t), 1);

    // Resolved clears both levels and changes nothing.
    let r =
        server.post("/webhook/worker-pool/prometheus", &fixture("alertmanager-v4-resolved.json"));
    assert_eq!(r.status, 202, "{}", r.body);
    let p = server.get_json("/pools/worker-pool");
    assert_eq!(p["signals"].as_array().map(Vec::len), Some(0));
    assert_eq!(p["desired"], 4);
}

#[test]
fn a_pool_label_that_differs_from_the_path_is_rejected() {
    let t = project("", 3);
    let server = serve(&t, &[]);
    // The fixture says `pool="worker-pool"`; the path says `workers`.
    let r = server.post(
        "/webhook/workers/prometheus?action=up&step=1",
        &fixture("alertmanager-v4-firing.json"),
    );
    assert!((400..500).contains(&r.status), "{} {}", r.status, r.body);
    assert!(r.body.contains("worker-pool"), "{}", r.body);
    // Refused synchronously: nothing was enqueued.
    assert_eq!(server.pool()["desired"], 3);
    assert_eq!(ups(&t), 0);
    // Without a direction anywhere: 422, never a default step.
    let no_label = fixture("alertmanager-v4-firing.json").replace("\"pool\": \"worker-pool\",", "");
    let r = server.post("/webhook/workers/prometheus", &no_label);
    assert_eq!(r.status, 422, "{}", r.body);
}
