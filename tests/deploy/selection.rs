//! Selection and configuration: `--only-changed` on a real git history from a subdirectory,
//! names and globs, `--env` overrides, `${VAR}` expansion, and the plan's reasons.

use super::{project, shell_service};
use crate::common::Test;

fn names(stdout: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(stdout).expect("list --json is JSON");
    v.as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap().to_string()).collect()
}

/// Why `list --json` selected the service `name`.
fn reason_of(stdout: &str, name: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(stdout).expect("list --json is JSON");
    let s = v.as_array().unwrap().iter().find(|s| s["name"] == name);
    s.unwrap_or_else(|| panic!("`{name}` not listed: {stdout}"))["reason"]
        .as_str()
        .unwrap()
        .to_string()
}

fn repo() -> Test {
    let t = project(0)
        .file("services/a/pilum.yaml", &shell_service("a", &[]))
        .file("services/a/src/main.txt", "a\n")
        .file("services/b/pilum.yaml", &shell_service("b", &["a"]))
        .file("services/c/pilum.yaml", &shell_service("c", &[]))
        .file(
            "services/d/pilum.yaml",
            &format!("{}watch: [../../libs/shared]\n", shell_service("d", &[])),
        )
        .file("services/e/pilum.yaml", &shell_service("e", &[]))
        .file("services/e/nested/f/pilum.yaml", &shell_service("f", &["e"]))
        .file("libs/shared/lib.txt", "v1\n")
        .file("libs/other/lib.txt", "v1\n");
    t.git(&["init", "-q", "-b", "main"]);
    t.git(&["add", "-A"]);
    t.git(&["commit", "-q", "-m", "base"]);
    t.git(&["checkout", "-q", "-b", "feature"]);
    t
}

#[test]
fn only_changed_from_a_subdirectory_with_dependents_watch_and_untracked() {
    let t = repo()
        .file("services/a/src/main.txt", "a changed\n")
        .file("libs/shared/lib.txt", "v2\n")
        .file("libs/other/lib.txt", "v2\n");
    t.git(&["commit", "-q", "-am", "change a and the libraries"]);
    // Untracked file in c: counts.
    let t = t.file("services/c/new.txt", "new\n");
    let t = t.cwd("services/a").args(["list", "--only-changed", "--json"]);
    let r = t.run().success();
    assert_eq!(names(&r.stdout), ["a", "b", "c", "d"], "{}", r.stdout);
    let reason = |n: &str| reason_of(&r.stdout, n);
    assert_eq!(reason("a"), "changed: services/a/src/main.txt");
    assert_eq!(reason("b"), "depends on changed `a`");
    assert_eq!(reason("c"), "changed: services/c/new.txt");
    assert_eq!(reason("d"), "watch: libs/shared/lib.txt");
}

