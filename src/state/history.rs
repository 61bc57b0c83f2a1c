//! The run history: one entry per run that changed things (time, command, tag, environment,
//! the commit deployed and whether the tree was dirty, whether the run covered the whole
//! project, the summary, each service's duration), written at the end of the run. The file
//! backend keeps it in `.pilum/history.jsonl` (a journal, see `journal.rs`), Redis in a stream.
//!
//! `--only-changed` takes its base from it ([`base_commit`]): the commit of the last
//! successful, complete, clean `deploy` to the same environment.

use super::{Backend, StateError};

/// The journal of the file backend, relative to `.pilum/`.
pub(crate) const FILE: &str = "history.jsonl";

/// One run, as the orchestrator reports it.
#[derive(Debug, Clone)]
pub(crate) struct Entry<'a> {
    /// The run's id (its deploy records carry it too).
    pub run: &'a str,
    pub command: &'a str,
    pub tag: &'a str,
    pub environment: Option<&'a str>,
    /// The full SHA checked out at the project root (`None` outside git).
    pub commit: Option<&'a str>,
    /// Whether the tree had uncommitted changes (`--allow-dirty`): such a run is never a base
    /// for `--only-changed`, since what it deployed is not its commit.
    pub dirty: bool,
    /// Whether the run deployed every step of every service the project needed deploying (all
    /// services, or the ones `--only-changed` picked), so its commit can be a base for the next
    /// `--only-changed`.
    pub complete: bool,
    /// The run's summary (`ok`, counts, failures); `summary.ok` says whether it succeeded.
    /// `summary.service_ms` holds each service's duration.
    pub summary: serde_json::Value,
}

impl Entry<'_> {
    /// The entry as it is stored.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "run": self.run,
            "command": self.command,
            "tag": self.tag,
            "environment": self.environment,
            "commit": self.commit,
            "dirty": self.dirty,
            "complete": self.complete,
            "summary": self.summary,
        })
    }
}

/// Whether `r` is a base for `--only-changed` to `environment`: a successful, complete `deploy`
/// of a clean tree.
pub(crate) fn is_base(r: &serde_json::Value, environment: Option<&str>) -> bool {
    r["command"] == "deploy"
        && r["complete"] == true
        && r["dirty"] != true
        && r["summary"]["ok"] == true
        && r["environment"].as_str() == environment
        && r["commit"].as_str().is_some_and(|c| !c.is_empty())
}

/// For `--only-changed`: the commit of the last successful complete deploy to `environment`,
/// and what is worth a warning about the history (unreadable entries).
pub(crate) fn base_commit(
    backend: &dyn Backend,
    environment: Option<&str>,
) -> Result<(Option<String>, Vec<String>), StateError> {
    let runs = backend.runs(1, &|r| is_base(r, environment))?;
    let mut notes = Vec::new();
    if !runs.unreadable.is_empty() {
        let what = match backend.location() {
            super::Location::File => format!("lines of `.pilum/{FILE}`"),
            other => format!("entries of the run history in `{other}`"),
        };
        notes.push(format!(
            "skipped unreadable {what} (a crash mid-write, or an edit): {}",
            runs.unreadable.join(", ")
        ));
    }
    Ok((runs.runs.first().and_then(|r| r["commit"].as_str()).map(str::to_string), notes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Batch, file::FileBackend};

    fn entry(ok: bool, complete: bool) -> serde_json::Value {
        serde_json::json!({"command": "deploy", "complete": complete, "environment": null,
            "commit": if ok { "c-ok" } else { "c-bad" }, "summary": {"ok": ok}})
    }

    #[test]
    fn the_base_is_the_last_successful_complete_clean_deploy() {
        let t = tempfile::tempdir().unwrap();
        let file = t.path().join(".pilum").join(FILE);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        // A crash left half a record without its newline.
        std::fs::write(&file, format!("{}\n{{\"command\":\"dep", entry(true, true))).unwrap();
        let b = FileBackend::new(t.path());
        b.write(&Batch { run: Some(entry(false, true)), ..Batch::default() }).unwrap();
        let mut dirty = entry(true, true);
        dirty["dirty"] = true.into();
        dirty["commit"] = "c-dirty".into();
        b.write(&Batch { run: Some(dirty), ..Batch::default() }).unwrap();
        b.write(&Batch { run: Some(entry(true, false)), ..Batch::default() }).unwrap();
        let text = std::fs::read_to_string(&file).unwrap();
        assert_eq!(text.lines().count(), 5, "{text}");
        let (base, notes) = base_commit(&b, None).unwrap();
        assert_eq!(base.as_deref(), Some("c-ok"));
        assert_eq!(notes.len(), 1);
        assert!(
            notes[0].contains("`.pilum/history.jsonl`") && notes[0].ends_with("line 2"),
            "{notes:?}"
        );
        assert_eq!(base_commit(&b, Some("prod")).unwrap().0, None);
    }
}
