//! `--ha`: three replicas sharing a real `redis-server`, the fake `pulumi` recording every
//! call. Webhooks spread over the replicas count once; one leader applies; a killed or stopped
//! leader is replaced, and a stopped one does not apply when it resumes; a Redis restart ends
//! with one leader.

use crate::common::receiver::Receiver;
use crate::common::redis::RedisServer;

use super::*;

/// The lease TTL of these tests (renewed every third of it).
const LEASE: &str = "1500ms";

fn no_cooldowns() -> Test {
    let t = project("", 3);
    let yaml = std::fs::read_to_string(t.path().join("pilum-scale.yaml")).expect("pools").replace(
        "cooldown_up: 1h\n    cooldown_down: 1h\n",
        "cooldown_up: 0\n    cooldown_down: 0\n",
    );
    t.file("pilum-scale.yaml", &yaml)
}

pub(super) fn replica(t: &Test, redis: &RedisServer, i: usize, extra: &[&str]) -> Server {
    let (id, dir) = (format!("r{i}"), format!("state-{i}"));
    let url = redis.url();
    let mut args: Vec<&str> =
        vec!["--ha", &url, "--ha-id", &id, "--ha-lease", LEASE, "--state-dir", &dir];
    args.extend_from_slice(extra);
    serve(t, &args)
}

fn cluster(t: &Test, redis: &RedisServer, extra: &[&str]) -> Vec<Option<Server>> {
    (0..3).map(|i| Some(replica(t, redis, i, extra))).collect()
}

/// The `ha` object of a replica's `GET /pools`.
fn role(s: &Server) -> Value {
    s.get_json("/pools")["ha"].clone()
}

/// Wait until exactly one running replica says it leads and the others name it; its index.
fn one_leader(rs: &[Option<Server>]) -> usize {
    let mut found = None;
    wait_for("exactly one leader", 30, || {
        let roles: Vec<(usize, Value)> =
            rs.iter().enumerate().filter_map(|(i, s)| s.as_ref().map(|s| (i, role(s)))).collect();
        let leaders: Vec<usize> =
            roles.iter().filter(|(_, r)| r["role"] == "leader").map(|(i, _)| *i).collect();
        let [l] = leaders[..] else { return false };
        let id = format!("r{l}");
        found = Some(l);
        roles.iter().all(|(_, r)| r["leader"] == id.as_str())
    });
    found.expect("found above")
}

fn delta(s: &Server, n: i64, key: Option<&str>) -> Response {
    let auth = format!("Bearer {TOKEN}");
    let mut headers = vec![("Authorization", auth.as_str())];
    if let Some(k) = key {
        headers.push(("Idempotency-Key", k));
    }
    s.request("POST", "/webhook/workers/delta", &headers, &format!(r#"{{"delta": {n}}}"#))
}

fn signal(name: &str, pid: u32) {
    let ok = std::process::Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(ok.success(), "kill -{name} {pid}");
}

#[test]
fn webhooks_to_any_replica_count_once_and_only_the_leader_applies() {
    let redis = RedisServer::start();
    let t = no_cooldowns();
    let rs = cluster(&t, &redis, &[]);
    let l = one_leader(&rs);
    let all: Vec<&Server> = rs.iter().flatten().collect();
    // One Idempotency-Key sent to every replica: accepted once.
    let answers: Vec<u16> = all.iter().map(|s| delta(s, 1, Some("k-1")).status).collect();
    assert_eq!(answers, vec![202, 200, 200], "the key is shared");
    // A distinct signal to each replica: each counts.
    for s in &all {
        assert_eq!(delta(s, 1, None).status, 202);
    }
    let leader = all[l];
    let p = leader.wait_pool("applied 7", |p| p["applied"] == 7);
    let generation = p["generation"].as_u64().expect("generation");
    let ups = ups(&t);
    assert!(ups >= 1 && ups as u64 <= generation, "{ups} updates for {generation} generations");
    // The followers show the leader's record.
    for s in &all {
        s.wait_pool("the shared record", |p| p["desired"] == 7 && p["applied"] == 7);
    }
    let page = leader.request("GET", &format!("/?token={TOKEN}"), &[], "").body;
    assert!(page.contains(&format!("r{l} (this replica `r{l}` is the leader")), "{page}");
    let token = role(leader)["token"].as_u64().expect("the leader's token");
    assert!(token >= 1);
    for (i, s) in all.iter().enumerate() {
        let metrics = s.request("GET", "/metrics", &[], "").body;
        let want = format!("pilum_scale_leader {}", u8::from(i == l));
        assert!(metrics.contains(&want), "r{i}: {metrics}");
        let ready = s.request("GET", "/readyz", &[], "");
        assert_eq!(ready.status, 200, "{}", ready.body);
        assert_eq!(ready.json()["ha"]["leader"], format!("r{l}"), "{}", ready.body);
    }
    let follower = all[(l + 1) % 3];
    let r = follower.post("/pools/workers/pause", r#"{"reason": "drill"}"#);
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.body.contains(&format!("the leader `r{l}`")), "{}", r.body);
    // Every apply the leader audited carries its token; no follower applied.
    for i in 0..3 {
        let applies: Vec<Value> =
            std::fs::read_to_string(t.path().join(format!("state-{i}/audit.jsonl")))
                .unwrap_or_default()
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .filter(|v| v["event"] == "apply")
                .collect();
        if i == l {
            assert!(
                !applies.is_empty() && applies.iter().all(|a| a["fence"] == token),
                "{applies:#?}"
            );
        } else {
            assert!(applies.is_empty(), "r{i} applied: {applies:#?}");
        }
    }
}

#[test]
fn a_killed_leader_is_replaced_within_the_lease_and_no_signal_is_lost() {
    let redis = RedisServer::start();
    let chat = Receiver::ok();
    let t = no_cooldowns();
    let yaml = std::fs::read_to_string(t.path().join("pilum-scale.yaml")).expect("pools");
    let notify = format!(
        "notify:\n  - {{ notifier: webhook, url: \"{}/\", events: [leader_changed] }}\n",
        chat.url
    );
    let t = t.file("pilum-scale.yaml", &format!("{notify}{yaml}"));
    // A long debounce: the kill lands inside the burst, before the leader decides.
    let mut rs = cluster(&t, &redis, &["--debounce", "2s", "--notify-coalesce", "10ms"]);
    let l = one_leader(&rs);
    let old_token = role(rs[l].as_ref().expect("leader"))["token"].as_u64().expect("token");
    // A burst spread over every replica, the leader included.
    for s in rs.iter().flatten() {
        assert_eq!(delta(s, 1, None).status, 202);
    }
    let mut killed = rs[l].take().expect("leader");
    killed.child.kill().expect("SIGKILL the leader");
    let _ = killed.child.wait();
    let at = Instant::now();
    let n = one_leader(&rs);
    let took = at.elapsed();
    eprintln!("failover: a new leader {took:?} after SIGKILL (lease {LEASE}, renewed every third)");
    // More of the burst, to the survivors.
    for s in rs.iter().flatten() {
        assert_eq!(delta(s, 1, None).status, 202);
    }
    let new = rs[n].as_ref().expect("new leader");
    assert!(role(new)["token"].as_u64().expect("token") > old_token);
    new.wait_pool("every accepted signal applied", |p| p["applied"] == 8);
    // No update ran twice for one generation: each `up` names a different change.
    let messages: Vec<String> = t
        .calls("pulumi")
        .iter()
        .filter(|c| c.first().is_some_and(|a| a == "up"))
        .map(|c| c.iter().skip_while(|a| *a != "--message").nth(1).cloned().unwrap_or_default())
        .collect();
    let mut unique = messages.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), messages.len(), "{messages:#?}");
    // The new leader said so.
    let id = format!("r{n}");
    wait_for("leader_changed from the new leader", 20, || {
        chat.requests().iter().any(|r| {
            let e = r.json();
            e["event"] == "leader_changed" && e["scale"]["leader"] == id.as_str()
        })
    });
}

