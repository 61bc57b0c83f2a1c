//! What the hook commands refuse before running anything (exit 2), and how they fail when a
//! provider CLI fails, hangs past its timeout or is interrupted (exit 1, 130).

use std::time::Duration;

use crate::catalogue::containers;
use crate::catalogue::harness::{Case, run_with, strict};
use crate::common::{Test, gone, wait_until};

const DEB: &str = "name: hello\nrecipe: deb\ndeb:\n  maintainer: Acme Ops <ops@example.com>\n  \
    description: Greets the world\n  files:\n    - { src: README.md, dest: /usr/share/doc/hello/README.md }\n";

/// The Cloud Run project of the recipe tests, plus a `deb` package `hello`.
pub(super) fn with_deb() -> Test {
    containers::cloud_run().project().file("pkg/pilum.yaml", DEB).file("pkg/README.md", "# hello\n")
}

fn all(r: &crate::common::Run) -> String {
    format!("{}\n{}", r.stdout, r.stderr)
}

#[test]
fn a_recipe_without_the_hook_is_not_supported_exit_2() {
    let t = with_deb();
    for cmd in ["status", "logs", "rollback"] {
        let r = run_with(&t, &[cmd, "hello"]);
        assert_eq!(r.status, 2, "`pilum {cmd} hello`\n{}", all(&r));
        assert!(
            r.stderr.contains(&format!(
                "`pilum {cmd}` is not supported by recipe `deb` (service `hello`)"
            )),
            "{}",
            r.stderr
        );
        assert!(r.stderr.contains(&format!("defining `fn {cmd}(ctx)`")), "{}", r.stderr);
    }
    assert!(t.calls("gcloud").is_empty(), "nothing ran: {:?}", t.calls("gcloud"));
}

#[test]
fn status_of_everything_leaves_out_recipes_without_the_hook_and_says_so() {
    let t = with_deb();
    let r = run_with(&t, &["status"]).success();
    assert!(
        r.stderr.contains("not shown, their recipe has no status hook: `hello` (deb)"),
        "{}",
        r.stderr
    );
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert!(lines[0].starts_with("SERVICE"), "{}", r.stdout);
    for header in ["TARGET", "ENV", "LIVE", "HEALTH", "URL"] {
        assert!(lines[0].contains(header), "{}", r.stdout);
    }
    let rows: Vec<&&str> = lines.iter().filter(|l| l.starts_with("api ")).collect();
    assert_eq!(rows.len(), 2, "one row per region: {}", r.stdout);
    assert!(rows[0].contains("gcp-cloud-run/us-central1"), "{}", r.stdout);
    assert!(
        rows[0].contains("api-00002-xyz (v1.2.3)") && rows[0].contains("healthy"),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains('\u{1b}'), "no colour when not a terminal: {}", r.stdout);
}

#[test]
fn unknown_services_are_refused_before_anything_runs() {
    let t = containers::cloud_run().project();
    for args in [&["status", "apo"][..], &["logs", "apo"], &["rollback", "apo"]] {
        let r = run_with(&t, args);
        assert_eq!(r.status, 2, "{args:?}\n{}", all(&r));
        assert!(r.stderr.contains("apo"), "{}", r.stderr);
        assert!(r.stderr.contains("did you mean `api`"), "{}", r.stderr);
    }
    assert!(t.calls("gcloud").is_empty());
}

#[test]
fn usage_errors_of_logs_and_rollback() {
    let t = containers::cloud_run().project();
    let r = run_with(&t, &["logs"]);
    assert_eq!(r.status, 2, "{}", all(&r));
    assert!(r.stderr.contains("name the services whose logs to show"), "{}", r.stderr);
    let r = run_with(&t, &["rollback"]);
    assert_eq!(r.status, 2, "{}", all(&r));
    assert!(r.stderr.contains("name the service to roll back"), "{}", r.stderr);
    let r = run_with(&t, &["rollback", "api", "--to", "api-00001-abc"]);
    assert_eq!(r.status, 2, "{}", all(&r));
    assert!(
        r.stderr.contains("`--to` names one revision, but the selection has 2 targets: `api@us-central1`, `api@europe-west1`"),
        "{}",
        r.stderr
    );
    let r = run_with(&t, &["rollback", "api", "--region", "asia-east1"]);
    assert_eq!(r.status, 2, "{}", all(&r));
    assert!(
        r.stderr.contains("no selected service deploys to region `asia-east1`"),
        "{}",
        r.stderr
    );
    let r = run_with(&t, &["logs", "api", "--since", "soon"]);
    assert_eq!(r.status, 2, "{}", all(&r));
    assert!(t.calls("gcloud").is_empty(), "{:?}", t.calls("gcloud"));

    // One region and `--to`: exactly that revision, nothing looked up.
    run_with(&t, &["rollback", "api", "--region", "europe-west1", "--to", "api-00001-abc"])
        .success();
    let calls = t.calls("gcloud");
    assert!(calls.iter().all(|c| !c.contains(&"list".to_string())), "{calls:?}");
    let traffic: Vec<_> =
        calls.iter().filter(|c| c.contains(&"update-traffic".to_string())).collect();
    assert_eq!(traffic.len(), 1, "{calls:?}");
    assert!(
        traffic[0].windows(2).any(|w| w == ["--to-revisions", "api-00001-abc=100"]),
        "{calls:?}"
    );
    assert!(traffic[0].windows(2).any(|w| w == ["--region", "europe-west1"]), "{calls:?}");
}

