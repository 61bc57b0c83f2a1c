//! The file backend's queue of `--lock-wait` waiters: runs of one checkout wait in arrival
//! order, and a killed waiter does not block the ones after it.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use super::{clone, pilum, spanned, spans};
use crate::common::{Test, wait_until};

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

/// A checkout of one shell service `a` whose `span` logs `start\tend\tRUN\tservice\tstep` and,
/// with `GATE` set, waits (at most a minute) for that file to exist first.
fn checkout(dir: &Path) -> (Test, PathBuf, PathBuf) {
    let log = dir.join("spans.log");
    let gate = dir.join("gate");
    let t = clone("one", &log, 0.0, &[("a", &spanned("a"))]);
    let script = format!(
        "#!/bin/sh\ns=$(date +%s%N)\nprintf '%s\\n' \"$RUN\" >> '{log}.starts'\nif [ -n \"$GATE\" ]; then i=0; while [ ! -e \"$GATE\" ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; fi\ne=$(date +%s%N)\nprintf '%s\\t%s\\t%s\\t%s\\t%s\\n' \"$s\" \"$e\" \"$RUN\" \"$1\" \"$2\" >> '{log}'\n",
        log = log.display()
    );
    let bin = t.path().join(".bin/span");
    std::fs::write(&bin, script).expect("write span");
    (t, log, gate)
}

fn spawn(t: &Test, run: &str, args: &[&str], gate: Option<&Path>, dir: &Path) -> Child {
    let mut cmd = t.command();
    cmd.args(args).env("RUN", run).stdin(Stdio::null()).stdout(Stdio::null());
    if let Some(g) = gate {
        cmd.env("GATE", g);
    }
    cmd.stderr(std::fs::File::create(dir.join(format!("{run}.err"))).expect("stderr file"));
    cmd.spawn().expect("spawn pilum")
}

/// `pilum locks --json`'s waiters of `a/-/shell`.
fn waiting(t: &Test) -> u64 {
    let r = pilum(t, &["--json", "locks"]);
    r.stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["key"] == "a/-/shell")
        .and_then(|v| v["waiting"].as_u64())
        .unwrap_or(0)
}

fn wait_for_waiters(t: &Test, n: u64) {
    wait_until(&format!("{n} waiters"), Duration::from_secs(60), || waiting(t) == n);
}

/// A holder of `a`'s lock (until `gate` exists), then waiter A, then waiter B, each started once
/// the one before is in place.
fn queued(t: &Test, log: &Path, gate: &Path, dir: &Path) -> [Child; 3] {
    let wait = ["deploy", "--lock-wait", "120s"];
    let holder = spawn(t, "holder", &["deploy"], Some(gate), dir);
    wait_until("the holder's build", Duration::from_secs(60), || started(log, "holder"));
    let a = spawn(t, "A", &wait, None, dir);
    wait_for_waiters(t, 1);
    let b = spawn(t, "B", &wait, None, dir);
    wait_for_waiters(t, 2);
    [holder, a, b]
}

fn started(log: &Path, run: &str) -> bool {
    std::fs::read_to_string(format!("{}.starts", log.display()))
        .unwrap_or_default()
        .lines()
        .any(|l| l == run)
}

fn err(dir: &Path, run: &str) -> String {
    std::fs::read_to_string(dir.join(format!("{run}.err"))).unwrap_or_default()
}

