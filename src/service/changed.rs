//! Changed files for `--only-changed`, straight from git: the commits since the merge base of
//! a base commit and `HEAD`, plus staged, unstaged and untracked files. Paths are made relative
//! to the project root (which may sit below the repository's top level), so it works from any
//! subdirectory. The independent git commands run concurrently.
//!
//! The base, first found wins ([`BaseSource`]): `--since`; `PILUM_SINCE`; the CI event's own
//! range (a GitHub push's `before`, a pull request's base; GitLab's
//! `CI_MERGE_REQUEST_DIFF_BASE_SHA`, then `CI_COMMIT_BEFORE_SHA`), where forty zeros (a new
//! branch) means "no range"; the commit of the last successful complete deploy in
//! `.pilum/history.jsonl` (read by the caller); the merge base with the default branch. A
//! default-branch base that is `HEAD` itself, or any base a shallow clone does not have, is an
//! error, never a silent "nothing changed". [`head_sha`] reads `HEAD` without starting git.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::diagnostic::{Diagnostic, Problem};

/// Where the base of `--only-changed` came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BaseSource {
    Flag,
    PilumSince,
    GitHubPush,
    GitHubPullRequest,
    GitLabPush,
    GitLabMergeRequest,
    LastDeploy,
    DefaultBranch,
}

impl BaseSource {
    /// The source as plain words, for the base shown between backticks
    /// (`` changed since `6113728f27ae (GitHub push event)` ``).
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Flag => "--since",
            Self::PilumSince => "PILUM_SINCE",
            Self::GitHubPush => "GitHub push event",
            Self::GitHubPullRequest => "GitHub pull request base",
            Self::GitLabPush => "GitLab CI_COMMIT_BEFORE_SHA",
            Self::GitLabMergeRequest => "GitLab CI_MERGE_REQUEST_DIFF_BASE_SHA",
            Self::LastDeploy => "last successful deploy",
            Self::DefaultBranch => "default branch",
        }
    }
}

impl std::fmt::Display for BaseSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Flag => "`--since`",
            Self::PilumSince => "`PILUM_SINCE`",
            Self::GitHubPush => "the GitHub push event's `before`",
            Self::GitHubPullRequest => "the GitHub pull request's base",
            Self::GitLabPush => "GitLab's `CI_COMMIT_BEFORE_SHA`",
            Self::GitLabMergeRequest => "GitLab's `CI_MERGE_REQUEST_DIFF_BASE_SHA`",
            Self::LastDeploy => "the last successful deploy in `.pilum/history.jsonl`",
            Self::DefaultBranch => "the default branch",
        })
    }
}

/// The files changed since the base, relative to the project root (`../` for files outside it).
#[derive(Debug, Clone)]
pub(crate) struct Changes {
    /// The base as shown to the user: the ref given, or a short SHA and where it came from.
    pub base: String,
    pub files: Vec<String>,
    /// The untracked (and not ignored) files among `files`, for discovery from the index.
    pub untracked: Vec<String>,
    /// The uncommitted changes under the project root as `git status --porcelain` lines
    /// (`XY path`, paths from the top level, `.pilum/` left out): the checkout's dirty state
    /// from the same status pass (`commands::checkout`).
    pub worktree: Vec<String>,
    /// Things worth a warning: an unreadable CI event file, a deployed commit that is gone.
    pub notes: Vec<String>,
}

/// Why changes could not be computed: a usage problem (exit 2), as a [`Diagnostic`].
pub(crate) type ChangeError = Box<Diagnostic>;

fn fail(problem: Problem) -> ChangeError {
    Box::new(Diagnostic::of("", problem))
}

fn git(root: &Path, args: &[&str]) -> Result<Vec<u8>, ChangeError> {
    let out = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(args)
        .output()
        .map_err(|e| fail(Problem::Git { args: args.join(" "), stderr: e.to_string() }))?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(fail(Problem::Git {
            args: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }))
    }
}

fn lines(b: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(b).lines().map(str::to_string).collect()
}

fn nul_split(b: &[u8]) -> impl Iterator<Item = String> + '_ {
    b.split(|&c| c == 0).filter(|s| !s.is_empty()).map(|s| String::from_utf8_lossy(s).into_owned())
}

/// Compute the changed files. `since` is `--since`; `last_deploy` is the commit of the last
/// successful complete deploy, from the caller's deploy history.
pub(crate) fn changed_files(
    root: &Path,
    since: Option<&str>,
    last_deploy: Option<&str>,
) -> Result<Changes, ChangeError> {
    changed_files_with(root, since, last_deploy, &|k| std::env::var(k).ok())
}

