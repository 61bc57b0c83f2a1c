//! Everything compiled into the binary is documented and exercised (`CONTRIBUTING.md`): each
//! built-in recipe has its generated page, a catalogue case and a pinned transcript; each stdlib
//! module has a header, documented public functions and a user; each built-in strategy is
//! documented and passes `pilum scale check`.

use std::path::Path;

use crate::common::Test;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The `.rhai` files of a directory of the repository, by name (without the extension).
fn shipped(dir: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(Path::new(ROOT).join(dir))
        .unwrap_or_else(|e| panic!("cannot read `{dir}`: {e}"))
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".rhai").map(str::to_string))
        .collect();
    names.sort();
    assert!(!names.is_empty(), "no `.rhai` files in `{dir}`");
    names
}

/// Every file under `dir` (recursively) as text.
fn texts(dir: &Path, out: &mut Vec<(String, String)>) {
    for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot read {dir:?}: {e}")) {
        let p = e.expect("dir entry").path();
        if p.is_dir() {
            texts(&p, out);
        } else if let Ok(text) = std::fs::read_to_string(&p) {
            out.push((p.display().to_string(), text));
        }
    }
}

#[test]
fn every_builtin_recipe_has_its_page_a_case_and_a_pinned_transcript() {
    let snapshots = Path::new(ROOT).join("tests/catalogue/snapshots");
    let mut deploy_tests = Vec::new();
    texts(&Path::new(ROOT).join("tests/deploy"), &mut deploy_tests);
    for name in shipped("recipes") {
        let page = Path::new(ROOT).join(format!("docs/recipes/{name}.md"));
        assert!(page.exists(), "recipe `{name}` has no page: run `pilum docs --out docs/recipes`");
        if name == "local" || name == "shell" {
            // The deploy pipeline's own recipes are exercised by the deploy tests.
            let used = deploy_tests.iter().any(|(_, t)| t.contains(&format!("recipe: {name}")));
            assert!(used, "no test in tests/deploy uses recipe `{name}`");
            continue;
        }
        let snap = snapshots.join(format!("integration__catalogue__snapshots__{name}.snap"));
        assert!(
            snap.exists(),
            "recipe `{name}` has no pinned transcript: add a case to tests/catalogue and a line to \
             `recipe_tests!` in tests/catalogue/snapshots.rs"
        );
    }
}

#[test]
fn every_stdlib_module_is_documented_and_used() {
    let mut users = Vec::new();
    for dir in ["recipes", "stdlib", "examples", "tests"] {
        texts(&Path::new(ROOT).join(dir), &mut users);
    }
    for name in shipped("stdlib") {
        let file = format!("stdlib/{name}.rhai");
        let text = std::fs::read_to_string(Path::new(ROOT).join(&file)).expect("read module");
        assert!(
            text.starts_with("//"),
            "`{file}` starts without a header comment (it opens the module's section of docs/recipes/stdlib.md)"
        );
        // Every public function name has a `///` comment on one of its definitions
        // (overloads may share one).
        let lines: Vec<&str> = text.lines().collect();
        let name_of = |l: &str| l.strip_prefix("fn ")?.split('(').next().map(str::to_string);
        let mut documented = std::collections::BTreeSet::new();
        let mut all = std::collections::BTreeMap::new();
        for (i, line) in lines.iter().enumerate() {
            if let Some(f) = name_of(line) {
                all.entry(f.clone()).or_insert(i + 1);
                if i > 0 && lines[i - 1].trim_start().starts_with("///") {
                    documented.insert(f);
                }
            }
        }
        for (f, line) in &all {
            assert!(
                documented.contains(f),
                "`{file}:{line}`: public function `{f}` has no `///` comment"
            );
        }
        let import = format!("import \"{name}\"");
        let used = users.iter().any(|(path, t)| !path.ends_with(&file) && t.contains(&import));
        assert!(used, "no recipe, example or test imports stdlib `{name}`");
    }
}

#[test]
fn every_builtin_strategy_is_documented_and_loads() {
    let scaling = std::fs::read_to_string(Path::new(ROOT).join("docs/scaling.md"))
        .expect("read docs/scaling.md");
    for name in shipped("scripts") {
        assert!(
            scaling.contains(&format!("`{name}`")),
            "docs/scaling.md does not name strategy `{name}`"
        );
        let pools = crate::scale::pools_yaml(&format!("    strategy: {name}\n"));
        let r = Test::new().file("pilum-scale.yaml", &pools).args(["scale", "check"]).run();
        assert_eq!(r.status, 0, "strategy `{name}` fails `pilum scale check`:\n{}", r.stderr);
    }
}
