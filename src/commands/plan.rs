//! `pilum plan`: the full plan (services, why each is selected, tasks by phase and their order)
//! as text, or one JSON document with `--json`. `--dry-run` runs print the same text.

use std::path::PathBuf;

use console::Style;

use super::{deploy, pipeline, warn_all};
use crate::cli::ExecArgs;
use crate::error::Error;
use crate::orchestrator::plan::Plan;
use crate::output::Output;
use crate::state::cache::{BUILD_PHASES, Hit};
use crate::ui::render::{count, human};

/// `pilum plan`: the full plan as text or one JSON document.
pub(crate) fn run(dir: Option<PathBuf>, a: &ExecArgs, out: &Output) -> Result<(), Error> {
    super::runs::no_report("plan", &a.report)?;
    let mut cfg = deploy::config(dir, a, &[], a.dry_run);
    cfg.require_secrets = false;
    let loaded = pipeline::load_to_plan(&cfg)?;
    warn_all(out, &loaded.warnings);
    if a.ci.matrix.is_some() && cfg.shard.is_some() {
        return Err(Error::usage("`--matrix` lists every shard; leave out `--shard`"));
    }
    if a.ci.matrix.is_some() {
        // Shards are weighed over every phase, whatever the filters.
        let mut whole = cfg.clone();
        whole.filter = crate::orchestrator::plan::StepFilter::default();
        let plan = pipeline::plan(&whole, &loaded)?;
        let backend = pipeline::state(&cfg, &loaded)?;
        let history = super::shard::history_weights(backend.as_ref())?;
        let m = super::shard::matrix(&plan, a.ci.shards, &history)?;
        out.stdout_line(&m.to_string());
        return Ok(());
    }
    let plan = pipeline::plan(&cfg, &loaded)?;
    if !a.allow_dirty
        && let Some(refusal) = deploy::dirty(&plan, "deploy")
    {
        out.warn(&deploy::dirty_warning(&refusal));
    }
    // What a real run would skip: the cache read only (no write, no lock, no record).
    let mut hits = Vec::new();
    if !(a.state.no_cache || a.state.force) {
        match deploy::lookup(&cfg, &loaded, &plan)? {
            Ok(h) => hits = h,
            Err(why) => out.warn(&why),
        }
    }
    if out.json {
        let json = deploy::with_cache(plan.to_json(), &hits);
        out.json_line(&serde_json::json!({"event": "plan", "plan": json}));
    } else {
        print_plan(out, &plan, loaded.base.as_deref(), &hits);
    }
    crate::sync::drop_in_background((loaded, plan));
    Ok(())
}

/// How many of a task's dependencies the text plan names (`+N more` after them; `--json` has
/// all of them).
const AFTER: usize = 4;

/// The plan as text; `hits`: what the build cache would skip (`pilum plan`), said under each
/// service and after each task it skips.
pub(super) fn print_plan(out: &Output, plan: &Plan, base: Option<&str>, hits: &[Hit]) {
    let bold = Style::new().bold();
    let dim = Style::new().dim();
    out.stdout_line(&format!(
        "{} {}, {}, tag `{}`{}{}{}",
        bold.apply_to("plan:"),
        count(plan.services.len(), "service"),
        count(plan.tasks.len(), "task"),
        plan.tag,
        if plan.commit.as_ref().is_some_and(super::super::orchestrator::plan::Commit::dirty) {
            " (uncommitted changes)"
        } else {
            ""
        },
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
        if let Some(h) = hit(hits, &s.name) {
            out.stdout_line(&format!("    cache: {}", h.why()));
        }
    }
    for (p, phase) in plan.phases.iter().enumerate() {
        let tasks: Vec<_> = plan.tasks.iter().filter(|t| t.phase == p).collect();
        out.stdout_line(&format!(
            "{} {phase} ({})",
            bold.apply_to(format!("phase {}:", p + 1)),
            count(tasks.len(), "task")
        ));
        for t in tasks {
            let st = plan.step(t);
            let mut extra = Vec::new();
            if let Some(d) = st.timeout {
                extra.push(format!("timeout {}", human(d)));
            }
            if let Some(r) = st.retries {
                extra.push(format!("retries {r}"));
            }
            if let Some(h) = hit(hits, &plan.services[t.service].name)
                && (matches!(h, Hit::UpToDate { .. }) || BUILD_PHASES.contains(&st.phase()))
            {
                extra.push("skipped: cached".to_string());
            }
            if !t.deps.is_empty() {
                let after: Vec<String> =
                    t.deps.iter().take(AFTER).map(|&d| plan.label(&plan.tasks[d])).collect();
                let more = match t.deps.len().saturating_sub(AFTER) {
                    0 => String::new(),
                    n => format!(" +{n} more"),
                };
                extra.push(format!("after {}{more}", after.join(", ")));
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

fn hit<'a>(hits: &'a [Hit], service: &str) -> Option<&'a Hit> {
    hits.iter().find(|h| h.service() == service)
}
