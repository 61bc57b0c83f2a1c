//! Telling the outside world about a deploy: [`Reporting`] wraps the terminal's [`Watch`] and
//! turns the run's events into notifications (`crate::notify`) and GitHub commit statuses and
//! deployments (`crate::ci::github`), and holds the approval gate (`approve`). It follows each
//! service through its tasks: the first task started, the first failure, the last task done.
//! Both outlets send from threads of their own; [`Reporting::finish`] gives them one shared
//! bound (`notify_timeout`, 10 s by default) at the end of the run. Nothing here fails a run
//! that its tasks did not fail.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rhai::Map;

use super::deploy::{Verb, Watch};
use super::pipeline::Config;
use super::settings::{self, Settings};
use crate::ci::{self, github};
use crate::cli::CiArgs;
use crate::error::Error;
use crate::notify::{self, Dispatcher, Notification, event};
use crate::orchestrator::event::{Event, Sink, Summary, TaskRef, TaskStatus};
use crate::orchestrator::execute::{Attempt, Runner, TaskFailure};
use crate::orchestrator::plan::Plan;
use crate::output::Output;
use crate::service::Diagnostic;
use crate::sync::LockExt;

/// Prints the notifier runner's messages.
struct Messages(Output);

impl notify::Report for Messages {
    fn warn(&self, message: &str) {
        self.0.warn(message);
    }
    fn dry_run(&self, message: &str) {
        self.0.info(message);
    }
}

/// One planned service on its way through the run.
#[derive(Debug, Default)]
struct Track {
    name: String,
    remaining: usize,
    ok: usize,
    tasks: usize,
    started: bool,
    /// Reported as deployed, failed or errored.
    ended: bool,
    /// `deployed`, `failed`, `skipped`, or `pending` while it runs.
    status: &'static str,
    error: Option<String>,
    url: Option<String>,
}

#[derive(Default)]
struct State {
    /// Shared, not cloned, by every event: it names every planned service.
    run: Arc<event::Run>,
    services: Vec<Track>,
    by_name: HashMap<String, usize>,
    dry_run: bool,
    summary: Option<Summary>,
}

/// The terminal (or any [`Watch`]) plus notifications, GitHub and the approval gate.
pub(crate) struct Reporting<W: Watch> {
    inner: Arc<W>,
    out: Output,
    settings: Settings,
    yes: bool,
    notify: Mutex<Option<Dispatcher>>,
    github: Mutex<Option<github::Reporter>>,
    /// What the GitHub reporter needs until the plan gives the tag.
    pending_github: Mutex<Option<(github::Target, github::Mode, github::Warn)>>,
    flush: std::time::Duration,
    state: Mutex<State>,
    report: Option<std::path::PathBuf>,
}

