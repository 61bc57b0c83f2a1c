//! One pinned transcript per cloud recipe: `status --json`, `logs --since 10m`, `logs
//! --follow`, `rollback --dry-run` (which must run no fake) and `rollback`, each with the
//! commands the fakes saw and what pilum printed.

use crate::catalogue::containers;
use crate::catalogue::harness::{Case, filter_root, run_with, transcript};
use crate::common::Test;

/// The fakes of a case, by name.
fn fakes(case: &Case) -> Vec<&'static str> {
    case.fakes.iter().map(|(n, _)| *n).collect()
}

/// Forget what the fakes recorded so far (their state files stay).
fn forget(t: &Test, fakes: &[&str]) {
    for f in fakes {
        t.forget_calls(f);
    }
}

/// Run every hook of `service` in `case`'s project (after `prepare`) and return the pinned
/// text. Secrets of the case must not appear in any output.
fn hooks(case: &Case, service: &str, regions: &[&str], prepare: impl FnOnce(&Test)) -> String {
    let t = case.project();
    prepare(&t);
    let fakes = fakes(case);
    let mut pinned = String::new();
    let mut step = |args: &[&str], expect_calls: bool| {
        forget(&t, &fakes);
        let r = run_with(&t, args);
        assert_eq!(r.status, 0, "`pilum {}` failed\n{}\n{}", args.join(" "), r.stdout, r.stderr);
        for s in case.secrets.iter().chain(&case.argv_secrets) {
            assert!(
                !r.stdout.contains(s) && !r.stderr.contains(s),
                "secret leaked:\n{}\n{}",
                r.stdout,
                r.stderr
            );
        }
        let mut calls = by_region(&transcript(&t, &fakes), regions);
        if args.contains(&"--follow") {
            // Followed streams run at once (several log groups of one target too).
            let mut lines: Vec<&str> = calls.lines().collect();
            lines.sort_unstable();
            calls = lines.join("\n");
        }
        if expect_calls {
            assert!(!calls.is_empty(), "`pilum {}` ran no provider CLI", args.join(" "));
        } else {
            assert!(calls.is_empty(), "`pilum {}` ran:\n{calls}", args.join(" "));
        }
        let shown = if args.contains(&"--json") {
            let v: serde_json::Value = serde_json::from_str(r.stdout.trim())
                .unwrap_or_else(|e| panic!("not one JSON document ({e}): {}", r.stdout));
            serde_json::to_string_pretty(&v).expect("JSON")
        } else {
            by_region(r.stdout.trim_end(), regions)
        };
        pinned.push_str(&format!(
            "--- pilum {}\n{calls}\n--- stdout\n{}\n",
            args.join(" "),
            filter_root(&shown, t.path())
        ));
    };
    step(&["status", "--json"], true);
    step(&["logs", service, "--since", "10m"], true);
    step(&["logs", service, "--follow"], true);
    step(&["rollback", service, "--dry-run"], false);
    step(&["rollback", service], true);
    pinned
}

/// Targets of several regions run at once: their lines, grouped by the region they name
/// (first the lines naming none), each region's in the order they came.
fn by_region(text: &str, regions: &[&str]) -> String {
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort_by_key(|l| regions.iter().position(|r| l.contains(r)).map_or(0, |i| i + 1));
    lines.join("\n")
}

macro_rules! hook_tests {
    ($($test:ident => $snapshot:literal, $service:literal, $regions:expr, $case:expr, $prepare:expr;)*) => {
        $(
            #[test]
            fn $test() {
                let pinned = hooks(&$case, $service, &$regions, $prepare);
                insta::assert_snapshot!($snapshot, pinned);
            }
        )*
    };
}

/// Two revisions of the container app, `v1.2.2` then `v1.2.3` (serving).
fn aca_revisions(t: &Test) {
    t.write(
        ".calls/aca-revisions",
        "web--v1-2-2 acmecr.azurecr.io/web:v1.2.2\nweb--v1-2-3 acmecr.azurecr.io/web:v1.2.3\n",
    );
}

fn nothing(_: &Test) {}

hook_tests! {
    gcp_cloud_run => "hooks-gcp-cloud-run", "api", ["us-central1", "europe-west1"], containers::cloud_run(), nothing;
    gcp_cloud_run_job => "hooks-gcp-cloud-run-job", "migrate", [], containers::cloud_run_job(), nothing;
    aws_lambda => "hooks-aws-lambda", "thumbnails", [], containers::lambda_alias(), nothing;
    aws_ecs_fargate => "hooks-aws-ecs-fargate", "api", [], containers::ecs(false), nothing;
    kubernetes => "hooks-kubernetes", "api", [], containers::kubernetes(":"), nothing;
    azure_container_apps => "hooks-azure-container-apps", "web", [], containers::container_apps(), aca_revisions;
    fly => "hooks-fly", "edge", [], containers::fly(), nothing;
}

/// The deploy step of each cloud recipe returns the URL its provider reports: `--report` has it.
#[test]
fn deploys_return_the_url_the_provider_reports() {
    let cases: [(Case, Option<&str>); 7] = [
        (containers::cloud_run(), Some("https://api-7hx2-uc.a.run.app")),
        (
            containers::cloud_run_job(),
            Some(
                "https://console.cloud.google.com/run/jobs/executions/details/us-central1/migrate-x7k2p/tasks?project=acme-prod",
            ),
        ),
        (containers::lambda(), Some("https://thumbs.lambda-url.us-east-1.on.aws/")),
        (containers::ecs(false), None),
        (containers::kubernetes(":"), None),
        (
            containers::container_apps(),
            Some("https://web.kindhill-1a2b.westeurope.azurecontainerapps.io"),
        ),
        (containers::fly(), Some("https://acme-edge.fly.dev")),
    ];
    for (case, url) in cases {
        let t = case.project();
        let r = run_with(
            &t,
            &["deploy", "--tag", crate::catalogue::harness::TAG, "--report", "report.json"],
        );
        assert_eq!(r.status, 0, "{}: {}\n{}", case.name, r.stdout, r.stderr);
        let text = std::fs::read_to_string(t.path().join("report.json")).expect("report written");
        let v: serde_json::Value = serde_json::from_str(&text).expect("JSON report");
        assert_eq!(v["services"][0]["url"].as_str(), url, "{}: {v}", case.name);
    }
}
