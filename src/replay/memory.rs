//! The in-process replay store: a sharded set of 128-bit keys with FIFO expiry.
//!
//! Why not moka: a moka cache of a million u128 keys costs about 300 MiB, and its TinyLFU
//! admission and size-based eviction can drop a live entry, reopening a replay window. Entries
//! here all live the same `ttl`, so each shard's insertion order is its expiry order: expired
//! entries are swept from the front, a live entry is never evicted, and a full shard refuses.
//!
//! Layout: up to [`MAX_SHARDS`] shards (a power of two), each a `Mutex` over a `HashSet<u128>`
//! and a `VecDeque` of `(expiry, key)` in insertion order. Keys are already hashes (the caller
//! digests the `jti`), so the set hashes with the key's first 8 bytes as they are (no SipHash)
//! and the shard is chosen from the last 8 bytes: the two must differ, or every key of a shard
//! would share the low bits the set uses to pick a bucket.
//!
//! Time: an entry inserted at `now` expires at `now + ttl` and is live while `now <= expiry`,
//! so with whole seconds it lives at least `ttl` full seconds; it is swept once `now > expiry`.
//!
//! Capacity: each shard holds `ceil(capacity / shards)` entries, so the store as a whole holds
//! at most `capacity + shards - 1`; a shard that is full refuses even if others have room.
//! Small capacities use fewer shards (at least 1024 entries each) so that this slack stays small.
//!
//! Memory, measured with `memory_for_a_million_live_entries` (ignored test, x86_64 Linux):
//! 1,000,000 live entries cost about 60 MiB of RSS, well under the 160 MiB budget. The set's
//! buckets are 17 bytes (key + control byte) at a load of at most 7/8, rounded up to a power of
//! two (64 x 32,768 buckets: ~34 MiB); the queues' 24-byte slots grow by doubling
//! (64 x 16,384 slots: ~24 MiB).

