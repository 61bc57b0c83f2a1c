//! `docs/recipes/` is generated from the recipes: the committed pages must be exactly what
//! `pilum docs` produces, and `--check` must notice a page that drifted.

use crate::common::Test;

const DOCS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/recipes");

#[test]
fn committed_recipe_pages_match_the_recipes() {
    Test::new().args(["docs", "--builtin", "--check", "--out", DOCS]).run().success();
}

#[test]
fn check_names_a_stale_page_and_regenerating_fixes_it() {
    let t = Test::new();
    let out = t.path().join("pages");
    t.command().args(["docs", "--builtin", "--out"]).arg(&out).output().expect("run pilum docs");
    let page = out.join("fly.md");
    let text = std::fs::read_to_string(&page).expect("fly page written");
    assert!(text.contains("| `app` | `string`, **required** |"), "{text}");
    assert!(
        text.contains(r#"one of `"rolling"`, `"immediate"`, `"canary"`, `"bluegreen"`"#),
        "{text}"
    );
    std::fs::write(&page, text.replace("Fly app name", "edited by hand")).expect("edit page");

    let r = Test::new().args(["docs", "--builtin", "--check", "--out"]).arg(&out).run().code(1);
    assert!(r.stderr.contains("fly.md"), "{}", r.stderr);
    assert!(r.stderr.contains("help: regenerate them with `pilum docs --builtin"), "{}", r.stderr);
    let json = Test::new()
        .args(["docs", "--builtin", "--check", "--json", "--out"])
        .arg(&out)
        .run()
        .code(1);
    let v: serde_json::Value =
        serde_json::from_str(json.stdout.trim()).expect("one JSON object on stdout");
    assert_eq!(v["stale"].as_array().map(Vec::len), Some(1), "{v}");
    assert!(v["stale"][0].as_str().is_some_and(|s| s.ends_with("fly.md")), "{v}");

    Test::new().args(["docs", "--builtin", "--out"]).arg(&out).run().success();
    Test::new().args(["docs", "--builtin", "--check", "--out"]).arg(&out).run().success();
}

/// `docs/recipes.md`, the guide to writing a recipe.
const GUIDE: &str = include_str!("../../docs/recipes.md");

/// The guide's example files: each fenced block right after a line "`<path>`:".
fn guide_files() -> Vec<(String, String)> {
    let lines: Vec<&str> = GUIDE.lines().collect();
    let mut files = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let label = l.trim();
        let Some(path) = label.strip_prefix('`').and_then(|r| r.strip_suffix("`:")) else {
            continue;
        };
        let start =
            lines[i + 1..].iter().position(|l| l.starts_with("```")).expect("a block") + i + 2;
        let end =
            lines[start..].iter().position(|l| l.starts_with("```")).expect("block end") + start;
        files.push((path.to_string(), lines[start..end].join("\n") + "\n"));
    }
    files
}

/// The first fenced block of `lang` whose first line starts with `first`.
fn guide_block(lang: &str, first: &str) -> String {
    let lines: Vec<&str> = GUIDE.lines().collect();
    for (i, l) in lines.iter().enumerate() {
        if *l == format!("```{lang}") && lines.get(i + 1).is_some_and(|n| n.starts_with(first)) {
            let end = lines[i + 1..].iter().position(|l| l.starts_with("```")).expect("block end")
                + i
                + 1;
            return lines[i + 1..end].join("\n") + "\n";
        }
    }
    panic!("docs/recipes.md has no ```{lang} block starting with `{first}`");
}

fn guide_project() -> crate::common::Test {
    let mut t = Test::new();
    let files = guide_files();
    assert!(files.iter().any(|(p, _)| p == "recipes/fly-app.rhai"), "{files:?}");
    for (path, text) in files.iter().filter(|(p, _)| !p.starts_with("fakes/")) {
        t = t.file(path, text);
    }
    t
}

/// The guide's example recipe passes `check`, dry-runs without credentials, and deploys with
/// strict fake CLIs exactly the commands the guide says it runs.
#[test]
fn the_recipe_guide_example_checks_dry_runs_and_deploys() {
    use super::harness::{run_with, strict, transcript};
    let t = guide_project()
        .fake("docker", &strict("docker", ":"))
        .fake("flyctl", &strict("flyctl", ":"));
    run_with(&t, &["check"]).success();
    run_with(&t, &["dry-run", "--tag", "v1.0.0"]).success();
    assert!(t.calls("docker").is_empty(), "the dry run ran nothing");
    let t = t.env("FLY_API_TOKEN", "fo1_SECRET_guide");
    run_with(&t, &["deploy", "--tag", "v1.0.0", "-j", "1"]).success();
    assert_eq!(transcript(&t, &["docker", "flyctl"]) + "\n", guide_block("text", "docker "));

    // What the guide says about `check_fields`, `()` in an argv and missing secrets holds.
    let yaml = t.path().join("services/edge/pilum.yaml");
    let text = std::fs::read_to_string(&yaml).expect("pilum.yaml");
    std::fs::write(
        &yaml,
        text.replace("  app: acme-edge\n", "  app: acme-edge\n  strategy: canary\n"),
    )
    .expect("write");
    let r = run_with(&t, &["check"]);
    assert_ne!(r.status, 0);
    assert!(
        r.stderr.contains("field `fly_app.max_unavailable` does not apply to `strategy: canary`")
            && r.stderr.contains("services/edge/pilum.yaml:7"),
        "{}",
        r.stderr
    );
    let r = Test::new()
        .file("a.rhai", r#"exec::run(["flyctl", "deploy", "--config", ()]);"#)
        .args(["run", "a.rhai"])
        .run();
    assert!(
        r.stderr.contains("item 3 of the argv must be a string, number or bool, not ()"),
        "{}",
        r.stderr
    );
    let r = run_with(&guide_project(), &["deploy", "--tag", "v1.0.0"]);
    assert_eq!(r.status, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("secret `FLY_API_TOKEN` of service `edge` is not set"),
        "{}",
        r.stderr
    );
}

/// The guide's "testing your recipe" fakes and commands work as written.
#[test]
fn the_recipe_guide_fake_cli_commands_work_as_written() {
    let t = Test::new();
    for (path, text) in guide_files() {
        let p = t.path().join(&path);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, text).expect("write");
    }
    let pilum_dir = std::path::Path::new(env!("CARGO_BIN_EXE_pilum")).parent().expect("bin dir");
    let path = format!("{}:/usr/bin:/bin", pilum_dir.display());
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(guide_block("sh", "chmod"))
        .current_dir(t.path())
        .env_clear()
        .env("PATH", path)
        .env("NO_COLOR", "1")
        .output()
        .expect("run sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let log = stdout.lines().filter(|l| l.starts_with("docker ") || l.starts_with("flyctl "));
    assert_eq!(log.collect::<Vec<_>>().join("\n") + "\n", guide_block("text", "docker "));
}
