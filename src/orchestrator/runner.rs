//! The real [`Runner`]: a task is a call of its recipe step through
//! [`recipe::runner::StepRunner`](crate::recipe::runner::StepRunner), with the step context
//! `ctx` built from the plan. Script events (command output, prints, logs, dry-run records)
//! carry the task's label and are turned into orchestrator [`Event`]s for that task; the last
//! lines of output are kept for the failure report.
//!
//! A failure is reported at the step in the service's `pilum.yaml` (`svc/pilum.yaml:4:3` for
//! `shell.build`, see [`crate::recipe::locate`]): when the error was raised in pilum's own code
//! (a built-in recipe or a stdlib module) that is the place shown with its source line, and the
//! recipe line becomes a note; when it was raised in the user's own recipe, that line stays
//! first and the step's place is the note.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rhai::{Array, Dynamic, Map};

use super::event::{Event, Location, Sink as EventSink, Stream, TaskRef};
use super::execute::{Attempt, Runner, TaskFailure, task_ref};
use super::plan::Plan;
use crate::recipe::declaration::StepDir;
use crate::recipe::locate;
use crate::recipe::runner::{StepError, StepRunner};
use crate::recipe::value::yaml_to_dynamic;
use crate::script::{CallCtx, Deadline, LogLevel};
use crate::sync::LockExt;

/// How many output lines of a task are kept for its failure report.
const TAIL: usize = 20;

/// Routes script events to the orchestrator's event stream by task label.
struct Bridge {
    tasks: HashMap<String, TaskRef>,
    out: Arc<dyn EventSink + Send + Sync>,
    tails: Mutex<HashMap<String, VecDeque<String>>>,
    verbose: bool,
}

impl Bridge {
    fn keep(&self, label: &str, line: &str) {
        let mut tails = self.tails.locked();
        let t = tails.entry(label.to_string()).or_default();
        if t.len() == TAIL {
            t.pop_front();
        }
        t.push_back(line.to_string());
    }

    fn take_tail(&self, label: &str) -> Vec<String> {
        self.tails.locked().remove(label).map(Vec::from).unwrap_or_default()
    }
}

impl crate::script::Sink for Bridge {
    fn event(&self, label: &str, event: crate::script::Event<'_>) {
        use crate::script::Event as S;
        let Some(task) = self.tasks.get(label) else { return };
        let e = match event {
            S::Line { stream, line } => {
                self.keep(label, line);
                let stream = match stream {
                    crate::process::Stream::Stdout => Stream::Stdout,
                    crate::process::Stream::Stderr => Stream::Stderr,
                };
                Event::TaskOutput { task: task.clone(), stream, line: line.to_string() }
            }
            S::Print(text) => Event::TaskLog {
                task: task.clone(),
                level: "print".into(),
                message: text.to_string(),
            },
            S::Debug(text) => {
                if !self.verbose {
                    return;
                }
                Event::TaskLog {
                    task: task.clone(),
                    level: "debug".into(),
                    message: text.to_string(),
                }
            }
            S::Log { level, message } => Event::TaskLog {
                task: task.clone(),
                level: match level {
                    LogLevel::Info => "info",
                    LogLevel::Warn => "warn",
                    LogLevel::Error => "error",
                }
                .into(),
                message: message.to_string(),
            },
            S::DryRun { call, detail } => Event::TaskDryRun {
                task: task.clone(),
                call: call.to_string(),
                detail: detail.to_string(),
            },
        };
        self.out.event(&e);
    }
}

/// A planned service's `pilum.yaml`.
struct Source {
    file: String,
    text: Arc<str>,
    config: serde_yaml::Mapping,
}

pub(crate) struct RecipeRunner {
    steps: StepRunner,
    bridge: Arc<Bridge>,
    root: PathBuf,
    /// Per planned service, when it has a task to run (the build cache may have dropped every
    /// task of the others): what its tasks share.
    services: Vec<Option<Prepared>>,
}