use std::collections::{HashSet, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use crate::clock::UnixTime;
use prometheus::IntCounter;

use super::per_key::PerKey;
use super::{Admission, StoreError};

/// The most shards a store uses (a power of two).
pub const MAX_SHARDS: usize = 64;

/// The fewest entries a shard is sized for when the capacity allows it (keeps the rounding
/// slack of `ceil(capacity / shards)` small next to the capacity).
const MIN_PER_SHARD: usize = 1024;

/// The in-process replay store.
pub struct MemoryStore {
    shards: Box<[Mutex<Shard>]>,
    /// `shards.len() - 1`; the length is a power of two.
    shard_mask: usize,
    per_shard: usize,
    capacity: usize,
    ttl_secs: u64,
    len: AtomicUsize,
    /// `dpop_gateway_replay_cache_expired_total`: entries removed because their window
    /// passed. The store evicts nothing else: a live entry stays until it expires.
    expired: IntCounter,
    /// `replay_cache.per_key_limit`; `None` only in tests of the store itself.
    per_key: Option<PerKey>,
}

/// One shard: the live keys and their expiry queue, always holding the same keys.
struct Shard {
    set: HashSet<u128, BuildPassThrough>,
    /// `(expiry, key)` in insertion order, hence in expiry order (see `last_expiry`).
    queue: VecDeque<Entry>,
    /// The newest expiry handed out; a clock going backwards is clamped to it so that the
    /// queue stays sorted.
    last_expiry: u64,
}

/// A queue slot: the key as two words keeps it 24 bytes (a `u128` would align it to 32).
#[derive(Clone, Copy)]
struct Entry {
    expiry: u64,
    key: [u64; 2],
}

/// A `BuildHasher` whose hasher passes the first 8 bytes of a key through unchanged.
#[derive(Clone, Copy, Default)]
struct BuildPassThrough;

/// The hasher of [`BuildPassThrough`].
#[derive(Default)]
struct PassThrough(u64);

// === impl MemoryStore ===

impl MemoryStore {
    /// A store of at most `capacity` live entries, each living `ttl_secs`; expired entries
    /// are counted in `expired`.
    pub fn new(capacity: usize, ttl_secs: u64, expired: IntCounter) -> Self {
        let shard_count = shard_count_for(capacity);
        let per_shard = capacity.div_ceil(shard_count);
        let shards = (0..shard_count)
            .map(|_| {
                Mutex::new(Shard {
                    set: HashSet::with_hasher(BuildPassThrough),
                    queue: VecDeque::new(),
                    last_expiry: 0,
                })
            })
            .collect();
        Self {
            shards,
            shard_mask: shard_count - 1,
            per_shard,
            capacity,
            ttl_secs,
            len: AtomicUsize::new(0),
            expired,
            per_key: None,
        }
    }

    /// The store with at most `limit` live entries per proof key (`replay_cache.per_key_limit`).
    pub fn with_per_key_limit(mut self, limit: u64) -> Self {
        let max_keys = u64::try_from(self.capacity).unwrap_or(u64::MAX);
        self.per_key = Some(PerKey::new(limit, self.ttl_secs, max_keys));
        self
    }

    /// Records `key`, a proof of the key whose thumbprint is `jkt`, unless a live entry has
    /// it or `jkt` already holds its limit of live entries
    /// ([`Admission::KeyLimited`], with the seconds until its oldest entry expires). A replay
    /// is answered as a replay whatever the limit.
    pub fn admit(
        &self,
        key: [u8; 16],
        jkt: &[u8; 32],
        now: UnixTime,
    ) -> Result<Admission, StoreError> {
        let Some(per_key) = &self.per_key else {
            return self.check_and_insert(key, now);
        };
        // Held across the insert: two proofs of one key cannot both take its last slot. The
        // order is always window, then shard.
        let window = per_key.lock(jkt);
        let mut locked = window.at(now.as_secs());
        if let Some(retry_after) = locked.over() {
            if self.contains(key, now) {
                return Ok(Admission::Replayed);
            }
            return Ok(Admission::KeyLimited { retry_after });
        }
        let admission = self.check_and_insert(key, now)?;
        if admission == Admission::Fresh {
            locked.record();
        }
        Ok(admission)
    }

    /// Whether a live entry has `key` (sweeping its shard first, as an insert does).
    fn contains(&self, key: [u8; 16], now: UnixTime) -> bool {
        let key = u128::from_le_bytes(key);
        let mut shard = self.shard(key);
        let swept = shard.sweep(now.as_secs());
        if swept > 0 {
            self.len.fetch_sub(swept, Ordering::Relaxed);
            self.expired.inc_by(swept as u64);
        }
        shard.set.contains(&key)
    }

    /// Records `key` unless a live entry has it.
    ///
    /// A full shard answers [`StoreError::Full`] with the seconds until its oldest entry
    /// expires; it never evicts a live entry (that would let a replay through).
    pub fn check_and_insert(&self, key: [u8; 16], now: UnixTime) -> Result<Admission, StoreError> {
        let key = u128::from_le_bytes(key);
        let now = now.as_secs();
        let mut shard = self.shard(key);

        let swept = shard.sweep(now);
        if swept > 0 {
            self.len.fetch_sub(swept, Ordering::Relaxed);
            self.expired.inc_by(swept as u64);
        }

        if shard.set.contains(&key) {
            return Ok(Admission::Replayed);
        }
        if shard.set.len() >= self.per_shard {
            // The front is the oldest live entry; it is swept once `now > expiry`.
            let retry_after = shard
                .queue
                .front()
                .map_or(self.ttl_secs, |e| e.expiry.saturating_sub(now))
                .saturating_add(1);
            return Err(StoreError::Full { retry_after });
        }

        let expiry = now.saturating_add(self.ttl_secs).max(shard.last_expiry);
        shard.last_expiry = expiry;
        shard.set.insert(key);
        shard.queue.push_back(Entry {
            expiry,
            key: split(key),
        });
        self.len.fetch_add(1, Ordering::Relaxed);
        Ok(Admission::Fresh)
    }

    /// Live entries (approximate while others insert; expired entries count until swept).
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// Whether the store holds no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The configured capacity.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The shard for `key`, locked. A poisoned lock is taken over: a shard's set and queue
    /// are updated together with no panic point between them.
    fn shard(&self, key: u128) -> MutexGuard<'_, Shard> {
        // The high 64 bits pick the shard; the low 64 bits are the set's hash.
        let index = ((key >> 64) as usize) & self.shard_mask;
        let mutex = &self.shards[index];
        mutex
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A power of two in `1..=MAX_SHARDS`, with at least `MIN_PER_SHARD` entries a shard when the
/// capacity allows.
fn shard_count_for(capacity: usize) -> usize {
    let wanted = (capacity / MIN_PER_SHARD).clamp(1, MAX_SHARDS);
    // The largest power of two not above `wanted`.
    1 << wanted.ilog2()
}

fn split(key: u128) -> [u64; 2] {
    [key as u64, (key >> 64) as u64]
}

fn join(key: [u64; 2]) -> u128 {
    u128::from(key[0]) | (u128::from(key[1]) << 64)
}

// === impl Shard ===

impl Shard {
    /// Removes entries expired at `now` from the front; returns how many.
    fn sweep(&mut self, now: u64) -> usize {
        let mut swept = 0;
        while let Some(front) = self.queue.front() {
            if front.expiry >= now {
                break;
            }
            let key = join(front.key);
            self.set.remove(&key);
            self.queue.pop_front();
            swept += 1;
        }
        swept
    }
}

// === impl BuildPassThrough ===

impl BuildHasher for BuildPassThrough {
    type Hasher = PassThrough;

    fn build_hasher(&self) -> PassThrough {
        PassThrough(0)
    }
}

// === impl PassThrough ===

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write_u128(&mut self, v: u128) {
        // The low 64 bits are the key's first 8 bytes (it was read little-endian).
        self.0 = v as u64;
    }

    fn write(&mut self, bytes: &[u8]) {
        // Not reached for u128 keys; folds anything else so the hasher stays total.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // reason: tests
mod tests {
    use std::sync::Arc;

    use super::*;

    fn counter() -> IntCounter {
        IntCounter::new("expired", "expired").unwrap()
    }

    #[test]
    fn a_key_over_its_limit_is_refused_and_other_keys_are_not() {
        let store = MemoryStore::new(1000, 60, counter()).with_per_key_limit(2);
        let (a, b) = ([1u8; 32], [2u8; 32]);
        assert_eq!(store.admit(key(1), &a, T0), Ok(Admission::Fresh));
        assert_eq!(store.admit(key(2), &a, T0), Ok(Admission::Fresh));
        assert_eq!(
            store.admit(key(3), &a, T0),
            Ok(Admission::KeyLimited { retry_after: 61 })
        );
        // A replay is still a replay, over the limit or not.
        assert_eq!(store.admit(key(1), &a, T0), Ok(Admission::Replayed));
        assert_eq!(store.admit(key(4), &b, T0), Ok(Admission::Fresh));
        // Refused proofs were not recorded: the store holds 3 entries.
        assert_eq!(store.len(), 3);
        // Once the oldest expire, the key records again.
        let later = UnixTime(T0.as_secs() + 61);
        assert_eq!(store.admit(key(3), &a, later), Ok(Admission::Fresh));
    }

    const T0: UnixTime = UnixTime(1_700_000_000);

    /// A key whose shard bits (bytes 8..16) are `shard` and whose hash bits are `n`.
    fn key_in_shard(shard: u64, n: u64) -> [u8; 16] {
        join([n.wrapping_mul(0x9E37_79B9_7F4A_7C15), shard]).to_le_bytes()
    }

    fn key(n: u64) -> [u8; 16] {
        join([n.wrapping_mul(0x9E37_79B9_7F4A_7C15), n]).to_le_bytes()
    }

    #[test]
    fn first_use_is_fresh_and_second_is_replayed() {
        let store = MemoryStore::new(1000, 60, counter());
        assert_eq!(store.check_and_insert(key(1), T0), Ok(Admission::Fresh));
        assert_eq!(store.check_and_insert(key(1), T0), Ok(Admission::Replayed));
        assert_eq!(store.check_and_insert(key(2), T0), Ok(Admission::Fresh));
        assert_eq!(store.len(), 2);
    }

    #[test]
    fn entry_is_live_through_its_expiry_second() {
        let store = MemoryStore::new(1000, 60, counter());
        store.check_and_insert(key(1), T0).unwrap();
        let at_expiry = UnixTime(T0.0 + 60);
        assert_eq!(
            store.check_and_insert(key(1), at_expiry),
            Ok(Admission::Replayed)
        );
    }

    #[test]
    fn expiry_frees_the_entry() {
        let store = MemoryStore::new(1000, 60, counter());
        store.check_and_insert(key(1), T0).unwrap();
        let after = UnixTime(T0.0 + 61);
        assert_eq!(store.check_and_insert(key(2), after), Ok(Admission::Fresh));
        assert_eq!(store.len(), 1, "key 1 swept");
        assert_eq!(store.expired.get(), 1);
        assert_eq!(store.check_and_insert(key(1), after), Ok(Admission::Fresh));
    }

    #[test]
    fn clock_going_backwards_keeps_entries_live_and_ordered() {
        let store = MemoryStore::new(10, 60, counter());
        store.check_and_insert(key(1), T0).unwrap();
        // Inserted "earlier", but it must not expire before key 1.
        store.check_and_insert(key(2), UnixTime(T0.0 - 30)).unwrap();
        let later = UnixTime(T0.0 + 61);
        store.check_and_insert(key(3), later).unwrap();
        assert_eq!(store.len(), 1, "both swept once past the clamped expiry");
    }

    #[test]
    fn full_store_refuses_with_seconds_until_the_oldest_expires() {
        let store = MemoryStore::new(3, 60, counter());
        assert_eq!(store.shards.len(), 1);
        store.check_and_insert(key(1), T0).unwrap();
        store.check_and_insert(key(2), UnixTime(T0.0 + 10)).unwrap();
        store.check_and_insert(key(3), UnixTime(T0.0 + 20)).unwrap();
        let now = UnixTime(T0.0 + 30);
        assert_eq!(
            store.check_and_insert(key(4), now),
            Err(StoreError::Full { retry_after: 31 })
        );
        assert_eq!(store.len(), 3);
    }

    #[test]
    fn full_store_still_reports_replays_and_evicts_nothing() {
        let store = MemoryStore::new(2, 60, counter());
        store.check_and_insert(key(1), T0).unwrap();
        store.check_and_insert(key(2), T0).unwrap();
        assert!(store.check_and_insert(key(3), T0).is_err());
        assert_eq!(store.check_and_insert(key(1), T0), Ok(Admission::Replayed));
        assert_eq!(store.check_and_insert(key(2), T0), Ok(Admission::Replayed));
    }

    #[test]
    fn full_store_retry_after_is_at_least_one_second() {
        let store = MemoryStore::new(1, 60, counter());
        store.check_and_insert(key(1), T0).unwrap();
        let at_expiry = UnixTime(T0.0 + 60);
        assert_eq!(
            store.check_and_insert(key(2), at_expiry),
            Err(StoreError::Full { retry_after: 1 })
        );
        let after = UnixTime(T0.0 + 61);
        assert_eq!(store.check_and_insert(key(2), after), Ok(Admission::Fresh));
    }

    #[test]
    fn capacity_not_divisible_by_shard_count_rounds_each_shard_up() {
        // 5000 / 1024 -> 4 shards of ceil(5000 / 4) = 1250.
        let store = MemoryStore::new(5000, 60, counter());
        assert_eq!(store.shards.len(), 4);
        assert_eq!(store.capacity(), 5000);
        for n in 0..1250 {
            assert_eq!(
                store.check_and_insert(key_in_shard(2, n), T0),
                Ok(Admission::Fresh)
            );
        }
        assert!(matches!(
            store.check_and_insert(key_in_shard(2, 1250), T0),
            Err(StoreError::Full { .. })
        ));
        assert_eq!(
            store.check_and_insert(key_in_shard(3, 0), T0),
            Ok(Admission::Fresh)
        );
    }

    #[test]
    fn large_capacity_uses_all_shards() {
        let store = MemoryStore::new(1_000_000, 60, counter());
        assert_eq!(store.shards.len(), MAX_SHARDS);
        assert_eq!(store.per_shard, 15_625);
        let odd = MemoryStore::new(1_000_001, 60, counter());
        assert_eq!(odd.per_shard, 15_626);
    }

    #[test]
    fn concurrent_copies_of_one_key_admit_exactly_one() {
        let store = Arc::new(MemoryStore::new(1_000_000, 60, counter()));
        let fresh = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..50 {
                        if store.check_and_insert(key(42), T0) == Ok(Admission::Fresh) {
                            fresh.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        assert_eq!(fresh.load(Ordering::Relaxed), 1);
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn pass_through_hasher_uses_the_first_eight_bytes() {
        let k = u128::from_le_bytes([1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 9, 9, 9, 9, 9]);
        let h = BuildPassThrough.hash_one(k);
        assert_eq!(h, u64::from_le_bytes([1, 2, 3, 4, 5, 6, 7, 8]));
    }

    /// Prints the RSS a million live entries cost. Run with
    /// `cargo test --release --lib replay::memory -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn memory_for_a_million_live_entries() {
        fn rss_kib() -> u64 {
            let status = std::fs::read_to_string("/proc/self/status").unwrap();
            let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
            line.split_whitespace().nth(1).unwrap().parse().unwrap()
        }
        let before = rss_kib();
        let store = MemoryStore::new(1_000_000, 60, counter());
        let mut n = 0u64;
        while store.len() < 1_000_000 {
            // Keys as a digest would give them: spread over every bit.
            let mut k = [0u8; 16];
            k[..8].copy_from_slice(&n.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes());
            k[8..].copy_from_slice(
                &n.wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
                    .rotate_left(17)
                    .to_le_bytes(),
            );
            let _ = store.check_and_insert(k, T0);
            n += 1;
        }
        let after = rss_kib();
        println!(
            "1M live entries: {} KiB RSS ({:.1} MiB), {n} inserts tried",
            after - before,
            (after - before) as f64 / 1024.0
        );
    }

    /// The per-key windows' cost in the worst case for them: a million live entries, each of
    /// its own key. `cargo test --release --lib per_key_windows -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn memory_for_per_key_windows_of_a_million_keys() {
        fn rss_kib() -> u64 {
            let status = std::fs::read_to_string("/proc/self/status").unwrap();
            let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
            line.split_whitespace().nth(1).unwrap().parse().unwrap()
        }
        let before = rss_kib();
        let store = MemoryStore::new(1_000_000, 60, counter()).with_per_key_limit(6500);
        let mut n = 0u64;
        while store.len() < 1_000_000 {
            let mut k = [0u8; 16];
            k[..8].copy_from_slice(&n.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes());
            k[8..].copy_from_slice(&n.wrapping_mul(0xC2B2_AE3D_27D4_EB4F).to_le_bytes());
            let mut jkt = [0u8; 32];
            jkt[..16].copy_from_slice(&k);
            let _ = store.admit(k, &jkt, T0);
            n += 1;
        }
        let after = rss_kib();
        println!(
            "1M live entries of 1M keys, with per-key windows: {} KiB RSS ({:.1} MiB)",
            after - before,
            (after - before) as f64 / 1024.0
        );
    }
}
