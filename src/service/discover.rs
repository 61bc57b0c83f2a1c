//! Finding the project and its services. The project root is the nearest directory at or above
//! the current one holding a [`ROOT_MARKER`] (`pilum-project.yaml`), else the git top level,
//! else the current directory; `-C <dir>` names it directly. Services are every `pilum.yaml`
//! under the root, with full gitignore semantics (`.gitignore`, `.pilumignore` at any depth,
//! also outside a git repository), `.git` and `.pilum` always skipped, no depth limit, parents
//! before their subdirectories (`services/api`, `services/api-users`, `services/api-users/jobs`).
//! A subdirectory with its own marker is another project: its services are not this one's.
//!
//! Inside a git work tree the index answers (`git ls-files`, several times faster than any
//! walk); `.pilumignore` files are applied on top. Elsewhere a parallel walk (`ignore`) does.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use ignore::gitignore::{Gitignore, GitignoreBuilder};
use ignore::{Match, WalkBuilder, WalkState};

use crate::diagnostic::{Diagnostic, Problem};
use crate::sync::LockExt;
use crate::yaml::Seg;

pub(crate) const FILE_NAME: &str = "pilum.yaml";

/// The file that makes a directory a project root, as `Cargo.toml`'s `[workspace]` or
/// `turbo.json` do. A file of its own rather than a key in a `pilum.yaml`: the root is often
/// not a service itself, and the name is reserved for project-wide settings (none yet).
pub(crate) const ROOT_MARKER: &str = "pilum-project.yaml";

/// The keys [`ROOT_MARKER`] may hold: project-wide settings (`docs/ci.md`).
pub(crate) const PROJECT_KEYS: &[&str] =
    &["notify", "notify_timeout", "github", "environments", "state"];

/// The project root: `-C <dir>` if given, else the nearest directory at or above the current
/// one with a [`ROOT_MARKER`] (not above the git top level), else the git top level, else the
/// current directory.
pub(crate) fn project_root(dir: Option<&Path>) -> std::io::Result<PathBuf> {
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
        if d.join(ROOT_MARKER).is_file() || d.join(".git").exists() {
            return Ok(d.to_path_buf());
        }
        cur = d.parent();
    }
    Ok(cwd)
}

/// The problem with `root`'s [`ROOT_MARKER`], if it has one that is not comments or an
/// empty mapping.
pub(crate) fn check_marker(root: &Path) -> Option<Diagnostic> {
    let text = std::fs::read_to_string(root.join(ROOT_MARKER)).ok()?;
    let at = |p: Problem, line: usize, col: usize| {
        Some(Diagnostic::of(ROOT_MARKER, p).at(&text, line, col))
    };
    if let Err(e) = crate::yaml::check_depth(&text) {
        return at(Problem::TooDeep { limit: crate::yaml::MAX_DEPTH }, e.line, e.col);
    }
    match serde_yaml::from_str::<serde_yaml::Value>(&text) {
        Ok(serde_yaml::Value::Null) => None,
        Ok(serde_yaml::Value::Mapping(m)) => {
            // The settings themselves are read and checked by the commands that use them
            // (`commands::settings`); here only a key nobody reads is a problem.
            let key = m
                .keys()
                .map(super::expand::key_text)
                .find(|k| !PROJECT_KEYS.contains(&k.as_str()))?;
            let (l, c) = crate::yaml::position(&text, &[Seg::Key(&key)]);
            at(Problem::UnknownProjectKey { key, file: ROOT_MARKER }, l, c)
        }
        Ok(_) => at(Problem::NotAMapping { file: ROOT_MARKER }, 1, 1)
            .map(|d| d.help("leave the file empty, or keep only comments")),
        Err(_) => {
            let s = crate::yaml::syntax_error(&text);
            let m = s.as_ref().map_or(
                crate::yaml::Mark { line: 1, col: 1 },
                super::super::yaml::SyntaxError::position,
            );
            let p = s.map_or_else(|| Problem::Yaml("not valid YAML".into()), Problem::Syntax);
            at(p, m.line, m.col)
        }
    }
}

/// Parents before children, siblings by name: the order of [`Path`]'s components applied to
/// the directories (`api` < `api-users` < `api-users/jobs`).
fn sort_by_dir(files: &mut [PathBuf]) {
    files.sort_by(|a, b| a.parent().cmp(&b.parent()).then_with(|| a.cmp(b)));
}

/// Drop the files under another project's root (a subdirectory with its own [`ROOT_MARKER`]).
fn outside_nested(files: &mut Vec<PathBuf>, markers: &[PathBuf]) {
    let nested: Vec<&Path> =
        markers.iter().filter_map(|m| m.parent()).filter(|d| !d.as_os_str().is_empty()).collect();
    if !nested.is_empty() {
        files.retain(|f| !nested.iter().any(|d| f.starts_with(d)));
    }
}

/// Whether `root` is inside a git work tree (a `.git` in it or above; no process started).
pub(crate) fn in_git(root: &Path) -> bool {
    root.ancestors().any(|d| d.join(".git").exists())
}

/// Every `pilum.yaml` under `root`, as paths relative to `root`, sorted.
pub(crate) fn find(root: &Path) -> Vec<PathBuf> {
    if in_git(root)
        && let Some(found) = find_git(root, None)
    {
        return found;
    }
    walk(root)
}

const PATHSPECS: &[&str] =
    &[":(glob)**/pilum.yaml", ":(glob)**/.pilumignore", ":(glob)**/pilum-project.yaml"];

