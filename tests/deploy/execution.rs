//! Running plans: barriers, the dependency DAG, the worker limit, failure isolation,
//! `--keep-going`, retries, timeouts that kill process trees, big output, multi-region steps,
//! NDJSON output, GitHub Actions output, and Ctrl-C.

use std::time::{Duration, Instant};

use super::{events, fake, ndjson, project, shell_service, spans};
use crate::common::{Test, gone, wait_until};

#[test]
fn barriers_dag_and_worker_limit() {
    let t = project(150)
        .file("svc/a/pilum.yaml", &shell_service("a", &[]))
        .file("svc/b/pilum.yaml", &shell_service("b", &["a"]))
        .file("svc/c/pilum.yaml", &shell_service("c", &[]))
        .file("svc/d/pilum.yaml", &shell_service("d", &["b"]))
        .args(["deploy", "-j", "2"]);
    let r = t.run().success();
    let s = spans(&t);
    assert_eq!(s.len(), 12, "{s:?}\n{}", r.stdout);
    let phase = |p: &'static str| s.iter().filter(move |x| x.1 == p);
    let last_build_end = phase("build").map(|x| x.3).max().unwrap();
    let first_push_start = phase("push").map(|x| x.2).min().unwrap();
    let last_push_end = phase("push").map(|x| x.3).max().unwrap();
    let first_deploy_start = phase("deploy").map(|x| x.2).min().unwrap();
    assert!(first_push_start >= last_build_end, "a push began before every build finished");
    assert!(first_deploy_start >= last_push_end, "a deploy began before every push finished");
    let span = |svc: &str, p: &str| s.iter().find(|x| x.0 == svc && x.1 == p).cloned().unwrap();
    for p in ["build", "push", "deploy"] {
        assert!(span("b", p).2 >= span("a", p).3, "b/{p} started before a/{p} finished");
        assert!(span("d", p).2 >= span("b", p).3, "d/{p} started before b/{p} finished");
    }
    // At most two at once: at any task start, at most one other task is running.
    for x in &s {
        let overlapping = s.iter().filter(|y| y.2 <= x.2 && y.3 > x.2).count();
        assert!(overlapping <= 2, "{overlapping} tasks running at once");
    }
    assert!(r.stdout.contains("services: 4 ok, 0 failed, 0 skipped"), "{}", r.stdout);
    assert!(r.stdout.contains("tasks: 12 ok, 0 failed, 0 skipped of 12"), "{}", r.stdout);
}

fn failing_project() -> Test {
    project(20)
        .file("svc/a/pilum.yaml", "name: a\nrecipe: shell\nshell:\n  build: step a build; echo 'compiler says no' >&2; exit 3\n  push: step a push\n  deploy: step a deploy\n")
        .file("svc/b/pilum.yaml", &shell_service("b", &["a"]))
        .file("svc/c/pilum.yaml", &shell_service("c", &[]))
}

#[test]
fn failure_skips_dependents_and_stops_later_phases() {
    let t = failing_project().args(["deploy", "-j", "2"]);
    let r = t.run().code(1);
    let ran: Vec<(String, String)> =
        t.calls("step").into_iter().map(|a| (a[0].clone(), a[1].clone())).collect();
    assert!(
        ran.contains(&("c".into(), "build".into())),
        "unrelated service did not finish its phase"
    );
    assert!(!ran.iter().any(|x| x.0 == "b"), "dependent of a failed service ran: {ran:?}");
    assert!(!ran.iter().any(|x| x.1 == "push"), "a later phase started after a failure: {ran:?}");
    assert!(r.stderr.contains("a/build failed"), "{}", r.stderr);
    assert!(
        r.stderr.contains("exit") && r.stderr.contains("compiler says no"),
        "no useful failure message:\n{}",
        r.stderr
    );
    assert!(r.stdout.contains("b/build skipped: depends on `a`"), "{}", r.stdout);
    assert!(r.stdout.contains("services: 0 ok, 1 failed, 2 skipped"), "{}", r.stdout);
    assert!(r.stdout.contains("tasks: 1 ok, 1 failed, 7 skipped of 9"), "{}", r.stdout);
}

