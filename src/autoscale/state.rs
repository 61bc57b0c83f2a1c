//! The scaler's state directory (`--state-dir`): the lock that makes one server its only user,
//! the pools' desired-state records (`<pool>.json`), the pending-signals snapshot
//! (`signals.json`) and the signal journal (`signals.journal`, written by `audit.rs`).
//!
//! Start-up reads the snapshot, replays the journal entries after it and drops the intents a
//! recorded decision already consumed (each record keeps the sequence number it consumed up to),
//! so a SIGKILL loses no accepted signal and applies none twice. Then a fresh snapshot is
//! written and the journal emptied. A record or snapshot that cannot be read or parsed, or a
//! record out of its pool's bounds, stops the start (exit 2) and is never overwritten; a signal
//! whose numbers are out of bounds is quarantined instead of blocking the start.
//!
//! Every write is atomic (temporary file, `fsync`, rename) and stays inside the directory.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use crate::autoscale::audit::{self, Entry};
use crate::autoscale::decide::Record;
use crate::autoscale::pool::{Pool, Pools};
use crate::autoscale::signal::{Book, Change, Signal};

/// Why the state directory cannot be used. All wording is in `Display`.
#[derive(Debug)]
pub(crate) enum StateError {
    /// Another process holds the lock.
    InUse {
        dir: PathBuf,
        holder: Option<String>,
    },
    Io {
        path: PathBuf,
        action: &'static str,
        error: std::io::Error,
    },
    /// A file that does not parse; `what` names it.
    Corrupt {
        path: PathBuf,
        what: &'static str,
        error: String,
    },
    /// A record whose value is outside the pool's bounds.
    OutOfBounds {
        path: PathBuf,
        pool: String,
        field: &'static str,
        value: i64,
        min: i64,
        max: i64,
    },
    /// A record file that belongs to another pool.
    WrongPool {
        path: PathBuf,
        expected: String,
        found: String,
    },
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InUse { dir, holder } => {
                write!(
                    f,
                    "state directory `{}` is in use by another `pilum scale serve`",
                    dir.display()
                )?;
                if let Some(pid) = holder {
                    write!(f, " (pid {pid})")?;
                }
                write!(
                    f,
                    "\nhelp: stop that server first, or give this one its own `--state-dir`: two servers on one state directory undo each other's scaling"
                )
            }
            Self::Io { path, action, error } => {
                write!(f, "cannot {action} `{}`: {error}", path.display())
            }
            Self::Corrupt { path, what, error } => write!(
                f,
                "{what} `{}` is corrupt: {error}\nhelp: move the file away to start {}",
                path.display(),
                if *what == "pending signals" {
                    "without them"
                } else {
                    "this pool from the current config"
                }
            ),
            Self::OutOfBounds { path, pool, field, value, min, max } => write!(
                f,
                "state record `{}` of pool `{pool}` has `{field}` {value}, outside [{min}, {max}]\nhelp: fix the value, or move the record away to start this pool from the current config (after changing `min`/`max`, the old record may be outside the new bounds)",
                path.display()
            ),
            Self::WrongPool { path, expected, found } => write!(
                f,
                "state record `{}` belongs to pool `{found}`, not `{expected}`\nhelp: move it away to start pool `{expected}` from the current config",
                path.display()
            ),
        }
    }
}

impl std::error::Error for StateError {}

/// A signal set aside at start because its numbers are out of bounds.
#[derive(Debug, Clone)]
pub(crate) struct Quarantined {
    pub pool: String,
    pub signal: Signal,
    pub reason: String,
}

/// What start-up recovered from the snapshot and the journal.
#[derive(Debug, Default)]
pub(crate) struct Recovered {
    pub books: BTreeMap<String, Book>,
    pub next_seq: u64,
    pub quarantined: Vec<Quarantined>,
    /// Journal lines that did not parse (torn by a crash: never acknowledged).
    pub torn: usize,
    /// Journal entries replayed.
    pub replayed: usize,
    /// Entries or books of pools no longer in the pools file.
    pub dropped: usize,
}

