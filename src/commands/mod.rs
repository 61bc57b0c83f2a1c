//! The app layer: one file per command, each turning its arguments into configuration, then
//! loading, planning, executing and rendering. This is the only place that wires subsystems
//! together; no domain module imports it. The CLI and the script API share it: a script's
//! `deploy()` runs [`deploy::run`], exactly like `pilum deploy`.
//!
//! `pilum run`, `pilum api`, `pilum docs` and `pilum scale …` are still implemented in their
//! subsystems (`script::runner`, `script::reference`, `recipe::docs`, `autoscale::cli`);
//! [`dispatch`] hands them their configuration.

pub mod approve;
pub mod check;
pub mod ci;
pub mod clean;
pub mod completions;
pub mod deploy;
pub mod graph;
pub mod init;
pub mod list;
pub mod pipeline;
pub mod plan;
pub mod report;
pub mod script_api;
pub mod settings;
pub mod shard;

use std::path::PathBuf;

use console::Style;

use crate::cli::{Cli, Command, SelectArgs};
use crate::error::Error;
use crate::orchestrator::plan::StepFilter;
use crate::output::Output;
use pipeline::Config;

/// Register what the app layer adds to lower layers (the script API's pipeline functions).
/// Called once, before any engine is built.
pub fn install() {
    crate::script::extension::add("pipeline", script_api::register);
}

/// Run one parsed command line.
pub fn dispatch(cli: Cli, out: &Output) -> Result<(), Error> {
    let dir = cli.global.dir;
    match cli.command {
        Command::Run(args) => crate::script::runner::run(
            crate::script::runner::RunConfig {
                root: crate::script::runner::project_root(dir.as_deref()),
                script: args.script,
                args: args.args,
                dry_run: args.dry_run,
                max_operations: args.max_operations,
                timeout: args.timeout,
            },
            out,
        ),
        Command::Api(args) => {
            crate::script::reference::run(args.definitions.as_deref(), args.markdown, out)
        }
        // -- deploy pipeline
        Command::List(a) => json_error(out, list::run(dir, &a, out)),
        Command::Check(a) => json_error(out, check::run(dir, &a, out)),
        Command::Init(a) => json_error(out, init::run(dir, &a, out)),
        Command::Build(a) => json_error(out, deploy::command(dir, &a, out, deploy::Verb::Build)),
        Command::Publish(a) => {
            json_error(out, deploy::command(dir, &a, out, deploy::Verb::Publish))
        }
        Command::Push(a) => json_error(out, deploy::command(dir, &a, out, deploy::Verb::Push)),
        Command::Deploy(a) => json_error(out, deploy::command(dir, &a, out, deploy::Verb::Deploy)),
        Command::DryRun(a) => json_error(out, deploy::command(dir, &a, out, deploy::Verb::DryRun)),
        Command::Plan(a) => json_error(out, plan::run(dir, &a, out)),
        Command::Clean(a) => json_error(out, clean::run(dir, &a, out)),
        Command::Graph(a) => json_error(out, graph::run(dir, &a, out)),
        Command::Completions(a) => completions::run(&a, out),
        Command::Ci(c) => json_error(out, ci::run(&c, out)),
        // -- recipe catalogue
        Command::Docs(args) => crate::recipe::docs::run(
            &crate::recipe::docs::DocsConfig {
                root: crate::script::runner::project_root(dir.as_deref()),
                out: args.out,
                check: args.check,
                builtin_only: args.builtin,
            },
            out,
        )
        .map(|_| ()),
        Command::Scale(cmd) => crate::autoscale::cli::run(cmd, dir.as_deref(), out),
    }
}

/// The selection flags every pipeline command shares, as configuration.
fn select_config(dir: Option<PathBuf>, s: &SelectArgs) -> Config {
    Config {
        dir,
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
        shard: None,
    }
}

/// Under `--json`, a command that fails before its event stream starts still prints one JSON
/// line on stdout (`{"event":"error",…}`); the error itself is printed on stderr as usual.
fn json_error(out: &Output, result: Result<(), Error>) -> Result<(), Error> {
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
