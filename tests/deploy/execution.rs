//! Running plans: barriers, the dependency DAG, the worker limit, failure isolation,
//! `--keep-going`, retries, timeouts that kill process trees, big output, multi-region steps,
//! NDJSON output, GitHub Actions output, and Ctrl-C.

use std::time::{Duration, Instant};

use super::{events, ndjson, project, shell_service, spans};
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
    let t = project(0).fake("cloud", "sleep 0.05")
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
    let (summary, workspace) = (t.path().join("summary.md"), t.path().to_path_buf());
    let t = t
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_STEP_SUMMARY", &summary)
        .env("GITHUB_WORKSPACE", workspace)
        .args(["build"]);
    let r = t.run().code(1);
    assert!(r.stdout.contains("::group::c/build (ok)"), "{}", r.stdout);
    // The failed task's group holds its output once; the result after it does not repeat it.
    let group = r.stdout.split("::group::a/build (failed)\n").nth(1).expect("a/build's group");
    let (inside, after) = group.split_once("::endgroup::").expect("the group ends");
    assert_eq!(inside.trim_end(), "compiler says no", "{}", r.stdout);
    let plain: Vec<&str> = after.lines().filter(|l| !l.starts_with("::")).collect();
    let repeated =
        |l: &&str| l.trim_start().trim_start_matches(['|', '│']).trim() == "compiler says no";
    assert!(!plain.iter().any(repeated), "the output is repeated:\n{}", r.stdout);
    // The annotation points at the step in the user's pilum.yaml, not at the built-in recipe.
    let error = r.stdout.lines().find(|l| l.starts_with("::error ")).expect("an annotation");
    assert!(
        error.starts_with("::error file=svc/a/pilum.yaml,line=4,col=3,title=pilum a/build::failed"),
        "{error}"
    );
    assert!(r.stdout.contains("--> svc/a/pilum.yaml:4:3"), "{}", r.stdout);
    let md = std::fs::read_to_string(summary).expect("step summary written");
    assert!(md.contains("### pilum build: failed"), "{md}");
    assert!(md.contains("| `a` | ❌ failed |") && md.contains("| `c` | ✅ ok |"), "{md}");
    assert!(md.contains("**`a/build`** (svc/a/pilum.yaml:4)"), "{md}");
}

/// Six workers finishing at once: every group is written whole, once, and holds only its own
/// task's lines (the old renderer opened one group inside another in most runs).
#[test]
fn github_groups_of_concurrent_tasks_never_interleave() {
    let mut t = project(0).env("GITHUB_ACTIONS", "true").args(["build", "-j", "6"]);
    let names: Vec<String> = (0..12).map(|i| format!("s{i:02}")).collect();
    for n in &names {
        t = t.file(
            &format!("{n}/pilum.yaml"),
            &format!("name: {n}\nrecipe: shell\nshell:\n  build: for i in $(seq 40); do echo \"$PILUM_SERVICE line $i\"; done\n"),
        );
    }
    let r = t.run().success();
    let mut open: Option<String> = None;
    let mut groups: Vec<(String, usize)> = Vec::new();
    for line in r.stdout.lines() {
        if let Some(title) = line.strip_prefix("::group::") {
            assert!(open.is_none(), "a group opened inside `{open:?}`:\n{}", r.stdout);
            let service = title.split('/').next().unwrap_or_default().to_string();
            open = Some(service.clone());
            groups.push((service, 0));
        } else if line == "::endgroup::" {
            assert!(open.take().is_some(), "an end without a group:\n{}", r.stdout);
        } else if let Some(service) = &open {
            assert!(line.starts_with(&format!("{service} line ")), "`{line}` in {service}'s group");
            groups.last_mut().expect("a group is open").1 += 1;
        } else {
            assert!(!line.contains(" line "), "output outside a group: `{line}`");
        }
    }
    groups.sort();
    let want: Vec<(String, usize)> = names.iter().map(|n| (n.clone(), 40)).collect();
    assert_eq!(groups, want, "{}", r.stdout);
}

/// A configuration error under GitHub Actions is an annotation at its line, too.
#[test]
fn github_actions_annotates_configuration_errors() {
    let t = project(0)
        .file("svc/pilum.yaml", "name: svc\nrecipe: shel\n")
        .env("GITHUB_ACTIONS", "true")
        .args(["deploy"]);
    let workspace = t.path().to_path_buf();
    let r = t.env("GITHUB_WORKSPACE", workspace).run().code(2);
    let error = r.stdout.lines().find(|l| l.starts_with("::error ")).expect("an annotation");
    assert!(
        error.starts_with("::error file=svc/pilum.yaml,line=2,col=1,title=pilum configuration error::service `svc`: unknown recipe `shel`"),
        "{error}"
    );
    assert!(error.contains("did you mean `shell`?"), "{error}");
    assert!(r.stderr.contains("unknown recipe `shel`"), "{}", r.stderr);
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
    let out = interrupt_once_running(&t, "a/pid");
    let pid_file = t.path().join("a/pid");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(130), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("deploy: interrupted"), "{stdout}");
    let pid = std::fs::read_to_string(pid_file).unwrap();
    assert!(gone(&pid), "the running step survived Ctrl-C");
    assert!(t.calls("step").is_empty(), "a task started after Ctrl-C");
}

