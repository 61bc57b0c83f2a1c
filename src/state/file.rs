//! The file backend, the default: everything under the project's `.pilum/`, every path checked
//! by [`guard::pilum_path`]. Deploy records go to `deploys.jsonl` and the run history to
//! `history.jsonl` (journals: torn tails ended before appending, read from the end); cache
//! entries are one file each under `cache/`, rewritten in place with a check that makes a torn
//! one read as a miss ([`seal`]); a deploy lock is a
//! write lock on one byte of `locks/table` (an `fcntl` open-file-description lock at the key's
//! offset, [`offset`]), and `locks/<service+environment+target>` names the holder and the
//! key's fencing token. One descriptor holds all of a run's locks: with a descriptor per lock,
//! every process a 1,000-service run spawns copied and closed 1,000 of them, which doubled the
//! cost of a spawn. The kernel releases a lock when its process ends, however it ends, so file
//! locks never expire and cover this checkout only. Waiters are served in arrival order:
//! a waiting run puts a **ticket** `locks/queues/<key>/<seq>-<pid>` (`seq`: when it began to
//! wait, in nanoseconds, one per run for all its keys) and holds an `flock` on it; a run may
//! take a key's lock only when no live ticket older than its own is queued. A ticket whose
//! `flock` is free and whose process is gone (or which was left unlocked for longer than
//! [`TICKET_GAP`] after it was made) is dead and removed by whoever sees it, so a killed waiter never blocks the
//! queue.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use super::cache::{Artefact, ArtefactKey, Live, LiveKey};
use super::guard;
use super::journal;
use super::lock::{Held, Holder, LockKey, Try};
use super::record::{Filter, Page};
use super::{Backend, Batch, Location, Runs, StateError};
use crate::sync::LockExt;

/// The deploy records' journal, relative to `.pilum/`.
pub(crate) const RECORDS: &str = "deploys.jsonl";

/// What a lock file holds.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct LockFile {
    holder: Option<Holder>,
    fence: u64,
}

/// How long after its creation (its file's mtime) a ticket may be unlocked before it is dead
/// even when a process of its pid runs (a new ticket is locked right after it is created; a
/// pid may be reused).
const TICKET_GAP: Duration = Duration::from_secs(10);

/// The queues' directory, relative to `.pilum/` (lock files' names always hold a `+`).
const QUEUES: &str = "locks/queues";

/// The lock table, relative to `.pilum/` (no `+`: not a key's file).
const TABLE: &str = "locks/table";

/// Open-file-description locks: owned by the open file, not the process, so two backends in
/// one process exclude each other as two processes do, and closing another descriptor of the
/// file releases nothing. Elsewhere, process-owned POSIX locks.
#[cfg(target_os = "linux")]
const SETLK: libc::c_int = libc::F_OFD_SETLK;
#[cfg(target_os = "linux")]
const GETLK: libc::c_int = libc::F_OFD_GETLK;
#[cfg(not(target_os = "linux"))]
const SETLK: libc::c_int = libc::F_SETLK;
#[cfg(not(target_os = "linux"))]
const GETLK: libc::c_int = libc::F_GETLK;

/// A key's byte in the lock table: FNV-1a of its file name, 62 bits. Two keys sharing a byte
/// (about one chance in 10^13 among 1,000 keys) would only wait for each other.
fn offset(key: &LockKey) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.file_name().bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    i64::try_from(h >> 2).expect("62 bits fit an i64")
}

fn byte_lock(at: i64, kind: libc::c_int) -> libc::flock {
    // SAFETY: `flock` is a plain C struct; all zeroes is a valid value.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::c_short::try_from(kind).expect("a lock type is small");
    fl.l_whence = libc::c_short::try_from(libc::SEEK_SET).expect("SEEK_SET is small");
    fl.l_start = at;
    fl.l_len = 1;
    fl
}

/// Lock (`F_WRLCK`) or unlock (`F_UNLCK`) the byte at `at` without waiting: whether it was
/// done (`false`: another holder has it).
fn set_byte(table: &File, at: i64, kind: libc::c_int) -> std::io::Result<bool> {
    let mut fl = byte_lock(at, kind);
    // SAFETY: fcntl on a descriptor we own, with a valid `flock` struct.
    if unsafe { libc::fcntl(table.as_raw_fd(), SETLK, &mut fl) } == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EAGAIN | libc::EACCES) => Ok(false),
        _ => Err(e),
    }
}

/// Whether another holder (another open of the table) has the byte at `at`.
fn byte_taken(table: &File, at: i64) -> std::io::Result<bool> {
    let mut fl = byte_lock(at, libc::F_WRLCK);
    // SAFETY: fcntl on a descriptor we own, with a valid `flock` struct.
    if unsafe { libc::fcntl(table.as_raw_fd(), GETLK, &mut fl) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(libc::c_int::from(fl.l_type) != libc::F_UNLCK)
}

pub(crate) struct FileBackend {
    root: PathBuf,
    location: Location,
    /// The locks this backend holds: their fencing tokens by key.
    held: Mutex<HashMap<LockKey, u64>>,
    /// The lock table, opened on the first lock.
    table: Mutex<Option<std::sync::Arc<File>>>,
    /// This run's place in the queues.
    queued: Mutex<Queued>,
}

/// A run's place in the queues: its sequence number (taken when it first waits) and its
/// tickets by key: each one's name and its file, `flock`ed for as long as it waits.
#[derive(Default)]
struct Queued {
    seq: Option<u128>,
    tickets: HashMap<LockKey, (String, File)>,
}

/// Whether a process with this pid runs (`EPERM`: it does, as another user).
fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks the pid; nothing is sent.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Nanoseconds since the epoch: a ticket's sequence number.
fn now_ns() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}