#[test]
fn keep_going_continues_unaffected_services_and_json_describes_it() {
    let t = failing_project().args(["deploy", "-j", "2", "--keep-going", "--json"]);
    let r = t.run().code(1);
    let ran: Vec<(String, String)> =
        t.calls("step").into_iter().map(|a| (a[0].clone(), a[1].clone())).collect();
    assert!(ran.contains(&("c".into(), "deploy".into())), "{ran:?}");
    assert!(
        !ran.iter().any(|x| x.0 == "b") && !ran.contains(&("a".into(), "push".into())),
        "{ran:?}"
    );
    let ev = ndjson(&r.stdout);
    assert_eq!(ev[0]["event"], "plan");
    let failed: Vec<_> =
        events(&ev, "task_finished").into_iter().filter(|e| e["status"] == "failed").collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["task"]["label"], "a/build");
    assert!(failed[0]["error"].as_str().unwrap().contains("compiler says no"), "{}", failed[0]);
    let skipped = events(&ev, "task_skipped");
    assert_eq!(skipped.len(), 5, "{skipped:?}");
    assert!(
        skipped
            .iter()
            .any(|e| e["task"]["label"] == "b/build"
                && e["reason"].as_str().unwrap().contains("`a`"))
    );
    let summary = ev.last().unwrap();
    assert_eq!(summary["event"], "summary");
    assert_eq!(summary["ok"], false);
    assert_eq!(summary["services"]["failed"], 1);
    assert_eq!(summary["services"]["ok"], 1);
    assert_eq!(summary["tasks"]["ok"], 3);
    assert_eq!(summary["tasks"]["total"], 9);
}

#[test]
fn json_is_ndjson_only_on_success() {
    let t =
        project(0).file("a/pilum.yaml", &shell_service("a", &[])).args(["deploy", "--json", "-v"]);
    let r = t.run().success();
    let ev = ndjson(&r.stdout);
    let kinds: Vec<&str> = ev.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(kinds.first(), Some(&"plan"));
    assert_eq!(kinds.last(), Some(&"summary"));
    assert_eq!(events(&ev, "task_started").len(), 3);
    assert_eq!(events(&ev, "task_finished").len(), 3);
    assert!(ev.last().unwrap()["ok"].as_bool().unwrap());
}

#[test]
fn retries_back_off_and_zero_means_one_try() {
    let body = "name: a\nrecipe: shell\nshell:\n  build: step a build; exit 1\n";
    let t = project(0).file("a/pilum.yaml", body).args([
        "build",
        "--retries",
        "3",
        "--retry-delay",
        "100ms",
    ]);
    let r = t.run().code(1);
    let times: Vec<u128> = t.timed_calls("step").into_iter().map(|(ts, _)| ts).collect();
    assert_eq!(times.len(), 4, "{}", r.stderr);
    assert!(r.stderr.contains("attempt 1 failed"), "{}", r.stderr);
    // What the backoff promises, whatever the machine's load: the announced delays follow the
    // doubling schedule from `--retry-delay` (plus at most 50% jitter), and no attempt starts
    // before the delay announced after the previous one.
    let delays: Vec<u128> = r
        .stderr
        .lines()
        .filter_map(|l| l.split("; retrying in ").nth(1))
        .map(|d| d.strip_suffix("ms").and_then(|ms| ms.parse().ok()).expect("a delay in ms"))
        .collect();
    assert_eq!(delays.len(), 3, "{}", r.stderr);
    for (i, d) in delays.iter().enumerate() {
        let scheduled = 100 << i;
        assert!(
            (scheduled..=scheduled * 3 / 2).contains(d),
            "retry {}: {d}ms, scheduled {scheduled}ms",
            i + 1
        );
    }
    let gaps: Vec<u128> = times.windows(2).map(|w| w[1] - w[0]).collect();
    for (gap, d) in gaps.iter().zip(&delays) {
        assert!(
            *gap >= d * 1_000_000,
            "an attempt started {gap}ns after the last, before its {d}ms delay"
        );
    }

    let t = project(0).file("a/pilum.yaml", body).args(["build", "--retries", "0"]);
    t.run().code(1);
    assert_eq!(t.calls("step").len(), 1);

    // The recipe's value applies without the flag.
    let body = "name: a\nrecipe: shell\nshell:\n  steps:\n    - name: build\n      run: step a build; exit 1\n      retries: 1\n";
    let t = project(0).file("a/pilum.yaml", body).args(["build", "--retry-delay", "10ms"]);
    t.run().code(1);
    assert_eq!(t.calls("step").len(), 2);
}

