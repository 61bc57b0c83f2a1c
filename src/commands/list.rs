//! `pilum list`: the selected services (and why each is selected), or with `--recipes` the
//! recipe catalogue; a table, or one JSON document with `--json`.

use std::path::PathBuf;

use super::{pipeline, print_table, select_config, warn_all};
use crate::cli::ListArgs;
use crate::error::Error;
use crate::output::Output;

/// `pilum list` / `pilum list --recipes`.
pub(crate) fn run(dir: Option<PathBuf>, args: &ListArgs, out: &Output) -> Result<(), Error> {
    let cfg = select_config(dir, &args.select);
    if args.recipes {
        let root =
            crate::service::discover::project_root(cfg.dir.as_deref()).map_err(Error::usage)?;
        let catalog = crate::recipe::Catalog::load(&root, &cfg.recipe_paths)
            .map_err(|d| pipeline::usage(&d))?;
        let all = catalog.all();
        if out.json {
            let v: Vec<_> = all
                .iter()
                .map(|(name, r)| match r {
                    Ok(r) => serde_json::json!({
                        "name": name, "origin": r.origin.label(), "provider": r.decl.provider, "kind": r.decl.kind,
                        "description": r.decl.description,
                        "fields": r.decl.fields.iter().map(|f| serde_json::json!({
                            "name": f.name, "type": f.ty.as_str(), "required": f.required,
                            "default": f.default.as_ref().map(|d| crate::script::value::to_json(d).unwrap_or_default()), "secret": f.secret, "description": f.description,
                        })).collect::<Vec<_>>(),
                        "steps": r.decl.steps.iter().map(|s| serde_json::json!({"name": s.name, "tags": s.tags})).collect::<Vec<_>>(),
                    }),
                    Err(d) => serde_json::json!({"name": name, "error": d.iter().map(super::super::diagnostic::Diagnostic::to_json).collect::<Vec<_>>()}),
                })
                .collect();
            out.json_line(&v);
            return Ok(());
        }
        let mut rows = vec![vec![
            "RECIPE".to_string(),
            "PROVIDER".into(),
            "SOURCE".into(),
            "DESCRIPTION".into(),
        ]];
        for (name, r) in &all {
            rows.push(match r {
                Ok(r) => {
                    let pk = match (&r.decl.provider, &r.decl.kind) {
                        (Some(p), Some(k)) => format!("{p}/{k}"),
                        (Some(p), None) => p.clone(),
                        _ => "-".into(),
                    };
                    vec![name.to_string(), pk, r.origin.label(), r.decl.description.clone()]
                }
                Err(d) => vec![
                    name.to_string(),
                    "-".into(),
                    "-".into(),
                    format!("error: {}", d[0].message),
                ],
            });
        }
        print_table(out, &[22, 22, 32], &rows);
        return Ok(());
    }
    let loaded = pipeline::load(&cfg)?;
    warn_all(out, &loaded.warnings);
    if out.json {
        let v: Vec<_> = loaded
            .selected
            .iter()
            .zip(&loaded.recipes)
            .map(|(sel, r)| {
                let s = &loaded.project.services[sel.index];
                serde_json::json!({
                    "name": s.name, "dir": s.dir.to_string_lossy(), "recipe": r.decl.name,
                    "recipe_source": r.origin.label(), "regions": s.regions, "depends_on": s.depends_on, "tags": s.tags, "reason": sel.reason,
                })
            })
            .collect();
        out.json_line(&v);
        return Ok(());
    }
    let why = cfg.only_changed;
    let mut rows = vec![vec![
        "SERVICE".to_string(),
        "RECIPE".into(),
        "DIR".into(),
        if why { "WHY" } else { "DEPENDS ON" }.into(),
    ]];
    for (sel, r) in loaded.selected.iter().zip(&loaded.recipes) {
        let s = &loaded.project.services[sel.index];
        let last = if why { sel.reason.clone() } else { s.depends_on.join(", ") };
        rows.push(vec![s.name.clone(), r.decl.name.clone(), s.dir.display().to_string(), last]);
    }
    print_table(out, &[24, 20, 32], &rows);
    if !out.quiet {
        let base =
            loaded.base.as_ref().map(|b| format!(" changed since `{b}`")).unwrap_or_default();
        out.info(&format!(
            "{} of {}{base}",
            loaded.selected.len(),
            crate::ui::render::count(loaded.project.services.len(), "service")
        ));
    }
    Ok(())
}
