//! `exec::` — run commands. Argv arrays only; a shell string runs only through `exec::sh`.
//! Every child goes through [`crate::process`]: own process group, drained and streamed output,
//! a tail for errors, the call's cancel token and deadline. Under `--dry-run`, `run` and `sh`
//! record what they would run and return an empty success.

use std::sync::Arc;

use rhai::{Array, Dynamic, Map, Module, NativeCallContext};

use super::{
    Opts, RResult, check_live, command_result, func, process_err, rt, sandbox, string_array,
};
use crate::process::{self, Command, display_argv};
use crate::script::{Event, Host};

const RUN_OPTS: &[&str] = &["dir", "env", "timeout", "check", "stdin", "stream"];

pub(crate) fn module(host: &Arc<Host>) -> Module {
    let mut m = Module::new();
    let h = host.clone();
    func!(
        &mut m,
        "run",
        ["argv: Array", "Map"],
        r#"
Run a command given as an argv array and wait for it. Returns `#{ code, stdout, stderr }`.
A non-zero exit raises an error naming the command, its exit code and the last lines of
stderr, unless `check: false`. Options: `dir` (inside the project), `env` (map), `timeout`
(seconds), `check` (default true), `stdin` (string), `stream` (default true; `false` only
captures the output, for a command whose output is data such as `--format json`).

```rhai
let r = exec::run(["git", "rev-parse", "HEAD"]);
let sha = r.stdout;
sha.trim();          // Rhai's `trim` changes the string in place and returns ()
print(sha);
```"#,
        move |ctx: NativeCallContext, argv: Array| run(&h, &ctx, "exec::run", argv, Map::new())
    );
    let h = host.clone();
    func!(
        &mut m,
        "run",
        ["argv: Array", "options: Map", "Map"],
        r#"
Run a command with options (see `run(argv)`).

```rhai
let r = exec::run(["docker", "build", "."], #{ dir: "services/api", timeout: 600 });
let probe = exec::run(["false"], #{ check: false });
if probe.code != 0 { log::warn("probe failed"); }
let quiet = exec::run(["echo", "{}"], #{ stream: false });   // captured, not shown
```"#,
        move |ctx: NativeCallContext, argv: Array, opts: Map| run(
            &h,
            &ctx,
            "exec::run",
            argv,
            opts
        )
    );
    let h = host.clone();
    func!(
        &mut m,
        "sh",
        ["script: String", "Map"],
        r#"
Run a shell command line with `sh -c`. Only for pipelines and redirections you really need:
prefer `exec::run` with an argv array, which cannot be broken by quoting.

```rhai
let r = exec::sh("git log --oneline | head -n 5");
```"#,
        move |ctx: NativeCallContext, script: &str| {
            run(&h, &ctx, "exec::sh", vec!["sh".into(), "-c".into(), script.into()], Map::new())
        }
    );
    let h = host.clone();
    func!(
        &mut m,
        "sh",
        ["script: String", "options: Map", "Map"],
        r#"
Run a shell command line with options (same as `exec::run`).

```rhai
exec::sh("make -j4 > build.log", #{ dir: "native", timeout: 300 });
```"#,
        move |ctx: NativeCallContext, script: &str, opts: Map| {
            run(&h, &ctx, "exec::sh", vec!["sh".into(), "-c".into(), script.into()], opts)
        }
    );
    func!(
        &mut m,
        "which",
        ["name: String", "?"],
        r#"
The full path of a program on `PATH`, or `()` when it is not installed.

```rhai
if exec::which("docker") == () { throw "docker is required"; }
```"#,
        |name: &str| -> Dynamic {
            process::which(name).map_or(Dynamic::UNIT, |p| p.display().to_string().into())
        }
    );
    m
}

fn run(
    host: &Arc<Host>,
    ctx: &NativeCallContext,
    name: &str,
    argv: Array,
    opts: Map,
) -> RResult<Map> {
    let call = check_live(ctx)?;
    let opts = Opts::new(ctx, name, opts, RUN_OPTS)?;
    let argv = string_array(ctx, argv, "the argv")?;
    if argv.is_empty() {
        return Err(rt(
            ctx,
            format!("`{name}` needs a non-empty argv array, e.g. `[\"echo\", \"hi\"]`"),
        ));
    }
    let check = opts.bool(ctx, "check")?.unwrap_or(true);
    let dir = match opts.str(ctx, "dir")? {
        Some(d) => sandbox(host, &call, &d).map_err(|e| rt(ctx, e))?,
        None => sandbox(host, &call, ".").map_err(|e| rt(ctx, e))?,
    };
    let env = opts.string_map(ctx, "env")?;
    if host.dry_run {
        let mut detail = display_argv(&argv);
        let root = host.root.canonicalize().unwrap_or_else(|_| host.root.clone());
        let rel = crate::script::display_path(&dir, &root);
        if !rel.is_empty() {
            detail = format!("{detail}  (in {rel})");
        }
        host.emit(Event::DryRun { call: name, detail: &detail });
        return Ok(command_result(0, String::new(), String::new()));
    }
    // `-vv`: each command's argv, directory and environment names, then its exit and time.
    let traced = (host.verbose >= 2).then(|| trace(host, &argv, &dir, &call.env, &env));
    let label = call.label.clone();
    let sink = host.sink.clone();
    let mut cmd = Command::new(argv)
        .dir(dir)
        .envs(call.env.iter().cloned())
        .envs(env)
        .timeout(opts.secs(ctx, "timeout")?)
        .cancel(call.cancel.clone());
    if opts.bool(ctx, "stream")?.unwrap_or(true) {
        cmd = cmd.on_line(Arc::new(move |stream, line| {
            sink.event(&label, Event::Line { stream, line });
        }));
    }
    if let Some(d) = call.deadline {
        cmd = cmd.deadline(d.at, d.after);
    }
    if let Some(input) = opts.str(ctx, "stdin")? {
        cmd = cmd.stdin(input);
    }
    let started = std::time::Instant::now();
    let result = cmd.run();
    if let Some(name) = traced {
        let how = match &result {
            Ok(o) => o.code.map_or("was killed".to_string(), |c| format!("exited {c}")),
            Err(_) => "did not finish".to_string(),
        };
        let took = process::secs(started.elapsed());
        host.emit(Event::Debug(&format!("`{name}` {how} after {took}")));
    }
    let out = result.map_err(|e| process_err(ctx, &call, e))?;
    let code = out.code.map_or(-1, i64::from);
    if check && !out.success() {
        let err = out.check().expect_err("non-zero exit is an error");
        return Err(rt(ctx, err.to_string()));
    }
    Ok(command_result(code, out.stdout, out.stderr))
}

/// The `-vv` line of a command about to run; returns the program name for its exit line.
fn trace(
    host: &Host,
    argv: &[String],
    dir: &std::path::Path,
    call_env: &[(String, String)],
    env: &[(String, String)],
) -> String {
    let root = host.root.canonicalize().unwrap_or_else(|_| host.root.clone());
    let rel = crate::script::display_path(dir, &root);
    let names: Vec<&str> = call_env.iter().chain(env).map(|(k, _)| k.as_str()).collect();
    host.emit(Event::Debug(&format!(
        "$ {}  (in {}; env: {})",
        display_argv(argv),
        if rel.is_empty() { "." } else { &rel },
        if names.is_empty() { "-".to_string() } else { names.join(", ") }
    )));
    argv[0].clone()
}
