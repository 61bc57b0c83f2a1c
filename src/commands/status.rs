//! `pilum status`: call every selected target's `fn status(ctx)` in parallel, each within its
//! timeout (a hung provider CLI is killed, and its row says so), and show a table — service,
//! target, environment, the live revision and version, health, URL — or one JSON document.
//! With deploy history ([`run_with`]), two more columns: the last deploy pilum recorded and
//! whether the provider's live revision has drifted from it ([`drift`]).
//!
//! Exit code: 0 when every hook answered (whatever the health), 1 when one failed or timed out,
//! 2 for a configuration problem or a recipe without the hook, 130 on Ctrl-C.

use std::path::PathBuf;
use std::time::Duration;

use console::Style;

use super::live::{self, History, LastDeploy, Printer, Show, TargetKey};
use crate::cli::StatusArgs;
use crate::error::{Error, exit};
use crate::output::Output;
use crate::recipe::hooks::{Health, Hook, HookError, HookRunner, Status, Target};

/// Whether the provider's live revision is the one pilum deployed last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Drift {
    /// Live is what pilum deployed last.
    InSync,
    /// Something else is live: a deploy or rollback outside pilum, or a failed one.
    Drifted,
    /// One side is missing: no record, a record without a revision, or no live revision.
    Unknown,
}

impl Drift {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Drift::InSync => "in sync",
            Drift::Drifted => "drifted",
            Drift::Unknown => "unknown",
        }
    }
}

/// The drift rule: compare the provider's live revision with the revision the last recorded
/// deploy returned.
pub(crate) fn drift(live_revision: Option<&str>, last_deployed: Option<&LastDeploy>) -> Drift {
    match (live_revision, last_deployed.and_then(|d| d.revision.as_deref())) {
        (Some(live), Some(deployed)) if live == deployed => Drift::InSync,
        (Some(_), Some(_)) => Drift::Drifted,
        _ => Drift::Unknown,
    }
}

/// One target's row: what its hook said (or why it said nothing) and, with history, its last
/// recorded deploy.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub service: String,
    pub recipe: String,
    pub region: Option<String>,
    pub environment: Option<String>,
    pub status: Result<Status, String>,
    /// `None` without history; `Some(None)` when history has no deploy of the target.
    pub last: Option<Option<LastDeploy>>,
}

impl Row {
    fn live_revision(&self) -> Option<&str> {
        self.status.as_ref().ok().and_then(|s| s.revision.as_deref())
    }

    pub(crate) fn drift(&self) -> Option<Drift> {
        self.last.as_ref().map(|last| drift(self.live_revision(), last.as_ref()))
    }

    fn health(&self) -> Health {
        self.status.as_ref().map_or(Health::Unknown, |s| s.health)
    }

    fn target(&self) -> String {
        match &self.region {
            Some(r) => format!("{}/{r}", self.recipe),
            None => self.recipe.clone(),
        }
    }

    fn to_json(&self) -> serde_json::Value {
        let s = self.status.as_ref().ok();
        let mut v = serde_json::json!({
            "service": self.service,
            "target": self.recipe,
            "region": self.region,
            "environment": self.environment,
            "revision": s.and_then(|s| s.revision.clone()),
            "version": s.and_then(|s| s.version.clone()),
            "url": s.and_then(|s| s.url.clone()),
            "health": self.health(),
            "detail": s.and_then(|s| s.detail.clone()),
            "error": self.status.as_ref().err(),
        });
        if let (Some(last), Some(m)) = (&self.last, v.as_object_mut()) {
            m.insert("last_deploy".into(), serde_json::json!(last));
            m.insert("drift".into(), serde_json::json!(self.drift()));
        }
        v
    }
}

/// The table's header: "last deploy" and "drift" only with history.
pub(crate) fn columns(history: bool) -> Vec<&'static str> {
    let mut c = vec!["SERVICE", "TARGET", "ENV", "LIVE", "HEALTH"];
    if history {
        c.extend(["LAST DEPLOY", "DRIFT"]);
    }
    c.push("URL");
    c
}