/// `flock(LOCK_EX | LOCK_NB)`: whether it was granted.
fn flock_now(f: &File) -> bool {
    // SAFETY: flock on a file descriptor we own; no memory is involved.
    unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

impl FileBackend {
    pub(crate) fn new(root: &Path) -> FileBackend {
        FileBackend {
            root: root.to_path_buf(),
            location: Location::File,
            held: Mutex::default(),
            table: Mutex::default(),
            queued: Mutex::default(),
        }
    }

    fn path(&self, rel: &str) -> Result<PathBuf, StateError> {
        guard::pilum_path(&self.root, rel).map_err(|e| self.failed("use `.pilum/`", e))
    }

    fn failed(&self, what: &str, why: impl std::fmt::Display) -> StateError {
        StateError::Failed {
            location: self.location.to_string(),
            what: what.to_string(),
            why: why.to_string(),
        }
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<LockKey, u64>> {
        self.held.locked()
    }

    /// The lock table, opened (and created) once.
    fn table(&self) -> Result<std::sync::Arc<File>, StateError> {
        let mut table = self.table.locked();
        if let Some(t) = table.as_ref() {
            return Ok(t.clone());
        }
        let path = self.path(TABLE)?;
        let what = "open the lock table `.pilum/locks/table`";
        let parent = path.parent().expect("a path under `.pilum/` has a parent");
        std::fs::create_dir_all(parent).map_err(|e| self.failed(what, e))?;
        let f = std::sync::Arc::new(guard::open_writable(&path).map_err(|e| self.failed(what, e))?);
        *table = Some(f.clone());
        Ok(f)
    }

    /// Read a journal from its end: the first `limit` objects (0: all) for which `keep` holds,
    /// and the 1-based line numbers (from the top) of unreadable lines passed on the way.
    fn read_journal(
        &self,
        rel: &str,
        limit: usize,
        keep: &mut dyn FnMut(serde_json::Value) -> bool,
    ) -> Result<Vec<String>, StateError> {
        let path = self.path(rel)?;
        let what = format!("read `.pilum/{rel}`");
        let mut r = journal::Reverse::open(&path).map_err(|e| self.failed(&what, e))?;
        let mut kept = 0;
        // Line numbers from the end; turned into numbers from the top once the count is known
        // (only when there are unreadable lines, which is rare).
        let mut bad_from_end = Vec::new();
        let mut n = 0usize;
        while let Some(line) = r.next_line().map_err(|e| self.failed(&what, e))? {
            n += 1;
            match journal::parse(&line) {
                Some(v) => {
                    if keep(v) {
                        kept += 1;
                        if limit > 0 && kept >= limit {
                            break;
                        }
                    }
                }
                None => bad_from_end.push(n),
            }
        }
        if bad_from_end.is_empty() {
            return Ok(Vec::new());
        }
        let total = count_lines(&path).unwrap_or(n);
        Ok(bad_from_end.into_iter().map(|k| format!("line {}", total + 1 - k)).collect())
    }

    /// Write cache entries into `dir`, each in place (see [`seal`]): the directory is checked
    /// and made once, then every plain-named entry is opened in it without following a symlink.
    /// Replacing each entry by a temporary file and a rename cost an inode, a data flush and
    /// the old inode's freeing per entry, about 0.2 ms of kernel time each; writing over the
    /// same file costs a few system calls. A symlink or other non-file in an entry's place is
    /// removed and the entry made anew.
    fn write_entries(&self, dir: &str, entries: &[(String, Vec<u8>)]) -> Result<(), StateError> {
        if entries.is_empty() {
            return Ok(());
        }
        let base = self.path(dir)?;
        std::fs::create_dir_all(&base)
            .map_err(|e| self.failed(&format!("create `.pilum/{dir}/`"), e))?;
        // One entry that cannot be written does not keep the others from being written; the
        // first failure is the answer.
        let mut first = None;
        for (name, json) in entries {
            if let Err(e) = self.write_entry(&base, dir, name, json) {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    fn write_entry(
        &self,
        base: &Path,
        dir: &str,
        name: &str,
        json: &[u8],
    ) -> Result<(), StateError> {
        let what = format!("write `.pilum/{dir}/{name}.{ENTRY}`");
        let path = self.entry_path(base, dir, name, ENTRY).map_err(|e| self.failed(&what, e))?;
        let f = match guard::open_writable(&path) {
            Ok(f) => f,
            Err(_) if is_not_a_file(&path) => std::fs::remove_file(&path)
                .and_then(|_| guard::create_new(&path))
                .map_err(|e| self.failed(&what, e))?,
            Err(e) => return Err(self.failed(&what, e)),
        };
        write_sealed(&f, &seal(json)).map_err(|e| self.failed(&what, e))?;
        // An entry of the format before (a whole JSON file, replaced by a rename) would come
        // back if this one were removed: it goes now.
        if let Ok(legacy) = self.entry_path(base, dir, name, LEGACY_ENTRY) {
            let _ = std::fs::remove_file(legacy);
        }
        Ok(())
    }

    /// The path of `file` in `dir`, whose path `base` was checked: a plain component is
    /// joined as is (and opened without following a symlink); anything else takes the full
    /// check of [`guard::pilum_path`].
    fn child(&self, base: &Path, dir: &str, file: &str) -> Result<PathBuf, StateError> {
        if file.contains('/') || file.starts_with('.') {
            self.path(&format!("{dir}/{file}"))
        } else {
            Ok(base.join(file))
        }
    }

    fn entry_path(
        &self,
        base: &Path,
        dir: &str,
        name: &str,
        ext: &str,
    ) -> Result<PathBuf, StateError> {
        self.child(base, dir, &format!("{name}.{ext}"))
    }

    /// The cache entries of `keys` in `dir`, read on every core: missing or unreadable ones,
    /// and one whose content names another key, are `None`. The directory is checked once (no
    /// symlink on the way into it); an entry whose file name is one plain component is then
    /// opened in it without following a symlink, so it cannot lead out. Any other name takes
    /// the full check.
    fn entries<K: PartialEq + Sync, T: serde::de::DeserializeOwned + Send>(
        &self,
        dir: &str,
        keys: &[K],
        name: impl Fn(&K) -> String + Sync,
        key: impl Fn(&T) -> K + Sync,
    ) -> Vec<Option<T>> {
        let Ok(base) = self.path(dir) else { return keys.iter().map(|_| None).collect() };
        crate::sync::par_map(keys, 64, |k| {
            let name = name(k);
            let read = |ext: &str| -> std::io::Result<Vec<u8>> {
                let path =
                    self.entry_path(&base, dir, &name, ext).map_err(std::io::Error::other)?;
                let mut text = Vec::new();
                guard::open_regular(&path)?.read_to_end(&mut text)?;
                Ok(text)
            };
            let value = match read(ENTRY) {
                Ok(text) => serde_json::from_slice::<T>(unseal(&text)?).ok()?,
                // Only when there is no entry of the current format: one written before.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    serde_json::from_slice::<T>(&read(LEGACY_ENTRY).ok()?).ok()?
                }
                Err(_) => return None,
            };
            (key(&value) == *k).then_some(value)
        })
    }

    /// `locks/` and `locks/queues/`, each checked once for a call over many keys (`make`:
    /// create `locks/`).
    fn lock_dirs(&self, make: bool) -> Result<LockDirs, StateError> {
        let locks = self.path("locks")?;
        if make {
            std::fs::create_dir_all(&locks)
                .map_err(|e| self.failed("create `.pilum/locks/`", e))?;
        }
        Ok(LockDirs { locks, queues: self.path(QUEUES)? })
    }

    fn lock_path(&self, dirs: &LockDirs, key: &LockKey) -> Result<PathBuf, StateError> {
        self.child(&dirs.locks, "locks", &key.file_name())
    }

    /// The live tickets queued for `key`, oldest first (names `<seq>-<pid>`); dead ones are
    /// removed on the way.
    fn tickets(&self, dirs: &LockDirs, key: &LockKey) -> Result<Vec<String>, StateError> {
        let mut dir = self.child(&dirs.queues, QUEUES, &key.file_name())?;
        match dir.symlink_metadata() {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            // Only a symlink needs the full check: it may lead out of `.pilum/`.
            Ok(m) if m.is_symlink() => dir = self.path(&format!("{QUEUES}/{}", key.file_name()))?,
            _ => {}
        }
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.failed(&format!("read the queue of `{key}`"), e)),
        };
        let mine = self.queued.locked().tickets.get(key).map(|t| t.0.clone());
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(pid) = parse_ticket(&name) else { continue };
            if mine.as_deref() == Some(name.as_str()) {
                out.push(name);
                continue;
            }
            let path = self.path(&format!("{QUEUES}/{}/{name}", key.file_name()))?;
            let Ok(f) = guard::open_regular(&path) else { continue };
            if flock_now(&f) {
                let age =
                    f.metadata().and_then(|m| m.modified()).ok().and_then(|m| m.elapsed().ok());
                if !alive(pid) || age.is_none_or(|a| a > TICKET_GAP) {
                    // Dead: its waiter ended (or never locked it). Removed while locked, so a
                    // second reader cannot take it for a live one.
                    let _ = std::fs::remove_file(&path);
                    continue;
                }
            }
            out.push(name);
        }
        out.sort();
        Ok(out)
    }

    /// Queue this run for `key` (once): a new ticket, `flock`ed.
    fn enqueue(&self, key: &LockKey) -> Result<(), StateError> {
        let mut q = self.queued.locked();
        if q.tickets.contains_key(key) {
            return Ok(());
        }
        let seq = *q.seq.get_or_insert_with(now_ns);
        let name = format!("{seq:020}-{}", std::process::id());
        let what = format!("queue for the lock `{key}`");
        let dir = self.path(&format!("{QUEUES}/{}", key.file_name()))?;
        std::fs::create_dir_all(&dir).map_err(|e| self.failed(&what, e))?;
        let path = self.path(&format!("{QUEUES}/{}/{name}", key.file_name()))?;
        let f = guard::create_new(&path).map_err(|e| self.failed(&what, e))?;
        // Blocking: another run looking whether the ticket is dead holds it for a moment.
        // SAFETY: flock on a file descriptor we own; no memory is involved.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            let e = std::io::Error::last_os_error();
            let _ = std::fs::remove_file(&path);
            return Err(self.failed(&what, e));
        }
        q.tickets.insert(key.clone(), (name, f));
        Ok(())
    }

    /// Leave the queue of `key`: remove this run's ticket (the kernel drops its `flock`).
    fn dequeue(&self, key: &LockKey) {
        let Some((name, _file)) = self.queued.locked().tickets.remove(key) else { return };
        if let Ok(path) = self.path(&format!("{QUEUES}/{}/{name}", key.file_name())) {
            let _ = std::fs::remove_file(path);
        }
    }

    /// What the lock file of `key` says, read without taking it.
    fn peek(&self, dirs: &LockDirs, key: &LockKey) -> LockFile {
        self.lock_path(dirs, key)
            .ok()
            .and_then(|p| guard::open_regular(&p).ok())
            .map(|mut f| read_lock_file(&mut f))
            .unwrap_or_default()
    }

    /// Try to take the key's byte of the lock table: its new fencing token when granted (its
    /// file then names `me`), else what its file says.
    fn try_take(
        &self,
        dirs: &LockDirs,
        key: &LockKey,
        me: &Holder,
    ) -> Result<Result<u64, LockFile>, StateError> {
        let what = format!("take the lock `{key}`");
        let table = self.table()?;
        if !set_byte(&table, offset(key), libc::F_WRLCK).map_err(|e| self.failed(&what, e))? {
            return Ok(Err(self.peek(dirs, key)));
        }
        // Read the token and write the new holder through one open.
        let written = self.lock_path(dirs, key).and_then(|path| {
            let mut f = guard::open_writable(&path).map_err(|e| self.failed(&what, e))?;
            let fence = read_lock_file(&mut f).fence + 1;
            let content = LockFile { holder: Some(me.clone()), fence };
            write_lock_file(&mut f, &content).map_err(|e| self.failed(&what, e))?;
            Ok(fence)
        });
        if written.is_err() {
            let _ = set_byte(&table, offset(key), libc::F_UNLCK);
        }
        written.map(Ok)
    }

    /// Whether another backend (another process) holds the key's lock, and what its file says.
    fn taken(&self, dirs: &LockDirs, key: &LockKey) -> Result<Option<LockFile>, StateError> {
        let table = self.table()?;
        let taken = byte_taken(&table, offset(key))
            .map_err(|e| self.failed(&format!("look at the lock `{key}`"), e))?;
        Ok(taken.then(|| self.peek(dirs, key)))
    }

    /// Write the key's file (holder and fencing token).
    fn write_lock(
        &self,
        dirs: &LockDirs,
        key: &LockKey,
        content: &LockFile,
    ) -> Result<(), StateError> {
        let path = self.lock_path(dirs, key)?;
        let what = format!("write the lock `{key}`");
        let mut f = guard::open_writable(&path).map_err(|e| self.failed(&what, e))?;
        write_lock_file(&mut f, content).map_err(|e| self.failed(&what, e))
    }
}

