//! Runs recipe step functions. One engine per run (from the one builder, full profile) is shared
//! by every step; a step is one call of its function in the recipe's compiled AST with the step
//! context `ctx`, wrapped in a call context carrying the cancel token, deadline, working
//! directory, environment and label. Script events (command output, prints, logs, dry-run
//! records) go to the run's sink tagged with that label; the orchestrator turns them into task
//! events (`orchestrator::runner`).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rhai::{CallFnOptions, Dynamic, Engine, Map, Scope};

use crate::recipe::Recipe;
use crate::redact::redact;
use crate::script::engine::{self, Limits, Profile};
use crate::script::{CallCtx, Host, Sink, Stop, with_call};

/// How a step call failed. The message is rendered (location, snippet) and redacted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StepError {
    /// A script error, or `exit(n)` with `n ≠ 0`.
    Failed(String),
    /// The call context's deadline passed; its processes were killed.
    TimedOut(Duration),
    /// The cancel token fired (Ctrl-C).
    Cancelled,
}

impl std::fmt::Display for StepError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StepError::Failed(message) => f.write_str(message),
            StepError::TimedOut(d) => write!(
                f,
                "timed out after {} (its processes were killed)\nhelp: raise the step's `timeout` in the recipe, or `--timeout` for steps without one",
                crate::process::secs(*d)
            ),
            StepError::Cancelled => f.write_str("interrupted"),
        }
    }
}

/// The engine of one run.
pub(crate) struct StepRunner {
    host: Arc<Host>,
    /// Built by the first step (a run whose every step is cached builds none).
    engine: std::sync::OnceLock<Engine>,
}

impl StepRunner {
    /// An engine confined to `root`; under `dry_run` mutating calls are recorded, not run.
    pub(crate) fn new(root: &Path, dry_run: bool, verbose: u8, sink: Arc<dyn Sink>) -> Self {
        let host = Arc::new(Host::new(root, sink).dry_run(dry_run).verbose(verbose));
        Self { host, engine: std::sync::OnceLock::new() }
    }

    fn engine(&self) -> &Engine {
        self.engine.get_or_init(|| engine::build(&self.host, Profile::Full(Limits::full())))
    }

    /// Call `function` of `recipe` with `ctx` under `call`. A returned map is the step's
    /// outputs; `exit(0)` ends the step successfully without outputs.
    pub(crate) fn call(
        &self,
        recipe: &Recipe,
        function: &str,
        ctx: Map,
        call: CallCtx,
    ) -> Result<Option<Map>, StepError> {
        // Top-level statements (imports) run before the call so functions see imported modules.
        let opts = CallFnOptions::new().eval_ast(true).rewind_scope(true);
        let result = with_call(call, || {
            self.engine().call_fn_with_options::<Dynamic>(
                opts,
                &mut Scope::new(),
                &recipe.ast,
                function,
                (Dynamic::from(ctx),),
            )
        });
        match result {
            Ok(v) => Ok(v.try_cast::<Map>()),
            Err(err) => match engine::stop_of(&err) {
                Some(Stop::Exit(0)) => Ok(None),
                Some(Stop::Cancelled) => Err(StepError::Cancelled),
                Some(Stop::TimedOut(d)) => Err(StepError::TimedOut(d)),
                _ => Err(StepError::Failed(
                    redact(&crate::recipe::host::render_error(&err, &recipe.ast_source))
                        .into_owned(),
                )),
            },
        }
    }
}
