//! Scaling strategies: Rhai scripts with one function, `decide(ctx)`, compiled once and called
//! per decision in the engine's strict strategy profile (no process, file or network API, a
//! small operation budget).
//!
//! `ctx` is a map: `pool` (`name`, `min`, `max`, `max_step`, `params`), `current`, `signals`
//! (an array of maps: `kind` = `level`|`intent`, `source`, `name`, `action`, `step`, `value`,
//! `metric`, `threshold`, `since`, `merged`), `schedule_floor` (the highest value of the open
//! schedule windows, or `()`) and `history` (recent decisions: `at`, `from`,
//! `to`, `reason`). The function returns `#{ desired: n, reason: "…" }`,
//! `#{ delta: n, reason: "…" }` or `()` to hold. The core clamps whatever comes back; a script
//! can never exceed the pool's guardrails.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rhai::{AST, Dynamic, Engine, Map};

use crate::diagnostic::{Diagnostic, Problem};
use crate::script::engine::{Limits, Profile};
use crate::script::{CallCtx, Deadline, Event, Host, Sink, with_call};
use sha2::{Digest, Sha256};

/// The built-in strategies shipped in the binary, from `scripts/`.
pub(crate) use crate::embedded::STRATEGIES as BUILTINS;

/// Where a strategy's source comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    Builtin(&'static str),
    File(PathBuf),
}

/// Resolve a pool's `strategy` field against the pools file directory. An unknown name is an
/// error carrying the closest built-in name, if any is close.
pub(crate) fn resolve(base: &Path, name: &str) -> Result<Source, Option<&'static str>> {
    if let Some((n, _)) = BUILTINS.iter().find(|(n, _)| *n == name) {
        return Ok(Source::Builtin(n));
    }
    if name.ends_with(".rhai") {
        let p = if Path::new(name).is_absolute() { PathBuf::from(name) } else { base.join(name) };
        return Ok(Source::File(p));
    }
    Err(crate::diagnostic::closest(name, BUILTINS.iter().map(|(n, _)| *n)))
}

/// A kind of input a strategy can act on. A pool refuses webhooks of a kind its strategy
/// ignores (422 naming the strategy) instead of accepting what nothing will read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Input {
    /// CloudWatch alarms and Alertmanager alerts (level signals).
    Alarms,
    /// `/webhook/{pool}/delta` and `/scale` with `{"delta": n}`.
    Delta,
    /// `/webhook/{pool}/count` and `/scale` with `{"value": n}`.
    Count,
    /// The pool's `schedules:` windows.
    Schedules,
}

impl Input {
    pub(crate) const ALL: [Input; 4] =
        [Input::Alarms, Input::Delta, Input::Count, Input::Schedules];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Alarms => "alarms",
            Self::Delta => "delta",
            Self::Count => "count",
            Self::Schedules => "schedules",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|i| i.as_str() == s)
    }

    /// What a request to this input looks like, for messages.
    pub(crate) fn route(self) -> &'static str {
        match self {
            Self::Alarms => "alarms (`/cloudwatch`, `/prometheus`)",
            Self::Delta => "`/delta` requests",
            Self::Count => "`/count` requests",
            Self::Schedules => "schedules",
        }
    }
}

/// A compiled strategy.
#[derive(Clone)]
pub(crate) struct Strategy {
    /// `incremental`, or the script's path as written.
    pub name: String,
    /// The first 12 hex digits of the source's SHA-256, for the audit log.
    pub hash: String,
    /// What the strategy acts on: from its `fn inputs()`, or everything when it has none.
    pub inputs: Vec<Input>,
    ast: Arc<AST>,
    engine: Arc<Engine>,
}

impl fmt::Debug for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Strategy").field("name", &self.name).field("hash", &self.hash).finish()
    }
}

/// What a strategy asked for.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Proposal {
    Hold,
    Desired { value: i64, reason: String },
    Delta { delta: i64, reason: String },
}

/// The operation budget of one `decide` call: generous for arithmetic over a few hundred
/// signals, far too small for a runaway loop to hold up the decision loop.
pub(crate) const OPERATION_BUDGET: u64 = 200_000;

