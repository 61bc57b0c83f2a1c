//! git's index read in process: what `git ls-files --stage` prints (each entry's mode and object
//! id), without a process and without git's refresh of the work tree. On a 1,000-service
//! checkout the listing cost a spawn and a full pass over the index per run; here it is one
//! read of the file.
//!
//! Only the common case is read: a `.git` directory (no linked worktree or submodule `.git`
//! file), SHA-1 object ids, index versions 2 to 4, and no split or sparse index. For anything
//! else, any `GIT_*` variable that moves the repository or its index, or a file that does not
//! parse, [`read`] answers `None` and the caller asks git. The format is git's
//! `Documentation/gitformat-index.txt`.

use std::path::{Path, PathBuf};

/// The bytes of a SHA-1 object id.
const OID: usize = 20;

/// One index entry: its path relative to the project root, its mode as `ls-files` prints it
/// (`100644`) and its object id in hex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub path: String,
    pub mode: String,
    pub oid: String,
}

/// The index's entries under `root` (paths relative to it), in index order; `None` when the
/// repository is not one this reader handles (see the module documentation).
pub(crate) fn read(root: &Path) -> Option<Vec<Entry>> {
    const MOVED: &[&str] =
        &["GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_COMMON_DIR", "GIT_OBJECT_DIRECTORY"];
    if MOVED.iter().any(|v| std::env::var_os(v).is_some()) {
        return None;
    }
    let (top, git_dir) = repository(root)?;
    let config = std::fs::read_to_string(git_dir.join("config")).unwrap_or_default();
    // Another object format (`extensions.objectFormat = sha256`), or a work tree set apart
    // from the `.git` directory, is git's to read.
    let lower = config.to_ascii_lowercase();
    if lower.contains("objectformat") || lower.contains("worktree") {
        return None;
    }
    let bytes = match std::fs::read(git_dir.join("index")) {
        Ok(b) => b,
        // No index yet (nothing was ever added): no entries.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Some(Vec::new()),
        Err(_) => return None,
    };
    let prefix = prefix(&top, root)?;
    let mut out = Vec::new();
    for (path, mode, oid) in parse(&bytes)? {
        let Some(rel) = path.strip_prefix(prefix.as_bytes()) else { continue };
        out.push(Entry {
            path: String::from_utf8_lossy(rel).into_owned(),
            mode: format!("{mode:06o}"),
            oid: crate::hex::encode(oid),
        });
    }
    Some(out)
}

/// `root` relative to its work tree's top as git prints paths (`a/b/`, empty at the top);
/// `None` outside git or for a path that is not plain.
pub(crate) fn prefix_of(root: &Path) -> Option<String> {
    prefix(top(root)?, root)
}

/// The work tree's top: the nearest directory at or above `root` holding a `.git`.
fn top(root: &Path) -> Option<&Path> {
    root.ancestors().find(|d| d.join(".git").exists())
}

/// The work tree's top and its `.git` directory: the nearest `.git` at or above `root`, when it
/// is a directory.
fn repository(root: &Path) -> Option<(PathBuf, PathBuf)> {
    let top = top(root)?;
    let git_dir = top.join(".git");
    git_dir.is_dir().then(|| (top.to_path_buf(), git_dir))
}

/// `root` relative to `top` as index paths start (`a/b/`, or empty at the top).
fn prefix(top: &Path, root: &Path) -> Option<String> {
    let rel = root.strip_prefix(top).ok()?;
    let mut out = String::new();
    for c in rel.components() {
        match c {
            std::path::Component::Normal(n) => {
                out.push_str(n.to_str()?);
                out.push('/');
            }
            std::path::Component::CurDir => {}
            _ => return None,
        }
    }
    Some(out)
}

/// An entry as the file has it: its path from the top, its mode and its object id.
type Raw<'a> = (Vec<u8>, u32, &'a [u8]);

