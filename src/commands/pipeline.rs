//! From configuration to a valid plan, for every command: find the project, load every
//! service, load the recipe catalogue, select services, check each selected service against its
//! recipe, and build the plan. Every problem is collected and reported at once; nothing runs
//! before this succeeds. The values of the services' `secrets:` are registered for masking as
//! soon as the project is loaded, before anything is printed (the plan's fields included).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::diagnostic::Problem;
use crate::error::Error;
use crate::recipe::{Catalog, Recipe, ResolveError, validate};
use crate::service::select::{self, Selected};
use crate::service::{Diagnostic, Parsed, Project, changed, discover};
use crate::state::{Backend, Location};

use crate::orchestrator::plan::{Plan, PlannedService, StepFilter};

/// What to select and how to plan, from the command line.
#[derive(Debug, Clone, Default)]
pub(crate) struct Config {
    pub dir: Option<PathBuf>,
    pub services: Vec<String>,
    pub providers: Vec<String>,
    pub only_changed: bool,
    pub since: Option<String>,
    pub environment: Option<String>,
    pub recipe_paths: Vec<PathBuf>,
    pub filter: StepFilter,
    pub tag: Option<String>,
    pub dry_run: bool,
    /// Fail when a service's `secrets:` are not set in the environment (real runs only).
    pub require_secrets: bool,
    /// `--shard I/N`: plan only that shard (`commands::shard`).
    pub shard: Option<String>,
    /// `--state URL`: the state backend (`crate::state`), over `PILUM_STATE` and the project's
    /// `state:` setting.
    pub state: Option<String>,
}

/// A loaded project with its selection, ready to plan.
pub(crate) struct Loaded {
    pub project: Project,
    pub selected: Vec<Selected>,
    /// The recipe of every selected service, in selection order.
    pub recipes: Vec<Arc<Recipe>>,
    /// The changed-files base, when `--only-changed`.
    pub base: Option<String>,
    /// Non-fatal problems of the selected services (unknown keys).
    pub warnings: Vec<Diagnostic>,
    /// The state backend, when loading needed it (`--only-changed`).
    pub state: Option<Arc<dyn Backend>>,
    /// The uncommitted changes under the root, when they were listed while loading
    /// ([`load_to_plan`], or `--only-changed`'s status pass).
    pub worktree: Option<Vec<String>>,
}

pub(crate) fn usage(diags: &[Diagnostic]) -> Error {
    Error::located(diags.to_vec())
}

/// Load the project and catalogue and apply the selection.
pub(crate) fn load(cfg: &Config) -> Result<Loaded, Error> {
    load_at(cfg, discover::project_root(cfg.dir.as_deref()).map_err(Error::usage)?)
}

/// [`load`] for a command that plans next ([`plan`]): `git status` lists the checkout's
/// changes (for the version tag's `-dirty`) while the project loads. `--only-changed` takes
/// them from its own status pass instead.
pub(crate) fn load_to_plan(cfg: &Config) -> Result<Loaded, Error> {
    let root = discover::project_root(cfg.dir.as_deref()).map_err(Error::usage)?;
    if cfg.only_changed {
        return load_at(cfg, root);
    }
    let (loaded, status) = std::thread::scope(|s| {
        let status = s.spawn(|| super::checkout::status(&root));
        (load_at(cfg, root.clone()), status.join().expect("the git thread does not panic"))
    });
    let mut loaded = loaded?;
    loaded.worktree = status;
    Ok(loaded)
}

