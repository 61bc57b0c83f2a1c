//! The source tree's layering (`src/README.md`): no import cycle between top-level modules of
//! `src/`. Every `crate::…` path (in `use` lines and inline) and every `super::` that reaches
//! the crate root counts as an edge from the module of the file it is in; comments do not.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Edges that still close a cycle and are being removed by their owners. Each must still
/// exist (a fixed one fails this test until it is deleted here).
const KNOWN: &[(&str, &str, &str)] = &[];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read src") {
        let p = e.expect("dir entry").path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The module path of a file: `src/a/b.rs` → `[a, b]`, `src/a/mod.rs` → `[a]`.
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).expect("under src");
    let mut parts: Vec<String> =
        rel.iter().map(|c| c.to_string_lossy().trim_end_matches(".rs").to_string()).collect();
    if parts.last().is_some_and(|l| l == "mod") {
        parts.pop();
    }
    parts
}

fn ident(s: &str) -> &str {
    let end = s.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(s.len());
    &s[..end]
}

/// The top-level modules one line of code names.
fn targets(line: &str, module: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(i) = rest.find("crate::") {
        let after = &rest[i + "crate::".len()..];
        if let Some(group) = after.strip_prefix('{') {
            // `crate::{a, b::c, d::{e, f}}`: the names at the group's first level.
            let mut depth = 0;
            let mut start = true;
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => start = true,
                    c if start && depth == 0 && !c.is_whitespace() => {
                        out.push(ident(&group[j..]).to_string());
                        start = false;
                    }
                    _ => {}
                }
            }
        } else {
            out.push(ident(after).to_string());
        }
        rest = after;
    }
    // `super::` climbing to the crate root names a top-level module too.
    let mut rest = line;
    while let Some(i) = rest.find("super::") {
        let mut after = &rest[i..];
        let mut up = 0;
        while let Some(a) = after.strip_prefix("super::") {
            up += 1;
            after = a;
        }
        if up >= module.len() {
            out.push(ident(after).to_string());
        }
        rest = after;
    }
    out.retain(|t| !t.is_empty() && t != "self" && t != "super");
    out
}

/// `from → to` edges between top-level modules, each with one file that makes it.
fn edges(src: &Path) -> BTreeMap<(String, String), PathBuf> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let tops: BTreeSet<String> = files.iter().map(|f| module_path(src, f)[0].clone()).collect();
    let mut edges = BTreeMap::new();
    for f in &files {
        let module = module_path(src, f);
        let text = std::fs::read_to_string(f).expect("read source");
        for line in text.lines() {
            let code = line.split("//").next().unwrap_or("");
            for t in targets(code, &module) {
                if t != module[0] && tops.contains(&t) {
                    edges.entry((module[0].clone(), t)).or_insert_with(|| f.clone());
                }
            }
        }
    }
    edges
}

/// A cycle through `start`, if any: the modules in order.
fn cycle_from(start: &str, graph: &BTreeMap<String, Vec<String>>) -> Option<Vec<String>> {
    fn walk(
        at: &str,
        start: &str,
        graph: &BTreeMap<String, Vec<String>>,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        for next in graph.get(at).into_iter().flatten() {
            if next == start {
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if walk(next, start, graph, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![start.to_string()];
    let mut seen = BTreeSet::new();
    walk(start, start, graph, &mut path, &mut seen).then_some(path)
}

#[test]
fn no_import_cycle_between_top_level_modules() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let edges = edges(&src);
    for (from, to, why) in KNOWN {
        assert!(
            edges.contains_key(&(from.to_string(), to.to_string())),
            "the known exception `{from}` → `{to}` ({why}) is gone: delete it from `KNOWN`"
        );
    }
    let mut graph: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (from, to) in edges.keys() {
        if !KNOWN.iter().any(|(f, t, _)| f == from && t == to) {
            graph.entry(from.clone()).or_default().push(to.clone());
        }
    }
    let mut cycles = Vec::new();
    for start in graph.keys() {
        if let Some(c) = cycle_from(start, &graph) {
            let mut steps: Vec<String> = Vec::new();
            for (i, m) in c.iter().enumerate() {
                let next = &c[(i + 1) % c.len()];
                let file = &edges[&(m.clone(), next.clone())];
                steps.push(format!(
                    "  {m} → {next} ({})",
                    file.strip_prefix(&src).unwrap_or(file).display()
                ));
            }
            cycles.push(steps.join("\n"));
        }
    }
    assert!(
        cycles.is_empty(),
        "import cycles between top-level modules (see the layering in src/README.md):\n{}",
        cycles.join("\n\n")
    );
}

#[test]
fn the_edge_parser_reads_groups_inline_paths_and_super() {
    let m = |p: &[&str]| p.iter().map(std::string::ToString::to_string).collect::<Vec<_>>();
    assert_eq!(targets("use crate::{a::B, c, d::{e, f}};", &m(&["x", "y"])), ["a", "c", "d"]);
    assert_eq!(
        targets("let x = crate::recipe::Catalog::load(crate::ui::x);", &m(&["x"])),
        ["recipe", "ui"]
    );
    assert_eq!(
        targets("use super::plan::Plan;", &m(&["orchestrator", "execute"])),
        Vec::<String>::new()
    );
    assert_eq!(targets("use super::plan::Plan;", &m(&["orchestrator"])), ["plan"]);
    assert_eq!(targets("use super::super::z;", &m(&["a", "b"])), ["z"]);
}
