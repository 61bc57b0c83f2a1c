//! `pilum completions <shell>`: the shell completion script, generated from the clap
//! definitions.

use clap::CommandFactory;

use crate::cli::{Cli, CompletionsArgs};
use crate::error::Error;
use crate::output::Output;

pub(crate) fn run(args: &CompletionsArgs, out: &Output) -> Result<(), Error> {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "pilum", &mut script);
    let text = String::from_utf8_lossy(&script);
    out.stdout_line(text.strip_suffix('\n').unwrap_or(&text));
    Ok(())
}
