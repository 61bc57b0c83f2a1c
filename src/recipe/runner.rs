//! Runs recipe steps. One engine per run (from the one builder, full profile) and one compiled
//! AST per recipe are shared by every task; a task is one call of the step's function with the
//! step context `ctx`, wrapped in a call context carrying the task's cancel token, deadline,
//! working directory, environment and label. Script events (command output, prints, logs,
//! dry-run records) are turned into orchestrator events for the task whose label they carry.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rhai::{Array, CallFnOptions, Dynamic, Engine, Map, Scope};

use crate::orchestrator::event::{Event, Sink as EventSink, Stream, TaskRef};
use crate::orchestrator::execute::{Attempt, Runner, TaskFailure, task_ref};
use crate::orchestrator::plan::Plan;
use crate::recipe::declaration::StepDir;
use crate::recipe::value::yaml_to_dynamic;
use crate::redact::redact;
use crate::script::engine::{self, Limits, Profile};
use crate::script::{CallCtx, Deadline, Host, LogLevel, Stop, with_call};

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
        let mut tails = self.tails.lock().expect("tail lock");
        let t = tails.entry(label.to_string()).or_default();
        if t.len() == TAIL {
            t.pop_front();
        }
        t.push_back(line.to_string());
    }

    fn take_tail(&self, label: &str) -> Vec<String> {
        self.tails.lock().expect("tail lock").remove(label).map(Vec::from).unwrap_or_default()
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

pub struct RecipeRunner {
    engine: Engine,
    bridge: Arc<Bridge>,
    root: PathBuf,
    /// Per planned service: the parts of `ctx` that do not change between its tasks.
    base: Vec<Map>,
    /// Per planned service: the environment of its commands.
    env: Vec<Vec<(String, String)>>,
}

impl RecipeRunner {
    pub fn new(
        project: &crate::service::Project,
        plan: &Plan,
        verbose: u8,
        out: Arc<dyn EventSink + Send + Sync>,
    ) -> Self {
        let root: &Path = &project.root;
        let tasks = plan.tasks.iter().map(|t| (plan.label(t), task_ref(plan, t))).collect();
        let bridge = Arc::new(Bridge {
            tasks,
            out,
            tails: Mutex::new(HashMap::new()),
            verbose: verbose > 0,
        });
        let host = Arc::new(Host {
            root: root.to_path_buf(),
            dry_run: plan.dry_run,
            verbose,
            sink: bridge.clone(),
        });
        let engine = engine::build(&host, Profile::Full(Limits::full()));
        let mut base = Vec::with_capacity(plan.services.len());
        let mut env = Vec::with_capacity(plan.services.len());
        for ps in &plan.services {
            let svc = &project.services[ps.project_index];
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
            m.insert("tag".into(), plan.tag.clone().into());
            m.insert(
                "regions".into(),
                ps.regions.iter().cloned().map(Dynamic::from).collect::<Array>().into(),
            );
            m.insert(
                "environment".into(),
                plan.environment.clone().map_or(Dynamic::UNIT, Dynamic::from),
            );
            m.insert("dry_run".into(), plan.dry_run.into());
            // Secret values never reach the output, whichever command prints them.
            for name in &svc.secrets {
                if let Ok(v) = std::env::var(name) {
                    crate::redact::register(&v);
                }
            }
            m.insert(
                "secrets".into(),
                svc.secrets.iter().cloned().map(Dynamic::from).collect::<Array>().into(),
            );
            base.push(m);
            let mut e: Vec<(String, String)> =
                svc.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            e.push(("PILUM_SERVICE".into(), ps.name.clone()));
            e.push(("PILUM_TAG".into(), plan.tag.clone()));
            if let Some(envname) = &plan.environment {
                e.push(("PILUM_ENV".into(), envname.clone()));
            }
            env.push(e);
        }
        Self { engine, bridge, root: root.to_path_buf(), base, env }
    }
}

impl Runner for RecipeRunner {
    fn run(&self, a: &Attempt<'_>) -> Result<Option<Map>, TaskFailure> {
        let svc = &a.plan.services[a.task.service];
        let step = a.plan.step(a.task);
        let mut ctx = self.base[a.task.service].clone();
        let region = a.task.region.clone().or_else(|| svc.regions.first().cloned());
        ctx.insert("region".into(), region.clone().map_or(Dynamic::UNIT, Dynamic::from));
        ctx.insert("outputs".into(), a.outputs.clone().into());
        ctx.insert("step".into(), step.decl.clone().into());
        ctx.insert("attempt".into(), Dynamic::from(a.attempt as rhai::INT));
        let mut env = self.env[a.task.service].clone();
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
        let ast = &svc.recipe.ast;
        // Top-level statements (imports) run before the call so functions see imported modules.
        let opts = CallFnOptions::new().eval_ast(true).rewind_scope(true);
        let result = with_call(call, || {
            self.engine.call_fn_with_options::<Dynamic>(
                opts,
                &mut Scope::new(),
                ast,
                &step.run,
                (Dynamic::from(ctx),),
            )
        });
        let tail = self.bridge.take_tail(&a.label.label);
        match result {
            Ok(v) => Ok(v.try_cast::<Map>()),
            Err(err) => {
                let fail = |message: String, timed_out: bool, cancelled: bool| TaskFailure {
                    message: redact(&message).into_owned(),
                    timed_out,
                    cancelled,
                    tail: tail.clone(),
                };
                match engine::stop_of(&err) {
                    Some(Stop::Exit(0)) => Ok(None),
                    Some(Stop::Cancelled) => Err(fail("interrupted".into(), false, true)),
                    Some(Stop::TimedOut(d)) => Err(fail(
                        format!(
                            "timed out after {} (its processes were killed)\nhelp: raise the step's `timeout` in the recipe, or `--timeout` for steps without one",
                            crate::process::secs(d)
                        ),
                        true,
                        false,
                    )),
                    _ => Err(fail(
                        crate::recipe::host::render_error(&err, &svc.recipe.ast_source),
                        false,
                        false,
                    )),
                }
            }
        }
    }
}
