//! What the targets share: the fixed time, the request the RFC 9449 vectors were made for, the
//! policy that accepts every algorithm, the demo issuer's keys.

#![allow(dead_code, unreachable_pub)]

use dpop_gateway::clock::UnixTime;
use dpop_gateway::dpop::ProofPolicy;
use dpop_gateway::jose::Algorithm;

/// RFC 9449 Figure 2's `iat`: the published proof is fresh at this time, and the generated
/// seeds are minted for it.
pub const NOW: UnixTime = UnixTime(1_562_262_616);

/// The request RFC 9449 Figure 2 is for.
pub const HTM: &str = "POST";
/// The URL RFC 9449 Figure 2 is for.
pub const HTU: &str = "https://server.example.com/token";
/// The access token of RFC 9449 §7.1 (the `ath` vector).
pub const ACCESS_TOKEN: &str = "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU";

/// The demo issuer's public keys (`config/demo/jwks.json`).
pub const DEMO_JWKS: &str = include_str!("../../config/demo/jwks.json");
/// The demo issuer's private key (`config/demo/issuer-key.jwk`), for the token seeds.
pub const DEMO_ISSUER_KEY: &str = include_str!("../../config/demo/issuer-key.jwk");
/// The issuer and audience the token target's validator expects.
pub const ISSUER: &str = "https://as.example.com";
/// See [`ISSUER`].
pub const AUDIENCE: &str = "https://api.example.com";

/// Every algorithm, the gateway's default limits.
pub fn proof_policy() -> ProofPolicy {
    ProofPolicy {
        algorithms: Algorithm::ALL.into_iter().collect(),
        max_age: 60,
        clock_skew: 5,
        max_proof_bytes: 8192,
        require_ath: true,
    }
}