/// The checked lock directories (see [`FileBackend::lock_dirs`]).
struct LockDirs {
    locks: PathBuf,
    queues: PathBuf,
}

/// `<seq>-<pid>`: the ticket's pid.
fn parse_ticket(name: &str) -> Option<i32> {
    let (seq, pid) = name.split_once('-')?;
    seq.parse::<u128>().ok()?;
    pid.parse().ok()
}

/// A cache entry's file extension, and that of the format before it (a whole JSON file,
/// replaced by a rename), still read when no current entry exists.
const ENTRY: &str = "entry";
const LEGACY_ENTRY: &str = "json";

/// A cache entry as written: the JSON, a newline, the first 8 bytes of its SHA-256 in hex, a
/// newline. Entries are rewritten in place, so a reader that meets a write half done, or a file
/// a crash cut short, sees content that does not match its check, which reads as a miss.
fn seal(json: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(json);
    let mut out = Vec::with_capacity(json.len() + 18);
    out.extend_from_slice(json);
    out.push(b'\n');
    out.extend_from_slice(crate::hex::encode(&digest[..8]).as_bytes());
    out.push(b'\n');
    out
}

/// The JSON of a sealed entry, if its check holds.
fn unseal(text: &[u8]) -> Option<&[u8]> {
    let json = &text[..text.len().checked_sub(18)?];
    (seal(json) == text).then_some(json)
}