/// Wall-clock limit of one `decide` call, on top of the operation budget.
const STRATEGY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// The engine a strategy runs in: the one engine builder's strict strategy profile (no
/// process, file, env, git, Pulumi or network API) with the scaler's operation budget. `root`
/// confines module imports (the pools file's directory).
fn engine(root: &Path) -> Engine {
    let host = Arc::new(Host::new(root, Arc::new(StrategySink)));
    let limits = Limits { max_operations: OPERATION_BUDGET, ..Limits::strategy() };
    crate::script::engine::build(&host, Profile::Strategy(limits))
}

/// Strategy output (`print`, `log::…`) goes to the server log (human or JSON lines on stderr),
/// so a strategy's own notes show up there without reaching stdout.
struct StrategySink;

impl Sink for StrategySink {
    fn event(&self, label: &str, event: Event<'_>) {
        let text = match event {
            Event::Print(t) | Event::Debug(t) => t,
            Event::Log { message, .. } => message,
            _ => return,
        };
        crate::autoscale::log::current()
            .info("strategy output", &[("pool", label), ("text", text)]);
    }
}

impl Strategy {
    /// Load and compile a strategy from its source.
    pub(crate) fn load(
        source: &Source,
        display: &str,
        root: &Path,
    ) -> Result<Self, Box<Diagnostic>> {
        let (text, file) = match source {
            Source::Builtin(n) => {
                let text = BUILTINS
                    .iter()
                    .find(|(b, _)| b == n)
                    .map(|(_, t)| (*t).to_string())
                    .unwrap_or_default();
                (text, format!("scripts/{n}.rhai"))
            }
            Source::File(p) => match std::fs::read_to_string(p) {
                Ok(t) => (t, p.display().to_string()),
                Err(e) => {
                    let problem = Problem::StrategyUnreadable { error: e.to_string() };
                    return Err(Box::new(Diagnostic::of(p, problem)));
                }
            },
        };
        Self::compile(display, &file, &text, root)
    }

    /// Compile strategy text; `file` is used in errors.
    pub(crate) fn compile(
        name: &str,
        file: &str,
        text: &str,
        root: &Path,
    ) -> Result<Self, Box<Diagnostic>> {
        let engine = engine(root);
        let ast = engine.compile(text).map_err(|e| {
            let pos = e.position();
            let d = Diagnostic::of(
                file,
                Problem::StrategyDoesNotCompile { error: e.err_type().to_string() },
            );
            Box::new(match pos.line() {
                Some(l) => d.at(text, l, pos.position().unwrap_or(1)),
                None => d,
            })
        })?;
        if !ast.iter_functions().any(|f| f.name == "decide" && f.params.len() == 1) {
            return Err(Box::new(Diagnostic::of(file, Problem::StrategyNoDecide)));
        }
        let hash = crate::hex::encode(&Sha256::digest(text.as_bytes())[..6]);
        let inputs = if ast.iter_functions().any(|f| f.name == "inputs" && f.params.is_empty()) {
            declared_inputs(&engine, &ast).map_err(|(problem, suggestion)| {
                Box::new(Diagnostic::of(file, problem).suggest(suggestion))
            })?
        } else {
            Input::ALL.to_vec()
        };
        Ok(Self {
            name: name.to_string(),
            hash,
            inputs,
            ast: Arc::new(ast),
            engine: Arc::new(engine),
        })
    }

    /// Whether the strategy acts on `input`.
    pub(crate) fn accepts(&self, input: Input) -> bool {
        self.inputs.contains(&input)
    }

    /// The inputs it acts on, for messages: `alarms, schedules`.
    pub(crate) fn describe_inputs(&self) -> String {
        if self.inputs.is_empty() {
            return "none".into();
        }
        self.inputs.iter().map(|i| i.as_str()).collect::<Vec<_>>().join(", ")
    }

    /// Call `decide(ctx)`. Runs synchronously: call it from a blocking thread, never from an
    /// async task that must stay responsive.
    #[cfg(test)]
    pub(crate) fn decide(&self, ctx: &serde_json::Value) -> Result<Proposal, String> {
        self.decide_values(ctx).map(|(p, _)| p)
    }

