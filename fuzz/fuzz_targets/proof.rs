//! A DPoP proof (the `DPoP` header's value) through every stateless RFC 9449 §4.3 check: JWS
//! split and base64url, strict JSON header and claims, `typ`/`alg`/`jwk`, the key (Ed25519
//! small-order, RSA minimal integers), the signature, `htm`/`htu`/`iat`/`ath`. Seeds: the RFC's
//! proofs and a valid proof of every algorithm.

#![no_main]

#[path = "../src/common.rs"]
mod common;

use dpop_gateway::dpop::{self, ProofRequest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(proof) = std::str::from_utf8(data) else {
        return;
    };
    let policy = common::proof_policy();
    for access_token in [None, Some(common::ACCESS_TOKEN)] {
        let request = ProofRequest {
            method: common::HTM,
            htu: common::HTU,
            access_token,
        };
        if let Ok(ok) = dpop::verify(proof, &request, &policy, common::NOW) {
            // An accepted proof names a key and a jti; the replay key is derived from them.
            let _ = ok.replay_key();
            assert!(ok.iat().as_secs() <= common::NOW.as_secs() + policy.clock_skew);
        }
    }
});
