//! The dependency graph between services from `depends_on`. Unknown names ("did you mean") and
//! cycles (named in full, `a → b → a`) are errors; `depends_on` on a file with `targets:` means
//! every target of that file.

use std::collections::HashMap;

use super::config::Service;
use crate::diagnostic::{Diagnostic, Problem, closest};
use crate::yaml::Seg;

/// `deps[i]`: indices of the services service `i` depends on (sorted, deduplicated), with every
/// problem found: unknown names and self-dependencies, then a cycle among the known edges. The
/// graph is returned even with problems, so other checks can still run and report theirs.
pub fn build(services: &[Service]) -> (Vec<Vec<usize>>, Vec<Diagnostic>) {
    let mut by_name: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, s) in services.iter().enumerate() {
        by_name.entry(s.name.as_str()).or_default().push(i);
        if s.base_name != s.name {
            by_name.entry(s.base_name.as_str()).or_default().push(i);
        }
    }
    let mut diags = Vec::new();
    let mut deps = vec![Vec::new(); services.len()];
    for (i, s) in services.iter().enumerate() {
        for (j, d) in s.depends_on.iter().enumerate() {
            let path = s.item_path("depends_on", j);
            match by_name.get(d.as_str()) {
                Some(targets) => deps[i].extend(targets.iter().copied().filter(|&t| t != i)),
                None => {
                    // A name from `${VAR}` is shown as written, and only a real name suggested.
                    let dependency = s.shown(&path, d);
                    let p = Problem::UnknownDependency { service: s.name.clone(), dependency };
                    diags.push(
                        s.report(&path, p)
                            .suggest(closest(d, services.iter().map(|s| s.name.as_str()))),
                    );
                }
            }
            if d == &s.base_name && s.base_name == s.name {
                diags.push(s.report(&path, Problem::SelfDependency { service: s.name.clone() }));
            }
        }
        deps[i].sort_unstable();
        deps[i].dedup();
    }
    if let Some(cycle) = find_cycle(&deps) {
        let names: Vec<String> = cycle.iter().map(|&i| services[i].name.clone()).collect();
        let first = &services[cycle[0]];
        diags.push(first.report(&[Seg::Key("depends_on")], Problem::Cycle { names }));
    }
    (deps, diags)
}

/// A cycle as a path `a, b, …, a`, if any (iterative DFS, deterministic).
fn find_cycle(deps: &[Vec<usize>]) -> Option<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    let mut mark = vec![Mark::New; deps.len()];
    for start in 0..deps.len() {
        if mark[start] != Mark::New {
            continue;
        }
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        mark[start] = Mark::Active;
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            if let Some(&d) = deps[node].get(*next) {
                *next += 1;
                match mark[d] {
                    Mark::New => {
                        mark[d] = Mark::Active;
                        stack.push((d, 0));
                    }
                    Mark::Active => {
                        let pos = stack
                            .iter()
                            .position(|&(n, _)| n == d)
                            .expect("active node is on the stack");
                        let mut cycle: Vec<usize> = stack[pos..].iter().map(|&(n, _)| n).collect();
                        cycle.push(d);
                        return Some(cycle);
                    }
                    Mark::Done => {}
                }
            } else {
                mark[node] = Mark::Done;
                stack.pop();
            }
        }
    }
    None
}

/// Every service that depends on one in `seeds`, directly or transitively (seeds excluded).
pub fn dependents(deps: &[Vec<usize>], seeds: &[usize]) -> Vec<usize> {
    let mut rev = vec![Vec::new(); deps.len()];
    for (i, ds) in deps.iter().enumerate() {
        for &d in ds {
            rev[d].push(i);
        }
    }
    reachable(&rev, seeds)
}

/// Every service one in `seeds` depends on, directly or transitively (seeds excluded).
pub fn dependencies(deps: &[Vec<usize>], seeds: &[usize]) -> Vec<usize> {
    reachable(deps, seeds)
}

/// The nodes reachable from `seeds` along `edges` (seeds excluded), sorted.
fn reachable(edges: &[Vec<usize>], seeds: &[usize]) -> Vec<usize> {
    let mut seen = vec![false; edges.len()];
    for &s in seeds {
        seen[s] = true;
    }
    let mut stack = seeds.to_vec();
    let mut out = Vec::new();
    while let Some(n) = stack.pop() {
        for &m in &edges[n] {
            if !seen[m] {
                seen[m] = true;
                out.push(m);
                stack.push(m);
            }
        }
    }
    out.sort_unstable();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_cycle_path() {
        let deps = vec![vec![1], vec![2], vec![0], vec![]];
        let c = find_cycle(&deps).unwrap();
        assert_eq!(c.first(), c.last());
        assert_eq!(c.len(), 4);
        assert!(find_cycle(&[vec![1], vec![], vec![0, 1]]).is_none());
    }

    #[test]
    fn dependents_are_transitive() {
        let deps = vec![vec![], vec![0], vec![1], vec![]];
        assert_eq!(dependents(&deps, &[0]), vec![1, 2]);
        assert_eq!(dependencies(&deps, &[2]), vec![0, 1]);
    }
}
