//! JOSE building blocks shared by DPoP proofs and JWT access tokens: compact JWS parsing,
//! public JWKs and their RFC 7638 thumbprints, the algorithm allow-list and signature
//! verification with ring. Pure: no I/O, no clock.
//!
//! `sign` is the client side (keygen, proof minting) used by the CLI, tests and benches.

pub(crate) mod alg;
pub(crate) mod json;
pub(crate) mod jwk;
pub(crate) mod jws;
pub mod sign;

pub use alg::{Algorithm, AlgorithmSet};
pub use jwk::{JwkError, PublicJwk, Thumbprint};
pub use jws::{CompactJws, JwsError, JwsPart, JwsParts};

/// base64url without padding (RFC 7515 §2), the only encoding JOSE uses.
pub(crate) use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;

/// At most 128 characters of a client- or token-supplied value, for error messages.
pub(crate) fn clip(s: &str) -> &str {
    clip_to(s, 128)
}

/// At most `max` characters of `s`: the one clipping rule for values quoted in errors.
pub(crate) fn clip_to(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}
