//! Finding services: every `pilum.yaml` under the project root, with full gitignore semantics
//! (`.gitignore`, `.pilumignore` at any depth, also outside a git repository), `.git` and
//! `.pilum` always skipped, no depth limit, in sorted order.
//!
//! Inside a git work tree the index answers (`git ls-files`, several times faster than any
//! walk); `.pilumignore` files are applied on top. Elsewhere a parallel walk (`ignore`) does.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use ignore::gitignore::{Gitignore, GitignoreBuilder};
use ignore::{Match, WalkBuilder, WalkState};

pub const FILE_NAME: &str = "pilum.yaml";

/// The project root: `-C <dir>` if given, else the git top level of the current directory,
/// else the current directory.
pub fn project_root(dir: Option<&Path>) -> std::io::Result<PathBuf> {
    if let Some(d) = dir {
        return d.canonicalize().map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("cannot open project directory `{}`: {e}", d.display()),
            )
        });
    }
    let cwd = std::env::current_dir()?;
    let mut cur = Some(cwd.as_path());
    while let Some(d) = cur {
        if d.join(".git").exists() {
            return Ok(d.to_path_buf());
        }
        cur = d.parent();
    }
    Ok(cwd)
}

/// Whether `root` is inside a git work tree (a `.git` in it or above; no process started).
pub fn in_git(root: &Path) -> bool {
    root.ancestors().any(|d| d.join(".git").exists())
}

/// Every `pilum.yaml` under `root`, as paths relative to `root`, sorted.
pub fn find(root: &Path) -> Vec<PathBuf> {
    if in_git(root) {
        if let Some(found) = find_git(root, None) {
            return found;
        }
    }
    walk(root)
}

const PATHSPECS: &[&str] = &[":(glob)**/pilum.yaml", ":(glob)**/.pilumignore"];

/// From the git index. With `untracked` (root-relative paths of untracked, non-ignored files,
/// already listed for `--only-changed`), only the index is read; otherwise git also lists
/// untracked files itself. `None` when git fails (the caller walks instead).
pub fn find_git(root: &Path, untracked: Option<&[String]>) -> Option<Vec<PathBuf>> {
    let mut cmd = Command::new("git");
    cmd.arg("-C").arg(root).args(["ls-files", "-z", "--cached"]);
    if untracked.is_none() {
        cmd.args(["--others", "--exclude-standard"]);
    }
    let out = cmd.arg("--").args(PATHSPECS).stderr(std::process::Stdio::null()).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let listed = out
        .stdout
        .split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned());
    let extra = untracked.unwrap_or(&[]).iter().filter(|p| {
        !p.starts_with("../") && (p.ends_with("pilum.yaml") || p.ends_with(".pilumignore"))
    });
    let mut files: Vec<String> = listed.chain(extra.cloned()).collect();
    files.sort_unstable();
    files.dedup();
    // Deleted but still indexed files are not services.
    files.retain(|f| root.join(f).is_file());
    let mut ignores: Vec<(PathBuf, Gitignore)> = Vec::new();
    for f in files.iter().filter(|f| f.rsplit('/').next() == Some(".pilumignore")) {
        let dir = Path::new(f).parent().map(Path::to_path_buf).unwrap_or_default();
        let mut b = GitignoreBuilder::new(root.join(&dir));
        if b.add(root.join(f)).is_none() {
            if let Ok(g) = b.build() {
                ignores.push((dir, g));
            }
        }
    }
    // Deepest `.pilumignore` first: its decision (ignore or `!` whitelist) wins.
    ignores.sort_by_key(|(d, _)| std::cmp::Reverse(d.components().count()));
    let found = files
        .into_iter()
        .filter(|f| f.rsplit('/').next() == Some(FILE_NAME))
        .map(PathBuf::from)
        .filter(|p| !p.components().any(|c| c.as_os_str() == ".pilum"))
        .filter(|p| {
            for (dir, g) in &ignores {
                if let Ok(rel) = p.strip_prefix(dir) {
                    match g.matched_path_or_any_parents(rel, false) {
                        Match::Ignore(_) => return false,
                        Match::Whitelist(_) => return true,
                        Match::None => {}
                    }
                }
            }
            true
        })
        .collect();
    Some(found)
}

/// A parallel walk honouring `.gitignore` and `.pilumignore` files.
pub fn walk(root: &Path) -> Vec<PathBuf> {
    let found = Mutex::new(Vec::new());
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()).min(8);
    WalkBuilder::new(root)
        .hidden(false)
        .git_ignore(true)
        .git_global(false)
        .git_exclude(true)
        .require_git(false)
        .parents(true)
        .add_custom_ignore_filename(".pilumignore")
        .threads(threads)
        .filter_entry(|e| {
            let n = e.file_name();
            !(e.depth() > 0 && (n == ".git" || n == ".pilum"))
        })
        .build_parallel()
        .run(|| {
            let found = &found;
            Box::new(move |entry| {
                if let Ok(e) = entry {
                    if e.file_name() == FILE_NAME && e.file_type().is_some_and(|t| t.is_file()) {
                        if let Ok(rel) = e.path().strip_prefix(root) {
                            found
                                .lock()
                                .expect("walker lock is never poisoned")
                                .push(rel.to_path_buf());
                        }
                    }
                }
                WalkState::Continue
            })
        });
    let mut v = found.into_inner().expect("walker lock is never poisoned");
    v.sort();
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn honours_ignore_files_at_any_depth() {
        let t = tempfile::tempdir().unwrap();
        let w = |p: &str| {
            let p = t.path().join(p);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, "name: x\n").unwrap();
        };
        w("a/pilum.yaml");
        w("a/b/c/d/e/f/pilum.yaml");
        w("node_modules/x/pilum.yaml");
        w("skip/pilum.yaml");
        w("a/old/pilum.yaml");
        w(".git/pilum.yaml");
        fs::write(t.path().join(".gitignore"), "node_modules/\n").unwrap();
        fs::write(t.path().join(".pilumignore"), "skip\n").unwrap();
        fs::write(t.path().join("a/.pilumignore"), "old/\n").unwrap();
        let found = find(t.path());
        assert_eq!(
            found,
            vec![PathBuf::from("a/b/c/d/e/f/pilum.yaml"), PathBuf::from("a/pilum.yaml")]
        );
    }
}