#[test]
fn only_changed_counts_staged_and_nested_services_own_their_files() {
    let t = repo().file("services/e/nested/f/x.txt", "x\n");
    t.git(&["add", "services/e/nested/f/x.txt"]);
    let t = t.args(["plan", "--only-changed", "--since", "main", "--json"]);
    let r = t.run().success();
    let v: serde_json::Value = serde_json::from_str(r.stdout.trim()).unwrap();
    let svcs: Vec<&str> = v["plan"]["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(svcs, ["f"], "{}", r.stdout);
    assert_eq!(v["plan"]["services"][0]["reason"], "changed: services/e/nested/f/x.txt");
}

#[test]
fn only_changed_counts_unstaged_deleted_and_oddly_named_untracked_files() {
    // Nothing committed since `main`: only the work tree's state counts, from one status pass.
    let t = repo().file("services/a/src/main.txt", "a edited, not staged\n");
    std::fs::remove_file(t.path().join("libs/shared/lib.txt")).unwrap();
    let t = t
        .file("services/e/odd \"name\" ü.txt", "x\n")
        .file("services/c/.pilum/deployments/c.json", "{}\n");
    let t = t.args(["list", "--only-changed", "--since", "main", "--json"]);
    let r = t.run().success();
    assert_eq!(names(&r.stdout), ["a", "b", "d", "e", "f"], "{}", r.stdout);
    let reason = |n: &str| reason_of(&r.stdout, n);
    assert_eq!(reason("a"), "changed: services/a/src/main.txt");
    assert_eq!(reason("d"), "watch: libs/shared/lib.txt");
    assert_eq!(reason("e"), "changed: services/e/odd \"name\" ü.txt");
}

#[test]
fn only_changed_with_an_unknown_base_is_actionable() {
    let t = repo().args(["list", "--only-changed", "--since", "nope"]);
    let r = t.run().code(2);
    assert!(r.stderr.contains("cannot compare with `nope`"), "{}", r.stderr);
    assert!(r.stderr.contains("help:"), "{}", r.stderr);
}

#[test]
fn only_changed_outside_git_is_a_usage_error() {
    let t =
        project(0).file("a/pilum.yaml", &shell_service("a", &[])).args(["list", "--only-changed"]);
    let r = t.run().code(2);
    assert!(r.stderr.contains("needs a git repository"), "{}", r.stderr);
}

#[test]
fn names_and_globs_select_and_unknown_names_suggest() {
    let t = project(0)
        .file("a/pilum.yaml", &shell_service("api-users", &[]))
        .file("b/pilum.yaml", &shell_service("api-orders", &[]))
        .file("c/pilum.yaml", &shell_service("web", &[]))
        .args(["list", "--json", "api-*"]);
    assert_eq!(
        names(&t.run().success().stdout),
        ["api-users", "api-orders"],
        "discovery order: by path"
    );
    let t = Test::new().file("c/pilum.yaml", &shell_service("web", &[])).args(["list", "wbe"]);
    let r = t.run().code(2);
    assert!(
        r.stderr.contains("unknown service `wbe`") && r.stderr.contains("did you mean `web`?"),
        "{}",
        r.stderr
    );
}

const ENV_SERVICE: &str = "name: api
recipe: shell
region: ${REGION:-us-east1}
env:
  OWNER: ${OWNER}
  LEVEL: debug
shell:
  build: echo \"$OWNER $LEVEL $PILUM_REGION\" > out.txt
environments:
  prod:
    region: europe-west1
    env:
      LEVEL: info
";

#[test]
fn env_overrides_and_variable_expansion_apply() {
    let t = project(0)
        .file("api/pilum.yaml", ENV_SERVICE)
        .env("OWNER", "team-a")
        .args(["build", "--env", "prod"]);
    t.run().success();
    assert_eq!(
        std::fs::read_to_string(t.path().join("api/out.txt")).unwrap(),
        "team-a info europe-west1\n"
    );
    let t = project(0)
        .file("api/pilum.yaml", ENV_SERVICE)
        .env("OWNER", "team-b")
        .env("REGION", "asia-east1")
        .args(["build"]);
    t.run().success();
    assert_eq!(
        std::fs::read_to_string(t.path().join("api/out.txt")).unwrap(),
        "team-b debug asia-east1\n"
    );
}

#[test]
fn an_unset_variable_is_a_clear_error() {
    let t = project(0).file("api/pilum.yaml", ENV_SERVICE).args(["deploy"]);
    let r = t.run().code(2);
    assert!(r.stderr.contains("environment variable `OWNER` is not set"), "{}", r.stderr);
    assert!(r.stderr.contains("api/pilum.yaml:5:10"), "{}", r.stderr);
    assert!(r.stderr.contains("help: export `OWNER`"), "{}", r.stderr);
    assert!(t.calls("step").is_empty());
}

#[test]
fn ignore_files_hide_services() {
    let t = project(0)
        .file("a/pilum.yaml", &shell_service("a", &[]))
        .file("node_modules/x/pilum.yaml", &shell_service("x", &[]))
        .file("old/pilum.yaml", &shell_service("old", &[]))
        .file("deep/1/2/3/4/5/6/7/pilum.yaml", &shell_service("deep", &[]))
        .file(".gitignore", ".bin/\n.calls/\nnode_modules/\n")
        .file(".pilumignore", "old/\n")
        .args(["list", "--json"]);
    assert_eq!(names(&t.run().success().stdout), ["a", "deep"]);
}

/// `--only-changed` parses the index's services while git lists the work tree, then applies
/// what the listing found: an untracked `.pilumignore` hides a committed service (whose broken
/// file is then no error) and an untracked `pilum.yaml` is a new, changed service.
#[test]
fn untracked_ignore_files_and_services_apply_to_only_changed() {
    let t = project(0)
        .file("a/pilum.yaml", &shell_service("a", &[]))
        .file("b/pilum.yaml", "name: b\nbuild: [unclosed\n");
    t.git(&["init", "-q", "-b", "main"]);
    t.git(&["add", "-A"]);
    t.git(&["commit", "-q", "-m", "two services"]);
    let t = t.args(["list", "--json", "--only-changed", "--since", "HEAD"]);
    assert!(t.run().code(2).stderr.contains("b/pilum.yaml"), "the broken file is reported");
    t.write(".pilumignore", "b/\n");
    t.write("c/pilum.yaml", &shell_service("c", &[]));
    assert_eq!(names(&t.run().success().stdout), ["c"]);
    let t = t.clear_args().args(["list", "--json"]);
    assert_eq!(names(&t.run().success().stdout), ["a", "c"]);
}

#[test]
fn provider_filter_and_targets() {
    let t = project(0)
        .file("a/pilum.yaml", "name: a\nbuild:\n  command: 'true'\nregion: eu\n")
        .file("b/pilum.yaml", &shell_service("b", &[]))
        .file(
            "c/pilum.yaml",
            "name: c\ntargets:\n  - recipe: local\n  - recipe: shell\n    shell: {build: 'true'}\n",
        )
        .file("d/pilum.yaml", &shell_service("d", &["c"]))
        .args(["list", "--json", "--provider", "local"]);
    let r = t.run().success();
    assert_eq!(names(&r.stdout), ["a", "c.local"]);
    let t = t.clear_args().args(["graph"]);
    let out = t.run().success().stdout;
    assert!(out.contains("d\n├── c.local\n└── c.shell\n"), "{out}");
}

#[test]
fn unknown_keys_are_errors_with_a_suggestion() {
    // A typo of `build:` used to deploy nothing and say ok.
    let mut t = project(0)
        .file("a/pilum.yaml", "name: a\nbuidl:\n  command: step a build\nregoin: eu\n")
        .file("b/pilum.yaml", &shell_service("b", &[]));
    for cmd in ["check", "deploy", "plan", "list"] {
        t = t.clear_args().args([cmd]);
        let r = t.run();
        assert_ne!(r.status, 0, "{cmd}: {}", r.stderr);
        assert!(
            r.stderr.contains("unknown key `buidl` in `a/pilum.yaml`")
                && r.stderr.contains("a/pilum.yaml:2:1")
                && r.stderr.contains("did you mean `build`?")
                && r.stderr.contains("unknown key `regoin`")
                && r.stderr.contains("did you mean `region`?"),
            "{cmd}: {}",
            r.stderr
        );
    }
    assert!(t.calls("step").is_empty(), "nothing ran");
    // In a target or an environment override, the key is reported where it is written.
    let t = project(0).file(
        "c/pilum.yaml",
        "name: c\ntargets:\n  - recipe: local\n    shel: {}\nenvironments:\n  prod:\n    regoin: eu\n",
    );
    let r = t.args(["check", "--env", "prod"]).run().code(1);
    assert!(
        r.stderr.contains("c/pilum.yaml:4:5") && r.stderr.contains("c/pilum.yaml:7:5"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_shallow_clone_without_the_base_says_how_to_fix_it() {
    let origin = repo().file("services/a/src/main.txt", "a changed\n");
    origin.git(&["commit", "-q", "-am", "change a"]);
    let t = Test::new();
    let url = format!("file://{}", origin.path().display());
    let dest = t.path().join("clone");
    t.git(&["clone", "-q", "--depth", "1", "--branch", "feature", &url, dest.to_str().unwrap()]);
    let t = t.cwd("clone").args(["list", "--only-changed", "--since", "HEAD~1"]);
    let r = t.run().code(2);
    assert!(r.stderr.contains("shallow clone"), "{}", r.stderr);
    assert!(r.stderr.contains("fetch-depth: 0"), "{}", r.stderr);
}

#[test]
fn an_environment_no_service_defines_is_a_warning_with_a_suggestion() {
    let t = project(0)
        .file("api/pilum.yaml", ENV_SERVICE)
        .env("OWNER", "x")
        .args(["plan", "--env", "prdo"]);
    let r = t.run().success();
    assert!(r.stderr.contains("no selected service defines environment `prdo`"), "{}", r.stderr);
    assert!(r.stderr.contains("did you mean `prod`?"), "{}", r.stderr);
}

#[test]
fn recipe_path_adds_and_overrides_recipes() {
    let t = project(0)
        .file("ops/recipes/echo.rhai", "fn recipe() { #{ name: \"echo\", steps: [#{ name: \"build\", tags: [\"build\"] }] } }\nfn build(ctx) { exec::run([\"step\", ctx.service, \"echo\"]); }\n")
        .file("a/pilum.yaml", "name: a\nrecipe: echo\n")
        .args(["build", "--recipe-path", "ops/recipes"]);
    t.run().success();
    assert_eq!(t.calls("step"), vec![vec!["a".to_string(), "echo".into()]]);
    let t = t.clear_args().args(["build"]);
    let r = t.run().code(2);
    assert!(r.stderr.contains("unknown recipe `echo`"), "{}", r.stderr);
}

fn app() -> Test {
    project(0)
        .file("db/pilum.yaml", &shell_service("db", &[]))
        .file("api/pilum.yaml", &shell_service("api", &["db"]))
        .file("web/pilum.yaml", &shell_service("web", &["api"]))
        .file("docs/pilum.yaml", &shell_service("docs", &[]))
}

#[test]
fn naming_a_service_says_what_was_left_out_and_graph_syntax_adds_it() {
    let r = app().args(["plan", "web"]).run().success();
    assert!(
        r.stderr.contains("`web` depends on `api`, `db`, which are not selected")
            && r.stderr.contains("help: select `web...`"),
        "{}",
        r.stderr
    );
    let r = app().args(["list", "--json", "web..."]).run().success();
    assert_eq!(names(&r.stdout), ["api", "db", "web"]);
    assert!(r.stderr.is_empty(), "nothing left out: {}", r.stderr);
    let r = app().args(["list", "--json", "...api"]).run().success();
    assert_eq!(names(&r.stdout), ["api", "web"]);
    let r = app().args(["list", "--json", "web^..."]).run().success();
    assert_eq!(names(&r.stdout), ["api", "db"]);
    let r = app().args(["plan", "--json", "web..."]).run().success();
    let v: serde_json::Value = serde_json::from_str(r.stdout.trim()).unwrap();
    assert_eq!(v["plan"]["services"][0]["reason"], "dependency of `web`");
}

#[test]
fn declared_artefacts_never_count_as_a_change() {
    let t = project(0)
        .file(".gitignore", ".bin/\n.calls/\n")
        .file(
            "a/pilum.yaml",
            "name: a\nbuild:\n  command: 'true'\n  artifacts: [dist/*, out.bin]\n",
        )
        .file("b/pilum.yaml", &shell_service("b", &[]));
    t.git(&["init", "-q", "-b", "main"]);
    t.git(&["add", "-A"]);
    t.git(&["commit", "-q", "-m", "base"]);
    t.git(&["checkout", "-q", "-b", "feature"]);
    let t = t.file("b/change.txt", "x\n");
    t.git(&["add", "-A"]);
    t.git(&["commit", "-q", "-m", "change b"]);
    // A build wrote its artefacts (not ignored) and pilum its state.
    let t = t
        .file("a/dist/app.js", "built\n")
        .file("a/out.bin", "built\n")
        .file(".pilum/history.jsonl", "{}\n")
        .args(["list", "--json", "--only-changed", "--since", "main"]);
    assert_eq!(names(&t.run().success().stdout), ["b"]);
    let t = t.file("a/src.txt", "a real change\n");
    assert_eq!(names(&t.run().success().stdout), ["a", "b"]);
}

#[test]
fn a_marked_directory_is_its_own_project_root() {
    // Inside one repository: two projects that both have a `web`.
    let t = project(0)
        .file("examples/demo/pilum-project.yaml", "# a project of its own\n")
        .file("examples/demo/services/web/pilum.yaml", &shell_service("web", &[]))
        .file("examples/demo/services/api/pilum.yaml", &shell_service("api", &[]))
        .file("examples/demo/services/api/jobs/pilum.yaml", &shell_service("jobs", &[]))
        .file("examples/demo/services/api-users/pilum.yaml", &shell_service("api-users", &[]))
        .file("apps/web/pilum.yaml", &shell_service("web", &[]));
    t.git(&["init", "-q", "-b", "main"]);
    let t = t.cwd("examples/demo/services").args(["list", "--json"]);
    let r = t.run().success();
    // Parents before their subdirectories.
    assert_eq!(names(&r.stdout), ["api", "jobs", "api-users", "web"], "{}", r.stderr);
    // From the repository's top, the nested project is not part of the outer one.
    let t = t.cwd(".");
    assert_eq!(names(&t.run().success().stdout), ["web"]);
    // The marker holds no settings yet: a key in it is an error.
    let t = t
        .file("examples/demo/pilum-project.yaml", "services: [a]\n")
        .cwd("examples/demo")
        .clear_args()
        .args(["check"]);
    let r = t.run().code(1);
    assert!(r.stderr.contains("unknown key `services` in `pilum-project.yaml`"), "{}", r.stderr);
}

#[test]
fn the_example_monorepo_works_from_its_own_directory() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/monorepo");
    let r = Test::new().cwd(".").args(["list", "--json", "-C"]).arg(&dir).run().success();
    assert_eq!(names(&r.stdout), ["api", "db", "docs", "web", "worker"]);
    // Without -C, from inside the example in this repository (whose top level has other
    // services, one of them also named `web`).
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_pilum"));
    let out = cmd.args(["list", "--json"]).current_dir(dir.join("services/web")).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        names(&String::from_utf8_lossy(&out.stdout)),
        ["api", "db", "docs", "web", "worker"]
    );
}

/// A repository on `main` with two commits: `base` (a, b depending on a, c) and `change a`.
/// Returns the test and the two SHAs.
fn pushed_to_main() -> (Test, String, String) {
    let t = project(0)
        .file("a/pilum.yaml", &shell_service("a", &[]))
        .file("b/pilum.yaml", &shell_service("b", &["a"]))
        .file("c/pilum.yaml", &shell_service("c", &[]));
    t.git(&["init", "-q", "-b", "main"]);
    t.git(&["add", "-A"]);
    t.git(&["commit", "-q", "-m", "base"]);
    let first = t.git(&["rev-parse", "HEAD"]).trim().to_string();
    let t = t.file("a/src.txt", "changed\n");
    t.git(&["add", "-A"]);
    t.git(&["commit", "-q", "-m", "change a"]);
    let second = t.git(&["rev-parse", "HEAD"]).trim().to_string();
    (t, first, second)
}

/// A GitHub event fixture with its placeholder SHAs rewritten, written into the project.
fn event(t: &Test, fixture: &str, edit: &dyn Fn(&mut serde_json::Value)) -> String {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ci").join(fixture);
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("JSON");
    edit(&mut v);
    let out = t.path().join(".calls").join(fixture);
    std::fs::write(&out, v.to_string()).unwrap();
    out.display().to_string()
}

#[test]
fn only_changed_on_the_default_branch_uses_the_ci_event_and_never_deploys_nothing() {
    let (t, first, second) = pushed_to_main();
    // Without any range, the base (main) is HEAD itself: an error, not "nothing changed".
    let t = t.args(["list", "--json", "--only-changed"]);
    let r = t.run().code(2);
    assert!(
        r.stderr.contains("the base `main` (from the default branch) is `HEAD` itself"),
        "{}",
        r.stderr
    );
    // A push event's `before` is the base.
    let path = event(&t, "github-push-event.json", &|v| {
        v["before"] = first.clone().into();
        v["after"] = second.clone().into();
    });
    let t = t.env("GITHUB_ACTIONS", "true").env("GITHUB_EVENT_PATH", &path);
    let r = t.run().success();
    assert_eq!(names(&r.stdout), ["a", "b"], "{}", r.stderr);
    let t = t.clear_args().args(["list", "--only-changed"]);
    let r = t.run().success();
    let since = format!("2 of 3 services changed since `{} (GitHub push event)`", &first[..12]);
    assert!(r.stderr.contains(&since), "{}", r.stderr);
    // `PILUM_SINCE` comes before the event, `--since` before both.
    let t = t.clear_args().args(["list", "--json", "--only-changed"]).env("PILUM_SINCE", "HEAD");
    assert_eq!(names(&t.run().success().stdout), Vec::<String>::new());
    let t = t.arg("--since").arg(&first);
    assert_eq!(names(&t.run().success().stdout), ["a", "b"]);
}

#[test]
fn a_new_branch_push_falls_through_and_a_pull_request_uses_its_base() {
    let (t, first, second) = pushed_to_main();
    let path =
        event(&t, "github-push-event-new-branch.json", &|v| v["after"] = second.clone().into());
    let t = t.env("GITHUB_EVENT_PATH", &path).args(["list", "--json", "--only-changed"]);
    // Forty zeros: no range; on main the fallback is HEAD itself.
    let r = t.run().code(2);
    assert!(r.stderr.contains("is `HEAD` itself"), "{}", r.stderr);
    let path = event(&t, "github-pull-request-event.json", &|v| {
        v["pull_request"]["base"]["sha"] = first.clone().into();
        v["pull_request"]["head"]["sha"] = second.clone().into();
    });
    let t = t.env("GITHUB_EVENT_PATH", &path);
    assert_eq!(names(&t.run().success().stdout), ["a", "b"]);
    // GitLab: the merge request's base, else the push's before.
    let (t, first, _) = pushed_to_main();
    let t = t.env("GITLAB_CI", "true").env("CI_COMMIT_BEFORE_SHA", &first);
    let t = t.args(["list", "--json", "--only-changed"]);
    assert_eq!(names(&t.run().success().stdout), ["a", "b"]);
    // The merge request's base comes first (here `HEAD`: nothing new since, truthfully).
    let t = t.env("CI_MERGE_REQUEST_DIFF_BASE_SHA", "HEAD");
    assert_eq!(names(&t.run().success().stdout), Vec::<String>::new());
}

#[test]
fn only_changed_compares_with_the_last_successful_deploy() {
    let (t, _, deployed) = pushed_to_main();
    let t = t.args(["deploy"]);
    t.run().success();
    let line = std::fs::read_to_string(t.path().join(".pilum/history.jsonl")).unwrap();
    let rec: serde_json::Value = serde_json::from_str(line.lines().last().unwrap()).unwrap();
    assert_eq!(
        (rec["commit"].as_str(), rec["complete"].as_bool()),
        (Some(deployed.as_str()), Some(true))
    );
    let t = t.file("c/src.txt", "changed\n");
    t.git(&["add", "-A"]);
    t.git(&["commit", "-q", "-m", "change c"]);
    // A crash left a torn line: it is skipped and reported, and the next record starts afresh.
    let history = t.path().join(".pilum/history.jsonl");
    let mut text = std::fs::read_to_string(&history).unwrap();
    text.push_str("{\"command\":\"dep");
    std::fs::write(&history, text).unwrap();
    let t = t.clear_args().args(["list", "--json", "--only-changed"]);
    let r = t.run().success();
    assert_eq!(names(&r.stdout), ["c"], "{}", r.stderr);
    assert!(
        r.stderr.contains("skipped unreadable lines of `.pilum/history.jsonl`")
            && r.stderr.contains("line 2"),
        "{}",
        r.stderr
    );
    // A named deploy is not a base: it left the others behind.
    let t = t.clear_args().args(["deploy", "c"]);
    t.run().success();
    let text = std::fs::read_to_string(&history).unwrap();
    assert_eq!(text.lines().count(), 3, "the torn line was terminated: {text}");
    let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["complete"], false);
}

#[test]
fn a_shallow_clone_without_the_event_base_says_so() {
    let (origin, first, second) = pushed_to_main();
    let t = Test::new();
    let src = format!("file://{}", origin.path().display());
    t.git(&["clone", "-q", "--depth", "1", &src, "clone"]);
    let path = event(&origin, "github-push-event.json", &|v| {
        v["before"] = first.clone().into();
        v["after"] = second.clone().into();
    });
    let t = t.cwd("clone").env("GITHUB_EVENT_PATH", &path).args(["list", "--only-changed"]);
    let r = t.run().code(2);
    assert!(
        r.stderr.contains("shallow clone without that commit")
            && r.stderr.contains("fetch-depth: 0"),
        "{}",
        r.stderr
    );
}