/// A Cloud Run project whose `gcloud run services describe` runs `body` instead.
fn cloud_run_describing(body: &str) -> Test {
    let mut case = containers::cloud_run();
    case.fakes.retain(|(n, _)| *n != "gcloud");
    let gcloud = format!(
        "case \"$*\" in\n  \"run services describe \"*) {body}; exit 0 ;;\nesac\n{}",
        containers::GCLOUD
    );
    let case: Case = case.fake("gcloud", gcloud);
    case.project()
}

#[test]
fn a_failing_provider_cli_fails_status_naming_the_service_and_its_stderr() {
    let t = cloud_run_describing(
        "echo 'ERROR: (gcloud.run.services.describe) PERMISSION_DENIED: Permission denied on resource project acme-prod.' >&2; exit 1",
    );
    let r = run_with(&t, &["status"]);
    assert_eq!(r.status, 1, "{}", all(&r));
    assert!(
        r.stderr.contains("status of `api` (gcp-cloud-run/us-central1) failed"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("PERMISSION_DENIED"), "the CLI's stderr is shown: {}", r.stderr);
    assert!(r.stdout.starts_with("SERVICE"), "the table is still shown: {}", r.stdout);
    let j = run_with(&t, &["status", "--json"]);
    assert_eq!(j.status, 1);
    let v: serde_json::Value = serde_json::from_str(j.stdout.trim()).expect("one JSON document");
    assert_eq!(v[0]["health"], "unknown", "{v}");
    assert!(v[0]["error"].as_str().is_some_and(|e| e.contains("PERMISSION_DENIED")), "{v}");
}

#[test]
fn a_hung_provider_cli_is_killed_at_the_timeout() {
    let t = cloud_run_describing("echo $$ >> [ROOT]/.calls/hung.pids; exec sleep 60");
    let pids = t.path().join(".calls/hung.pids");
    let r = run_with(&t, &["status", "--timeout", "1s"]);
    assert_eq!(r.status, 1, "{}", all(&r));
    assert!(r.stderr.contains("timed out after 1s"), "{}", r.stderr);
    assert!(
        r.stderr.contains("status of `api` (gcp-cloud-run/europe-west1) failed"),
        "{}",
        r.stderr
    );
    let pids = std::fs::read_to_string(pids).expect("the fakes started");
    for pid in pids.lines() {
        wait_until(&format!("the hung fake {pid} is killed"), Duration::from_secs(10), || {
            gone(pid)
        });
    }
}

#[test]
fn rolling_back_lambda_needs_an_alias() {
    let t = containers::lambda().project();
    let r = run_with(&t, &["rollback", "thumbnails", "--region", "eu-west-1"]);
    assert_eq!(r.status, 1, "{}", all(&r));
    assert!(
        r.stderr.contains("rolling back `aws-lambda` needs `alias` under `lambda:`"),
        "{}",
        r.stderr
    );
    assert!(
        !t.calls("aws").iter().any(|c| c.contains(&"update-alias".to_string())),
        "{:?}",
        t.calls("aws")
    );
}

/// Ctrl-C ends `logs --follow`: the provider CLIs are killed and pilum exits 130.
#[test]
fn ctrl_c_ends_following_logs() {
    let follow = r#"echo $$ >> [ROOT]/.calls/tail.pids
i=0; while [ $i -lt 600 ]; do echo "line $i"; i=$((i + 1)); sleep 0.1; done"#;
    let mut case = containers::cloud_run();
    case.fakes.retain(|(n, _)| *n != "gcloud");
    let gcloud = format!("case \"$*\" in\n  *\"logs tail \"*) {follow} ;;\nesac");
    let t = case.fake("gcloud", gcloud).project();
    let out = t.path().join("logs.out");
    let mut child = t
        .command()
        .args(["logs", "api", "--follow"])
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&out).expect("create output file"))
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start pilum");
    let pid = child.id().to_string();
    wait_until("both regions stream", Duration::from_secs(20), || {
        let text = std::fs::read_to_string(&out).unwrap_or_default();
        text.contains("api@us-central1  | line") && text.contains("api@europe-west1 | line")
    });
    let kill = std::process::Command::new("kill").args(["-INT", &pid]).status().expect("kill");
    assert!(kill.success());
    let mut status = None;
    wait_until("pilum exits after Ctrl-C", Duration::from_secs(20), || {
        status = child.try_wait().expect("wait for pilum");
        status.is_some()
    });
    assert_eq!(status.and_then(|s| s.code()), Some(130), "{status:?}");
    let pids = std::fs::read_to_string(t.path().join(".calls/tail.pids")).expect("tails started");
    for p in pids.lines() {
        wait_until(&format!("the log tail {p} is killed"), Duration::from_secs(10), || gone(p));
    }
}

