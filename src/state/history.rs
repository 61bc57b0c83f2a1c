//! The deploy history: `.pilum/history.jsonl`, one JSON object per run that changed things
//! (time, command, tag, commit and whether the tree was dirty, environment, the summary),
//! appended at the end of the run.

use std::io::Write;
use std::path::Path;

use crate::orchestrator::event::Summary;

/// Append one record. Failing to write history never fails the deploy; the error is returned
/// for a warning.
pub fn record(
    root: &Path,
    command: &str,
    tag: &str,
    commit: Option<&str>,
    dirty: bool,
    environment: Option<&str>,
    summary: &Summary,
) -> std::io::Result<()> {
    let dir = root.join(".pilum");
    std::fs::create_dir_all(&dir)?;
    let line = serde_json::json!({
        "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "command": command,
        "tag": tag,
        "commit": commit,
        "dirty": dirty,
        "environment": environment,
        "summary": summary,
    });
    let mut f =
        std::fs::OpenOptions::new().create(true).append(true).open(dir.join("history.jsonl"))?;
    writeln!(f, "{line}")
}
