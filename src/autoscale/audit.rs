//! The append-only JSONL audit log: one line per accepted signal, per decision and per apply.
//!
//! The log is also the server's bounded ingest queue: a request is accepted only once its
//! record is queued here ([`Audit::try_signal`]), so every accepted request is audited, and a
//! full queue answers 503 instead of waiting. One thread owns the file; request handlers never
//! block on disk. The buffer is flushed when the queue goes quiet and at least every 50 ms under
//! load, so a burst is written in large blocks rather than one syscall per record.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use chrono::{DateTime, Utc};

use crate::autoscale::signal::{Change, SourceKind};

/// A handle for appending audit records.
#[derive(Debug, Clone)]
pub struct Audit {
    tx: mpsc::SyncSender<Msg>,
    /// Records queued and not yet written.
    depth: Arc<AtomicUsize>,
    /// How many signal records may wait before requests are refused.
    capacity: usize,
}

/// The queue is full: the request is refused (503) rather than accepted unaudited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

enum Msg {
    Line(serde_json::Value),
    Signal(Box<SignalRecord>),
    Flush(mpsc::Sender<()>),
}

/// The audit record of one accepted signal. Typed (not a `serde_json::Value`) because it is
/// written once per accepted request: serialising a struct straight into the file buffer is
/// much cheaper than building a map first.
#[derive(Debug, serde::Serialize)]
pub struct SignalRecord {
    #[serde(serialize_with = "millis")]
    pub time: DateTime<Utc>,
    pub event: &'static str,
    pub pool: String,
    pub source: &'static str,
    pub key: String,
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

impl SignalRecord {
    /// The record of an accepted change to `pool`'s signals (`key` is the idempotency key, or
    /// the level key for changes nobody requested, such as schedule windows).
    pub fn of_change(pool: &str, source: SourceKind, key: String, change: &Change) -> Self {
        let mut record = SignalRecord {
            time: chrono::Utc::now(),
            event: "signal",
            pool: pool.to_string(),
            source: source.as_str(),
            key,
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

/// How often the writer looks for records while they keep coming.
const POLL: std::time::Duration = std::time::Duration::from_millis(1);

/// How long without records before the writer blocks instead of polling.
const IDLE: std::time::Duration = std::time::Duration::from_millis(100);

/// How long written records may sit in the buffer before they are flushed to the file.
const FLUSH_EVERY: std::time::Duration = std::time::Duration::from_millis(50);

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Msg")
    }
}

impl Audit {
    /// Open (append) `path` and start the writer thread; `capacity` bounds the queue.
    pub fn open(path: &Path, capacity: usize) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        let capacity = capacity.max(1);
        // Room above `capacity` for decision/apply records, which are never refused.
        let (tx, rx) = mpsc::sync_channel::<Msg>(capacity + 1024);
        let depth = Arc::new(AtomicUsize::new(0));
        let left = depth.clone();
        std::thread::Builder::new().name("pilum-audit".into()).spawn(move || {
            let mut w = std::io::BufWriter::with_capacity(256 * 1024, file);
            let handle = |msg: Msg, w: &mut std::io::BufWriter<std::fs::File>| {
                match msg {
                    Msg::Line(v) => {
                        let _ = serde_json::to_writer(&mut *w, &v);
                        let _ = w.write_all(b"\n");
                    }
                    Msg::Signal(r) => {
                        let _ = serde_json::to_writer(&mut *w, &r);
                        let _ = w.write_all(b"\n");
                    }
                    Msg::Flush(done) => {
                        let _ = w.flush();
                        let _ = done.send(());
                        return;
                    }
                }
                left.fetch_sub(1, Ordering::Relaxed);
            };
            // While records keep coming, poll every millisecond instead of blocking: a blocked
            // reader must be woken by a syscall on every send, which under a burst would cost
            // more than writing the record. After IDLE without records, block again.
            let mut last_flush = std::time::Instant::now();
            let mut last_record = std::time::Instant::now();
            let mut dirty = false;
            loop {
                let mut got = false;
                while let Ok(msg) = rx.try_recv() {
                    handle(msg, &mut w);
                    got = true;
                }
                if got {
                    dirty = true;
                    last_record = std::time::Instant::now();
                }
                if dirty && (!got || last_flush.elapsed() >= FLUSH_EVERY) {
                    let _ = w.flush();
                    last_flush = std::time::Instant::now();
                    dirty = false;
                }
                if last_record.elapsed() < IDLE {
                    std::thread::sleep(POLL);
                    continue;
                }
                match rx.recv_timeout(FLUSH_EVERY) {
                    Ok(msg) => {
                        handle(msg, &mut w);
                        dirty = true;
                        last_record = std::time::Instant::now();
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                }
            }
            let _ = w.flush();
        })?;
        Ok(Self { tx, depth, capacity })
    }

    /// Records waiting to be written.
    pub fn depth(&self) -> usize {
        self.depth.load(Ordering::Relaxed)
    }

    /// Append one record; `event` names its kind (`decision`, `apply`, …). Never refused.
    pub fn write(&self, event: &str, mut record: serde_json::Value) {
        if let Some(obj) = record.as_object_mut() {
            obj.insert(
                "time".into(),
                Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true).into(),
            );
            obj.insert("event".into(), event.into());
        }
        self.depth.fetch_add(1, Ordering::Relaxed);
        if self.tx.send(Msg::Line(record)).is_err() {
            self.depth.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Queue the record of an accepted signal, or refuse when the queue is full.
    pub fn try_signal(&self, record: SignalRecord) -> Result<(), Full> {
        if self.depth.load(Ordering::Relaxed) >= self.capacity {
            return Err(Full);
        }
        self.depth.fetch_add(1, Ordering::Relaxed);
        match self.tx.try_send(Msg::Signal(Box::new(record))) {
            Ok(()) => Ok(()),
            Err(_) => {
                self.depth.fetch_sub(1, Ordering::Relaxed);
                Err(Full)
            }
        }
    }

    /// Wait until everything sent so far is on disk.
    pub fn flush(&self) {
        let (done, wait) = mpsc::channel();
        if self.tx.send(Msg::Flush(done)).is_ok() {
            let _ = wait.recv_timeout(std::time::Duration::from_secs(5));
        }
    }
}