#[test]
fn timeout_kills_the_process_tree() {
    let t = project(0)
        .file(
            "a/pilum.yaml",
            "name: a\nrecipe: shell\nshell:\n  steps:\n    - name: build\n      run: \"sh -c 'sleep 1000 & echo $! > pids; echo $$ >> pids; sleep 1000'\"\n      timeout: 1s\n",
        )
        .args(["build"]);
    let start = Instant::now();
    let r = t.run().code(1);
    assert!(start.elapsed() < Duration::from_secs(20));
    assert!(r.stderr.contains("a/build timed out"), "{}", r.stderr);
    assert!(r.stderr.contains("timed out after 1"), "{}", r.stderr);
    let pids = std::fs::read_to_string(t.path().join("a/pids")).expect("pids written");
    assert_eq!(pids.lines().count(), 2);
    for pid in pids.lines() {
        assert!(gone(pid), "process {pid} survived the timeout");
    }
}

#[test]
fn ten_megabytes_of_output_do_not_stall() {
    let t = project(0)
        .file(
            "a/pilum.yaml",
            "name: a\nrecipe: shell\nshell:\n  build: \"head -c 10000000 /dev/zero | tr '\\\\0' a; echo; echo done >&2\"\n  timeout: 60s\n",
        )
        .args(["build"]);
    let start = Instant::now();
    let r = t.run().success();
    assert!(start.elapsed() < Duration::from_secs(30));
    assert!(r.stdout.contains("✓ a/build"), "{}", r.stdout);
}

const REGIONAL: &str = r#"
fn recipe() {
    #{
        name: "regional",
        description: "test: build once, push and deploy per region",
        provider: "test",
        section: "regional",
        fields: [ #{ name: "app", type: "string", required: true } ],
        steps: [
            #{ name: "build", tags: ["build"] },
            #{ name: "push", tags: ["push"], per_region: true },
            #{ name: "deploy", tags: ["deploy"], per_region: true },
        ],
    }
}
fn build(ctx) {
    exec::run(["cloud", "build", ctx.fields.app]);
    #{ image: ctx.fields.app + ":" + ctx.tag }
}
fn push(ctx) {
    let image = ctx.region + "-registry/" + ctx.outputs.build.image;
    exec::run(["cloud", "push", ctx.outputs.build.image, image, ctx.region]);
    #{ image: image }
}
fn deploy(ctx) {
    exec::run(["cloud", "deploy", ctx.outputs.push.image, "--region", ctx.region]);
}
"#;

#[test]
fn per_region_steps_build_once_and_deploy_each_region_with_its_image() {
    let t = fake(project(0), "cloud", "sleep 0.05")
        .file("recipes/regional.rhai", REGIONAL)
        .file("api/pilum.yaml", "name: api\nrecipe: regional\nregions: [europe-west1, us-east1, asia-east1]\nregional:\n  app: api\n")
        .args(["deploy", "--tag", "v1", "-j", "4"]);
    let r = t.run().success();
    let calls = t.calls("cloud");
    let of = |verb: &str| calls.iter().filter(|c| c[0] == verb).cloned().collect::<Vec<_>>();
    assert_eq!(of("build"), vec![vec!["build".to_string(), "api".into()]]);
    assert_eq!(of("push").len(), 3);
    let deploys = of("deploy");
    assert_eq!(deploys.len(), 3, "{}", r.stdout);
    for region in ["europe-west1", "us-east1", "asia-east1"] {
        assert!(
            of("push")
                .iter()
                .any(|c| c[2] == format!("{region}-registry/api:v1") && c[3] == region)
        );
        assert!(
            deploys.contains(&vec![
                "deploy".into(),
                format!("{region}-registry/api:v1"),
                "--region".into(),
                region.into()
            ]),
            "{region}: {deploys:?}"
        );
    }
    assert!(r.stdout.contains("api/deploy@us-east1"), "{}", r.stdout);
}

