//! Barriers between the shards of one CI run (`--shard i/N --barrier`): every shard finishes
//! phase P before any shard starts phase P+1, as one runner does. Each shard says when it has
//! ended a phase (and whether it failed there) and keeps a liveness lease while it runs; a
//! waiting shard goes on once every shard has ended the phase, and stops when one failed or its
//! lease ran out ("phase build failed in shard 2/4"). Only a shared backend (Redis) has a
//! [`Store`]; the file backend refuses `--barrier` with the two-job form of `docs/ci.md`.

use std::time::{Duration, Instant};

use super::StateError;

/// How a barrier's shards are stored.
pub(crate) trait Store: Send + Sync {
    /// Shard `shard` (1-based) of run `run` ended `phase`; `ok` false: it failed there.
    fn arrive(&self, run: &str, phase: &str, shard: usize, ok: bool) -> Result<(), StateError>;
    /// Renew shard `shard`'s liveness lease for `ttl`.
    fn alive(&self, run: &str, shard: usize, ttl: Duration) -> Result<(), StateError>;
    /// Where shards `1..=total` stand at the end of `phase`.
    fn shards(&self, run: &str, phase: &str, total: usize) -> Result<Vec<Shard>, StateError>;
}

/// One shard at a barrier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shard {
    /// `Some(ok)` once it ended the phase.
    pub ended: Option<bool>,
    /// It has begun (a shard whose runner starts late is waited for).
    pub started: bool,
    /// Its liveness lease has not run out.
    pub alive: bool,
}

/// Why a barrier stopped this shard. All wording is in `Display`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Stop {
    Failed { phase: String, shard: usize, total: usize },
    Gone { phase: String, shard: usize, total: usize },
    NeverStarted { shard: usize, total: usize, waited: Duration },
    Cancelled,
    State(StateError),
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stop::Failed { phase, shard, total } => {
                write!(f, "phase {phase} failed in shard {shard}/{total}")
            }
            Stop::Gone { phase, shard, total } => write!(
                f,
                "shard {shard}/{total} stopped before ending phase {phase} (its lease ran out)"
            ),
            Stop::NeverStarted { shard, total, waited } => write!(
                f,
                "shard {shard}/{total} did not start within {} (`--barrier` waits that long for a shard that never began)",
                crate::duration::format(*waited)
            ),
            Stop::Cancelled => f.write_str("interrupted while waiting at the barrier"),
            Stop::State(e) => e.fmt(f),
        }
    }
}

/// One shard's view of the run's barriers.
pub(crate) struct Barrier<'a> {
    pub store: &'a dyn Store,
    /// The run all shards share (the CI run).
    pub run: String,
    /// This shard, 1-based.
    pub shard: usize,
    pub total: usize,
    /// The liveness lease.
    pub ttl: Duration,
    /// How long a shard that has not begun is waited for.
    pub patience: Duration,
}

/// How long a waiting shard waits for one that has not begun (its runner may start late).
pub(crate) const PATIENCE: Duration = Duration::from_secs(30 * 60);

