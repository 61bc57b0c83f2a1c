//! The checkout a run builds: `HEAD`'s commit and the uncommitted changes under the project
//! root (`git status`, untracked files included, `.pilum/` left out), and the default version
//! tag made from them: the short SHA, with `-dirty` when there are changes, else a timestamp
//! outside git. `deploy`, `publish` and `push` refuse a dirty tree unless told otherwise
//! (`commands::deploy`), so a clean commit's tag never names other code.

use std::path::{Path, PathBuf};

use crate::orchestrator::plan::Commit;

/// How many changed files a message lists before `… and N more`.
const LISTED: usize = 10;

/// The commit checked out at `root` and the changes under `root`; `None` outside a git work
/// tree or before the first commit. When `git status` cannot run, no change is reported.
pub fn commit(root: &Path) -> Option<Commit> {
    if !crate::service::discover::in_git(root) {
        return None;
    }
    let sha = head_sha(root).or_else(|| git(root, &["rev-parse", "HEAD"]))?;
    let status = git(
        root,
        &["status", "--porcelain", "--untracked-files=normal", "--", ".", ":(exclude).pilum"],
    );
    let changes = status.map(|s| s.lines().map(str::to_string).collect()).unwrap_or_default();
    Some(Commit { sha, changes })
}

/// The default tag: the short SHA (`-dirty` when the tree has changes), else a UTC timestamp.
pub fn default_tag(commit: Option<&Commit>) -> String {
    match commit {
        Some(c) => format!("{}{}", c.short(), if c.dirty() { "-dirty" } else { "" }),
        None => chrono::Utc::now().format("%Y%m%d%H%M%S").to_string(),
    }
}

/// The changes as `git status --porcelain` lines, indented, at most [`LISTED`] of them.
pub fn listed(c: &Commit) -> String {
    let mut lines: Vec<String> = c.changes.iter().take(LISTED).map(|l| format!("  {l}")).collect();
    if c.changes.len() > LISTED {
        lines.push(format!("  … and {} more", c.changes.len() - LISTED));
    }
    lines.join("\n")
}

/// `git -C root <args>`'s trimmed stdout, when it succeeds.
fn git(root: &Path, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(root)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    Some(String::from_utf8_lossy(&out.stdout).trim_end().to_string())
}

/// `HEAD`'s full SHA from the git directory: a detached SHA, a loose ref, or `packed-refs`.
/// `None` for anything unusual (the caller asks git).
fn head_sha(root: &Path) -> Option<String> {
    let dot_git = root.ancestors().map(|d| d.join(".git")).find(|p| p.exists())?;
    let git_dir = if dot_git.is_file() {
        // A linked worktree or submodule: `gitdir: <path>`.
        let text = std::fs::read_to_string(&dot_git).ok()?;
        let p = PathBuf::from(text.strip_prefix("gitdir:")?.trim());
        if p.is_absolute() { p } else { dot_git.parent()?.join(p) }
    } else {
        dot_git
    };
    let head = std::fs::read_to_string(git_dir.join("HEAD")).ok()?;
    let head = head.trim();
    let is_sha = |s: &str| s.len() >= 40 && s.bytes().all(|b| b.is_ascii_hexdigit());
    let Some(reference) = head.strip_prefix("ref:").map(str::trim) else {
        return is_sha(head).then(|| head.to_string());
    };
    // Refs live in the common directory of a linked worktree.
    let common = match std::fs::read_to_string(git_dir.join("commondir")) {
        Ok(c) => git_dir.join(c.trim()),
        Err(_) => git_dir.clone(),
    };
    for dir in [&git_dir, &common] {
        if let Ok(sha) = std::fs::read_to_string(dir.join(reference)) {
            let sha = sha.trim();
            return is_sha(sha).then(|| sha.to_string());
        }
    }
    let packed = std::fs::read_to_string(common.join("packed-refs")).ok()?;
    packed.lines().find_map(|l| {
        let (sha, name) = l.split_once(' ')?;
        (name == reference && is_sha(sha)).then(|| sha.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_sha_matches_git() {
        let t = tempfile::tempdir().unwrap();
        let git = |args: &[&str]| {
            let o = std::process::Command::new("git")
                .arg("-C")
                .arg(t.path())
                .args(args)
                .env("GIT_AUTHOR_NAME", "t")
                .env("GIT_AUTHOR_EMAIL", "t@example.com")
                .env("GIT_COMMITTER_NAME", "t")
                .env("GIT_COMMITTER_EMAIL", "t@example.com")
                .output()
                .unwrap();
            assert!(o.status.success(), "git {args:?}");
            String::from_utf8_lossy(&o.stdout).trim().to_string()
        };
        assert_eq!(head_sha(t.path()), None);
        git(&["init", "-q", "-b", "main"]);
        assert_eq!(head_sha(t.path()), None, "no commit yet");
        git(&["commit", "-q", "--allow-empty", "-m", "one"]);
        let want = git(&["rev-parse", "HEAD"]);
        assert_eq!(head_sha(t.path()).as_deref(), Some(want.as_str()));
        git(&["pack-refs", "--all"]);
        assert_eq!(head_sha(t.path()).as_deref(), Some(want.as_str()));
        git(&["checkout", "-q", "--detach"]);
        assert_eq!(head_sha(t.path()).as_deref(), Some(want.as_str()));
        std::fs::create_dir_all(t.path().join("sub")).unwrap();
        assert_eq!(head_sha(&t.path().join("sub")).as_deref(), Some(want.as_str()));

        // The tree under the root: untracked files count, `.pilum/` does not, nor do changes
        // outside the root.
        let sub = t.path().join("sub");
        std::fs::create_dir_all(sub.join(".pilum")).unwrap();
        std::fs::write(sub.join(".pilum/history.jsonl"), "{}\n").unwrap();
        std::fs::write(t.path().join("outside.txt"), "x").unwrap();
        let c = commit(&sub).expect("a commit");
        assert_eq!((c.sha.as_str(), c.dirty()), (want.as_str(), false), "{:?}", c.changes);
        assert_eq!(default_tag(Some(&c)), want[..12]);
        std::fs::write(sub.join("new.txt"), "x").unwrap();
        let c = commit(&sub).expect("a commit");
        assert_eq!(c.changes, ["?? sub/"], "an untracked directory");
        assert_eq!(default_tag(Some(&c)), format!("{}-dirty", &want[..12]));
    }
}