    /// [`Strategy::decide`] with the other values a composite pool's keys may take from the
    /// strategy (`#{ desired: 5, values: #{ queue: 3 } }`).
    pub(crate) fn decide_values(
        &self,
        ctx: &serde_json::Value,
    ) -> Result<(Proposal, BTreeMap<String, i64>), String> {
        let mut scope = rhai::Scope::new();
        let call = CallCtx {
            deadline: Some(Deadline::after(STRATEGY_TIMEOUT)),
            label: ctx["pool"]["name"].as_str().unwrap_or("strategy").to_string(),
            ..CallCtx::default()
        };
        let out: Dynamic = with_call(call, || {
            self.engine.call_fn(&mut scope, &self.ast, "decide", (to_dynamic(ctx),))
        })
        .map_err(|e| e.to_string())?;
        if out.is_unit() {
            return Ok((Proposal::Hold, BTreeMap::new()));
        }
        let Some(map) = out.try_cast::<Map>() else {
            return Err(
                "`decide` must return a map (`#{ desired: n }` or `#{ delta: n }`) or `()`".into(),
            );
        };
        let reason = map.get("reason").map(std::string::ToString::to_string).unwrap_or_default();
        let int = |k: &str| -> Result<Option<i64>, String> {
            match map.get(k) {
                None => Ok(None),
                Some(v) if v.is_unit() => Ok(None),
                Some(v) => match (v.as_int(), v.as_float()) {
                    (Ok(i), _) => Ok(Some(i)),
                    // `as` would turn NaN into 0 and infinities into the extremes.
                    (_, Ok(f)) if f.is_finite() && f.abs() < 9.0e18 => Ok(Some(f.round() as i64)),
                    (_, Ok(f)) => Err(format!("`{k}` must be a finite number, got {f}")),
                    (Err(t), _) => Err(format!("`{k}` must be a number, got {t}")),
                },
            }
        };
        let mut values = BTreeMap::new();
        if let Some(v) = map.get("values").filter(|v| !v.is_unit()) {
            let m =
                v.clone().try_cast::<Map>().ok_or("`values` must be a map of name to number")?;
            for (k, v) in m {
                let n = number(&v).map_err(|e| format!("`values.{k}` {e}"))?;
                values.insert(k.to_string(), n);
            }
        }
        let proposal = match (int("desired")?, int("delta")?) {
            (Some(value), None) => Proposal::Desired { value, reason },
            (None, Some(delta)) => Proposal::Delta { delta, reason },
            (None, None) => Proposal::Hold,
            (Some(_), Some(_)) => {
                return Err("`decide` returned both `desired` and `delta`; return one".into());
            }
        };
        Ok((proposal, values))
    }
}

/// A number from a script: an integer, or a finite float rounded.
fn number(v: &Dynamic) -> Result<i64, String> {
    match (v.as_int(), v.as_float()) {
        (Ok(i), _) => Ok(i),
        (_, Ok(f)) if f.is_finite() && f.abs() < 9.0e18 => Ok(f.round() as i64),
        (_, Ok(f)) => Err(format!("must be a finite number, got {f}")),
        (Err(t), _) => Err(format!("must be a number, got {t}")),
    }
}

/// A composite pool's key expression (`expr: "value * 10 + 20"`), compiled once in the strategy
/// profile and evaluated with `value` (the pool's value after the guardrails) and `params`.
#[derive(Clone)]
pub(crate) struct Expr {
    text: String,
    ast: Arc<AST>,
    engine: Arc<Engine>,
}

impl fmt::Debug for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Expr").field(&self.text).finish()
    }
}

impl Expr {
    pub(crate) fn compile(text: &str, root: &Path) -> Result<Self, String> {
        let engine = engine(root);
        // Strict variables: the expression's names are declared for the compiler.
        let mut scope = rhai::Scope::new();
        scope.push("value", 0_i64);
        scope.push("params", Map::new());
        let ast = engine.compile_expression_with_scope(&scope, text).map_err(|e| e.to_string())?;
        Ok(Self { text: text.to_string(), ast: Arc::new(ast), engine: Arc::new(engine) })
    }

