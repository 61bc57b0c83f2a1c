//! The deploy pipeline's commands: `list`, `check`, `init`, `build`/`publish`/`push`/`deploy`,
//! `dry-run`, `plan`, `clean`, `graph`, `completions`. Each turns its arguments into a
//! [`pipeline::Config`], loads and plans, and prints through `Output` or a renderer.

use std::path::PathBuf;

use console::{Style, Term};

use crate::cli::{
    CompletionsArgs, ExecArgs, GraphArgs, GraphFormat, InitArgs, ListArgs, SelectArgs,
};
use crate::error::{Error, exit};
use crate::orchestrator::event::{Event, Sink};
use crate::orchestrator::execute::{Cancel, Options, execute_recorded};
use crate::orchestrator::pipeline::{self, Config};
use crate::orchestrator::plan::{Plan, StepFilter};
use crate::ui::output::Output;
use crate::ui::render::Renderer;

fn config(global_dir: Option<PathBuf>, s: &SelectArgs) -> Config {
    Config {
        dir: global_dir,
        services: s.services.clone(),
        providers: s.provider.clone(),
        only_changed: s.only_changed,
        since: s.since.clone(),
        environment: s.environment.clone(),
        recipe_paths: s.recipe_path.clone(),
        filter: StepFilter {
            phases: Vec::new(),
            only_tags: s.only_tags.clone(),
            exclude_tags: s.exclude_tags.clone(),
        },
        tag: None,
        dry_run: false,
        require_secrets: false,
    }
}

/// Under `--json`, a command that fails before its event stream starts still prints one JSON
/// line on stdout (`{"event":"error",…}`); the error itself is printed on stderr as usual.
pub fn json_error(out: &Output, result: Result<(), Error>) -> Result<(), Error> {
    if let Err(e) = &result {
        if out.json && !e.message.is_empty() {
            out.json_line(
                &serde_json::json!({"event": "error", "code": e.code, "message": e.message}),
            );
        }
    }
    result
}

/// Warnings go to stderr (also under `--json`, whose stdout they never touch).
fn warn_all(out: &Output, warnings: &[crate::service::Diagnostic]) {
    for w in warnings {
        out.warn(&w.to_string());
    }
}

/// `pilum list` / `pilum list --recipes`.
pub fn list(dir: Option<PathBuf>, args: &ListArgs, out: &Output) -> Result<(), Error> {
    let cfg = config(dir, &args.select);
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
                    Err(d) => serde_json::json!({"name": name, "error": d.iter().map(|d| d.to_json()).collect::<Vec<_>>()}),
                })
                .collect();
            out.stdout_line(&serde_json::to_string(&v).expect("json values serialize"));
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
        out.stdout_line(&serde_json::to_string(&v).expect("json values serialize"));
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
            "{} of {} services{base}",
            loaded.selected.len(),
            loaded.project.services.len()
        ));
    }
    Ok(())
}

/// `pilum check`: every selected service against its recipe; all problems at once.
pub fn check(dir: Option<PathBuf>, args: &SelectArgs, out: &Output) -> Result<(), Error> {
    let cfg = config(dir, args);
    let loaded = match pipeline::load(&cfg) {
        Ok(l) => l,
        Err(e) => return Err(Error { code: exit::FAILURE, ..e }),
    };
    warn_all(out, &loaded.warnings);
    let plan = pipeline::plan(&cfg, &loaded).map_err(|e| Error { code: exit::FAILURE, ..e })?;
    if out.json {
        out.stdout_line(&serde_json::json!({"ok": true, "services": plan.services.len(), "tasks": plan.tasks.len()}).to_string());
    } else if !out.quiet {
        out.stdout_line(&format!(
            "{} {} services valid ({} tasks in {} phases)",
            Style::new().green().apply_to("✓"),
            plan.services.len(),
            plan.tasks.len(),
            plan.phases.len()
        ));
    }
    Ok(())
}

fn exec_config(dir: Option<PathBuf>, a: &ExecArgs, phases: &[&str], dry_run: bool) -> Config {
    let mut cfg = config(dir, &a.select);
    cfg.filter.phases = phases.iter().map(|s| s.to_string()).collect();
    cfg.tag = a.tag.clone();
    cfg.dry_run = dry_run || a.dry_run;
    cfg.require_secrets = !cfg.dry_run;
    cfg
}

