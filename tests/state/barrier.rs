//! `--barrier`: four shards of one run, from four clones sharing a real redis-server, cross
//! every phase together; a shard killed mid-build fails the others within its lease.

use std::process::{Child, Stdio};
use std::time::Duration;

use super::{clone, spanned, spans, starts, wait_started};
use crate::common::redis::RedisServer;
use crate::common::{Test, wait_until};

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

fn project(n: usize, log: &std::path::Path, secs: f64) -> Test {
    let names: Vec<String> = (1..=4).map(|i| format!("s{i}")).collect();
    let services: Vec<(String, String)> = names.iter().map(|s| (s.clone(), spanned(s))).collect();
    let refs: Vec<(&str, &str)> = services.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    clone(&format!("shard{n}"), log, secs, &refs)
}

fn shard(t: &Test, n: usize, url: &str, err: &std::path::Path) -> Child {
    let mut cmd = t.command();
    let shard = format!("{n}/4");
    cmd.args([
        "deploy",
        "--shard",
        &shard,
        "--barrier",
        "run-7",
        "--state",
        url,
        "--lock-ttl",
        "2s",
    ]);
    // Both streams: the summary (stdout) names the shard that stopped the run.
    let file = std::fs::File::create(err).expect("create the output file");
    cmd.stdin(Stdio::null()).stdout(file.try_clone().expect("clone the output file"));
    cmd.stderr(file);
    cmd.spawn().expect("spawn pilum")
}

#[test]
fn four_shards_run_every_task_once_and_no_deploy_starts_before_every_build_ended() {
    let redis = RedisServer::start();
    let shared = tempfile::tempdir().unwrap();
    let log = shared.path().join("spans.log");
    let clones: Vec<Test> = (1..=4).map(|n| project(n, &log, 0.3)).collect();
    let errs: Vec<_> = (1..=4).map(|n| shared.path().join(format!("{n}.err"))).collect();
    let children: Vec<Child> =
        clones.iter().enumerate().map(|(i, t)| shard(t, i + 1, &redis.url(), &errs[i])).collect();
    for (i, mut c) in children.into_iter().enumerate() {
        let status = c.wait().unwrap();
        assert!(
            status.success(),
            "shard {}: {}",
            i + 1,
            std::fs::read_to_string(&errs[i]).unwrap()
        );
    }
    let spans = spans(&log);
    let mut tasks: Vec<(String, String)> =
        spans.iter().map(|s| (s.3.clone(), s.4.clone())).collect();
    tasks.sort();
    let want: Vec<(String, String)> = (1..=4)
        .flat_map(|i| {
            [(format!("s{i}"), "build".to_string()), (format!("s{i}"), "deploy".to_string())]
        })
        .collect();
    assert_eq!(tasks, want, "every task exactly once: {spans:?}");
    let last_build = spans.iter().filter(|s| s.4 == "build").map(|s| s.1).max().unwrap();
    let first_deploy = spans.iter().filter(|s| s.4 == "deploy").map(|s| s.0).min().unwrap();
    assert!(first_deploy >= last_build, "a deploy started before every build ended: {spans:?}");
}

#[test]
fn a_shard_killed_mid_build_fails_the_others() {
    let redis = RedisServer::start();
    let shared = tempfile::tempdir().unwrap();
    let log = shared.path().join("spans.log");
    // Shard 3's builds never end.
    let clones: Vec<Test> =
        (1..=4).map(|n| project(n, &log, if n == 3 { 1000.0 } else { 0.0 })).collect();
    let errs: Vec<_> = (1..=4).map(|n| shared.path().join(format!("{n}.err"))).collect();
    let mut children: Vec<Child> =
        clones.iter().enumerate().map(|(i, t)| shard(t, i + 1, &redis.url(), &errs[i])).collect();
    wait_started(&log, "shard 3's build", |s| s.iter().any(|x| x.0 == "shard3"));
    let waiting = |i: usize| {
        std::fs::read_to_string(&errs[i]).unwrap_or_default().contains("waiting at the barrier")
    };
    wait_until("another shard to wait at the barrier", Duration::from_secs(30), || {
        (0..4).any(|i| i != 2 && waiting(i))
    });
    // SAFETY: kill(2) on a process this test started.
    unsafe { libc_kill(children[2].id() as i32, 9) };
    let _ = children[2].wait();
    for (_, _, _, pid) in starts(&log).into_iter().filter(|s| s.0 == "shard3") {
        // SAFETY: kill(2) on the step this test's shard started.
        unsafe { libc_kill(pid.parse().unwrap(), 9) };
    }
    for i in [0, 1, 3] {
        let status = children[i].wait().unwrap();
        let err = std::fs::read_to_string(&errs[i]).unwrap();
        assert_eq!(status.code(), Some(1), "shard {}: {err}", i + 1);
        assert!(
            err.contains("shard 3/4 stopped before ending phase build"),
            "shard {}: {err}",
            i + 1
        );
    }
    assert!(!spans(&log).iter().any(|s| s.4 == "deploy"), "no deploy may start");
}

#[test]
fn the_file_backend_refuses_a_barrier() {
    let shared = tempfile::tempdir().unwrap();
    let log = shared.path().join("spans.log");
    let t = project(1, &log, 0.0);
    let r = super::pilum(&t, &["deploy", "--shard", "1/2", "--barrier", "run-7"]).code(2);
    assert!(r.stderr.contains("`--barrier` needs a shared state backend"), "{}", r.stderr);
    assert!(r.stderr.contains("docs/ci.md"), "{}", r.stderr);
    assert!(starts(&log).is_empty());
}
