//! `run()`: parse the command line, turn it into configuration, dispatch, and print any error
//! exactly once. Returns the process exit code.

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::error::{Error, exit};
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
    let _ = out;
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
        Command::Scale(cmd) => crate::autoscale::cli::run(cmd, cli.global.dir.as_deref(), out),
    }
}
