//! The deploy history: `.pilum/history.jsonl`, one JSON object per run that changed things
//! (time, command, tag, environment, the commit deployed and whether the tree was dirty, whether
//! the run covered the whole project, the summary), appended at the end of the run.
//!
//! The journal survives a crash mid-write: appending first terminates a torn last line (one
//! that does not end in a newline), so the new record starts on a line of its own, and readers
//! skip lines that are not JSON objects and report their line numbers. Every path goes through
//! [`crate::state::guard::pilum_path`].

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The journal, relative to `.pilum/`.
pub const FILE: &str = "history.jsonl";

/// One run, as the orchestrator reports it.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
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
    pub summary: serde_json::Value,
}

/// The journal's path under `root`, checked to stay inside `.pilum/`.
pub fn path(root: &Path) -> std::io::Result<PathBuf> {
    crate::state::guard::pilum_path(root, FILE)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::PermissionDenied, e.to_string()))
}

/// Append one record. Failing to write history never fails the deploy; the error is returned for a warning.
pub fn append(root: &Path, entry: &Entry) -> std::io::Result<()> {
    let file = path(root)?;
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let line = serde_json::json!({
        "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "command": entry.command,
        "tag": entry.tag,
        "environment": entry.environment,
        "commit": entry.commit,
        "dirty": entry.dirty,
        "complete": entry.complete,
        "summary": entry.summary,
    });
    append_line(&file, &line.to_string())
}

/// Append `line` to the journal at `file`, first ending a torn last line, in one write, then
/// flush it to disk.
fn append_line(file: &Path, line: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new().create(true).read(true).append(true).open(file)?;
    let len = f.metadata()?.len();
    let mut out = Vec::with_capacity(line.len() + 2);
    if len > 0 {
        let mut last = [0u8; 1];
        f.seek(SeekFrom::Start(len - 1))?;
        f.read_exact(&mut last)?;
        if last[0] != b'\n' {
            out.push(b'\n');
        }
    }
    out.extend_from_slice(line.as_bytes());
    out.push(b'\n');
    f.write_all(&out)?;
    f.sync_data()
}

/// The journal's readable records, and the 1-based numbers of the lines skipped because they
/// are not JSON objects (torn by a crash, or edited by hand).
#[derive(Debug, Default, Clone)]
pub struct History {
    pub records: Vec<serde_json::Value>,
    pub torn: Vec<usize>,
}

/// Read the journal (empty when there is none).
pub fn read(root: &Path) -> std::io::Result<History> {
    let text = match std::fs::read(path(root)?) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(History::default()),
        Err(e) => return Err(e),
    };
    let mut h = History::default();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<serde_json::Value>(line) {
            Ok(v) if v.is_object() => h.records.push(v),
            _ => h.torn.push(i + 1),
        }
    }
    Ok(h)
}

/// For `--only-changed`: the commit of the last successful complete deploy to `environment`,
/// and what is worth a warning about the journal (unreadable, torn lines).
pub fn base_commit(root: &Path, environment: Option<&str>) -> (Option<String>, Vec<String>) {
    let h = match read(root) {
        Ok(h) => h,
        Err(e) => return (None, vec![format!("cannot read `.pilum/{FILE}`: {e}")]),
    };
    let mut notes = Vec::new();
    if !h.torn.is_empty() {
        let lines: Vec<String> = h.torn.iter().map(usize::to_string).collect();
        notes.push(format!(
            "skipped unreadable lines of `.pilum/{FILE}` (a crash mid-write, or an edit): line {}",
            lines.join(", ")
        ));
    }
    (h.last_deployed_commit(environment).map(str::to_string), notes)
}

impl History {
    /// The commit of the last successful, complete `deploy` to `environment` (`None` for no
    /// `--env`), if the history knows one.
    pub fn last_deployed_commit(&self, environment: Option<&str>) -> Option<&str> {
        self.records.iter().rev().find_map(|r| {
            let ok = r["command"] == "deploy"
                && r["complete"] == true
                && r["dirty"] != true
                && r["summary"]["ok"] == true
                && r["environment"].as_str() == environment;
            r["commit"].as_str().filter(|c| ok && !c.is_empty())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(ok: bool, complete: bool) -> serde_json::Value {
        serde_json::json!({"command": "deploy", "complete": complete, "environment": null,
            "commit": if ok { "c-ok" } else { "c-bad" }, "summary": {"ok": ok}})
    }

    #[test]
    fn a_torn_last_line_is_terminated_before_appending_and_skipped_when_read() {
        let t = tempfile::tempdir().unwrap();
        let file = t.path().join(".pilum").join(FILE);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        // A crash left half a record without its newline.
        std::fs::write(&file, format!("{}\n{{\"command\":\"dep", entry(true, true))).unwrap();
        append_line(&file, &entry(false, true).to_string()).unwrap();
        let text = std::fs::read_to_string(&file).unwrap();
        assert_eq!(text.lines().count(), 3, "{text}");
        assert!(text.ends_with("}\n"));
        let h = read(t.path()).unwrap();
        assert_eq!(h.records.len(), 2);
        assert_eq!(h.torn, vec![2]);
        // The last successful complete deploy, not the failed one after it.
        assert_eq!(h.last_deployed_commit(None), Some("c-ok"));
        assert_eq!(h.last_deployed_commit(Some("prod")), None);
    }

    #[test]
    fn partial_failed_and_dirty_runs_are_no_base() {
        let mut dirty = entry(true, true);
        dirty["dirty"] = true.into();
        let h =
            History { records: vec![entry(true, false), entry(false, true), dirty], torn: vec![] };
        assert_eq!(h.last_deployed_commit(None), None);
    }

    #[test]
    fn appends_stay_inside_pilum() {
        let t = tempfile::tempdir().unwrap();
        let outside = t.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::create_dir_all(t.path().join("p")).unwrap();
        std::os::unix::fs::symlink(&outside, t.path().join("p/.pilum")).unwrap();
        let e = Entry {
            command: "deploy",
            tag: "v1",
            environment: None,
            commit: None,
            dirty: false,
            complete: true,
            summary: serde_json::json!({}),
        };
        assert!(append(&t.path().join("p"), &e).is_err());
        assert!(!outside.join(FILE).exists());
    }
}
