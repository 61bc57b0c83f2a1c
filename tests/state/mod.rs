//! The state backend against a real `redis-server` (`common::redis`): deploy records and
//! `pilum history` from two clones, deploy locks (no overlap, a killed holder, a paused holder),
//! an unreachable backend, and the file backend's records.

mod barrier;
mod locks;
mod plan;
mod queue;

use std::path::Path;
use std::time::Duration;

use crate::common::redis::RedisServer;
use std::process::Stdio;

use crate::common::{Run, Test, wait_until};

/// A project recipe whose deploy step returns `#{revision, url}`, as every cloud recipe does.
const WEB: &str = r#"
fn recipe() {
    #{ name: "web", section: "web", fields: [ #{ name: "rev", type: "string", required: true, description: "the revision" } ],
       steps: [ #{ name: "build", tags: ["build"] }, #{ name: "deploy", tags: ["deploy"] } ] }
}
fn build(ctx) { exec::run(["span", ctx.service, "build"]); #{ image: "img:" + ctx.tag } }
fn deploy(ctx) {
    if ctx.outputs.build.image != "img:" + ctx.tag { throw "the build's outputs are missing" }
    exec::run(["span", ctx.service, "deploy"]);
    #{ revision: ctx.fields.rev, url: "https://" + ctx.service + ".example/" } }
"#;

/// One clone of a project of shell services whose steps call the fake `span`, which appends
/// `start\tend\tclone\tservice\tstep` to the shared `log` after sleeping `secs`, and, before
/// sleeping, `clone\tservice\tstep\tpid` to `log.starts`.
pub(crate) fn clone(name: &str, log: &Path, secs: f64, services: &[(&str, &str)]) -> Test {
    let mut t = Test::new().file(".gitignore", ".bin/\n.pilum/\n").file("recipes/web.rhai", WEB);
    for (svc, body) in services {
        t = t.file(&format!("{svc}/pilum.yaml"), body);
    }
    let starts = format!("{}.starts", log.display());
    let script = format!(
        "#!/bin/sh\ns=$(date +%s%N)\nprintf '%s\\t%s\\t%s\\t%s\\n' '{name}' \"$1\" \"$2\" \"$$\" >> '{starts}'\nsleep {secs}\ne=$(date +%s%N)\nprintf '%s\\t%s\\t%s\\t%s\\t%s\\n' \"$s\" \"$e\" '{name}' \"$1\" \"$2\" >> '{log}'\n",
        log = log.display()
    );
    let bin = t.path().join(".bin/span");
    std::fs::write(&bin, script).expect("write span");
    std::fs::set_permissions(&bin, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    t
}

/// A shell service whose build and deploy steps call `span`.
pub(crate) fn spanned(name: &str) -> String {
    format!(
        "name: {name}\nrecipe: shell\nshell:\n  build: span {name} build\n  deploy: span {name} deploy\n"
    )
}

/// (start, end, clone, service, step) of every finished `span`.
pub(crate) fn spans(log: &Path) -> Vec<(u128, u128, String, String, String)> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let p: Vec<&str> = l.split('\t').collect();
            Some((p[0].parse().ok()?, p[1].parse().ok()?, p[2].into(), p[3].into(), p[4].into()))
        })
        .collect()
}

/// (clone, service, step, pid) of every started `span`.
pub(crate) fn starts(log: &Path) -> Vec<(String, String, String, String)> {
    let text = std::fs::read_to_string(format!("{}.starts", log.display())).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let p: Vec<&str> = l.split('\t').collect();
            (p.len() == 4).then(|| (p[0].into(), p[1].into(), p[2].into(), p[3].into()))
        })
        .collect()
}

fn web(name: &str, rev: &str) -> String {
    format!("name: {name}\nrecipe: web\nweb:\n  rev: {rev}\n")
}

