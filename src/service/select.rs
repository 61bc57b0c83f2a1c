//! Selection: which services a command works on, and why. Names and globs (`'api-*'`), with
//! Turborepo's graph syntax: `web...` adds everything `web` depends on, `...web` everything that
//! depends on `web`, and `^` leaves the named service itself out (`web^...`, `...^web`);
//! `--provider`; and `--only-changed` (files under a service directory or its `watch:` paths,
//! declared artefacts excepted, plus every service depending on a changed one, transitively).
//! The reason is kept for `plan` and `list --only-changed`; [`left_out`] says which
//! dependencies a named selection leaves out.

use globset::{Glob, GlobMatcher};

use super::changed::{Changes, normalize};
use super::config::Service;
use super::graph::{dependencies, dependents};
use crate::diagnostic::{Diagnostic, Problem, closest};

/// One selected service (index into the project's services) and why it was picked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Selected {
    pub index: usize,
    pub reason: String,
}

/// A selection problem (a usage error): a bad glob, or a name no service has.
pub(crate) type SelectError = Box<Diagnostic>;

fn select_error(problem: Problem, suggestion: Option<&str>) -> SelectError {
    Box::new(Diagnostic::of("", problem).suggest(suggestion))
}

/// A pattern with the graph syntax taken off.
struct Pattern<'a> {
    core: &'a str,
    dependencies: bool,
    dependents: bool,
    itself: bool,
}

fn pattern(text: &str) -> Pattern<'_> {
    let mut core = text;
    let mut p = Pattern { core, dependencies: false, dependents: false, itself: true };
    if let Some(rest) = core.strip_prefix("...") {
        p.dependents = true;
        core = rest;
        if let Some(rest) = core.strip_prefix('^') {
            p.itself = false;
            core = rest;
        }
    }
    if let Some(rest) = core.strip_suffix("...") {
        p.dependencies = true;
        core = rest;
        if let Some(rest) = core.strip_suffix('^') {
            p.itself = false;
            core = rest;
        }
    }
    // `...` alone, or `^` without a direction, is a plain name.
    if core.is_empty() {
        return Pattern { core: text, dependencies: false, dependents: false, itself: true };
    }
    p.core = core;
    p
}

/// The reason of a service picked because the user named it (or matched it with a glob).
const NAMED: &str = "named";

/// The reason when nothing narrows the selection.
const ALL: &str = "all services";

/// Whether a service selected for `reason` was picked by a selection that covers the whole
/// project's needs: every service, or every service `--only-changed` found. A run whose
/// services all have such reasons leaves nothing behind, so its commit can be the next
/// `--only-changed` base.
pub(crate) fn covers_project(reason: &str) -> bool {
    reason == ALL
        || reason.starts_with("changed: ")
        || reason.starts_with("watch: ")
        || reason.starts_with("depends on changed `")
}

/// Select by name patterns (empty = all) and provider (empty = any).
pub(crate) fn by_name(
    services: &[Service],
    deps: &[Vec<usize>],
    patterns: &[String],
    providers: &[String],
    provider_of: &dyn Fn(usize) -> String,
) -> Result<Vec<Selected>, SelectError> {
    let mut picked: Vec<Option<String>> = vec![None; services.len()];
    if patterns.is_empty() {
        let why = match providers {
            [] => ALL.to_string(),
            [p] => format!("provider `{p}`"),
            ps => format!("providers `{}`", ps.join("`, `")),
        };
        for p in &mut picked {
            *p = Some(why.clone());
        }
    }
    for text in patterns {
        let pat = pattern(text);
        let core = pat.core;
        let is_glob = core.contains(['*', '?', '[']);
        let hits: Vec<usize> = if is_glob {
            let m = Glob::new(core)
                .map_err(|e| {
                    let p = Problem::BadPattern { pattern: text.clone(), error: e.to_string() };
                    select_error(p, None)
                })?
                .compile_matcher();
            (0..services.len())
                .filter(|&i| m.is_match(&services[i].name) || m.is_match(&services[i].base_name))
                .collect()
        } else {
            (0..services.len())
                .filter(|&i| services[i].name == core || services[i].base_name == core)
                .collect()
        };
        if hits.is_empty() {
            let suggestion = closest(core, services.iter().map(|s| s.name.as_str()));
            return Err(select_error(
                if is_glob {
                    Problem::NoServiceMatches { pattern: text.clone() }
                } else {
                    Problem::UnknownService { name: text.clone() }
                },
                suggestion,
            ));
        }
        let label = if is_glob { format!("matches `{core}`") } else { NAMED.to_string() };
        if pat.itself {
            for &i in &hits {
                picked[i].get_or_insert_with(|| label.clone());
            }
        }
        let what = |i: usize| {
            let named: Vec<usize> = hits.iter().copied().filter(|&h| h != i).collect();
            named.first().map_or_else(|| core.to_string(), |&h| services[h].name.clone())
        };
        if pat.dependencies {
            for d in dependencies(deps, &hits) {
                let via = what(d);
                picked[d].get_or_insert_with(|| format!("dependency of `{via}`"));
            }
        }
        if pat.dependents {
            for d in dependents(deps, &hits) {
                let via = what(d);
                picked[d].get_or_insert_with(|| format!("depends on `{via}`"));
            }
        }
    }
    Ok(picked
        .into_iter()
        .enumerate()
        .filter_map(|(i, r)| r.map(|reason| Selected { index: i, reason }))
        .filter(|s| providers.is_empty() || providers.contains(&provider_of(s.index)))
        .collect())
}

