//! The plan: every task (service, step[, region]) that will run, grouped into phases, with its
//! dependencies. It is complete and valid before anything runs, and it is data: `pilum plan`
//! prints it, `--dry-run` prints the same plan, the executor runs it.
//!
//! Phases follow step tags: a step's first tag is its phase; phases run in the order `build`,
//! `push`, `deploy`, then custom phases in the order they are first seen (services in plan
//! order, steps in recipe order). Within a phase, a task waits for the previous step of its own
//! service (the same region's task when both are per-region) and for every task of the services
//! its service `depends_on`.

use std::sync::Arc;

use rhai::Map;
use serde_json::json;

use crate::recipe::{Recipe, Step};

pub(crate) const STANDARD_PHASES: &[&str] = &["build", "push", "deploy"];

/// A selected, validated service in the plan.
#[derive(Debug, Clone)]
pub(crate) struct PlannedService {
    pub name: String,
    pub dir: String,
    pub recipe: Arc<Recipe>,
    pub fields: Map,
    pub steps: Vec<Step>,
    pub reason: String,
    pub regions: Vec<String>,
    /// Indices (into `Plan::services`) of the selected services this one depends on.
    pub depends_on: Vec<usize>,
    /// Index of the service in the project.
    pub project_index: usize,
    /// The version tag its steps get when it is not the plan's: a build reused from the cache
    /// keeps the tag it was built as.
    pub tag: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct Task {
    pub id: usize,
    pub service: usize,
    /// Index into the service's `steps`.
    pub step: usize,
    pub region: Option<String>,
    pub phase: usize,
    /// Tasks that must finish successfully first (same phase only; phases are barriers).
    pub deps: Vec<usize>,
}

#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub phases: Vec<String>,
    pub services: Vec<PlannedService>,
    pub tasks: Vec<Task>,
    pub tag: String,
    pub environment: Option<String>,
    pub dry_run: bool,
    /// The commit the run builds, when the project is in a git work tree.
    pub commit: Option<Commit>,
}

/// A checked-out commit and the uncommitted changes of the work tree under the project root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Commit {
    /// `HEAD`'s full SHA.
    pub sha: String,
    /// `git status --porcelain` lines (untracked files included, `.pilum/` left out).
    pub changes: Vec<String>,
}

impl Commit {
    pub(crate) fn dirty(&self) -> bool {
        !self.changes.is_empty()
    }

    /// The first 12 characters of the SHA.
    pub(crate) fn short(&self) -> &str {
        &self.sha[..12.min(self.sha.len())]
    }
}

/// Which steps a command keeps.
#[derive(Debug, Clone, Default)]
pub(crate) struct StepFilter {
    /// Keep only steps whose phase is one of these (empty = all): `pilum build` → `[build]`.
    pub phases: Vec<String>,
    /// Keep only steps with one of these tags (empty = all).
    pub only_tags: Vec<String>,
    /// Drop steps with any of these tags.
    pub exclude_tags: Vec<String>,
}

impl StepFilter {
    fn keeps(&self, s: &Step) -> bool {
        (self.phases.is_empty() || self.phases.iter().any(|p| p == s.phase()))
            && (self.only_tags.is_empty() || s.tags.iter().any(|t| self.only_tags.contains(t)))
            && !s.tags.iter().any(|t| self.exclude_tags.contains(t))
    }
}

impl Plan {
    /// Build the task graph. `services` are in selection order; their `steps` are unfiltered.
    pub(crate) fn build(
        mut services: Vec<PlannedService>,
        filter: &StepFilter,
        tag: String,
        environment: Option<String>,
        dry_run: bool,
    ) -> Self {
        for s in &mut services {
            s.steps.retain(|st| filter.keeps(st));
        }
        let mut phases: Vec<String> = Vec::new();
        for p in STANDARD_PHASES {
            if services.iter().any(|s| s.steps.iter().any(|st| st.phase() == *p)) {
                phases.push((*p).to_string());
            }
        }
        for s in &services {
            for st in &s.steps {
                if !phases.iter().any(|p| p == st.phase()) {
                    phases.push(st.phase().to_string());
                }
            }
        }
        let mut tasks: Vec<Task> = Vec::new();
        // by_service_phase[s][p]: task ids of service s in phase p.
        let mut by_service_phase = vec![vec![Vec::new(); phases.len()]; services.len()];
        for (p, phase) in phases.iter().enumerate() {
            for (si, s) in services.iter().enumerate() {
                let mut prev: Vec<usize> = Vec::new();
                for (sti, st) in s.steps.iter().enumerate() {
                    if st.phase() != phase {
                        continue;
                    }
                    let regions: Vec<Option<String>> = if st.per_region {
                        s.regions.clone().into_iter().map(Some).collect()
                    } else {
                        vec![None]
                    };
                    let mut mine = Vec::new();
                    for r in regions {
                        let deps: Vec<usize> = match &r {
                            Some(_) if prev.iter().any(|&t| tasks[t].region.is_some()) => {
                                prev.iter().copied().filter(|&t| tasks[t].region == r).collect()
                            }
                            _ => prev.clone(),
                        };
                        let id = tasks.len();
                        tasks.push(Task { id, service: si, step: sti, region: r, phase: p, deps });
                        mine.push(id);
                    }
                    by_service_phase[si][p].extend(&mine);
                    prev = mine;
                }
            }
            for (si, s) in services.iter().enumerate() {
                // A dependency without tasks in this phase passes the edge on to its own
                // dependencies, so ordering stays transitive.
                let mut upstream: Vec<usize> = Vec::new();
                let mut seen = vec![false; services.len()];
                let mut stack: Vec<usize> = s.depends_on.clone();
                while let Some(d) = stack.pop() {
                    if std::mem::replace(&mut seen[d], true) {
                        continue;
                    }
                    if by_service_phase[d][p].is_empty() {
                        stack.extend(&services[d].depends_on);
                    } else {
                        upstream.extend(&by_service_phase[d][p]);
                    }
                }
                upstream.sort_unstable();
                if upstream.is_empty() {
                    continue;
                }
                for &t in &by_service_phase[si][p] {
                    // Only the first task(s) of the service in the phase need the edge; later
                    // ones inherit it through the chain, which keeps the graph small.
                    if tasks[t].deps.is_empty() {
                        tasks[t].deps.extend(&upstream);
                    }
                }
            }
        }
        Self { phases, services, tasks, tag, environment, dry_run, commit: None }
    }