#[test]
fn file_lock_waiters_are_served_in_arrival_order() {
    let shared = tempfile::tempdir().unwrap();
    let dir = shared.path();
    let (t, log, gate) = checkout(dir);
    let [mut holder, mut a, mut b] = queued(&t, &log, &gate, dir);
    // The text list says so too.
    let r = pilum(&t, &["locks"]).success();
    let row = r.stdout.lines().find(|l| l.contains("a/-/shell")).unwrap_or_default().to_string();
    assert!(row.split_whitespace().any(|w| w == "2"), "{}", r.stdout);
    std::fs::write(&gate, "").unwrap();
    for (run, child) in [("holder", &mut holder), ("A", &mut a), ("B", &mut b)] {
        assert!(child.wait().unwrap().success(), "{run}: {}", err(dir, run));
    }
    let spans = spans(&log);
    let of = |run: &str| -> Vec<(u128, u128)> {
        spans.iter().filter(|s| s.2 == run).map(|s| (s.0, s.1)).collect()
    };
    let (h, a, b) = (of("holder"), of("A"), of("B"));
    assert_eq!((h.len(), a.len(), b.len()), (2, 2, 2), "{spans:?}");
    let last = |s: &[(u128, u128)]| s.iter().map(|x| x.1).max().unwrap();
    let first = |s: &[(u128, u128)]| s.iter().map(|x| x.0).min().unwrap();
    assert!(last(&h) <= first(&a), "{spans:?}");
    assert!(last(&a) <= first(&b), "A came first: {spans:?}");
    // No ticket is left behind.
    assert_eq!(waiting(&t), 0);
    let queue = t.path().join(".pilum/locks/queues/a+-+shell");
    let left = std::fs::read_dir(&queue).map(Iterator::count).unwrap_or(0);
    assert_eq!(left, 0, "tickets left in {}", queue.display());
}

#[test]
fn a_killed_file_lock_waiter_does_not_block_the_next() {
    let shared = tempfile::tempdir().unwrap();
    let dir = shared.path();
    let (t, log, gate) = checkout(dir);
    let [mut holder, mut a, mut b] = queued(&t, &log, &gate, dir);
    // SAFETY: kill(2) on a process this test started.
    unsafe { libc_kill(a.id() as i32, 9) };
    let _ = a.wait();
    // Its ticket is dead: one waiter is left.
    wait_for_waiters(&t, 1);
    std::fs::write(&gate, "").unwrap();
    assert!(holder.wait().unwrap().success(), "{}", err(dir, "holder"));
    assert!(b.wait().unwrap().success(), "{}", err(dir, "B"));
    let ran: Vec<String> = spans(&log).into_iter().filter(|s| s.2 == "B").map(|s| s.4).collect();
    assert_eq!(ran, ["build", "deploy"]);
    assert!(!started(&log, "A"), "the killed waiter ran a step");
}

/// All of a run's file locks are byte locks through one descriptor of `.pilum/locks/table`:
/// with 120 services' locks held, pilum has about as many files open as with one (each used to
/// be an open file, which every spawned process then copied and closed). The first service's
/// step, a script pilum runs directly (a simple command: no shell in between), counts its
/// parent's descriptors while every other service's lock is held: the fewest of ten looks
/// 20 ms apart, so a file the lock thread has open for a moment (a record being written) is
/// not counted, while a descriptor per held lock would be in every look.
#[test]
fn a_run_holds_its_file_locks_through_one_descriptor() {
    let mut t = Test::new().file(".gitignore", ".pilum/\n").file(
        "s000/count.sh",
        "#!/bin/sh\nfor i in 1 2 3 4 5 6 7 8 9 10; do ls /proc/$PPID/fd | wc -l; sleep 0.02; \
             done | sort -n | head -n 1 > fds.txt\n",
    );
    for i in 0..120 {
        let build = if i == 0 { "./count.sh" } else { "true" };
        let yaml = format!("name: s{i:03}\nrecipe: shell\nshell:\n  build: \"{build}\"\n");
        t = t.file(&format!("s{i:03}/pilum.yaml"), &yaml);
    }
    let script = t.path().join("s000/count.sh");
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    t.git(&["init", "-q", "-b", "main"]);
    t.git(&["add", "-A"]);
    t.git(&["commit", "-q", "-m", "services"]);
    let t = t.args(["deploy", "-q", "-j", "1"]);
    t.run().success();
    let read = |t: &Test| -> usize {
        let text = std::fs::read_to_string(t.path().join("s000/fds.txt")).expect("the count");
        text.trim().parse().expect("a number")
    };
    let many = read(&t);
    let table = t.path().join(".pilum/locks/table");
    assert!(table.is_file(), "the lock table exists");
    let t = t.clear_args().args(["deploy", "-q", "-j", "1", "s000"]);
    t.run().success();
    let one = read(&t);
    assert!(one >= 3, "pilum's own descriptors were counted: {one}");
    assert!(many <= one + 4, "{many} descriptors with 120 locks held, {one} with one");
}
