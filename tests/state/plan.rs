//! `pilum plan` and dry runs read the build cache, and only read it: what a real run would
//! skip and why, per service, in the text and in `--json`; nothing written under `.pilum/`.

use std::collections::BTreeMap;
use std::path::Path;

use super::{clone, pilum, spanned};
use crate::common::Test;
use crate::common::redis::RedisServer;

/// Every file under `dir` with its content (a directory: `None`), by relative path.
fn tree(dir: &Path) -> BTreeMap<String, Option<Vec<u8>>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).expect("read a directory of `.pilum/`") {
            let p = e.expect("a directory entry").path();
            let rel = p.strip_prefix(dir).expect("under the root").display().to_string();
            if p.is_dir() {
                out.insert(rel, None);
                todo.push(p);
            } else {
                out.insert(rel, Some(std::fs::read(&p).expect("read a file of `.pilum/`")));
            }
        }
    }
    out
}

/// The services' `cache` of `plan --json`, by name.
fn cache_of(t: &Test, args: &[&str]) -> BTreeMap<String, serde_json::Value> {
    let mut argv = vec!["--json", "plan"];
    argv.extend_from_slice(args);
    let r = pilum(t, &argv).success();
    let doc: serde_json::Value = serde_json::from_str(r.stdout.trim()).expect("one JSON document");
    assert_eq!(doc["event"], "plan", "{}", r.stdout);
    doc["plan"]["services"]
        .as_array()
        .expect("services")
        .iter()
        .map(|s| (s["name"].as_str().unwrap().to_string(), s["cache"].clone()))
        .collect()
}

fn project(log: &Path) -> Test {
    let lib = "name: lib\nrecipe: web\nweb:\n  rev: lib-1\n";
    let app = "name: app\nrecipe: web\ndepends_on: [lib]\nweb:\n  rev: app-1\n";
    clone("one", log, 0.0, &[("lib", lib), ("app", app), ("other", &spanned("other"))])
}

#[test]
fn plan_says_what_a_run_would_skip_and_writes_nothing() {
    let shared = tempfile::tempdir().unwrap();
    let log = shared.path().join("spans.log");
    let t = project(&log);
    pilum(&t, &["deploy", "--tag", "v1"]).success();
    let state = t.path().join(".pilum");
    let before = tree(&state);
    // Unchanged: every service is up to date, under its line and at each task it skips.
    let r = pilum(&t, &["plan", "--tag", "v2"]).success();
    for s in ["lib", "app", "other"] {
        let line = r.stdout.lines().position(|l| l.trim_start().starts_with(s)).expect(s);
        let next = r.stdout.lines().nth(line + 1).unwrap_or_default();
        assert!(next.contains("cache: up to date (v1 is live, release hash "), "{}", r.stdout);
    }
    assert!(r.stdout.contains("skipped: cached"), "{}", r.stdout);
    let all = cache_of(&t, &["--tag", "v2"]);
    assert_eq!(all.len(), 3);
    for (name, c) in &all {
        assert_eq!(c["cache"], "up_to_date", "{name}: {c}");
        assert_eq!(c["service"], name.as_str());
        assert_eq!(c["version"], "v1");
        assert_eq!(c["hash"].as_str().unwrap().len(), 64, "{c}");
        assert!(c["run"].is_string(), "{c}");
    }
    // One file of `lib` changes: `lib` runs everything, `app` only redeploys (its build is
    // reused), `other` is up to date.
    t.write("lib/main.txt", "changed\n");
    let r = pilum(&t, &["plan"]).success();
    assert!(r.stdout.contains("cache: build and push reused (v1, input hash "), "{}", r.stdout);
    let c = cache_of(&t, &[]);
    assert!(c["lib"].is_null(), "{}", c["lib"]);
    assert_eq!(c["app"]["cache"], "build");
    assert_eq!(c["app"]["version"], "v1");
    assert_eq!(c["other"]["cache"], "up_to_date");
    let dry = pilum(&t, &["deploy", "--dry-run"]).success();
    assert!(dry.stderr.contains("cache: `app` build and push reused (v1"), "{}", dry.stderr);
    assert!(dry.stderr.contains("cache: `other` is up to date (v1 is live"), "{}", dry.stderr);
    let dry = pilum(&t, &["--json", "deploy", "--dry-run"]).success();
    let plan_event = dry
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["event"] == "plan")
        .expect("a plan event");
    let app =
        plan_event["plan"]["services"].as_array().unwrap().iter().find(|s| s["name"] == "app");
    assert_eq!(app.expect("app")["cache"]["cache"], "build", "{plan_event}");
    // `--no-cache` and `--force`: no cache consulted.
    for off in ["--no-cache", "--force"] {
        assert!(cache_of(&t, &[off]).values().all(serde_json::Value::is_null));
        let r = pilum(&t, &["plan", off]).success();
        assert!(!r.stdout.contains("cache:"), "{}", r.stdout);
    }
    // Nothing under `.pilum/` was written (a dry run saves its run for `pilum report`, and
    // nothing else).
    let mut after = tree(&state);
    after.retain(|k, _| !k.starts_with("runs"));
    let mut before = before;
    before.retain(|k, _| !k.starts_with("runs"));
    assert_eq!(before.keys().collect::<Vec<_>>(), after.keys().collect::<Vec<_>>());
    assert!(before == after, "a file under `.pilum/` changed");
}

#[test]
fn plan_reads_a_shared_cache_and_warns_when_it_is_unreachable() {
    let mut redis = RedisServer::start();
    let url = redis.url();
    let shared = tempfile::tempdir().unwrap();
    let log = shared.path().join("spans.log");
    let t = project(&log);
    pilum(&t, &["deploy", "--tag", "v1", "--state", &url]).success();
    let c = cache_of(&t, &["--state", &url]);
    assert!(c.values().all(|c| c["cache"] == "up_to_date"), "{c:?}");
    // The file backend of this checkout has nothing.
    assert!(cache_of(&t, &["--state", "file"]).values().all(serde_json::Value::is_null));
    redis.stop();
    // Plan runs nothing: it says the cache was not consulted, and plans.
    let r = pilum(&t, &["plan", "--state", &url]).success();
    assert!(
        r.stderr.contains(&format!("cache not consulted: cannot reach the state backend `{url}`")),
        "{}",
        r.stderr
    );
    assert!(r.stdout.contains("plan: 3 services"), "{}", r.stdout);
    assert!(cache_of(&t, &["--state", &url]).values().all(serde_json::Value::is_null));
    // A malformed URL is a usage error, as for a real run.
    let r = pilum(&t, &["plan", "--state", "redis://:hunter2pw@127.0.0.1:1/zero"]).code(2);
    assert!(
        r.stderr.contains("is not a number") && !r.stderr.contains("hunter2pw"),
        "{}",
        r.stderr
    );
}