    pub(crate) fn step(&self, t: &Task) -> &Step {
        &self.services[t.service].steps[t.step]
    }

    /// `service/step[@region]`, as shown in output.
    pub(crate) fn label(&self, t: &Task) -> String {
        let s = &self.services[t.service];
        match &t.region {
            Some(r) => format!("{}/{}@{r}", s.name, s.steps[t.step].name),
            None => format!("{}/{}", s.name, s.steps[t.step].name),
        }
    }

    pub(crate) fn task_json(&self, t: &Task) -> serde_json::Value {
        let st = self.step(t);
        json!({
            "id": t.id,
            "service": self.services[t.service].name,
            "step": st.name,
            "region": t.region,
            "phase": self.phases[t.phase],
            "tags": st.tags,
            "timeout_secs": st.timeout.map(|d| d.as_secs_f64()),
            "retries": st.retries,
            "dir": st.dir,
            "after": t.deps,
        })
    }

    pub(crate) fn to_json(&self) -> serde_json::Value {
        json!({
            "tag": self.tag,
            "commit": self.commit.as_ref().map(|c| &c.sha),
            "dirty": self.commit.as_ref().is_some_and(Commit::dirty),
            "environment": self.environment,
            "dry_run": self.dry_run,
            "phases": self.phases,
            "services": self.services.iter().map(|s| json!({
                "name": s.name,
                "dir": s.dir,
                "recipe": s.recipe.decl.name,
                "reason": s.reason,
                "depends_on": s.depends_on.iter().map(|&d| &self.services[d].name).collect::<Vec<_>>(),
                "fields": crate::script::value::to_json(&s.fields.clone().into()).unwrap_or_default(),
            })).collect::<Vec<_>>(),
            "tasks": self.tasks.iter().map(|t| self.task_json(t)).collect::<Vec<_>>(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recipe::catalog::Recipe;
    use crate::recipe::declaration::StepDir;

    fn step(name: &str, tag: &str) -> Step {
        Step {
            name: name.into(),
            tags: vec![tag.into()],
            run: name.into(),
            timeout: None,
            retries: None,
            dir: StepDir::Service,
            per_region: false,
            decl: Map::new(),
        }
    }

    fn svc(name: &str, deps: &[usize], steps: Vec<Step>) -> PlannedService {
        let recipe = Recipe::for_tests(steps.clone());
        PlannedService {
            name: name.into(),
            dir: name.into(),
            recipe,
            fields: Map::new(),
            steps,
            reason: String::new(),
            regions: Vec::new(),
            depends_on: deps.to_vec(),
            project_index: 0,
            tag: None,
        }
    }

    #[test]
    fn phases_follow_tags_not_step_positions() {
        let a = svc(
            "a",
            &[],
            vec![
                step("compile", "build"),
                step("upload", "push"),
                step("release", "deploy"),
                step("smoke", "verify"),
            ],
        );
        let b = svc(
            "b",
            &[],
            vec![step("rollout", "deploy"), step("image", "build"), step("notes", "announce")],
        );
        let plan = Plan::build(vec![a, b], &StepFilter::default(), "t".into(), None, false);
        assert_eq!(plan.phases, ["build", "push", "deploy", "verify", "announce"]);
        let phase_of = |label: &str| {
            let t = plan.tasks.iter().find(|t| plan.label(t) == label).unwrap();
            plan.phases[t.phase].clone()
        };
        assert_eq!(phase_of("b/image"), "build");
        assert_eq!(phase_of("b/rollout"), "deploy");
    }

    #[test]
    fn dependencies_pass_through_services_without_tasks_in_a_phase() {
        // c depends on b, b on a; b has no build step.
        let a = svc("a", &[], vec![step("build", "build")]);
        let b = svc("b", &[0], vec![step("deploy", "deploy")]);
        let c = svc("c", &[1], vec![step("build", "build")]);
        let plan = Plan::build(vec![a, b, c], &StepFilter::default(), "t".into(), None, false);
        let c_build = plan.tasks.iter().find(|t| plan.label(t) == "c/build").unwrap();
        let a_build = plan.tasks.iter().find(|t| plan.label(t) == "a/build").unwrap();
        assert_eq!(c_build.deps, vec![a_build.id]);
    }
}
