//! The Rhai host: one engine builder ([`engine::build`]), the native API (one namespace per
//! file in `api/`), the sandboxed module resolver (`modules`), and error rendering (`error`).
//!
//! Shared state lives in [`Host`] (one per run, `Send + Sync`, in an `Arc`); per-call state —
//! which task is running, its cancel token, deadline, working directory and extra environment —
//! lives in a [`CallCtx`] installed for the duration of one evaluation with [`with_call`]. That
//! lets many threads call functions of one shared engine at once (the orchestrator runs recipe
//! steps in parallel workers) while API functions still know whom they work for.
//!
//! Embedding, in short (the orchestrator and the autoscaler do exactly this):
//!
//! ```ignore
//! let host = Arc::new(Host::new(root, sink).dry_run(dry_run).verbose(verbose)); // once per run
//! let engine = engine::build(&host, Profile::Full(Limits::full()));    // once, shared
//! let mut ast = engine.compile(&text).map_err(|e| error::render_parse(&e, &path))?;
//! ast.set_source(path.as_str());                                        // for locations
//! let ctx = CallCtx { cancel, deadline: Some(Deadline::after(t)), workdir, env, label };
//! match with_call(ctx, || engine.call_fn::<Dynamic>(&mut Scope::new(), &ast, "build", (svc,))) {
//!     Ok(v) => …,
//!     Err(e) => match engine::stop_of(&e) {           // exit(n), Ctrl-C or the deadline
//!         Some(stop) => …,
//!         None => report(error::render(&e, &path)),  // path:line:col, caret, call chain
//!     },
//! }
//! ```

pub(crate) mod api;
pub(crate) mod engine;
pub(crate) mod error;
pub(crate) mod extension;
pub(crate) mod memory;
pub(crate) mod modules;
pub(crate) mod reference;
pub(crate) mod runner;
pub(crate) mod sandbox;
pub(crate) mod value;

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(crate) use crate::process::{CancelToken, Stream};

