//! `run()`: parse the command line, turn it into configuration, dispatch to the app layer, and
//! print any error exactly once. Returns the process exit code.

use clap::Parser;

use crate::cli::Cli;
use crate::error::exit;
use crate::output::Output;

pub(crate) fn run() -> i32 {
    let cli = match Cli::try_parse() {
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
