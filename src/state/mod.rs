//! State that outlives a run, behind one [`Backend`] trait with two implementations: the
//! file backend (`file.rs`, the default: `.pilum/` of the checkout, zero configuration) and the
//! Redis backend (`redis.rs`, shared by every clone and CI runner that names the same URL).
//!
//! A backend stores four things: **deploy records** (`record.rs`) and the run history
//! (`history.rs`, what `--only-changed` takes its base from); **locks** per service ×
//! environment × target with their FIFO queue of waiters and fencing tokens (`lock.rs` holds
//! the types and the lock manager, which renews leases and waits); **cache entries** of the
//! build cache (`cache.rs`, keyed by `inputs.rs`'s hashes); and, with Redis only,
//! **barriers** between the shards of one CI run (`barrier.rs`). `location.rs` parses
//! `--state`; `journal.rs` is the JSONL file format; `guard.rs` checks every path under
//! `.pilum/`; `runs.rs` keeps the saved runs the run report is drawn from (`.pilum/runs/`).
//! `docs/state.md` describes all of it for users.

pub(crate) mod barrier;
pub(crate) mod cache;
pub(crate) mod file;
pub(crate) mod guard;
pub(crate) mod history;
pub(crate) mod inputs;
pub(crate) mod journal;
pub(crate) mod location;
pub(crate) mod lock;
pub(crate) mod record;
pub(crate) mod redis;
pub(crate) mod runs;
pub(crate) mod session;

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub(crate) use location::Location;
pub(crate) use record::{Filter, Page, Record};

use cache::{Artefact, ArtefactKey, Live, LiveKey};
use lock::{Held, Holder, LockKey, Try};

/// Why the state could not be read or written. All wording is in `Display`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StateError {
    /// The backend cannot be reached (nothing is run then).
    Unreachable { location: String, why: String },
    /// Reading or writing failed.
    Failed { location: String, what: String, why: String },
    /// A shared backend is needed (barriers).
    NotShared { what: String },
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unreachable { location, why } => write!(
                f,
                "cannot reach the state backend `{location}`: {why}\nhelp: start it or fix the URL (`--state`, `PILUM_STATE`, or `state:` in `pilum-project.yaml`); nothing was run. `--state file` keeps the state in this checkout's `.pilum/` (locks then cover this checkout only)"
            ),
            Self::Failed { location, what, why } => {
                write!(f, "state backend `{location}`: cannot {what}: {why}")
            }
            Self::NotShared { what } => write!(
                f,
                "{what} needs a shared state backend\nhelp: pass `--state redis://host:6379/0` (or set `PILUM_STATE`); with the file backend use the two-job form in `docs/ci.md`"
            ),
        }
    }
}

impl std::error::Error for StateError {}

/// What one run writes at a service's end (and at the run's end): deploy records, the run's
/// history entry, cache entries. Written in that order, before the service's lock is released.
#[derive(Debug, Clone, Default)]
pub(crate) struct Batch {
    pub records: Vec<Record>,
    pub run: Option<serde_json::Value>,
    pub artefacts: Vec<Artefact>,
    pub lives: Vec<Live>,
}

impl Batch {
    pub(crate) fn is_empty(&self) -> bool {
        self.records.is_empty()
            && self.run.is_none()
            && self.artefacts.is_empty()
            && self.lives.is_empty()
    }
}

/// The run history newest first, and what could not be read on the way (for a warning).
#[derive(Debug, Clone, Default)]
pub(crate) struct Runs {
    pub runs: Vec<serde_json::Value>,
    /// Human descriptions of unreadable entries (`line 3`).
    pub unreadable: Vec<String>,
}

/// One state backend. Every method may be called from several threads.
///
/// For the commands that show or undo deploys (`status`, `rollback`): [`Backend::records`]
/// with a [`Filter`] (newest first) and [`Backend::last_success`], the newest record of a
/// service × target × environment × region that went live.
pub(crate) trait Backend: Send + Sync {
    /// Where it is, for messages (a password masked).
    fn location(&self) -> &Location;

