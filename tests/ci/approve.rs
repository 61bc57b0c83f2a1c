//! The approval gate: `approval: required` refuses without a terminal unless `--yes`, asks on
//! a terminal, and in CI accepts a job that runs in that deployment environment.

use std::io::Write;
use std::process::Stdio;

use super::project;
use crate::common::Test;

const SETTINGS: &str = "environments:\n  production:\n    approval: required\n";

fn ran(t: &Test) -> bool {
    t.path().join(".pilum/history.jsonl").exists()
}

#[test]
fn without_a_terminal_it_refuses_unless_yes() {
    let t = project(SETTINGS, None).args(["deploy", "--env", "production"]);
    let r = t.run().code(2);
    assert!(
        r.stderr.contains(
            "environment `production` requires approval, and there is no terminal to ask on"
        ),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("help: pass `--yes`"), "{}", r.stderr);
    assert!(!ran(&t), "nothing ran");

    let t = t.clear_args().args(["deploy", "--env", "staging"]);
    t.run().success();
    let t = t.clear_args().args(["deploy", "--env", "production", "--dry-run"]);
    t.run().success();
    // Building and pushing need no approval.
    let t = t.clear_args().args(["publish", "--env", "production"]);
    t.run().success();
    let t = t.clear_args().args(["deploy", "--env", "production", "--yes"]);
    let r = t.run().success();
    assert!(r.stderr.contains("approved with `--yes`"), "{}", r.stderr);
}

/// Run `pilum deploy --env production` on a pseudo-terminal (util-linux `script`), typing
/// `answer`.
fn on_terminal(t: &Test, answer: &str) -> (i32, String) {
    let pilum = t.command();
    let mut cmd = std::process::Command::new("script");
    cmd.args(["-qec", "$PILUM deploy --env production", "/dev/null"]);
    cmd.current_dir(t.path());
    for (k, v) in pilum.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    cmd.env("PILUM", env!("CARGO_BIN_EXE_pilum")).env("TERM", "xterm");
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| {
        panic!("cannot run `script` (util-linux), needed for terminal tests: {e}")
    });
    child.stdin.take().expect("stdin").write_all(answer.as_bytes()).expect("type the answer");
    let out = child.wait_with_output().expect("wait for script");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn on_a_terminal_it_shows_the_plan_and_asks() {
    let t = project(SETTINGS, None);
    let (code, screen) = on_terminal(&t, "n\n");
    assert!(
        screen.contains("approval required: will deploy 1 service to `production`"),
        "{screen}"
    );
    assert!(screen.contains("api") && screen.contains("deploy to `production`? [y/N]"), "{screen}");
    assert!(screen.contains("deploy to `production` was not approved; nothing ran"), "{screen}");
    assert_eq!(code, 2, "{screen}");
    assert!(!ran(&t));
    let (code, screen) = on_terminal(&t, "y\n");
    assert_eq!(code, 0, "{screen}");
    assert!(ran(&t), "{screen}");
}

fn workflow(t: Test, environment: &str) -> Test {
    let ws = t.path().display().to_string();
    t.file(
        ".github/workflows/deploy.yml",
        &format!(
            "on: push\njobs:\n  ship:\n    runs-on: ubuntu-latest\n{environment}    steps: []\n"
        ),
    )
    .env("GITHUB_ACTIONS", "true")
    .env("GITHUB_WORKFLOW_REF", "acme/shop/.github/workflows/deploy.yml@refs/heads/main")
    .env("GITHUB_JOB", "ship")
    .env("GITHUB_WORKSPACE", ws)
}

#[test]
fn in_github_actions_the_job_environment_is_the_approval() {
    let t = workflow(project(SETTINGS, None), "    environment: production\n").args([
        "deploy",
        "--env",
        "production",
    ]);
    let r = t.run().success();
    assert!(
        r.stderr.contains("approved by the protection rules of GitHub Actions job `ship`'s environment `production`"),
        "{}",
        r.stderr
    );

    let t = workflow(project(SETTINGS, None), "    environment:\n      name: staging\n").args([
        "deploy",
        "--env",
        "production",
    ]);
    let r = t.run().code(2);
    assert!(
        r.stderr
            .contains("GitHub Actions job `ship` runs in environment `staging`, not `production`"),
        "{}",
        r.stderr
    );
    assert!(!ran(&t));

    let t = workflow(project(SETTINGS, None), "").args(["deploy", "--env", "production"]);
    let r = t.run().code(2);
    assert!(
        r.stderr.contains("GitHub Actions job `ship` has no deployment environment"),
        "{}",
        r.stderr
    );

    let t = workflow(project(SETTINGS, None), "    environment: ${{ inputs.target }}\n").args([
        "deploy",
        "--env",
        "production",
    ]);
    let r = t.run().code(2);
    assert!(r.stderr.contains("pilum cannot evaluate"), "{}", r.stderr);
    let r = t.clear_args().args(["deploy", "--env", "production", "--yes"]).run().success();
    assert!(r.stderr.contains("approved with `--yes`"), "{}", r.stderr);
}

#[test]
fn in_gitlab_the_job_environment_variable_is_the_approval() {
    let t =
        project(SETTINGS, None).env("GITLAB_CI", "true").env("CI_ENVIRONMENT_NAME", "production");
    t.args(["deploy", "--env", "production"]).run().success();
    let t = project(SETTINGS, None).env("GITLAB_CI", "true");
    let r = t.args(["deploy", "--env", "production"]).run().code(2);
    assert!(r.stderr.contains("this GitLab CI job has no deployment environment"), "{}", r.stderr);
}
