//! The deploy pipeline for scripts (`pilum run deploy.rhai`): `services()`,
//! `changed_services(since)` and `deploy(services, options)` do what `pilum list`,
//! `pilum list --only-changed` and `pilum deploy` do, on the project the script runs in;
//! `deploy()` is [`deploy::run`], the CLI's own path. They are global functions (no namespace),
//! added to full-profile engines through the script extension hook (`commands::install`).

use std::sync::Arc;
use std::time::Duration;

use rhai::{Array, Dynamic, Engine, EvalAltResult, Map, Module, NativeCallContext};

use super::deploy::{self, Options, Watch};
use super::pipeline::{self, Config, Loaded};
use crate::orchestrator::event::{Event as PEvent, Sink as PSink, TaskStatus};
use crate::script::api::{RResult, func, rt};
use crate::script::{Event, Host, LogLevel, Stop, current};
use crate::ui::render::{count, human, summary_line};

const DEPLOY_OPTS: &[&str] = &[
    "tags",
    "exclude_tags",
    "env",
    "tag",
    "keep_going",
    "max_workers",
    "retries",
    "retry_delay",
    "timeout",
    "dry_run",
    "allow_dirty",
];

pub(crate) fn register(engine: &mut Engine, host: &Arc<Host>) {
    let mut m = Module::new();
    let h = host.clone();
    func!(
        &mut m,
        "services",
        ["Array"],
        r#"
Every service of the project: maps with `name`, `dir`, `recipe`, `regions`, `depends_on`.

```rhai
for s in services() { print(`${s.name} (${s.recipe}) in ${s.dir}`); }
```"#,
        move |ctx: NativeCallContext| -> RResult<Array> { list(&h, &ctx, None) }
    );
    let h = host.clone();
    func!(
        &mut m,
        "changed_services",
        ["since: String", "Array"],
        r#"
The services changed since the git ref `since` (committed, staged, unstaged and untracked files,
`watch:` paths), plus every service depending on one of them; each map also has `reason`.

```rhai
let changed = changed_services("origin/main");
print(`${changed.len()} changed: ${changed.map(|s| s.name)}`);
```"#,
        move |ctx: NativeCallContext, since: &str| -> RResult<Array> {
            list(&h, &ctx, Some(since))
        }
    );
    let h = host.clone();
    func!(
        &mut m,
        "deploy",
        ["services: Array", "options: Map", "Map"],
        r#"
Plan and run the recipes of `services` (names, or maps from `services()`), exactly like
`pilum deploy`: barriers, dependencies, retries, timeouts. Options: `tags` (only steps with these
tags, e.g. `["build"]`), `exclude_tags`, `env` (an `environments:` name), `tag` (the version),
`keep_going`, `max_workers`, `retries`, `retry_delay` (default `1s`) and `timeout` (for steps
declaring none), as durations (`"500ms"`, `"2m"`) or seconds, `dry_run` (default:
`pilum run --dry-run`), `allow_dirty` (publish from a work tree with uncommitted changes, as
`--allow-dirty`). Progress and dry-run records are reported as log lines (stderr; `log` events
under `pilum --json run`). Returns the summary: `ok`, `dry_run`, `services` and `tasks` (counts
`total`, `ok`, `failed`, `interrupted`, `skipped`), `wall_ms`, `failures` (`task`, `error`, `at`).
A configuration error (bad `pilum.yaml`, unknown service, a dirty tree) raises an error; failed
tasks do not. Ctrl-C stops the steps and ends the script (exit 130): `deploy()` does not return.

```rhai
let r = deploy(["api", "web"], #{ tags: ["build"], tag: "v1.2.0" });
if !r.ok { throw `build failed: ${r.failures.map(|f| f.task)}`; }
```"#,
        move |ctx: NativeCallContext, services: Array, opts: Map| -> RResult<Map> {
            deploy(&h, &ctx, services, opts)
        }
    );
    let h = host.clone();
    func!(
        &mut m,
        "deploy",
        ["services: Array", "Map"],
        r#"
`deploy(services, #{})`: every phase of `services`.

```rhai
deploy(services(), #{});
```"#,
        move |ctx: NativeCallContext, services: Array| -> RResult<Map> {
            deploy(&h, &ctx, services, Map::new())
        }
    );
    engine.register_global_module(m.into());
}

fn load(ctx: &NativeCallContext, cfg: &Config) -> RResult<Loaded> {
    pipeline::load(cfg).map_err(|e| rt(ctx, e.message))
}

