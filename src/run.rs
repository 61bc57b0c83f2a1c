//! `run()`: parse the command line, turn it into configuration, dispatch, and print any error
//! exactly once. Returns the process exit code.

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::error::{Error, exit};
use crate::orchestrator::commands;
use crate::ui::output::Output;

pub fn run() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // clap renders help/version/usage itself; usage errors exit 2.
            let _ = err.print();
            return if err.use_stderr() { exit::USAGE } else { exit::OK };
        }
    };
    let out = Output::from_global(&cli.global);
    match dispatch(cli, &out) {
        Ok(()) => exit::OK,
        Err(err) => {
            if !err.message.is_empty() {
                out.error(&err.message);
            }
            err.code
        }
    }
}

fn dispatch(cli: Cli, out: &Output) -> Result<(), Error> {
    match cli.command {
        Command::Run(args) => crate::script::runner::run(
            crate::script::runner::RunConfig {
                root: crate::script::runner::project_root(cli.global.dir.as_deref()),
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
        Command::List(a) => commands::json_error(out, commands::list(cli.global.dir, &a, out)),
        Command::Check(a) => commands::json_error(out, commands::check(cli.global.dir, &a, out)),
        Command::Init(a) => commands::json_error(out, commands::init(cli.global.dir, &a, out)),
        Command::Build(a) => commands::json_error(
            out,
            commands::exec(cli.global.dir, &a, out, "build", &["build"], false),
        ),
        Command::Publish(a) => commands::json_error(
            out,
            commands::exec(cli.global.dir, &a, out, "publish", &["build", "push"], false),
        ),
        Command::Push(a) => commands::json_error(
            out,
            commands::exec(cli.global.dir, &a, out, "push", &["push"], false),
        ),
        Command::Deploy(a) => {
            commands::json_error(out, commands::exec(cli.global.dir, &a, out, "deploy", &[], false))
        }
        Command::DryRun(a) => {
            commands::json_error(out, commands::exec(cli.global.dir, &a, out, "dry-run", &[], true))
        }
        Command::Plan(a) => commands::json_error(out, commands::plan(cli.global.dir, &a, out)),
        Command::Clean(a) => commands::json_error(out, commands::clean(cli.global.dir, &a, out)),
        Command::Graph(a) => commands::json_error(out, commands::graph(cli.global.dir, &a, out)),
        Command::Completions(a) => commands::completions(&a),
        // -- recipe catalogue
        Command::Docs(args) => crate::recipe::docs::run(
            &crate::recipe::docs::DocsConfig {
                root: crate::script::runner::project_root(cli.global.dir.as_deref()),
                out: args.out,
                check: args.check,
                builtin_only: args.builtin,
            },
            out,
        )
        .map(|_| ()),
        Command::Scale(cmd) => crate::server::cli::run(cmd, cli.global.dir.as_deref(), out),
    }
}
