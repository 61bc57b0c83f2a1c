//! Hostile input and failures: the state-dir lock, bounded numbers, quarantine, durable
//! accepts across SIGKILL, torn journals, idempotency keys, supervision, slow clients and
//! bounded previews.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::*;

fn auth() -> String {
    format!("Bearer {TOKEN}")
}

#[test]
fn a_second_server_on_the_same_state_dir_exits_2_naming_the_holder() {
    let t = project("", 3);
    let first = serve(&t, &[]);
    // The same project and state dir, in a second process.
    let out = t
        .command()
        .args(SERVE_ARGS)
        .env("PILUM_FAKE_DIR", t.path())
        .output()
        .expect("run the second server");
    let second = crate::common::Run {
        status: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
    .code(2);
    let pid = first.child.id().to_string();
    assert!(second.stderr.contains(&format!("(pid {pid})")), "{}", second.stderr);
    assert!(
        second.stderr.contains("is in use by another `pilum scale serve`"),
        "{}",
        second.stderr
    );
    // The first server is untouched.
    assert_eq!(first.post("/webhook/workers/delta", r#"{"delta": 1}"#).status, 202);
    first.wait_pool("applied 4", |p| p["applied"] == 4);
}

#[test]
fn numbers_beyond_their_bounds_are_422_naming_the_limit() {
    let t = project("", 3);
    let server = serve(&t, &[]);
    for (path, body, needle) in [
        (
            "/webhook/workers/delta",
            r#"{"delta": 9223372036854775807}"#,
            "`delta` must be between -1000000 and 1000000",
        ),
        ("/webhook/workers/delta", r#"{"delta": -9223372036854775807}"#, "`delta` must be between"),
        ("/webhook/workers/count", r#"{"value": -5}"#, "`value` must be between 0 and 1000000"),
        (
            "/webhook/workers/count",
            r#"{"value": 1000001}"#,
            "`value` must be between 0 and 1000000",
        ),
        (
            "/scale/workers?dryRun=true",
            r#"{"delta": 9223372036854775807}"#,
            "`delta` must be between",
        ),
    ] {
        let r = server.post(path, body);
        assert_eq!(r.status, 422, "{path} {body}: {}", r.body);
        assert!(r.json()["error"].as_str().unwrap_or("").contains(needle), "{path}: {}", r.body);
    }
    let alert = alert_without_pool().replace(
        "\"value\": \"1532\"",
        "\"pilum_action\": \"up\", \"pilum_step\": \"9223372036854775807\"",
    );
    let r = server.post("/webhook/workers/prometheus", &alert);
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("between 1 and 1000000"), "{}", r.body);
    let plain = alert.replace(
        "\"pilum_action\": \"up\", \"pilum_step\": \"9223372036854775807\"",
        "\"x\": \"y\"",
    );
    let r = server.post("/webhook/workers/prometheus?action=up&step=9223372036854775807", &plain);
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("`step` must be between 1 and 1000000"), "{}", r.body);
    // Nothing was accepted, and the pool still decides.
    assert_eq!(server.post("/webhook/workers/delta", r#"{"delta": 1}"#).status, 202);
    server.wait_pool("applied 4", |p| p["applied"] == 4);
}

/// A strategy that fails on any alert whose metric is above 1000, and sums the intents.
const PICKY: &str = r#"
fn decide(ctx) {
    let d = 0;
    for s in ctx.signals {
        if s.source == "prometheus" && s.metric != () && s.metric > 1000.0 { throw "metric out of range"; }
        if s.kind == "intent" { d += s.step; }
    }
    if d == 0 { return (); }
    #{ delta: d, reason: "intents" }
}
"#;

#[test]
fn a_signal_that_breaks_the_strategy_is_quarantined_and_the_others_proceed() {
    let t =
        project("    strategy: strategies/picky.rhai\n", 3).file("strategies/picky.rhai", PICKY);
    let server = serve(&t, &["--debounce", "1s"]);
    let alert = alert_without_pool();
    // Both arrive within one debounce: one decision sees the bad alert and the good delta.
    assert_eq!(server.post("/webhook/workers/prometheus?action=up&step=1", &alert).status, 202);
    assert_eq!(server.post("/webhook/workers/delta", r#"{"delta": 2}"#).status, 202);
    let p = server.wait_pool("the delta applied", |p| p["applied"] == 5);
    // The fixture's two alerts both carry a metric above 1000.
    let quarantined = p["quarantined"].as_array().cloned().unwrap_or_default();
    assert_eq!(quarantined.len(), 2, "{p:#}");
    for q in &quarantined {
        assert_eq!(q["signal"]["source"], "prometheus", "{p:#}");
        assert!(q["reason"].as_str().unwrap_or("").contains("metric out of range"), "{p:#}");
    }
    assert!(
        p["signals"].as_array().is_some_and(|s| s.iter().all(|s| s["source"] != "prometheus")),
        "{p:#}"
    );
    let q = audit(&t, "quarantine");
    assert_eq!(q.len(), 2, "{q:?}");
    let metrics = server.request("GET", "/metrics", &[], "").body;
    assert!(
        metrics.contains("pilum_scale_quarantined_signals_total{pool=\"workers\"} 2"),
        "{metrics}"
    );
}

#[test]
fn a_poisoned_signals_file_never_blocks_a_restart() {
    let poisoned = r#"{"workers": {"levels": {}, "intents": [
        {"kind": "intent", "source": "delta", "name": "delta", "key": "k1", "action": "up",
         "step": 9223372036854775807, "value": null, "metric": null, "since": "2026-01-01T00:00:00Z"},
        {"kind": "intent", "source": "count", "name": "count", "key": "k2", "action": "set",
         "step": 0, "value": 6, "metric": null, "since": "2026-01-01T00:00:00Z"}]}}"#;
    let t = project("", 3).file("state/signals.json", poisoned);
    let server = serve(&t, &[]);
    let p = server.wait_pool("the good signal applied", |p| p["applied"] == 6);
    assert_eq!(p["quarantined"].as_array().map(Vec::len), Some(1), "{p:#}");
    assert!(
        p["quarantined"][0]["reason"].as_str().unwrap_or("").contains("`step` must be between"),
        "{p:#}"
    );
}

#[test]
fn accepted_deltas_survive_sigkill_and_are_applied_once_after_restart() {
    let t = project("", 3);
    {
        // A long debounce: the three deltas are accepted and still pending when the kill comes.
        let mut server = serve(&t, &["--debounce", "1h"]);
        for _ in 0..3 {
            assert_eq!(server.post("/webhook/workers/delta", r#"{"delta": 1}"#).status, 202);
        }
        server.child.kill().expect("SIGKILL");
        server.child.wait().expect("reaped");
    }
    assert_eq!(ups(&t), 0);
    let server = serve(&t, &[]);
    server.wait_pool("the three deltas applied", |p| p["applied"] == 6);
    // Once: after a clean restart nothing is replayed again.
    drop(server);
    let server = serve(&t, &[]);
    let p = server.pool();
    assert_eq!((p["desired"].clone(), p["pendingIntents"].clone()), (6.into(), 0.into()), "{p:#}");
    assert_eq!(ups(&t), 1, "{}", server.logs());
}

#[test]
fn a_torn_audit_line_is_terminated_before_the_next_record() {
    let t = project("", 3).file("state/audit.jsonl", "{\"event\": \"signal\", \"pool\": \"wor");
    let server = serve(&t, &[]);
    assert_eq!(server.post("/webhook/workers/delta", r#"{"delta": 1}"#).status, 202);
    server.wait_pool("applied 4", |p| p["applied"] == 4);
    let text = std::fs::read_to_string(t.path().join("state/audit.jsonl")).expect("audit");
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("{\"event\": \"signal\", \"pool\": \"wor"), "{text}");
    for line in lines {
        serde_json::from_str::<Value>(line).unwrap_or_else(|e| panic!("{e}: {line}\n{text}"));
    }
    assert!(audit(&t, "signal").iter().any(|s| s["source"] == "delta"), "{text}");
}

#[test]
fn an_idempotency_key_reused_with_another_body_or_route_is_422() {
    let t = project("", 3);
    let server = serve(&t, &[]);
    let a = auth();
    let h = [("Authorization", a.as_str()), ("Idempotency-Key", "deploy-7")];
    assert_eq!(server.request("POST", "/webhook/workers/delta", &h, r#"{"delta": 1}"#).status, 202);
    let r = server.request("POST", "/webhook/workers/delta", &h, r#"{"delta": 1}"#);
    assert_eq!((r.status, r.json()["duplicate"].clone()), (200, true.into()), "{}", r.body);
    let r = server.request("POST", "/webhook/workers/delta", &h, r#"{"delta": 3}"#);
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("another body"), "{}", r.body);
    let r = server.request("POST", "/webhook/workers/count", &h, r#"{"value": 4}"#);
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("/webhook/workers/delta"), "{}", r.body);
    server.wait_pool("applied 4", |p| p["applied"] == 4);
}

#[test]
fn every_accepted_request_is_in_the_decision_that_consumed_it_and_keys_never_repeat() {
    let t = project("", 3);
    let mut keys = Vec::new();
    for _ in 0..2 {
        let mut server = serve(&t, &["--debounce", "500ms"]);
        for _ in 0..20 {
            let r = server.post("/webhook/workers/delta", r#"{"delta": 1}"#);
            assert_eq!(r.status, 202);
            keys.push(r.json()["idempotencyKey"].as_str().expect("key").to_string());
        }
        wait_for("the burst decided", 20, || {
            audit(&t, "decision").iter().map(|d| d["requests"].as_u64().unwrap_or(0)).sum::<u64>()
                >= keys.len() as u64
        });
        server.terminate();
        assert_eq!(server.wait_exit(20), 0);
    }
    let unique: std::collections::HashSet<&String> = keys.iter().collect();
    assert_eq!(unique.len(), 40, "generated keys repeat across restarts: {keys:?}");
    let decided: std::collections::HashSet<String> = audit(&t, "decision")
        .iter()
        .flat_map(|d| d["idempotency_keys"].as_array().cloned().unwrap_or_default())
        .filter_map(|k| k.as_str().map(str::to_string))
        .collect();
    for k in &keys {
        assert!(decided.contains(k), "request {k} is in no decision");
    }
}

#[test]
fn a_state_record_out_of_bounds_stops_the_start() {
    let record = r#"{"pool": "workers", "desired": 99999, "generation": 3, "applied": -5,
        "applied_generation": 3, "last_result": null, "last_up": null, "last_down": null, "up_base": null}"#;
    let t = serve_once(project("", 3).file("state/workers.json", record));
    let r = t.run().code(2);
    assert!(r.stderr.contains("has `desired` 99999, outside [1, 10]"), "{}", r.stderr);
    assert!(r.stderr.contains("help: fix the value, or move the record away"), "{}", r.stderr);
    assert_eq!(ups(&t), 0);
}

#[test]
fn hostile_durations_are_located_errors_in_check_simulate_and_serve() {
    for bad in [".inf", "1e300", "\"999999999999999999h\"", "9223372036854775807", "-1"] {
        let yaml = pools_yaml("").replace("cooldown_up: 1h", &format!("cooldown_up: {bad}"));
        for args in [
            vec!["scale", "check"],
            vec!["scale", "simulate", "--signals", "s.jsonl"],
            vec!["scale", "serve", "--listen", "127.0.0.1:0", "--token", "x"],
        ] {
            let r = Test::new()
                .file("pilum-scale.yaml", &yaml)
                .file("s.jsonl", "")
                .args(args.clone())
                .run();
            assert_eq!(r.status, 2, "{bad} {args:?}: {}", r.stderr);
            assert!(r.stderr.contains("field `cooldown_up`"), "{bad}: {}", r.stderr);
            assert!(r.stderr.contains("pilum-scale.yaml:10:5"), "{bad}: {}", r.stderr);
            assert!(!r.stderr.contains("panicked"), "{bad}: {}", r.stderr);
        }
    }
}

#[test]
fn check_json_reports_every_problem_with_its_location() {
    let yaml = pools_yaml("    cooldwon_down: 5m\n    strategy: incremantal\n")
        .replace("min: 1", "min: 20");
    let r = Test::new()
        .file("pilum-scale.yaml", &yaml)
        .args(["--json", "scale", "check"])
        .run()
        .code(2);
    let v: Value = serde_json::from_str(&r.stdout).expect("json");
    let errors = v["errors"].as_array().cloned().unwrap_or_default();
    assert!(errors.len() >= 2, "{v:#}");
    for e in &errors {
        assert!(
            e["line"].as_u64().unwrap_or(0) > 0 && e["column"].as_u64().unwrap_or(0) > 0,
            "{e}"
        );
        assert!(e["file"].as_str().unwrap_or("").ends_with("pilum-scale.yaml"), "{e}");
    }
    assert!(errors.iter().any(|e| e["suggestion"] == "cooldown_down"), "{v:#}");
    let text = v.to_string();
    assert!(text.contains("greater than `max`") && text.contains("unknown strategy"), "{v:#}");
    assert!(errors.iter().any(|e| e["suggestion"] == "incremental"), "{v:#}");
    // The help names every built-in strategy: one per file in `scripts/`.
    let help = errors
        .iter()
        .find(|e| e["message"].as_str().is_some_and(|m| m.contains("unknown strategy")))
        .and_then(|e| e["help"].as_str())
        .unwrap_or_default()
        .to_string();
    let dir = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts")).expect("scripts/");
    for f in dir.flatten() {
        let name =
            f.path().file_stem().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        assert!(help.contains(&format!("`{name}`")), "`{name}` missing from: {help}");
    }
}

#[test]
fn a_crashed_decision_loop_is_restarted_and_never_drops_a_webhook() {
    let t = project("", 3);
    let server = serve(&t, &["--test-fault", "decide-panic", "--debounce", "10ms"]);
    assert_eq!(server.post("/webhook/workers/delta", r#"{"delta": 1}"#).status, 202);
    // The loop panics on that decision: while it is down, readiness says why, webhooks get 503,
    // and the read routes keep answering.
    let (mut saw_down, mut refused) = (false, false);
    wait_for("the pool to go down and come back", 20, || {
        let ready = server.request("GET", "/readyz", &[], "");
        if ready.status == 503 && ready.body.contains("decision loop of pool `workers` crashed") {
            saw_down = true;
            let r = server.post("/webhook/workers/delta", r#"{"delta": 1}"#);
            if r.status == 503 {
                assert!(r.headers.contains("retry-after:"), "{}", r.headers);
                assert!(r.body.contains("cannot decide right now"), "{}", r.body);
                refused = true;
            }
            assert_eq!(server.request("GET", "/pools", &[], "").status, 200);
            assert_eq!(server.request("GET", "/metrics", &[], "").status, 200);
        }
        saw_down && ready.status == 200
    });
    assert!(refused, "no webhook was refused while the loop was down");
    // The delta accepted before the crash is decided by the restarted loop.
    let p = server.wait_pool("the delta applied", |p| p["applied"].as_i64() >= Some(4));
    assert!(p["down"].is_null(), "{p:#}");
    assert!(server.logs().contains("decision loop crashed"), "{}", server.logs());
}

#[test]
fn a_panicking_reload_keeps_the_old_config_and_is_reported() {
    let t = project("", 3);
    let server = serve(&t, &["--test-fault", "reload-panic"]);
    let yaml = std::fs::read_to_string(t.path().join("pilum-scale.yaml")).expect("pools");
    std::fs::write(t.path().join("pilum-scale.yaml"), yaml.replace("max: 10", "max: 12"))
        .expect("edit");
    wait_for("the reload error", 20, || {
        server.request("GET", "/readyz", &[], "").json()["reloadError"]
            .as_str()
            .is_some_and(|e| e.contains("reload panicked"))
    });
    assert_eq!(server.pool()["max"], 10, "the previous config stays");
    // The watcher survived: the next edit reloads.
    std::fs::write(t.path().join("pilum-scale.yaml"), yaml.replace("max: 10", "max: 11"))
        .expect("edit");
    wait_for("the second reload", 20, || server.pool()["max"] == 11);
}

#[test]
fn sigterm_exits_within_the_shutdown_grace_even_with_a_hung_update() {
    let t = project("", 3).file("up-sleep", "60\n");
    let mut server = serve(&t, &["--shutdown-grace", "2s"]);
    assert_eq!(server.post("/webhook/workers/delta", r#"{"delta": 1}"#).status, 202);
    wait_for("up to start", 20, || ups(&t) == 1);
    server.terminate();
    // Bounded by the grace (2 s) plus process start-up noise; a hang would run for 60 s.
    assert_eq!(server.wait_exit(8), 0, "{}", server.logs());
    assert!(server.logs().contains("interrupting pulumi"), "{}", server.logs());
}

/// Open a connection and send `bytes` without finishing the request.
fn partial(addr: &str, bytes: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.write_all(bytes.as_bytes()).expect("send");
    s.set_read_timeout(Some(Duration::from_secs(15))).expect("timeout");
    s
}

/// Whether the server closed `s` (EOF or reset), reading whatever answer it sent first.
fn closed(mut s: TcpStream) -> (bool, String) {
    let mut buf = Vec::new();
    let r = s.read_to_end(&mut buf);
    (
        r.is_ok() || r.is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
        String::from_utf8_lossy(&buf).into_owned(),
    )
}

#[test]
fn slow_clients_are_cut_off() {
    let t = project("", 3);
    let server = serve(&t, &["--header-timeout", "1s", "--request-timeout", "1s"]);
    let started = Instant::now();
    let half_headers =
        partial(&server.addr, "POST /webhook/workers/delta HTTP/1.1\r\nHost: x\r\nContent-Le");
    let auth = auth();
    let half_body = partial(
        &server.addr,
        &format!(
            "POST /webhook/workers/delta HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nContent-Length: 40\r\n\r\n{{\"delta\""
        ),
    );
    let idle = partial(&server.addr, "");
    for (what, s) in [
        ("half the headers", half_headers),
        ("half a body", half_body),
        ("an idle connection", idle),
    ] {
        let (closed, answer) = closed(s);
        assert!(closed, "{what} must not hold the connection");
        assert!(answer.is_empty() || answer.contains(" 503 "), "{what}: {answer}");
    }
    assert!(started.elapsed() < Duration::from_secs(14), "cut off by the timeouts, not the client");
    assert_eq!(server.post("/webhook/workers/delta", r#"{"delta": 1}"#).status, 202);
}

#[test]
fn connections_beyond_the_cap_are_closed_at_once() {
    let t = project("", 3);
    let server = serve(&t, &["--max-connections", "20", "--header-timeout", "60s"]);
    let idle: Vec<TcpStream> = (0..200).map(|_| partial(&server.addr, "")).collect();
    let mut closed_at_once = 0;
    for mut s in idle {
        s.set_read_timeout(Some(Duration::from_millis(100))).expect("timeout");
        let mut b = [0u8; 1];
        // EOF or a reset: closed by the server; a timeout: still held open.
        match s.read(&mut b) {
            Ok(0) => closed_at_once += 1,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => closed_at_once += 1,
            _ => {}
        }
    }
    assert!(closed_at_once >= 175, "only {closed_at_once} of 200 connections were refused");
    // The held ones are dropped with the vector: the server answers again.
    wait_for("the server to answer", 20, || {
        server.post("/webhook/workers/delta", r#"{"delta": 1}"#).status == 202
    });
}

#[test]
fn previews_are_bounded_per_stack() {
    let t = project("", 3).file("preview-sleep", "2\n");
    let server = serve(&t, &["--preview-queue", "1"]);
    let addr = server.addr.clone();
    let answers: Vec<Response> = (0..6)
        .map(|_| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                http(
                    &addr,
                    "POST",
                    "/scale/workers?dryRun=true",
                    &[("Authorization", &auth())],
                    r#"{"delta": 1}"#,
                )
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().expect("client"))
        .collect();
    let throttled: Vec<&Response> = answers.iter().filter(|r| r.status == 429).collect();
    assert!(!throttled.is_empty(), "{:?}", answers.iter().map(|r| r.status).collect::<Vec<_>>());
    for r in &throttled {
        assert!(r.headers.contains("retry-after:"), "{}", r.headers);
    }
    assert!(answers.iter().all(|r| matches!(r.status, 200 | 429)), "{answers:?}");
    assert!(
        !t.path().join("preview-overlap").exists(),
        "two previews of one stack ran at the same time"
    );
}