    /// Evaluate with `value` and `params`.
    pub(crate) fn eval(&self, value: i64, params: &serde_json::Value) -> Result<i64, String> {
        let mut scope = rhai::Scope::new();
        scope.push("value", value);
        scope.push("params", to_dynamic(params));
        let call = CallCtx {
            deadline: Some(Deadline::after(STRATEGY_TIMEOUT)),
            label: "expr".into(),
            ..CallCtx::default()
        };
        let out: Dynamic =
            with_call(call, || self.engine.eval_ast_with_scope(&mut scope, &self.ast))
                .map_err(|e| format!("`{}` failed: {e}", self.text))?;
        number(&out).map_err(|e| format!("`{}` {e}", self.text))
    }
}

/// Call a strategy's `fn inputs()` once, at compile time. Errors are the problem and, for an
/// unknown input, the closest known one.
fn declared_inputs(
    engine: &Engine,
    ast: &AST,
) -> Result<Vec<Input>, (Problem, Option<&'static str>)> {
    let call = CallCtx {
        deadline: Some(Deadline::after(STRATEGY_TIMEOUT)),
        label: "inputs".into(),
        ..CallCtx::default()
    };
    let out: Dynamic =
        with_call(call, || engine.call_fn(&mut rhai::Scope::new(), ast, "inputs", ()))
            .map_err(|e| (Problem::StrategyInputsFailed { error: e.to_string() }, None))?;
    let list = out.try_cast::<rhai::Array>().ok_or((Problem::StrategyInputsNotAnArray, None))?;
    let mut inputs = Vec::new();
    for v in list {
        let name = v
            .into_string()
            .map_err(|ty| (Problem::StrategyInputNotAName { ty: ty.to_string() }, None))?;
        let input = Input::parse(&name).ok_or_else(|| {
            let known = Input::ALL.map(Input::as_str);
            let suggestion = crate::diagnostic::closest(&name, known);
            (Problem::StrategyUnknownInput { name: name.clone() }, suggestion)
        })?;
        if !inputs.contains(&input) {
            inputs.push(input);
        }
    }
    inputs.sort();
    Ok(inputs)
}