#[test]
fn github_actions_groups_errors_and_step_summary() {
    let t = failing_project();
    let summary = t.path().join("summary.md");
    let t = t.env("GITHUB_ACTIONS", "true").env("GITHUB_STEP_SUMMARY", &summary).args(["build"]);
    let r = t.run().code(1);
    assert!(r.stdout.contains("::group::c/build (ok)"), "{}", r.stdout);
    assert!(r.stdout.contains("::endgroup::"));
    assert!(r.stdout.contains("::error title=pilum a/build::failed"), "{}", r.stdout);
    let md = std::fs::read_to_string(summary).expect("step summary written");
    assert!(md.contains("### pilum build: failed"), "{md}");
    assert!(md.contains("| `a` | ❌ failed |") && md.contains("| `c` | ✅ ok |"), "{md}");
}

#[test]
fn quiet_prints_errors_and_one_summary_line() {
    let t = failing_project().args(["build", "-q"]);
    let r = t.run().code(1);
    assert_eq!(r.stdout.lines().count(), 1, "{}", r.stdout);
    assert!(r.stdout.starts_with("build: failed"), "{}", r.stdout);
    assert!(r.stderr.contains("a/build failed"), "{}", r.stderr);
}

#[test]
fn ctrl_c_kills_children_prints_the_summary_and_exits_130() {
    let t = project(0)
        .file(
            "a/pilum.yaml",
            "name: a\nrecipe: shell\nshell:\n  build: echo $$ > pid; exec sleep 1000\n",
        )
        .file("b/pilum.yaml", &shell_service("b", &["a"]))
        .args(["deploy"]);
    let mut cmd = t.command();
    cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let child = cmd.spawn().expect("spawn pilum");
    let pid_file = t.path().join("a/pid");
    // The step has written its pid: it runs, and pilum is past installing its Ctrl-C handler.
    let pid_written = || std::fs::read_to_string(&pid_file).is_ok_and(|p| p.ends_with('\n'));
    wait_until("the step to write its pid", Duration::from_secs(20), pid_written);
    // SAFETY: sending SIGINT to the child we spawned.
    unsafe { libc_kill(child.id() as i32, 2) };
    let out = child.wait_with_output().expect("wait");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(130), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("deploy: interrupted"), "{stdout}");
    let pid = std::fs::read_to_string(pid_file).unwrap();
    assert!(gone(&pid), "the running step survived Ctrl-C");
    assert!(t.calls("step").is_empty(), "a task started after Ctrl-C");
}

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

#[test]
fn secrets_are_required_and_masked() {
    let yaml = "name: a\nrecipe: shell\nsecrets: [DEPLOY_TOKEN]\nshell:\n  build: echo \"token is $DEPLOY_TOKEN\"; exit 1\n";
    let t = project(0).file("a/pilum.yaml", yaml).args(["build", "-v"]);
    let r = t.run().code(2);
    assert!(r.stderr.contains("secret `DEPLOY_TOKEN` of service `a` is not set"), "{}", r.stderr);
    assert!(r.stderr.contains("a/pilum.yaml:3:1"), "{}", r.stderr);
    let t = t.env("DEPLOY_TOKEN", "s3cr3t-value-123").clear_args().args(["build", "-v", "--json"]);
    let r = t.run().code(1);
    assert!(r.stdout.contains("token is "), "{}", r.stdout);
    assert!(
        !r.stdout.contains("s3cr3t-value-123") && !r.stderr.contains("s3cr3t-value-123"),
        "{}",
        r.stdout
    );
    // Dry runs and plans do not need secrets.
    project(0).file("a/pilum.yaml", yaml).args(["plan"]).run().success();
}

#[test]
fn json_on_a_configuration_error_is_one_error_event() {
    let t = project(0)
        .file("a/pilum.yaml", "name: a\nrecipe: shell\nshell: [\n")
        .args(["deploy", "--json"]);
    let r = t.run().code(2);
    let ev = ndjson(&r.stdout);
    assert_eq!(ev.len(), 1, "{}", r.stdout);
    assert_eq!(ev[0]["event"], "error");
    assert_eq!(ev[0]["code"], 2);
    assert!(ev[0]["message"].as_str().unwrap().contains("a/pilum.yaml:"), "{}", ev[0]);
    assert!(r.stderr.contains("invalid YAML"), "{}", r.stderr);
}

