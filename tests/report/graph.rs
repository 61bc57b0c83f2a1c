//! `pilum graph --format svg|html`: every service and every `depends_on` edge drawn, the
//! services `--only-changed` picked highlighted with why, the rest dimmed; `tree`, `dot` and
//! `mermaid` unchanged.

use std::collections::BTreeSet;

use super::{find, has_class, parse, tooltip};
use crate::common::Test;

/// `db` ← `api` ← `web`, `api` ← `worker`, `docs` alone, `cli` watching `libs/proto`, and a
/// deeper `edge` (depends on `web` and `db`: an edge spanning layers).
pub(super) fn project() -> Test {
    let svc = |name: &str, deps: &[&str], extra: &str| {
        format!(
            "name: {name}\nrecipe: shell\ndepends_on: [{}]\n{extra}shell:\n  build: echo {name}\n",
            deps.join(", ")
        )
    };
    let t = Test::new()
        .file("libs/proto/api.proto", "syntax = \"proto3\";\n")
        .file("services/db/pilum.yaml", &svc("db", &[], ""))
        .file("services/api/pilum.yaml", &svc("api", &["db"], ""))
        .file("services/web/pilum.yaml", &svc("web", &["api"], ""))
        .file("services/worker/pilum.yaml", &svc("worker", &["api"], ""))
        .file("services/docs/pilum.yaml", &svc("docs", &[], ""))
        .file("services/cli/pilum.yaml", &svc("cli", &[], "watch: [../../libs/proto]\n"))
        .file("services/edge/pilum.yaml", &svc("edge", &["web", "db"], ""));
    t.git(&["init", "-q", "-b", "main"]);
    t.git(&["add", "-A"]);
    t.git(&["commit", "-q", "-m", "init"]);
    t.write("services/api/main.txt", "changed\n");
    t.write("libs/proto/api.proto", "syntax = \"proto3\"; // changed\n");
    t
}

/// (service, depends on) for every edge, from `pilum graph --json`.
fn edges_of(t: Test) -> (Test, BTreeSet<(String, String)>) {
    let t = t.args(["graph", "--json"]);
    let r = t.run().success();
    let v: serde_json::Value = serde_json::from_str(r.stdout.trim()).unwrap();
    let mut edges = BTreeSet::new();
    for s in v.as_array().unwrap() {
        for d in s["depends_on"].as_array().unwrap() {
            edges
                .insert((s["name"].as_str().unwrap().to_string(), d.as_str().unwrap().to_string()));
        }
    }
    (t.clear_args(), edges)
}

#[test]
fn every_service_and_edge_and_why_it_was_picked() {
    let (t, want) = edges_of(project());
    assert_eq!(want.len(), 5);
    let t = t.args(["graph", "--format", "svg", "--only-changed", "--since", "HEAD"]);
    let svg = t.run().success().stdout;
    let doc = parse(&svg);
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let drawn: BTreeSet<(String, String)> = find(&doc, "path", "edge")
        .iter()
        .map(|e| {
            (
                e.attribute("data-service").unwrap().into(),
                e.attribute("data-depends-on").unwrap().into(),
            )
        })
        .collect();
    assert_eq!(drawn, want, "every depends_on edge, and only those");
    assert_eq!(find(&doc, "path", "edge").len(), want.len(), "each edge once");
    let nodes = find(&doc, "g", "node");
    assert_eq!(nodes.len(), 7);
    let class_of = |name: &str| {
        let n = nodes
            .iter()
            .find(|n| n.attribute("data-service") == Some(name))
            .unwrap_or_else(|| panic!("no node {name}"));
        ["changed", "watch", "dependent", "picked", "dimmed"]
            .into_iter()
            .find(|c| has_class(*n, c))
            .map(|c| (c, tooltip(*n)))
    };
    let (c, why) = class_of("api").unwrap();
    assert_eq!(c, "changed");
    assert!(why.contains("changed: services/api/main.txt"), "{why}");
    let (c, why) = class_of("cli").unwrap();
    assert_eq!(c, "watch");
    assert!(why.contains("watch: libs/proto/api.proto"), "{why}");
    for name in ["web", "worker", "edge"] {
        let (c, why) = class_of(name).unwrap();
        assert_eq!(c, "dependent", "{name}");
        assert!(why.contains("depends on changed"), "{name}: {why}");
    }
    for name in ["db", "docs"] {
        assert_eq!(class_of(name).unwrap().0, "dimmed", "{name}");
    }
    // Layers: what a service depends on is in an earlier layer, drawn to its left.
    let layer = |name: &str| -> usize {
        nodes
            .iter()
            .find(|n| n.attribute("data-service") == Some(name))
            .unwrap()
            .attribute("data-layer")
            .unwrap()
            .parse()
            .unwrap()
    };
    for (s, d) in &want {
        assert!(layer(s) > layer(d), "{s} ({}) after {d} ({})", layer(s), layer(d));
    }
    assert_eq!(layer("edge"), 3, "longest path: db, api, web, edge");
    // Edges into the change are highlighted; edges to a dimmed service are dimmed.
    let edge = |s: &str, d: &str| {
        find(&doc, "path", "edge")
            .into_iter()
            .find(|e| {
                e.attribute("data-service") == Some(s) && e.attribute("data-depends-on") == Some(d)
            })
            .unwrap()
    };
    assert!(has_class(edge("web", "api"), "propagates"));
    assert!(has_class(edge("api", "db"), "dimmed"));
}

#[test]
fn the_html_page_lists_the_selection() {
    let t = project().args(["graph", "--format", "html", "--only-changed", "--since", "HEAD"]);
    let html = t.run().success().stdout;
    let doc = parse(&html);
    assert_eq!(find(&doc, "g", "node").len(), 7);
    assert_eq!(find(&doc, "path", "edge").len(), 5);
    let rows: Vec<_> = doc
        .descendants()
        .filter(|n| n.tag_name().name() == "tr" && n.attribute("data-service").is_some())
        .collect();
    let listed: BTreeSet<&str> =
        rows.iter().map(|r| r.attribute("data-service").unwrap()).collect();
    assert_eq!(listed, BTreeSet::from(["api", "cli", "edge", "web", "worker"]));
    assert!(html.contains("changed since <code>HEAD</code>"));
    assert!(!html.contains("<script") && html.contains("default-src 'none'"));
    // Without a selection every service is picked.
    let t = t.clear_args().args(["graph", "--format", "svg"]);
    let svg = t.run().success().stdout;
    let doc = parse(&svg);
    assert!(find(&doc, "g", "node").iter().all(|n| has_class(*n, "picked")));
    // The text formats are as they were.
    let t = t.clear_args().args(["graph", "--format", "dot", "edge"]);
    let dot = t.run().success().stdout;
    assert!(dot.starts_with("digraph pilum {") && dot.contains("\"edge\" -> \"web\";"), "{dot}");
}
