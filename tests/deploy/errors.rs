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