#[test]
fn one_deploy_at_a_time_and_each_run_is_recorded() {
    let t = project(0)
        .file(
            "a/pilum.yaml",
            "name: a\nrecipe: shell\nshell:\n  build: echo started > started; exec sleep 1000\n",
        )
        .file("b/pilum.yaml", &shell_service("b", &[]))
        .args(["build", "a"]);
    let mut cmd = t.command();
    cmd.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
    let mut first = cmd.spawn().expect("spawn pilum");
    let started = t.path().join("a/started");
    wait_until("the first run's step to start", Duration::from_secs(20), || started.exists());
    let t = t.clear_args().args(["deploy", "b"]);
    let r = t.run().code(2);
    assert!(r.stderr.contains("another pilum run is deploying this project"), "{}", r.stderr);
    assert!(r.stderr.contains(&format!("(pid {})", first.id())), "{}", r.stderr);
    // Plans and dry runs do not need the lock.
    let t = t.clear_args().args(["dry-run", "b"]);
    t.run().success();
    // SIGINT: pilum kills its running step's process group and exits.
    unsafe { libc_kill(first.id() as i32, 2) };
    assert_eq!(first.wait().expect("wait").code(), Some(130));
    let t = t.clear_args().args(["deploy", "b", "--tag", "v5"]);
    t.run().success();
    let history =
        std::fs::read_to_string(t.path().join(".pilum/history.jsonl")).expect("history written");
    let last: serde_json::Value = serde_json::from_str(history.lines().last().unwrap()).unwrap();
    assert_eq!(last["command"], "deploy");
    assert_eq!(last["tag"], "v5");
    assert_eq!(last["summary"]["ok"], true);
    assert_eq!(last["summary"]["tasks"]["ok"], 3);
}

/// A script's `deploy()` takes the CLI's retry delay and step timeout, with the CLI's defaults.
#[test]
fn script_deploy_takes_the_retry_delay_and_timeout() {
    let failing = "name: a\nrecipe: shell\nshell:\n  build: step a build; exit 1\n";
    let script = r#"
let r = deploy(["a"], #{ retries: 1, retry_delay: ARGS[0] });
print(`ok=${r.ok} tasks=${r.tasks.failed}`);
"#;
    let t = project(0).file("a/pilum.yaml", failing).file("d.rhai", script);
    let t = t.args(["run", "d.rhai", "--", "20ms"]);
    let r = t.run().success();
    assert!(r.stdout.contains("ok=false tasks=1"), "{}", r.stdout);
    assert!(r.stderr.contains("attempt 1 failed, retrying in "), "{}", r.stderr);
    let delay = |stderr: &str| -> u64 {
        let at = stderr.find("retrying in ").expect("a retry line") + "retrying in ".len();
        let text: String = stderr[at..].chars().take_while(|c| *c != ':').collect();
        let ms = if let Some(ms) = text.strip_suffix("ms") {
            ms.parse::<f64>()
        } else {
            text.trim_end_matches('s').parse::<f64>().map(|s| s * 1000.0)
        };
        ms.unwrap_or_else(|e| panic!("not a delay: {text:?} ({e})")) as u64
    };
    // Jitter adds up to half the delay.
    assert!((20..=30).contains(&delay(&r.stderr)), "{}", r.stderr);
    assert_eq!(t.calls("step").len(), 2);

    // Without `retry_delay`, the first retry waits about a second, as with `pilum deploy`.
    let t = t.clear_args().args(["run", "d.rhai", "--", "()"]);
    let t = t.file("d.rhai", &script.replace("retry_delay: ARGS[0]", "retry_delay: ()"));
    let r = t.run().success();
    assert!((1000..=1500).contains(&delay(&r.stderr)), "{}", r.stderr);

    // `timeout` applies to steps that declare none.
    let slow = "name: a\nrecipe: shell\nshell:\n  build: step a build; exec sleep 1000\n";
    let script = r#"
let r = deploy(["a"], #{ timeout: "1s" });
print(r.failures[0].error);
"#;
    let t =
        t.file("a/pilum.yaml", slow).file("d.rhai", script).clear_args().args(["run", "d.rhai"]);
    let r = t.run().success();
    assert!(r.stdout.contains("timed out after 1"), "{}\n{}", r.stdout, r.stderr);
    for bad in ["\"0s\"", "\"soon\"", "-1"] {
        t.write("d.rhai", &format!("deploy([\"a\"], #{{ timeout: {bad} }});"));
        let r = t.run().code(1);
        assert!(r.stderr.contains("`timeout`"), "{bad}: {}", r.stderr);
    }
}
