//! The native script API: one namespace per file, each exposing `module(host) -> Module`, plus
//! the helpers they share — errors positioned at the call site, option-map checking with
//! "did you mean", and the project-root sandbox for paths.
//!
//! Every function is registered with a doc comment carrying a small rhai example; `pilum api`
//! and the `.d.rhai` definitions are built from that metadata.

pub(crate) mod env;
pub(crate) mod exec;
pub(crate) mod fs;
pub(crate) mod git;
pub(crate) mod http;
pub(crate) mod json;
pub(crate) mod log;
pub(crate) mod pulumi;
pub(crate) mod regex;
pub(crate) mod shell;
pub(crate) mod time;
pub(crate) mod yaml;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rhai::{Array, Dynamic, Engine, EvalAltResult, Map, NativeCallContext};

use super::sandbox::{self, Refusal, Sandbox};
use super::{CallCtx, Host, Stop, current};
use crate::process::ProcessError;

pub(crate) type RResult<T> = Result<T, Box<EvalAltResult>>;

/// Register the namespaces of a profile as static modules (`exec::run(…)`).
pub(crate) fn register(engine: &mut Engine, host: &Arc<Host>, full: bool) {
    engine.register_static_module("json", json::module().into());
    engine.register_static_module("yaml", yaml::module().into());
    engine.register_static_module("regex", regex::module().into());
    engine.register_static_module("shell", shell::module().into());
    engine.register_static_module("log", log::module(host).into());
    engine.register_static_module("time", time::module(full).into());
    if full {
        engine.register_static_module("exec", exec::module(host).into());
        engine.register_static_module("env", env::module(host).into());
        engine.register_static_module("fs", fs::module(host).into());
        engine.register_static_module("git", git::module(host).into());
        engine.register_static_module("pulumi", pulumi::module(host).into());
        engine.register_static_module("http", http::module(host).into());
        super::extension::apply(engine, host);
    }
}

