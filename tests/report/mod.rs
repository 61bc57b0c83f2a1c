//! The pictures: the run report (`--report`, `pilum report`) and the dependency graph
//! (`pilum graph --format svg|html`), drawn from real runs of a small monorepo and read back
//! with an XML parser; and each opened in headless Chromium (`browser`).

mod browser;
mod graph;
mod run;

use crate::common::Test;

/// A secret the `api` service's commands see; it must never reach a picture.
pub(crate) const SECRET: &str = "hunter2-picture-token";

/// A small monorepo of `shell` services, run with `--keep-going`:
///
/// - `db`: build and deploy; `api` (depends on `db`): build (prints the secret), push, deploy;
/// - `flaky`: a build that fails its first attempt and succeeds on its retry, then deploy;
/// - `broken`: a build that fails (exit 3), so its push and deploy are skipped;
/// - `web` (depends on `broken`): build, push, deploy, all skipped.
pub(crate) fn monorepo() -> Test {
    Test::new()
        .file(".gitignore", ".pilum/\n*.html\n*.svg\n")
        .file("services/db/pilum.yaml", "name: db\nrecipe: shell\nshell:\n  build: echo building db\n  deploy: echo migrating db\n")
        .file(
            "services/api/pilum.yaml",
            "name: api\nrecipe: shell\ndepends_on: [db]\nsecrets: [API_TOKEN]\nshell:\n  build: echo api uses ${API_TOKEN}\n  push: echo pushing api\n  deploy: echo deploying api\n",
        )
        .file(
            "services/flaky/pilum.yaml",
            "name: flaky\nrecipe: shell\nshell:\n  steps:\n    - name: build\n      run: if [ -e .tried ]; then echo recovered; else touch .tried; echo first try fails >&2; exit 1; fi\n      retries: 1\n  deploy: echo deploying flaky\n",
        )
        .file(
            "services/broken/pilum.yaml",
            "name: broken\nrecipe: shell\nshell:\n  build: echo about to fail; exit 3\n  push: echo never\n  deploy: echo never\n",
        )
        .file(
            "services/web/pilum.yaml",
            "name: web\nrecipe: shell\ndepends_on: [broken]\nshell:\n  build: echo web\n  push: echo web\n  deploy: echo web\n",
        )
        .env("API_TOKEN", SECRET)
}

/// The outcome class every task of [`monorepo`] must get.
pub(crate) fn expected_outcome(label: &str) -> &'static str {
    match label {
        "flaky/build" => "retried",
        "broken/build" => "failed",
        l if l.starts_with("broken/") || l.starts_with("web/") => "skipped",
        _ => "ok",
    }
}

/// Run the monorepo's deploy with a report into `run.html`; it fails (`broken`).
pub(crate) fn deploy(t: Test) -> Test {
    let t = t.args([
        "deploy",
        "--keep-going",
        "--retry-delay",
        "0s",
        "-j",
        "2",
        "--report",
        "run.html",
    ]);
    t.run().code(1);
    t.clear_args()
}

/// The task labels of the plan, by task id (`pilum plan --json`).
pub(crate) fn plan_labels(t: Test) -> (Test, Vec<String>) {
    let t = t.args(["plan", "--json"]);
    let r = t.run().success();
    let v: serde_json::Value = serde_json::from_str(&r.stdout).expect("plan JSON");
    let labels = v["plan"]["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .map(|t| format!("{}/{}", t["service"].as_str().unwrap(), t["step"].as_str().unwrap()))
        .collect();
    (t.clear_args(), labels)
}

/// Parse a page or picture as XML (they are written XHTML-compatible), failing with the text.
pub(crate) fn parse(text: &str) -> roxmltree::Document<'_> {
    let opts = roxmltree::ParsingOptions { allow_dtd: true, ..Default::default() };
    roxmltree::Document::parse_with_options(text, opts)
        .unwrap_or_else(|e| panic!("not well-formed XML: {e}\n{}", &text[..text.len().min(3000)]))
}

/// Whether element `n` has class `c`.
pub(crate) fn has_class(n: roxmltree::Node<'_, '_>, c: &str) -> bool {
    n.attribute("class").is_some_and(|v| v.split_whitespace().any(|x| x == c))
}

/// Elements named `tag` with class `class`.
pub(crate) fn find<'a, 'i>(
    doc: &'a roxmltree::Document<'i>,
    tag: &str,
    class: &str,
) -> Vec<roxmltree::Node<'a, 'i>> {
    doc.descendants().filter(|n| n.tag_name().name() == tag && has_class(*n, class)).collect()
}

/// The text of an element's `<title>` child (its tooltip).
pub(crate) fn tooltip(n: roxmltree::Node<'_, '_>) -> String {
    n.children()
        .find(|c| c.tag_name().name() == "title")
        .and_then(|c| c.text())
        .unwrap_or_default()
        .to_string()
}