fn load_at(cfg: &Config, root: PathBuf) -> Result<Loaded, Error> {
    // `--only-changed` asks git for untracked files anyway; discovery then reads only the index.
    let mut state = None;
    let env = cfg.environment.as_deref();
    let (changes, files, parsed) = if cfg.only_changed {
        let backend = open_state(cfg, &root)?;
        let (last, notes) =
            crate::state::history::base_commit(backend.as_ref(), env).map_err(Error::usage)?;
        state = Some(backend);
        // git's status pass over the whole tree is most of the time: list and parse the
        // index's services meanwhile; the untracked ones the pass finds are added after.
        let (changes, listed, parsed) = std::thread::scope(|s| {
            let changes =
                s.spawn(|| changed::changed_files(&root, cfg.since.as_deref(), last.as_deref()));
            let listed = discover::list_git(&root, false);
            let parsed: HashMap<PathBuf, Parsed> = match &listed {
                Some(l) => {
                    let files = discover::from_listing(&root, l.clone(), &[]);
                    let parsed = Project::parse(&root, env, &files);
                    files.into_iter().zip(parsed).collect()
                }
                None => HashMap::new(),
            };
            (changes.join().expect("the git thread does not panic"), listed, parsed)
        });
        let mut c = changes.map_err(Error::usage)?;
        c.notes.extend(notes);
        let files = match listed {
            Some(l) => discover::from_listing(&root, l, &c.untracked),
            None => discover::find(&root),
        };
        (Some(c), files, parsed)
    } else {
        (None, discover::find(&root), HashMap::new())
    };
    // Project-level problems (a file that does not parse, unknown dependencies, cycles,
    // duplicate names) fail every command, but only after the field problems of every
    // selected service are collected too, so `check` reports everything at once.
    let (project, mut diags) = Project::load(&root, env, files, parsed);
    if project.services.is_empty() {
        if !diags.is_empty() {
            return Err(usage(&diags));
        }
        return Err(Error::usage(format!(
            "no services found under `{}`\nhelp: a service is a directory with a `pilum.yaml`; create one with `pilum init`",
            root.display()
        )));
    }
    register_secrets(&project);
    let catalog = Catalog::load(&root, &cfg.recipe_paths).map_err(|d| usage(&d))?;
    // Resolve recipes first: `--provider` selects by the recipe's provider.
    let mut resolved: Vec<Option<Arc<Recipe>>> = Vec::with_capacity(project.services.len());
    let mut unresolved: Vec<Vec<Diagnostic>> = Vec::with_capacity(project.services.len());
    for s in &project.services {
        let mut bad = Vec::new();
        match catalog.resolve(&s.recipe) {
            Ok(r) => resolved.push(Some(r)),
            Err(ResolveError::Unknown { what, suggestion }) => {
                let key = if s.config.contains_key("recipe") { "recipe" } else { "provider" };
                let problem = Problem::UnresolvedRecipe { service: s.name.clone(), why: what };
                bad.push(s.diag(&[key], problem).suggest(suggestion.as_deref()));
                resolved.push(None);
            }
            Err(ResolveError::Broken(d)) => {
                bad.extend(d);
                resolved.push(None);
            }
        }
        unresolved.push(bad);
    }
    let provider_of =
        |i: usize| resolved[i].as_ref().and_then(|r| r.decl.provider.clone()).unwrap_or_default();
    let mut selected = select::by_name(
        &project.services,
        &project.deps,
        &cfg.services,
        &cfg.providers,
        &provider_of,
    )
    // A name that is unknown because its file did not load: the file's problem says why.
    .map_err(|e| if diags.is_empty() { Error::usage(e) } else { usage(&diags) })?;
    let mut warnings = select::left_out(&project.services, &project.deps, &selected);
    if let Some(c) = &changes {
        let note =
            |n: &String| Diagnostic::of(PathBuf::new(), Problem::ChangeNote { note: n.clone() });
        warnings.extend(c.notes.iter().map(note));
    }
    let section_of =
        |i: usize| resolved[i].as_ref().map(|r| (r.decl.section.clone(), r.decl.name.clone()));
    let mut base = None;
    let mut worktree = None;
    if let Some(changes) = changes {
        let artifacts = |i: usize| select::artifacts(&project.services[i], section_of(i));
        selected =
            select::by_changes(&project.services, &project.deps, &selected, &changes, &artifacts);
        base = Some(changes.base);
        worktree = Some(changes.worktree);
    }
    let picked: Vec<usize> = selected.iter().map(|s| s.index).collect();
    diags.extend(crate::service::config::unknown_keys(&project.services, &picked, &section_of));
    let mut recipes = Vec::new();
    for sel in &selected {
        if let Some(r) = &resolved[sel.index] {
            recipes.push(r.clone());
        }
    }
    // A broken recipe counts for the services that use it, or for all when none is selected.
    let mut chosen = vec![selected.is_empty(); project.services.len()];
    for &i in &picked {
        chosen[i] = true;
    }
    for (i, bad) in unresolved.iter().enumerate() {
        if chosen[i] {
            for d in bad {
                if !diags.contains(d) {
                    diags.push(d.clone());
                }
            }
        }
    }
    if let Some(e) = &cfg.environment {
        let defined = selected.iter().any(|s| project.services[s.index].environments.contains(e));
        if !defined && !selected.is_empty() {
            let known: Vec<&str> = selected
                .iter()
                .flat_map(|s| project.services[s.index].environments.iter().map(String::as_str))
                .collect();
            let w = Diagnostic::of(PathBuf::new(), Problem::UnusedEnvironment { env: e.clone() });
            warnings.push(w.suggest(crate::diagnostic::closest(e, known)));
        }
    }
    if !diags.is_empty() {
        for sel in &selected {
            if let Some(r) = &resolved[sel.index]
                && let Err(d) = validate::check(&project.services[sel.index], r)
            {
                diags.extend(d);
            }
        }
        return Err(usage(&diags));
    }
    Ok(Loaded { project, selected, recipes, base, warnings, state, worktree })
}

