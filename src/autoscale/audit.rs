//! The append-only JSONL audit log, and the facade over the durable signal journal.
//!
//! Accepting a signal is *durable*: a request is answered 2xx only after its change is in the
//! journal (`signals.journal`) and `fdatasync` returned. The journal (`journal.rs`) is a
//! leader/follower group commit run by the requests themselves; its audit records go to the
//! audit log with each batch. Every other record (decisions, applies, quarantines, schedule
//! windows) goes through the audit writer thread here, which never blocks the caller.
//!
//! Both files survive a torn last line (a crash mid-write): opening one that does not end with
//! a newline terminates that line first, so the next record starts on its own line, and readers
//! skip unparsable lines and report how many they skipped. Audit write errors never stop the
//! server; they are counted and shown in `/readyz` and `pilum_scale_audit_write_errors_total`.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::autoscale::journal::Journal;
use crate::autoscale::signal::{Change, SourceKind};
use crate::sync::LockExt;

/// A handle for appending audit records and accepting signals.
#[derive(Debug, Clone)]
pub(crate) struct Audit {
    tx: mpsc::SyncSender<Msg>,
    journal: Arc<Journal>,
    health: Arc<Health>,
    /// With `--ha`: adds the fencing token to each record and copies it to the shared stream.
    mirror: Arc<std::sync::OnceLock<Mirror>>,
}

/// See [`Audit::mirror`].
pub(crate) struct Mirror(pub Box<dyn Fn(&mut serde_json::Value) + Send + Sync>);

impl std::fmt::Debug for Mirror {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Mirror")
    }
}

/// Write errors of the audit log and the journal, for `/readyz` and the metrics.
#[derive(Debug, Default)]
pub(crate) struct Health {
    pub errors: AtomicU64,
    pub last_error: Mutex<Option<String>>,
}

impl Health {
    pub(crate) fn failed(&self, what: &str, e: &std::io::Error) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        *self.last_error.locked() = Some(format!("{what}: {e}"));
    }
}

/// Why a signal was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The queue is full: 503, retry later.
    Full,
    /// The journal could not be written or synced: 503, nothing was accepted.
    NotDurable(String),
}

enum Msg {
    Line(serde_json::Value),
    Record(Box<SignalRecord>),
    Flush(mpsc::Sender<()>),
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Msg")
    }
}

/// One journal line: an accepted change with its sequence number.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Entry {
    pub seq: u64,
    pub pool: String,
    pub change: Change,
}

/// The audit record of one accepted signal. Typed (not a `serde_json::Value`) because it is
/// written once per accepted request: serialising a struct straight into the file buffer is
/// much cheaper than building a map first.
#[derive(Debug, serde::Serialize)]
pub(crate) struct SignalRecord {
    #[serde(serialize_with = "millis")]
    pub time: DateTime<Utc>,
    pub event: &'static str,
    pub pool: String,
    pub source: &'static str,
    pub key: String,
    /// The journal sequence number (0 for changes nobody requested, such as schedules).
    #[serde(skip_serializing_if = "is_zero")]
    pub seq: u64,
    /// `raise`, `clear` or `intent`.
    pub change: &'static str,
    /// Alarm or alert name (`delta`/`count`/`direct` for intents).
    pub name: String,
    /// The level key a raise or clear concerns.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metric: Option<f64>,
    /// For a clear with `on_ok`: the intent it queued (`action step value`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub then: Option<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl SignalRecord {
    /// The record of an accepted change to `pool`'s signals (`key` is the idempotency key, or
    /// the level key for changes nobody requested, such as schedule windows).
    pub(crate) fn of_change(pool: &str, source: SourceKind, key: String, change: &Change) -> Self {
        let mut record = SignalRecord {
            time: chrono::Utc::now(),
            event: "signal",
            pool: pool.to_string(),
            source: source.as_str(),
            key,
            seq: 0,
            change: "intent",
            name: String::new(),
            level: None,
            action: None,
            step: None,
            value: None,
            metric: None,
            then: None,
        };
        match change {
            Change::Raise(s) | Change::Intent(s) => {
                if matches!(change, Change::Raise(_)) {
                    record.change = "raise";
                    record.level = Some(s.key.clone());
                }
                record.name = s.name.clone();
                record.action = Some(s.action.as_str());
                record.step = Some(s.step);
                record.value = s.value;
                record.metric = s.metric;
            }
            Change::Clear { key, then } => {
                record.change = "clear";
                record.level = Some(key.clone());
                record.then = then
                    .as_ref()
                    .map(|t| format!("{} {} {:?}", t.action.as_str(), t.step, t.value));
            }
        }
        record
    }
}

