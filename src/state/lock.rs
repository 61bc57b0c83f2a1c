//! Deployment locks: one per service × environment × target, so two runs of the same service
//! (from any clone, with a shared backend) never overlap while other services go on in
//! parallel. A run takes all its keys at once before its first task ([`Locks::acquire`]); the
//! keys it cannot have either refuse the run (the default) or wait in a FIFO queue for up to
//! `--lock-wait`. All keys of one run wait under one ticket, so runs are served in arrival
//! order and never wait for each other in a cycle.
//!
//! With Redis a lock is a lease (`SET key holder NX PX ttl`) renewed by this manager's thread
//! every third of the TTL and released only by its holder (compare and delete); every grant
//! increments the key's fencing token. Before each step [`Locks::check`] confirms the lease is
//! still the run's: a holder that was paused past its TTL (or cut off from Redis) does not start
//! another step. File locks are `flock(2)`s the kernel releases when the process ends.
//!
//! The manager's thread also writes what a service's end records (deploy records, cache
//! entries) before releasing that service's lock, so the next holder sees them.

use std::fmt;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{Backend, Batch, StateError};
use crate::sync::LockExt;

/// The lease of a Redis lock when `--lock-ttl` is not given (client-go's leader election
/// uses 15 s too).
pub(crate) const DEFAULT_TTL: Duration = Duration::from_secs(15);

/// How often a waiter asks again.
const POLL: Duration = Duration::from_millis(200);

/// The least time between two writes of the lock thread: services that end close together
/// share one write and one disk flush (a 1,000-service run ends about one a millisecond, and
/// wrote and flushed once for each). A service's record is still written before its lock is
/// released, and closing writes what is pending at once.
const GROUP: Duration = Duration::from_millis(5);

/// What one lock covers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct LockKey {
    pub service: String,
    pub environment: Option<String>,
    /// The service's recipe.
    pub target: String,
}

impl fmt::Display for LockKey {
    /// `service/environment/target`, `-` for no environment (no name starts with `-`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.service, self.environment.as_deref().unwrap_or("-"), self.target)
    }
}

impl LockKey {
    /// Parse `service/environment/target` (as `pilum locks` lists them).
    pub(crate) fn parse(text: &str) -> Result<LockKey, String> {
        let parts: Vec<&str> = text.split('/').collect();
        let bad = || {
            format!(
                "`{text}` is not a lock key: write `SERVICE/ENVIRONMENT/TARGET` (`-` for no environment), as `pilum locks` lists them"
            )
        };
        let [service, env, target] = parts.as_slice() else { return Err(bad()) };
        for name in [service, target] {
            crate::names::check(name).map_err(|e| format!("{}: `{name}` {e}", bad()))?;
        }
        if *env != "-" {
            crate::names::check(env).map_err(|e| format!("{}: `{env}` {e}", bad()))?;
        }
        Ok(LockKey {
            service: service.to_string(),
            environment: (*env != "-").then(|| env.to_string()),
            target: target.to_string(),
        })
    }

    /// The key as a file name: `service+environment+target` (`+` is in no name).
    pub(crate) fn file_name(&self) -> String {
        format!("{}+{}+{}", self.service, self.environment.as_deref().unwrap_or("-"), self.target)
    }

    /// The inverse of [`LockKey::file_name`].
    pub(crate) fn from_file_name(name: &str) -> Option<LockKey> {
        let mut parts = name.splitn(3, '+');
        let (s, e, t) = (parts.next()?, parts.next()?, parts.next()?);
        LockKey::parse(&format!("{s}/{e}/{t}")).ok()
    }
}

/// Who holds (or waits for) a lock: what a refused or waiting run is told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Holder {
    /// Unique per run: what compare-and-delete compares.
    pub token: String,
    pub run: String,
    pub command: String,
    pub actor: Option<String>,
    pub host: String,
    pub pid: u32,
    pub ci_run: Option<String>,
    /// RFC 3339 UTC.
    pub since: String,
}

