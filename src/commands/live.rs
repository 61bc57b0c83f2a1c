//! What `pilum status`, `logs` and `rollback` share: selecting services and turning them into
//! hook targets (one per region of a regional service), refusing services whose recipe has no
//! such hook, calling hooks on several targets at once with a bounded number of threads, and
//! printing what hooks do (command output, logs, dry-run records) through `Output`, prefixed
//! by the target when there are several.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use console::Style;

use super::pipeline::{self, Config};
use crate::cli::TargetArgs;
use crate::diagnostic::Problem;
use crate::error::Error;
use crate::output::Output;
use crate::recipe::hooks::{self, Hook, ServiceHooks, Target};
use crate::recipe::validate;
use crate::script::{CancelToken, Event, LogLevel, Sink};

/// Why a hook command cannot start. Nothing has run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LiveError {
    /// Selected services whose recipe does not define the hook: `(service, recipe)`.
    NotSupported { hook: Hook, services: Vec<(String, String)> },
    /// `--region` names a region none of the selected services deploys to.
    NoRegion { region: String, regions: Vec<String> },
    /// `--to` names one revision, but the selection has several targets.
    ToNeedsOneTarget { labels: Vec<String> },
}

impl std::fmt::Display for LiveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LiveError::NotSupported { hook, services } => {
                let lines: Vec<String> = services
                    .iter()
                    .map(|(s, r)| {
                        format!(
                            "`pilum {}` is not supported by recipe `{r}` (service `{s}`)",
                            hook.name()
                        )
                    })
                    .collect();
                write!(
                    f,
                    "{}\nhelp: a recipe supports it by defining `fn {}(ctx)` (docs/recipes.md, \"Hooks\"); each built-in recipe's page in docs/recipes/ lists its hooks",
                    lines.join("\n"),
                    hook.name()
                )
            }
            LiveError::NoRegion { region, regions } => {
                write!(f, "no selected service deploys to region `{region}`")?;
                if !regions.is_empty() {
                    write!(f, " (their regions: {})", regions.join(", "))?;
                }
                f.write_str("\nhelp: leave out `--region` to act on every region")
            }
            LiveError::ToNeedsOneTarget { labels } => write!(
                f,
                "`--to` names one revision, but the selection has {} targets: {}\nhelp: name one service, and one of its regions with `--region`",
                labels.len(),
                labels.iter().map(|l| format!("`{l}`")).collect::<Vec<_>>().join(", ")
            ),
        }
    }
}

/// The deploy history as hook commands see it: what pilum deployed to a target. `status` shows
/// the last deploy and a drift column when given one; `rollback` goes back to the previous
/// successful deploy by default. The state backend implements it.
pub(crate) trait History: Sync {
    /// The newest successful deploy recorded for the target.
    fn last_deploy(&self, key: &TargetKey<'_>) -> Option<LastDeploy>;
    /// The successful deploy before the newest one: where a rollback goes without `--to`.
    fn previous_deploy(&self, key: &TargetKey<'_>) -> Option<LastDeploy>;
}

/// Which deployed thing a history lookup is about: one record's service × target (recipe) ×
/// environment × region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TargetKey<'a> {
    pub service: &'a str,
    pub recipe: &'a str,
    pub environment: Option<&'a str>,
    pub region: Option<&'a str>,
}

impl<'a> TargetKey<'a> {
    pub(crate) fn of(t: &'a Target) -> Self {
        Self {
            service: &t.service,
            recipe: &t.recipe.decl.name,
            environment: t.environment.as_deref(),
            region: t.region.as_deref(),
        }
    }
}

/// One deploy record, as much of it as hook commands show.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct LastDeploy {
    /// The revision its deploy step returned.
    pub revision: Option<String>,
    /// The version tag deployed.
    pub tag: Option<String>,
    /// When it finished, as shown (`2025-05-01 14:03`, `2h ago`).
    pub finished: String,
}

/// The targets of a hook command.
pub(crate) struct Live {
    pub root: PathBuf,
    pub targets: Vec<Target>,
    /// Selected services left out because their recipe has no such hook: `(service, recipe)`.
    pub unsupported: Vec<(String, String)>,
}

/// The pipeline configuration of a hook command's selection.
pub(crate) fn config(dir: Option<PathBuf>, t: &TargetArgs) -> Config {
    Config {
        dir,
        services: t.services.clone(),
        providers: t.provider.clone(),
        environment: t.environment.clone(),
        recipe_paths: t.recipe_path.clone(),
        ..Config::default()
    }
}

