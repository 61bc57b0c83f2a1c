//! `pilum build`, `publish`, `push`, `deploy` and `dry-run`, and the one deploy path they share
//! with a script's `deploy()`: [`run`] loads and plans, refuses to publish a work tree with
//! uncommitted changes (unless allowed), opens the state backend and takes the deploy locks of
//! its services (not for dry runs, `crate::state::session`), executes, and records each
//! service's deploy and the run in the state. What is shown, and where, is the caller's
//! [`Watch`]: the terminal renderer for the CLI, log lines for a script. The CLI also records
//! the run for its report (`super::runs`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::pipeline::{self, Config};
use super::{plan::print_plan, select_config, warn_all};
use crate::cli::ExecArgs;
use crate::error::{Error, exit};
use crate::orchestrator::event::{Event, Sink, Summary};
use crate::orchestrator::execute::{self, Cancel};
use crate::orchestrator::plan::Plan;
use crate::orchestrator::runner::RecipeRunner;
use crate::output::Output;
use crate::service::Diagnostic;
use crate::state::record::Origin;
use crate::state::session::{self, Session};
use crate::state::{cache, lock};
use crate::ui::render::Renderer;
use crate::ui::report::record::Recorder;

/// The delay before a step's first retry when none is given (`--retry-delay`'s default).
pub(crate) const DEFAULT_RETRY_DELAY: Duration = Duration::from_secs(1);

/// The commands that run steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verb {
    Build,
    Publish,
    Push,
    Deploy,
    DryRun,
}

impl Verb {
    /// What the run is called in its summary and in the history.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Verb::Build => "build",
            Verb::Publish => "publish",
            Verb::Push => "push",
            Verb::Deploy => "deploy",
            Verb::DryRun => "dry-run",
        }
    }

    /// The phases it runs (empty: all).
    fn phases(self) -> &'static [&'static str] {
        match self {
            Verb::Build => &["build"],
            Verb::Publish => &["build", "push"],
            Verb::Push => &["push"],
            Verb::Deploy | Verb::DryRun => &[],
        }
    }
}

/// How to run a plan: the same settings, with the same defaults, for the CLI and for scripts.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    /// What the run is recorded as in `.pilum/history.jsonl`.
    pub record_as: String,
    /// Tasks running at once; `None`: the number of CPUs. Zero is refused.
    pub workers: Option<usize>,
    /// Overrides every step's `retries` when given (0 = one attempt).
    pub retries: Option<u32>,
    /// Delay before the first retry; doubles each attempt.
    pub retry_delay: Duration,
    /// After a failure, keep running later phases for services it does not affect.
    pub keep_going: bool,
    /// Timeout for steps that declare none.
    pub timeout: Option<Duration>,
    /// `-v` count: debug lines of scripts are kept with one.
    pub verbose: u8,
    /// Publish from a work tree with uncommitted changes (`--allow-dirty`).
    pub allow_dirty: bool,
    /// How long a busy deploy lock is waited for (`--lock-wait`); `None`: refuse at once.
    pub lock_wait: Option<Duration>,
    /// The lease of a Redis lock (`--lock-ttl`).
    pub lock_ttl: Duration,
    /// Skip what the build cache says need not run (off with `--no-cache`, `--force`).
    pub cache: bool,
    /// `--barrier ID`: cross the shards' barriers between phases (with `--shard`).
    pub barrier: Option<String>,
    /// Free the run's project and plan on a thread of their own when it ends (the CLI, which
    /// exits right after). A script's `deploy()` frees them in line: a script's memory is
    /// counted per thread, and memory freed elsewhere would stay counted as held by it.
    pub free_in_background: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            record_as: Verb::Deploy.name().to_string(),
            workers: None,
            retries: None,
            retry_delay: DEFAULT_RETRY_DELAY,
            keep_going: false,
            timeout: None,
            verbose: 0,
            allow_dirty: false,
            lock_wait: None,
            lock_ttl: crate::state::lock::DEFAULT_TTL,
            cache: true,
            barrier: None,
            free_in_background: false,
        }
    }
}

