//! `pilum api`: the script API reference, built from the doc comments registered with each
//! native function and from the `///` comments of the stdlib modules (so code and docs cannot
//! drift). Plain text for the terminal, Markdown for
//! `docs/api.md` (`--markdown`), or `.d.rhai` definition files for editors (`--definitions`).

use std::path::Path;
use std::sync::Arc;

use super::engine::{self, Limits, Profile};
use super::{Host, NullSink};
use crate::error::Error;

/// One documented function.
#[derive(Debug, Clone)]
pub(crate) struct FnDoc {
    pub namespace: String,
    pub signature: String,
    pub doc: String,
    /// A stdlib module function (needs `import "<namespace>" as <namespace>;`).
    pub stdlib: bool,
}

fn engine() -> rhai::Engine {
    let host = Arc::new(Host::new(std::env::temp_dir(), Arc::new(NullSink)));
    engine::build(&host, Profile::Full(Limits::full()))
}

/// Doc comment blocks as plain text: the `///` markers and the one space after them removed.
fn doc_text<'a>(blocks: impl IntoIterator<Item = &'a str>) -> String {
    blocks
        .into_iter()
        .flat_map(str::lines)
        .map(|l| l.trim_start().strip_prefix("///").map_or(l, |r| r.strip_prefix(' ').unwrap_or(r)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every pilum function (namespaced API plus globals such as `exit`), sorted.
pub(crate) fn functions() -> Vec<FnDoc> {
    let json = engine().gen_fn_metadata_to_json(false).unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap_or_default();
    let mut out = Vec::new();
    let mut push = |ns: &str, f: &serde_json::Value| {
        let name = f["name"].as_str().unwrap_or_default();
        let params: Vec<String> = f["params"]
            .as_array()
            .map(|ps| {
                ps.iter()
                    .map(|p| match (p["name"].as_str(), p["type"].as_str()) {
                        (Some(n), Some(t)) if t != "?" => format!("{n}: {t}"),
                        (Some(n), _) => n.to_string(),
                        (None, Some(t)) => t.to_string(),
                        _ => "_".to_string(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let ret = f["returnType"].as_str().unwrap_or_default();
        let qual = if ns.is_empty() { name.to_string() } else { format!("{ns}::{name}") };
        let mut signature = format!("{qual}({})", params.join(", "));
        if !ret.is_empty() && ret != "()" && ret != "?" {
            signature.push_str(&format!(" -> {ret}"));
        }
        let doc = f["docComments"]
            .as_array()
            .map(|c| doc_text(c.iter().filter_map(|l| l.as_str())))
            .unwrap_or_default();
        out.push(FnDoc { namespace: ns.to_string(), signature, doc, stdlib: false });
    };
    if let Some(mods) = v["modules"].as_object() {
        for (ns, m) in mods {
            for f in m["functions"].as_array().into_iter().flatten() {
                push(ns, f);
            }
        }
    }
    for f in v["functions"].as_array().into_iter().flatten() {
        // Rhai's own `pad`, `blob`, `replace`, re-registered with a memory check: not pilum's.
        if !super::memory::CHECKED.contains(&f["name"].as_str().unwrap_or_default()) {
            push("", f);
        }
    }
    let engine = engine();
    for (name, text) in super::modules::STDLIB {
        let Ok(ast) = engine.compile(text) else { continue };
        for f in ast.iter_functions() {
            // Closures compile to `anon$…` functions; they are not part of the module's API.
            if f.access == rhai::FnAccess::Private || f.name.starts_with("anon$") {
                continue;
            }
            let doc = doc_text(f.comments.iter().map(std::convert::AsRef::as_ref));
            out.push(FnDoc {
                namespace: name.to_string(),
                signature: format!("{name}::{}({})", f.name, f.params.join(", ")),
                doc,
                stdlib: true,
            });
        }
    }
    out.sort_by(|a, b| {
        (a.stdlib, &a.namespace, &a.signature).cmp(&(b.stdlib, &b.namespace, &b.signature))
    });
    out
}

fn title(f: &FnDoc, code: bool) -> String {
    let name = if code { format!("`{}`", f.namespace) } else { f.namespace.clone() };
    match (f.namespace.is_empty(), f.stdlib) {
        (true, _) => "global".to_string(),
        (false, true) => format!("{name} (stdlib: import \"{}\" as {};)", f.namespace, f.namespace),
        (false, false) => name,
    }
}

/// The reference as Markdown.
pub(crate) fn markdown() -> String {
    let mut s = String::from(
        "# Script API reference\n\nThis file is the output of `pilum api --markdown`, built from the doc comments of \
         the native functions and the stdlib modules: edit those, not this file.\n\n\
         Namespaced functions are called as `ns::name(…)`; stdlib modules are imported first \
         (`import \"docker\" as docker;`). In `pilum run`, the constant `ARGS` holds the script \
         arguments (an array of strings). Options are maps (`#{ dir: \"web\" }`); unknown option \
         names are errors. Scaling strategies get only `json`, `yaml`, `regex`, `shell`, `log` \
         and `time::now*`. Paths stay inside the project root (symlinks included), and every \
         evaluation is bounded in operations, call depth and memory held (512 MiB; `pilum run` \
         also stops after an hour without `--timeout`): see `docs/security.md`. Notifiers \
         (`docs/notifications.md`) get the strategies' namespaces and `http`.\n",
    );
    let mut ns = None;
    for f in functions() {
        if ns.as_ref() != Some(&(f.stdlib, f.namespace.clone())) {
            s.push_str(&format!("\n## {}\n", title(&f, true)));
            ns = Some((f.stdlib, f.namespace.clone()));
        }
        s.push_str(&format!("\n### `{}`\n\n{}\n", f.signature, f.doc.trim()));
    }
    s
}

/// Plain text for the terminal.
pub(crate) fn text() -> String {
    let mut s = String::new();
    let mut ns = None;
    for f in functions() {
        if ns.as_ref() != Some(&(f.stdlib, f.namespace.clone())) {
            let title = title(&f, false);
            s.push_str(&format!("\n{title}\n{}\n", "=".repeat(title.chars().count())));
            ns = Some((f.stdlib, f.namespace.clone()));
        }
        s.push_str(&format!("\n{}\n", f.signature));
        for l in f.doc.trim().lines() {
            s.push_str(&format!("    {l}\n"));
        }
    }
    s.trim_start().to_string()
}

/// Write the `.d.rhai` definitions of the whole API (registered namespaces and the stdlib
/// modules) into `dir`, for editors.
pub(crate) fn write_definitions(dir: &Path) -> crate::error::Result<()> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::failure(format!("cannot create `{}`: {e}", dir.display())))?;
    let engine = engine();
    let mut scope = rhai::Scope::new();
    scope.push_constant("ARGS", rhai::Array::new());
    engine
        .definitions_with_scope(&scope)
        .include_standard_packages(false)
        .write_to_dir(dir)
        .map_err(|e| {
            Error::failure(format!("cannot write definitions to `{}`: {e}", dir.display()))
        })?;
    // The stdlib modules are scripts, not registered modules: describe them from their ASTs.
    for f in functions().into_iter().filter(|f| f.stdlib) {
        let path = dir.join(format!("{}.d.rhai", f.namespace));
        let mut text =
            std::fs::read_to_string(&path).unwrap_or_else(|_| format!("module {};\n", f.namespace));
        let doc: String =
            f.doc.lines().map(|l| format!("/// {l}").trim_end().to_string() + "\n").collect();
        let sig = f.signature.split_once("::").map_or(f.signature.as_str(), |(_, s)| s);
        text.push_str(&format!("\n{doc}fn {sig};\n"));
        std::fs::write(&path, text)
            .map_err(|e| Error::failure(format!("cannot write `{}`: {e}", path.display())))?;
    }
    Ok(())
}
