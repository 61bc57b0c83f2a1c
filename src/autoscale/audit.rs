//! The append-only JSONL audit log: one line per accepted signal, per decision and per apply.
//!
//! Writes go through a channel to one thread that owns the file, so request handlers never
//! block on disk; the file is flushed whenever the channel runs dry, so a quiet server always
//! has everything on disk.

use std::io::Write;
use std::path::Path;
use std::sync::mpsc;

/// A handle for appending audit records.
#[derive(Debug, Clone)]
pub struct Audit {
    tx: mpsc::Sender<Msg>,
}

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
    pub time: String,
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

/// How long written records may sit in the buffer before they are flushed to the file.
const FLUSH_EVERY: std::time::Duration = std::time::Duration::from_millis(50);

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Msg")
    }
}

impl Audit {
    /// Open (append) `path` and start the writer thread.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        let (tx, rx) = mpsc::channel::<Msg>();
        std::thread::Builder::new().name("pilum-audit".into()).spawn(move || {
            let mut w = std::io::BufWriter::with_capacity(64 * 1024, file);
            let handle = |msg: Msg, w: &mut std::io::BufWriter<std::fs::File>| match msg {
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
                }
            };
            // Flush when the channel goes quiet, but at most every FLUSH_EVERY under load, so a
            // burst is written in large blocks rather than one syscall per record.
            let mut last_flush = std::time::Instant::now();
            let mut dirty = false;
            loop {
                match rx.recv_timeout(FLUSH_EVERY) {
                    Ok(msg) => {
                        handle(msg, &mut w);
                        dirty = true;
                        if last_flush.elapsed() >= FLUSH_EVERY {
                            let _ = w.flush();
                            last_flush = std::time::Instant::now();
                            dirty = false;
                        }
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        if dirty {
                            let _ = w.flush();
                            last_flush = std::time::Instant::now();
                            dirty = false;
                        }
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                }
            }
            let _ = w.flush();
        })?;
        Ok(Self { tx })
    }

    /// Append one record; `event` names its kind (`signal`, `decision`, `apply`, …).
    pub fn write(&self, event: &str, mut record: serde_json::Value) {
        if let Some(obj) = record.as_object_mut() {
            obj.insert(
                "time".into(),
                chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true).into(),
            );
            obj.insert("event".into(), event.into());
        }
        let _ = self.tx.send(Msg::Line(record));
    }

    /// Append the record of an accepted signal.
    pub fn signal(&self, record: SignalRecord) {
        let _ = self.tx.send(Msg::Signal(Box::new(record)));
    }

    /// Wait until everything sent so far is on disk.
    pub fn flush(&self) {
        let (done, wait) = mpsc::channel();
        if self.tx.send(Msg::Flush(done)).is_ok() {
            let _ = wait.recv_timeout(std::time::Duration::from_secs(5));
        }
    }
}
