//! `pilum run <script> [-- args…]`: read the script, run it with the full API
//! (`script::runner`) from the project root, and under `--json` end with an `exit` event
//! carrying the exit code and the error, so a machine reading stdout learns how it ended.

use std::path::PathBuf;

use crate::cli::RunArgs;
use crate::error::Error;
use crate::output::Output;
use crate::script::runner::{self, RunConfig};

pub(crate) fn run(dir: Option<PathBuf>, args: RunArgs, out: &Output) -> Result<(), Error> {
    let outcome = read(&args).and_then(|(script, text)| {
        runner::run(
            RunConfig {
                root: runner::project_root(dir.as_deref()),
                script,
                text,
                args: args.args,
                dry_run: args.dry_run,
                max_operations: args.max_operations,
                timeout: args.timeout,
            },
            out,
        )
    });
    if out.json {
        let code = outcome.as_ref().map_or_else(|e| e.code, |()| 0);
        let mut v = serde_json::json!({"event": "exit", "code": code});
        if let Err(e) = &outcome
            && !e.message.is_empty()
        {
            v["error"] = e.message.clone().into();
        }
        out.json_line(&v);
    }
    outcome
}

/// The script's canonical path and its text; a usage error (exit 2) when it cannot be read.
fn read(args: &RunArgs) -> Result<(PathBuf, String), Error> {
    let script = args.script.canonicalize().map_err(|e| {
        Error::usage(format!(
            "cannot read script `{}`: {}\nhelp: give a path to a `.rhai` file",
            args.script.display(),
            e.to_string().to_lowercase()
        ))
    })?;
    let text = std::fs::read_to_string(&script).map_err(|e| {
        Error::usage(format!("cannot read script `{}`: {e}", args.script.display()))
    })?;
    Ok((script, text))
}
