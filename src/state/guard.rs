//! Defence in depth for everything pilum writes or deletes under `.pilum/`: after resolving
//! symlinks in every existing component, the path must still be inside the project's `.pilum/`
//! directory. Names are validated when they are loaded (`crate::names`); this check catches
//! whatever a future code path forgets, and a `.pilum/` subdirectory replaced by a symlink.

use std::fmt;
use std::path::{Component, Path, PathBuf};

#[derive(Debug)]
pub(crate) struct Escape {
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
pub(crate) fn pilum_path(root: &Path, rel: impl AsRef<Path>) -> Result<PathBuf, Escape> {
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
    // Fast path: `rel` has only normal components and `.pilum` is no symlink, so the path stays
    // inside unless one of its existing components under `.pilum` is a symlink. One `lstat` per
    // component instead of resolving every ancestor up to `/` twice (`check_inside`, which a
    // symlink still goes through: it may point inside).
    let mut at = base.clone();
    for c in rel.components() {
        at.push(c);
        match at.symlink_metadata() {
            Ok(m) if m.file_type().is_symlink() => {
                check_inside(&base, &joined)?;
                return Ok(joined);
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    Ok(joined)
}

/// Check that `path` (existing or not) resolves inside `base`. Missing trailing components are
/// fine; every existing one is resolved with its symlinks.
pub(crate) fn check_inside(base: &Path, path: &Path) -> Result<(), Escape> {
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
                match (existing.file_name().map(std::ffi::OsStr::to_os_string), existing.parent()) {
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

/// Open a file pilum reads from `.pilum/` (a journal, a cache entry): read-only, never through a
/// symlink at its last component (`O_NOFOLLOW`), never blocking on a FIFO (`O_NONBLOCK`); what
/// is not a regular file is refused.
pub(crate) fn open_regular(path: &Path) -> std::io::Result<std::fs::File> {
    open_checked(path, std::fs::OpenOptions::new().read(true))
}

/// Open (creating it) a file pilum writes in a directory of `.pilum/` already checked with
/// [`pilum_path`]: read-write, never through a symlink at its last component, never blocking.
pub(crate) fn open_writable(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut o = std::fs::OpenOptions::new();
    o.read(true).write(true).create(true).truncate(false).mode(0o644);
    open_checked(path, &mut o)
}

/// Create a new file in a directory of `.pilum/` already checked with [`pilum_path`]
/// (`O_EXCL`: an existing file, or a symlink, is an error), read-write.
pub(crate) fn create_new(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut o = std::fs::OpenOptions::new();
    o.read(true).write(true).create_new(true).mode(0o644);
    open_checked(path, &mut o)
}

/// Open with `O_NOFOLLOW | O_NONBLOCK`, then refuse what is not a regular file.
fn open_checked(path: &Path, o: &mut std::fs::OpenOptions) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = o
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| no_follow_error(path, e))?;
    if !f.metadata()?.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("`{}` is not a regular file", path.display()),
        ));
    }
    Ok(f)
}

/// `ELOOP` from `O_NOFOLLOW` means the last component is a symlink: say so.
fn no_follow_error(path: &Path, e: std::io::Error) -> std::io::Error {
    if e.raw_os_error() == Some(libc::ELOOP) {
        std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!("refusing to open `{}`: it is a symlink", path.display()),
        )
    } else {
        e
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
        // A symlink deeper down, to a file outside; and one that stays inside, which is fine.
        std::fs::create_dir_all(t.path().join("p/.pilum/cache/live")).unwrap();
        std::fs::write(outside.join("victim"), "x").unwrap();
        std::os::unix::fs::symlink(outside.join("victim"), t.path().join("p/.pilum/cache/live/a"))
            .unwrap();
        assert!(pilum_path(&t.path().join("p"), "cache/live/a").is_err());
        std::os::unix::fs::symlink("live", t.path().join("p/.pilum/cache/alias")).unwrap();
        assert!(pilum_path(&t.path().join("p"), "cache/alias/b.json").is_ok());
        // `.pilum` itself replaced by a symlink (checked in by a pull request).
        std::fs::create_dir_all(t.path().join("r")).unwrap();
        std::os::unix::fs::symlink(&outside, t.path().join("r/.pilum")).unwrap();
        assert!(pilum_path(&t.path().join("r"), "history.jsonl").is_err());
    }

    #[test]
    fn opens_refuse_symlinks_and_fifos() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("target"), "keep").unwrap();
        std::os::unix::fs::symlink(t.path().join("target"), t.path().join("link")).unwrap();
        let e = open_writable(&t.path().join("link")).unwrap_err();
        assert!(e.to_string().contains("is a symlink"), "{e}");
        assert!(open_regular(&t.path().join("link")).is_err());
        let fifo = t.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo on a NUL-terminated path we own.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        assert!(open_regular(&fifo).is_err());
        assert!(open_writable(&t.path().join("new")).is_ok());
    }
}
