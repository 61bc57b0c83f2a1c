//! The project-root sandbox. Every path a script names — files it reads or writes, directories
//! it runs commands in, modules it imports — is resolved here, and files are opened here, so a
//! read, a write and an import cannot disagree about where a path leads.
//!
//! Two steps. First the path is taken lexically ([`Sandbox::lexical`]): a relative path starts
//! at the call's working directory, `.` and `..` are folded, and the result must lie inside the
//! root (an absolute path elsewhere, or a `..` that climbs out, is refused by name). Then it is
//! opened *beneath* the root, relative to an open directory, so that every symlink on the way —
//! and the final component, even a dangling one about to be created — is followed only while it
//! stays inside: Linux's `openat2(RESOLVE_BENEATH)` where the kernel has it, otherwise an
//! equivalent walk, one component at a time with `O_NOFOLLOW`, that reads each symlink and
//! expands it in place. The walk also explains a refusal (which symlink, pointing where).
//!
//! Relative symlinks that stay inside the project work. Absolute symlinks are refused, as
//! `RESOLVE_BENEATH` does, even when they point inside: what they mean changes with where the
//! project is checked out. `fs::remove` of a symlink removes the link, never its target.

use std::collections::VecDeque;
use std::ffi::{CString, OsStr, OsString};
use std::fmt;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};

/// Symlinks expanded in one resolution before giving up (Linux's own limit).
const MAX_LINKS: usize = 40;

/// Why a path is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// An absolute path outside the root.
    Outside,
    /// A relative path whose `..` climbs out of the root.
    Leaves,
    /// A symlink (root-relative `link`) whose `target` leads out of the root.
    Symlink { link: String, target: String },
    /// An absolute symlink (never followed).
    Absolute { link: String, target: String },
    /// More than [`MAX_LINKS`] symlinks, the last at `link`.
    Loop { link: String },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Outside => write!(f, "it is outside the project"),
            Refusal::Leaves => write!(f, "it leaves the project root"),
            Refusal::Symlink { link, target } => write!(
                f,
                "it leads outside the project through the symlink `{link}` (pointing to `{target}`)"
            ),
            Refusal::Absolute { link, target } => write!(
                f,
                "the symlink `{link}` points to the absolute path `{target}`; only relative symlinks that stay inside the project are followed"
            ),
            Refusal::Loop { link } => write!(f, "too many levels of symlinks at `{link}`"),
        }
    }
}

/// A path refused or an I/O error while resolving it beneath the root.
#[derive(Debug)]
pub(crate) enum Error {
    Refused(Refusal),
    Io(io::Error),
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}

impl From<Refusal> for Error {
    fn from(r: Refusal) -> Self {
        Error::Refused(r)
    }
}

/// How to open the final component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum How {
    /// Read a file.
    Read,
    /// Write a file: create it (and missing parent directories), truncate it.
    Write,
    /// Only look: does it exist, and where does it lead (never blocks on a FIFO).
    Probe,
}

/// The root every path is confined to (canonical).
#[derive(Debug, Clone)]
pub(crate) struct Sandbox {
    root: PathBuf,
}

impl Sandbox {
    pub(crate) fn new(root: &Path) -> Self {
        Self { root: root.canonicalize().unwrap_or_else(|_| root.to_path_buf()) }
    }

    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// The absolute, normalized form of `path` (relative to `base`), refused when it is not
    /// inside the root. Looks at no file.
    pub(crate) fn lexical(&self, base: &Path, path: &str) -> Result<PathBuf, Refusal> {
        let p = Path::new(path);
        let base = if base.is_absolute() { base.to_path_buf() } else { self.root.join(base) };
        let norm = normalize(&if p.is_absolute() { p.to_path_buf() } else { base.join(p) });
        if !norm.starts_with(&self.root) {
            return Err(if p.is_absolute() { Refusal::Outside } else { Refusal::Leaves });
        }
        Ok(norm)
    }

