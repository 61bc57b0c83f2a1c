//! `pilum scale …`: turns the parsed flags into configuration and runs `serve`, `check`,
//! `status` or `simulate`. Raw flags stop here. Everything is printed through [`Output`]
//! (secrets masked, `--json` and `-q` honoured); problems with files are
//! [`Diagnostic`]s, all reported at once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;

use crate::autoscale::log::{Format, Log};
use crate::autoscale::pool::{self, Pools};
use crate::autoscale::scaler::Settings;
use crate::autoscale::simulate;
use crate::cli::{LogFormat, ScaleCommand, ScalePoolsArgs, ScaleServeArgs};
use crate::diagnostic::{Diagnostic, Problem, render_all};
use crate::error::Error;
use crate::output::Output;

/// Dispatch a `pilum scale` subcommand. `-C <dir>` makes every relative path (pools file,
/// state dir, signals file) relative to `dir`.
pub(crate) fn run(cmd: ScaleCommand, dir: Option<&Path>, out: &Output) -> Result<(), Error> {
    if let Some(d) = dir {
        std::env::set_current_dir(d).map_err(|e| {
            Error::usage(format!("cannot change to `{}`: {e}\nhelp: check `-C`", d.display()))
        })?;
    }
    match cmd {
        ScaleCommand::Serve(args) => serve(*args, out),
        ScaleCommand::Check(args) => check(&args.pools, out),
        ScaleCommand::Status(args) => {
            status(args.server.as_deref(), args.state_dir.as_deref(), args.pool.as_deref(), out)
        }
        ScaleCommand::Simulate(args) => simulate(args, out),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    build_runtime().map_err(|e| Error::failure(Problem::NoRuntime { error: e.to_string() }))
}

fn build_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build()
}

/// Load pools from the file or a stack output. Errors are every problem found.
fn load_pools(args: &ScalePoolsArgs) -> Result<Pools, Vec<Diagnostic>> {
    let Some(output) = &args.rules_from_output else {
        let file = std::path::absolute(&args.config).unwrap_or_else(|_| args.config.clone());
        return pool::load(&file);
    };
    let dir = args.rules_project.clone().unwrap_or_else(|| PathBuf::from("."));
    let dir = std::path::absolute(&dir).unwrap_or(dir);
    let label = dir.join(format!("(stack output `{output}`)"));
    let err = |p: Problem| vec![Diagnostic::of(&label, p)];
    let Some(stack) = &args.rules_stack else {
        return Err(err(Problem::RulesStackMissing));
    };
    let rt = build_runtime().map_err(|e| err(Problem::NoRuntime { error: e.to_string() }))?;
    let pulumi = crate::autoscale::actuator::Pulumi::default();
    let stack_ref = crate::autoscale::actuator::StackRef { dir: dir.clone(), stack: stack.clone() };
    let value = rt
        .block_on(pulumi.stack_output(&stack_ref, output))
        .map_err(|f| err(Problem::StackOutput { output: output.clone(), error: f.to_string() }))?;
    // A program may export the rules as an object or as a JSON string.
    let value = match value {
        serde_json::Value::String(s) => serde_json::from_str(&s)
            .map_err(|e| err(Problem::OutputNotJson { error: e.to_string() }))?,
        v => v,
    };
    // Pretty JSON is YAML too: positions point into this text.
    let text = serde_json::to_string_pretty(&value).unwrap_or_default();
    let yaml: serde_yaml::Value = serde_yaml::to_value(&value)
        .map_err(|e| err(Problem::RulesNotYaml { error: e.to_string() }))?;
    pool::validate(&label, &text, &yaml)
}

/// A diagnostic for `--json`: the shared fields plus `column` and `suggestion` (the name the
/// "did you mean" proposes).
fn diagnostic_json(d: &Diagnostic) -> serde_json::Value {
    let mut v = d.to_json();
    if let Some(obj) = v.as_object_mut() {
        obj.insert("column".into(), d.col.into());
        // `did_you_mean` is the sentence here (as `pilum scale` always gave it).
        let sentence = d.did_you_mean.as_deref().map(crate::diagnostic::did_you_mean);
        obj.insert("did_you_mean".into(), sentence.into());
        obj.insert("suggestion".into(), d.did_you_mean.clone().into());
    }
    v
}