/// What every task of one service shares.
struct Prepared {
    /// The parts of `ctx` that do not change between its tasks.
    base: Map,
    /// The environment of its commands.
    env: Vec<(String, String)>,
    /// Its `pilum.yaml` (path, text and configuration), to place a failing step in it.
    /// Located only when a step fails: finding a key parses the file.
    source: Source,
}

impl RecipeRunner {
    pub(crate) fn new(
        project: &crate::service::Project,
        plan: &Plan,
        verbose: u8,
        out: Arc<dyn EventSink + Send + Sync>,
    ) -> Self {
        let root = project.root.clone();
        let tasks = plan.tasks.iter().map(|t| (plan.label(t), task_ref(plan, t))).collect();
        let bridge = Arc::new(Bridge {
            tasks,
            out,
            tails: Mutex::new(HashMap::new()),
            verbose: verbose > 0,
        });
        let steps = StepRunner::new(&root, plan.dry_run, verbose, bridge.clone());
        let mut runs = vec![false; plan.services.len()];
        for t in &plan.tasks {
            runs[t.service] = true;
        }
        let mut services = Vec::with_capacity(plan.services.len());
        for (ps, &runs) in plan.services.iter().zip(&runs) {
            if !runs {
                services.push(None);
                continue;
            }
            let svc = &project.services[ps.project_index];
            let source = Source {
                file: svc.file.display().to_string(),
                text: svc.text.clone(),
                config: svc.config.clone(),
            };
            let mut m = Map::new();
            m.insert("service".into(), ps.name.clone().into());
            m.insert("dir".into(), ps.dir.clone().into());
            m.insert("root".into(), root.display().to_string().into());
            m.insert("recipe".into(), ps.recipe.decl.name.clone().into());
            m.insert("fields".into(), ps.fields.clone().into());
            m.insert(
                "config".into(),
                yaml_to_dynamic(&serde_yaml::Value::Mapping(svc.config.clone())),
            );
            let env_map: Map = svc
                .env
                .iter()
                .map(|(k, v)| (k.as_str().into(), Dynamic::from(v.clone())))
                .collect();
            m.insert("env".into(), env_map.into());
            let tag = ps.tag.clone().unwrap_or_else(|| plan.tag.clone());
            m.insert("tag".into(), tag.clone().into());
            m.insert(
                "commit".into(),
                plan.commit.as_ref().map_or(Dynamic::UNIT, |c| c.sha.clone().into()),
            );
            m.insert(
                "dirty".into(),
                plan.commit.as_ref().is_some_and(super::plan::Commit::dirty).into(),
            );
            m.insert(
                "regions".into(),
                ps.regions.iter().cloned().map(Dynamic::from).collect::<Array>().into(),
            );
            m.insert(
                "environment".into(),
                plan.environment.clone().map_or(Dynamic::UNIT, Dynamic::from),
            );
            m.insert("dry_run".into(), plan.dry_run.into());
            m.insert(
                "secrets".into(),
                svc.secrets.iter().cloned().map(Dynamic::from).collect::<Array>().into(),
            );
            let mut e: Vec<(String, String)> =
                svc.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            e.push(("PILUM_SERVICE".into(), ps.name.clone()));
            e.push(("PILUM_TAG".into(), tag));
            if let Some(envname) = &plan.environment {
                e.push(("PILUM_ENV".into(), envname.clone()));
            }
            services.push(Some(Prepared { base: m, env: e, source }));
        }
        Self { steps, bridge, root, services }
    }
}