/// Whoever watches a deploy: every orchestrator event, plus the moments around the run that
/// the terminal shows and a script does not.
pub(crate) trait Watch: Sink + Send + Sync {
    /// Non-fatal problems of the selected services (unknown keys).
    fn warnings(&self, _warnings: &[Diagnostic]) {}
    /// The plan is complete and valid; nothing has run yet. `base`: the `--only-changed` base.
    fn planned(&self, _plan: &Plan, _base: Option<&str>) {}
    /// A dry run from a dirty work tree: the real run would be refused with `refusal`.
    fn dirty(&self, _refusal: &Error) {}
    /// A note about the state backend: a lock waited for or granted, records that could not be
    /// written (the run itself is not failed for it).
    fn state_note(&self, message: &str);
    /// The run has waited `waited` for a deploy lock `holder` holds (`None`: promised to an
    /// earlier waiter); told on every look while it waits.
    fn lock_waiting(&self, _holder: Option<&str>, _waited: Duration) {}
    /// The plan is shown and nothing has run or been locked: an environment that requires
    /// approval is approved here, or the run stops with the error.
    fn approve(&self, _plan: &Plan) -> Result<(), Error> {
        Ok(())
    }
    /// What the build cache skips, before anything runs.
    fn cached(&self, _hits: &[cache::Hit]) {}
    /// A task's step returned a map (its outputs; a deploy step's `url`).
    fn step_returned(&self, _task: &crate::orchestrator::event::TaskRef, _outputs: &rhai::Map) {}
}

/// Plan and run: the one deploy path of `pilum deploy` (and `build`, …) and of `deploy()` in
/// scripts. A configuration problem or a held deploy lock is an error; failed tasks are not
/// (they are in the summary).
pub(crate) fn run<W: Watch + 'static>(
    config: &Config,
    options: &Options,
    watch: Arc<W>,
    cancel: &Cancel,
) -> Result<Summary, Error> {
    // Where the run comes from (`git config user.email` when no CI names the actor) is asked
    // of git while the project loads, for a run that records.
    let origin = (!config.dry_run)
        .then(|| crate::service::discover::project_root(config.dir.as_deref()).ok())
        .flatten()
        .map(|root| std::thread::spawn(move || Origin::current(&root)));
    let loaded = pipeline::load_to_plan(config)?;
    watch.warnings(&loaded.warnings);
    let plan = pipeline::plan(config, &loaded)?;
    let workers = match options.workers {
        Some(0) => {
            return Err(Error::usage(
                "the number of workers (`--max-workers`, `max_workers`) must be at least 1",
            ));
        }
        Some(n) => n,
        None => std::thread::available_parallelism().map_or(2, std::num::NonZero::get),
    };
    let opts = execute::Options {
        workers,
        retries: options.retries,
        retry_delay: options.retry_delay,
        keep_going: options.keep_going,
        default_timeout: options.timeout,
    };
    if !options.allow_dirty
        && let Some(refusal) = dirty(&plan, &options.record_as)
    {
        if !plan.dry_run {
            return Err(refusal);
        }
        watch.dirty(&refusal);
    }
    // A run that changes things opens the state (an unreachable backend stops it here, before
    // anything runs), lets the build cache drop what need not run, holds its services' deploy
    // locks and records what it did. A dry run only reads the cache, to say what a real run
    // would skip; it writes, locks and records nothing.
    let mut plan = plan;
    let mut state = None;
    let mut hits = Vec::new();
    if plan.dry_run && options.cache {
        match lookup(config, &loaded, &plan)? {
            Ok(h) => hits = h,
            Err(why) => watch.state_note(&why),
        }
    } else if !plan.dry_run {
        let backend = pipeline::state(config, &loaded)?;
        let barrier = barrier_plan(config, &loaded, options, backend.as_ref())?;
        let hashes =
            crate::state::inputs::hashes(&loaded.project, &plan, loaded.worktree.as_deref());
        let origin = match origin {
            Some(o) => o.join().expect("the git thread does not panic"),
            None => Origin::current(&loaded.project.root),
        };
        let mut reused = Default::default();
        if options.cache {
            let (h, r) =
                cache::apply(backend.as_ref(), &mut plan, &hashes).map_err(Error::usage)?;
            (hits, reused) = (h, r);
        }
        state = Some((backend, barrier, hashes, reused, origin));
    }
    watch.planned(&plan, loaded.base.as_deref());
    watch.approve(&plan)?;
    watch.event(&Event::Plan { plan: with_cache(plan.to_json(), &hits) });
    if !hits.is_empty() {
        watch.cached(&hits);
    }
    // The runner is made for the plan it runs.
    let runner = RecipeRunner::new(&loaded.project, &plan, options.verbose, watch.clone());
    let runner = super::report::Returned { inner: runner, watch: watch.as_ref() };
    let Some((backend, barrier, hashes, reused, origin)) = state else {
        return Ok(execute::execute(&plan, &runner, &opts, watch.as_ref(), cancel));
    };
    let plan = Arc::new(plan);
    let start = session::Start {
        backend,
        origin,
        command: options.record_as.clone(),
        locks: Some(lock::Options { ttl: options.lock_ttl, wait: options.lock_wait }),
        observer: Arc::new(Notes(watch.clone())),
        hashes: Some(hashes),
        reused,
        barrier,
    };
    let session = Session::start(plan.clone(), start).map_err(Error::usage)?;
    let summary = execute::execute(
        &plan,
        &session.runner(&runner, cancel),
        &opts,
        &session.sink(watch.as_ref()),
        cancel,
    );
    let entry = (!plan.tasks.is_empty())
        .then(|| entry(session.run_id(), &options.record_as, &plan, &summary));
    if let Err(e) = session.finish(entry) {
        watch.state_note(&e.to_string());
    }
    if options.free_in_background {
        drop(session);
        crate::sync::drop_in_background((loaded, plan, runner.inner));
    }
    Ok(summary)
}