/// The entries of an index file; `None` when it does not parse or uses what this reader leaves
/// to git (a split or sparse index).
fn parse(bytes: &[u8]) -> Option<Vec<Raw<'_>>> {
    let u32_at = |at: usize| -> Option<u32> {
        Some(u32::from_be_bytes(bytes.get(at..at.checked_add(4)?)?.try_into().ok()?))
    };
    let u16_at = |at: usize| -> Option<u16> {
        Some(u16::from_be_bytes(bytes.get(at..at.checked_add(2)?)?.try_into().ok()?))
    };
    if bytes.get(..4)? != b"DIRC" {
        return None;
    }
    let version = u32_at(4)?;
    if !(2..=4).contains(&version) {
        return None;
    }
    let count = usize::try_from(u32_at(8)?).ok()?;
    // The trailing checksum is not part of the entries or extensions.
    let end = bytes.len().checked_sub(OID)?;
    let mut out = Vec::with_capacity(count.min(end / 62));
    let mut at = 12;
    let mut previous: Vec<u8> = Vec::new();
    for _ in 0..count {
        let start = at;
        let mode = u32_at(at + 24)?;
        let oid = bytes.get(at + 40..at + 40 + OID)?;
        let flags = u16_at(at + 60)?;
        at += 62;
        if flags & 0x4000 != 0 {
            if version < 3 {
                return None;
            }
            at += 2;
        }
        let path = if version == 4 {
            // The path is the previous one less its last `strip` bytes, then a NUL-ended tail.
            let (strip, used) = varint(bytes.get(at..end)?)?;
            at += used;
            let keep = previous.len().checked_sub(usize::try_from(strip).ok()?)?;
            let tail_len = bytes.get(at..end)?.iter().position(|&b| b == 0)?;
            let mut p = previous[..keep].to_vec();
            p.extend_from_slice(&bytes[at..at + tail_len]);
            at += tail_len + 1;
            p
        } else {
            let len = bytes.get(at..end)?.iter().position(|&b| b == 0)?;
            let p = bytes[at..at + len].to_vec();
            // Padded with one to eight NULs to a multiple of eight bytes.
            at = start + (at + len - start + 8) / 8 * 8;
            p
        };
        if at > end {
            return None;
        }
        // A sparse directory entry: the index is sparse.
        if mode & 0o170000 == 0o040000 {
            return None;
        }
        previous.clone_from(&path);
        out.push((path, mode, oid));
    }
    // Extensions: a split index (`link`) keeps entries elsewhere; a sparse one (`sdir`)
    // collapses directories. Others (the cache tree, the untracked cache, …) do not change
    // the entries.
    while at < end {
        let sig = bytes.get(at..at + 4)?;
        let size = usize::try_from(u32_at(at + 4)?).ok()?;
        if sig == b"link" || sig == b"sdir" {
            return None;
        }
        at = at.checked_add(8)?.checked_add(size)?;
    }
    (at == end).then_some(out)
}

