//! The build cache's entries. An **artefact** is what a successful build and push of one input
//! hash returned (each build- and push-phase step's returned map, e.g. an image digest), with
//! the version tag it was built as: a later run with the same inputs skips those steps and
//! hands their recorded outputs to the steps after them. A **live** entry says which release
//! hash a service × environment × target last deployed successfully: a run whose release hash
//! is already live skips the service's deploy ("up to date"). Hashes are `inputs.rs`'s.

use serde::{Deserialize, Serialize};

/// What the live entry is kept for: the same triple as a deploy lock.
pub(crate) type LiveKey = super::lock::LockKey;

/// An artefact's key: one service's build for one target and input hash.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct ArtefactKey {
    pub service: String,
    pub target: String,
    pub hash: String,
}

impl ArtefactKey {
    /// `service+target+hash` (`+` is in no name; the hash is hex).
    pub(crate) fn file_name(&self) -> String {
        format!("{}+{}+{}", self.service, self.target, self.hash)
    }
}

/// One step's returned map.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct StepOutput {
    pub step: String,
    pub region: Option<String>,
    pub value: serde_json::Value,
}

/// A recorded build (and push).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Artefact {
    pub service: String,
    pub target: String,
    pub hash: String,
    /// The version tag it was built and pushed as; later steps of a run that reuses it get it as
    /// `ctx.tag`.
    pub version: String,
    pub commit: Option<String>,
    pub run: String,
    /// RFC 3339 UTC.
    pub time: String,
    pub outputs: Vec<StepOutput>,
}

impl Artefact {
    pub(crate) fn key(&self) -> ArtefactKey {
        ArtefactKey {
            service: self.service.clone(),
            target: self.target.clone(),
            hash: self.hash.clone(),
        }
    }
}

/// What is live in an environment, as far as pilum deployed it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Live {
    pub service: String,
    pub environment: Option<String>,
    pub target: String,
    /// The release hash deployed.
    pub hash: String,
    pub version: String,
    pub commit: Option<String>,
    pub run: String,
    pub time: String,
}

impl Live {
    pub(crate) fn key(&self) -> LiveKey {
        LiveKey {
            service: self.service.clone(),
            environment: self.environment.clone(),
            target: self.target.clone(),
        }
    }
}

/// What the cache decided for one planned service.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "cache", rename_all = "snake_case")]
pub(crate) enum Hit {
    /// Its build and push steps are skipped; their recorded outputs are reused.
    Build {
        service: String,
        hash: String,
        /// The version tag it was built as, and the run that built it.
        version: String,
        run: String,
    },
    /// Everything is skipped: this release hash is already live in the environment.
    UpToDate { service: String, hash: String, version: String, run: String },
}

impl Hit {
    /// The service it is for.
    pub(crate) fn service(&self) -> &str {
        match self {
            Hit::Build { service, .. } | Hit::UpToDate { service, .. } => service,
        }
    }

    /// What is skipped and why, without the service: `up to date (v1.4.0 is live, release
    /// hash …): nothing to run`, `build and push reused (v1.4.0, input hash …, run …)`.
    pub(crate) fn why(&self) -> String {
        match self {
            Hit::Build { hash, version, run, .. } => format!(
                "build and push reused ({version}, input hash {}, run {run})",
                super::inputs::short(hash)
            ),
            Hit::UpToDate { hash, version, .. } => format!(
                "up to date ({version} is live, release hash {}): nothing to run",
                super::inputs::short(hash)
            ),
        }
    }

    /// One line for the terminal.
    pub(crate) fn describe(&self) -> String {
        let is = if matches!(self, Hit::UpToDate { .. }) { "is " } else { "" };
        format!("cache: `{}` {is}{}", self.service(), self.why())
    }
}

/// The phases a reused artefact replaces.
pub(crate) const BUILD_PHASES: &[&str] = &["build", "push"];

/// One service's [`lookup`]: the hit, with the reused artefact for a build hit.
pub(crate) type Found = Option<(Hit, Option<Artefact>)>;