fn list(host: &Host, ctx: &NativeCallContext, since: Option<&str>) -> RResult<Array> {
    let cfg = Config {
        dir: Some(host.root.clone()),
        only_changed: since.is_some(),
        since: since.map(str::to_string),
        ..Config::default()
    };
    let loaded = load(ctx, &cfg)?;
    Ok(loaded
        .selected
        .iter()
        .zip(&loaded.recipes)
        .map(|(sel, r)| {
            let s = &loaded.project.services[sel.index];
            let mut m = Map::new();
            m.insert("name".into(), s.name.clone().into());
            m.insert("dir".into(), s.dir.to_string_lossy().into_owned().into());
            m.insert("recipe".into(), r.decl.name.clone().into());
            m.insert(
                "regions".into(),
                s.regions.iter().cloned().map(Dynamic::from).collect::<Array>().into(),
            );
            m.insert(
                "depends_on".into(),
                s.depends_on.iter().cloned().map(Dynamic::from).collect::<Array>().into(),
            );
            if since.is_some() {
                m.insert("reason".into(), sel.reason.clone().into());
            }
            Dynamic::from(m)
        })
        .collect())
}

fn strings(ctx: &NativeCallContext, v: &Dynamic, what: &str) -> RResult<Vec<String>> {
    let arr = v
        .read_lock::<Array>()
        .ok_or_else(|| rt(ctx, format!("`{what}` must be an array of strings")))?;
    arr.iter()
        .map(|x| {
            x.clone()
                .into_string()
                .map_err(|_| rt(ctx, format!("`{what}` must be an array of strings")))
        })
        .collect()
}

fn deploy(host: &Arc<Host>, ctx: &NativeCallContext, services: Array, opts: Map) -> RResult<Map> {
    for k in opts.keys() {
        if !DEPLOY_OPTS.contains(&k.as_str()) {
            let mut msg = format!(
                "unknown `deploy` option `{k}`\nhelp: options are {}",
                DEPLOY_OPTS.join(", ")
            );
            if let Some(c) = crate::diagnostic::closest(k, DEPLOY_OPTS.iter().copied()) {
                msg.push_str(&format!("\ndid you mean `{c}`?"));
            }
            return Err(rt(ctx, msg));
        }
    }
    let mut names = Vec::new();
    for s in &services {
        if let Some(m) = s.read_lock::<Map>()
            && let Some(n) = m.get("name").and_then(|n| n.clone().into_string().ok())
        {
            names.push(n);
            continue;
        }
        match s.clone().into_string() {
            Ok(n) => names.push(n),
            Err(_) => {
                return Err(rt(ctx, "`deploy` takes service names or maps from `services()`"));
            }
        }
    }
    if names.is_empty() {
        return Err(rt(
            ctx,
            "`deploy` was given no services\nhelp: check for an empty selection before calling it",
        ));
    }
    let get = |k: &str| opts.get(k).filter(|v| !v.is_unit());
    let mut cfg = Config { dir: Some(host.root.clone()), services: names, ..Config::default() };
    if let Some(v) = get("tags") {
        cfg.filter.only_tags = strings(ctx, v, "tags")?;
    }
    if let Some(v) = get("exclude_tags") {
        cfg.filter.exclude_tags = strings(ctx, v, "exclude_tags")?;
    }
    cfg.environment = get("env").map(std::string::ToString::to_string);
    cfg.tag = get("tag").map(std::string::ToString::to_string);
    cfg.dry_run = get("dry_run").map_or(host.dry_run, |v| v.as_bool().unwrap_or(false));
    cfg.require_secrets = !cfg.dry_run;
    let int = |k: &str| -> RResult<Option<u32>> {
        match get(k) {
            None => Ok(None),
            Some(v) => v
                .as_int()
                .ok()
                .and_then(|i| u32::try_from(i).ok())
                .map(Some)
                .ok_or_else(|| rt(ctx, format!("`{k}` must be a whole number"))),
        }
    };
    // Durations as the CLI and files write them: `"90s"`, `"1m30s"`, or a number of seconds.
    let duration = |k: &str| -> RResult<Option<Duration>> {
        let Some(v) = get(k) else { return Ok(None) };
        let parsed = if v.is_string() {
            crate::duration::parse(&v.to_string())
        } else {
            match v.as_float().or_else(|_| v.as_int().map(|i| i as f64)) {
                Ok(secs) => crate::duration::from_secs_f64(secs),
                Err(_) => {
                    return Err(rt(
                        ctx,
                        format!(
                            "`{k}` must be a duration such as `\"90s\"`, or a number of seconds"
                        ),
                    ));
                }
            }
        };
        parsed.map(Some).map_err(|e| rt(ctx, format!("`{k}`: {e}")))
    };
    let timeout = duration("timeout")?;
    if timeout.is_some_and(|d| d.is_zero()) {
        return Err(rt(ctx, "`timeout` must be greater than zero"));
    }
    let options = Options {
        record_as: if cfg.filter.only_tags.is_empty() { "deploy" } else { "deploy (script)" }
            .to_string(),
        workers: int("max_workers")?.map(|n| n as usize),
        retries: int("retries")?,
        retry_delay: duration("retry_delay")?.unwrap_or(deploy::DEFAULT_RETRY_DELAY),
        keep_going: get("keep_going").is_some_and(|v| v.as_bool().unwrap_or(false)),
        timeout,
        verbose: host.verbose,
        allow_dirty: get("allow_dirty").is_some_and(|v| v.as_bool().unwrap_or(false)),
        ..Options::default()
    };
    let verb = if cfg.filter.only_tags.is_empty() {
        "deploy".to_string()
    } else {
        cfg.filter.only_tags.join("+")
    };
    let watch = Arc::new(HostRenderer { host: host.clone(), verb });
    let summary =
        deploy::run(&cfg, &options, watch, &current().cancel).map_err(|e| rt(ctx, e.message))?;
    if summary.interrupted {
        // Ctrl-C ends the script, as it ends `pilum deploy`: exit 130, nothing after this call.
        return Err(EvalAltResult::ErrorTerminated(
            Dynamic::from(Stop::Cancelled),
            ctx.call_position(),
        )
        .into());
    }
    let v = crate::script::value::to_dynamic(&summary)
        .map_err(|e| rt(ctx, format!("cannot convert the summary: {e}")))?;
    Ok(v.try_cast::<Map>().unwrap_or_default())
}

