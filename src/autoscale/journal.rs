//! The durable signal journal (`signals.journal`): leader/follower group commit, led by the
//! request handlers themselves.
//!
//! A request that accepts a signal appends its journal line and audit record to the pending
//! batch (under a short lock) and then either *leads* — when no batch is being written — or
//! waits. The leader takes the whole pending batch, writes it and calls `fdatasync` once for
//! everyone in it, writes the batch's audit records, applies the changes to the pools' books in
//! sequence order, answers every waiter of the batch, and hands the lead to the first request
//! that arrived meanwhile (or gives it up). So a 2xx still means "on disk", one sync is shared
//! by a whole batch, and no request crosses to another thread and back: the leader does the
//! I/O on its own worker thread (at most one worker syncs at a time; the others keep serving).
//!
//! The queue is bounded: with `capacity` requests waiting, the next one is refused at once.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::oneshot;

use crate::autoscale::audit::{Health, Refusal, SignalRecord, open_append};
use crate::autoscale::scaler::lock;
use crate::autoscale::signal::Change;

/// What the leader does with each durable change, in sequence order (apply it to the books).
pub(crate) type Apply = Box<dyn Fn(&str, u64, Change) + Send + Sync>;

/// What a waiting request hears.
enum Wake {
    /// Its batch was written: durable, or not.
    Done(Result<(), String>),
    /// It leads the next batch.
    Lead,
}

struct Waiter {
    seq: u64,
    pool: String,
    change: Change,
    /// `None` for the leader's own entry.
    wake: Option<oneshot::Sender<Wake>>,
}

/// The batch being gathered.
struct Pending {
    next_seq: u64,
    leading: bool,
    journal: Vec<u8>,
    audit: Vec<u8>,
    waiters: Vec<Waiter>,
}

/// The files only the leader writes.
struct Files {
    journal: std::fs::File,
}

/// The journal. Accepting is [`Journal::accept`].
pub(crate) struct Journal {
    pending: Mutex<Pending>,
    files: Mutex<Files>,
    /// The audit log, shared with the audit writer thread.
    audit: Arc<Mutex<std::fs::File>>,
    path: PathBuf,
    capacity: usize,
    depth: AtomicUsize,
    health: Arc<Health>,
    apply: Apply,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal").field("path", &self.path).finish()
    }
}

/// One journal line, borrowing its parts.
#[derive(Serialize)]
struct EntryRef<'a> {
    seq: u64,
    pool: &'a str,
    change: &'a Change,
}

/// Drops a waiting request cleanly: a request that was told to lead but went away (its
/// request timed out) leads its batch anyway, so the batch is never stranded.
struct Waiting<'a> {
    journal: &'a Journal,
    rx: Option<oneshot::Receiver<Wake>>,
    seq: u64,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if let Some(mut rx) = self.rx.take()
            && let Ok(Wake::Lead) = rx.try_recv()
        {
            let _ = self.journal.lead(self.seq);
        }
    }
}

impl Journal {
    /// Open (append) `path`; `next_seq` is the first sequence number to hand out.
    pub(crate) fn open(
        path: &Path,
        audit: Arc<Mutex<std::fs::File>>,
        next_seq: u64,
        capacity: usize,
        health: Arc<Health>,
        apply: Apply,
    ) -> std::io::Result<Self> {
        let journal = open_append(path)?;
        Ok(Self {
            pending: Mutex::new(Pending {
                next_seq: next_seq.max(1),
                leading: false,
                journal: Vec::with_capacity(64 * 1024),
                audit: Vec::with_capacity(64 * 1024),
                waiters: Vec::new(),
            }),
            files: Mutex::new(Files { journal }),
            audit,
            path: path.to_path_buf(),
            capacity: capacity.max(1),
            depth: AtomicUsize::new(0),
            health,
            apply,
        })
    }

    /// Accepted signals waiting to become durable.
    pub(crate) fn depth(&self) -> usize {
        self.depth.load(Ordering::Relaxed)
    }

    /// Whether the queue is full.
    pub(crate) fn full(&self) -> bool {
        self.depth() >= self.capacity
    }

    /// Accept a change for `pool`: journal it durably, audit it, apply it, then return its
    /// sequence number. Refused at once when the queue is full.
    pub(crate) async fn accept(
        &self,
        pool: &str,
        mut change: Change,
        mut record: SignalRecord,
    ) -> Result<u64, Refusal> {
        let (tx, rx) = oneshot::channel();
        let (seq, lead) = {
            let mut p = lock(&self.pending);
            if p.waiters.len() >= self.capacity {
                return Err(Refusal::Full);
            }
            let seq = p.next_seq;
            p.next_seq += 1;
            change.set_seq(seq);
            record.seq = seq;
            let entry = EntryRef { seq, pool, change: &change };
            let _ = serde_json::to_writer(&mut p.journal, &entry);
            p.journal.push(b'\n');
            let _ = serde_json::to_writer(&mut p.audit, &record);
            p.audit.push(b'\n');
            let lead = !p.leading;
            p.leading = true;
            p.waiters.push(Waiter {
                seq,
                pool: pool.to_string(),
                change,
                wake: (!lead).then_some(tx),
            });
            self.depth.store(p.waiters.len(), Ordering::Relaxed);
            (seq, lead)
        };
        let outcome = if lead {
            self.lead(seq)
        } else {
            let mut waiting = Waiting { journal: self, rx: Some(rx), seq };
            let rx = waiting.rx.as_mut().expect("set just above");
            let heard = rx.await;
            waiting.rx = None;
            match heard {
                Ok(Wake::Done(r)) => r,
                Ok(Wake::Lead) => self.lead(seq),
                Err(_) => Err("the journal was dropped".into()),
            }
        };
        outcome.map(|()| seq).map_err(Refusal::NotDurable)
    }