/// Look the plan's services up in the cache, reading only (no write, no lock): per service, in
/// plan order, the hit a run would take and, for a build hit, the artefact whose outputs its
/// later steps get. A service without steps, or whose steps the hit would not change, has none.
/// Only runs that push (`publish`, `deploy`) use the cache.
pub(crate) fn lookup(
    backend: &dyn super::Backend,
    plan: &crate::orchestrator::plan::Plan,
    hashes: &[super::inputs::Hashes],
) -> Result<Vec<Found>, super::StateError> {
    if !plan.phases.iter().any(|p| p == "push" || p == "deploy") {
        return Ok(vec![None; plan.services.len()]);
    }
    let akeys: Vec<ArtefactKey> = plan
        .services
        .iter()
        .zip(hashes)
        .map(|(s, h)| ArtefactKey {
            service: s.name.clone(),
            target: s.recipe.decl.name.clone(),
            hash: h.input.clone(),
        })
        .collect();
    let lkeys: Vec<LiveKey> = plan
        .services
        .iter()
        .map(|s| LiveKey {
            service: s.name.clone(),
            environment: plan.environment.clone(),
            target: s.recipe.decl.name.clone(),
        })
        .collect();
    let artefacts = backend.artefacts(&akeys)?;
    let deploys = plan.phases.iter().any(|p| p == "deploy");
    let lives = if deploys { backend.lives(&lkeys)? } else { vec![None; lkeys.len()] };
    let mut out = Vec::with_capacity(plan.services.len());
    for (i, s) in plan.services.iter().enumerate() {
        if s.steps.is_empty() {
            out.push(None);
            continue;
        }
        let live = lives[i].as_ref().filter(|l| l.hash == hashes[i].release);
        let builds = s.steps.iter().filter(|st| BUILD_PHASES.contains(&st.phase())).count();
        let only_build = builds == s.steps.len();
        out.push(if let Some(l) = live.filter(|_| !only_build || artefacts[i].is_some()) {
            let hit = Hit::UpToDate {
                service: s.name.clone(),
                hash: l.hash.clone(),
                version: l.version.clone(),
                run: l.run.clone(),
            };
            Some((hit, None))
        } else if let Some(a) = artefacts[i].as_ref().filter(|_| builds > 0) {
            let hit = Hit::Build {
                service: s.name.clone(),
                hash: a.hash.clone(),
                version: a.version.clone(),
                run: a.run.clone(),
            };
            Some((hit, Some(a.clone())))
        } else {
            None
        });
    }
    Ok(out)
}

/// [`lookup`], then drop what need not run: the build and push steps of a service whose input
/// hash has a recorded artefact, and every step of one whose release hash is live in the
/// environment. Returns the hits and, per service index, the artefact whose outputs later
/// steps get.
pub(crate) fn apply(
    backend: &dyn super::Backend,
    plan: &mut crate::orchestrator::plan::Plan,
    hashes: &[super::inputs::Hashes],
) -> Result<(Vec<Hit>, std::collections::HashMap<usize, Artefact>), super::StateError> {
    let mut reused = std::collections::HashMap::new();
    let mut hits = Vec::new();
    let found = lookup(backend, plan, hashes)?;
    let mut changed = false;
    for (i, (s, found)) in plan.services.iter_mut().zip(found).enumerate() {
        let Some((hit, artefact)) = found else { continue };
        match artefact {
            None => s.steps.clear(),
            Some(a) => {
                s.steps.retain(|st| !BUILD_PHASES.contains(&st.phase()));
                s.tag = Some(a.version.clone());
                reused.insert(i, a);
            }
        }
        hits.push(hit);
        changed = true;
    }
    if changed {
        let rebuilt = crate::orchestrator::plan::Plan::build(
            std::mem::take(&mut plan.services),
            &Default::default(),
            plan.tag.clone(),
            plan.environment.clone(),
            plan.dry_run,
        );
        let commit = plan.commit.take();
        *plan = rebuilt;
        plan.commit = commit;
    }
    Ok((hits, reused))
}

/// The outputs a reused artefact hands to the later steps of task `region`'s attempt, in the
/// shape the executor gives earlier steps' outputs: step → map (a per-region step: its
/// region's map, or region → map for a task of all regions).
pub(crate) fn outputs(artefact: &Artefact, region: Option<&str>) -> rhai::Map {
    let mut m = rhai::Map::new();
    for o in &artefact.outputs {
        let value = crate::script::value::to_dynamic(&o.value).unwrap_or_default();
        match (&o.region, region) {
            (None, _) => {
                m.insert(o.step.as_str().into(), value);
            }
            (Some(r), Some(want)) if r == want => {
                m.insert(o.step.as_str().into(), value);
            }
            (Some(r), None) => {
                let entry =
                    m.entry(o.step.as_str().into()).or_insert_with(|| rhai::Map::new().into());
                if let Some(mut by_region) = entry.write_lock::<rhai::Map>() {
                    by_region.insert(r.as_str().into(), value);
                }
            }
            _ => {}
        }
    }
    m
}
