//! A recipe's hooks: `fn status(ctx)`, `fn logs(ctx)` and `fn rollback(ctx)`, which `pilum
//! status`, `pilum logs` and `pilum rollback` call for a service. A recipe supports a hook by
//! defining the function (one parameter); nothing is declared. A hook is called once per
//! *target*: per region for a service whose steps run per region, else once. Its context is the
//! step context without what only a deploy has (`tag`, `outputs`, `step`, `attempt`), plus the
//! hook's own keys (`since`, `follow`, `to`), and it runs on the run's one engine through
//! [`StepRunner`] like a step: same sandbox, cancel token, deadline and dry run.
//!
//! What a hook returns is checked here and becomes typed data: [`Status`] and [`Rolled`]. The
//! contract for recipe authors is `docs/recipes.md` ("Hooks").

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rhai::{Array, Dynamic, Map};

use super::catalog::Recipe;
use super::declaration::Step;
use super::runner::{StepError, StepRunner};
use super::value::{type_name, yaml_to_dynamic};
use crate::script::{CallCtx, CancelToken, Deadline, Sink};
use crate::service::Service;

/// The hooks, in the order their commands are documented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hook {
    Status,
    Logs,
    Rollback,
}

impl Hook {
    pub(crate) const ALL: [Hook; 3] = [Hook::Status, Hook::Logs, Hook::Rollback];

    /// The function's name, which is also the command's.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Hook::Status => "status",
            Hook::Logs => "logs",
            Hook::Rollback => "rollback",
        }
    }
}

/// Whether `recipe` implements `hook` (defines `fn <hook>(ctx)`).
pub(crate) fn supports(recipe: &Recipe, hook: Hook) -> bool {
    recipe.ast.iter_functions().any(|f| f.name == hook.name() && f.params.len() == 1)
}

/// The hooks `recipe` implements.
pub(crate) fn supported(recipe: &Recipe) -> Vec<Hook> {
    Hook::ALL.into_iter().filter(|h| supports(recipe, *h)).collect()
}

/// How a target is doing, from the provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Health {
    Healthy,
    Degraded,
    Unhealthy,
    Unknown,
}

impl Health {
    pub(crate) const NAMES: [&'static str; 4] = ["healthy", "degraded", "unhealthy", "unknown"];

    pub(crate) fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "healthy" => Health::Healthy,
            "degraded" => Health::Degraded,
            "unhealthy" => Health::Unhealthy,
            "unknown" => Health::Unknown,
            _ => return None,
        })
    }

    pub(crate) fn as_str(self) -> &'static str {
        Health::NAMES[self as usize]
    }
}

/// What `fn status(ctx)` returns: `#{ revision, version, url, health, detail }`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct Status {
    /// The live revision as the provider names it (a Cloud Run revision, a task definition…).
    pub revision: Option<String>,
    /// The version running (an image tag, a release number), when the provider says.
    pub version: Option<String>,
    pub url: Option<String>,
    pub health: Health,
    /// One line saying why, for anything but `healthy`.
    pub detail: Option<String>,
}

/// What `fn rollback(ctx)` returns: `#{ revision, url }`, the revision now live.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct Rolled {
    pub revision: Option<String>,
    pub url: Option<String>,
}

/// How calling a hook failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HookError {
    /// The hook ran and failed (a script error, its deadline, Ctrl-C).
    Failed(StepError),
    /// The hook returned something that is not its contract.
    Returned { recipe: String, hook: &'static str, problem: String },
}

impl std::fmt::Display for HookError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HookError::Failed(e) => write!(f, "{e}"),
            HookError::Returned { recipe, hook, problem } => write!(
                f,
                "`fn {hook}(ctx)` of recipe `{recipe}` {problem}\nhelp: see \"Hooks\" in docs/recipes.md for what `{hook}` returns"
            ),
        }
    }
}

impl HookError {
    pub(crate) fn cancelled(&self) -> bool {
        matches!(self, HookError::Failed(StepError::Cancelled))
    }
}

/// One place a hook is called for: a service, in one region when its steps run per region.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub service: String,
    pub recipe: Arc<Recipe>,
    pub region: Option<String>,
    pub environment: Option<String>,
    /// `api`, or `api@us-central1` for one region of a regional service: prefixes its output.
    pub label: String,
    /// The hook context without the hook's own keys.
    ctx: Map,
    env: Vec<(String, String)>,
    workdir: PathBuf,
}

/// What a service needs to become targets: its validated fields and its steps.
pub(crate) struct ServiceHooks<'a> {
    pub service: &'a Service,
    pub recipe: &'a Arc<Recipe>,
    pub fields: &'a Map,
    pub steps: &'a [Step],
}

