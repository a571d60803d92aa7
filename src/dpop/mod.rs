//! DPoP proof verification (RFC 9449 §4.3). No I/O, no tokio, no hyper, no clock reads; `now`
//! is an argument so every check is a unit test with a fixed time.
//!
//! Files: `verifier` (split and decode the JWS, the header cache, the signature), `header`
//! (points 3-5 and 7), `claims` (points 8-12), `error` (every refusal and the check it failed),
//! `htu` (RFC 3986 normalisation for point 9), `explain` (the same checks, narrated).
//!
//! [`verify`] checks a proof from scratch. [`ProofVerifier`], which the request path uses, runs
//! the same checks with a bounded in-memory cache of proof headers that passed them: a client
//! reuses one key, so the protected header (`typ`, `alg`, `jwk`) of all its proofs is the same
//! text, and a hit skips decoding and parsing the header, parsing its `jwk` and the RFC 7638
//! thumbprint. The signature and the claims are checked on every proof; a result never depends
//! on the cache.
//!
//! Header and claims are parsed with serde into typed views that borrow from the decoded bytes
//! (`jose::json`), not into `serde_json::Map`s; a member the checks read that appears twice is
//! refused ([`ProofError::HeaderDuplicateMember`], [`ProofError::ClaimsDuplicateMember`]).
//!
//! What is *not* here: the replay check (the pipeline asks the replay store with
//! [`VerifiedProof::replay_key`] as the last step, so that only fully valid proofs use an
//! entry), the nonce check (`crate::nonce`) and the token binding (`crate::token`).

mod claims;
pub(crate) mod error;
pub(crate) mod explain;
mod header;
pub mod htu;
mod verifier;

pub use error::{ProofCheck, ProofError, MAX_JTI_BYTES};
pub use verifier::{verify, ProofVerifier, HEADER_CACHE_BYTES};

use claims::{check_ath, check_claims, check_htm, check_htu, check_iat, check_jti, parse_claims};
use header::{check_header, check_header_json, parse_header, CheckedHeader};

use crate::clock::UnixTime;
use crate::jose::{Algorithm, AlgorithmSet, Thumbprint};

/// What the gateway's configuration says about proofs.
#[derive(Clone, Debug)]
pub struct ProofPolicy {
    /// Allowed `alg` values (`dpop.algorithms`).
    pub algorithms: AlgorithmSet,
    /// How old `iat` may be, in seconds (`dpop.proof_max_age`).
    pub max_age: u64,
    /// How far ahead of `now` `iat` may be, in seconds (`dpop.clock_skew`).
    pub clock_skew: u64,
    /// Longest accepted proof, in bytes (`limits.max_proof_bytes`).
    pub max_proof_bytes: usize,
    /// Whether `ath` is required when an access token is presented (`dpop.require_ath`).
    pub require_ath: bool,
}

/// The request a proof must match.
#[derive(Clone, Copy, Debug)]
pub struct ProofRequest<'a> {
    /// The request method, e.g. `GET`.
    pub method: &'a str,
    /// The request URI as the client addressed it (scheme, authority, path; query and fragment
    /// are ignored), computed by the gateway from `public_url` or the request; normalised here.
    pub htu: &'a str,
    /// The access token presented with the proof, if any (for `ath`).
    pub access_token: Option<&'a str>,
}

/// A proof that passed every check in this module. Only [`verify`] and [`ProofVerifier::verify`]
/// build one.
#[derive(Clone, Debug)]
pub struct VerifiedProof {
    jkt: Thumbprint,
    jti: String,
    iat: UnixTime,
    /// Which algorithm verified the signature; only tests read it so far.
    #[cfg_attr(not(test), allow(dead_code))]
    alg: Algorithm,
    nonce: Option<String>,
}

/// The thumbprint of a key whose signature verified on a proof (RFC 9449 §4.3 point 6). Only
/// this module builds one, and only once the signature checked out: what the access log may
/// name for a refused request, never the key an unverified proof merely claims.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignedBy(Thumbprint);

/// A refused proof: the failed check, and the key that signed the proof when the failure came
/// after the signature verified (a claim: `jti`, `htm`, `htu`, `iat`, `ath`, `nonce`).
#[derive(Debug)]
pub struct Refused {
    /// The failed check.
    pub error: ProofError,
    /// The signer, when the signature had verified.
    pub signed_by: Option<SignedBy>,
}

// === impl SignedBy ===

impl SignedBy {
    /// The RFC 7638 thumbprint of the key.
    pub fn jkt(&self) -> Thumbprint {
        self.0
    }
}

// === impl Refused ===

impl From<ProofError> for Refused {
    /// A refusal before (or of) the signature: no signer is known.
    fn from(error: ProofError) -> Self {
        Refused {
            error,
            signed_by: None,
        }
    }
}

// === impl VerifiedProof ===

impl VerifiedProof {
    /// The RFC 7638 thumbprint of the proof's key.
    pub fn jkt(&self) -> Thumbprint {
        self.jkt
    }

    /// The proof's key, as a verified signer.
    pub fn signed_by(&self) -> SignedBy {
        SignedBy(self.jkt)
    }

    #[cfg(test)]
    /// The proof's `jti`.
    pub fn jti(&self) -> &str {
        &self.jti
    }

    /// The proof's `iat`.
    pub fn iat(&self) -> UnixTime {
        self.iat
    }

    #[cfg(test)]
    /// The proof's `alg`.
    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// The proof's `nonce` claim, if any.
    pub fn nonce(&self) -> Option<&str> {
        self.nonce.as_deref()
    }

    /// A 128-bit key for the replay store: SHA-256 over (thumbprint, jti), truncated. Scoping the
    /// jti by key means one client cannot burn another's jti values (RFC 9449 §11.1).
    pub fn replay_key(&self) -> [u8; 16] {
        // The thumbprint has a fixed length, so (jkt, jti) pairs cannot collide by concatenation.
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(self.jkt.as_bytes());
        ctx.update(self.jti.as_bytes());
        let digest = ctx.finish();
        let mut key = [0u8; 16];
        key.copy_from_slice(&digest.as_ref()[..16]);
        key
    }
}

#[cfg(test)]
mod tests;
