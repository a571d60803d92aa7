//! A JWT access token (RFC 9068) through the validator: JWS split, strict JSON (duplicate members
//! refused), `typ`/`alg`/`kid` key selection, signature, `iss`/`aud`/`exp`/`nbf`, `cnf.jkt`,
//! identity claims; and the same bytes read as a JWKS. Seeds: demo-issuer tokens.

#![no_main]

#[path = "../src/common.rs"]
mod common;

use std::sync::OnceLock;

use dpop_gateway::jose::Algorithm;
use dpop_gateway::metrics::Metrics;
use dpop_gateway::token::jwt::{JwkSet, JwtPolicy, JwtValidator};
use dpop_gateway::token::TokenMetrics;
use libfuzzer_sys::fuzz_target;

fn validator() -> &'static JwtValidator {
    static V: OnceLock<JwtValidator> = OnceLock::new();
    V.get_or_init(|| {
        let keys = JwkSet::from_json(common::DEMO_JWKS.as_bytes()).expect("demo JWKS");
        let metrics = Metrics::new().expect("metrics");
        let policy = JwtPolicy {
            issuer: common::ISSUER.into(),
            audience: common::AUDIENCE.into(),
            algorithms: Algorithm::ALL.into_iter().collect(),
            leeway: 30,
            require_typ: true,
            claims: Vec::new(),
        };
        // A cache of 0 entries: every input is checked from scratch.
        JwtValidator::new(policy, keys, 0, TokenMetrics::of(&metrics))
    })
}

fuzz_target!(|data: &[u8]| {
    let _ = JwkSet::from_json(data);
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(info) = validator().validate(token, common::NOW) {
        // RFC 9068 §2.2: an accepted token names its subject.
        assert!(info.exp.is_some());
    }
});