#[test]
fn a_second_clone_sees_the_first_clones_deploys_newest_first() {
    let redis = RedisServer::start();
    let shared = tempfile::tempdir().unwrap();
    let log = shared.path().join("spans.log");
    let one =
        clone("one", &log, 0.0, &[("api", &web("api", "api-00001")), ("job", &spanned("job"))])
            .env("PILUM_STATE", redis.url());
    pilum(&one, &["deploy", "--env", "prod", "--tag", "v1"]).success();
    // The same inputs again: `--force` runs it anyway.
    pilum(&one, &["deploy", "api", "--env", "prod", "--tag", "v2", "--force"]).success();
    let two = clone("two", &log, 0.0, &[]).env("PILUM_STATE", redis.url());
    let r = pilum(&two, &["--json", "history", "--env", "prod"]).success();
    let records: Vec<serde_json::Value> =
        r.stdout.lines().map(|l| serde_json::from_str(l).expect("a JSON record")).collect();
    let seen: Vec<(&str, &str)> = records
        .iter()
        .map(|r| (r["service"].as_str().unwrap(), r["version"].as_str().unwrap()))
        .collect();
    // Newest first; the first run's two services end in either order.
    assert_eq!(seen.len(), 3, "{}", r.stdout);
    assert_eq!(seen[0], ("api", "v2"));
    let mut older = seen[1..].to_vec();
    older.sort();
    assert_eq!(older, [("api", "v1"), ("job", "v1")]);
    let ids: Vec<&str> = records.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "{ids:?}");
    let api = &records[0];
    assert_eq!(api["revision"], "api-00001");
    assert_eq!(api["url"], "https://api.example/");
    assert_eq!(api["target"], "web");
    assert_eq!(api["environment"], "prod");
    assert_eq!(api["outcome"], "ok");
    assert_eq!(api["command"], "deploy");
    assert_eq!(api["lock"], "api/prod/web");
    assert!(api["fence"].as_u64().unwrap() >= 2, "{api}");
    assert!(api["input_hash"].as_str().unwrap().len() == 64, "{api}");
    assert!(api["argv"].as_str().unwrap().starts_with("pilum deploy api"), "{api}");
    // A table, one service, a limit.
    let r = pilum(&two, &["history", "api", "--limit", "1"]).success();
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", r.stdout);
    assert!(
        lines[0].starts_with("ENDED") && lines[1].contains(" api ") && lines[1].contains("v2"),
        "{}",
        r.stdout
    );
    // The file backend of the second clone has nothing.
    let r = pilum(&two, &["history", "--state", "file"]).success();
    assert!(r.stderr.contains("no deploys recorded in `file`"), "{}", r.stderr);
}

#[test]
fn an_unreachable_backend_runs_nothing_and_exits_2() {
    let mut redis = RedisServer::start();
    let url = redis.url();
    redis.stop();
    let shared = tempfile::tempdir().unwrap();
    let log = shared.path().join("spans.log");
    let t = clone("one", &log, 0.0, &[("a", &spanned("a"))]);
    let r = pilum(&t, &["deploy", "--state", &url]).code(2);
    assert!(r.stderr.contains(&format!("cannot reach the state backend `{url}`")), "{}", r.stderr);
    assert!(r.stderr.contains("nothing was run"), "{}", r.stderr);
    assert!(starts(&log).is_empty());
    // From the environment and from `pilum-project.yaml` alike; a bad URL too.
    let r = pilum_env(&t, &["deploy"], &[("PILUM_STATE", url.as_str())]).code(2);
    assert!(r.stderr.contains("cannot reach the state backend"), "{}", r.stderr);
    t.write("pilum-project.yaml", &format!("state: {url}\n"));
    let r = pilum(&t, &["history"]).code(2);
    assert!(r.stderr.contains("cannot reach the state backend"), "{}", r.stderr);
    let r = pilum(&t, &["deploy", "--state", "redis://:hunter2pw@127.0.0.1:1/zero"]).code(2);
    assert!(
        r.stderr.contains("is not a number") && !r.stderr.contains("hunter2pw"),
        "{}",
        r.stderr
    );
    assert!(starts(&log).is_empty());
}

