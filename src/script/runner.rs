//! Running one script with the full API (what `pilum run` does; the command itself is
//! `commands::run`): compile it, expose `ARGS`, run it under the cancel token (Ctrl-C) and a
//! deadline, and map the outcome to an exit code: `exit(n)` → n, an uncaught error → 1 (rendered
//! with its location), a syntax error → 2, Ctrl-C → 130. Without a timeout a script may run for
//! [`DEFAULT_TIMEOUT`]: a forgotten `loop { time::sleep(1) }` in CI ends with an error rather
//! than at the CI system's limit.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rhai::{Array, Dynamic, Scope};

use super::engine::{self, Limits, Profile};
use super::{CallCtx, CancelToken, Deadline, Host, Sink, Stop, error, with_call};
use crate::error::{Error, exit};
use crate::output::Output;

/// How long `pilum run` lets a script (and the commands it runs) take without `--timeout`.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3600);

/// One script to run, read and resolved by the caller.
#[derive(Debug, Clone)]
pub(crate) struct RunConfig {
    /// The script's canonical path: its source name in errors.
    pub script: PathBuf,
    /// Its text.
    pub text: String,
    pub args: Vec<String>,
    pub root: PathBuf,
    pub dry_run: bool,
    pub max_operations: Option<u64>,
    pub timeout: Option<Duration>,
}

/// The project root: `-C DIR`, else the nearest ancestor of the current directory holding a
/// `.git` (a directory, or a file in worktrees and submodules), else the current directory.
/// Found by looking at the file system rather than running `git`, which would cost a process
/// spawn on every `pilum run`.
pub(crate) fn project_root(dir: Option<&Path>) -> PathBuf {
    if let Some(d) = dir {
        return d.to_path_buf();
    }
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    cwd.ancestors().find(|a| a.join(".git").exists()).map_or_else(|| cwd.clone(), Path::to_path_buf)
}

/// Run the script; `out` gets what it prints.
pub(crate) fn run(cfg: RunConfig, out: &Output) -> crate::error::Result<()> {
    let (script, text) = (&cfg.script, &cfg.text);
    let root = cfg.root.canonicalize().unwrap_or(cfg.root.clone());
    let sink: Arc<dyn Sink> = Arc::new(out.clone());
    let host = Arc::new(Host::new(root, sink).dry_run(cfg.dry_run).verbose(out.verbose));
    let mut limits = Limits::full();
    if let Some(n) = cfg.max_operations {
        limits.max_operations = n;
    }
    // The process ends when the script does: freeing the engine's few thousand function
    // entries (and the AST) one by one would cost more than a trivial script's whole run.
    let engine = std::mem::ManuallyDrop::new(engine::build(&host, Profile::Full(limits)));

    let mut scope = Scope::new();
    let args: Array = cfg.args.iter().cloned().map(Dynamic::from).collect();
    scope.push_constant("ARGS", args);
    let source = script.display().to_string();
    let mut ast = engine
        .compile_with_scope(&scope, text)
        .map_err(|e| Error::usage(error::render_parse(&e, &source)))?;
    ast.set_source(source.as_str());
    let ast = std::mem::ManuallyDrop::new(ast);

    let cancel = CancelToken::new();
    if let Err(e) = crate::process::cancel_on_ctrl_c(cancel.clone()) {
        out.warn(&format!("cannot install the Ctrl-C handler: {e}"));
    }
    let deadline = Deadline::after(cfg.timeout.unwrap_or(DEFAULT_TIMEOUT));
    let ctx = CallCtx { cancel, deadline: Some(deadline), ..CallCtx::default() };
    let result = with_call(ctx, || engine.run_ast_with_scope(&mut scope, &ast));
    match result {
        Ok(()) => Ok(()),
        Err(err) => match engine::stop_of(&err) {
            Some(Stop::Exit(0)) => Ok(()),
            Some(Stop::Exit(code)) => Err(Error::silent(code)),
            Some(Stop::Cancelled) => {
                Err(Error { message: "interrupted".into(), ..Error::silent(exit::INTERRUPTED) })
            }
            _ => Err(Error::failure(error::render(&err, &source))),
        },
    }
}
