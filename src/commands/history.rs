//! `pilum history [SERVICE…] [--env E] [--limit N] [--json]`: the deploy records of the state
//! backend, newest first, read from the end (`crate::state::record`). With a shared backend it
//! shows every clone's and runner's deploys. `--html FILE` draws the same records as the
//! history timeline (`ui::report::history`).

use std::path::PathBuf;

use super::pipeline::{self, Config};
use crate::cli::HistoryArgs;
use crate::error::Error;
use crate::output::Output;
use crate::state::record::{Filter, Outcome, Record};
use crate::ui::report::history::{self as timeline, Deploy};

pub(crate) fn run(dir: Option<PathBuf>, a: &HistoryArgs, out: &Output) -> Result<(), Error> {
    let root = crate::service::discover::project_root(dir.as_deref()).map_err(Error::usage)?;
    let cfg = Config { dir, state: a.state.clone(), ..Config::default() };
    let backend = pipeline::open_state(&cfg, &root)?;
    let filter = Filter {
        services: a.services.clone(),
        environment: a.environment.clone().map(Some),
        limit: a.limit,
        ..Filter::default()
    };
    let page = backend.records(&filter).map_err(Error::failure)?;
    if page.unreadable > 0 {
        out.warn(&format!(
            "skipped {} unreadable deploy record(s) in `{}` (a crash mid-write, or an edit)",
            page.unreadable,
            backend.location()
        ));
    }
    if let Some(path) = &a.html {
        let deploys: Vec<Deploy> = page.records.iter().filter_map(deploy).collect();
        std::fs::write(path, timeline::html(&deploys))
            .map_err(|e| Error::failure(format!("cannot write `{}`: {e}", path.display())))?;
        out.info(&format!(
            "wrote the history of {} deploy(s) to `{}`",
            deploys.len(),
            path.display()
        ));
        return Ok(());
    }
    if out.json {
        for r in &page.records {
            out.json_line(r);
        }
        return Ok(());
    }
    if page.records.is_empty() {
        out.info(&format!("no deploys recorded in `{}`", backend.location()));
        return Ok(());
    }
    let mut rows = vec![
        ["ENDED", "SERVICE", "TARGET", "ENV", "REGION", "VERSION", "OUTCOME", "REVISION", "BY"]
            .map(String::from)
            .to_vec(),
    ];
    rows.extend(page.records.iter().map(row));
    for line in crate::ui::table::lines(&[], &rows) {
        out.stdout_line(&line);
    }
    Ok(())
}

fn row(r: &Record) -> Vec<String> {
    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let mut outcome = r.outcome.name().to_string();
    if r.cached.is_some() {
        outcome.push_str(" (cached build)");
    }
    vec![
        r.ended.get(..19).unwrap_or(&r.ended).replace('T', " "),
        r.service.clone(),
        r.target.clone(),
        dash(&r.environment),
        dash(&r.region),
        r.version.clone(),
        outcome,
        dash(&r.revision),
        format!("{}@{}", r.actor.as_deref().unwrap_or("-"), r.host),
    ]
}

/// A record as the timeline draws it; one whose times do not parse is left out, as is one that
/// ran nothing (skipped).
fn deploy(r: &Record) -> Option<Deploy> {
    let at = |t: &str| chrono::DateTime::parse_from_rfc3339(t).ok().map(|t| t.to_utc());
    let (started, ended) = (at(&r.started)?, at(&r.ended)?);
    let outcome = match r.outcome {
        Outcome::Ok => timeline::Outcome::Ok,
        Outcome::Failed => timeline::Outcome::Failed,
        Outcome::Interrupted => timeline::Outcome::Interrupted,
        Outcome::Skipped => return None,
    };
    Some(Deploy {
        service: r.service.clone(),
        environment: r.environment.clone(),
        started,
        duration_ms: u64::try_from((ended - started).num_milliseconds()).unwrap_or(0),
        version: r.version.clone(),
        outcome,
        rollback: r.command == "rollback",
    })
}