/// `pilum scale check`: every problem of the pools file and its strategies, at once.
fn check(args: &ScalePoolsArgs, out: &Output) -> Result<(), Error> {
    match load_pools(args) {
        Ok(pools) => {
            let names: Vec<&str> = pools.names().collect();
            if out.json {
                let accepts: serde_json::Map<String, serde_json::Value> = pools
                    .pools
                    .iter()
                    .map(|p| {
                        let inputs: Vec<&str> =
                            p.strategy.inputs.iter().map(|i| i.as_str()).collect();
                        (p.name.clone(), json!({"strategy": p.strategy.name, "accepts": inputs}))
                    })
                    .collect();
                out.json_line(
                    &json!({"ok": true, "file": pools.file, "pools": names, "inputs": accepts}),
                );
            } else if !out.quiet {
                out.stdout_line(&format!(
                    "ok: `{}`: {} pool(s): {}",
                    pools.file.display(),
                    names.len(),
                    names.join(", ")
                ));
                for p in &pools.pools {
                    out.stdout_line(&format!(
                        "  {}: strategy `{}` acts on: {}",
                        p.name,
                        p.strategy.name,
                        p.strategy.describe_inputs()
                    ));
                }
            }
            Ok(())
        }
        Err(errs) => {
            if out.json {
                let list: Vec<_> = errs.iter().map(diagnostic_json).collect();
                out.json_line(&json!({"ok": false, "errors": list}));
                return Err(Error::silent(crate::error::exit::USAGE));
            }
            Err(Error::usage(render_all(&errs)))
        }
    }
}

fn settings(args: &ScaleServeArgs) -> Result<Settings, Error> {
    Ok(Settings {
        state_dir: std::path::absolute(&args.state_dir).unwrap_or_else(|_| args.state_dir.clone()),
        tick: args.tick,
        debounce: args.debounce,
        lock_deadline: args.lock_deadline,
        lock_backoff: Duration::from_millis(500).min(args.retry_backoff),
        retry_backoff: args.retry_backoff,
        retry_max: args.retry_max,
        refresh_config: args.refresh_config,
        queue: args.queue_size,
        preview_queue: args.preview_queue as usize,
        fault: args.test_fault.clone(),
        ha: args.ha.as_ref().map(|url| crate::autoscale::ha::HaSettings {
            url: url.clone(),
            id: args.ha_id.clone().unwrap_or_else(default_id),
            lease: args.ha_lease,
        }),
    })
}

/// `<host>:<pid>`: unique among replicas on different hosts, and on one.
fn default_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("{host}:{}", std::process::id())
}

/// `pilum scale serve`.
fn serve(args: ScaleServeArgs, out: &Output) -> Result<(), Error> {
    let pools = load_pools(&args.pools).map_err(|errs| Error::usage(render_all(&errs)))?;
    let opts = crate::server::ServeOptions {
        listen: args.listen,
        settings: settings(&args)?,
        tokens: args.tokens.clone(),
        no_auth: args.insecure_no_auth,
        sns_verify: !args.no_sns_verify,
        sns_trust_loopback: args.sns_test_trust_loopback,
        sns_max_age: args.sns_max_age,
        max_body: args.max_body,
        rate: args.rate_limit,
        burst: args.rate_burst,
        request_timeout: args.request_timeout,
        header_timeout: args.header_timeout,
        max_connections: args.max_connections as usize,
        shutdown_grace: args.shutdown_grace,
        ready_file: args.ready_file.clone(),
        watch: !args.no_watch && args.pools.rules_from_output.is_none(),
        status_page_public: args.status_page_public,
        notify_pace: (args.notify_coalesce, args.notify_interval),
        log: Log {
            format: if args.log_format == LogFormat::Json { Format::Json } else { Format::Human },
            quiet: out.quiet,
        },
    };
    let code = crate::server::serve(pools, opts)?;
    if code == 0 { Ok(()) } else { Err(Error::silent(code)) }
}