/// The open, locked state directory.
#[derive(Debug)]
pub(crate) struct StateDir {
    dir: PathBuf,
    /// Held (with an exclusive `flock`) for the life of the server.
    _lock: std::fs::File,
}

impl StateDir {
    /// Create and lock `dir`. A second server on the same directory gets
    /// [`StateError::InUse`] naming the holder's pid.
    pub(crate) fn open(dir: &Path) -> Result<Self, StateError> {
        let io = |action, path: &Path| {
            let path = path.to_path_buf();
            move |error| StateError::Io { path, action, error }
        };
        std::fs::create_dir_all(dir).map_err(io("create", dir))?;
        let lock_path = dir.join("lock");
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(io("open", &lock_path))?;
        // SAFETY: flock on a file descriptor we own; it only sets an advisory lock.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                let holder = std::fs::read_to_string(&lock_path)
                    .ok()
                    .map(|t| t.trim().to_string())
                    .filter(|t| !t.is_empty());
                return Err(StateError::InUse { dir: dir.to_path_buf(), holder });
            }
            return Err(StateError::Io { path: lock_path, action: "lock", error: err });
        }
        file.set_len(0).map_err(io("write", &lock_path))?;
        writeln!(file, "{}", std::process::id()).map_err(io("write", &lock_path))?;
        Ok(Self { dir: dir.to_path_buf(), _lock: file })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn audit_path(&self) -> PathBuf {
        self.dir.join("audit.jsonl")
    }

    pub(crate) fn journal_path(&self) -> PathBuf {
        self.dir.join("signals.journal")
    }

    fn snapshot_path(&self) -> PathBuf {
        self.dir.join("signals.json")
    }

    fn record_path(&self, pool: &str) -> PathBuf {
        self.dir.join(format!("{pool}.json"))
    }

    /// The pool's record, checked against its bounds; `None` when there is none yet.
    pub(crate) fn load_record(&self, pool: &Pool) -> Result<Option<Record>, StateError> {
        let path = self.record_path(&pool.name);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(StateError::Io { path, action: "read", error }),
        };
        let record: Record = serde_json::from_str(&text).map_err(|e| StateError::Corrupt {
            path: path.clone(),
            what: "state record",
            error: e.to_string(),
        })?;
        if record.pool != pool.name {
            return Err(StateError::WrongPool {
                path,
                expected: pool.name.clone(),
                found: record.pool,
            });
        }
        if let Some((field, value, min, max)) = record.out_of_bounds(&pool.spec) {
            return Err(StateError::OutOfBounds {
                path,
                pool: pool.name.clone(),
                field,
                value,
                min,
                max,
            });
        }
        Ok(Some(record))
    }

    /// Write a record atomically (blocking: call it off the async workers).
    pub(crate) fn save_record(&self, record: &Record) -> std::io::Result<()> {
        let bytes = serde_json::to_vec_pretty(record).map_err(std::io::Error::other)?;
        self.write_atomic(&self.record_path(&record.pool), &bytes)
    }

    /// Write the pending signals of every pool with the sequence number they reflect, then
    /// (with `truncate`) empty the journal, whose entries the snapshot now holds.
    pub(crate) fn save_snapshot(
        &self,
        seq: u64,
        books: &BTreeMap<String, Book>,
        truncate: bool,
    ) -> std::io::Result<()> {
        #[derive(serde::Serialize)]
        struct Snapshot<'a> {
            seq: u64,
            books: BTreeMap<&'a str, &'a Book>,
        }
        let books =
            books.iter().filter(|(_, b)| !b.is_empty()).map(|(n, b)| (n.as_str(), b)).collect();
        let bytes =
            serde_json::to_vec_pretty(&Snapshot { seq, books }).map_err(std::io::Error::other)?;
        self.write_atomic(&self.snapshot_path(), &bytes)?;
        if truncate {
            let journal = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(self.journal_path())?;
            journal.sync_all()?;
        }
        Ok(())
    }

    /// Read the snapshot and replay the journal after it. `records` are the pools' records
    /// (their `signals_seq` says which intents were consumed).
    pub(crate) fn recover(
        &self,
        pools: &Pools,
        records: &BTreeMap<String, Record>,
    ) -> Result<Recovered, StateError> {
        let path = self.snapshot_path();
        let (snapshot_seq, books) = match std::fs::read_to_string(&path) {
            Ok(text) => parse_snapshot(&text).map_err(|error| StateError::Corrupt {
                path: path.clone(),
                what: "pending signals",
                error,
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (0, BTreeMap::new()),
            Err(error) => return Err(StateError::Io { path, action: "read", error }),
        };
        let mut out = Recovered::default();
        let consumed = |pool: &str| records.get(pool).map_or(0, |r| r.signals_seq);
        for (pool, mut book) in books {
            if pools.get(&pool).is_none() {
                out.dropped += 1;
                continue;
            }
            book.forget_consumed(consumed(&pool));
            let mut kept =
                Book { changed_seq: book.changed_seq, heard_at: book.heard_at, ..Book::default() };
            for s in book.levels.into_values().chain(book.intents) {
                match s.check_bounds() {
                    Ok(()) => {
                        let change = if s.kind == crate::autoscale::signal::Kind::Level {
                            Change::Raise(s)
                        } else {
                            Change::Intent(s)
                        };
                        let seq = match &change {
                            Change::Raise(s) | Change::Intent(s) => s.seq,
                            Change::Clear { .. } => 0,
                        };
                        kept.apply(seq, change);
                    }
                    Err(e) => out.quarantined.push(Quarantined {
                        pool: pool.clone(),
                        signal: s,
                        reason: e.to_string(),
                    }),
                }
            }
            out.books.insert(pool, kept);
        }
        let journal = self.journal_path();
        let (entries, torn) = audit::read_lines::<Entry>(&journal)
            .map_err(|error| StateError::Io { path: journal.clone(), action: "read", error })?;
        out.torn = torn;
        let mut max_seq = snapshot_seq;
        for e in entries {
            max_seq = max_seq.max(e.seq);
            if e.seq <= snapshot_seq {
                continue;
            }
            if pools.get(&e.pool).is_none() {
                out.dropped += 1;
                continue;
            }
            let mut change = e.change;
            if e.seq <= consumed(&e.pool) {
                // A recorded decision consumed this entry's intent; a level change stays.
                match &mut change {
                    Change::Intent(_) => continue,
                    Change::Clear { then, .. } => *then = None,
                    Change::Raise(_) => {}
                }
            }
            if let Err(err) = change.check_bounds() {
                if let Change::Raise(s) | Change::Intent(s) | Change::Clear { then: Some(s), .. } =
                    change
                {
                    out.quarantined.push(Quarantined {
                        pool: e.pool,
                        signal: s,
                        reason: err.to_string(),
                    });
                }
                continue;
            }
            out.replayed += 1;
            out.books.entry(e.pool).or_default().apply(e.seq, change);
        }
        let record_max = records.values().map(|r| r.signals_seq).max().unwrap_or(0);
        out.next_seq = max_seq.max(record_max) + 1;
        Ok(out)
    }

    /// Write `bytes` to `path` atomically (temporary file in the same directory, `fsync`,
    /// rename, `fsync` of the directory), refusing paths that resolve outside the directory.
    fn write_atomic(&self, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        crate::state::guard::check_inside(&self.dir, path).map_err(std::io::Error::other)?;
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir)?;
        tmp.write_all(bytes)?;
        tmp.as_file().sync_data()?;
        tmp.persist(path).map_err(|e| e.error)?;
        std::fs::File::open(&self.dir)?.sync_all()
    }
}

