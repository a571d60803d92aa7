//! `jti` single use (RFC 9449 §11.1) through the gateway's in-memory replay cache.

use std::sync::Arc;

use dpop_gateway::jose::sign::PrivateJwk;
use dpop_gateway::jose::Algorithm;

use crate::support::{proof, www_error, Options, TestGateway};

#[tokio::test]
async fn replayed_proof_is_refused_and_not_forwarded() {
    let gw = TestGateway::start().await;
    let key = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let token = gw.issuer.token_for(&key);
    let p = proof(&key, "GET", &gw.url("/resource"), Some(&token));
    let first = gw
        .call("GET", "/resource")
        .dpop_token(&token)
        .proof(&p)
        .send()
        .await;
    assert_eq!(first.status(), 200);
    let second = gw
        .call("GET", "/resource")
        .dpop_token(&token)
        .proof(&p)
        .send()
        .await;
    assert_eq!(second.status(), 401);
    assert_eq!(www_error(&second).as_deref(), Some("invalid_dpop_proof"));
    assert_eq!(gw.upstream.requests().len(), 1);
    let metrics = gw.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("dpop_gateway_requests_total")
                && l.contains("outcome=\"invalid_dpop_proof\"")
                && l.contains("reason=\"replay\"")
                && l.ends_with(" 1")),
        "{metrics}"
    );
}

#[tokio::test]
async fn fifty_concurrent_copies_forward_exactly_one() {
    let gw = Arc::new(TestGateway::start().await);
    let key = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let token = gw.issuer.token_for(&key);
    let p = proof(&key, "GET", &gw.url("/resource"), Some(&token));
    let mut tasks = Vec::new();
    for i in 0..50 {
        let gw = gw.clone();
        let (token, p) = (token.clone(), p.clone());
        tasks.push(tokio::spawn(async move {
            let mode = if i % 2 == 0 {
                crate::support::client::Mode::H1
            } else {
                crate::support::client::Mode::H2c
            };
            gw.call("GET", "/resource")
                .dpop_token(&token)
                .proof(&p)
                .mode(mode)
                .send()
                .await
                .status()
        }));
    }
    let mut ok = 0;
    let mut refused = 0;
    for t in tasks {
        match t.await.unwrap().as_u16() {
            200 => ok += 1,
            401 => refused += 1,
            s => panic!("unexpected status {s}"),
        }
    }
    assert_eq!((ok, refused), (1, 49));
    assert_eq!(gw.upstream.requests().len(), 1);
}

#[tokio::test]
async fn a_full_cache_refuses_new_proofs_and_never_lets_a_replay_through() {
    let gw = TestGateway::start_with(Options {
        replay_capacity: 1,
        ..Options::default()
    })
    .await;
    let key = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let token = gw.issuer.token_for(&key);
    let mut accepted = Vec::new();
    let mut full = None;
    for _ in 0..500 {
        let p = proof(&key, "GET", &gw.url("/resource"), Some(&token));
        let resp = gw
            .call("GET", "/resource")
            .dpop_token(&token)
            .proof(&p)
            .send()
            .await;
        match resp.status().as_u16() {
            200 => accepted.push(p),
            503 => {
                full = Some(resp);
                break;
            }
            s => panic!("unexpected status {s}"),
        }
    }
    let full = full.expect("a tiny cache fills up");
    let retry: u64 = full.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=66).contains(&retry), "Retry-After {retry}");
    let forwarded = gw.upstream.requests().len();
    assert_eq!(forwarded, accepted.len());
    // Every accepted proof is still remembered: none was evicted to make room.
    for p in &accepted {
        let resp = gw
            .call("GET", "/resource")
            .dpop_token(&token)
            .proof(p)
            .send()
            .await;
        assert_eq!(resp.status(), 401);
        assert_eq!(www_error(&resp).as_deref(), Some("invalid_dpop_proof"));
    }
    assert_eq!(gw.upstream.requests().len(), forwarded);
    let metrics = gw.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("dpop_gateway_replay_cache_full_total ") && !l.ends_with(" 0")),
        "{metrics}"
    );
}