/// `pilum scale status`.
fn status(
    server: Option<&str>,
    state_dir: Option<&Path>,
    only: Option<&str>,
    out: &Output,
) -> Result<(), Error> {
    let pools: Vec<serde_json::Value> = if let Some(url) = server {
        let base = url.trim_end_matches('/');
        let rt = runtime()?;
        let body: serde_json::Value = rt.block_on(async {
            let resp = reqwest::get(format!("{base}/pools")).await.map_err(|e| {
                Error::failure(format!(
                    "cannot reach `{base}`: {e}\nhelp: is `pilum scale serve` running there?"
                ))
            })?;
            if !resp.status().is_success() {
                return Err(Error::failure(format!(
                    "`{base}/pools` answered HTTP {}",
                    resp.status()
                )));
            }
            resp.json()
                .await
                .map_err(|e| Error::failure(format!("`{base}/pools` did not return JSON: {e}")))
        })?;
        body.get("pools").and_then(|p| p.as_array()).cloned().unwrap_or_default()
    } else {
        let dir = state_dir.map_or_else(|| PathBuf::from(".pilum/scale"), Path::to_path_buf);
        if !dir.is_dir() {
            return Err(Error::usage(format!(
                "no state directory `{}`\nhelp: pass `--state-dir` or `--server <url>`",
                dir.display()
            )));
        }
        crate::autoscale::state::read_records(&dir)
            .into_iter()
            .map(|r| {
                json!({"pool": r.pool, "desired": r.desired, "applied": r.applied, "generation": r.generation,
                       "appliedGeneration": r.applied_generation, "lastResult": r.last_result})
            })
            .collect()
    };
    let pools: Vec<_> = pools.into_iter().filter(|p| only.is_none_or(|o| p["pool"] == o)).collect();
    if let Some(o) = only
        && pools.is_empty()
    {
        return Err(Error::usage(format!("unknown pool `{o}`")));
    }
    if out.json {
        out.json_line(&json!({"pools": pools}));
        return Ok(());
    }
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::Null => "-".to_string(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let rows: Vec<[String; 6]> = pools
        .iter()
        .map(|p| {
            let last = p["lastResult"].as_object().map_or_else(
                || {
                    if p["unknown"].is_string() {
                        "current value unknown".into()
                    } else {
                        "-".into()
                    }
                },
                |r| {
                    if r.get("ok").and_then(serde_json::Value::as_bool).unwrap_or(false) {
                        "ok".to_string()
                    } else {
                        let m = r.get("message").and_then(|m| m.as_str()).unwrap_or("");
                        format!("failed: {m}")
                    }
                },
            );
            [
                text(&p["pool"]),
                text(&p["desired"]),
                text(&p["applied"]),
                text(&p["generation"]),
                text(&p["appliedGeneration"]),
                last,
            ]
        })
        .collect();
    let header = ["pool", "desired", "applied", "generation", "applied gen", "last result"];
    let width = |i: usize| {
        rows.iter().map(|r| r[i].chars().count()).chain([header[i].len()]).max().unwrap_or(0)
    };
    let widths: Vec<usize> = (0..5).map(width).collect();
    let line = |cells: [&str; 6]| {
        let mut l = format!("{:<w$}", cells[0], w = widths[0]);
        for i in 1..5 {
            l.push_str(&format!("  {:>w$}", cells[i], w = widths[i]));
        }
        l.push_str("  ");
        l.push_str(cells[5]);
        l.trim_end().to_string()
    };
    out.stdout_line(&line(header));
    for r in &rows {
        out.stdout_line(&line([&r[0], &r[1], &r[2], &r[3], &r[4], &r[5]]));
    }
    Ok(())
}

/// `pilum scale simulate`.
fn simulate(args: crate::cli::ScaleSimulateArgs, out: &Output) -> Result<(), Error> {
    let pools = load_pools(&args.pools).map_err(|errs| Error::usage(render_all(&errs)))?;
    let mut start = BTreeMap::new();
    for c in &args.current {
        let (p, n) = c
            .split_once('=')
            .and_then(|(p, n)| Some((p.to_string(), n.trim().parse::<i64>().ok()?)))
            .ok_or_else(|| Error::usage(format!("`--current {c}`: expected `POOL=N`")))?;
        let Some(pool) = pools.get(&p) else {
            return Err(Error::usage(format!("`--current`: unknown pool `{p}`")));
        };
        if !(pool.spec.min..=pool.spec.max).contains(&n) {
            return Err(Error::usage(format!(
                "`--current {c}`: {n} is outside pool `{p}`'s bounds [{}, {}]",
                pool.spec.min, pool.spec.max
            )));
        }
        start.insert(p, n);
    }
    let clock = chrono::DateTime::parse_from_rfc3339(&args.start)
        .map_err(|e| {
            Error::usage(format!(
                "`--start {}`: {e}\nhelp: use RFC 3339, e.g. `2026-11-16T07:30:00Z`",
                args.start
            ))
        })?
        .with_timezone(&chrono::Utc);
    let replay =
        simulate::Replay { clock, tick: args.tick, debounce: args.debounce, until: args.until };
    let decisions = simulate::run(&pools, &args.signals, &start, &replay).map_err(Error::usage)?;
    for d in &decisions {
        if out.json {
            out.json_line(&serde_json::to_value(d).unwrap_or_default());
            continue;
        }
        let line = match d {
            simulate::SimEvent::Decision { t, decision } => {
                let g = if decision.guardrails.is_empty() {
                    String::new()
                } else {
                    format!(" [{}]", decision.guardrails.join(", "))
                };
                let arrow = if decision.changed {
                    format!("{} → {}", decision.old, decision.clamped)
                } else {
                    format!("{} (held)", decision.old)
                };
                format!("{t:>8.1}s  {:<16} {arrow}  {}{g}", decision.pool, decision.reason)
            }
            simulate::SimEvent::Rejected { t, pool, line, rejected } => {
                format!("{t:>8.1}s  {pool:<16} rejected (line {line}): {rejected}")
            }
            simulate::SimEvent::Failed { t, pool, error } => {
                format!("{t:>8.1}s  {pool:<16} skipped: {error}")
            }
        };
        out.stdout_line(&line);
    }
    if !out.json && !out.quiet && decisions.is_empty() {
        out.stdout_line("no decisions");
    }
    Ok(())
}
