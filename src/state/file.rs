//! The file backend, the default: everything under the project's `.pilum/`, every path checked
//! by [`guard::pilum_path`]. Deploy records go to `deploys.jsonl` and the run history to
//! `history.jsonl` (journals: torn tails ended before appending, read from the end); cache
//! entries are one JSON file each under `cache/`, replaced atomically; a deploy lock is an
//! `flock(2)` on `locks/<service+environment+target>`, whose content names the holder and the
//! key's fencing token. The kernel releases a lock when its process ends, however it ends, so
//! file locks never expire and cover this checkout only. Waiters poll; they are served in the
//! order the kernel grants the lock, not strictly in arrival order (Redis queues them).

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

pub(crate) struct FileBackend {
    root: PathBuf,
    location: Location,
    /// The lock files this process holds, by key.
    held: Mutex<HashMap<LockKey, File>>,
}

impl FileBackend {
    pub(crate) fn new(root: &Path) -> FileBackend {
        FileBackend { root: root.to_path_buf(), location: Location::File, held: Mutex::default() }
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

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<LockKey, File>> {
        self.held.locked()
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

    fn write_entry(
        &self,
        dir: &str,
        name: &str,
        value: &serde_json::Value,
    ) -> Result<(), StateError> {
        let rel = format!("{dir}/{name}.json");
        let path = self.path(&rel)?;
        let what = format!("write `.pilum/{rel}`");
        let parent = path.parent().expect("a path under `.pilum/` has a parent");
        std::fs::create_dir_all(parent).map_err(|e| self.failed(&what, e))?;
        let tmp = self.path(&format!("{dir}/.{name}.{}.tmp", std::process::id()))?;
        let text = serde_json::to_vec(value).expect("JSON values serialise");
        let mut f = guard::open_writable(&tmp).map_err(|e| self.failed(&what, e))?;
        f.set_len(0).and_then(|_| f.write_all(&text)).map_err(|e| self.failed(&what, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| self.failed(&what, e))
    }

    /// The cache entries of `keys` in `dir`: missing or unreadable ones, and one whose content
    /// names another key, are `None`.
    fn entries<K: PartialEq, T: serde::de::DeserializeOwned>(
        &self,
        dir: &str,
        keys: &[K],
        name: impl Fn(&K) -> String,
        key: impl Fn(&T) -> K,
    ) -> Vec<Option<T>> {
        keys.iter()
            .map(|k| {
                let path = self.path(&format!("{dir}/{}.json", name(k))).ok()?;
                let mut text = Vec::new();
                guard::open_regular(&path).ok()?.read_to_end(&mut text).ok()?;
                serde_json::from_slice::<T>(&text).ok().filter(|t| key(t) == *k)
            })
            .collect()
    }

    fn lock_path(&self, key: &LockKey) -> Result<PathBuf, StateError> {
        let path = self.path(&format!("locks/{}", key.file_name()))?;
        let parent = path.parent().expect("a path under `.pilum/` has a parent");
        std::fs::create_dir_all(parent).map_err(|e| self.failed("create `.pilum/locks/`", e))?;
        Ok(path)
    }

    /// Try to `flock` the key's file: the open file when granted, else what it says.
    fn try_flock(&self, key: &LockKey) -> Result<Result<File, LockFile>, StateError> {
        let path = self.lock_path(key)?;
        let what = format!("take the lock `{key}`");
        let mut f = guard::open_writable(&path).map_err(|e| self.failed(&what, e))?;
        // SAFETY: flock on a file descriptor we own; no memory is involved.
        let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            return Ok(Ok(f));
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
            return Err(self.failed(&what, err));
        }
        Ok(Err(read_lock_file(&mut f)))
    }
}

fn read_lock_file(f: &mut File) -> LockFile {
    let mut text = String::new();
    let _ = f.rewind();
    let _ = f.read_to_string(&mut text);
    serde_json::from_str(&text).unwrap_or_default()
}

fn write_lock_file(f: &mut File, content: &LockFile) -> std::io::Result<()> {
    f.set_len(0)?;
    f.rewind()?;
    f.write_all(&serde_json::to_vec(content).expect("a lock file serialises"))?;
    f.sync_data()
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
        for a in &batch.artefacts {
            let v = serde_json::to_value(a).expect("an artefact serialises");
            self.write_entry("cache/artefacts", &a.key().file_name(), &v)?;
        }
        for l in &batch.lives {
            let v = serde_json::to_value(l).expect("a live entry serialises");
            self.write_entry("cache/live", &l.key().file_name(), &v)?;
        }
        Ok(())
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
        _queue: bool,
        _ttl: Duration,
    ) -> Result<Vec<Try>, StateError> {
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            if self.held().contains_key(key) {
                let mut held = self.held();
                let f = held.get_mut(key).expect("checked above");
                out.push(Try::Acquired { fence: read_lock_file(f).fence });
                continue;
            }
            match self.try_flock(key)? {
                Ok(mut f) => {
                    let fence = read_lock_file(&mut f).fence + 1;
                    let content = LockFile { holder: Some(me.clone()), fence };
                    write_lock_file(&mut f, &content)
                        .map_err(|e| self.failed(&format!("write the lock `{key}`"), e))?;
                    self.held().insert(key.clone(), f);
                    out.push(Try::Acquired { fence });
                }
                Err(content) => out.push(Try::Busy { holder: content.holder, ahead: 0 }),
            }
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
        for key in keys {
            let Some(mut f) = self.held().remove(key) else { continue };
            // Keep the fencing token for the next holder; the kernel drops the lock on close.
            let fence = read_lock_file(&mut f).fence;
            let _ = write_lock_file(&mut f, &LockFile { holder: None, fence });
        }
        Ok(())
    }

    fn lock_leave(&self, _me: &Holder, _keys: &[LockKey]) -> Result<(), StateError> {
        Ok(())
    }

    fn lock_list(&self) -> Result<Vec<Held>, StateError> {
        let dir = self.path("locks")?;
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.failed("list `.pilum/locks/`", e)),
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(key) = LockKey::from_file_name(&name) else { continue };
            // Held by this process, or by another one (the lock cannot be taken).
            let content = match self.held().get_mut(&key) {
                Some(f) => Some(read_lock_file(f)),
                None => self.try_flock(&key)?.err(),
            };
            if let Some(content) = content {
                let fence = Some(content.fence);
                out.push(Held { key, holder: content.holder, fence, waiting: 0, expires_ms: None });
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    fn lock_break(&self, key: &LockKey) -> Result<Option<Holder>, StateError> {
        match self.try_flock(key)? {
            // Free: nothing to break (the file keeps its fencing token).
            Ok(_) => Ok(None),
            Err(content) => Err(self.failed(
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
        Holder {
            token: token.into(),
            run: "r".into(),
            command: "deploy".into(),
            actor: None,
            host: "h".into(),
            pid: std::process::id(),
            ci_run: None,
            since: "2025-01-01T00:00:00Z".into(),
        }
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
}