impl Holder {
    /// A holder for this process's run `run` (`command`: `deploy`, …).
    pub(crate) fn new(origin: &super::record::Origin, run: &str, command: &str) -> Holder {
        Holder {
            token: format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..)),
            run: run.to_string(),
            command: command.to_string(),
            actor: origin.actor.clone(),
            host: origin.host.clone(),
            pid: origin.pid,
            ci_run: origin.ci_run.clone(),
            since: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        }
    }

    /// A holder of this process with the token `token`.
    #[cfg(test)]
    pub(crate) fn for_tests(token: &str) -> Holder {
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

    /// The text stored for it (stable: compare-and-delete compares it).
    pub(crate) fn encode(&self) -> String {
        serde_json::to_string(self).expect("a holder always serialises")
    }

    pub(crate) fn decode(text: &str) -> Option<Holder> {
        serde_json::from_str(text).ok()
    }

    /// `alice@example.com on ci-7 (pid 4242) since 2025-06-01T10:00:00Z (2m ago), run <url>`.
    pub(crate) fn describe(&self) -> String {
        let mut s = format!(
            "{} on {} (pid {}, `pilum {}`) since {}",
            self.actor.as_deref().unwrap_or("someone"),
            self.host,
            self.pid,
            self.command,
            self.since
        );
        if let Ok(t) = chrono::DateTime::parse_from_rfc3339(&self.since) {
            let ago = chrono::Utc::now().signed_duration_since(t).num_seconds().max(0);
            s.push_str(&format!(
                " ({} ago)",
                crate::duration::format(Duration::from_secs(ago as u64))
            ));
        }
        if let Some(u) = &self.ci_run {
            s.push_str(&format!(", CI run {u}"));
        }
        s
    }
}

/// The answer for one key of [`Backend::lock_try`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Try {
    /// Granted, with the key's new fencing token.
    Acquired { fence: u64 },
    /// Held by `holder` (unknown when the lock is free but earlier waiters come first), with
    /// `ahead` runs queued before this one.
    Busy { holder: Option<Holder>, ahead: usize },
}

/// A lock as `pilum locks` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Held {
    #[serde(serialize_with = "as_text")]
    pub key: LockKey,
    pub holder: Option<Holder>,
    pub fence: Option<u64>,
    /// Runs queued for it.
    pub waiting: usize,
    /// When the lease runs out unless renewed (Redis).
    pub expires_ms: Option<u64>,
}

fn as_text<S: serde::Serializer>(k: &LockKey, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&k.to_string())
}

/// How [`Locks`] waits and renews.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Options {
    /// The lease (Redis).
    pub ttl: Duration,
    /// How long a busy key may be waited for; `None`: refuse the run at once.
    pub wait: Option<Duration>,
}

/// Where one key stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Status {
    Held {
        fence: u64,
    },
    Waiting,
    /// The wait ran out (`--lock-wait`), or the backend failed while waiting.
    GaveUp(String),
    /// The lease is no longer this run's.
    Lost(String),
    Released,
}

/// Keys the run could not have, refused at once (no `--lock-wait`).
#[derive(Debug, Clone)]
pub(crate) struct Busy {
    pub keys: Vec<(LockKey, Option<Holder>, usize)>,
}

impl fmt::Display for Busy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (key, holder, ahead)) in self.keys.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            match holder {
                Some(h) => write!(f, "the deploy lock `{key}` is held by {}", h.describe())?,
                None => write!(f, "the deploy lock `{key}` is promised to {ahead} waiting run(s)")?,
            }
        }
        let first = self.keys.first().map(|k| k.0.to_string()).unwrap_or_default();
        write!(
            f,
            "\nhelp: nothing was run; wait for it with `--lock-wait 10m` (waiters are served in arrival order), see every lock with `pilum locks`, or take it from a run that is gone with `pilum locks release {first} --force`"
        )
    }
}

