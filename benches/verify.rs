//! Proof verification per algorithm next to a bare ring verify of the same signature (the
//! floor): `proof/<alg>` checks from scratch (`dpop::verify`), `proof_cached/<alg>` through the
//! request path's `ProofVerifier`, whose header cache already holds the client's header (a
//! client reuses its key). Plus the pieces around it: JWK parse + RFC 7638 thumbprint, and htu
//! normalisation.
//!
//! `cargo bench --bench verify`; the ratio table is printed at the end.

// reason: a bench binary is its own crate; `pub` in its modules documents their surface.
#![allow(unreachable_pub, missing_docs)]
// reason: fixed fixtures set up before measuring, like a test's; a broken one must stop the run.
#![allow(clippy::unwrap_used)]

mod common;

use std::hint::black_box;

use criterion::Criterion;
use dpop_gateway::dpop::{self, htu, ProofVerifier};
use dpop_gateway::jose::PublicJwk;

use common::{Fixture, Issuer, ALGS, NOW};

fn benches(c: &mut Criterion) -> Vec<(String, String)> {
    let issuer = Issuer::new();
    let fixtures: Vec<Fixture> = ALGS.iter().map(|a| Fixture::new(*a, &issuer)).collect();
    let policy = common::proof_policy();
    let mut rows = Vec::new();

    let mut ring = c.benchmark_group("ring");
    for f in &fixtures {
        assert!(f.ring_verify(), "{} baseline verifies", f.alg);
        ring.bench_function(f.alg.as_str(), |b| b.iter(|| black_box(f.ring_verify())));
    }
    ring.finish();

    let mut proof = c.benchmark_group("proof");
    for f in &fixtures {
        let req = f.request();
        assert!(dpop::verify(&f.proof, &req, &policy, NOW).is_ok());
        proof.bench_function(f.alg.as_str(), |b| {
            b.iter(|| dpop::verify(black_box(&f.proof), &req, &policy, NOW).is_ok())
        });
        rows.push((format!("proof/{}", f.alg.as_str()), common::ring_id(f.alg)));
    }
    proof.finish();

    let mut cached = c.benchmark_group("proof_cached");
    for f in &fixtures {
        let req = f.request();
        let verifier = ProofVerifier::new(policy.clone());
        // The first verify caches the header; every measured one is a hit.
        assert!(verifier.verify(&f.proof, &req, NOW).is_ok());
        cached.bench_function(f.alg.as_str(), |b| {
            b.iter(|| verifier.verify(black_box(&f.proof), &req, NOW).is_ok())
        });
        rows.push((
            format!("proof_cached/{}", f.alg.as_str()),
            common::ring_id(f.alg),
        ));
    }
    cached.finish();

    let mut jwk = c.benchmark_group("thumbprint");
    for f in &fixtures {
        let public = f.key.public_jwk();
        jwk.bench_function(f.alg.as_str(), |b| {
            b.iter(|| PublicJwk::from_json(black_box(&public)).map(|k| k.thumbprint()))
        });
        rows.push((
            format!("thumbprint/{}", f.alg.as_str()),
            common::ring_id(f.alg),
        ));
    }
    let tp = fixtures[0].key.thumbprint();
    jwk.bench_function("to_b64", |b| b.iter(|| black_box(tp).to_string()));
    rows.push(("thumbprint/to_b64".into(), common::ring_id(ALGS[0])));
    jwk.finish();

    let mut norm = c.benchmark_group("htu");
    for (name, uri) in [
        ("plain", common::HTU),
        (
            "messy",
            "HTTP://API.Example.COM:80/a/./b/../%7euser/%2fx?query=1#frag",
        ),
    ] {
        assert!(htu::normalize(uri).is_ok());
        norm.bench_function(name, |b| b.iter(|| htu::normalize(black_box(uri))));
        rows.push((format!("htu/{name}"), common::ring_id(ALGS[0])));
    }
    norm.finish();
    rows
}

/// `VERIFY_COUNT=<case>/<alg>:<n>` (case `ring`, `proof` or `proof_cached`) runs that case `n`
/// times and nothing else, for instruction counts that a noisy machine cannot blur:
/// `valgrind --tool=callgrind` at two values of `n`; the difference over the difference in `n`
/// is the instructions per call (README.md, "Instructions per call").
fn count(spec: &str) {
    let (case, n) = spec.split_once(':').unwrap();
    let (case, alg) = case.split_once('/').unwrap();
    let n: u64 = n.parse().unwrap();
    let issuer = Issuer::new();
    let alg = ALGS.iter().find(|a| a.as_str() == alg).unwrap();
    let f = Fixture::new(*alg, &issuer);
    let policy = common::proof_policy();
    let req = f.request();
    let verifier = ProofVerifier::new(policy.clone());
    assert!(verifier.verify(&f.proof, &req, NOW).is_ok());
    let ok = (0..n).all(|_| match case {
        "ring" => f.ring_verify(),
        "proof" => dpop::verify(black_box(&f.proof), &req, &policy, NOW).is_ok(),
        "proof_cached" => verifier.verify(black_box(&f.proof), &req, NOW).is_ok(),
        other => panic!("unknown case {other}"),
    });
    assert!(ok);
}

fn main() {
    match std::env::var("VERIFY_COUNT") {
        Ok(spec) => count(&spec),
        Err(_) => common::run("verify", benches),
    }
}