/// git's offset varint (`varint.c`): the value and the bytes it took.
fn varint(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut it = bytes.iter();
    let mut c = *it.next()?;
    let mut value = u64::from(c & 0x7f);
    let mut used = 1;
    while c & 0x80 != 0 {
        c = *it.next()?;
        used += 1;
        value = value.checked_add(1)?.checked_mul(128)? | u64::from(c & 0x7f);
    }
    Some((value, used))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::service::test_git as git;

    /// What `git ls-files --stage` says, as entries (paths relative to `dir`).
    fn ls_files(dir: &Path) -> Vec<Entry> {
        let out = git(dir, &["ls-files", "-s", "-z"]);
        out.split(|&b| b == 0)
            .filter(|e| !e.is_empty())
            .map(|e| {
                let text = String::from_utf8_lossy(e);
                let (meta, path) = text.split_once('\t').unwrap();
                let mut parts = meta.split(' ');
                Entry {
                    mode: parts.next().unwrap().into(),
                    oid: parts.next().unwrap().into(),
                    path: path.into(),
                }
            })
            .collect()
    }

    /// A repository with nested, long, non-ASCII and executable paths, a symlink, a file
    /// added with intent to add, a gitlink and an untracked file.
    fn repo() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        git(d, &["init", "-q"]);
        let long = format!("svc/{0}/{0}/{0}/deep.txt", "x".repeat(200));
        for (p, body) in [
            ("a.txt", "a"),
            ("svc/api/pilum.yaml", "name: api"),
            ("svc/api/src/main.rs", "fn main() {}"),
            ("svc/web/ünïcode name.txt", "u"),
            ("svc/web/run.sh", "#!/bin/sh"),
            (long.as_str(), "deep"),
        ] {
            let path = d.join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, body).unwrap();
        }
        std::os::unix::fs::symlink("a.txt", d.join("svc/link")).unwrap();
        git(d, &["add", "."]);
        git(d, &["update-index", "--chmod=+x", "svc/web/run.sh"]);
        git(d, &["commit", "-q", "-m", "one"]);
        let head = String::from_utf8(git(d, &["rev-parse", "HEAD"])).unwrap();
        git(d, &["update-index", "--add", "--cacheinfo", &format!("160000,{},sub", head.trim())]);
        std::fs::write(d.join("svc/api/new.txt"), "n").unwrap();
        git(d, &["add", "-N", "svc/api/new.txt"]);
        std::fs::write(d.join("untracked.txt"), "u").unwrap();
        t
    }

    #[test]
    fn every_index_version_reads_as_ls_files_lists_it() {
        let t = repo();
        let version = || std::fs::read(t.path().join(".git/index")).unwrap()[7];
        // An entry added with intent to add has extended flags: version 3 at least.
        for (asked, written) in [("3", 3), ("4", 4)] {
            git(t.path(), &["update-index", "--index-version", asked]);
            assert_eq!(version(), written);
            assert_eq!(read(t.path()).unwrap(), ls_files(t.path()), "index version {asked}");
        }
        git(t.path(), &["rm", "-q", "--cached", "svc/api/new.txt"]);
        git(t.path(), &["update-index", "--index-version", "2"]);
        assert_eq!(version(), 2);
        assert_eq!(read(t.path()).unwrap(), ls_files(t.path()), "index version 2");
        // From a project below the top: the paths are relative to it.
        let sub = t.path().join("svc");
        assert_eq!(read(&sub).unwrap(), ls_files(&sub));
        assert!(read(&sub).unwrap().iter().any(|e| e.path == "api/pilum.yaml"));
    }

    #[test]
    fn what_the_reader_leaves_to_git_is_none() {
        let t = repo();
        git(t.path(), &["update-index", "--split-index"]);
        assert_eq!(read(t.path()), None, "a split index");
        let sha256 = tempfile::tempdir().unwrap();
        git(sha256.path(), &["init", "-q", "--object-format=sha256"]);
        std::fs::write(sha256.path().join("f"), "f").unwrap();
        git(sha256.path(), &["add", "f"]);
        assert_eq!(read(sha256.path()), None, "SHA-256 object ids");
        // A linked worktree has a `.git` file.
        let t = repo();
        git(t.path(), &["commit", "-q", "-m", "two"]);
        let linked = t.path().join("linked");
        git(t.path(), &["worktree", "add", "-q", linked.to_str().unwrap()]);
        assert_eq!(read(&linked), None, "a linked worktree");
    }

    #[test]
    fn a_damaged_index_is_none_and_a_missing_one_is_empty() {
        let t = repo();
        let index = t.path().join(".git/index");
        let whole = std::fs::read(&index).unwrap();
        for cut in [0, 4, 12, 40, 100, whole.len() / 2, whole.len() - 21] {
            std::fs::write(&index, &whole[..cut]).unwrap();
            assert_eq!(read(t.path()), None, "cut at {cut}");
        }
        let mut bad = whole.clone();
        bad[8..12].copy_from_slice(&u32::MAX.to_be_bytes());
        std::fs::write(&index, &bad).unwrap();
        assert_eq!(read(t.path()), None, "an entry count past the end");
        std::fs::remove_file(&index).unwrap();
        assert_eq!(read(t.path()), Some(Vec::new()));
    }
}