#[test]
fn a_leader_stopped_past_its_lease_does_not_apply_when_it_resumes() {
    let redis = RedisServer::start();
    let t = no_cooldowns();
    let rs = cluster(&t, &redis, &["--debounce", "1s"]);
    let l = one_leader(&rs);
    let stopped = rs[l].as_ref().expect("leader");
    let pid = stopped.child.id();
    assert_eq!(delta(stopped, 1, None).status, 202);
    signal("STOP", pid);
    let others: Vec<Option<&Server>> =
        rs.iter().enumerate().map(|(i, s)| if i == l { None } else { s.as_ref() }).collect();
    let mut new = None;
    wait_for("a new leader while the old one is stopped", 30, || {
        new = others.iter().flatten().find(|s| role(s)["role"] == "leader").copied();
        new.is_some()
    });
    let new = new.expect("found above");
    new.wait_pool("the signal applied by the new leader", |p| p["applied"] == 4);
    signal("CONT", pid);
    wait_for("the resumed replica follows", 30, || role(stopped)["role"] == "follower");
    stopped.wait_pool("the new leader's record", |p| p["applied"] == 4);
    assert_eq!(ups(&t), 1, "the resumed replica applied nothing: {:?}", t.calls("pulumi"));
    let applies = std::fs::read_to_string(t.path().join(format!("state-{l}/audit.jsonl")))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("\"event\":\"apply\""))
        .count();
    assert_eq!(applies, 0, "{}", stopped.logs());
}

#[test]
fn replicas_reconnect_after_a_redis_restart_and_one_leads() {
    let mut redis = RedisServer::start();
    let t = no_cooldowns();
    let rs = cluster(&t, &redis, &[]);
    one_leader(&rs);
    redis.restart();
    let l = one_leader(&rs);
    // Signals flow again, through any replica.
    let f = (l + 1) % 3;
    wait_for("a follower accepts again", 30, || {
        delta(rs[f].as_ref().expect("follower"), 1, None).status == 202
    });
    rs[l].as_ref().expect("leader").wait_pool("applied 4", |p| p["applied"] == 4);
}

#[test]
fn an_unreachable_redis_stops_the_start_without_showing_its_password() {
    // A port nothing listens on: bind one, then let it go.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let url = format!("redis://:hunter2@127.0.0.1:{port}/0");
    let r = serve_once(no_cooldowns()).args(["--ha", &url]).run().code(2);
    assert!(
        r.stderr.contains(&format!("cannot reach Redis at `redis://***@127.0.0.1:{port}/0`")),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("hunter2") && !r.stdout.contains("hunter2"), "{}", r.stderr);
    // Nor does `--help` with the URL in the environment.
    let help =
        Test::new().env("PILUM_SCALE_HA", &url).args(["scale", "serve", "--help"]).run().success();
    assert!(
        help.stdout.contains("--ha <URL>") && !help.stdout.contains("hunter2"),
        "{}",
        help.stdout
    );
}
