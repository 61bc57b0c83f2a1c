//! From configuration to a valid plan, for every command: find the project, load every
//! service, load the recipe catalogue, select services, check each selected service against its
//! recipe, and build the plan. Every problem is collected and reported at once; nothing runs
//! before this succeeds. The values of the services' `secrets:` are registered for masking as
//! soon as the project is loaded, before anything is printed (the plan's fields included).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::diagnostic::render_all;
use crate::error::Error;
use crate::recipe::{Catalog, Recipe, ResolveError, validate};
use crate::service::select::{self, Selected};
use crate::service::{Diagnostic, Project, changed, discover};

use crate::orchestrator::plan::{Plan, PlannedService, StepFilter};

/// What to select and how to plan, from the command line.
#[derive(Debug, Clone, Default)]
pub struct Config {
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
}

/// A loaded project with its selection, ready to plan.
pub struct Loaded {
    pub project: Project,
    pub selected: Vec<Selected>,
    /// The recipe of every selected service, in selection order.
    pub recipes: Vec<Arc<Recipe>>,
    /// The changed-files base, when `--only-changed`.
    pub base: Option<String>,
    /// Non-fatal problems of the selected services (unknown keys).
    pub warnings: Vec<Diagnostic>,
}

pub fn usage(diags: &[Diagnostic]) -> Error {
    Error::usage(render_all(diags))
}

/// Load the project and catalogue and apply the selection.
pub fn load(cfg: &Config) -> Result<Loaded, Error> {
    let root = discover::project_root(cfg.dir.as_deref()).map_err(Error::usage)?;
    // `--only-changed` asks git for untracked files anyway; discovery then reads only the index.
    let changes = if cfg.only_changed {
        Some(changed::changed_files(&root, cfg.since.as_deref()).map_err(Error::usage)?)
    } else {
        None
    };
    let files = match &changes {
        Some(c) => {
            discover::find_git(&root, Some(&c.untracked)).unwrap_or_else(|| discover::find(&root))
        }
        None => discover::find(&root),
    };
    let project =
        Project::load_files(&root, cfg.environment.as_deref(), files).map_err(|d| usage(&d))?;
    if project.services.is_empty() {
        return Err(Error::usage(format!(
            "no services found under `{}`\nhelp: a service is a directory with a `pilum.yaml`; create one with `pilum init`",
            root.display()
        )));
    }
    register_secrets(&project);
    let catalog = Catalog::load(&root, &cfg.recipe_paths).map_err(|d| usage(&d))?;
    // Resolve recipes first: `--provider` selects by the recipe's provider.
    let mut resolved: Vec<Option<Arc<Recipe>>> = Vec::with_capacity(project.services.len());
    let mut diags = Vec::new();
    for s in &project.services {
        match catalog.resolve(&s.recipe) {
            Ok(r) => resolved.push(Some(r)),
            Err(ResolveError::Unknown { what, suggestion }) => {
                let key = if s.config.contains_key("recipe") { "recipe" } else { "provider" };
                diags.push(
                    s.diag(&[key], format!("service `{}`: {what}", s.name))
                        .help("`pilum list --recipes` shows the available recipes; add your own in `recipes/<name>.rhai`")
                        .suggest(suggestion.as_deref()),
                );
                resolved.push(None);
            }
            Err(ResolveError::Broken(d)) => {
                for x in d {
                    if !diags.contains(&x) {
                        diags.push(x);
                    }
                }
                resolved.push(None);
            }
        }
    }
    let provider_of =
        |i: usize| resolved[i].as_ref().and_then(|r| r.decl.provider.clone()).unwrap_or_default();
    let mut selected =
        select::by_name(&project.services, &cfg.services, &cfg.providers, &provider_of)
            .map_err(|e| Error::usage(e.0))?;
    let mut base = None;
    if let Some(changes) = changes {
        selected = select::by_changes(&project.services, &project.deps, &selected, &changes);
        base = Some(changes.base);
    }
    let mut recipes = Vec::new();
    let mut warnings = Vec::new();
    for sel in &selected {
        if let Some(r) = &resolved[sel.index] {
            warnings.extend(validate::unknown_keys(&project.services[sel.index], r));
            recipes.push(r.clone());
        }
    }
    if let Some(e) = &cfg.environment {
        let defined = selected.iter().any(|s| project.services[s.index].environments.contains(e));
        if !defined && !selected.is_empty() {
            let known: Vec<&str> = selected
                .iter()
                .flat_map(|s| project.services[s.index].environments.iter().map(String::as_str))
                .collect();
            let mut w = Diagnostic::new(
                PathBuf::new(),
                format!(
                    "no selected service defines environment `{e}`; `--env {e}` changes nothing"
                ),
            )
            .help("add `environments:` with that name to a service's `pilum.yaml`");
            w = w.suggest(crate::diagnostic::closest(e, known));
            warnings.push(w);
        }
    }
    let bad: Vec<&Selected> = selected.iter().filter(|s| resolved[s.index].is_none()).collect();
    if !bad.is_empty() || (!diags.is_empty() && selected.is_empty()) {
        return Err(usage(&diags));
    }
    Ok(Loaded { project, selected, recipes, base, warnings })
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
pub fn plan(cfg: &Config, loaded: &Loaded) -> Result<Plan, Error> {
    let mut diags = Vec::new();
    let mut planned = Vec::new();
    let pos: std::collections::HashMap<usize, usize> =
        loaded.selected.iter().enumerate().map(|(i, s)| (s.index, i)).collect();
    for (sel, recipe) in loaded.selected.iter().zip(&loaded.recipes) {
        let s = &loaded.project.services[sel.index];
        if cfg.require_secrets {
            for name in &s.secrets {
                if std::env::var_os(name).is_none_or(|v| v.is_empty()) {
                    diags.push(
                        s.diag(&["secrets"], format!("secret `{name}` of service `{}` is not set", s.name))
                            .help(format!("export `{name}` (in CI, from the secret store); `pilum plan` and `--dry-run` do not need it")),
                    );
                }
            }
        }
        match validate::check(s, recipe) {
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
                });
            }
            Err(d) => diags.extend(d),
        }
    }
    if !diags.is_empty() {
        return Err(usage(&diags));
    }
    let tag = match &cfg.tag {
        // The tag may end up in paths (`.pilum/deployments/<service>/<tag>`); `--tag` is
        // checked by clap, a script's `deploy(…, #{ tag })` here.
        Some(t) => crate::names::flag(t).map_err(|e| Error::usage(format!("tag {e}")))?,
        None => default_tag(&loaded.project.root),
    };
    if let Some(s) = super::shard::parse(cfg.shard.as_deref())? {
        planned = super::shard::select(planned, s, &loaded.project.root);
    }
    Ok(Plan::build(planned, &cfg.filter, tag, cfg.environment.clone(), cfg.dry_run))
}

