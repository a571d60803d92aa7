//! The in-process replay store: a sharded set of 128-bit keys with FIFO expiry.
//!
//! Why not moka: a moka cache of a million u128 keys costs about 300 MiB, and its TinyLFU
//! admission and size-based eviction can drop a live entry, reopening a replay window. Entries
//! here all live the same `ttl`, so each shard's insertion order is its expiry order: expired
//! entries are swept from the front, a live entry is never evicted, and a full shard refuses.

use crate::clock::UnixTime;

use super::{Admission, StoreError};

/// The in-process replay store.
pub struct MemoryStore {
    _private: (),
}

impl MemoryStore {
    /// A store of at most `capacity` live entries, each living `ttl_secs`.
    pub fn new(capacity: usize, ttl_secs: u64) -> Self {
        todo!("{capacity}{ttl_secs}")
    }

    /// Records `key` unless a live entry has it.
    pub fn check_and_insert(&self, key: [u8; 16], now: UnixTime) -> Result<Admission, StoreError> {
        todo!("{key:?}{now:?}")
    }

    /// Live entries (approximate while others insert).
    pub fn len(&self) -> usize {
        todo!()
    }

    /// Whether the store holds no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The configured capacity.
    pub fn capacity(&self) -> usize {
        todo!()
    }
}
