//! The other commands: the README's first command on the example monorepo, `plan` and
//! `dry-run` agreeing, `init`, `graph`, `list --recipes` with overrides, `clean`, completions.

use std::path::Path;

use std::time::Duration;

use super::{ndjson, project, shell_service};
use crate::common::{Test, copy_dir, strip_ansi};

fn example() -> Test {
    let t = Test::new();
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/monorepo"),
        &t.path().join("examples/monorepo"),
        &[".pilum", "dist"],
    );
    t
}

/// [`example`] as the one commit of a git repository.
fn committed_example() -> Test {
    let t = example();
    t.git(&["init", "-q", "-b", "main"]);
    t.git(&["add", "-A"]);
    t.git(&["commit", "-q", "-m", "example"]);
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
    assert!(r.stdout.contains("1 service valid"), "{}", r.stdout);

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
    let t = committed_example();
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

/// A deploy never publishes uncommitted changes under a clean commit's tag. In a clean clone
/// the README's command works (again and again: its outputs are ignored); after editing the
/// example, `deploy`, `publish` and `push` refuse and say what to do, `build`, dry runs, `plan`
/// and `check` do not; `--allow-dirty` deploys as `<sha>-dirty`, and the manifest and history
/// record the commit and that the tree was dirty.
#[test]
fn a_dirty_tree_is_refused_until_committed_or_allowed() {
    let t = committed_example();
    let full = t.git(&["rev-parse", "HEAD"]).trim().to_string();
    let sha = full[..12].to_string();
    let dir = t.path().join("examples/monorepo");
    let mut t = t.args(["deploy", "-q", "-C", "examples/monorepo"]);
    t.run().success();
    t.run().success();
    let manifest = |tag: &str| -> serde_json::Value {
        let f = dir.join(format!(".pilum/deployments/api/{tag}/manifest.json"));
        serde_json::from_str(&std::fs::read_to_string(f).expect("a manifest")).expect("JSON")
    };
    assert_eq!(
        (&manifest(&sha)["commit"], &manifest(&sha)["dirty"]),
        (&full.clone().into(), &false.into())
    );

    t.write("examples/monorepo/services/api/src/main.txt", "edited\n");
    for verb in ["deploy", "publish", "push"] {
        t = t.clear_args().args([verb, "-C", "examples/monorepo"]);
        let r = t.run().code(2);
        for part in [
            format!(
                "the work tree has uncommitted changes; `{verb}` would publish them as commit `{sha}`"
            ),
            " M examples/monorepo/services/api/src/main.txt".to_string(),
            "commit them (or `git stash -u`) and run again, or pass `--allow-dirty`".to_string(),
            format!("tagged `{sha}-dirty`"),
        ] {
            assert!(r.stderr.contains(&part), "`{verb}`: no {part:?} in\n{}", r.stderr);
        }
    }
    assert!(!dir.join(format!(".pilum/deployments/api/{sha}-dirty")).exists(), "a refused run ran");
    for args in [&["build"][..], &["deploy", "--dry-run"], &["dry-run"], &["check"]] {
        t = t.clear_args().args(args).args(["-C", "examples/monorepo"]);
        let r = t.run().success();
        if args.len() > 1 || args[0] == "dry-run" {
            assert!(r.stderr.contains("a real run stops here"), "{args:?}: {}", r.stderr);
        }
    }
    t = t.clear_args().args(["plan", "-C", "examples/monorepo"]);
    let r = t.run().success();
    assert!(r.stdout.contains(&format!("tag `{sha}-dirty` (uncommitted changes)")), "{}", r.stdout);

    t = t.clear_args().args(["deploy", "-q", "--allow-dirty", "-C", "examples/monorepo"]);
    t.run().success();
    let current = std::fs::read_to_string(dir.join(".pilum/deployments/api/current")).unwrap();
    assert_eq!(current, format!("{sha}-dirty\n"));
    let dirty = manifest(&format!("{sha}-dirty"));
    assert_eq!((&dirty["commit"], &dirty["dirty"]), (&full.clone().into(), &true.into()));
    let history = std::fs::read_to_string(dir.join(".pilum/history.jsonl")).expect("history");
    let last: serde_json::Value = serde_json::from_str(history.lines().last().unwrap()).unwrap();
    assert_eq!(
        (&last["commit"], &last["dirty"], &last["tag"]),
        (&full.into(), &true.into(), &format!("{sha}-dirty").into())
    );
}

/// `--only-changed` takes the checkout's dirty state from its own `git status` pass: it must
/// agree with the plain run's. Changes outside the project root and under `.pilum/` do not make
/// the tree dirty; a change under the root does, and is listed by its path from the top level.
#[test]
fn only_changed_sees_the_same_dirty_tree_as_a_full_run() {
    let mut t = committed_example();
    let sha = t.git(&["rev-parse", "--short=12", "HEAD"]).trim().to_string();
    t.write("outside.txt", "not under the project root\n");
    t.write("examples/monorepo/.pilum/scratch.txt", "pilum's own\n");
    let plan = |t: Test, changed: bool| -> (Test, serde_json::Value) {
        let mut args = vec!["plan", "--json", "-C", "examples/monorepo"];
        if changed {
            args.extend(["--only-changed", "--since", "HEAD"]);
        }
        let t = t.clear_args().args(&args);
        let out = t.run().success().stdout;
        let plan =
            serde_json::from_str::<serde_json::Value>(&out).expect("plan JSON")["plan"].clone();
        (t, plan)
    };
    for changed in [false, true] {
        let (next, p) = plan(t, changed);
        t = next;
        assert_eq!((&p["tag"], &p["dirty"]), (&sha.clone().into(), &false.into()), "{changed}");
    }
    t.write("examples/monorepo/services/api/src/main.txt", "edited\n");
    t.write("examples/monorepo/services/api/new/file.txt", "untracked\n");
    for changed in [false, true] {
        let (next, p) = plan(t, changed);
        t = next;
        let tag = format!("{sha}-dirty");
        assert_eq!((&p["tag"], &p["dirty"]), (&tag.into(), &true.into()), "{changed}");
    }
    t = t.clear_args().args([
        "deploy",
        "--only-changed",
        "--since",
        "HEAD",
        "-C",
        "examples/monorepo",
    ]);
    let r = t.run().code(2);
    for part in [
        " M examples/monorepo/services/api/src/main.txt",
        "?? examples/monorepo/services/api/new/file.txt",
    ] {
        assert!(r.stderr.contains(part), "no {part:?} in\n{}", r.stderr);
    }
    assert!(!r.stderr.contains("outside.txt") && !r.stderr.contains(".pilum/"), "{}", r.stderr);
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

/// A dry run says what would run and never claims to have done anything, from the CLI and
/// from a script.
#[test]
fn a_dry_run_never_claims_to_have_deployed() {
    let t = example().args(["deploy", "--dry-run", "-C", "examples/monorepo", "--tag", "v1"]);
    let r = t.run().success();
    let all = format!("{}{}", r.stdout, r.stderr);
    assert!(!all.contains("v1 deployed to") && !all.contains("services: 5 ok"), "{all}");
    assert!(all.contains("api v1 would be deployed to .pilum/deployments/api/v1"), "{all}");
    assert!(all.contains("✓ api/build (dry run, "), "{all}");
    let last = r.stdout.lines().last().unwrap_or_default();
    assert!(
        last.starts_with(
            "deploy (dry run): ok · would run 13 tasks for 5 services · nothing was changed"
        ),
        "{last}"
    );
    assert!(!t.path().join("examples/monorepo/.pilum/deployments").exists());

    let t = t.file("deploy.rhai", include_str!("../../examples/deploy.rhai")).clear_args().args([
        "run",
        "--dry-run",
        "deploy.rhai",
        "-C",
        "examples/monorepo",
    ]);
    let r = t.run().success();
    assert!(r.stdout.contains("would deploy 5 of 5 services"), "{}", r.stdout);
    assert!(!r.stdout.contains("deployed"), "{}", r.stdout);
    assert!(r.stderr.contains("deploy (dry run): ok · would run"), "{}", r.stderr);
}

#[test]
fn the_text_plan_names_four_dependencies_then_counts_the_rest() {
    let mut t = project(0);
    let deps: Vec<String> = (1..=6).map(|i| format!("d{i}")).collect();
    for d in &deps {
        t = t.file(&format!("{d}/pilum.yaml"), &shell_service(d, &[]));
    }
    let names: Vec<&str> = deps.iter().map(String::as_str).collect();
    let t = t
        .file("app/pilum.yaml", &shell_service("app", &names))
        .args(["plan", "app", "d1", "d2", "d3", "d4", "d5", "d6"]);
    let r = t.run().success();
    let line =
        r.stdout.lines().find(|l| l.trim_start().starts_with("app/build")).expect("app/build");
    assert!(line.contains("after d1/build, d2/build, d3/build, d4/build +2 more"), "{line}");
    assert!(r.stdout.starts_with("plan: 7 services, 21 tasks"), "{}", r.stdout);
}

/// `-v` streams command output; `-vv` adds each command's argv, directory, environment names
/// and how it ended.
#[test]
fn very_verbose_adds_each_commands_argv_env_and_time() {
    let t = project(0).file("a/pilum.yaml", &shell_service("a", &[])).args(["-v", "build"]);
    let r = t.run().success();
    assert!(!r.stdout.contains("$ step a build"), "{}", r.stdout);
    let r = t.clear_args().args(["-vv", "build"]).run().success();
    assert!(
        r.stdout.contains("a/build | debug: $ step a build  (in a; env: PILUM_SERVICE, PILUM_TAG)"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("a/build | debug: `step` exited 0 after "), "{}", r.stdout);
}

#[test]
fn version_names_the_commit_and_completions_say_how_to_install() {
    let r = Test::new().args(["--version"]).run().success();
    let want = format!("pilum {}", env!("CARGO_PKG_VERSION"));
    assert!(r.stdout.starts_with(&want), "{}", r.stdout);
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let head = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(manifest)
        .output()
        .ok()
        .filter(|o| o.status.success());
    if let Some(o) = head {
        // Built from a git checkout: the commit is shown, `-dirty` when files were changed.
        let sha = String::from_utf8_lossy(&o.stdout).trim().to_string();
        assert!(r.stdout.starts_with(&format!("{want} ({sha}")), "{} (HEAD is {sha})", r.stdout);
    }
    let r = Test::new().args(["completions", "--help"]).run().success();
    for part in [
        "bash-completion/completions/pilum",
        "~/.zfunc/_pilum",
        "~/.config/fish/completions/pilum.fish",
    ] {
        assert!(r.stdout.contains(part), "{part}: {}", r.stdout);
    }
}

/// A project recipe with a long name, an int field and an array default of maps.
const LONG_NAMED: &str = r#"
fn recipe() {
    #{ name: "a-recipe-with-a-very-long-name", description: "long named", section: "long",
       fields: [ #{ name: "n", type: "int", description: "a number" },
                 #{ name: "m", type: "array", "default": [#{}], description: "maps" } ],
       steps: [ #{ name: "build", tags: ["build"] } ] }
}
fn build(ctx) { }
"#;

/// `pilum init` at a terminal: the catalogue aligned however long a name, a typo at the recipe
/// prompt (or a value of the wrong type) asks again with a suggestion, defaults are shown as
/// YAML.
#[test]
fn init_at_a_terminal_asks_again_after_a_typo() {
    let t = Test::new().file("recipes/a-recipe-with-a-very-long-name.rhai", LONG_NAMED);
    let mut term = t.pty("exec \"$PILUM\" init svc");
    term.send(b"web\nlokal\na-recipe-with-a-very-long-name\nxx\n7\n\n");
    let r = term.wait(Duration::from_secs(30));
    let text = strip_ansi(&r.stdout).replace('\r', "");
    assert_eq!(r.status, 0, "{text}");
    assert!(text.contains("unknown recipe `lokal`; did you mean `local`?"), "{text}");
    assert_eq!(text.matches("recipe (default: local): ").count(), 2, "{text}");
    assert!(text.contains("`n` must be an int, not `xx`"), "{text}");
    assert!(text.contains("m (array) maps (default: [{}]): "), "{text}");
    assert!(!text.contains("#{"), "a default in Rhai syntax:\n{text}");
    let column = |name: &str| {
        let l = text.lines().find(|l| l.starts_with(&format!("  {name} "))).expect(name);
        l.len() - l[2 + name.len()..].trim_start().len()
    };
    assert_eq!(column("a-recipe-with-a-very-long-name"), column("local"), "{text}");
    let yaml = std::fs::read_to_string(t.path().join("svc/pilum.yaml")).expect("written");
    assert_eq!(yaml, "name: web\nrecipe: a-recipe-with-a-very-long-name\nlong:\n  n: 7\n");
}

/// `init` adds `.pilum/` and the service's declared artefacts to the project's `.gitignore`,
/// creating or appending to it, once.
#[test]
fn init_ignores_pilum_state_and_the_artefacts() {
    let sets = ["command=make", "artifacts=dist/*, out/api.bin"];
    let t = init(Test::new().file(".gitignore", "target/"), "svc/api", "local", &sets);
    let r = t.run().success();
    assert!(
        r.stdout.contains("added `.pilum/`, `svc/api/dist/*`, `svc/api/out/api.bin` to"),
        "{}",
        r.stdout
    );
    let ignore = std::fs::read_to_string(t.path().join(".gitignore")).unwrap();
    assert_eq!(ignore, "target/\n.pilum/\nsvc/api/dist/*\nsvc/api/out/api.bin\n");
    let t = t.arg("--force");
    let r = t.run().success();
    assert!(!r.stdout.contains("added"), "{}", r.stdout);
    assert_eq!(std::fs::read_to_string(t.path().join(".gitignore")).unwrap(), ignore);

    // No `.gitignore` yet: one is created.
    let t = Test::new().args(["init", "--recipe", "shell", "--set", "build=make", "--json"]);
    let v: serde_json::Value = serde_json::from_str(t.run().success().stdout.trim()).unwrap();
    assert_eq!(v["gitignore"], serde_json::json!([".pilum/"]));
    assert_eq!(std::fs::read_to_string(t.path().join(".gitignore")).unwrap(), ".pilum/\n");
}