/// `pilum plan`: the full plan as text or one JSON document.
pub fn plan(dir: Option<PathBuf>, a: &ExecArgs, out: &Output) -> Result<(), Error> {
    let mut cfg = exec_config(dir, a, &[], a.dry_run);
    cfg.require_secrets = false;
    let loaded = pipeline::load(&cfg)?;
    warn_all(out, &loaded.warnings);
    let plan = pipeline::plan(&cfg, &loaded)?;
    if out.json {
        out.stdout_line(
            &serde_json::to_string(&serde_json::json!({"event": "plan", "plan": plan.to_json()}))
                .expect("plan serializes"),
        );
        return Ok(());
    }
    print_plan(out, &plan, loaded.base.as_deref());
    Ok(())
}

fn print_plan(out: &Output, plan: &Plan, base: Option<&str>) {
    let bold = Style::new().bold();
    let dim = Style::new().dim();
    out.stdout_line(&format!(
        "{} {} services, {} tasks, tag `{}`{}{}",
        bold.apply_to("plan:"),
        plan.services.len(),
        plan.tasks.len(),
        plan.tag,
        plan.environment.as_ref().map(|e| format!(", env `{e}`")).unwrap_or_default(),
        base.map(|b| format!(", changed since `{b}`")).unwrap_or_default()
    ));
    for s in &plan.services {
        let deps: Vec<&str> =
            s.depends_on.iter().map(|&d| plan.services[d].name.as_str()).collect();
        out.stdout_line(&format!(
            "  {:<24} {:<14} {}{}",
            s.name,
            s.recipe.decl.name,
            dim.apply_to(&s.reason),
            if deps.is_empty() { String::new() } else { format!(" · after {}", deps.join(", ")) }
        ));
    }
    for (p, phase) in plan.phases.iter().enumerate() {
        let tasks: Vec<_> = plan.tasks.iter().filter(|t| t.phase == p).collect();
        out.stdout_line(&format!(
            "{} {phase} ({})",
            bold.apply_to(format!("phase {}:", p + 1)),
            crate::ui::render::count(tasks.len(), "task")
        ));
        for t in tasks {
            let st = plan.step(t);
            let mut extra = Vec::new();
            if let Some(d) = st.timeout {
                extra.push(format!("timeout {}", crate::ui::render::human(d)));
            }
            if let Some(r) = st.retries {
                extra.push(format!("retries {r}"));
            }
            if !t.deps.is_empty() {
                let mut after: Vec<String> =
                    t.deps.iter().map(|&d| plan.label(&plan.tasks[d])).collect();
                after.truncate(4);
                extra.push(format!("after {}", after.join(", ")));
            }
            out.stdout_line(&format!(
                "  {}{}",
                plan.label(t),
                if extra.is_empty() {
                    String::new()
                } else {
                    format!("  {}", dim.apply_to(format!("({})", extra.join("; "))))
                }
            ));
        }
    }
}

/// `build`, `publish`, `push`, `deploy`, `dry-run`: plan, then execute.
pub fn exec(
    dir: Option<PathBuf>,
    a: &ExecArgs,
    out: &Output,
    verb: &str,
    phases: &[&str],
    dry_run: bool,
) -> Result<(), Error> {
    let cfg = exec_config(dir, a, phases, dry_run);
    let loaded = pipeline::load(&cfg)?;
    warn_all(out, &loaded.warnings);
    let plan = pipeline::plan(&cfg, &loaded)?;
    let workers = match a.max_workers {
        Some(0) => return Err(Error::usage("`--max-workers` must be at least 1")),
        Some(n) => n,
        None => std::thread::available_parallelism().map_or(2, |n| n.get()),
    };
    let opts = Options {
        workers,
        retries: a.retries,
        retry_delay: a.retry_delay,
        keep_going: a.keep_going,
        default_timeout: a.timeout,
    };
    if plan.services.is_empty() {
        let why = loaded
            .base
            .as_ref()
            .map(|b| format!(": no service changed since `{b}`"))
            .unwrap_or_default();
        out.info(&format!("nothing to {verb}{why}"));
    }
    let renderer = Renderer::new(out, verb);
    renderer.event(&Event::Plan { plan: plan.to_json() });
    if plan.dry_run && !out.json && !out.quiet {
        print_plan(out, &plan, loaded.base.as_deref());
    }
    let cancel = Cancel::new();
    if let Err(e) = crate::process::cancel_on_ctrl_c(cancel.clone()) {
        out.warn(&format!("cannot install the Ctrl-C handler: {e}"));
    }
    let renderer = std::sync::Arc::new(renderer);
    let runner = crate::recipe::runner::RecipeRunner::new(
        &loaded.project,
        &plan,
        out.verbose,
        renderer.clone(),
    );
    let root = &loaded.project.root;
    let (summary, history) =
        execute_recorded(root, verb, &plan, &runner, &opts, renderer.as_ref(), &cancel)
            .map_err(Error::usage)?;
    if let Some(e) = history {
        out.warn(&format!("cannot append to `.pilum/history.jsonl`: {e}"));
    }
    if summary.interrupted {
        Err(Error::silent(exit::INTERRUPTED))
    } else if !summary.ok {
        Err(Error::silent(exit::FAILURE))
    } else {
        Ok(())
    }
}