/// What the build cache would skip of `plan`, read only (no write, no lock, no record), for
/// `pilum plan` and dry runs. An unreachable or unreadable backend is not an error here (they
/// run nothing): the inner error is the warning `cache not consulted: …`. A configuration
/// error (a located one, a malformed `--state` or `PILUM_STATE`) is.
pub(super) fn lookup(
    config: &Config,
    loaded: &pipeline::Loaded,
    plan: &Plan,
) -> Result<Result<Vec<cache::Hit>, String>, Error> {
    let not_consulted = |why: &str| {
        let first = why.lines().next().unwrap_or_default();
        format!("cache not consulted: {first}")
    };
    crate::state::Location::resolve(config.state.as_deref(), None).map_err(Error::usage)?;
    let backend = match pipeline::state(config, loaded) {
        Ok(b) => b,
        Err(e) if !e.diagnostics.is_empty() => return Err(e),
        Err(e) => return Ok(Err(not_consulted(&e.message))),
    };
    let hashes = crate::state::inputs::hashes(&loaded.project, plan, loaded.worktree.as_deref());
    Ok(match cache::lookup(backend.as_ref(), plan, &hashes) {
        Ok(found) => Ok(found.into_iter().flatten().map(|(hit, _)| hit).collect()),
        Err(e) => Err(not_consulted(&e.to_string())),
    })
}

/// A plan's JSON with each service's cache hit (`null`: none) as `cache`, in the shape of the
/// `cache` event's `hit`.
pub(super) fn with_cache(mut plan: serde_json::Value, hits: &[cache::Hit]) -> serde_json::Value {
    let mut by_service: HashMap<&str, &cache::Hit> = HashMap::new();
    for h in hits {
        by_service.entry(h.service()).or_insert(h);
    }
    if let Some(services) = plan.get_mut("services").and_then(serde_json::Value::as_array_mut) {
        for s in services {
            let name = s.get("name").and_then(serde_json::Value::as_str).unwrap_or_default();
            let hit = by_service.get(name);
            s["cache"] = serde_json::to_value(hit).expect("a cache hit serialises");
        }
    }
    plan
}

/// `--barrier ID --shard I/N`: this shard's place, and the phases of the whole plan every
/// shard crosses. Only a shared backend has barriers.
fn barrier_plan(
    config: &Config,
    loaded: &pipeline::Loaded,
    options: &Options,
    backend: &dyn crate::state::Backend,
) -> Result<Option<session::BarrierPlan>, Error> {
    let Some(id) = &options.barrier else { return Ok(None) };
    let Some(shard) = super::shard::parse(config.shard.as_deref())? else {
        return Err(Error::usage("`--barrier` needs `--shard I/N`"));
    };
    if backend.barriers().is_none() {
        let what = "`--barrier`".to_string();
        return Err(Error::usage(crate::state::StateError::NotShared { what }));
    }
    let whole = pipeline::plan(&Config { shard: None, ..config.clone() }, loaded)?;
    Ok(Some(session::BarrierPlan {
        id: id.clone(),
        shard: shard.index,
        total: shard.total,
        ttl: options.lock_ttl,
        phases: whole.phases,
    }))
}

