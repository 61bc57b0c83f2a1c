//! Auth, body limits, rate limits and the bounded queue under a burst.

use std::collections::HashSet;
use std::time::Instant;

use super::*;

#[test]
fn tokens_rotation_and_body_limit() {
    let t = project("", 3);
    let server = serve(&t, &["--token", "next-token", "--max-body", "1024"]);
    let body = r#"{"delta": 1}"#;
    let r = server.request("POST", "/webhook/workers/delta", &[], body);
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(r.headers.contains("www-authenticate: bearer"));
    let r = server.request(
        "POST",
        "/webhook/workers/delta",
        &[("Authorization", "Bearer wrong")],
        body,
    );
    assert_eq!(r.status, 403);
    // Both tokens work during a rotation.
    let r = server.request(
        "POST",
        "/webhook/workers/delta",
        &[("Authorization", "Bearer next-token")],
        body,
    );
    assert_eq!(r.status, 202, "{}", r.body);
    let big = format!(r#"{{"delta": 1, "pad": "{}"}}"#, "x".repeat(4096));
    assert_eq!(server.post("/webhook/workers/delta", &big).status, 413);
    let r = server.post("/webhook/workerz/delta", body);
    assert_eq!(r.status, 404);
    assert!(r.body.contains("did you mean `workers`"), "{}", r.body);
    assert_eq!(server.post("/webhook/workers/delta", "{not json").status, 400);
    assert_eq!(server.post("/webhook/workers/delta", r#"{"delta": 0}"#).status, 422);
    // Tokens never reach the log: checked once the accepted delta was applied and logged, so
    // the log holds the lines these requests led to.
    server.wait_pool("applied 4", |p| p["applied"] == 4);
    wait_for("the apply in the log", 20, || server.logs().contains("info: applied"));
    let logs = server.logs();
    assert!(
        !logs.contains(TOKEN) && !logs.contains("next-token") && !logs.contains("wrong"),
        "{logs}"
    );
}

#[test]
fn idempotency_key_applies_a_delta_once() {
    let t = project("", 3);
    let server = serve(&t, &[]);
    let h = [
        ("Authorization", format!("Bearer {TOKEN}")),
        ("Idempotency-Key", "deploy-42".to_string()),
    ];
    let hs: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(
        server.request("POST", "/webhook/workers/delta", &hs, r#"{"delta": 2}"#).status,
        202
    );
    let r = server.request("POST", "/webhook/workers/delta", &hs, r#"{"delta": 2}"#);
    assert_eq!((r.status, r.json()["duplicate"].clone()), (200, true.into()));
    server.wait_pool("applied 5", |p| p["applied"] == 5);
    // The duplicate was never enqueued.
    assert_eq!(server.pool()["desired"], 5);
    // `/count` sets an absolute value (clamped to `max`).
    assert_eq!(server.post("/webhook/workers/count", r#"{"value": 50}"#).status, 202);
    let p = server.wait_pool("desired 10", |p| p["desired"] == 10);
    assert!(p["lastDecision"]["guardrails"].to_string().contains("max"), "{p:#}");
}

#[test]
fn a_thousand_webhooks_in_a_second_are_all_answered_and_make_at_most_two_updates() {
    let t = project("", 3);
    let server = serve(&t, &["--rate-limit", "600", "--rate-burst", "300", "--queue-size", "256"]);
    let addr = server.addr.clone();
    let started = Instant::now();
    let threads: Vec<_> = (0..25)
        .map(|th| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                (0..40)
                    .map(|i| {
                        let key = format!("burst-{th}-{i}");
                        let auth = format!("Bearer {TOKEN}");
                        let r = http(
                            &addr,
                            "POST",
                            "/webhook/workers/delta",
                            &[("Authorization", &auth), ("Idempotency-Key", &key)],
                            r#"{"delta": 1}"#,
                        );
                        (key, r)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let results: Vec<(String, Response)> =
        threads.into_iter().flat_map(|h| h.join().expect("client thread")).collect();
    let elapsed = started.elapsed();
    assert_eq!(results.len(), 1000);
    let mut accepted = HashSet::new();
    for (key, r) in &results {
        assert!(matches!(r.status, 202 | 429 | 503), "request {key} got {}: {}", r.status, r.body);
        if r.status == 429 || r.status == 503 {
            assert!(r.headers.contains("retry-after:"), "{key}: {}", r.headers);
        }
        if r.status == 202 {
            accepted.insert(key.clone());
        }
    }
    assert!(!accepted.is_empty());
    eprintln!("burst: {} accepted of 1000 in {elapsed:?}", accepted.len());
    // A 202 means the audit record was written before the answer.
    let logged: HashSet<String> =
        audit(&t, "signal").iter().filter_map(|r| r["key"].as_str().map(str::to_string)).collect();
    let missing: Vec<_> = accepted.iter().filter(|k| !logged.contains(*k)).collect();
    assert!(
        missing.is_empty(),
        "{} accepted requests missing from the audit log, e.g. {:?}",
        missing.len(),
        missing.first()
    );
    server.wait_pool("applied 10", |p| p["applied"] == 10);
    let n = ups(&t);
    assert!((1..=2).contains(&n), "pulumi up ran {n} times");
}
