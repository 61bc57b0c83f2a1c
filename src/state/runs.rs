//! Saved runs: `.pilum/runs/<run-id>.json`, one file per run that changed things, written at
//! its end so that `pilum report` can draw it again later; only the newest [`KEEP`] are kept.
//! A run id is the UTC time the run ended and its command, `20261201T103000.123Z-deploy`
//! (`-2`, `-3`… if taken), so ids sort by time. What a file holds is the report's business
//! (`ui::report::record`); this module names, writes, lists, reads and prunes the files, every
//! path checked by [`guard::pilum_path`](super::guard::pilum_path). A file appears whole or
//! not at all: it is written under a temporary name, then linked to its id.

use std::io;
use std::path::{Path, PathBuf};

use super::guard::pilum_path;

/// Saved runs kept; older ones are deleted when a new one is saved.
pub(crate) const KEEP: usize = 50;
const DIR: &str = "runs";

fn file(root: &Path, id: &str) -> io::Result<PathBuf> {
    crate::names::check(id)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("run id `{id}` {e}")))?;
    pilum_path(root, Path::new(DIR).join(format!("{id}.json"))).map_err(io::Error::other)
}

/// Save `json` as a new run of `command`; returns its id. Then prune to [`KEEP`].
pub(crate) fn save(root: &Path, command: &str, json: &[u8]) -> io::Result<String> {
    let dir = pilum_path(root, DIR).map_err(io::Error::other)?;
    std::fs::create_dir_all(&dir)?;
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
    let base = format!("{stamp}-{command}");
    let tmp = pilum_path(root, Path::new(DIR).join(format!(".{base}.{}.tmp", std::process::id())))
        .map_err(io::Error::other)?;
    std::fs::write(&tmp, json)?;
    let mut saved = Err(io::Error::new(io::ErrorKind::AlreadyExists, "every run id is taken"));
    for k in 1..=100 {
        let id = if k == 1 { base.clone() } else { format!("{base}-{k}") };
        // A hard link fails when the name exists: the id is claimed atomically.
        match std::fs::hard_link(&tmp, file(root, &id)?) {
            Ok(()) => {
                saved = Ok(id);
                break;
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                saved = Err(e);
                break;
            }
        }
    }
    let _ = std::fs::remove_file(&tmp);
    let id = saved?;
    prune(root, KEEP)?;
    Ok(id)
}

/// The saved run ids, oldest first (none when there is no `.pilum/runs/`).
pub(crate) fn list(root: &Path) -> io::Result<Vec<String>> {
    let dir = pilum_path(root, DIR).map_err(io::Error::other)?;
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut ids = Vec::new();
    for e in entries {
        let name = e?.file_name();
        let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".json")) else { continue };
        if crate::names::check(id).is_ok() {
            ids.push(id.to_string());
        }
    }
    ids.sort_by(|a, b| order(a).cmp(&order(b)));
    Ok(ids)
}

/// An id's place in time: its time and command, then the number a clash gave it.
fn order(id: &str) -> (&str, u32) {
    match id.rsplit_once('-') {
        Some((base, k)) if !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit()) => {
            (base, k.parse().unwrap_or(u32::MAX))
        }
        _ => (id, 1),
    }
}

/// The text of run `id` (`NotFound` when there is no such run).
pub(crate) fn read(root: &Path, id: &str) -> io::Result<String> {
    std::fs::read_to_string(file(root, id)?)
}

/// Delete all but the newest `keep` runs.
pub(crate) fn prune(root: &Path, keep: usize) -> io::Result<()> {
    let ids = list(root)?;
    for id in &ids[..ids.len().saturating_sub(keep)] {
        match std::fs::remove_file(file(root, id)?) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_lists_reads_and_keeps_the_newest() {
        let t = tempfile::tempdir().unwrap();
        let mut ids = Vec::new();
        for i in 0..KEEP + 5 {
            ids.push(save(t.path(), "deploy", format!("{{\"n\":{i}}}").as_bytes()).unwrap());
        }
        let kept = list(t.path()).unwrap();
        assert_eq!(kept.len(), KEEP);
        assert_eq!(kept, ids[5..], "the oldest are deleted, ids sort by time");
        assert_eq!(
            read(t.path(), kept.last().unwrap()).unwrap(),
            format!("{{\"n\":{}}}", KEEP + 4)
        );
        let names: Vec<_> = std::fs::read_dir(t.path().join(".pilum/runs")).unwrap().collect();
        assert_eq!(names.len(), KEEP, "no temporary file is left");
    }

    #[test]
    fn ids_are_names() {
        let t = tempfile::tempdir().unwrap();
        assert_eq!(
            read(t.path(), "../etc/passwd").unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        assert_eq!(read(t.path(), "nope").unwrap_err().kind(), io::ErrorKind::NotFound);
        assert!(list(t.path()).unwrap().is_empty());
    }
}
