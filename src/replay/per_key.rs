//! The per-key limit of the memory store (`replay_cache.per_key_limit`): one proof key (jkt)
//! holds at most `limit` live entries, so one valid client cannot fill the cache for everyone.
//!
//! Each key with live entries has a [`Window`]: its entries counted by expiry second, oldest
//! first. Entries all live the same `ttl`, so insertion order is expiry order and the count is
//! exact: an entry counts while the store would still refuse its replay (`now <= expiry`).
//!
//! Memory: the windows sit in a moka cache bounded by the store's capacity (a key with a live
//! entry holds a slot of the store, so there are never more live windows than live entries) and
//! idle windows expire `ttl` after their last insert, when all their entries have expired too.
//! A window holds at most one bucket per second of the window (16 bytes each). Should moka
//! ever drop a live window, that key's count restarts: the limit is looser for it, the replay
//! check itself is unaffected (it is the store's, not this cache's).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use moka::sync::Cache;

/// The live entries of one proof key, as `(expiry second, count)` oldest first.
#[derive(Default)]
pub(crate) struct Window {
    buckets: VecDeque<(u64, u32)>,
    total: u64,
}

/// Per-key windows, shared by every caller of the memory store.
pub(crate) struct PerKey {
    windows: Cache<[u8; 32], Arc<Mutex<Window>>>,
    limit: u64,
    ttl_secs: u64,
}

// === impl PerKey ===

impl PerKey {
    /// At most `limit` live entries a key, entries living `ttl_secs`, windows for at most
    /// `max_keys` keys.
    pub(crate) fn new(limit: u64, ttl_secs: u64, max_keys: u64) -> Self {
        let windows = Cache::builder()
            .max_capacity(max_keys)
            // One second more than an entry lives: a window outlives its newest entry.
            .time_to_idle(Duration::from_secs(ttl_secs.saturating_add(1)))
            .build();
        Self {
            windows,
            limit: limit.max(1),
            ttl_secs,
        }
    }

    /// The window of `jkt`, locked: the caller holds it across its own check and insert, so
    /// two proofs of one key cannot both take the last slot.
    pub(crate) fn lock(&self, jkt: &[u8; 32]) -> WindowGuard {
        let window = self
            .windows
            .get_with(*jkt, || Arc::new(Mutex::new(Window::default())));
        WindowGuard {
            window,
            ttl_secs: self.ttl_secs,
            limit: self.limit,
        }
    }
}

/// A key's window, to be locked by [`WindowGuard::at`].
pub(crate) struct WindowGuard {
    window: Arc<Mutex<Window>>,
    ttl_secs: u64,
    limit: u64,
}

impl WindowGuard {
    /// The window locked and swept at `now`.
    pub(crate) fn at(&self, now: u64) -> Locked<'_> {
        let mut window = self
            .window
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        window.sweep(now);
        Locked {
            window,
            now,
            ttl_secs: self.ttl_secs,
            limit: self.limit,
        }
    }
}

/// A locked, swept window.
pub(crate) struct Locked<'a> {
    window: MutexGuard<'a, Window>,
    now: u64,
    ttl_secs: u64,
    limit: u64,
}

impl Locked<'_> {
    /// `Some(seconds until its oldest entry expires, at least 1)` when the key is at its limit.
    pub(crate) fn over(&self) -> Option<u64> {
        if self.window.total < self.limit {
            return None;
        }
        // An entry is live while `now <= expiry`: it frees its slot the second after.
        let oldest = self
            .window
            .buckets
            .front()
            .map_or(self.now.saturating_add(self.ttl_secs), |b| b.0);
        Some(oldest.saturating_sub(self.now).saturating_add(1))
    }

    /// Counts one entry inserted now.
    pub(crate) fn record(&mut self) {
        let expiry = self.now.saturating_add(self.ttl_secs);
        match self.window.buckets.back_mut() {
            // A clock going backwards joins the newest bucket: the queue stays sorted.
            Some(back) if back.0 >= expiry => back.1 = back.1.saturating_add(1),
            _ => self.window.buckets.push_back((expiry, 1)),
        }
        self.window.total = self.window.total.saturating_add(1);
    }
}

// === impl Window ===

impl Window {
    fn sweep(&mut self, now: u64) {
        while let Some(&(expiry, n)) = self.buckets.front() {
            if expiry >= now {
                break;
            }
            self.buckets.pop_front();
            self.total = self.total.saturating_sub(u64::from(n));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [7; 32];

    #[test]
    fn a_key_at_its_limit_is_over_until_its_oldest_entry_expires() {
        let per_key = PerKey::new(2, 60, 100);
        let w = per_key.lock(&KEY);
        let mut l = w.at(1000);
        assert_eq!(l.over(), None);
        l.record();
        drop(l);
        let mut l = w.at(1010);
        l.record();
        // Oldest expires at 1060, live through 1060: free at 1061.
        assert_eq!(l.over(), Some(51));
        drop(l);
        assert_eq!(w.at(1060).over(), Some(1));
        assert_eq!(w.at(1061).over(), None);
    }

    #[test]
    fn keys_are_counted_apart() {
        let per_key = PerKey::new(1, 60, 100);
        per_key.lock(&KEY).at(5).record();
        assert!(per_key.lock(&KEY).at(5).over().is_some());
        assert_eq!(per_key.lock(&[8; 32]).at(5).over(), None);
    }

    #[test]
    fn a_clock_going_backwards_keeps_the_window_sorted() {
        let per_key = PerKey::new(10, 60, 100);
        let w = per_key.lock(&KEY);
        w.at(100).record();
        w.at(90).record();
        let l = w.at(161);
        assert_eq!(l.over(), None);
        drop(l);
        // Both were counted in the 160 bucket, swept together.
        assert_eq!(w.at(161).window.total, 0);
    }

    #[test]
    fn a_limit_of_zero_is_one() {
        let per_key = PerKey::new(0, 60, 1);
        assert_eq!(per_key.lock(&KEY).at(1).over(), None);
        per_key.lock(&KEY).at(1).record();
        assert_eq!(per_key.lock(&KEY).at(1).over(), Some(61));
    }
}
