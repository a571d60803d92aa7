//! The request path minus the network: `pipeline::authorize` — the function the listener runs
//! for every request — on a `State` built from a config (the server's proof-header cache, token
//! cache and memory replay store), for a DPoP request with a fresh proof each iteration, next to
//! a bare ring verify of the same algorithm. The token step alone, with and without the
//! verified-token cache, shows what the cache saves.
//!
//! Proofs are minted before each batch (outside the measurement): a proof is valid once.
//! Routing, header rewriting and the upstream hop are in the load benchmark's numbers.
//!
//! `cargo bench --bench pipeline`; the ratio table is printed at the end.

// reason: a bench binary is its own crate; `pub` in its modules documents their surface.
#![allow(unreachable_pub, missing_docs)]
// reason: fixed fixtures set up before measuring, like a test's; a broken one must stop the run.
#![allow(clippy::unwrap_used)]

mod common;

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BatchSize, Criterion};
use dpop_gateway::clock::FixedClock;
use dpop_gateway::config::{Config, ProcessEnv};
use dpop_gateway::metrics::Metrics;
use dpop_gateway::pipeline::{self, Access};
use dpop_gateway::state::{ConnMeta, State};

use common::{Fixture, Issuer, ALGS, HTU, NOW};

/// A `State` for the default config's checks, trusting `issuer` (its JWKS in a temporary file).
fn state(issuer: &Issuer, rt: &tokio::runtime::Runtime, explorer: bool) -> State {
    let dir = std::env::temp_dir().join(format!("dpop-gateway-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let jwks = dir.join("jwks.json");
    std::fs::write(&jwks, issuer.jwks()).unwrap();
    let yaml = format!(
        "upstream: {{ url: \"http://127.0.0.1:9\" }}\n\
         dpop: {{ algorithms: [ES256, ES384, EdDSA, RS256, PS256] }}\n\
         explorer: {{ enabled: {explorer} }}\n\
         access_token:\n  issuer: \"https://as.example.com\"\n  audience: \"https://api.example.com\"\n  jwks_file: \"{}\"\n",
        jwks.display()
    );
    let config = Config::from_yaml_str(&yaml, "<bench>", &ProcessEnv).unwrap();
    rt.block_on(State::from_config(
        &config,
        Arc::new(FixedClock::new(NOW)),
        Metrics::new().unwrap(),
    ))
    .unwrap()
}

/// The request head the fixture's proofs are for.
fn head(f: &Fixture, proof: &str) -> http::request::Parts {
    http::Request::get(HTU)
        .header("host", "127.0.0.1:8443")
        .header("authorization", format!("DPoP {}", f.token))
        .header("dpop", proof)
        .body(())
        .unwrap()
        .into_parts()
        .0
}

/// A GET: no body.
const EMPTY: pipeline::BodyKnown = pipeline::BodyKnown::Empty;

const CONN: fn() -> ConnMeta = || ConnMeta {
    remote: "127.0.0.1:40000".parse().unwrap(),
    scheme: "http",
};

fn benches(c: &mut Criterion) -> Vec<(String, String)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let issuer = Issuer::new();
    let fixtures: Vec<Fixture> = ALGS.iter().map(|a| Fixture::new(*a, &issuer)).collect();
    let state = state(&issuer, &rt, false);
    let mut rows = Vec::new();

    let mut ring = c.benchmark_group("ring");
    for f in &fixtures {
        ring.bench_function(f.alg.as_str(), |b| b.iter(|| black_box(f.ring_verify())));
    }
    ring.finish();

    let mut g = c.benchmark_group("authorize");
    for f in &fixtures {
        let mut n = 0u64;
        let mut fresh = || {
            n += 1;
            head(f, &common::mint(&f.key, &format!("jti-{n}"), &f.token))
        };
        let mut first = fresh();
        let decision = rt.block_on(pipeline::authorize(&state, &mut first, EMPTY, CONN()));
        assert!(matches!(decision.result, Ok(Access::Authorized(_))));
        g.bench_function(f.alg.as_str(), |b| {
            b.iter_batched(
                &mut fresh,
                |mut head| {
                    let d = rt.block_on(pipeline::authorize(&state, &mut head, EMPTY, CONN()));
                    matches!(d.result, Ok(Access::Authorized(_)))
                },
                BatchSize::SmallInput,
            )
        });
        rows.push((
            format!("authorize/{}", f.alg.as_str()),
            common::ring_id(f.alg),
        ));
    }
    g.finish();

    // The same, with the decision explorer on: authorize, then record the decision as
    // `handle` does (copy the decoded proof and token segments and the outcome, push into the
    // ring; rendering waits until the page is read).
    let explored = state_with_explorer(&issuer, &rt);
    let mut g = c.benchmark_group("explorer");
    let f = &fixtures[0];
    let mut n = 0u64;
    let mut fresh = || {
        n += 1;
        head(f, &common::mint(&f.key, &format!("jti-x-{n}"), &f.token))
    };
    g.bench_function(f.alg.as_str(), |b| {
        b.iter_batched(
            &mut fresh,
            |mut head| {
                let d = rt.block_on(pipeline::authorize(&explored, &mut head, EMPTY, CONN()));
                dpop_gateway::explorer::bench_record(&explored, &head, CONN(), &d);
                matches!(d.result, Ok(Access::Authorized(_)))
            },
            BatchSize::SmallInput,
        )
    });
    rows.push((
        format!("explorer/{}", f.alg.as_str()),
        format!("authorize/{}", f.alg.as_str()),
    ));
    g.finish();

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

/// [`state`] with `explorer.enabled`.
fn state_with_explorer(issuer: &Issuer, rt: &tokio::runtime::Runtime) -> State {
    state(issuer, rt, true)
}

fn main() {
    common::run("pipeline", benches);
}