/// `pilum clean`: remove `.pilum/deployments/<service>` of the selected services.
pub fn clean(dir: Option<PathBuf>, args: &SelectArgs, out: &Output) -> Result<(), Error> {
    let cfg = config(dir, args);
    let loaded = pipeline::load(&cfg)?;
    let base = loaded.project.root.join(".pilum").join("deployments");
    let mut removed = Vec::new();
    for sel in &loaded.selected {
        let name = &loaded.project.services[sel.index].name;
        let p = base.join(name);
        if p.exists() {
            std::fs::remove_dir_all(&p)
                .map_err(|e| Error::failure(format!("cannot remove `{}`: {e}", p.display())))?;
            removed.push(name.clone());
        }
    }
    if out.json {
        out.stdout_line(&serde_json::json!({"removed": removed}).to_string());
    } else if !out.quiet {
        out.stdout_line(&format!("removed local deployments of {} services", removed.len()));
    }
    Ok(())
}

/// `pilum graph`: the dependency tree, or DOT / Mermaid.
pub fn graph(dir: Option<PathBuf>, args: &GraphArgs, out: &Output) -> Result<(), Error> {
    let cfg = config(dir, &args.select);
    let loaded = pipeline::load(&cfg)?;
    let p = &loaded.project;
    let chosen: Vec<usize> = loaded.selected.iter().map(|s| s.index).collect();
    if out.json {
        let v: Vec<_> = chosen
            .iter()
            .map(|&i| serde_json::json!({"name": p.services[i].name, "depends_on": p.deps[i].iter().map(|&d| &p.services[d].name).collect::<Vec<_>>()}))
            .collect();
        out.stdout_line(&serde_json::to_string(&v).expect("json values serialize"));
        return Ok(());
    }
    match args.format {
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

/// `pilum completions <shell>`.
pub fn completions(args: &CompletionsArgs) -> Result<(), Error> {
    use clap::CommandFactory;
    let mut cmd = crate::cli::Cli::command();
    clap_complete::generate(args.shell, &mut cmd, "pilum", &mut std::io::stdout());
    Ok(())
}

/// `pilum init`: write a `pilum.yaml` for a recipe from the catalogue.
pub fn init(dir: Option<PathBuf>, args: &InitArgs, out: &Output) -> Result<(), Error> {
    let cwd = std::env::current_dir().map_err(Error::failure)?;
    let base = dir.clone().unwrap_or_else(|| cwd.clone());
    let target = match &args.path {
        Some(p) if p.is_absolute() => p.clone(),
        Some(p) => base.join(p),
        None => base.clone(),
    };
    let file = target.join("pilum.yaml");
    if file.exists() && !args.force {
        return Err(Error::usage(format!(
            "`{}` already exists\nhelp: pass `--force` to overwrite it",
            file.display()
        )));
    }
    let root = crate::service::discover::project_root(dir.as_deref()).map_err(Error::usage)?;
    let catalog = crate::recipe::Catalog::load(&root, &[]).map_err(|d| pipeline::usage(&d))?;
    let term = Term::stderr();
    let interactive = !args.no_input && !out.json && term.is_term() && Term::stdout().is_term();
    let ask = |prompt: &str, default: &str| -> Result<String, Error> {
        let _ = term.write_str(&format!(
            "{prompt}{}: ",
            if default.is_empty() { String::new() } else { format!(" [{default}]") }
        ));
        let line =
            term.read_line().map_err(|e| Error::failure(format!("cannot read input: {e}")))?;
        Ok(if line.trim().is_empty() { default.to_string() } else { line.trim().to_string() })
    };
    let dir_name = target.file_name().and_then(|n| n.to_str()).unwrap_or("service").to_string();
    let name = match &args.name {
        Some(n) => n.clone(),
        None if interactive => ask("service name", &dir_name)?,
        None => dir_name,
    };
    let recipe_name = match &args.recipe {
        Some(r) => r.clone(),
        None if interactive => {
            let _ = term.write_line("recipes:");
            for (n, r) in catalog.all() {
                if let Ok(r) = r {
                    let _ = term.write_line(&format!("  {n:<16} {}", r.decl.description));
                }
            }
            ask("recipe", "local")?
        }
        None => "local".into(),
    };
    let recipe = match catalog.get(&recipe_name) {
        Some(Ok(r)) => r,
        Some(Err(d)) => return Err(pipeline::usage(&d)),
        None => {
            let mut msg = format!(
                "unknown recipe `{recipe_name}`\nhelp: `pilum list --recipes` shows the available recipes"
            );
            if let Some(c) = crate::diagnostic::closest(&recipe_name, catalog.names()) {
                msg.push_str(&format!("\ndid you mean `{c}`?"));
            }
            return Err(Error::usage(msg));
        }
    };
    let mut values: Vec<(String, String)> = Vec::new();
    // `region`/`regions` are pilum.yaml's own top-level keys, not recipe fields.
    let mut region: Option<String> = None;
    let mut regions: Vec<String> = Vec::new();
    for kv in &args.set {
        let Some((k, v)) = kv.split_once('=') else {
            return Err(Error::usage(format!("`--set {kv}` must be `key=value`")));
        };
        if k == "region" || k == "regions" {
            let list = region_list(v);
            if list.is_empty() {
                return Err(Error::usage(format!(
                    "`--set {k}=` needs a region\nhelp: e.g. `--set region=europe-west1` or `--set regions=europe-west1,us-east1`"
                )));
            }
            match (k, list.as_slice()) {
                ("region", [one]) => region = Some(one.clone()),
                ("region", _) => {
                    return Err(Error::usage(format!(
                        "`region` is one region, not `{v}`\nhelp: use `--set regions={v}` for several"
                    )));
                }
                _ => regions = list,
            }
            continue;
        }
        if !recipe.decl.fields.iter().any(|f| f.name == k) {
            let mut msg = format!("recipe `{}` has no field `{k}`", recipe.decl.name);
            if let Some(c) =
                crate::diagnostic::closest(k, recipe.decl.fields.iter().map(|f| f.name.as_str()))
            {
                msg.push_str(&format!("\ndid you mean `{c}`?"));
            }
            return Err(Error::usage(msg));
        }
        values.push((k.to_string(), v.to_string()));
    }
    let mut missing = Vec::new();
    for f in &recipe.decl.fields {
        if values.iter().any(|(k, _)| *k == f.name) {
            continue;
        }
        if interactive {
            let default = f.default.as_ref().map(|d| d.to_string()).unwrap_or_default();
            let v = ask(
                &format!(
                    "{} ({}{}) {}",
                    f.name,
                    f.ty.as_str(),
                    if f.required { ", required" } else { "" },
                    f.description
                ),
                &default,
            )?;
            if !v.is_empty() && Some(&v) != f.default.as_ref().map(|d| d.to_string()).as_ref() {
                values.push((f.name.clone(), v));
            } else if v.is_empty() && f.required {
                missing.push(f.name.clone());
            }
        } else if f.required {
            missing.push(f.name.clone());
        }
    }
    // `pilum check` refuses a per-region step on a service without regions, so `init` must not
    // write such a file. A recipe with `fn plan(svc)` decides its steps per service; only its
    // declared steps can be looked at here.
    let per_region: Vec<String> = recipe
        .decl
        .steps
        .iter()
        .filter(|s| s.per_region)
        .map(|s| format!("`{}`", s.name))
        .collect();
    if !per_region.is_empty() && region.is_none() && regions.is_empty() && interactive {
        let answer = ask(
            &format!("regions (comma-separated; {} run once per region)", per_region.join(", ")),
            "",
        )?;
        match region_list(&answer).as_slice() {
            [] => {}
            [one] => region = Some(one.clone()),
            list => regions = list.to_vec(),
        }
    }
    let needs_region = !per_region.is_empty() && region.is_none() && regions.is_empty();
    if !missing.is_empty() || needs_region {
        let mut what: Vec<String> = missing.iter().map(|m| format!("`{m}`")).collect();
        let mut pass: Vec<String> =
            missing.iter().map(|m| format!("`--set {m}=<value>`")).collect();
        let mut or_several = "";
        if needs_region {
            what.push(format!("a region (steps {} run once per region)", per_region.join(", ")));
            pass.push("`--set region=<region>`".into());
            or_several = " (several: `--set regions=<a>,<b>`)";
        }
        return Err(Error::usage(format!(
            "recipe `{}` requires {}\nhelp: pass {}{or_several}",
            recipe.decl.name,
            what.join(", "),
            pass.join(" ")
        )));
    }
    let mut yaml = format!("name: {}\nrecipe: {}\n", yaml_scalar(&name), recipe.decl.name);
    if let Some(r) = &region {
        yaml.push_str(&format!("region: {}\n", yaml_scalar(r)));
    }
    if !regions.is_empty() {
        let items: Vec<String> = regions.iter().map(|r| yaml_scalar(r)).collect();
        yaml.push_str(&format!("regions: [{}]\n", items.join(", ")));
    }
    if !values.is_empty() {
        yaml.push_str(&format!("{}:\n", recipe.decl.section));
        for (k, v) in &values {
            let f = recipe.decl.fields.iter().find(|f| f.name == *k).expect("checked above");
            let rendered = match f.ty {
                crate::recipe::declaration::FieldType::Int
                | crate::recipe::declaration::FieldType::Float
                | crate::recipe::declaration::FieldType::Bool
                    if serde_yaml::from_str::<serde_yaml::Value>(v)
                        .is_ok_and(|x| !x.is_string()) =>
                {
                    v.clone()
                }
                crate::recipe::declaration::FieldType::Array
                    if !serde_yaml::from_str::<serde_yaml::Value>(v)
                        .is_ok_and(|x| x.is_sequence()) =>
                {
                    // `a, b` (or a single `a`) as a list.
                    let items: Vec<String> = v
                        .split(',')
                        .map(str::trim)
                        .filter(|x| !x.is_empty())
                        .map(yaml_scalar)
                        .collect();
                    format!("[{}]", items.join(", "))
                }
                crate::recipe::declaration::FieldType::Array
                | crate::recipe::declaration::FieldType::Map
                | crate::recipe::declaration::FieldType::Any => v.clone(),
                _ => yaml_scalar(v),
            };
            let parsed = serde_yaml::from_str::<serde_yaml::Value>(&rendered)
                .map(|y| crate::recipe::value::yaml_to_dynamic(&y));
            if !parsed.as_ref().is_ok_and(|d| f.ty.accepts(d)) {
                return Err(Error::usage(format!(
                    "`{k}` must be {} {}, not `{v}`\nhelp: {}",
                    if f.ty.as_str().starts_with(['a', 'i']) { "an" } else { "a" },
                    f.ty.as_str(),
                    if f.description.is_empty() {
                        "see `pilum list --recipes --json`".to_string()
                    } else {
                        f.description.clone()
                    }
                )));
            }
            yaml.push_str(&format!("  {k}: {rendered}\n"));
        }
    }
    std::fs::create_dir_all(&target)
        .map_err(|e| Error::failure(format!("cannot create `{}`: {e}", target.display())))?;
    std::fs::write(&file, &yaml)
        .map_err(|e| Error::failure(format!("cannot write `{}`: {e}", file.display())))?;
    if out.json {
        // The regions as `pilum.yaml` reads them: `region` first, then `regions`.
        let all: Vec<&String> =
            region.iter().chain(regions.iter().filter(|r| Some(*r) != region.as_ref())).collect();
        out.stdout_line(&serde_json::json!({"file": file.display().to_string(), "name": name, "recipe": recipe.decl.name, "regions": all}).to_string());
    } else if !out.quiet {
        out.stdout_line(&format!(
            "{} wrote {}",
            Style::new().green().apply_to("✓"),
            file.display()
        ));
    }
    Ok(())
}

/// `a,b`, `a, b` or `[a, b]` as a list of regions.
fn region_list(v: &str) -> Vec<String> {
    let v = v.trim();
    let v = v.strip_prefix('[').and_then(|v| v.strip_suffix(']')).unwrap_or(v);
    v.split(',').map(str::trim).filter(|r| !r.is_empty()).map(str::to_string).collect()
}

fn yaml_scalar(s: &str) -> String {
    serde_yaml::to_string(s).map(|y| y.trim_end().to_string()).unwrap_or_else(|_| format!("{s:?}"))
}

/// Print an aligned table on stdout, its first row (the header) in bold.
fn print_table(out: &Output, min_widths: &[usize], rows: &[Vec<String>]) {
    let bold = Style::new().bold();
    for (i, line) in crate::ui::table::lines(min_widths, rows).iter().enumerate() {
        if i == 0 {
            out.stdout_line(&bold.apply_to(line).to_string());
        } else {
            out.stdout_line(line);
        }
    }
}