    /// The root-relative part of a [`Sandbox::lexical`] path.
    fn rel<'a>(&self, full: &'a Path) -> &'a Path {
        full.strip_prefix(&self.root).unwrap_or(Path::new(""))
    }

    fn root_fd(&self) -> io::Result<OwnedFd> {
        open_at(None, self.root.as_os_str(), libc::O_DIRECTORY | PROBE, 0)
    }

    /// Open a [`Sandbox::lexical`] path beneath the root.
    pub(crate) fn open(&self, full: &Path, how: How) -> Result<File, Error> {
        let root = self.root_fd()?;
        let rel = self.rel(full);
        // `O_NONBLOCK`: a FIFO in the project must not hang a read or a write (regular files
        // ignore the flag).
        let (flags, mode) = match how {
            How::Read => (libc::O_RDONLY | libc::O_NONBLOCK, 0),
            How::Write => {
                (libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_NONBLOCK, 0o666)
            }
            How::Probe => (PROBE, 0),
        };
        let fd = match beneath(root.as_fd(), rel, flags, mode) {
            Err(Error::Io(e)) if how == How::Write && e.kind() == io::ErrorKind::NotFound => {
                if let Some(parent) = rel.parent() {
                    walk(root.as_fd(), parent, Final::Dir, true)?;
                }
                beneath(root.as_fd(), rel, flags, mode)?
            }
            other => other?,
        };
        Ok(File::from(fd))
    }

    /// Whether a path exists (after following symlinks that stay inside); refused when it
    /// leads outside.
    pub(crate) fn exists(&self, full: &Path) -> Result<bool, Error> {
        match self.open(full, How::Probe) {
            Ok(_) => Ok(true),
            Err(Error::Io(e)) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Check a path handed to someone else (a child's working directory, a file for a CLI):
    /// whatever part of it exists stays inside. A path that does not exist yet passes.
    pub(crate) fn check(&self, full: &Path) -> Result<(), Error> {
        match self.exists(full) {
            Ok(_) => Ok(()),
            Err(Error::Io(e)) if e.kind() == io::ErrorKind::NotADirectory => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Create a directory and its parents beneath the root.
    pub(crate) fn mkdir_all(&self, full: &Path) -> Result<(), Error> {
        let root = self.root_fd()?;
        walk(root.as_fd(), self.rel(full), Final::Dir, true).map(drop)
    }

    /// Remove a file, a symlink (not its target) or a directory tree. Missing is fine.
    pub(crate) fn remove(&self, full: &Path) -> Result<(), Error> {
        let rel = self.rel(full);
        let Some(name) = rel.file_name() else {
            return Err(Error::Io(io::Error::other("refusing to remove the project root")));
        };
        let root = self.root_fd()?;
        let parent =
            match walk(root.as_fd(), rel.parent().unwrap_or(Path::new("")), Final::Dir, false) {
                Ok(fd) => fd,
                Err(Error::Io(e)) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(e),
            };
        let c = cstr(name)?;
        // SAFETY: `st` is written by fstatat before it is read; both pointers are valid.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        let r = unsafe {
            libc::fstatat(parent.as_raw_fd(), c.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW)
        };
        if r != 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::NotFound { Ok(()) } else { Err(e.into()) };
        }
        if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
            // std's remove_dir_all never follows symlinks inside the tree; reaching the tree
            // through the open parent (`/proc/self/fd/N`) keeps a swapped-in symlink from
            // redirecting it. Without `/proc`, the lexical path (checked above) is used.
            let via_fd = PathBuf::from(format!("/proc/self/fd/{}", parent.as_raw_fd()));
            let base =
                if via_fd.is_dir() { via_fd } else { full.parent().unwrap_or(full).to_path_buf() };
            return std::fs::remove_dir_all(base.join(name)).map_err(Error::Io);
        }
        // SAFETY: valid dirfd and NUL-terminated name.
        if unsafe { libc::unlinkat(parent.as_raw_fd(), c.as_ptr(), 0) } != 0 {
            return Err(io::Error::last_os_error().into());
        }
        Ok(())
    }
}

/// Resolve `.` and `..` lexically (the file may not exist yet).
pub(crate) fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Open-only-to-look flags: `O_PATH` on Linux; elsewhere a read-only open that cannot block.
#[cfg(target_os = "linux")]
const PROBE: libc::c_int = libc::O_PATH;
#[cfg(not(target_os = "linux"))]
const PROBE: libc::c_int = libc::O_RDONLY | libc::O_NONBLOCK;

fn cstr(s: &OsStr) -> io::Result<CString> {
    CString::new(s.as_bytes()).map_err(|_| io::Error::other("path contains a NUL byte"))
}

/// `openat(dir, name, flags | O_CLOEXEC, mode)`; `dir` `None` means an absolute `name`.
fn open_at(
    dir: Option<BorrowedFd<'_>>,
    name: &OsStr,
    flags: libc::c_int,
    mode: libc::mode_t,
) -> io::Result<OwnedFd> {
    let c = cstr(name)?;
    let dirfd = dir.map_or(libc::AT_FDCWD, |d| d.as_raw_fd());
    // SAFETY: valid dirfd (or AT_FDCWD) and a NUL-terminated path; the result is checked.
    let fd =
        unsafe { libc::openat(dirfd, c.as_ptr(), flags | libc::O_CLOEXEC, mode as libc::c_uint) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by openat and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The target of `name` in `dir` if it is a symlink; `None` when it is something else.
fn read_link(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<Option<OsString>> {
    let c = cstr(name)?;
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: `buf` is valid for `buf.len()` bytes; readlinkat writes at most that many.
    let n = unsafe {
        libc::readlinkat(dir.as_raw_fd(), c.as_ptr(), buf.as_mut_ptr().cast(), buf.len())
    };
    if n < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::EINVAL) => Ok(None),
            _ => Err(e),
        };
    }
    buf.truncate(n as usize);
    Ok(Some(OsString::from_vec(buf)))
}

/// Open `rel` beneath `root` with `flags`: `openat2(RESOLVE_BENEATH)` when the kernel has it,
/// else the walk. A refusal from `openat2` is explained by the walk.
fn beneath(
    root: BorrowedFd<'_>,
    rel: &Path,
    flags: libc::c_int,
    mode: libc::mode_t,
) -> Result<OwnedFd, Error> {
    #[cfg(target_os = "linux")]
    match openat2::open(root, rel, flags, mode) {
        openat2::Outcome::Opened(fd) => return Ok(fd),
        openat2::Outcome::Failed(e) => return Err(Error::Io(e)),
        // Refused or ambiguous (EXDEV, ELOOP): the walk says which symlink, or succeeds
        // when the tree changed in between.
        openat2::Outcome::Explain | openat2::Outcome::Unavailable => {}
    }
    walk(root, rel, Final::Open(flags, mode), false)
}

/// What the walk does with the last component.
#[derive(Debug, Clone, Copy)]
enum Final {
    Open(libc::c_int, libc::mode_t),
    /// A directory (created too when the walk creates directories).
    Dir,
}

/// The portable `RESOLVE_BENEATH`: one component at a time, relative to open directories,
/// never following a symlink without reading and expanding it here. With `create`, missing
/// directories on the way are made.
fn walk(root: BorrowedFd<'_>, rel: &Path, last: Final, create: bool) -> Result<OwnedFd, Error> {
    let mut queue: VecDeque<OsString> =
        rel.components().map(|c| c.as_os_str().to_os_string()).collect();
    // Directories below the root, with their names (the physical path so far).
    let mut stack: Vec<(OwnedFd, OsString)> = Vec::new();
    let mut links = 0;
    let mut via: Option<(String, String)> = None;
    let shown = |stack: &[(OwnedFd, OsString)], name: &OsStr| {
        let mut p: PathBuf = stack.iter().map(|(_, n)| n.as_os_str()).collect();
        p.push(name);
        p.display().to_string()
    };
    while let Some(name) = queue.pop_front() {
        if name == "." || name.is_empty() {
            continue;
        }
        if name == ".." {
            if stack.pop().is_none() {
                return Err(match via {
                    Some((link, target)) => Refusal::Symlink { link, target },
                    None => Refusal::Leaves,
                }
                .into());
            }
            continue;
        }
        let dir = stack.last().map_or(root, |(fd, _)| fd.as_fd());
        let is_last = queue.is_empty();
        match read_link(dir, &name) {
            Ok(Some(target)) => {
                links += 1;
                let link = shown(&stack, &name);
                if links > MAX_LINKS {
                    return Err(Refusal::Loop { link }.into());
                }
                let t = Path::new(&target);
                if t.is_absolute() {
                    return Err(Refusal::Absolute { link, target: t.display().to_string() }.into());
                }
                via = Some((link, t.display().to_string()));
                for c in t.components().rev() {
                    queue.push_front(c.as_os_str().to_os_string());
                }
                continue;
            }
            Ok(None) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let make_dir = create && (!is_last || matches!(last, Final::Dir));
                if make_dir {
                    let c = cstr(&name)?;
                    // SAFETY: valid dirfd and NUL-terminated name.
                    if unsafe { libc::mkdirat(dir.as_raw_fd(), c.as_ptr(), 0o777) } != 0 {
                        let e = io::Error::last_os_error();
                        if e.kind() != io::ErrorKind::AlreadyExists {
                            return Err(e.into());
                        }
                    }
                } else if !is_last {
                    return Err(e.into());
                }
            }
            Err(e) => return Err(e.into()),
        }
        match (is_last, last) {
            (true, Final::Open(flags, mode)) => {
                return Ok(open_at(Some(dir), &name, flags | libc::O_NOFOLLOW, mode)?);
            }
            _ => {
                let fd =
                    open_at(Some(dir), &name, libc::O_DIRECTORY | libc::O_NOFOLLOW | PROBE, 0)?;
                stack.push((fd, name));
            }
        }
    }
    // Nothing left to open by name: the path ends at a directory (the root, or a symlink to
    // `.`/`..`).
    let dir = stack.last().map_or(root, |(fd, _)| fd.as_fd());
    let flags = match last {
        Final::Open(flags, _) => flags,
        Final::Dir => libc::O_DIRECTORY | PROBE,
    };
    Ok(open_at(Some(dir), OsStr::new("."), flags, 0)?)
}