/// A snapshot: `{"seq": n, "books": {...}}`, or the older bare map of books (sequence 0).
fn parse_snapshot(text: &str) -> Result<(u64, BTreeMap<String, Book>), String> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Snapshot {
        seq: u64,
        books: BTreeMap<String, Book>,
    }
    match serde_json::from_str::<Snapshot>(text) {
        Ok(s) => Ok((s.seq, s.books)),
        Err(first) => serde_json::from_str::<BTreeMap<String, Book>>(text)
            .map(|b| (0, b))
            .map_err(|_| first.to_string()),
    }
}

/// Every record in a state directory (for `pilum scale status` without a server); files that
/// do not parse are skipped.
pub(crate) fn read_records(dir: &Path) -> Vec<Record> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "json")
                && p.file_name().is_some_and(|n| n != "signals.json")
                && let Ok(text) = std::fs::read_to_string(&p)
                && let Ok(r) = serde_json::from_str::<Record>(&text)
            {
                out.push(r);
            }
        }
    }
    out.sort_by(|a, b| a.pool.cmp(&b.pool));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_open_is_refused_with_the_holders_pid() {
        let dir = tempfile::tempdir().expect("tmp");
        let first = StateDir::open(dir.path()).expect("first");
        // flock locks belong to the open file description: a second open in the same process
        // conflicts like another process would.
        let e = StateDir::open(dir.path()).unwrap_err();
        let text = e.to_string();
        assert!(text.contains(&format!("(pid {})", std::process::id())), "{text}");
        assert!(text.contains("help: stop that server"), "{text}");
        drop(first);
        StateDir::open(dir.path()).expect("free again");
    }

    #[test]
    fn recovery_replays_the_journal_and_skips_consumed_intents() {
        use crate::autoscale::pool::Action;
        use crate::autoscale::signal::{Kind, SourceKind};
        let dir = tempfile::tempdir().expect("tmp");
        let state = StateDir::open(dir.path()).expect("open");
        let pools = crate::autoscale::pool::parse(
            &dir.path().join("p.yaml"),
            "pools:\n  w:\n    project: i\n    stack: s\n    key: i:k\n    targets: [urn:pulumi:x]\n    min: 0\n    max: 9\n",
        )
        .expect("pools");
        let now = chrono::Utc::now();
        let intent = |key: &str| {
            Change::Intent(Signal::new(
                Kind::Intent,
                SourceKind::Delta,
                "delta",
                key.into(),
                Action::Up,
                1,
                None,
                now,
            ))
        };
        let level = Change::Raise(Signal::new(
            Kind::Level,
            SourceKind::Prometheus,
            "a",
            "prometheus:f".into(),
            Action::Up,
            1,
            None,
            now,
        ));
        let mut lines = String::new();
        for (seq, mut change) in
            [(1, intent("k1")), (2, intent("k2")), (3, intent("k3")), (4, level)]
        {
            change.set_seq(seq);
            let e = Entry { seq, pool: "w".into(), change };
            lines.push_str(&serde_json::to_string(&e).expect("json"));
            lines.push('\n');
        }
        lines.push_str("{\"seq\": 5, \"pool\": \"w\", \"chan");
        std::fs::write(state.journal_path(), lines).expect("journal");
        let mut record = Record::new("w", 3);
        record.signals_seq = 2;
        let records = BTreeMap::from([("w".to_string(), record)]);
        let r = state.recover(&pools, &records).expect("recover");
        let book = &r.books["w"];
        assert_eq!(book.intents.iter().map(|s| s.seq).collect::<Vec<_>>(), vec![3]);
        assert_eq!(book.levels.len(), 1);
        assert_eq!((r.next_seq, r.torn, r.replayed), (5, 1, 2));
    }

    #[test]
    fn old_snapshots_still_parse() {
        assert_eq!(parse_snapshot("{}").expect("parses").0, 0);
        assert_eq!(parse_snapshot(r#"{"seq": 4, "books": {}}"#).expect("parses").0, 4);
        assert!(parse_snapshot("{ not json").is_err());
    }
}