#[test]
fn strict_fakes_refuse_a_flag_the_real_cli_does_not_have() {
    let t = Test::new().fake("gcloud", &strict("gcloud", ":"));
    // `logs read` has `--freshness`, not `--since`.
    let r = std::process::Command::new(t.path().join(".bin/gcloud"))
        .args([
            "run",
            "services",
            "logs",
            "read",
            "api",
            "--region",
            "us-central1",
            "--since",
            "10m",
        ])
        .output()
        .expect("run the fake");
    assert!(!r.status.success());
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(stderr.contains("--since"), "{stderr}");
}

/// After a rollback pinned traffic to an old revision, a deploy moves it to the new one:
/// pinned traffic does not follow new revisions.
#[test]
fn a_deploy_after_a_rollback_unpins_cloud_run_traffic() {
    let pinned = r#"printf '%s' '{"status":{"url":"https://api-7hx2-uc.a.run.app","latestCreatedRevisionName":"api-00003-new","latestReadyRevisionName":"api-00003-new","traffic":[{"revisionName":"api-00001-abc","percent":100}],"conditions":[{"type":"Ready","status":"True"}]}}'"#;
    let t = cloud_run_describing(pinned);
    run_with(&t, &["deploy", "--tag", crate::catalogue::harness::TAG]).success();
    let calls = t.calls("gcloud");
    let unpin: Vec<_> = calls.iter().filter(|c| c.contains(&"--to-latest".to_string())).collect();
    assert_eq!(unpin.len(), 2, "once per region: {calls:?}");
    assert!(unpin[0].starts_with(&[
        "run".into(),
        "services".into(),
        "update-traffic".into(),
        "api".into()
    ]));
}

/// A rollback holds the deploy lock: a second rollback or a deploy of the checkout is refused
/// while it runs (a dry run is not).
#[test]
fn a_rollback_holds_the_deploy_lock() {
    let wait = r#"case "$*" in
  *update-traffic*) : > [ROOT]/.calls/started; i=0
    while [ ! -f [ROOT]/.calls/release ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i + 1)); done ;;
