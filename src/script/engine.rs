//! The ONE engine builder. Every Rhai engine pilum creates — `pilum run`, recipes, stdlib
//! modules, scaling strategies — comes from [`build`], so no code path gets an engine without
//! limits, strict variables, the sandboxed module resolver or the cancellation hook.
//!
//! Two profiles: [`Profile::Full`] registers the whole API (processes, files, git, Pulumi…);
//! [`Profile::Strategy`] is for scaling strategies, which must be pure functions of their input:
//! no `exec`, `fs`, `env`, `git` or `pulumi` namespace at all, a small operation budget, and
//! only `json`, `yaml`, `regex`, `log`, `time::now` and the built-in math.

use std::sync::Arc;

use rhai::{
    Dynamic, Engine, EvalAltResult, FuncRegistration, INT, NativeCallContext, OptimizationLevel,
};

use super::{Event, Host, Stop, api, current, modules};
use crate::redact;

/// Every Rhai limit pilum sets. Nothing is left at Rhai's default (the debug-build default call
/// depth of 8 would break ordinary recipes; the release defaults are unlimited).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Operations per evaluation (`while true {}` stops here).
    pub max_operations: u64,
    /// Nested function calls.
    pub max_call_levels: usize,
    /// Expression nesting at the top level and inside functions.
    pub max_expr_depth: usize,
    pub max_fn_expr_depth: usize,
    /// Bytes in one string (command output included).
    pub max_string_size: usize,
    pub max_array_size: usize,
    pub max_map_size: usize,
    /// Modules imported in one evaluation.
    pub max_modules: usize,
    /// Variables in scope and functions defined.
    pub max_variables: usize,
    pub max_functions: usize,
}

impl Limits {
    /// Defaults for `pilum run` and recipes.
    pub const fn full() -> Self {
        Self {
            max_operations: 50_000_000,
            max_call_levels: 64,
            max_expr_depth: 64,
            max_fn_expr_depth: 64,
            max_string_size: 64 << 20,
            max_array_size: 1_000_000,
            max_map_size: 100_000,
            max_modules: 128,
            max_variables: 10_000,
            max_functions: 10_000,
        }
    }

    /// Defaults for scaling strategies: pure decisions over a small input.
    pub const fn strategy() -> Self {
        Self {
            max_operations: 1_000_000,
            max_call_levels: 32,
            max_expr_depth: 32,
            max_fn_expr_depth: 32,
            max_string_size: 1 << 20,
            max_array_size: 10_000,
            max_map_size: 1_000,
            max_modules: 16,
            max_variables: 1_000,
            max_functions: 1_000,
        }
    }
}

/// Which API an engine gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// The whole API.
    Full(Limits),
    /// Scaling strategies: no process, file, env, git, Pulumi or network API.
    Strategy(Limits),
}

impl Profile {
    pub fn limits(&self) -> Limits {
        match self {
            Profile::Full(l) | Profile::Strategy(l) => *l,
        }
    }

    pub fn is_full(&self) -> bool {
        matches!(self, Profile::Full(_))
    }
}

/// Build an engine. The result is `Send + Sync` (Rhai `sync`): share it in an `Arc` and call it
/// from many threads, each evaluation wrapped in [`super::with_call`].
///
/// ```ignore
/// let host = Arc::new(Host::new(root, sink));
/// let engine = script::engine::build(&host, Profile::Full(Limits::full()));
/// ```
pub fn build(host: &Arc<Host>, profile: Profile) -> Engine {
    let mut engine = Engine::new();
    let l = profile.limits();
    engine
        .set_max_operations(l.max_operations)
        .set_max_call_levels(l.max_call_levels)
        .set_max_expr_depths(l.max_expr_depth, l.max_fn_expr_depth)
        .set_max_string_size(l.max_string_size)
        .set_max_array_size(l.max_array_size)
        .set_max_map_size(l.max_map_size)
        .set_max_modules(l.max_modules)
        .set_max_variables(l.max_variables)
        .set_max_functions(l.max_functions)
        .set_strict_variables(true)
        // Never `Full`: it would call API functions with constant arguments at compile time.
        .set_optimization_level(OptimizationLevel::Simple);
    // `eval` would compile text at run time, around strict variables; scripts do not need it.
    engine.disable_symbol("eval");
    engine.set_module_resolver(modules::Resolver::new(&host.root));

    let h = host.clone();
    engine.on_print(move |s| h.emit(Event::Print(&redact::redact(s))));
    let h = host.clone();
    engine.on_debug(move |s, src, pos| {
        let text = match src {
            Some(src) if !pos.is_none() => format!("[{src}:{pos}] {s}"),
            _ => s.to_string(),
        };
        h.emit(Event::Debug(&redact::redact(&text)));
    });
    engine.on_progress(|ops| {
        // Checked every 256 operations: cheap enough for tight loops, fast enough for Ctrl-C.
        if ops & 0xff != 0 {
            return None;
        }
        let ctx = current();
        if ctx.cancel.is_cancelled() {
            return Some(Dynamic::from(Stop::Cancelled));
        }
        match ctx.deadline {
            Some(d) if d.passed() => Some(Dynamic::from(Stop::TimedOut(d.after))),
            _ => None,
        }
    });

    register_exit(&mut engine);
    api::register(&mut engine, host, profile.is_full());
    engine
}

/// `exit(n)` ends the run with exit code `n`. Rhai's built-in `exit` turns into a return value
/// of the evaluation; pilum needs the code, so it raises an uncatchable termination instead.
fn register_exit(engine: &mut Engine) {
    FuncRegistration::new("exit")
        .with_comments(["/// End the script now with exit code `code`.\n///\n/// ```rhai\n/// if ARGS.is_empty() { exit(2); }\n/// ```"])
        .with_params_info(["code: int", "()"])
        .with_volatility(true)
        .register_into_engine(engine, |ctx: NativeCallContext, code: INT| -> Result<(), Box<EvalAltResult>> {
            let code = i32::try_from(code).unwrap_or(1);
            Err(EvalAltResult::ErrorTerminated(Dynamic::from(Stop::Exit(code)), ctx.call_position()).into())
        });
    FuncRegistration::new("exit")
        .with_comments([
            "/// End the script now with exit code 0.\n///\n/// ```rhai\n/// exit();\n/// ```",
        ])
        .with_params_info(["()"])
        .with_volatility(true)
        .register_into_engine(engine, |ctx: NativeCallContext| -> Result<(), Box<EvalAltResult>> {
            Err(EvalAltResult::ErrorTerminated(Dynamic::from(Stop::Exit(0)), ctx.call_position())
                .into())
        });
}

/// If `err` (possibly wrapped in module/function frames) is a [`Stop`], return it.
pub fn stop_of(err: &EvalAltResult) -> Option<Stop> {
    match err {
        EvalAltResult::ErrorTerminated(v, _) => v.clone().try_cast::<Stop>(),
        EvalAltResult::ErrorInFunctionCall(_, _, inner, _)
        | EvalAltResult::ErrorInModule(_, inner, _) => stop_of(inner),
        _ => None,
    }
}
