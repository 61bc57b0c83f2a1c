//! The dependency graph between services from `depends_on`. Unknown names ("did you mean") and
//! cycles (named in full, `a → b → a`) are errors; `depends_on` on a file with `targets:` means
//! every target of that file. [`layered`] lays the graph out in layers for pictures.

use std::collections::HashMap;

use super::config::Service;
use crate::diagnostic::{Diagnostic, Problem, closest};
use crate::yaml::Seg;

/// `deps[i]`: indices of the services service `i` depends on (sorted, deduplicated), with every
/// problem found: unknown names and self-dependencies, then a cycle among the known edges. The
/// graph is returned even with problems, so other checks can still run and report theirs.
pub(crate) fn build(services: &[Service]) -> (Vec<Vec<usize>>, Vec<Diagnostic>) {
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
pub(crate) fn dependents(deps: &[Vec<usize>], seeds: &[usize]) -> Vec<usize> {
    let mut rev = vec![Vec::new(); deps.len()];
    for (i, ds) in deps.iter().enumerate() {
        for &d in ds {
            rev[d].push(i);
        }
    }
    reachable(&rev, seeds)
}

/// Every service one in `seeds` depends on, directly or transitively (seeds excluded).
pub(crate) fn dependencies(deps: &[Vec<usize>], seeds: &[usize]) -> Vec<usize> {
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

/// A layered drawing of the dependency graph, for pictures: every service on a layer (0: it
/// depends on nothing; else one more than its deepest dependency, longest-path layering), each
/// layer's slots in drawing order, and each edge's route through the layers it spans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Layers {
    /// `rank[i]`: the layer of service `i`.
    pub rank: Vec<usize>,
    /// The slots of each layer, top to bottom.
    pub layers: Vec<Vec<Slot>>,
    /// One per `depends_on` edge, in the order of `deps`.
    pub edges: Vec<Route>,
    /// Edge crossings between adjacent layers in the chosen order.
    pub crossings: usize,
}

/// What occupies a place in a layer: a service, or the bend of an edge passing through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    Service(usize),
    /// The edge (index into [`Layers::edges`]) crossing this layer.
    Bend(usize),
}

/// An edge `service` → `depends_on` and the places `(layer, position)` of its bends, from the
/// dependency's side to the dependent's (empty when the layers are adjacent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Route {
    pub service: usize,
    pub depends_on: usize,
    pub bends: Vec<(usize, usize)>,
}

/// Lay out an acyclic `deps` in layers, then order each layer to reduce crossings: barycentre
/// ordering, sweeping down and up `passes` times, keeping the order with the fewest crossings.
/// Edges spanning several layers get a bend per layer in between, ordered like services.
pub(crate) fn layered(deps: &[Vec<usize>], passes: usize) -> Layers {
    let n = deps.len();
    let rank = ranks(deps);
    let depth = rank.iter().max().map_or(0, |&r| r + 1);
    // Slots of each layer, with the slots they connect to one layer up (towards layer 0) and
    // one layer down; a slot is `(layer, index into layers[layer])` until ordering is done.
    let mut layers: Vec<Vec<Slot>> = vec![Vec::new(); depth];
    let mut at = vec![(0usize, 0usize); n];
    for i in 0..n {
        at[i] = (rank[i], layers[rank[i]].len());
        layers[rank[i]].push(Slot::Service(i));
    }
    let mut edges = Vec::new();
    // Links between adjacent layers: (upper layer, upper index, lower index).
    let mut links: Vec<(usize, usize, usize)> = Vec::new();
    for (i, ds) in deps.iter().enumerate() {
        for &d in ds {
            let e = edges.len();
            let mut prev = at[d];
            let mut bends = Vec::new();
            for (r, layer) in layers.iter_mut().enumerate().take(rank[i]).skip(rank[d] + 1) {
                let here = (r, layer.len());
                layer.push(Slot::Bend(e));
                links.push((prev.0, prev.1, here.1));
                bends.push(here);
                prev = here;
            }
            links.push((prev.0, prev.1, at[i].1));
            edges.push(Route { service: i, depends_on: d, bends });
        }
    }
    // Neighbours of each slot by its original index: up[layer][k], down[layer][k].
    let mut up: Vec<Vec<Vec<usize>>> = layers.iter().map(|l| vec![Vec::new(); l.len()]).collect();
    let mut down = up.clone();
    for &(r, a, b) in &links {
        down[r][a].push(b);
        up[r + 1][b].push(a);
    }
    // pos[layer][k]: the drawing position of original slot k.
    let mut pos: Vec<Vec<usize>> = layers.iter().map(|l| (0..l.len()).collect()).collect();
    let mut best = pos.clone();
    let mut fewest = crossings(&links, &pos);
    for _ in 0..passes {
        for (r, neighbours) in up.iter().enumerate().skip(1) {
            reorder(&mut pos, r, neighbours, r - 1);
        }
        for (r, neighbours) in down.iter().enumerate().rev().skip(1) {
            reorder(&mut pos, r, neighbours, r + 1);
        }
        let c = crossings(&links, &pos);
        if c < fewest {
            fewest = c;
            best = pos.clone();
        }
        if fewest == 0 {
            break;
        }
    }
    let ordered: Vec<Vec<Slot>> = layers
        .iter()
        .enumerate()
        .map(|(r, l)| {
            let mut v = vec![Slot::Bend(usize::MAX); l.len()];
            for (k, &s) in l.iter().enumerate() {
                v[best[r][k]] = s;
            }
            v
        })
        .collect();
    for route in &mut edges {
        for b in &mut route.bends {
            b.1 = best[b.0][b.1];
        }
    }
    Layers { rank, layers: ordered, edges, crossings: fewest }
}

