//! Selection: which services a command works on, and why. Names and globs (`'api-*'`),
//! `--provider`, and `--only-changed` (files under a service directory or its `watch:` paths,
//! plus every service depending on a changed one, transitively). The reason is kept for `plan`
//! and `list --only-changed`.

use globset::{Glob, GlobMatcher};

use super::changed::{Changes, normalize};
use super::config::Service;
use super::graph::dependents;
use crate::diagnostic::closest;

/// One selected service (index into the project's services) and why it was picked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selected {
    pub index: usize,
    pub reason: String,
}

/// A selection problem (unknown name or bad glob); a usage error.
#[derive(Debug)]
pub struct SelectError(pub String);

impl std::fmt::Display for SelectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Select by name patterns (empty = all) and provider (empty = any).
pub fn by_name(
    services: &[Service],
    patterns: &[String],
    providers: &[String],
    provider_of: &dyn Fn(usize) -> String,
) -> Result<Vec<Selected>, SelectError> {
    let mut picked: Vec<Option<String>> = vec![None; services.len()];
    if patterns.is_empty() {
        for p in &mut picked {
            *p = Some("all services".into());
        }
    }
    for pat in patterns {
        let is_glob = pat.contains(['*', '?', '[']);
        let mut hit = false;
        if is_glob {
            let m = Glob::new(pat)
                .map_err(|e| SelectError(format!("invalid pattern `{pat}`: {e}")))?
                .compile_matcher();
            for (i, s) in services.iter().enumerate() {
                if m.is_match(&s.name) || m.is_match(&s.base_name) {
                    picked[i].get_or_insert_with(|| format!("matches `{pat}`"));
                    hit = true;
                }
            }
        } else {
            for (i, s) in services.iter().enumerate() {
                if s.name == *pat || s.base_name == *pat {
                    picked[i].get_or_insert_with(|| "named".to_string());
                    hit = true;
                }
            }
        }
        if !hit {
            let mut msg = if is_glob {
                format!("no service matches `{pat}`")
            } else {
                format!("unknown service `{pat}`")
            };
            msg.push_str("\nhelp: `pilum list` shows every service");
            if let Some(c) = closest(pat, services.iter().map(|s| s.name.as_str())) {
                msg.push_str(&format!("\ndid you mean `{c}`?"));
            }
            return Err(SelectError(msg));
        }
    }
    Ok(picked
        .into_iter()
        .enumerate()
        .filter_map(|(i, r)| r.map(|reason| Selected { index: i, reason }))
        .filter(|s| providers.is_empty() || providers.contains(&provider_of(s.index)))
        .collect())
}

/// Narrow `candidates` to the services touched by `changes`, plus their dependents.
pub fn by_changes(
    services: &[Service],
    deps: &[Vec<usize>],
    candidates: &[Selected],
    changes: &Changes,
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
                .map(|w| {
                    let p = normalize(&format!("{}/{w}", s.dir.to_string_lossy()));
                    let g = w
                        .contains(['*', '?', '['])
                        .then(|| Glob::new(&p).ok().map(|g| g.compile_matcher()))
                        .flatten();
                    (p, g)
                })
                .collect()
        })
        .collect();
    let mut reason: Vec<Option<String>> = vec![None; services.len()];
    // pilum's own state (`.pilum/`: deployments, history, locks) is never a change.
    for f in changes.files.iter().filter(|f| !f.starts_with(".pilum/") && !f.contains("/.pilum/")) {
        if let Some((_, i)) = owners.iter().find(|(d, _)| d.is_empty() || under(f, d)) {
            reason[*i].get_or_insert_with(|| format!("changed: {f}"));
        }
        for (i, ws) in watches.iter().enumerate() {
            if reason[i].is_some() {
                continue;
            }
            if ws.iter().any(|(p, g)| g.as_ref().map_or_else(|| under(f, p), |g| g.is_match(f))) {
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

fn under(file: &str, dir: &str) -> bool {
    file == dir || (file.starts_with(dir) && file.as_bytes().get(dir.len()) == Some(&b'/'))
}
