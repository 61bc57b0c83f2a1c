//! The other commands: the README's first command on the example monorepo, `plan` and
//! `dry-run` agreeing, `init`, `graph`, `list --recipes` with overrides, `clean`, completions.

use std::path::Path;

use super::{ndjson, project, shell_service};
use crate::common::{Test, copy_dir};

fn example() -> Test {
    let t = Test::new();
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/monorepo"),
        &t.path().join("examples/monorepo"),
        &[".pilum", "dist"],
    );
    t
}

/// The README's first command, on a copy of the example without any git history.
#[test]
fn readme_first_command_deploys_the_example_monorepo() {
    let t = example().args(["check", "-C", "examples/monorepo"]);
    assert!(t.run().success().stdout.contains("5 services valid"));
    let t = t.clear_args().args(["deploy", "-C", "examples/monorepo", "--tag", "v1"]);
    let r = t.run().success();
    assert!(r.stdout.contains("services: 5 ok, 0 failed, 0 skipped"), "{}", r.stdout);
    let dep = t.path().join("examples/monorepo/.pilum/deployments");
    for svc in ["api", "web", "worker"] {
        let manifest: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dep.join(svc).join("v1/manifest.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(manifest["service"], svc);
        assert_eq!(manifest["tag"], "v1");
        assert!(!manifest["files"].as_array().unwrap().is_empty(), "{manifest}");
        assert_eq!(std::fs::read_to_string(dep.join(svc).join("current")).unwrap(), "v1\n");
    }
    let api = std::fs::read_to_string(dep.join("api/v1/dist/api.txt")).unwrap();
    assert!(api.contains("hello from the shared greeting library"), "{api}");
    let web = std::fs::read_to_string(dep.join("web/v1/dist/config.txt")).unwrap();
    assert_eq!(web, "api=http://localhost:8080\n");
    let log = std::fs::read_to_string(t.path().join("examples/monorepo/.pilum/db.log")).unwrap();
    assert!(log.contains("applied migrations.sql to sqlite://example.db (v1)"), "{log}");

    // `--env prod` changes the web build; `clean` removes the deployments.
    let t = t.clear_args().args([
        "deploy",
        "-C",
        "examples/monorepo",
        "--env",
        "prod",
        "--tag",
        "v2",
        "-q",
    ]);
    t.run().success();
    let web = std::fs::read_to_string(dep.join("web/v2/dist/config.txt")).unwrap();
    assert_eq!(web, "api=https://api.example.com\n");
    t.clear_args().args(["clean", "-C", "examples/monorepo"]).run().success();
    assert!(!dep.join("api").exists());
}

#[test]
fn plan_and_dry_run_print_the_same_plan_and_run_nothing() {
    let t = project(0)
        .file("a/pilum.yaml", &shell_service("a", &[]))
        .file("b/pilum.yaml", &shell_service("b", &["a"]))
        .args(["plan", "--json", "--tag", "t1"]);
    let plan = ndjson(&t.run().success().stdout);
    assert_eq!(plan.len(), 1);
    let t = t.clear_args().args(["dry-run", "--json", "--tag", "t1"]);
    let r = t.run().success();
    let ev = ndjson(&r.stdout);
    let mut expected = plan[0]["plan"].clone();
    expected["dry_run"] = true.into();
    assert_eq!(ev[0]["plan"], expected);
    assert!(t.calls("step").is_empty(), "dry-run ran a command");
    let dry: Vec<_> = ev.iter().filter(|e| e["event"] == "task_dry_run").collect();
    assert_eq!(dry.len(), 6);
    assert!(dry[0]["detail"].as_str().unwrap().contains("step a build"), "{}", dry[0]);
    let tasks = plan[0]["plan"]["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 6);
    let b_build = tasks.iter().find(|t| t["service"] == "b" && t["step"] == "build").unwrap();
    let a_build = tasks.iter().find(|t| t["service"] == "a" && t["step"] == "build").unwrap();
    assert_eq!(b_build["after"], serde_json::json!([a_build["id"]]));
    assert_eq!(plan[0]["plan"]["phases"], serde_json::json!(["build", "push", "deploy"]));
}

#[test]
fn custom_phases_follow_the_standard_ones_in_first_seen_order() {
    let t = project(0)
        .file("a/pilum.yaml", "name: a\nrecipe: shell\nshell:\n  steps:\n    - {name: smoke, run: 'true', tags: [verify]}\n    - {name: notes, run: 'true', tags: [announce]}\n    - {name: up, run: 'true', tags: [deploy]}\n    - {name: compile, run: 'true', tags: [build]}\n")
        .args(["plan", "--json"]);
    let v = ndjson(&t.run().success().stdout);
    assert_eq!(
        v[0]["plan"]["phases"],
        serde_json::json!(["build", "deploy", "verify", "announce"])
    );
}

#[test]
fn only_and_exclude_tags_filter_steps() {
    let t = project(0).file("a/pilum.yaml", &shell_service("a", &[])).args([
        "deploy",
        "--exclude-tags",
        "push",
    ]);
    t.run().success();
    let steps: Vec<String> = t.calls("step").into_iter().map(|c| c[1].clone()).collect();
    assert_eq!(steps, ["build", "deploy"]);
    let t = project(0).file("a/pilum.yaml", &shell_service("a", &[])).args(["publish"]);
    t.run().success();
    let steps: Vec<String> = t.calls("step").into_iter().map(|c| c[1].clone()).collect();
    assert_eq!(steps, ["build", "push"]);
}

#[test]
fn init_writes_a_valid_service_and_never_overwrites() {
    let t = project(0).args([
        "init",
        "svc/api",
        "--recipe",
        "local",
        "--set",
        "command=make",
        "--name",
        "api",
    ]);
    t.run().success();
    let yaml = std::fs::read_to_string(t.path().join("svc/api/pilum.yaml")).unwrap();
    assert_eq!(yaml, "name: api\nrecipe: local\nbuild:\n  command: make\n");
    let r = t.run().code(2);
    assert!(r.stderr.contains("already exists") && r.stderr.contains("--force"), "{}", r.stderr);
    t.clear_args().args(["check"]).run().success();

    let t = project(0).file("recipes/needs-app.rhai", super::NEEDS_APP).args([
        "init",
        "x",
        "--recipe",
        "needs-app",
    ]);
    let r = t.run().code(2);
    assert!(
        r.stderr.contains("requires `id`") && r.stderr.contains("--set id=<value>"),
        "{}",
        r.stderr
    );
    let t = project(0).args(["init", "x", "--recipe", "lokal"]);
    assert!(t.run().code(2).stderr.contains("did you mean `local`?"));
}

/// `t` running `pilum init <dir> --recipe <recipe>` with `--set` for each of `sets`.
fn init(t: Test, dir: &str, recipe: &str, sets: &[&str]) -> Test {
    let t = t.clear_args().args(["init", dir, "--recipe", recipe]);
    sets.iter().fold(t, |t, kv| t.args(["--set", kv]))
}

#[test]
fn init_writes_the_region_a_per_region_recipe_needs() {
    let t = init(project(0), "svc/api", "gcp-cloud-run", &["project=x", "region=europe-west1"]);
    t.run().success();
    let yaml = std::fs::read_to_string(t.path().join("svc/api/pilum.yaml")).unwrap();
    assert_eq!(
        yaml,
        "name: api\nrecipe: gcp-cloud-run\nregion: europe-west1\ncloud_run:\n  project: x\n"
    );
    let t = t.clear_args().args(["check"]);
    let r = t.run().success();
    assert!(r.stdout.contains("1 services valid"), "{}", r.stdout);

    let sets = ["project=x", "regions=europe-west1, us-east1"];
    let t = init(t, "svc/jobs", "gcp-cloud-run", &sets).args(["--json"]);
    let r = t.run().success();
    let v: serde_json::Value = serde_json::from_str(r.stdout.trim()).unwrap();
    assert_eq!(v["regions"], serde_json::json!(["europe-west1", "us-east1"]));
    let yaml = std::fs::read_to_string(t.path().join("svc/jobs/pilum.yaml")).unwrap();
    assert!(yaml.contains("\nregions: [europe-west1, us-east1]\n"), "{yaml}");
    // One task per region for each of the two per-region steps.
    let t = t.clear_args().args(["plan", "--json", "jobs"]);
    let plan = ndjson(&t.run().success().stdout);
    let tasks = plan[0]["plan"]["tasks"].clone();
    let regions: Vec<&str> = tasks
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["step"] == "deploy")
        .map(|t| t["region"].as_str().unwrap())
        .collect();
    assert_eq!(regions, ["europe-west1", "us-east1"]);
}

#[test]
fn init_without_a_region_for_a_per_region_recipe_says_how_to_give_one() {
    let t = init(project(0), "svc/api", "gcp-cloud-run", &["project=x"]);
    let r = t.run().code(2);
    assert!(
        r.stderr.contains("recipe `gcp-cloud-run` requires a region")
            && r.stderr.contains("`push`, `deploy` run once per region")
            && r.stderr.contains("help: pass `--set region=<region>`")
            && r.stderr.contains("`--set regions=<a>,<b>`"),
        "{}",
        r.stderr
    );
    assert!(!t.path().join("svc/api/pilum.yaml").exists());

    // Missing fields and the missing region are reported together.
    let t = init(t, "svc/api", "gcp-cloud-run", &[]);
    let r = t.run().code(2);
    assert!(
        r.stderr.contains("requires `project`, a region")
            && r.stderr.contains("`--set project=<value>` `--set region=<region>`"),
        "{}",
        r.stderr
    );

    let t = init(t, "svc/api", "gcp-cloud-run", &["project=x", "region=a,b"]);
    let r = t.run().code(2);
    assert!(r.stderr.contains("`--set regions=a,b`"), "{}", r.stderr);

    // A recipe without per-region steps needs no region (see above) and still accepts one.
    let t = init(t, "svc/web", "local", &["command=make", "region=eu"]);
    t.run().success();
    let yaml = std::fs::read_to_string(t.path().join("svc/web/pilum.yaml")).unwrap();
    assert_eq!(yaml, "name: web\nrecipe: local\nregion: eu\nbuild:\n  command: make\n");
}

#[test]
fn graph_tree_dot_and_mermaid() {
    let t = project(0)
        .file("a/pilum.yaml", &shell_service("a", &[]))
        .file("b/pilum.yaml", &shell_service("b", &["a"]))
        .args(["graph"]);
    assert_eq!(t.run().success().stdout, "a\nb\n└── a\n");
    let t = t.clear_args().args(["graph", "--format", "dot"]);
    assert!(t.run().success().stdout.contains("\"b\" -> \"a\";"));
    let t = t.clear_args().args(["graph", "--format", "mermaid"]);
    let out = t.run().success().stdout;
    assert!(out.starts_with("graph LR\n") && out.contains("s1 --> s0"), "{out}");
}

#[test]
fn list_recipes_shows_which_one_is_in_effect() {
    let t = project(0)
        .file("recipes/local.rhai", "fn recipe() { #{ name: \"local\", description: \"mine\" } }\n")
        .args(["list", "--recipes"]);
    let out = t.run().success().stdout;
    let local = out.lines().find(|l| l.starts_with("local ")).unwrap();
    assert!(
        local.contains("recipes/local.rhai (overrides built-in)") && local.contains("mine"),
        "{out}"
    );
    let shell = out.lines().find(|l| l.starts_with("shell ")).unwrap();
    assert!(shell.contains("built-in"), "{out}");
}

#[test]
fn completions_are_printed() {
    let r = Test::new().args(["completions", "bash"]).run().success();
    assert!(r.stdout.contains("pilum") && r.stdout.contains("deploy"));
}

#[test]
fn deploy_script_drives_the_example() {
    let t = example().file("deploy.rhai", include_str!("../../examples/deploy.rhai")).args([
        "run",
        "deploy.rhai",
        "-C",
        "examples/monorepo",
        "--",
        "v7",
    ]);
    let r = t.run().success();
    assert!(r.stdout.contains("5 services"), "{}\n{}", r.stdout, r.stderr);
    assert!(
        t.path().join("examples/monorepo/.pilum/deployments/web/v7/manifest.json").exists(),
        "{}",
        r.stdout
    );
}

#[test]
fn plan_list_and_graph_of_the_example_read_well() {
    let t = example().args(["plan", "-C", "examples/monorepo", "--tag", "v1", "--env", "prod"]);
    insta::assert_snapshot!("example_plan", t.run().success().stdout);
    let t = t.clear_args().args(["list", "-C", "examples/monorepo"]);
    insta::assert_snapshot!("example_list", t.run().success().stdout);
    let t = t.clear_args().args(["graph", "-C", "examples/monorepo", "--format", "mermaid"]);
    insta::assert_snapshot!("example_graph_mermaid", t.run().success().stdout);
}

#[test]
fn deploy_script_progress_stays_off_stdout_and_is_ndjson_under_json() {
    let t = example().file("deploy.rhai", include_str!("../../examples/deploy.rhai")).args([
        "--json",
        "run",
        "deploy.rhai",
        "-C",
        "examples/monorepo",
        "--",
        "v8",
    ]);
    let r = t.run().success();
    let ev = ndjson(&r.stdout);
    assert!(ev.iter().any(|e| e["event"] == "log" && e["message"].as_str().unwrap().contains("✓ web/deploy")), "{}", r.stdout);
    assert!(
        ev.iter()
            .any(|e| e["event"] == "print"
                && e["text"].as_str().unwrap().starts_with("deployed 5 of 5")),
        "{}",
        r.stdout
    );
}

/// The same from a git checkout of the example, run from a service's directory: discovery reads
/// the git index and the project root is `-C`, wherever pilum runs from.
#[test]
fn the_example_deploys_from_a_git_checkout() {
    let t = example();
    t.git(&["init", "-q", "-b", "main"]);
    t.git(&["add", "-A"]);
    t.git(&["commit", "-q", "-m", "example"]);
    let sha = t.git(&["rev-parse", "--short=12", "HEAD"]).trim().to_string();
    let t = t.cwd("examples/monorepo/services/api").args(["deploy", "-q", "-C", "../.."]);
    let r = t.run().success();
    assert!(r.stdout.contains("services: 5 ok"), "{}", r.stdout);
    let current = t.path().join("examples/monorepo/.pilum/deployments/api/current");
    assert_eq!(std::fs::read_to_string(current).unwrap(), format!("{sha}\n"));
    // Nothing pilum wrote counts as a change.
    let t = t.clear_args().args(["list", "--only-changed", "--json", "-C", "../.."]);
    assert_eq!(t.run().success().stdout.trim(), "[]");
}

#[test]
fn clean_does_not_follow_a_symlink_out_of_pilum() {
    let t = project(0).file("a/pilum.yaml", &shell_service("a", &[]));
    let outside = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(outside.path().join("a")).expect("mkdir");
    std::fs::write(outside.path().join("a/keep.txt"), "precious").expect("write");
    std::fs::create_dir_all(t.path().join(".pilum")).expect("mkdir");
    std::os::unix::fs::symlink(outside.path(), t.path().join(".pilum/deployments"))
        .expect("symlink");
    let r = t.args(["clean"]).run().code(1);
    assert!(r.stderr.contains("outside the project's `.pilum/` directory"), "{}", r.stderr);
    assert!(
        outside.path().join("a/keep.txt").exists(),
        "clean deleted a directory outside .pilum/"
    );
}

#[test]
fn a_tag_that_could_climb_out_of_a_directory_is_refused() {
    let mut t = project(0).file("a/pilum.yaml", &shell_service("a", &[]));
    for args in
        [&["deploy", "--tag", "../x"][..], &["plan", "--tag", "a/b"], &["build", "--tag", ".."]]
    {
        t = t.clear_args().args(args);
        let r = t.run().code(2);
        assert!(r.stderr.contains("--tag"), "{}", r.stderr);
    }
    assert!(t.calls("step").is_empty());
    // A script's `deploy()` is held to the same rule.
    let t = t
        .file("d.rhai", "deploy([\"a\"], #{ tag: \"../x\" });")
        .clear_args()
        .args(["run", "d.rhai"]);
    let r = t.run().code(1);
    assert!(r.stderr.contains("tag `../x`"), "{}", r.stderr);
    assert!(t.calls("step").is_empty());
}
