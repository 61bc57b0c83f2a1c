//! Services: discovery, the `pilum.yaml` schema, `${VAR}` expansion, selection and the
//! dependency graph. [`Project::load`] is the entry point: parse and link every service,
//! reporting all problems at once.

pub(crate) mod changed;
pub(crate) mod config;
pub(crate) mod discover;
pub(crate) mod expand;
pub(crate) mod gitindex;
pub(crate) mod graph;
pub(crate) mod select;
pub(crate) mod shard;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub(crate) use crate::diagnostic::Diagnostic;
use crate::diagnostic::Problem;
use crate::yaml::Seg;
pub(crate) use config::{RecipeRef, Service};

/// One `pilum.yaml`'s services, or its problems.
pub(crate) type Parsed = Result<Vec<Service>, Vec<Diagnostic>>;

/// Every service of a project and their dependencies.
#[derive(Debug, Clone)]
pub(crate) struct Project {
    pub root: PathBuf,
    pub services: Vec<Service>,
    /// `deps[i]`: the services `services[i]` depends on.
    pub deps: Vec<Vec<usize>>,
}

impl Project {
    /// Parse the given `pilum.yaml` files (relative to `root`, sorted, from [`discover`]) with
    /// `--env` overrides, in parallel, and link their dependencies. Returns every service that
    /// loaded, with the problems of the others and of the graph (unknown dependencies, cycles,
    /// duplicate names), so a check can go on and report the field problems of every service.
    /// Files already in `parsed` (from [`Project::parse`], done while git listed changes) are
    /// taken as they are; parsed files that are not in `files` (ignored since) are dropped.
    pub(crate) fn load(
        root: &Path,
        environment: Option<&str>,
        files: Vec<PathBuf>,
        mut parsed: HashMap<PathBuf, Parsed>,
    ) -> (Self, Vec<Diagnostic>) {
        let results = if parsed.is_empty() {
            Self::parse(root, environment, &files)
        } else {
            let missing: Vec<PathBuf> =
                files.iter().filter(|f| !parsed.contains_key(*f)).cloned().collect();
            let fresh = Self::parse(root, environment, &missing);
            parsed.extend(missing.into_iter().zip(fresh));
            files.iter().filter_map(|f| parsed.remove(f)).collect()
        };
        let mut services = Vec::new();
        let mut diags: Vec<Diagnostic> = discover::check_marker(root).into_iter().collect();
        for r in results {
            match r {
                Ok(s) => services.extend(s),
                Err(d) => diags.extend(d),
            }
        }
        let mut seen: HashMap<&str, &Service> = HashMap::new();
        for s in &services {
            if let Some(first) = seen.insert(&s.name, s) {
                let p = Problem::DuplicateService {
                    name: s.name.clone(),
                    first: first.file.display().to_string(),
                    second: s.file.display().to_string(),
                };
                diags.push(s.report(&[Seg::Key("name")], p));
            }
        }
        let (deps, graph) = graph::build(&services);
        diags.extend(graph);
        (Self { root: root.to_path_buf(), services, deps }, diags)
    }

    /// Parse `files` (relative to `root`) with `--env` overrides, on up to 8 threads when
    /// there are many; one result per file, in order.
    pub(crate) fn parse(root: &Path, environment: Option<&str>, files: &[PathBuf]) -> Vec<Parsed> {
        let lookup = |name: &str| std::env::var(name).ok();
        let parse = |rel: &PathBuf| -> Parsed {
            let text = std::fs::read_to_string(root.join(rel)).map_err(|e| {
                let p =
                    Problem::Unreadable { path: rel.display().to_string(), error: e.to_string() };
                vec![Diagnostic::of(rel, p)]
            })?;
            config::load(rel, &text, environment, &lookup)
        };
        crate::sync::par_map(files, 64, parse)
    }
}

/// Run `git -C dir args…` with a fixed author for tests; its stdout. A failure fails the test.
#[cfg(test)]
pub(crate) fn test_git(dir: &std::path::Path, args: &[&str]) -> Vec<u8> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}