/// [`changed_files`] with the environment read through `env`.
pub(crate) fn changed_files_with(
    root: &Path,
    since: Option<&str>,
    last_deploy: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Changes, ChangeError> {
    // One call for where the root sits in the repository, whether history is shallow and
    // which commit `HEAD` is.
    let info = git(root, &["rev-parse", "--show-prefix", "--is-shallow-repository"])
        .map_err(|_| fail(Problem::NotARepo { dir: root.display().to_string() }))?;
    let info = lines(&info);
    let prefix = info.first().cloned().unwrap_or_default();
    let shallow = info.get(1).is_some_and(|s| s == "true");
    // One `git status` pass lists staged, unstaged and untracked files: one index refresh and
    // one untracked walk, and git applies `core.untrackedCache` and `core.fsmonitor` when the
    // repository has them. The committed range runs alongside.
    let (status, committed) = std::thread::scope(|s| {
        let status = s.spawn(|| git(root, &STATUS));
        let committed = committed_since(root, since, last_deploy, env, shallow);
        (status.join().expect("git thread does not panic"), committed)
    });
    let (base, committed, notes) = committed?;
    let (worktree, untracked, lines) = parse_status(&status?);
    let state = format!("{prefix}.pilum");
    let under_root = |l: &String| {
        let path = &l[3..];
        path.starts_with(prefix.as_str())
            && !(path.starts_with(state.as_str())
                && matches!(path.as_bytes().get(state.len()), None | Some(b'/')))
    };
    let lines: Vec<String> = lines.into_iter().filter(under_root).collect();
    let untracked: Vec<String> = untracked.iter().map(|p| relative_to_root(p, &prefix)).collect();
    let mut files: Vec<String> = nul_split(&committed)
        .map(|p| relative_to_root(&p, &prefix))
        .chain(worktree.iter().map(|p| relative_to_root(p, &prefix)))
        .chain(untracked.iter().cloned())
        .collect();
    files.sort_unstable();
    files.dedup();
    Ok(Changes { base, files, untracked, notes, worktree: lines })
}

/// The status pass: staged, unstaged and every untracked file, NUL-separated, no renames.
pub(crate) const STATUS: [&str; 5] =
    ["status", "--porcelain=v1", "-z", "--untracked-files=all", "--no-renames"];

/// The entries of `git status --porcelain=v1 -z` (without renames) as `XY path` lines, paths
/// from the top level, ignored ones left out.
pub(crate) fn status_lines(out: &[u8]) -> Vec<String> {
    parse_status(out).2
}

/// `git status --porcelain=v1 -z` (without renames): the tracked paths with any change (staged,
/// unstaged, deleted, unmerged) and the untracked ones, both relative to the top level, and
/// every entry as a `XY path` line.
fn parse_status(out: &[u8]) -> (Vec<String>, Vec<String>, Vec<String>) {
    let (mut changed, mut untracked, mut lines) = (Vec::new(), Vec::new(), Vec::new());
    for entry in out.split(|&c| c == 0) {
        // `XY PATH`: two status letters and a space.
        let (Some(code), Some(path)) = (entry.get(..2), entry.get(3..)) else { continue };
        if path.is_empty() {
            continue;
        }
        let path = String::from_utf8_lossy(path).into_owned();
        if code != b"!!" {
            lines.push(String::from_utf8_lossy(entry).into_owned());
        }
        match code {
            b"??" => untracked.push(path),
            b"!!" => {}
            _ => changed.push(path),
        }
    }
    (changed, untracked, lines)
}

/// The base `--only-changed` would compare with, without listing any file: the reference, where
/// it came from, and notes (`pilum ci detect` shows it). The same rules, in the same order, as
/// [`changed_files`].
pub(crate) fn change_base(
    root: &Path,
    since: Option<&str>,
    last_deploy: Option<&str>,
) -> Result<(String, BaseSource, Vec<String>), ChangeError> {
    let info = git(root, &["rev-parse", "--is-shallow-repository"])
        .map_err(|_| fail(Problem::NotARepo { dir: root.display().to_string() }))?;
    let shallow = lines(&info).first().is_some_and(|s| s == "true");
    let env = |k: &str| std::env::var(k).ok();
    let mut notes = Vec::new();
    let (reference, source) = match base(root, since, last_deploy, &env, &mut notes, shallow)? {
        Some(b) => b,
        None => (default_base(root)?, BaseSource::DefaultBranch),
    };
    Ok((reference, source, notes))
}

/// The base as shown, the committed files (NUL-separated) and notes.
type Committed = (String, Vec<u8>, Vec<String>);

/// Resolve the base, check it, and list the files committed since its merge base with `HEAD`.
fn committed_since(
    root: &Path,
    since: Option<&str>,
    last_deploy: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
    shallow: bool,
) -> Result<Committed, ChangeError> {
    let head =
        git(root, &["rev-parse", "--verify", "-q", "HEAD"]).map_err(|_| fail(Problem::NoCommit))?;
    let head = String::from_utf8_lossy(&head).trim().to_string();
    let mut notes = Vec::new();
    let (reference, source) = match base(root, since, last_deploy, env, &mut notes, shallow)? {
        Some(b) => b,
        None => (default_base(root)?, BaseSource::DefaultBranch),
    };
    let unknown = || {
        fail(Problem::UnknownBase {
            reference: reference.clone(),
            source: source.to_string(),
            shallow,
        })
    };
    let merge_base = git(root, &["merge-base", &reference, "HEAD"]).map_err(|_| unknown())?;
    let merge_base = String::from_utf8_lossy(&merge_base).trim().to_string();
    // Only the fallback can be `HEAD` without meaning it: a deploy or CI range that ends at
    // `HEAD` says "nothing new since", truthfully.
    if merge_base == head && source == BaseSource::DefaultBranch {
        return Err(fail(Problem::BaseIsHead { reference, source: source.to_string() }));
    }
    let diff =
        git(root, &["diff", "--name-only", "--no-renames", "-z", &merge_base, "HEAD", "--"])?;
    let shown = match source {
        BaseSource::Flag | BaseSource::PilumSince | BaseSource::DefaultBranch => reference,
        _ => format!("{} ({})", &reference[..reference.len().min(12)], source.label()),
    };
    Ok((shown, diff, notes))
}

/// The first base the command line, the environment, the CI event or the history gives.
/// `None` when only the default branch is left.
fn base(
    root: &Path,
    since: Option<&str>,
    last_deploy: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
    notes: &mut Vec<String>,
    shallow: bool,
) -> Result<Option<(String, BaseSource)>, ChangeError> {
    let set = |k: &str| env(k).filter(|v| !v.trim().is_empty());
    if let Some(s) = since {
        return Ok(Some((s.to_string(), BaseSource::Flag)));
    }
    if let Some(s) = set("PILUM_SINCE") {
        return Ok(Some((s, BaseSource::PilumSince)));
    }
    if let Some(b) = ci_base(env, notes) {
        return Ok(Some(b));
    }
    if let Some(commit) = last_deploy {
        let exists = git(root, &["cat-file", "-e", &format!("{commit}^{{commit}}")]).is_ok();
        if exists {
            return Ok(Some((commit.to_string(), BaseSource::LastDeploy)));
        }
        if shallow {
            return Err(fail(Problem::UnknownBase {
                reference: commit.to_string(),
                source: BaseSource::LastDeploy.to_string(),
                shallow,
            }));
        }
        notes.push(format!(
            "the last deployed commit `{commit}` is not in this repository (rewritten history?); comparing with the default branch"
        ));
    }
    Ok(None)
}

/// A commit the CI system says this run is about: GitHub Actions (from `$GITHUB_EVENT_PATH`)
/// or GitLab CI. A new branch (`before` of forty zeros) has no range.
fn ci_base(
    env: &dyn Fn(&str) -> Option<String>,
    notes: &mut Vec<String>,
) -> Option<(String, BaseSource)> {
    let set = |k: &str| env(k).filter(|v| !v.trim().is_empty());
    let real = |sha: &str| !sha.is_empty() && !sha.bytes().all(|b| b == b'0');
    if let Some(path) = set("GITHUB_EVENT_PATH") {
        let event: Option<serde_json::Value> = match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).ok(),
            Err(_) => None,
        };
        match event {
            None => notes.push(format!(
                "cannot read the GitHub event at `{path}`; not using it as the base"
            )),
            Some(ev) => {
                if let Some(pr) = ev.get("pull_request").filter(|p| p.is_object()) {
                    if let Some(sha) = pr["base"]["sha"].as_str().filter(|s| real(s)) {
                        return Some((sha.to_string(), BaseSource::GitHubPullRequest));
                    }
                } else if let Some(before) = ev["before"].as_str().filter(|s| real(s)) {
                    return Some((before.to_string(), BaseSource::GitHubPush));
                }
            }
        }
    }
    if let Some(branch) = set("GITHUB_BASE_REF") {
        return Some((format!("origin/{branch}"), BaseSource::GitHubPullRequest));
    }
    if let Some(sha) = set("CI_MERGE_REQUEST_DIFF_BASE_SHA").filter(|s| real(s)) {
        return Some((sha, BaseSource::GitLabMergeRequest));
    }
    if let Some(sha) = set("CI_COMMIT_BEFORE_SHA").filter(|s| real(s)) {
        return Some((sha, BaseSource::GitLabPush));
    }
    None
}

