//! JWT access tokens (RFC 9068 §4): typ, alg allow-list, key by `kid`, signature, iss, aud,
//! exp/nbf with leeway, and the `cnf.jkt` shape. The checks are pure (`now` is an argument).

use std::sync::Arc;

use crate::clock::UnixTime;
use crate::jose::{AlgorithmSet, PublicJwk};

use super::{TokenError, TokenInfo};

/// A JWKS: the authorization server's public keys.
#[derive(Clone, Debug, Default)]
pub struct JwkSet {
    /// The usable keys (entries that failed to parse, or with `use` other than `sig`, are skipped).
    pub keys: Vec<PublicJwk>,
}

/// What `access_token` says about JWTs.
#[derive(Clone, Debug)]
pub struct JwtPolicy {
    /// Expected `iss`.
    pub issuer: String,
    /// Expected `aud` (a member of the `aud` array, or the `aud` string).
    pub audience: String,
    /// Allowed `alg`.
    pub algorithms: AlgorithmSet,
    /// Leeway for exp/nbf, seconds.
    pub leeway: u64,
    /// `typ` must be `at+jwt` / `application/at+jwt`.
    pub require_typ: bool,
}

/// Validates JWT access tokens against a key set, caching verified tokens.
pub struct JwtValidator {
    _private: (),
}

impl JwkSet {
    /// Parses a JWKS document (`{"keys": [...]}`).
    pub fn from_json(bytes: &[u8]) -> Result<JwkSet, TokenError> {
        todo!("{bytes:?}")
    }
}

impl JwtValidator {
    /// A validator with these keys; `cache_capacity` bounds the verified-token cache.
    pub fn new(policy: JwtPolicy, keys: JwkSet, cache_capacity: u64) -> Self {
        todo!("{policy:?}{keys:?}{cache_capacity}")
    }

    /// Replaces the key set (a JWKS reload); cached tokens signed by removed keys are dropped.
    pub fn set_keys(&self, keys: JwkSet) {
        todo!("{keys:?}")
    }

    /// Validates `token` at `now`; a cache hit costs a hash, not a signature check.
    pub fn validate(&self, token: &str, now: UnixTime) -> Result<Arc<TokenInfo>, TokenError> {
        todo!("{token}{now:?}")
    }
}