/// How long a cache-entry write waits for another writer of the same entry (a run of another
/// environment building the same inputs) before it gives the entry up: a writer holds it for
/// a write and a cut, so only a stopped process holds it longer, and it must not hang this run.
const ENTRY_WAIT: Duration = Duration::from_secs(1);

/// Write `bytes` over the whole of `f` (from the start, then cut to length) under an exclusive
/// `flock`, so two runs writing one entry at once do not interleave their writes and cuts.
fn write_sealed(f: &File, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let since = std::time::Instant::now();
    while !flock_now(f) {
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::WouldBlock {
            return Err(e);
        }
        if since.elapsed() >= ENTRY_WAIT {
            return Err(std::io::Error::new(
                std::io::ErrorKind::WouldBlock,
                format!(
                    "another process has held it for {} (stopped?); the entry is left as it was",
                    crate::duration::format(ENTRY_WAIT)
                ),
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    f.write_all_at(bytes, 0)?;
    f.set_len(bytes.len() as u64)
}

/// Whether something other than a regular file (a symlink, a directory) is at `path`.
fn is_not_a_file(path: &Path) -> bool {
    path.symlink_metadata().is_ok_and(|m| !m.is_file())
}

fn read_lock_file(f: &mut File) -> LockFile {
    let mut text = String::new();
    let _ = f.rewind();
    let _ = f.read_to_string(&mut text);
    serde_json::from_str(&text).unwrap_or_default()
}

/// One write from the start, then the length: a reader without the lock sees the old content,
/// the new one, or (rarely) a mix that does not parse and reads as "no holder". Not synced: the
/// kernel's lock is what excludes, and the content describes the holder while it lives. A power
/// loss may leave it empty, which reads as "no holder, token 0"; syncing it on every take and
/// release cost two disk flushes per service (most of a 1,000-service run's wall time on a
/// disk whose flush takes milliseconds).
fn write_lock_file(f: &mut File, content: &LockFile) -> std::io::Result<()> {
    let bytes = serde_json::to_vec(content).expect("a lock file serialises");
    f.rewind()?;
    f.write_all(&bytes)?;
    f.set_len(bytes.len() as u64)
}

/// The number of lines of a file (for line numbers of unreadable lines).
fn count_lines(path: &Path) -> std::io::Result<usize> {
    let mut f = guard::open_regular(path)?;
    let mut buf = vec![0u8; 64 * 1024];
    let (mut lines, mut last) = (0, b'\n');
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        lines += buf[..n].iter().filter(|&&b| b == b'\n').count();
        last = buf[n - 1];
    }
    Ok(lines + usize::from(last != b'\n'))
}

impl Backend for FileBackend {
    fn location(&self) -> &Location {
        &self.location
    }

    fn leases_expire(&self) -> bool {
        false
    }

    fn records(&self, filter: &Filter) -> Result<Page, StateError> {
        let mut page = Page::default();
        let bad = self.read_journal(RECORDS, filter.limit, &mut |v| page.take(filter, v))?;
        page.unreadable += bad.len();
        Ok(page)
    }

    fn runs(
        &self,
        limit: usize,
        keep: &dyn Fn(&serde_json::Value) -> bool,
    ) -> Result<Runs, StateError> {
        let mut runs = Vec::new();
        let unreadable = self.read_journal(super::history::FILE, limit, &mut |v| {
            if keep(&v) {
                runs.push(v);
                true
            } else {
                false
            }
        })?;
        Ok(Runs { runs, unreadable })
    }

    fn write(&self, batch: &Batch) -> Result<(), StateError> {
        if !batch.records.is_empty() {
            let lines: Vec<String> = batch
                .records
                .iter()
                .map(|r| serde_json::to_string(r).expect("a record serialises"))
                .collect();
            let path = self.path(RECORDS)?;
            journal::append(&path, &lines)
                .map_err(|e| self.failed(&format!("append to `.pilum/{RECORDS}`"), e))?;
        }
        if let Some(run) = &batch.run {
            let path = self.path(super::history::FILE)?;
            journal::append(&path, &[run.to_string()]).map_err(|e| {
                self.failed(&format!("append to `.pilum/{}`", super::history::FILE), e)
            })?;
        }
        let artefacts: Vec<(String, Vec<u8>)> = batch
            .artefacts
            .iter()
            .map(|a| (a.key().file_name(), serde_json::to_vec(a).expect("an artefact serialises")))
            .collect();
        let lives: Vec<(String, Vec<u8>)> = batch
            .lives
            .iter()
            .map(|l| (l.key().file_name(), serde_json::to_vec(l).expect("a live entry serialises")))
            .collect();
        let written = self.write_entries("cache/artefacts", &artefacts);
        written.and(self.write_entries("cache/live", &lives))
    }

    fn artefacts(&self, keys: &[ArtefactKey]) -> Result<Vec<Option<Artefact>>, StateError> {
        Ok(self.entries("cache/artefacts", keys, ArtefactKey::file_name, Artefact::key))
    }

    fn lives(&self, keys: &[LiveKey]) -> Result<Vec<Option<Live>>, StateError> {
        Ok(self.entries("cache/live", keys, LiveKey::file_name, Live::key))
    }

    fn lock_try(
        &self,
        me: &Holder,
        keys: &[LockKey],
        queue: bool,
        _ttl: Duration,
    ) -> Result<Vec<Try>, StateError> {
        let dirs = self.lock_dirs(true)?;
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            if let Some(&fence) = self.held().get(key) {
                out.push(Try::Acquired { fence });
                continue;
            }
            // Earlier waiters come first: only a run with no live ticket older than its own
            // may take the lock.
            let tickets = self.tickets(&dirs, key)?;
            let mine = self.queued.locked().tickets.get(key).map(|t| t.0.clone());
            let ahead = tickets.iter().take_while(|t| mine.as_ref().is_none_or(|m| *t < m)).count();
            let busy = if ahead > 0 {
                Try::Busy { holder: self.peek(&dirs, key).holder, ahead }
            } else {
                match self.try_take(&dirs, key, me)? {
                    Ok(fence) => {
                        self.held().insert(key.clone(), fence);
                        self.dequeue(key);
                        out.push(Try::Acquired { fence });
                        continue;
                    }
                    Err(content) => Try::Busy { holder: content.holder, ahead: 0 },
                }
            };
            if queue {
                self.enqueue(key)?;
            }
            out.push(busy);
        }
        Ok(out)
    }

    fn lock_renew(
        &self,
        _me: &Holder,
        keys: &[LockKey],
        _ttl: Duration,
    ) -> Result<Vec<bool>, StateError> {
        let held = self.held();
        Ok(keys.iter().map(|k| held.contains_key(k)).collect())
    }

    fn lock_release(&self, _me: &Holder, keys: &[LockKey]) -> Result<(), StateError> {
        let dirs = self.lock_dirs(true)?;
        for key in keys {
            let Some(fence) = self.held().remove(key) else { continue };
            // Keep the fencing token for the next holder, then let the byte go.
            let _ = self.write_lock(&dirs, key, &LockFile { holder: None, fence });
            let table = self.table()?;
            set_byte(&table, offset(key), libc::F_UNLCK)
                .map_err(|e| self.failed(&format!("release the lock `{key}`"), e))?;
        }
        Ok(())
    }

    fn lock_leave(&self, _me: &Holder, keys: &[LockKey]) -> Result<(), StateError> {
        for key in keys {
            self.dequeue(key);
        }
        Ok(())
    }

    fn lock_list(&self) -> Result<Vec<Held>, StateError> {
        let dir = self.path("locks")?;
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.failed("list `.pilum/locks/`", e)),
        };
        let mut keys: Vec<LockKey> = entries
            .flatten()
            .filter_map(|e| LockKey::from_file_name(&e.file_name().to_string_lossy()))
            .collect();
        // Queues whose key has no lock file yet are listed too.
        if let Ok(queues) = std::fs::read_dir(self.path(QUEUES)?) {
            keys.extend(
                queues
                    .flatten()
                    .filter_map(|e| LockKey::from_file_name(&e.file_name().to_string_lossy())),
            );
        }
        keys.sort();
        keys.dedup();
        let dirs = self.lock_dirs(false)?;
        let mut out = Vec::new();
        for key in keys {
            let waiting = self.tickets(&dirs, &key)?.len();
            // Held by this process, or by another one (the lock cannot be taken); a free lock
            // with waiters is listed without a holder.
            let mine = self.held().contains_key(&key);
            let content =
                if mine { Some(self.peek(&dirs, &key)) } else { self.taken(&dirs, &key)? };
            let content = content.or_else(|| {
                (waiting > 0)
                    .then(|| LockFile { holder: None, fence: self.peek(&dirs, &key).fence })
            });
            if let Some(content) = content {
                let fence = Some(content.fence);
                out.push(Held { key, holder: content.holder, fence, waiting, expires_ms: None });
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    fn lock_break(&self, key: &LockKey) -> Result<Option<Holder>, StateError> {
        match self.taken(&self.lock_dirs(false)?, key)? {
            // Free: nothing to break (the file keeps its fencing token).
            None => Ok(None),
            Some(content) => Err(self.failed(
                &format!("release the lock `{key}`"),
                format!(
                    "it is a file lock held by the running process {} on this machine; the kernel releases it when that process ends (stop it), and it cannot be taken from a live process",
                    content.holder.map_or_else(|| "(unknown)".to_string(), |h| format!("pid {}", h.pid))
                ),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::record::{Outcome, sample};

    fn holder(token: &str) -> Holder {
        Holder::for_tests(token)
    }

    #[test]
    fn records_are_read_newest_first_skipping_torn_lines() {
        let t = tempfile::tempdir().unwrap();
        let b = FileBackend::new(t.path());
        let first = sample("api", Some("prod"), Outcome::Ok);
        b.write(&Batch { records: vec![first.clone()], ..Batch::default() }).unwrap();
        // A crash left half a record.
        let path = t.path().join(".pilum").join(RECORDS);
        let mut f = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"id\":\"tor").unwrap();
        let second = sample("api", Some("prod"), Outcome::Failed);
        let other = sample("web", None, Outcome::Ok);
        b.write(&Batch { records: vec![second.clone(), other.clone()], ..Batch::default() })
            .unwrap();
        let page = b.records(&Filter::default()).unwrap();
        let ids: Vec<&str> = page.records.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, [other.id.as_str(), second.id.as_str(), first.id.as_str()]);
        assert_eq!(page.unreadable, 1);
        let last = b.last_success("api", "shell", Some("prod"), None).unwrap().unwrap();
        assert_eq!(last.id, first.id);
        assert_eq!(b.previous_success("api", "shell", Some("prod"), None).unwrap(), None);
        let third = sample("api", Some("prod"), Outcome::Ok);
        b.write(&Batch { records: vec![third.clone()], ..Batch::default() }).unwrap();
        let last = b.last_success("api", "shell", Some("prod"), None).unwrap().unwrap();
        assert_eq!(last.id, third.id);
        let previous = b.previous_success("api", "shell", Some("prod"), None).unwrap().unwrap();
        assert_eq!(previous.id, first.id);
        let one = b.records(&Filter { limit: 1, ..Filter::default() }).unwrap();
        assert_eq!(one.records.len(), 1);
        assert_eq!(one.records[0].id, third.id);
    }

    #[test]
    fn cache_entries_round_trip() {
        let t = tempfile::tempdir().unwrap();
        let b = FileBackend::new(t.path());
        let a = Artefact {
            service: "api".into(),
            target: "shell".into(),
            hash: "abc".into(),
            version: "v1".into(),
            commit: None,
            run: "r".into(),
            time: "t".into(),
            outputs: Vec::new(),
        };
        b.write(&Batch { artefacts: vec![a.clone()], ..Batch::default() }).unwrap();
        let miss = ArtefactKey { hash: "def".into(), ..a.key() };
        assert_eq!(b.artefacts(&[a.key(), miss]).unwrap(), vec![Some(a), None]);
    }

    fn artefact(run: &str, outputs: usize) -> Artefact {
        Artefact {
            service: "api".into(),
            target: "shell".into(),
            hash: "abc".into(),
            version: "v1".into(),
            commit: None,
            run: run.into(),
            time: "t".into(),
            outputs: (0..outputs)
                .map(|i| crate::state::cache::StepOutput {
                    step: format!("build{i}"),
                    region: None,
                    value: serde_json::json!({ "digest": format!("sha256:{i:064}") }),
                })
                .collect(),
        }
    }

    /// A project with a file backend and its (made) artefact directory.
    fn artefact_dir() -> (tempfile::TempDir, FileBackend, PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let b = FileBackend::new(t.path());
        let dir = t.path().join(".pilum/cache/artefacts");
        std::fs::create_dir_all(&dir).unwrap();
        (t, b, dir)
    }

    #[test]
    fn a_rewritten_entry_reads_back_whole_and_a_torn_one_reads_as_a_miss() {
        let t = tempfile::tempdir().unwrap();
        let b = FileBackend::new(t.path());
        let long = artefact("r1", 3);
        let short = artefact("r2", 0);
        b.write(&Batch { artefacts: vec![long.clone()], ..Batch::default() }).unwrap();
        // Rewritten in place with shorter content: nothing of the longer one is left.
        b.write(&Batch { artefacts: vec![short.clone()], ..Batch::default() }).unwrap();
        assert_eq!(b.artefacts(&[short.key()]).unwrap(), vec![Some(short.clone())]);
        let path =
            t.path().join(format!(".pilum/cache/artefacts/{}.entry", short.key().file_name()));
        let whole = std::fs::read(&path).unwrap();
        assert_eq!(whole, seal(&serde_json::to_vec(&short).unwrap()));
        let long_bytes = seal(&serde_json::to_vec(&long).unwrap());
        let torn: Vec<Vec<u8>> = vec![
            // A crash before the cut: the new content, then the old one's tail.
            [&whole[..], &long_bytes[whole.len()..]].concat(),
            // Cut short.
            whole[..whole.len() - 5].to_vec(),
            Vec::new(),
            // A reader meeting the write half done: the new start (up to the run), the old
            // rest. Its JSON is valid and of the right key.
            {
                let k = whole.windows(6).position(|w| w == b"\"time\"").unwrap();
                let mix = [&whole[..k], &long_bytes[k..]].concat();
                let json = &mix[..mix.len() - 18];
                assert_eq!(serde_json::from_slice::<Artefact>(json).unwrap().key(), short.key());
                mix
            },
            // Valid JSON of the right key, with a check that is not its own.
            [&serde_json::to_vec(&long).unwrap()[..], &whole[whole.len() - 18..]].concat(),
        ];
        for content in torn {
            std::fs::write(&path, &content).unwrap();
            assert_eq!(
                b.artefacts(&[short.key()]).unwrap(),
                vec![None],
                "{}",
                String::from_utf8_lossy(&content)
            );
        }
    }

    #[test]
    fn an_entry_another_process_holds_is_given_up_not_waited_for() {
        let (_t, b, dir) = artefact_dir();
        let a = artefact("r1", 1);
        b.write(&Batch { artefacts: vec![a.clone()], ..Batch::default() }).unwrap();
        let path = dir.join(format!("{}.entry", a.key().file_name()));
        // Another open file description holding the entry's `flock`, as a stopped writer would.
        let holder = File::open(&path).unwrap();
        assert!(flock_now(&holder));
        // The other entries of the batch are still written.
        let other = Artefact { service: "web".into(), ..artefact("r2", 1) };
        let batch = Batch { artefacts: vec![artefact("r2", 1), other.clone()], ..Batch::default() };
        let err = b.write(&batch).unwrap_err().to_string();
        assert!(err.contains("another process has held it"), "{err}");
        assert_eq!(b.artefacts(&[other.key()]).unwrap(), vec![Some(other)]);
        // The entry is as it was, and written once the holder is gone.
        assert_eq!(b.artefacts(&[a.key()]).unwrap(), vec![Some(a.clone())]);
        drop(holder);
        let next = artefact("r3", 1);
        b.write(&Batch { artefacts: vec![next.clone()], ..Batch::default() }).unwrap();
        assert_eq!(b.artefacts(&[a.key()]).unwrap(), vec![Some(next)]);
    }

    #[test]
    fn an_entry_of_the_format_before_is_read_until_it_is_rewritten() {
        let (_t, b, dir) = artefact_dir();
        let old = artefact("r1", 1);
        let legacy = dir.join(format!("{}.json", old.key().file_name()));
        std::fs::write(&legacy, serde_json::to_vec(&old).unwrap()).unwrap();
        assert_eq!(b.artefacts(&[old.key()]).unwrap(), vec![Some(old.clone())]);
        let new = artefact("r2", 1);
        b.write(&Batch { artefacts: vec![new.clone()], ..Batch::default() }).unwrap();
        assert!(!legacy.exists(), "the entry of the format before is removed once replaced");
        assert_eq!(b.artefacts(&[old.key()]).unwrap(), vec![Some(new)]);
        // A torn current entry is a miss: the legacy one, were it still there, is not consulted.
        std::fs::write(&legacy, serde_json::to_vec(&old).unwrap()).unwrap();
        std::fs::write(dir.join(format!("{}.entry", old.key().file_name())), b"{").unwrap();
        assert_eq!(b.artefacts(&[old.key()]).unwrap(), vec![None]);
    }

    #[test]
    fn an_entry_is_never_written_through_a_symlink() {
        let (t, b, dir) = artefact_dir();
        let a = artefact("r1", 1);
        let victim = t.path().join("victim");
        std::fs::write(&victim, b"keep me").unwrap();
        let entry = dir.join(format!("{}.entry", a.key().file_name()));
        std::os::unix::fs::symlink(&victim, &entry).unwrap();
        b.write(&Batch { artefacts: vec![a.clone()], ..Batch::default() }).unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep me");
        assert!(
            entry.symlink_metadata().unwrap().is_file(),
            "the symlink is replaced by the entry"
        );
        assert_eq!(b.artefacts(&[a.key()]).unwrap(), vec![Some(a)]);
    }

    #[test]
    fn a_lock_is_one_holders_and_its_fence_grows() {
        let t = tempfile::tempdir().unwrap();
        let one = FileBackend::new(t.path());
        let two = FileBackend::new(t.path());
        let key = LockKey { service: "api".into(), environment: None, target: "shell".into() };
        let keys = std::slice::from_ref(&key);
        let ttl = Duration::from_secs(1);
        assert_eq!(
            one.lock_try(&holder("a"), keys, false, ttl).unwrap(),
            [Try::Acquired { fence: 1 }]
        );
        match &two.lock_try(&holder("b"), keys, false, ttl).unwrap()[0] {
            Try::Busy { holder: Some(h), .. } => assert_eq!(h.token, "a"),
            other => panic!("{other:?}"),
        }
        assert_eq!(two.lock_list().unwrap()[0].holder.as_ref().unwrap().token, "a");
        assert!(two.lock_break(&key).unwrap_err().to_string().contains("kernel releases it"));
        one.lock_release(&holder("a"), keys).unwrap();
        assert_eq!(
            two.lock_try(&holder("b"), keys, false, ttl).unwrap(),
            [Try::Acquired { fence: 2 }]
        );
        assert_eq!(two.lock_renew(&holder("b"), keys, ttl).unwrap(), [true]);
        assert_eq!(one.lock_renew(&holder("a"), keys, ttl).unwrap(), [false]);
    }

    #[test]
    fn cache_entries_are_read_in_key_order_and_never_through_a_symlink() {
        let t = tempfile::tempdir().unwrap();
        let b = FileBackend::new(t.path());
        let live = |i: usize| Live {
            service: format!("s{i}"),
            environment: Some("prod".into()),
            target: "shell".into(),
            hash: format!("h{i}"),
            version: "v1".into(),
            commit: None,
            run: "r".into(),
            time: "2025-01-01T00:00:00Z".into(),
        };
        // Enough keys to be read on several threads; every third one never written.
        let keys: Vec<LockKey> = (0..200).map(|i| live(i).key()).collect();
        let written: Vec<Live> = (0..200).filter(|i| i % 3 != 0).map(live).collect();
        b.write(&Batch { lives: written, ..Batch::default() }).unwrap();
        let read = b.lives(&keys).unwrap();
        for (i, got) in read.iter().enumerate() {
            assert_eq!(got.as_ref().map(|l| l.hash.clone()), (i % 3 != 0).then(|| format!("h{i}")));
        }
        // An entry replaced by a symlink to a file outside is not read.
        let outside = t.path().join("outside.entry");
        let dir = t.path().join(".pilum/cache/live");
        let entry = dir.join(format!("{}.entry", keys[1].file_name()));
        std::fs::rename(&entry, &outside).unwrap();
        std::os::unix::fs::symlink(&outside, &entry).unwrap();
        assert!(b.lives(&keys[1..2]).unwrap()[0].is_none());
        // Nor is any entry once the directory itself is a symlink out of `.pilum/`.
        let moved = t.path().join("moved");
        std::fs::rename(&dir, &moved).unwrap();
        std::os::unix::fs::symlink(&moved, &dir).unwrap();
        assert!(b.lives(&keys).unwrap().iter().all(Option::is_none));
    }

    #[test]
    fn waiters_are_served_in_arrival_order_and_dead_tickets_are_passed_over() {
        let t = tempfile::tempdir().unwrap();
        let [one, two, three] = [(); 3].map(|()| FileBackend::new(t.path()));
        let key = LockKey { service: "api".into(), environment: None, target: "shell".into() };
        let keys = std::slice::from_ref(&key);
        let ttl = Duration::from_secs(1);
        let busy = |ahead| Try::Busy { holder: None, ahead };
        assert_eq!(
            one.lock_try(&holder("a"), keys, false, ttl).unwrap(),
            [Try::Acquired { fence: 1 }]
        );
        assert!(matches!(
            two.lock_try(&holder("b"), keys, true, ttl).unwrap()[0],
            Try::Busy { ahead: 0, .. }
        ));
        // A ticket of a process that is gone, and an old one nobody locks: both dead.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let gone = child.id();
        child.wait().unwrap();
        let dir = t.path().join(".pilum").join(QUEUES).join(key.file_name());
        std::fs::write(dir.join(format!("{:020}-{gone}", 1)), "").unwrap();
        let old = dir.join(format!("{:020}-{}", 2, std::process::id()));
        std::fs::write(&old, "").unwrap();
        let f = std::fs::File::options().write(true).open(&old).unwrap();
        f.set_modified(std::time::SystemTime::now() - 2 * TICKET_GAP).unwrap();
        assert!(matches!(
            three.lock_try(&holder("c"), keys, true, ttl).unwrap()[0],
            Try::Busy { ahead: 1, .. }
        ));
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 2, "the dead tickets are removed");
        assert_eq!(one.lock_list().unwrap()[0].waiting, 2);
        one.lock_release(&holder("a"), keys).unwrap();
        // Free, but `two` came first; a run that does not wait does not jump the queue either.
        assert_eq!(three.lock_try(&holder("c"), keys, true, ttl).unwrap(), [busy(1)]);
        assert_eq!(one.lock_try(&holder("a"), keys, false, ttl).unwrap(), [busy(2)]);
        assert_eq!(one.lock_list().unwrap()[0].holder, None);
        assert_eq!(
            two.lock_try(&holder("b"), keys, true, ttl).unwrap(),
            [Try::Acquired { fence: 2 }]
        );
        assert!(matches!(
            three.lock_try(&holder("c"), keys, true, ttl).unwrap()[0],
            Try::Busy { ahead: 0, .. }
        ));
        two.lock_release(&holder("b"), keys).unwrap();
        // A waiter that leaves (or ends) is passed over.
        let four = FileBackend::new(t.path());
        assert_eq!(three.lock_list().unwrap()[0].waiting, 1);
        three.lock_leave(&holder("c"), keys).unwrap();
        assert_eq!(
            four.lock_try(&holder("d"), keys, true, ttl).unwrap(),
            [Try::Acquired { fence: 3 }]
        );
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    }
}