/// From the git index. With `untracked` (root-relative paths of untracked, non-ignored files,
/// already listed for `--only-changed`), only the index is read; otherwise git also lists
/// untracked files itself. `None` when git fails (the caller walks instead).
pub(crate) fn find_git(root: &Path, untracked: Option<&[String]>) -> Option<Vec<PathBuf>> {
    let listed = list_git(root, untracked.is_none())?;
    Some(from_listing(root, listed, untracked.unwrap_or(&[])))
}

/// The `pilum.yaml`, `.pilumignore` and `pilum-project.yaml` files git lists under `root`: the
/// index's, and with `others` the untracked, not ignored ones. `None` when git fails.
pub(crate) fn list_git(root: &Path, others: bool) -> Option<Vec<String>> {
    let mut cmd = Command::new("git");
    cmd.arg("-C").arg(root).args(["ls-files", "-z", "--cached"]);
    if others {
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
    Some(listed.collect())
}

/// The services' files among git's `listed` files and the `untracked` ones (root-relative,
/// listed by the caller), with `.pilumignore` files and nested projects applied, sorted by
/// directory.
pub(crate) fn from_listing(root: &Path, listed: Vec<String>, untracked: &[String]) -> Vec<PathBuf> {
    let extra = untracked.iter().filter(|p| {
        !p.starts_with("../")
            && [FILE_NAME, ".pilumignore", ROOT_MARKER]
                .contains(&p.rsplit('/').next().unwrap_or(""))
    });
    let mut files: Vec<String> = listed;
    files.extend(extra.cloned());
    files.sort_unstable();
    files.dedup();
    // Deleted but still indexed files are not services.
    files.retain(|f| root.join(f).is_file());
    let mut ignores: Vec<(PathBuf, Gitignore)> = Vec::new();
    for f in files.iter().filter(|f| f.rsplit('/').next() == Some(".pilumignore")) {
        let dir = Path::new(f).parent().map(Path::to_path_buf).unwrap_or_default();
        let mut b = GitignoreBuilder::new(root.join(&dir));
        if b.add(root.join(f)).is_none()
            && let Ok(g) = b.build()
        {
            ignores.push((dir, g));
        }
    }
    // Deepest `.pilumignore` first: its decision (ignore or `!` whitelist) wins.
    ignores.sort_by_key(|(d, _)| std::cmp::Reverse(d.components().count()));
    let markers: Vec<PathBuf> = files
        .iter()
        .filter(|f| f.rsplit('/').next() == Some(ROOT_MARKER))
        .map(PathBuf::from)
        .collect();
    let mut found: Vec<PathBuf> = files
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
    outside_nested(&mut found, &markers);
    sort_by_dir(&mut found);
    found
}

/// A parallel walk honouring `.gitignore` and `.pilumignore` files.
pub(crate) fn walk(root: &Path) -> Vec<PathBuf> {
    let found = Mutex::new(Vec::new());
    let markers = Mutex::new(Vec::new());
    let threads = std::thread::available_parallelism().map_or(2, std::num::NonZero::get).min(8);
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
            let (found, markers) = (&found, &markers);
            Box::new(move |entry| {
                if let Ok(e) = entry {
                    let list = if e.file_name() == FILE_NAME {
                        Some(found)
                    } else if e.file_name() == ROOT_MARKER {
                        Some(markers)
                    } else {
                        None
                    };
                    if let Some(list) = list.filter(|_| e.file_type().is_some_and(|t| t.is_file()))
                        && let Ok(rel) = e.path().strip_prefix(root)
                    {
                        list.locked().push(rel.to_path_buf());
                    }
                }
                WalkState::Continue
            })
        });
    let mut v = crate::sync::into_value(found);
    outside_nested(&mut v, &crate::sync::into_value(markers));
    sort_by_dir(&mut v);
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
            vec![PathBuf::from("a/pilum.yaml"), PathBuf::from("a/b/c/d/e/f/pilum.yaml")]
        );
    }

    #[test]
    fn parents_come_before_children_and_nested_projects_are_left_out() {
        let t = tempfile::tempdir().unwrap();
        for p in [
            "services/api-users/jobs/pilum.yaml",
            "services/api-users/pilum.yaml",
            "services/api/pilum.yaml",
            "examples/demo/pilum-project.yaml",
            "examples/demo/web/pilum.yaml",
        ] {
            let p = t.path().join(p);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, "name: x\n").unwrap();
        }
        let want: Vec<PathBuf> = ["services/api", "services/api-users", "services/api-users/jobs"]
            .iter()
            .map(|d| PathBuf::from(d).join(FILE_NAME))
            .collect();
        assert_eq!(walk(t.path()), want);
        let git = |args: &[&str]| {
            let ok = Command::new("git").arg("-C").arg(t.path()).args(args).output().unwrap();
            assert!(ok.status.success(), "git {args:?}");
        };
        git(&["init", "-q"]);
        assert_eq!(find_git(t.path(), None).unwrap(), want);
        // Inside the nested project, its marker makes it the root.
        assert_eq!(walk(&t.path().join("examples/demo")), vec![PathBuf::from("web/pilum.yaml")]);
    }

    #[test]
    fn the_marker_holds_only_project_settings() {
        let t = tempfile::tempdir().unwrap();
        assert_eq!(check_marker(t.path()), None, "no marker");
        fs::write(t.path().join(ROOT_MARKER), "# the project root\n").unwrap();
        assert_eq!(check_marker(t.path()), None);
        fs::write(t.path().join(ROOT_MARKER), "notify_timeout: 5s\n").unwrap();
        assert_eq!(check_marker(t.path()), None, "settings are for `commands::settings`");
        fs::write(t.path().join(ROOT_MARKER), "# x\nroot: true\n").unwrap();
        let d = check_marker(t.path()).unwrap();
        assert_eq!((d.line, d.message.as_str()), (2, "unknown key `root` in `pilum-project.yaml`"));
    }
}
