//! The checkout a run builds: `HEAD`'s commit and the uncommitted changes under the project
//! root (`git status`, untracked files included, `.pilum/` left out), and the default version
//! tag made from them: the short SHA, with `-dirty` when there are changes, else a timestamp
//! outside git. `deploy`, `publish` and `push` refuse a dirty tree unless told otherwise
//! (`commands::deploy`), so a clean commit's tag never names other code.

use std::path::Path;

use crate::orchestrator::plan::Commit;

/// How many changed files a message lists before `… and N more`.
const LISTED: usize = 10;

/// The commit checked out at `root` and the changes under `root`; `None` outside a git work
/// tree or before the first commit. `worktree` is the changes when loading already listed them
/// ([`status`] while the project loaded, or `Changes::worktree` from `--only-changed`'s one
/// status pass: a second pass cost as much again on a large tree); otherwise `git status` runs
/// here, and when it cannot run no change is reported.
pub(crate) fn commit(root: &Path, worktree: Option<&[String]>) -> Option<Commit> {
    if !crate::service::discover::in_git(root) {
        return None;
    }
    let sha =
        crate::service::changed::head_sha(root).or_else(|| git(root, &["rev-parse", "HEAD"]))?;
    let changes = match worktree {
        Some(lines) => lines.to_vec(),
        None => status(root).unwrap_or_default(),
    };
    Some(Commit { sha, changes })
}

/// The uncommitted changes under `root` as `git status --porcelain` lines (`XY path`, paths
/// from the top level, every untracked file listed, `.pilum/` left out), in the form of
/// `--only-changed`'s status pass: the build cache's input hashes take the changed files from
/// them too. `None` outside a git work tree or when git fails.
pub(crate) fn status(root: &Path) -> Option<Vec<String>> {
    if !crate::service::discover::in_git(root) {
        return None;
    }
    let args = [&crate::service::changed::STATUS[..], &["--", ".", ":(exclude).pilum"]].concat();
    let out = crate::state::inputs::git(root, &args)?;
    Some(crate::service::changed::status_lines(&out))
}

/// The default tag: the short SHA (`-dirty` when the tree has changes), else a UTC timestamp.
pub(crate) fn default_tag(commit: Option<&Commit>) -> String {
    match commit {
        Some(c) => format!("{}{}", c.short(), if c.dirty() { "-dirty" } else { "" }),
        None => chrono::Utc::now().format("%Y%m%d%H%M%S").to_string(),
    }
}

/// The changes as `git status --porcelain` lines, indented, at most [`LISTED`] of them.
pub(crate) fn listed(c: &Commit) -> String {
    let mut lines: Vec<String> = c.changes.iter().take(LISTED).map(|l| format!("  {l}")).collect();
    if c.changes.len() > LISTED {
        lines.push(format!("  … and {} more", c.changes.len() - LISTED));
    }
    lines.join("\n")
}

/// `git -C root <args>`'s trimmed stdout, when it succeeds.
fn git(root: &Path, args: &[&str]) -> Option<String> {
    let out = crate::state::inputs::git(root, args)?;
    Some(String::from_utf8_lossy(&out).trim_end().to_string())
}