/// A row's cells, in [`columns`] order.
pub(crate) fn cells(row: &Row, history: bool) -> Vec<String> {
    let dash = || "-".to_string();
    let live = match &row.status {
        Ok(s) => match (&s.revision, &s.version) {
            (Some(r), Some(v)) if r != v => format!("{r} ({v})"),
            (Some(r), _) => r.clone(),
            (None, Some(v)) => v.clone(),
            (None, None) => dash(),
        },
        Err(_) => dash(),
    };
    let health = row.health();
    let style = match health {
        Health::Healthy => Style::new().green(),
        Health::Degraded => Style::new().yellow(),
        Health::Unhealthy => Style::new().red().bold(),
        Health::Unknown => Style::new().dim(),
    };
    let mut c = vec![
        row.service.clone(),
        row.target(),
        row.environment.clone().unwrap_or_else(dash),
        live,
        style.apply_to(health.as_str()).to_string(),
    ];
    if history {
        let last = row.last.as_ref().and_then(Option::as_ref);
        c.push(last.map_or_else(dash, |d| match &d.tag {
            Some(t) => format!("{t}, {}", d.finished),
            None => d.finished.clone(),
        }));
        let d = row.drift().unwrap_or(Drift::Unknown);
        let shown = match d {
            Drift::Drifted => Style::new().yellow().apply_to(d.as_str()).to_string(),
            _ => d.as_str().to_string(),
        };
        c.push(shown);
    }
    c.push(row.status.as_ref().ok().and_then(|s| s.url.clone()).unwrap_or_else(dash));
    c
}

/// `pilum status`, with the deploy history of the state backend (`--state`, `PILUM_STATE`,
/// `state:`; `.pilum/` by default).
pub(crate) fn run(dir: Option<PathBuf>, args: &StatusArgs, out: &Output) -> Result<(), Error> {
    run_with(dir, args, out, None)
}

/// `pilum status`; with `history`, the "last deploy" and "drift" columns.
pub(crate) fn run_with(
    dir: Option<PathBuf>,
    args: &StatusArgs,
    out: &Output,
    history: Option<&dyn History>,
) -> Result<(), Error> {
    let mut cfg = live::config(dir, &args.target);
    cfg.state = args.state.clone();
    let named = !args.target.services.is_empty();
    let live = live::load(&cfg, Hook::Status, args.target.region.as_deref(), false, named, out)?;
    let recorded = match history {
        Some(_) => None,
        None => Some(live::Recorded::new(super::pipeline::open_state(&cfg, &live.root)?, out)),
    };
    let history = history.or(recorded.as_ref().map(|r| r as &dyn History));
    if !live.unsupported.is_empty() {
        let names: Vec<String> =
            live.unsupported.iter().map(|(s, r)| format!("`{s}` ({r})")).collect();
        out.info(&format!("not shown, their recipe has no status hook: {}", names.join(", ")));
    }
    let cancel = live::interruptible(out);
    let printer = Printer::new(out, Show::Verbose, &live.targets);
    let runner = HookRunner::new(&live.root, false, out.verbose, printer);
    let rows = statuses(&runner, &live.targets, args.timeout, args.max_workers, &cancel, history);
    if cancel.is_cancelled() {
        return Err(Error::silent(exit::INTERRUPTED));
    }
    if out.json {
        out.json_line(&rows.iter().map(Row::to_json).collect::<Vec<_>>());
    } else {
        let with_history = history.is_some();
        let mut table: Vec<Vec<String>> =
            vec![columns(with_history).into_iter().map(str::to_string).collect()];
        table.extend(rows.iter().map(|r| cells(r, with_history)));
        super::print_table(out, &[12, 16, 4, 16, 9], &table);
        for r in &rows {
            if let Ok(Status { detail: Some(d), health, .. }) = &r.status
                && *health != Health::Healthy
                && !out.quiet
            {
                out.stdout_line(&format!("  {} ({}): {d}", r.service, r.target()));
            }
        }
    }
    let failed: Vec<&Row> = rows.iter().filter(|r| r.status.is_err()).collect();
    for r in &failed {
        let why = r.status.as_ref().err().map_or("", String::as_str);
        out.error(&format!("status of `{}` ({}) failed: {why}", r.service, r.target()));
    }
    if failed.is_empty() { Ok(()) } else { Err(Error::silent(exit::FAILURE)) }
}