impl Barrier<'_> {
    /// This shard ended `phase` (`ok` false: it failed there), then waits until every shard
    /// has; `waiting` is told which shards are still running whenever that changes.
    #[cfg(test)]
    pub(crate) fn cross(
        &self,
        phase: &str,
        ok: bool,
        cancelled: &dyn Fn() -> bool,
        waiting: &dyn Fn(&[usize]),
    ) -> Result<(), Stop> {
        self.arrive(phase, ok)?;
        self.wait(phase, cancelled, waiting)
    }

    /// This shard ended `phase`; `ok` false: it failed there.
    pub(crate) fn arrive(&self, phase: &str, ok: bool) -> Result<(), Stop> {
        self.store.alive(&self.run, self.shard, self.ttl).map_err(Stop::State)?;
        self.store.arrive(&self.run, phase, self.shard, ok).map_err(Stop::State)
    }

    /// Wait until every shard has ended `phase` (bounded: a shard that stops renewing its lease
    /// or never begins within [`Barrier::patience`] ends the wait).
    pub(crate) fn wait(
        &self,
        phase: &str,
        cancelled: &dyn Fn() -> bool,
        waiting: &dyn Fn(&[usize]),
    ) -> Result<(), Stop> {
        let began = Instant::now();
        let poll = (self.ttl / 10).clamp(Duration::from_millis(20), Duration::from_millis(250));
        let mut told: Option<Vec<usize>> = None;
        let mut renewed = Instant::now();
        loop {
            if cancelled() {
                return Err(Stop::Cancelled);
            }
            if renewed.elapsed() >= self.ttl / 3 {
                self.store.alive(&self.run, self.shard, self.ttl).map_err(Stop::State)?;
                renewed = Instant::now();
            }
            let shards = self.store.shards(&self.run, phase, self.total).map_err(Stop::State)?;
            let stop = |shard| (phase.to_string(), shard, self.total);
            let mut running = Vec::new();
            for (i, s) in shards.iter().enumerate() {
                let n = i + 1;
                match s.ended {
                    Some(false) => {
                        let (phase, shard, total) = stop(n);
                        return Err(Stop::Failed { phase, shard, total });
                    }
                    Some(true) => {}
                    None if s.started && !s.alive => {
                        let (phase, shard, total) = stop(n);
                        return Err(Stop::Gone { phase, shard, total });
                    }
                    None if !s.started && began.elapsed() >= self.patience => {
                        let waited = began.elapsed();
                        return Err(Stop::NeverStarted { shard: n, total: self.total, waited });
                    }
                    None => running.push(n),
                }
            }
            if running.is_empty() {
                return Ok(());
            }
            if told.as_ref() != Some(&running) {
                waiting(&running);
                told = Some(running);
            }
            std::thread::sleep(poll);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::LockExt;
    use std::collections::HashMap;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Memory {
        ended: Mutex<HashMap<(String, usize), bool>>,
        alive: Mutex<HashMap<usize, bool>>,
    }

    impl Store for Memory {
        fn arrive(&self, _: &str, phase: &str, shard: usize, ok: bool) -> Result<(), StateError> {
            self.ended.locked().insert((phase.into(), shard), ok);
            Ok(())
        }
        fn alive(&self, _: &str, shard: usize, _: Duration) -> Result<(), StateError> {
            self.alive.locked().insert(shard, true);
            Ok(())
        }
        fn shards(&self, _: &str, phase: &str, total: usize) -> Result<Vec<Shard>, StateError> {
            let ended = self.ended.locked();
            let alive = self.alive.locked();
            Ok((1..=total)
                .map(|n| Shard {
                    ended: ended.get(&(phase.to_string(), n)).copied(),
                    started: true,
                    alive: alive.get(&n).copied().unwrap_or(true),
                })
                .collect())
        }
    }

    fn barrier(store: &Memory, shard: usize) -> Barrier<'_> {
        Barrier {
            store,
            run: "r".into(),
            shard,
            total: 2,
            ttl: Duration::from_millis(200),
            patience: Duration::from_millis(100),
        }
    }

    #[test]
    fn a_shard_waits_for_the_others_and_stops_when_one_fails() {
        let store = Memory::default();
        store.arrive("r", "build", 2, true).unwrap();
        barrier(&store, 1).cross("build", true, &|| false, &|_| panic!("no wait")).unwrap();
        store.arrive("r", "push", 2, false).unwrap();
        let e = barrier(&store, 1).cross("push", true, &|| false, &|_| {}).unwrap_err();
        assert_eq!(e.to_string(), "phase push failed in shard 2/2");
    }

    #[test]
    fn a_gone_shard_releases_the_waiters() {
        let store = Memory::default();
        store.alive.locked().insert(2, false);
        let seen = Mutex::new(Vec::new());
        let e = barrier(&store, 1)
            .cross("build", true, &|| false, &|r| seen.locked().push(r.to_vec()))
            .unwrap_err();
        assert!(e.to_string().starts_with("shard 2/2 stopped before ending phase build"), "{e}");
        assert!(seen.locked().is_empty());
    }

    #[test]
    fn a_shard_that_never_begins_is_waited_for_only_so_long() {
        struct Late(Memory);
        impl Store for Late {
            fn arrive(&self, r: &str, p: &str, n: usize, ok: bool) -> Result<(), StateError> {
                self.0.arrive(r, p, n, ok)
            }
            fn alive(&self, r: &str, n: usize, t: Duration) -> Result<(), StateError> {
                self.0.alive(r, n, t)
            }
            fn shards(&self, r: &str, p: &str, total: usize) -> Result<Vec<Shard>, StateError> {
                let mut s = self.0.shards(r, p, total)?;
                s[1].started = false;
                Ok(s)
            }
        }
        let store = Late(Memory::default());
        let b = Barrier {
            store: &store,
            run: "r".into(),
            shard: 1,
            total: 2,
            ttl: Duration::from_millis(200),
            patience: Duration::from_millis(100),
        };
        let e = b.cross("build", true, &|| false, &|_| {}).unwrap_err();
        assert!(e.to_string().starts_with("shard 2/2 did not start within"), "{e}");
    }
}
