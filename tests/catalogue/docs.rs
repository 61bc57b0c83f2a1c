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
