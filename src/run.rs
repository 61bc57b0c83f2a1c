//! `run()`: parse the command line, turn it into configuration, dispatch to the app layer, and
//! print any error exactly once. Returns the process exit code.

use clap::{CommandFactory, FromArgMatches};

use crate::cli::Cli;
use crate::error::exit;
use crate::output::Output;

pub(crate) fn run() -> i32 {
    let cli = match parse() {
        Ok(cli) => cli,
        Err(err) => {
            // clap renders help/version/usage itself; usage errors exit 2.
            let _ = err.print();
            return if err.use_stderr() { exit::USAGE } else { exit::OK };
        }
    };
    let out = Output::from_global(&cli.global);
    crate::commands::ci::apply_colour(&cli.global);
    crate::commands::install();
    match crate::commands::dispatch(cli, &out) {
        Ok(()) => exit::OK,
        Err(err) => {
            if !err.message.is_empty() {
                out.error(&err.message);
            }
            err.code
        }
    }
}

/// `Cli::try_parse()`, except that the command tree clap builds to parse (every subcommand and
/// flag) is not freed: the process is about to do its work and exit, and dropping the tree costs
/// a measurable share of a short command's start-up (docs/performance.md, "Start-up").
fn parse() -> Result<Cli, clap::Error> {
    let mut cmd = Cli::command();
    let parsed = cmd
        .try_get_matches_from_mut(std::env::args_os())
        .and_then(|mut m| Cli::from_arg_matches_mut(&mut m).map_err(|e| e.format(&mut cmd)));
    std::mem::forget(cmd);
    parsed
}
