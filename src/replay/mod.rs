//! The replay store: `jti` single use (RFC 9449 §11.1). One atomic insert-if-absent per proof,
//! shared by every connection and core; the Redis backend shares it between replicas.

pub mod memory;
mod per_key;
pub(crate) mod redis;

use crate::clock::UnixTime;

/// What the store says about a proof's key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// First use: recorded now.
    Fresh,
    /// Seen before within the window: a replay.
    Replayed,
    /// Not recorded: the proof's key already holds `replay_cache.per_key_limit` live entries.
    /// Its oldest expires in `retry_after` seconds (at least 1).
    KeyLimited {
        /// Seconds until that key may record another proof.
        retry_after: u64,
    },
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

/// The replay window a restart would reopen, closed (memory backend): a new process has an
/// empty store, so a proof accepted just before the restart would be accepted again. A proof
/// whose `iat` is earlier than the whole second in which this process started can only have
/// been checked by a previous process; it is refused until every such proof is past its
/// window (`proof_max_age + clock_skew` after the start), after which the `iat` check refuses
/// it anyway. The price: a request signed before a restart and arriving after it is refused,
/// and the client retries with a fresh proof. Pure: the caller passes `now`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcessStart {
    /// The whole second in which the process started.
    start: UnixTime,
    /// `proof_max_age + clock_skew`, in seconds.
    window: u64,
}

/// A proof the rule of [`ProcessStart`] refuses: issued before the process started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IssuedBeforeStart {
    /// The proof's `iat`.
    pub iat: UnixTime,
    /// The whole second in which the process started.
    pub start: UnixTime,
}

/// The configured store.
pub enum ReplayStore {
    /// In-process.
    Memory(memory::MemoryStore),
    /// Shared by every replica through Redis.
    Redis(redis::RedisStore),
}

// === impl ProcessStart ===

impl ProcessStart {
    /// The rule for a process started at `start` (truncated to the whole second) with replay
    /// entries living `window` seconds.
    pub fn new(start: UnixTime, window: u64) -> Self {
        Self { start, window }
    }

    /// `Err` when a proof issued at `iat` may have been accepted by a previous process and
    /// `now` is still within that proof's window.
    pub fn check(&self, iat: UnixTime, now: UnixTime) -> Result<(), IssuedBeforeStart> {
        let open = now.as_secs() <= self.start.as_secs().saturating_add(self.window);
        if open && iat.as_secs() < self.start.as_secs() {
            return Err(IssuedBeforeStart {
                iat,
                start: self.start,
            });
        }
        Ok(())
    }
}

// === impl ReplayStore ===

impl ReplayStore {
    /// Records `key`, a proof signed by the key whose thumbprint is `jkt`, unless present or
    /// `jkt` holds its limit of live entries; atomic across all callers of this store.
    pub async fn check_and_insert(
        &self,
        key: [u8; 16],
        jkt: &[u8; 32],
        now: UnixTime,
    ) -> Result<Admission, StoreError> {
        match self {
            ReplayStore::Memory(m) => m.admit(key, jkt, now),
            ReplayStore::Redis(r) => r.check_and_insert(key, jkt, now).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const START: UnixTime = UnixTime(1_700_000_000);

    #[test]
    fn a_proof_issued_before_the_start_second_is_refused_within_its_window() {
        let rule = ProcessStart::new(START, 65);
        let before = UnixTime(START.as_secs() - 1);
        assert_eq!(
            rule.check(before, START),
            Err(IssuedBeforeStart {
                iat: before,
                start: START
            })
        );
        assert!(rule.check(before, UnixTime(START.as_secs() + 65)).is_err());
        // Past the window the `iat` check refuses it; this rule no longer has to.
        assert!(rule.check(before, UnixTime(START.as_secs() + 66)).is_ok());
    }

    #[test]
    fn a_proof_issued_in_or_after_the_start_second_is_not_concerned() {
        let rule = ProcessStart::new(START, 65);
        assert!(rule.check(START, START).is_ok());
        assert!(rule.check(UnixTime(START.as_secs() + 3), START).is_ok());
    }
}
