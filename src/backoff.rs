//! The one retry backoff: exponential (`base × factor^(n-1)`), capped, with jitter, and an
//! optional deadline. Deploy retries, the scaler's apply retries, Pulumi lock retries and the
//! scripts' `retry` module (through `time::backoff`) all compute their delays here.
//!
//! Two jitter policies cover every caller:
//! - [`Jitter::Full`] — a uniform delay in `[0, capped]` (AWS's "full jitter"), best when many
//!   clients retry against one resource;
//! - [`Jitter::Up`]`(f)` — the capped delay plus up to `f` of it, so delays never shrink below
//!   the schedule (deploy retries promise "at least `--retry-delay`, doubling").

use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Jitter {
    /// Uniform in `[0, delay]`.
    Full,
    /// `delay × (1 + u·f)` with `u` uniform in `[0, 1)`.
    Up(f64),
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Backoff {
    pub base: Duration,
    pub factor: f64,
    pub cap: Duration,
    pub jitter: Jitter,
    /// No retry may start after this instant; [`Backoff::next`] answers `None` past it.
    pub deadline: Option<Instant>,
}

impl Backoff {
    /// `base`, doubling, capped at 30 s, full jitter, no deadline.
    pub(crate) fn new(base: Duration) -> Self {
        Self {
            base,
            factor: 2.0,
            cap: Duration::from_secs(30),
            jitter: Jitter::Full,
            deadline: None,
        }
    }

    pub(crate) fn cap(mut self, cap: Duration) -> Self {
        self.cap = cap;
        self
    }

    pub(crate) fn jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    pub(crate) fn deadline(mut self, deadline: Instant) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// The un-jittered delay before retry `attempt` (1-based): `min(cap, base × factor^(n-1))`.
    /// Saturates instead of overflowing for any `attempt`.
    pub(crate) fn scheduled(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(1024) as i32;
        let secs = self.base.as_secs_f64() * self.factor.powi(exp);
        let cap = self.cap.as_secs_f64();
        if !secs.is_finite() || secs >= cap {
            return self.cap;
        }
        Duration::from_secs_f64(secs.max(0.0))
    }

    /// The delay before retry `attempt`, with jitter applied.
    pub(crate) fn delay(&self, attempt: u32) -> Duration {
        self.jittered(self.scheduled(attempt), fastrand::f64())
    }

    /// The delay before retry `attempt`, or `None` when sleeping it would pass the deadline.
    pub(crate) fn next(&self, attempt: u32) -> Option<Duration> {
        let d = self.delay(attempt);
        match self.deadline {
            Some(deadline) if Instant::now() + d > deadline => None,
            _ => Some(d),
        }
    }

    fn jittered(&self, d: Duration, u: f64) -> Duration {
        match self.jitter {
            Jitter::Full => d.mul_f64(u),
            Jitter::Up(f) => d.mul_f64(1.0 + u * f.clamp(0.0, 10.0)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_by_factor_and_caps() {
        let b = Backoff::new(Duration::from_millis(100)).cap(Duration::from_secs(1));
        assert_eq!(b.scheduled(1), Duration::from_millis(100));
        assert_eq!(b.scheduled(2), Duration::from_millis(200));
        assert_eq!(b.scheduled(4), Duration::from_millis(800));
        assert_eq!(b.scheduled(5), Duration::from_secs(1));
        assert_eq!(b.scheduled(u32::MAX), Duration::from_secs(1));
    }

    #[test]
    fn jitter_policies_stay_in_their_ranges() {
        let b = Backoff::new(Duration::from_secs(1));
        for u in [0.0, 0.25, 0.999] {
            let full = b.jittered(Duration::from_secs(1), u);
            assert!(full <= Duration::from_secs(1));
            let up = b.jitter(Jitter::Up(0.5)).jittered(Duration::from_secs(1), u);
            assert!(up >= Duration::from_secs(1) && up < Duration::from_millis(1500));
        }
        assert_eq!(b.scheduled(3), Duration::from_secs(4));
    }

    #[test]
    fn deadline_stops_retries() {
        let b = Backoff::new(Duration::from_secs(10)).jitter(Jitter::Up(0.0));
        assert_eq!(b.next(1), Some(Duration::from_secs(10)));
        let b = b.deadline(Instant::now() + Duration::from_secs(1));
        assert_eq!(b.next(1), None);
    }
}