/// Something a script did that the embedding application shows or records. Every text is
/// already redacted.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Event<'a> {
    /// A line of a child's output.
    Line { stream: Stream, line: &'a str },
    /// `print(…)` from the script.
    Print(&'a str),
    /// `debug(…)` from the script, with its position.
    Debug(&'a str),
    /// `log::info/warn/error`.
    Log { level: LogLevel, message: &'a str },
    /// A mutating call that `--dry-run` recorded instead of executing: `call` is the API name
    /// (`exec::run`), `detail` what it would have done (the argv, the path…).
    DryRun { call: &'a str, detail: &'a str },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogLevel {
    Info,
    Warn,
    Error,
}

impl LogLevel {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

/// Receives every [`Event`] of every task, tagged with the task's label (`CallCtx::label`).
/// Implementations must be cheap and thread-safe: they are called from worker threads and from
/// the threads draining child output.
pub(crate) trait Sink: Send + Sync {
    fn event(&self, label: &str, event: Event<'_>);
}

/// A sink that drops everything (tests, strategy dry evaluations).
pub(crate) struct NullSink;

impl Sink for NullSink {
    fn event(&self, _label: &str, _event: Event<'_>) {}
}

/// State shared by every evaluation of one run. Build once, wrap in an `Arc`, hand to
/// [`engine::build`].
pub(crate) struct Host {
    /// The project root: every `fs::` path and project import is confined to it.
    pub root: PathBuf,
    /// Record mutating calls as [`Event::DryRun`] instead of executing them.
    pub dry_run: bool,
    /// `-v` count, for embedders; the sink decides what to show.
    pub verbose: u8,
    /// Where output lines, prints, logs and dry-run records go.
    pub sink: Arc<dyn Sink>,
    /// The sandbox of `root`, made on first use: resolving the root costs a system call per
    /// component, and every path a script hands over goes through it.
    jail: std::sync::OnceLock<sandbox::Sandbox>,
}

impl Host {
    /// A host confined to `root`, running for real, quiet.
    pub(crate) fn new(root: impl Into<PathBuf>, sink: Arc<dyn Sink>) -> Self {
        Self { root: root.into(), dry_run: false, verbose: 0, sink, jail: Default::default() }
    }

    /// Record mutating calls instead of executing them when `dry_run`.
    pub(crate) fn dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    /// The `-v` count.
    pub(crate) fn verbose(mut self, verbose: u8) -> Self {
        self.verbose = verbose;
        self
    }

    /// Send an event labelled with the current call's label.
    pub(crate) fn emit(&self, event: Event<'_>) {
        let ctx = current();
        self.sink.event(&ctx.label, event);
    }
}

pub(crate) use crate::process::FAR_FUTURE;

/// A deadline and the budget it stands for (for "timed out after 30s").
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadline {
    pub at: Instant,
    pub after: Duration,
}

impl Deadline {
    /// A deadline `after` from now.
    pub(crate) fn after(after: Duration) -> Self {
        // A deadline beyond any real run (or past `Instant`'s range) is no deadline pressure.
        let now = Instant::now();
        let at = now.checked_add(after).unwrap_or_else(|| now + FAR_FUTURE);
        Self { at, after }
    }

    pub(crate) fn passed(&self) -> bool {
        Instant::now() >= self.at
    }
}

/// Per-evaluation context: installed with [`with_call`] around `engine.run_ast…`/`call_fn`.
#[derive(Debug, Clone, Default)]
pub(crate) struct CallCtx {
    /// Cancels the script (checked by `on_progress`) and kills children it waits on.
    pub cancel: CancelToken,
    /// Wall-clock limit for the whole evaluation, children included.
    pub deadline: Option<Deadline>,
    /// Default working directory of `exec::` (relative paths resolve against the project root);
    /// `None` means the project root.
    pub workdir: Option<PathBuf>,
    /// Extra environment for every child (e.g. a service's resolved `env:`).
    pub env: Vec<(String, String)>,
    /// Who is running: prefixes output (`api`, `web:build`); empty for `pilum run`.
    pub label: String,
}

thread_local! {
    static CURRENT: RefCell<Vec<Arc<CallCtx>>> = const { RefCell::new(Vec::new()) };
}

/// Run `f` with `ctx` as the current call context on this thread (nestable). Use it around every
/// evaluation so API functions see the task's cancel token, deadline, directory and env.
///
/// ```ignore
/// let ctx = CallCtx { cancel: token.clone(), deadline: Some(Deadline::after(timeout)),
///                     label: "web:build".into(), ..Default::default() };
/// let r = script::with_call(ctx, || engine.call_fn::<Dynamic>(&mut scope, &ast, "build", (svc,)));
/// ```
pub(crate) fn with_call<R>(ctx: CallCtx, f: impl FnOnce() -> R) -> R {
    struct Pop;
    impl Drop for Pop {
        fn drop(&mut self) {
            CURRENT.with(|c| c.borrow_mut().pop());
        }
    }
    CURRENT.with(|c| c.borrow_mut().push(Arc::new(ctx)));
    let _pop = Pop;
    let _memory = memory::begin();
    f()
}

/// The current call context (a default, never-cancelled one outside [`with_call`]).
pub(crate) fn current() -> Arc<CallCtx> {
    CURRENT.with(|c| c.borrow().last().cloned()).unwrap_or_default()
}

/// Why an evaluation was stopped from outside; carried as the value of
/// `EvalAltResult::ErrorTerminated` so scripts cannot catch it.
#[derive(Debug, Clone)]
pub(crate) enum Stop {
    /// `exit(n)`.
    Exit(i32),
    /// The cancel token fired (Ctrl-C).
    Cancelled,
    /// The deadline passed.
    TimedOut(Duration),
    /// The evaluation held more than this many bytes (`Limits::max_memory`).
    OutOfMemory(usize),
}

/// `path` relative to `base` when inside it, for messages.
pub(crate) fn display_path(path: &Path, base: &Path) -> String {
    path.strip_prefix(base).unwrap_or(path).display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn shared_types_are_send_and_sync() {
        assert_send_sync::<rhai::Engine>();
        assert_send_sync::<Host>();
        assert_send_sync::<CancelToken>();
        assert_send_sync::<rhai::AST>();
    }

    #[test]
    fn call_contexts_nest_and_unwind() {
        assert!(current().label.is_empty());
        with_call(CallCtx { label: "outer".into(), ..CallCtx::default() }, || {
            with_call(CallCtx { label: "inner".into(), ..CallCtx::default() }, || {
                assert_eq!(current().label, "inner");
            });
            assert_eq!(current().label, "outer");
            let r = std::panic::catch_unwind(|| {
                with_call(CallCtx { label: "panics".into(), ..CallCtx::default() }, || {
                    panic!("boom")
                })
            });
            assert!(r.is_err());
            assert_eq!(current().label, "outer");
        });
        assert!(current().label.is_empty());
    }
}