#[cfg(target_os = "linux")]
mod openat2 {
    use std::io;
    use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
    use std::path::Path;
    use std::sync::atomic::{AtomicBool, Ordering};

    static UNAVAILABLE: AtomicBool = AtomicBool::new(false);

    #[cfg(test)]
    fn forced_walk() -> bool {
        super::tests::force_walk()
    }

    #[cfg(not(test))]
    fn forced_walk() -> bool {
        false
    }

    pub(super) enum Outcome {
        Opened(OwnedFd),
        Failed(io::Error),
        /// Refused by the kernel (or a symlink loop): let the walk explain.
        Explain,
        /// No `openat2` here (old kernel, seccomp): use the walk.
        Unavailable,
    }

    pub(super) fn open(
        root: BorrowedFd<'_>,
        rel: &Path,
        flags: libc::c_int,
        mode: libc::mode_t,
    ) -> Outcome {
        if UNAVAILABLE.load(Ordering::Relaxed) || forced_walk() {
            return Outcome::Unavailable;
        }
        let rel = if rel.as_os_str().is_empty() { Path::new(".") } else { rel };
        let Ok(c) = super::cstr(rel.as_os_str()) else { return Outcome::Unavailable };
        // SAFETY: `open_how` is plain data; all-zero is its documented default.
        let mut how: libc::open_how = unsafe { std::mem::zeroed() };
        how.flags = (flags | libc::O_CLOEXEC) as u64;
        how.mode = u64::from(mode);
        how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS;
        // SAFETY: valid dirfd, NUL-terminated path and a `how` of the size passed.
        let r = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                root.as_raw_fd(),
                c.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        if r >= 0 {
            let fd = i32::try_from(r).expect("a file descriptor fits in an int");
            // SAFETY: a fresh descriptor from the kernel, owned by nobody else.
            return Outcome::Opened(unsafe { OwnedFd::from_raw_fd(fd) });
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::ENOSYS | libc::EPERM | libc::E2BIG) => {
                UNAVAILABLE.store(true, Ordering::Relaxed);
                Outcome::Unavailable
            }
            Some(libc::EXDEV | libc::ELOOP) => Outcome::Explain,
            _ => Outcome::Failed(e),
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::cell::Cell;
    use std::io::{Read, Write};
    use std::os::unix::fs::symlink;

    use super::*;

    thread_local! {
        static WALK: Cell<bool> = const { Cell::new(false) };
    }

    /// Tests run every case twice: through `openat2`, then through the walk alone.
    pub(in crate::script) fn force_walk() -> bool {
        WALK.with(Cell::get)
    }

    fn both(f: impl Fn()) {
        for walk in [false, true] {
            WALK.with(|w| w.set(walk));
            f();
        }
        WALK.with(|w| w.set(false));
    }

    /// `<tmp>/proj` (the root) next to `<tmp>/outside`.
    fn layout() -> (tempfile::TempDir, Sandbox) {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("proj/sub")).expect("mkdir");
        std::fs::create_dir_all(dir.path().join("outside")).expect("mkdir");
        std::fs::write(dir.path().join("outside/secret.txt"), "s3cret").expect("write");
        std::fs::write(dir.path().join("proj/sub/in.txt"), "inside").expect("write");
        let sb = Sandbox::new(&dir.path().join("proj"));
        (dir, sb)
    }

