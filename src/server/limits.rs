//! Request limits that keep the server answering under load: per-pool token-bucket rate limits
//! (429 with `Retry-After`), a bounded "seen" set for SNS `MessageId`s and the
//! `Idempotency-Key` table (draft-ietf-httpapi-idempotency-key-header: the same key with the
//! same request is answered from the first; with another body or on another route it is 422;
//! while the first is still in flight, 409). Both forget the oldest keys first so memory stays
//! flat.

use crate::sync::LockExt;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::time::Instant;

/// A bounded set of recently seen keys.
#[derive(Debug)]
pub(crate) struct Seen {
    set: HashSet<String>,
    order: VecDeque<String>,
    cap: usize,
}

impl Seen {
    pub(crate) fn new(cap: usize) -> Self {
        Self { set: HashSet::new(), order: VecDeque::new(), cap }
    }

    /// Insert `key`; false when it was already present.
    pub(crate) fn insert(&mut self, key: &str) -> bool {
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
    pub(crate) fn forget(&mut self, key: &str) {
        self.set.remove(key);
    }
}

/// What an `Idempotency-Key` means for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Begin {
    /// First use: go ahead, then [`Idempotency::finish`].
    New,
    /// The same request again, already accepted.
    Duplicate,
    /// The same key with another body.
    OtherBody,
    /// The same key on another route (of the same pool).
    OtherRoute(&'static str),
    /// The same request is still being accepted.
    InFlight,
}

#[derive(Debug)]
struct KeyUse {
    route: &'static str,
    fingerprint: u64,
    done: bool,
}

/// Idempotency keys, scoped by pool, remembering the route and body they were first used with.
#[derive(Debug)]
pub(crate) struct Idempotency {
    keys: HashMap<String, KeyUse>,
    order: VecDeque<String>,
    cap: usize,
}

impl Idempotency {
    pub(crate) fn new(cap: usize) -> Self {
        Self { keys: HashMap::new(), order: VecDeque::new(), cap }
    }

    fn id(pool: &str, key: &str) -> String {
        format!("{pool}\u{0}{key}")
    }

    /// Look `key` up for a request to `route` of `pool` whose body hashes to `fingerprint`.
    pub(crate) fn begin(
        &mut self,
        pool: &str,
        key: &str,
        route: &'static str,
        fingerprint: u64,
    ) -> Begin {
        let id = Self::id(pool, key);
        if let Some(u) = self.keys.get(&id) {
            return if u.route != route {
                Begin::OtherRoute(u.route)
            } else if u.fingerprint != fingerprint {
                Begin::OtherBody
            } else if u.done {
                Begin::Duplicate
            } else {
                Begin::InFlight
            };
        }
        if self.order.len() >= self.cap
            && let Some(old) = self.order.pop_front()
        {
            self.keys.remove(&old);
        }
        self.keys.insert(id.clone(), KeyUse { route, fingerprint, done: false });
        self.order.push_back(id);
        Begin::New
    }

    /// The request that began with `key` ended: accepted (later uses are duplicates) or not
    /// (the key is forgotten so a retry goes through).
    pub(crate) fn finish(&mut self, pool: &str, key: &str, accepted: bool) {
        let id = Self::id(pool, key);
        if accepted {
            if let Some(u) = self.keys.get_mut(&id) {
                u.done = true;
            }
        } else {
            self.keys.remove(&id);
        }
    }
}

/// The fingerprint of a request body for [`Idempotency`].
pub(crate) fn fingerprint(body: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    body.hash(&mut h);
    h.finish()
}

/// One token bucket per pool.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    /// `rate` requests per second with bursts of `burst`; a rate of 0 disables limiting.
    pub(crate) fn new(rate: f64, burst: f64) -> Self {
        Self { rate, burst: burst.max(1.0), buckets: Mutex::new(HashMap::new()) }
    }

    /// Take a token for `pool`; Err(seconds to wait) when the bucket is empty.
    pub(crate) fn check(&self, pool: &str) -> Result<(), u64> {
        if self.rate <= 0.0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut buckets = self.buckets.locked();
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
    fn idempotency_keys_follow_the_draft() {
        let mut i = Idempotency::new(10);
        let (a, b) = (fingerprint(b"{\"delta\": 1}"), fingerprint(b"{\"delta\": 2}"));
        assert_eq!(i.begin("p", "k", "delta", a), Begin::New);
        assert_eq!(i.begin("p", "k", "delta", a), Begin::InFlight);
        i.finish("p", "k", true);
        assert_eq!(i.begin("p", "k", "delta", a), Begin::Duplicate);
        assert_eq!(i.begin("p", "k", "delta", b), Begin::OtherBody);
        assert_eq!(i.begin("p", "k", "count", a), Begin::OtherRoute("delta"));
        assert_eq!(i.begin("q", "k", "count", a), Begin::New, "keys are scoped by pool");
        i.finish("q", "k", false);
        assert_eq!(i.begin("q", "k", "count", a), Begin::New, "a refused request can be retried");
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