/// Load the project, check the selected services against their recipes and make their
/// targets. A selected service without the hook is an error when `every` (the services were
/// named, or the command acts on each), else it is left out and listed in `unsupported`
/// (unless no service has the hook at all).
pub(crate) fn load(
    cfg: &Config,
    hook: Hook,
    region: Option<&str>,
    dry_run: bool,
    every: bool,
    out: &Output,
) -> Result<Live, Error> {
    let loaded = pipeline::load(cfg)?;
    // "Left out dependencies" are about what a deploy would run; a hook runs nothing of them.
    let warnings: Vec<_> = loaded
        .warnings
        .iter()
        .filter(|d| !matches!(d.problem, Problem::LeftOut { .. }))
        .cloned()
        .collect();
    super::warn_all(out, &warnings);
    let root = loaded.project.root.clone();
    let mut diags = Vec::new();
    let mut targets = Vec::new();
    let mut unsupported = Vec::new();
    for (sel, recipe) in loaded.selected.iter().zip(&loaded.recipes) {
        let s = &loaded.project.services[sel.index];
        let checked = match validate::check(s, recipe) {
            Ok(c) => c,
            Err(d) => {
                diags.extend(d);
                continue;
            }
        };
        if !hooks::supports(recipe, hook) {
            unsupported.push((s.name.clone(), recipe.decl.name.clone()));
            continue;
        }
        let sh =
            ServiceHooks { service: s, recipe, fields: &checked.fields, steps: &checked.steps };
        targets.extend(hooks::targets(&sh, &root, cfg.environment.as_deref(), dry_run));
    }
    if !diags.is_empty() {
        return Err(pipeline::usage(&diags));
    }
    if !unsupported.is_empty() && (every || targets.is_empty()) {
        return Err(Error::usage(LiveError::NotSupported { hook, services: unsupported }));
    }
    if let Some(r) = region {
        let mut regions: Vec<String> = targets.iter().filter_map(|t| t.region.clone()).collect();
        regions.dedup();
        targets.retain(|t| t.region.as_deref() == Some(r));
        if targets.is_empty() {
            return Err(Error::usage(LiveError::NoRegion { region: r.to_string(), regions }));
        }
    }
    Ok(Live { root, targets, unsupported })
}

/// Run `f` for every item (target) on at most `limit` threads; the results are in item order.
pub(crate) fn each<I: Sync, T: Send>(
    targets: &[I],
    limit: usize,
    f: impl Fn(&I) -> T + Sync,
) -> Vec<T> {
    let workers = limit.clamp(1, targets.len().max(1));
    let next = AtomicUsize::new(0);
    let mut results: Vec<(usize, T)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(t) = targets.get(i) else { break };
                        mine.push((i, f(t)));
                    }
                    mine
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("hook threads do not panic")).collect()
    });
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

/// A cancel token that Ctrl-C fires (children are killed, the hook returns "interrupted").
pub(crate) fn interruptible(out: &Output) -> CancelToken {
    let cancel = CancelToken::new();
    if let Err(e) = crate::process::cancel_on_ctrl_c(cancel.clone()) {
        out.warn(&format!("cannot install the Ctrl-C handler: {e}"));
    }
    cancel
}

/// What the printer shows of the commands hooks run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Show {
    /// Their output is the point (`pilum logs`): stdout lines on stdout, stderr on stderr.
    Output,
    /// Their output is shown with `-v` only, on stderr (`status`, `rollback`).
    Verbose,
}

/// Prints the script events of hooks: command output, prints and logs, dry-run records.
pub(crate) struct Printer {
    out: Output,
    show: Show,
    /// Per label: the service, the region and the label's colour; `None` when one target (no
    /// prefix).
    labels: HashMap<String, (String, Option<String>, Style)>,
    prefix: bool,
    width: usize,
}

