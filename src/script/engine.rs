//! The ONE engine builder. Every Rhai engine pilum creates — `pilum run`, recipes, stdlib
//! modules, scaling strategies — comes from [`build`], so no code path gets an engine without
//! limits, strict variables, the sandboxed module resolver or the cancellation hook.
//!
//! Two profiles: [`Profile::Full`] registers the whole API (processes, files, git, Pulumi…);
//! [`Profile::Strategy`] is for scaling strategies, which must be pure functions of their input:
//! no `exec`, `fs`, `env`, `git` or `pulumi` namespace at all, a small operation budget, and
//! only `json`, `yaml`, `regex`, `shell`, `log`, `time::now` and the built-in math.

use std::sync::Arc;

use rhai::{
    Dynamic, Engine, EvalAltResult, FuncRegistration, INT, NativeCallContext, OptimizationLevel,
};

use super::{Event, Host, Stop, api, current, memory, modules};
use crate::redact;

/// Every Rhai limit pilum sets. Nothing is left at Rhai's default (the debug-build default call
/// depth of 8 would break ordinary recipes; the release defaults are unlimited).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Operations per evaluation (`while true {}` stops here).
    pub max_operations: u64,
    /// Nested function calls.
    pub max_call_levels: usize,
    /// Expression nesting at the top level and inside functions.
    pub max_expr_depth: usize,
    pub max_fn_expr_depth: usize,
    /// Bytes one evaluation may hold: strings, arrays, maps, blobs, all together (see
    /// `memory.rs`; it replaces Rhai's per-value size limits, which cost quadratic time).
    pub max_memory: usize,
    /// Modules imported in one evaluation.
    pub max_modules: usize,
    /// Variables in scope and functions defined.
    pub max_variables: usize,
    pub max_functions: usize,
}

impl Limits {
    /// Defaults for `pilum run` and recipes.
    pub(crate) const fn full() -> Self {
        Self {
            max_operations: 50_000_000,
            max_call_levels: 64,
            max_expr_depth: 64,
            max_fn_expr_depth: 64,
            max_memory: 512 << 20,
            max_modules: 128,
            max_variables: 10_000,
            max_functions: 10_000,
        }
    }

    /// Defaults for scaling strategies: pure decisions over a small input.
    pub(crate) const fn strategy() -> Self {
        Self {
            max_operations: 1_000_000,
            max_call_levels: 32,
            max_expr_depth: 32,
            max_fn_expr_depth: 32,
            max_memory: 64 << 20,
            max_modules: 16,
            max_variables: 1_000,
            max_functions: 1_000,
        }
    }
}

/// Which API an engine gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Profile {
    /// The whole API.
    Full(Limits),
    /// Scaling strategies: no process, file, env, git, Pulumi or network API.
    Strategy(Limits),
    /// Notifiers: the pure API plus `http`; no process, file, env, git or Pulumi API.
    Notifier(Limits),
}

impl Profile {
    pub(crate) fn limits(&self) -> Limits {
        match self {
            Profile::Full(l) | Profile::Strategy(l) | Profile::Notifier(l) => *l,
        }
    }