/// The short git SHA of `HEAD`, else a UTC timestamp. The SHA is read from `.git` directly
/// (no process for the common case), with `git rev-parse` as the fallback.
fn default_tag(root: &Path) -> String {
    if let Some(sha) = head_sha(root) {
        return sha[..12.min(sha.len())].to_string();
    }
    let sha = std::process::Command::new("git")
        .arg("-C")
        .arg(root)
        .args(["rev-parse", "--short=12", "HEAD"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty());
    sha.unwrap_or_else(|| chrono::Utc::now().format("%Y%m%d%H%M%S").to_string())
}

/// `HEAD`'s full SHA from the git directory: a detached SHA, a loose ref, or `packed-refs`.
/// `None` for anything unusual (the caller asks git).
fn head_sha(root: &Path) -> Option<String> {
    let dot_git = root.ancestors().map(|d| d.join(".git")).find(|p| p.exists())?;
    let git_dir = if dot_git.is_file() {
        // A linked worktree or submodule: `gitdir: <path>`.
        let text = std::fs::read_to_string(&dot_git).ok()?;
        let p = PathBuf::from(text.strip_prefix("gitdir:")?.trim());
        if p.is_absolute() { p } else { dot_git.parent()?.join(p) }
    } else {
        dot_git
    };
    let head = std::fs::read_to_string(git_dir.join("HEAD")).ok()?;
    let head = head.trim();
    let is_sha = |s: &str| s.len() >= 40 && s.bytes().all(|b| b.is_ascii_hexdigit());
    let Some(reference) = head.strip_prefix("ref:").map(str::trim) else {
        return is_sha(head).then(|| head.to_string());
    };
    // Refs live in the common directory of a linked worktree.
    let common = match std::fs::read_to_string(git_dir.join("commondir")) {
        Ok(c) => git_dir.join(c.trim()),
        Err(_) => git_dir.clone(),
    };
    for dir in [&git_dir, &common] {
        if let Ok(sha) = std::fs::read_to_string(dir.join(reference)) {
            let sha = sha.trim();
            return is_sha(sha).then(|| sha.to_string());
        }
    }
    let packed = std::fs::read_to_string(common.join("packed-refs")).ok()?;
    packed.lines().find_map(|l| {
        let (sha, name) = l.split_once(' ')?;
        (name == reference && is_sha(sha)).then(|| sha.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_sha_matches_git() {
        let t = tempfile::tempdir().unwrap();
        let git = |args: &[&str]| {
            let o = std::process::Command::new("git")
                .arg("-C")
                .arg(t.path())
                .args(args)
                .env("GIT_AUTHOR_NAME", "t")
                .env("GIT_AUTHOR_EMAIL", "t@example.com")
                .env("GIT_COMMITTER_NAME", "t")
                .env("GIT_COMMITTER_EMAIL", "t@example.com")
                .output()
                .unwrap();
            assert!(o.status.success(), "git {args:?}");
            String::from_utf8_lossy(&o.stdout).trim().to_string()
        };
        assert_eq!(head_sha(t.path()), None);
        git(&["init", "-q", "-b", "main"]);
        assert_eq!(head_sha(t.path()), None, "no commit yet");
        git(&["commit", "-q", "--allow-empty", "-m", "one"]);
        let want = git(&["rev-parse", "HEAD"]);
        assert_eq!(head_sha(t.path()).as_deref(), Some(want.as_str()));
        git(&["pack-refs", "--all"]);
        assert_eq!(head_sha(t.path()).as_deref(), Some(want.as_str()));
        git(&["checkout", "-q", "--detach"]);
        assert_eq!(head_sha(t.path()).as_deref(), Some(want.as_str()));
        std::fs::create_dir_all(t.path().join("sub")).unwrap();
        assert_eq!(head_sha(&t.path().join("sub")).as_deref(), Some(want.as_str()));
    }
}