impl Printer {
    pub(crate) fn new(out: &Output, show: Show, targets: &[Target]) -> Arc<Self> {
        const COLOURS: [fn(Style) -> Style; 5] =
            [Style::cyan, Style::magenta, Style::yellow, Style::green, Style::blue];
        let labels = targets
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let style = COLOURS[i % COLOURS.len()](Output::style());
                (t.label.clone(), (t.service.clone(), t.region.clone(), style))
            })
            .collect();
        Arc::new(Self {
            out: out.clone(),
            show,
            labels,
            prefix: targets.len() > 1,
            width: targets.iter().map(|t| t.label.len()).max().unwrap_or(0),
        })
    }

    fn prefixed(&self, label: &str, text: &str, stderr: bool) -> String {
        if !self.prefix && !stderr {
            return text.to_string();
        }
        let style = self.labels.get(label).map_or_else(Output::style, |l| l.2.clone());
        let style = if stderr { style.for_stderr() } else { style };
        let padded = format!("{label:<w$} |", w = self.width);
        format!("{} {text}", style.apply_to(padded))
    }

    fn json(&self, label: &str, event: &str, fields: serde_json::Value) {
        let (service, region) =
            self.labels.get(label).map_or((label, None), |l| (l.0.as_str(), l.1.as_deref()));
        let mut v = serde_json::json!({ "event": event, "service": service, "region": region });
        if let (Some(m), serde_json::Value::Object(extra)) = (v.as_object_mut(), fields) {
            m.extend(extra);
        }
        self.out.json_line(&v);
    }
}

impl Sink for Printer {
    fn event(&self, label: &str, event: Event<'_>) {
        match event {
            Event::Line { stream, line } => {
                let to_stderr = stream == crate::process::Stream::Stderr;
                match self.show {
                    Show::Output if self.out.json => self.json(
                        label,
                        "log",
                        serde_json::json!({ "stream": stream.as_str(), "line": line }),
                    ),
                    Show::Output if to_stderr => {
                        self.out.stderr_line(&self.prefixed(label, line, true));
                    }
                    Show::Output => self.out.stdout_line(&self.prefixed(label, line, false)),
                    Show::Verbose if self.out.verbose > 0 && !self.out.quiet => {
                        self.out.stderr_line(&self.prefixed(label, line, true));
                    }
                    Show::Verbose => {}
                }
            }
            Event::Print(text) => {
                if !self.out.quiet {
                    self.out.stderr_line(&self.prefixed(label, text, true));
                }
            }
            Event::Debug(text) => {
                if self.out.verbose > 0 && !self.out.quiet {
                    self.out.stderr_line(&self.prefixed(label, &format!("debug: {text}"), true));
                }
            }
            Event::Log { level, message } => {
                let text = self.prefixed(label, message, true);
                match level {
                    LogLevel::Error => self.out.error(&text),
                    LogLevel::Warn => self.out.warn(&text),
                    LogLevel::Info => self.out.info(&text),
                }
            }
            Event::DryRun { call, detail } => {
                if self.out.json {
                    self.json(
                        label,
                        "dry_run",
                        serde_json::json!({ "call": call, "detail": detail }),
                    );
                } else if !self.out.quiet {
                    let would = Output::style().cyan().apply_to("would run");
                    self.out.stdout_line(&format!("  {would} {label}: {call} {detail}"));
                }
            }
        }
    }
}

/// A project whose recipe `memo` answers every hook from Rhai alone (no provider CLI), and a
/// history kept in memory: the seam the state backend implements, exercised by the commands.
#[cfg(test)]
pub(crate) mod fixture {
    use super::*;

