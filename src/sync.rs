//! One policy for poisoned locks: **recover**. A lock is poisoned when a thread panicked while
//! holding it. That panic is already reported where it happened (a task fails with it, the
//! scaler's supervisor restarts the loop and says so), and every value pilum keeps under a lock
//! is replaced or pushed to whole by each critical section, so what the lock guards is still a
//! value pilum wrote. Panicking again in every other thread would turn one bug into the loss of
//! the whole run or server. Every `Mutex` and `RwLock` in `src/` is taken through [`LockExt`].

use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

pub(crate) trait LockExt<T: ?Sized> {
    /// The guard, also after another thread panicked holding it.
    fn locked(&self) -> MutexGuard<'_, T>;
}

impl<T: ?Sized> LockExt<T> for Mutex<T> {
    fn locked(&self) -> MutexGuard<'_, T> {
        self.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The value of a lock no one else holds any more, poisoned or not.
pub(crate) fn into_value<T>(m: Mutex<T>) -> T {
    m.into_inner().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) trait RwLockExt<T: ?Sized> {
    fn read_locked(&self) -> RwLockReadGuard<'_, T>;
    fn write_locked(&self) -> RwLockWriteGuard<'_, T>;
}

impl<T: ?Sized> RwLockExt<T> for RwLock<T> {
    fn read_locked(&self) -> RwLockReadGuard<'_, T> {
        self.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_locked(&self) -> RwLockWriteGuard<'_, T> {
        self.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// `f` over `items`, in order, on up to 8 threads (one per core) when there are at least `min`
/// items; on this thread otherwise. For independent, CPU-bound work per item: parsing files,
/// checking services against their recipes.
pub(crate) fn par_map<T: Sync, R: Send>(
    items: &[T],
    min: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get).min(8);
    if items.len() < min.max(2) || threads < 2 {
        return items.iter().map(f).collect();
    }
    let chunk = items.len().div_ceil(threads);
    let f = &f;
    std::thread::scope(|s| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|c| s.spawn(move || c.iter().map(f).collect::<Vec<_>>()))
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("worker threads do not panic")).collect()
    })
}

/// Free `value` on a thread of its own, so the caller does not wait for it: a thousand
/// services' configurations, steps and plans are tens of thousands of small allocations, and
/// a command about to end need not free them in line. Not for memory a script evaluation
/// allocated: it is counted per thread (`script::memory`), and would stay counted as held.
/// Without a thread (spawning failed) it is freed here.
pub(crate) fn drop_in_background<T: Send + 'static>(value: T) {
    let _ = std::thread::Builder::new().name("pilum-free".into()).spawn(move || drop(value));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poisoned_lock_still_gives_its_value() {
        let m = std::sync::Arc::new(Mutex::new(1));
        let m2 = m.clone();
        let _ = std::thread::spawn(move || {
            let mut g = m2.locked();
            *g = 2;
            panic!("poison it");
        })
        .join();
        assert!(m.is_poisoned());
        assert_eq!(*m.locked(), 2);
    }

    #[test]
    fn par_map_keeps_the_order() {
        let items: Vec<u32> = (0..1000).collect();
        let doubled = par_map(&items, 64, |i| i * 2);
        assert_eq!(doubled, items.iter().map(|i| i * 2).collect::<Vec<_>>());
        assert_eq!(par_map(&items[..3], 64, |i| i + 1), [1, 2, 3]);
        assert!(par_map(&[] as &[u32], 0, |i| *i).is_empty());
    }
}
