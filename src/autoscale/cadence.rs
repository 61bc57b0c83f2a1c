//! When a pool decides: the one policy the server's decision loop and `pilum scale simulate`
//! both follow, generic over the clock (tokio's on the server, a virtual one offline).
//!
//! - A change to the pool's signals starts a *burst*: the decision comes `debounce` after the
//!   first change, and every change arriving before then joins it (one burst, one decision).
//! - A *tick* comes `tick` after the pool's last decision (or the previous tick): the pool
//!   re-decides with its active levels, so a still-firing alarm asks again.
//!
//! Whether a due burst actually decides is the decision's business (`decide::take`): one whose
//! changes a recorded decision already saw (a wake that arrived while that decision ran) has
//! nothing new and is skipped.

use std::ops::Add;
use std::time::Duration;

/// Why a decision is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Trigger {
    /// A burst of changes (or a synchronous `/scale` call): decided only when something is new.
    Signal,
    /// The periodic re-decision with the active levels.
    Tick,
}

/// One pool's schedule of decisions.
#[derive(Debug, Clone)]
pub(crate) struct Cadence<T> {
    debounce: Duration,
    tick: Duration,
    /// When the current burst is due, if one is open.
    burst: Option<T>,
    next_tick: T,
}

impl<T: Copy + Ord + Add<Duration, Output = T>> Cadence<T> {
    pub(crate) fn new(now: T, debounce: Duration, tick: Duration) -> Self {
        Self { debounce, tick, burst: None, next_tick: now + tick }
    }

    /// A change arrived at `now`: it opens a burst, or joins the open one.
    pub(crate) fn wake(&mut self, now: T) {
        if self.burst.is_none() {
            self.burst = Some(now + self.debounce);
        }
    }

    /// The next time something is due.
    pub(crate) fn next(&self) -> T {
        self.burst.map_or(self.next_tick, |b| b.min(self.next_tick))
    }

    /// What is due at `now`. A due burst goes first (its decision sees the levels too); a tick
    /// is rescheduled as soon as it fires, so ticks never pile up.
    pub(crate) fn due(&mut self, now: T) -> Option<Trigger> {
        if self.burst.is_some_and(|b| b <= now) {
            self.burst = None;
            return Some(Trigger::Signal);
        }
        if self.next_tick <= now {
            self.next_tick = now + self.tick;
            return Some(Trigger::Tick);
        }
        None
    }

    /// A decision was made at `now`: the next tick is a whole `tick` later.
    pub(crate) fn decided(&mut self, now: T) {
        self.next_tick = now + self.tick;
    }
}

/// Virtual time for `simulate`: time since the start of the replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub(crate) struct Virtual(pub Duration);

impl Add<Duration> for Virtual {
    type Output = Virtual;
    fn add(self, d: Duration) -> Virtual {
        Virtual(self.0.saturating_add(d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Virtual {
        Virtual(Duration::from_millis(ms))
    }

    #[test]
    fn a_burst_is_one_decision_and_ticks_follow_the_last_decision() {
        let mut c = Cadence::new(at(0), Duration::from_millis(200), Duration::from_secs(30));
        c.wake(at(1000));
        c.wake(at(1050));
        c.wake(at(1199));
        assert_eq!(c.next(), at(1200));
        assert_eq!(c.due(at(1100)), None);
        assert_eq!(c.due(at(1200)), Some(Trigger::Signal));
        assert_eq!(c.due(at(1200)), None, "the burst was one decision");
        c.decided(at(1200));
        assert_eq!(c.next(), at(31_200));
        assert_eq!(c.due(at(31_200)), Some(Trigger::Tick));
        assert_eq!(c.next(), at(61_200));
    }
}