    const RECIPE: &str = r#"
fn recipe() {
    #{ name: "memo", description: "hooks without a provider", provider: "memo", section: "memo",
       fields: [], steps: [#{ name: "deploy", tags: ["deploy"], run: "deploy" }] }
}
fn deploy(ctx) { #{ revision: "r3" } }
fn status(ctx) { #{ revision: "r3", version: "v3", health: "healthy" } }
fn logs(ctx) { print("no logs"); }
fn rollback(ctx) { #{ revision: if ctx.to == () { "provider-previous" } else { ctx.to } } }
"#;

    /// Services `api` and `web` of recipe `memo`.
    pub(crate) fn project() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        let write = |rel: &str, text: &str| {
            let p = dir.path().join(rel);
            std::fs::create_dir_all(p.parent().expect("a parent")).expect("mkdir");
            std::fs::write(p, text).expect("write");
        };
        write("pilum-project.yaml", "# the project root\n");
        write("recipes/memo.rhai", RECIPE);
        write("api/pilum.yaml", "name: api\nrecipe: memo\n");
        write("web/pilum.yaml", "name: web\nrecipe: memo\n");
        dir
    }

    pub(crate) fn quiet() -> Output {
        Output { quiet: true, verbose: 0, json: false }
    }

    /// Per service: the deploys recorded, oldest first.
    pub(crate) struct Memo(pub Vec<(&'static str, Vec<&'static str>)>);

    impl Memo {
        fn records(&self, key: &TargetKey<'_>) -> Vec<LastDeploy> {
            assert_eq!(key.recipe, "memo", "the key names the target (recipe)");
            let found = self.0.iter().find(|(s, _)| *s == key.service);
            found.map_or_else(Vec::new, |(_, revs)| {
                revs.iter()
                    .map(|r| LastDeploy {
                        revision: Some((*r).to_string()),
                        tag: Some(format!("v{}", &r[1..])),
                        finished: "2025-05-01 14:03".into(),
                    })
                    .collect()
            })
        }
    }

    impl History for Memo {
        fn last_deploy(&self, key: &TargetKey<'_>) -> Option<LastDeploy> {
            self.records(key).pop()
        }

        fn previous_deploy(&self, key: &TargetKey<'_>) -> Option<LastDeploy> {
            let mut r = self.records(key);
            r.pop();
            r.pop()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_supported_names_the_command_the_recipe_and_the_service() {
        let e = LiveError::NotSupported {
            hook: Hook::Rollback,
            services: vec![("pkg".into(), "deb".into())],
        };
        let text = e.to_string();
        assert!(
            text.starts_with("`pilum rollback` is not supported by recipe `deb` (service `pkg`)"),
            "{text}"
        );
        assert!(text.contains("help: a recipe supports it by defining `fn rollback(ctx)`"));
    }

    #[test]
    fn each_runs_every_item_once_and_keeps_their_order() {
        let items: Vec<u64> = (0..50).collect();
        let calls = AtomicUsize::new(0);
        let out = each(&items, 4, |i| {
            calls.fetch_add(1, Ordering::Relaxed);
            // Later items finish first.
            std::thread::sleep(std::time::Duration::from_micros(50 - i));
            i * 2
        });
        assert_eq!(out, items.iter().map(|i| i * 2).collect::<Vec<_>>());
        assert_eq!(calls.load(Ordering::Relaxed), 50);
        assert!(each(&Vec::<u64>::new(), 4, |i| *i).is_empty());
    }
}

/// [`History`] read from the state backend's deploy records (`crate::state`). A backend that
/// fails a lookup is said once, as a warning; the command goes on without history.
pub(crate) struct Recorded {
    backend: std::sync::Arc<dyn crate::state::Backend>,
    out: Output,
    warned: std::sync::atomic::AtomicBool,
}

impl Recorded {
    pub(crate) fn new(backend: std::sync::Arc<dyn crate::state::Backend>, out: &Output) -> Self {
        Self { backend, out: out.clone(), warned: std::sync::atomic::AtomicBool::new(false) }
    }

    pub(crate) fn backend(&self) -> &std::sync::Arc<dyn crate::state::Backend> {
        &self.backend
    }

    fn shown(
        &self,
        r: Result<Option<crate::state::record::Record>, crate::state::StateError>,
    ) -> Option<LastDeploy> {
        match r {
            Ok(r) => r.map(|r| LastDeploy {
                revision: r.revision,
                tag: Some(r.version),
                finished: shown_time(&r.ended),
            }),
            Err(e) => {
                if !self.warned.swap(true, Ordering::Relaxed) {
                    self.out.warn(&format!("cannot read the deploy history: {e}"));
                }
                None
            }
        }
    }
}

/// An RFC 3339 time as `2026-05-01 14:03` (UTC); the text itself when it does not parse.
fn shown_time(rfc3339: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(rfc3339).map_or_else(
        |_| rfc3339.to_string(),
        |t| t.with_timezone(&chrono::Utc).format("%Y-%m-%d %H:%M").to_string(),
    )
}

impl History for Recorded {
    fn last_deploy(&self, k: &TargetKey<'_>) -> Option<LastDeploy> {
        self.shown(self.backend.last_success(k.service, k.recipe, k.environment, k.region))
    }

    fn previous_deploy(&self, k: &TargetKey<'_>) -> Option<LastDeploy> {
        self.shown(self.backend.previous_success(k.service, k.recipe, k.environment, k.region))
    }
}
