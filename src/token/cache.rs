//! The verified-token cache: a moka cache keyed by SHA-256(token) whose entries never outlive
//! the token's `exp`. No I/O, no clock read: expiry is computed from the `now` the caller
//! passes, and a hit is still checked against `now` by the validator (the gateway's clock may be
//! a fixed clock while moka's runs).

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::sync::Cache;
use moka::Expiry;

use super::TokenInfo;

/// A token's cache key: SHA-256 of the token text. The token itself is never stored.
pub(crate) type TokenKey = [u8; 32];

/// Verified tokens, bounded in number and in lifetime.
pub(crate) struct TokenCache {
    inner: Cache<TokenKey, CachedToken>,
}

/// What is remembered about a verified token.
#[derive(Clone, Debug)]
pub(crate) struct CachedToken {
    /// What the token says.
    pub info: Arc<TokenInfo>,
    /// Its `nbf`, re-checked on every hit.
    pub nbf: Option<u64>,
    /// The key-set generation it was verified under; a hit from an older one is a miss.
    pub generation: u64,
    /// How long moka keeps it: until `exp`, at most [`MAX_TTL`].
    ttl: Duration,
}

/// The longest a verdict is cached, whatever the token's `exp`: long-lived tokens are re-verified
/// this often, and moka never sees a duration that could overflow its clock.
pub(crate) const MAX_TTL: Duration = Duration::from_secs(3600);

/// Per-entry expiry for moka: each entry lives its own [`Ttl::ttl`].
pub(crate) struct OwnTtl;

/// A cached value that knows how long it may live.
pub(crate) trait Ttl {
    /// How long moka keeps it.
    fn ttl(&self) -> Duration;
}

// === impl TokenCache ===

impl TokenCache {
    /// A cache of at most `capacity` tokens.
    pub(crate) fn new(capacity: u64) -> Self {
        Self {
            inner: Cache::builder()
                .max_capacity(capacity)
                .expire_after(OwnTtl)
                .build(),
        }
    }

    /// The cache key of `token`.
    pub(crate) fn key(token: &str) -> TokenKey {
        let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
        let mut key = [0u8; 32];
        key.copy_from_slice(digest.as_ref());
        key
    }

    /// The entry for `key`, if cached and not yet expired by moka.
    pub(crate) fn get(&self, key: &TokenKey) -> Option<CachedToken> {
        self.inner.get(key)
    }

    /// Remembers a verified token until its `exp` (seen from `now`). A token without `exp`, or
    /// already at it, is not cached.
    pub(crate) fn insert(
        &self,
        key: TokenKey,
        info: Arc<TokenInfo>,
        nbf: Option<u64>,
        generation: u64,
        now: u64,
    ) {
        let Some(exp) = info.exp else { return };
        let secs = exp.as_secs().saturating_sub(now);
        if secs == 0 {
            return;
        }
        let ttl = Duration::from_secs(secs).min(MAX_TTL);
        self.inner.insert(
            key,
            CachedToken {
                info,
                nbf,
                generation,
                ttl,
            },
        );
    }

    /// Drops `key`.
    #[cfg(test)]
    pub(crate) fn remove(&self, key: &TokenKey) {
        self.inner.invalidate(key);
    }

    /// Drops every entry (a key-set change).
    pub(crate) fn clear(&self) {
        self.inner.invalidate_all();
    }
}

// === impl OwnTtl ===

impl<V: Ttl> Expiry<TokenKey, V> for OwnTtl {
    fn expire_after_create(&self, _: &TokenKey, value: &V, _: Instant) -> Option<Duration> {
        Some(value.ttl())
    }

    fn expire_after_update(
        &self,
        _: &TokenKey,
        value: &V,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.ttl())
    }
}

impl Ttl for CachedToken {
    fn ttl(&self) -> Duration {
        self.ttl
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::UnixTime;

    fn info(exp: u64) -> Arc<TokenInfo> {
        Arc::new(TokenInfo {
            exp: Some(UnixTime(exp)),
            ..TokenInfo::default()
        })
    }

    #[test]
    fn hit_returns_the_same_arc() {
        let cache = TokenCache::new(10);
        let key = TokenCache::key("t");
        let i = info(1_000);
        cache.insert(key, Arc::clone(&i), None, 0, 900);
        assert!(Arc::ptr_eq(&cache.get(&key).unwrap().info, &i));
        assert!(cache.get(&TokenCache::key("u")).is_none());
    }

    #[test]
    fn tokens_at_or_past_exp_are_not_cached() {
        let cache = TokenCache::new(10);
        let key = TokenCache::key("t");
        cache.insert(key, info(1_000), None, 0, 1_000);
        assert!(cache.get(&key).is_none());
        let no_exp = Arc::new(TokenInfo::default());
        cache.insert(key, no_exp, None, 0, 1);
        assert!(cache.get(&key).is_none());
    }

    #[test]
    fn clear_and_remove_drop_entries() {
        let cache = TokenCache::new(10);
        let (a, b) = (TokenCache::key("a"), TokenCache::key("b"));
        cache.insert(a, info(1_000), None, 0, 900);
        cache.insert(b, info(1_000), None, 0, 900);
        cache.remove(&a);
        assert!(cache.get(&a).is_none());
        assert!(cache.get(&b).is_some());
        cache.clear();
        assert!(cache.get(&b).is_none());
    }

    #[test]
    fn ttl_is_capped() {
        let cache = TokenCache::new(10);
        let key = TokenCache::key("t");
        cache.insert(key, info(u64::MAX), None, 0, 0);
        assert_eq!(cache.get(&key).unwrap().ttl, MAX_TTL);
    }
}
