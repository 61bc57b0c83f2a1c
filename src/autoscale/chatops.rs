//! ChatOps: the scaler's events to the Rhai notifiers (`webhook`, `slack`, `discord`, `teams`,
//! or the project's `notifiers/`) of the pools file's `notify:` list, through the notifier
//! runner (`crate::notify`).
//!
//! Nothing here ever waits: [`Chat::send`] only tries to enqueue (a full queue drops the event
//! and counts it), a task coalesces the events of each pool over `COALESCE` (the latest of each
//! kind, with how many it stands for) and sends at most one batch per pool per `INTERVAL`; the
//! runner's worker threads do the delivery, retries and timeouts. A slow or hanging receiver
//! never delays a decision or an apply.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::autoscale::log::Log;
use crate::notify::{Dispatcher, Kind, Notification};

/// Events waiting for the coalescing task; more are dropped.
const QUEUE: usize = 1024;

/// One event of the scaler.
#[derive(Debug, Clone)]
pub(crate) struct Event {
    pub kind: Kind,
    pub pool: String,
    pub title: String,
    pub details: serde_json::Value,
}

/// The handle the scaler sends events through; a no-op without `notify:`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Chat {
    tx: Option<mpsc::Sender<Event>>,
    log: Option<Log>,
}

impl Chat {
    /// Start the coalescing task over `dispatcher` (call inside the runtime). `coalesce`: how
    /// long a pool's events are gathered; `interval`: at most one batch per pool per this long.
    pub(crate) fn start(
        dispatcher: Dispatcher,
        project: String,
        log: Log,
        coalesce: Duration,
        interval: Duration,
    ) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(rx, dispatcher, project, (coalesce, interval)));
        Self { tx: Some(tx), log: Some(log) }
    }

    /// Queue an event; never waits (a full queue drops it).
    pub(crate) fn send(&self, kind: Kind, pool: &str, title: String, details: serde_json::Value) {
        if let Some(tx) = &self.tx
            && tx.try_send(Event { kind, pool: pool.to_string(), title, details }).is_err()
            && let Some(log) = self.log
        {
            log.warn("notification dropped: the queue is full", &[("pool", pool)]);
        }
    }
}

/// The pending events of one pool.
#[derive(Default)]
struct Pending {
    /// The latest event of each kind and how many it stands for.
    events: BTreeMap<&'static str, (Event, u32)>,
    /// When the batch may go: `coalesce` after its first event, `interval` after the last one.
    due: Option<Instant>,
    last_sent: Option<Instant>,
}

async fn run(
    mut rx: mpsc::Receiver<Event>,
    dispatcher: Dispatcher,
    project: String,
    (coalesce, interval): (Duration, Duration),
) {
    let mut pools: BTreeMap<String, Pending> = BTreeMap::new();
    loop {
        let next = pools.values().filter_map(|p| p.due).min();
        let event = tokio::select! {
            e = rx.recv() => match e { Some(e) => Some(e), None => return },
            _ = async {
                match next {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            } => None,
        };
        let now = Instant::now();
        if let Some(e) = event {
            let p = pools.entry(e.pool.clone()).or_default();
            let slot = p.events.entry(e.kind.name()).or_insert_with(|| (e.clone(), 0));
            *slot = (e, slot.1 + 1);
            if p.due.is_none() {
                let earliest = p.last_sent.map_or(now, |t| t + interval);
                p.due = Some((now + coalesce).max(earliest));
            }
            continue;
        }
        for (pool, p) in &mut pools {
            if p.due.is_none_or(|d| d > now) {
                continue;
            }
            p.due = None;
            p.last_sent = Some(now);
            for (_, (e, count)) in std::mem::take(&mut p.events) {
                let run = crate::notify::event::Run {
                    id: format!("scale-{pool}"),
                    command: "scale".into(),
                    project: project.clone(),
                    services: vec![pool.clone()],
                    ..Default::default()
                };
                let mut details = e.details;
                details["pool"] = pool.clone().into();
                details["coalesced"] = count.into();
                let title =
                    if count > 1 { format!("{} ({count} events)", e.title) } else { e.title };
                let n = Notification::scale(e.kind, title, &run, details);
                dispatcher.send(&n);
            }
        }
    }
}

/// Where the notifier runner's own warnings go: the server log.
pub(crate) struct Report(pub Log);

impl crate::notify::Report for Report {
    fn warn(&self, message: &str) {
        self.0.warn("notification", &[("message", message)]);
    }
    fn dry_run(&self, message: &str) {
        self.0.info("notification (dry run)", &[("message", message)]);
    }
}

/// The targets of a pools file's `notify:` list, resolved against the environment: an entry
/// whose variable is missing is skipped with a warning; each gets the scaler's events (its
/// `events:` among them, or all of them).
pub(crate) fn targets(
    entries: &[crate::notify::config::Entry],
    log: Log,
) -> Vec<crate::notify::Target> {
    let mut out = Vec::new();
    for e in entries {
        match e.resolve(&|k| std::env::var(k).ok()) {
            Ok(mut t) => {
                let wanted: Vec<Kind> =
                    if e.events.is_none() || e.events.iter().flatten().any(|x| x == "*") {
                        Kind::SCALE.to_vec()
                    } else {
                        t.events.iter().copied().filter(|k| Kind::SCALE.contains(k)).collect()
                    };
                t.events = wanted;
                out.push(t);
            }
            Err(why) => log.warn("notifier skipped", &[("reason", &why)]),
        }
    }
    out
}