    pub(crate) fn is_full(&self) -> bool {
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
pub(crate) fn build(host: &Arc<Host>, profile: Profile) -> Engine {
    // Children inherit pilum's environment: mask its secret-looking variables before any
    // script can run one.
    static SECRET_ENV: std::sync::Once = std::sync::Once::new();
    SECRET_ENV.call_once(redact::register_secret_environment);
    let mut engine = Engine::new();
    let l = profile.limits();
    engine
        .set_max_operations(l.max_operations)
        .set_max_call_levels(l.max_call_levels)
        .set_max_expr_depths(l.max_expr_depth, l.max_fn_expr_depth)
        // Rhai's per-value size limits re-measure a whole array, map or string after every
        // change to it (quadratic for a loop of pushes); `max_memory` bounds data instead.
        .set_max_string_size(0)
        .set_max_array_size(0)
        .set_max_map_size(0)
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
        let text = match (src, pos.line(), pos.position()) {
            (Some(src), Some(l), Some(c)) => format!("{}:{l}:{c}: {s}", super::error::display(src)),
            _ => s.to_string(),
        };
        h.emit(Event::Debug(&redact::redact(&text)));
    });
    let max_memory = l.max_memory;
    engine.on_progress(move |ops| {
        // Memory before every operation (two thread-local reads): one operation can double a
        // string, so waiting 256 of them could be far too late.
        if memory::over(ops, max_memory) {
            return Some(Dynamic::from(Stop::OutOfMemory(max_memory)));
        }
        // Cancellation and time every 256 operations: cheap enough for tight loops, fast
        // enough for Ctrl-C.
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

    memory::register(&mut engine);
    register_exit(&mut engine);
    api::register(&mut engine, host, profile.is_full());
    if matches!(profile, Profile::Notifier(_)) {
        engine.register_static_module("http", api::http::module(host).into());
    }
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
            if !(0..=255).contains(&code) {
                return Err(EvalAltResult::ErrorRuntime(
                    format!("exit code `{code}` is out of range: use 0 to 255").into(),
                    ctx.call_position(),
                )
                .into());
            }
            let code = i32::try_from(code).expect("0..=255 fits in i32");
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
pub(crate) fn stop_of(err: &EvalAltResult) -> Option<Stop> {
    match err {
        EvalAltResult::ErrorTerminated(v, _) => v.clone().try_cast::<Stop>(),
        EvalAltResult::ErrorInFunctionCall(_, _, inner, _)
        | EvalAltResult::ErrorInModule(_, inner, _) => stop_of(inner),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use crate::sync::LockExt;
    use std::sync::Mutex;
    use std::time::Duration;

    use rhai::{Dynamic, Scope};

    use super::*;
    use crate::script::{CallCtx, CancelToken, Deadline, Sink, with_call};

    #[derive(Default)]
    struct Recorder(Mutex<Vec<(String, String)>>);

    impl Sink for Recorder {
        fn event(&self, label: &str, event: Event<'_>) {
            let text = match event {
                Event::Print(t) => t.to_string(),
                other => format!("{other:?}"),
            };
            self.0.locked().push((label.to_string(), text));
        }
    }

    fn host() -> (Arc<Host>, Arc<Recorder>) {
        let rec = Arc::new(Recorder::default());
        let root = std::env::temp_dir();
        (Arc::new(Host::new(root, rec.clone())), rec)
    }

    #[test]
    fn every_stdlib_module_and_example_compiles() {
        let (h, _) = host();
        let engine = build(&h, Profile::Full(Limits::full()));
        for (name, text) in modules::STDLIB {
            engine.compile(text).unwrap_or_else(|e| panic!("stdlib `{name}`: {e}"));
        }
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
        let mut scope = Scope::new();
        scope.push_constant("ARGS", rhai::Array::new());
        let mut n = 0;
        for entry in std::fs::read_dir(dir).expect("examples dir").flatten() {
            let p = entry.path();
            if p.extension().is_some_and(|e| e == "rhai") {
                let text = std::fs::read_to_string(&p).expect("read example");
                engine
                    .compile_with_scope(&scope, &text)
                    .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                n += 1;
            }
        }
        assert!(n >= 3, "examples found: {n}");
    }

    #[test]
    fn strategy_profile_has_no_side_effect_api() {
        let (h, _) = host();
        let engine = build(&h, Profile::Strategy(Limits::strategy()));
        for src in [
            r#"exec::run(["true"])"#,
            r#"fs::read("x")"#,
            r#"env::get("HOME")"#,
            "git::sha()",
            "pulumi::outputs(#{})",
            "time::sleep(1)",
        ] {
            let err = engine.eval::<Dynamic>(src).expect_err(src);
            // Strict variables turn an unknown namespace into a compile error.
            assert!(
                matches!(
                    *err,
                    EvalAltResult::ErrorParsing(..) | EvalAltResult::ErrorFunctionNotFound(..)
                ),
                "{src}: {err}"
            );
            assert!(
                err.to_string().contains("Undefined module")
                    || err.to_string().contains("not found"),
                "{src}: {err}"
            );
        }
        let v = engine
            .eval::<i64>(r#"let d = json::parse("{\"n\": 4}"); if regex::is_match("a1", "\\d") { d.n * 2 } else { 0 }"#)
            .expect("pure API works");
        assert_eq!(v, 8);
        assert!(engine.eval::<i64>("time::now()").expect("now") > 0);
        let err = engine.eval::<()>("loop {}").expect_err("runaway");
        assert!(matches!(*err, EvalAltResult::ErrorTooManyOperations(..)));
    }

    #[test]
    fn limits_are_explicit() {
        let (h, _) = host();
        let engine = build(&h, Profile::Full(Limits::full()));
        assert_eq!(engine.max_call_levels(), 64);
        assert_eq!(engine.max_operations(), Limits::full().max_operations);
        // Rhai's own size limits are off (quadratic); `max_memory` bounds data instead.
        assert_eq!(engine.max_string_size(), 0);
        assert_eq!(engine.max_array_size(), 0);
        // Deeper than the debug-build default of 8 levels.
        assert_eq!(
            engine
                .eval::<i64>("fn f(n) { if n == 0 { 0 } else { 1 + f(n - 1) } } f(40)")
                .expect("deep"),
            40
        );
        let err = engine.eval::<i64>("fn f(n) { f(n + 1) } f(0)").expect_err("too deep");
        assert!(matches!(*err, EvalAltResult::ErrorStackOverflow(..)), "{err}");
        let err = engine.eval::<i64>("let x = 1; y").expect_err("strict variables");
        assert!(err.to_string().contains("Undefined variable: y"), "{err}");
    }

    /// An engine holding at most 1 MiB, for tests that run into the limit quickly.
    fn small(h: &Arc<Host>) -> Engine {
        build(h, Profile::Full(Limits { max_memory: 1 << 20, ..Limits::full() }))
    }

    #[test]
    fn growing_data_is_bounded_by_memory_in_every_way() {
        let (h, _) = host();
        let engine = small(&h);
        for src in [
            // Doubling a string, an array, a map; nesting an array in itself by index
            // assignment (no function call involved); building a list item by item.
            "let s = \"x\"; loop { s += s; }",
            "let a = [1]; loop { a += a; }",
            "let m = #{ a: \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\" }; let i = 0; loop { m[`k${i}`] = m.a + i; i += 1; }",
            "let a = [1]; loop { a[0] = a; a.push(a); }",
            "let a = []; loop { a.push(\"a string that is long enough to count\"); }",
        ] {
            let ctx = CallCtx::default();
            let err = with_call(ctx, || engine.run(src)).expect_err(src);
            assert!(
                matches!(stop_of(&err), Some(Stop::OutOfMemory(n)) if n == 1 << 20),
                "{src}: {err}"
            );
        }
        // Outside `with_call` (strategies, declarations) the first operation starts the count.
        let err = engine.run("let s = \"x\"; loop { s += s; }").expect_err("bounded");
        assert!(matches!(stop_of(&err), Some(Stop::OutOfMemory(_))), "{err}");
        // What is freed does not count: the same loop, dropping its list each round.
        let n = engine
            .eval::<i64>("let n = 0; for r in 0..50 { let a = []; for i in 0..2000 { a.push(i); } n += a.len(); } n")
            .expect("freed data does not accumulate");
        assert_eq!(n, 100_000);
    }

    #[test]
    fn calls_that_allocate_what_they_are_told_check_first() {
        let (h, _) = host();
        let engine = small(&h);
        for src in [
            "let a = []; a.pad(100000000000, 0);",
            "let b = blob(100000000000);",
            "let b = blob(100000000000, 1);",
            "let s = \"\"; s.pad(100000000000, 'x');",
            "let s = \"\"; s.pad(100000000000, \"ab\");",
            "let s = \"ab\"; s.pad(600, \"cd\"); s.replace(\"\", s); s.replace(\"\", s);",
        ] {
            let err = with_call(CallCtx::default(), || engine.run(src)).expect_err(src);
            let text = err.to_string();
            assert!(text.contains("of memory; a script may hold 1 MiB"), "{src}: {text}");
        }
        // Same results as Rhai's own versions.
        let v = engine
            .eval::<String>(
                "let a = [1]; a.pad(3, 0); let b = blob(2, 0x1ff); b.pad(3, 7); let s = \"ab\"; s.pad(5, \"xy\"); let c = \"a\"; c.pad(3, '-'); let r = \"a.b\"; r.replace(\".\", \"::\"); r.replace('b', \"c\"); `${a} ${b} ${s} ${c} ${r}`",
            )
            .expect("pads");
        assert_eq!(v, "[1, 0, 0] [ffff07] abxyx a-- a::c");
    }

    #[test]
    fn parallel_calls_share_one_engine_with_their_own_context() {
        let (h, rec) = host();
        let engine = Arc::new(build(&h, Profile::Full(Limits::full())));
        let ast = Arc::new(engine.compile(r#"fn step(n) { print(`step ${n}`); exec::run(["sh", "-c", "echo $TASK"]).stdout }"#).expect("compiles"));
        let handles: Vec<_> = (0..4)
            .map(|i| {
                let engine = engine.clone();
                let ast = ast.clone();
                std::thread::spawn(move || {
                    let ctx = CallCtx {
                        label: format!("svc{i}"),
                        env: vec![("TASK".into(), format!("task{i}"))],
                        ..CallCtx::default()
                    };
                    with_call(ctx, || {
                        engine.call_fn::<String>(&mut Scope::new(), &ast, "step", (i as i64,))
                    })
                })
            })
            .collect();
        for (i, h) in handles.into_iter().enumerate() {
            assert_eq!(h.join().expect("thread").expect("step ok"), format!("task{i}\n"));
        }
        let events = rec.0.locked();
        for i in 0..4 {
            assert!(events.contains(&(format!("svc{i}"), format!("step {i}"))), "{events:?}");
            assert!(
                events
                    .iter()
                    .any(|(l, t)| l == &format!("svc{i}") && t.contains(&format!("task{i}"))),
                "{events:?}"
            );
        }
    }

    #[test]
    fn cancel_from_another_thread_stops_script_and_child() {
        let (h, _) = host();
        let engine = build(&h, Profile::Full(Limits::full()));
        let token = CancelToken::new();
        let t2 = token.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            t2.cancel();
        });
        let start = std::time::Instant::now();
        let ctx = CallCtx { cancel: token, ..CallCtx::default() };
        let err = with_call(ctx, || engine.run(r#"exec::run(["sleep", "100"]);"#))
            .expect_err("cancelled");
        assert!(matches!(stop_of(&err), Some(Stop::Cancelled)), "{err}");
        assert!(start.elapsed() < Duration::from_secs(10));

        // A busy loop is stopped by on_progress, a sleep by the token.
        let token = CancelToken::new();
        token.cancel();
        let ctx = CallCtx { cancel: token, ..CallCtx::default() };
        let err = with_call(ctx.clone(), || engine.run("loop {}")).expect_err("cancelled loop");
        assert!(matches!(stop_of(&err), Some(Stop::Cancelled)));
        let err = with_call(ctx, || engine.run("time::sleep(100)")).expect_err("cancelled sleep");
        assert!(matches!(stop_of(&err), Some(Stop::Cancelled)));
    }

    #[test]
    fn deadline_stops_a_sleep() {
        let (h, _) = host();
        let engine = build(&h, Profile::Full(Limits::full()));
        let ctx = CallCtx {
            deadline: Some(Deadline::after(Duration::from_millis(200))),
            ..CallCtx::default()
        };
        let err = with_call(ctx, || engine.run("time::sleep(100)")).expect_err("timed out");
        assert!(
            matches!(stop_of(&err), Some(Stop::TimedOut(d)) if d == Duration::from_millis(200)),
            "{err}"
        );
    }

    #[test]
    fn optimizer_never_runs_api_calls_at_compile_time() {
        let (h, rec) = host();
        let engine = build(&h, Profile::Full(Limits::full()));
        let _ast = engine
            .compile(r#"if false { log::info("compiled"); } log::info("x");"#)
            .expect("compiles");
        assert!(rec.0.locked().is_empty());
    }
}