impl Runner for RecipeRunner {
    fn run(&self, a: &Attempt<'_>) -> Result<Option<Map>, TaskFailure> {
        let svc = &a.plan.services[a.task.service];
        let step = a.plan.step(a.task);
        let prepared = self.services[a.task.service]
            .as_ref()
            .expect("the runner is made for the plan it runs: a service with a task is prepared");
        let mut ctx = prepared.base.clone();
        let region = a.task.region.clone().or_else(|| svc.regions.first().cloned());
        ctx.insert("region".into(), region.clone().map_or(Dynamic::UNIT, Dynamic::from));
        ctx.insert("outputs".into(), a.outputs.clone().into());
        ctx.insert("step".into(), step.decl.clone().into());
        ctx.insert("attempt".into(), Dynamic::from(rhai::INT::from(a.attempt)));
        let mut env = prepared.env.clone();
        if let Some(r) = &region {
            env.push(("PILUM_REGION".into(), r.clone()));
        }
        let workdir = match step.dir {
            StepDir::Service => self.root.join(&svc.dir),
            StepDir::Root => self.root.clone(),
        };
        let call = CallCtx {
            cancel: a.cancel.clone(),
            deadline: a.timeout.map(Deadline::after),
            workdir: Some(workdir),
            env,
            label: a.label.label.clone(),
        };
        self.bridge.take_tail(&a.label.label);
        let result = self.steps.call(&svc.recipe, &step.run, ctx, call);
        let tail = self.bridge.take_tail(&a.label.label);
        result.map_err(|e| {
            let src = &prepared.source;
            let (line, col) = locate::step_in(&src.config, &src.text, &svc.recipe, &step.name);
            let at = Location { file: src.file.clone(), line, col };
            let text = &src.text;
            let message = match &e {
                StepError::Failed(m) => relocate(m, &at, text, &step.name, &svc.name),
                StepError::TimedOut(_) => {
                    relocate(&e.to_string(), &at, text, &step.name, &svc.name)
                }
                StepError::Cancelled => e.to_string(),
            };
            TaskFailure {
                message,
                timed_out: matches!(e, StepError::TimedOut(_)),
                cancelled: e == StepError::Cancelled,
                tail,
                at: (e != StepError::Cancelled).then_some(at),
            }
        })
    }
}

/// A rendered step failure, pointed at the step in `pilum.yaml` (`at`, in `text`). The
/// rendering is the script error's: the first line, ` --> place` and its three-line source
/// snippet, then more lines (`help:`, `= note:` frames, the command's `last output lines:`).
/// When the place is in pilum's own code (`<built-in>/…`, `<stdlib>/…`) or unknown, the step
/// takes its place and the old place becomes a note; otherwise the step is added as a note.
/// The command's last output lines stay last.
fn relocate(message: &str, at: &Location, text: &str, step: &str, service: &str) -> String {
    let lines: Vec<&str> = message.lines().collect();
    let first = lines.first().copied().unwrap_or("step failed");
    let (mut place, mut pointer, mut next) = (None, &lines[..0], 1.min(lines.len()));
    if let Some(p) = lines.get(1).and_then(|l| l.strip_prefix(" --> ")) {
        let snippet =
            lines.len() >= 5 && lines[2].trim() == "|" && lines[4].trim_start().starts_with('|');
        next = if snippet { 5 } else { 2 };
        place = Some(p);
        pointer = &lines[1..next];
    }
    // `last output lines:` and its `  | …` lines go last.
    let (mut notes, mut output) = (Vec::new(), Vec::new());
    let mut in_output = false;
    for &l in &lines[next..] {
        in_output = l == "  last output lines:" || (in_output && l.starts_with("  | "));
        if in_output { output.push(l) } else { notes.push(l) }
    }
    let step_place = format!("{}:{}:{}", at.file, at.line, at.col);
    let ours = place.is_none_or(|p| p.starts_with("<built-in>") || p.starts_with("<stdlib>"));
    let mut out = vec![first.to_string()];
    if ours {
        out.push(format!(" --> {step_place}"));
        out.extend(crate::diagnostic::snippet(text, at.line, at.col));
    } else {
        out.extend(pointer.iter().map(std::string::ToString::to_string));
    }
    out.extend(notes.iter().map(std::string::ToString::to_string));
    match place {
        Some(p) if ours => out.push(format!("  = note: raised at {p}")),
        Some(_) => {
            out.push(format!("  = note: step `{step}` of service `{service}` is at {step_place}"));
        }
        None => {}
    }
    out.extend(output.iter().map(std::string::ToString::to_string));
    out.join("\n")
}
