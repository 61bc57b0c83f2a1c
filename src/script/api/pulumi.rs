//! `pulumi::` — the Pulumi CLI through [`crate::pulumi`] (argv exactly as `REFERENCE.md`).
//! Options map: `#{ stack, cwd, config_file, targets, target_dependents, message, path, secret,
//! diff, expect_no_changes, force }` as applicable; `cwd` and `config_file` are project paths.
//! `config_set*`, `up` and `config_refresh` are mutating (recorded under `--dry-run`);
//! `config_get`, `preview`, `refresh_preview` and `outputs` always run.

use std::collections::BTreeMap;
use std::sync::Arc;

use rhai::{Dynamic, Map, Module, NativeCallContext};

use super::{
    Opts, RResult, check_live, command_result, func, process_err, rt, sandbox, scalar_string,
};
use crate::process::{Finished, display_argv};
use crate::pulumi::{self as p, PulumiError};
use crate::script::{CallCtx, Event, Host};

/// A JSON object from the Pulumi CLI as a map (anything else as an empty map).
fn to_map(v: &serde_json::Value) -> Map {
    crate::script::value::to_dynamic(v)
        .ok()
        .and_then(rhai::Dynamic::try_cast::<Map>)
        .unwrap_or_default()
}

const ALL: &[&str] = &[
    "stack",
    "cwd",
    "config_file",
    "targets",
    "target_dependents",
    "message",
    "path",
    "secret",
    "diff",
    "expect_no_changes",
    "force",
];

struct Cx {
    call: Arc<CallCtx>,
    opts: p::Opts,
    force: bool,
}

fn opts(host: &Host, ctx: &NativeCallContext, name: &str, map: Map) -> RResult<Cx> {
    let call = check_live(ctx)?;
    let o = Opts::new(ctx, name, map, ALL)?;
    let path = |v: Option<String>| -> RResult<Option<std::path::PathBuf>> {
        v.map(|s| sandbox(host, &call, &s).map_err(|e| rt(ctx, e))).transpose()
    };
    let opts = p::Opts {
        cwd: path(o.str(ctx, "cwd")?)?,
        stack: o.str(ctx, "stack")?,
        config_file: path(o.str(ctx, "config_file")?)?,
        targets: o.strings(ctx, "targets")?,
        target_dependents: o.bool(ctx, "target_dependents")?.unwrap_or(false),
        message: o.str(ctx, "message")?,
        path: o.bool(ctx, "path")?.unwrap_or(false),
        secret: o.bool(ctx, "secret")?.unwrap_or(false),
        diff: o.bool(ctx, "diff")?.unwrap_or(false),
        expect_no_changes: o.bool(ctx, "expect_no_changes")?.unwrap_or(false),
    };
    Ok(Cx { call, opts, force: o.bool(ctx, "force")?.unwrap_or(false) })
}

fn command(host: &Arc<Host>, call: &CallCtx, argv: Vec<String>) -> crate::process::Command {
    let label = call.label.clone();
    let sink = host.sink.clone();
    let root = host.root.clone();
    let mut cmd = p::command(argv)
        .dir(call.workdir.as_ref().map_or(root.clone(), |w| root.join(w)))
        .envs(call.env.iter().cloned())
        .cancel(call.cancel.clone())
        .on_line(Arc::new(move |stream, line| sink.event(&label, Event::Line { stream, line })));
    if let Some(d) = call.deadline {
        cmd = cmd.deadline(d.at, d.after);
    }
    cmd
}

fn run(host: &Arc<Host>, ctx: &NativeCallContext, cx: &Cx, argv: Vec<String>) -> RResult<Finished> {
    p::run_checked(command(host, &cx.call, argv)).map_err(|e| err(ctx, &cx.call, e))
}

fn err(ctx: &NativeCallContext, call: &CallCtx, e: PulumiError) -> Box<rhai::EvalAltResult> {
    match e {
        PulumiError::Process(pe) => process_err(ctx, call, pe),
        other => rt(ctx, other.to_string()),
    }
}

/// Record a mutating call under `--dry-run`; `true` when recorded.
fn dry(host: &Host, name: &str, argv: &[String]) -> bool {
    if host.dry_run {
        host.emit(Event::DryRun { call: name, detail: &display_argv(argv) });
    }
    host.dry_run
}

