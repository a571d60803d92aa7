//! The request path minus the network: what `pipeline::handle` runs for a DPoP request between
//! reading the head and forwarding it — `dpop::ProofVerifier::verify` (with the server's cache of
//! checked proof headers), `token` validate (JWT, with and without
//! the verified-token cache), `check_binding` and the replay insert — next to a bare ring verify
//! of the same algorithm.
//!
//! `pipeline::handle` itself takes a `Request<hyper::body::Incoming>`, which only hyper's
//! connection code can build, so the steps are benched as `handle` calls them; the rest of
//! `handle` (routing, header rewriting, metrics) is in the load benchmark's numbers.
//!
//! The same proof is verified every iteration (verification is stateless); the replay insert
//! gets a fresh key each time (the proof's key with a counter folded in), so every insert is
//! the first use of a key, as for a new proof.
//!
//! `cargo bench --bench pipeline`; the ratio table is printed at the end.

// reason: a bench binary is its own crate; `pub` in its modules documents their surface.
#![allow(unreachable_pub, missing_docs)]
// reason: fixed fixtures set up before measuring, like a test's; a broken one must stop the run.
#![allow(clippy::unwrap_used)]

mod common;

use std::hint::black_box;

use criterion::Criterion;
use dpop_gateway::clock::UnixTime;
use dpop_gateway::dpop;
use dpop_gateway::replay::memory::MemoryStore;
use dpop_gateway::replay::Admission;
use dpop_gateway::token::jwt::JwtValidator;
use dpop_gateway::token::{self, Scheme};

use common::{Fixture, Issuer, ALGS, NOW};

/// Every check a DPoP request passes, in `handle`'s order; `n` makes the replay key fresh.
fn checks(
    f: &Fixture,
    proofs: &dpop::ProofVerifier,
    tokens: &JwtValidator,
    replay: &MemoryStore,
    n: u64,
) -> bool {
    let Ok(proof) = proofs.verify(&f.proof, &f.request(), NOW) else {
        return false;
    };
    let Ok(info) = tokens.validate(&f.token, NOW) else {
        return false;
    };
    if token::check_binding(&info, Scheme::Dpop, Some(proof.jkt()), false).is_err() {
        return false;
    }
    let mut key = proof.replay_key();
    for (k, c) in key.iter_mut().zip(n.to_le_bytes()) {
        *k ^= c;
    }
    // One second per 500k inserts keeps the store bounded however long criterion runs.
    let now = UnixTime(NOW.as_secs() + n / 500_000);
    matches!(replay.check_and_insert(key, now), Ok(Admission::Fresh))
}

fn benches(c: &mut Criterion) -> Vec<(String, String)> {
    let issuer = Issuer::new();
    let fixtures: Vec<Fixture> = ALGS.iter().map(|a| Fixture::new(*a, &issuer)).collect();
    let proofs = dpop::ProofVerifier::new(common::proof_policy());
    let mut rows = Vec::new();

    let mut ring = c.benchmark_group("ring");
    for f in &fixtures {
        ring.bench_function(f.alg.as_str(), |b| b.iter(|| black_box(f.ring_verify())));
    }
    ring.finish();

    // The server's token cache size; capacity 0 makes every validate verify the token's
    // signature (an ES256 issuer) and parse its claims.
    for (group, capacity) in [("checks_cached", 100_000), ("checks_uncached", 0)] {
        let mut g = c.benchmark_group(group);
        for f in &fixtures {
            let tokens = issuer.validator(capacity);
            let replay = MemoryStore::new(2_000_000, 1);
            let mut n = 0u64;
            assert!(checks(f, &proofs, &tokens, &replay, u64::MAX));
            g.bench_function(f.alg.as_str(), |b| {
                b.iter(|| {
                    n += 1;
                    checks(f, &proofs, &tokens, &replay, n)
                })
            });
            rows.push((
                format!("{group}/{}", f.alg.as_str()),
                common::ring_id(f.alg),
            ));
        }
        g.finish();
    }

    // The token step alone, to show what the cache saves.
    let mut g = c.benchmark_group("token");
    let f = &fixtures[0];
    for (name, capacity) in [("cached", 100_000), ("uncached", 0)] {
        let tokens = issuer.validator(capacity);
        assert!(tokens.validate(&f.token, NOW).is_ok());
        g.bench_function(name, |b| {
            b.iter(|| tokens.validate(black_box(&f.token), NOW).is_ok())
        });
        rows.push((format!("token/{name}"), common::ring_id(f.alg)));
    }
    g.finish();
    rows
}

fn main() {
    common::run("pipeline checks", benches);
}
