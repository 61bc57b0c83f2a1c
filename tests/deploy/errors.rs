//! Bad input: each problem is reported with the file, the line, what is wrong and how to fix
//! it, exits 2, and runs nothing.

use super::{NEEDS_APP, project, shell_service};
use crate::common::{Run, Test};

#[track_caller]
fn fails(t: Test, needles: &[&str]) -> Run {
    let t = t.args(["deploy"]);
    let r = t.run().code(2);
    for n in needles {
        assert!(r.stderr.contains(n), "missing {n:?} in:\n{}", r.stderr);
    }
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    assert!(t.calls("step").is_empty(), "something ran");
    r
}

#[test]
fn yaml_syntax_error() {
    fails(
        project(0).file("api/pilum.yaml", "name: api\nenv: [a,\n  b: c\n"),
        &["invalid YAML", "api/pilum.yaml:", "help:"],
    );
}

#[test]
fn missing_name() {
    fails(
        project(0).file("api/pilum.yaml", "recipe: shell\nshell:\n  build: true\n"),
        &[
            "missing required field `name`",
            "api/pilum.yaml:1:1",
            "help: add `name: <service name>`",
        ],
    );
}

#[test]
fn unknown_recipe_suggests() {
    fails(
        project(0).file("api/pilum.yaml", "name: api\nrecipe: shel\n"),
        &["unknown recipe `shel`", "api/pilum.yaml:2:1", "did you mean `shell`?", "help:"],
    );
}

#[test]
fn wrong_field_type() {
    fails(
        project(0)
            .file("api/pilum.yaml", "name: api\nbuild:\n  command: make\n  artifacts: dist\n"),
        &[
            "field `build.artifacts` must be an array, not string",
            "api/pilum.yaml:4:3",
            "  artifacts: dist",
            "help:",
        ],
    );
}

#[test]
fn missing_required_field() {
    fails(
        project(0)
            .file("recipes/needs-app.rhai", NEEDS_APP)
            .file("api/pilum.yaml", "name: api\nrecipe: needs-app\n"),
        &[
            "missing required field `app.id` for recipe `needs-app`",
            "api/pilum.yaml:1:1",
            "help: add `app:",
        ],
    );
}

#[test]
fn unknown_field_in_the_recipe_section_suggests() {
    fails(
        project(0).file("api/pilum.yaml", "name: api\nbuild:\n  comand: make\n"),
        &["unknown field `build.comand`", "api/pilum.yaml:3:3", "did you mean `command`?"],
    );
}

#[test]
fn dependency_cycle_names_the_cycle() {
    fails(
        project(0)
            .file("a/pilum.yaml", &shell_service("a", &["c"]))
            .file("b/pilum.yaml", &shell_service("b", &["a"]))
            .file("c/pilum.yaml", &shell_service("c", &["b"])),
        &["dependency cycle: a → c → b → a", "a/pilum.yaml:3:1", "help:"],
    );
}

#[test]
fn unknown_dependency_suggests() {
    fails(
        project(0)
            .file("a/pilum.yaml", &shell_service("a", &["bee"]))
            .file("b/pilum.yaml", &shell_service("be", &[])),
        &["depends on unknown service `bee`", "did you mean `be`?"],
    );
}

#[test]
fn duplicate_names_name_both_files() {
    fails(
        project(0)
            .file("one/pilum.yaml", &shell_service("api", &[]))
            .file("two/pilum.yaml", &shell_service("api", &[])),
        &[
            "duplicate service name `api`: used by `one/pilum.yaml` and `two/pilum.yaml`",
            "two/pilum.yaml:1:1",
        ],
    );
}

#[test]
fn broken_recipe_script_has_a_location() {
    fails(
        project(0)
            .file("recipes/bad.rhai", "fn recipe() {\n  #{ name: \"bad\", steps: [ }\n}\n")
            .file("a/pilum.yaml", "name: a\nrecipe: bad\n"),
        &["recipe `bad` does not compile", "recipes/bad.rhai:2:"],
    );
}

#[test]
fn declaration_cannot_run_commands() {
    fails(
        project(0)
            .file("recipes/sneaky.rhai", "fn recipe() {\n  exec::run([\"step\", \"x\", \"y\"]);\n  #{ name: \"sneaky\" }\n}\n")
            .file("a/pilum.yaml", "name: a\nrecipe: sneaky\n"),
        &["recipe `sneaky`: `recipe()` failed", "recipes/sneaky.rhai:2:"],
    );
}