/// Run pilum, wait until its step has written its pid to `pid` (it runs, and pilum is past
/// installing its Ctrl-C handler), send SIGINT and wait for the end.
fn interrupt_once_running(t: &Test, pid: &str) -> std::process::Output {
    let mut cmd = t.command();
    cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let child = cmd.spawn().expect("spawn pilum");
    let pid_file = t.path().join(pid);
    let pid_written = || std::fs::read_to_string(&pid_file).is_ok_and(|p| p.ends_with('\n'));
    wait_until("the step to write its pid", Duration::from_secs(20), pid_written);
    // SAFETY: sending SIGINT to the child we spawned.
    unsafe { libc_kill(child.id() as i32, 2) };
    child.wait_with_output().expect("wait")
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

/// Under `--json` a configuration error is NDJSON on stdout: one `error` event per problem,
/// with its place and help; stderr still gets the rendered error.
#[test]
fn json_on_a_configuration_error_is_one_error_event_per_problem() {
    let t = project(0)
        .file("a/pilum.yaml", "name: a\nrecipe: shell\nshell: [\n")
        .args(["deploy", "--json"]);
    let r = t.run().code(2);
    let ev = ndjson(&r.stdout);
    assert_eq!(ev.len(), 1, "{}", r.stdout);
    assert_eq!(
        (&ev[0]["event"], &ev[0]["code"], &ev[0]["file"]),
        (&"error".into(), &2.into(), &"a/pilum.yaml".into())
    );
    assert!(ev[0]["message"].as_str().unwrap().contains("invalid YAML"), "{}", ev[0]);
    assert!(
        ev[0]["line"].as_u64().is_some_and(|l| l > 0) && ev[0]["help"].is_string(),
        "{}",
        ev[0]
    );
    assert!(r.stderr.contains("invalid YAML"), "{}", r.stderr);

    let t = project(0)
        .file("a/pilum.yaml", "name: a\nrecipe: shel\n")
        .file("b/pilum.yaml", "name: b\nrecipe: lokal\n")
        .args(["--json", "plan"]);
    let ev = ndjson(&t.run().code(2).stdout);
    let at: Vec<_> =
        ev.iter().map(|e| (e["file"].clone(), e["line"].clone(), e["col"].clone())).collect();
    assert_eq!(
        at,
        [("a/pilum.yaml".into(), 2.into(), 1.into()), ("b/pilum.yaml".into(), 2.into(), 1.into())]
    );
    assert_eq!(ev[1]["did_you_mean"], "local");
    assert!(ev.iter().all(|e| e["event"] == "error" && e["help"].is_string()), "{ev:?}");

    // The example in docs/pipeline.md is what pilum prints.
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/pipeline.md"))
        .expect("docs/pipeline.md");
    let example = doc
        .lines()
        .find(|l| l.starts_with(r#"{"event":"error""#))
        .expect("an error event example in docs/pipeline.md");
    let t =
        project(0).file("api/pilum.yaml", "name: api\nrecipe: lokal\n").args(["--json", "deploy"]);
    assert_eq!(t.run().code(2).stdout.trim(), example);

    // An error without a place is one event with the message.
    let ev = ndjson(&project(0).args(["--json", "deploy"]).run().code(2).stdout);
    assert_eq!(ev.len(), 1);
    assert!(ev[0]["message"].as_str().unwrap().starts_with("no services found"), "{}", ev[0]);
}

#[test]
fn one_deploy_of_a_service_at_a_time_and_each_run_is_recorded() {
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
    // The same service is refused at once, naming the holder; another service goes on.
    let t = t.clear_args().args(["deploy", "a"]);
    let r = t.run().code(2);
    assert!(r.stderr.contains("the deploy lock `a/-/shell` is held by"), "{}", r.stderr);
    assert!(r.stderr.contains(&format!("(pid {}, `pilum build`)", first.id())), "{}", r.stderr);
    assert!(r.stderr.contains("nothing was run"), "{}", r.stderr);
    let t = t.clear_args().args(["deploy", "b"]);
    t.run().success();
    // Plans and dry runs do not need the lock.
    let t = t.clear_args().args(["dry-run", "b"]);
    t.run().success();
    // SIGINT: pilum kills its running step's process group and exits.
    unsafe { libc_kill(first.id() as i32, 2) };
    assert_eq!(first.wait().expect("wait").code(), Some(130));
    // `--no-cache`: `b` deployed these inputs above already.
    let t = t.clear_args().args(["deploy", "b", "--tag", "v5", "--no-cache"]);
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

/// Ctrl-C during a script's `deploy()` kills the steps and ends the script with 130: the call
/// does not return. A `deploy()` dry run's lines go to stderr, like its progress.
#[test]
fn ctrl_c_in_a_scripts_deploy_ends_the_script_with_130() {
    let script = "let r = deploy([\"a\"], #{});\nprint(`after deploy: ${r.ok}`);\n";
    let t = project(0)
        .file(
            "a/pilum.yaml",
            "name: a\nrecipe: shell\nshell:\n  build: echo $$ > pid; exec sleep 1000\n",
        )
        .file("d.rhai", script)
        .args(["run", "d.rhai"]);
    let out = interrupt_once_running(&t, "a/pid");
    let pid_file = t.path().join("a/pid");
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(130), "{stdout}\n{stderr}");
    assert!(!stdout.contains("after deploy"), "the script carried on:\n{stdout}");
    assert!(stderr.contains("deploy: interrupted"), "{stderr}");
    let pid = std::fs::read_to_string(pid_file).unwrap();
    assert!(gone(&pid), "the running step survived Ctrl-C");

    let t = t.file("d.rhai", "deploy([\"a\"], #{ dry_run: true });\nprint(\"done\");\n");
    let r = t.run().success();
    assert_eq!(r.stdout, "done\n");
    assert!(r.stderr.contains("would run a/build: exec::sh"), "{}", r.stderr);
}
