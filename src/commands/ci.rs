//! `pilum ci detect`: the CI provider and run pilum sees, and the defaults it applies there
//! (renderer, colour, workers, the change base). Also the two places those defaults are
//! applied: [`apply_colour`] (at start-up, for `--color auto`) and [`default_workers`] (for
//! commands without `--max-workers`). Flags always win.

use std::io::IsTerminal;

use crate::ci::{self, Ci, Defaults, workflow};
use crate::cli::{CiCommand, ColorChoice, GlobalArgs};
use crate::error::Error;
use crate::output::Output;

/// `pilum ci …`.
pub(crate) fn run(
    cmd: &CiCommand,
    dir: Option<&std::path::Path>,
    out: &Output,
) -> Result<(), Error> {
    match cmd {
        CiCommand::Detect => detect(dir, out),
    }
}

/// The base `--only-changed` would use here: `(reference, source)`, or why there is none.
fn change_base(dir: Option<&std::path::Path>) -> Result<(String, &'static str), String> {
    let root = crate::service::discover::project_root(dir).map_err(|e| e.to_string())?;
    let cfg = super::pipeline::Config {
        dir: dir.map(std::path::Path::to_path_buf),
        ..Default::default()
    };
    let state = super::pipeline::open_state(&cfg, &root).map_err(|e| e.message)?;
    let (last, _) =
        crate::state::history::base_commit(state.as_ref(), None).map_err(|e| e.to_string())?;
    crate::service::changed::change_base(&root, None, last.as_deref())
        .map(|(reference, source, _)| (reference, source.label()))
        .map_err(|e| e.message.clone())
}

fn detect(dir: Option<&std::path::Path>, out: &Output) -> Result<(), Error> {
    let env = ci::process_env;
    let found = ci::detect(&env);
    let d = defaults(found.as_ref());
    let base = change_base(dir);
    let job_env = found
        .as_ref()
        .filter(|c| c.provider == ci::Provider::GithubActions)
        .map(|_| workflow::job_environment(&env));
    if out.json {
        let job = match &job_env {
            Some(workflow::JobEnvironment::Named(n)) => serde_json::json!({"name": n}),
            Some(workflow::JobEnvironment::None) => serde_json::json!({"name": null}),
            Some(workflow::JobEnvironment::Unknown(why)) => {
                serde_json::json!({"name": null, "unknown": why})
            }
            None => serde_json::Value::Null,
        };
        out.json_line(&serde_json::json!({
            "ci": found.as_ref().map(ci_json),
            "job_environment": job,
            "defaults": {
                "renderer": d.renderer,
                "colour": d.colour,
                "workers": d.workers,
                "change_base": base.as_ref().ok().map(|(r, _)| r),
                "change_base_source": base.as_ref().ok().map(|(_, s)| s),
                "change_base_error": base.as_ref().err(),
            },
        }));
        return Ok(());
    }
    let rows = |rows: Vec<(&str, Option<String>)>| {
        for (k, v) in rows {
            out.stdout_line(&format!("  {k:<14} {}", v.as_deref().unwrap_or("-")));
        }
    };
    match &found {
        None => out.stdout_line("not in CI (no CI provider's variables are set)"),
        Some(c) => {
            out.stdout_line(&format!("provider: {}", c.provider.name()));
            let environment = match &job_env {
                Some(workflow::JobEnvironment::Named(n)) => {
                    Some(format!("{n} (from the workflow file)"))
                }
                Some(workflow::JobEnvironment::None) => {
                    Some("none (the job has no `environment:`)".into())
                }
                Some(workflow::JobEnvironment::Unknown(why)) => Some(format!("unknown: {why}")),
                None => c.environment.clone(),
            };
            rows(vec![
                ("event", c.event.clone()),
                ("ref", c.git_ref.clone()),
                ("sha", c.sha.clone()),
                ("base ref", c.base_ref.clone()),
                ("head ref", c.head_ref.clone()),
                ("pull request", c.pull_request.clone()),
                ("run url", c.run_url.clone()),
                ("actor", c.actor.clone()),
                ("repository", c.repository.clone()),
                ("environment", environment),
            ]);
        }
    }
    out.stdout_line("defaults:");
    let renderer = match d.renderer {
        "github" => "github (plain lines, log groups, annotations, step summary)",
        "plain" => "plain (one line per task start and end)",
        _ => "terminal (spinners)",
    };
    rows(vec![
        ("renderer", Some(renderer.into())),
        (
            "colour",
            Some(
                if d.colour { "on (`--color never` or NO_COLOR turn it off)" } else { "off" }
                    .into(),
            ),
        ),
        ("workers", Some(format!("{} (`--max-workers` wins)", d.workers))),
        (
            "change base",
            Some(match &base {
                Ok((reference, source)) => format!("{reference} ({source}; `--since` wins)"),
                Err(why) => format!("none: {}", why.lines().next().unwrap_or(why)),
            }),
        ),
    ]);
    Ok(())
}

fn ci_json(c: &Ci) -> serde_json::Value {
    let mut v = serde_json::to_value(c).unwrap_or_default();
    v["provider_name"] = c.provider.name().into();
    v
}

/// The defaults for this process.
pub(crate) fn defaults(found: Option<&Ci>) -> Defaults {
    ci::defaults(found, ci::cpus(), std::io::stdout().is_terminal())
}

/// The worker count when `--max-workers` is not given: `Some` in CI.
pub(crate) fn default_workers() -> Option<usize> {
    let found = ci::detect(&ci::process_env)?;
    Some(defaults(Some(&found)).workers)
}

/// With `--color auto` in a CI whose log shows colours, colour the streams that are not
/// redirected to a file. `NO_COLOR` still wins.
pub(crate) fn apply_colour(global: &GlobalArgs) {
    if global.color != ColorChoice::Auto
        || std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
    {
        return;
    }
    let Some(found) = ci::detect(&ci::process_env) else { return };
    if !found.provider.renders_colour() {
        return;
    }
    if !is_file("/dev/stdout") {
        console::set_colors_enabled(true);
    }
    if !is_file("/dev/stderr") {
        console::set_colors_enabled_stderr(true);
    }
}

/// Whether a standard stream is a regular file (`pilum list > out.txt`), not the pipe a CI
/// runner reads.
fn is_file(stream: &str) -> bool {
    std::fs::metadata(stream).is_ok_and(|m| m.is_file())
}
