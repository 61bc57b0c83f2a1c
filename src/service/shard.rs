//! Matrix shards: splitting the selected services over N CI runners (`--shard I/N`). A shard
//! holds whole connected components of the `depends_on` graph, so no dependency ever crosses
//! runners; components go to shards by longest-processing-time-first (heaviest component to
//! the lightest shard), by weight then name, so every runner computes the same split from
//! the same selection without talking to the others.

use std::fmt;

/// The largest `N` of `--shard I/N`.
pub(crate) const MAX_SHARDS: usize = 256;

/// Shard `index` (1-based) of `total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shard {
    pub index: usize,
    pub total: usize,
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.total)
    }
}

/// Parse `I/N` (clap value parser).
pub(crate) fn parse(text: &str) -> Result<Shard, String> {
    let bad = || {
        format!("`{text}` is not a shard: write `I/N` with 1 ≤ I ≤ N ≤ {MAX_SHARDS}, e.g. `2/4`")
    };
    let (i, n) = text.split_once('/').ok_or_else(bad)?;
    let index: usize = i.trim().parse().map_err(|_| bad())?;
    let total: usize = n.trim().parse().map_err(|_| bad())?;
    if index == 0 || total == 0 || index > total || total > MAX_SHARDS {
        return Err(bad());
    }
    Ok(Shard { index, total })
}

/// The connected components of `n` nodes under `edges` (taken as undirected), each sorted,
/// ordered by their first node.
pub(crate) fn components(n: usize, edges: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let mut parent: Vec<usize> = (0..n).collect();
    fn root(parent: &mut [usize], mut x: usize) -> usize {
        while parent[x] != x {
            parent[x] = parent[parent[x]];
            x = parent[x];
        }
        x
    }
    for (a, deps) in edges.iter().enumerate().take(n) {
        for &b in deps.iter().filter(|&&b| b < n) {
            let (ra, rb) = (root(&mut parent, a), root(&mut parent, b));
            if ra != rb {
                parent[ra.max(rb)] = ra.min(rb);
            }
        }
    }
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut index_of = vec![usize::MAX; n];
    for x in 0..n {
        let r = root(&mut parent, x);
        if index_of[r] == usize::MAX {
            index_of[r] = groups.len();
            groups.push(Vec::new());
        }
        groups[index_of[r]].push(x);
    }
    groups
}

/// The shard (0-based) of each component: the heaviest first, each to the lightest shard so
/// far (the lowest-numbered among equals). `weight` and `name` are per component; the name
/// breaks ties between equal weights so the order never depends on anything else.
pub(crate) fn assign(weights: &[u64], names: &[&str], shards: usize) -> Vec<usize> {
    let shards = shards.max(1);
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by(|&a, &b| weights[b].cmp(&weights[a]).then_with(|| names[a].cmp(names[b])));
    let mut load = vec![0u64; shards];
    let mut out = vec![0; weights.len()];
    for c in order {
        let lightest = (0..shards).min_by_key(|&s| (load[s], s)).expect("at least one shard");
        load[lightest] = load[lightest].saturating_add(weights[c]);
        out[c] = lightest;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_shards() {
        assert_eq!(parse("2/4"), Ok(Shard { index: 2, total: 4 }));
        assert_eq!(parse("2/4").map(|s| s.to_string()), Ok("2/4".into()));
        for bad in ["0/4", "5/4", "1/0", "x/2", "3", "1/999", ""] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn components_follow_dependencies_either_way() {
        // 0 ← 2, 3 → 1, 4 alone.
        let edges = vec![vec![], vec![], vec![0], vec![1], vec![]];
        assert_eq!(components(5, &edges), vec![vec![0, 2], vec![1, 3], vec![4]]);
        assert_eq!(components(3, &[vec![1], vec![2], vec![]]), vec![vec![0, 1, 2]]);
    }

    #[test]
    fn assignment_balances_and_is_deterministic() {
        let weights = [5, 3, 3, 2, 1];
        let names = ["e", "a", "b", "c", "d"];
        let a = assign(&weights, &names, 2);
        // 5 → shard 0; 3 (a) → 1; 3 (b) → 1 (3 < 5); 2 → 0 (5 < 6); 1 → 0 or 1: 7 vs 6 → 1.
        assert_eq!(a, vec![0, 1, 1, 0, 1]);
        assert_eq!(assign(&weights, &names, 2), a);
        let loads = |a: &[usize], n| {
            (0..n)
                .map(|s| {
                    a.iter().zip(&weights).filter(|(x, _)| **x == s).map(|(_, w)| w).sum::<u64>()
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(loads(&a, 2), vec![7, 7]);
        // More shards than components: some stay empty, none gets two.
        let a = assign(&[1, 1], &["x", "y"], 4);
        assert_eq!(a, vec![0, 1]);
    }
}
