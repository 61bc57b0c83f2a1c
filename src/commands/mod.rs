//! The app layer: one file per command, each turning its arguments into configuration, then
//! loading, planning, executing and rendering. This is the only place that wires subsystems
//! together; no domain module imports it. The CLI and the script API share it: a script's
//! `deploy()` runs [`deploy::run`], exactly like `pilum deploy`.
//!
//! `pilum run`, `pilum api`, `pilum docs` and `pilum scale …` are still implemented in their
//! subsystems (`script::runner`, `script::reference`, `recipe::docs`, `autoscale::cli`);
//! [`dispatch`] hands them their configuration.

pub(crate) mod api;
pub(crate) mod approve;
pub(crate) mod check;
pub(crate) mod checkout;
pub(crate) mod ci;
pub(crate) mod clean;
pub(crate) mod completions;
pub(crate) mod deploy;
pub(crate) mod docs;
pub(crate) mod graph;
pub(crate) mod history;
pub(crate) mod init;
pub(crate) mod list;
pub(crate) mod live;
pub(crate) mod locks;
pub(crate) mod logs;
pub(crate) mod pipeline;
pub(crate) mod plan;
pub(crate) mod report;
pub(crate) mod rollback;
pub(crate) mod run;
pub(crate) mod runs;
pub(crate) mod scale;
pub(crate) mod script_api;
pub(crate) mod settings;
pub(crate) mod shard;
pub(crate) mod status;

use std::path::PathBuf;

use console::Style;

use crate::cli::{Cli, Command, SelectArgs};
use crate::error::Error;
use crate::orchestrator::plan::StepFilter;
use crate::output::Output;
use pipeline::Config;

/// Register what the app layer adds to lower layers (the script API's pipeline functions).
/// Called once, before any engine is built.
pub(crate) fn install() {
    crate::script::extension::add("pipeline", script_api::register);
}

/// Run one parsed command line.
pub(crate) fn dispatch(cli: Cli, out: &Output) -> Result<(), Error> {
    let dir = cli.global.dir;
    match cli.command {
        Command::Run(args) => run::run(dir, args, out),
        Command::Api(args) => api::run(&args, out),
        // -- deploy pipeline
        Command::List(a) => report(out, dir.clone(), list::run(dir, &a, out)),
        Command::Check(a) => report(out, dir.clone(), check::run(dir, &a, out)),
        Command::Init(a) => report(out, dir.clone(), init::run(dir, &a, out)),
        Command::Build(a) => {
            report(out, dir.clone(), deploy::command(dir, &a, out, deploy::Verb::Build))
        }
        Command::Publish(a) => {
            report(out, dir.clone(), deploy::command(dir, &a, out, deploy::Verb::Publish))
        }
        Command::Push(a) => {
            report(out, dir.clone(), deploy::command(dir, &a, out, deploy::Verb::Push))
        }
        Command::Deploy(a) => {
            report(out, dir.clone(), deploy::command(dir, &a, out, deploy::Verb::Deploy))
        }
        Command::DryRun(a) => {
            report(out, dir.clone(), deploy::command(dir, &a, out, deploy::Verb::DryRun))
        }
        Command::Plan(a) => report(out, dir.clone(), plan::run(dir, &a, out)),
        Command::Clean(a) => report(out, dir.clone(), clean::run(dir, &a, out)),
        Command::Graph(a) => report(out, dir.clone(), graph::run(dir, &a, out)),
        Command::History(a) => report(out, dir.clone(), history::run(dir, &a, out)),
        Command::Locks(a) => report(out, dir.clone(), locks::run(dir, &a, out)),
        Command::Report(a) => report(out, dir.clone(), runs::run(dir, &a, out)),
        Command::Completions(a) => completions::run(&a, out),
        Command::Ci(c) => report(out, dir.clone(), ci::run(&c, dir.as_deref(), out)),
        // -- live services (recipe hooks)
        Command::Status(a) => report(out, dir.clone(), status::run(dir, &a, out)),
        Command::Logs(a) => report(out, dir.clone(), logs::run(dir, &a, out)),
        Command::Rollback(a) => report(out, dir.clone(), rollback::run(dir, &a, out)),
        // -- recipe catalogue
        Command::Docs(args) => docs::run(dir, args, out),
        Command::Scale(cmd) => scale::run(cmd, dir.as_deref(), out),
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
        state: None,
    }
}

/// A pipeline command's error for machines, before `run` prints it for humans on stderr:
/// under `--json`, NDJSON `error` events on stdout (one per located problem, with its `file`,
/// `line`, `col`, `help` and `did_you_mean`; one with the message otherwise); under GitHub
/// Actions, one `::error` annotation per located problem, at its line of the file.
fn report(out: &Output, dir: Option<PathBuf>, result: Result<(), Error>) -> Result<(), Error> {
    let Err(e) = &result else { return result };
    if e.message.is_empty() {
        return result;
    }
    if out.json {
        if e.diagnostics.is_empty() {
            out.json_line(&ErrorEvent { message: &e.message, ..ErrorEvent::new(e.code) });
        }
        for d in &e.diagnostics {
            out.json_line(&ErrorEvent {
                message: &d.message,
                file: (!d.file.as_os_str().is_empty()).then(|| d.file.display().to_string()),
                line: (d.line > 0).then_some(d.line),
                col: (d.line > 0).then_some(d.col),
                help: d.help.as_deref(),
                did_you_mean: d.did_you_mean.as_deref(),
                ..ErrorEvent::new(e.code)
            });
        }
    } else if crate::ui::github::active() {
        let root = crate::service::discover::project_root(dir.as_deref()).ok();
        if e.diagnostics.is_empty() {
            out.stdout_line(&crate::ui::github::error("pilum", None, &e.message));
        }
        for d in &e.diagnostics {
            let at = (!d.file.as_os_str().is_empty()).then(|| {
                (root.as_deref().map_or(d.file.clone(), |r| r.join(&d.file)), d.line, d.col)
            });
            out.stdout_line(&crate::ui::github::error(
                "pilum configuration error",
                at.as_ref().map(|(f, l, c)| (f.as_path(), *l, *c)),
                &d.to_string(),
            ));
        }
    }
    result
}

/// The `--json` event of one configuration or usage error (`docs/pipeline.md`).
#[derive(serde::Serialize)]
struct ErrorEvent<'a> {
    event: &'static str,
    code: i32,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    col: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    help: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    did_you_mean: Option<&'a str>,
}

impl ErrorEvent<'_> {
    fn new(code: i32) -> Self {
        Self {
            event: "error",
            code,
            message: "",
            file: None,
            line: None,
            col: None,
            help: None,
            did_you_mean: None,
        }
    }
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
