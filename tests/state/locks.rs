//! Deploy locks per service × environment × target, across two clones sharing a real
//! redis-server: runs of the same service never overlap, other services go on, a killed holder's
//! lease runs out, a paused holder does not start another step, a lock taken by force stops its
//! holder before its next step.

use std::process::{Child, Stdio};
use std::time::Duration;

use super::{clone, pilum, spanned, spans, starts, wait_started};
use crate::common::redis::RedisServer;
use crate::common::{Test, wait_until};

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

const SIGKILL: i32 = 9;
const SIGCONT: i32 = 18;
const SIGSTOP: i32 = 19;

fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) on a process this test started.
    unsafe { libc_kill(pid as i32, sig) };
}

/// A redis-server, a directory the clones share, its spans log, the server's URL.
fn scene() -> (RedisServer, tempfile::TempDir, std::path::PathBuf, String) {
    let redis = RedisServer::start();
    let shared = tempfile::tempdir().unwrap();
    let log = shared.path().join("spans.log");
    let url = redis.url();
    (redis, shared, log, url)
}

fn spawn(t: &Test, args: &[&str], stderr: &std::path::Path) -> Child {
    let mut cmd = t.command();
    cmd.args(args).stdin(Stdio::null()).stdout(Stdio::null());
    cmd.stderr(std::fs::File::create(stderr).expect("create the stderr file"));
    cmd.spawn().expect("spawn pilum")
}

/// Kill the `span` processes the test's runs left behind.
fn kill_spans(log: &std::path::Path) {
    for (_, _, _, pid) in starts(log) {
        if let Ok(p) = pid.parse() {
            signal(p, SIGKILL);
        }
    }
}

#[test]
fn two_runs_of_a_service_never_overlap_and_other_services_go_on() {
    let (_redis, shared, log, url) = scene();
    let one = clone("one", &log, 1.0, &[("a", &spanned("a"))]);
    let two = clone("two", &log, 1.0, &[("a", &spanned("a")), ("b", &spanned("b"))]);
    let first_err = shared.path().join("one.err");
    let mut first = spawn(&one, &["deploy", "--state", &url, "-j", "2"], &first_err);
    wait_started(&log, "the first run's build of `a`", |s| s.iter().any(|x| x.0 == "one"));
    // The waiter's notifier hears `lock_wait` once, naming the holder.
    let rx = crate::common::receiver::Receiver::ok();
    two.write(
        "pilum-project.yaml",
        &format!(
            "notify:\n  - notifier: webhook\n    url: {}/hook\n    events: [lock_wait]\n    lock_wait: 200ms\n",
            rx.url
        ),
    );
    let r = pilum(&two, &["deploy", "--state", &url, "-j", "2", "--lock-wait", "60s"]).success();
    assert!(first.wait().unwrap().success(), "{}", std::fs::read_to_string(&first_err).unwrap());
    let told: Vec<serde_json::Value> =
        rx.requests().iter().map(super::super::common::receiver::Request::json).collect();
    assert_eq!(told.len(), 1, "{told:#?}\n{}", r.stderr);
    assert_eq!(told[0]["event"], "lock_wait", "{:#}", told[0]);
    assert!(
        told[0]["lock"]["holder"]
            .as_str()
            .is_some_and(|h| h.contains(&format!("pid {}", first.id()))),
        "{:#}",
        told[0]
    );
    assert!(
        r.stderr.contains("waiting for the deploy lock `a/-/shell`: held by")
            && r.stderr.contains(&format!("(pid {}, `pilum deploy`)", first.id())),
        "{}",
        r.stderr
    );
    let spans = spans(&log);
    let of = |clone: &str, svc: &str| -> Vec<(u128, u128)> {
        spans.iter().filter(|s| s.2 == clone && s.3 == svc).map(|s| (s.0, s.1)).collect()
    };
    let (a1, a2, b2) = (of("one", "a"), of("two", "a"), of("two", "b"));
    assert_eq!((a1.len(), a2.len(), b2.len()), (2, 2, 2), "{spans:?}");
    // Every step of `a` in the second run starts after the first run's last one ended.
    let first_end = a1.iter().map(|s| s.1).max().unwrap();
    assert!(a2.iter().all(|s| s.0 >= first_end), "{spans:?}");
    // `b` did not wait for `a`'s lock: its build ran before the second run's `a` could start.
    assert!(
        b2.iter().map(|s| s.0).min().unwrap() < a2.iter().map(|s| s.0).min().unwrap(),
        "{spans:?}"
    );
}