#[test]
fn many_problems_are_reported_at_once_by_check() {
    let t = project(0)
        .file("a/pilum.yaml", "name: a\nbuild:\n  artifacts: 3\n")
        .file("b/pilum.yaml", "name: b\nrecipe: shell\nshell:\n  biuld: make\n")
        .file("c/pilum.yaml", &shell_service("c", &[]))
        .args(["check"]);
    let r = t.run().code(1);
    assert!(
        r.stderr.contains("a/pilum.yaml:3:3") && r.stderr.contains("b/pilum.yaml:4:3"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("problems found"), "{}", r.stderr);
    let t = project(0).file("c/pilum.yaml", &shell_service("c", &[])).args(["check"]);
    assert!(t.run().success().stdout.contains("1 service valid"));
}

#[test]
fn reserved_hook_names_cannot_be_steps() {
    fails(
        project(0)
            .file("recipes/hooky.rhai", "fn recipe() {\n  #{ name: \"hooky\", steps: [#{ name: \"undo\", run: \"rollback\" }] }\n}\nfn rollback(ctx) { }\n")
            .file("a/pilum.yaml", "name: a\nrecipe: hooky\n"),
        &["runs `rollback`, a name reserved for the `rollback` hook", "recipes/hooky.rhai:2:"],
    );
}

#[test]
fn a_runaway_declaration_is_stopped() {
    fails(
        project(0)
            .file("recipes/spin.rhai", "fn recipe() {\n  loop { }\n}\n")
            .file("a/pilum.yaml", "name: a\nrecipe: spin\n"),
        &["recipe `spin`: `recipe()` failed", "recipes/spin.rhai:"],
    );
}

#[test]
fn no_services_is_a_usage_error_with_help() {
    let r = project(0).args(["deploy"]).run().code(2);
    assert!(
        r.stderr.contains("no services found") && r.stderr.contains("pilum init"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_failing_step_names_the_command_and_its_location() {
    let t = project(0)
        .file("recipes/oops.rhai", "fn recipe() { #{ name: \"oops\", steps: [#{ name: \"build\", tags: [\"build\"] }] } }\nfn build(ctx) {\n    let target = ctx.service;\n    throw `target ${target} refused the deploy`;\n}\n")
        .file("a/pilum.yaml", "name: a\nrecipe: oops\n")
        .args(["build"]);
    let r = t.run().code(1);
    assert!(r.stderr.contains("a/build failed"), "{}", r.stderr);
    assert!(r.stderr.contains("target a refused the deploy"), "{}", r.stderr);
    assert!(r.stderr.contains("recipes/oops.rhai:4:5"), "{}", r.stderr);
}

/// A failing step of a built-in recipe is reported at the step in the user's `pilum.yaml`,
/// with its line; the recipe's line is only a note. A command that is itself `sh -c …` is
/// shown as written, not wrapped in a second `sh -c`.
#[test]
fn a_failing_built_in_step_points_at_the_step_in_pilum_yaml() {
    let yaml = "name: svc\nrecipe: shell\nshell:\n  build: sh -c \"echo hi; exit 3\"\n";
    let t = project(0).file("svc/pilum.yaml", yaml).args(["build"]);
    let r = t.run().code(1);
    let at = r.stderr.find("--> svc/pilum.yaml:4:3").unwrap_or_else(|| panic!("{}", r.stderr));
    let rest = &r.stderr[at..];
    assert!(rest.contains("4 |   build: sh -c \"echo hi; exit 3\""), "{}", r.stderr);
    let note = rest
        .find("= note: raised at <built-in>/recipes/shell.rhai:")
        .expect("the recipe as a note");
    assert!(!rest[..note].contains("<built-in>"), "the recipe came first:\n{}", r.stderr);
    assert!(
        r.stderr.contains("command `sh -c \"echo hi; exit 3\"` failed with exit code 3"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("sh -c 'sh -c"), "wrapped twice:\n{}", r.stderr);
    // The summary's failure list names the place too.
    assert!(r.stdout.contains("✗ svc/build (svc/pilum.yaml:4):"), "{}", r.stdout);

    // A step from `shell.steps` is found by its name.
    let yaml = "name: svc\nrecipe: shell\nshell:\n  build: 'true'\n  steps:\n    - name: migrate\n      run: exit 4\n      tags: [deploy]\n";
    let t = t.file("svc/pilum.yaml", yaml).clear_args().args(["deploy"]);
    let r = t.run().code(1);
    assert!(r.stderr.contains("--> svc/pilum.yaml:6:7"), "{}", r.stderr);
}

#[test]
fn a_per_region_step_without_regions_points_at_the_step() {
    let recipe = r#"fn recipe() { #{ name: "regional", section: "regional", fields: [ #{ name: "x", type: "string" } ],
    steps: [ #{ name: "build", tags: ["build"] }, #{ name: "roll", tags: ["deploy"], per_region: true } ] } }
fn build(ctx) {}
fn roll(ctx) {}
"#;
    let t = project(0)
        .file("recipes/regional.rhai", recipe)
        .file("svc/pilum.yaml", "name: svc\nrecipe: regional\nregional:\n  x: y\n");
    let r = fails(
        t,
        &["step `roll` of recipe `regional` runs once per region", "--> svc/pilum.yaml:3:1"],
    );
    assert!(!r.stderr.contains("svc/pilum.yaml:1:1"), "{}", r.stderr);
}

#[test]
fn a_name_that_climbs_out_of_the_project_is_refused_and_clean_deletes_nothing() {
    let t = project(0)
        .file("victim/keep.txt", "precious\n")
        .file("p/.pilum/deployments/x", "")
        .file(
            "p/a/pilum.yaml",
            "name: \"../../../victim\"\nrecipe: shell\nshell:\n  build: step a build\n",
        )
        .cwd("p");
    let mut t = t.args(["check"]);
    let r = t.run().code(1);
    for needle in [
        "service name `../../../victim` starts with `.`",
        "a/pilum.yaml:1:7",
        "help: names use letters, digits",
    ] {
        assert!(r.stderr.contains(needle), "missing {needle:?} in:\n{}", r.stderr);
    }
    for cmd in ["clean", "deploy", "plan", "list"] {
        t = t.clear_args().args([cmd]);
        let r = t.run().code(2);
        assert!(r.stderr.contains("service name `../../../victim`"), "{cmd}: {}", r.stderr);
    }
    assert!(t.path().join("victim/keep.txt").exists(), "clean deleted outside the project");
    assert!(t.calls("step").is_empty());
    // Regions and environment names end up in paths too.
    fails(
        project(0).file(
            "a/pilum.yaml",
            "name: a\nrecipe: shell\nregions: [eu, ../us]\nenvironments:\n  a/b: {}\nshell:\n  build: 'true'\n",
        ),
        &["region `../us` starts with `.`", "a/pilum.yaml:3:15", "environment `a/b` contains `/`", "a/pilum.yaml:5:3"],
    );
}

#[test]
fn an_error_about_an_expanded_value_names_the_variable_not_the_value() {
    let t = project(0)
        .file(
            "a/pilum.yaml",
            "name: a\nrecipe: shell\ndepends_on: [\"${TOKEN}\"]\nshell:\n  build: step a build\n",
        )
        .env("TOKEN", "ghp_notforprinting123");
    let r = fails(t, &["depends on unknown service `${TOKEN}`", "a/pilum.yaml:3:14"]);
    assert!(!r.stderr.contains("ghp_notforprinting123"), "{}", r.stderr);
    // A listed secret is masked in everything printed, JSON included.
    let t = project(0)
        .file(
            "a/pilum.yaml",
            "name: a\nrecipe: shell\nsecrets: [TOKEN]\nshell:\n  build: step a ${TOKEN}\n",
        )
        .env("TOKEN", "ghp_notforprinting123")
        .args(["--json", "plan"]);
    let r = t.run().success();
    assert!(
        !r.stdout.contains("ghp_notforprinting123") && r.stdout.contains("***"),
        "{}",
        r.stdout
    );
}

#[test]
fn bad_env_names_secrets_and_timeouts_are_located() {
    fails(
        project(0).file(
            "a/pilum.yaml",
            "name: a\nrecipe: shell\nenv:\n  \"\": x\n  \"A=B\": y\nsecrets: [1]\nshell:\n  build: 'true'\n",
        ),
        &[
            "environment variable name `` in `env` is empty",
            "a/pilum.yaml:4:3",
            "`A=B` in `env` contains `=`",
            "a/pilum.yaml:5:3",
            "`secrets` entry `1` is not a string",
            "a/pilum.yaml:6:11",
            "help: list the names of environment variables",
        ],
    );
}

#[test]
fn deep_nesting_is_refused_before_parsing() {
    let deep = format!("name: a\nx: {}1{}\n", "[".repeat(30_000), "]".repeat(30_000));
    fails(
        project(0).file("a/pilum.yaml", &deep),
        &["invalid YAML: nesting deeper than 64 levels", "a/pilum.yaml:2:", "help: flatten"],
    );
}

#[test]
fn a_syntax_error_at_the_end_of_the_file_points_at_what_was_left_open() {
    let r = fails(
        project(0).file("a/pilum.yaml", "name: a\nrecipe: shell\nshell:\n  build: [true\n"),
        &[
            "invalid YAML",
            "a flow sequence opened at 4:10",
            "a/pilum.yaml:4:10",
            " 4 |   build: [true",
        ],
    );
    assert!(!r.stderr.contains("pilum.yaml:5:"), "{}", r.stderr);
}

#[test]
fn check_reports_graph_problems_and_field_problems_together() {
    let t = project(0)
        .file("a/pilum.yaml", &shell_service("a", &["nope"]))
        .file("b/pilum.yaml", "name: b\nbuild:\n  artifacts: 3\n")
        .file("c/pilum.yaml", "name: c\nrecipe: shel\n")
        .file("d/pilum.yaml", "name: d\nrecipe: shell\nshell:\n  biuld: make\n")
        .args(["check"]);
    let r = t.run().code(1);
    for needle in [
        "depends on unknown service `nope`",
        "b/pilum.yaml:3:3",
        "unknown recipe `shel`",
        "unknown field `shell.biuld`",
        "4 problems found",
    ] {
        assert!(r.stderr.contains(needle), "missing {needle:?} in:\n{}", r.stderr);
    }
}

#[test]
fn hostile_timeouts_are_located_errors_never_a_panic() {
    for v in [
        ".inf",
        "1e300",
        "\"999999999999999999h\"",
        "\"18446744073709551615s\"",
        "9223372036854775807",
        "0",
        "-1",
    ] {
        let yaml = format!(
            "name: a\nrecipe: shell\nshell:\n  build: 'true'\n  steps:\n    - name: x\n      run: step a x\n      timeout: {v}\n"
        );
        let t = project(0).file("a/pilum.yaml", &yaml);
        let t = t.args(["check"]);
        let r = t.run().code(1);
        assert!(
            r.stderr.contains("the timeout of step `x`") && r.stderr.contains("a/pilum.yaml:8:16"),
            "{v}: {}",
            r.stderr
        );
        assert!(r.stderr.contains("help:") && !r.stderr.contains("panicked"), "{v}: {}", r.stderr);
        let t = t.clear_args().args(["plan"]);
        assert!(t.run().code(2).stderr.contains("a/pilum.yaml:8:16"), "{v}");
    }
    // The section's default timeout, and a recipe's own step timeout.
    fails(
        project(0).file(
            "a/pilum.yaml",
            "name: a\nrecipe: shell\nshell:\n  build: 'true'\n  timeout: 0\n",
        ),
        &["the timeout of step `build` must be greater than zero", "a/pilum.yaml:5:12"],
    );
    fails(
        project(0)
            .file("recipes/slow.rhai", "fn recipe() {\n  #{ name: \"slow\",\n     steps: [#{ name: \"build\", timeout: 1e300 }] }\n}\nfn build(ctx) { }\n")
            .file("a/pilum.yaml", "name: a\nrecipe: slow\n"),
        &["the timeout of step `build` is longer than the maximum of 366 days", "recipes/slow.rhai:3:"],
    );
}

#[test]
fn naming_a_service_whose_file_is_broken_reports_the_file() {
    let t = project(0)
        .file("api/pilum.yaml", "name: api\nenv: [a,\n")
        .file("web/pilum.yaml", &shell_service("web", &[]))
        .args(["deploy", "api"]);
    let r = t.run().code(2);
    assert!(
        r.stderr.contains("invalid YAML") && r.stderr.contains("api/pilum.yaml:"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("unknown service"), "{}", r.stderr);
}
