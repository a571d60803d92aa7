//! The replay store: `jti` single use (RFC 9449 §11.1). One atomic insert-if-absent per proof,
//! shared by every connection and core; the Redis backend shares it between replicas.

pub mod memory;
pub mod redis;

use crate::clock::UnixTime;

/// What the store says about a proof's key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// First use: recorded now.
    Fresh,
    /// Seen before within the window: a replay.
    Replayed,
}

/// Why the store could not answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreError {
    /// The memory store is full of live entries; none is evicted (that would reopen a replay
    /// window). The oldest expires in `retry_after` seconds (at least 1).
    Full {
        /// Seconds until a slot frees.
        retry_after: u64,
    },
    /// The backend is unreachable or slower than its timeout.
    Unavailable(String),
}

/// The configured store.
pub enum ReplayStore {
    /// In-process.
    Memory(memory::MemoryStore),
    /// Shared by every replica through Redis.
    Redis(redis::RedisStore),
}

// === impl ReplayStore ===

impl ReplayStore {
    /// Records `key` unless present; atomic across all callers of this store.
    pub async fn check_and_insert(
        &self,
        key: [u8; 16],
        now: UnixTime,
    ) -> Result<Admission, StoreError> {
        match self {
            ReplayStore::Memory(m) => m.check_and_insert(key, now),
            ReplayStore::Redis(r) => r.check_and_insert(key, now).await,
        }
    }
}
