//! Defence in depth for everything pilum writes or deletes under `.pilum/`: after resolving
//! symlinks in every existing component, the path must still be inside the project's `.pilum/`
//! directory. Names are validated when they are loaded (`crate::names`); this check catches
//! whatever a future code path forgets, and a `.pilum/` subdirectory replaced by a symlink.

use std::fmt;
use std::path::{Component, Path, PathBuf};

#[derive(Debug)]
pub struct Escape {
    pub path: PathBuf,
    pub resolved: PathBuf,
}

impl fmt::Display for Escape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "refusing to touch `{}`: it resolves to `{}`, outside the project's `.pilum/` directory\nhelp: remove the symlink or the odd name that leads there",
            self.path.display(),
            self.resolved.display()
        )
    }
}

impl std::error::Error for Escape {}

/// `root/.pilum/<rel>`, checked: `rel` has no `..`, absolute or prefix components, and the
/// longest existing ancestor of the result (symlinks resolved) is inside `root/.pilum/`.
pub fn pilum_path(root: &Path, rel: impl AsRef<Path>) -> Result<PathBuf, Escape> {
    let rel = rel.as_ref();
    let base = root.join(".pilum");
    let joined = base.join(rel);
    let clean = rel.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if !clean {
        return Err(Escape { path: joined.clone(), resolved: joined });
    }
    // `.pilum` itself may not be a symlink either: a checked-in `.pilum -> ../../elsewhere`
    // would carry every write and delete out of the project.
    if base.symlink_metadata().is_ok_and(|m| m.file_type().is_symlink()) {
        let resolved = std::fs::read_link(&base).unwrap_or_else(|_| base.clone());
        return Err(Escape { path: joined, resolved });
    }
    check_inside(&base, &joined)?;
    Ok(joined)
}

/// Check that `path` (existing or not) resolves inside `base`. Missing trailing components are
/// fine; every existing one is resolved with its symlinks.
pub fn check_inside(base: &Path, path: &Path) -> Result<(), Escape> {
    let base_real = match base.canonicalize() {
        Ok(b) => b,
        // No `.pilum/` yet: nothing under it can be a symlink. The base itself may not be a
        // dangling symlink, though.
        Err(_) if base.symlink_metadata().is_err() => return Ok(()),
        Err(_) => {
            return Err(Escape { path: path.to_path_buf(), resolved: base.to_path_buf() });
        }
    };
    let mut existing = path.to_path_buf();
    let mut rest = Vec::new();
    let resolved = loop {
        match existing.canonicalize() {
            Ok(r) => break r,
            Err(_) => {
                // A dangling symlink resolves nowhere: refuse it rather than write through it.
                if existing.symlink_metadata().is_ok_and(|m| m.file_type().is_symlink()) {
                    return Err(Escape { path: path.to_path_buf(), resolved: existing });
                }
                match (existing.file_name().map(|n| n.to_os_string()), existing.parent()) {
                    (Some(name), Some(parent)) => {
                        rest.push(name);
                        existing = parent.to_path_buf();
                    }
                    _ => return Err(Escape { path: path.to_path_buf(), resolved: existing }),
                }
            }
        }
    };
    let mut full = resolved;
    for name in rest.into_iter().rev() {
        full.push(name);
    }
    if full.starts_with(&base_real) {
        Ok(())
    } else {
        Err(Escape { path: path.to_path_buf(), resolved: full })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_paths_pass_and_climbing_fails() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join(".pilum/deployments")).unwrap();
        assert!(pilum_path(t.path(), "deployments/web").is_ok());
        assert!(pilum_path(t.path(), "deployments/../../victim").is_err());
        assert!(pilum_path(t.path(), "/etc").is_err());
    }

    #[test]
    fn symlinks_out_of_pilum_are_refused() {
        let t = tempfile::tempdir().unwrap();
        let outside = t.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::create_dir_all(t.path().join("p/.pilum")).unwrap();
        std::os::unix::fs::symlink(&outside, t.path().join("p/.pilum/deployments")).unwrap();
        assert!(pilum_path(&t.path().join("p"), "deployments/web").is_err());
        std::os::unix::fs::symlink(outside.join("nope"), t.path().join("p/.pilum/dangling"))
            .unwrap();
        assert!(pilum_path(&t.path().join("p"), "dangling").is_err());
        // `.pilum` itself replaced by a symlink (checked in by a pull request).
        std::fs::create_dir_all(t.path().join("r")).unwrap();
        std::os::unix::fs::symlink(&outside, t.path().join("r/.pilum")).unwrap();
        assert!(pilum_path(&t.path().join("r"), "history.jsonl").is_err());
    }
}