impl<W: Watch + 'static> Reporting<W> {
    /// Read the project settings and start the outlets the run asks for. A settings problem
    /// (or a notifier that does not compile) is a usage error; a missing secret only skips its
    /// outlet with a warning.
    pub(crate) fn start(
        cfg: &Config,
        flags: &CiArgs,
        json_report: Option<std::path::PathBuf>,
        verb: Verb,
        out: &Output,
        inner: Arc<W>,
    ) -> Result<Arc<Self>, Error> {
        if flags.matrix.is_some() {
            return Err(Error::usage("`--matrix` is an option of `pilum plan`"));
        }
        let root =
            crate::service::discover::project_root(cfg.dir.as_deref()).map_err(Error::usage)?;
        let settings = settings::load(&root).map_err(|d| super::pipeline::usage(&d))?;
        let flush =
            flags.notify_timeout.or(settings.notify_timeout).unwrap_or(notify::DEFAULT_FLUSH);
        let env = ci::process_env;
        let detected = ci::detect(&env);
        let dry_run = cfg.dry_run;
        let notify = if flags.no_notify {
            None
        } else {
            dispatcher(&root, &settings, dry_run, flush, out).map_err(Error::usage)?
        };
        let statuses = settings.github.statuses || flags.github_statuses;
        let deployments = settings.github.deployments || flags.github_deployments;
        let github = if (statuses || deployments) && !dry_run {
            match github::Target::from_env(&env, detected.as_ref()) {
                Ok(target) => {
                    let mut gs = settings.github.clone();
                    gs.statuses = statuses;
                    gs.deployments = deployments;
                    let mode = github::Mode::new(
                        &gs,
                        cfg.environment.as_deref(),
                        "",
                        flags.transient_environment,
                    );
                    let o = out.clone();
                    let warn: github::Warn = Arc::new(move |m: &str| o.warn(m));
                    Some((target, mode, warn))
                }
                Err(why) => {
                    out.warn(&format!(
                        "GitHub statuses and deployments are on, but {why}; skipped"
                    ));
                    None
                }
            }
        } else {
            None
        };
        let run = event::Run {
            id: run_id(),
            command: verb.name().to_string(),
            project: project_name(&root),
            dry_run,
            ci: detected.as_ref().map(|c| c.provider.name().to_string()),
            url: detected.as_ref().and_then(|c| c.run_url.clone()),
            git_ref: detected.as_ref().and_then(|c| c.git_ref.clone()),
            sha: detected.as_ref().and_then(|c| c.sha.clone()),
            actor: detected.as_ref().and_then(|c| c.actor.clone()),
            ..event::Run::default()
        };
        let reporting = Arc::new(Self {
            inner,
            out: out.clone(),
            settings,
            yes: flags.yes,
            notify: Mutex::new(notify),
            github: Mutex::new(None),
            pending_github: Mutex::new(github),
            flush,
            state: Mutex::new(State { run: Arc::new(run), dry_run, ..State::default() }),
            report: json_report,
        });
        Ok(reporting)
    }

    /// Write `--report`, then flush both outlets within the one bound and stop them.
    pub(crate) fn finish(&self) {
        if let Some(path) = &self.report {
            self.write_report(path);
        }
        let end = Instant::now() + self.flush;
        let mut gh = self.github.locked().take();
        if let Some(r) = gh.as_mut() {
            r.close(end);
        }
        if let Some(d) = self.notify.locked().take() {
            d.finish();
        }
        if let Some(r) = gh {
            r.wait();
        }
    }

    /// `{command, ok, environment, tag, services: [{name, status, url?, error?}], summary}`.
    fn write_report(&self, path: &Path) {
        let st = self.state.locked();
        let services: Vec<serde_json::Value> = st
            .services
            .iter()
            .map(|t| {
                let mut v = serde_json::json!({"name": t.name, "status": t.status});
                if let Some(u) = &t.url {
                    v["url"] = u.clone().into();
                }
                if let Some(e) = &t.error {
                    v["error"] = e.clone().into();
                }
                v
            })
            .collect();
        let doc = serde_json::json!({
            "command": st.run.command,
            "ok": st.summary.as_ref().is_some_and(|s| s.ok),
            "dry_run": st.dry_run,
            "environment": st.run.environment,
            "tag": st.run.tag,
            "services": services,
            "summary": st.summary,
        });
        drop(st);
        // Masked like everything else pilum writes.
        let text = Output::clean(&doc.to_string()).into_owned();
        let written = match path.parent().filter(|p| !p.as_os_str().is_empty()) {
            Some(dir) => {
                std::fs::create_dir_all(dir).and_then(|()| std::fs::write(path, text + "\n"))
            }
            None => std::fs::write(path, text + "\n"),
        };
        if let Err(e) = written {
            self.out.warn(&format!("cannot write the report `{}`: {e}", path.display()));
        }
    }

    fn notify(&self, n: &Notification) {
        if let Some(d) = self.notify.locked().as_ref() {
            d.send(n);
        }
    }

    fn github(&self, u: github::Update) {
        if let Some(r) = self.github.locked().as_ref() {
            r.send(u);
        }
    }

    /// The plan event: the run starts for the outside world.
    fn started(&self) {
        let run = self.state.locked().run.clone();
        let services: Vec<String> = {
            let st = self.state.locked();
            st.services.iter().filter(|t| t.tasks > 0).map(|t| t.name.clone()).collect()
        };
        if services.is_empty() {
            return;
        }
        self.notify(&Notification::run_started(&run));
        for s in services {
            self.github(github::Update::Planned { service: s });
        }
    }

    fn task_event(&self, e: &Event) {
        // Notifications are built only for notifiers (each copies the run); the notifier lock
        // is taken before the state's, as `lock_waiting` does.
        let notifying = self.notify.locked().is_some();
        let mut st = self.state.locked();
        let run = Arc::clone(&st.run);
        let notice = notifying.then_some(&*run);
        let mut out_n = Vec::new();
        let mut out_g = Vec::new();
        match e {
            Event::TaskStarted { task, .. } => {
                if let Some(t) = st.by_name.get(&task.service).copied().map(|i| &mut st.services[i])
                    && !t.started
                {
                    t.started = true;
                    out_g.push(github::Update::Started { service: t.name.clone() });
                }
            }
            Event::TaskFinished { task, status, error, .. } => {
                if let Some(t) = st.by_name.get(&task.service).copied().map(|i| &mut st.services[i])
                {
                    t.remaining = t.remaining.saturating_sub(1);
                    match status {
                        TaskStatus::Ok => t.ok += 1,
                        TaskStatus::Failed | TaskStatus::TimedOut if !t.ended => {
                            t.ended = true;
                            let error = error.clone().unwrap_or_else(|| "failed".into());
                            t.status = "failed";
                            t.error = Some(error.clone());
                            if let Some(run) = notice {
                                out_n.push(Notification::service_failed(
                                    run,
                                    event::Service {
                                        name: t.name.clone(),
                                        url: None,
                                        error: Some(error.clone()),
                                        task: Some(task.label.clone()),
                                    },
                                ));
                            }
                            out_g.push(github::Update::Failed {
                                service: t.name.clone(),
                                description: error,
                            });
                        }
                        _ => {}
                    }
                    done(t, notice, &mut out_n, &mut out_g);
                }
            }
            Event::TaskSkipped { task, .. } => {
                if let Some(t) = st.by_name.get(&task.service).copied().map(|i| &mut st.services[i])
                {
                    t.remaining = t.remaining.saturating_sub(1);
                    done(t, notice, &mut out_n, &mut out_g);
                }
            }
            Event::Summary(s) => {
                st.summary = Some(s.clone());
                for t in st.services.iter_mut().filter(|t| t.tasks > 0 && !t.ended) {
                    t.ended = true;
                    t.status = "skipped";
                    let why =
                        if s.interrupted { "interrupted" } else { "skipped: a dependency failed" };
                    out_g.push(github::Update::Errored {
                        service: t.name.clone(),
                        description: why.into(),
                    });
                }
                if let Some(run) = notice {
                    out_n.push(Notification::run_ended(run, s.clone()));
                }
            }
            _ => {}
        }
        drop(st);
        for n in &out_n {
            self.notify(n);
        }
        for g in out_g {
            self.github(g);
        }
    }
}