/// Lock waits and state problems, told to the watcher.
struct Notes<W>(Arc<W>);

impl<W: Watch> lock::Observer for Notes<W> {
    fn waiting(
        &self,
        key: &lock::LockKey,
        holder: Option<&lock::Holder>,
        ahead: usize,
        waited: Duration,
    ) {
        self.0.state_note(&lock::waiting_note(key, holder, ahead, waited));
    }

    fn still_waiting(&self, _key: &lock::LockKey, holder: Option<&lock::Holder>, waited: Duration) {
        self.0.lock_waiting(holder.map(lock::Holder::describe).as_deref(), waited);
    }

    fn granted(&self, key: &lock::LockKey, waited: Duration) {
        self.0.state_note(&lock::granted_note(key, waited));
    }

    fn warn(&self, message: &str) {
        self.0.state_note(message);
    }
}

/// The run's history entry.
fn entry(run: &str, verb: &str, plan: &Plan, summary: &Summary) -> serde_json::Value {
    let commit = plan.commit.as_ref();
    crate::state::history::Entry {
        run,
        command: verb,
        tag: &plan.tag,
        environment: plan.environment.as_deref(),
        commit: commit.map(|c| c.sha.as_str()),
        dirty: commit.is_some_and(super::super::orchestrator::plan::Commit::dirty),
        complete: verb == "deploy" && covers_project(plan),
        summary: serde_json::to_value(summary).unwrap_or_default(),
    }
    .to_json()
}

/// Whether `plan` deploys everything the project needed: every step of every service, picked
/// by a selection that leaves nothing out (all services, or `--only-changed`), so its commit
/// can be the next `--only-changed` base.
fn covers_project(plan: &Plan) -> bool {
    let steps: usize = plan
        .services
        .iter()
        .flat_map(|s| {
            s.steps.iter().map(|st| if st.per_region { s.regions.len().max(1) } else { 1 })
        })
        .sum();
    plan.tasks.len() == steps
        && plan.services.iter().all(|s| crate::service::select::covers_project(&s.reason))
}

/// A dry run's warning for the refusal a real run would get.
pub(crate) fn dirty_warning(refusal: &Error) -> String {
    let why = refusal.message.lines().next().unwrap_or_default();
    format!("{why}\nhelp: a real run stops here (commit the changes, or pass `--allow-dirty`)")
}

/// The refusal of a run that would publish uncommitted changes: one with a phase after
/// `build` (so `pilum build` and script builds are not refused), from a dirty work tree.
/// A dry run gets it as a warning.
pub(crate) fn dirty(plan: &Plan, verb: &str) -> Option<Error> {
    let commit = plan.commit.as_ref().filter(|c| c.dirty())?;
    if plan.phases.iter().all(|p| p == "build") {
        return None;
    }
    Some(Error::usage(format!(
        "the work tree has uncommitted changes; `{verb}` would publish them as commit `{}`\n{}\nhelp: commit them (or `git stash -u`) and run again, or pass `--allow-dirty` (`allow_dirty: true` in a script's `deploy()`) to publish them tagged `{}`, recorded as dirty",
        commit.short(),
        super::checkout::listed(commit),
        plan.tag
    )))
}

/// The configuration of a command that runs steps (and of `pilum plan`).
pub(super) fn config(dir: Option<PathBuf>, a: &ExecArgs, phases: &[&str], dry_run: bool) -> Config {
    let mut cfg = select_config(dir, &a.select);
    cfg.filter.phases = phases.iter().map(std::string::ToString::to_string).collect();
    cfg.tag = a.tag.clone();
    cfg.dry_run = dry_run || a.dry_run;
    cfg.require_secrets = !cfg.dry_run;
    cfg.shard = a.ci.shard.clone();
    cfg.state = a.state.state.clone();
    cfg
}

/// The terminal as a [`Watch`]: events go to the renderer, the rest through `Output`; the
/// recorder of the run report sees every event too.
struct Terminal {
    out: Output,
    renderer: Renderer,
    verb: &'static str,
    recorder: Recorder,
}