/// Convert JSON into Rhai values (strategies see plain maps, arrays and numbers).
pub(crate) fn to_dynamic(v: &serde_json::Value) -> Dynamic {
    crate::script::value::to_dynamic(v).expect("JSON values have string keys")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn builtin(name: &'static str) -> Strategy {
        Strategy::load(&Source::Builtin(name), name, Path::new(".")).expect("built-in compiles")
    }

    fn sig(kind: &str, action: &str, step: i64, value: Option<i64>) -> serde_json::Value {
        json!({"kind": kind, "source": "test", "name": "a", "action": action, "step": step, "value": value, "metric": null, "since": 0})
    }

    fn ctx(current: i64, signals: Vec<serde_json::Value>) -> serde_json::Value {
        let floor = signals
            .iter()
            .filter(|s| s["source"] == "schedule")
            .filter_map(|s| s["value"].as_i64())
            .max();
        json!({"pool": {"name": "p", "min": 0, "max": 10, "max_step": null, "params": {}}, "current": current, "signals": signals, "schedule_floor": floor, "history": []})
    }

    fn schedule(name: &str, value: i64) -> serde_json::Value {
        json!({"kind": "level", "source": "schedule", "name": name, "action": "set", "step": 0, "value": value, "metric": null, "since": 0})
    }

    #[test]
    fn schedule_floor_raises_to_the_highest_open_window_and_never_lowers() {
        let s = builtin("schedule-floor");
        let p = s.decide(&ctx(2, vec![schedule("office", 6), schedule("batch", 8)]));
        assert!(
            matches!(&p, Ok(Proposal::Desired { value: 8, reason }) if reason.contains("batch")),
            "{p:?}"
        );
        let p = s.decide(&ctx(9, vec![schedule("office", 6)]));
        assert!(matches!(p, Ok(Proposal::Desired { value: 9, .. })), "{p:?}");
        // No open window: no decision, whatever else is active.
        assert_eq!(s.decide(&ctx(9, vec![sig("level", "down", 3, None)])), Ok(Proposal::Hold));
    }

    #[test]
    fn other_builtins_keep_the_schedule_floor() {
        let inc = builtin("incremental");
        // Alone, the window lifts the value; an alarm asking for more still wins.
        let p = inc.decide(&ctx(2, vec![schedule("office", 5)]));
        assert!(matches!(p, Ok(Proposal::Desired { value: 5, .. })), "{p:?}");
        let p = inc.decide(&ctx(5, vec![schedule("office", 5), sig("level", "up", 2, None)]));
        assert!(matches!(p, Ok(Proposal::Delta { delta: 2, .. })), "{p:?}");
        let p = inc.decide(&ctx(5, vec![schedule("office", 5), sig("level", "down", 2, None)]));
        assert!(
            matches!(p, Ok(Proposal::Desired { value: 5, .. })),
            "a down step stops at the floor: {p:?}"
        );
        assert_eq!(inc.decide(&ctx(7, vec![schedule("office", 5)])), Ok(Proposal::Hold));

        let step = builtin("step");
        let mut c = ctx(3, vec![schedule("office", 6)]);
        c["pool"]["params"] = json!({"steps": [{"lower": 0, "adjustment": 1}]});
        assert!(matches!(step.decide(&c), Ok(Proposal::Desired { value: 6, .. })));
        c["current"] = json!(8);
        assert_eq!(step.decide(&c), Ok(Proposal::Hold), "a floor below current is no capacity");

        let tt = builtin("target-tracking");
        let mut c = ctx(
            4,
            vec![
                schedule("office", 6),
                json!({"kind": "level", "source": "cloudwatch", "name": "cpu", "action": "up", "step": 0, "value": null, "metric": 30.0, "since": 0}),
            ],
        );
        c["pool"]["params"] = json!({"target": 60});
        assert!(
            matches!(tt.decide(&c), Ok(Proposal::Desired { value: 6, .. })),
            "{:?}",
            tt.decide(&c)
        );

        let abs = builtin("absolute");
        let p = abs.decide(&ctx(9, vec![schedule("office", 6)]));
        assert!(
            matches!(p, Ok(Proposal::Desired { value: 6, .. })),
            "absolute runs at the value: {p:?}"
        );
    }

    #[test]
    fn incremental_takes_the_largest_up_step_over_downs() {
        let s = builtin("incremental");
        let p = s.decide(&ctx(
            3,
            vec![
                sig("level", "up", 2, None),
                sig("level", "up", 1, None),
                sig("level", "down", 3, None),
            ],
        ));
        assert!(matches!(p, Ok(Proposal::Delta { delta: 2, .. })), "{p:?}");
    }

    #[test]
    fn incremental_sums_intents_and_holds_without_signals() {
        let s = builtin("incremental");
        let p = s.decide(&ctx(
            3,
            vec![
                sig("intent", "up", 1, None),
                sig("intent", "up", 1, None),
                sig("intent", "down", 1, None),
            ],
        ));
        assert!(matches!(p, Ok(Proposal::Delta { delta: 1, .. })), "{p:?}");
        assert_eq!(s.decide(&ctx(3, vec![])), Ok(Proposal::Hold));
    }

    #[test]
    fn absolute_takes_the_largest_value() {
        let s = builtin("absolute");
        let p = s.decide(&ctx(
            3,
            vec![sig("level", "set", 0, Some(4)), sig("level", "set", 0, Some(7))],
        ));
        assert!(matches!(p, Ok(Proposal::Desired { value: 7, .. })), "{p:?}");
    }

    #[test]
    fn target_tracking_follows_the_metric_with_tolerance() {
        let s = builtin("target-tracking");
        let with = |metric: f64, target: i64| {
            let mut c = ctx(
                4,
                vec![
                    json!({"kind": "level", "source": "cloudwatch", "name": "cpu", "action": "up", "step": 0, "value": null, "metric": metric, "since": 0}),
                ],
            );
            c["pool"]["params"] = json!({"target": target});
            s.decide(&c)
        };
        assert!(
            matches!(with(90.0, 60), Ok(Proposal::Desired { value: 6, .. })),
            "{:?}",
            with(90.0, 60)
        );
        assert!(matches!(with(30.0, 60), Ok(Proposal::Desired { value: 2, .. })));
        assert_eq!(with(63.0, 60), Ok(Proposal::Hold));
        let mut no_target = ctx(4, vec![]);
        no_target["pool"]["params"] = json!({});
        assert!(s.decide(&no_target).unwrap_err().contains("params"));
    }

    #[test]
    fn step_scaling_matches_breach_bounds_and_adjustment_types() {
        let s = builtin("step");
        let run = |metric: f64, params: serde_json::Value| {
            let mut c = ctx(
                10,
                vec![
                    json!({"kind": "level", "source": "cloudwatch", "name": "cpu", "action": "up", "step": 1, "value": null, "metric": metric, "threshold": 80.0, "since": 0}),
                ],
            );
            c["pool"]["params"] = params;
            s.decide(&c)
        };
        let steps = json!([{"lower": 0, "upper": 10, "adjustment": 1}, {"lower": 10, "adjustment": 3},
                           {"upper": 0, "lower": -20, "adjustment": -1}, {"upper": -20, "adjustment": -2}]);
        let p = |metric| run(metric, json!({"steps": steps}));
        assert!(matches!(p(85.0), Ok(Proposal::Desired { value: 11, .. })), "{:?}", p(85.0));
        assert!(
            matches!(p(90.0), Ok(Proposal::Desired { value: 13, .. })),
            "upper bound is exclusive above"
        );
        assert!(matches!(p(70.0), Ok(Proposal::Desired { value: 9, .. })));
        assert!(matches!(p(61.0), Ok(Proposal::Desired { value: 9, .. })));
        assert!(
            matches!(p(60.0), Ok(Proposal::Desired { value: 8, .. })),
            "upper bound is inclusive below"
        );
        assert!(matches!(p(50.0), Ok(Proposal::Desired { value: 8, .. })));
        let pct = run(
            95.0,
            json!({"adjustment_type": "PercentChangeInCapacity", "min_adjustment_magnitude": 2,
                                   "steps": [{"lower": 0, "adjustment": 15}]}),
        );
        assert!(matches!(pct, Ok(Proposal::Desired { value: 12, .. })), "{pct:?}");
        let exact = run(
            95.0,
            json!({"adjustment_type": "ExactCapacity", "steps": [{"lower": 0, "adjustment": 4}]}),
        );
        assert!(matches!(exact, Ok(Proposal::Desired { value: 4, .. })));
        let gap = run(
            95.0,
            json!({"steps": [{"lower": 0, "upper": 5, "adjustment": 1}, {"lower": 10, "adjustment": 2}]}),
        );
        assert!(gap.unwrap_err().contains("contiguous"));
    }

    #[test]
    fn runaway_script_hits_the_budget() {
        let s =
            Strategy::compile("loop", "loop.rhai", "fn decide(ctx) { loop { } }", Path::new("."))
                .expect("compiles");
        let err = s.decide(&ctx(1, vec![])).unwrap_err();
        assert!(err.contains("operations"), "{err}");
    }

    #[test]
    fn syntax_error_has_a_location() {
        let e = Strategy::compile(
            "bad",
            "bad.rhai",
            "fn decide(ctx) {\n  let x = ;\n}",
            Path::new("."),
        )
        .unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.to_string().contains("--> bad.rhai:2:"), "{e}");
        assert!(e.to_string().contains("does not compile"), "{e}");
    }

    #[test]
    fn no_file_or_process_api() {
        for body in [
            "exec::run([\"ls\"])",
            "fs::read(\"/etc/passwd\")",
            "pulumi::config_get(\"k\")",
            "env::get(\"HOME\")",
        ] {
            let src = format!("fn decide(ctx) {{ {body}; () }}");
            let err = match Strategy::compile("x", "x.rhai", &src, Path::new(".")) {
                Ok(s) => s.decide(&ctx(1, vec![])).unwrap_err(),
                Err(e) => e.to_string(),
            };
            assert!(err.contains("Undefined module") || err.contains("not found"), "{body}: {err}");
        }
        // The pure helpers are there.
        let s = Strategy::compile(
            "j",
            "j.rhai",
            "fn decide(ctx) { #{ desired: json::parse(\"3\") } }",
            Path::new("."),
        )
        .expect("compiles");
        assert!(matches!(s.decide(&ctx(1, vec![])), Ok(Proposal::Desired { value: 3, .. })));
    }
}