/// The remote default branch (`origin/HEAD`), else `origin/main`, `origin/master`, `main`,
/// `master` — whichever exists first, from one `git for-each-ref`.
fn default_base(root: &Path) -> Result<String, ChangeError> {
    const CANDIDATES: &[&str] = &[
        "refs/remotes/origin/HEAD",
        "refs/remotes/origin/main",
        "refs/remotes/origin/master",
        "refs/heads/main",
        "refs/heads/master",
    ];
    let mut args = vec!["for-each-ref", "--format=%(refname) %(symref)"];
    args.extend(CANDIDATES);
    let out = lines(&git(root, &args)?);
    for c in CANDIDATES {
        if let Some(line) = out.iter().find(|l| l.split(' ').next() == Some(c)) {
            let target = line.split(' ').nth(1).filter(|s| !s.is_empty()).unwrap_or(c);
            return Ok(target
                .strip_prefix("refs/remotes/")
                .or_else(|| target.strip_prefix("refs/heads/"))
                .unwrap_or(target)
                .to_string());
        }
    }
    Err(fail(Problem::NoBase))
}

/// `HEAD`'s full SHA from the git directory: a detached SHA, a loose ref, or `packed-refs`.
/// `None` for anything unusual (the caller asks git).
pub(crate) fn head_sha(root: &Path) -> Option<String> {
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

/// A top-level-relative path made relative to the project root at `prefix` (`a/b/`).
fn relative_to_root(path: &str, prefix: &str) -> String {
    if let Some(rest) = path.strip_prefix(prefix) {
        return rest.to_string();
    }
    let mut p: Vec<&str> =
        prefix.trim_end_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    let mut rest: &str = path;
    // Drop the common leading components, then climb out of what is left of the prefix.
    while let Some(first) = p.first() {
        match rest.strip_prefix(first).and_then(|r| r.strip_prefix('/')) {
            Some(r) => {
                rest = r;
                p.remove(0);
            }
            None => break,
        }
    }
    format!("{}{rest}", "../".repeat(p.len()))
}

/// Lexically normalise a relative path (`a/./b/../c` → `a/c`), keeping leading `..`.
pub(crate) fn normalize(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." if out.last().is_some_and(|l| *l != "..") => {
                out.pop();
            }
            _ => out.push(part),
        }
    }
    out.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_relative_to_a_nested_root() {
        assert_eq!(relative_to_root("apps/api/x.rs", "apps/"), "api/x.rs");
        assert_eq!(relative_to_root("libs/x.rs", "apps/"), "../libs/x.rs");
        assert_eq!(relative_to_root("a/c/x", "a/b/"), "../c/x");
        assert_eq!(relative_to_root("x", ""), "x");
    }

    #[test]
    fn status_entries_split_into_changed_and_untracked() {
        let out = b" M a/b.rs\0A  new.rs\0D  gone.rs\0UU both.rs\0?? x y/z\0?? n\xffo\0\0";
        let (changed, untracked, lines) = parse_status(out);
        assert_eq!(changed, ["a/b.rs", "new.rs", "gone.rs", "both.rs"]);
        assert_eq!(untracked, ["x y/z", "n\u{fffd}o"]);
        assert_eq!(lines[0], " M a/b.rs");
        assert_eq!(lines[4], "?? x y/z");
        assert_eq!(lines.len(), 6);
        assert_eq!(parse_status(b""), (vec![], vec![], vec![]));
    }

    #[test]
    fn normalizes() {
        assert_eq!(normalize("svc/./a/../../libs/"), "libs");
        assert_eq!(normalize("../libs/x"), "../libs/x");
    }

    #[test]
    fn head_sha_matches_git() {
        let t = tempfile::tempdir().unwrap();
        let git = |args: &[&str]| {
            String::from_utf8_lossy(&crate::service::test_git(t.path(), args)).trim().to_string()
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
    }
}