/// The state backend of the project at `root`: `--state`, else `PILUM_STATE`, else `state:` in
/// `pilum-project.yaml`, else the file backend. A bad URL or an unreachable server is a usage
/// error (exit 2), before anything runs.
pub(crate) fn open_state(cfg: &Config, root: &Path) -> Result<Arc<dyn Backend>, Error> {
    let from_env = std::env::var(crate::state::location::ENV).is_ok_and(|v| !v.trim().is_empty());
    let setting = if cfg.state.is_none() && !from_env {
        super::settings::load(root).map_err(Error::located)?.state
    } else {
        None
    };
    let location =
        Location::resolve(cfg.state.as_deref(), setting.as_deref()).map_err(Error::usage)?;
    crate::state::open(&location, root).map_err(Error::usage)
}

/// The loaded state backend, or the project's, opened now.
pub(crate) fn state(cfg: &Config, loaded: &Loaded) -> Result<Arc<dyn Backend>, Error> {
    match &loaded.state {
        Some(s) => Ok(s.clone()),
        None => open_state(cfg, &loaded.project.root),
    }
}

/// Mask the value of every service's `secrets:` in everything printed from now on: a step's
/// fields may hold `${API_TOKEN}`, and `plan --json` prints the fields.
fn register_secrets(project: &Project) {
    for s in &project.services {
        for name in &s.secrets {
            if let Ok(v) = std::env::var(name) {
                crate::redact::register(&v);
            }
        }
    }
}

/// Check the selected services against their recipes and build the plan.
pub(crate) fn plan(cfg: &Config, loaded: &Loaded) -> Result<Plan, Error> {
    let mut diags = Vec::new();
    let mut planned = Vec::new();
    let pos: std::collections::HashMap<usize, usize> =
        loaded.selected.iter().enumerate().map(|(i, s)| (s.index, i)).collect();
    // Each check calls the recipe's `plan(svc)`: independent per service, so on every core.
    let pairs: Vec<_> = loaded.selected.iter().zip(&loaded.recipes).collect();
    let checks = crate::sync::par_map(&pairs, 64, |(sel, recipe)| {
        validate::check(&loaded.project.services[sel.index], recipe)
    });
    for ((sel, recipe), check) in pairs.into_iter().zip(checks) {
        let s = &loaded.project.services[sel.index];
        if cfg.require_secrets {
            for name in &s.secrets {
                if std::env::var_os(name).is_none_or(|v| v.is_empty()) {
                    let problem =
                        Problem::SecretNotSet { name: name.clone(), service: s.name.clone() };
                    diags.push(s.diag(&["secrets"], problem));
                }
            }
        }
        match check {
            Ok(c) => {
                if cfg.require_secrets {
                    diags.extend(validate::missing_secrets(s, recipe, &c.fields));
                }
                planned.push(PlannedService {
                    name: s.name.clone(),
                    dir: s.dir.to_string_lossy().into_owned(),
                    recipe: recipe.clone(),
                    fields: c.fields,
                    steps: c.steps,
                    reason: sel.reason.clone(),
                    regions: s.regions.clone(),
                    depends_on: loaded.project.deps[sel.index]
                        .iter()
                        .filter_map(|d| pos.get(d).copied())
                        .collect(),
                    project_index: sel.index,
                    tag: None,
                });
            }
            Err(d) => diags.extend(d),
        }
    }
    if !diags.is_empty() {
        return Err(usage(&diags));
    }
    let commit = super::checkout::commit(&loaded.project.root, loaded.worktree.as_deref());
    let tag = match &cfg.tag {
        // The tag may end up in paths (`.pilum/deployments/<service>/<tag>`); `--tag` is
        // checked by clap, a script's `deploy(…, #{ tag })` here.
        Some(t) => crate::names::flag(t).map_err(|e| Error::usage(format!("tag {e}")))?,
        None => super::checkout::default_tag(commit.as_ref()),
    };
    if let Some(s) = super::shard::parse(cfg.shard.as_deref())? {
        let history = super::shard::history_weights(state(cfg, loaded)?.as_ref())?;
        planned = super::shard::select(planned, s, &history);
    }
    let mut plan = Plan::build(planned, &cfg.filter, tag, cfg.environment.clone(), cfg.dry_run);
    plan.commit = commit;
    Ok(plan)
}