/// A service whose tasks have all ended without a failure is deployed (or, when some were
/// skipped, errored: it did not deploy everything).
/// `run` is `None` when no notifier listens.
fn done(
    t: &mut Track,
    run: Option<&event::Run>,
    n: &mut Vec<Notification>,
    g: &mut Vec<github::Update>,
) {
    if t.remaining > 0 || t.ended {
        return;
    }
    t.ended = true;
    if t.ok == t.tasks {
        t.status = "deployed";
        if let Some(run) = run {
            let service = event::Service {
                name: t.name.clone(),
                url: t.url.clone(),
                error: None,
                task: None,
            };
            n.push(Notification::service_deployed(run, service));
        }
        g.push(github::Update::Succeeded { service: t.name.clone(), url: t.url.clone() });
    } else {
        t.status = "skipped";
        g.push(github::Update::Errored {
            service: t.name.clone(),
            description: "skipped: a dependency failed or the run was interrupted".into(),
        });
    }
}

/// `pilum rollback`'s notifications: `service_rolled_back` for each rolled-back service and
/// `service_failed` for each that failed, to the project's notifiers (`notify:` in
/// `pilum-project.yaml`), flushed within their bound. Nothing here fails the rollback.
pub(crate) fn notify_rollbacks(
    root: &Path,
    environment: Option<&str>,
    outcomes: &[(String, Result<Option<String>, String>)],
    out: &Output,
) {
    let settings = match settings::load(root) {
        Ok(s) => s,
        Err(d) => {
            let why = d.first().map(ToString::to_string).unwrap_or_default();
            return out.warn(&format!("no notifications: {why}"));
        }
    };
    if outcomes.is_empty() {
        return;
    }
    let flush = settings.notify_timeout.unwrap_or(notify::DEFAULT_FLUSH);
    let dispatcher = match dispatcher(root, &settings, false, flush, out) {
        Ok(Some(d)) => d,
        Ok(None) => return,
        Err(e) => return out.warn(&format!("no notifications: {e}")),
    };
    let env = ci::process_env;
    let detected = ci::detect(&env);
    let run = event::Run {
        id: run_id(),
        command: "rollback".into(),
        project: project_name(root),
        environment: environment.map(str::to_string),
        services: outcomes.iter().map(|(s, _)| s.clone()).collect(),
        ci: detected.as_ref().map(|c| c.provider.name().to_string()),
        url: detected.as_ref().and_then(|c| c.run_url.clone()),
        ..event::Run::default()
    };
    for (service, result) in outcomes {
        let n = match result {
            Ok(url) => Notification::service_rolled_back(
                &run,
                event::Service { name: service.clone(), url: url.clone(), ..Default::default() },
            ),
            Err(e) => Notification::service_failed(
                &run,
                event::Service {
                    name: service.clone(),
                    error: Some(crate::state::record::first_line(e)),
                    ..Default::default()
                },
            ),
        };
        dispatcher.send(&n);
    }
    dispatcher.finish();
}