/// Turn readable doc text into Rhai doc-comment lines (`/// …`).
pub(crate) fn doc(text: &str) -> String {
    text.trim_matches('\n')
        .lines()
        .map(|l| format!("/// {l}").trim_end().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Register one documented, volatile function (never folded at compile time) in a module.
macro_rules! func {
    ($m:expr, $name:expr, [$($p:expr),* $(,)?], $doc:expr, $f:expr) => {
        rhai::FuncRegistration::new($name)
            .with_comments([$crate::script::api::doc($doc)])
            .with_params_info([$($p),*])
            .with_volatility(true)
            .set_into_module($m, $f)
    };
}
pub(crate) use func;

/// A runtime error at the API call's position (so the caret points at the call).
pub(crate) fn rt(ctx: &NativeCallContext, msg: impl Into<String>) -> Box<EvalAltResult> {
    EvalAltResult::ErrorRuntime(Dynamic::from(msg.into()), ctx.call_position()).into()
}

/// An uncatchable stop (cancel, timeout) at the call's position.
pub(crate) fn stop(ctx: &NativeCallContext, s: Stop) -> Box<EvalAltResult> {
    EvalAltResult::ErrorTerminated(Dynamic::from(s), ctx.call_position()).into()
}

/// Map a process error: a cancel or the evaluation's own deadline stops the script; anything
/// else (a command's own timeout included) is an ordinary, catchable error.
pub(crate) fn process_err(
    ctx: &NativeCallContext,
    call: &CallCtx,
    e: ProcessError,
) -> Box<EvalAltResult> {
    match e {
        ProcessError::Cancelled { .. } => stop(ctx, Stop::Cancelled),
        ProcessError::TimedOut { .. } if call.cancel.is_cancelled() => stop(ctx, Stop::Cancelled),
        ProcessError::TimedOut { after, .. }
            if call.deadline.is_some_and(|d| d.passed() && d.after == after) =>
        {
            stop(ctx, Stop::TimedOut(after))
        }
        other => rt(ctx, other.to_string()),
    }
}

/// Fail if the current call was cancelled or ran out of time (checked before slow work).
pub(crate) fn check_live(ctx: &NativeCallContext) -> RResult<Arc<CallCtx>> {
    let call = current();
    if call.cancel.is_cancelled() {
        return Err(stop(ctx, Stop::Cancelled));
    }
    if let Some(d) = call.deadline
        && d.passed()
    {
        return Err(stop(ctx, Stop::TimedOut(d.after)));
    }
    Ok(call)
}

/// Options given as a map: checked against the allowed keys, read with typed getters.
pub(crate) struct Opts<'a> {
    map: Map,
    func: &'a str,
}

impl<'a> Opts<'a> {
    pub(crate) fn new(
        ctx: &NativeCallContext,
        func: &'a str,
        map: Map,
        allowed: &[&str],
    ) -> RResult<Self> {
        for k in map.keys() {
            if !allowed.contains(&k.as_str()) {
                let mut msg = format!("unknown option `{k}` for `{func}`");
                if let Some(s) = crate::diagnostic::closest(k, allowed.iter().copied()) {
                    msg.push_str(&format!("\nhelp: did you mean `{s}`?"));
                } else {
                    msg.push_str(&format!(
                        "\nhelp: `{func}` accepts {}",
                        allowed.iter().map(|a| format!("`{a}`")).collect::<Vec<_>>().join(", ")
                    ));
                }
                return Err(rt(ctx, msg));
            }
        }
        Ok(Self { map, func })
    }

    fn bad(
        &self,
        ctx: &NativeCallContext,
        key: &str,
        want: &str,
        got: &Dynamic,
    ) -> Box<EvalAltResult> {
        rt(
            ctx,
            format!("option `{key}` of `{}` must be {want}, not {}", self.func, got.type_name()),
        )
    }

    pub(crate) fn str(&self, ctx: &NativeCallContext, key: &str) -> RResult<Option<String>> {
        match self.map.get(key) {
            None => Ok(None),
            Some(v) if v.is_unit() => Ok(None),
            Some(v) if v.is_string() => Ok(Some(v.clone().into_string().unwrap_or_default())),
            Some(v) => Err(self.bad(ctx, key, "a string", v)),
        }
    }

    pub(crate) fn bool(&self, ctx: &NativeCallContext, key: &str) -> RResult<Option<bool>> {
        match self.map.get(key) {
            None => Ok(None),
            Some(v) if v.is_unit() => Ok(None),
            Some(v) => v.as_bool().map(Some).map_err(|_| self.bad(ctx, key, "true or false", v)),
        }
    }

    /// Seconds as an int or a float.
    pub(crate) fn secs(&self, ctx: &NativeCallContext, key: &str) -> RResult<Option<Duration>> {
        match self.map.get(key) {
            None => Ok(None),
            Some(v) if v.is_unit() => Ok(None),
            Some(v) => {
                let s = v
                    .as_int()
                    .map(|i| i as f64)
                    .or_else(|_| v.as_float())
                    .map_err(|_| self.bad(ctx, key, "a number of seconds", v))?;
                if !(s > 0.0 && s.is_finite()) {
                    return Err(rt(
                        ctx,
                        format!(
                            "option `{key}` of `{}` must be a positive number of seconds",
                            self.func
                        ),
                    ));
                }
                Duration::try_from_secs_f64(s)
                    .ok()
                    .filter(|d| *d <= super::FAR_FUTURE)
                    .map(Some)
                    .ok_or_else(|| {
                        rt(ctx, format!("option `{key}` of `{}` is too large", self.func))
                    })
            }
        }
    }

    pub(crate) fn strings(&self, ctx: &NativeCallContext, key: &str) -> RResult<Vec<String>> {
        match self.map.get(key) {
            None => Ok(Vec::new()),
            Some(v) if v.is_unit() => Ok(Vec::new()),
            Some(v) if v.is_string() => Ok(vec![v.clone().into_string().unwrap_or_default()]),
            Some(v) if v.is_array() => {
                let arr = v.clone().into_array().unwrap_or_default();
                string_array(ctx, arr, &format!("option `{key}` of `{}`", self.func))
            }
            Some(v) => Err(self.bad(ctx, key, "an array of strings", v)),
        }
    }

    /// A map of string values (numbers and bools are turned into strings).
    pub(crate) fn string_map(
        &self,
        ctx: &NativeCallContext,
        key: &str,
    ) -> RResult<Vec<(String, String)>> {
        match self.map.get(key) {
            None => Ok(Vec::new()),
            Some(v) if v.is_unit() => Ok(Vec::new()),
            Some(v) if v.is_map() => {
                let m = v.clone().cast::<Map>();
                let mut out = Vec::new();
                for (k, v) in m {
                    out.push((k.to_string(), scalar_string(ctx, &v, &format!("`{key}.{k}`"))?));
                }
                Ok(out)
            }
            Some(v) => Err(self.bad(ctx, key, "a map", v)),
        }
    }
}

/// A string, number or bool as text (for argv, env and config values).
pub(crate) fn scalar_string(ctx: &NativeCallContext, v: &Dynamic, what: &str) -> RResult<String> {
    if v.is_string() || v.is_int() || v.is_float() || v.is_bool() || v.is_char() {
        Ok(v.to_string())
    } else {
        Err(rt(ctx, format!("{what} must be a string, number or bool, not {}", v.type_name())))
    }
}

/// An array whose items are strings (numbers and bools are converted).
pub(crate) fn string_array(
    ctx: &NativeCallContext,
    arr: Array,
    what: &str,
) -> RResult<Vec<String>> {
    arr.iter()
        .enumerate()
        .map(|(i, v)| scalar_string(ctx, v, &format!("item {i} of {what}")))
        .collect()
}

/// The sandbox of the run and the lexical form of a script-supplied path: relative paths start
/// at the call's working directory (the project root unless the orchestrator set one);
/// absolute paths are accepted only inside the root and `..` may not leave it. Files are then
/// opened through [`Sandbox`], which follows symlinks only while they stay inside.
pub(crate) fn confine(
    host: &Host,
    call: &CallCtx,
    path: &str,
) -> Result<(Sandbox, PathBuf), String> {
    let sb = host.jail.get_or_init(|| Sandbox::new(&host.root)).clone();
    let base = call.workdir.clone().unwrap_or_default();
    let full = sb.lexical(&base, path).map_err(|why| refused(&sb, path, &why))?;
    Ok((sb, full))
}

/// A path handed on to someone else (a command's directory, a file for a CLI): confined, and
/// whatever of it exists stays inside the root, symlinks included.
pub(crate) fn sandbox(host: &Host, call: &CallCtx, path: &str) -> Result<PathBuf, String> {
    let (sb, full) = confine(host, call, path)?;
    sb.check(&full).map_err(|e| fs_error(&sb, "use", path, e))?;
    Ok(full)
}

fn refused(sb: &Sandbox, path: &str, why: &Refusal) -> String {
    format!(
        "path `{path}` is refused: {why}\nhelp: scripts may only touch files inside the project root `{}`",
        sb.root().display()
    )
}

/// The message for a failed sandboxed file operation (`what`: "read", "write"…).
pub(crate) fn fs_error(sb: &Sandbox, what: &str, path: &str, e: sandbox::Error) -> String {
    match e {
        sandbox::Error::Refused(why) => refused(sb, path, &why),
        sandbox::Error::Io(e) => {
            let help = match e.kind() {
                std::io::ErrorKind::NotFound => "\nhelp: paths are relative to the project root",
                _ => "",
            };
            format!("cannot {what} `{path}`: {}{help}", e.to_string().to_lowercase())
        }
    }
}

/// A result map of a command: `#{ code, stdout, stderr }`.
pub(crate) fn command_result(code: i64, stdout: String, stderr: String) -> Map {
    let mut m = Map::new();
    m.insert("code".into(), code.into());
    m.insert("stdout".into(), stdout.into());
    m.insert("stderr".into(), stderr.into());
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::script::NullSink;

    #[test]
    fn sandbox_confines_paths_to_the_root() {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().canonicalize().expect("canonical");
        std::fs::create_dir_all(root.join("a/b")).expect("mkdir");
        let host = Host::new(&root, Arc::new(NullSink));
        let call = CallCtx { workdir: Some("a".into()), ..CallCtx::default() };
        assert_eq!(sandbox(&host, &call, "b/../c.txt"), Ok(root.join("a/c.txt")));
        assert_eq!(sandbox(&host, &call, "../x"), Ok(root.join("x")));
        assert_eq!(
            sandbox(&host, &call, root.join("a/b").to_str().expect("utf-8")),
            Ok(root.join("a/b"))
        );
        assert!(
            sandbox(&host, &call, "../../x")
                .expect_err("escape")
                .contains("leaves the project root")
        );
        assert!(
            sandbox(&host, &call, "/etc/passwd")
                .expect_err("absolute")
                .contains("outside the project")
        );
    }
}