/// Progress of a `deploy()` call, reported through the script host like everything else a script
/// does: `pilum run` prints it (stderr, `-q` silences it) or, under `--json`, emits it as NDJSON
/// `log` events, so a script's stdout stays its own.
struct HostRenderer {
    host: Arc<Host>,
    verb: String,
}

impl PSink for HostRenderer {
    fn event(&self, e: &PEvent) {
        let log = |level: LogLevel, message: &str| self.host.emit(Event::Log { level, message });
        match e {
            PEvent::PhaseStarted { phase, tasks } => {
                log(LogLevel::Info, &format!("{}: {phase} ({})", self.verb, count(*tasks, "task")));
            }
            PEvent::TaskFinished { task, status, duration_ms, error, .. } => {
                let d = human(std::time::Duration::from_millis(*duration_ms));
                match status {
                    TaskStatus::Ok => log(LogLevel::Info, &format!("✓ {} ({d})", task.label)),
                    _ => log(
                        LogLevel::Error,
                        &format!(
                            "✗ {} ({d}): {}",
                            task.label,
                            error.as_deref().unwrap_or("failed")
                        ),
                    ),
                }
            }
            PEvent::TaskRetried { task, attempt, delay_ms, error } => log(
                LogLevel::Warn,
                &format!(
                    "{} attempt {attempt} failed, retrying in {}: {}",
                    task.label,
                    human(std::time::Duration::from_millis(*delay_ms)),
                    error.lines().next().unwrap_or("")
                ),
            ),
            PEvent::TaskSkipped { task, reason } => {
                log(LogLevel::Info, &format!("- {} skipped: {reason}", task.label));
            }
            PEvent::TaskOutput { stream, line, .. } => {
                let stream = match stream {
                    crate::orchestrator::event::Stream::Stdout => crate::process::Stream::Stdout,
                    crate::orchestrator::event::Stream::Stderr => crate::process::Stream::Stderr,
                };
                self.host.emit(Event::Line { stream, line });
            }
            PEvent::TaskLog { task, level, message } => {
                let level = match level.as_str() {
                    "warn" => LogLevel::Warn,
                    "error" => LogLevel::Error,
                    _ => LogLevel::Info,
                };
                log(level, &format!("{}: {message}", task.label));
            }
            // Like the rest of a `deploy()`'s progress, on stderr: stdout is the script's own.
            PEvent::TaskDryRun { task, call, detail } => {
                log(LogLevel::Info, &format!("would run {}: {call} {detail}", task.label));
            }
            PEvent::Summary(s) => log(
                if s.ok { LogLevel::Info } else { LogLevel::Error },
                &summary_line(&self.verb, s.status(), s),
            ),
            PEvent::Plan { .. } | PEvent::TaskStarted { .. } => {}
        }
    }
}

impl Watch for HostRenderer {
    fn dirty(&self, refusal: &crate::error::Error) {
        self.host
            .emit(Event::Log { level: LogLevel::Warn, message: &deploy::dirty_warning(refusal) });
    }

    fn state_note(&self, message: &str) {
        self.host.emit(Event::Log { level: LogLevel::Warn, message });
    }
}