/// RFC 3339 with milliseconds. Records of one millisecond share one formatted string: under a
/// burst, formatting would otherwise cost more than the rest of the record.
fn millis<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    thread_local! {
        static LAST: std::cell::RefCell<(i64, String)> = const { std::cell::RefCell::new((i64::MIN, String::new())) };
    }
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        let ms = t.timestamp_millis();
        if last.0 != ms {
            *last = (ms, t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
        }
        s.serialize_str(&last.1)
    })
}

/// Open `path` for appending, first terminating a torn last line (a crash mid-write) so the
/// next record starts on a line of its own.
pub(crate) fn open_append(path: &Path) -> std::io::Result<std::fs::File> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::OpenOptions::new().create(true).read(true).append(true).open(path)?;
    let len = file.metadata()?.len();
    if len > 0 {
        file.seek(SeekFrom::Start(len - 1))?;
        let mut last = [0u8; 1];
        file.read_exact(&mut last)?;
        if last[0] != b'\n' {
            file.write_all(b"\n")?;
            file.sync_data()?;
        }
    }
    Ok(file)
}

/// The parsed lines of a JSONL file and how many lines did not parse (torn or damaged).
pub(crate) fn read_lines<T: serde::de::DeserializeOwned>(
    path: &Path,
) -> std::io::Result<(Vec<T>, usize)> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    let mut torn = 0;
    for line in text.split(|&b| b == b'\n') {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice(line) {
            Ok(v) => out.push(v),
            Err(_) => torn += 1,
        }
    }
    Ok((out, torn))
}

pub(crate) use crate::autoscale::journal::Apply;

/// The most records one batch of the writer takes before it is written.
const BATCH: usize = 4096;

/// The audit writer thread: records other than accepted signals.
struct Writer {
    audit: Arc<Mutex<std::fs::File>>,
    buf: Vec<u8>,
    health: Arc<Health>,
}

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<Msg>) {
        let mut batch: Vec<Msg> = Vec::with_capacity(64);
        while let Ok(first) = rx.recv() {
            batch.push(first);
            while batch.len() < BATCH {
                match rx.try_recv() {
                    Ok(m) => batch.push(m),
                    Err(_) => break,
                }
            }
            self.write_batch(&mut batch);
        }
    }

    /// One serialized line for the next write; one that does not serialize is a write error
    /// (counted), never half a line.
    fn push_line(&mut self, line: serde_json::Result<Vec<u8>>) {
        match line {
            Ok(line) => {
                self.buf.extend_from_slice(&line);
                self.buf.push(b'\n');
            }
            Err(e) => self.health.failed("audit log", &std::io::Error::other(e)),
        }
    }

    fn write_batch(&mut self, batch: &mut Vec<Msg>) {
        let mut flushes = Vec::new();
        for msg in batch.drain(..) {
            match msg {
                Msg::Line(v) => self.push_line(serde_json::to_vec(&v)),
                Msg::Record(r) => self.push_line(serde_json::to_vec(&r)),
                Msg::Flush(done) => flushes.push(done),
            }
        }
        let mut file = self.audit.locked();
        if !self.buf.is_empty() {
            if let Err(e) = file.write_all(&self.buf) {
                self.health.failed("audit log", &e);
            }
            self.buf.clear();
        }
        if !flushes.is_empty() {
            if let Err(e) = file.sync_data() {
                self.health.failed("audit log", &e);
            }
            drop(file);
            for done in flushes {
                let _ = done.send(());
            }
        }
    }
}

impl Audit {
    /// Open (append) the audit log and the journal and start the audit writer thread.
    /// `next_seq` is the first sequence number to hand out; `capacity` bounds the queue of
    /// accepted signals; `apply` receives every durable change in order.
    pub(crate) fn open(
        audit_path: &Path,
        journal_path: &Path,
        next_seq: u64,
        capacity: usize,
        apply: Apply,
    ) -> std::io::Result<Self> {
        let audit = Arc::new(Mutex::new(open_append(audit_path)?));
        let health = Arc::new(Health::default());
        let journal =
            Journal::open(journal_path, audit.clone(), next_seq, capacity, health.clone(), apply)?;
        let (tx, rx) = mpsc::sync_channel::<Msg>(4096);
        let writer = Writer { audit, buf: Vec::with_capacity(16 * 1024), health: health.clone() };
        std::thread::Builder::new().name("pilum-audit".into()).spawn(move || writer.run(rx))?;
        Ok(Self {
            tx,
            journal: Arc::new(journal),
            health,
            mirror: Arc::new(std::sync::OnceLock::new()),
        })
    }

    /// Accepted signals waiting to become durable.
    pub(crate) fn depth(&self) -> usize {
        self.journal.depth()
    }

    /// Write errors so far.
    pub(crate) fn health(&self) -> &Health {
        &self.health
    }

    /// With `--ha`: every record written from now on goes through `mirror` first (set once).
    pub(crate) fn mirror(&self, mirror: Mirror) {
        let _ = self.mirror.set(mirror);
    }