#[test]
fn the_file_backend_records_and_skips_a_torn_record() {
    let shared = tempfile::tempdir().unwrap();
    let log = shared.path().join("spans.log");
    let t = clone("one", &log, 0.0, &[("api", &web("api", "r7"))]);
    pilum(&t, &["deploy", "--tag", "v1"]).success();
    // A crash mid-append left half a line; the next deploy ends it first.
    let journal = t.path().join(".pilum/deploys.jsonl");
    let mut text = std::fs::read_to_string(&journal).unwrap();
    text.push_str("{\"id\":\"01TORN");
    std::fs::write(&journal, text).unwrap();
    pilum(&t, &["deploy", "--tag", "v2", "--no-cache"]).success();
    let r = pilum(&t, &["--json", "history"]).success();
    assert!(r.stderr.contains("skipped 1 unreadable deploy record"), "{}", r.stderr);
    let versions: Vec<String> = r
        .stdout
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["version"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(versions, ["v2", "v1"]);
    let lines = std::fs::read_to_string(&journal).unwrap();
    assert_eq!(lines.lines().count(), 3, "{lines}");
    assert!(lines.ends_with('\n'));
}

/// Run pilum in `t` with `args`.
pub(crate) fn pilum(t: &Test, args: &[&str]) -> Run {
    pilum_env(t, args, &[])
}

/// Run pilum in `t` with `args` and more environment.
pub(crate) fn pilum_env(t: &Test, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = t.command();
    cmd.args(args).envs(env.iter().copied()).stdin(Stdio::null());
    let out = cmd.output().expect("run pilum");
    Run {
        status: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Wait for a condition on the spans' start log.
pub(crate) fn wait_started(
    log: &Path,
    what: &str,
    cond: impl Fn(&[(String, String, String, String)]) -> bool,
) {
    wait_until(what, Duration::from_secs(30), || cond(&starts(log)));
}

#[test]
fn the_cache_skips_what_did_not_change_and_reruns_dependents_deploys() {
    let shared = tempfile::tempdir().unwrap();
    let log = shared.path().join("spans.log");
    let lib = "name: lib\nrecipe: web\nweb:\n  rev: lib-1\n";
    let app = "name: app\nrecipe: web\ndepends_on: [lib]\nweb:\n  rev: app-1\n";
    let other = format!("{}watch: [\"../shared/*.txt\"]\n", spanned("other"));
    let t = clone("one", &log, 0.0, &[("lib", lib), ("app", app), ("other", &other)])
        .file("shared/a.txt", "a\n")
        .file("docs/readme.md", "nobody's\n");
    let ran = |t: &Test| -> Vec<(String, String)> {
        let s: Vec<_> = starts(&log).into_iter().map(|s| (s.1, s.2)).collect();
        std::fs::remove_file(format!("{}.starts", log.display())).ok();
        let _ = t;
        let mut s = s;
        s.sort();
        s
    };
    let pair = |a: &str, b: &str| (a.to_string(), b.to_string());
    pilum(&t, &["deploy", "--tag", "v1"]).success();
    assert_eq!(ran(&t).len(), 6);
    // Unchanged: every build, push and deploy is skipped, and said so.
    let r = pilum(&t, &["deploy", "--tag", "v2"]).success();
    assert!(ran(&t).is_empty());
    assert!(r.stderr.contains("cache: `app` is up to date (v1 is live"), "{}", r.stderr);
    // One file of `lib` changes: `lib` is rebuilt and redeployed; `app` (which depends on it)
    // reuses its build and redeploys; `other` is left alone.
    t.write("lib/main.txt", "changed\n");
    let r = pilum(&t, &["--json", "deploy", "--tag", "v3"]).success();
    assert_eq!(ran(&t), [pair("app", "deploy"), pair("lib", "build"), pair("lib", "deploy")]);
    let hits: Vec<serde_json::Value> = r
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["event"] == "cache")
        .map(|v| v["hit"].clone())
        .collect();
    let kinds: Vec<(&str, &str)> = hits
        .iter()
        .map(|h| (h["service"].as_str().unwrap(), h["cache"].as_str().unwrap()))
        .collect();
    assert_eq!(kinds, [("app", "build"), ("other", "up_to_date")], "{}", r.stdout);
    // `app`'s deploy got the reused build's outputs and tag.
    let r = pilum(&t, &["--json", "history", "app", "--limit", "1"]).success();
    let rec: serde_json::Value = serde_json::from_str(r.stdout.trim()).unwrap();
    assert_eq!(rec["version"], "v1");
    assert!(rec["cached"].is_string(), "{rec}");
    // Editing the project recipe invalidates only the services using it.
    let recipe = std::fs::read_to_string(t.path().join("recipes/web.rhai")).unwrap();
    t.write("recipes/web.rhai", &format!("{recipe}\n// edited\n"));
    pilum(&t, &["deploy", "--tag", "v4"]).success();
    let four = ["app", "lib"]
        .iter()
        .flat_map(|s| [pair(s, "build"), pair(s, "deploy")])
        .collect::<Vec<_>>();
    assert_eq!(ran(&t), four);
    // A file under a `watch:` glob counts for its service only; a file no service owns or
    // watches counts for none (the hashes look only at what the services can own).
    t.write("shared/a.txt", "b\n");
    pilum(&t, &["deploy", "--tag", "v5"]).success();
    assert_eq!(ran(&t), [pair("other", "build"), pair("other", "deploy")]);
    t.write("docs/readme.md", "still nobody's\n");
    t.write("shared/new.md", "not a .txt\n");
    pilum(&t, &["deploy", "--tag", "v6"]).success();
    assert!(ran(&t).is_empty());
    // `--no-cache` runs everything.
    pilum(&t, &["deploy", "--no-cache"]).success();
    assert_eq!(ran(&t).len(), 6);
}

/// Shards are weighed by the durations in the shared run history: a clone that never ran
/// anything cuts the same matrix as the runners that did, and a slow service gets a shard of
/// its own. From the file backend of a fresh clone the split is by task count instead.
#[test]
fn shards_are_weighed_by_the_shared_run_history() {
    let redis = RedisServer::start();
    let shared = tempfile::tempdir().unwrap();
    let log = shared.path().join("spans.log");
    let services = [("a", spanned("a")), ("b", spanned("b")), ("c", spanned("c"))];
    let all: Vec<(&str, &str)> = services.iter().map(|(n, b)| (*n, b.as_str())).collect();
    // One runner records `a` as slow, another `b` and `c` as quick.
    let slow = clone("slow", &log, 0.4, &all[..1]).env("PILUM_STATE", redis.url());
    pilum(&slow, &["deploy"]).success();
    let quick = clone("quick", &log, 0.0, &all[1..]).env("PILUM_STATE", redis.url());
    pilum(&quick, &["deploy"]).success();
    let fresh = clone("fresh", &log, 0.0, &all);
    let matrix = |t: &Test, state: &str| -> Vec<String> {
        let r =
            pilum(t, &["plan", "--matrix", "github", "--shards", "2", "--state", state]).success();
        let v: serde_json::Value = serde_json::from_str(r.stdout.trim()).expect("matrix JSON");
        let mut shards: Vec<String> = v["include"]
            .as_array()
            .expect("include")
            .iter()
            .map(|s| s["services"].as_str().unwrap_or_default().to_string())
            .collect();
        shards.sort();
        shards
    };
    assert_eq!(matrix(&fresh, &redis.url()), ["a", "b c"]);
    let by_tasks = matrix(&fresh, "file");
    assert_eq!(by_tasks.len(), 2, "{by_tasks:?}");
    assert_ne!(by_tasks, ["a", "b c"], "three equal services split 2 + 1 by task count");
}