    /// Whether locks are leases that expire when not renewed (Redis). File locks are held by
    /// the kernel for as long as the process lives.
    fn leases_expire(&self) -> bool;

    // -- records and runs -----------------------------------------------------------------

    /// Deploy records matching `filter`, newest first, at most `filter.limit`.
    fn records(&self, filter: &Filter) -> Result<Page, StateError>;

    /// The newest record of this service × target × environment × region that went live (a
    /// successful deploy or rollback).
    fn last_success(
        &self,
        service: &str,
        target: &str,
        environment: Option<&str>,
        region: Option<&str>,
    ) -> Result<Option<Record>, StateError> {
        self.went_live(Filter::live(service, target, environment, region), 0)
    }

    /// The record that went live before [`Backend::last_success`]'s: what a rollback returns
    /// to.
    fn previous_success(
        &self,
        service: &str,
        target: &str,
        environment: Option<&str>,
        region: Option<&str>,
    ) -> Result<Option<Record>, StateError> {
        self.went_live(Filter::live(service, target, environment, region), 1)
    }

    /// The `nth` newest record matching `live` (a [`Filter::live`]).
    fn went_live(&self, live: Filter, nth: usize) -> Result<Option<Record>, StateError> {
        let filter = Filter { limit: nth + 1, ..live };
        Ok(self.records(&filter)?.records.into_iter().nth(nth))
    }

    /// The run history, newest first: the first `limit` entries for which `keep` holds.
    fn runs(
        &self,
        limit: usize,
        keep: &dyn Fn(&serde_json::Value) -> bool,
    ) -> Result<Runs, StateError>;

    /// Write records, the run entry and cache entries, durably, in that order.
    fn write(&self, batch: &Batch) -> Result<(), StateError>;

    // -- the build cache -------------------------------------------------------------------

    fn artefacts(&self, keys: &[ArtefactKey]) -> Result<Vec<Option<Artefact>>, StateError>;
    fn lives(&self, keys: &[LiveKey]) -> Result<Vec<Option<Live>>, StateError>;

    // -- locks -----------------------------------------------------------------------------

    /// Try to take `keys` for `me` at once. A key is granted when nobody holds it and no
    /// earlier waiter wants it. With `queue`, the keys not granted are queued for `me`, all
    /// under one ticket (so runs wait in arrival order and never for each other in a cycle).
    fn lock_try(
        &self,
        me: &Holder,
        keys: &[LockKey],
        queue: bool,
        ttl: Duration,
    ) -> Result<Vec<Try>, StateError>;

    /// Extend `me`'s leases of `keys` (and its place in the queues); false for a key that is no
    /// longer `me`'s.
    fn lock_renew(
        &self,
        me: &Holder,
        keys: &[LockKey],
        ttl: Duration,
    ) -> Result<Vec<bool>, StateError>;

    /// Release `me`'s leases of `keys` (only its own: compare and delete).
    fn lock_release(&self, me: &Holder, keys: &[LockKey]) -> Result<(), StateError>;

    /// Leave the queues of `keys`.
    fn lock_leave(&self, me: &Holder, keys: &[LockKey]) -> Result<(), StateError>;

    /// Every held lock and every queue with waiters.
    fn lock_list(&self) -> Result<Vec<Held>, StateError>;

    /// Take the lock `key` from whoever holds it (`pilum locks release --force`); the holder
    /// it had, if any.
    fn lock_break(&self, key: &LockKey) -> Result<Option<Holder>, StateError>;

    // -- barriers between shards -------------------------------------------------------------

    /// The barrier store, when the backend is shared.
    fn barriers(&self) -> Option<&dyn barrier::Store> {
        None
    }
}

/// Open the backend at `location` for the project at `root`. A Redis backend is connected and
/// asked for `PING` here: an unreachable one is an error before anything runs.
pub(crate) fn open(location: &Location, root: &Path) -> Result<Arc<dyn Backend>, StateError> {
    match location {
        Location::File => Ok(Arc::new(file::FileBackend::new(root))),
        Location::Redis(url) => Ok(Arc::new(redis::RedisBackend::connect(location, url)?)),
    }
}