    /// Append one record; `event` names its kind (`decision`, `apply`, …). Never refused.
    pub(crate) fn write(&self, event: &str, record: impl Serialize) {
        let mut record = serde_json::to_value(record).unwrap_or_else(
            |e| serde_json::json!({"error": format!("cannot serialise the record: {e}")}),
        );
        if let Some(obj) = record.as_object_mut() {
            obj.insert(
                "time".into(),
                Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true).into(),
            );
            obj.insert("event".into(), event.into());
        }
        if let Some(m) = self.mirror.get() {
            (m.0)(&mut record);
        }
        if self.tx.send(Msg::Line(record)).is_err() {
            self.health.failed("audit log", &std::io::Error::other("the writer thread stopped"));
        }
    }

    /// Audit a change nobody requested (a schedule window): not journalled, since it is
    /// recomputed from the clock on start. Refused when the queue is full.
    pub(crate) fn record(&self, record: SignalRecord) -> Result<(), Refusal> {
        if self.journal.full() {
            return Err(Refusal::Full);
        }
        self.tx.try_send(Msg::Record(Box::new(record))).map_err(|_| Refusal::Full)
    }

    /// Accept a change for `pool`: journal it durably, audit it, apply it, then return its
    /// sequence number. Refused at once when the queue is full.
    pub(crate) async fn accept(
        &self,
        pool: &str,
        change: Change,
        record: SignalRecord,
    ) -> Result<u64, Refusal> {
        self.journal.accept(pool, change, record).await
    }

    /// Wait until everything sent so far is written and synced (bounded: 5 s).
    pub(crate) fn flush(&self) {
        let (done, wait) = mpsc::channel();
        if self.tx.send(Msg::Flush(done)).is_ok() {
            let _ = wait.recv_timeout(std::time::Duration::from_secs(5));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_torn_tail_is_terminated_before_appending_and_skipped_by_readers() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("audit.jsonl");
        std::fs::write(&path, "{\"a\":1}\n{\"a\":").expect("write");
        let mut f = open_append(&path).expect("open");
        f.write_all(b"{\"a\":3}\n").expect("append");
        drop(f);
        let (lines, torn) = read_lines::<serde_json::Value>(&path).expect("read");
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert_eq!(lines[1]["a"], 3);
        assert_eq!(torn, 1);
        // A file that ends cleanly is left alone.
        let before = std::fs::read(&path).expect("read");
        drop(open_append(&path).expect("open"));
        assert_eq!(std::fs::read(&path).expect("read"), before);
    }

    #[tokio::test]
    async fn accepted_changes_are_journalled_before_they_are_answered() {
        use crate::autoscale::pool::Action;
        use crate::autoscale::signal::{Kind, Signal};
        let dir = tempfile::tempdir().expect("tmp");
        let applied = Arc::new(Mutex::new(Vec::new()));
        let seen = applied.clone();
        let audit = Audit::open(
            &dir.path().join("audit.jsonl"),
            &dir.path().join("signals.journal"),
            7,
            16,
            Box::new(move |pool, _seq, c| seen.locked().push((pool.to_string(), c))),
        )
        .expect("open");
        let s = Signal::new(
            Kind::Intent,
            SourceKind::Delta,
            "delta",
            "k1".into(),
            Action::Up,
            1,
            None,
            Utc::now(),
        );
        let change = Change::Intent(s);
        let record = SignalRecord::of_change("p", SourceKind::Delta, "k1".into(), &change);
        let seq = audit.accept("p", change, record).await.expect("accepted");
        assert_eq!(seq, 7);
        let (entries, torn) =
            read_lines::<Entry>(&dir.path().join("signals.journal")).expect("read");
        assert_eq!((entries.len(), torn), (1, 0));
        assert_eq!(entries[0].seq, 7);
        let applied = applied.locked();
        assert!(matches!(&applied[0].1, Change::Intent(s) if s.seq == 7));
    }

    #[test]
    fn write_errors_are_counted_with_the_last_one() {
        // `/dev/full` opens, then refuses every write with ENOSPC.
        let full = Path::new("/dev/full");
        assert!(full.exists(), "this test needs `/dev/full` (Linux)");
        let dir = tempfile::tempdir().expect("tmp");
        let audit =
            Audit::open(full, &dir.path().join("signals.journal"), 1, 16, Box::new(|_, _, _| {}))
                .expect("open");
        assert_eq!(audit.health().errors.load(Ordering::Relaxed), 0);
        audit.write("decision", serde_json::json!({"pool": "p"}));
        audit.flush();
        assert!(audit.health().errors.load(Ordering::Relaxed) >= 1);
        let last = audit.health().last_error.locked().clone().expect("a last error");
        assert!(last.starts_with("audit log: "), "{last}");
    }
}