#[test]
fn a_killed_holders_lease_runs_out_and_the_waiter_proceeds() {
    let (_redis, shared, log, url) = scene();
    let one = clone("one", &log, 1000.0, &[("a", &spanned("a"))]);
    let two = clone("two", &log, 0.0, &[("a", &spanned("a"))]);
    let mut first = spawn(
        &one,
        &["deploy", "--state", &url, "--lock-ttl", "2s"],
        &shared.path().join("one.err"),
    );
    wait_started(&log, "the holder's build", |s| s.iter().any(|x| x.0 == "one"));
    let mut second = spawn(
        &two,
        &["deploy", "--state", &url, "--lock-wait", "60s", "--lock-ttl", "2s"],
        &shared.path().join("two.err"),
    );
    wait_until("the second run to queue", Duration::from_secs(30), || {
        let r = pilum(&two, &["--json", "locks", "--state", &url]);
        r.stdout.contains("\"waiting\":1")
    });
    signal(first.id(), SIGKILL);
    let _ = first.wait();
    let status = second.wait().unwrap();
    kill_spans(&log);
    let err = std::fs::read_to_string(shared.path().join("two.err")).unwrap();
    assert!(status.success(), "{err}");
    assert!(err.contains("took the deploy lock `a/-/shell` after"), "{err}");
    let done: Vec<_> = spans(&log).into_iter().filter(|s| s.2 == "two").map(|s| s.4).collect();
    assert_eq!(done, ["build", "deploy"]);
}

#[test]
fn a_holder_paused_past_its_lease_runs_no_further_step() {
    let (redis, shared, log, url) = scene();
    let one = clone("one", &log, 2.0, &[("a", &spanned("a"))]);
    let err = shared.path().join("one.err");
    let mut first = spawn(&one, &["deploy", "--state", &url, "--lock-ttl", "1s"], &err);
    wait_started(&log, "the holder's build", |s| s.iter().any(|x| x.0 == "one"));
    signal(first.id(), SIGSTOP);
    wait_until("the paused holder's lease to run out", Duration::from_secs(30), || {
        redis.cli(&["EXISTS", "pilum:lock:a/-/shell"]).trim() == "0"
    });
    signal(first.id(), SIGCONT);
    let status = first.wait().unwrap();
    kill_spans(&log);
    let err = std::fs::read_to_string(&err).unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("lost the deploy lock `a/-/shell` (fencing token 1)"), "{err}");
    let ran: Vec<_> = starts(&log).into_iter().map(|s| s.2).collect();
    assert_eq!(ran, ["build"], "the deploy step must not start");
}

#[test]
fn locks_are_listed_and_a_lock_released_by_force_stops_its_holder() {
    let (_redis, shared, log, url) = scene();
    let one = clone("one", &log, 2.0, &[("a", &spanned("a"))]);
    let err = shared.path().join("one.err");
    let mut first = spawn(&one, &["deploy", "--state", &url, "--env", "prod"], &err);
    wait_started(&log, "the holder's build", |s| s.iter().any(|x| x.0 == "one"));
    let r = pilum(&one, &["--json", "locks", "--state", &url]).success();
    let held: serde_json::Value = serde_json::from_str(r.stdout.trim()).expect("one lock");
    assert_eq!(held["key"], "a/prod/shell");
    assert_eq!(held["holder"]["pid"], first.id());
    assert_eq!(held["fence"], 1);
    let r = pilum(&one, &["locks", "release", "a/prod/shell", "--state", &url]).code(2);
    assert!(r.stderr.contains("pass `--force`"), "{}", r.stderr);
    let r =
        pilum(&one, &["locks", "release", "a/prod/shell", "--force", "--state", &url]).success();
    assert!(r.stderr.contains("released the deploy lock `a/prod/shell`, held by"), "{}", r.stderr);
    let status = first.wait().unwrap();
    kill_spans(&log);
    let err = std::fs::read_to_string(&err).unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("lost the deploy lock `a/prod/shell`"), "{err}");
    assert_eq!(starts(&log).len(), 1, "the deploy step must not start");
    let r = pilum(&one, &["locks", "--state", &url]).success();
    assert!(r.stderr.contains("no deploy locks are held"), "{}", r.stderr);
}