impl Sink for Terminal {
    fn event(&self, e: &Event) {
        self.recorder.event(e);
        self.renderer.event(e);
    }
}

impl Watch for Terminal {
    fn warnings(&self, warnings: &[Diagnostic]) {
        warn_all(&self.out, warnings);
    }

    fn dirty(&self, refusal: &Error) {
        self.out.warn(&dirty_warning(refusal));
    }

    fn planned(&self, plan: &Plan, base: Option<&str>) {
        self.recorder.planned(plan);
        if plan.services.is_empty() {
            let why = base.map(|b| format!(": no service changed since `{b}`")).unwrap_or_default();
            self.out.info(&format!("nothing to {}{why}", self.verb));
        }
        if plan.dry_run && !self.out.json && !self.out.quiet {
            print_plan(&self.out, plan, base, &[]);
        }
    }

    fn state_note(&self, message: &str) {
        self.out.warn(message);
    }

    fn cached(&self, hits: &[cache::Hit]) {
        for h in hits {
            if self.out.json {
                self.out.json_line(&serde_json::json!({"event": "cache", "hit": h}));
            } else {
                self.out.info(&h.describe());
            }
        }
    }
}

/// `build`, `publish`, `push`, `deploy`, `dry-run`: plan, then execute; exit 1 when a task
/// failed, 130 when interrupted.
pub(crate) fn command(
    dir: Option<PathBuf>,
    a: &ExecArgs,
    out: &Output,
    verb: Verb,
) -> Result<(), Error> {
    let cfg = config(dir, a, verb.phases(), verb == Verb::DryRun);
    let reports = super::runs::check_report(&a.report)?;
    let options = Options {
        record_as: verb.name().to_string(),
        workers: a.max_workers.or_else(super::ci::default_workers),
        retries: a.retries,
        retry_delay: a.retry_delay,
        keep_going: a.keep_going,
        timeout: a.timeout,
        verbose: out.verbose,
        allow_dirty: a.allow_dirty,
        lock_wait: a.state.lock.lock_wait,
        lock_ttl: a.state.lock.lock_ttl.unwrap_or(crate::state::lock::DEFAULT_TTL),
        cache: !(a.state.no_cache || a.state.force),
        barrier: a.state.barrier.clone(),
        free_in_background: true,
    };
    let cancel = Cancel::new();
    if let Err(e) = crate::process::cancel_on_ctrl_c(cancel.clone()) {
        out.warn(&format!("cannot install the Ctrl-C handler: {e}"));
    }
    // `pilum dry-run` is a deploy that runs nothing: its lines say `deploy (dry run)`.
    let shown = if verb == Verb::DryRun { Verb::Deploy.name() } else { verb.name() };
    let mut renderer = Renderer::new(out, shown);
    if let Ok(root) = crate::service::discover::project_root(cfg.dir.as_deref()) {
        renderer = renderer.with_root(root);
    }
    let recorder = Recorder::new(shown);
    let terminal = Arc::new(Terminal { out: out.clone(), renderer, verb: shown, recorder });
    // Notifications, GitHub statuses and the approval gate watch the run with the terminal.
    let watch =
        super::report::Reporting::start(&cfg, &a.ci, reports.json, verb, out, terminal.clone())?;
    let summary = run(&cfg, &options, watch.clone(), &cancel);
    watch.finish();
    let summary = summary?;
    // The run is saved for `pilum report`, and drawn into `--report FILE.html`.
    super::runs::finish(cfg.dir.as_deref(), &terminal.recorder, reports.html.as_deref(), out);
    if summary.interrupted {
        Err(Error::silent(exit::INTERRUPTED))
    } else if !summary.ok {
        Err(Error::silent(exit::FAILURE))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// `--retry-delay`'s default and a script's `deploy()` default are the same value.
    #[test]
    fn the_cli_and_scripts_share_the_defaults() {
        let cli = crate::cli::Cli::try_parse_from(["pilum", "deploy"]).expect("parses");
        let crate::cli::Command::Deploy(a) = cli.command else { panic!("not deploy") };
        assert_eq!(a.retry_delay, Options::default().retry_delay);
        assert_eq!(a.timeout, Options::default().timeout);
        assert_eq!(a.max_workers, Options::default().workers);
        assert_eq!(a.retries, Options::default().retries);
    }
}