/// The targets of a service: one per region when any of its steps runs per region and it has
/// regions, else one (with `ctx.region` the first region, or `()`).
pub(crate) fn targets(
    s: &ServiceHooks<'_>,
    root: &Path,
    environment: Option<&str>,
    dry_run: bool,
) -> Vec<Target> {
    let svc = s.service;
    let mut base = Map::new();
    base.insert("service".into(), svc.name.clone().into());
    base.insert("dir".into(), svc.dir.to_string_lossy().into_owned().into());
    base.insert("root".into(), root.display().to_string().into());
    base.insert("recipe".into(), s.recipe.decl.name.clone().into());
    base.insert("fields".into(), s.fields.clone().into());
    base.insert("config".into(), yaml_to_dynamic(&serde_yaml::Value::Mapping(svc.config.clone())));
    let env_map: Map =
        svc.env.iter().map(|(k, v)| (k.as_str().into(), Dynamic::from(v.clone()))).collect();
    base.insert("env".into(), env_map.into());
    base.insert(
        "regions".into(),
        svc.regions.iter().cloned().map(Dynamic::from).collect::<Array>().into(),
    );
    base.insert("environment".into(), environment.map_or(Dynamic::UNIT, |e| e.to_string().into()));
    base.insert("dry_run".into(), dry_run.into());
    base.insert(
        "secrets".into(),
        svc.secrets.iter().cloned().map(Dynamic::from).collect::<Array>().into(),
    );
    let mut env: Vec<(String, String)> =
        svc.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    env.push(("PILUM_SERVICE".into(), svc.name.clone()));
    if let Some(e) = environment {
        env.push(("PILUM_ENV".into(), e.to_string()));
    }
    let workdir = root.join(&svc.dir);
    let regional = s.steps.iter().any(|st| st.per_region) && !svc.regions.is_empty();
    let regions: Vec<Option<String>> = if regional {
        svc.regions.iter().cloned().map(Some).collect()
    } else {
        vec![svc.regions.first().cloned()]
    };
    regions
        .into_iter()
        .map(|region| {
            let mut ctx = base.clone();
            ctx.insert("region".into(), region.clone().map_or(Dynamic::UNIT, Dynamic::from));
            let mut env = env.clone();
            if let Some(r) = &region {
                env.push(("PILUM_REGION".into(), r.clone()));
            }
            let label = match (&region, regional) {
                (Some(r), true) => format!("{}@{r}", svc.name),
                _ => svc.name.clone(),
            };
            Target {
                service: svc.name.clone(),
                recipe: s.recipe.clone(),
                region,
                environment: environment.map(str::to_string),
                label,
                ctx,
                env,
                workdir: workdir.clone(),
            }
        })
        .collect()
}

/// What `pilum logs` asks for.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct LogsRequest {
    pub since: Option<Duration>,
    pub follow: bool,
}

/// Calls hooks on one engine (full profile), shared by every target of a command.
pub(crate) struct HookRunner {
    steps: StepRunner,
}

impl HookRunner {
    /// An engine confined to `root`; under `dry_run` mutating calls are recorded, not run.
    pub(crate) fn new(root: &Path, dry_run: bool, verbose: u8, sink: Arc<dyn Sink>) -> Self {
        Self { steps: StepRunner::new(root, dry_run, verbose, sink) }
    }

    /// Call `hook` for `target` with the hook's own context keys `extra`. Output and logs go
    /// to the sink under the target's label.
    fn call(
        &self,
        target: &Target,
        hook: Hook,
        extra: Map,
        cancel: &CancelToken,
        timeout: Option<Duration>,
    ) -> Result<Option<Map>, HookError> {
        let mut ctx = target.ctx.clone();
        ctx.insert("hook".into(), hook.name().into());
        ctx.extend(extra);
        let call = CallCtx {
            cancel: cancel.clone(),
            deadline: timeout.map(Deadline::after),
            workdir: Some(target.workdir.clone()),
            env: target.env.clone(),
            label: target.label.clone(),
        };
        self.steps.call(&target.recipe, hook.name(), ctx, call).map_err(HookError::Failed)
    }

    /// `fn status(ctx)`.
    pub(crate) fn status(
        &self,
        target: &Target,
        cancel: &CancelToken,
        timeout: Option<Duration>,
    ) -> Result<Status, HookError> {
        let m = self.call(target, Hook::Status, Map::new(), cancel, timeout)?;
        status_from(&target.recipe.decl.name, m)
    }

    /// `fn logs(ctx)` with `ctx.since` (text in the one duration grammar, `()` for the
    /// provider's default), `ctx.since_secs` and `ctx.follow`. Returns when the hook does (with
    /// `follow`, when Ctrl-C cancels `cancel`).
    pub(crate) fn logs(
        &self,
        target: &Target,
        request: LogsRequest,
        cancel: &CancelToken,
        timeout: Option<Duration>,
    ) -> Result<(), HookError> {
        let mut extra = Map::new();
        match request.since {
            Some(d) => {
                extra.insert("since".into(), crate::duration::format(d).into());
                let secs = rhai::INT::try_from(d.as_secs()).unwrap_or(rhai::INT::MAX);
                extra.insert("since_secs".into(), Dynamic::from(secs));
            }
            None => {
                extra.insert("since".into(), Dynamic::UNIT);
                extra.insert("since_secs".into(), Dynamic::UNIT);
            }
        }
        extra.insert("follow".into(), request.follow.into());
        self.call(target, Hook::Logs, extra, cancel, timeout).map(|_| ())
    }

