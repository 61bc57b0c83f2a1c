//! Shards of a plan (`--shard I/N`) and the CI matrix of them (`pilum plan --matrix github`).
//! The split is `service::shard`'s: whole `depends_on` components, balanced by weight. A
//! service weighs its task count, or, when the history has a duration for every planned
//! service, its average duration over the last runs that recorded one
//! (`summary.service_ms` in the state backend's run history: `.pilum/history.jsonl` or Redis).

use std::collections::HashMap;

use crate::error::Error;
use crate::orchestrator::plan::{Plan, PlannedService};
use crate::service::shard::{self, Shard};

/// `--matrix` without `--shards` makes at most this many shards.
pub(crate) const DEFAULT_MAX_SHARDS: usize = 8;

/// Runs of the history averaged for a service's duration.
const HISTORY_RUNS: usize = 5;

/// `--shard`'s value.
pub(crate) fn parse(flag: Option<&str>) -> Result<Option<Shard>, Error> {
    flag.map(|f| shard::parse(f).map_err(|e| Error::usage(format!("`--shard`: {e}")))).transpose()
}

/// Average duration in ms per service over the last runs of the state backend's run history
/// that recorded durations (`.pilum/history.jsonl`, or Redis, where every runner of a CI run
/// reads the same history and so cuts the same shards). A backend that cannot be read is an
/// error: shards cut from different histories would run some services twice and others never.
pub(crate) fn history_weights(
    backend: &dyn crate::state::Backend,
) -> Result<HashMap<String, u64>, Error> {
    let runs = backend
        .runs(HISTORY_RUNS, &|v| v["summary"]["service_ms"].is_object())
        .map_err(Error::usage)?;
    let mut sums: HashMap<String, (u64, u64)> = HashMap::new();
    for v in &runs.runs {
        let Some(ms) = v["summary"]["service_ms"].as_object() else { continue };
        for (name, d) in ms {
            if let Some(d) = d.as_u64() {
                let e = sums.entry(name.clone()).or_default();
                e.0 = e.0.saturating_add(d);
                e.1 += 1;
            }
        }
    }
    Ok(sums.into_iter().map(|(k, (sum, n))| (k, sum / n.max(1))).collect())
}

/// What a service weighs: its duration if every service has one, else its tasks over every
/// phase (steps, times regions for per-region steps). Phase and tag filters do not change it,
/// so `publish --shard` and `deploy --shard` split the same way.
fn weights(services: &[PlannedService], history: &HashMap<String, u64>) -> Vec<u64> {
    let durations: Option<Vec<u64>> =
        services.iter().map(|s| history.get(&s.name).map(|d| (*d).max(1))).collect();
    durations.unwrap_or_else(|| {
        services
            .iter()
            .map(|s| {
                let tasks: usize = s
                    .steps
                    .iter()
                    .map(|st| if st.per_region { s.regions.len().max(1) } else { 1 })
                    .sum();
                tasks.max(1) as u64
            })
            .collect()
    })
}

/// The components of `services` and the shard (0-based) of each when split `total` ways.
fn split(
    services: &[PlannedService],
    total: usize,
    history: &HashMap<String, u64>,
) -> (Vec<Vec<usize>>, Vec<usize>) {
    let edges: Vec<Vec<usize>> = services.iter().map(|s| s.depends_on.clone()).collect();
    let comps = shard::components(services.len(), &edges);
    let w = weights(services, history);
    let comp_w: Vec<u64> = comps.iter().map(|c| c.iter().map(|&i| w[i]).sum()).collect();
    let names: Vec<&str> = comps
        .iter()
        .map(|c| c.iter().map(|&i| services[i].name.as_str()).min().unwrap_or_default())
        .collect();
    let assigned = shard::assign(&comp_w, &names, total);
    (comps, assigned)
}

/// The services of one shard, with their dependencies between them (which never cross
/// shards), before the plan is built from them.
pub(crate) fn select(
    services: Vec<PlannedService>,
    s: Shard,
    history: &HashMap<String, u64>,
) -> Vec<PlannedService> {
    let (comps, assigned) = split(&services, s.total, history);
    let mut keep: Vec<usize> = comps
        .iter()
        .zip(&assigned)
        .filter(|(_, a)| **a == s.index - 1)
        .flat_map(|(c, _)| c.iter().copied())
        .collect();
    keep.sort_unstable();
    let new_index: HashMap<usize, usize> = keep.iter().enumerate().map(|(n, &o)| (o, n)).collect();
    keep.iter()
        .map(|&i| {
            let mut ps = services[i].clone();
            ps.depends_on =
                ps.depends_on.iter().filter_map(|d| new_index.get(d).copied()).collect();
            ps
        })
        .collect()
}

/// `{"include": [{"shard": "1/3", "index": 1, "total": 3, "services": "api web", "tasks": 4}]}`,
/// one entry per non-empty shard, for `strategy.matrix: ${{ fromJSON(…) }}`. `plan` is built
/// without phase or tag filters, as the shards' weights are.
pub(crate) fn matrix(
    plan: &Plan,
    shards: Option<usize>,
    history: &HashMap<String, u64>,
) -> Result<serde_json::Value, Error> {
    let edges: Vec<Vec<usize>> = plan.services.iter().map(|s| s.depends_on.clone()).collect();
    let count = shard::components(plan.services.len(), &edges).len();
    let total = match shards {
        Some(0) => return Err(Error::usage("`--shards` must be at least 1")),
        Some(n) if n > shard::MAX_SHARDS => {
            return Err(Error::usage(format!("`--shards` is at most {}", shard::MAX_SHARDS)));
        }
        Some(n) => n,
        None => count.clamp(1, DEFAULT_MAX_SHARDS),
    };
    let (comps, assigned) = split(&plan.services, total, history);
    let mut include = Vec::new();
    for s in 0..total {
        let mut members: Vec<usize> = comps
            .iter()
            .zip(&assigned)
            .filter(|(_, a)| **a == s)
            .flat_map(|(c, _)| c.iter().copied())
            .collect();
        if members.is_empty() {
            continue;
        }
        members.sort_unstable();
        let names: Vec<&str> = members.iter().map(|&i| plan.services[i].name.as_str()).collect();
        let tasks = plan.tasks.iter().filter(|t| members.contains(&t.service)).count();
        include.push(serde_json::json!({
            "shard": format!("{}/{total}", s + 1),
            "index": s + 1,
            "total": total,
            "services": names.join(" "),
            "tasks": tasks,
        }));
    }
    Ok(serde_json::json!({ "include": include }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_durations_average_the_last_runs() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::create_dir_all(dir.path().join(".pilum")).expect("mkdir");
        std::fs::write(
            dir.path().join(".pilum/history.jsonl"),
            "{\"summary\":{\"service_ms\":{\"api\":100}}}\nnot json\n{\"summary\":{}}\n{\"summary\":{\"service_ms\":{\"api\":300,\"web\":50}}}\n",
        )
        .expect("write");
        let backend = crate::state::file::FileBackend::new(dir.path());
        let w = history_weights(&backend).expect("readable");
        assert_eq!(w.get("api"), Some(&200));
        assert_eq!(w.get("web"), Some(&50));
        let none = crate::state::file::FileBackend::new(&dir.path().join("none"));
        assert!(history_weights(&none).expect("no history").is_empty());
    }
}
