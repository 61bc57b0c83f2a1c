//! Request limits that keep the server answering under load: per-pool token-bucket rate limits
//! (429 with `Retry-After`) and bounded "seen" sets for deduplication (SNS `MessageId`,
//! `Idempotency-Key`), which forget the oldest keys first so memory stays flat.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::time::Instant;

/// A bounded set of recently seen keys.
#[derive(Debug)]
pub struct Seen {
    set: HashSet<String>,
    order: VecDeque<String>,
    cap: usize,
}

impl Seen {
    pub fn new(cap: usize) -> Self {
        Self { set: HashSet::new(), order: VecDeque::new(), cap }
    }

    /// Insert `key`; false when it was already present.
    pub fn insert(&mut self, key: &str) -> bool {
        if self.set.contains(key) {
            return false;
        }
        if self.order.len() >= self.cap
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
        self.set.insert(key.to_string());
        self.order.push_back(key.to_string());
        true
    }

    /// Forget `key` (its request was not accepted after all, so a retry must not be a
    /// duplicate). The order queue keeps the stale entry; it only ages out.
    pub fn forget(&mut self, key: &str) {
        self.set.remove(key);
    }
}

/// One token bucket per pool.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    /// `rate` requests per second with bursts of `burst`; a rate of 0 disables limiting.
    pub fn new(rate: f64, burst: f64) -> Self {
        Self { rate, burst: burst.max(1.0), buckets: Mutex::new(HashMap::new()) }
    }

    /// Take a token for `pool`; Err(seconds to wait) when the bucket is empty.
    pub fn check(&self, pool: &str) -> Result<(), u64> {
        if self.rate <= 0.0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut buckets = self.buckets.lock().expect("rate limiter lock");
        let (tokens, last) = buckets.entry(pool.to_string()).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * self.rate).min(self.burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) / self.rate).ceil().max(1.0) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seen_forgets_oldest() {
        let mut s = Seen::new(2);
        assert!(s.insert("a"));
        assert!(!s.insert("a"));
        assert!(s.insert("b"));
        assert!(s.insert("c"));
        assert!(s.insert("a"));
        s.forget("a");
        assert!(s.insert("a"));
    }

    #[test]
    fn bucket_limits_bursts() {
        let r = RateLimiter::new(1.0, 3.0);
        assert!(r.check("p").is_ok());
        assert!(r.check("p").is_ok());
        assert!(r.check("p").is_ok());
        assert_eq!(r.check("p"), Err(1));
        assert!(r.check("q").is_ok());
    }
}
