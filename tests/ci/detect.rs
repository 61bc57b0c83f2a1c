//! `pilum ci detect` per provider, from each provider's variables as fixtures, and the CI
//! defaults applied to other commands (colour, workers), with flags winning.

use std::path::Path;

use crate::common::Test;

fn detect(env: &[(&str, &str)]) -> serde_json::Value {
    let mut t = Test::new();
    for (k, v) in env {
        t = t.env(k, v);
    }
    let r = t.args(["ci", "detect", "--json"]).run().success();
    serde_json::from_str(r.stdout.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {}", r.stdout))
}

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ci/fixtures").join(name).display().to_string()
}

#[test]
fn github_actions_pull_request() {
    let event = fixture("github-pull-request-event.json");
    let v = detect(&[
        ("GITHUB_ACTIONS", "true"),
        ("GITHUB_EVENT_NAME", "pull_request"),
        ("GITHUB_EVENT_PATH", &event),
        ("GITHUB_REF_NAME", "42/merge"),
        ("GITHUB_HEAD_REF", "feature/cart"),
        ("GITHUB_BASE_REF", "main"),
        ("GITHUB_SHA", "ffffffffffffffffffffffffffffffffffffffff"),
        ("GITHUB_SERVER_URL", "https://github.com"),
        ("GITHUB_REPOSITORY", "acme/monorepo"),
        ("GITHUB_RUN_ID", "9"),
        ("GITHUB_RUN_ATTEMPT", "2"),
        ("GITHUB_ACTOR", "example-user"),
    ]);
    let ci = &v["ci"];
    assert_eq!(ci["provider"], "github-actions");
    assert_eq!(ci["provider_name"], "GitHub Actions");
    assert_eq!(ci["event"], "pull_request");
    assert_eq!(ci["ref"], "feature/cart");
    // Statuses go on the pull request's head, not the merge commit.
    assert_eq!(ci["sha"], "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c");
    assert_eq!(ci["base_ref"], "main");
    assert_eq!(ci["pull_request"], "42");
    assert_eq!(ci["run_url"], "https://github.com/acme/monorepo/actions/runs/9/attempts/2");
    assert_eq!(ci["actor"], "example-user");
    assert_eq!(v["defaults"]["renderer"], "github");
    assert_eq!(v["defaults"]["colour"], true);
    assert!(v["defaults"]["workers"].as_u64().expect("workers") >= 4);
    // Not a git checkout: no base, and why.
    assert_eq!(v["defaults"]["change_base"], serde_json::Value::Null);
    assert!(v["defaults"]["change_base_error"].as_str().expect("why").contains("git"), "{v}");
    assert!(
        v["job_environment"]["unknown"].as_str().expect("unknown").contains("GITHUB_WORKFLOW_REF")
    );
}

#[test]
fn github_actions_push_reads_the_job_environment_from_the_workflow() {
    let t = Test::new().file(".github/workflows/deploy.yml", "on: push\njobs:\n  ship:\n    runs-on: ubuntu-latest\n    environment:\n      name: production\n    steps: []\n");
    t.git(&["init", "-q", "-b", "main"]);
    t.git(&["add", "-A"]);
    t.git(&["commit", "-q", "-m", "base"]);
    let ws = t.path().display().to_string();
    let t = t
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_EVENT_NAME", "push")
        .env("GITHUB_EVENT_PATH", fixture("github-push-event.json"))
        .env("GITHUB_REF_NAME", "main")
        .env("GITHUB_REF_TYPE", "branch")
        .env("GITHUB_SHA", "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c")
        .env("GITHUB_WORKFLOW_REF", "acme/monorepo/.github/workflows/deploy.yml@refs/heads/main")
        .env("GITHUB_JOB", "ship")
        .env("GITHUB_WORKSPACE", &ws);
    let t = t.args(["ci", "detect", "--json"]);
    let v: serde_json::Value = serde_json::from_str(t.run().success().stdout.trim()).expect("json");
    assert_eq!(v["ci"]["event"], "push");
    assert_eq!(v["ci"]["ref"], "main");
    assert_eq!(v["job_environment"]["name"], "production");
    let text = t.clear_args().args(["ci", "detect"]).run().success().stdout;
    assert!(text.contains("provider: GitHub Actions"), "{text}");
    assert!(text.contains("environment    production (from the workflow file)"), "{text}");
    // The push event's `before`, as `--only-changed` would use it.
    let before = "6113728f27ae82c7b1a177c8d03f9e96e0adf246";
    assert_eq!(v["defaults"]["change_base"], before);
    assert_eq!(v["defaults"]["change_base_source"], "GitHub push event");
    assert!(text.contains(&format!("change base    {before} (GitHub push event")), "{text}");
}