/// For each named service, the dependencies (transitive) the selection leaves out: they are
/// not run, and do not hold up the named service. A note, not an error.
pub(crate) fn left_out(
    services: &[Service],
    deps: &[Vec<usize>],
    selected: &[Selected],
) -> Vec<Diagnostic> {
    let mut chosen = vec![false; services.len()];
    for s in selected {
        chosen[s.index] = true;
    }
    let mut out = Vec::new();
    for sel in selected.iter().filter(|s| s.reason == NAMED || s.reason.starts_with("matches `")) {
        let missing: Vec<String> = dependencies(deps, &[sel.index])
            .into_iter()
            .filter(|&d| !chosen[d])
            .map(|d| services[d].name.clone())
            .collect();
        if missing.is_empty() {
            continue;
        }
        let service = services[sel.index].name.clone();
        out.push(Diagnostic::of("", Problem::LeftOut { service, missing }));
    }
    out
}

/// The artefacts a service declares (the `artifacts` list of its recipe's section, e.g.
/// `build.artifacts` of `local`), as paths relative to the project root: building writes them,
/// so they never count as a change.
pub(crate) fn artifacts(s: &Service, section: Option<(String, String)>) -> Vec<String> {
    let Some((section, _)) = section else { return Vec::new() };
    let Some(serde_yaml::Value::Sequence(list)) =
        s.config.get(section.as_str()).and_then(|v| v.get("artifacts"))
    else {
        return Vec::new();
    };
    list.iter()
        .filter_map(serde_yaml::Value::as_str)
        .map(|a| normalize(&format!("{}/{a}", s.dir.to_string_lossy())))
        .collect()
}

/// Narrow `candidates` to the services touched by `changes`, plus their dependents.
/// `artifacts_of(i)` lists service `i`'s declared artefacts (see [`artifacts`]).
pub(crate) fn by_changes(
    services: &[Service],
    deps: &[Vec<usize>],
    candidates: &[Selected],
    changes: &Changes,
    artifacts_of: &dyn Fn(usize) -> Vec<String>,
) -> Vec<Selected> {
    // A file belongs to the deepest service directory containing it (nested services).
    let mut owners: Vec<(String, usize)> = services
        .iter()
        .enumerate()
        .map(|(i, s)| (normalize(&s.dir.to_string_lossy()), i))
        .collect();
    owners.sort_by_key(|o| std::cmp::Reverse(o.0.len()));
    let watches: Vec<Vec<(String, Option<GlobMatcher>)>> = services
        .iter()
        .map(|s| {
            s.watch
                .iter()
                .map(|w| path_matcher(&format!("{}/{w}", s.dir.to_string_lossy())))
                .collect()
        })
        .collect();
    let outputs: Vec<(String, Option<GlobMatcher>)> =
        (0..services.len()).flat_map(artifacts_of).map(|a| path_matcher(&a)).collect();
    let matches = |f: &str, (p, g): &(String, Option<GlobMatcher>)| {
        g.as_ref().map_or_else(|| under(f, p), |g| g.is_match(f))
    };
    let mut reason: Vec<Option<String>> = vec![None; services.len()];
    // pilum's own state (`.pilum/`: deployments, history, locks) is never a change, and neither
    // is what a build writes.
    let real =
        changes.files.iter().filter(|f| !f.starts_with(".pilum/") && !f.contains("/.pilum/"));
    for f in real.filter(|f| !outputs.iter().any(|o| matches(f, o))) {
        if let Some((_, i)) = owners.iter().find(|(d, _)| d.is_empty() || under(f, d)) {
            reason[*i].get_or_insert_with(|| format!("changed: {f}"));
        }
        for (i, ws) in watches.iter().enumerate() {
            if reason[i].is_none() && ws.iter().any(|w| matches(f, w)) {
                reason[i] = Some(format!("watch: {f}"));
            }
        }
    }
    let in_candidates: Vec<bool> = {
        let mut v = vec![false; services.len()];
        for c in candidates {
            v[c.index] = true;
        }
        v
    };
    let changed: Vec<usize> =
        (0..services.len()).filter(|&i| reason[i].is_some() && in_candidates[i]).collect();
    for d in dependents(deps, &changed) {
        if reason[d].is_none() {
            let via = deps[d]
                .iter()
                .find(|&&x| reason[x].is_some())
                .map_or_else(String::new, |&x| services[x].name.clone());
            reason[d] = Some(format!("depends on changed `{via}`"));
        }
    }
    candidates
        .iter()
        .filter_map(|c| reason[c.index].clone().map(|r| Selected { index: c.index, reason: r }))
        .collect()
}