    fn full(sb: &Sandbox, p: &str) -> PathBuf {
        sb.lexical(Path::new(""), p).expect("lexical")
    }

    fn refusal(r: Result<impl fmt::Debug, Error>) -> Refusal {
        match r {
            Err(Error::Refused(why)) => why,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_dangling_symlink_out_of_the_project_is_never_written_through() {
        both(|| {
            let (dir, sb) = layout();
            symlink("../outside/new.txt", sb.root().join("dangling")).expect("symlink");
            let why = refusal(sb.open(&full(&sb, "dangling"), How::Write));
            assert_eq!(
                why,
                Refusal::Symlink { link: "dangling".into(), target: "../outside/new.txt".into() }
            );
            assert!(!dir.path().join("outside/new.txt").exists(), "nothing created outside");
            // Through a directory symlink on the way, with parents to create.
            symlink("../outside", sb.root().join("out")).expect("symlink");
            let why = refusal(sb.open(&full(&sb, "out/deep/x.txt"), How::Write));
            assert!(matches!(why, Refusal::Symlink { ref link, .. } if link == "out"), "{why:?}");
            assert!(!dir.path().join("outside/deep").exists());
            assert!(matches!(refusal(sb.mkdir_all(&full(&sb, "out/d"))), Refusal::Symlink { .. }));
            // Reads are refused the same way.
            assert!(matches!(
                refusal(sb.open(&full(&sb, "out/secret.txt"), How::Read)),
                Refusal::Symlink { .. }
            ));
            assert!(matches!(
                refusal(sb.exists(&full(&sb, "out/secret.txt"))),
                Refusal::Symlink { .. }
            ));
        });
    }

    #[test]
    fn symlinks_that_stay_inside_work_and_absolute_ones_are_refused() {
        both(|| {
            let (dir, sb) = layout();
            symlink("sub", sb.root().join("alias")).expect("symlink");
            symlink("../sub/in.txt", sb.root().join("sub/loop-back")).expect("symlink");
            symlink("new.txt", sb.root().join("sub/to-new")).expect("symlink");
            let mut text = String::new();
            sb.open(&full(&sb, "alias/loop-back"), How::Read)
                .expect("inside")
                .read_to_string(&mut text)
                .expect("read");
            assert_eq!(text, "inside");
            // A dangling link inside the project creates its target, inside.
            sb.open(&full(&sb, "alias/to-new"), How::Write)
                .expect("write")
                .write_all(b"n")
                .expect("w");
            assert_eq!(std::fs::read_to_string(sb.root().join("sub/new.txt")).expect("read"), "n");
            let abs = dir.path().join("proj/sub/in.txt");
            symlink(&abs, sb.root().join("abs")).expect("symlink");
            assert!(matches!(
                refusal(sb.open(&full(&sb, "abs"), How::Read)),
                Refusal::Absolute { .. }
            ));
            symlink("self", sb.root().join("self")).expect("symlink");
            assert!(matches!(
                refusal(sb.open(&full(&sb, "self"), How::Read)),
                Refusal::Loop { .. }
            ));
        });
    }

    #[test]
    fn writes_create_parents_and_removal_never_follows_links() {
        both(|| {
            let (dir, sb) = layout();
            sb.open(&full(&sb, "a/b/c.txt"), How::Write)
                .expect("write")
                .write_all(b"x")
                .expect("w");
            assert!(sb.exists(&full(&sb, "a/b/c.txt")).expect("exists"));
            assert!(!sb.exists(&full(&sb, "a/nope")).expect("missing"));
            symlink("../outside", sb.root().join("a/out")).expect("symlink");
            sb.remove(&full(&sb, "a")).expect("remove tree");
            assert!(!sb.root().join("a").exists());
            assert!(dir.path().join("outside/secret.txt").exists(), "the link's target stays");
            symlink("../outside/secret.txt", sb.root().join("link")).expect("symlink");
            sb.remove(&full(&sb, "link")).expect("remove link");
            assert!(dir.path().join("outside/secret.txt").exists());
            sb.remove(&full(&sb, "missing/x")).expect("missing is fine");
            assert!(sb.remove(&full(&sb, ".")).is_err(), "never the root");
        });
    }

    #[test]
    fn lexical_escapes_are_refused_by_name() {
        let (_dir, sb) = layout();
        assert_eq!(sb.lexical(Path::new("sub"), "../x"), Ok(sb.root().join("x")));
        assert_eq!(sb.lexical(Path::new("sub"), "../../x"), Err(Refusal::Leaves));
        assert_eq!(sb.lexical(Path::new(""), "/etc/passwd"), Err(Refusal::Outside));
    }
}