/// What a waiting run prints when a wait starts or the holder changes: `waiting for the deploy
/// lock `api/prod/web`: held by … ; 2 run(s) ahead (waited 5s)`.
pub(crate) fn waiting_note(
    key: &LockKey,
    holder: Option<&Holder>,
    ahead: usize,
    waited: Duration,
) -> String {
    let who = holder.map_or_else(
        || format!("promised to {ahead} earlier run(s)"),
        |h| format!("held by {}", h.describe()),
    );
    let queue = if holder.is_some() && ahead > 0 {
        format!("; {ahead} run(s) ahead")
    } else {
        String::new()
    };
    let since = if waited.is_zero() {
        String::new()
    } else {
        format!(" (waited {})", crate::duration::format(waited))
    };
    format!("waiting for the deploy lock `{key}`: {who}{queue}{since}")
}

/// What a run prints when a waited-for lock is granted.
pub(crate) fn granted_note(key: &LockKey, waited: Duration) -> String {
    format!("took the deploy lock `{key}` after {}", crate::duration::format(waited))
}

/// What a waiting run is told.
pub(crate) trait Observer: Send + Sync {
    /// `key` is busy: held by `holder` with `ahead` runs queued first, waited for `waited` so
    /// far. Called when the wait starts and whenever the holder changes.
    fn waiting(&self, key: &LockKey, holder: Option<&Holder>, ahead: usize, waited: Duration);
    /// `key` is still busy after `waited`: called on every look at it while waiting (a
    /// notifier's `lock_wait` threshold is checked against it).
    fn still_waiting(&self, _key: &LockKey, _holder: Option<&Holder>, _waited: Duration) {}
    /// A waited-for key was granted.
    fn granted(&self, key: &LockKey, waited: Duration);
    /// Something could not be written or released (the run goes on; this is said).
    fn warn(&self, message: &str);
}

struct Key {
    key: LockKey,
    status: Status,
    /// The last time the lease was confirmed (granted or renewed).
    renewed: Instant,
    waiting_since: Option<Instant>,
    /// The holder last reported to the observer (its token).
    told: Option<String>,
}

struct Inner {
    keys: Vec<Key>,
    /// Work for the thread: batches to write, then keys to release.
    jobs: Vec<(Batch, Vec<usize>)>,
    stop: bool,
}

struct Shared {
    backend: Arc<dyn Backend>,
    me: Holder,
    opts: Options,
    observer: Arc<dyn Observer>,
    inner: Mutex<Inner>,
    wake: Condvar,
}