esac"#;
    let mut case = containers::cloud_run();
    case.fakes.retain(|(n, _)| *n != "gcloud");
    let t = case.fake("gcloud", format!("{wait}\n{}", containers::GCLOUD)).project();
    let mut first = t
        .command()
        .args(["rollback", "api", "--region", "us-central1"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start pilum");
    let started = t.path().join(".calls/started");
    wait_until("the first rollback to run", Duration::from_secs(20), || started.exists());
    // The lock is the service's (× environment × target), whatever the region.
    let r = run_with(&t, &["rollback", "api", "--region", "europe-west1"]);
    assert_eq!(r.status, 2, "{}", all(&r));
    assert!(r.stderr.contains("the deploy lock `api/-/gcp-cloud-run` is held by"), "{}", r.stderr);
    assert!(r.stderr.contains(&format!("(pid {}, `pilum rollback`)", first.id())), "{}", r.stderr);
    run_with(&t, &["rollback", "api", "--region", "europe-west1", "--dry-run"]).success();
    t.write(".calls/release", "");
    let mut status = None;
    wait_until("the first rollback to finish", Duration::from_secs(20), || {
        status = first.try_wait().expect("wait for pilum");
        status.is_some()
    });
    assert_eq!(status.and_then(|s| s.code()), Some(0));
}

/// Deploys are recorded with the revision their step returned; `status` shows the last one
/// with the drift column; `rollback` without `--to` goes back to the previous recorded deploy,
/// and is recorded itself.
#[test]
fn rollback_goes_back_to_the_previous_recorded_deploy_and_is_recorded() {
    let t = containers::cloud_run().project();
    for tag in ["v1", "v2"] {
        let r = run_with(&t, &["deploy", "--tag", tag, "--no-cache"]);
        assert_eq!(r.status, 0, "{}", all(&r));
    }
    let history = |t: &Test| -> Vec<serde_json::Value> {
        let r = run_with(t, &["history", "api", "--json"]);
        assert_eq!(r.status, 0, "{}", all(&r));
        r.stdout.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
    };
    let before = history(&t);
    let at = |v: &[serde_json::Value], region: &str, i: usize| -> serde_json::Value {
        v.iter().filter(|r| r["region"] == region).nth(i).cloned().unwrap_or_default()
    };
    let (v2, v1) = (at(&before, "us-central1", 0), at(&before, "us-central1", 1));
    assert_eq!(
        (v2["version"].as_str(), v1["version"].as_str()),
        (Some("v2"), Some("v1")),
        "{before:#?}"
    );
    let v1_revision =
        v1["revision"].as_str().expect("the deploy step returned a revision").to_string();

    let r = run_with(&t, &["status", "api", "--region", "us-central1"]);
    assert_eq!(r.status, 0, "{}", all(&r));
    assert!(r.stdout.contains("LAST DEPLOY") && r.stdout.contains("DRIFT"), "{}", r.stdout);
    assert!(r.stdout.contains("v2"), "{}", r.stdout);

    // The project's notifier hears the rollback.
    let rx = crate::common::receiver::Receiver::ok();
    t.write(
        "pilum-project.yaml",
        &format!(
            "notify:\n  - notifier: webhook\n    url: {}/hook\n    events: [service_rolled_back, service_failed]\n",
            rx.url
        ),
    );
    let r = run_with(&t, &["--json", "rollback", "api", "--region", "us-central1"]);
    assert_eq!(r.status, 0, "{}", all(&r));
    let told: Vec<serde_json::Value> =
        rx.requests().iter().map(super::super::common::receiver::Request::json).collect();
    assert_eq!(told.len(), 1, "{told:#?}");
    assert_eq!(
        (told[0]["event"].as_str(), told[0]["run"]["command"].as_str()),
        (Some("service_rolled_back"), Some("rollback")),
        "{:#}",
        told[0]
    );
    assert_eq!(told[0]["service"]["name"], "api@us-central1", "{:#}", told[0]);
    let ev: serde_json::Value = serde_json::from_str(r.stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}: {}", r.stdout));
    assert_eq!(
        (ev["to_source"].as_str(), ev["to"].as_str()),
        (Some("history"), Some(v1_revision.as_str())),
        "{ev}"
    );

    let after = history(&t);
    let newest = at(&after, "us-central1", 0);
    assert_eq!(
        (newest["command"].as_str(), newest["version"].as_str(), newest["outcome"].as_str()),
        (Some("rollback"), Some("v1"), Some("ok")),
        "{newest:#}"
    );
    assert!(newest["lock"].as_str().is_some_and(|l| l == "api/-/gcp-cloud-run"), "{newest:#}");

    // With `--to`, the record names what was given, not a tag history had for another revision.
    let v2_revision = v2["revision"].as_str().expect("v2's revision").to_string();
    let r = run_with(&t, &["rollback", "api", "--region", "us-central1", "--to", &v2_revision]);
    assert_eq!(r.status, 0, "{}", all(&r));
    let newest = at(&history(&t), "us-central1", 0);
    assert_eq!(newest["version"].as_str(), Some(v2_revision.as_str()), "{newest:#}");
    let after = history(&t);

    // The history timeline draws the same records, each rollback a diamond of its own class.
    let r = run_with(&t, &["history", "api", "--html", "history.html"]);
    assert_eq!(r.status, 0, "{}", all(&r));
    let page = std::fs::read_to_string(t.path().join("history.html")).expect("history.html");
    assert_eq!(page.matches("<g class=\"deploy ").count(), after.len(), "{page}");
    let rollbacks = after.iter().filter(|r| r["command"] == "rollback").count();
    assert_eq!(rollbacks, 2);
    assert_eq!(page.matches("<g class=\"deploy ok rollback\"").count(), rollbacks, "{page}");
}