/// The project's notifiers (`notify:`), started; `None` without any. An entry that cannot be
/// used (a missing secret) is a warning and is left out.
fn dispatcher(
    root: &Path,
    settings: &Settings,
    dry_run: bool,
    flush: std::time::Duration,
    out: &Output,
) -> Result<Option<Dispatcher>, String> {
    if settings.notify.is_empty() {
        return Ok(None);
    }
    let mut targets = Vec::new();
    for entry in &settings.notify {
        match entry.resolve(&ci::process_env) {
            Ok(t) => targets.push(t),
            Err(warning) => out.warn(&warning),
        }
    }
    let report = Arc::new(Messages(out.clone()));
    Dispatcher::start(root, targets, dry_run, flush, report).map(Some)
}

/// A notification run's id: the time in ms and a random suffix, in hex.
fn run_id() -> String {
    format!("{:x}-{:04x}", chrono::Utc::now().timestamp_millis(), fastrand::u16(..))
}

fn project_name(root: &Path) -> String {
    root.file_name()
        .map_or_else(|| root.display().to_string(), |n| n.to_string_lossy().into_owned())
}

impl<W: Watch + 'static> Sink for Reporting<W> {
    fn event(&self, e: &Event) {
        self.inner.event(e);
        match e {
            Event::Plan { .. } => self.started(),
            Event::TaskStarted { .. }
            | Event::TaskFinished { .. }
            | Event::TaskSkipped { .. }
            | Event::Summary(_) => {
                if !self.state.locked().dry_run {
                    self.task_event(e);
                } else if let Event::Summary(s) = e {
                    let run = {
                        let mut st = self.state.locked();
                        st.summary = Some(s.clone());
                        st.run.clone()
                    };
                    self.notify(&Notification::run_ended(&run, s.clone()));
                }
            }
            _ => {}
        }
    }
}

impl<W: Watch + 'static> Watch for Reporting<W> {
    fn warnings(&self, warnings: &[Diagnostic]) {
        self.inner.warnings(warnings);
    }

    fn planned(&self, plan: &Plan, base: Option<&str>) {
        self.inner.planned(plan, base);
        let mut st = self.state.locked();
        let run = Arc::make_mut(&mut st.run);
        run.tag = plan.tag.clone();
        run.environment = plan.environment.clone();
        run.services = plan.services.iter().map(|s| s.name.clone()).collect();
        st.services = plan
            .services
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let tasks = plan.tasks.iter().filter(|t| t.service == i).count();
                Track {
                    name: s.name.clone(),
                    remaining: tasks,
                    tasks,
                    status: if tasks == 0 { "skipped" } else { "pending" },
                    ..Track::default()
                }
            })
            .collect();
        st.by_name = plan.services.iter().enumerate().map(|(i, s)| (s.name.clone(), i)).collect();
        drop(st);
        if let Some((target, mut mode, warn)) = self.pending_github.locked().take() {
            mode.tag = plan.tag.clone();
            *self.github.locked() = Some(github::Reporter::start(target, mode, warn));
        }
    }

    fn approve(&self, plan: &Plan) -> Result<(), Error> {
        super::approve::check(&self.settings, plan, self.yes, &self.out, &ci::process_env)
    }

    fn step_returned(&self, task: &TaskRef, outputs: &Map) {
        if let Some(url) = outputs.get("url").and_then(|u| u.clone().into_string().ok()) {
            let mut st = self.state.locked();
            if let Some(i) = st.by_name.get(&task.service).copied() {
                st.services[i].url = Some(url);
            }
        }
        self.inner.step_returned(task, outputs);
    }

    fn dirty(&self, refusal: &Error) {
        self.inner.dirty(refusal);
    }

    fn state_note(&self, message: &str) {
        self.inner.state_note(message);
    }

    fn lock_waiting(&self, holder: Option<&str>, waited: std::time::Duration) {
        self.inner.lock_waiting(holder, waited);
        if let Some(d) = self.notify.locked().as_ref() {
            let run = || event::Run::clone(&self.state.locked().run);
            d.lock_waited(run, holder.unwrap_or("an earlier waiting run"), waited);
        }
    }

    fn cached(&self, hits: &[crate::state::cache::Hit]) {
        self.inner.cached(hits);
    }
}

/// A [`Runner`] that shows the watch what each step returned (a deploy step's `url`).
pub(crate) struct Returned<'a, R: Runner, W: Watch> {
    pub inner: R,
    pub watch: &'a W,
}

impl<R: Runner, W: Watch> Runner for Returned<'_, R, W> {
    fn run(&self, a: &Attempt<'_>) -> Result<Option<Map>, TaskFailure> {
        let result = self.inner.run(a);
        if let Ok(Some(outputs)) = &result {
            self.watch.step_returned(a.label, outputs);
        }
        result
    }
}