#[test]
fn gitlab_merge_request() {
    let v = detect(&[
        ("GITLAB_CI", "true"),
        ("CI_PIPELINE_SOURCE", "merge_request_event"),
        ("CI_COMMIT_REF_NAME", "feature/cart"),
        ("CI_COMMIT_SHA", "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"),
        ("CI_MERGE_REQUEST_IID", "7"),
        ("CI_MERGE_REQUEST_TARGET_BRANCH_NAME", "main"),
        ("CI_MERGE_REQUEST_SOURCE_BRANCH_NAME", "feature/cart"),
        ("CI_PIPELINE_URL", "https://gitlab.com/acme/shop/-/pipelines/55"),
        ("GITLAB_USER_LOGIN", "dev"),
        ("CI_PROJECT_PATH", "acme/shop"),
        ("CI_ENVIRONMENT_NAME", "review/cart"),
    ]);
    let ci = &v["ci"];
    assert_eq!(ci["provider"], "gitlab-ci");
    assert_eq!(ci["event"], "merge_request");
    assert_eq!(ci["base_ref"], "main");
    assert_eq!(ci["pull_request"], "7");
    assert_eq!(ci["run_url"], "https://gitlab.com/acme/shop/-/pipelines/55");
    assert_eq!(ci["actor"], "dev");
    assert_eq!(ci["environment"], "review/cart");
    assert_eq!(v["defaults"]["renderer"], "plain");
}

#[test]
fn circleci_buildkite_jenkins_azure_bitbucket() {
    let v = detect(&[
        ("CIRCLECI", "true"),
        ("CIRCLE_BRANCH", "feature/x"),
        ("CIRCLE_SHA1", "abc1234"),
        ("CIRCLE_PULL_REQUEST", "https://github.com/acme/shop/pull/12"),
        ("CIRCLE_BUILD_URL", "https://circleci.com/gh/acme/shop/300"),
        ("CIRCLE_USERNAME", "dev"),
        ("CIRCLE_PROJECT_USERNAME", "acme"),
        ("CIRCLE_PROJECT_REPONAME", "shop"),
    ]);
    let ci = &v["ci"];
    assert_eq!(
        (ci["provider"].as_str(), ci["event"].as_str()),
        (Some("circleci"), Some("pull_request"))
    );
    assert_eq!(
        (ci["pull_request"].as_str(), ci["repository"].as_str()),
        (Some("12"), Some("acme/shop"))
    );
    assert_eq!(ci["run_url"], "https://circleci.com/gh/acme/shop/300");

    let v = detect(&[
        ("BUILDKITE", "true"),
        ("BUILDKITE_BRANCH", "main"),
        ("BUILDKITE_COMMIT", "abc1234"),
        ("BUILDKITE_PULL_REQUEST", "false"),
        ("BUILDKITE_SOURCE", "webhook"),
        ("BUILDKITE_BUILD_URL", "https://buildkite.com/acme/shop/builds/8"),
        ("BUILDKITE_BUILD_CREATOR", "Dev Person"),
    ]);
    let ci = &v["ci"];
    assert_eq!((ci["provider"].as_str(), ci["event"].as_str()), (Some("buildkite"), Some("push")));
    assert_eq!(ci["pull_request"], serde_json::Value::Null);
    assert_eq!(ci["actor"], "Dev Person");

    let v = detect(&[
        ("JENKINS_URL", "https://jenkins.example/"),
        ("BUILD_ID", "5"),
        ("BUILD_URL", "https://jenkins.example/job/shop/5/"),
        ("GIT_BRANCH", "origin/main"),
        ("GIT_COMMIT", "abc1234"),
    ]);
    let ci = &v["ci"];
    assert_eq!((ci["provider"].as_str(), ci["ref"].as_str()), (Some("jenkins"), Some("main")));
    assert_eq!(v["defaults"]["colour"], false, "Jenkins shows no colours without a plugin");

    let v = detect(&[
        ("TF_BUILD", "True"),
        ("BUILD_REASON", "PullRequest"),
        ("BUILD_SOURCEBRANCHNAME", "merge"),
        ("BUILD_SOURCEVERSION", "abc1234"),
        ("SYSTEM_PULLREQUEST_TARGETBRANCH", "refs/heads/main"),
        ("SYSTEM_PULLREQUEST_SOURCEBRANCH", "refs/heads/feature/x"),
        ("SYSTEM_PULLREQUEST_PULLREQUESTID", "31"),
        ("SYSTEM_COLLECTIONURI", "https://dev.azure.com/acme/"),
        ("SYSTEM_TEAMPROJECT", "shop"),
        ("BUILD_BUILDID", "1234"),
        ("BUILD_REQUESTEDFOR", "Dev Person"),
        ("ENVIRONMENT_NAME", "production"),
    ]);
    let ci = &v["ci"];
    assert_eq!(
        (ci["provider"].as_str(), ci["event"].as_str()),
        (Some("azure-pipelines"), Some("pull_request"))
    );
    assert_eq!(
        (ci["base_ref"].as_str(), ci["head_ref"].as_str()),
        (Some("main"), Some("feature/x"))
    );
    assert_eq!(ci["run_url"], "https://dev.azure.com/acme/shop/_build/results?buildId=1234");
    assert_eq!(ci["environment"], "production");

    let v = detect(&[
        ("CI", "true"),
        ("BITBUCKET_BUILD_NUMBER", "17"),
        ("BITBUCKET_COMMIT", "abc1234"),
        ("BITBUCKET_BRANCH", "feature/x"),
        ("BITBUCKET_PR_ID", "3"),
        ("BITBUCKET_PR_DESTINATION_BRANCH", "main"),
        ("BITBUCKET_GIT_HTTP_ORIGIN", "https://bitbucket.org/acme/shop"),
        ("BITBUCKET_REPO_FULL_NAME", "acme/shop"),
        ("BITBUCKET_DEPLOYMENT_ENVIRONMENT", "staging"),
    ]);
    let ci = &v["ci"];
    assert_eq!(
        (ci["provider"].as_str(), ci["event"].as_str()),
        (Some("bitbucket-pipelines"), Some("pull_request"))
    );
    assert_eq!(ci["run_url"], "https://bitbucket.org/acme/shop/pipelines/results/17");
    assert_eq!(
        (ci["base_ref"].as_str(), ci["environment"].as_str()),
        (Some("main"), Some("staging"))
    );
}