/// A root-relative path or glob, normalised, with its matcher when it is a glob.
pub(crate) fn path_matcher(path: &str) -> (String, Option<GlobMatcher>) {
    let p = normalize(path);
    let g = p
        .contains(['*', '?', '['])
        .then(|| Glob::new(&p).ok().map(|g| g.compile_matcher()))
        .flatten();
    (p, g)
}

pub(crate) fn under(file: &str, dir: &str) -> bool {
    file == dir || (file.starts_with(dir) && file.as_bytes().get(dir.len()) == Some(&b'/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(spec: &[(&str, &[&str])]) -> (Vec<Service>, Vec<Vec<usize>>) {
        let services: Vec<Service> = spec
            .iter()
            .flat_map(|(name, deps)| {
                let text = format!("name: {name}\ndepends_on: [{}]\n", deps.join(", "));
                let file = std::path::PathBuf::from(format!("{name}/pilum.yaml"));
                super::super::config::load(&file, &text, None, &|_| None).unwrap()
            })
            .collect();
        let (deps, problems) = super::super::graph::build(&services);
        assert!(problems.is_empty());
        (services, deps)
    }

    fn pick(spec: &[(&str, &[&str])], patterns: &[&str]) -> Vec<(String, String)> {
        let (services, deps) = project(spec);
        let patterns: Vec<String> = patterns.iter().map(std::string::ToString::to_string).collect();
        by_name(&services, &deps, &patterns, &[], &|_| String::new())
            .unwrap()
            .into_iter()
            .map(|s| (services[s.index].name.clone(), s.reason))
            .collect()
    }

    const APP: &[(&str, &[&str])] =
        &[("db", &[]), ("api", &["db"]), ("web", &["api"]), ("worker", &["api"]), ("docs", &[])];

    #[test]
    fn graph_syntax_adds_dependencies_or_dependents() {
        let names = |v: Vec<(String, String)>| v.into_iter().map(|(n, _)| n).collect::<Vec<_>>();
        assert_eq!(names(pick(APP, &["web"])), ["web"]);
        assert_eq!(names(pick(APP, &["web..."])), ["db", "api", "web"]);
        assert_eq!(names(pick(APP, &["web^..."])), ["db", "api"]);
        assert_eq!(names(pick(APP, &["...api"])), ["api", "web", "worker"]);
        assert_eq!(names(pick(APP, &["...^api"])), ["web", "worker"]);
        assert_eq!(names(pick(APP, &["...api..."])), ["db", "api", "web", "worker"]);
        let r = pick(APP, &["web..."]);
        assert_eq!(r[0].1, "dependency of `web`");
        assert_eq!(r[2].1, "named");
    }

    #[test]
    fn a_named_service_says_which_dependencies_are_left_out() {
        let (services, deps) = project(APP);
        let sel = by_name(&services, &deps, &["web".into()], &[], &|_| String::new()).unwrap();
        let notes = left_out(&services, &deps, &sel);
        assert_eq!(notes.len(), 1);
        assert!(
            notes[0].message.contains("`web` depends on `db`, `api`, which are not selected"),
            "{}",
            notes[0]
        );
        assert!(notes[0].help.as_deref().unwrap().contains("`web...`"));
        let sel = by_name(&services, &deps, &["web...".into()], &[], &|_| String::new()).unwrap();
        assert!(left_out(&services, &deps, &sel).is_empty());
    }

    #[test]
    fn unknown_names_suggest_one_way() {
        let (services, deps) = project(APP);
        let e = by_name(&services, &deps, &["wbe...".into()], &[], &|_| String::new()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown service `wbe...`\nhelp: `pilum list` shows every service\ndid you mean `web`?"
        );
    }
}
