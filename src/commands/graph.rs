//! `pilum graph`: the dependency graph of the selected services as a tree, DOT or Mermaid, or
//! JSON with `--json`; or a picture of the whole project (`svg`, `html`) with the selected
//! services highlighted and why, the rest dimmed.

use std::io::Write;
use std::path::PathBuf;

use super::{pipeline, select_config};
use crate::cli::{GraphArgs, GraphFormat};
use crate::error::Error;
use crate::output::Output;
use crate::ui::report::graph::{self as picture, Node};

/// `pilum graph`: the dependency tree, or DOT / Mermaid.
pub(crate) fn run(dir: Option<PathBuf>, args: &GraphArgs, out: &Output) -> Result<(), Error> {
    let cfg = select_config(dir, &args.select);
    let loaded = pipeline::load(&cfg)?;
    let p = &loaded.project;
    let chosen: Vec<usize> = loaded.selected.iter().map(|s| s.index).collect();
    if out.json {
        let v: Vec<_> = chosen
            .iter()
            .map(|&i| serde_json::json!({"name": p.services[i].name, "depends_on": p.deps[i].iter().map(|&d| &p.services[d].name).collect::<Vec<_>>()}))
            .collect();
        out.json_line(&v);
        return Ok(());
    }
    match args.format {
        GraphFormat::Svg | GraphFormat::Html => {
            let mut reason = vec![None; p.services.len()];
            for s in &loaded.selected {
                reason[s.index] = Some(s.reason.as_str());
            }
            let nodes: Vec<Node<'_>> = p
                .services
                .iter()
                .zip(reason)
                .map(|(s, reason)| Node { name: s.name.as_str(), reason })
                .collect();
            let base = loaded.base.as_deref();
            let picture = if args.format == GraphFormat::Svg {
                picture::svg(&nodes, &p.deps, base)
            } else {
                picture::html(&nodes, &p.deps, base)
            };
            let mut stdout = std::io::stdout().lock();
            let _ = stdout.write_all(picture.as_bytes());
        }
        GraphFormat::Dot => {
            out.stdout_line("digraph pilum {");
            out.stdout_line("  rankdir=LR; // an edge a -> b: a depends on b");
            for &i in &chosen {
                out.stdout_line(&format!("  \"{}\";", p.services[i].name));
                for &d in &p.deps[i] {
                    out.stdout_line(&format!(
                        "  \"{}\" -> \"{}\";",
                        p.services[i].name, p.services[d].name
                    ));
                }
            }
            out.stdout_line("}");
        }
        GraphFormat::Mermaid => {
            out.stdout_line("graph LR");
            let id = |i: usize| format!("s{i}");
            for &i in &chosen {
                out.stdout_line(&format!("  {}[\"{}\"]", id(i), p.services[i].name));
                for &d in &p.deps[i] {
                    out.stdout_line(&format!("  {} --> {}", id(i), id(d)));
                }
            }
        }
        GraphFormat::Tree => {
            for &i in &chosen {
                out.stdout_line(&p.services[i].name);
                tree(out, p, i, "", &mut vec![i]);
            }
        }
    }
    Ok(())
}

fn tree(out: &Output, p: &crate::service::Project, i: usize, prefix: &str, path: &mut Vec<usize>) {
    let deps = &p.deps[i];
    for (k, &d) in deps.iter().enumerate() {
        let last = k + 1 == deps.len();
        out.stdout_line(&format!(
            "{prefix}{}{}",
            if last { "└── " } else { "├── " },
            p.services[d].name
        ));
        if !path.contains(&d) {
            path.push(d);
            tree(out, p, d, &format!("{prefix}{}", if last { "    " } else { "│   " }), path);
            path.pop();
        }
    }
}