/// Every target's status, at most `workers` at once, each within `timeout`.
pub(crate) fn statuses(
    runner: &HookRunner,
    targets: &[Target],
    timeout: Duration,
    workers: usize,
    cancel: &crate::script::CancelToken,
    history: Option<&dyn History>,
) -> Vec<Row> {
    live::each(targets, workers, |t| {
        let status = runner.status(t, cancel, Some(timeout)).map_err(|e| match e {
            HookError::Failed(f) => f.to_string(),
            other => other.to_string(),
        });
        Row {
            service: t.service.clone(),
            recipe: t.recipe.decl.name.clone(),
            region: t.region.clone(),
            environment: t.environment.clone(),
            status,
            last: history.map(|h| h.last_deploy(&TargetKey::of(t))),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployed(revision: Option<&str>) -> LastDeploy {
        LastDeploy {
            revision: revision.map(str::to_string),
            tag: Some("v1.2.3".into()),
            finished: "2025-05-01 14:03".into(),
        }
    }

    #[test]
    fn drift_compares_the_live_revision_with_the_last_deployed_one() {
        let same = deployed(Some("api-00002-xyz"));
        assert_eq!(drift(Some("api-00002-xyz"), Some(&same)), Drift::InSync);
        assert_eq!(drift(Some("api-00003-abc"), Some(&same)), Drift::Drifted);
        assert_eq!(drift(None, Some(&same)), Drift::Unknown, "the provider said nothing");
        assert_eq!(drift(Some("api-00002-xyz"), None), Drift::Unknown, "never deployed by pilum");
        assert_eq!(
            drift(Some("api-00002-xyz"), Some(&deployed(None))),
            Drift::Unknown,
            "a record without a revision"
        );
    }

    fn row(last: Option<Option<LastDeploy>>) -> Row {
        Row {
            service: "api".into(),
            recipe: "gcp-cloud-run".into(),
            region: Some("us-central1".into()),
            environment: Some("prod".into()),
            status: Ok(Status {
                revision: Some("api-00002-xyz".into()),
                version: Some("v1.2.3".into()),
                url: Some("https://api.run.app".into()),
                health: Health::Healthy,
                detail: None,
            }),
            last,
        }
    }

    /// Through the `History` seam: `api` was last deployed as `r2` but `r3` is live (drift),
    /// `web`'s last deploy is what is live, and history has nothing of a third.
    #[test]
    fn status_with_history_shows_the_last_deploy_and_drift() {
        use crate::commands::live::fixture::{Memo, project, quiet};
        let dir = project();
        let out = quiet();
        let cfg = live::config(Some(dir.path().to_path_buf()), &Default::default());
        let live = live::load(&cfg, Hook::Status, None, false, false, &out).expect("loads");
        let runner =
            HookRunner::new(&live.root, false, 0, Printer::new(&out, Show::Verbose, &live.targets));
        let cancel = crate::script::CancelToken::new();
        let memo = Memo(vec![("api", vec!["r1", "r2"]), ("web", vec!["r2", "r3"])]);
        let rows =
            statuses(&runner, &live.targets, Duration::from_secs(30), 2, &cancel, Some(&memo));
        let by = |name: &str| rows.iter().find(|r| r.service == name).expect("a row");
        assert_eq!(by("api").drift(), Some(Drift::Drifted));
        assert_eq!(by("web").drift(), Some(Drift::InSync));
        let last = by("api").last.clone().flatten().expect("recorded");
        assert_eq!(last.revision.as_deref(), Some("r2"));
        let cells = cells(by("api"), true);
        assert_eq!(console::strip_ansi_codes(&cells[6]), "drifted");
        assert_eq!(cells[5], "v2, 2025-05-01 14:03");

        let none = Memo(Vec::new());
        let rows =
            statuses(&runner, &live.targets, Duration::from_secs(30), 2, &cancel, Some(&none));
        assert!(rows.iter().all(|r| r.drift() == Some(Drift::Unknown) && r.last == Some(None)));
        let rows = statuses(&runner, &live.targets, Duration::from_secs(30), 2, &cancel, None);
        assert!(rows.iter().all(|r| r.drift().is_none()), "no history, no drift");
    }

    #[test]
    fn history_columns_appear_only_with_history() {
        assert_eq!(columns(false), ["SERVICE", "TARGET", "ENV", "LIVE", "HEALTH", "URL"]);
        assert_eq!(
            columns(true),
            ["SERVICE", "TARGET", "ENV", "LIVE", "HEALTH", "LAST DEPLOY", "DRIFT", "URL"]
        );
        let plain = cells(&row(None), false);
        assert_eq!(plain.len(), columns(false).len());
        assert_eq!(plain[1], "gcp-cloud-run/us-central1");
        assert_eq!(plain[3], "api-00002-xyz (v1.2.3)");
        let plain_text = |c: Vec<String>| -> Vec<String> {
            c.iter().map(|s| console::strip_ansi_codes(s).into_owned()).collect()
        };
        let with = plain_text(cells(&row(Some(Some(deployed(Some("api-00001-old"))))), true));
        assert_eq!(with.len(), columns(true).len());
        assert_eq!(with[5], "v1.2.3, 2025-05-01 14:03");
        assert_eq!(with[6], "drifted");
        let never = plain_text(cells(&row(Some(None)), true));
        assert_eq!((never[5].as_str(), never[6].as_str()), ("-", "unknown"));
        assert!(row(None).to_json().get("drift").is_none(), "no history, no drift field");
        assert_eq!(row(Some(None)).to_json()["drift"], "unknown");
    }
}