/// The locks of one run, renewed and waited for by a thread of their own until
/// [`Locks::close`].
pub(crate) struct Locks {
    shared: Arc<Shared>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Locks {
    /// Take `keys` (in one call to the backend). Keys that are busy are queued when `opts.wait`
    /// allows it; otherwise the run is refused with [`Busy`] and nothing is held.
    pub(crate) fn acquire(
        backend: Arc<dyn Backend>,
        me: Holder,
        keys: Vec<LockKey>,
        opts: Options,
        observer: Arc<dyn Observer>,
    ) -> Result<Locks, AcquireError> {
        let now = Instant::now();
        let answers = if keys.is_empty() {
            Vec::new()
        } else {
            backend.lock_try(&me, &keys, opts.wait.is_some(), opts.ttl)?
        };
        let mut state = Vec::with_capacity(keys.len());
        let mut busy = Vec::new();
        for (key, answer) in keys.into_iter().zip(answers) {
            let (status, told) = match &answer {
                Try::Acquired { fence } => (Status::Held { fence: *fence }, None),
                Try::Busy { holder, ahead } => {
                    busy.push((key.clone(), holder.clone(), *ahead));
                    (Status::Waiting, holder.as_ref().map(|h| h.token.clone()))
                }
            };
            let waiting_since = (status == Status::Waiting).then_some(now);
            state.push(Key { key, status, renewed: now, waiting_since, told });
        }
        if !busy.is_empty() && opts.wait.is_none() {
            let held: Vec<LockKey> = state
                .iter()
                .filter(|k| matches!(k.status, Status::Held { .. }))
                .map(|k| k.key.clone())
                .collect();
            if let Err(e) = backend.lock_release(&me, &held) {
                observer.warn(&e.to_string());
            }
            return Err(AcquireError::Busy(Busy { keys: busy }));
        }
        for (key, holder, ahead) in &busy {
            observer.waiting(key, holder.as_ref(), *ahead, Duration::ZERO);
        }
        let shared = Arc::new(Shared {
            backend,
            me,
            opts,
            observer,
            inner: Mutex::new(Inner { keys: state, jobs: Vec::new(), stop: false }),
            wake: Condvar::new(),
        });
        let worker = shared.clone();
        let thread = std::thread::Builder::new()
            .name("pilum-locks".into())
            .spawn(move || worker.run())
            .map_err(|e| {
                AcquireError::State(StateError::Failed {
                    location: String::new(),
                    what: "start the lock thread".into(),
                    why: e.to_string(),
                })
            })?;
        Ok(Locks { shared, thread: Mutex::new(Some(thread)) })
    }

    pub(crate) fn key(&self, i: usize) -> LockKey {
        self.shared.lock().keys[i].key.clone()
    }

    /// Where key `i` stands now.
    pub(crate) fn status(&self, i: usize) -> Status {
        self.shared.lock().keys[i].status.clone()
    }

    /// Before a step: confirm that key `i` is still this run's and return its fencing token.
    /// A lease not renewed for longer than its TTL (the process was paused, or cut off from the
    /// backend) is lost, whatever the backend would say now.
    pub(crate) fn check(&self, i: usize) -> Result<u64, String> {
        let s = &self.shared;
        let (key, fence, since) = {
            let inner = s.lock();
            let k = &inner.keys[i];
            match &k.status {
                Status::Held { fence } => (k.key.clone(), *fence, k.renewed),
                Status::Lost(why) | Status::GaveUp(why) => return Err(why.clone()),
                Status::Waiting => {
                    return Err(format!("the deploy lock `{}` is not held yet", k.key));
                }
                Status::Released => {
                    return Err(format!("the deploy lock `{}` was already released", k.key));
                }
            }
        };
        let expired = s.backend.leases_expire() && since.elapsed() >= s.opts.ttl;
        let lost = |why: String| {
            let mut inner = s.lock();
            inner.keys[i].status = Status::Lost(why.clone());
            why
        };
        if expired {
            return Err(lost(s.lost_message(&key, fence, since.elapsed())));
        }
        match s.backend.lock_renew(&s.me, std::slice::from_ref(&key), s.opts.ttl) {
            Ok(v) if v.first() == Some(&true) => {
                s.lock().keys[i].renewed = Instant::now();
                Ok(fence)
            }
            Ok(_) => Err(lost(format!(
                "lost the deploy lock `{key}` (fencing token {fence}): its lease expired or it was released by force, and another run may hold it now"
            ))),
            // The backend did not answer, but the lease has not run out yet.
            Err(_) if since.elapsed() < s.opts.ttl => Ok(fence),
            Err(e) => {
                Err(lost(format!("lost the deploy lock `{key}` (fencing token {fence}): {e}")))
            }
        }
    }

    /// Key `i`'s service has ended: write `batch`, then release the key (on the lock thread).
    pub(crate) fn finish(&self, i: usize, batch: Batch) {
        let mut inner = self.shared.lock();
        inner.jobs.push((batch, vec![i]));
        drop(inner);
        self.shared.wake.notify_all();
    }

    /// Write `batch` on the lock thread (in order with the services' batches), releasing
    /// nothing.
    pub(crate) fn write(&self, batch: Batch) {
        let mut inner = self.shared.lock();
        inner.jobs.push((batch, Vec::new()));
        drop(inner);
        self.shared.wake.notify_all();
    }

    /// Write what is pending, release every key still held, leave every queue, and stop the
    /// thread. Idempotent.
    pub(crate) fn close(&self) {
        {
            let mut inner = self.shared.lock();
            let all: Vec<usize> = (0..inner.keys.len()).collect();
            inner.jobs.push((Batch::default(), all));
            inner.stop = true;
        }
        self.shared.wake.notify_all();
        let handle = self.thread.locked().take();
        if let Some(h) = handle {
            let _ = h.join();
        }
    }
}

impl Drop for Locks {
    fn drop(&mut self) {
        self.close();
    }
}

/// Why [`Locks::acquire`] failed.
#[derive(Debug)]
pub(crate) enum AcquireError {
    Busy(Busy),
    State(StateError),
}

impl From<StateError> for AcquireError {
    fn from(e: StateError) -> Self {
        AcquireError::State(e)
    }
}

impl fmt::Display for AcquireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AcquireError::Busy(b) => b.fmt(f),
            AcquireError::State(e) => e.fmt(f),
        }
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.locked()
    }

    fn lost_message(&self, key: &LockKey, fence: u64, since: Duration) -> String {
        format!(
            "lost the deploy lock `{key}` (fencing token {fence}): its lease was last renewed {} ago, longer than the {} lease (was pilum paused, or cut off from `{}`?); another run may hold it now",
            crate::duration::format(since),
            crate::duration::format(self.opts.ttl),
            self.backend.location()
        )
    }

    /// The thread: write and release what services finished, renew held leases, ask again for
    /// waited keys; until closed.
    fn run(&self) {
        let renew_every = (self.opts.ttl / 3).max(Duration::from_millis(50));
        let poll = POLL.min(self.opts.ttl / 4).max(Duration::from_millis(20));
        let mut next_renew = Instant::now() + renew_every;
        let mut next_poll = Instant::now() + poll;
        let mut last_write: Option<Instant> = None;
        loop {
            let (jobs, stop) = {
                let mut inner = self.lock();
                if inner.jobs.is_empty() && !inner.stop {
                    let now = Instant::now();
                    let until = next_renew.min(next_poll).saturating_duration_since(now);
                    inner = self.wait(inner, until);
                }
                while !inner.jobs.is_empty() && !inner.stop {
                    let left =
                        last_write.map_or(Duration::ZERO, |t| GROUP.saturating_sub(t.elapsed()));
                    if left.is_zero() {
                        break;
                    }
                    inner = self.wait(inner, left);
                }
                (std::mem::take(&mut inner.jobs), inner.stop)
            };
            if !jobs.is_empty() {
                last_write = Some(Instant::now());
                self.do_jobs(jobs);
            }
            if stop {
                let rest = std::mem::take(&mut self.lock().jobs);
                if !rest.is_empty() {
                    self.do_jobs(rest);
                }
                return;
            }
            let now = Instant::now();
            if now >= next_renew {
                self.renew();
                next_renew = Instant::now() + renew_every;
            }
            if now >= next_poll {
                self.poll();
                next_poll = Instant::now() + poll;
            }
        }
    }

    fn wait<'a>(
        &self,
        inner: std::sync::MutexGuard<'a, Inner>,
        d: Duration,
    ) -> std::sync::MutexGuard<'a, Inner> {
        self.wake.wait_timeout(inner, d).unwrap_or_else(std::sync::PoisonError::into_inner).0
    }

    /// Write the batches (merged, in order), then release their keys.
    fn do_jobs(&self, jobs: Vec<(Batch, Vec<usize>)>) {
        let mut batch = Batch::default();
        let mut release = Vec::new();
        for (b, keys) in jobs {
            batch.records.extend(b.records);
            batch.artefacts.extend(b.artefacts);
            batch.lives.extend(b.lives);
            if b.run.is_some() {
                batch.run = b.run;
            }
            release.extend(keys);
        }
        // Services that ended together come in the order they handed their batches over, not
        // always the order they ended in: written in the order of their ids (made as they
        // ended), history lists them newest first either way.
        batch.records.sort_by(|a, b| a.id.cmp(&b.id));
        if !batch.is_empty()
            && let Err(e) = self.backend.write(&batch)
        {
            self.observer.warn(&format!(
                "{e}; the deploy records and cache entries of this run may be missing"
            ));
        }
        let (held, queued) = {
            let mut inner = self.lock();
            let mut held = Vec::new();
            let mut queued = Vec::new();
            for i in release {
                let k = &mut inner.keys[i];
                match k.status {
                    Status::Held { .. } | Status::Lost(_) => held.push(k.key.clone()),
                    Status::Waiting => queued.push(k.key.clone()),
                    _ => continue,
                }
                k.status = Status::Released;
            }
            (held, queued)
        };
        if !held.is_empty()
            && let Err(e) = self.backend.lock_release(&self.me, &held)
        {
            self.observer.warn(&format!("{e}; the locks expire on their own"));
        }
        if !queued.is_empty() {
            let _ = self.backend.lock_leave(&self.me, &queued);
        }
    }

    fn renew(&self) {
        let held: Vec<(usize, LockKey)> = {
            let inner = self.lock();
            inner
                .keys
                .iter()
                .enumerate()
                .filter(|(_, k)| matches!(k.status, Status::Held { .. }))
                .map(|(i, k)| (i, k.key.clone()))
                .collect()
        };
        if held.is_empty() {
            return;
        }
        let keys: Vec<LockKey> = held.iter().map(|(_, k)| k.clone()).collect();
        let started = Instant::now();
        let Ok(answers) = self.backend.lock_renew(&self.me, &keys, self.opts.ttl) else {
            // Not renewed: `check` finds the lease lost once the TTL has passed.
            return;
        };
        let mut inner = self.lock();
        for ((i, key), still) in held.into_iter().zip(answers) {
            let k = &mut inner.keys[i];
            let Status::Held { fence } = k.status else { continue };
            if !still {
                k.status = Status::Lost(format!(
                    "lost the deploy lock `{key}` (fencing token {fence}): its lease expired or it was released by force, and another run may hold it now"
                ));
            } else if k.renewed.elapsed() < self.opts.ttl {
                // A renewal counts from when it was sent.
                k.renewed = started;
            } else {
                // Renewed only after the lease had already run out (this process was paused):
                // someone else may have held it in between.
                k.status = Status::Lost(self.lost_message(&key, fence, k.renewed.elapsed()));
            }
        }
    }

    fn poll(&self) {
        let waiting: Vec<(usize, LockKey, Instant)> = {
            let inner = self.lock();
            inner
                .keys
                .iter()
                .enumerate()
                .filter(|(_, k)| k.status == Status::Waiting)
                .map(|(i, k)| (i, k.key.clone(), k.waiting_since.unwrap_or_else(Instant::now)))
                .collect()
        };
        if waiting.is_empty() {
            return;
        }
        let wait = self.opts.wait.unwrap_or_default();
        let keys: Vec<LockKey> = waiting.iter().map(|w| w.1.clone()).collect();
        let answers = match self.backend.lock_try(&self.me, &keys, true, self.opts.ttl) {
            Ok(a) => a,
            Err(e) => {
                // Give up only once the wait has run out.
                let mut inner = self.lock();
                for (i, key, since) in &waiting {
                    if since.elapsed() >= wait {
                        inner.keys[*i].status = Status::GaveUp(format!(
                            "gave up waiting for the deploy lock `{key}`: {e}"
                        ));
                    }
                }
                return;
            }
        };
        let mut expired = Vec::new();
        let mut tell = Vec::new();
        let mut still = Vec::new();
        {
            let mut inner = self.lock();
            for ((i, key, since), answer) in waiting.into_iter().zip(answers) {
                let k = &mut inner.keys[i];
                match answer {
                    Try::Acquired { fence } => {
                        k.status = Status::Held { fence };
                        k.renewed = Instant::now();
                        tell.push((key, None, 0, since.elapsed(), true));
                    }
                    Try::Busy { holder, ahead } => {
                        if since.elapsed() >= wait {
                            let by = holder
                                .as_ref()
                                .map(|h| format!("; it is held by {}", h.describe()))
                                .unwrap_or_default();
                            k.status = Status::GaveUp(format!(
                                "gave up waiting for the deploy lock `{key}` after {} (`--lock-wait`){by}",
                                crate::duration::format(since.elapsed())
                            ));
                            expired.push(key);
                        } else {
                            let token = holder.as_ref().map(|h| h.token.clone());
                            still.push((key.clone(), holder.clone(), since.elapsed()));
                            if token != k.told {
                                k.told = token;
                                tell.push((key, holder, ahead, since.elapsed(), false));
                            }
                        }
                    }
                }
            }
        }
        for (key, holder, waited) in still {
            self.observer.still_waiting(&key, holder.as_ref(), waited);
        }
        for (key, holder, ahead, waited, granted) in tell {
            if granted {
                self.observer.granted(&key, waited);
            } else {
                self.observer.waiting(&key, holder.as_ref(), ahead, waited);
            }
        }
        if !expired.is_empty() {
            let _ = self.backend.lock_leave(&self.me, &expired);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Quiet;
    impl Observer for Quiet {
        fn waiting(&self, _: &LockKey, _: Option<&Holder>, _: usize, _: Duration) {}
        fn granted(&self, _: &LockKey, _: Duration) {}
        fn warn(&self, message: &str) {
            panic!("{message}");
        }
    }

    #[test]
    fn records_handed_over_out_of_order_are_written_in_the_order_they_were_made() {
        use crate::state::record::{Filter, Outcome, sample};
        let t = tempfile::tempdir().unwrap();
        let backend: Arc<dyn Backend> = Arc::new(crate::state::file::FileBackend::new(t.path()));
        let me = Holder::for_tests("t");
        let opts = Options { ttl: DEFAULT_TTL, wait: None };
        let locks = Locks::acquire(backend.clone(), me, Vec::new(), opts, Arc::new(Quiet)).unwrap();
        let (first, second) = (sample("a", None, Outcome::Ok), sample("b", None, Outcome::Ok));
        assert!(first.id < second.id);
        {
            // Two services that ended in one order and handed their batches over in the other,
            // both waiting when the lock thread looks.
            let mut inner = locks.shared.lock();
            for r in [second.clone(), first.clone()] {
                inner.jobs.push((Batch { records: vec![r], ..Batch::default() }, Vec::new()));
            }
        }
        locks.close();
        let page = backend.records(&Filter::default()).unwrap();
        let ids: Vec<&str> = page.records.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, [second.id.as_str(), first.id.as_str()], "newest first");
    }

    #[test]
    fn keys_print_and_parse() {
        let k = LockKey { service: "api".into(), environment: None, target: "shell".into() };
        assert_eq!(k.to_string(), "api/-/shell");
        assert_eq!(LockKey::parse("api/-/shell").unwrap(), k);
        assert_eq!(LockKey::from_file_name(&k.file_name()).unwrap(), k);
        let p = LockKey::parse("cli.homebrew/prod/homebrew").unwrap();
        assert_eq!(p.environment.as_deref(), Some("prod"));
        assert!(LockKey::parse("api/shell").unwrap_err().contains("SERVICE/ENVIRONMENT/TARGET"));
        assert!(LockKey::parse("../x/-/y").is_err());
    }

    #[test]
    fn holders_round_trip_and_describe_themselves() {
        let h = Holder {
            token: "t".into(),
            run: "r".into(),
            command: "deploy".into(),
            actor: Some("alice@example.com".into()),
            host: "ci-7".into(),
            pid: 42,
            ci_run: Some("https://ci.example/run/1".into()),
            since: "2020-01-01T00:00:00Z".into(),
        };
        assert_eq!(Holder::decode(&h.encode()).unwrap(), h);
        let d = h.describe();
        assert!(
            d.starts_with(
                "alice@example.com on ci-7 (pid 42, `pilum deploy`) since 2020-01-01T00:00:00Z ("
            ),
            "{d}"
        );
        assert!(d.ends_with(", CI run https://ci.example/run/1"), "{d}");
    }
}
