//! Changed files for `--only-changed`, straight from git: the commits since the merge base with
//! `--since` (default: the remote default branch, else `main`/`master`), plus staged, unstaged
//! and untracked files. Paths are made relative to the project root (which may sit below the
//! repository's top level), so it works from any subdirectory. The independent git commands run
//! concurrently.

use std::path::Path;
use std::process::Command;

/// The files changed since the base, relative to the project root (`../` for files outside it).
#[derive(Debug, Clone)]
pub struct Changes {
    pub base: String,
    pub files: Vec<String>,
}

/// Why changes could not be computed; every variant is a usage problem (exit 2).
#[derive(Debug)]
pub enum ChangeError {
    NotARepo(String),
    NoBase,
    UnknownRef { reference: String, shallow: bool },
    Git { args: String, stderr: String },
}

impl std::fmt::Display for ChangeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChangeError::NotARepo(dir) => write!(
                f,
                "`--only-changed` needs a git repository, and `{dir}` is not inside one\nhelp: run it in a git checkout, or select services by name instead"
            ),
            ChangeError::NoBase => write!(
                f,
                "cannot find a base to compare against: no `origin/HEAD`, `main` or `master`\nhelp: pass one with `--since <ref>`"
            ),
            ChangeError::UnknownRef { reference, shallow: true } => write!(
                f,
                "cannot compare with `{reference}`: this is a shallow clone without that history\nhelp: fetch full history (`git fetch --unshallow`, or `fetch-depth: 0` in actions/checkout)"
            ),
            ChangeError::UnknownRef { reference, shallow: false } => write!(
                f,
                "cannot compare with `{reference}`: no such commit or no common history with `HEAD`\nhelp: pass an existing branch, tag or commit with `--since`"
            ),
            ChangeError::Git { args, stderr } => {
                write!(f, "`git {args}` failed: {}", stderr.trim())
            }
        }
    }
}

fn git(root: &Path, args: &[&str]) -> Result<Vec<u8>, ChangeError> {
    let out = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(args)
        .output()
        .map_err(|e| ChangeError::Git { args: args.join(" "), stderr: e.to_string() })?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(ChangeError::Git {
            args: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}

fn lines(b: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(b).lines().map(str::to_string).collect()
}

fn nul_split(b: &[u8]) -> impl Iterator<Item = String> + '_ {
    b.split(|&c| c == 0).filter(|s| !s.is_empty()).map(|s| String::from_utf8_lossy(s).into_owned())
}

/// Compute the changed files. `since` is a ref, or `None` for the default base.
pub fn changed_files(root: &Path, since: Option<&str>) -> Result<Changes, ChangeError> {
    // One call for where the root sits in the repository and whether history is shallow; the
    // ref listing for the default base comes from the same process when no `--since` is given.
    let info = git(root, &["rev-parse", "--show-prefix", "--is-shallow-repository"])
        .map_err(|_| ChangeError::NotARepo(root.display().to_string()))?;
    let info = lines(&info);
    let prefix = info.first().cloned().unwrap_or_default();
    let shallow = info.get(1).is_some_and(|s| s == "true");
    let base = match since {
        Some(s) => s.to_string(),
        None => default_base(root)?,
    };
    let range = format!("{base}...HEAD");
    let (committed, worktree, untracked) = std::thread::scope(|s| {
        let a = s.spawn(|| git(root, &["diff", "--name-only", "--no-renames", "-z", &range, "--"]));
        let b = s.spawn(|| git(root, &["diff", "--name-only", "--no-renames", "-z", "HEAD", "--"]));
        let c = s.spawn(|| {
            git(root, &["ls-files", "--others", "--exclude-standard", "--full-name", "-z", ":/"])
        });
        (
            a.join().expect("git thread does not panic"),
            b.join().expect("git thread does not panic"),
            c.join().expect("git thread does not panic"),
        )
    });
    let committed =
        committed.map_err(|_| ChangeError::UnknownRef { reference: base.clone(), shallow })?;
    // A repository without commits has no HEAD; only untracked files count then.
    let worktree = worktree.unwrap_or_default();
    let untracked = untracked?;
    let mut files: Vec<String> = nul_split(&committed)
        .chain(nul_split(&worktree))
        .chain(nul_split(&untracked))
        .map(|p| relative_to_root(&p, &prefix))
        .collect();
    files.sort_unstable();
    files.dedup();
    Ok(Changes { base, files })
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
    Err(ChangeError::NoBase)
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
pub fn normalize(path: &str) -> String {
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
    fn normalizes() {
        assert_eq!(normalize("svc/./a/../../libs/"), "libs");
        assert_eq!(normalize("../libs/x"), "../libs/x");
    }
}
