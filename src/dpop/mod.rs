//! DPoP proof verification (RFC 9449 §4.3). Pure: no I/O, no tokio, no hyper, no clock reads;
//! `now` is an argument so every check is a unit test with a fixed time.
//!
//! What is *not* here: the replay check (the pipeline asks the replay store with
//! [`VerifiedProof::replay_key`] as the last step, so that only fully valid proofs use an
//! entry), the nonce check (`crate::nonce`) and the token binding (`crate::token`).

pub mod error;
pub mod htu;

pub use error::{ProofCheck, ProofError};

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

/// A proof that passed every check in this module. Only [`verify`] builds one.
#[derive(Clone, Debug)]
pub struct VerifiedProof {
    jkt: Thumbprint,
    jti: String,
    iat: UnixTime,
    alg: Algorithm,
    nonce: Option<String>,
}

// === impl VerifiedProof ===

impl VerifiedProof {
    /// The RFC 7638 thumbprint of the proof's key.
    pub fn jkt(&self) -> Thumbprint {
        self.jkt
    }

    /// The proof's `jti`.
    pub fn jti(&self) -> &str {
        &self.jti
    }

    /// The proof's `iat`.
    pub fn iat(&self) -> UnixTime {
        self.iat
    }

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
        todo!()
    }
}

/// Runs every RFC 9449 §4.3 check that needs no state, in the RFC's order.
pub fn verify(
    proof: &str,
    request: &ProofRequest<'_>,
    policy: &ProofPolicy,
    now: UnixTime,
) -> Result<VerifiedProof, ProofError> {
    todo!("{proof}{request:?}{policy:?}{now:?}")
}