    /// Write the pending batch (which holds `mine`), answer it, hand the lead on. Blocking:
    /// runs on the leading request's worker thread.
    fn lead(&self, mine: u64) -> Result<(), String> {
        let mut mine_result = Err("the batch was not written".to_string());
        loop {
            let (journal, audit, waiters) = {
                let mut p = lock(&self.pending);
                let j = std::mem::replace(&mut p.journal, Vec::with_capacity(64 * 1024));
                let a = std::mem::replace(&mut p.audit, Vec::with_capacity(64 * 1024));
                let w = std::mem::take(&mut p.waiters);
                self.depth.store(0, Ordering::Relaxed);
                (j, a, w)
            };
            let durable = {
                let mut files = lock(&self.files);
                files.journal.write_all(&journal).and_then(|()| files.journal.sync_data())
            };
            let durable = durable.map_err(|e| {
                self.health.failed(&format!("`{}`", self.path.display()), &e);
                e.to_string()
            });
            if let Err(e) = lock(&self.audit).write_all(&audit) {
                self.health.failed("audit log", &e);
            }
            for w in waiters {
                if durable.is_ok() {
                    (self.apply)(&w.pool, w.seq, w.change);
                }
                match w.wake {
                    Some(tx) => {
                        let _ = tx.send(Wake::Done(durable.clone()));
                    }
                    None if w.seq == mine => mine_result = durable.clone(),
                    None => {}
                }
            }
            // Hand the lead to the first request that arrived meanwhile and is still there.
            let mut p = lock(&self.pending);
            loop {
                let Some(tx) = p.waiters.iter_mut().find_map(|w| w.wake.take()) else { break };
                match tx.send(Wake::Lead) {
                    Ok(()) => return mine_result,
                    // Gone (timed out): its entry is still written by whoever leads.
                    Err(_) => continue,
                }
            }
            if p.waiters.is_empty() {
                p.leading = false;
                return mine_result;
            }
            // Everyone waiting went away: write their entries anyway (they were promised
            // nothing, but the batch must not be stranded).
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::autoscale::pool::Action;
    use crate::autoscale::signal::{Kind, Signal, SourceKind};
    use crate::sync::LockExt;

    /// A current-thread runtime (the one-shot commands') accepts as the server's does.
    #[tokio::test(flavor = "current_thread")]
    async fn a_current_thread_runtime_accepts_too() {
        let dir = tempfile::tempdir().expect("tmp");
        let audit =
            Arc::new(Mutex::new(open_append(&dir.path().join("audit.jsonl")).expect("audit")));
        let journal = Journal::open(
            &dir.path().join("signals.journal"),
            audit,
            7,
            16,
            Arc::new(Health::default()),
            Box::new(|_, _, _| {}),
        )
        .expect("open");
        let s = Signal::new(
            Kind::Intent,
            SourceKind::Delta,
            "delta",
            "k".to_string(),
            Action::Up,
            1,
            None,
            chrono::Utc::now(),
        );
        let change = Change::Intent(s);
        let record = SignalRecord::of_change("p", SourceKind::Delta, "k".to_string(), &change);
        assert_eq!(journal.accept("p", change, record).await.expect("accepted"), 7);
        let text = std::fs::read_to_string(&journal.path).expect("journal");
        assert!(text.contains("\"seq\":7,"), "{text}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_accepts_are_durable_in_order_and_share_syncs() {
        let dir = tempfile::tempdir().expect("tmp");
        let applied = Arc::new(Mutex::new(Vec::new()));
        let seen = applied.clone();
        let audit =
            Arc::new(Mutex::new(open_append(&dir.path().join("audit.jsonl")).expect("audit")));
        let journal = Arc::new(
            Journal::open(
                &dir.path().join("signals.journal"),
                audit,
                1,
                10_000,
                Arc::new(Health::default()),
                Box::new(move |_, seq, _| seen.locked().push(seq)),
            )
            .expect("open"),
        );
        let mut tasks = Vec::new();
        for i in 0..500 {
            let j = journal.clone();
            tasks.push(tokio::spawn(async move {
                let s = Signal::new(
                    Kind::Intent,
                    SourceKind::Delta,
                    "delta",
                    format!("k{i}"),
                    Action::Up,
                    1,
                    None,
                    chrono::Utc::now(),
                );
                let change = Change::Intent(s);
                let record =
                    SignalRecord::of_change("p", SourceKind::Delta, format!("k{i}"), &change);
                let seq = j.accept("p", change, record).await.expect("accepted");
                // Durable before answered: the line is in the file.
                let text = std::fs::read_to_string(j.path.clone()).expect("journal");
                assert!(text.contains(&format!("\"seq\":{seq},")), "{seq} not on disk");
                seq
            }));
        }
        let mut seqs = Vec::new();
        for t in tasks {
            seqs.push(t.await.expect("task"));
        }
        seqs.sort_unstable();
        assert_eq!(seqs, (1..=500).collect::<Vec<_>>());
        let applied = applied.locked().clone();
        assert_eq!(applied, (1..=500).collect::<Vec<_>>(), "applied once each, in order");
        assert_eq!(journal.depth(), 0);
        assert!(!lock(&journal.pending).leading, "the lead was given up");
    }
}
