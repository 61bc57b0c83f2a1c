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
    Flush(mpsc::Sender<()>),
}

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
                Msg::Flush(done) => {
                    let _ = w.flush();
                    let _ = done.send(());
                }
            };
            while let Ok(msg) = rx.recv() {
                handle(msg, &mut w);
                while let Ok(more) = rx.try_recv() {
                    handle(more, &mut w);
                }
                let _ = w.flush();
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

    /// Wait until everything sent so far is on disk.
    pub fn flush(&self) {
        let (done, wait) = mpsc::channel();
        if self.tx.send(Msg::Flush(done)).is_ok() {
            let _ = wait.recv_timeout(std::time::Duration::from_secs(5));
        }
    }
}