fn values(ctx: &NativeCallContext, m: Map) -> RResult<BTreeMap<String, String>> {
    m.into_iter()
        .map(|(k, v)| Ok((k.to_string(), scalar_string(ctx, &v, &format!("config value `{k}`"))?)))
        .collect()
}

pub(crate) fn module(host: &Arc<Host>) -> Module {
    let mut m = Module::new();

    let h = host.clone();
    func!(
        &mut m,
        "config_get",
        ["key: String", "options: Map", "?"],
        r#"
A stack config value (`pulumi config get <key> --json`), or `()` when the key is not set.
Secret values are registered for redaction.

```rhai
let n = pulumi::config_get("web:replicas", #{ stack: "prod", cwd: "infra" });
```"#,
        move |ctx: NativeCallContext, key: &str, o: Map| -> RResult<Dynamic> {
            let cx = opts(&h, &ctx, "pulumi::config_get", o)?;
            let argv = p::config_get_argv(key, &cx.opts);
            let out =
                command(&h, &cx.call, argv).run().map_err(|e| process_err(&ctx, &cx.call, e))?;
            if !out.success() {
                if p::is_missing_key(&out.stderr) {
                    return Ok(Dynamic::UNIT);
                }
                return Err(rt(&ctx, out.check().expect_err("failed").to_string()));
            }
            let v = p::parse_config_get(&out.stdout).map_err(|e| rt(&ctx, e.to_string()))?;
            if v.secret {
                crate::redact::register(&v.value);
            }
            Ok(v.value.into())
        }
    );

    let h = host.clone();
    func!(
        &mut m,
        "config_set",
        ["key: String", "value: ?", "options: Map", "()"],
        r#"
Set a stack config value (`pulumi config set <key> <value> --plaintext`, or `--secret` with
`secret: true`). Recorded under `--dry-run`.

```rhai
pulumi::config_set("web:replicas", 4, #{ stack: "prod", cwd: "infra" });
```"#,
        move |ctx: NativeCallContext, key: &str, value: Dynamic, o: Map| -> RResult<()> {
            let cx = opts(&h, &ctx, "pulumi::config_set", o)?;
            let value = scalar_string(&ctx, &value, "the config value")?;
            if cx.opts.secret {
                crate::redact::register(&value);
            }
            let argv = p::config_set_argv(key, &value, &cx.opts);
            if dry(&h, "pulumi::config_set", &argv) {
                return Ok(());
            }
            run(&h, &ctx, &cx, argv).map(|_| ())
        }
    );

    let h = host.clone();
    func!(
        &mut m,
        "config_set_all",
        ["values: Map", "options: Map", "()"],
        r#"
Set several plaintext values in one command (`pulumi config set-all --plaintext k=v …`).
Recorded under `--dry-run`.

```rhai
pulumi::config_set_all(#{ "web:replicas": 4, "web:cpu": "512" }, #{ stack: "prod" });
```"#,
        move |ctx: NativeCallContext, vals: Map, o: Map| -> RResult<()> {
            let cx = opts(&h, &ctx, "pulumi::config_set_all", o)?;
            let argv = p::config_set_all_argv(&values(&ctx, vals)?, &cx.opts);
            if dry(&h, "pulumi::config_set_all", &argv) {
                return Ok(());
            }
            run(&h, &ctx, &cx, argv).map(|_| ())
        }
    );

    let h = host.clone();
    func!(
        &mut m,
        "up",
        ["options: Map", "Map"],
        r#"
`pulumi up --yes --skip-preview` with `targets`, `target_dependents` and `message`. Returns
`#{ code, stdout, stderr }`; a failure is an error (a lock conflict says so). Recorded under
`--dry-run`.

```rhai
pulumi::up(#{ stack: "prod", cwd: "infra", targets: [urn], message: "scale web to 4" });
```"#,
        move |ctx: NativeCallContext, o: Map| -> RResult<Map> {
            let cx = opts(&h, &ctx, "pulumi::up", o)?;
            let argv = p::up_argv(&cx.opts);
            if dry(&h, "pulumi::up", &argv) {
                return Ok(command_result(0, String::new(), String::new()));
            }
            let out = run(&h, &ctx, &cx, argv)?;
            Ok(command_result(0, out.stdout, out.stderr))
        }
    );

    let h = host.clone();
    func!(
        &mut m,
        "preview",
        ["options: Map", "Map"],
        r#"
`pulumi preview --json` parsed: the whole document, with `steps` (`op`, `urn`, `diffReasons`)
and `changeSummary`. Runs under `--dry-run` too (it changes nothing).

```rhai
let p = pulumi::preview(#{ stack: "prod", targets: [urn] });
print(p.changeSummary);
```"#,
        move |ctx: NativeCallContext, o: Map| -> RResult<Map> {
            let cx = opts(&h, &ctx, "pulumi::preview", o)?;
            let out = run(&h, &ctx, &cx, p::preview_argv(&cx.opts))?;
            let pv = p::parse_preview(&out.stdout).map_err(|e| rt(&ctx, e.to_string()))?;
            Ok(to_map(&pv.raw))
        }
    );

    let h = host.clone();
    func!(
        &mut m,
        "preview_with_config",
        ["values: Map", "options: Map", "Map"],
        r#"
Preview config changes without touching `Pulumi.<stack>.yaml`: the stack file is copied to a
temporary file, the values are set there, and `preview --config-file <tmp>` runs. Needs `stack`.

```rhai
let p = pulumi::preview_with_config(#{ "web:replicas": 6 }, #{ stack: "prod", cwd: "infra" });
if p.changeSummary.update > 0 { print("would update"); }
```"#,
        move |ctx: NativeCallContext, vals: Map, o: Map| -> RResult<Map> {
            let cx = opts(&h, &ctx, "pulumi::preview_with_config", o)?;
            let vals = values(&ctx, vals)?;
            let root = h.root.clone();
            let dir =
                cx.opts.cwd.clone().unwrap_or_else(|| {
                    cx.call.workdir.as_ref().map_or(root.clone(), |w| root.join(w))
                });
            let call = cx.call.clone();
            let h2 = h.clone();
            let pv = p::preview_with_config(&vals, &cx.opts, &dir, move |argv| {
                command(&h2, &call, argv)
            })
            .map_err(|e| err(&ctx, &cx.call, e))?;
            Ok(to_map(&pv.raw))
        }
    );

    let h = host.clone();
    func!(
        &mut m,
        "refresh_preview",
        ["options: Map", "Map"],
        r#"
Drift without writing state: `pulumi refresh --preview-only --json`, parsed.

```rhai
let drift = pulumi::refresh_preview(#{ stack: "prod" });
```"#,
        move |ctx: NativeCallContext, o: Map| -> RResult<Map> {
            let cx = opts(&h, &ctx, "pulumi::refresh_preview", o)?;
            let out = run(&h, &ctx, &cx, p::refresh_preview_argv(&cx.opts))?;
            let pv = p::parse_preview(&out.stdout).map_err(|e| rt(&ctx, e.to_string()))?;
            Ok(to_map(&pv.raw))
        }
    );

    let h = host.clone();
    func!(
        &mut m,
        "outputs",
        ["options: Map", "Map"],
        r#"
All stack outputs (`pulumi stack output --json`) as a map.

```rhai
let url = pulumi::outputs(#{ stack: "prod", cwd: "infra" }).url;
```"#,
        move |ctx: NativeCallContext, o: Map| -> RResult<Map> {
            let cx = opts(&h, &ctx, "pulumi::outputs", o)?;
            let out = run(&h, &ctx, &cx, p::outputs_argv(None, &cx.opts))?;
            let v: serde_json::Value = serde_json::from_str(out.stdout.trim()).map_err(|e| {
                rt(&ctx, format!("cannot parse the JSON of `pulumi stack output`: {e}"))
            })?;
            Ok(to_map(&v))
        }
    );

    let h = host.clone();
    func!(
        &mut m,
        "config_refresh",
        ["options: Map", "()"],
        r#"
Rewrite the local stack file from the last deployment (`pulumi config refresh`, `force: true`
adds `--force`). Recorded under `--dry-run`.

```rhai
pulumi::config_refresh(#{ stack: "prod", force: true });
```"#,
        move |ctx: NativeCallContext, o: Map| -> RResult<()> {
            let cx = opts(&h, &ctx, "pulumi::config_refresh", o)?;
            let argv = p::config_refresh_argv(cx.force, &cx.opts);
            if dry(&h, "pulumi::config_refresh", &argv) {
                return Ok(());
            }
            run(&h, &ctx, &cx, argv).map(|_| ())
        }
    );
    m
}