    /// `fn rollback(ctx)` with `ctx.to`: a revision or version, or `()` for the provider's
    /// previous one.
    pub(crate) fn rollback(
        &self,
        target: &Target,
        to: Option<&str>,
        cancel: &CancelToken,
        timeout: Option<Duration>,
    ) -> Result<Rolled, HookError> {
        let mut extra = Map::new();
        extra.insert("to".into(), to.map_or(Dynamic::UNIT, |t| t.to_string().into()));
        let m = self.call(target, Hook::Rollback, extra, cancel, timeout)?;
        rolled_from(&target.recipe.decl.name, m)
    }
}

/// A returned map's optional text value: `()` and `""` are none, numbers become text.
fn text(m: &Map, key: &str) -> Result<Option<String>, String> {
    match m.get(key) {
        None => Ok(None),
        Some(v) if v.is_unit() => Ok(None),
        Some(v) if v.is_string() => {
            let s = v.clone().into_string().expect("checked is_string");
            Ok((!s.is_empty()).then_some(s))
        }
        Some(v) if v.is_int() || v.is_float() || v.is_bool() => Ok(Some(v.to_string())),
        Some(v) => Err(format!("returned `{key}` as {}; expected text or `()`", type_name(v))),
    }
}

fn returned(recipe: &str, hook: &'static str, problem: String) -> HookError {
    HookError::Returned { recipe: recipe.to_string(), hook, problem }
}

fn status_from(recipe: &str, m: Option<Map>) -> Result<Status, HookError> {
    let bad = |p: String| returned(recipe, "status", p);
    let Some(m) = m else {
        return Err(bad(
            "returned nothing; expected `#{ revision, version, url, health, detail }`".into(),
        ));
    };
    let health = match text(&m, "health").map_err(bad)? {
        None => Health::Unknown,
        Some(h) => Health::parse(&h).ok_or_else(|| {
            bad(format!("returned health `{h}`; expected one of {}", Health::NAMES.join(", ")))
        })?,
    };
    Ok(Status {
        revision: text(&m, "revision").map_err(bad)?,
        version: text(&m, "version").map_err(bad)?,
        url: text(&m, "url").map_err(bad)?,
        health,
        detail: text(&m, "detail").map_err(bad)?,
    })
}

fn rolled_from(recipe: &str, m: Option<Map>) -> Result<Rolled, HookError> {
    let bad = |p: String| returned(recipe, "rollback", p);
    let Some(m) = m else {
        return Ok(Rolled { revision: None, url: None });
    };
    Ok(Rolled { revision: text(&m, "revision").map_err(bad)?, url: text(&m, "url").map_err(bad)? })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, Dynamic)]) -> Map {
        pairs.iter().map(|(k, v)| ((*k).into(), v.clone())).collect()
    }

    #[test]
    fn a_status_map_becomes_typed_data() {
        let m = map(&[
            ("revision", "api-00002-xyz".into()),
            ("version", Dynamic::from(7_i64)),
            ("url", "".into()),
            ("health", "degraded".into()),
            ("detail", Dynamic::UNIT),
        ]);
        let s = status_from("r", Some(m)).expect("valid");
        assert_eq!(s.revision.as_deref(), Some("api-00002-xyz"));
        assert_eq!(s.version.as_deref(), Some("7"));
        assert_eq!(s.url, None, "an empty URL is none");
        assert_eq!(s.health, Health::Degraded);
        assert_eq!(status_from("r", Some(Map::new())).expect("valid").health, Health::Unknown);
    }

    #[test]
    fn a_status_outside_the_contract_is_refused_naming_the_recipe() {
        let e = status_from("x", Some(map(&[("health", "fine".into())]))).expect_err("bad");
        let text = e.to_string();
        assert!(
            text.starts_with("`fn status(ctx)` of recipe `x` returned health `fine`"),
            "{text}"
        );
        assert!(text.contains("healthy, degraded, unhealthy, unknown"), "{text}");
        let e = status_from("x", Some(map(&[("url", Dynamic::from(rhai::Array::new()))])));
        assert!(e.expect_err("bad").to_string().contains("returned `url` as array"));
        assert!(status_from("x", None).is_err());
    }

    #[test]
    fn a_rollback_may_return_nothing() {
        assert_eq!(rolled_from("r", None), Ok(Rolled { revision: None, url: None }));
        let r = rolled_from("r", Some(map(&[("revision", "3".into())]))).expect("valid");
        assert_eq!(r.revision.as_deref(), Some("3"));
    }

    #[test]
    fn health_names_round_trip() {
        for n in Health::NAMES {
            assert_eq!(Health::parse(n).map(Health::as_str), Some(n));
        }
    }
}