#[test]
fn outside_ci_nothing_is_detected() {
    let v = detect(&[]);
    assert_eq!(v["ci"], serde_json::Value::Null);
    assert_eq!(v["defaults"]["renderer"], "plain", "not a terminal");
    let text = Test::new().args(["ci", "detect"]).run().success().stdout;
    assert!(text.starts_with("not in CI"), "{text}");
}

#[test]
fn colour_is_on_in_ci_logs_and_flags_win() {
    let t = super::project("", None).env("NO_COLOR", "").env("GITHUB_ACTIONS", "true");
    let t = t.args(["list"]);
    let r = t.run().success();
    assert!(r.stdout.contains("\u{1b}["), "colour in a GitHub Actions log:\n{}", r.stdout);
    let r = t.clear_args().args(["list", "--color", "never"]).run().success();
    assert!(!r.stdout.contains("\u{1b}["), "--color never wins:\n{}", r.stdout);
    let t = super::project("", None).env("NO_COLOR", "").args(["list"]);
    assert!(!t.run().success().stdout.contains("\u{1b}["), "no colour in a pipe outside CI");
    let t =
        super::project("", None).env("NO_COLOR", "1").env("GITHUB_ACTIONS", "true").args(["list"]);
    assert!(!t.run().success().stdout.contains("\u{1b}["), "NO_COLOR wins");
}

#[test]
fn ci_runs_at_least_four_workers_and_max_workers_wins() {
    let mut t = crate::deploy::project(300);
    for s in ["a", "b", "c", "d"] {
        t = t.file(&format!("{s}/pilum.yaml"), &crate::deploy::shell_service(s, &[]));
    }
    let t = t.env("CI", "true").args(["build"]);
    t.run().success();
    assert_eq!(most_at_once(&t), Some(4), "four builds at once in CI");

    let t = t.clear_args().args(["build", "-j", "1"]);
    std::fs::remove_dir_all(t.path().join(".calls")).expect("clear calls");
    std::fs::create_dir_all(t.path().join(".calls")).expect("calls dir");
    t.run().success();
    assert_eq!(most_at_once(&t), Some(1), "`-j 1` wins");
}

/// The most `step` calls that ran at the same time.
fn most_at_once(t: &Test) -> Option<usize> {
    let spans = crate::deploy::spans(t);
    spans
        .iter()
        .map(|(_, _, s, _)| spans.iter().filter(|(_, _, s2, e2)| s2 <= s && s < e2).count())
        .max()
}