/// Longest-path layering: 0 for a service without dependencies, else one more than the
/// deepest of them (a dependency left in a cycle, which validation refuses, counts as 0).
fn ranks(deps: &[Vec<usize>]) -> Vec<usize> {
    let n = deps.len();
    let mut dependents = vec![Vec::new(); n];
    let mut waiting: Vec<usize> = deps.iter().map(Vec::len).collect();
    for (i, ds) in deps.iter().enumerate() {
        for &d in ds {
            dependents[d].push(i);
        }
    }
    let mut rank = vec![0; n];
    let mut ready: Vec<usize> = (0..n).filter(|&i| waiting[i] == 0).collect();
    while let Some(d) = ready.pop() {
        for &i in &dependents[d] {
            rank[i] = rank[i].max(rank[d] + 1);
            waiting[i] -= 1;
            if waiting[i] == 0 {
                ready.push(i);
            }
        }
    }
    rank
}

/// Order layer `r` by the mean position of each slot's neighbours in layer `other` (slots
/// without any keep their place); ties keep the current order.
fn reorder(pos: &mut [Vec<usize>], r: usize, neighbours: &[Vec<usize>], other: usize) {
    let mut keyed: Vec<(f64, usize, usize)> = (0..pos[r].len())
        .map(|k| {
            let ns = &neighbours[k];
            let key = if ns.is_empty() {
                pos[r][k] as f64
            } else {
                ns.iter().map(|&m| pos[other][m] as f64).sum::<f64>() / ns.len() as f64
            };
            (key, pos[r][k], k)
        })
        .collect();
    keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    for (p, &(_, _, k)) in keyed.iter().enumerate() {
        pos[r][k] = p;
    }
}

/// Crossings between adjacent layers: per pair of layers, the inversions of the lower ends
/// once links are sorted by their upper end (counted with a Fenwick tree).
fn crossings(links: &[(usize, usize, usize)], pos: &[Vec<usize>]) -> usize {
    let mut by_layer: Vec<Vec<(usize, usize)>> = vec![Vec::new(); pos.len()];
    for &(r, a, b) in links {
        by_layer[r].push((pos[r][a], pos[r + 1][b]));
    }
    let mut total = 0;
    for (r, mut ls) in by_layer.into_iter().enumerate() {
        if ls.len() < 2 {
            continue;
        }
        ls.sort_unstable();
        let width = pos.get(r + 1).map_or(0, Vec::len);
        let mut tree = vec![0usize; width + 1];
        for (seen, &(_, b)) in ls.iter().enumerate() {
            // Links seen so far whose lower end is at or before `b`.
            let mut not_after = 0;
            let mut k = b + 1;
            while k > 0 {
                not_after += tree[k];
                k &= k - 1;
            }
            total += seen - not_after;
            let mut k = b + 1;
            while k <= width {
                tree[k] += 1;
                k += k & k.wrapping_neg();
            }
        }
    }
    total
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

    #[test]
    fn layers_follow_the_longest_path() {
        // 0 <- 1 <- 2, and 3 depends on 0 and 2: 3 sits after 2, its edge to 0 bends twice.
        let deps = vec![vec![], vec![0], vec![1], vec![0, 2]];
        let l = layered(&deps, 4);
        assert_eq!(l.rank, vec![0, 1, 2, 3]);
        assert_eq!(l.edges.len(), 4);
        let long = l.edges.iter().find(|e| e.service == 3 && e.depends_on == 0).unwrap();
        assert_eq!(long.bends.iter().map(|b| b.0).collect::<Vec<_>>(), vec![1, 2]);
        for (r, layer) in l.layers.iter().enumerate() {
            for s in layer {
                if let Slot::Service(i) = s {
                    assert_eq!(l.rank[*i], r);
                }
            }
        }
    }

    #[test]
    fn barycentre_ordering_removes_avoidable_crossings() {
        // Two chains drawn crossed in index order: a0 b0 on top, b1 a1 below.
        let deps = vec![vec![], vec![], vec![1], vec![0]];
        let l = layered(&deps, 0);
        assert_eq!(l.crossings, 1);
        let l = layered(&deps, 4);
        assert_eq!(l.crossings, 0);
        assert_eq!(l.layers[1], vec![Slot::Service(3), Slot::Service(2)]);
    }

    #[test]
    fn every_slot_is_placed_once() {
        let deps = vec![vec![], vec![0], vec![0], vec![1, 2], vec![0, 3], vec![]];
        let l = layered(&deps, 4);
        let services: usize =
            l.layers.iter().flatten().filter(|s| matches!(s, Slot::Service(_))).count();
        assert_eq!(services, deps.len());
        for (e, route) in l.edges.iter().enumerate() {
            for &(r, p) in &route.bends {
                assert_eq!(l.layers[r][p], Slot::Bend(e));
            }
        }
    }
}
