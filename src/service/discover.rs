//! Finding services: every `pilum.yaml` under the project root, with full gitignore semantics
//! (`.gitignore`, `.pilumignore` at any depth, also outside a git repository), `.git` and
//! `.pilum` always skipped, no depth limit, in sorted order. The walk is parallel (`ignore`).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ignore::{WalkBuilder, WalkState};

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

/// Every `pilum.yaml` under `root`, as paths relative to `root`, sorted.
pub fn find(root: &Path) -> Vec<PathBuf> {
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
